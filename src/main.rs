//! The `bmn-edge` command-line tool: the commands are in `src/cli/`, one module each.
//!
//! Diagnostics (what the engine chose: kernels, stage-B form, bands, threads; window
//! progress) go through the `log` crate to stderr, filtered by `RUST_LOG` (default `warn`):
//! `RUST_LOG=info` shows the choices, `RUST_LOG=bmn_edge=debug` also the windows without
//! tract's own (copious) debug output. Results and errors do not depend on it.
#![deny(unsafe_code)]

mod cli;

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    cli::output::guard_standard_descriptors();
    restore_sigpipe();
    remove_temporaries_on_signals();
    bmn_edge::io::refuse_replacing_inputs();
    cli::process::tune_allocator();
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    let args = cli::Cli::parse();
    match cli::run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// A closed pipe downstream (`bmn-edge inspect M | head`) ends the process quietly, as it
/// does any Unix filter, instead of a panic in `println!` (Rust ignores SIGPIPE by default).
fn restore_sigpipe() {
    // SAFETY: `signal` with SIG_DFL installs no handler code; it is called first thing in
    // `main`, before any other thread exists, so nothing races with the disposition change.
    #[allow(unsafe_code)]
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

/// SIGINT, SIGTERM and SIGHUP remove the temporary files being written
/// ([`bmn_edge::io::remove_pending_temporaries`]: an atomic output's `.NAME.*.tmp`, which
/// can be gigabytes for `mask`) before the process dies of the signal as it would have.
///
/// The signals are blocked in every thread (this runs first thing in `main`, before any
/// other thread exists, and threads inherit the mask) and taken by one thread with
/// `sigwait`, so the cleanup runs as ordinary code, not in a signal handler. A signal
/// ignored when the process started (`nohup`, a background job) stays ignored.
fn remove_temporaries_on_signals() {
    #[allow(unsafe_code)]
    // SAFETY: the sigset and sigaction values are initialised by sigemptyset/sigaction
    // before use; sigaction with a null new action only reads the current one;
    // pthread_sigmask changes this thread's mask only; sigwait, signal and raise take
    // plain values. No handler code is installed.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        let mut any = false;
        for sig in [libc::SIGINT, libc::SIGTERM, libc::SIGHUP] {
            let mut old: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(sig, std::ptr::null(), &mut old) == 0 && old.sa_sigaction == libc::SIG_IGN {
                continue;
            }
            libc::sigaddset(&mut set, sig);
            any = true;
        }
        if !any || libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) != 0 {
            return;
        }
        let waiter = std::thread::Builder::new().name("signals".into()).spawn(move || loop {
            let mut sig = 0;
            if libc::sigwait(&set, &mut sig) != 0 {
                continue;
            }
            bmn_edge::io::remove_pending_temporaries();
            libc::signal(sig, libc::SIG_DFL);
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
            libc::raise(sig);
        });
        if waiter.is_err() {
            libc::pthread_sigmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        }
    }
}

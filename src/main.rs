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
    restore_sigpipe();
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

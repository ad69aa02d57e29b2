//! Where commands write their results: stdout, or a file written atomically.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `text` to `out`, or to stdout when `out` is `None`; see [`write_file`] and
/// [`stdout`].
pub fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        None => {
            let mut stdout = stdout()?;
            stdout
                .write_all(text.as_bytes())
                .and_then(|()| stdout.write_all(b"\n"))
                .and_then(|()| stdout.flush())
                .context("writing to stdout")?;
            Ok(())
        }
        Some(path) => write_file(path, format!("{text}\n").as_bytes()),
    }
}

/// Whether descriptor 1 was closed when the process started (see [`guard_standard_descriptors`]).
static STDOUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Run first thing in `main`: notes whether stdout was closed when the process started.
/// Rust's runtime puts `/dev/null` on a closed descriptor 0, 1 or 2 before `main` (so that
/// the first file opened does not become stdout), which makes output "written to stdout"
/// vanish with exit status 0. That `/dev/null` is told from a user's `>/dev/null` by its
/// access mode: the runtime opens it read-write, a shell's `>` write-only (read from
/// `/proc/self/fdinfo/1`; elsewhere a closed stdout is not detected).
pub fn guard_standard_descriptors() {
    use std::os::unix::fs::{FileTypeExt, MetadataExt};
    let null = std::fs::metadata("/dev/null").ok();
    let fd1 = std::fs::metadata("/proc/self/fd/1").ok();
    let is_null = match (null, fd1) {
        (Some(n), Some(f)) => f.file_type().is_char_device() && f.rdev() == n.rdev(),
        _ => false,
    };
    if !is_null {
        return;
    }
    let read_write = std::fs::read_to_string("/proc/self/fdinfo/1").ok().and_then(|t| {
        let flags = t.lines().find_map(|l| l.strip_prefix("flags:"))?.trim().to_string();
        u32::from_str_radix(&flags, 8).ok()
    });
    if read_write.is_some_and(|f| f & libc::O_ACCMODE as u32 == libc::O_RDWR as u32) {
        STDOUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Stdout, locked, once it is known to be open: a closed stdout (`bmn-edge inspect M >&-`)
/// is an error here, before anything is written, not output lost with exit status 0
/// ([`guard_standard_descriptors`]). Write
/// errors on it (a full device) are the caller's errors: use `write!` on this, never
/// `println!`, which panics.
pub fn stdout() -> Result<std::io::StdoutLock<'static>> {
    use std::os::fd::AsFd;
    let out = std::io::stdout();
    // Duplicating descriptor 1 fails (EBADF) exactly when it is closed.
    if STDOUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed) || out.as_fd().try_clone_to_owned().is_err() {
        anyhow::bail!("stdout is closed: the output would be lost; give --out FILE or open stdout");
    }
    Ok(out.lock())
}

/// Writes `bytes` to `path` atomically ([`bmn_edge::io::write_atomically`]): a fresh,
/// exclusively created temporary file beside it, renamed into place (a symlink there is
/// replaced, not followed); on any failure nothing is left behind and an existing file is
/// as it was. A device or FIFO at `path` is written directly; one of the command's inputs
/// is refused.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    bmn_edge::io::write_atomically(path, |w| w.write_all(bytes))
        .with_context(|| format!("cannot write {}", path.display()))
}

/// This CPU's int8 picture for `inspect` and `bench`: features, tract's kernels, the
/// arithmetic chosen for int8 models.
#[cfg(feature = "engine")]
pub fn cpu_json(r: &bmn_edge::engine::CpuReport) -> serde_json::Value {
    serde_json::json!({
        "features": r.features.names(),
        "tract_kernel_f32": r.f32_kernel,
        "tract_kernel_i8": r.i8_kernel,
        "int8_arithmetic": r.arithmetic.name(),
    })
}

/// One line of the same: `features …; tract f32 …, i8 …; int8 models: …`.
#[cfg(feature = "engine")]
pub fn cpu_line(r: &bmn_edge::engine::CpuReport) -> String {
    format!(
        "{}; tract f32 {}, i8 {}; int8 models: {}",
        r.features,
        r.f32_kernel.as_deref().unwrap_or("?"),
        r.i8_kernel.as_deref().unwrap_or("?"),
        r.arithmetic.name()
    )
}

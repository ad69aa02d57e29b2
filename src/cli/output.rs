//! Where commands write their results: stdout, or a file written atomically.

use anyhow::{Context, Result};
use std::io::Write;
use std::path::Path;

/// Writes `text` to `out`, or to stdout when `out` is `None`; see [`write_file`].
pub fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes()).context("writing to stdout")?;
            stdout.write_all(b"\n").context("writing to stdout")?;
            Ok(())
        }
        Some(path) => write_file(path, format!("{text}\n").as_bytes()),
    }
}

/// Writes `bytes` to `path` atomically ([`bmn_edge::npy::write_atomically`]): a fresh,
/// exclusively created temporary file beside it, renamed into place; on any failure nothing
/// is left behind. A device or FIFO at `path` is written directly.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    bmn_edge::npy::write_atomically(path, |w| w.write_all(bytes))
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

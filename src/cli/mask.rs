//! `bmn-edge mask`: the dense BM mask as .npy.

use anyhow::{bail, Context, Result};
use bmn_edge::bm::BmTable;
use bmn_edge::npy::mib;
use bmn_edge::{Convention, WindowConfig};
use std::path::PathBuf;

/// Arguments of `bmn-edge mask`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// T: snippets per window.
    #[arg(long, default_value_t = 100)]
    tscale: usize,
    /// D: proposal durations (≤ T).
    #[arg(long, default_value_t = 100)]
    dscale: usize,
    /// N: sampling bins per proposal.
    #[arg(long, default_value_t = 32)]
    num_sample: usize,
    /// K: interpolation points per bin.
    #[arg(long, default_value_t = 3)]
    num_sample_perbin: usize,
    /// r: expansion ratio.
    #[arg(long, default_value_t = 0.5)]
    ratio: f64,
    /// Output .npy file (float32, shape [T, N, D, T]).
    #[arg(long)]
    out: PathBuf,
    /// Memory the dense mask may take, in MiB (it is built in memory: T·N·D·T float32
    /// values; the paper configuration needs 123 MiB). The default, 512, leaves room on a
    /// board with 1 GB.
    #[arg(long, default_value_t = 512)]
    max_memory: u64,
}

/// The dense mask's size in bytes, `T·N·D·T·4`, in u128, saturating (above any limit)
/// where even that overflows.
fn dense_bytes(t: usize, n: usize, d: usize) -> u128 {
    [n, d, t, 4].iter().fold(t as u128, |acc, &x| acc.saturating_mul(x as u128))
}

/// Runs `bmn-edge mask`.
pub fn run(a: Args) -> Result<()> {
    // Checked before the configuration and before anything is allocated.
    let limit = super::args::check_max_memory(a.max_memory)?;
    let need = dense_bytes(a.tscale, a.num_sample, a.dscale);
    if need > limit as u128 {
        bail!(
            "the dense mask [{t}, {n}, {d}, {t}] needs {} MiB ({need} bytes of float32), more than --max-memory {} (MiB); raise --max-memory if this machine has the memory",
            mib(need),
            a.max_memory,
            t = a.tscale,
            n = a.num_sample,
            d = a.dscale,
        );
    }
    // A region expanded by more than the window on each side of every proposal samples
    // (nearly) only outside it: the mask would be (nearly) all zero.
    if a.ratio > a.tscale as f64 {
        bail!("--ratio {:?} is more than T = {}: the sampled regions would lie outside the window", a.ratio, a.tscale);
    }
    let cfg = WindowConfig::new(a.tscale, a.dscale, a.num_sample, a.num_sample_perbin, a.ratio, Convention::Mmaction2)?;
    let table = BmTable::new(cfg);
    let dense = table.to_dense().context("building the dense mask")?;
    let shape = [cfg.tscale(), cfg.num_sample(), cfg.dscale(), cfg.tscale()];
    let nnz = dense.iter().filter(|&&x| x != 0.0).count();
    if nnz == 0 {
        bail!("the mask is all zero (ratio r = {:?}: no sample falls inside the window); nothing written", a.ratio);
    }
    bmn_edge::npy::write_f32(&a.out, &shape, &dense)?;
    eprintln!(
        "wrote {} {:?}: {} non-zeros ({:.2} %)",
        a.out.display(),
        shape,
        nnz,
        100.0 * nnz as f64 / dense.len() as f64
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dense_size_is_exact_and_does_not_overflow() {
        // The paper configuration: 100 · 32 · 100 · 100 float32 = 128,000,000 bytes.
        assert_eq!(dense_bytes(100, 32, 100), 128_000_000);
        assert_eq!(mib(dense_bytes(100, 32, 100)), 123);
        assert_eq!(dense_bytes(4096, 32, 4096), 1 << 43);
        assert_eq!(dense_bytes(usize::MAX, usize::MAX, 1), u128::MAX);
    }
}

//! `bmn-edge mask`: the dense BM mask as .npy.

use anyhow::{Context, Result};
use bmn_edge::bm::BmTable;
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
}

/// Runs `bmn-edge mask`.
pub fn run(a: Args) -> Result<()> {
    let cfg = WindowConfig::new(a.tscale, a.dscale, a.num_sample, a.num_sample_perbin, a.ratio, Convention::Mmaction2)?;
    let table = BmTable::new(cfg);
    let dense = table.to_dense().context("building the dense mask")?;
    let shape = [cfg.tscale(), cfg.num_sample(), cfg.dscale(), cfg.tscale()];
    bmn_edge::npy::write_f32(&a.out, &shape, &dense)?;
    let nnz = dense.iter().filter(|&&x| x != 0.0).count();
    eprintln!(
        "wrote {} {:?}: {} non-zeros ({:.2} %)",
        a.out.display(),
        shape,
        nnz,
        100.0 * nnz as f64 / dense.len() as f64
    );
    Ok(())
}

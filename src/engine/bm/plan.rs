//! The BM layer's tap plan: a flat plan from the core's [`BmTable`], the check of a dense
//! mask against it, and the sampling kernel.
//!
//! ## Layout
//!
//! Stage A delivers the projection `Z[o, n, t] = Σ_c W[o, c, n] · y[c, t]` as
//! `[O/CHUNK][T][N][CHUNK]`: output channels in blocks of [`CHUNK`](super::CHUNK) (32), each block a
//! `T × N` array of 32-float rows. One block is `T·N·32` floats (410 KB at the paper
//! configuration), small enough to stay in L2 while every cell reads it, and each tap
//! `(t, n, w)` of a cell is one contiguous 32-wide multiply-add into an accumulator that
//! lives in registers. Blocks are independent, so threads split the work by blocks and each
//! writes its own contiguous slab of `H[O][D][T]`, the layout stage B reads.
//!
//! ## Exactness
//!
//! Taps are the mask's exact non-zeros (the core reproduces the reference's mask bit for
//! bit); only the summation order differs from the reference (Σ over `(n, t)` after the
//! projection instead of Σ over `t` then over `(c, n)`), which is float rounding.

use crate::bm::BmTable;
use crate::config::{Convention, WindowConfig};
use crate::engine::error::{EngineError, EngineErrorKind};

/// Tolerance for comparing a dense mask with the table.
pub const MASK_TOLERANCE: f32 = 1e-6;

/// Every non-zero of the BM mask, grouped by valid cell `(d, s)` (d outer, s inner).
#[derive(Debug, Clone)]
pub struct TapPlan {
    pub(super) cfg: WindowConfig,
    pub(super) cells: Vec<(u16, u16)>,
    /// Index into `cells` of the first cell of each row `d` (`D + 1` entries).
    pub(super) row_start: Vec<u32>,
    pub(super) cell_start: Vec<u32>,
    /// `t·N + n` of each tap.
    pub(super) rows: Vec<u32>,
    pub(super) weights: Vec<f32>,
}

impl TapPlan {
    /// The valid cells `(d, s)`, d-major: the order of [`BmKernel::run_cells`](super::BmKernel::run_cells).
    pub fn cells(&self) -> &[(u16, u16)] {
        &self.cells
    }

    /// Builds the plan of a configuration (≈ 476k taps, 3.8 MB at the paper config).
    pub fn new(cfg: WindowConfig) -> Self {
        let table = BmTable::new(cfg);
        let (t, d, n) = (cfg.tscale(), cfg.dscale(), cfg.num_sample());
        let mut cells = Vec::with_capacity(cfg.valid_cells());
        let mut cell_start = Vec::with_capacity(cfg.valid_cells() + 1);
        let mut rows = Vec::new();
        let mut weights = Vec::new();
        cell_start.push(0);
        let mut row_start = Vec::with_capacity(d + 1);
        for dd in 0..d {
            row_start.push(cells.len() as u32);
            for s in 0..t {
                let Some(cell) = table.cell(dd, s) else { continue };
                for nn in 0..n {
                    for tap in cell.bin(nn) {
                        rows.push((tap.t as usize * n + nn) as u32);
                        weights.push(tap.weight);
                    }
                }
                cells.push((dd as u16, s as u16));
                cell_start.push(rows.len() as u32);
            }
        }
        row_start.push(cells.len() as u32);
        TapPlan { cfg, cells, row_start, cell_start, rows, weights }
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// Number of taps (the dense mask's non-zeros).
    pub fn nnz(&self) -> usize {
        self.weights.len()
    }

    /// Compares a dense mask `[T, N, D, T]` with the plan: every tap within
    /// [`MASK_TOLERANCE`] and nothing larger than that anywhere else.
    pub fn matches(&self, mask: &MaskData<'_>) -> bool {
        let (t, d, n) = (self.cfg.tscale(), self.cfg.dscale(), self.cfg.num_sample());
        if mask.len() != t * n * d * t {
            return false;
        }
        // Larger than the tolerance, or NaN.
        let big = |x: f32| x.abs().partial_cmp(&MASK_TOLERANCE).is_none_or(|o| o == std::cmp::Ordering::Greater);
        let mut big_at_taps = 0usize;
        for (ci, &(dd, s)) in self.cells.iter().enumerate() {
            let (lo, hi) = (self.cell_start[ci] as usize, self.cell_start[ci + 1] as usize);
            for i in lo..hi {
                let r = self.rows[i] as usize;
                let (tt, nn) = (r / n, r % n);
                let m = mask.at(((tt * n + nn) * d + dd as usize) * t + s as usize);
                if (m - self.weights[i])
                    .abs()
                    .partial_cmp(&MASK_TOLERANCE)
                    .is_none_or(|o| o == std::cmp::Ordering::Greater)
                {
                    return false;
                }
                big_at_taps += usize::from(big(m));
            }
        }
        mask.count(big) == big_at_taps
    }
}

/// A dense mask's values: little-endian f32 bytes (from the file) or floats.
#[derive(Debug, Clone, Copy)]
pub enum MaskData<'a> {
    /// Little-endian f32 bytes.
    Le(&'a [u8]),
    /// Floats.
    F32(&'a [f32]),
}

impl MaskData<'_> {
    /// Number of values.
    pub fn len(&self) -> usize {
        match self {
            MaskData::Le(b) => b.len() / 4,
            MaskData::F32(v) => v.len(),
        }
    }
    /// Whether empty.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// Value `i`.
    #[inline]
    pub fn at(&self, i: usize) -> f32 {
        match self {
            MaskData::Le(b) => f32::from_le_bytes([b[4 * i], b[4 * i + 1], b[4 * i + 2], b[4 * i + 3]]),
            MaskData::F32(v) => v[i],
        }
    }
    fn count(&self, f: impl Fn(f32) -> bool) -> usize {
        match self {
            MaskData::Le(b) => b.chunks_exact(4).filter(|c| f(f32::from_le_bytes([c[0], c[1], c[2], c[3]]))).count(),
            MaskData::F32(v) => v.iter().filter(|&&x| f(x)).count(),
        }
    }
}

/// Whether the mask's columns of one cell equal the table's (a quick probe).
fn cell_matches(table: &BmTable, mask: &MaskData<'_>, dd: usize, s: usize) -> bool {
    let cfg = table.config();
    let (t, d, n) = (cfg.tscale(), cfg.dscale(), cfg.num_sample());
    let Some(cell) = table.cell(dd, s) else { return true };
    let mut col = vec![0.0f32; n * t];
    for nn in 0..n {
        for tap in cell.bin(nn) {
            col[nn * t + tap.t as usize] = tap.weight;
        }
    }
    (0..t).all(|tt| {
        (0..n).all(|nn| (mask.at(((tt * n + nn) * d + dd) * t + s) - col[nn * t + tt]).abs() <= MASK_TOLERANCE)
    })
}

/// Candidate `K` values searched when a standard export does not state them.
pub const K_CANDIDATES: [usize; 8] = [3, 1, 2, 4, 5, 6, 7, 8];
/// Candidate `r` values searched when a standard export does not state them.
pub const R_CANDIDATES: [f64; 9] = [0.5, 0.25, 0.3, 0.2, 0.1, 0.4, 0.75, 1.0, 0.0];

/// Finds `(K, r)` such that the core's table reproduces `mask` (`[T, N·D·T]`), and returns
/// the verified plan. A few cells are probed per candidate, then the winner is checked in
/// full (every entry of the mask).
pub fn identify_mask(mask: &MaskData<'_>, t: usize, d: usize, n: usize) -> Result<TapPlan, EngineError> {
    let probes = {
        let mut p =
            vec![(0, 0), (d - 1, 0), (d / 2, (t - 1 - d / 2) / 2), (d / 3, t - 1 - d / 3), (1.min(d - 1), t / 2)];
        p.retain(|&(dd, s)| dd + s < t);
        p
    };
    for &k in &K_CANDIDATES {
        for &r in &R_CANDIDATES {
            let Ok(cfg) = WindowConfig::new(t, d, n, k, r, Convention::Mmaction2) else { continue };
            let table = BmTable::new(cfg);
            if !probes.iter().all(|&(dd, s)| cell_matches(&table, mask, dd, s)) {
                continue;
            }
            let plan = TapPlan::new(cfg);
            if plan.matches(mask) {
                return Ok(plan);
            }
        }
    }
    Err(EngineError::new(
        EngineErrorKind::NotBmMask,
        format!(
            "not a BM mask: the constant [T = {t}, N·D·T = {}] before the Conv3d matches no BM sampling table with T = {t}, D = {d}, N = {n}, K in 1..=8, r in {R_CANDIDATES:?} (tolerance {MASK_TOLERANCE})",
            n * d * t
        ),
    ))
}

//! The BM sampling table: the Boundary-Matching layer's mask without the 128 MB.
//!
//! BMN's BM layer multiplies the features `y[c, t]` by a constant mask `M[t, n, d, s]`
//! (`[T, N, D, T]`, reference §2). For a valid cell `(d, s)` (`s + d ≤ T − 1`) the reference
//! places `N·K` points evenly on the region `[s − r·(d+1), s + d + r·(d+1)]`, both ends
//! included, and each point spreads linear-interpolation weights onto its two neighbouring
//! snippets; bin `n` owns points `n·K … n·K+K−1` and its column is divided by `K`.
//! Three quirks of the reference are part of the function and are reproduced here:
//!
//! * the integer part comes from C `modf`, which truncates toward zero, so **a point in
//!   `(−1, 0)` puts weight exactly 1 on snippet 0** (`1 − frac` with a negative `frac`,
//!   plus `frac`, both on index 0);
//! * a point `≤ −1` contributes nothing, and a point in `(T−1, T)` puts only `1 − frac` on
//!   `T−1` (out-of-range taps are dropped, not renormalised);
//! * integer points put 1.0 on one snippet.
//!
//! ## Why no offsets are stored
//!
//! Each point is `s + o(d, i)` in exact arithmetic, so a `D × N × K` table of offsets would
//! describe the mask. But the reference computes `(s − c·r) + step·i` in float64 and rounds
//! *after* adding `s`: the last bit of a point depends on `s`, and when a point lands within
//! an ulp of an integer that bit decides whether a second, tiny tap exists (it changes the
//! non-zero count). [`BmTable`] therefore stores only the configuration and recomputes each
//! point with the reference's own operations, in the reference's order: five flops per cell
//! and two per point, zero bytes of table, and bit-identical positions on every target
//! (IEEE-754 f64 is deterministic, soft-float on Cortex-M included). Engines that want a
//! flat tap list build it once from [`BmTable::cell`] (see `engine`).

use crate::config::WindowConfig;
use core::fmt;

/// One non-zero entry of the mask column `M[:, n, d, s]`: snippet `t` with its weight.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Tap {
    /// Snippet index, `0 ≤ t < T`.
    pub t: u16,
    /// `M[t, n, d, s]` as the reference stores it (float64 accumulation, then f32).
    pub weight: f32,
}

/// A buffer handed to [`BmTable::fill_dense`] has the wrong length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DenseSizeError {
    /// `T·N·D·T`, or `None` when that does not fit in `usize` on this target.
    pub expected: Option<usize>,
    /// The length given.
    pub actual: usize,
}

impl fmt::Display for DenseSizeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.expected {
            Some(e) => write!(f, "dense mask buffer has {} floats, expected T·N·D·T = {}", self.actual, e),
            None => write!(f, "dense mask T·N·D·T does not fit in memory addresses on this target"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for DenseSizeError {}

/// The BM sampling table for one [`WindowConfig`]: iterates the mask's non-zero taps.
///
/// Its size does not depend on `T, D, N, K` (`size_of::<BmTable>()` is a few dozen bytes).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BmTable {
    cfg: WindowConfig,
}

impl BmTable {
    /// The table for a configuration.
    pub fn new(cfg: WindowConfig) -> Self {
        BmTable { cfg }
    }

    /// The configuration.
    pub fn config(&self) -> &WindowConfig {
        &self.cfg
    }

    /// The sampler of cell `(d, s)`, or `None` for an invalid or out-of-range cell (whose
    /// mask columns are all zero).
    pub fn cell(&self, d: usize, s: usize) -> Option<CellSampler> {
        if !self.cfg.is_valid_cell(d, s) {
            return None;
        }
        let n = self.cfg.num_sample();
        let k = self.cfg.num_sample_perbin();
        // The reference's operations, in its order (reference §2).
        let center_len = d as f64 + 1.0;
        let expand = center_len * self.cfg.ratio();
        let xmin = s as f64 - expand;
        let xmax = (s + d) as f64 + expand;
        let plen = xmax - xmin;
        let step = plen / ((n * k) as f64 - 1.0);
        Some(CellSampler { xmin, step, tscale: self.cfg.tscale(), num_sample: n, per_bin: k })
    }

    /// Number of non-zero entries of the dense mask.
    pub fn nnz(&self) -> usize {
        let mut count = 0;
        for d in 0..self.cfg.dscale() {
            for s in 0..self.cfg.tscale() {
                if let Some(cell) = self.cell(d, s) {
                    for n in 0..self.cfg.num_sample() {
                        count += cell.bin(n).count();
                    }
                }
            }
        }
        count
    }

    /// Length of the dense mask `T·N·D·T`, if it fits in `usize`.
    pub fn dense_len(&self) -> Option<usize> {
        let t = self.cfg.tscale();
        t.checked_mul(self.cfg.num_sample())?.checked_mul(self.cfg.dscale())?.checked_mul(t)
    }

    /// Writes the dense mask `[T, N, D, T]` (row-major `t, n, d, s`) into `out`, for checks
    /// and for exporting standard models. Every entry is written.
    pub fn fill_dense(&self, out: &mut [f32]) -> Result<(), DenseSizeError> {
        let expected = self.dense_len();
        if expected != Some(out.len()) {
            return Err(DenseSizeError { expected, actual: out.len() });
        }
        out.fill(0.0);
        let (t_len, n_len, d_len) = (self.cfg.tscale(), self.cfg.num_sample(), self.cfg.dscale());
        for d in 0..d_len {
            for s in 0..t_len {
                if let Some(cell) = self.cell(d, s) {
                    for n in 0..n_len {
                        for tap in cell.bin(n) {
                            out[((tap.t as usize * n_len + n) * d_len + d) * t_len + s] = tap.weight;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// The dense mask `[T, N, D, T]` as a vector (std only; 128 MB for the paper config).
    #[cfg(feature = "std")]
    pub fn to_dense(&self) -> Result<Vec<f32>, DenseSizeError> {
        let len = self.dense_len().ok_or(DenseSizeError { expected: None, actual: 0 })?;
        let mut v = vec![0.0f32; len];
        self.fill_dense(&mut v)?;
        Ok(v)
    }
}

/// The sample points of one valid cell `(d, s)`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CellSampler {
    xmin: f64,
    step: f64,
    tscale: usize,
    num_sample: usize,
    per_bin: usize,
}

impl CellSampler {
    /// Position of point `i` (`0 ≤ i < N·K`) in snippets, as the reference computes it.
    #[inline]
    pub fn point(&self, i: usize) -> f64 {
        self.xmin + self.step * (i as f64)
    }

    /// The non-zero taps of bin `n` (`M[:, n, d, s]`), in increasing `t`. At most
    /// `⌈span⌉ + 2` taps; an out-of-range `n` yields none.
    pub fn bin(&self, n: usize) -> BinTaps {
        if n >= self.num_sample {
            return BinTaps { cell: *self, first: 0, next: 1, last: 0 };
        }
        let first = n * self.per_bin;
        let lo = libm::trunc(self.point(first)).max(0.0);
        let hi = libm::ceil(self.point(first + self.per_bin - 1)).min(self.tscale as f64 - 1.0);
        // lo ≥ 0 and hi ≤ T − 1, so both casts are exact when lo ≤ hi.
        let (next, last) = if lo <= hi { (lo as usize, hi as usize) } else { (1, 0) };
        BinTaps { cell: *self, first, next, last }
    }
}

/// Iterator over the non-zero taps of one bin; see [`CellSampler::bin`].
#[derive(Debug, Clone)]
pub struct BinTaps {
    cell: CellSampler,
    first: usize,
    next: usize,
    last: usize,
}

impl Iterator for BinTaps {
    type Item = Tap;

    fn next(&mut self) -> Option<Tap> {
        let k = self.cell.per_bin;
        while self.next <= self.last {
            let x = self.next;
            self.next += 1;
            let xf = x as f64;
            // Accumulate as the reference does: points in order, each adding `1 − frac`
            // at its truncated index and then `frac` at its ceiling.
            let mut acc = 0.0f64;
            let mut touched = false;
            for j in 0..k {
                let p = self.cell.point(self.first + j);
                let down = libm::trunc(p);
                let frac = p - down;
                if down == xf {
                    acc += 1.0 - frac;
                    touched = true;
                }
                if libm::ceil(p) == xf {
                    acc += frac;
                    touched = true;
                }
            }
            if touched {
                let weight = ((1.0 / k as f64) * acc) as f32;
                if weight != 0.0 {
                    // x ≤ T − 1 ≤ 4095.
                    return Some(Tap { t: x as u16, weight });
                }
            }
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Convention;

    fn paper() -> BmTable {
        BmTable::new(WindowConfig::paper(Convention::Mmaction2))
    }

    fn cell_sum(table: &BmTable, d: usize, s: usize) -> f64 {
        let cell = table.cell(d, s).unwrap();
        (0..table.config().num_sample()).flat_map(|n| cell.bin(n)).map(|t| t.weight as f64).sum()
    }

    #[test]
    // Minutes under Miri (the paper-sized or long loops); the smaller tests cover the same code.
    #[cfg_attr(miri, ignore)]
    fn paper_checks_of_the_spec() {
        // reference §2: Σ M[:,:,9,45] = 32, Σ M[:,:,99,0] = 16, M[50,16,9,45] = 0.8,
        // cell (0,0) touches only t ∈ {0, 1}.
        let table = paper();
        assert!((cell_sum(&table, 9, 45) - 32.0).abs() < 1e-5);
        assert!((cell_sum(&table, 99, 0) - 16.0).abs() < 1e-5);
        let tap = table.cell(9, 45).unwrap().bin(16).find(|t| t.t == 50).unwrap();
        assert!((tap.weight - 0.8).abs() < 1e-6);
        let cell = table.cell(0, 0).unwrap();
        assert!((0..32).flat_map(|n| cell.bin(n)).all(|t| t.t <= 1));
        assert!(table.cell(1, 99).is_none());
        assert_eq!(table.nnz(), 476_827);
    }

    #[test]
    fn table_is_tiny() {
        assert!(core::mem::size_of::<BmTable>() < 100 * 1024);
        assert!(core::mem::size_of::<BmTable>() <= 64);
    }

    #[test]
    fn point_in_minus_one_zero_puts_one_on_index_zero() {
        // T = 4, d = 0, s = 0, r = 0.5, N·K = 2: points −0.5 and 0.5.
        let table = BmTable::new(WindowConfig::new(4, 4, 1, 2, 0.5, Convention::Mmaction2).unwrap());
        let taps: heapless::Vec<Tap, 8> = table.cell(0, 0).unwrap().bin(0).collect();
        // −0.5 gives 1.0 on 0; 0.5 gives 0.5 on 0 and 0.5 on 1; divided by K = 2.
        assert_eq!(taps.len(), 2);
        assert_eq!(taps[0], Tap { t: 0, weight: 0.75 });
        assert_eq!(taps[1], Tap { t: 1, weight: 0.25 });
    }

    #[test]
    fn dense_size_is_checked() {
        let table = BmTable::new(WindowConfig::new(4, 4, 1, 2, 0.5, Convention::Mmaction2).unwrap());
        let mut buf = [0.0f32; 10];
        assert_eq!(table.fill_dense(&mut buf), Err(DenseSizeError { expected: Some(64), actual: 10 }));
        let mut buf = [0.0f32; 64];
        table.fill_dense(&mut buf).unwrap();
        // Σ over t of the one bin (n = 0) of the fully inside cell (d, s) = (1, 1) is 1.
        // [T, N, D, T] = [4, 1, 4, 4].
        let index = |t: usize, n: usize, d: usize, s: usize| ((t + n) * 4 + d) * 4 + s;
        let sum: f32 = (0..4).map(|t| buf[index(t, 0, 1, 1)]).sum();
        assert!((sum - 1.0).abs() < 1e-6);
    }
}

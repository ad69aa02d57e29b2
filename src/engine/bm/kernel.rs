//! The BM sampling kernel: `H` from `Z` through the tap plan, 32 channels at a time.

use super::plan::TapPlan;
use super::CHUNK;
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::workers::Workers;

/// The BM layer: taps, bias, output width.
#[derive(Debug, Clone)]
pub struct BmKernel {
    plan: TapPlan,
    out: usize,
    /// Bias padded to a whole number of blocks.
    bias: Vec<f32>,
    simd: Simd,
}

/// Which instruction set the kernel's multiply-adds use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Simd {
    /// The target's baseline (SSE2 on x86-64: separate multiply and add, 4 lanes).
    Baseline,
    /// Fused multiply-add: AVX2 + FMA on x86-64 (detected at run time), NEON on aarch64
    /// (always there).
    Fma,
}

impl Simd {
    /// The best the running CPU offers.
    pub fn detect() -> Simd {
        #[cfg(target_arch = "x86_64")]
        {
            if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma") {
                return Simd::Fma;
            }
            Simd::Baseline
        }
        #[cfg(target_arch = "aarch64")]
        {
            Simd::Fma
        }
        #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
        {
            Simd::Baseline
        }
    }

    /// `avx2+fma`, `neon` or `baseline`.
    pub fn name(self) -> &'static str {
        match self {
            Simd::Baseline => "baseline",
            Simd::Fma if cfg!(target_arch = "aarch64") => "neon",
            Simd::Fma => "avx2+fma",
        }
    }
}

impl BmKernel {
    /// A kernel for `out` output channels with `bias` (`out` values).
    pub fn new(plan: TapPlan, bias: &[f32]) -> Self {
        let out = bias.len();
        let mut b = bias.to_vec();
        b.resize(out.div_ceil(CHUNK) * CHUNK, 0.0);
        let rows = plan.cfg.tscale() * plan.cfg.num_sample();
        assert!(plan.rows.iter().all(|&r| (r as usize) < rows), "tap plan rows within T·N");
        BmKernel { plan, out, bias: b, simd: Simd::detect() }
    }

    /// The instruction set in use.
    pub fn simd(&self) -> Simd {
        self.simd
    }

    /// Forces an instruction set (tests and benchmarks compare them). Asking for
    /// [`Simd::Fma`] on a CPU without it keeps the baseline.
    pub fn set_simd(&mut self, simd: Simd) {
        self.simd = if simd == Simd::Fma { Simd::detect() } else { Simd::Baseline };
    }

    /// The tap plan.
    pub fn plan(&self) -> &TapPlan {
        &self.plan
    }

    /// Output channels `O`.
    pub fn out_channels(&self) -> usize {
        self.out
    }

    /// Length of Z: `⌈O/32⌉ · T · N · 32`.
    pub fn z_len(&self) -> usize {
        self.bias.len() * self.plan.cfg.tscale() * self.plan.cfg.num_sample()
    }

    /// Length of H: `O · D · T`.
    pub fn h_len(&self) -> usize {
        self.out * self.plan.cfg.dscale() * self.plan.cfg.tscale()
    }

    /// `H[o, d, s] = relu(b[o] + Σ_taps w · Z[t, n, o])` for valid cells and `relu(b[o])`
    /// elsewhere. `z` is `[O/32][T][N][32]`, `h` is `[O][D][T]`; blocks are split over
    /// the `workers` (`None`: all on the calling thread).
    pub fn run(&self, z: &[f32], h: &mut [f32], workers: Option<&Workers>) -> Result<(), EngineError> {
        self.run_rows(z, h, 0..self.plan.cfg.dscale(), self.plan.cfg.tscale(), workers)
    }

    /// [`run`](Self::run) for the map rows (durations) `rows` and the first `cols` columns
    /// (starts) only: `h` is `[O][rows.len()][cols]`. Stage B runs in row bands, trimmed
    /// where the map is all invalid cells, to bound its memory and arithmetic.
    pub fn run_rows(
        &self,
        z: &[f32],
        h: &mut [f32],
        rows: std::ops::Range<usize>,
        cols: usize,
        workers: Option<&Workers>,
    ) -> Result<(), EngineError> {
        let cfg = &self.plan.cfg;
        let h_len = self.out * rows.len() * cols;
        if z.len() != self.z_len()
            || h.len() != h_len
            || rows.end > cfg.dscale()
            || rows.is_empty()
            || cols == 0
            || cols > cfg.tscale()
        {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!(
                    "BM kernel buffers: Z has {} values (expected {}), H {} (expected {h_len}), rows {rows:?} of {}",
                    z.len(),
                    self.z_len(),
                    h.len(),
                    cfg.dscale()
                ),
            ));
        }
        let plane = rows.len() * cols;
        let rows = &rows;
        self.for_blocks(z, h, CHUNK * plane, workers, |c, zc, hc| self.run_block(c, zc, hc, rows.clone(), cols));
        Ok(())
    }

    /// `H` for the valid cells `cells` (indices into [`TapPlan::cells`]) only:
    /// `h` is `[O][stride]`, column `i` the cell `cells.start + i` (`stride ≥ cells.len()`;
    /// columns past the range are left as they are). Blocks are split over the `workers`.
    pub fn run_cells(
        &self,
        z: &[f32],
        h: &mut [f32],
        cells: std::ops::Range<usize>,
        stride: usize,
        workers: Option<&Workers>,
    ) -> Result<(), EngineError> {
        self.run_cells_with(z, h, cells, stride, workers, |v| v)
    }

    /// One block of 32 output channels from that block of Z alone (`zc`, `[T][N][32]`):
    /// `store(H)` for the valid cells `cells` into `h` (`[rows][stride]`, `rows` the
    /// block's channels: 32, fewer in a last partial block; `store` maps `H` to what the
    /// caller keeps: itself, or a quantization's int8 levels). Lets a caller project and
    /// sample block by block, so that Z never exists whole.
    pub fn run_block_cells<T: Copy + Default>(
        &self,
        block: usize,
        zc: &[f32],
        h: &mut [T],
        cells: std::ops::Range<usize>,
        stride: usize,
        store: impl Fn(f32) -> T,
    ) -> Result<(), EngineError> {
        let zblock = self.plan.cfg.tscale() * self.plan.cfg.num_sample() * CHUNK;
        let rows = self.out.saturating_sub(block * CHUNK).min(CHUNK);
        if zc.len() != zblock
            || rows == 0
            || h.len() != rows * stride
            || cells.end > self.plan.cells.len()
            || cells.len() > stride
        {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!(
                    "BM kernel block {block}: Z block has {} values (expected {zblock}), H {} (expected {}), cells {cells:?} of {}",
                    zc.len(),
                    h.len(),
                    rows * stride,
                    self.plan.cells.len()
                ),
            ));
        }
        self.cells_block(block, zc, h, cells, stride, &store);
        Ok(())
    }

    fn run_cells_with<T: Copy + Default + Send>(
        &self,
        z: &[f32],
        h: &mut [T],
        cells: std::ops::Range<usize>,
        stride: usize,
        workers: Option<&Workers>,
        store: impl Fn(f32) -> T + Sync,
    ) -> Result<(), EngineError> {
        if z.len() != self.z_len()
            || h.len() != self.out * stride
            || cells.end > self.plan.cells.len()
            || cells.len() > stride
        {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!(
                    "BM kernel buffers: Z has {} values (expected {}), H {} (expected {}), cells {cells:?} of {}",
                    z.len(),
                    self.z_len(),
                    h.len(),
                    self.out * stride,
                    self.plan.cells.len()
                ),
            ));
        }
        self.for_blocks(z, h, CHUNK * stride, workers, |c, zc, hc| {
            self.cells_block(c, zc, hc, cells.clone(), stride, &store)
        });
        Ok(())
    }

    /// Runs `f(block, z block, h block)` for every block of 32 channels (`h` in blocks of
    /// `h_block` values), the blocks spread over the `workers`.
    fn for_blocks<T: Send>(
        &self,
        z: &[f32],
        h: &mut [T],
        h_block: usize,
        workers: Option<&Workers>,
        f: impl Fn(usize, &[f32], &mut [T]) + Sync,
    ) {
        let zblock = self.plan.cfg.tscale() * self.plan.cfg.num_sample() * CHUNK;
        let work = z.chunks_exact(zblock).zip(h.chunks_mut(h_block)).enumerate();
        match workers {
            Some(w) if w.count() > 1 => w.for_each(work.collect(), |(c, (zc, hc))| f(c, zc, hc)),
            _ => work.for_each(|(c, (zc, hc))| f(c, zc, hc)),
        }
    }

    /// [`Self::run_cells`] for one block, with the instruction set in [`Self::simd`]:
    /// `store(relu(acc))` for each channel.
    fn cells_block<T: Copy + Default>(
        &self,
        block: usize,
        zc: &[f32],
        hc: &mut [T],
        cells: std::ops::Range<usize>,
        stride: usize,
        store: &impl Fn(f32) -> T,
    ) {
        let valid_o = hc.len() / stride;
        for (i, ci) in cells.enumerate() {
            // All 32 channels at once (vectorised), then scattered to their rows.
            let acc = self.cell_acc(ci, zc, block);
            let mut out = [T::default(); CHUNK];
            for (o, a) in out.iter_mut().zip(&acc) {
                *o = store(a.max(0.0));
            }
            for (j, v) in out.iter().enumerate().take(valid_o) {
                hc[j * stride + i] = *v;
            }
        }
    }

    /// The accumulated taps of cell `ci` over one block (bias included, before ReLU).
    fn cell_acc(&self, ci: usize, zc: &[f32], block: usize) -> [f32; CHUNK] {
        const ZERO: [f32; CHUNK] = [0.0; CHUNK];
        let plan = &self.plan;
        let (lo, hi) = (plan.cell_start[ci] as usize, plan.cell_start[ci + 1] as usize);
        let (taps, weights) = (&plan.rows[lo..hi], &plan.weights[lo..hi]);
        let block_of = |v: &[f32]| -> [f32; CHUNK] { v[block * CHUNK..(block + 1) * CHUNK].try_into().unwrap_or(ZERO) };
        let bias = block_of(&self.bias);
        let start = &bias;
        match self.simd {
            Simd::Baseline => accumulate::<false>(taps, weights, zc, start),
            #[cfg(target_arch = "x86_64")]
            Simd::Fma => accumulate_avx2_fma(taps, weights, zc, start),
            #[cfg(not(target_arch = "x86_64"))]
            Simd::Fma => accumulate::<true>(taps, weights, zc, start),
        }
    }

    /// One block of 32 output channels: `zc` is `[T][N][32]`, `hc` is `[≤32][rows][cols]`.
    fn run_block(&self, block: usize, zc: &[f32], hc: &mut [f32], rows: std::ops::Range<usize>, cols: usize) {
        let cfg = &self.plan.cfg;
        let t = cfg.tscale();
        let plane = rows.len() * cols;
        let valid_o = hc.len() / plane;
        let bias: &[f32; CHUNK] = self.bias[block * CHUNK..(block + 1) * CHUNK].try_into().unwrap_or(&[0.0; CHUNK]);
        // Invalid cells (s + d ≥ T): relu(bias), as the reference's all-zero mask columns give.
        for (j, b) in bias.iter().enumerate().take(valid_o) {
            let v = b.max(0.0);
            for (r, dd) in rows.clone().enumerate() {
                let first_invalid = t.saturating_sub(dd).min(cols);
                hc[j * plane + r * cols + first_invalid..j * plane + (r + 1) * cols].fill(v);
            }
        }
        let plan = &self.plan;
        let (c0, c1) = (plan.row_start[rows.start] as usize, plan.row_start[rows.end] as usize);
        for ci in c0..c1 {
            let (dd, s) = plan.cells[ci];
            if s as usize >= cols {
                continue;
            }
            let acc = self.cell_acc(ci, zc, block);
            let at = (dd as usize - rows.start) * cols + s as usize;
            for (j, a) in acc.iter().enumerate().take(valid_o) {
                hc[j * plane + at] = a.max(0.0);
            }
        }
    }
}

/// [`accumulate`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
fn accumulate_avx2_fma(taps: &[u32], weights: &[f32], zc: &[f32], bias: &[f32; CHUNK]) -> [f32; CHUNK] {
    #[target_feature(enable = "avx2,fma")]
    fn inner(taps: &[u32], weights: &[f32], zc: &[f32], bias: &[f32; CHUNK]) -> [f32; CHUNK] {
        accumulate::<true>(taps, weights, zc, bias)
    }
    // SAFETY: `inner` is safe code compiled with AVX2 and FMA enabled; it is only reached
    // through `Simd::Fma`, which `Simd::detect` sets after checking the CPU at run time.
    unsafe { inner(taps, weights, zc, bias) }
}

/// `bias + Σ w · Z[row]` over one cell's taps in one block of Z. `FMA`: fused multiply-adds
/// in two independent chains (only where the caller compiled for them: with FMA off the
/// target, `mul_add` would be a library call).
#[inline(always)]
fn accumulate<const FMA: bool>(taps: &[u32], weights: &[f32], zc: &[f32], bias: &[f32; CHUNK]) -> [f32; CHUNK] {
    let mut acc = *bias;
    if FMA {
        // A fused multiply-add waits four cycles for its accumulator: two chains keep the
        // units busy.
        let mut odd = [0.0f32; CHUNK];
        let (mut pr, mut pw) = (taps.chunks_exact(2), weights.chunks_exact(2));
        for (r, w) in (&mut pr).zip(&mut pw) {
            let (a, b) = (z_row(zc, r[0]), z_row(zc, r[1]));
            for j in 0..CHUNK {
                acc[j] = a[j].mul_add(w[0], acc[j]);
                odd[j] = b[j].mul_add(w[1], odd[j]);
            }
        }
        if let (Some(&r), Some(&w)) = (pr.remainder().first(), pw.remainder().first()) {
            let a = z_row(zc, r);
            for j in 0..CHUNK {
                acc[j] = a[j].mul_add(w, acc[j]);
            }
        }
        for j in 0..CHUNK {
            acc[j] += odd[j];
        }
    } else {
        for (&r, &w) in taps.iter().zip(weights) {
            let row = z_row(zc, r);
            for j in 0..CHUNK {
                acc[j] += w * row[j];
            }
        }
    }
    acc
}

/// The 32-float row `r` of a Z block. The plan holds only rows `< T·N` (asserted in
/// [`BmKernel::new`]) and every caller checks that a block is `T·N·32` values long, so the
/// row is in range; the indexing asserts it.
#[inline(always)]
fn z_row(zc: &[f32], r: u32) -> &[f32; CHUNK] {
    let off = r as usize * CHUNK;
    zc[off..off + CHUNK].try_into().expect("CHUNK values")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bm::BmTable;
    use crate::config::{Convention, WindowConfig};
    use crate::engine::bm::{identify_mask, MaskData, ZBuf};

    fn naive(cfg: WindowConfig, z_ont: &[f32], bias: &[f32]) -> Vec<f32> {
        // z_ont: [O][N][T]; dense mask reference.
        let (t, d, n) = (cfg.tscale(), cfg.dscale(), cfg.num_sample());
        let o = bias.len();
        let m = BmTable::new(cfg).to_dense().unwrap();
        let mut h = vec![0.0f32; o * d * t];
        for oo in 0..o {
            for dd in 0..d {
                for s in 0..t {
                    let mut acc = bias[oo] as f64;
                    for nn in 0..n {
                        for tt in 0..t {
                            acc += (z_ont[(oo * n + nn) * t + tt] * m[((tt * n + nn) * d + dd) * t + s]) as f64;
                        }
                    }
                    h[(oo * d + dd) * t + s] = (acc as f32).max(0.0);
                }
            }
        }
        h
    }

    #[test]
    fn kernel_matches_dense_reference() {
        let cfg = WindowConfig::new(12, 9, 5, 3, 0.5, Convention::Mmaction2).unwrap();
        let (t, n, o) = (12, 5, 40);
        let plan = TapPlan::new(cfg);
        let bias: Vec<f32> = (0..o).map(|i| (i as f32 - 20.0) * 0.01).collect();
        let z_ont: Vec<f32> = (0..o * n * t).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
        let mut kernel = BmKernel::new(plan, &bias);
        let mut z = vec![0.0f32; kernel.z_len()];
        for oo in 0..o {
            for nn in 0..n {
                for tt in 0..t {
                    z[(oo / CHUNK) * t * n * CHUNK + (tt * n + nn) * CHUNK + oo % CHUNK] =
                        z_ont[(oo * n + nn) * t + tt];
                }
            }
        }
        let want = naive(cfg, &z_ont, &bias);
        for (simd, threads) in [(Simd::Baseline, 1), (Simd::Baseline, 2), (Simd::Fma, 1), (Simd::Fma, 3)] {
            kernel.set_simd(simd);
            let pool = Workers::new(threads).unwrap();
            let workers = Some(&pool);
            let mut h = vec![f32::NAN; kernel.h_len()];
            kernel.run(&z, &mut h, workers).unwrap();
            let err = h.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            assert!(err < 1e-5, "{simd:?}, threads {threads}: max err {err}");
            // Valid cells 5..23 only, as the sparse stage B asks for them.
            let (stride, cells) = (20usize, 5..23usize);
            let mut hc = vec![f32::NAN; o * stride];
            kernel.run_cells(&z, &mut hc, cells.clone(), stride, workers).unwrap();
            for (i, ci) in cells.enumerate() {
                let (dd, ss) = kernel.plan().cells()[ci];
                for oo in 0..o {
                    let w = want[(oo * 9 + dd as usize) * t + ss as usize];
                    assert!((hc[oo * stride + i] - w).abs() < 1e-5, "{simd:?} cell {ci} channel {oo}");
                }
            }
            // Block by block from each block of Z alone, as int8 levels of H.
            let zblock = t * n * CHUNK;
            let level = |v: f32| (v / 0.01).round().clamp(-128.0, 127.0) as i8;
            let ncells = kernel.plan().cells().len();
            for block in 0..o.div_ceil(CHUNK) {
                let rows = (o - block * CHUNK).min(CHUNK);
                let mut hq = vec![0i8; rows * ncells];
                let zc = &z[block * zblock..(block + 1) * zblock];
                kernel.run_block_cells(block, zc, &mut hq, 0..ncells, ncells, level).unwrap();
                for (ci, &(dd, ss)) in kernel.plan().cells().iter().enumerate() {
                    for j in 0..rows {
                        let w = level(want[((block * CHUNK + j) * 9 + dd as usize) * t + ss as usize]);
                        assert!((hq[j * ncells + ci] as i32 - w as i32).abs() <= 1, "{simd:?} block {block} cell {ci}");
                    }
                }
                let mut short = vec![0i8; rows * ncells - 1];
                assert!(kernel.run_block_cells(block, zc, &mut short, 0..ncells, ncells, level).is_err());
            }
            // A band of rows 3..7 equals those rows of the whole map.
            let mut band = vec![f32::NAN; o * 4 * t];
            kernel.run_rows(&z, &mut band, 3..7, t, workers).unwrap();
            for oo in 0..o {
                assert_eq!(&band[oo * 4 * t..(oo + 1) * 4 * t], &h[(oo * 9 + 3) * t..(oo * 9 + 7) * t]);
            }
            // Rows 3..7, first 8 columns.
            let mut band = vec![f32::NAN; o * 4 * 8];
            kernel.run_rows(&z, &mut band, 3..7, 8, workers).unwrap();
            for oo in 0..o {
                for r in 0..4 {
                    assert_eq!(
                        &band[(oo * 4 + r) * 8..(oo * 4 + r + 1) * 8],
                        &h[(oo * 9 + 3 + r) * t..(oo * 9 + 3 + r) * t + 8]
                    );
                }
            }
        }
    }

    #[test]
    fn zbuf_is_aligned_and_zeroed() {
        for len in [0usize, 1, 15, 16, 1000, 12345] {
            let mut z = ZBuf::zeros(len);
            assert_eq!(z.as_slice().len(), len);
            assert!(z.as_slice().iter().all(|&v| v == 0.0));
            assert_eq!(z.as_mut_slice().as_ptr() as usize % 64, 0, "len {len}");
        }
    }

    #[test]
    fn mask_identification() {
        let cfg = WindowConfig::new(16, 16, 8, 3, 0.5, Convention::Mmaction2).unwrap();
        let dense = BmTable::new(cfg).to_dense().unwrap();
        let plan = identify_mask(&MaskData::F32(&dense), 16, 16, 8).unwrap();
        assert_eq!(plan.config().num_sample_perbin(), 3);
        assert_eq!(plan.config().ratio(), 0.5);
        let cfg2 = WindowConfig::new(16, 16, 8, 2, 0.25, Convention::Mmaction2).unwrap();
        let dense2 = BmTable::new(cfg2).to_dense().unwrap();
        let plan2 = identify_mask(&MaskData::F32(&dense2), 16, 16, 8).unwrap();
        assert_eq!((plan2.config().num_sample_perbin(), plan2.config().ratio()), (2, 0.25));
        let mut bad = dense.clone();
        bad[12345] += 0.01;
        assert_eq!(identify_mask(&MaskData::F32(&bad), 16, 16, 8).unwrap_err().kind(), EngineErrorKind::NotBmMask);
    }
}

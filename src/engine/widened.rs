//! bmn-edge's own int8 product for x86-64 CPUs with AVX2 (the engine's choice for its own
//! products there, with or without a dot-product instruction).
//!
//! tract's integer kernel for such CPUs (`avx2_mmm_i32_8x8`) emulates a dot product and is
//! about 20× slower than its float kernels, which is why int8 models run their products in
//! exact float there ([`Int8Arithmetic::ExactFloat`](super::cpu::Int8Arithmetic)). This
//! kernel computes the same `i32` sums `W · X` (int8 weights `[m][k]`, int8 levels `[k][n]`)
//! with AVX2's `vpmaddwd`: both operands widened to `i16`, each instruction multiplies 16
//! pairs and adds adjacent pairs into 8 `i32` lanes — twice the multiply-adds per
//! instruction of an 8-lane `f32` FMA, on a quarter of exact float's operand bytes. Every
//! product of two int8 values and every sum of two of them fits in `i32` with room to spare
//! (`2 · 128² = 2^15`), and a whole sum of `k` terms is at most `k · 2^14`: exact for
//! `k < 2^17`, which [`WidenedGemm::new`] checks.
//!
//! Layout, chosen for the instruction:
//!
//! * the weights are packed once, at load, in panels of [`MR`] rows: for each pair of
//!   adjacent `k` (`2p`, `2p + 1`) and each row of the panel, the two weights as one `i32`
//!   (low half `w[r][2p]`, high half `w[r][2p + 1]`), which the kernel broadcasts;
//! * the levels are packed per call in panels of [`NR`] columns: for each pair `p`, the
//!   columns' two levels side by side as `i16` (`x[2p][c]`, `x[2p + 1][c]`), 32 values — two
//!   registers — per pair (interleaved by `punpcklbw`, widened by `vpmovsxbw`);
//! * a tile of `MR × NR` sums lives in 12 of the 16 AVX registers for the whole `k`; odd
//!   `k`, ragged `m` and `n` are padded with zeros in the packed panels, which add nothing.
//!
//! On a CPU with AVX-512 VNNI (and VL) the same tile runs `vpdpwssd`, the multiply-add and
//! the add in one instruction, on the same 256-bit registers and panels: ~1.25× the AVX2
//! code and level with tract's VNNI kernels on the products alone (`cargo bench --bench
//! int8_kernels`), and 1.45× faster than them on the shipped model's stage B as the engine
//! runs it (no tract plan per call), which is why the engine chooses it there too.
//!
//! Where AVX2 is missing (or on another architecture) [`WidenedGemm::run`] computes the same
//! sums in portable Rust over the same packed panels (slow; tests compare every code the CPU
//! runs with it and with direct sums).

use crate::engine::error::{EngineError, EngineErrorKind};

/// Rows of a tile (weights broadcast per step).
pub const MR: usize = 6;
/// Columns of a tile (two AVX2 registers of 8 `i32` sums).
pub const NR: usize = 16;
/// The longest sum the kernel takes: `k · 2^14 < 2^31`.
pub const MAX_K: usize = (1 << 17) - 1;

/// Which code computes the product.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WidenedSimd {
    /// AVX2 `vpmaddwd` and `vpaddd` (detected at run time).
    Avx2,
    /// AVX-512 VNNI with AVX-512 VL: `vpdpwssd` on 256-bit registers, the multiply-add and
    /// the add in one instruction (detected at run time). (AVX-VNNI's VEX-encoded
    /// `vpdpwssd` would do the same on CPUs without AVX-512; no emulator here runs it, so
    /// those CPUs get the AVX2 code.)
    Avx512Vnni,
    /// Portable Rust (any CPU; a reference, not fast).
    Portable,
}

impl WidenedSimd {
    /// The best the running CPU offers ([`CpuFeatures::detect`](super::cpu::CpuFeatures::detect):
    /// the standard library's run-time detection, less what `TRACT_CPU_ISA` takes away).
    pub fn detect() -> WidenedSimd {
        [WidenedSimd::Avx512Vnni, WidenedSimd::Avx2]
            .into_iter()
            .find(|s| s.available())
            .unwrap_or(WidenedSimd::Portable)
    }

    /// Whether the running CPU can run this code.
    pub fn available(self) -> bool {
        #[cfg(target_arch = "x86_64")]
        {
            let f = super::cpu::CpuFeatures::detect();
            match self {
                WidenedSimd::Avx2 => f.avx2,
                WidenedSimd::Avx512Vnni => f.avx2 && f.avx512vnni && std::arch::is_x86_feature_detected!("avx512vl"),
                WidenedSimd::Portable => true,
            }
        }
        #[cfg(not(target_arch = "x86_64"))]
        {
            self == WidenedSimd::Portable
        }
    }

    /// `avx2`, `avx512vnni` or `portable`.
    pub fn name(self) -> &'static str {
        match self {
            WidenedSimd::Avx2 => "avx2",
            WidenedSimd::Avx512Vnni => "avx512vnni",
            WidenedSimd::Portable => "portable",
        }
    }
}

/// Int8 weights `[m][k]` packed for the kernel, and the product's shape.
#[derive(Debug, Clone)]
pub struct WidenedGemm {
    m: usize,
    k: usize,
    /// `[m.div_ceil(MR)][k.div_ceil(2)][MR]` pairs of `i16` weights as `i32`.
    w: Vec<i32>,
    simd: WidenedSimd,
}

/// Scratch for the packed levels (kept by the caller from call to call).
#[derive(Debug, Default)]
pub struct WidenedScratch {
    x: Vec<i16>,
}

impl WidenedScratch {
    /// No buffer yet (it grows on first use).
    pub const fn new() -> WidenedScratch {
        WidenedScratch { x: Vec::new() }
    }
}

fn pair(lo: i8, hi: i8) -> i32 {
    (i32::from(lo) & 0xffff) | (i32::from(hi) << 16)
}

impl WidenedGemm {
    /// Packs `w` (`[m][k]`, row-major). An error when the sizes disagree or `k` exceeds
    /// [`MAX_K`].
    pub fn new(w: &[i8], m: usize, k: usize) -> Result<WidenedGemm, EngineError> {
        if w.len() != m * k || k > MAX_K {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!("widened int8 product: {} weights for [{m}][{k}] (k at most {MAX_K})", w.len()),
            ));
        }
        let kp = k.div_ceil(2);
        let mut packed = vec![0i32; m.div_ceil(MR) * kp * MR];
        let at = |r: usize, j: usize| if j < k { w[r * k + j] } else { 0 };
        // (`max(1)`: with k = 0 there is nothing to pack, and no chunk of size 0.)
        for (panel, dst) in packed.chunks_exact_mut((kp * MR).max(1)).enumerate() {
            for p in 0..kp {
                for i in 0..MR {
                    let r = panel * MR + i;
                    if r < m {
                        dst[p * MR + i] = pair(at(r, 2 * p), at(r, 2 * p + 1));
                    }
                }
            }
        }
        Ok(WidenedGemm { m, k, w: packed, simd: WidenedSimd::detect() })
    }

    /// The code in use.
    pub fn simd(&self) -> WidenedSimd {
        self.simd
    }

    /// Forces one code (tests and benchmarks compare them); one the CPU cannot run gives the
    /// portable code.
    pub fn set_simd(&mut self, simd: WidenedSimd) {
        self.simd = if simd.available() { simd } else { WidenedSimd::Portable };
    }

    /// `W · X` for `x` `[k][n]` (row-major) into `acc` (`[m][n]`, resized): the exact sums.
    pub fn run(&self, x: &[i8], n: usize, scratch: &mut WidenedScratch, acc: &mut Vec<i32>) -> Result<(), EngineError> {
        let (m, k) = (self.m, self.k);
        if x.len() != k * n {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!("widened int8 product: {} levels for [{k}][{n}]", x.len()),
            ));
        }
        acc.clear();
        acc.resize(m * n, 0);
        if m == 0 || n == 0 || k == 0 {
            // Empty sums are 0.
            return Ok(());
        }
        let kp = k.div_ceil(2);
        let blocks = n.div_ceil(NR);
        scratch.x.clear();
        scratch.x.resize(blocks * kp * 2 * NR, 0);
        self.pack_x(x, n, &mut scratch.x);
        let xs = &scratch.x;
        for (jb, xp) in xs.chunks_exact(kp * 2 * NR).enumerate() {
            let c0 = jb * NR;
            let cols = NR.min(n - c0);
            for (rb, wp) in self.w.chunks_exact(kp * MR).enumerate() {
                let r0 = rb * MR;
                let rows = MR.min(m - r0);
                let mut tile = [[0i32; NR]; MR];
                self.tile(wp, xp, kp, &mut tile);
                for (i, t) in tile.iter().enumerate().take(rows) {
                    acc[(r0 + i) * n + c0..][..cols].copy_from_slice(&t[..cols]);
                }
            }
        }
        Ok(())
    }

    /// Packs `x` `[k][n]` into `dst`: `[n.div_ceil(NR)][k.div_ceil(2)][NR][2]` `i16`s.
    #[allow(unsafe_code)]
    fn pack_x(&self, x: &[i8], n: usize, dst: &mut [i16]) {
        let k = self.k;
        let kp = k.div_ceil(2);
        let row = |r: usize, c0: usize| -> [i8; NR] {
            let mut v = [0i8; NR];
            if r < k {
                let cols = NR.min(n - c0);
                v[..cols].copy_from_slice(&x[r * n + c0..][..cols]);
            }
            v
        };
        for (jb, block) in dst.chunks_exact_mut(kp * 2 * NR).enumerate() {
            let c0 = jb * NR;
            for (p, out) in block.chunks_exact_mut(2 * NR).enumerate() {
                // A whole block of two rows is read in place; a ragged one (the last columns,
                // or the missing row of an odd `k`) through zero-padded copies.
                let (ra, rb) = (2 * p, 2 * p + 1);
                let staged;
                let (a, b): (&[i8], &[i8]) = if c0 + NR <= n && rb < k {
                    (&x[ra * n + c0..][..NR], &x[rb * n + c0..][..NR])
                } else {
                    staged = (row(ra, c0), row(rb, c0));
                    (&staged.0, &staged.1)
                };
                match self.simd {
                    #[cfg(target_arch = "x86_64")]
                    // SAFETY: these are only set after run-time detection of their features,
                    // each of which includes AVX2.
                    WidenedSimd::Avx2 | WidenedSimd::Avx512Vnni => unsafe { avx2::interleave(a, b, out) },
                    _ => {
                        for c in 0..NR {
                            out[2 * c] = i16::from(a[c]);
                            out[2 * c + 1] = i16::from(b[c]);
                        }
                    }
                }
            }
        }
    }

    /// The `MR × NR` sums of one weight panel `wp` and one level panel `xp` over `kp` pairs.
    #[allow(unsafe_code)]
    fn tile(&self, wp: &[i32], xp: &[i16], kp: usize, tile: &mut [[i32; NR]; MR]) {
        debug_assert!(wp.len() == kp * MR && xp.len() == kp * 2 * NR);
        match self.simd {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `Avx2` is only set after run-time detection of AVX2 (the kernel asserts
            // the panels' lengths itself).
            WidenedSimd::Avx2 => unsafe { avx2::tile(wp, xp, kp, tile) },
            #[cfg(target_arch = "x86_64")]
            // SAFETY: only set after run-time detection of AVX-512 VNNI and VL.
            WidenedSimd::Avx512Vnni => unsafe { avx2::tile_avx512vnni(wp, xp, kp, tile) },

            _ => {
                for p in 0..kp {
                    for (i, t) in tile.iter_mut().enumerate() {
                        let w = wp[p * MR + i];
                        let (w0, w1) = (i32::from(w as i16), w >> 16);
                        for (c, s) in t.iter_mut().enumerate() {
                            *s += w0 * i32::from(xp[p * 2 * NR + 2 * c]) + w1 * i32::from(xp[p * 2 * NR + 2 * c + 1]);
                        }
                    }
                }
            }
        }
    }
}

/// The AVX2 code: safe functions compiled with AVX2 enabled (so calling them needs the
/// caller's promise that the CPU has it), whose only unsafe operations are unaligned loads and
/// stores within slices whose lengths are asserted first.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code)]
mod avx2 {
    use super::{MR, NR};
    use std::arch::x86_64::*;

    /// Two rows of 16 levels into 16 pairs of `i16` (`a[c]`, `b[c]`).
    #[target_feature(enable = "avx2")]
    pub(super) fn interleave(a: &[i8], b: &[i8], out: &mut [i16]) {
        assert!(a.len() >= NR && b.len() >= NR && out.len() >= 2 * NR);
        // SAFETY: 16 bytes from slices of at least 16 `i8`s (asserted).
        let (va, vb) =
            unsafe { (_mm_loadu_si128(a.as_ptr() as *const __m128i), _mm_loadu_si128(b.as_ptr() as *const __m128i)) };
        let lo = _mm256_cvtepi8_epi16(_mm_unpacklo_epi8(va, vb));
        let hi = _mm256_cvtepi8_epi16(_mm_unpackhi_epi8(va, vb));
        // SAFETY: 2 × 16 `i16`s into a slice of at least 32 (asserted).
        unsafe {
            _mm256_storeu_si256(out.as_mut_ptr() as *mut __m256i, lo);
            _mm256_storeu_si256(out.as_mut_ptr().add(NR) as *mut __m256i, hi);
        }
    }

    /// The tile's sums with the multiply-add `madd(acc, w, x)` (`acc` plus the pair sums of
    /// `w · x`): for each pair, two loads of levels, [`MR`] broadcasts of weight pairs and
    /// `2·MR` multiply-adds. Inlined into each caller, which enables its instructions.
    #[inline(always)]
    fn tile_with(
        wp: &[i32],
        xp: &[i16],
        kp: usize,
        tile: &mut [[i32; NR]; MR],
        madd: impl Fn(__m256i, __m256i, __m256i) -> __m256i,
    ) {
        assert!(wp.len() >= kp * MR && xp.len() >= kp * 2 * NR);
        // SAFETY: AVX, which every caller's features include.
        let mut c = [[unsafe { _mm256_setzero_si256() }; 2]; MR];
        for (w, x) in wp.chunks_exact(MR).zip(xp.chunks_exact(2 * NR)).take(kp) {
            // SAFETY: `x` is 32 `i16`s: two registers' worth.
            let (x0, x1) = unsafe {
                (
                    _mm256_loadu_si256(x.as_ptr() as *const __m256i),
                    _mm256_loadu_si256(x.as_ptr().add(NR) as *const __m256i),
                )
            };
            for (ci, &wi) in c.iter_mut().zip(w) {
                // SAFETY: AVX (see above).
                let b = unsafe { _mm256_set1_epi32(wi) };
                ci[0] = madd(ci[0], b, x0);
                ci[1] = madd(ci[1], b, x1);
            }
        }
        for (t, ci) in tile.iter_mut().zip(&c) {
            // SAFETY: 16 `i32`s: two registers' worth.
            unsafe {
                _mm256_storeu_si256(t.as_mut_ptr() as *mut __m256i, ci[0]);
                _mm256_storeu_si256(t.as_mut_ptr().add(8) as *mut __m256i, ci[1]);
            }
        }
    }

    /// [`tile_with`] on AVX2: `vpmaddwd` then `vpaddd`.
    #[target_feature(enable = "avx2")]
    pub(super) fn tile(wp: &[i32], xp: &[i16], kp: usize, tile: &mut [[i32; NR]; MR]) {
        tile_with(wp, xp, kp, tile, |a, w, x| _mm256_add_epi32(a, _mm256_madd_epi16(w, x)))
    }

    /// [`tile_with`] on AVX-512 VNNI: one `vpdpwssd` (EVEX, 256-bit).
    #[target_feature(enable = "avx2,avx512vnni,avx512vl")]
    pub(super) fn tile_avx512vnni(wp: &[i32], xp: &[i16], kp: usize, tile: &mut [[i32; NR]; MR]) {
        tile_with(wp, xp, kp, tile, |a, w, x| _mm256_dpwssd_epi32(a, w, x))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn direct(w: &[i8], x: &[i8], m: usize, k: usize, n: usize) -> Vec<i32> {
        let mut y = vec![0i32; m * n];
        for r in 0..m {
            for c in 0..n {
                y[r * n + c] = (0..k).map(|j| i32::from(w[r * k + j]) * i32::from(x[j * n + c])).sum();
            }
        }
        y
    }

    /// The sums from every code this CPU can run (the portable one always), each into a
    /// buffer holding stale values first.
    fn every_code(w: &[i8], x: &[i8], m: usize, k: usize, n: usize) -> Vec<Vec<i32>> {
        let mut g = WidenedGemm::new(w, m, k).unwrap();
        let mut s = WidenedScratch::default();
        let codes = [WidenedSimd::Avx2, WidenedSimd::Avx512Vnni, WidenedSimd::Portable];
        codes
            .into_iter()
            .filter(|c| c.available())
            .map(|c| {
                g.set_simd(c);
                assert_eq!(g.simd(), c);
                let mut acc = vec![7; 3];
                g.run(x, n, &mut s, &mut acc).unwrap();
                acc
            })
            .collect()
    }

    #[test]
    fn the_detected_code_is_available_and_forcing_one_the_cpu_lacks_gives_portable() {
        let best = WidenedSimd::detect();
        assert!(best.available());
        let mut g = WidenedGemm::new(&[1; 6], 2, 3).unwrap();
        assert_eq!(g.simd(), best);
        for c in [WidenedSimd::Avx2, WidenedSimd::Avx512Vnni] {
            g.set_simd(c);
            assert_eq!(g.simd(), if c.available() { c } else { WidenedSimd::Portable }, "{}", c.name());
        }
    }

    proptest! {
        /// Any shape (ragged `m`, `n`, odd `k`), any levels: the exact sums, in every code.
        #[test]
        fn equals_the_direct_sums(m in 1usize..20, k in 1usize..70, n in 1usize..40, seed: u64) {
            let mut s = seed | 1;
            let mut next = || { s ^= s << 13; s ^= s >> 7; s ^= s << 17; (s >> 56) as u8 as i8 };
            let w: Vec<i8> = (0..m * k).map(|_| next()).collect();
            let x: Vec<i8> = (0..k * n).map(|_| next()).collect();
            let want = direct(&w, &x, m, k, n);
            for got in every_code(&w, &x, m, k, n) {
                prop_assert_eq!(&got, &want);
            }
        }
    }

    /// The extremes: every term `(−128)·(−128)` over the longest `k` a 3×3 layer of the
    /// shipped model has, and `−128 · 127`: no lane overflows in the pairwise adds.
    #[test]
    fn extreme_levels() {
        let (m, k, n) = (7, 1153, 17);
        for (wv, xv) in [(-128i8, -128i8), (-128, 127), (127, -128)] {
            let (w, x) = (vec![wv; m * k], vec![xv; k * n]);
            let want = i32::from(wv) * i32::from(xv) * k as i32;
            for got in every_code(&w, &x, m, k, n) {
                assert!(got.iter().all(|&v| v == want), "{wv}·{xv}");
            }
        }
    }

    #[test]
    fn sizes_are_checked() {
        assert!(WidenedGemm::new(&[0; 5], 2, 3).is_err());
        // No weights at all (m = 0), but a `k` whose sums could overflow: refused.
        assert!(WidenedGemm::new(&[], 0, MAX_K + 1).is_err());
        assert!(WidenedGemm::new(&[], 0, MAX_K).is_ok());
        let g = WidenedGemm::new(&[1; 6], 2, 3).unwrap();
        let mut acc = Vec::new();
        assert!(g.run(&[0; 5], 2, &mut WidenedScratch::default(), &mut acc).is_err());
        g.run(&[], 0, &mut WidenedScratch::default(), &mut acc).unwrap();
        assert!(acc.is_empty());
        // k = 0: every sum is empty, hence 0.
        let g = WidenedGemm::new(&[], 3, 0).unwrap();
        g.run(&[], 5, &mut WidenedScratch::default(), &mut acc).unwrap();
        assert_eq!(acc, vec![0; 15]);
    }
}

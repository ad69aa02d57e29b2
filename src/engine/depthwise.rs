//! The backbone's own depthwise 3×3 convolution: a tract op that replaces tract's
//! `Conv` where it is depthwise (`group = C_in = C_out`), 3×3, stride 1 or 2, padding 1 on
//! every side, no dilation, on a float32 NCHW input of known shape — the layer of
//! MobileNet-style backbones (17 of MobileNetV2's 52 convolutions), where tract's generic
//! depthwise path (zone scanners, a kernel call per output row segment) ran at ~1 GMAC/s,
//! a third of MobileNetV2's time for 7 % of its multiply-adds.
//!
//! **The kernel.** One channel's plane at a time: the plane is copied once into a scratch
//! plane with a zero border (for stride 2, with its even and odd columns apart), so that
//! every output row is nine contiguous multiply-adds over three scratch rows — the loop the
//! compiler vectorises over the row (AVX2 + FMA and AVX-512F, chosen at run time as
//! [`DwSimd`], on x86-64; NEON on aarch64, always there; plain SSE2 code otherwise).
//! Each output is `b + Σ_{ky,kx} w[ky][kx] · x[...]` in the fixed order ky-major, kx-minor,
//! the same in every code path and at every vector width (lanes are independent outputs):
//! the results do not depend on the CPU's vector width, only on whether the multiply-adds
//! are fused ([`DwSimd::Baseline`] rounds each product). Against the exact sum, each output
//! is off by at most `γ₁₀ · (|b| + Σ|w·x|)`, `γ₁₀ = 10u / (1 − 10u)`, `u = 2⁻²⁴` (ten
//! rounded operations; fewer with fused ones) — what the tests check on adversarial values.
//!
//! Threads: the op runs on the calling thread inside a backbone's frame-level workers (each
//! frame its own thread), and splits the planes over tract's pool when tract splits each
//! frame (`--backbone-threads within`); the output is the same either way.

use std::sync::OnceLock;
use tract_core::internal::*;
use tract_core::ops::cnn::{Conv, KernelFormat, PaddingSpec};
use tract_core::ops::nn::DataFormat;

/// Which code the kernel runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DwSimd {
    /// The target's baseline, separate multiplies and adds.
    Baseline,
    /// Fused multiply-adds: AVX2 + FMA on x86-64, NEON on aarch64.
    Fma,
    /// AVX-512F (16 lanes, fused multiply-adds) on x86-64.
    Avx512,
}

impl DwSimd {
    /// The best the running CPU offers (`TRACT_CPU_ISA`'s removals honoured, as for the
    /// rest of the engine).
    pub fn detect() -> DwSimd {
        static CHOSEN: OnceLock<DwSimd> = OnceLock::new();
        *CHOSEN.get_or_init(|| {
            #[cfg(target_arch = "x86_64")]
            {
                let f = super::cpu::CpuFeatures::detect();
                if f.avx512f {
                    return DwSimd::Avx512;
                }
                if f.avx2 && f.fma {
                    return DwSimd::Fma;
                }
                DwSimd::Baseline
            }
            #[cfg(target_arch = "aarch64")]
            {
                DwSimd::Fma
            }
            #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
            {
                DwSimd::Baseline
            }
        })
    }

    /// Whether this code fuses its multiply-adds (the results' bits depend on it).
    pub fn fused(self) -> bool {
        self != DwSimd::Baseline
    }
}

/// A depthwise 3×3 convolution, padding 1, stride 1 or 2, on `[N, C, H, W]` float32 (or
/// `[C, H, W]`, as tract's declutter leaves a batch of one). Inputs: the data, the kernel
/// `[C, 1, 3, 3]`, the bias `[C]` (or one value).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Depthwise3x3 {
    /// Batch, channels, input height and width.
    pub shape: [usize; 4],
    /// Whether the tensors carry the batch axis (`[N, C, H, W]`; else `[C, H, W]`, N = 1).
    pub batched: bool,
    /// 1 or 2.
    pub stride: usize,
    /// The code the kernel runs.
    pub simd: DwSimd,
}

impl Depthwise3x3 {
    /// Output height and width.
    pub fn out_hw(&self) -> (usize, usize) {
        let [_, _, h, w] = self.shape;
        ((h - 1) / self.stride + 1, (w - 1) / self.stride + 1)
    }

    /// The output's shape, in the input's layout.
    pub fn out_shape(&self) -> TVec<usize> {
        let [n, c, _, _] = self.shape;
        let (ho, wo) = self.out_hw();
        if self.batched {
            tvec![n, c, ho, wo]
        } else {
            tvec![c, ho, wo]
        }
    }

    /// Runs on `x` (`N·C·H·W`), kernel `k` (`C·9`), bias `b` (`C` or 1 values) into `out`,
    /// plane by plane on the calling thread.
    pub fn compute(&self, x: &[f32], k: &[f32], b: &[f32], out: &mut [f32]) {
        let [n, c, h, w] = self.shape;
        let (ho, wo) = self.out_hw();
        assert!(x.len() == n * c * h * w && k.len() == c * 9 && out.len() == n * c * ho * wo);
        assert!(b.len() == c || b.len() == 1);
        self.planes(0, x, k, b, out);
    }

    /// Planes `first..` (`x` and `out` hold whole planes from plane `first` on).
    fn planes(&self, first: usize, x: &[f32], k: &[f32], b: &[f32], out: &mut [f32]) {
        let [_, c, h, w] = self.shape;
        let (ho, wo) = self.out_hw();
        let mut scratch = Vec::new();
        for (p, (xp, op)) in x.chunks_exact(h * w).zip(out.chunks_exact_mut(ho * wo)).enumerate() {
            let ch = (first + p) % c;
            let taps: &[f32; 9] = k[ch * 9..ch * 9 + 9].try_into().expect("9 taps");
            let bias = if b.len() == 1 { b[0] } else { b[ch] };
            plane(self.simd, self.stride, xp, h, w, taps, bias, op, &mut scratch);
        }
    }

    /// [`Self::compute`], the planes split over `pool`'s threads (each plane's arithmetic is
    /// the same, so the output is too).
    fn compute_on(&self, pool: &rayon::ThreadPool, x: &[f32], k: &[f32], b: &[f32], out: &mut [f32]) {
        let [n, c, h, w] = self.shape;
        let (ho, wo) = self.out_hw();
        assert!(x.len() == n * c * h * w && k.len() == c * 9 && out.len() == n * c * ho * wo);
        assert!(b.len() == c || b.len() == 1);
        let planes = n * c;
        let per = planes.div_ceil(pool.current_num_threads().max(1));
        pool.scope(|s| {
            for (i, (xs, os)) in x.chunks(per * h * w).zip(out.chunks_mut(per * ho * wo)).enumerate() {
                s.spawn(move |_| self.planes(i * per, xs, k, b, os));
            }
        });
    }
}

/// One plane through the code `simd` runs.
#[allow(clippy::too_many_arguments)]
fn plane(
    simd: DwSimd,
    stride: usize,
    x: &[f32],
    h: usize,
    w: usize,
    k: &[f32; 9],
    b: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    match simd {
        #[cfg(target_arch = "x86_64")]
        DwSimd::Avx512 => plane_avx512(stride, x, h, w, k, b, out, scratch),
        #[cfg(target_arch = "x86_64")]
        DwSimd::Fma => plane_avx2(stride, x, h, w, k, b, out, scratch),
        #[cfg(target_arch = "aarch64")]
        DwSimd::Fma | DwSimd::Avx512 => plane_generic::<true>(stride, x, h, w, k, b, out, scratch),
        _ => plane_generic::<false>(stride, x, h, w, k, b, out, scratch),
    }
}

/// [`plane_generic`] compiled for AVX-512F.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::too_many_arguments)]
fn plane_avx512(stride: usize, x: &[f32], h: usize, w: usize, k: &[f32; 9], b: f32, out: &mut [f32], s: &mut Vec<f32>) {
    #[target_feature(enable = "avx512f,avx2,fma")]
    fn inner(stride: usize, x: &[f32], h: usize, w: usize, k: &[f32; 9], b: f32, out: &mut [f32], s: &mut Vec<f32>) {
        plane_generic::<true>(stride, x, h, w, k, b, out, s)
    }
    // SAFETY: `inner` is safe code compiled with AVX-512F; it is reached only through
    // `DwSimd::Avx512`, which `DwSimd::detect` chooses after checking the CPU at run time.
    unsafe { inner(stride, x, h, w, k, b, out, s) }
}

/// [`plane_generic`] compiled for AVX2 + FMA.
#[cfg(target_arch = "x86_64")]
#[allow(unsafe_code, clippy::too_many_arguments)]
fn plane_avx2(stride: usize, x: &[f32], h: usize, w: usize, k: &[f32; 9], b: f32, out: &mut [f32], s: &mut Vec<f32>) {
    #[target_feature(enable = "avx2,fma")]
    fn inner(stride: usize, x: &[f32], h: usize, w: usize, k: &[f32; 9], b: f32, out: &mut [f32], s: &mut Vec<f32>) {
        plane_generic::<true>(stride, x, h, w, k, b, out, s)
    }
    // SAFETY: `inner` is safe code compiled with AVX2 and FMA; it is reached only through
    // `DwSimd::Fma`, which `DwSimd::detect` chooses after checking the CPU at run time.
    unsafe { inner(stride, x, h, w, k, b, out, s) }
}

/// `a + w·v`, fused or not.
#[inline(always)]
fn madd<const FMA: bool>(a: f32, w: f32, v: f32) -> f32 {
    if FMA {
        v.mul_add(w, a)
    } else {
        a + w * v
    }
}

/// One output row: `out[x] = b + Σ_ky (k0·r[x] + k1·s[x] + k2·r[x+1])` in tap order, where
/// per row `ky` the three taps read `(r, s, r+1)` (stride 2: even, odd, next even columns)
/// or `(r, r+1, r+2)` (stride 1, `s = r+1`).
#[inline(always)]
fn row<const FMA: bool>(rows: [(&[f32], &[f32], &[f32]); 3], k: &[f32; 9], b: f32, out: &mut [f32]) {
    let n = out.len();
    let [(a0, a1, a2), (b0, b1, b2), (c0, c1, c2)] = rows;
    let (a0, a1, a2) = (&a0[..n], &a1[..n], &a2[..n]);
    let (b0, b1, b2) = (&b0[..n], &b1[..n], &b2[..n]);
    let (c0, c1, c2) = (&c0[..n], &c1[..n], &c2[..n]);
    for i in 0..n {
        let mut s = b;
        s = madd::<FMA>(s, k[0], a0[i]);
        s = madd::<FMA>(s, k[1], a1[i]);
        s = madd::<FMA>(s, k[2], a2[i]);
        s = madd::<FMA>(s, k[3], b0[i]);
        s = madd::<FMA>(s, k[4], b1[i]);
        s = madd::<FMA>(s, k[5], b2[i]);
        s = madd::<FMA>(s, k[6], c0[i]);
        s = madd::<FMA>(s, k[7], c1[i]);
        s = madd::<FMA>(s, k[8], c2[i]);
        out[i] = s;
    }
}

/// One plane (see the module docs): scratch rows with a zero border, then the rows.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn plane_generic<const FMA: bool>(
    stride: usize,
    x: &[f32],
    h: usize,
    w: usize,
    k: &[f32; 9],
    b: f32,
    out: &mut [f32],
    scratch: &mut Vec<f32>,
) {
    let wo = (w - 1) / stride + 1;
    if stride == 1 {
        // Padded rows of w + 2: column j holds x[j − 1].
        let wp = w + 2;
        // Every element written below (no zero fill of the whole plane first).
        scratch.resize((h + 2) * wp, 0.0);
        scratch[..wp].fill(0.0);
        scratch[(h + 1) * wp..].fill(0.0);
        for (y, xr) in x.chunks_exact(w).enumerate() {
            let r = &mut scratch[(y + 1) * wp..(y + 2) * wp];
            r[0] = 0.0;
            r[1..=w].copy_from_slice(xr);
            r[w + 1] = 0.0;
        }
        for (oy, o) in out.chunks_exact_mut(wo).enumerate() {
            let r = |ky: usize| {
                let s = &scratch[(oy + ky) * wp..(oy + ky + 1) * wp];
                (&s[0..], &s[1..], &s[2..])
            };
            row::<FMA>([r(0), r(1), r(2)], k, b, o);
        }
    } else {
        // Padded row p[j] = x[j − 1], kept as even columns e[i] = p[2i] (i ≤ wo) and odd
        // ones d[i] = p[2i + 1] (i < wo): output i reads e[i], d[i], e[i + 1].
        let (we, wd) = (wo + 1, wo);
        let rowlen = we + wd;
        // Every element written below (no zero fill of the whole plane first).
        scratch.resize((h + 2) * rowlen, 0.0);
        scratch[..rowlen].fill(0.0);
        scratch[(h + 1) * rowlen..].fill(0.0);
        for (y, xr) in x.chunks_exact(w).enumerate() {
            let r = &mut scratch[(y + 1) * rowlen..(y + 2) * rowlen];
            let (e, d) = r.split_at_mut(we);
            // e[i] = x[2i − 1] for i ≥ 1 (e[0] is the left border); d[i] = x[2i]; zero
            // past the row's end.
            e[0] = 0.0;
            for (i, v) in e.iter_mut().enumerate().skip(1) {
                *v = xr.get(2 * i - 1).copied().unwrap_or(0.0);
            }
            for (i, v) in d.iter_mut().enumerate() {
                *v = xr.get(2 * i).copied().unwrap_or(0.0);
            }
        }
        for (oy, o) in out.chunks_exact_mut(wo).enumerate() {
            let r = |ky: usize| {
                let s = &scratch[(2 * oy + ky) * rowlen..(2 * oy + ky + 1) * rowlen];
                let (e, d) = s.split_at(we);
                (&e[0..], d, &e[1..])
            };
            row::<FMA>([r(0), r(1), r(2)], k, b, o);
        }
    }
}

impl Op for Depthwise3x3 {
    fn name(&self) -> StaticName {
        "BmnEdgeDepthwise3x3".into()
    }

    fn info(&self) -> TractResult<Vec<String>> {
        Ok(vec![format!("{:?} stride {} ({:?})", self.shape, self.stride, self.simd)])
    }

    fn validation(&self) -> Validation {
        Validation::Rounding
    }

    fn as_typed(&self) -> Option<&dyn TypedOp> {
        Some(self)
    }
}

impl EvalOp for Depthwise3x3 {
    fn eval_out_of_plan(&self, inputs: TVec<TValue>) -> TractResult<Option<TVec<TValue>>> {
        Ok(Some(EvalOp::eval(self, &EvalContext::out_of_plan(), inputs)?))
    }

    fn eval(&self, _ctx: &EvalContext, inputs: TVec<TValue>) -> TractResult<TVec<TValue>> {
        ensure!(inputs.len() == 3, "BmnEdgeDepthwise3x3 takes data, kernel and bias");
        let (xr, kr, br) =
            (inputs[0].try_as_plain_ram()?, inputs[1].try_as_plain_ram()?, inputs[2].try_as_plain_ram()?);
        let (x, k, b) = (xr.as_slice::<f32>()?, kr.as_slice::<f32>()?, br.as_slice::<f32>()?);
        let [n, c, _, _] = self.shape;
        let (ho, wo) = self.out_hw();
        ensure!(
            k.len() == c * 9 && (b.len() == c || b.len() == 1),
            "BmnEdgeDepthwise3x3: kernel or bias of the wrong size"
        );
        let mut out = vec![0.0f32; n * c * ho * wo];
        // tract's executor for this thread: a pool when the backbone splits each frame
        // (`--backbone-threads within`), single-threaded inside frame-level workers.
        match tract_linalg::multithread::current_tract_executor() {
            tract_linalg::multithread::Executor::MultiThread(pool) if n * c > 1 => {
                self.compute_on(&pool, x, k, b, &mut out)
            }
            _ => self.compute(x, k, b, &mut out),
        }
        Ok(tvec!(Tensor::from_shape(&self.out_shape(), &out)?.into_tvalue()))
    }
}

impl TypedOp for Depthwise3x3 {
    fn as_op(&self) -> &dyn Op {
        self
    }

    fn as_op_mut(&mut self) -> &mut dyn Op {
        self
    }

    fn output_facts(&self, inputs: &[&TypedFact]) -> TractResult<TVec<TypedFact>> {
        ensure!(inputs.len() == 3);
        Ok(tvec!(f32::fact(self.out_shape())))
    }
}

/// Replaces every eligible `Conv` of `model` (decluttered, input shapes known) with
/// [`Depthwise3x3`]; returns how many. Anything else stays tract's.
pub(crate) fn replace_depthwise(model: &mut TypedModel) -> TractResult<usize> {
    let simd = DwSimd::detect();
    let mut replaced = 0;
    for id in model.eval_order()? {
        let node = model.node(id);
        let Some(conv) = node.op_as::<Conv>() else { continue };
        let Some(op) = eligible(model, node, conv, simd)? else { continue };
        let inputs = node.inputs.clone();
        let patch = TypedModelPatch::replace_single_op(model, node, &inputs, op)?;
        patch.apply(model)?;
        replaced += 1;
    }
    Ok(replaced)
}

/// The op for `conv` when it is one this module runs.
fn eligible(model: &TypedModel, node: &TypedNode, conv: &Conv, simd: DwSimd) -> TractResult<Option<Depthwise3x3>> {
    let spec = &conv.pool_spec;
    if conv.q_params.is_some() || conv.kernel_fmt != KernelFormat::OIHW || node.inputs.len() != 3 {
        return Ok(None);
    }
    let batched = match spec.data_format {
        DataFormat::NCHW => true,
        DataFormat::CHW => false,
        _ => return Ok(None),
    };
    if spec.kernel_shape.as_slice() != [3, 3] {
        return Ok(None);
    }
    if spec.dilations.as_ref().is_some_and(|d| d.iter().any(|&d| d != 1)) {
        return Ok(None);
    }
    let stride = match spec.strides.as_deref() {
        None => 1,
        Some([a, b]) if a == b && (*a == 1 || *a == 2) => *a,
        _ => return Ok(None),
    };
    let padded_by_one = match &spec.padding {
        PaddingSpec::Explicit(b, a) | PaddingSpec::ExplicitOnnxPool(b, a, false) => {
            b.iter().all(|&p| p == 1) && a.iter().all(|&p| p == 1) && b.len() == 2 && a.len() == 2
        }
        _ => false,
    };
    if !padded_by_one {
        return Ok(None);
    }
    let x = model.outlet_fact(node.inputs[0])?;
    let Some(shape) = x.shape.as_concrete() else { return Ok(None) };
    let (n, c, h, w) = match (batched, shape) {
        (true, [n, c, h, w]) => (*n, *c, *h, *w),
        (false, [c, h, w]) => (1, *c, *h, *w),
        _ => return Ok(None),
    };
    if x.datum_type != f32::datum_type() || conv.group != c || spec.input_channels != c || spec.output_channels != c {
        return Ok(None);
    }
    if n == 0 || c == 0 || h == 0 || w == 0 {
        return Ok(None);
    }
    let (k, b) = (model.outlet_fact(node.inputs[1])?, model.outlet_fact(node.inputs[2])?);
    if k.datum_type != f32::datum_type() || b.datum_type != f32::datum_type() {
        return Ok(None);
    }
    let kv = k.shape.as_concrete().map(|s| s.iter().product::<usize>());
    let bv = b.shape.as_concrete().map(|s| s.iter().product::<usize>());
    if kv != Some(c * 9) || !(bv == Some(c) || bv == Some(1)) {
        return Ok(None);
    }
    Ok(Some(Depthwise3x3 { shape: [n, c, h, w], batched, stride, simd }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// The direct convolution in f64 and the bound of the module docs for each output.
    fn direct(x: &[f32], h: usize, w: usize, k: &[f32], b: f32, stride: usize) -> (Vec<f64>, Vec<f64>) {
        let (ho, wo) = ((h - 1) / stride + 1, (w - 1) / stride + 1);
        let (mut exact, mut mag) = (vec![0.0; ho * wo], vec![0.0; ho * wo]);
        for oy in 0..ho {
            for ox in 0..wo {
                let (mut s, mut m) = (f64::from(b), f64::from(b).abs());
                for ky in 0..3 {
                    for kx in 0..3 {
                        let (iy, ix) = ((oy * stride + ky) as isize - 1, (ox * stride + kx) as isize - 1);
                        if iy < 0 || ix < 0 || iy >= h as isize || ix >= w as isize {
                            continue;
                        }
                        let t = f64::from(k[ky * 3 + kx]) * f64::from(x[iy as usize * w + ix as usize]);
                        s += t;
                        m += t.abs();
                    }
                }
                exact[oy * wo + ox] = s;
                mag[oy * wo + ox] = m;
            }
        }
        (exact, mag)
    }

    fn simds() -> Vec<DwSimd> {
        let mut v = vec![DwSimd::Baseline];
        match DwSimd::detect() {
            DwSimd::Avx512 => v.extend([DwSimd::Fma, DwSimd::Avx512]),
            DwSimd::Fma => v.push(DwSimd::Fma),
            DwSimd::Baseline => {}
        }
        v
    }

    proptest! {
        #[test]
        fn equals_the_direct_convolution_within_the_bound(
            h in 1usize..20, w in 1usize..40, c in 1usize..4, stride in 1usize..=2, seed in any::<u64>(),
        ) {
            // Values over many magnitudes and both signs, so that cancellation happens.
            let mut s = seed | 1;
            let mut next = || {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                let m = (s >> 11) as f64 / (1u64 << 53) as f64;
                let e = ((s >> 3) % 12) as i32 - 6;
                ((m * 2.0 - 1.0) * 2f64.powi(e)) as f32
            };
            let x: Vec<f32> = (0..c * h * w).map(|_| next()).collect();
            let k: Vec<f32> = (0..c * 9).map(|_| next()).collect();
            let b: Vec<f32> = (0..c).map(|_| next()).collect();
            let gamma = 10.0 * 2f64.powi(-24) / (1.0 - 10.0 * 2f64.powi(-24));
            let mut outs = Vec::new();
            for simd in simds() {
                let op = Depthwise3x3 { shape: [1, c, h, w], batched: true, stride, simd };
                let (ho, wo) = op.out_hw();
                let mut out = vec![0.0; c * ho * wo];
                op.compute(&x, &k, &b, &mut out);
                for ch in 0..c {
                    let (exact, mag) = direct(&x[ch * h * w..(ch + 1) * h * w], h, w, &k[ch * 9..ch * 9 + 9], b[ch], stride);
                    for (i, (&e, &m)) in exact.iter().zip(&mag).enumerate() {
                        let got = f64::from(out[ch * ho * wo + i]);
                        // The final rounding to f32 is one more half ulp of the result.
                        let bound = gamma * m + f64::from(f32::EPSILON) * e.abs();
                        prop_assert!((got - e).abs() <= bound, "{simd:?} stride {stride} {h}x{w} ch {ch} at {i}: {got} vs {e} (bound {bound})");
                    }
                }
                outs.push((simd, out));
            }
            // Every fused code gives the same bits (lanes are independent outputs).
            for (simd, o) in &outs {
                if simd.fused() {
                    let first = outs.iter().find(|(s, _)| s.fused()).unwrap();
                    prop_assert_eq!(o, &first.1);
                }
            }
        }
    }

    #[test]
    fn a_single_pixel_and_the_border() {
        // 1x1 input: only the centre tap meets it, in both strides.
        for stride in [1, 2] {
            let op = Depthwise3x3 { shape: [1, 1, 1, 1], batched: true, stride, simd: DwSimd::Baseline };
            let mut out = [0.0];
            op.compute(&[2.0], &[1., 1., 1., 1., 10., 1., 1., 1., 1.], &[0.5], &mut out);
            assert_eq!(out, [20.5]);
        }
        // 2x3 of ones, all taps 1, stride 2: outputs (0,0) and (0,2) see 4 values each
        // (corner), output (0,1) is column 2 — not there in 2x3 at stride 2: wo = 2.
        let op = Depthwise3x3 { shape: [1, 1, 2, 3], batched: false, stride: 2, simd: DwSimd::Baseline };
        assert_eq!(op.out_hw(), (1, 2));
        let mut out = [0.0; 2];
        op.compute(&[1.0; 6], &[1.0; 9], &[0.0], &mut out);
        assert_eq!(out, [4.0, 4.0]);
    }
}

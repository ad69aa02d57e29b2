//! The BM layer's projection `Z = yᵀ · Wz`: the Conv3d's weights applied before sampling.

use crate::engine::bm::{ZBuf, CHUNK};
use crate::engine::cpu::Int8Arithmetic;
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::onnx::split::Projection;
use crate::engine::product::{projection_model, GemmScratch, Int8Gemm};
use crate::engine::workers::{Scratch, Workers};
use std::sync::Arc;
use tract_core::model::TypedRunnableModel;
use tract_onnx::prelude::*;

/// The BM layer's projection `Z = yᵀ · Wz`, one product per block of [`CHUNK`] output
/// channels, the blocks run by the worker threads (tract's own threading gains little on
/// these products). Z comes out in the kernel's layout `[O/32][T][N][32]`.
pub(crate) struct Projector {
    blocks: Blocks,
    t: usize,
    p: usize,
    /// Samples per bin row `N` (a block's columns are `N·32`).
    cols: usize,
}

/// The products, per block.
enum Blocks {
    /// Float weights: `yᵀ · W` (`[T][P] · [P][N·32]`) in tract.
    Float(Vec<Arc<TypedRunnableModel>>),
    /// int8 symmetric weights, transposed: `Wᵀ · y_q` (`[N·32][P] · [P][T]`: tract's
    /// integer kernels run this shape ~3x faster than `yᵀ · W`), in integers or exact
    /// float ([`Int8Gemm`]); `Z[.., o] = acc · col_scale[o]` with `y_q = round(y / x_scale)`.
    Int8 { gemms: Vec<Int8Gemm>, x_scale: f32, col_scale: Vec<f32> },
    /// int8 symmetric weights in exact float: `y_qᵀ · W` on integer-valued `f32` in the
    /// float form's orientation (`[T][P] · [P][N·32]`: one converted input shared by every
    /// block, the shape tract's float kernels run for the fp32 model), scaled as the
    /// integer form; the sums are exact when the weights pass the certificate (checked in
    /// `new`, else the blocks run in integers).
    Int8Float { models: Vec<Arc<TypedRunnableModel>>, x_scale: f32, col_scale: Vec<f32> },
}

/// The products' input: `yᵀ` as it is, or `y` `[P][T]` as int8 levels.
pub(crate) enum ProjInput {
    Float(Arc<Tensor>),
    Levels(Vec<i8>),
}

/// One block's product: float `[T][N·32]`, or int8 sums `[N·32][T]`.
pub(crate) enum BlockOut {
    Float(Tensor),
    Int(Vec<i32>),
}

impl Projector {
    /// `arithmetic`: how an int8 projection's products run (a block whose weights fail the
    /// float exactness certificate runs in integers whatever is asked).
    pub(crate) fn new(
        projection: Projection,
        t: usize,
        p: usize,
        n: usize,
        arithmetic: Int8Arithmetic,
    ) -> Result<Projector, EngineError> {
        let blocks = match projection {
            Projection::Float { blocks } => {
                let mut models = Vec::with_capacity(blocks.len());
                for b in blocks {
                    let cols = b.len() / p;
                    let raw: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
                    drop(b);
                    models.push(projection_model(raw, t, p, cols)?);
                }
                Blocks::Float(models)
            }
            Projection::Int8 { blocks, x_scale, col_scale } => {
                // One scale per real output channel: the last block may be partial, its
                // padding channels (zero weights) scaled by 0.
                if col_scale.len() > blocks.len() * CHUNK || col_scale.len() + CHUNK <= blocks.len() * CHUNK {
                    return Err(EngineError::new(
                        EngineErrorKind::NotBmn,
                        format!(
                            "the BM layer has {} weight scales for {} blocks of {CHUNK} channels",
                            col_scale.len(),
                            blocks.len()
                        ),
                    ));
                }
                let exact = arithmetic == Int8Arithmetic::ExactFloat
                    && blocks.iter().all(|b| {
                        let cols = b.len() / p;
                        (0..cols).all(|c| {
                            128 * b.iter().skip(c).step_by(cols).map(|&v| i64::from(v).abs()).sum::<i64>() <= 1 << 24
                        })
                    });
                if exact {
                    let mut models = Vec::with_capacity(blocks.len());
                    for b in blocks {
                        let cols = b.len() / p;
                        let raw: Vec<u8> = b.iter().flat_map(|&v| f32::from(v).to_le_bytes()).collect();
                        drop(b);
                        models.push(projection_model(raw, t, p, cols)?);
                    }
                    return Ok(Projector { blocks: Blocks::Int8Float { models, x_scale, col_scale }, t, p, cols: n });
                }
                let mut gemms = Vec::with_capacity(blocks.len());
                for b in blocks {
                    let cols = b.len() / p;
                    let mut wt = vec![0i8; b.len()];
                    for (k, row) in b.chunks_exact(cols).enumerate() {
                        for (c, &v) in row.iter().enumerate() {
                            wt[c * p + k] = v;
                        }
                    }
                    drop(b);
                    gemms.push(Int8Gemm::new(&wt, (cols, p), Some(t), arithmetic, t, "BM projection")?);
                }
                Blocks::Int8 { gemms, x_scale, col_scale }
            }
        };
        Ok(Projector { blocks, t, p, cols: n })
    }

    /// Values per block of Z (`T · N · 32`).
    pub(crate) fn block_len(&self) -> usize {
        self.t * CHUNK * self.cols
    }

    /// Blocks of 32 output channels.
    pub(crate) fn blocks(&self) -> usize {
        match &self.blocks {
            Blocks::Float(m) | Blocks::Int8Float { models: m, .. } => m.len(),
            Blocks::Int8 { gemms, .. } => gemms.len(),
        }
    }

    /// How an int8 projection's products run (`None` for float weights); mixed blocks (some
    /// fell back to tract's integer kernels) report integer.
    pub(crate) fn arithmetic(&self) -> Option<Int8Arithmetic> {
        match &self.blocks {
            Blocks::Float(_) => None,
            Blocks::Int8Float { .. } => Some(Int8Arithmetic::ExactFloat),
            Blocks::Int8 { gemms, .. } => {
                let first = gemms.first().map_or(Int8Arithmetic::Integer, |g| g.arithmetic());
                Some(if gemms.iter().all(|g| g.arithmetic() == first) { first } else { Int8Arithmetic::Integer })
            }
        }
    }

    /// The products' input from `yt` (`yᵀ` `[T][P]`): as it is (float), or quantized and
    /// transposed (int8).
    pub(crate) fn input(&self, yt: &[f32]) -> Result<ProjInput, EngineError> {
        let (t, p) = (self.t, self.p);
        if yt.len() != t * p {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!("stage A output y has {} values, expected T·P = {}", yt.len(), t * p),
            ));
        }
        Ok(match &self.blocks {
            Blocks::Float(_) => ProjInput::Float(
                Tensor::from_shape(&[t, p], yt).map_err(|e| EngineError::tract("BM projection", e))?.into_arc_tensor(),
            ),
            Blocks::Int8 { x_scale, .. } => {
                // onnxruntime's QuantizeLinear: round half to even, saturate to int8; as
                // `y` `[P][T]` for the transposed product.
                let mut q = vec![0i8; t * p];
                for (tt, row) in yt.chunks_exact(p).enumerate() {
                    for (k, v) in row.iter().enumerate() {
                        q[k * t + tt] = (v / x_scale).round_ties_even().clamp(-128.0, 127.0) as i8;
                    }
                }
                ProjInput::Levels(q)
            }
            Blocks::Int8Float { x_scale, .. } => {
                // The same levels, as integer-valued floats in `yᵀ`'s layout `[T][P]`.
                let q: Vec<f32> = yt.iter().map(|v| (v / x_scale).round_ties_even().clamp(-128.0, 127.0)).collect();
                ProjInput::Float(
                    Tensor::from_shape(&[t, p], &q)
                        .map_err(|e| EngineError::tract("BM projection", e))?
                        .into_arc_tensor(),
                )
            }
        })
    }

    /// Block `c`'s product (`scratch`: the int8 products' buffers).
    pub(crate) fn product(
        &self,
        c: usize,
        input: &ProjInput,
        scratch: &mut GemmScratch,
    ) -> Result<BlockOut, EngineError> {
        match (&self.blocks, input) {
            (Blocks::Float(models) | Blocks::Int8Float { models, .. }, ProjInput::Float(x)) => {
                let out = models[c]
                    .run(tvec!(TValue::from_const(x.clone())))
                    .map_err(|e| EngineError::tract("BM projection", e))?;
                out.into_iter()
                    .next()
                    .map(|v| BlockOut::Float(v.into_tensor()))
                    .ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "BM projection: no output"))
            }
            (Blocks::Int8 { gemms, .. }, ProjInput::Levels(q)) => {
                let mut acc = Vec::new();
                gemms[c].run(q, self.t, scratch, &mut acc)?;
                Ok(BlockOut::Int(acc))
            }
            _ => Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: input of the other form")),
        }
    }

    /// Writes block `c`'s product `y` into `dst` (`[T][N][32]`).
    pub(crate) fn place(&self, c: usize, y: &BlockOut, dst: &mut [f32]) -> Result<(), EngineError> {
        let (t, cols) = (self.t, self.block_len() / self.t);
        match (&self.blocks, y) {
            (Blocks::Float(_), BlockOut::Float(y)) => {
                let yf = block_f32(y, dst.len())?;
                dst.copy_from_slice(yf);
            }
            (Blocks::Int8 { col_scale, .. }, BlockOut::Int(yi)) => {
                // `yi` is `[cols][T]`, column (n, j) is channel c·32 + j; Z wants `[T][cols]`:
                // transposed in tiles of 8 times, scaled to float.
                if yi.len() != dst.len() {
                    return Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: block size"));
                }
                let s = block_scales(col_scale, c);
                for t0 in (0..t).step_by(8) {
                    let t1 = (t0 + 8).min(t);
                    for (col, src) in yi.chunks_exact(t).enumerate() {
                        let sc = s[col % CHUNK];
                        for (tt, &v) in src[t0..t1].iter().enumerate() {
                            dst[(t0 + tt) * cols + col] = v as f32 * sc;
                        }
                    }
                }
            }
            (Blocks::Int8Float { col_scale, .. }, BlockOut::Float(y)) => {
                // `y` is `[T][cols]` of exact integer sums; column (n, j) is channel c·32 + j.
                let yf = block_f32(y, dst.len())?;
                let s = block_scales(col_scale, c);
                for (row, src) in dst.chunks_exact_mut(cols).zip(yf.chunks_exact(cols)) {
                    for ((d, &v), &sc) in row.iter_mut().zip(src).zip(s.iter().cycle()) {
                        *d = v * sc;
                    }
                }
            }
            _ => return Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: output of the other form")),
        }
        Ok(())
    }

    /// `yt` is `yᵀ` `[T][P]`; returns Z, every block.
    pub(crate) fn run(&self, yt: &[f32], workers: &Workers) -> Result<ZBuf, EngineError> {
        let input = self.input(yt)?;
        let per = self.block_len();
        let mut zbuf = ZBuf::zeros(self.blocks() * per);
        let z = zbuf.as_mut_slice();
        let job = |c: usize, s: &mut Scratch| self.product(c, &input, &mut s.gemm);
        let place = |c: usize, y: BlockOut| self.place(c, &y, &mut z[c * per..(c + 1) * per]);
        workers.run(self.blocks(), job, place)?;
        Ok(zbuf)
    }
}

/// A float block product as a slice of `len` values.
fn block_f32(y: &Tensor, len: usize) -> Result<&[f32], EngineError> {
    let yf =
        y.try_as_plain_ram().and_then(|y| y.as_slice::<f32>()).map_err(|e| EngineError::tract("BM projection", e))?;
    if yf.len() != len {
        return Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: block size"));
    }
    Ok(yf)
}

/// The weight scales of block `c`'s 32 channels; padding channels past O (checked in
/// `Projector::new`) have zero weights and scale 0.
fn block_scales(col_scale: &[f32], c: usize) -> [f32; CHUNK] {
    let mut s = [0.0f32; CHUNK];
    for (j, v) in s.iter_mut().enumerate() {
        *v = col_scale.get(c * CHUNK + j).copied().unwrap_or(0.0);
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both projector forms against a direct `Z[t][n][o] = Σ_k y[t][k] · W[k][(n, o)]`, in
    /// the kernel's `[O/32][T][N][32]` layout (int8: `y` quantized, products in integers).
    #[test]
    fn projection_equals_direct_product() {
        let (t, p, n, o) = (7usize, 5usize, 3usize, 40usize);
        let blocks = o.div_ceil(CHUNK);
        let cols = n * CHUNK;
        let yt: Vec<f32> = (0..t * p).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.13).collect();
        let wq: Vec<Vec<i8>> =
            (0..blocks).map(|b| (0..p * cols).map(|i| ((i * 31 + b * 7) % 255) as i8).collect()).collect();
        let (x_scale, col_scale): (f32, Vec<f32>) = (0.05, (0..o).map(|c| 0.01 + c as f32 * 1e-3).collect());
        let workers = Workers::new(2).unwrap();
        let direct = |w: &dyn Fn(usize, usize, usize) -> f32, y: &dyn Fn(usize, usize) -> f32| -> Vec<f32> {
            let mut z = vec![0.0f32; blocks * t * cols];
            for b in 0..blocks {
                for tt in 0..t {
                    for col in 0..cols {
                        let s: f32 = (0..p).map(|k| y(tt, k) * w(b, k, col)).sum();
                        z[(b * t + tt) * cols + col] = s;
                    }
                }
            }
            z
        };
        // int8, in both arithmetics: the same Z bit for bit
        let int8 = |arithmetic| {
            let proj = Projector::new(
                Projection::Int8 { blocks: wq.clone(), x_scale, col_scale: col_scale.clone() },
                t,
                p,
                n,
                arithmetic,
            )
            .unwrap();
            assert_eq!(proj.arithmetic(), Some(arithmetic));
            proj.run(&yt, &workers).unwrap().as_slice().to_vec()
        };
        let z = int8(Int8Arithmetic::Integer);
        assert_eq!(z, int8(Int8Arithmetic::ExactFloat));
        let yq = |tt: usize, k: usize| (yt[tt * p + k] / x_scale).round_ties_even().clamp(-128.0, 127.0);
        let want = direct(
            &|b, k, col| {
                let c = b * CHUNK + col % CHUNK;
                wq[b][k * cols + col] as f32 * col_scale.get(c).copied().unwrap_or(0.0)
            },
            &yq,
        );
        let err = z.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "int8 projection: relative error {err}");
        // float
        let wf: Vec<Vec<f32>> = wq.iter().map(|b| b.iter().map(|&v| v as f32 * 0.01).collect()).collect();
        let proj = Projector::new(Projection::Float { blocks: wf.clone() }, t, p, n, Int8Arithmetic::Integer).unwrap();
        let z = proj.run(&yt, &workers).unwrap();
        let z = z.as_slice();
        let want = direct(&|b, k, col| wf[b][k * cols + col], &|tt, k| yt[tt * p + k]);
        let err = z.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "float projection: relative error {err}");
    }
}

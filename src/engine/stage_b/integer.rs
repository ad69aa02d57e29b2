//! Stage B in integers, for int8 models in the fast form (every convolution a `QLinearConv`
//! with symmetric int8 activations and weights, zero points 0).
//!
//! The same sparse plan as the float [`tail`](super::winograd) — the first 1×1 layer over the
//! valid cells only, in chunks of cells; each later layer only where a needed cell of the
//! final map depends on it; the rest of the map from a constant field computed at load —
//! but its input is `H` as int8 levels, whole (2.6 MB at the paper configuration: the
//! engine projects and samples it block by block, so Z never exists whole), and every
//! layer is an integer matrix product in tract
//! (`MatMulInteger`, int8 × int8 → int32: VNNI / dot-product kernels where the CPU has them,
//! about twice the multiply-adds per second of float), as onnxruntime's `QLinearConv`
//! computes it:
//!
//! * activations are kept as int8 levels (`round_half_even(x / x_scale)`, saturated);
//! * the 3×3 layers run directly (im2col over the needed output cells, `K = 9·cin`): with
//!   integer products twice as fast, the direct form costs about what float Winograd
//!   F(2×2, 3×3) costs in products alone, without its transforms;
//! * each product is scaled back (`acc · x_scale · w_scale[c] + bias[c]`), quantized to the
//!   output scale, activated, and quantized to the next layer's input levels
//!   (`finish_level`, row-wise and vectorised), exactly the float tail's emulation of
//!   onnxruntime but with exact integer sums.
//!
//! Activations live in two ping-pong grids of int8 levels, one cell of zero padding around
//! the `D × T` map (level 0 is the value 0: zero points are 0).

use super::winograd::{needed_extents, tile_chunks, Segment, CELL_CHUNK};
use super::{check_h, BmLayer, Phases, StageB};
use crate::engine::bm::CHUNK;
use crate::engine::cpu::Int8Arithmetic;
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::info::StageBForm;
use crate::engine::onnx::chain::ConvSpec;
#[cfg(test)]
use crate::engine::onnx::chain::{finish, finish_level};
use crate::engine::product::Int8Gemm;
use crate::engine::quant::{Act, Quant};
use crate::engine::workers::{AtomicDuration, Scratch, Workers};
use std::ops::Range;
use std::time::{Duration, Instant};

/// Writes the first layer's input levels (`H` quantized with [`QTail::input_quant`]) for a
/// range of valid cells into a `[O][CELL_CHUNK]` buffer.
pub(crate) type FillQ<'a> = dyn Fn(Range<usize>, &mut [i8]) -> Result<(), EngineError> + Sync + 'a;

/// Output cells per chunk of a later layer (the im2col block is `9·cin × COLS` bytes). In
/// exact float, tract's plan for a fixed `COLS` runs several times faster than a symbolic
/// one but allocates its packed operands on every call: at 256 columns (1.2 MB per 3×3
/// chunk) those allocations fragmented the heap between two workers (+50 MiB resident on
/// the shipped model); at 128 the resident set stays flat and the layer is as fast.
const COLS: usize = 128;

/// A later layer's chunk, finished on a worker: `[cout][n]` levels of the next layer's
/// input, or the last layer's values.
enum Rows {
    Levels(Vec<i8>),
    Values(Vec<f32>),
}

/// One convolution in integers.
struct QConv {
    /// Geometry, activation and quantization (the float weights dropped).
    spec: ConvSpec,
    /// The input quantization (symmetric int8).
    in_q: Quant,
    /// The output quantization (before the activation).
    out_q: Quant,
    /// Per output channel: `x_scale · w_scale[c]`, the value of one unit of the product.
    unit: Vec<f32>,
    /// `W_q · X` (`[cout][cin·k²] · [cin·k²][n]`, int32 sums).
    gemm: Int8Gemm,
}

impl QConv {
    fn new(spec: &ConvSpec, n: Option<usize>, arithmetic: Int8Arithmetic) -> Option<Result<QConv, EngineError>> {
        let (in_q, out_q, int_w) = (spec.in_q?, spec.out_q?, spec.int_w.as_ref()?);
        if !in_q.is_symmetric_s8() {
            return None;
        }
        let kdim = spec.cin * spec.kernel * spec.kernel;
        let unit = int_w.scale.iter().map(|s| s * in_q.scale()).collect();
        let gemm = Int8Gemm::new(&int_w.q, (spec.cout, kdim), n, arithmetic, COLS, "stage B (int8)");
        let spec = ConvSpec { weight: Vec::new(), int_w: None, ..spec.clone() };
        Some(gemm.map(|gemm| QConv { spec, in_q, out_q, unit, gemm }))
    }

    /// `store(act(out_q(acc · unit + bias)))` of output channel `c` for a row of
    /// accumulators into `out`. The activation is matched once per row and the loop runs
    /// over zipped slices, so that it vectorises.
    #[inline]
    fn finish_row<T>(&self, c: usize, acc: &[i32], out: &mut [T], store: impl Fn(f32) -> T) {
        let (unit, bias, out_q) = (self.unit[c], self.spec.bias[c], self.out_q);
        let value = |a: i32| out_q.apply(a as f32 * unit + bias);
        let pairs = out.iter_mut().zip(acc);
        match self.spec.act {
            Act::Relu => pairs.for_each(|(o, &a)| *o = store(value(a).max(0.0))),
            Act::None => pairs.for_each(|(o, &a)| *o = store(value(a))),
            Act::Sigmoid => pairs.for_each(|(o, &a)| *o = store(Act::Sigmoid.apply(value(a)))),
        }
    }

    /// [`Self::finish_row`] as levels of `next`.
    #[inline]
    fn levels_row(&self, c: usize, next: Quant, acc: &[i32], out: &mut [i8]) {
        self.finish_row(c, acc, out, |v| next.level_i8(v));
    }
}

/// The later layers' work: needed columns per row and their chunks.
struct Plan {
    extents: Vec<Vec<usize>>,
    chunks: Vec<Vec<Vec<Segment>>>,
}

impl Plan {
    fn new(extents: Vec<Vec<usize>>) -> Plan {
        let chunks = extents.iter().map(|e| tile_chunks(e, COLS)).collect();
        Plan { extents, chunks }
    }
}

/// The planned integer tail for one `(T, D)`.
pub(crate) struct QTail {
    t: usize,
    d: usize,
    o: usize,
    first: QConv,
    /// The first layer's output levels on an invalid cell.
    first_const: Vec<i8>,
    cells: Vec<(u16, u16)>,
    layers: Vec<QConv>,
    plan: Plan,
    /// The final output where no needed cell is: `[cout][D][T]`.
    constant: Vec<f32>,
    /// Ping-pong grids of levels, `[channels][D + 2][T + 2]`.
    grids: [Vec<i8>; 2],
    /// `H` as int8 levels `[O][cells]`, kept from window to window (one allocation, no heap
    /// fragments).
    h_levels: Vec<i8>,
}

impl QTail {
    /// Plans the integer tail, or `None` when `convs` are not all quantized convolutions
    /// with symmetric int8 inputs and int8 weights of zero point 0 (or fewer than two).
    pub(crate) fn new(
        convs: &[ConvSpec],
        cells: Vec<(u16, u16)>,
        t: usize,
        d: usize,
        bm_bias: &[f32],
        arithmetic: Int8Arithmetic,
    ) -> Option<Result<QTail, EngineError>> {
        let (first_spec, rest) = convs.split_first()?;
        if rest.is_empty() {
            return None;
        }
        let first = match QConv::new(first_spec, Some(CELL_CHUNK), arithmetic)? {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let mut layers = Vec::with_capacity(rest.len());
        for spec in rest {
            match QConv::new(spec, None, arithmetic)? {
                Ok(c) => layers.push(c),
                Err(e) => return Some(Err(e)),
            }
        }
        let first_wq = &first_spec.int_w.as_ref()?.q;
        Some(Self::build(first_wq, first, layers, cells, t, d, bm_bias))
    }

    /// `first_wq`: the first layer's int8 weights `[cout][O]`.
    fn build(
        first_wq: &[i8],
        first: QConv,
        layers: Vec<QConv>,
        cells: Vec<(u16, u16)>,
        t: usize,
        d: usize,
        bm_bias: &[f32],
    ) -> Result<QTail, EngineError> {
        let o = first.spec.cin;
        if bm_bias.len() != o {
            return Err(EngineError::new(EngineErrorKind::Runtime, "stage B: BM width and first layer disagree"));
        }
        // H on an invalid cell is relu(bias), as the first layer's input levels.
        let h: Vec<i32> = bm_bias.iter().map(|b| first.in_q.level(b.max(0.0)) as i32).collect();
        let next = layers[0].in_q;
        if first_wq.len() != first.spec.cout * o {
            return Err(EngineError::new(EngineErrorKind::Runtime, "stage B: first layer weights have the wrong size"));
        }
        let first_const = first_wq
            .chunks_exact(o)
            .enumerate()
            .map(|(c, w)| {
                let acc: i32 = w.iter().zip(&h).map(|(&w, &x)| i32::from(w) * x).sum();
                let mut level = [0i8];
                first.levels_row(c, next, &[acc], &mut level);
                level[0]
            })
            .collect();
        let kernels: Vec<usize> = layers.iter().map(|l| l.spec.kernel).collect();
        let maxc = layers.iter().map(|l| l.spec.cout).chain([first.spec.cout]).max().unwrap_or(0);
        // The constant field: the tail on a map with no valid cell. A cell's value depends
        // only on where the map's borders fall within its receptive field (radius R), so it
        // is computed on a map of at most (2R + 1) × (2R + 1) cells and spread: rows and
        // columns within R of a border keep their own values, the others take the middle's.
        let radius: usize = kernels.iter().map(|k| k / 2).sum();
        let (dd, tt) = (d.min(2 * radius + 1), t.min(2 * radius + 1));
        let small_plane = (dd + 2) * (tt + 2);
        let mut tail = QTail {
            t: tt,
            d: dd,
            o,
            first,
            first_const,
            cells: Vec::new(),
            layers,
            plan: Plan::new(kernels.iter().map(|_| vec![tt; dd]).collect()),
            constant: Vec::new(),
            grids: [vec![0; maxc * small_plane], vec![0; maxc * small_plane]],
            h_levels: Vec::new(),
        };
        let one = Workers::new(1)?;
        let mut small = Vec::new();
        tail.run_first(&|_, _| Ok(()), &one)?;
        tail.run_rest(&one, &mut small)?;
        let from = |i: usize, n: usize, m: usize| {
            if i < radius {
                i
            } else if i + radius >= n {
                m - (n - i)
            } else {
                radius
            }
        };
        let cout = tail.layers[tail.layers.len() - 1].spec.cout;
        let mut constant = vec![0.0f32; cout * d * t];
        for c in 0..cout {
            for r in 0..d {
                let src = &small[(c * dd + from(r, d, dd)) * tt..(c * dd + from(r, d, dd) + 1) * tt];
                for (s, v) in constant[(c * d + r) * t..(c * d + r + 1) * t].iter_mut().enumerate() {
                    *v = src[from(s, t, tt)];
                }
            }
        }
        let plane = (d + 2) * (t + 2);
        tail.t = t;
        tail.d = d;
        tail.grids = [vec![0; maxc * plane], vec![0; maxc * plane]];
        tail.constant = constant;
        tail.cells = cells;
        tail.plan = Plan::new(needed_extents(&kernels, t, d));
        Ok(tail)
    }

    /// The arithmetic of each product: the first layer's, then the later layers'.
    pub(crate) fn arithmetics(&self) -> Vec<Int8Arithmetic> {
        [&self.first].into_iter().chain(&self.layers).map(|l| l.gemm.arithmetic()).collect()
    }

    /// The quantization of the first layer's input: `fill` writes `H`'s levels.
    pub(crate) fn input_quant(&self) -> Quant {
        self.first.in_q
    }

    fn plane(&self) -> usize {
        (self.d + 2) * (self.t + 2)
    }

    /// The first layer: `fill(cells, h)` writes `H`'s levels for the valid cells `cells` as
    /// `[O][CELL_CHUNK]`. Returns the share of the time spent in `fill`. Then
    /// [`Self::run_rest`]; whatever `fill` reads (Z) can be dropped in between.
    pub(crate) fn run_first(&mut self, fill: &FillQ<'_>, workers: &Workers) -> Result<Duration, EngineError> {
        let (t, d, o) = (self.t, self.d, self.o);
        let (plane, gw) = (self.plane(), t + 2);
        let start = Instant::now();
        let g = &mut self.grids[0];
        for (c, &v) in self.first_const.iter().enumerate() {
            for r in 0..d {
                let at = c * plane + (r + 1) * gw + 1;
                g[at..at + t].fill(v);
            }
        }
        let (first, cells) = (&self.first, &self.cells);
        let next = self.layers[0].in_q;
        let n = cells.len();
        let (fill_time, gemm_time) = (AtomicDuration::default(), AtomicDuration::default());
        let job = |k: usize, s: &mut Scratch| {
            let range = k * CELL_CHUNK..((k + 1) * CELL_CHUNK).min(n);
            let t0 = Instant::now();
            s.q.clear();
            s.q.resize(o * CELL_CHUNK, 0);
            let w = range.len();
            fill(range, &mut s.q)?;
            fill_time.add(t0.elapsed());
            let t1 = Instant::now();
            first.gemm.run(&s.q, CELL_CHUNK, &mut s.gemm, &mut s.acc)?;
            // Requantized here, on the worker, so that the calling thread only copies.
            let mut y = vec![0i8; first.spec.cout * CELL_CHUNK];
            for (c, (dst, acc)) in y.chunks_exact_mut(CELL_CHUNK).zip(s.acc.chunks_exact(CELL_CHUNK)).enumerate() {
                first.levels_row(c, next, &acc[..w], &mut dst[..w]);
            }
            gemm_time.add(t1.elapsed());
            Ok(y)
        };
        let place = |k: usize, y: Vec<i8>| {
            let cells = &cells[k * CELL_CHUNK..((k + 1) * CELL_CHUNK).min(n)];
            // Runs of consecutive cells of one row are contiguous in the grid.
            let mut i = 0;
            while i < cells.len() {
                let (r, s0) = cells[i];
                let mut j = i + 1;
                while j < cells.len() && cells[j] == (r, s0 + (j - i) as u16) {
                    j += 1;
                }
                let at = (r as usize + 1) * gw + s0 as usize + 1;
                for c in 0..first.spec.cout {
                    g[c * plane + at..c * plane + at + (j - i)]
                        .copy_from_slice(&y[c * CELL_CHUNK + i..c * CELL_CHUNK + j]);
                }
                i = j;
            }
            Ok(())
        };
        workers.run(n.div_ceil(CELL_CHUNK), job, place)?;
        let (f, gt) = (fill_time.get().as_secs_f64(), gemm_time.get().as_secs_f64());
        Ok(start.elapsed().mul_f64(if f + gt > 0.0 { f / (f + gt) } else { 0.0 }))
    }

    /// The layers after the first; `out` receives `[cout][D][T]`.
    pub(crate) fn run_rest(&mut self, workers: &Workers, out: &mut Vec<f32>) -> Result<(), EngineError> {
        let (t, d) = (self.t, self.d);
        let (plane, gw) = (self.plane(), t + 2);
        let nl = self.layers.len();
        let cout_last = self.layers[nl - 1].spec.cout;
        // The map: the constant field first, overwritten where the last layer computes.
        out.clear();
        out.resize(cout_last * d * t, 0.0);
        let last_e = &self.plan.extents[nl - 1];
        if !self.constant.is_empty() {
            for c in 0..cout_last {
                for (r, &w) in last_e.iter().enumerate() {
                    let at = (c * d + r) * t;
                    out[at + w..at + t].copy_from_slice(&self.constant[at + w..at + t]);
                }
            }
        }
        let mut src = 0usize;
        for (li, layer) in self.layers.iter().enumerate() {
            let chunks = &self.plan.chunks[li];
            let next = self.layers.get(li + 1).map(|l| l.in_q);
            let (a, b) = self.grids.split_at_mut(1);
            let (input, output) = if src == 0 { (&a[0], &mut b[0]) } else { (&b[0], &mut a[0]) };
            let (cin, k) = (layer.spec.cin, layer.spec.kernel);
            let (kdim, rad) = (cin * k * k, k / 2);
            let input = &input[..];
            let job = |j: usize, s: &mut Scratch| {
                let n: usize = chunks[j].iter().map(|g| g.w as usize).sum();
                s.q.clear();
                s.q.resize(kdim * n, 0);
                let mut off = 0;
                for seg in &chunks[j] {
                    let (r, c0, w) = (seg.ti as usize, seg.tj as usize, seg.w as usize);
                    // Output (r, c) reads grid rows r + ky and columns c + kx (padding 1).
                    for ci in 0..cin {
                        for ky in 0..k {
                            let row = ci * plane + (r + ky + 1 - rad) * gw + c0 + 1 - rad;
                            for kx in 0..k {
                                let dst = ((ci * k + ky) * k + kx) * n + off;
                                s.q[dst..dst + w].copy_from_slice(&input[row + kx..row + kx + w]);
                            }
                        }
                    }
                    off += w;
                }
                layer.gemm.run(&s.q, n, &mut s.gemm, &mut s.acc)?;
                // Requantized (or finished) here, on the worker, so that the calling thread
                // only copies rows into place.
                let rows = s.acc.chunks_exact(n).enumerate();
                Ok(match next {
                    Some(q) => {
                        let mut y = vec![0i8; s.acc.len()];
                        for ((c, acc), dst) in rows.zip(y.chunks_exact_mut(n)) {
                            layer.levels_row(c, q, acc, dst);
                        }
                        Rows::Levels(y)
                    }
                    None => {
                        let mut y = vec![0f32; s.acc.len()];
                        for ((c, acc), dst) in rows.zip(y.chunks_exact_mut(n)) {
                            layer.finish_row(c, acc, dst, |v| v);
                        }
                        Rows::Values(y)
                    }
                })
            };
            let place = |j: usize, y: Rows| {
                let n: usize = chunks[j].iter().map(|g| g.w as usize).sum();
                for c in 0..layer.spec.cout {
                    let mut off = c * n;
                    for seg in &chunks[j] {
                        let (r, c0, w) = (seg.ti as usize, seg.tj as usize, seg.w as usize);
                        match &y {
                            Rows::Levels(y) => {
                                let at = c * plane + (r + 1) * gw + c0 + 1;
                                output[at..at + w].copy_from_slice(&y[off..off + w]);
                            }
                            Rows::Values(y) => {
                                out[(c * d + r) * t + c0..][..w].copy_from_slice(&y[off..off + w]);
                            }
                        }
                        off += w;
                    }
                }
                Ok(())
            };
            workers.run(chunks.len(), job, place)?;
            src = 1 - src;
        }
        Ok(())
    }
}

impl StageB for QTail {
    fn form(&self) -> StageBForm {
        StageBForm::Integer
    }

    fn int8_arithmetics(&self) -> Vec<Int8Arithmetic> {
        self.arithmetics()
    }

    /// Projection and sampling block by block ([`project_and_sample`]: Z never whole), H
    /// whole as int8 levels (2.6 MB at the paper configuration), then the integer layers.
    fn run(
        &mut self,
        bm: &BmLayer,
        yt: &[f32],
        workers: &Workers,
        confidence: &mut Vec<f32>,
    ) -> Result<Phases, EngineError> {
        let t1 = Instant::now();
        let (q, ncells, o) = (self.input_quant(), self.cells.len(), self.o);
        let mut h = std::mem::take(&mut self.h_levels);
        let (projection, bm_busy) = project_and_sample(bm, yt, ncells, q, &mut h, workers)?;
        let wall = t1.elapsed();
        let share = projection.as_secs_f64() / (projection + bm_busy).as_secs_f64().max(1e-9);
        let t2 = Instant::now();
        let fill = |cells: Range<usize>, dst: &mut [i8]| {
            copy_cells(&h, o, ncells, cells, dst);
            Ok(())
        };
        let first = self.run_first(&fill, workers);
        let rest = first.and_then(|_| self.run_rest(workers, confidence));
        self.h_levels = h;
        rest?;
        Ok(Phases { projection: wall.mul_f64(share), bm: wall - wall.mul_f64(share), stage_b: t2.elapsed() })
    }

    fn run_h(&mut self, h: &[f32], workers: &Workers, confidence: &mut Vec<f32>) -> Result<(), EngineError> {
        let (o, d, t) = (self.o, self.d, self.t);
        check_h(h, o, d, t)?;
        let (q, cells) = (self.input_quant(), self.cells.clone());
        let fill = |range: Range<usize>, hc: &mut [i8]| {
            for (i, &(r, s)) in cells[range].iter().enumerate() {
                for oo in 0..o {
                    hc[oo * CELL_CHUNK + i] = q.level_i8(h[(oo * d + r as usize) * t + s as usize]);
                }
            }
            Ok(())
        };
        self.run_first(&fill, workers)?;
        self.run_rest(workers, confidence)
    }
}

/// Copies the valid cells `cells` of `h` (`[o][n]`) into `dst` (`[o][CELL_CHUNK]`).
fn copy_cells<T: Copy>(h: &[T], o: usize, n: usize, cells: Range<usize>, dst: &mut [T]) {
    for oo in 0..o {
        let at = oo * CELL_CHUNK;
        dst[at..at + cells.len()].copy_from_slice(&h[oo * n + cells.start..oo * n + cells.end]);
    }
}

/// For the integer tail: per block of 32 channels, on the workers, the projection's
/// product, its Z block (in the worker's scratch, still in L2 when the kernel reads it)
/// and the BM kernel over every valid cell, as levels of `q` (the tail's input
/// quantization) into `hall`: `H` `[O][cells]`, every value written. Z never exists whole
/// (6.5 MB at the paper configuration; H as int8 is 2.6 MB — as floats it would be
/// 10.3 MB, which is why the float tail samples from Z whole in chunks of cells instead:
/// tried, +8 MiB peak RSS for no clear gain). Returns the time spent projecting and
/// sampling, summed over the workers.
fn project_and_sample(
    bm: &BmLayer,
    yt: &[f32],
    ncells: usize,
    q: Quant,
    hall: &mut Vec<i8>,
    workers: &Workers,
) -> Result<(Duration, Duration), EngineError> {
    let input = bm.projection.input(yt)?;
    let o = bm.kernel.out_channels();
    hall.resize(o * ncells, 0);
    // Each block's rows of H, for the one job that writes them.
    let rows: Vec<std::sync::Mutex<&mut [i8]>> = hall.chunks_mut(CHUNK * ncells).map(std::sync::Mutex::new).collect();
    let (proj_time, bm_time) = (AtomicDuration::default(), AtomicDuration::default());
    let job = |c: usize, s: &mut Scratch| {
        let t0 = Instant::now();
        let y = bm.projection.product(c, &input, &mut s.gemm)?;
        s.z.resize(bm.projection.block_len());
        bm.projection.place(c, &y, s.z.as_mut_slice())?;
        drop(y);
        proj_time.add(t0.elapsed());
        let t1 = Instant::now();
        let mut h = rows
            .get(c)
            .and_then(|m| m.lock().ok())
            .ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "BM projection: block out of range"))?;
        bm.kernel.run_block_cells(c, s.z.as_slice(), &mut h, 0..ncells, ncells, |v| q.level_i8(v))?;
        bm_time.add(t1.elapsed());
        Ok(())
    };
    workers.run(bm.projection.blocks(), job, |_, ()| Ok(()))?;
    drop(rows);
    Ok((proj_time.get(), bm_time.get()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::onnx::chain::IntWeights;

    fn rand(seed: &mut u64) -> f32 {
        super::super::winograd::tests::rand(seed, 1.0)
    }

    fn q(scale: f32) -> Option<Quant> {
        Some(Quant::symmetric_s8(scale))
    }

    /// A quantized convolution with random int8 weights (per-channel scales).
    fn spec(seed: &mut u64, cout: usize, cin: usize, k: usize, act: Act, in_scale: f32) -> ConvSpec {
        let wq: Vec<i8> = (0..cout * cin * k * k).map(|_| (rand(seed) * 254.0) as i8).collect();
        let ws: Vec<f32> = (0..cout).map(|_| (0.5 + rand(seed)) * 0.02 / ((cin * k * k) as f32).sqrt()).collect();
        let per = cin * k * k;
        let weight = wq.iter().enumerate().map(|(j, &w)| w as f32 * ws[j / per]).collect();
        let bias = (0..cout).map(|_| rand(seed) * 0.2).collect();
        ConvSpec {
            act,
            in_q: q(in_scale),
            out_q: q(0.03),
            int_w: Some(IntWeights { q: wq, scale: ws }),
            ..ConvSpec::float(cout, cin, k, weight, bias)
        }
    }

    /// The quantized tail computed densely in integers over the whole `d × t` map (zero
    /// padding), each layer's sums exact, then scaled, quantized and activated.
    fn dense(convs: &[ConvSpec], h: &[f32], d: usize, t: usize) -> Vec<f32> {
        let in_q = |c: &ConvSpec| c.in_q.unwrap();
        let mut x: Vec<i64> = h.iter().map(|&v| in_q(&convs[0]).level(v) as i64).collect();
        let mut out = Vec::new();
        for (li, c) in convs.iter().enumerate() {
            let w = &c.int_w.as_ref().unwrap().q;
            let unit: Vec<f32> = c.int_w.as_ref().unwrap().scale.iter().map(|s| s * in_q(c).scale()).collect();
            let (k, rad) = (c.kernel, (c.kernel / 2) as i64);
            let mut y = vec![0i64; c.cout * d * t];
            let mut yf = vec![0.0f32; c.cout * d * t];
            for co in 0..c.cout {
                for r in 0..d {
                    for s in 0..t {
                        let mut acc = 0i64;
                        for ci in 0..c.cin {
                            for u in 0..k {
                                for v in 0..k {
                                    let (rr, ss) = (r as i64 + u as i64 - rad, s as i64 + v as i64 - rad);
                                    if rr >= 0 && ss >= 0 && (rr as usize) < d && (ss as usize) < t {
                                        acc += i64::from(w[((co * c.cin + ci) * k + u) * k + v])
                                            * x[(ci * d + rr as usize) * t + ss as usize];
                                    }
                                }
                            }
                        }
                        let value = acc as i32 as f32 * unit[co] + c.bias[co];
                        let at = (co * d + r) * t + s;
                        match convs.get(li + 1) {
                            Some(next) => y[at] = finish_level(c, in_q(next), value) as i64,
                            None => yf[at] = finish(c, None, value),
                        }
                    }
                }
            }
            x = y;
            out = yf;
        }
        out
    }

    #[test]
    fn integer_tail_equals_dense_integer_computation() {
        let mut seed = 0x0bad_cafe_1234_5678u64;
        for (d, t) in [(9usize, 13usize), (8, 8), (13, 13), (5, 16), (1, 3)] {
            let o = 12;
            let convs = vec![
                spec(&mut seed, 8, o, 1, Act::Relu, 0.02),
                spec(&mut seed, 8, 8, 3, Act::Relu, 0.03),
                spec(&mut seed, 6, 8, 3, Act::Relu, 0.025),
                spec(&mut seed, 5, 6, 1, Act::None, 0.03),
                spec(&mut seed, 2, 5, 1, Act::Sigmoid, 0.02),
            ];
            let (bm_bias, cells, h) = super::super::winograd::tests::random_map(&mut seed, o, d, t, 4.0);
            let want = dense(&convs, &h, d, t);
            // Both arithmetics give the dense integer computation exactly.
            for arithmetic in [Int8Arithmetic::Integer, Int8Arithmetic::ExactFloat] {
                let mut tail = QTail::new(&convs, cells.clone(), t, d, &bm_bias, arithmetic).unwrap().unwrap();
                assert!(tail.arithmetics().iter().all(|&a| a == arithmetic));
                for workers in [1usize, 2, 3] {
                    let workers = &Workers::new(workers).unwrap();
                    let q = tail.input_quant();
                    let fill = |range: Range<usize>, hc: &mut [i8]| {
                        for (i, &(r, s)) in cells[range].iter().enumerate() {
                            for oo in 0..o {
                                hc[oo * CELL_CHUNK + i] = q.level(h[(oo * d + r as usize) * t + s as usize]) as i8;
                            }
                        }
                        Ok(())
                    };
                    // Twice: stale buffers from a previous run must not leak into the next.
                    for _ in 0..2 {
                        let mut got = Vec::new();
                        tail.run_first(&fill, workers).unwrap();
                        tail.run_rest(workers, &mut got).unwrap();
                        assert_eq!(got.len(), want.len());
                        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                        assert!(err == 0.0, "d {d} t {t} {arithmetic:?} workers {}: max |Δ| {err}", workers.count());
                    }
                }
            }
        }
    }

    #[test]
    fn only_symmetric_int8_chains_take_the_integer_tail() {
        let mut seed = 99u64;
        let convs = vec![spec(&mut seed, 4, 6, 1, Act::Relu, 0.02), spec(&mut seed, 2, 4, 3, Act::Sigmoid, 0.02)];
        let cells = vec![(0u16, 0u16)];
        let bias = vec![0.1f32; 6];
        assert!(QTail::new(&convs, cells.clone(), 4, 4, &bias, Int8Arithmetic::Integer).is_some());
        // An asymmetric (uint8) input, float weights, a single layer: the float tail's.
        let mut u8_input = convs.clone();
        u8_input[1].in_q = Some(Quant::symmetric_s8(0.02).with_zero_point(128.0, 0.0, 255.0));
        let mut float_w = convs.clone();
        float_w[0].int_w = None;
        for c in [u8_input, float_w, convs[..1].to_vec()] {
            assert!(QTail::new(&c, cells.clone(), 4, 4, &bias, Int8Arithmetic::Integer).is_none());
        }
    }
}

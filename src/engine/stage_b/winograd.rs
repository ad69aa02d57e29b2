//! Stage B without waste: BMN's 2-d tail (`Conv 1×1 → act → (Conv 3×3 | Conv 1×1 → act)*`)
//! computed only where the map is not constant, with the 3×3 convolutions in Winograd form.
//!
//! ## What is computed
//!
//! Only valid cells (`s + d ≤ T − 1`) carry information: every other cell of `H` is
//! `relu(bias)`, so after the first (1×1) layer every invalid cell holds the same vector.
//! The first layer is therefore one matrix product over the valid cells only (5 050 of
//! 10 000 at the paper configuration), fused with the BM kernel in chunks of cells so that
//! `H` never exists whole. Each later layer computes its output only where a needed cell
//! of the final map depends on it (the receptive field, worked backwards from the last
//! layer); final cells whose receptive field holds no valid cell come from a constant field
//! computed once at load (they differ only by their distance to the map's borders).
//!
//! ## Winograd F(2×2, 3×3)
//!
//! A 3×3 "same" convolution over 2×2 output tiles is 16 independent matrix products
//! `M_ξ = U_ξ · V_ξ` (Lavin & Gray 2016): `U = G g Gᵀ` per filter (at load), `V = Bᵀ d B` per
//! 4×4 input patch, `Y = Aᵀ M A`. 16 multiplies per tile and channel pair instead of 36.
//! The products run in tract (its packed, vectorised matrix kernels, AVX-512/AVX2/NEON as the
//! CPU offers); the transforms are a few additions per value, in Rust.
//!
//! With the triangle and the transforms together, the tail does ~1.1 GMAC per window at the
//! paper configuration where the exported graph does 3.6 GMAC (and row bands 2.8).
//!
//! Quantized chains (`QLinearConv` between Quantize/DequantizeLinear) run here with
//! dequantized weights and onnxruntime's quantization of every input and output emulated in
//! float; symmetric int8 ones take the integer tail (`qtail`) instead, unless asked not to
//! ([`EngineOptions::emulate_int8_stage_b`](super::EngineOptions::emulate_int8_stage_b)).
//!
//! ## Threads
//!
//! Work is cut into chunks (cells for the first layer, tiles for the others); workers take
//! chunks from a shared counter and run tract single-threaded. Results are placed into the
//! layer's grid after the workers join, so no two threads write the same buffer.

use super::{check_h, BmLayer, Phases, StageB};
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::info::StageBForm;
use crate::engine::onnx::chain::finish;
use crate::engine::onnx::chain::ConvSpec;
use crate::engine::product::{matmul_model, plain_f32, run_matmul};
use crate::engine::quant::{Act, Quant};
use crate::engine::workers::{AtomicDuration, Scratch, Workers};
use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tract_core::model::TypedRunnableModel;
use tract_onnx::prelude::*;

/// Cells per first-layer chunk.
pub(crate) const CELL_CHUNK: usize = 128;
/// Tiles per Winograd chunk.
pub(crate) const TILE_CHUNK: usize = 64;

/// `U = G g Gᵀ` for one 3×3 filter `g` (row-major), `G = [[1,0,0],[½,½,½],[½,−½,½],[0,0,1]]`.
pub(crate) fn winograd_filter(g: &[f32]) -> [f32; 16] {
    let gm = |r: usize| -> [f32; 3] { [g[3 * r], g[3 * r + 1], g[3 * r + 2]] };
    let tf = |v: [f32; 3]| -> [f32; 4] { [v[0], 0.5 * (v[0] + v[1] + v[2]), 0.5 * (v[0] - v[1] + v[2]), v[2]] };
    // Rows: G applied down the columns.
    let cols: [[f32; 4]; 3] = {
        let c = |j: usize| tf([gm(0)[j], gm(1)[j], gm(2)[j]]);
        [c(0), c(1), c(2)]
    };
    let mut u = [0.0f32; 16];
    for i in 0..4 {
        let row = tf([cols[0][i], cols[1][i], cols[2][i]]);
        u[4 * i..4 * i + 4].copy_from_slice(&row);
    }
    u
}

/// A layer after the first.
enum Layer {
    /// 3×3 in Winograd form: the needed outputs' tiles, in chunks of [`TILE_CHUNK`] tiles
    /// (the last one shorter), one tract product `[16][cout][cin] · [16][cin][n]` per chunk.
    Winograd { spec: ConvSpec, tiles: Vec<Vec<Segment>>, gemm: Arc<TypedRunnableModel> },
    /// 1×1, direct (small: BMN's last layer has two outputs).
    Pointwise { spec: ConvSpec },
}

impl Layer {
    fn spec(&self) -> &ConvSpec {
        match self {
            Layer::Winograd { spec, .. } | Layer::Pointwise { spec } => spec,
        }
    }
}

/// The planned tail for one `(T, D)`.
pub(crate) struct Tail {
    t: usize,
    d: usize,
    o: usize,
    /// Padded grid (one cell of zero padding on each side, rounded to whole tiles): rows,
    /// full row width, and where each row starts in a channel's plane. Rows are ragged:
    /// each holds only the columns some layer reads or writes (the map's triangle), which
    /// makes the grids ~40 % smaller than full rectangles.
    gr: usize,
    gc: usize,
    row_off: Vec<usize>,
    first: ConvSpec,
    first_gemm: Arc<TypedRunnableModel>,
    /// The first layer's output on an invalid cell.
    first_const: Vec<f32>,
    /// Valid cells, d-major.
    cells: Vec<(u16, u16)>,
    layers: Vec<Layer>,
    /// Needed output columns per row, per layer after the first (`extents[k][d]`: columns
    /// `0..extents[k][d]` of row `d`).
    extents: Vec<Vec<usize>>,
    /// The final output where the receptive field holds no valid cell: `[cout][D][T]`.
    constant: Vec<f32>,
    /// Two reusable grids (ping-pong).
    grids: [Vec<f32>; 2],
    /// Tiles per Winograd chunk.
    tile_chunk: usize,
}

/// A run of tiles in one tile row: tile row, first tile column, tiles.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Segment {
    pub ti: u16,
    pub tj: u16,
    pub w: u16,
}

/// Cuts tile rows (`widths[ti]` tiles each, from column 0) into chunks of `chunk`
/// tiles (the last one shorter), each a list of segments.
pub(crate) fn tile_chunks(widths: &[usize], chunk: usize) -> Vec<Vec<Segment>> {
    let mut chunks: Vec<Vec<Segment>> = Vec::new();
    let mut cur: Vec<Segment> = Vec::new();
    let mut size = 0;
    for (ti, &w) in widths.iter().enumerate() {
        let mut tj = 0;
        while tj < w {
            let take = (w - tj).min(chunk - size);
            cur.push(Segment { ti: ti as u16, tj: tj as u16, w: take as u16 });
            size += take;
            tj += take;
            if size == chunk {
                chunks.push(std::mem::take(&mut cur));
                size = 0;
            }
        }
    }
    if !cur.is_empty() {
        chunks.push(cur);
    }
    chunks
}

/// Needed output columns per row of each layer after the first (`kernels`: their kernel
/// sizes): `extents[k][r]` = columns `0..extents[k][r]` of row `r`. Worked from the last
/// layer backwards: its output is needed where its receptive field (radius: the sum of the
/// later layers' radii) can reach a valid cell (`s + r < t`); each earlier layer's wherever
/// a needed output of the next one reads it.
pub(crate) fn needed_extents(kernels: &[usize], t: usize, d: usize) -> Vec<Vec<usize>> {
    let radius: usize = kernels.iter().map(|k| k / 2).sum();
    let last: Vec<usize> = (0..d).map(|r| (t + 2 * radius).saturating_sub(r).min(t)).collect();
    let mut extents = vec![last];
    for k in kernels.iter().rev() {
        let next = extents.last().cloned().unwrap_or_default();
        let r = k / 2;
        let e: Vec<usize> = (0..d).map(|row| (max_radius_extent(&next, row, r) + r).min(t)).collect();
        extents.push(e);
    }
    // extents[k] is the output extent of layer k: reverse and drop the last entry (the
    // first layer's extent, which is everything).
    extents.pop();
    extents.reverse();
    extents
}

fn max_radius_extent(e: &[usize], d: usize, r: usize) -> usize {
    let lo = d.saturating_sub(r);
    let hi = (d + r).min(e.len() - 1);
    e[lo..=hi].iter().copied().max().unwrap_or(0)
}

impl Tail {
    /// Plans the tail: `convs` from [`recognise`], valid `cells` of a `d × t` map (d-major),
    /// `bm_bias` the BM layer's bias (`H = relu(bm_bias)` on invalid cells).
    pub(crate) fn new(
        convs: Vec<ConvSpec>,
        cells: Vec<(u16, u16)>,
        t: usize,
        d: usize,
        bm_bias: &[f32],
        tile_chunk: usize,
    ) -> Result<Tail, EngineError> {
        let tile_chunk = tile_chunk.max(1);
        let mut convs = convs.into_iter();
        let first = convs.next().ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "empty stage B"))?;
        let o = first.cin;
        let rest: Vec<ConvSpec> = convs.collect();
        let next_in = rest.first().and_then(|c| c.in_q);
        // H on an invalid cell is relu(bias) (quantized as the first layer's input).
        let h_invalid: Vec<f32> =
            bm_bias.iter().map(|b| first.in_q.map_or(b.max(0.0), |q| q.apply(b.max(0.0)))).collect();
        let first_const: Vec<f32> = (0..first.cout)
            .map(|co| {
                let w = &first.weight[co * o..(co + 1) * o];
                let s: f32 = w.iter().zip(&h_invalid).map(|(w, h)| w * h).sum();
                finish(&first, next_in, s + first.bias[co])
            })
            .collect();
        let mut first = first;
        let first_gemm = matmul_model(std::mem::take(&mut first.weight), 1, first.cout, o, Some(CELL_CHUNK))?;
        let extents = needed_extents(&rest.iter().map(|c| c.kernel).collect::<Vec<_>>(), t, d);
        let mut layers = Vec::with_capacity(rest.len());
        for (spec, e) in rest.into_iter().zip(&extents) {
            if spec.kernel == 3 {
                let widths: Vec<usize> = (0..d.div_ceil(2))
                    .map(|ti| e[2 * ti].max(e.get(2 * ti + 1).copied().unwrap_or(0)).div_ceil(2))
                    .collect();
                let tiles = tile_chunks(&widths, tile_chunk);
                let gemm = winograd_gemm(&spec)?;
                // The spatial weights live on in U (inside the product's plan).
                let spec = ConvSpec { weight: Vec::new(), ..spec };
                layers.push(Layer::Winograd { spec, tiles, gemm });
            } else {
                layers.push(Layer::Pointwise { spec });
            }
        }
        let gr = 2 * d.div_ceil(2) + 2;
        let gc = 2 * t.div_ceil(2) + 2;
        let mut tail = Tail {
            t,
            d,
            o,
            gr,
            gc,
            row_off: (0..=gr).map(|r| r * gc).collect(),
            first,
            first_gemm,
            first_const,
            cells,
            layers,
            extents,
            constant: Vec::new(),
            grids: [Vec::new(), Vec::new()],
            tile_chunk,
        };
        // The constant field: the tail on a map with no valid cell, everywhere (full rows).
        tail.alloc_grids();
        let full: Vec<Vec<usize>> = tail.extents.iter().map(|e| vec![t; e.len()]).collect();
        let saved_cells = std::mem::take(&mut tail.cells);
        let saved_extents = std::mem::replace(&mut tail.extents, full);
        let mut constant = Vec::new();
        let saved_tiles = tail.full_tiles();
        let one = Workers::new(1)?;
        tail.run_first(&|_, _| Ok(()), &one)?;
        tail.run_rest(&one, &mut constant, true)?;
        tail.restore_tiles(saved_tiles);
        tail.cells = saved_cells;
        tail.extents = saved_extents;
        tail.constant = constant;
        // Then ragged rows for the planned work.
        tail.row_off = tail.ragged_rows();
        tail.alloc_grids();
        Ok(tail)
    }

    /// Zeroed grids for the current row layout.
    fn alloc_grids(&mut self) {
        let maxc = self.layers.iter().map(|l| l.spec().cout).chain([self.first.cout]).max().unwrap_or(0);
        let plane = self.row_off[self.gr];
        self.grids = [Vec::new(), Vec::new()];
        self.grids = [vec![0.0f32; maxc * plane], vec![0.0f32; maxc * plane]];
    }

    /// Row starts for rows holding only the columns the planned work touches.
    fn ragged_rows(&self) -> Vec<usize> {
        let (gr, gc) = (self.gr, self.gc);
        let mut need = vec![0usize; gr];
        let mut at_least = |r: usize, w: usize| need[r] = need[r].max(w.min(gc));
        for &(r, s) in &self.cells {
            at_least(r as usize + 1, s as usize + 2);
        }
        for (layer, e) in self.layers.iter().zip(&self.extents) {
            if let Layer::Winograd { tiles, .. } = layer {
                for seg in tiles.iter().flatten() {
                    let (r0, reach) = (2 * seg.ti as usize, 2 * (seg.tj as usize + seg.w as usize) + 2);
                    for r in r0..r0 + 4 {
                        at_least(r, reach);
                    }
                }
            }
            for (r, &w) in e.iter().enumerate() {
                at_least(r + 1, w + 1);
            }
        }
        let mut off = Vec::with_capacity(gr + 1);
        let mut acc = 0;
        for w in need {
            off.push(acc);
            acc += w;
        }
        off.push(acc);
        off
    }

    /// Swaps every Winograd layer's tiles for the whole grid's; returns the planned ones.
    fn full_tiles(&mut self) -> Vec<Vec<Vec<Segment>>> {
        let all = tile_chunks(&vec![self.t.div_ceil(2); self.d.div_ceil(2)], self.tile_chunk);
        let mut saved = Vec::new();
        for l in &mut self.layers {
            if let Layer::Winograd { tiles, .. } = l {
                saved.push(std::mem::replace(tiles, all.clone()));
            }
        }
        saved
    }

    fn restore_tiles(&mut self, saved: Vec<Vec<Vec<Segment>>>) {
        let mut saved = saved.into_iter();
        for l in &mut self.layers {
            if let Layer::Winograd { tiles, .. } = l {
                if let Some(s) = saved.next() {
                    *tiles = s;
                }
            }
        }
    }

    /// Output channels of the tail.
    pub(crate) fn out_channels(&self) -> usize {
        self.layers.last().map_or(self.first.cout, |l| l.spec().cout)
    }

    /// Valid cells (the order `fill` is asked for).
    pub(crate) fn cells(&self) -> &[(u16, u16)] {
        &self.cells
    }

    /// The first layer: `fill(cells, h)` writes `H` for the valid cells `cells` (indices
    /// into [`Self::cells`]) as `[O][CELL_CHUNK]` (columns past the range are ignored).
    /// Returns the share of the time spent in `fill`. Then [`Self::run_rest`]; whatever
    /// `fill` reads (Z) can be dropped in between.
    pub(crate) fn run_first(&mut self, fill: &Fill<'_>, workers: &Workers) -> Result<Duration, EngineError> {
        let (t, d) = (self.t, self.d);
        let start = Instant::now();
        let plane = self.row_off[self.gr];
        let c1 = self.first.cout;
        let (row_off, g) = (&self.row_off, &mut self.grids[0]);
        // The constant vector on every in-grid cell the rows hold, then the valid cells.
        for (co, v) in self.first_const.iter().enumerate() {
            for r in 0..d {
                let w = (row_off[r + 2] - row_off[r + 1]).saturating_sub(1).min(t);
                let at = co * plane + row_off[r + 1] + 1;
                g[at..at + w].fill(*v);
            }
        }
        let n = self.cells.len();
        let chunks = n.div_ceil(CELL_CHUNK);
        let (o, gemm, first_in_q) = (self.o, &self.first_gemm, self.first.in_q);
        let (first, cells) = (&self.first, &self.cells);
        let next_in = self.layers.first().and_then(|l| l.spec().in_q);
        let fill_time = AtomicDuration::default();
        let gemm_time = AtomicDuration::default();
        let job = |k: usize, s: &mut Scratch| {
            let h = &mut s.f;
            let range = k * CELL_CHUNK..((k + 1) * CELL_CHUNK).min(n);
            let t0 = Instant::now();
            h.clear();
            h.resize(o * CELL_CHUNK, 0.0);
            fill(range.clone(), h)?;
            if let Some(q) = first_in_q {
                for v in h.iter_mut() {
                    *v = q.apply(*v);
                }
            }
            fill_time.add(t0.elapsed());
            let t1 = Instant::now();
            let y = run_matmul(gemm, h, &[o, CELL_CHUNK])?;
            gemm_time.add(t1.elapsed());
            Ok(y)
        };
        let place = |k: usize, y: Tensor| {
            let y = plain_f32(&y)?;
            let cells = &cells[k * CELL_CHUNK..((k + 1) * CELL_CHUNK).min(n)];
            for co in 0..c1 {
                let (p, b) = (&mut g[co * plane..(co + 1) * plane], first.bias[co]);
                for (&(r, s), &v) in cells.iter().zip(&y[co * CELL_CHUNK..]) {
                    p[row_off[r as usize + 1] + s as usize + 1] = finish(first, next_in, v + b);
                }
            }
            Ok(())
        };
        workers.run(chunks, job, place)?;
        // Fill and first product run together in chunks: share the phase's wall time.
        let (f, gt) = (fill_time.get().as_secs_f64(), gemm_time.get().as_secs_f64());
        Ok(start.elapsed().mul_f64(if f + gt > 0.0 { f / (f + gt) } else { 0.0 }))
    }

    /// The layers after the first; `out` receives `[cout][D][T]`.
    pub(crate) fn run_rest(
        &mut self,
        workers: &Workers,
        out: &mut Vec<f32>,
        all_constant: bool,
    ) -> Result<(), EngineError> {
        let (t, d, gc) = (self.t, self.d, self.gc);
        let plane = self.row_off[self.gr];
        let row_off = &self.row_off;
        // Later layers, ping-pong.
        let mut src = 0usize;
        for (li, layer) in self.layers.iter().enumerate() {
            let ext = &self.extents[li];
            let next_in = self.layers.get(li + 1).and_then(|l| l.spec().in_q);
            let (a, b) = self.grids.split_at_mut(1);
            let (input, output) = if src == 0 { (&a[0], &mut b[0]) } else { (&b[0], &mut a[0]) };
            match layer {
                Layer::Winograd { spec, tiles, gemm } => {
                    let cout = spec.cout;
                    let job = |k: usize, s: &mut Scratch| {
                        winograd_chunk(spec, gemm, &tiles[k], input, plane, row_off, gc, next_in, &mut s.f)
                    };
                    let place = |k: usize, y: Vec<f32>| {
                        let mut at = 0;
                        for seg in &tiles[k] {
                            let w = seg.w as usize;
                            let c0 = 2 * seg.tj as usize;
                            let cols = (2 * w).min(t - c0);
                            for co in 0..cout {
                                for a in 0..2 {
                                    let r = 2 * seg.ti as usize + a;
                                    if r < d {
                                        let dst = co * plane + row_off[r + 1] + 1 + c0;
                                        let srcy = at + (co * 2 + a) * 2 * w;
                                        output[dst..dst + cols].copy_from_slice(&y[srcy..srcy + cols]);
                                    }
                                }
                            }
                            at += cout * 4 * w;
                        }
                        Ok(())
                    };
                    workers.run(tiles.len(), job, place)?;
                }
                Layer::Pointwise { spec } => {
                    // Row by row; each input row is read once for every output channel.
                    let (cin, cout) = (spec.cin, spec.cout);
                    let mut acc = vec![0.0f32; cout * t];
                    for (r, &w) in ext.iter().enumerate() {
                        if w == 0 {
                            continue;
                        }
                        for co in 0..cout {
                            acc[co * t..co * t + w].fill(spec.bias[co]);
                        }
                        for ci in 0..cin {
                            let at = ci * plane + row_off[r + 1] + 1;
                            let x = &input[at..at + w];
                            for co in 0..cout {
                                let wt = spec.weight[co * cin + ci];
                                for (a, x) in acc[co * t..co * t + w].iter_mut().zip(x) {
                                    *a += wt * x;
                                }
                            }
                        }
                        for co in 0..cout {
                            let at = co * plane + row_off[r + 1] + 1;
                            for (o, a) in output[at..at + w].iter_mut().zip(&acc[co * t..co * t + w]) {
                                *o = finish(spec, next_in, *a);
                            }
                        }
                    }
                }
            }
            src = 1 - src;
        }
        // The map: needed cells from the last grid, the rest from the constant field.
        let cout = self.out_channels();
        let last = &self.grids[src];
        let e = self.extents.last().cloned().unwrap_or_else(|| vec![t; d]);
        out.clear();
        out.resize(cout * d * t, 0.0);
        for co in 0..cout {
            for r in 0..d {
                let w = if all_constant { t } else { e[r] };
                let row = &mut out[(co * d + r) * t..(co * d + r + 1) * t];
                let at = co * plane + row_off[r + 1] + 1;
                row[..w].copy_from_slice(&last[at..at + w]);
                if w < t {
                    row[w..].copy_from_slice(&self.constant[(co * d + r) * t + w..(co * d + r + 1) * t]);
                }
            }
        }
        Ok(())
    }
}

/// The tract product of a 3×3 layer in Winograd form: `U` `[16][cout][cin]` (every
/// filter transformed, [`winograd_filter`]) times `V` `[16][cin][n]`.
fn winograd_gemm(spec: &ConvSpec) -> Result<Arc<TypedRunnableModel>, EngineError> {
    let mut u = vec![0.0f32; 16 * spec.cout * spec.cin];
    for co in 0..spec.cout {
        for ci in 0..spec.cin {
            let g = &spec.weight[(co * spec.cin + ci) * 9..(co * spec.cin + ci + 1) * 9];
            for (xi, v) in winograd_filter(g).iter().enumerate() {
                u[(xi * spec.cout + co) * spec.cin + ci] = *v;
            }
        }
    }
    matmul_model(u, 16, spec.cout, spec.cin, None)
}

/// One Winograd chunk: input transform of its tiles from `input`, the 16 products in
/// tract, output transform; returns per segment `[cout][2][2w]` (bias, quantization and
/// activation applied).
#[allow(clippy::too_many_arguments)]
fn winograd_chunk(
    spec: &ConvSpec,
    gemm: &Arc<TypedRunnableModel>,
    rows: &[Segment],
    input: &[f32],
    plane: usize,
    row_off: &[usize],
    gc: usize,
    next_in: Option<Quant>,
    v: &mut Vec<f32>,
) -> Result<Vec<f32>, EngineError> {
    let (cin, cout) = (spec.cin, spec.cout);
    let n: usize = rows.iter().map(|r| r.w as usize).sum();
    // V[ξ][ci][tile]. Every step below is a loop over contiguous slices (vectorised).
    v.clear();
    v.resize(16 * cin * n, 0.0);
    let wmax = rows.iter().map(|r| r.w as usize).max().unwrap_or(0);
    let mut tk = vec![0.0f32; 4 * gc];
    let mut eo = vec![0.0f32; 2 * (wmax + 1)];
    for ci in 0..cin {
        let p = &input[ci * plane..(ci + 1) * plane];
        let mut off = 0;
        for seg in rows {
            let w = seg.w as usize;
            let (r0, c0) = (2 * seg.ti as usize, 2 * seg.tj as usize);
            let cols = 2 * w + 2;
            let row = |i: usize| &p[row_off[r0 + i] + c0..row_off[r0 + i] + c0 + cols];
            // Bᵀ down the columns, for the whole segment at once.
            let (p0, p1, p2, p3) = (row(0), row(1), row(2), row(3));
            let (t0, rest) = tk.split_at_mut(gc);
            let (t1, rest) = rest.split_at_mut(gc);
            let (t2, t3) = rest.split_at_mut(gc);
            for ((((a, b), c), d), ((x0, x1), (x2, x3))) in p0.iter().zip(p1).zip(p2).zip(p3).zip(
                t0[..cols].iter_mut().zip(t1[..cols].iter_mut()).zip(t2[..cols].iter_mut().zip(t3[..cols].iter_mut())),
            ) {
                *x0 = a - c;
                *x1 = b + c;
                *x2 = c - b;
                *x3 = b - d;
            }
            // B across each tile's four columns: with e = even and o = odd columns, tile j
            // reads (e[j], o[j], e[j+1], o[j+1]).
            for (kk, t) in [&*t0, &*t1, &*t2, &*t3].into_iter().enumerate() {
                let (e, o) = eo.split_at_mut(wmax + 1);
                for ((pair, e), o) in t[..cols].chunks_exact(2).zip(e.iter_mut()).zip(o.iter_mut()) {
                    *e = pair[0];
                    *o = pair[1];
                }
                let (e0, e1, o0, o1) = (&e[..w], &e[1..w + 1], &o[..w], &o[1..w + 1]);
                let dst = |q: usize| ((4 * kk + q) * cin + ci) * n + off;
                for ((x, a), b) in v[dst(0)..dst(0) + w].iter_mut().zip(e0).zip(e1) {
                    *x = a - b;
                }
                for ((x, a), b) in v[dst(1)..dst(1) + w].iter_mut().zip(o0).zip(e1) {
                    *x = a + b;
                }
                for ((x, a), b) in v[dst(2)..dst(2) + w].iter_mut().zip(e1).zip(o0) {
                    *x = a - b;
                }
                for ((x, a), b) in v[dst(3)..dst(3) + w].iter_mut().zip(o0).zip(o1) {
                    *x = a - b;
                }
            }
            off += w;
        }
    }
    let m = run_matmul(gemm, v, &[16, cin, n])?;
    let m = plain_f32(&m)?;
    let plain = spec.out_q.is_none() && next_in.is_none();
    let mut y = Vec::with_capacity(cout * 4 * n);
    let mut u = vec![0.0f32; 8 * wmax];
    let mut off = 0;
    for seg in rows {
        let w = seg.w as usize;
        for co in 0..cout {
            let ms = |xi: usize| &m[(xi * cout + co) * n + off..(xi * cout + co) * n + off + w];
            // Aᵀ across: u[2i] = m[4i] + m[4i+1] + m[4i+2], u[2i+1] = m[4i+1] − m[4i+2] − m[4i+3].
            for i in 0..4 {
                let (a, b, c, d) = (ms(4 * i), ms(4 * i + 1), ms(4 * i + 2), ms(4 * i + 3));
                let (ua, ub) = u[2 * i * wmax..(2 * i + 2) * wmax].split_at_mut(wmax);
                for ((((xa, xb), a), b), (c, d)) in
                    ua[..w].iter_mut().zip(ub[..w].iter_mut()).zip(a).zip(b).zip(c.iter().zip(d))
                {
                    *xa = a + b + c;
                    *xb = b - c - d;
                }
            }
            // A down: row 0 = u0 + u1 + u2, row 1 = u1 − u2 − u3 (per output column b).
            let bias = spec.bias[co];
            let at = y.len();
            y.resize(at + 4 * w, 0.0);
            let (y0, y1) = y[at..].split_at_mut(2 * w);
            let uu = |i: usize, b: usize| &u[(2 * i + b) * wmax..(2 * i + b) * wmax + w];
            for b in 0..2 {
                let (u0, u1, u2, u3) = (uu(0, b), uu(1, b), uu(2, b), uu(3, b));
                for (j, (((a0, a1), a2), a3)) in u0.iter().zip(u1).zip(u2).zip(u3).enumerate() {
                    y0[2 * j + b] = a0 + a1 + a2 + bias;
                    y1[2 * j + b] = a1 - a2 - a3 + bias;
                }
            }
            let out = &mut y[at..at + 4 * w];
            if plain {
                match spec.act {
                    Act::Relu => out.iter_mut().for_each(|x| *x = x.max(0.0)),
                    Act::None => {}
                    Act::Sigmoid => out.iter_mut().for_each(|x| *x = Act::Sigmoid.apply(*x)),
                }
            } else {
                out.iter_mut().for_each(|x| *x = finish(spec, next_in, *x));
            }
        }
        off += w;
    }
    Ok(y)
}

/// Writes `H` for a range of valid cells into a `[O][CELL_CHUNK]` buffer.
pub(crate) type Fill<'a> = dyn Fn(Range<usize>, &mut [f32]) -> Result<(), EngineError> + Sync + 'a;

impl StageB for Tail {
    fn form(&self) -> StageBForm {
        StageBForm::Winograd
    }

    /// The projection (Z whole), then H in chunks of cells, each chunk straight into the
    /// first layer's product (H as floats would be 10 MB whole: more than Z), then the
    /// later layers.
    fn run(
        &mut self,
        bm: &BmLayer,
        yt: &[f32],
        workers: &Workers,
        confidence: &mut Vec<f32>,
    ) -> Result<Phases, EngineError> {
        let t0 = Instant::now();
        let z = bm.projection.run(yt, workers)?;
        let projection = t0.elapsed();
        let t1 = Instant::now();
        let (kernel, zs) = (&bm.kernel, z.as_slice());
        let fill = |cells: Range<usize>, h: &mut [f32]| kernel.run_cells(zs, h, cells, CELL_CHUNK, None);
        let bm_time = self.run_first(&fill, workers)?;
        // Z is no longer needed: release it before the rest of stage B.
        drop(z);
        self.run_rest(workers, confidence, false)?;
        Ok(Phases { projection, bm: bm_time, stage_b: t1.elapsed().saturating_sub(bm_time) })
    }

    fn run_h(&mut self, h: &[f32], workers: &Workers, confidence: &mut Vec<f32>) -> Result<(), EngineError> {
        let (o, d, t) = (self.o, self.d, self.t);
        check_h(h, o, d, t)?;
        let cells = self.cells().to_vec();
        let fill = |range: Range<usize>, hc: &mut [f32]| {
            for (i, &(r, s)) in cells[range].iter().enumerate() {
                for oo in 0..o {
                    hc[oo * CELL_CHUNK + i] = h[(oo * d + r as usize) * t + s as usize];
                }
            }
            Ok(())
        };
        self.run_first(&fill, workers)?;
        self.run_rest(workers, confidence, false)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Direct 3×3 "same" correlation of one channel.
    fn conv3(x: &[f32], h: usize, w: usize, g: &[f32]) -> Vec<f32> {
        let mut y = vec![0.0f32; h * w];
        for i in 0..h {
            for j in 0..w {
                let mut s = 0.0f64;
                for u in 0..3 {
                    for v in 0..3 {
                        let (ii, jj) = (i as i64 + u as i64 - 1, j as i64 + v as i64 - 1);
                        if ii >= 0 && jj >= 0 && (ii as usize) < h && (jj as usize) < w {
                            s += (g[3 * u + v] * x[ii as usize * w + jj as usize]) as f64;
                        }
                    }
                }
                y[i * w + j] = s as f32;
            }
        }
        y
    }

    /// A pseudo-random value in `[−scale/2, scale/2)` (xorshift).
    pub(crate) fn rand(seed: &mut u64, scale: f32) -> f32 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        ((*seed >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * scale
    }

    fn spec(seed: &mut u64, cout: usize, cin: usize, k: usize, act: Act) -> ConvSpec {
        let scale = 2.0 / ((cin * k * k) as f32).sqrt();
        let weight = (0..cout * cin * k * k).map(|_| rand(seed, scale)).collect();
        ConvSpec { act, ..ConvSpec::float(cout, cin, k, weight, (0..cout).map(|_| rand(seed, 0.2)).collect()) }
    }

    /// The tail computed densely: every layer over the whole `d × t` map, zero padding.
    fn dense(convs: &[ConvSpec], h: &[f32], d: usize, t: usize) -> Vec<f32> {
        let mut x = h.to_vec();
        for c in convs {
            if let Some(q) = c.in_q {
                x.iter_mut().for_each(|v| *v = q.apply(*v));
            }
            let mut y = vec![0.0f32; c.cout * d * t];
            for co in 0..c.cout {
                for r in 0..d {
                    for s in 0..t {
                        let mut acc = c.bias[co] as f64;
                        for ci in 0..c.cin {
                            for u in 0..c.kernel {
                                for v in 0..c.kernel {
                                    let (rr, ss) = (
                                        r as i64 + u as i64 - (c.kernel / 2) as i64,
                                        s as i64 + v as i64 - (c.kernel / 2) as i64,
                                    );
                                    if rr >= 0 && ss >= 0 && (rr as usize) < d && (ss as usize) < t {
                                        acc += (c.weight[((co * c.cin + ci) * c.kernel + u) * c.kernel + v]
                                            * x[(ci * d + rr as usize) * t + ss as usize])
                                            as f64;
                                    }
                                }
                            }
                        }
                        let v = c.out_q.map_or(acc as f32, |q| q.apply(acc as f32));
                        y[(co * d + r) * t + s] = c.act.apply(v);
                    }
                }
            }
            x = y;
        }
        x
    }

    /// A random BM output for a `d × t` map with `o` channels: the BM bias, the valid cells
    /// (d-major) and `H` `[o][d][t]` — ReLU'd values of spread `spread` on valid cells,
    /// `relu(bias)` elsewhere.
    pub(crate) fn random_map(
        seed: &mut u64,
        o: usize,
        d: usize,
        t: usize,
        spread: f32,
    ) -> (Vec<f32>, Vec<(u16, u16)>, Vec<f32>) {
        let bm_bias: Vec<f32> = (0..o).map(|_| rand(seed, 0.5)).collect();
        let cells: Vec<(u16, u16)> =
            (0..d).flat_map(|r| (0..t).filter(move |s| s + r < t).map(move |s| (r as u16, s as u16))).collect();
        let mut h = vec![0.0f32; o * d * t];
        for oo in 0..o {
            for r in 0..d {
                for s in 0..t {
                    h[(oo * d + r) * t + s] =
                        if s + r < t { rand(seed, spread).max(0.0) } else { bm_bias[oo].max(0.0) };
                }
            }
        }
        (bm_bias, cells, h)
    }

    #[test]
    fn tail_equals_dense_computation() {
        let mut seed = 0x1234_5678_9abc_def0u64;
        for (d, t, quantized) in
            [(9usize, 13usize, false), (8, 8, false), (13, 13, true), (5, 16, false), (9, 13, true)]
        {
            let o = 12;
            let mut convs = vec![
                spec(&mut seed, 8, o, 1, Act::Relu),
                spec(&mut seed, 8, 8, 3, Act::Relu),
                spec(&mut seed, 6, 8, 3, Act::Relu),
                spec(&mut seed, 2, 6, 1, Act::Sigmoid),
            ];
            if quantized {
                // onnxruntime's QOperator form: every convolution's input and output on an
                // int8 grid (coarse steps, so that rounding shows).
                for (k, c) in convs.iter_mut().enumerate() {
                    let q = |scale: f32| Some(Quant { scale, zp: 0.0, lo: -128.0, hi: 127.0 });
                    c.in_q = q(0.02 + 0.01 * k as f32);
                    c.out_q = q(0.03);
                }
            }
            let (bm_bias, cells, h) = random_map(&mut seed, o, d, t, 2.0);
            let want = dense(&convs, &h, d, t);
            for chunk in [1usize, 3, 7, 64] {
                let mut tail = Tail::new(convs.clone(), cells.clone(), t, d, &bm_bias, chunk).unwrap();
                for workers in [1usize, 2, 3] {
                    let workers = &Workers::new(workers).unwrap();
                    let cells = tail.cells().to_vec();
                    let fill = |range: Range<usize>, hc: &mut [f32]| {
                        for (i, &(r, s)) in cells[range].iter().enumerate() {
                            for oo in 0..o {
                                hc[oo * CELL_CHUNK + i] = h[(oo * d + r as usize) * t + s as usize];
                            }
                        }
                        Ok(())
                    };
                    let mut got = Vec::new();
                    // Twice: stale buffers from a previous run must not leak into the next.
                    for _ in 0..2 {
                        tail.run_first(&fill, workers).unwrap();
                        tail.run_rest(workers, &mut got, false).unwrap();
                        let err = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
                        assert_eq!(got.len(), want.len());
                        // Quantized: a float sum landing on the other side of a rounding
                        // boundary moves a value by one step (0.03 here), rarely.
                        let tol = if quantized { 0.031 } else { 1e-5 };
                        assert!(err < tol, "d {d} t {t} chunk {chunk} workers {}: max |Δ| {err}", workers.count());
                    }
                }
            }
        }
    }

    #[test]
    fn quant_rounds_half_to_even_and_saturates() {
        let q = Quant { scale: 0.5, zp: 0.0, lo: -128.0, hi: 127.0 };
        for (x, want) in
            [(0.25f32, 0.0f32), (0.75, 1.0), (1.25, 1.0), (-0.25, -0.0), (-0.75, -1.0), (100.0, 63.5), (-100.0, -64.0)]
        {
            assert_eq!(q.apply(x), want, "{x}");
        }
        // The bit-reading i8 form equals the float level, saturation and ties included.
        let mut seed = 3u64;
        for i in 0..20_000 {
            let x = if i < 1000 { (i as f32 - 500.0) * 0.25 } else { rand(&mut seed, 400.0) };
            assert_eq!(q.level_i8(x), q.level(x) as i8, "{x}");
        }
        let u = Quant { scale: 0.1, zp: 10.0, lo: 0.0, hi: 255.0 };
        let mut seed = 7u64;
        for _ in 0..10_000 {
            let x = rand(&mut seed, 60.0);
            let want = (((x / 0.1f32).round_ties_even() + 10.0).clamp(0.0, 255.0) - 10.0) * 0.1;
            assert_eq!(u.apply(x), want, "{x}");
        }
    }

    #[test]
    fn tile_chunks_cover_every_tile_once() {
        let widths = [5usize, 0, 3, 7, 1];
        for chunk in 1..10 {
            let chunks = tile_chunks(&widths, chunk);
            let mut seen = vec![vec![0; 7]; widths.len()];
            for (k, c) in chunks.iter().enumerate() {
                let n: usize = c.iter().map(|s| s.w as usize).sum();
                assert!(n == chunk || k + 1 == chunks.len(), "chunk {chunk}: {chunks:?}");
                for s in c {
                    for j in s.tj..s.tj + s.w {
                        seen[s.ti as usize][j as usize] += 1;
                    }
                }
            }
            for (ti, &w) in widths.iter().enumerate() {
                assert!(seen[ti][..w].iter().all(|&x| x == 1) && seen[ti][w..].iter().all(|&x| x == 0));
            }
        }
    }

    /// The production chunk (`winograd_chunk`: input transform, tract's 16 products, output
    /// transform, bias) against a direct 3×3 "same" correlation, on a zero-padded grid of
    /// 4 × 6 outputs cut into two segments that start at different tiles.
    #[test]
    fn winograd_chunk_equals_direct_correlation() {
        let (h, w, cin, cout) = (4usize, 6usize, 3usize, 2usize);
        let mut seed = 0x5eed_u64;
        let spec = spec(&mut seed, cout, cin, 3, Act::None);
        let x: Vec<f32> = (0..cin * h * w).map(|_| rand(&mut seed, 2.0)).collect();
        // The grid: one cell of zero padding around each channel's map, rows of gc values.
        let (gr, gc) = (h + 2, w + 2);
        let plane = gr * gc;
        let mut grid = vec![0.0f32; cin * plane];
        for ci in 0..cin {
            for r in 0..h {
                for c in 0..w {
                    grid[ci * plane + (r + 1) * gc + c + 1] = x[(ci * h + r) * w + c];
                }
            }
        }
        let row_off: Vec<usize> = (0..gr).map(|r| r * gc).collect();
        let segments = [Segment { ti: 0, tj: 0, w: 3 }, Segment { ti: 1, tj: 1, w: 2 }];
        let gemm = winograd_gemm(&spec).unwrap();
        let mut v = Vec::new();
        let y = winograd_chunk(&spec, &gemm, &segments, &grid, plane, &row_off, gc, None, &mut v).unwrap();
        // Direct: Σ_ci conv3(x_ci, g_{co,ci}) + bias, in f64 per channel (conv3).
        let mut want = vec![0.0f32; cout * h * w];
        let mut mag = vec![0.0f32; cout * h * w];
        for co in 0..cout {
            for ci in 0..cin {
                let g = &spec.weight[(co * cin + ci) * 9..(co * cin + ci + 1) * 9];
                let xc = &x[ci * h * w..(ci + 1) * h * w];
                let gabs: Vec<f32> = g.iter().map(|v| v.abs()).collect();
                let xabs: Vec<f32> = xc.iter().map(|v| v.abs()).collect();
                for (i, (d, m)) in conv3(xc, h, w, g).iter().zip(conv3(&xabs, h, w, &gabs)).enumerate() {
                    want[co * h * w + i] += d;
                    mag[co * h * w + i] += m;
                }
            }
            for i in 0..h * w {
                want[co * h * w + i] += spec.bias[co];
            }
        }
        // Output: per segment [cout][2][2w]. The transforms add and subtract at most 4 terms
        // per stage around one f32 product sum: a few ulps of the sum of magnitudes.
        let mut off = 0;
        for seg in segments {
            let sw = seg.w as usize;
            for co in 0..cout {
                for rr in 0..2 {
                    for cc in 0..2 * sw {
                        let got = y[off + (co * 2 + rr) * 2 * sw + cc];
                        let at = co * h * w + (2 * seg.ti as usize + rr) * w + 2 * seg.tj as usize + cc;
                        let tol = 16.0 * f32::EPSILON * (mag[at] + spec.bias[co].abs());
                        assert!(
                            (got - want[at]).abs() <= tol,
                            "seg {seg:?} co {co} ({rr}, {cc}): {got} vs {}",
                            want[at]
                        );
                    }
                }
            }
            off += cout * 4 * sw;
        }
        assert_eq!(off, y.len());
    }
}

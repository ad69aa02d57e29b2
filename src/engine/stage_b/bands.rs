//! Stage B as tract runs the exported graph, in row bands of the map: for graphs the
//! sparse tails do not take, and on request (`EngineOptions::tract_stage_b`).
//!
//! Each band has a halo of the stage's receptive-field radius on either side and runs on
//! one worker, so that its buffers (H and tract's packed copy of it, 20 MB each at the
//! paper configuration when whole) stay small. Columns of a band whose receptive field
//! holds only invalid cells come from a constant field computed once at load.

use super::{check_h, BmLayer, Phases, StageB};
use crate::engine::error::EngineError;
use crate::engine::info::StageBForm;
use crate::engine::product::build_stage;
use crate::engine::product::plain;
use crate::engine::workers::{Scratch, Workers};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tract_core::model::TypedRunnableModel;
use tract_onnx::pb;
use tract_onnx::prelude::*;

/// Default rows per stage-B band.
pub const DEFAULT_BAND_ROWS: usize = 25;

/// One stage-B band: output rows `[r0, r1)`, computed from H rows `[i0, i0 + input rows)`
/// and its first `cols` columns by `models[model]`; output columns `≥ exact` come from
/// the constant field (see `Engine`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Band {
    /// First output row.
    pub r0: usize,
    /// End of the output rows.
    pub r1: usize,
    /// First input row.
    pub i0: usize,
    /// Input (and run) columns.
    pub cols: usize,
    /// Output columns taken from the run (the rest from the constant field).
    pub exact: usize,
    model: usize,
}

/// Bands for a `d × t` map with stage B's receptive-field radius `halo` (None: one band).
/// Returns the input rows per band, the bands and the distinct column counts (one tract
/// model each).
pub(crate) fn plan_bands(d: usize, t: usize, band_rows: usize, halo: Option<usize>) -> (usize, Vec<Band>, Vec<usize>) {
    let Some(h) = halo else {
        return (d, vec![Band { r0: 0, r1: d, i0: 0, cols: t, exact: t, model: 0 }], vec![t]);
    };
    let band_rows = band_rows.clamp(1, d);
    let n = d.div_ceil(band_rows);
    let per = d.div_ceil(n);
    let input = (per + 2 * h).min(d);
    let mut widths: Vec<usize> = Vec::new();
    let mut bands = Vec::new();
    for k in 0..n {
        let (r0, r1) = (k * per, ((k + 1) * per).min(d));
        if r0 >= r1 {
            continue;
        }
        let i0 = r0.saturating_sub(h).min(d - input);
        // Cells (r, s) with s + r ≥ T + 2h see only invalid cells (s' + r' ≥ T) within
        // their receptive field: their outputs are the constant field's. Exact outputs are
        // needed below that, which the run gives for s < cols − h.
        let cols = (t + 3 * h).saturating_sub(r0).min(t);
        let exact = if cols == t { t } else { cols - h };
        let model = match widths.iter().position(|&w| w == cols) {
            Some(m) => m,
            None => {
                widths.push(cols);
                widths.len() - 1
            }
        };
        bands.push(Band { r0, r1, i0, cols, exact, model });
    }
    (input, bands, widths)
}

/// Stage B in tract's row bands.
pub(crate) struct Bands {
    /// `O`, `D`, `T`.
    o: usize,
    d: usize,
    t: usize,
    /// Rows of H each band reads.
    input: usize,
    bands: Vec<Band>,
    /// One model per distinct band width (the first is the full width).
    models: Vec<Arc<TypedRunnableModel>>,
    /// `[2, input rows, T]`: stage B's output on an H of invalid cells only
    /// (`relu(bias)` everywhere).
    constant_field: Vec<f32>,
}

impl Bands {
    /// Builds one tract model per band width from the stage-B graph, and the constant field.
    pub(crate) fn new(
        stage_b: pb::ModelProto,
        bias: &[f32],
        (d, t): (usize, usize),
        band_rows: usize,
        halo: Option<usize>,
    ) -> Result<Bands, EngineError> {
        let o = bias.len();
        let (input, bands, widths) = plan_bands(d, t, band_rows, halo);
        let mut models = Vec::with_capacity(widths.len());
        for &w in &widths {
            models.push(build_stage(stage_b.clone(), "stage B", &[1, o, input, w])?);
        }
        drop(stage_b);
        let constant_field = if bands.iter().any(|b| b.exact < t) {
            let mut h = vec![0.0f32; o * input * t];
            for (oo, v) in bias.iter().enumerate() {
                h[oo * input * t..(oo + 1) * input * t].fill(v.max(0.0));
            }
            let x = Tensor::from_shape(&[1, o, input, t], &h).map_err(|e| EngineError::tract("constant field", e))?;
            let out =
                models[0].run(tvec!(x.into_tvalue())).map_err(|e| EngineError::tract("stage B (constant field)", e))?;
            plain(&out[0], "constant field", 2 * input * t)?
        } else {
            Vec::new()
        };
        log::info!("stage B: tract in {} band(s) of {} input rows, widths {:?}", bands.len(), input, widths);
        Ok(Bands { o, d, t, input, bands, models, constant_field })
    }

    /// Writes a band's output rows into `confidence`: columns below `exact` from the run
    /// `c` (`[2, input rows, cols]`), the rest from the constant field.
    fn place(&self, confidence: &mut [f32], c: &[f32], band: Band) {
        let (d, t) = (self.d, self.t);
        let (hb, w) = (self.input, band.cols);
        for ch in 0..2 {
            for r in band.r0..band.r1 {
                let row = &mut confidence[(ch * d + r) * t..(ch * d + r + 1) * t];
                let local = ch * hb + r - band.i0;
                row[..band.exact].copy_from_slice(&c[local * w..local * w + band.exact]);
                if band.exact < t {
                    row[band.exact..].copy_from_slice(&self.constant_field[local * t + band.exact..(local + 1) * t]);
                }
            }
        }
    }
}

impl StageB for Bands {
    fn form(&self) -> StageBForm {
        StageBForm::TractBands
    }

    fn bands(&self) -> (&[Band], usize) {
        (&self.bands, self.input)
    }

    /// The projection (Z whole), then the BM kernel and stage B per band. With one band it
    /// runs here with every worker in the kernel; otherwise the workers take the bands,
    /// widest (costliest) first, each running the BM kernel and tract single-threaded,
    /// and the calling thread places each band's rows as it comes. The phase's wall time
    /// is shared between BM and stage B in proportion to the time the workers spent in each.
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
        confidence.clear();
        confidence.resize(2 * self.d * self.t, 0.0);
        let t1 = Instant::now();
        let (o, hb, z) = (self.o, self.input, z.as_slice());
        let (kernel, models, bands) = (&bm.kernel, &self.models, &self.bands);
        let inner = (bands.len() == 1).then_some(workers);
        let mut order: Vec<usize> = (0..bands.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(bands[i].cols));
        let job = |k: usize, s: &mut Scratch| -> Result<(Vec<f32>, Duration, Duration), EngineError> {
            let h = &mut s.f;
            let band = &bands[order[k]];
            let t0 = Instant::now();
            h.clear();
            h.resize(o * hb * band.cols, 0.0);
            kernel.run_rows(z, h, band.i0..band.i0 + hb, band.cols, inner)?;
            let bm = t0.elapsed();
            let t2 = Instant::now();
            let input = Tensor::from_shape(&[1, o, hb, band.cols], h).map_err(|e| EngineError::tract("H", e))?;
            let out =
                models[band.model].run(tvec!(input.into_tvalue())).map_err(|e| EngineError::tract("stage B", e))?;
            Ok((plain(&out[0], "confidence", 2 * hb * band.cols)?, bm, t2.elapsed()))
        };
        let (mut bm_busy, mut b_busy) = (Duration::ZERO, Duration::ZERO);
        let mut place = |k: usize, (c, a, b): (Vec<f32>, Duration, Duration)| {
            self.place(confidence, &c, self.bands[order[k]]);
            bm_busy += a;
            b_busy += b;
            Ok(())
        };
        if bands.len() == 1 {
            let mut scratch = Scratch::default();
            place(0, job(0, &mut scratch)?)?;
        } else {
            workers.run(bands.len(), job, &mut place)?;
        }
        let wall = t1.elapsed();
        let busy = (bm_busy + b_busy).as_secs_f64();
        let share = if busy > 0.0 { bm_busy.as_secs_f64() / busy } else { 0.0 };
        let bm_t = wall.mul_f64(share);
        Ok(Phases { projection, bm: bm_t, stage_b: wall - bm_t })
    }

    fn run_h(&mut self, h: &[f32], _workers: &Workers, confidence: &mut Vec<f32>) -> Result<(), EngineError> {
        let (o, d, t, hb) = (self.o, self.d, self.t, self.input);
        check_h(h, o, d, t)?;
        confidence.clear();
        confidence.resize(2 * d * t, 0.0);
        for band in self.bands.clone() {
            let w = band.cols;
            let mut input = vec![0.0f32; o * hb * w];
            for oo in 0..o {
                for r in 0..hb {
                    input[(oo * hb + r) * w..(oo * hb + r + 1) * w]
                        .copy_from_slice(&h[(oo * d + band.i0 + r) * t..(oo * d + band.i0 + r) * t + w]);
                }
            }
            let input =
                Tensor::from_shape(&[1, o, hb, w], &input).map_err(|e| EngineError::tract("stage B input", e))?;
            let out = self.models[band.model]
                .run(tvec!(input.into_tvalue()))
                .map_err(|e| EngineError::tract("stage B", e))?;
            let c = plain(&out[0], "confidence", 2 * hb * w)?;
            self.place(confidence, &c, band);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bands_cover_the_map_with_exact_halos() {
        for halo in [1usize, 2, 3] {
            for d in 1..40 {
                for t in [d, d + 7] {
                    for rows in 1..=d {
                        let (input, bands, widths) = plan_bands(d, t, rows, Some(halo));
                        let mut covered = vec![0; d];
                        for b in &bands {
                            assert!(b.i0 + input <= d && b.cols <= t && widths[b.model] == b.cols);
                            for (r, cov) in covered.iter_mut().enumerate().take(b.r1).skip(b.r0) {
                                *cov += 1;
                                // Context rows on each side, or the map's own border.
                                assert!(r >= b.i0 + halo || b.i0 == 0, "d {d} rows {rows}: {bands:?}");
                                assert!(r + halo < b.i0 + input || b.i0 + input == d, "d {d} rows {rows}: {bands:?}");
                                // Columns from the constant field see only invalid cells.
                                if b.exact < t {
                                    assert!(b.exact + halo <= b.cols);
                                    assert!(b.exact + r >= t + 2 * halo, "d {d} t {t} r {r}: {b:?}");
                                }
                            }
                        }
                        assert!(covered.iter().all(|&c| c == 1), "d {d} rows {rows}");
                    }
                }
            }
        }
        let (input, bands, widths) = plan_bands(100, 100, 25, Some(2));
        assert_eq!(input, 29);
        assert_eq!(widths, [100, 81, 56, 31]);
        assert_eq!(bands.len(), 4);
    }
}

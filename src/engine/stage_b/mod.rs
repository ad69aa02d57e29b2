//! Stage B — the 2-d convolutions from the BM layer's output `H` to the confidence map —
//! in one of three forms behind one trait ([`StageB`]):
//!
//! * [`winograd`]: the sparse float tail (valid cells only, 3×3s in Winograd form);
//! * [`integer`]: the sparse integer tail for symmetric int8 models;
//! * [`bands`]: tract running the exported stage-B graph in row bands (any other graph,
//!   or on request).
//!
//! Each form also owns how the BM layer feeds it: the float tail samples `Z` in chunks of
//! cells straight into its first product, the integer tail projects and samples block by
//! block into int8 levels, the bands sample one band of rows at a time.

pub(crate) mod bands;
pub(crate) mod integer;
pub(crate) mod winograd;

pub use bands::{Band, DEFAULT_BAND_ROWS};

use crate::engine::bm::BmKernel;
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::info::StageBForm;
use crate::engine::projection::Projector;
use crate::engine::workers::Workers;
use std::time::Duration;

/// The BM layer: the projection `Z = yᵀ · Wz` and the sampling kernel `Z → H`.
pub(crate) struct BmLayer {
    pub projection: Projector,
    pub kernel: BmKernel,
}

/// Wall time of the phases after stage A.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Phases {
    /// The projection (counted as stage A's).
    pub projection: Duration,
    /// The BM kernel.
    pub bm: Duration,
    /// Stage B proper.
    pub stage_b: Duration,
}

/// One form of stage B, with the BM layer in front of it.
pub(crate) trait StageB: Send {
    /// Which form this is.
    fn form(&self) -> StageBForm;

    /// From stage A's `yᵀ` (`[T][P]`) to `confidence` (`[2, D, T]`, resized): the
    /// projection, the BM layer and stage B.
    fn run(
        &mut self,
        bm: &BmLayer,
        yt: &[f32],
        workers: &Workers,
        confidence: &mut Vec<f32>,
    ) -> Result<Phases, EngineError>;

    /// Stage B alone from a whole `H` (`[O, D, T]`), for benchmarks.
    fn run_h(&mut self, h: &[f32], workers: &Workers, confidence: &mut Vec<f32>) -> Result<(), EngineError>;

    /// How the int8 products run, layer by layer (empty but for [`integer::QTail`]).
    fn int8_arithmetics(&self) -> Vec<crate::engine::cpu::Int8Arithmetic> {
        Vec::new()
    }

    /// The row bands and the H rows each reads (none but for [`bands::Bands`]).
    fn bands(&self) -> (&[Band], usize) {
        (&[], 0)
    }
}

/// `h` must be a whole `H` of `O·D·T` values (`StageB::run_h`).
pub(crate) fn check_h(h: &[f32], o: usize, d: usize, t: usize) -> Result<(), EngineError> {
    if h.len() == o * d * t {
        Ok(())
    } else {
        Err(EngineError::new(
            EngineErrorKind::Input,
            format!("H has {} values, expected O·D·T = {}", h.len(), o * d * t),
        ))
    }
}

//! The inference engine: a standard BMN export (or its edge form) run as
//!
//! 1. **stage A** (tract): `x → start, end, yᵀ` — the 1-d convolutions and both heads;
//! 2. the **projection** `Z = yᵀ · Wz` (the Conv3d weights applied before sampling), one
//!    tract matrix product per block of 32 output channels, on the worker threads;
//! 3. the **BM kernel** (Rust, [`bm::BmKernel`]): sparse sampling of `Z` through the
//!    core's [`BmTable`](crate::bm::BmTable), valid cells only, fused in chunks with
//! 4. **stage B** as the sparse Winograd tail (`stage_b::winograd`): the first 1×1 convolution as one
//!    product over the valid cells, the 3×3 convolutions in Winograd F(2×2, 3×3) form over
//!    the cells the output depends on, the rest of the map from a constant field.
//!
//! Symmetric int8 models run steps 2–4 in integers instead (`stage_b::integer`): per block of 32
//! channels, each worker projects (`MatMulInteger`) and samples its block of `Z` at once
//! (`Z` never exists whole), writing `H` as int8 levels; every stage-B layer is then an
//! integer product (3×3s by im2col over the needed cells) with onnxruntime's
//! requantization between layers.
//!
//! ## Why the graph is not run as exported
//!
//! The exported BM layer is a MatMul with a dense `[T, N·D·T]` constant followed by a Conv3d
//! whose kernel spans the `N` axis: ~54 GMAC and a 328 MB intermediate per window at the
//! paper configuration. Both are linear, so they are reassociated:
//! `H[o,d,s] = b[o] + Σ_n Σ_t Z[o,n,t] · M[t,n,d,s]` with `Z = W·y`, and the sum over the
//! mask's ≤ 2K non-zeros per bin is the BM kernel. The dense mask is checked against the
//! table once at load (it must be a BM mask) and then dropped; neither the mask nor the
//! `[P, N, D, T]` tensor nor the whole of `H` ever exists.
//!
//! Stage B is not run as exported either: half of the map is invalid cells whose `H` is the
//! constant `relu(bias)`, so the first 1×1 layer maps them all to one vector and only the
//! cells within the receptive field of a valid cell differ from a constant field. The tail
//! does ~1.1 GMAC per window where the exported convolutions do 3.6. Stage B graphs that are
//! not a chain of 1×1 / 3×3 "same" convolutions with Relu/Sigmoid (float `Conv`, or
//! `QLinearConv` between Quantize/DequantizeLinear) run in tract instead, in row bands
//! ([`EngineOptions::band_rows`]), also on request ([`EngineOptions::tract_stage_b`]).
//!
//! ## Models
//!
//! * **Standard** exports (PyTorch or Paddle variant, opset 11–17, initializers possibly
//!   listed as graph inputs, static or dynamic batch): the pattern is found structurally
//!   (`onnx::site`), `K` and `r` are recovered by matching the mask against the table.
//! * **Edge** format (`bmn-edge convert`): the same graph with the BM chain replaced by one
//!   `ai.bmn_edge.BoundaryMatching` node and `(T, D, N, K, r)`, the variant and the
//!   convention in `metadata_props`. About 20 MB instead of 148 MB (5 MB all-int8).
//! * **Quantized** (QOperator, s8 symmetric per tensor): stage A's `QLinearConv`s run in
//!   tract's integer kernels; a quantized Conv3d keeps its int8 weights (the projection is a
//!   `MatMulInteger` `Wᵀ · y_q` of `y` quantized with its input scale); stage B runs in the
//!   integer tail (`stage_b::integer`), exactly a dense integer computation and equal to tract's
//!   `QLinearConv` to 1.2e-7 on the fixture. A quantized stage B with asymmetric or uint8
//!   activations runs in the float tail with the quantization emulated; other forms run as
//!   tract runs them, with a warning ([`ModelInfo::warnings`]).
//!
//! ## Threads
//!
//! [`EngineOptions::threads`] sets tract's default executor (stage A's products) and the
//! engine's worker pool: the projection's blocks, the first layer's cell chunks and the
//! Winograd tile chunks are spread over the workers, each running tract single-threaded
//! (tract's own threading gains little on these products), while the calling thread places
//! the results.
//!
//! ## Diagnostics
//!
//! `BMN_EDGE_TRACE_RSS=1` prints the resident set size after each loading step and window;
//! `BMN_EDGE_DUMP_PLAN=1` prints tract's optimized stage graphs.

//!
//! ## Layout
//!
//! One concern per file, in the order of the data flow:
//!
//! | module | what |
//! |---|---|
//! | `mod.rs` | this facade: [`Engine`], [`EngineOptions`], [`WindowOutputs`] |
//! | `error.rs` | [`EngineError`] with a matchable [`EngineErrorKind`] and the source kept |
//! | `info.rs` | [`ModelInfo`] and its enums ([`ModelFormat`], [`Variant`], [`StageBForm`], [`WindowMode`]) |
//! | `load.rs` | reading, analysing, converting, building an [`Engine`] |
//! | `onnx/` | the ONNX side: `wire` (protobuf reader that keeps the mask out of the decoded copy), `index`, `site` (finding the BM layer), `split` (stage A / BM weights / stage B), `edge` (the edge format and its metadata), `chain` (stage B's convolutions), `exact_float` (int8 convolutions as float on their levels), `weights` (constants checked at load), `qoperator` (onnxruntime's QOperator contrib ops, QDQ convolutions) |
//! | `bm/` | the BM layer: `plan` (the mask's taps, mask identification), `kernel` (the sampling kernel, one audited `unsafe` call), `zbuf` |
//! | `projection.rs` | `Z = yᵀ · Wz`, block by block |
//! | `stage_b/` | stage B behind one trait: `winograd` (float), `integer` (int8), `bands` (tract) |
//! | `quant.rs` | int8 quantization arithmetic (onnxruntime's rounding and saturation) |
//! | `cpu.rs` | what the CPU offers for int8 products, and which [`Int8Arithmetic`] to use |
//! | `product.rs` | one-node tract models for the matrix products; the int8 product in its three arithmetics |
//! | `widened.rs` | bmn-edge's own int8 product for AVX2 CPUs without a dot product (`vpmaddwd`) |
//! | `workers.rs` | the one worker pool |
//! | `backbone.rs` | a feature backbone: loading, frame-level threads, the per-snippet feature stream |
//! | `depthwise.rs` | the engine's own depthwise 3×3 convolution (a tract op in place of tract's) |
//! | `detect.rs` | a whole video: windows → engine → proposals in video time |
//! | `diag.rs` | [`StageTimes`], the RSS trace |

pub mod backbone;
pub mod bm;
pub mod cpu;
pub mod depthwise;
pub mod detect;
pub mod diag;
pub mod error;
pub mod info;
mod load;
pub(crate) mod onnx;
pub(crate) mod product;
pub(crate) mod projection;
pub(crate) mod quant;
pub(crate) mod stage_b;
pub mod widened;
pub mod workers;

pub use bm::{BmKernel, Simd, TapPlan};
pub use cpu::{CpuReport, Int8Arithmetic};
pub use diag::StageTimes;
pub use error::{EngineError, EngineErrorKind};
pub use info::{Int8Plan, ModelFormat, ModelInfo, StageBForm, Variant, WindowMode};
pub use load::{convert_to_edge, inspect, working_memory, Converted};
pub use onnx::edge::FORMAT_VERSION;
pub use stage_b::{Band, DEFAULT_BAND_ROWS};

use crate::config::{Convention, WindowConfig};
use diag::trace_rss;
use product::plain;
use stage_b::{BmLayer, StageB};
use std::fmt;
use std::sync::Arc;
use std::time::Instant;
use tract_core::model::TypedRunnableModel;
use tract_onnx::prelude::*;
use workers::{set_tract_threads, Workers};

/// Options for loading a model.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Threads for tract's matrix products and the engine's worker pool (0 = 1).
    pub threads: usize,
    /// Post-processing convention; `None`: from the edge metadata, else by variant
    /// (Paddle variant → paddle, otherwise mmaction2).
    pub convention: Option<Convention>,
    /// When stage B runs in tract (graphs the sparse tail does not take, or
    /// [`Self::tract_stage_b`]): map rows (durations) per band; `None`: automatic (bands of
    /// at most [`DEFAULT_BAND_ROWS`] rows). Each band has a halo of two rows on either side
    /// (its two 3×3 convolutions) and runs on one worker, so that its buffers — H and
    /// tract's packed copy of it, 20 MB each at the paper configuration when whole — stay
    /// small. The map is identical for any band size; more bands cost a little more
    /// arithmetic (the halos). `Some(D)` runs the whole map at once.
    pub band_rows: Option<usize>,
    /// Run stage B in tract (row bands) even when a sparse tail could run it. For
    /// comparisons and tests.
    pub tract_stage_b: bool,
    /// Run a quantized stage B that the integer tail could take (symmetric int8) in float
    /// arithmetic emulating the quantization instead. For comparisons and tests.
    pub emulate_int8_stage_b: bool,
    /// How an int8 model's products run: `None` chooses for this CPU
    /// ([`Int8Arithmetic::for_this_cpu`]: the widened kernel on x86-64 with AVX2, tract's
    /// integer kernels where the CPU has dot-product instructions and tract uses them, exact
    /// float elsewhere); `Some` forces one (all give the same levels). The convolutions
    /// inside tract's graphs follow [`Int8Arithmetic::in_tract_graph`].
    pub int8_arithmetic: Option<Int8Arithmetic>,
    /// The most memory, in bytes, the engine's buffers that grow with the model's
    /// configuration (T, D, N, K: the BM taps, the sampled map H, the output maps) may
    /// need; a model that would need more is refused at load with what it would need,
    /// before anything of that size is allocated. `None`: [`DEFAULT_MAX_MEMORY`].
    pub max_memory: Option<u64>,
}

/// The default bound of [`EngineOptions::max_memory`]: 768 MiB, which leaves a 1 GB board
/// room for the rest (the paper configuration, BM width 512, needs about 18 MiB by this measure).
pub const DEFAULT_MAX_MEMORY: u64 = 768 << 20;

/// One window's network outputs.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WindowOutputs {
    /// `start[T]`.
    pub start: Vec<f32>,
    /// `end[T]`.
    pub end: Vec<f32>,
    /// `confidence[2, D, T]` (0 = reg, 1 = cls).
    pub confidence: Vec<f32>,
}

/// A loaded model, ready to run windows.
pub struct Engine {
    info: ModelInfo,
    stage_a: Arc<TypedRunnableModel>,
    /// Stage A ends before the start/end sigmoids, applied here (`onnx::split::sigmoid_tails`).
    sigmoid_after_a: bool,
    /// The projection and the BM kernel.
    bm: BmLayer,
    /// Stage B, in the form that fits the model (and the options).
    stage_b: Box<dyn StageB>,
    threads: usize,
    /// The worker pool: projection blocks, BM blocks, stage-B chunks or bands.
    workers: Workers,
    /// How an int8 model's products run (`None`: an fp32 model).
    int8: Option<Int8Plan>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine")
            .field("info", &self.info)
            .field("threads", &self.threads)
            .field("stage_b", &self.stage_b.form())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// The model's description.
    pub fn info(&self) -> &ModelInfo {
        &self.info
    }

    /// The window configuration (T, D, N, K, r, convention).
    pub fn config(&self) -> &WindowConfig {
        &self.info.config
    }

    /// Threads in use.
    pub fn threads(&self) -> usize {
        self.threads
    }

    /// Changes the thread count (tract's default executor and the worker pool).
    pub fn set_threads(&mut self, threads: usize) -> Result<(), EngineError> {
        self.threads = threads.max(1);
        set_tract_threads(self.threads);
        self.workers = Workers::new(self.threads)?;
        Ok(())
    }

    /// How stage B runs.
    pub fn stage_b_form(&self) -> StageBForm {
        self.stage_b.form()
    }

    /// Stage-B row bands (empty unless stage B runs in tract).
    pub fn bands(&self) -> &[Band] {
        self.stage_b.bands().0
    }

    /// Rows of H each stage-B band reads (0 unless stage B runs in tract).
    pub fn band_input_rows(&self) -> usize {
        self.stage_b.bands().1
    }

    /// How an int8 model's products run (`None` for an fp32 model).
    pub fn int8_plan(&self) -> Option<&Int8Plan> {
        self.int8.as_ref()
    }

    /// The BM kernel.
    pub fn kernel(&self) -> &BmKernel {
        &self.bm.kernel
    }

    /// Runs one window. `x` is `[C, T]` (channel-major, as the window buffer writes it).
    pub fn run(&mut self, x: &[f32]) -> Result<(WindowOutputs, StageTimes), EngineError> {
        let (c, t) = (self.info.channels, self.info.config.tscale());
        if x.len() != c * t {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                format!("window has {} values, expected C·T = {c}·{t}", x.len()),
            ));
        }
        if let Some(i) = x.iter().position(|v| !v.is_finite()) {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                format!("feature value at flat index {i} of the window is NaN or infinite"),
            ));
        }
        let t0 = Instant::now();
        let input = Tensor::from_shape(&[1, c, t], x).map_err(|e| EngineError::tract("stage A input", e))?;
        let out_a = self.stage_a.run(tvec!(input.into_tvalue())).map_err(|e| EngineError::tract("stage A", e))?;
        let mut start = plain(&out_a[0], "start", t)?;
        let mut end = plain(&out_a[1], "end", t)?;
        if self.sigmoid_after_a {
            start.iter_mut().chain(end.iter_mut()).for_each(|v| *v = quant::Act::Sigmoid.apply(*v));
        }
        let yt = out_a[2]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(|e| EngineError::tract("stage A output y", e))?;
        let stage_a = t0.elapsed();
        let mut confidence = Vec::new();
        let phases = self.stage_b.run(&self.bm, yt, &self.workers, &mut confidence)?;
        let times = StageTimes { stage_a: stage_a + phases.projection, bm: phases.bm, stage_b: phases.stage_b };
        trace_rss("window");
        log::debug!(
            "window: stage A {:.1} ms, BM {:.1} ms, stage B {:.1} ms",
            times.stage_a.as_secs_f64() * 1e3,
            times.bm.as_secs_f64() * 1e3,
            times.stage_b.as_secs_f64() * 1e3
        );
        Ok((WindowOutputs { start, end, confidence }, times))
    }

    /// Stage B alone (for benchmarks): `h` is `H[O, D, T]`, returns `confidence[2, D, T]`.
    pub fn run_stage_b(&mut self, h: &[f32]) -> Result<Vec<f32>, EngineError> {
        let mut confidence = Vec::new();
        self.stage_b.run_h(h, &self.workers, &mut confidence)?;
        Ok(confidence)
    }
}

//! The inference engine: a standard BMN export (or its edge form) run as
//!
//! 1. **stage A** (tract): `x → start, end, yᵀ` — the 1-d convolutions and both heads;
//! 2. the **projection** `Z = yᵀ · Wz` (the Conv3d weights applied before sampling), one
//!    tract matrix product per block of 32 output channels, on the worker threads;
//! 3. the **BM kernel** (Rust, [`kernel::BmKernel`]): sparse sampling of `Z` through the
//!    core's [`BmTable`](crate::bm::BmTable), valid cells only, fused in chunks with
//! 4. **stage B** as the sparse Winograd tail ([`tail`]): the first 1×1 convolution as one
//!    product over the valid cells, the 3×3 convolutions in Winograd F(2×2, 3×3) form over
//!    the cells the output depends on, the rest of the map from a constant field.
//!
//! Symmetric int8 models run steps 2–4 in integers instead (`qtail`): per block of 32
//! channels, each worker projects (`MatMulInteger`) and samples its block of `Z` at once
//! (`Z` never exists whole), writing `H` as int8 levels; every stage-B layer is then an
//! integer product (3×3s by im2col over the needed cells) with onnxruntime's
//! requantization between layers.
//!
//! ## Why the graph is not run as exported
//!
//! The exported BM layer is a MatMul with a dense `[T, N·D·T]` constant followed by a Conv3d
//! whose kernel spans the `N` axis: ~54 GMAC and a 328 MB intermediate per window at the
//! paper configuration. Both are linear, so they are reassociated (design.md):
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
//!   ([`graph`]), `K` and `r` are recovered by matching the mask against the table.
//! * **Edge** format (`bmn-edge convert`): the same graph with the BM chain replaced by one
//!   `ai.bmn_edge.BoundaryMatching` node and `(T, D, N, K, r)`, the variant and the
//!   convention in `metadata_props`. About 20 MB instead of 148 MB (5 MB all-int8).
//! * **Quantized** (QOperator, s8 symmetric per tensor): stage A's `QLinearConv`s run in
//!   tract's integer kernels; a quantized Conv3d keeps its int8 weights (the projection is a
//!   `MatMulInteger` `Wᵀ · y_q` of `y` quantized with its input scale); stage B runs in the
//!   integer tail (`qtail`), exactly a dense integer computation and equal to tract's
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

pub mod detect;
pub mod graph;
pub mod kernel;
pub(crate) mod proto;
pub(crate) mod qtail;
pub mod tail;

use crate::config::{Convention, WindowConfig};
use graph::Site;
use kernel::{BmKernel, MaskData, TapPlan};
use prost::Message;
use proto::ModelFile;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::TypedRunnableModel;

/// What went wrong in the engine, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// The model file could not be read.
    Io,
    /// The file is not an ONNX model (not protobuf, truncated, no graph).
    NotOnnx,
    /// The ONNX graph is not a BMN (the BM layer pattern is missing or malformed).
    NotBmn,
    /// The BM layer's constant is not a BM sampling mask.
    NotBmMask,
    /// A feature the engine does not support (external data, non-float weights, ...).
    Unsupported,
    /// The input does not fit the model (width, length, NaN/Inf).
    Input,
    /// tract failed to load or run a stage.
    Runtime,
}

/// An engine error: a kind and a message.
#[derive(Debug, Clone)]
pub struct EngineError {
    kind: EngineErrorKind,
    message: String,
}

impl EngineError {
    pub(crate) fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        EngineError { kind, message: message.into() }
    }
    /// The kind of error.
    pub fn kind(&self) -> EngineErrorKind {
        self.kind
    }
    fn tract(stage: &str, e: TractError) -> Self {
        EngineError::new(EngineErrorKind::Runtime, format!("{stage}: {e:#}"))
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

/// Which form the model file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// A standard export with the dense mask.
    Standard,
    /// The edge format (`bmn-edge convert`).
    Edge,
}

impl ModelFormat {
    /// `standard` or `edge`.
    pub fn name(self) -> &'static str {
        match self {
            ModelFormat::Standard => "standard",
            ModelFormat::Edge => "edge",
        }
    }
}

/// What the engine found in a model file.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Standard or edge.
    pub format: ModelFormat,
    /// Quantized op types in the graph (empty for fp32).
    pub quantized_ops: Vec<String>,
    /// `pytorch` (PEM width = base width), `paddle` (half of it) or `custom`.
    pub variant: String,
    /// `T, D, N, K, r` and the post-processing convention.
    pub config: WindowConfig,
    /// Input channels `C`.
    pub channels: usize,
    /// PEM 1-d width `P` (256 PyTorch, 128 Paddle).
    pub pem_width: usize,
    /// BM output width `O` (512).
    pub bm_width: usize,
    /// Non-zeros of the BM mask.
    pub mask_nnz: usize,
    /// Input name.
    pub input: String,
    /// Output names: confidence, start, end.
    pub outputs: [String; 3],
    /// ONNX default-domain opset.
    pub opset: i64,
    /// Window mode stored in an edge file (`sliding` or `rescale`), if any.
    pub window_mode: Option<String>,
    /// Things the user should know (slow quantization forms, ...).
    pub warnings: Vec<String>,
}

/// Options for loading a model.
#[derive(Debug, Clone, Default)]
pub struct EngineOptions {
    /// Threads for tract's matrix products and the BM kernel (0 = 1).
    pub threads: usize,
    /// Post-processing convention; `None`: from the edge metadata, else by variant
    /// (Paddle variant → paddle, otherwise mmaction2).
    pub convention: Option<Convention>,
    /// When stage B runs in tract (graphs the sparse tail does not take, or
    /// [`Self::tract_stage_b`]): map rows (durations) per band; `None`: automatic (bands of
    /// at most [`DEFAULT_BAND_ROWS`] rows). Each band has a halo of two rows on either side
    /// (its two 3×3 convolutions) and runs on one worker, so that its buffers — H and
    /// tract's packed copy of it, 20 MB each at the paper configuration when whole — stay
    /// small.
    /// The map is identical for any band size; more bands cost a little more arithmetic
    /// (the halos). `Some(D)` runs the whole map at once.
    pub band_rows: Option<usize>,
    /// Run stage B in tract (row bands) even when the sparse Winograd tail
    /// ([`tail`]) could run it. For comparisons and tests.
    pub tract_stage_b: bool,
    /// Run a quantized stage B that the integer tail could take (symmetric int8) in float
    /// arithmetic emulating the quantization instead. For comparisons and tests.
    pub emulate_int8_stage_b: bool,
}

/// Default rows per stage-B band.
pub const DEFAULT_BAND_ROWS: usize = 25;

/// One stage-B band: output rows `[r0, r1)`, computed from H rows `[i0, i0 + input rows)`
/// and its first `cols` columns by `models[model]`; output columns `≥ exact` come from
/// the constant field (see [`Engine`]).
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
fn plan_bands(d: usize, t: usize, band_rows: usize, halo: Option<usize>) -> (usize, Vec<Band>, Vec<usize>) {
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

/// Per-stage wall time of one window.
#[derive(Debug, Clone, Copy, Default)]
pub struct StageTimes {
    /// Stage A (tract): 1-d convolutions, heads and the projection Z.
    pub stage_a: Duration,
    /// The BM kernel.
    pub bm: Duration,
    /// Stage B (tract): 2-d convolutions.
    pub stage_b: Duration,
}

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
    kernel: BmKernel,
    threads: usize,
    /// Stage-B input rows, bands, one model per distinct band width (the first is the
    /// full width), and the constant field `[2, input rows, T]`: stage B's output on an H of
    /// invalid cells only (`relu(bias)` everywhere).
    band_input: usize,
    bands: Vec<Band>,
    stage_b_models: Vec<Arc<TypedRunnableModel>>,
    constant_field: Vec<f32>,
    /// Stage B as a sparse tail, when the graph is a plain convolution chain.
    tail: Option<Sparse>,
    /// The BM layer's projection `Z = yᵀ · Wz`, one tract product per block of channels.
    projection: Projector,
    /// Worker threads for the projection and the sparse tail.
    workers: tail::Workers,
    /// The integer tail's `H` levels, kept from window to window (one allocation, no heap
    /// fragments).
    h_levels: Vec<i8>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Engine").field("info", &self.info).field("threads", &self.threads).finish_non_exhaustive()
    }
}

/// A model file analysed: the decoded graph (mask released), the BM site and the verified
/// tap plan.
pub(crate) struct Analysed {
    pub proto: tract_onnx::pb::ModelProto,
    pub site: Site,
    pub plan: TapPlan,
    pub info: ModelInfo,
}

fn read_file(path: &Path) -> Result<Vec<u8>, EngineError> {
    std::fs::read(path)
        .map_err(|e| EngineError::new(EngineErrorKind::Io, format!("cannot read {}: {e}", path.display())))
}

/// Reads and analyses a model: finds the BM layer, identifies and verifies the mask (then
/// drops it), and describes the model. No tract model is built.
pub(crate) fn analyse(bytes: Vec<u8>, convention: Option<Convention>) -> Result<Analysed, EngineError> {
    let mut file = ModelFile::parse(bytes)?;
    let site = graph::find_site(&file)?;
    let (t, d, n) = (site.tscale, site.dscale, site.num_sample);
    let (plan, mask_name) = match (&site.mask, site.perbin_ratio) {
        (_, Some((k, r))) => {
            let cfg = WindowConfig::new(t, d, n, k, r, Convention::Mmaction2)
                .map_err(|e| EngineError::new(EngineErrorKind::NotBmn, format!("BM parameters in the file: {e}")))?;
            (TapPlan::new(cfg), None)
        }
        (Some(mask), None) => {
            let graph =
                file.proto.graph.as_ref().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?;
            let (data, floats, name): (Option<&[u8]>, Vec<f32>, String) = match mask {
                graph::MaskRef::Deferred(i) => {
                    let dref = &file.deferred[*i];
                    (Some(&file.bytes[dref.data.clone()]), vec![], dref.name.clone())
                }
                graph::MaskRef::Initializer(name) => {
                    let tp = graph
                        .initializer
                        .iter()
                        .find(|x| &x.name == name)
                        .ok_or_else(|| EngineError::new(EngineErrorKind::NotBmn, "mask initializer missing"))?;
                    if !tp.raw_data.is_empty() && tp.data_type == proto::ONNX_FLOAT {
                        (Some(&tp.raw_data[..]), vec![], name.clone())
                    } else {
                        (None, proto::tensor_f32(tp)?, name.clone())
                    }
                }
                graph::MaskRef::ConstantNode(i) => {
                    let node = &graph.node[*i];
                    let tp = graph::attr(node, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                        EngineError::new(EngineErrorKind::NotBmn, "the mask Constant has no tensor value")
                    })?;
                    (None, proto::tensor_f32(tp)?, node.output.first().cloned().unwrap_or_default())
                }
            };
            let mask = match data {
                Some(b) => MaskData::Le(b),
                None => MaskData::F32(&floats),
            };
            (kernel::identify_mask(&mask, t, d, n)?, Some(name))
        }
        (None, None) => return Err(EngineError::new(EngineErrorKind::NotBmn, "BM layer without mask or parameters")),
    };
    let drop_names: Vec<&str> = mask_name.as_deref().into_iter().collect();
    file.release(&drop_names);
    let proto = std::mem::take(&mut file.proto);
    drop(file);

    let channels = site.input_dims.get(1).copied().flatten().ok_or_else(|| {
        EngineError::new(
            EngineErrorKind::NotBmn,
            format!("the input `{}` does not declare its channel count C", site.input),
        )
    })?;
    if let Some(Some(it)) = site.input_dims.get(2) {
        if *it != t {
            return Err(EngineError::new(
                EngineErrorKind::NotBmn,
                format!("the input declares T = {it} but the BM layer has T = {t}"),
            ));
        }
    }
    let variant = match site.base_width {
        Some(b) if b == site.pem_width => "pytorch".to_string(),
        Some(b) if 2 * site.pem_width == b => "paddle".to_string(),
        _ => format!("custom (P = {})", site.pem_width),
    };
    let stored_convention = graph::metadata(&proto, "convention").and_then(Convention::parse);
    let convention = convention.or(stored_convention).unwrap_or(if variant == "paddle" {
        Convention::Paddle
    } else {
        Convention::Mmaction2
    });
    let config = plan.config().with_convention(convention);
    let opset =
        proto.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    let mut warnings = Vec::new();
    for form in &site.quant_slow {
        warnings.push(format!(
            "this model uses {form}; tract 0.23 runs integer kernels fast only for QLinearConv/QLinearMatMul with int8 activations and weights, symmetric (zero points 0) and per-tensor scales, so this file is likely slower than its fp32 original"
        ));
    }
    if site.qlinear.is_some() {
        let ix = graph::GraphIndex::new(
            proto.graph.as_ref().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?,
            &[],
        );
        if graph::int8_bm_symmetric(&ix, &site)? {
            warnings.push("the BM layer's QLinearConv runs reassociated in int8: its input y is quantized with the QLinearConv's input scale before sampling (onnxruntime quantizes the sampled tensor, which the engine never materialises), so its maps differ from onnxruntime's int8 maps by about one quantization step".to_string());
        } else {
            warnings.push("the BM layer's QLinearConv runs in float with its dequantized weights (it is not int8 symmetric; the BM output is never materialised, so it cannot be quantized as onnxruntime does); its maps differ from onnxruntime's int8 maps by about one quantization step".to_string());
        }
    }
    let info = ModelInfo {
        format: site.format,
        quantized_ops: site.quant_ops.clone(),
        variant,
        config,
        channels,
        pem_width: site.pem_width,
        bm_width: site.out_width,
        mask_nnz: plan.nnz(),
        input: site.input.clone(),
        outputs: site.outputs.clone(),
        opset,
        window_mode: graph::metadata(&proto, "window_mode").map(str::to_string),
        warnings,
    };
    Ok(Analysed { proto, site, plan, info })
}

/// Describes a model file without building tract models.
pub fn inspect(path: &Path) -> Result<ModelInfo, EngineError> {
    Ok(analyse(read_file(path)?, None)?.info)
}

/// Converts a standard export to the edge format; returns the encoded ONNX and the model's
/// description. The mask is verified against the table before it is dropped.
pub fn convert_to_edge(
    bytes: Vec<u8>,
    convention: Option<Convention>,
    window_mode: &str,
) -> Result<(Vec<u8>, ModelInfo), EngineError> {
    let a = analyse(bytes, convention)?;
    let cfg = a.info.config;
    let meta = vec![
        ("format".to_string(), "edge-v1".to_string()),
        ("tscale".to_string(), cfg.tscale().to_string()),
        ("dscale".to_string(), cfg.dscale().to_string()),
        ("num_sample".to_string(), cfg.num_sample().to_string()),
        ("num_sample_perbin".to_string(), cfg.num_sample_perbin().to_string()),
        ("ratio".to_string(), format!("{:?}", cfg.ratio())),
        ("variant".to_string(), a.info.variant.clone()),
        ("convention".to_string(), cfg.convention().name().to_string()),
        ("window_mode".to_string(), window_mode.to_string()),
        ("mask_nnz".to_string(), a.info.mask_nnz.to_string()),
    ];
    let edge = graph::to_edge(a.proto, &a.site, cfg.num_sample_perbin(), cfg.ratio(), &meta)?;
    let mut info = a.info;
    info.format = ModelFormat::Edge;
    info.window_mode = Some(window_mode.to_string());
    Ok((edge.encode_to_vec(), info))
}

fn build_stage(
    proto: tract_onnx::pb::ModelProto,
    stage: &str,
    input_shape: &[usize],
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    let model = tract_onnx::onnx().model_for_proto_model(&proto).map_err(|e| EngineError::tract(stage, e))?;
    drop(proto);
    model
        .with_input_fact(0, f32::fact(input_shape).into())
        .and_then(|m| m.into_optimized())
        .and_then(|m| {
            if std::env::var_os("BMN_EDGE_DUMP_PLAN").is_some() {
                eprintln!("{stage}:\n{m}");
            }
            m.into_runnable()
        })
        .map_err(|e| EngineError::tract(stage, e))
}

impl Engine {
    /// Loads a model file (standard export or edge format).
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Engine, EngineError> {
        Engine::from_bytes(read_file(path)?, options)
    }

    /// Loads a model from its bytes (consumed: a standard export is held once).
    pub fn from_bytes(bytes: Vec<u8>, options: &EngineOptions) -> Result<Engine, EngineError> {
        let threads = options.threads.max(1);
        set_threads(threads);
        trace_rss("read");
        let a = analyse(bytes, options.convention)?;
        trace_rss("analysed");
        let (t, d) = (a.info.config.tscale(), a.info.config.dscale());
        let graph::Split { halo, stage_a, stage_b, bias, projection } =
            graph::split(a.proto, &a.site, a.info.channels, kernel::CHUNK)?;
        trace_rss("split");
        let o = a.info.bm_width;
        let stage_a = build_stage(stage_a, "stage A", &[1, a.info.channels, t])?;
        trace_rss("stage A built");
        let convs =
            if options.tract_stage_b { None } else { tail::recognise(&stage_b, &a.site.h, &a.site.outputs[0], o) };
        let tail = match convs {
            Some(convs) => {
                let cells = a.plan.cells().to_vec();
                let int8 = if options.emulate_int8_stage_b {
                    None
                } else {
                    qtail::QTail::new(&convs, cells.clone(), t, d, &bias)
                };
                Some(match int8 {
                    Some(q) => Sparse::Int8(q?),
                    None => Sparse::Float(tail::Tail::new(convs, cells, t, d, &bias, tail::TILE_CHUNK)?),
                })
            }
            None => None,
        };
        let (band_input, bands, widths) = if tail.is_some() {
            (0, Vec::new(), Vec::new())
        } else {
            plan_bands(d, t, options.band_rows.unwrap_or(DEFAULT_BAND_ROWS), halo)
        };
        let mut stage_b_models = Vec::with_capacity(widths.len());
        if tail.is_none() {
            for &w in &widths {
                stage_b_models.push(build_stage(stage_b.clone(), "stage B", &[1, o, band_input, w])?);
            }
        }
        drop(stage_b);
        // The constant field, from the full-width model.
        let constant_field = if bands.iter().any(|b| b.exact < t) {
            let relu_bias: Vec<f32> = bias.iter().map(|b| b.max(0.0)).collect();
            let mut h = vec![0.0f32; o * band_input * t];
            for (oo, v) in relu_bias.iter().enumerate() {
                h[oo * band_input * t..(oo + 1) * band_input * t].fill(*v);
            }
            let input =
                Tensor::from_shape(&[1, o, band_input, t], &h).map_err(|e| EngineError::tract("constant field", e))?;
            let out = stage_b_models[0]
                .run(tvec!(input.into_tvalue()))
                .map_err(|e| EngineError::tract("stage B (constant field)", e))?;
            plain(&out[0], "constant field", 2 * band_input * t)?
        } else {
            Vec::new()
        };
        let kernel = BmKernel::new(a.plan, &bias);
        let projection = Projector::new(projection, t, a.info.pem_width, a.info.config.num_sample())?;
        trace_rss("stage B built");
        Ok(Engine {
            info: a.info,
            stage_a,
            kernel,
            threads,
            band_input,
            bands,
            stage_b_models,
            constant_field,
            tail,
            projection,
            workers: tail::Workers::new(threads)?,
            h_levels: Vec::new(),
        })
    }

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

    /// Changes the thread count (tract's default executor and the BM kernel).
    pub fn set_threads(&mut self, threads: usize) -> Result<(), EngineError> {
        self.threads = threads.max(1);
        set_threads(self.threads);
        self.workers = tail::Workers::new(self.threads)?;
        Ok(())
    }

    /// Runs one window. `x` is `[C, T]` (channel-major, as the window buffer writes it).
    pub fn run(&mut self, x: &[f32]) -> Result<(WindowOutputs, StageTimes), EngineError> {
        let (c, t, d) = (self.info.channels, self.info.config.tscale(), self.info.config.dscale());
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
        let mut times = StageTimes::default();
        let t0 = Instant::now();
        let input = Tensor::from_shape(&[1, c, t], x).map_err(|e| EngineError::tract("stage A input", e))?;
        let out_a = self.stage_a.run(tvec!(input.into_tvalue())).map_err(|e| EngineError::tract("stage A", e))?;
        let start = plain(&out_a[0], "start", t)?;
        let end = plain(&out_a[1], "end", t)?;

        let mut confidence = vec![0.0f32; 2 * d * t];
        let yt = out_a[2]
            .try_as_plain_ram()
            .and_then(|v| v.as_slice::<f32>())
            .map_err(|e| EngineError::tract("stage A output y", e))?;
        if let Some(Sparse::Int8(tail)) = &self.tail {
            // The integer tail: projection and sampling block by block (Z never whole), H
            // whole as int8 levels (2.6 MB), then stage B.
            let a = t0.elapsed();
            let t1 = Instant::now();
            let (q, ncells) = (tail.input_quant(), tail.cells().len());
            let mut h = std::mem::take(&mut self.h_levels);
            let (projection, bm) = self.project_and_sample(yt, ncells, q, &mut h)?;
            drop(out_a);
            let wall = t1.elapsed();
            let share = projection.as_secs_f64() / (projection + bm).as_secs_f64().max(1e-9);
            times.stage_a = a + wall.mul_f64(share);
            times.bm = wall - wall.mul_f64(share);
            let t2 = Instant::now();
            let o = self.info.bm_width;
            if let Some(Sparse::Int8(tail)) = self.tail.as_mut() {
                tail.run_first(
                    &|cells, dst| {
                        copy_cells(&h, o, ncells, cells, dst);
                        Ok(())
                    },
                    &self.workers,
                )?;
                tail.run_rest(&self.workers, &mut confidence)?;
            }
            self.h_levels = h;
            times.stage_b = t2.elapsed();
        } else {
            let z = self.projection.run(yt, &self.workers)?;
            drop(out_a);
            times.stage_a = t0.elapsed();
            if let Some(Sparse::Float(tail)) = self.tail.as_mut() {
                // The float tail: H in chunks of cells, each chunk straight into the first
                // layer's product (H as floats would be 10 MB whole: more than Z).
                let t1 = Instant::now();
                let (kernel, zs) = (&self.kernel, z.as_slice());
                let inner = if self.threads > 1 { 1 } else { self.threads };
                let fill = |cells: std::ops::Range<usize>, h: &mut [f32]| {
                    kernel.run_cells(zs, h, cells, tail::CELL_CHUNK, inner)
                };
                times.bm = tail.run_first(&fill, &self.workers)?;
                // Z is no longer needed: release it before the rest of stage B.
                drop(z);
                tail.run_rest(&self.workers, &mut confidence, false)?;
                times.stage_b = t1.elapsed().saturating_sub(times.bm);
            } else {
                // Stage B in tract's bands, from Z whole.
                self.bands_stage_b(z.as_slice(), &mut confidence, &mut times)?;
            }
        }
        trace_rss("window");
        Ok((WindowOutputs { start, end, confidence }, times))
    }

    /// For the integer tail: per block of 32 channels, on the workers, the projection's
    /// product, its Z block (in the worker's scratch, still in L2 when the kernel reads it)
    /// and the BM kernel over every valid cell, as levels of `q` (the tail's input
    /// quantization) into `hall`: `H` `[O][cells]`, every value written. Z never exists whole
    /// (6.5 MB at the paper configuration; H as int8 is 2.6 MB — as floats it would be
    /// 10.3 MB, which is why the float tail samples from Z whole in chunks of cells instead:
    /// tried, +8 MiB peak RSS for no clear gain). Returns the time spent projecting and
    /// sampling.
    fn project_and_sample(
        &self,
        yt: &[f32],
        ncells: usize,
        q: tail::Quant,
        hall: &mut Vec<i8>,
    ) -> Result<(Duration, Duration), EngineError> {
        let input = self.projection.input(yt)?;
        let o = self.info.bm_width;
        hall.resize(o * ncells, 0);
        // Each block's rows of H, for the one job that writes them.
        let rows: Vec<std::sync::Mutex<&mut [i8]>> =
            hall.chunks_mut(kernel::CHUNK * ncells).map(std::sync::Mutex::new).collect();
        let (proj_time, bm_time) = (tail::AtomicDuration::default(), tail::AtomicDuration::default());
        let job = |c: usize, s: &mut tail::Scratch| {
            let t0 = Instant::now();
            let y = self.projection.product(c, &input)?;
            s.z.resize(self.projection.block_len());
            self.projection.place(c, &y, s.z.as_mut_slice())?;
            drop(y);
            proj_time.add(t0.elapsed());
            let t1 = Instant::now();
            let mut h = rows
                .get(c)
                .and_then(|m| m.lock().ok())
                .ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "BM projection: block out of range"))?;
            self.kernel.run_block_cells(c, s.z.as_slice(), &mut h, 0..ncells, ncells, |v| q.level_i8(v))?;
            bm_time.add(t1.elapsed());
            Ok(())
        };
        self.workers.run(self.projection.blocks(), job, |_, ()| Ok(()))?;
        drop(rows);
        Ok((proj_time.get(), bm_time.get()))
    }

    /// The BM kernel and stage B in tract's row bands. With one band, it runs here with
    /// every thread; otherwise the workers take the bands, widest (costliest) first, each
    /// running the BM kernel and tract single-threaded (tract's convolutions gain little
    /// from a second thread), and the calling thread places each band's rows as it comes.
    /// The phase's wall time is shared between BM and stage B in proportion to the time the
    /// workers spent in each.
    fn bands_stage_b(&mut self, z: &[f32], confidence: &mut [f32], times: &mut StageTimes) -> Result<(), EngineError> {
        let t1 = Instant::now();
        let (o, hb) = (self.info.bm_width, self.band_input);
        let (kernel, models, bands) = (&self.kernel, &self.stage_b_models, &self.bands);
        let inner = if bands.len() == 1 { self.threads } else { 1 };
        let mut order: Vec<usize> = (0..bands.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(bands[i].cols));
        let job = |k: usize, s: &mut tail::Scratch| -> Result<(Vec<f32>, Duration, Duration), EngineError> {
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
        let (mut bm, mut stage_b) = (Duration::ZERO, Duration::ZERO);
        let mut place = |k: usize, (c, a, b): (Vec<f32>, Duration, Duration)| {
            self.place(confidence, &c, self.bands[order[k]]);
            bm += a;
            stage_b += b;
            Ok(())
        };
        if bands.len() == 1 {
            let mut scratch = tail::Scratch::default();
            place(0, job(0, &mut scratch)?)?;
        } else {
            self.workers.run(bands.len(), job, &mut place)?;
        }
        let wall = t1.elapsed();
        let busy = (bm + stage_b).as_secs_f64();
        let share = if busy > 0.0 { bm.as_secs_f64() / busy } else { 0.0 };
        times.bm = wall.mul_f64(share);
        times.stage_b = wall - times.bm;
        Ok(())
    }
}

impl Engine {
    /// Stage B alone (for benchmarks): `h` is `H[O, D, T]`, returns `confidence[2, D, T]`.
    pub fn run_stage_b(&mut self, h: &[f32]) -> Result<Vec<f32>, EngineError> {
        let (o, d, t) = (self.info.bm_width, self.info.config.dscale(), self.info.config.tscale());
        if h.len() != o * d * t {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                format!("H has {} values, expected O·D·T = {}", h.len(), o * d * t),
            ));
        }
        let workers = &self.workers;
        if let Some(tail) = self.tail.as_mut() {
            let cells = tail.cells().to_vec();
            let stride = tail::CELL_CHUNK;
            let at = |oo: usize, r: u16, s: u16| h[(oo * d + r as usize) * t + s as usize];
            match tail {
                Sparse::Float(tail) => {
                    let fill = |range: std::ops::Range<usize>, hc: &mut [f32]| {
                        for (i, &(r, s)) in cells[range].iter().enumerate() {
                            for oo in 0..o {
                                hc[oo * stride + i] = at(oo, r, s);
                            }
                        }
                        Ok(())
                    };
                    tail.run_first(&fill, workers)?;
                }
                Sparse::Int8(tail) => {
                    let q = tail.input_quant();
                    let fill = |range: std::ops::Range<usize>, hc: &mut [i8]| {
                        for (i, &(r, s)) in cells[range].iter().enumerate() {
                            for oo in 0..o {
                                hc[oo * stride + i] = q.level_i8(at(oo, r, s));
                            }
                        }
                        Ok(())
                    };
                    tail.run_first(&fill, workers)?;
                }
            }
            let mut confidence = Vec::new();
            tail.run_rest(workers, &mut confidence)?;
            return Ok(confidence);
        }
        let hb = self.band_input;
        let mut confidence = vec![0.0f32; 2 * d * t];
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
            let out = self.stage_b_models[band.model]
                .run(tvec!(input.into_tvalue()))
                .map_err(|e| EngineError::tract("stage B", e))?;
            let c = plain(&out[0], "confidence", 2 * hb * w)?;
            self.place(&mut confidence, &c, band);
        }
        Ok(confidence)
    }

    /// Writes a band's output rows into `confidence`: columns below `exact` from the run
    /// `c` (`[2, input rows, cols]`), the rest from the constant field.
    fn place(&self, confidence: &mut [f32], c: &[f32], band: Band) {
        let (d, t) = (self.info.config.dscale(), self.info.config.tscale());
        let (hb, w) = (self.band_input, band.cols);
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

    /// How stage B runs: `sparse-winograd` (the [`tail`] module), `sparse-int8` (integer
    /// products, for symmetric int8 models) or `tract-bands`.
    pub fn stage_b_form(&self) -> &'static str {
        match self.tail {
            Some(Sparse::Float(_)) => "sparse-winograd",
            Some(Sparse::Int8(_)) => "sparse-int8",
            None => "tract-bands",
        }
    }

    /// Stage-B bands (empty when stage B runs as the sparse Winograd tail).
    pub fn bands(&self) -> &[Band] {
        &self.bands
    }

    /// Rows of H each stage-B band reads.
    pub fn band_input_rows(&self) -> usize {
        self.band_input
    }

    /// The BM kernel.
    pub fn kernel(&self) -> &BmKernel {
        &self.kernel
    }
}

/// Copies the valid cells `cells` of `h` (`[o][n]`) into `dst` (`[o][CELL_CHUNK]`).
fn copy_cells<T: Copy>(h: &[T], o: usize, n: usize, cells: std::ops::Range<usize>, dst: &mut [T]) {
    for oo in 0..o {
        let at = oo * tail::CELL_CHUNK;
        dst[at..at + cells.len()].copy_from_slice(&h[oo * n + cells.start..oo * n + cells.end]);
    }
}

/// Stage B as a sparse tail: float (Winograd 3×3s; quantized models emulated) or integer.
enum Sparse {
    Float(tail::Tail),
    Int8(qtail::QTail),
}

impl Sparse {
    fn cells(&self) -> &[(u16, u16)] {
        match self {
            Sparse::Float(t) => t.cells(),
            Sparse::Int8(t) => t.cells(),
        }
    }

    fn run_rest(&mut self, workers: &tail::Workers, out: &mut Vec<f32>) -> Result<(), EngineError> {
        match self {
            Sparse::Float(t) => t.run_rest(workers, out, false),
            Sparse::Int8(t) => t.run_rest(workers, out),
        }
    }
}

/// The BM layer's projection `Z = yᵀ · Wz` (design.md), one tract product per block of
/// [`kernel::CHUNK`] output channels, the blocks run by the worker threads (tract's own
/// threading gains little on these products). Z comes out in the kernel's layout
/// `[O/32][T][N][32]`.
struct Projector {
    models: Vec<Arc<TypedRunnableModel>>,
    /// int8: `(x_scale, per-channel factor)`.
    int8: Option<(f32, Vec<f32>)>,
    t: usize,
    p: usize,
    /// Samples per bin row `N` (a block's columns are `N·32`).
    cols: usize,
}

impl Projector {
    fn new(projection: graph::Projection, t: usize, p: usize, n: usize) -> Result<Projector, EngineError> {
        let (models, int8) = match projection {
            graph::Projection::Float { blocks } => {
                let mut models = Vec::with_capacity(blocks.len());
                for b in blocks {
                    let cols = b.len() / p;
                    let raw: Vec<u8> = b.iter().flat_map(|v| v.to_le_bytes()).collect();
                    drop(b);
                    models.push(tail::projection_model(raw, t, p, cols)?);
                }
                (models, None)
            }
            graph::Projection::Int8 { blocks, x_scale, col_scale } => {
                // Transposed, `Wᵀ · y` ([cols][P] · [P][T]): tract's integer kernels run this
                // shape ~3x faster than `yᵀ · W` (a long M, the short T as N).
                let mut models = Vec::with_capacity(blocks.len());
                for b in blocks {
                    let cols = b.len() / p;
                    let mut raw = vec![0u8; b.len()];
                    for (k, row) in b.chunks_exact(cols).enumerate() {
                        for (c, &v) in row.iter().enumerate() {
                            raw[c * p + k] = v as u8;
                        }
                    }
                    drop(b);
                    models.push(tail::projection_model_t(raw, t, p, cols)?);
                }
                (models, Some((x_scale, col_scale)))
            }
        };
        Ok(Projector { models, int8, t, p, cols: n })
    }

    /// Values per block of Z (`T · N · 32`).
    fn block_len(&self) -> usize {
        self.t * kernel::CHUNK * self.cols
    }

    /// Blocks of 32 output channels.
    fn blocks(&self) -> usize {
        self.models.len()
    }

    /// The products' input from `yt` (`yᵀ` `[T][P]`): as it is (float), or quantized and
    /// transposed (int8).
    fn input(&self, yt: &[f32]) -> Result<Arc<Tensor>, EngineError> {
        let (t, p) = (self.t, self.p);
        if yt.len() != t * p {
            return Err(EngineError::new(
                EngineErrorKind::Runtime,
                format!("stage A output y has {} values, expected T·P = {}", yt.len(), t * p),
            ));
        }
        let tract = |e: TractError| EngineError::tract("BM projection", e);
        let input = match &self.int8 {
            None => Tensor::from_shape(&[t, p], yt).map_err(tract)?,
            Some((xs, _)) => {
                // onnxruntime's QuantizeLinear: round half to even, saturate to int8; as
                // `y` `[P][T]` for the transposed product.
                let mut q = vec![0i8; t * p];
                for (tt, row) in yt.chunks_exact(p).enumerate() {
                    for (k, v) in row.iter().enumerate() {
                        q[k * t + tt] = (v / xs).round_ties_even().clamp(-128.0, 127.0) as i8;
                    }
                }
                Tensor::from_shape(&[p, t], &q).map_err(tract)?
            }
        };
        Ok(input.into_arc_tensor())
    }

    /// Block `c`'s product.
    fn product(&self, c: usize, input: &Arc<Tensor>) -> Result<Tensor, EngineError> {
        let out = self.models[c]
            .run(tvec!(TValue::from_const(input.clone())))
            .map_err(|e| EngineError::tract("BM projection", e))?;
        out.into_iter()
            .next()
            .map(TValue::into_tensor)
            .ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "BM projection: no output"))
    }

    /// Writes block `c`'s product `y` into `dst` (`[T][N][32]`).
    fn place(&self, c: usize, y: &Tensor, dst: &mut [f32]) -> Result<(), EngineError> {
        let tract = |e: TractError| EngineError::tract("BM projection", e);
        let (t, cols) = (self.t, self.block_len() / self.t);
        let y = y.try_as_plain_ram().map_err(tract)?;
        match &self.int8 {
            None => {
                let yf = y.as_slice::<f32>().map_err(tract)?;
                if yf.len() != dst.len() {
                    return Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: block size"));
                }
                dst.copy_from_slice(yf);
            }
            Some((_, scale)) => {
                // `yi` is `[cols][T]`, column (n, j) is channel c·32 + j; Z wants `[T][cols]`:
                // transposed in tiles of 8 times, scaled to float.
                let yi = y.as_slice::<i32>().map_err(tract)?;
                if yi.len() != dst.len() {
                    return Err(EngineError::new(EngineErrorKind::Runtime, "BM projection: block size"));
                }
                let mut s = [0.0f32; kernel::CHUNK];
                for (j, v) in s.iter_mut().enumerate() {
                    *v = scale.get(c * kernel::CHUNK + j).copied().unwrap_or(0.0);
                }
                for t0 in (0..t).step_by(8) {
                    let t1 = (t0 + 8).min(t);
                    for (col, src) in yi.chunks_exact(t).enumerate() {
                        let sc = s[col % kernel::CHUNK];
                        for (tt, &v) in src[t0..t1].iter().enumerate() {
                            dst[(t0 + tt) * cols + col] = v as f32 * sc;
                        }
                    }
                }
            }
        }
        Ok(())
    }

    /// `yt` is `yᵀ` `[T][P]`; returns Z, every block.
    fn run(&self, yt: &[f32], workers: &tail::Workers) -> Result<kernel::ZBuf, EngineError> {
        let input = self.input(yt)?;
        let per = self.block_len();
        let mut zbuf = kernel::ZBuf::zeros(self.blocks() * per);
        let z = zbuf.as_mut_slice();
        let job = |c: usize, _: &mut tail::Scratch| self.product(c, &input);
        let place = |c: usize, y: Tensor| self.place(c, &y, &mut z[c * per..(c + 1) * per]);
        workers.run(self.blocks(), job, place)?;
        Ok(zbuf)
    }
}

fn plain(v: &TValue, what: &str, len: usize) -> Result<Vec<f32>, EngineError> {
    let s = v
        .try_as_plain_ram()
        .and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
        .map_err(|e| EngineError::tract(what, e))?;
    if s.len() != len {
        return Err(EngineError::new(
            EngineErrorKind::Runtime,
            format!("{what} has {} values, expected {len}", s.len()),
        ));
    }
    Ok(s)
}

/// With `BMN_EDGE_TRACE_RSS` set, prints the resident set size (current and peak) at
/// `label` to stderr: a memory-budget debugging aid.
pub(crate) fn trace_rss(label: &str) {
    if std::env::var_os("BMN_EDGE_TRACE_RSS").is_none() {
        return;
    }
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let get = |k: &str| {
        status
            .lines()
            .find(|l| l.starts_with(k))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .unwrap_or(0.0)
            / 1024.0
    };
    eprintln!(
        "[rss] {label:<16} {:7.1} MiB (peak {:7.1} MiB; anonymous {:.1}, file-backed {:.1})",
        get("VmRSS:"),
        get("VmHWM:"),
        get("RssAnon:"),
        get("RssFile:")
    );
}

/// Sets tract's default executor to `threads` threads.
fn set_threads(threads: usize) {
    use tract_onnx::prelude::tract_linalg::multithread::{set_default_executor, Executor};
    if threads <= 1 {
        set_default_executor(Executor::SingleThread);
    } else {
        set_default_executor(Executor::multithread(threads));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Both projector forms against a direct `Z[t][n][o] = Σ_k y[t][k] · W[k][(n, o)]`, in
    /// the kernel's `[O/32][T][N][32]` layout (int8: `y` quantized, products in integers).
    #[test]
    fn projection_equals_direct_product() {
        let (t, p, n, o) = (7usize, 5usize, 3usize, 40usize);
        let blocks = o.div_ceil(kernel::CHUNK);
        let cols = n * kernel::CHUNK;
        let yt: Vec<f32> = (0..t * p).map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.13).collect();
        let wq: Vec<Vec<i8>> =
            (0..blocks).map(|b| (0..p * cols).map(|i| ((i * 31 + b * 7) % 255) as i8).collect()).collect();
        let (x_scale, col_scale): (f32, Vec<f32>) = (0.05, (0..o).map(|c| 0.01 + c as f32 * 1e-3).collect());
        let workers = tail::Workers::new(2).unwrap();
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
        // int8
        let proj = Projector::new(
            graph::Projection::Int8 { blocks: wq.clone(), x_scale, col_scale: col_scale.clone() },
            t,
            p,
            n,
        )
        .unwrap();
        let z = proj.run(&yt, &workers).unwrap();
        let z = z.as_slice();
        let yq = |tt: usize, k: usize| (yt[tt * p + k] / x_scale).round_ties_even().clamp(-128.0, 127.0);
        let want = direct(
            &|b, k, col| {
                let c = b * kernel::CHUNK + col % kernel::CHUNK;
                wq[b][k * cols + col] as f32 * col_scale.get(c).copied().unwrap_or(0.0)
            },
            &yq,
        );
        let err = z.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "int8 projection: relative error {err}");
        // float
        let wf: Vec<Vec<f32>> = wq.iter().map(|b| b.iter().map(|&v| v as f32 * 0.01).collect()).collect();
        let proj = Projector::new(graph::Projection::Float { blocks: wf.clone() }, t, p, n).unwrap();
        let z = proj.run(&yt, &workers).unwrap();
        let z = z.as_slice();
        let want = direct(&|b, k, col| wf[b][k * cols + col], &|tt, k| yt[tt * p + k]);
        let err = z.iter().zip(&want).map(|(a, b)| (a - b).abs() / (1.0 + b.abs())).fold(0.0f32, f32::max);
        assert!(err < 1e-5, "float projection: relative error {err}");
    }

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

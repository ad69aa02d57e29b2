//! A feature backbone: any ONNX model whose input is `[N, 3, H, W]` (or mmaction2's
//! recognizer layout `[N, 1, 3, H, W]`: batch, one segment, C, H, W) and whose output is
//! `[N, C]`, `[N, C, 1, 1]` or a feature map `[N, C, h, w]` (then averaged over `h × w`),
//! run through tract — and [`SnippetFeatures`], the stream of per-snippet features from a
//! frame source (`pixels`), the input of BMN.
//!
//! **Batches.** With a dynamic batch axis, `batch` snippets' sampled frames (`batch · K`)
//! run at once; the last, partial batch is padded (the padding's outputs are dropped; a
//! backbone in inference mode computes each image on its own). A fixed batch axis (exports
//! without dynamic axes, mmaction2's default `--shape 1 1 3 224 224`) is used as it is, `N`
//! frames per run. At most one batch of preprocessed frames exists per worker.
//!
//! **Threads.** A backbone's frames are independent, and most of a frame's convolutions are
//! too small to split well over threads (MobileNetV2's 1×1 products and depthwise layers;
//! tract's intra-frame split gained 1.2× from 1 to 2 threads there). So with `threads ≥ 2`
//! the default is **frame-level** ([`BackboneThreads::Frames`]): the plan runs on one worker
//! per run of frames, each single-threaded, the features placed in order; a
//! [`SnippetFeatures`] stream reads one run per worker ahead (the latency of a live stream
//! grows by `threads − 1` snippets; memory by one frame's activations per worker). Fewer
//! runs than workers (the end of a video) go through tract's own intra-frame split, as
//! does [`BackboneThreads::Within`] always. Either way each frame's arithmetic is the
//! same, so the features are identical, bit for bit, whatever the threads.
//!
//! **int8.** A QOperator backbone (`QLinearConv` etc.) runs as the BMN engine runs its stage
//! A: on a CPU with an int8 dot-product instruction through tract's integer kernels;
//! elsewhere its certified `QLinearConv`s are rewritten as exact float convolutions on the
//! same levels (`engine::cpu`, `onnx::exact_float`: the same output levels, bit for bit).
//! `int8_arithmetic` forces either (the widened choice, bmn-edge's own kernel for the
//! engine's products, means exact float inside a backbone).
//!
//! **Preprocessing from the file.** `metadata_props` may carry `bmn_edge.pixels.resize`,
//! `bmn_edge.pixels.crop` (integers), `bmn_edge.pixels.mean` and `bmn_edge.pixels.std`
//! (three comma-separated numbers, RGB, `[0, 255]` scale). Each value comes from, in order:
//! the caller's override (the command line), the file, the model's fixed input size (the
//! crop), the default (crop 224; resize `⌈crop·8/7⌉`, 256 for 224; ImageNet mean/std).
//! `bmn_edge.pixels.snippet_frames` (an integer) is the frames per snippet the model's BMN
//! was trained with ([`Backbone::snippet_frames`]; the caller's flag overrides it, 16 —
//! ActivityNet's — without either).

use super::cpu::Int8Arithmetic;
use super::depthwise::{replace_depthwise, DwSimd};
use super::error::{EngineError, EngineErrorKind};
use super::load::read_model_file;
use super::onnx::exact_float::{qlinearconv_to_exact_float, qlinearconv_to_exact_float_where};
use super::onnx::qoperator::{fold_qdq_convs, lower_qoperator};
use super::onnx::weights::check_constants;
use super::product::{build_stage_with, plain};
use super::workers::{set_tract_threads, Workers};
use crate::pixels::preprocess::{IMAGENET_MEAN, IMAGENET_STD};
use crate::pixels::{FrameSource, PixelError, Preprocess, Sampling, SnippetFrames, VideoSummary};
use prost::Message;
use std::fmt;
use std::path::Path;
use std::sync::Arc;
use tract_core::model::TypedRunnableModel;
use tract_onnx::prelude::*;

/// The `metadata_props` keys a backbone may carry its preprocessing in.
pub const META_RESIZE: &str = "bmn_edge.pixels.resize";
/// See [`META_RESIZE`].
pub const META_CROP: &str = "bmn_edge.pixels.crop";
/// See [`META_RESIZE`].
pub const META_MEAN: &str = "bmn_edge.pixels.mean";
/// See [`META_RESIZE`].
pub const META_STD: &str = "bmn_edge.pixels.std";
/// See [`META_RESIZE`]: frames per snippet.
pub const META_SNIPPET_FRAMES: &str = "bmn_edge.pixels.snippet_frames";

/// Preprocessing values given by the caller; `None` takes the file's, then the default.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct PreprocessOverrides {
    /// Short side after resizing.
    pub resize: Option<usize>,
    /// Centre crop side.
    pub crop: Option<usize>,
    /// Per-channel mean (RGB, `[0, 255]`).
    pub mean: Option<[f32; 3]>,
    /// Per-channel std (RGB, `[0, 255]`).
    pub std: Option<[f32; 3]>,
}

/// How a backbone is loaded and run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackboneOptions {
    /// tract's threads.
    pub threads: usize,
    /// Snippets per run when the batch axis is dynamic (at least 1; default 1: tract ran
    /// ResNet-50 slower per frame at batch 4 than at 1 on an x86-64 with AVX2).
    pub batch: usize,
    /// Frames per snippet through the backbone (`K`): with `batch`, the frames per run.
    pub per_snippet: usize,
    /// Force the int8 arithmetic (`None`: the one chosen for this CPU).
    pub int8_arithmetic: Option<Int8Arithmetic>,
    /// Preprocessing values that override the file's.
    pub overrides: PreprocessOverrides,
    /// How the threads share the work (see the module docs).
    pub parallel: BackboneThreads,
    /// Run eligible depthwise 3×3 convolutions on the engine's own kernel
    /// ([`super::depthwise`]; default on): off leaves every convolution to tract.
    pub own_depthwise: bool,
}

/// How a backbone's threads share its work.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackboneThreads {
    /// One run of frames per thread, each single-threaded (the default).
    #[default]
    Frames,
    /// Each run split over the threads by tract (the lowest latency per frame).
    Within,
}

impl Default for BackboneOptions {
    fn default() -> Self {
        BackboneOptions {
            parallel: BackboneThreads::default(),
            own_depthwise: true,
            threads: 1,
            batch: 1,
            per_snippet: 1,
            int8_arithmetic: None,
            overrides: PreprocessOverrides::default(),
        }
    }
}

/// What a backbone's output is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackboneOutput {
    /// `[N, C]` (or `[N, C, 1, 1]`).
    Vector,
    /// `[N, C, h, w]` averaged over `h × w` cells.
    Map {
        /// Cells averaged (`h · w`).
        cells: usize,
    },
}

/// The most frames one backbone run takes (`batch · per_snippet` with a dynamic batch axis):
/// 256 frames of 224² are 154 MB of input alone, and tract's intermediate tensors are
/// several times that; larger runs were never faster here (batch 1 is fastest).
pub const MAX_FRAMES_PER_RUN: usize = 256;

/// A loaded backbone: the tract plan for one batch size, its layout, its preprocessing.
pub struct Backbone {
    plan: Arc<TypedRunnableModel>,
    /// Frame-level workers (`None`: every run on the calling thread, tract splitting it).
    workers: Option<Workers>,
    input_shape: Vec<usize>,
    frames_per_run: usize,
    channels: usize,
    output: BackboneOutput,
    preprocess: Preprocess,
    snippet_frames: Option<usize>,
    int8: Option<Int8Arithmetic>,
    fixed_batch: bool,
    own_depthwise: usize,
    lowered: Vec<(String, usize)>,
    qdq_convs: usize,
    buffers: BufferSizes,
    scratch: Vec<f32>,
}

/// The sizes of the tensors one run of a backbone's plan computes, from the plan's facts:
/// what the process's allocator must serve from its heap, run after run, for the backbone
/// not to map, fault in and unmap its activations on every frame (the binary's
/// `process::prepare_for_backbone`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BufferSizes {
    /// The largest single tensor (bytes): an output of one node. tract's packed operands
    /// (a convolution's packed patches) are not node outputs and can be larger: ResNet-50's
    /// 7×7 stem at 224 packs 112·112 × 147 floats, 7.4 MB, against its largest output's 3.2 MB.
    pub largest: usize,
    /// Every node output of one run but the constants, summed (bytes): an upper bound of
    /// what one run holds at once.
    pub total: usize,
}

impl fmt::Debug for Backbone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Backbone")
            .field("input_shape", &self.input_shape)
            .field("channels", &self.channels)
            .field("output", &self.output)
            .field("preprocess", &self.preprocess)
            .field("int8", &self.int8)
            .finish()
    }
}

fn unsupported(m: String) -> EngineError {
    EngineError::new(EngineErrorKind::Unsupported, m)
}

fn meta_triple(key: &str, v: &str) -> Result<[f32; 3], EngineError> {
    let parts: Vec<&str> = v.split(',').map(str::trim).collect();
    let bad =
        || EngineError::new(EngineErrorKind::Input, format!("backbone metadata `{key}` = {v:?} is not three numbers"));
    if parts.len() != 3 {
        return Err(bad());
    }
    let mut out = [0.0f32; 3];
    for (o, p) in out.iter_mut().zip(parts) {
        *o = p.parse().map_err(|_| bad())?;
    }
    Ok(out)
}

fn meta_int(key: &str, v: &str) -> Result<usize, EngineError> {
    v.trim().parse().map_err(|_| {
        EngineError::new(EngineErrorKind::Input, format!("backbone metadata `{key}` = {v:?} is not a positive integer"))
    })
}

impl Backbone {
    /// Loads a backbone file.
    pub fn load(path: &Path, options: &BackboneOptions) -> Result<Backbone, EngineError> {
        let bytes = read_model_file(path)?;
        Backbone::from_bytes(bytes, options)
            .map_err(|e| EngineError::with_source(e.kind(), format!("backbone {}", path.display()), e))
    }

    /// Loads a backbone from its bytes (consumed: released once decoded, so a 100 MB
    /// ResNet-50 is not held twice while tract builds its plan).
    pub fn from_bytes(bytes: Vec<u8>, options: &BackboneOptions) -> Result<Backbone, EngineError> {
        if options.batch == 0 || options.per_snippet == 0 {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                "backbone batch and frames per snippet must be at least 1",
            ));
        }
        set_tract_threads(options.threads.max(1));
        let mut proto = tract_onnx::pb::ModelProto::decode(bytes.as_slice())
            .map_err(|e| EngineError::with_source(EngineErrorKind::NotOnnx, "not an ONNX model", e))?;
        drop(bytes);
        // onnxruntime's QOperator contrib ops (QLinearAdd, QGemm, ...) as standard ONNX.
        let lowered = lower_qoperator(&mut proto)?;
        if lowered.count() > 0 {
            log::info!("backbone: {lowered}");
        }
        // The QDQ form's convolutions as the QLinearConv they stand for.
        let qdq_convs = fold_qdq_convs(&mut proto)?;
        if qdq_convs > 0 {
            log::info!("backbone: {qdq_convs} QDQ convolution(s) (DequantizeLinear -> Conv -> QuantizeLinear) run as QLinearConv");
        }
        let graph = proto.graph.as_ref().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?;
        check_constants(graph)?;
        // The data input: the first graph input that is not an initializer.
        let inits: std::collections::HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
        let input = graph
            .input
            .iter()
            .find(|i| !inits.contains(i.name.as_str()))
            .ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "the graph has no data input"))?;
        let dims = super::onnx::value_dims(input).ok_or_else(|| {
            unsupported(format!("input `{}` has no declared shape: expected [N, 3, H, W]", input.name))
        })?;
        let shape_text = format!(
            "[{}]",
            dims.iter().map(|d| d.map_or("?".to_string(), |v| v.to_string())).collect::<Vec<_>>().join(", ")
        );
        // [N, 3, H, W] or [N, 1, 3, H, W].
        let (n, hw) = match dims.as_slice() {
            [n, Some(3), h, w] => (*n, (*h, *w)),
            [n, s, Some(3), h, w] if s.is_none_or(|s| s == 1) => (*n, (*h, *w)),
            _ => {
                return Err(unsupported(format!(
                    "input `{}` is {shape_text}: a backbone takes [N, 3, H, W] (or [N, 1, 3, H, W])",
                    input.name
                )))
            }
        };
        let rank5 = dims.len() == 5;
        let input_name = input.name.clone();
        let quantized = lowered.count() > 0
            || graph.node.iter().any(|n| {
                n.op_type.starts_with("QLinear") || n.op_type == "MatMulInteger" || n.op_type == "ConvInteger"
            });
        // Preprocessing: override, file, fixed input, default.
        let mut meta = PreprocessOverrides::default();
        let mut snippet_frames = None;
        for e in &proto.metadata_props {
            match e.key.as_str() {
                META_RESIZE => meta.resize = Some(meta_int(&e.key, &e.value)?),
                META_CROP => meta.crop = Some(meta_int(&e.key, &e.value)?),
                META_MEAN => meta.mean = Some(meta_triple(&e.key, &e.value)?),
                META_STD => meta.std = Some(meta_triple(&e.key, &e.value)?),
                META_SNIPPET_FRAMES => snippet_frames = Some(meta_int(&e.key, &e.value)?),
                _ => {}
            }
        }
        let o = options.overrides;
        let fixed_side = match hw {
            (Some(h), Some(w)) if h == w => Some(h),
            (Some(h), Some(w)) => {
                return Err(unsupported(format!(
                    "input `{}` is {shape_text}: the centre crop is square, the input is {h}x{w}",
                    input.name
                )))
            }
            _ => None,
        };
        let crop = o.crop.or(meta.crop).or(fixed_side).unwrap_or(224);
        if let Some(side) = fixed_side {
            if side != crop {
                return Err(EngineError::new(
                    EngineErrorKind::Input,
                    format!(
                        "the crop is {crop} but the backbone's input `{}` is {shape_text} ({side}x{side})",
                        input.name
                    ),
                ));
            }
        }
        let preprocess = Preprocess {
            resize: o.resize.or(meta.resize).unwrap_or((crop * 8).div_ceil(7)),
            crop,
            mean: o.mean.or(meta.mean).unwrap_or(IMAGENET_MEAN),
            std: o.std.or(meta.std).unwrap_or(IMAGENET_STD),
        };
        preprocess.check().map_err(|e| EngineError::with_source(EngineErrorKind::Input, "preprocessing", e))?;
        // int8: the BMN engine's per-CPU choice.
        let int8 = if quantized {
            let chosen = options.int8_arithmetic.unwrap_or_else(Int8Arithmetic::for_this_cpu);
            // The widened kernel is the engine's own; inside tract's graph that choice means
            // tract's integer kernels where they are built on a dot product, else exact float.
            if chosen.in_tract_graph() != Int8Arithmetic::Integer {
                let r = qlinearconv_to_exact_float(&mut proto)?;
                log::info!("backbone: {r}");
                Some(if r.left.is_empty() && !r.rewritten.is_empty() {
                    Int8Arithmetic::ExactFloat
                } else {
                    Int8Arithmetic::Integer
                })
            } else {
                // tract's integer depthwise convolutions go through im2col one group at a
                // time (MobileNetV2 int8: 6x slower than its fp32); as exact float on the
                // same levels they reach the engine's depthwise kernel — the same output
                // levels, bit for bit (the certificate: every sum an exact f32 integer).
                if options.own_depthwise {
                    let r = qlinearconv_to_exact_float_where(&mut proto, is_depthwise_3x3)?;
                    if !r.rewritten.is_empty() {
                        log::info!("backbone: depthwise QLinearConv as exact float: {r}");
                    }
                }
                Some(Int8Arithmetic::Integer)
            }
        } else {
            None
        };
        // Intermediate shape hints (`value_info`, e.g. from onnx's shape inference) name the
        // symbolic batch axis; the plan fixes it, so they are dropped and tract infers them.
        if let Some(g) = proto.graph.as_mut() {
            g.value_info.clear();
        }
        let fixed_batch = n.is_some();
        let frames_per_run = match n {
            Some(n) => n,
            None => options.batch.checked_mul(options.per_snippet).filter(|&f| f <= MAX_FRAMES_PER_RUN).ok_or_else(
                || {
                    EngineError::new(
                        EngineErrorKind::Input,
                        format!(
                        "batch {} x frames per snippet {} is more than {MAX_FRAMES_PER_RUN} frames per backbone run",
                        options.batch, options.per_snippet
                    ),
                    )
                },
            )?,
        };
        if frames_per_run == 0 {
            return Err(unsupported(format!("input `{}` is {shape_text}: a batch of 0", input_name)));
        }
        let mut input_shape = vec![frames_per_run];
        if rank5 {
            input_shape.push(1);
        }
        input_shape.extend([3, crop, crop]);
        let replaced = std::cell::Cell::new(0);
        let pass = |m: &mut TypedModel| -> TractResult<()> {
            replaced.set(replace_depthwise(m)?);
            Ok(())
        };
        let plan = build_stage_with(proto, "backbone", &input_shape, options.own_depthwise.then_some(&pass as _))?;
        let own_depthwise = replaced.get();
        if own_depthwise > 0 {
            log::info!(
                "backbone: {own_depthwise} depthwise 3x3 convolution(s) on bmn-edge's kernel ({:?})",
                DwSimd::detect()
            );
        }
        let out_fact = plan.model().output_fact(0).map_err(|e| EngineError::tract("backbone output", e))?;
        let out_shape: Vec<usize> = out_fact
            .shape
            .as_concrete()
            .map(|s| s.to_vec())
            .ok_or_else(|| unsupported(format!("backbone output shape {:?} is not concrete", out_fact.shape)))?;
        if out_fact.datum_type != f32::datum_type() {
            return Err(unsupported(format!("backbone output is {:?}, not float32", out_fact.datum_type)));
        }
        let (channels, output) = match out_shape.as_slice() {
            [b, c] if *b == frames_per_run => (*c, BackboneOutput::Vector),
            [b, c, 1, 1] if *b == frames_per_run => (*c, BackboneOutput::Vector),
            [b, c, h, w] if *b == frames_per_run => (*c, BackboneOutput::Map { cells: h * w }),
            _ => {
                return Err(unsupported(format!(
                    "backbone output is {out_shape:?} for {frames_per_run} input frame(s): expected [N, C], [N, C, 1, 1] or [N, C, h, w]"
                )))
            }
        };
        if channels == 0 {
            return Err(unsupported("backbone output has 0 channels".to_string()));
        }
        let buffers = buffer_sizes(plan.model());
        log::info!(
            "backbone: input {input_shape:?}, output {out_shape:?} -> {channels} channels{}; {}",
            if matches!(output, BackboneOutput::Map { .. }) { " (map averaged)" } else { "" },
            int8.map_or("fp32".to_string(), |a| format!("int8 ({})", a.name()))
        );
        let workers = match options.parallel {
            BackboneThreads::Frames if options.threads >= 2 => Some(Workers::new(options.threads)?),
            _ => None,
        };
        log::info!(
            "backbone: {} thread(s){}",
            options.threads.max(1),
            match &workers {
                Some(_) => ", one run of frames per thread",
                None if options.threads >= 2 => ", each run split by tract",
                None => "",
            }
        );
        Ok(Backbone {
            plan,
            workers,
            input_shape,
            frames_per_run,
            channels,
            output,
            preprocess,
            snippet_frames,
            int8,
            fixed_batch,
            own_depthwise,
            lowered: lowered.ops,
            qdq_convs,
            buffers,
            scratch: Vec::new(),
        })
    }

    /// The sizes of the tensors one run computes (from the plan's facts).
    pub fn buffers(&self) -> BufferSizes {
        self.buffers
    }

    /// Feature channels `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The output's form.
    pub fn output(&self) -> BackboneOutput {
        self.output
    }

    /// The frames per snippet the file names (`bmn_edge.pixels.snippet_frames`), if any.
    pub fn snippet_frames(&self) -> Option<usize> {
        self.snippet_frames
    }

    /// The resolved preprocessing (overrides, file, defaults).
    pub fn preprocess(&self) -> Preprocess {
        self.preprocess
    }

    /// Frames per run of the plan.
    pub fn frames_per_run(&self) -> usize {
        self.frames_per_run
    }

    /// Convolutions that run on the engine's own depthwise kernel ([`super::depthwise`]).
    pub fn own_depthwise(&self) -> usize {
        self.own_depthwise
    }

    /// The onnxruntime contrib ops of the file that run in float between levels (`(op,
    /// count)`: `onnx::qoperator`).
    pub fn lowered_ops(&self) -> &[(String, usize)] {
        &self.lowered
    }

    /// The QDQ convolutions folded into `QLinearConv` (`onnx::qoperator::fold_qdq_convs`).
    pub fn qdq_convs(&self) -> usize {
        self.qdq_convs
    }

    /// What runs where: `(op, count)` for every operator of the optimized plan (tract's op
    /// names — `OptMatMul`, `DepthWise`, `MaxPool`, … — and the engine's own, named
    /// `BmnEdge…`), most frequent first; sources and constants left out.
    pub fn plan_ops(&self) -> Vec<(String, usize)> {
        let mut counts: Vec<(String, usize)> = Vec::new();
        for n in self.plan.model().nodes() {
            let name = n.op.name().to_string();
            if name == "Source" || name == "Const" {
                continue;
            }
            match counts.iter_mut().find(|(op, _)| *op == name) {
                Some((_, c)) => *c += 1,
                None => counts.push((name, 1)),
            }
        }
        counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
        counts
    }

    /// The plan's input shape (`[frames per run, (1,) 3, crop, crop]`).
    pub fn input_shape(&self) -> &[usize] {
        &self.input_shape
    }

    /// Runs the backbone works on at once: its frame-level workers (1 without).
    pub fn parallel_runs(&self) -> usize {
        self.workers.as_ref().map_or(1, Workers::count)
    }

    /// Whether the file fixes the batch size.
    pub fn fixed_batch(&self) -> bool {
        self.fixed_batch
    }

    /// The int8 arithmetic in use (`None` for a float backbone).
    pub fn int8(&self) -> Option<Int8Arithmetic> {
        self.int8
    }

    /// Values of one preprocessed frame (`3 · crop · crop`).
    pub fn frame_len(&self) -> usize {
        3 * self.preprocess.crop * self.preprocess.crop
    }

    /// Runs the backbone on `frames` preprocessed frames (`frames · frame_len()` values in
    /// `input`, any count; runs of [`Self::frames_per_run`], the last padded) and writes
    /// each frame's `C` features to `out` (`frames · C`).
    pub fn run(&mut self, input: &[f32], out: &mut [f32]) -> Result<(), EngineError> {
        let fl = self.frame_len();
        if !input.len().is_multiple_of(fl) || out.len() != input.len() / fl * self.channels {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                format!("backbone run: {} input values, {} output values for frames of {fl}", input.len(), out.len()),
            ));
        }
        let per = self.frames_per_run;
        let c = self.channels;
        let runs = input.len().div_ceil(per * fl);
        let layout = RunLayout { input_shape: &self.input_shape, per, frame_len: fl, channels: c, output: self.output };
        // Frame-level: whole multiples of the workers' count, one run per worker; the rest
        // (fewer runs than workers) below, split by tract.
        let mut done = 0;
        if let Some(workers) = &self.workers {
            let n = workers.count();
            let parallel = runs - runs % n;
            if parallel > 0 {
                let plan = &self.plan;
                let mut outs: Vec<&mut [f32]> = out.chunks_mut(per * c).take(parallel).collect();
                workers.run(
                    parallel,
                    |k, _| {
                        let chunk = &input[k * per * fl..((k + 1) * per * fl).min(input.len())];
                        let mut feats = vec![0.0; chunk.len() / fl * c];
                        layout.run(plan, chunk, &mut Vec::new(), &mut feats)?;
                        Ok(feats)
                    },
                    |k, feats| {
                        outs[k].copy_from_slice(&feats);
                        Ok(())
                    },
                )?;
                done = parallel;
            }
        }
        let rest = &input[(done * per * fl).min(input.len())..];
        let out = &mut out[done * per * c..];
        for (chunk, o) in rest.chunks(per * fl).zip(out.chunks_mut(per * c)) {
            layout.run(&self.plan, chunk, &mut self.scratch, o)?;
        }
        Ok(())
    }
}

/// What one run of the plan needs to know of its input and output.
#[derive(Clone, Copy)]
struct RunLayout<'a> {
    input_shape: &'a [usize],
    per: usize,
    frame_len: usize,
    channels: usize,
    output: BackboneOutput,
}

impl RunLayout<'_> {
    /// Runs `plan` on one run's frames (`chunk`: at most `per` frames, a short one padded
    /// with zeros in `scratch`) and writes each frame's `C` features to `out`.
    fn run(
        &self,
        plan: &Arc<TypedRunnableModel>,
        chunk: &[f32],
        scratch: &mut Vec<f32>,
        out: &mut [f32],
    ) -> Result<(), EngineError> {
        let (per, fl, c) = (self.per, self.frame_len, self.channels);
        let frames = chunk.len() / fl;
        let x = if frames == per {
            Tensor::from_shape(self.input_shape, chunk)
        } else {
            scratch.clear();
            scratch.extend_from_slice(chunk);
            scratch.resize(per * fl, 0.0);
            Tensor::from_shape(self.input_shape, scratch)
        }
        .map_err(|e| EngineError::tract("backbone input", e))?;
        let y = plan.run(tvec!(x.into_tvalue())).map_err(|e| EngineError::tract("backbone", e))?;
        let cells = match self.output {
            BackboneOutput::Vector => 1,
            BackboneOutput::Map { cells } => cells,
        };
        let y = plain(&y[0], "backbone output", per * c * cells)?;
        for (f, of) in out.chunks_mut(c).enumerate().take(frames) {
            let base = f * c * cells;
            for (ch, v) in of.iter_mut().enumerate() {
                let cell = &y[base + ch * cells..base + (ch + 1) * cells];
                *v = if cells == 1 {
                    cell[0]
                } else {
                    (cell.iter().map(|&v| f64::from(v)).sum::<f64>() / cells as f64) as f32
                };
            }
        }
        Ok(())
    }
}

/// Whether `n` (a `QLinearConv`) is a depthwise 3×3 one: `group` > 1 and a weight of
/// `[group, 1, 3, 3]` (the engine's kernel then takes it once it is float).
fn is_depthwise_3x3(n: &tract_onnx::pb::NodeProto) -> bool {
    let group = n.attribute.iter().find(|a| a.name == "group").map_or(1, |a| a.i);
    let kernel = n.attribute.iter().find(|a| a.name == "kernel_shape").map(|a| a.ints.clone());
    group > 1 && kernel.is_none_or(|k| k == [3, 3])
}

/// The plan's tensor sizes: every node output whose shape is concrete.
fn buffer_sizes(model: &TypedModel) -> BufferSizes {
    let mut sizes = BufferSizes::default();
    // Constants (the weights) are not per-frame buffers: they live as long as the plan.
    for node in model.nodes().iter().filter(|n| n.op.name() != "Const") {
        for o in &node.outputs {
            let fact = &o.fact;
            let Some(shape) = fact.shape.as_concrete() else { continue };
            let elem = fact.datum_type.size_of();
            let bytes = shape.iter().product::<usize>().saturating_mul(elem);
            sizes.largest = sizes.largest.max(bytes);
            sizes.total = sizes.total.saturating_add(bytes);
        }
    }
    sizes
}

/// An error of the feature stream: the frames (reading, preprocessing) or the backbone.
#[derive(Debug, Clone)]
pub enum FeatureError {
    /// Reading or preparing frames failed.
    Pixels(PixelError),
    /// The backbone failed.
    Engine(EngineError),
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FeatureError::Pixels(e) => write!(f, "{e}"),
            FeatureError::Engine(e) if f.alternate() => write!(f, "{e:#}"),
            FeatureError::Engine(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for FeatureError {}

impl From<PixelError> for FeatureError {
    fn from(e: PixelError) -> Self {
        FeatureError::Pixels(e)
    }
}

impl From<EngineError> for FeatureError {
    fn from(e: EngineError) -> Self {
        FeatureError::Engine(e)
    }
}

/// Per-snippet features from a frame source: frames → sampling → preprocessing → backbone
/// (batches of `batch` snippets, one per frame-level worker at a time) → one row of `C`
/// floats per snippet, the mean over its `K` sampled frames. Memory: one frame, one batch
/// of preprocessed frames and of features per worker. An error reading frames first hands out the snippets completed before it,
/// then is returned.
pub struct SnippetFeatures<S: FrameSource> {
    frames: SnippetFrames<S>,
    backbone: Backbone,
    batch: usize,
    input: Vec<f32>,
    per_frame: Vec<f32>,
    feats: Vec<f32>,
    ready: usize,
    next: usize,
    ended: bool,
    pending: Option<PixelError>,
}

impl<S: FrameSource> SnippetFeatures<S> {
    /// The stream of `source`'s snippet features: `sampling` (its `K` should be the
    /// `per_snippet` the backbone was loaded with, for the batch size), the backbone's
    /// preprocessing, `batch` snippets per backbone run (at least 1; the latency of a live
    /// stream grows with it).
    pub fn new(source: S, sampling: Sampling, backbone: Backbone, batch: usize) -> Result<Self, FeatureError> {
        let frames = SnippetFrames::new(source, sampling, &backbone.preprocess())?;
        // One batch per frame-level worker at a time.
        let batch = batch.max(1) * backbone.parallel_runs();
        let k = sampling.per_snippet();
        Ok(SnippetFeatures {
            input: Vec::with_capacity(batch * k * frames.frame_len()),
            per_frame: Vec::new(),
            feats: vec![0.0; batch * backbone.channels()],
            frames,
            backbone,
            batch,
            ready: 0,
            next: 0,
            ended: false,
            pending: None,
        })
    }

    /// Feature channels `C`.
    pub fn channels(&self) -> usize {
        self.backbone.channels()
    }

    /// The backbone.
    pub fn backbone(&self) -> &Backbone {
        &self.backbone
    }

    /// The snippet source (frames, sampling, preprocessing).
    pub fn frames(&self) -> &SnippetFrames<S> {
        &self.frames
    }

    /// The video so far (complete once [`Self::next`] returned `Ok(false)`).
    pub fn summary(&self) -> VideoSummary {
        self.frames.summary()
    }

    /// Writes the next snippet's `C` features to `out`: `Ok(false)` at the end of the video.
    #[allow(clippy::should_implement_trait)]
    pub fn next(&mut self, out: &mut [f32]) -> Result<bool, FeatureError> {
        let c = self.channels();
        if out.len() != c {
            return Err(FeatureError::Engine(EngineError::new(
                EngineErrorKind::Input,
                format!("feature buffer has {} values, the backbone gives {c}", out.len()),
            )));
        }
        if self.next == self.ready {
            if let Some(e) = self.pending.take() {
                self.ended = true;
                return Err(e.into());
            }
            if self.ended {
                return Ok(false);
            }
            self.fill()?;
            if self.ready == 0 {
                return self.next(out);
            }
        }
        out.copy_from_slice(&self.feats[self.next * c..(self.next + 1) * c]);
        self.next += 1;
        Ok(true)
    }

    /// Reads up to `batch` snippets and runs the backbone on them.
    fn fill(&mut self) -> Result<(), FeatureError> {
        let k = self.frames.sampling().per_snippet();
        let fl = self.frames.frame_len();
        let per_snippet = k * fl;
        self.input.clear();
        let mut snippets = 0;
        while snippets < self.batch {
            self.input.resize((snippets + 1) * per_snippet, 0.0);
            match self.frames.next_snippet(&mut self.input[snippets * per_snippet..]) {
                Ok(true) => snippets += 1,
                Ok(false) => {
                    self.ended = true;
                    break;
                }
                Err(e) => {
                    self.pending = Some(e);
                    break;
                }
            }
        }
        self.input.truncate(snippets * per_snippet);
        let c = self.channels();
        self.per_frame.resize(snippets * k * c, 0.0);
        self.backbone.run(&self.input, &mut self.per_frame)?;
        for s in 0..snippets {
            for ch in 0..c {
                let sum: f64 = (0..k).map(|j| f64::from(self.per_frame[(s * k + j) * c + ch])).sum();
                self.feats[s * c + ch] = (sum / k as f64) as f32;
            }
        }
        self.ready = snippets;
        self.next = 0;
        Ok(())
    }
}

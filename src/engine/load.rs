//! Loading a model: reading the file, finding and verifying the BM layer, describing the
//! model, converting it to the edge format, and building the engine's parts (stage A in
//! tract, the BM layer, stage B in the form that fits).

use super::bm::{identify_mask, BmKernel, MaskData, TapPlan, CHUNK};
use super::cpu::Int8Arithmetic;
use super::diag::trace_rss;
use super::error::{EngineError, EngineErrorKind};
use super::info::{Int8Plan, ModelFormat, ModelInfo, StageBForm, Variant, WindowMode};
use super::onnx::chain::recognise;
use super::onnx::edge::{check_edge_metadata, edge_props, metadata, to_edge};
use super::onnx::exact_float::qlinearconv_to_exact_float;
use super::onnx::index::{check_buildable, check_single_assignment, GraphIndex, MaskRef};
use super::onnx::site::{find_site, Site};
use super::onnx::split::{int8_bm_symmetric, split, Split};
use super::onnx::weights::check_constants;
use super::onnx::wire::{tensor_f32, ModelFile};
use super::onnx::{attr, dtype};
use super::product::build_stage;
use super::projection::Projector;
use super::stage_b::bands::Bands;
use super::stage_b::integer::QTail;
use super::stage_b::winograd::{Tail, TILE_CHUNK};
use super::stage_b::{BmLayer, StageB, DEFAULT_BAND_ROWS};
use super::widened::WidenedSimd;
use super::workers::{set_tract_threads, Workers};
use super::{Engine, EngineOptions};
use crate::config::{Convention, WindowConfig};
use crate::npy::MAX_MODEL_FILE_BYTES;
use prost::Message;
use std::path::Path;

/// A model file analysed: the decoded graph (mask released), the BM site and the verified
/// tap plan.
pub(crate) struct Analysed {
    pub proto: tract_onnx::pb::ModelProto,
    pub site: Site,
    pub plan: TapPlan,
    pub info: ModelInfo,
}

/// Reads a model file: a regular file of at most [`MAX_MODEL_FILE_BYTES`], checked before
/// reading (`/dev/zero` or a FIFO is refused, not read until memory runs out or forever).
pub(crate) fn read_model_file(path: &Path) -> Result<Vec<u8>, EngineError> {
    crate::npy::read_regular_file(path, MAX_MODEL_FILE_BYTES)
        .map_err(|e| EngineError::with_source(EngineErrorKind::Io, format!("cannot read {}", path.display()), e))
}

/// An upper bound, in bytes, of the engine's buffers that grow with a model's configuration:
/// the BM layer's taps (each of the `N` bins of a valid cell has at most `2·K` of them: `K`
/// points, each between two snippets; 8 bytes each, and 8 per cell), the sampled map `H`
/// (`cells × O` floats, `O` the BM layer's output width) and one window's input and maps
/// (`C·T` and `3·D·T` floats, twice). `K` unknown (a dense mask not yet identified): a bin
/// has at most `T` taps (one per snippet) and `2·K ≤ 2·MAX_SAMPLES/N`, whichever is fewer.
/// Saturates rather than overflowing.
pub fn working_memory(t: usize, d: usize, n: usize, k: Option<usize>, out_width: usize, channels: usize) -> u128 {
    let d = d.min(t) as u128;
    let (t, n, o, c) = (t as u128, n as u128, out_width as u128, channels as u128);
    let cells = d.saturating_mul(t).saturating_sub(d.saturating_mul(d.saturating_sub(1)) / 2);
    let per_bin = match k {
        Some(k) => (k as u128).saturating_mul(2),
        None => t.min(2 * WindowConfig::MAX_SAMPLES as u128 / n.max(1)),
    };
    let taps = cells.saturating_mul(n).saturating_mul(per_bin);
    let plan = taps.saturating_mul(8).saturating_add(cells.saturating_mul(8));
    let h = cells.saturating_mul(o).saturating_mul(4);
    let window = c.saturating_mul(t).saturating_add(d.saturating_mul(t).saturating_mul(3)).saturating_mul(8);
    plan.saturating_add(h).saturating_add(window)
}

/// Refuses a configuration whose [`working_memory`] exceeds `max` bytes.
fn check_memory(site: &Site, max: u64) -> Result<(), EngineError> {
    let (t, d, n) = (site.tscale, site.dscale, site.num_sample);
    let k = site.perbin_ratio.map(|(k, _)| k);
    let c = site.input_dims.get(1).copied().flatten().unwrap_or(0);
    let need = working_memory(t, d, n, k, site.out_width, c);
    if need > u128::from(max) {
        let mib = |b: u128| b.div_ceil(1 << 20);
        return Err(EngineError::new(
            EngineErrorKind::TooLarge,
            format!(
                "this model (T = {t}, D = {d}, N = {n}, {}, BM width {}, C = {c}) would need up to {} MiB for the \
                 engine's buffers (BM taps, the sampled map, the window's maps), more than the bound of {} MiB \
                 (--max-memory); raise it if this machine has the memory",
                k.map_or("K from its mask".to_string(), |k| format!("K = {k}")),
                site.out_width,
                mib(need),
                mib(u128::from(max)),
            ),
        ));
    }
    Ok(())
}

/// Reads and analyses a model: finds the BM layer, identifies and verifies the mask (then
/// drops it), and describes the model. No tract model is built. The configuration must fit
/// [`DEFAULT_MAX_MEMORY`](super::DEFAULT_MAX_MEMORY).
pub(crate) fn analyse(bytes: Vec<u8>, convention: Option<Convention>) -> Result<Analysed, EngineError> {
    analyse_bounded(bytes, convention, super::DEFAULT_MAX_MEMORY)
}

/// [`analyse`] with the configuration bounded by `max_memory` bytes ([`working_memory`]),
/// checked before the BM layer's plan is built.
pub(crate) fn analyse_bounded(
    bytes: Vec<u8>,
    convention: Option<Convention>,
    max_memory: u64,
) -> Result<Analysed, EngineError> {
    let mut file = ModelFile::parse(bytes)?;
    if let Some(g) = file.proto.graph.as_ref() {
        check_single_assignment(g, &file.deferred)?;
        check_buildable(g)?;
    }
    let site = find_site(&file)?;
    check_memory(&site, max_memory)?;
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
                MaskRef::Deferred(i) => {
                    let dref = &file.deferred[*i];
                    (Some(&file.bytes[dref.data.clone()]), vec![], dref.name.clone())
                }
                MaskRef::Initializer(name) => {
                    let tp = graph
                        .initializer
                        .iter()
                        .find(|x| &x.name == name)
                        .ok_or_else(|| EngineError::new(EngineErrorKind::NotBmn, "mask initializer missing"))?;
                    if !tp.raw_data.is_empty() && tp.data_type == dtype::FLOAT {
                        (Some(&tp.raw_data[..]), vec![], name.clone())
                    } else {
                        (None, tensor_f32(tp)?, name.clone())
                    }
                }
                MaskRef::ConstantNode(i) => {
                    let node = &graph.node[*i];
                    let tp = attr(node, "value").and_then(|a| a.t.as_ref()).ok_or_else(|| {
                        EngineError::new(EngineErrorKind::NotBmn, "the mask Constant has no tensor value")
                    })?;
                    (None, tensor_f32(tp)?, node.output.first().cloned().unwrap_or_default())
                }
            };
            let mask = match data {
                Some(b) => MaskData::Le(b),
                None => MaskData::F32(&floats),
            };
            (identify_mask(&mask, t, d, n)?, Some(name))
        }
        (None, None) => return Err(EngineError::new(EngineErrorKind::NotBmn, "BM layer without mask or parameters")),
    };
    let drop_names: Vec<&str> = mask_name.as_deref().into_iter().collect();
    file.release(&drop_names);
    let proto = std::mem::take(&mut file.proto);
    drop(file);
    check_constants(proto.graph.as_ref().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?)?;

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
    let variant = Variant::from_widths(site.base_width, site.pem_width);
    let stored_convention = metadata(&proto, "convention").and_then(Convention::parse);
    let convention = convention.or(stored_convention).unwrap_or(variant.default_convention());
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
        let ix = GraphIndex::new(
            proto.graph.as_ref().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?,
            &[],
        );
        if int8_bm_symmetric(&ix, &site)? {
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
        window_mode: metadata(&proto, "window_mode").and_then(WindowMode::parse),
        warnings,
    };
    if info.format == ModelFormat::Edge {
        check_edge_metadata(&proto, &info)?;
    }
    Ok(Analysed { proto, site, plan, info })
}

/// Describes a model file without building tract models.
pub fn inspect(path: &Path) -> Result<ModelInfo, EngineError> {
    Ok(analyse(read_model_file(path)?, None)?.info)
}

/// A model converted to the edge format.
#[derive(Debug, Clone)]
pub struct Converted {
    /// The edge file's bytes.
    pub edge: Vec<u8>,
    /// The edge model's description.
    pub info: ModelInfo,
    /// The form the input was in: a standard export (its mask verified and dropped) or an
    /// edge file (rewritten with fresh metadata).
    pub input_format: ModelFormat,
}

/// Converts a model to the edge format. The mask of a standard export is verified against
/// the table before it is dropped; an edge file is rewritten with fresh metadata (its graph
/// was checked against its old metadata on reading).
pub fn convert_to_edge(
    bytes: Vec<u8>,
    convention: Option<Convention>,
    window_mode: WindowMode,
) -> Result<Converted, EngineError> {
    let a = analyse(bytes, convention)?;
    let input_format = a.info.format;
    let cfg = a.info.config;
    let meta = edge_props(&a.info, window_mode);
    let edge = to_edge(a.proto, &a.site, cfg.num_sample_perbin(), cfg.ratio(), &meta)?.encode_to_vec();
    let mut info = a.info;
    info.format = ModelFormat::Edge;
    info.window_mode = Some(window_mode);
    // What was written must read back as the same model: a conversion never hands out a
    // file that does not load (the edge file is small: the mask is gone).
    let back = analyse(edge.clone(), convention).map_err(|e| {
        EngineError::with_source(e.kind(), "the converted edge file does not read back (nothing written)", e)
    })?;
    let (b, c) = (&back.info, &info);
    if (b.config, b.channels, b.mask_nnz, b.variant) != (c.config, c.channels, c.mask_nnz, c.variant) {
        return Err(EngineError::new(
            EngineErrorKind::NotBmn,
            format!(
                "the converted edge file reads back as another model ({:?}, C = {}, {} taps) than the input ({:?}, C = {}, {} taps); nothing written",
                b.config, b.channels, b.mask_nnz, c.config, c.channels, c.mask_nnz
            ),
        ));
    }
    Ok(Converted { edge, info, input_format })
}

impl Engine {
    /// Loads a model file (standard export or edge format).
    pub fn load(path: &Path, options: &EngineOptions) -> Result<Engine, EngineError> {
        Engine::from_bytes(read_model_file(path)?, options)
    }

    /// Loads a model from its bytes (consumed: a standard export is held once).
    pub fn from_bytes(bytes: Vec<u8>, options: &EngineOptions) -> Result<Engine, EngineError> {
        let threads = options.threads.max(1);
        set_tract_threads(threads);
        trace_rss("read");
        let a = analyse_bounded(bytes, options.convention, options.max_memory.unwrap_or(super::DEFAULT_MAX_MEMORY))?;
        trace_rss("analysed");
        let (t, d) = (a.info.config.tscale(), a.info.config.dscale());
        let quantized = !a.info.quantized_ops.is_empty();
        if options.emulate_int8_stage_b && !quantized {
            return Err(EngineError::new(
                EngineErrorKind::Unsupported,
                "emulating an int8 stage B needs an int8 model; this one is fp32 (there is no quantization to emulate)",
            ));
        }
        let chosen = options.int8_arithmetic.unwrap_or_else(Int8Arithmetic::for_this_cpu);
        let Split { halo, mut stage_a, stage_b, bias, projection, sigmoid_after_a } =
            split(a.proto, &a.site, a.info.channels, CHUNK)?;
        trace_rss("split");
        // Stage A's int8 convolutions: tract's integer kernels as they are, or rewritten as
        // exact float (the same levels; see `onnx::exact_float`). When the engine's own
        // products run widened, which tract's graph cannot, integer where tract's kernels are
        // built on a dot product, else exact float.
        let stage_a_int8 = if !quantized {
            None
        } else if chosen.in_tract_graph() != Int8Arithmetic::Integer {
            let r = qlinearconv_to_exact_float(&mut stage_a)?;
            log::info!("stage A: {r}");
            match (r.rewritten.is_empty(), r.left.is_empty()) {
                (true, true) => None,
                (false, true) => Some(Int8Arithmetic::ExactFloat),
                _ => Some(Int8Arithmetic::Integer),
            }
        } else {
            let has_qconv = stage_a.graph.as_ref().is_some_and(|g| g.node.iter().any(|n| n.op_type == "QLinearConv"));
            has_qconv.then_some(Int8Arithmetic::Integer)
        };
        let stage_a = build_stage(stage_a, "stage A", &[1, a.info.channels, t])?;
        trace_rss("stage A built");
        let convs = if options.tract_stage_b {
            None
        } else {
            recognise(&stage_b, &a.site.h, &a.site.outputs[0], a.info.bm_width)
        };
        let tail: Box<dyn StageB> = match convs {
            Some(convs) => {
                let cells = a.plan.cells().to_vec();
                let int8 = if options.emulate_int8_stage_b {
                    None
                } else {
                    QTail::new(&convs, cells.clone(), t, d, &bias, chosen)
                };
                match int8 {
                    Some(q) => Box::new(q?),
                    None => Box::new(Tail::new(convs, cells, t, d, &bias, TILE_CHUNK)?),
                }
            }
            None if options.emulate_int8_stage_b => {
                return Err(EngineError::new(
                    EngineErrorKind::Unsupported,
                    "emulating an int8 stage B needs stage B as the sparse tail; it runs in tract here (tract stage B requested, or a stage B not recognised as a convolution chain)",
                ));
            }
            None => Box::new(Bands::new(stage_b, &bias, (d, t), options.band_rows.unwrap_or(DEFAULT_BAND_ROWS), halo)?),
        };
        if options.band_rows.is_some() && tail.form() != StageBForm::TractBands {
            log::warn!("band rows ignored: stage B runs as the {} tail, not in tract's row bands", tail.form().name());
        }
        let kernel = BmKernel::new(a.plan, &bias);
        let projection = Projector::new(projection, t, a.info.pem_width, a.info.config.num_sample(), chosen)?;
        let int8 = quantized.then(|| Int8Plan {
            forced: options.int8_arithmetic.is_some(),
            chosen,
            stage_a: stage_a_int8,
            projection: projection.arithmetic(),
            stage_b: tail.int8_arithmetics(),
        });
        if let Some(p) = &int8 {
            log::info!(
                "int8 arithmetic: {} ({}); stage A {}, projection {}, stage B {:?}{}",
                p.chosen.name(),
                if p.forced { "forced" } else { "chosen for this CPU" },
                p.stage_a.map_or("float", |a| a.name()),
                p.projection.map_or("float weights", |a| a.name()),
                p.stage_b.iter().map(|a| a.name()).collect::<Vec<_>>(),
                p.widened_code().map_or(String::new(), |c| format!("; widened code {}", c.name())),
            );
            if p.widened_code() == Some(WidenedSimd::Portable) {
                log::warn!("widened int8 products run in portable Rust on this CPU (no AVX2): the same sums, slowly");
            }
        }
        trace_rss("stage B built");
        log::info!(
            "model: {} {} ({}), T = {t}, D = {d}, N = {}, K = {}, r = {}; stage B {}; BM kernel {}; {threads} thread(s)",
            a.info.format.name(),
            a.info.variant,
            if a.info.quantized_ops.is_empty() { "fp32".to_string() } else { format!("int8: {}", a.info.quantized_ops.join(", ")) },
            a.info.config.num_sample(),
            a.info.config.num_sample_perbin(),
            a.info.config.ratio(),
            tail.form().name(),
            kernel.simd().name(),
        );
        Ok(Engine {
            info: a.info,
            stage_a,
            sigmoid_after_a,
            bm: BmLayer { projection, kernel },
            stage_b: tail,
            threads,
            workers: Workers::new(threads)?,
            int8,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::error::EngineErrorKind;
    use crate::engine::onnx::META_PREFIX;

    fn fixture() -> Vec<u8> {
        let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx");
        std::fs::read(p).unwrap()
    }

    /// The edge file with metadata entry `key` set to `value` (`None`: removed).
    fn with_meta(edge: &[u8], key: &str, value: Option<&str>) -> Vec<u8> {
        let mut m = tract_onnx::pb::ModelProto::decode(edge).unwrap();
        let full = format!("{META_PREFIX}{key}");
        m.metadata_props.retain(|e| e.key != full);
        if let Some(v) = value {
            m.metadata_props.push(tract_onnx::pb::StringStringEntryProto { key: full, value: v.into() });
        }
        m.encode_to_vec()
    }

    #[test]
    fn edge_metadata_is_read_back_and_checked() {
        let Converted { edge, info, input_format } = convert_to_edge(fixture(), None, WindowMode::Rescale).unwrap();
        assert_eq!(input_format, ModelFormat::Standard);
        assert_eq!(info.window_mode, Some(WindowMode::Rescale));
        let back = analyse(edge.clone(), None).unwrap().info;
        assert_eq!(
            (back.format, back.window_mode, back.mask_nnz),
            (ModelFormat::Edge, Some(WindowMode::Rescale), info.mask_nnz)
        );
        assert_eq!(back.config, info.config);
        // Converting an edge file again keeps its graph and rewrites its metadata.
        let Converted { edge: again, info: info2, input_format } =
            convert_to_edge(edge.clone(), None, WindowMode::Sliding).unwrap();
        assert_eq!(input_format, ModelFormat::Edge);
        assert_eq!((info2.config, info2.mask_nnz), (info.config, info.mask_nnz));
        assert_eq!(analyse(again, None).unwrap().info.window_mode, Some(WindowMode::Sliding));
        // Each lie or damage is refused, naming what differs.
        let cases: [(&str, Option<&str>, &str); 7] = [
            ("format", Some("edge-v9"), "edge-v9"),
            ("format", None, "no `bmn_edge.format`"),
            ("tscale", Some("50"), "`tscale` is 50 but the graph says 16"),
            ("ratio", Some("0.25"), "`ratio` is 0.25"),
            ("convention", Some("bogus"), "`convention` is `bogus`"),
            ("window_mode", Some("both"), "`window_mode` is `both`"),
            ("mask_nnz", None, "`mask_nnz` is missing"),
        ];
        for (key, value, says) in cases {
            let Err(e) = analyse(with_meta(&edge, key, value), None) else { panic!("{key}: accepted") };
            assert_eq!(e.kind(), EngineErrorKind::EdgeMetadata, "{key}: {e}");
            assert!(e.to_string().contains(says), "{key}: {e}");
        }
    }
}

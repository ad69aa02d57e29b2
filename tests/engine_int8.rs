//! int8 QOperator (QLinearConv, s8 symmetric per-tensor) models run through the engine.
//!
//! Fixtures: `tests/fixtures/onnx_int8/` (`make.py` there: the tiny PyTorch-variant export
//! quantized with `models/quantize.py`, plus onnxruntime's int8 outputs; that script keeps
//! the BM MatMul and the Conv3d in float, except in the `_conv3d` file). The engine never
//! quantizes the BM output (the 5-d tensor never exists): a float Conv3d runs reassociated in
//! float, a symmetric int8 one as an int8 projection of `y` quantized with its input scale.
//! Maps are compared with onnxruntime's int8 maps and with fp32.
//!
//! ## The int8 tolerance
//!
//! Every map is `sigmoid(dequantize(q))` with `q` the int8 output of a `QLinearConv` whose
//! output scale `s` is read from the model file ([`LastLayer`]): the sigmoid's input is a
//! whole number of steps `s`. So the maps are compared in *levels*, `q = logit(p) / s`,
//! which the tests recover from the maps, checking that they are whole numbers (a map that
//! is not the model's quantized output fails there); `k` levels are at most `k · s / 4` on
//! the map (`sigmoid' ≤ 1/4`).
//!
//! The engine runs the same integer arithmetic as onnxruntime; its levels can differ only
//! where a value lies within float noise of a rounding boundary (a near tie) and the two
//! round it differently: the engine sums H in another order (the BM layer reassociated) and
//! requantizes with its own float operations. `make.py --near-ties` lists where onnxruntime
//! rounds such a value (relative distance `1e-5` for float values — H: the engine's agrees
//! with onnxruntime's to ~1e-6 — and `1e-6` for requantizations of exact integer sums, a few
//! float32 operations) as stage-B cells and the radius of the 3×3 layers after it
//! (`manifest.json`, `near_ties_qop`: five cells of H, radius 2; none in stage A). A flipped
//! rounding there can move the map by many levels (the chain's worst-case gain exceeds
//! int8's range, so no useful bound exists inside), but only within that radius. Every
//! value outside those fields must be at onnxruntime's level exactly, i.e. within float32
//! rounding of onnxruntime's value, and so must the start/end maps (stage A, tract's integer
//! kernels) everywhere. A map off by one step, or off anywhere outside the fields, fails
//! ([`off_by_one_step_is_caught`]). On the fixture, 35 of the 512 confidence values differ,
//! all within the field of one H cell (up to 7 levels, 0.076).
#![cfg(feature = "engine")]

use bmn_edge::engine::cpu::{is_dot_product_kernel, CpuReport};
use bmn_edge::engine::{Engine, EngineOptions, Int8Arithmetic, StageBForm, Variant, WindowMode};
use bmn_edge::npy::read_f32;
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use prost::Message;
use serde_json::Value;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use tract_onnx::pb;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures")
}

fn npy(p: &str) -> Vec<f32> {
    read_f32(&root().join(p)).unwrap().data
}

/// The tiny fixture's input window (`[T, C]` rows of snippets) as the engine takes it, `[C, T]`.
fn fixture_window(channels: usize) -> Vec<f32> {
    let x = npy("onnx/bmn_tiny_pytorch_op17.io/input.npy");
    let t = x.len() / channels;
    let mut xt = vec![0.0; t * channels];
    for i in 0..t {
        for j in 0..channels {
            xt[j * t + i] = x[i * channels + j];
        }
    }
    xt
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn mean_abs(a: &[f32], b: &[f32]) -> f32 {
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32
}

fn proposals(engine: &Engine, start: &[f32], end: &[f32], conf: &[f32]) -> Vec<(u32, u32)> {
    let cfg = engine.config().post();
    let maps = WindowMaps::new(&cfg, start, end, conf).unwrap();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    let (mut s, mut e, mut pairs) = (vec![false; t], vec![false; t], vec![Proposal::default(); t * d]);
    let n = postprocess_window(&cfg, &maps, &mut s, &mut e, &mut pairs, 100).unwrap().output;
    pairs[..n].iter().map(|p| (p.start, p.end)).collect()
}

// ---------------------------------------------------------------------------------------
// The quantization of the maps, read from the model file.

fn floats(t: &pb::TensorProto) -> Vec<f32> {
    if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]])).collect()
    }
}

/// The layer that produces one output map: `QLinearConv` (or `QuantizeLinear`) →
/// `DequantizeLinear → Sigmoid` (then possibly a Squeeze).
#[derive(Debug)]
struct LastLayer {
    /// The output scale `s`: the sigmoid's input is a whole number of these.
    step: f64,
}

impl LastLayer {
    fn read(model: &pb::ModelProto, output: &str) -> LastLayer {
        let g = model.graph.as_ref().unwrap();
        let producer: HashMap<&str, &pb::NodeProto> =
            g.node.iter().flat_map(|n| n.output.iter().map(move |o| (o.as_str(), n))).collect();
        let init = |name: &str| g.initializer.iter().find(|t| t.name == name).unwrap_or_else(|| panic!("{name}"));
        let (mut cur, mut sigmoid) = (output, false);
        let dq = loop {
            let n = producer[cur];
            match n.op_type.as_str() {
                "Sigmoid" => sigmoid = true,
                "Squeeze" | "Reshape" | "Identity" => {}
                "DequantizeLinear" => break n,
                op => panic!("{output}: unexpected {op} before the sigmoid"),
            }
            cur = &n.input[0];
        };
        assert!(sigmoid, "{output}: no Sigmoid");
        let step = floats(init(&dq.input[1]))[0] as f64;
        // The int8 tensor comes from a QLinearConv (QOperator) or a QuantizeLinear (QDQ) of
        // the same scale; a zero point only shifts the whole levels.
        let q = producer[dq.input[0].as_str()];
        let scale = match q.op_type.as_str() {
            "QLinearConv" => &q.input[6],
            "QuantizeLinear" => &q.input[1],
            op => panic!("{output}: the sigmoid's input is dequantized from {op}"),
        };
        assert_eq!(floats(init(scale))[0] as f64, step, "{output}: {}'s scale vs the DequantizeLinear's", q.op_type);
        LastLayer { step }
    }
}

/// A near tie: map cell `(d, t)` and the radius of the 3×3 layers after it.
type Tie = (usize, usize, usize);

/// Where onnxruntime's roundings of the QOperator fixture are near ties (`make.py
/// --near-ties`): stage-B cells `(d, t)` and the radius of the 3×3 layers after them.
fn near_ties() -> Vec<Tie> {
    let text = std::fs::read_to_string(root().join("onnx_int8/manifest.json")).unwrap();
    let m: Value = serde_json::from_str(&text).unwrap();
    let ties = &m["near_ties_qop"];
    assert_eq!((ties["epsilon_float"].as_f64(), ties["epsilon_requant"].as_f64()), (Some(1e-5), Some(1e-6)));
    assert_eq!(
        ties["stage_a"].as_array().map(Vec::len),
        Some(0),
        "stage A has near ties: the start/end check assumes none"
    );
    ties["stage_b"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let v: Vec<usize> = c.as_array().unwrap().iter().map(|x| x.as_u64().unwrap() as usize).collect();
            (v[0], v[1], v[2])
        })
        .collect()
}

/// Whether map cell `(d, t)` is within a near tie's field.
fn in_tie_field(ties: &[Tie], d: usize, t: usize) -> bool {
    ties.iter().any(|&(d0, t0, r)| d.abs_diff(d0) <= r && t.abs_diff(t0) <= r)
}

fn load_model(path: &Path) -> pb::ModelProto {
    pb::ModelProto::decode(&std::fs::read(path).unwrap()[..]).unwrap()
}

/// The output levels `logit(p) / s` behind a map's values. `p` is known to about
/// `DP` (float32 rounding and the sigmoid's own error, onnxruntime's being an approximation),
/// so the level to `DP / (p (1 − p) s)`: every value must be that close to a whole number.
fn levels(map: &[f32], step: f64, what: &str) -> Result<Vec<i32>, String> {
    const DP: f64 = 1e-6;
    let mut out = Vec::with_capacity(map.len());
    for (i, &p) in map.iter().enumerate() {
        let p = p as f64;
        let slack = DP / (p * (1.0 - p)) / step;
        if slack.is_nan() || slack >= 0.25 {
            return Err(format!("{what}[{i}] = {p}: too close to 0 or 1 to recover its level"));
        }
        let x = (p / (1.0 - p)).ln() / step;
        let off = (x - x.round()).abs();
        if off > slack {
            return Err(format!("{what}[{i}] = {p}: logit/s = {x}, not a whole number of steps (±{slack:.1e})"));
        }
        out.push(x.round() as i32);
    }
    Ok(out)
}

/// How one map compares with onnxruntime's, in levels.
#[derive(Debug, Default)]
struct LevelStats {
    /// Values outside the near-tie fields, and the largest difference there (must be 0).
    outside: usize,
    outside_max_abs: f32,
    /// Values inside, the largest difference there in levels and on the map.
    inside: usize,
    inside_max_levels: i32,
    inside_max_abs: f32,
    /// Values at onnxruntime's level.
    same: usize,
}

/// Checks `ours` against `theirs`, `[planes][D][T]` maps (a 1-d map: `D = 1`) of the last
/// layer `last`: both whole levels, the same level at every cell outside the near-tie
/// fields `ties`.
fn check_levels(
    ours: &[f32],
    theirs: &[f32],
    last: &LastLayer,
    (d, t): (usize, usize),
    ties: &[Tie],
    what: &str,
) -> Result<LevelStats, String> {
    assert_eq!((ours.len(), theirs.len() % (d * t)), (theirs.len(), 0));
    let a = levels(ours, last.step, &format!("{what} (engine)"))?;
    let b = levels(theirs, last.step, &format!("{what} (onnxruntime)"))?;
    let mut s = LevelStats::default();
    for (i, (x, y)) in a.iter().zip(&b).enumerate() {
        let (r, c) = ((i / t) % d, i % t);
        let (dl, da) = ((x - y).abs(), (ours[i] - theirs[i]).abs());
        s.same += usize::from(dl == 0);
        if in_tie_field(ties, r, c) {
            s.inside += 1;
            s.inside_max_levels = s.inside_max_levels.max(dl);
            s.inside_max_abs = s.inside_max_abs.max(da);
        } else {
            s.outside += 1;
            s.outside_max_abs = s.outside_max_abs.max(da);
            if dl != 0 {
                return Err(format!(
                    "{what}[{i}] (row {r}, column {c}): level {x} vs onnxruntime's {y}, outside every near tie's field"
                ));
            }
        }
    }
    Ok(s)
}

/// The three maps against onnxruntime's, with what was seen next to the bounds.
fn check_maps(engine: &Engine, out: &bmn_edge::engine::WindowOutputs, model: &pb::ModelProto, io: &str) {
    let (d, t) = (engine.config().dscale(), engine.config().tscale());
    let ties = near_ties();
    let outputs = &engine.info().outputs;
    let maps = [(&out.confidence, "confidence", d), (&out.start, "start", 1), (&out.end, "end", 1)];
    for ((ours, file, rows), name) in maps.into_iter().zip(outputs) {
        let (shape, ties) = ((rows, t), if rows == 1 { &[][..] } else { &ties[..] });
        let last = LastLayer::read(model, name);
        let theirs = npy(&format!("{io}/{file}.npy"));
        let s = check_levels(ours, &theirs, &last, shape, ties, file).unwrap_or_else(|e| panic!("{io}: {e}"));
        // Outside the fields: the same level, so the values differ by float32 rounding only
        // (the sigmoid of the same float32 input in two libraries: a few ulps).
        assert!(s.outside_max_abs <= 4.0 * f32::EPSILON, "{file}: {}", s.outside_max_abs);
        eprintln!(
            "  {file}: step {:.4}; {} values outside near-tie fields: max 0 levels, max|Δ| {:.1e} (bound {:.1e}); {} inside: max {} levels, max|Δ| {:.3e} (= {} · step / 4 at most {:.3e}); {}/{} at onnxruntime's level",
            last.step,
            s.outside,
            s.outside_max_abs,
            4.0 * f32::EPSILON,
            s.inside,
            s.inside_max_levels,
            s.inside_max_abs,
            s.inside_max_levels,
            s.inside_max_levels as f64 * last.step / 4.0,
            s.same,
            ours.len()
        );
        assert!(s.inside_max_abs as f64 <= s.inside_max_levels as f64 * last.step / 4.0 + 4.0 * f32::EPSILON as f64);
    }
}

#[test]
fn int8_qoperator_runs_and_stays_close_to_fp32() {
    let path = root().join("onnx_int8/bmn_tiny_pytorch_int8_qop.onnx");
    let mut engine = Engine::load(&path, &EngineOptions { threads: 2, ..EngineOptions::default() }).unwrap();
    let info = engine.info().clone();
    assert!(info.quantized_ops.iter().any(|o| o == "QLinearConv"), "{:?}", info.quantized_ops);
    assert_eq!(info.variant, Variant::Pytorch);
    assert!(!info.warnings.iter().any(|w| w.contains("QDQ") || w.contains("asymmetric")), "{:?}", info.warnings);
    let xt = fixture_window(info.channels);
    let (out, _) = engine.run(&xt).unwrap();
    let model = load_model(&path);
    eprintln!("int8 QOperator vs onnxruntime int8, in output levels:");
    check_maps(&engine, &out, &model, "onnx_int8/bmn_tiny_pytorch_int8_qop.io");
    // Against fp32 (for information; int8's distance to fp32 is onnxruntime's own, above):
    // the proposals mostly agree.
    let ort_conf = npy("onnx_int8/bmn_tiny_pytorch_int8_qop.io/confidence.npy");
    let fp_conf = npy("onnx/bmn_tiny_pytorch_op17.io/confidence.npy");
    let fp_start = npy("onnx/bmn_tiny_pytorch_op17.io/start.npy");
    let fp_end = npy("onnx/bmn_tiny_pytorch_op17.io/end.npy");
    let (mean_vs_fp32, ort_mean_vs_fp32) = (mean_abs(&out.confidence, &fp_conf), mean_abs(&ort_conf, &fp_conf));
    let ours = proposals(&engine, &out.start, &out.end, &out.confidence);
    let reference = proposals(&engine, &fp_start, &fp_end, &fp_conf);
    let overlap = ours.iter().filter(|p| reference.contains(p)).count();
    eprintln!(
        "int8: confidence max|Δ| vs fp32 {:.3e} (onnxruntime int8 {:.3e}), mean {mean_vs_fp32:.3e} (onnxruntime int8 {ort_mean_vs_fp32:.3e}); top-100 overlap with fp32 {overlap}/{}",
        max_abs(&out.confidence, &fp_conf),
        max_abs(&ort_conf, &fp_conf),
        reference.len()
    );
    assert!(overlap * 2 >= reference.len());
    // Stage B as the integer sparse tail, as the float one emulating onnxruntime's
    // quantization of every convolution's input and output, and as tract's integer
    // QLinearConv: three computations of the same integer arithmetic, so the same levels
    // everywhere (the maps differ only by the sigmoid's float rounding).
    assert_eq!(engine.stage_b_form(), StageBForm::Integer);
    let run = |opts: EngineOptions| {
        let mut e = Engine::load(&path, &EngineOptions { threads: 2, ..opts }).unwrap();
        let form = e.stage_b_form();
        (e.run(&xt).unwrap().0, form)
    };
    let (out_t, form_t) = run(EngineOptions { tract_stage_b: true, ..EngineOptions::default() });
    let (out_f, form_f) = run(EngineOptions { emulate_int8_stage_b: true, ..EngineOptions::default() });
    assert_eq!((form_t, form_f), (StageBForm::TractBands, StageBForm::Winograd));
    let conf_step = LastLayer::read(&model, &info.outputs[0]).step;
    let ours_l = levels(&out.confidence, conf_step, "integer tail").unwrap();
    for (o, what) in [(&out_t, "tract's QLinearConv"), (&out_f, "float emulation")] {
        assert_eq!(levels(&o.confidence, conf_step, what).unwrap(), ours_l, "integer tail vs {what}");
        assert_eq!((&o.start, &o.end), (&out.start, &out.end), "stage A is the same tract model");
    }
    eprintln!(
        "int8 stage B max|Δ|: integer tail vs tract integer kernels {:.3e}, float emulation vs tract {:.3e}: same levels",
        max_abs(&out.confidence, &out_t.confidence),
        max_abs(&out_f.confidence, &out_t.confidence)
    );
    // The edge conversion of an int8 file keeps its QLinearConv stages: the same maps.
    let edge =
        bmn_edge::engine::convert_to_edge(std::fs::read(&path).unwrap(), None, WindowMode::Sliding).unwrap().edge;
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("e.onnx");
    std::fs::write(&p, edge).unwrap();
    let mut e2 = Engine::load(&p, &EngineOptions::default()).unwrap();
    assert!(e2.info().quantized_ops.iter().any(|o| o == "QLinearConv"), "{:?}", e2.info().quantized_ops);
    let (out2, _) = e2.run(&xt).unwrap();
    assert_eq!(levels(&out2.confidence, conf_step, "edge form").unwrap(), ours_l);
    assert_eq!((&out2.start, &out2.end), (&out.start, &out.end));
}

/// The level check is not vacuous: the engine's confidence map moved by one output step
/// (every value, one channel, or one value outside the near-tie fields) fails it.
#[test]
fn off_by_one_step_is_caught() {
    let path = root().join("onnx_int8/bmn_tiny_pytorch_int8_qop.onnx");
    let mut engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    let (d, t) = (engine.config().dscale(), engine.config().tscale());
    let outputs = engine.info().outputs.clone();
    let xt = fixture_window(engine.info().channels);
    let (out, _) = engine.run(&xt).unwrap();
    let model = load_model(&path);
    let last = LastLayer::read(&model, &outputs[0]);
    let ties = near_ties();
    let ort = npy("onnx_int8/bmn_tiny_pytorch_int8_qop.io/confidence.npy");
    let check = |map: &[f32]| check_levels(map, &ort, &last, (d, t), &ties, "confidence");
    assert!(check(&out.confidence).is_ok());
    let shift = |p: f32, k: f64| {
        let x = (p as f64 / (1.0 - p as f64)).ln() + k * last.step;
        (1.0 / (1.0 + (-x).exp())) as f32
    };
    let plane = d * t;
    for (k, channels) in [(1.0, 0..2), (-1.0, 0..2), (1.0, 1..2), (-1.0, 0..1)] {
        let moved: Vec<f32> = out
            .confidence
            .iter()
            .enumerate()
            .map(|(i, &p)| if channels.contains(&(i / plane)) { shift(p, k) } else { p })
            .collect();
        let e = check(&moved).unwrap_err();
        assert!(e.contains("outside every near tie's field"), "{e}");
    }
    // Half a step: not a whole number of steps.
    let half: Vec<f32> = out.confidence.iter().map(|&p| shift(p, 0.5)).collect();
    assert!(check(&half).unwrap_err().contains("whole number"));
    // One value outside the fields moved by one step.
    let i = (0..plane).find(|i| !in_tie_field(&ties, i / t, i % t)).unwrap();
    let mut one = out.confidence.clone();
    one[i] = shift(one[i], 1.0);
    assert!(check(&one).unwrap_err().contains(&format!("confidence[{i}]")));
}

#[test]
fn qdq_form_runs_with_a_warning() {
    let path = root().join("onnx_int8/bmn_tiny_pytorch_int8_qdq_u8.onnx");
    let mut engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    let info = engine.info().clone();
    assert!(info.warnings.iter().any(|w| w.contains("QDQ")), "{:?}", info.warnings);
    assert!(info.warnings.iter().any(|w| w.contains("uint8")), "{:?}", info.warnings);
    let xt = fixture_window(info.channels);
    let (out, _) = engine.run(&xt).unwrap();
    // There are no onnxruntime goldens for this file: its maps must be the model's quantized
    // outputs (whole levels of its uint8 output scales) and its proposals close to fp32's.
    let model = load_model(&path);
    let maps = [&out.confidence, &out.start, &out.end];
    for (map, name) in maps.into_iter().zip(&info.outputs) {
        levels(map, LastLayer::read(&model, name).step, name).unwrap();
    }
    let fp = ["confidence", "start", "end"].map(|f| npy(&format!("onnx/bmn_tiny_pytorch_op17.io/{f}.npy")));
    let ours = proposals(&engine, &out.start, &out.end, &out.confidence);
    let reference = proposals(&engine, &fp[1], &fp[2], &fp[0]);
    let overlap = ours.iter().filter(|p| reference.contains(p)).count();
    eprintln!(
        "QDQ u8: confidence max|Δ| vs fp32 {:.3e}; top-100 overlap with fp32 {overlap}/{}",
        max_abs(&out.confidence, &fp[0]),
        reference.len()
    );
    assert!(overlap * 2 >= reference.len());
}

#[test]
fn qlinearconv_conv3d_runs_reassociated_in_int8() {
    let path = root().join("onnx_int8/bmn_tiny_pytorch_int8_qop_conv3d.onnx");
    let mut engine = Engine::load(&path, &EngineOptions::default()).unwrap();
    let info = engine.info().clone();
    assert!(info.warnings.iter().any(|w| w.contains("reassociated in int8")), "{:?}", info.warnings);
    assert_eq!(info.variant, Variant::Pytorch);
    let xt = fixture_window(info.channels);
    let (out, _) = engine.run(&xt).unwrap();
    // onnxruntime on the same file quantizes the sampled tensor, the engine y before sampling:
    // the maps differ by quantization steps, well inside int8's own distance to fp32.
    let ort = npy("onnx_int8/bmn_tiny_pytorch_int8_qop_conv3d.io/confidence.npy");
    let fp32 = npy("onnx/bmn_tiny_pytorch_op17.io/confidence.npy");
    let (vs_ort, vs_fp32, ort_vs_fp32) =
        (max_abs(&out.confidence, &ort), max_abs(&out.confidence, &fp32), max_abs(&ort, &fp32));
    let start = max_abs(&out.start, &npy("onnx_int8/bmn_tiny_pytorch_int8_qop_conv3d.io/start.npy"));
    eprintln!(
        "QLinearConv Conv3d (int8 projection): confidence max|Δ| vs onnxruntime int8 {vs_ort:.3e}, vs fp32 {vs_fp32:.3e} (onnxruntime int8 vs fp32 {ort_vs_fp32:.3e}); start vs onnxruntime {start:.3e}"
    );
    let (mean_vs_ort, mean_vs_fp32, ort_mean_vs_fp32) =
        (mean_abs(&out.confidence, &ort), mean_abs(&out.confidence, &fp32), mean_abs(&ort, &fp32));
    eprintln!(
        "  mean |Δ| vs onnxruntime int8 {mean_vs_ort:.3e}, vs fp32 {mean_vs_fp32:.3e} (onnxruntime int8 vs fp32 {ort_mean_vs_fp32:.3e})"
    );
    // The maps are the model's quantized outputs (whole levels), stage A's exactly
    // onnxruntime's; the confidence map's levels differ where the sampled tensor's
    // quantization and y's disagree, which is almost everywhere, so it is held to int8's own
    // distance to fp32 instead: at most 1.5 times onnxruntime's, at most and on average.
    let model = load_model(&path);
    let t = engine.config().tscale();
    let last = LastLayer::read(&model, &info.outputs[0]);
    let a = levels(&out.confidence, last.step, "engine").unwrap();
    let b = levels(&ort, last.step, "onnxruntime").unwrap();
    let io = "onnx_int8/bmn_tiny_pytorch_int8_qop_conv3d.io";
    for (ours, file, name) in [(&out.start, "start", &info.outputs[1]), (&out.end, "end", &info.outputs[2])] {
        let theirs = npy(&format!("{io}/{file}.npy"));
        check_levels(ours, &theirs, &LastLayer::read(&model, name), (1, t), &[], file).unwrap();
    }
    let same = a.iter().zip(&b).filter(|(x, y)| x == y).count();
    let most = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).max().unwrap();
    eprintln!("  confidence levels: {same}/{} at onnxruntime's, at most {most} apart (step {:.4})", a.len(), last.step);
    assert!(vs_fp32 <= ort_vs_fp32 * 1.5 && mean_vs_fp32 <= ort_mean_vs_fp32 * 1.5);
    // Its edge form keeps the int8 weights (a 5-d int8 initializer) and gives the same maps.
    let edge =
        bmn_edge::engine::convert_to_edge(std::fs::read(&path).unwrap(), None, WindowMode::Sliding).unwrap().edge;
    assert!(edge.len() * 2 < std::fs::metadata(&path).unwrap().len() as usize);
    let mut e2 = Engine::from_bytes(edge, &EngineOptions::default()).unwrap();
    assert!(e2.info().warnings.iter().any(|w| w.contains("reassociated in int8")));
    let (out2, _) = e2.run(&xt).unwrap();
    assert!(max_abs(&out2.confidence, &out.confidence) < 1e-6);
}

/// The shipped int8 model's window, as the engine takes it (`[C, T]`): the demo video's first
/// T snippets.
fn shipped_window(engine: &Engine) -> Vec<f32> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let x = read_f32(&root.join("models/demo/features/syn4_00000.npy")).unwrap();
    let (c, t) = (engine.info().channels, engine.config().tscale());
    assert_eq!(x.shape[1], c);
    let mut xt = vec![0.0; c * t];
    for i in 0..t {
        for j in 0..c {
            xt[j * t + i] = x.data[i * c + j];
        }
    }
    xt
}

/// Integer, exact-float and widened products give the same sums, so the same maps, bit for
/// bit (tolerance 0: the float path is exact by the load-time certificate, the widened
/// kernel's `i32` sums cannot overflow, and everything after the products is shared) — on the
/// tiny fixture and on the shipped model, whose products are the real sizes (K up to 1152).
/// The automatic choice is the CPU's, recorded in the engine's plan, and the same on every
/// load.
#[test]
fn integer_exact_float_and_widened_products_give_the_same_maps() {
    let shipped = Path::new(env!("CARGO_MANIFEST_DIR")).join("models/bmn_synth_int8.edge.onnx");
    for path in [root().join("onnx_int8/bmn_tiny_pytorch_int8_qop.onnx"), shipped] {
        let load = |a: Option<Int8Arithmetic>| {
            Engine::load(&path, &EngineOptions { threads: 2, int8_arithmetic: a, ..EngineOptions::default() }).unwrap()
        };
        let mut int = load(Some(Int8Arithmetic::Integer));
        let mut flt = load(Some(Int8Arithmetic::ExactFloat));
        let mut wid = load(Some(Int8Arithmetic::Widened));
        let mut auto = load(None);
        let x = if int.info().channels == 400 { shipped_window(&int) } else { fixture_window(int.info().channels) };
        let (pi, pf, pa) =
            (int.int8_plan().unwrap().clone(), flt.int8_plan().unwrap().clone(), auto.int8_plan().unwrap());
        assert!(pi.forced && pf.forced && !pa.forced);
        assert_eq!(pa.chosen, Int8Arithmetic::for_this_cpu());
        assert_eq!(load(None).int8_plan(), Some(pa), "the automatic choice is reproducible");
        let all = |p: &bmn_edge::engine::Int8Plan| {
            p.stage_b.iter().chain(&p.projection).chain(&p.stage_a).copied().collect::<Vec<_>>()
        };
        assert!(all(&pi).iter().all(|&a| a == Int8Arithmetic::Integer), "{pi:?}");
        assert!(all(&pf).iter().all(|&a| a == Int8Arithmetic::ExactFloat), "{pf:?}");
        assert!(pi.stage_a.is_some() && pf.stage_a.is_some(), "stage A has int8 convolutions");
        assert!(!pf.stage_b.is_empty());
        // Widened: the engine's own products (projection, stage B) in the widened kernel,
        // stage A (inside tract's graph) in tract's integer kernels where they are built on a
        // dot product the CPU has (VNNI), else in exact float.
        let pw = wid.int8_plan().unwrap().clone();
        assert!(pw.forced && pw.chosen == Int8Arithmetic::Widened);
        assert!(pw.stage_b.iter().chain(&pw.projection).all(|&a| a == Int8Arithmetic::Widened), "{pw:?}");
        let cpu = CpuReport::this_cpu();
        let dot = cpu.features.has_int8_dot() && cpu.i8_kernel.as_deref().is_some_and(is_dot_product_kernel);
        let graph = if dot { Int8Arithmetic::Integer } else { Int8Arithmetic::ExactFloat };
        assert!(!pw.stage_b.is_empty() && pw.stage_a == Some(graph), "{pw:?} ({cpu:?})");
        let (oi, of, oa) = (int.run(&x).unwrap().0, flt.run(&x).unwrap().0, auto.run(&x).unwrap().0);
        assert!(oi == of, "{}: integer and exact-float maps differ", path.display());
        assert!(oi == wid.run(&x).unwrap().0, "{}: integer and widened maps differ", path.display());
        assert!(oi == oa, "{}: the automatic choice's maps differ", path.display());
    }
}

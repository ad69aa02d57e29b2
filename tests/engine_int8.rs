//! int8 QOperator (QLinearConv, s8 symmetric per-tensor) models run through the engine.
//!
//! Fixtures: `tests/fixtures/onnx_int8/` (`make.py` there: the tiny PyTorch-variant export
//! quantized with `models/quantize.py`, plus onnxruntime's int8 outputs; that script keeps
//! the BM MatMul and the Conv3d in float). The engine's BM layer is float in any case (a
//! QLinearConv Conv3d runs with its dequantized weights: the 5-d BM output it would quantize
//! never exists). Maps are compared with onnxruntime's int8 maps and with fp32.
#![cfg(feature = "engine")]

use bmn_edge::engine::{Engine, EngineOptions, StageBForm, Variant};
use bmn_edge::npy::read_f32;
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use std::path::{Path, PathBuf};

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
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

fn proposals(engine: &Engine, start: &[f32], end: &[f32], conf: &[f32]) -> Vec<(u32, u32)> {
    let cfg = *engine.config();
    let maps = WindowMaps::new(&cfg, start, end, conf).unwrap();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    let (mut s, mut e, mut pairs) = (vec![false; t], vec![false; t], vec![Proposal::default(); t * d]);
    let n = postprocess_window(&cfg, &maps, &mut s, &mut e, &mut pairs, 100).unwrap().output;
    pairs[..n].iter().map(|p| (p.start, p.end)).collect()
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
    let ort_conf = npy("onnx_int8/bmn_tiny_pytorch_int8_qop.io/confidence.npy");
    let fp_conf = npy("onnx/bmn_tiny_pytorch_op17.io/confidence.npy");
    let fp_start = npy("onnx/bmn_tiny_pytorch_op17.io/start.npy");
    let fp_end = npy("onnx/bmn_tiny_pytorch_op17.io/end.npy");
    let vs_ort = max_abs(&out.confidence, &ort_conf);
    let vs_fp32 = max_abs(&out.confidence, &fp_conf);
    let ort_vs_fp32 = max_abs(&ort_conf, &fp_conf);
    let starts = max_abs(&out.start, &fp_start);
    let ours = proposals(&engine, &out.start, &out.end, &out.confidence);
    let reference = proposals(&engine, &fp_start, &fp_end, &fp_conf);
    let overlap = ours.iter().filter(|p| reference.contains(p)).count();
    eprintln!(
        "int8: confidence max|Δ| vs onnxruntime int8 {vs_ort:.3e}, vs fp32 {vs_fp32:.3e} (onnxruntime int8 vs fp32 {ort_vs_fp32:.3e}); start vs fp32 {starts:.3e}; top-100 overlap with fp32 {overlap}/{}",
        reference.len()
    );
    assert!(vs_fp32 < 0.25 && vs_ort < 0.25 && starts < 0.25);
    // Stage B as the integer sparse tail, as the float one emulating onnxruntime's
    // quantization of every convolution's input and output, and as tract's integer
    // QLinearConv: three computations of the same integer arithmetic.
    assert_eq!(engine.stage_b_form(), StageBForm::Integer);
    let run = |opts: EngineOptions| {
        let mut e = Engine::load(&path, &EngineOptions { threads: 2, ..opts }).unwrap();
        let form = e.stage_b_form();
        (e.run(&xt).unwrap().0, form)
    };
    let (out_t, form_t) = run(EngineOptions { tract_stage_b: true, ..EngineOptions::default() });
    let (out_f, form_f) = run(EngineOptions { emulate_int8_stage_b: true, ..EngineOptions::default() });
    assert_eq!((form_t, form_f), (StageBForm::TractBands, StageBForm::Winograd));
    let (int_vs_tract, float_vs_tract) =
        (max_abs(&out.confidence, &out_t.confidence), max_abs(&out_f.confidence, &out_t.confidence));
    eprintln!(
        "int8 stage B max|Δ|: integer tail vs tract integer kernels {int_vs_tract:.3e}, float emulation vs tract {float_vs_tract:.3e}, tract vs onnxruntime {:.3e}",
        max_abs(&out_t.confidence, &ort_conf)
    );
    assert!(int_vs_tract < 1e-5 && float_vs_tract < 1e-5);
    assert!(overlap * 2 >= reference.len());
    // The edge conversion of an int8 file keeps its QLinearConv stages.
    let (edge, _) = bmn_edge::engine::convert_to_edge(std::fs::read(&path).unwrap(), None, "sliding").unwrap();
    let dir = std::env::temp_dir().join(format!("bmn-edge-int8-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join("e.onnx");
    std::fs::write(&p, edge).unwrap();
    let mut e2 = Engine::load(&p, &EngineOptions::default()).unwrap();
    let (out2, _) = e2.run(&xt).unwrap();
    assert!(max_abs(&out2.confidence, &out.confidence) < 1e-5);
    std::fs::remove_dir_all(&dir).ok();
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
    let dev = max_abs(&out.confidence, &npy("onnx/bmn_tiny_pytorch_op17.io/confidence.npy"));
    eprintln!("QDQ u8: confidence max|Δ| vs fp32 {dev:.3e}");
    assert!(dev < 0.25);
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
    let mean = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| (x - y).abs()).sum::<f32>() / a.len() as f32;
    let (mean_vs_ort, mean_vs_fp32, ort_mean_vs_fp32) =
        (mean(&out.confidence, &ort), mean(&out.confidence, &fp32), mean(&ort, &fp32));
    eprintln!(
        "  mean |Δ| vs onnxruntime int8 {mean_vs_ort:.3e}, vs fp32 {mean_vs_fp32:.3e} (onnxruntime int8 vs fp32 {ort_mean_vs_fp32:.3e})"
    );
    // One flipped rounding early in an int8 chain moves outputs by up to ~0.15 (the QOperator
    // fixture shows the same between tract's and onnxruntime's integer kernels); the maps
    // are no further from fp32 than onnxruntime's own int8, at most and on average.
    assert!(vs_ort < 0.25 && vs_fp32 <= ort_vs_fp32 * 1.5 && mean_vs_fp32 <= ort_mean_vs_fp32 * 1.5);
    // Its edge form keeps the int8 weights (a 5-d int8 initializer) and gives the same maps.
    let (edge, _) = bmn_edge::engine::convert_to_edge(std::fs::read(&path).unwrap(), None, "sliding").unwrap();
    assert!(edge.len() * 2 < std::fs::metadata(&path).unwrap().len() as usize);
    let mut e2 = Engine::from_bytes(edge, &EngineOptions::default()).unwrap();
    assert!(e2.info().warnings.iter().any(|w| w.contains("reassociated in int8")));
    let (out2, _) = e2.run(&xt).unwrap();
    assert!(max_abs(&out2.confidence, &out.confidence) < 1e-6);
}

//! Backbones as onnxruntime's quantizer writes them (`quantize_static`), QOperator and QDQ,
//! int8 symmetric and uint8 asymmetric with per-channel weights: they load, and their
//! output levels are onnxruntime's.
//!
//! Goldens: `tests/golden/quantized/` (`tests/reference/quantized_reference.py`, provenance
//! in its manifest): the files, a seeded input batch and onnxruntime 1.32's outputs for it.
//!
//! **The tolerance.** The output is `DequantizeLinear` of an int8/uint8 level, so both
//! runtimes' values lie on the grid `(q − zero) · scale` and are compared as levels. Where
//! bmn-edge runs a contrib op in float between levels (`src/engine/onnx/qoperator.rs`)
//! and onnxruntime in integer or fixed-point arithmetic, a value within float32 rounding of
//! a half level can round to the other side: one level there. Such a flip inside the network
//! moves the next layer's input by one step, and the next layer's output by at most
//! `Σ|w|·step` — again a fraction of its own level here — so the bound on the output is
//! one level, and flips are rare: the tests assert every output within one level of
//! onnxruntime's and at most 5 % of them off by one (measured below in the test output).
#![cfg(feature = "engine")]

use bmn_edge::engine::backbone::{Backbone, BackboneOptions};
use bmn_edge::engine::Int8Arithmetic;
use bmn_edge::npy::read_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};

fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/quantized").join(p)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden("manifest.json")).unwrap()).unwrap()
}

/// Runs `file` on the golden input; returns (bmn-edge's, onnxruntime's) outputs.
fn run(file: &str, arith: Option<Int8Arithmetic>) -> (Vec<f32>, Vec<f32>) {
    let x = read_f32(&golden("input.npy")).unwrap();
    let expected = read_f32(&golden(&file.replace(".onnx", ".out.npy"))).unwrap();
    let o = BackboneOptions { int8_arithmetic: arith, ..BackboneOptions::default() };
    let mut b = Backbone::load(&golden(file), &o).unwrap();
    assert_eq!(b.channels(), 12);
    // What ran how: QOperator files' five contrib ops in float, QDQ files' three
    // convolutions folded into QLinearConv (and nothing else).
    let lowered: usize = b.lowered_ops().iter().map(|(_, n)| n).sum();
    if file.starts_with("q_qdq") {
        assert_eq!((lowered, b.qdq_convs()), (0, 3), "{file}");
    } else {
        assert_eq!((lowered, b.qdq_convs()), (5, 0), "{file}");
    }
    let mut got = vec![0.0; expected.data.len()];
    b.run(&x.data, &mut got).unwrap();
    (got, expected.data)
}

/// Compares as levels of `scale`/`zero`: (largest level difference, values that differ).
fn levels(got: &[f32], want: &[f32], scale: f64) -> (i64, usize) {
    let lv = |v: f32| (f64::from(v) / scale).round() as i64;
    let mut worst = 0;
    let mut off = 0;
    for (&g, &w) in got.iter().zip(want) {
        // Both on the grid (to float32 rounding of q · scale).
        assert!((f64::from(g) / scale - lv(g) as f64).abs() < 1e-3, "{g} is not on the grid of {scale}");
        let d = (lv(g) - lv(w)).abs();
        worst = worst.max(d);
        off += usize::from(d != 0);
    }
    (worst, off)
}

#[test]
fn onnxruntime_quantizer_files_load_and_give_its_levels() {
    let m = manifest();
    for (form, f) in m["files"].as_object().unwrap() {
        let file = f["file"].as_str().unwrap();
        let scale = f["output_scale"].as_f64().unwrap();
        for arith in [None, Some(Int8Arithmetic::Integer), Some(Int8Arithmetic::ExactFloat)] {
            let (got, want) = run(file, arith);
            let (worst, off) = levels(&got, &want, scale);
            eprintln!("{form} {arith:?}: largest level difference {worst}, {off} of {} values off", got.len());
            assert!(worst <= 1, "{form} {arith:?}: {worst} levels apart");
            assert!(off * 20 <= got.len(), "{form} {arith:?}: {off} of {} values off by one", got.len());
        }
    }
}

/// `q_s8.onnx` decoded, changed by `edit`, loaded: the error's text.
fn load_edited(edit: impl FnOnce(&mut tract_onnx::pb::ModelProto)) -> String {
    use prost::Message;
    let bytes = std::fs::read(golden("q_s8.onnx")).unwrap();
    let mut m = tract_onnx::pb::ModelProto::decode(bytes.as_slice()).unwrap();
    edit(&mut m);
    let e = Backbone::from_bytes(m.encode_to_vec(), &BackboneOptions::default()).unwrap_err();
    format!("{e:#}")
}

fn set_f32(m: &mut tract_onnx::pb::ModelProto, name: &str, v: f32) {
    let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == name).unwrap();
    t.raw_data = v.to_le_bytes().to_vec();
    t.float_data.clear();
}

fn node_mut<'m>(m: &'m mut tract_onnx::pb::ModelProto, op: &str) -> &'m mut tract_onnx::pb::NodeProto {
    m.graph.as_mut().unwrap().node.iter_mut().find(|n| n.op_type == op).unwrap()
}

#[test]
fn hostile_quantized_files_get_a_clear_error() {
    // A contrib op's scale of 0, NaN or negative (QLinearAdd's output scale, input 6).
    for bad in [0.0f32, f32::NAN, -0.5, f32::INFINITY] {
        let e = load_edited(|m| {
            let s = node_mut(m, "QLinearAdd").input[6].clone();
            set_f32(m, &s, bad);
        });
        assert!(e.contains("QLinearAdd") && e.contains("must be finite and positive"), "{bad}: {e}");
    }
    // A scale with two values where one is expected.
    let e = load_edited(|m| {
        let s = node_mut(m, "QLinearMul").input[1].clone();
        let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == s).unwrap();
        t.dims = vec![2];
        t.raw_data = [0.1f32, 0.2].iter().flat_map(|v| v.to_le_bytes()).collect();
    });
    assert!(e.contains("QLinearMul") && e.contains("has 2 values, expected 1"), "{e}");
    // A zero point of the wrong type (int32).
    let e = load_edited(|m| {
        let z = node_mut(m, "QLinearGlobalAveragePool").input[2].clone();
        let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == z).unwrap();
        t.data_type = 6;
        t.raw_data = vec![0; 4];
    });
    // (The zero point is shared: the first node that reads it names it.)
    assert!(e.contains("zero point `cat_zero_point` has data type 6, expected int8 or uint8"), "{e}");
    // QGemm's per-channel scale with the wrong count (its B has 12 output channels).
    let e = load_edited(|m| {
        let s = node_mut(m, "QGemm").input[4].clone();
        let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == s).unwrap();
        t.dims = vec![5];
        t.raw_data = [0.1f32; 5].iter().flat_map(|v| v.to_le_bytes()).collect();
    });
    assert!(e.contains("QGemm") && e.contains("has 5 values, expected 12"), "{e}");
    // A channels-last pool, and a contrib op outside the table.
    let e = load_edited(|m| {
        let n = node_mut(m, "QLinearGlobalAveragePool");
        n.attribute.iter_mut().find(|a| a.name == "channels_last").unwrap().i = 1;
    });
    assert!(e.contains("channels_last = 1 is not supported"), "{e}");
    let e = load_edited(|m| node_mut(m, "QLinearConcat").op_type = "QLinearSoftmax".into());
    assert!(e.contains("QLinearSoftmax is not supported"), "{e}");
    // A float weight that is NaN (the fp32 Gemm path is not the only one checked).
    let e = load_edited(|m| {
        let g = m.graph.as_mut().unwrap();
        g.initializer.push(tract_onnx::pb::TensorProto {
            name: "nan_w".into(),
            data_type: 1,
            dims: vec![1],
            raw_data: f32::NAN.to_le_bytes().to_vec(),
            ..Default::default()
        });
        let conv = g.node.iter_mut().find(|n| n.op_type == "Flatten").unwrap();
        conv.input.push("nan_w".into());
    });
    assert!(e.contains("weight `nan_w` is not finite"), "{e}");
}

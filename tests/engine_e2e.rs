//! The engine end to end: `detect` (library and CLI) against onnxruntime's maps and the
//! core's post-processing of them; the edge format; clear errors for bad models and inputs.
//!
//! Goldens: `tests/fixtures/onnx/` (onnxruntime outputs, `python models/make_fixtures.py
//! --seed 20261126`; provenance in its `manifest.json`).
#![cfg(feature = "engine")]

use bmn_edge::engine::detect::{detect_video, DetectOptions, WindowMode};
use bmn_edge::engine::{convert_to_edge, Engine, EngineError, EngineErrorKind, EngineOptions, ModelFormat};
use bmn_edge::npy::read_f32;
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use prost::Message;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use tract_onnx::pb;

const FIXTURES: [&str; 4] =
    ["bmn_tiny_pytorch_op17", "bmn_tiny_paddle_op17", "bmn_tiny_pytorch_op11_legacy", "bmn_tiny_pytorch_dynbatch_op17"];

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

fn model(name: &str) -> PathBuf {
    fixtures().join(format!("{name}.onnx"))
}

fn io(name: &str, file: &str) -> Vec<f32> {
    read_f32(&fixtures().join(format!("{name}.io")).join(file)).unwrap().data
}

fn tmpdir(name: &str) -> PathBuf {
    let d = std::env::temp_dir().join(format!("bmn-edge-engine-{name}-{}", std::process::id()));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// The core's post-processing of onnxruntime's maps.
fn reference_proposals(engine: &Engine, name: &str) -> Vec<Proposal> {
    let cfg = *engine.config();
    let (start, end, conf) = (io(name, "start.npy"), io(name, "end.npy"), io(name, "confidence.npy"));
    let maps = WindowMaps::new(&cfg, &start, &end, &conf).unwrap();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    let (mut s, mut e, mut pairs) = (vec![false; t], vec![false; t], vec![Proposal::default(); t * d]);
    let n = postprocess_window(&cfg, &maps, &mut s, &mut e, &mut pairs, 100).unwrap().output;
    pairs.truncate(n);
    pairs
}

#[test]
fn proposals_equal_core_postprocessing_of_onnxruntime_maps() {
    for name in FIXTURES {
        let mut engine =
            Engine::load(&model(name), &EngineOptions { threads: 2, band_rows: Some(6), ..EngineOptions::default() })
                .unwrap();
        let want = reference_proposals(&engine, name);
        assert!(!want.is_empty());
        let x = io(name, "input.npy");
        let t = engine.config().tscale();
        let got = detect_video::<EngineError>(&mut engine, &x, t, &DetectOptions::default(), |_, _| Ok(())).unwrap();
        assert_eq!(got.windows, 1);
        let key = |p: &Proposal| (p.start, p.end);
        assert_eq!(
            got.proposals.iter().map(key).collect::<Vec<_>>(),
            want.iter().map(key).collect::<Vec<_>>(),
            "{name}"
        );
        for (g, w) in got.proposals.iter().zip(&want) {
            assert_eq!((g.xmin, g.xmax), (w.xmin, w.xmax));
            assert!((g.score - w.score).abs() < 1e-4, "{name}: {} vs {}", g.score, w.score);
        }
    }
}

#[test]
fn cli_detect_dump_maps_match_onnxruntime() {
    let dir = tmpdir("dump");
    for name in FIXTURES {
        let maps = dir.join(name);
        let results = dir.join(format!("{name}.json"));
        let o = bin()
            .args(["detect", "--threads", "2", "--duration", "32.0", "--video-id", "v1", "--model"])
            .arg(model(name))
            .arg("--features")
            .arg(fixtures().join(format!("{name}.io/input.npy")))
            .arg("--dump-maps")
            .arg(&maps)
            .arg("--out")
            .arg(&results)
            .output()
            .unwrap();
        assert!(o.status.success(), "{name}: {}", stderr(&o));
        for f in ["start.npy", "end.npy", "confidence.npy"] {
            let ours = read_f32(&maps.join(f)).unwrap();
            let theirs = read_f32(&fixtures().join(format!("{name}.io")).join(f)).unwrap();
            assert_eq!(ours.shape, theirs.shape);
            assert!(max_abs(&ours.data, &theirs.data) <= 1e-4, "{name} {f}");
        }
        let json: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&results).unwrap()).unwrap();
        let props = json["results"]["v1"].as_array().unwrap();
        assert!(!props.is_empty() && props.len() <= 100);
        let seg = props[0]["segment"].as_array().unwrap();
        assert!(seg[0].as_f64().unwrap() >= 0.0 && seg[1].as_f64().unwrap() <= 32.0);
    }
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn edge_format_round_trip() {
    for name in ["bmn_tiny_pytorch_op11_legacy", "bmn_tiny_paddle_op17", "bmn_tiny_pytorch_dynbatch_op17"] {
        let bytes = std::fs::read(model(name)).unwrap();
        let len = bytes.len();
        let (edge, info) = convert_to_edge(bytes, None, WindowMode::Sliding).unwrap();
        // The mask is 16·8·16·16 floats = 128 KiB of the file.
        assert!(edge.len() + 120_000 < len, "{name}: {} vs {len}", edge.len());
        let dir = tmpdir("edge");
        let path = dir.join(format!("{name}.edge.onnx"));
        std::fs::write(&path, &edge).unwrap();
        let decoded = pb::ModelProto::decode(&edge[..]).unwrap();
        let meta =
            |k: &str| decoded.metadata_props.iter().find(|e| e.key == format!("bmn_edge.{k}")).map(|e| e.value.clone());
        assert_eq!(meta("num_sample_perbin").as_deref(), Some("3"));
        assert_eq!(meta("ratio").as_deref(), Some("0.5"));
        assert_eq!(meta("convention").as_deref(), Some(info.config.convention().name()));
        assert!(decoded.graph.unwrap().initializer.iter().all(|t| t.dims.len() != 2));
        let mut engine = Engine::load(&path, &EngineOptions::default()).unwrap();
        assert_eq!(engine.info().format, ModelFormat::Edge);
        assert_eq!(engine.config(), &info.config);
        let x = io(name, "input.npy");
        let (t, c) = (16, engine.info().channels);
        let mut xt = vec![0.0; t * c];
        for i in 0..t {
            for j in 0..c {
                xt[j * t + i] = x[i * c + j];
            }
        }
        let (out, _) = engine.run(&xt).unwrap();
        assert!(max_abs(&out.confidence, &io(name, "confidence.npy")) <= 1e-4);
        assert!(max_abs(&out.start, &io(name, "start.npy")) <= 1e-4);
        // Converting an edge file again is not possible (no mask) but loading it is.
        std::fs::remove_dir_all(&dir).ok();
    }
}

#[test]
fn long_and_short_videos() {
    let name = "bmn_tiny_pytorch_op17";
    let mut engine = Engine::load(&model(name), &EngineOptions::default()).unwrap();
    let x = io(name, "input.npy");
    let c = engine.info().channels;
    // 40 snippets: the window repeated 2.5 times; windows at 0, 8, 16, 24.
    let long: Vec<f32> = (0..40).flat_map(|i| x[(i % 16) * c..(i % 16 + 1) * c].to_vec()).collect();
    let mut starts = vec![];
    let r = detect_video::<EngineError>(&mut engine, &long, 40, &DetectOptions::default(), |_, w| {
        starts.push(w.start);
        Ok(())
    })
    .unwrap();
    assert_eq!(starts, [0, 8, 16, 24]);
    assert!(!r.proposals.is_empty() && r.proposals.len() <= 100);
    assert!(r.proposals.iter().all(|p| p.xmin >= 0.0 && p.xmax <= 1.0 && p.end <= 40 && p.start < p.end));
    assert!(r.proposals.windows(2).all(|w| w[0].score >= w[1].score));
    // 10 snippets: one edge-padded window, no proposal reaching into the padding.
    let short = &x[..10 * c];
    let r = detect_video::<EngineError>(&mut engine, short, 10, &DetectOptions::default(), |_, w| {
        assert_eq!(w.valid, 10);
        Ok(())
    })
    .unwrap();
    assert!(r.proposals.iter().all(|p| p.end <= 9 && p.xmax <= 1.0));
    // Rescale mode: one window whatever the length.
    let opts = DetectOptions { mode: WindowMode::Rescale, ..DetectOptions::default() };
    let r = detect_video::<EngineError>(&mut engine, &long, 40, &opts, |_, _| Ok(())).unwrap();
    assert_eq!(r.windows, 1);
    assert!(!r.proposals.is_empty());
}

fn with_model(name: &str, f: impl FnOnce(&mut pb::ModelProto)) -> Vec<u8> {
    let mut m = pb::ModelProto::decode(&std::fs::read(model(name)).unwrap()[..]).unwrap();
    f(&mut m);
    m.encode_to_vec()
}

fn load_err(bytes: Vec<u8>) -> EngineError {
    Engine::from_bytes(bytes, &EngineOptions::default()).unwrap_err()
}

#[test]
fn bad_models_are_clear_errors() {
    // Not ONNX at all, empty, truncated.
    let npy = std::fs::read(fixtures().join("bmn_tiny_pytorch_op17.io/input.npy")).unwrap();
    assert_eq!(load_err(npy).kind(), EngineErrorKind::NotOnnx);
    assert_eq!(load_err(vec![]).kind(), EngineErrorKind::NotOnnx);
    let full = std::fs::read(model("bmn_tiny_pytorch_op17")).unwrap();
    let e = load_err(full[..full.len() / 2].to_vec());
    assert_eq!(e.kind(), EngineErrorKind::NotOnnx, "{e}");
    assert!(e.to_string().contains("truncated"), "{e}");
    // A mask that is not a BM mask.
    let bytes = with_model("bmn_tiny_pytorch_op17", |m| {
        let g = m.graph.as_mut().unwrap();
        let mask = g.initializer.iter_mut().find(|t| t.dims.len() == 2).unwrap();
        mask.raw_data[4000..4004].copy_from_slice(&0.5f32.to_le_bytes());
    });
    let e = load_err(bytes.clone());
    assert_eq!(e.kind(), EngineErrorKind::NotBmMask, "{e}");
    assert!(e.to_string().contains("not a BM mask"));
    assert_eq!(convert_to_edge(bytes, None, WindowMode::Sliding).unwrap_err().kind(), EngineErrorKind::NotBmMask);
    // A graph that is not a BMN: the Conv3d replaced by a plain Relu.
    let bytes = with_model("bmn_tiny_pytorch_op17", |m| {
        let g = m.graph.as_mut().unwrap();
        let conv = g
            .node
            .iter_mut()
            .find(|n| n.op_type == "Conv" && n.attribute.iter().any(|a| a.name == "kernel_shape" && a.ints.len() == 3))
            .unwrap();
        conv.op_type = "Relu".into();
        conv.input.truncate(1);
        conv.attribute.clear();
    });
    assert_eq!(load_err(bytes).kind(), EngineErrorKind::NotBmn);
    let bytes = with_model("bmn_tiny_pytorch_op17", |m| {
        let g = m.graph.as_mut().unwrap();
        g.node.retain(|n| n.op_type != "MatMul");
    });
    assert_eq!(load_err(bytes).kind(), EngineErrorKind::NotBmn);
}

#[test]
fn cli_errors_exit_non_zero_with_a_message() {
    let dir = tmpdir("errors");
    let feats = fixtures().join("bmn_tiny_pytorch_op17.io/input.npy");
    let run = |args: &[&std::ffi::OsStr]| bin().args(args).output().unwrap();
    // Not a model.
    let o = run(&["detect".as_ref(), "--model".as_ref(), feats.as_os_str(), "--features".as_ref(), feats.as_os_str()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("not a valid ONNX") || stderr(&o).contains("not an ONNX"), "{}", stderr(&o));
    // Feature width mismatch: 20 columns instead of 32.
    let narrow = dir.join("narrow.npy");
    bmn_edge::npy::write_f32(&narrow, &[16, 20], &vec![0.1; 320]).unwrap();
    let m = model("bmn_tiny_pytorch_op17");
    let o = run(&["detect".as_ref(), "--model".as_ref(), m.as_os_str(), "--features".as_ref(), narrow.as_os_str()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("does not match the model's input width C = 32"), "{}", stderr(&o));
    // --frames without --duration: refused before the model loads.
    let o = run(&[
        "detect".as_ref(),
        "--model".as_ref(),
        m.as_os_str(),
        "--features".as_ref(),
        feats.as_os_str(),
        "--frames".as_ref(),
        "400".as_ref(),
    ]);
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("--frames needs --duration"), "{}", stderr(&o));
    // NaN features (npy) and a bad csv value.
    let nan = dir.join("nan.npy");
    let mut v = vec![0.1f32; 16 * 32];
    v[77] = f32::NAN;
    bmn_edge::npy::write_f32(&nan, &[16, 32], &v).unwrap();
    let o = run(&["detect".as_ref(), "--model".as_ref(), m.as_os_str(), "--features".as_ref(), nan.as_os_str()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NaN"), "{}", stderr(&o));
    let csv = dir.join("f.csv");
    let header: Vec<String> = (0..32).map(|i| format!("f{i}")).collect();
    let mut text = header.join(",") + "\n";
    for r in 0..16 {
        let row: Vec<String> = (0..32)
            .map(|j| if r == 3 && j == 5 { "nan".into() } else { format!("{}", (r * 32 + j) as f32 * 0.01) })
            .collect();
        text += &(row.join(",") + "\n");
    }
    std::fs::write(&csv, &text).unwrap();
    let o = run(&["detect".as_ref(), "--model".as_ref(), m.as_os_str(), "--features".as_ref(), csv.as_os_str()]);
    assert!(!o.status.success());
    assert!(stderr(&o).contains("NaN or infinite"), "{}", stderr(&o));
    // A good csv runs.
    std::fs::write(&csv, text.replace("nan", "0.5")).unwrap();
    let o = run(&["detect".as_ref(), "--model".as_ref(), m.as_os_str(), "--features".as_ref(), csv.as_os_str()]);
    assert!(o.status.success(), "{}", stderr(&o));
    // inspect and convert on a non-BMN file.
    let o = run(&["inspect".as_ref(), feats.as_os_str()]);
    assert!(!o.status.success());
    let out = dir.join("x.onnx");
    let o = run(&["convert".as_ref(), feats.as_os_str(), "-o".as_ref(), out.as_os_str()]);
    assert!(!o.status.success() && !out.exists());
    std::fs::remove_dir_all(&dir).ok();
}

#[test]
fn cli_inspect_and_convert() {
    let dir = tmpdir("convert");
    let out = dir.join("edge.onnx");
    let o = bin().arg("convert").arg(model("bmn_tiny_paddle_op17")).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let o = bin().arg("inspect").arg("--json").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["format"], "edge");
    assert_eq!(v["variant"], "paddle");
    assert_eq!(v["convention"], "paddle");
    assert_eq!(
        (v["tscale"].as_u64(), v["num_sample_perbin"].as_u64(), v["ratio"].as_f64()),
        (Some(16), Some(3), Some(0.5))
    );
    let o = bin().args(["bench", "--iterations", "2", "--json", "--model"]).arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(v["stages_ms"]["bm"].as_f64().unwrap() >= 0.0);
    std::fs::remove_dir_all(&dir).ok();
}

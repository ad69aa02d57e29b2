//! The engine end to end: `detect` (library and CLI) against onnxruntime's maps and the
//! core's post-processing of them; the edge format; clear errors for bad models and inputs.
//!
//! Goldens: `tests/fixtures/onnx/` (onnxruntime outputs, `python models/make_fixtures.py
//! --seed 20261126`; provenance in its `manifest.json`).
#![cfg(feature = "engine")]

use bmn_edge::engine::detect::{detect_video, DetectOptions, WindowMode};
use bmn_edge::engine::{convert_to_edge, Converted, Engine, EngineError, EngineErrorKind, EngineOptions, ModelFormat};
use bmn_edge::npy::read_f32;
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use bmn_edge::Convention;
use prost::Message;
use serde_json::Value;
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

/// A scratch directory, removed when dropped (also when the test fails).
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("bmn-edge-engine-{name}-")).tempdir().unwrap()
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
    let cfg = engine.config().post();
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
        let maps = dir.path().join(name);
        let results = dir.path().join(format!("{name}.json"));
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
}

#[test]
fn edge_format_round_trip() {
    for name in ["bmn_tiny_pytorch_op11_legacy", "bmn_tiny_paddle_op17", "bmn_tiny_pytorch_dynbatch_op17"] {
        let bytes = std::fs::read(model(name)).unwrap();
        let len = bytes.len();
        let Converted { edge, info, .. } = convert_to_edge(bytes, None, WindowMode::Sliding).unwrap();
        // The mask is 16·8·16·16 floats = 128 KiB of the file.
        assert!(edge.len() + 120_000 < len, "{name}: {} vs {len}", edge.len());
        let dir = tmpdir("edge");
        let path = dir.path().join(format!("{name}.edge.onnx"));
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
        // Converting an edge file again is accepted (its BM node carries (T, D, N, K, r); there
        // is no mask to verify) and, with the same options, gives the same file byte for byte:
        // the node is rewritten as it was and the metadata written in the same order.
        let Converted { edge: again, info: info2, input_format } =
            convert_to_edge(edge.clone(), None, WindowMode::Sliding).unwrap();
        assert_eq!(input_format, ModelFormat::Edge);
        assert!(again == edge, "{name}: converting the edge file again changed it");
        assert_eq!((info2.format, info2.config, info2.mask_nnz), (ModelFormat::Edge, info.config, info.mask_nnz));
        // Other options rewrite the stored ones and nothing else: the maps are the same.
        let other =
            if info.config.convention() == Convention::Paddle { Convention::Mmaction2 } else { Convention::Paddle };
        let Converted { edge: changed, info: info3, .. } =
            convert_to_edge(edge.clone(), Some(other), WindowMode::Rescale).unwrap();
        assert_eq!((info3.config.convention(), info3.window_mode), (other, Some(WindowMode::Rescale)));
        let meta3 = pb::ModelProto::decode(&changed[..]).unwrap().metadata_props;
        let get = |k: &str| meta3.iter().find(|e| e.key == format!("bmn_edge.{k}")).map(|e| e.value.as_str());
        assert_eq!((get("convention"), get("window_mode")), (Some(other.name()), Some("rescale")));
        let mut e3 = Engine::from_bytes(changed, &EngineOptions::default()).unwrap();
        assert_eq!(e3.config().convention(), other);
        assert_eq!(e3.info().window_mode, Some(WindowMode::Rescale));
        assert_eq!(e3.run(&xt).unwrap().0, out);
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
    let tmp = tmpdir("errors");
    let dir = tmp.path();
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
}

/// `bmn-edge bench --json` on `model` with `args`.
fn bench(model: &Path, args: &[&str]) -> Value {
    let o = bin().args(["bench", "--json", "--model"]).arg(model).args(args).output().unwrap();
    assert!(o.status.success(), "{args:?}: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// `bmn-edge inspect --json`.
fn inspect(model: &Path) -> Value {
    let o = bin().arg("inspect").arg("--json").arg(model).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap()
}

/// What a bench report must say about the model and the run, whatever the timings.
fn check_bench(v: &Value, model: &Path, threads: u64, iterations: u64, band_rows: Option<u64>, form: &str) {
    let described = inspect(model);
    assert_eq!(v["model"].as_str(), model.to_str());
    assert_eq!((&v["format"], &v["variant"]), (&described["format"], &described["variant"]));
    assert_eq!(
        (v["threads"].as_u64(), v["iterations"].as_u64(), v["band_rows"].as_u64()),
        (Some(threads), Some(iterations), band_rows)
    );
    assert_eq!(v["stage_b_form"], form);
    // The BM kernel's instruction set is the one the library picks on this machine.
    let engine = Engine::load(model, &EngineOptions::default()).unwrap();
    assert_eq!(v["simd"], engine.kernel().simd().name());
    let ms = |k: &str| v[k].as_f64().unwrap_or_else(|| panic!("{k}: {}", v[k]));
    let stages: Vec<f64> =
        ["stage_a", "bm", "stage_b", "post"].iter().map(|k| v["stages_ms"][k].as_f64().unwrap()).collect();
    assert!(stages.iter().all(|&t| t > 0.0 && t.is_finite()), "{stages:?}");
    assert!(ms("load_ms") > 0.0 && ms("peak_rss_mb") > 0.0);
    // The best window is no slower than the median one.
    assert!(ms("best_total_ms") <= ms("total_ms"), "{v}");
}

#[test]
fn cli_inspect_and_convert() {
    let tmp = tmpdir("convert");
    let out = tmp.path().join("edge.onnx");
    let o = bin().arg("convert").arg(model("bmn_tiny_paddle_op17")).arg("-o").arg(&out).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let v = inspect(&out);
    assert_eq!(v["format"], "edge");
    assert_eq!(v["variant"], "paddle");
    assert_eq!(v["convention"], "paddle");
    assert_eq!(
        (v["tscale"].as_u64(), v["num_sample_perbin"].as_u64(), v["ratio"].as_f64()),
        (Some(16), Some(3), Some(0.5))
    );
    // Converting the edge file again: accepted, the same bytes.
    let again = tmp.path().join("again.onnx");
    let o = bin().arg("convert").arg(&out).arg("-o").arg(&again).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(std::fs::read(&again).unwrap() == std::fs::read(&out).unwrap());
    // One timed window: its four stage times are disjoint parts of the window's total
    // (stage A, BM and stage B partition `Engine::run`'s wall time, post-processing follows),
    // so their sum is at most the total (up to float64 rounding of the milliseconds).
    let v = bench(&out, &["--iterations", "1"]);
    check_bench(&v, &out, 1, 1, None, "sparse-winograd");
    let sum: f64 = ["stage_a", "bm", "stage_b", "post"].iter().map(|k| v["stages_ms"][k].as_f64().unwrap()).sum();
    let total = v["total_ms"].as_f64().unwrap();
    assert!(sum <= total * (1.0 + 1e-12), "stages {sum} ms > total {total} ms: {v}");
    assert_eq!(v["best_total_ms"], v["total_ms"]);
    // Medians of three, stage B in tract's bands on two threads; the standard export.
    let v = bench(
        &model("bmn_tiny_paddle_op17"),
        &["--iterations", "3", "--threads", "2", "--tract-stage-b", "--band-rows", "4"],
    );
    check_bench(&v, &model("bmn_tiny_paddle_op17"), 2, 3, Some(4), "tract-bands");
    assert_eq!(v["format"], "standard");
    // An int8 file: the integer tail, or the float emulation on request.
    let q = fixtures().join("../onnx_int8/bmn_tiny_pytorch_int8_qop.onnx");
    check_bench(&bench(&q, &["--iterations", "2"]), &q, 1, 2, None, "sparse-int8");
    check_bench(&bench(&q, &["--iterations", "2", "--emulate-int8"]), &q, 1, 2, None, "sparse-winograd");
    // Bad counts are errors, not panics.
    for (flag, value) in [("--iterations", "0"), ("--threads", "0")] {
        let o = bin().args(["bench", flag, value, "--model"]).arg(&out).output().unwrap();
        assert_eq!(o.status.code(), Some(1), "{flag} {value}");
        assert!(stderr(&o).contains(flag), "{flag} {value}: {}", stderr(&o));
    }
}

//! The shipped pixel-to-proposal model (`models/pixel_backbone_{fp32,int8}.onnx`,
//! `models/pixel_bmn_{fp32,int8}.edge.onnx`) on the shipped demo video
//! (`models/demo/pixels`), as the README's main command runs it.
//!
//! * the backbones' features equal onnxruntime's on the demo video, decoded and preprocessed
//!   by the numpy specification (`tests/golden/pixels/shipped`, `pixels_reference.py
//!   shipped`; its manifest records the versions) — fp32 and int8, the int8 one in both
//!   arithmetics;
//! * the frames per snippet come from the backbone's metadata (4), a flag overrides them;
//! * the whole pipeline finds the demo's actions: the ground-truth instances of the
//!   generator (`models/synth_video.py`, independent of everything here) are matched at
//!   tIoU ≥ 0.5 by one of the proposals, fp32 and int8 — all but one known miss (a red
//!   square orbiting on a red background), documented in `models/README.md`.
#![cfg(feature = "engine")]

use bmn_edge::npy::read_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

const VIDEO: &str = "models/demo/pixels/videos/v_pix_s12_0000.y4m";
const GROUND_TRUTH: &str = "models/demo/pixels/ground_truth.json";

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

fn run_ok(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

fn json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn features(backbone: &str, extra: &[&str], dir: &Path, name: &str) -> (Vec<f32>, Value) {
    let out = dir.join(format!("{name}.npy"));
    run_ok(
        bin()
            .args(["features", "--video"])
            .arg(root(VIDEO))
            .arg("--backbone")
            .arg(root(backbone))
            .args(extra)
            .arg("--out")
            .arg(&out),
    );
    let side = json(&out.with_extension("json"));
    (read_f32(&out).unwrap().data, side)
}

/// fp32 tolerance, derived as in `tests/pixels.rs`: inputs within 1e-5 of the float64
/// specification; six convolutions of at most 864-term dot products, summed in a different
/// order by tract and onnxruntime. Rounding errors of random sign grow as `√n·u` per layer
/// (`√864 · 6e-8 ≈ 1.8e-6` of the layer's scale), six layers on features ≤ 6 in magnitude:
/// ≈ 6.3e-5 — under 1e-4 (observed: 1.4e-6).
const FP32_TOL: f32 = 1e-4;
/// int8: the same activation levels as onnxruntime; only the last dequantization and the
/// pooling's float sum differ in order (64 terms ≤ 6: ≤ 64·6·6e-8 ≈ 2.3e-5). One level apart
/// anywhere would show as a multiple of a scale (≥ 1e-2 here).
const INT8_TOL: f32 = 2.5e-5;

#[test]
fn backbones_match_onnxruntime_on_the_demo_video() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = json(&root("tests/golden/pixels/shipped/manifest.json"));
    for (kind, tol, modes) in [("fp32", FP32_TOL, &["auto"][..]), ("int8", INT8_TOL, &["integer", "float"][..])] {
        let g = &manifest["goldens"][kind];
        let golden = read_f32(&root("tests/golden/pixels/shipped").join(g["features"].as_str().unwrap())).unwrap().data;
        let c = g["channels"].as_u64().unwrap() as usize;
        for mode in modes {
            let (got, side) = features(
                g["model"].as_str().unwrap(),
                &["--backbone-int8", mode, "--threads", "1"],
                dir.path(),
                &format!("{kind}_{mode}"),
            );
            assert_eq!(side["channels"].as_u64(), Some(c as u64));
            assert_eq!(got.len(), golden.len(), "{kind} {mode}: snippets x C");
            let worst = got.iter().zip(&golden).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
            eprintln!("{kind} {mode}: max |bmn-edge - onnxruntime| = {worst:e}");
            assert!(worst <= tol, "{kind} {mode}: {worst:e} > {tol:e}");
        }
    }
}

#[test]
fn snippet_frames_come_from_the_backbone_metadata() {
    let dir = tempfile::tempdir().unwrap();
    let gt = json(&root(GROUND_TRUTH));
    let info = &gt["database"]["v_pix_s12_0000"];
    let frames = info["num_frames"].as_u64().unwrap();
    // The metadata says 4 frames per snippet (0.5 s at 8 fps), as the BMN was trained.
    let (a, side) = features("models/pixel_backbone_int8.onnx", &[], dir.path(), "meta");
    assert_eq!(side["snippet_frames"].as_u64(), Some(4));
    assert_eq!(side["snippets"].as_u64(), Some(frames / 4));
    assert_eq!(side["snippets"].as_u64(), info["num_snippets"].as_u64());
    // The flag overrides it. An 8-frame snippet's centre frame 8i + 4 is never a 4-frame
    // snippet's centre 4j + 2, so none of its rows may equal a 4-frame row.
    let (b, side8) = features("models/pixel_backbone_int8.onnx", &["--snippet-frames", "8"], dir.path(), "eight");
    assert_eq!(side8["snippet_frames"].as_u64(), Some(8));
    assert_eq!(side8["snippets"].as_u64(), Some(frames / 8));
    let c = side["channels"].as_u64().unwrap() as usize;
    assert_eq!(b.len(), a.len() / 2);
    for row in b.chunks(c) {
        assert!(a.chunks(c).all(|r| r != row), "an 8-frame snippet's row equals a 4-frame one's");
    }
}

/// Every ground-truth instance's best tIoU among the results' proposals of `video`.
fn best_tious(results: &Value, video: &str, gt: &Value) -> Vec<(f64, f64, f64)> {
    let props = results["results"][video].as_array().unwrap();
    gt["database"][video]["annotations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let (s, e) = (a["segment"][0].as_f64().unwrap(), a["segment"][1].as_f64().unwrap());
            let best = props
                .iter()
                .map(|p| {
                    let (ps, pe) = (p["segment"][0].as_f64().unwrap(), p["segment"][1].as_f64().unwrap());
                    let inter = (pe.min(e) - ps.max(s)).max(0.0);
                    inter / ((pe - ps) + (e - s) - inter)
                })
                .fold(0.0, f64::max);
            (s, e, best)
        })
        .collect()
}

#[test]
fn the_demo_pipeline_finds_the_demo_actions() {
    let dir = tempfile::tempdir().unwrap();
    let gt = json(&root(GROUND_TRUTH));
    for kind in ["int8", "fp32"] {
        let out = dir.path().join(format!("{kind}.json"));
        // The README's main command (int8), and its fp32 twin.
        run_ok(
            bin()
                .args(["detect", "--video"])
                .arg(root(VIDEO))
                .arg("--backbone")
                .arg(root(&format!("models/pixel_backbone_{kind}.onnx")))
                .arg("--model")
                .arg(root(&format!("models/pixel_bmn_{kind}.edge.onnx")))
                .arg("--out")
                .arg(&out),
        );
        let results = json(&out);
        let bests = best_tious(&results, "v_pix_s12_0000", &gt);
        eprintln!("{kind}: best tIoU per instance {bests:?}");
        assert_eq!(bests.len(), 6);
        // One known miss: the `orbit` instance at 18.5-22.6 s, a red square on a red and
        // magenta background (camouflaged; the backbone's own classifier puts it at <= 9 %).
        let missed: Vec<_> = bests.iter().filter(|b| b.2 < 0.5).collect();
        assert!(
            missed.iter().all(|&&(s, e, _)| (s, e) == (18.5, 22.625)),
            "{kind}: instances missed at tIoU 0.5: {missed:?}"
        );
    }
}

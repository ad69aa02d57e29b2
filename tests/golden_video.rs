//! Video-level goldens for `bmn-edge detect`: several windows with a hop, the last window
//! aligned to the end, a video shorter than T (edge-padded), exactly T, one snippet, and the
//! rescale mode, on the committed ONNX fixtures (pytorch variant → mmaction2, paddle →
//! paddle).
//!
//! Goldens: `tests/golden/video/` (`tests/reference/make_golden.py video`: the Python
//! reference's `detect_video` on onnxruntime's maps of each window; provenance, the
//! perturbation bound `delta` and how every score tolerance was derived are in its
//! `manifest.json`). Each case runs the built CLI and checks:
//!
//! * the maps of every window (`--dump-maps`) are within `delta` of onnxruntime's — the
//!   premise under which the generator proved each case's decisions stable;
//! * the proposals: the same segments in the same order, exactly (both sides compute
//!   `max(0, xmin)·duration` and `min(1, xmax)·duration` in f64 from the same f64 `xmin`,
//!   `xmax`), and scores within the case's derived `score_tol`.
#![cfg(feature = "engine")]

use bmn_edge::npy::read_f32;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

fn golden() -> PathBuf {
    root().join("tests/golden/video")
}

fn manifest() -> Value {
    let text = std::fs::read_to_string(golden().join("manifest.json")).unwrap();
    serde_json::from_str(&text).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn u(v: &Value) -> usize {
    v.as_u64().unwrap_or_else(|| panic!("not an unsigned integer: {v}")) as usize
}

/// What `detect` wrote for one case.
struct Run {
    /// `[[start_s, end_s], score]` in output order.
    proposals: Vec<([f64; 2], f64)>,
    /// Per window: start, end, confidence.
    maps: Vec<[Vec<f32>; 3]>,
}

fn run_detect(case: &Value, dir: &Path) -> Run {
    let name = case["name"].as_str().unwrap();
    let out = dir.join("results.json");
    let dump = dir.join("maps");
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bmn-edge"));
    cmd.arg("detect")
        .arg("--model")
        .arg(root().join(case["model"].as_str().unwrap()))
        .arg("--features")
        .arg(golden().join(case["features"].as_str().unwrap()))
        .args(["--duration", case["duration_arg"].as_str().unwrap()])
        .args(["--convention", case["convention"].as_str().unwrap()])
        .args(["--video-id", name, "--threads", "1"])
        .arg("--dump-maps")
        .arg(&dump)
        .arg("--out")
        .arg(&out);
    if let Some(hop) = case["hop"].as_u64() {
        cmd.args(["--hop", &hop.to_string()]);
    }
    if case["mode"] == "rescale" {
        cmd.args(["--mode", "rescale"]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "{name}: detect failed: {}", String::from_utf8_lossy(&o.stderr));
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    let proposals = results["results"][name]
        .as_array()
        .unwrap_or_else(|| panic!("{name}: no results for the video id"))
        .iter()
        .map(|p| ([f(&p["segment"][0]), f(&p["segment"][1])], f(&p["score"])))
        .collect();
    // One window: the maps directly in the directory; several: window_NNNN/.
    let windows = case["windows"].as_array().unwrap().len();
    let dirs: Vec<PathBuf> = if windows == 1 {
        vec![dump.clone()]
    } else {
        (0..windows).map(|i| dump.join(format!("window_{i:04}"))).collect()
    };
    if windows > 1 {
        assert!(!dump.join(format!("window_{windows:04}")).exists(), "{name}: more windows than the reference's");
    }
    let maps = dirs
        .iter()
        .map(|d| ["start.npy", "end.npy", "confidence.npy"].map(|f| read_f32(&d.join(f)).unwrap().data))
        .collect();
    Run { proposals, maps }
}

/// Checks a run against a case; `Err` says what differs first.
fn check(case: &Value, run: &Run) -> Result<(), String> {
    let name = case["name"].as_str().unwrap();
    let (t, d) = (u(&case["T"]), u(&case["D"]));
    let delta = f(&manifest()["delta"]);
    // Maps: onnxruntime's, flat start ‖ end ‖ confidence per window.
    let want_maps = read_f32(&golden().join(case["maps"].as_str().unwrap())).unwrap();
    let width = 2 * t + 2 * d * t;
    if want_maps.shape != [run.maps.len(), width] {
        return Err(format!("{name}: {} windows run, golden maps {:?}", run.maps.len(), want_maps.shape));
    }
    for (w, got) in run.maps.iter().enumerate() {
        let want = &want_maps.data[w * width..(w + 1) * width];
        let parts = [&want[..t], &want[t..2 * t], &want[2 * t..]];
        for (g, x) in got.iter().zip(parts) {
            if g.len() != x.len() {
                return Err(format!("{name}: window {w}: map of {} values, expected {}", g.len(), x.len()));
            }
            let err = g.iter().zip(x).map(|(a, b)| (f64::from(*a) - f64::from(*b)).abs()).fold(0.0, f64::max);
            if err > delta {
                return Err(format!("{name}: window {w}: maps differ from onnxruntime's by {err:e} > {delta:e}"));
            }
        }
    }
    // Proposals.
    let want = case["proposals"].as_array().unwrap();
    if run.proposals.len() != want.len() {
        return Err(format!("{name}: {} proposals, expected {}", run.proposals.len(), want.len()));
    }
    let duration: f64 = case["duration_arg"].as_str().unwrap().parse().unwrap();
    // Normalisation length: the video's snippets (sliding) or the window (rescale).
    let len = (if case["mode"] == "rescale" { t } else { u(&case["L"]) }) as f64;
    let mmaction2 = case["convention"] == "mmaction2";
    for (i, (got, p)) in run.proposals.iter().zip(want).enumerate() {
        let (sg, eg) = (u(&p[0]) as f64, u(&p[1]) as f64);
        let (xmin, xmax, seg0, seg1, score, tol) = (f(&p[2]), f(&p[3]), f(&p[4]), f(&p[5]), f(&p[6]), f(&p[7]));
        // The golden's own consistency: its f64 values are the convention's expressions of
        // its grid, and its seconds are the CLI's expression of those.
        let (x0, x1) = if mmaction2 { (sg / len, eg / len) } else { ((1.0 / len) * sg, (1.0 / len) * eg) };
        assert_eq!((x0, x1), (xmin, xmax), "{name} #{i}: golden xmin/xmax are not the grid's");
        let seconds = [xmin.max(0.0) * duration, xmax.min(1.0) * duration];
        assert_eq!(seconds, [seg0, seg1], "{name} #{i}: golden seconds");
        if got.0 != seconds {
            return Err(format!("{name} #{i}: segment {:?}, expected {seconds:?} (grid [{sg}, {eg}])", got.0));
        }
        if got.1.is_nan() || (got.1 - score).abs() > tol {
            return Err(format!("{name} #{i}: score {}, expected {score} ± {tol:e}", got.1));
        }
    }
    Ok(())
}

fn cases(prefix: &str) -> Vec<Value> {
    let m = manifest();
    let all: Vec<Value> = m["cases"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["name"].as_str().unwrap().starts_with(prefix))
        .cloned()
        .collect();
    assert!(all.len() >= 8, "{prefix}: only {} cases", all.len());
    all
}

fn run_all(prefix: &str) {
    let mut failures = Vec::new();
    for case in cases(prefix) {
        let name = case["name"].as_str().unwrap().to_string();
        let tmp = tempfile::Builder::new().prefix(&format!("bmn-edge-video-{name}-")).tempdir().unwrap();
        let run = run_detect(&case, tmp.path());
        if let Err(e) = check(&case, &run) {
            failures.push(e);
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn pytorch_fixture_videos_match_the_reference() {
    run_all("pytorch_");
}

#[test]
fn paddle_fixture_videos_match_the_reference() {
    run_all("paddle_");
}

/// The goldens cover what the issue asks for, so the two tests above cannot pass vacuously.
#[test]
fn goldens_cover_the_video_paths() {
    for prefix in ["pytorch_", "paddle_"] {
        let cs = cases(prefix);
        let windows =
            |c: &Value| c["windows"].as_array().unwrap().iter().map(|w| [u(&w[0]), u(&w[1])]).collect::<Vec<_>>();
        let sliding = |c: &&Value| c["mode"] == "sliding";
        // Several windows with a hop, one of them aligned to the end off the hop grid.
        assert!(cs.iter().filter(sliding).any(|c| {
            let w = windows(c);
            let hop = u(&c["hop_used"]);
            w.len() >= 3 && w.last().unwrap()[0] % hop != 0 && w.last().unwrap()[0] + u(&c["T"]) == u(&c["L"])
        }));
        // A custom hop, a video shorter than T (padded: valid < T) and exactly T.
        assert!(cs.iter().any(|c| c["hop"].is_u64()));
        assert!(cs
            .iter()
            .filter(sliding)
            .any(|c| windows(c)[0][1] < u(&c["T"]) && !c["proposals"].as_array().unwrap().is_empty()));
        assert!(cs.iter().any(|c| u(&c["L"]) == u(&c["T"])));
        // Rescale, and the top-k cut of a full Soft-NMS (101 kept, 100 out).
        assert!(cs.iter().any(|c| c["mode"] == "rescale" && !c["proposals"].as_array().unwrap().is_empty()));
        assert!(cs.iter().any(|c| u(&c["kept"]) == 101 && c["proposals"].as_array().unwrap().len() == 100));
    }
}

/// The checker rejects a run that differs from the golden by one score just outside its
/// tolerance, by one segment's last bit, or by one map value just over `delta`.
#[test]
fn checker_rejects_perturbed_results() {
    let case = cases("pytorch_").into_iter().find(|c| c["name"] == "pytorch_L45").unwrap();
    let tmp = tempfile::tempdir().unwrap();
    let run = run_detect(&case, tmp.path());
    check(&case, &run).unwrap();
    let tol = f(&case["proposals"][3][7]);
    let score = f(&case["proposals"][3][6]);
    let mut bad = Run { proposals: run.proposals.clone(), maps: run.maps.clone() };
    bad.proposals[3].1 = score + 1.01 * tol;
    assert!(check(&case, &bad).unwrap_err().contains("score"));
    let mut bad = Run { proposals: run.proposals.clone(), maps: run.maps.clone() };
    bad.proposals[7].0[1] = f64::from_bits(bad.proposals[7].0[1].to_bits() + 1);
    assert!(check(&case, &bad).unwrap_err().contains("segment"));
    let mut bad = Run { proposals: run.proposals.clone(), maps: run.maps.clone() };
    bad.proposals.swap(10, 11);
    assert!(check(&case, &bad).is_err());
    let mut bad = Run { proposals: run.proposals, maps: run.maps };
    let want = read_f32(&golden().join(case["maps"].as_str().unwrap())).unwrap();
    let delta = f(&manifest()["delta"]) as f32;
    let (t, d) = (u(&case["T"]), u(&case["D"]));
    // Window 2, confidence value 5 (flat row: start[T] ‖ end[T] ‖ confidence[2, D, T]).
    bad.maps[2][2][5] = want.data[2 * (2 * t + 2 * d * t) + 2 * t + 5] + 1.5 * delta;
    assert!(check(&case, &bad).unwrap_err().contains("maps differ"));
}

//! Pixels to proposals in one process: `detect --video` and `stream --video` chain the
//! frames, the backbone and BMN. The expectation is independent of both chained paths: the
//! same video through `features` (tested against numpy + onnxruntime in `tests/pixels.rs`)
//! and then `detect --features` / `stream --input` (tested against the Python reference in
//! the other suites) must give **the same bytes** — the chained commands add no arithmetic of
//! their own, only the video's seconds (its frame count and rate), which the feature path is
//! given by hand from the `features` sidecar.
//!
//! Fixtures: `tests/golden/pixels/backbone_c32.onnx` (`pixels_reference.py chain`: C = 32,
//! resize 20, crop 16 in its metadata) feeding the tiny BMN fixture
//! `tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx` (T = D = 16, C = 32, mmaction2); the
//! video is written by the test (YUV4MPEG2 4:2:0, moving gradients, 30000/1001 fps).
#![cfg(feature = "engine")]

use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

fn backbone() -> PathBuf {
    root("tests/golden/pixels/backbone_c32.onnx")
}

fn bmn() -> PathBuf {
    root("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx")
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

const W: usize = 48;
const H: usize = 36;
/// 150 frames of 4 per snippet: 37 snippets (several windows of T = 16), 2 frames dropped.
const FRAMES: usize = 150;
const SNIPPET_FRAMES: &str = "4";

/// Frame `f` of the test video: gradients and a bright square that moves and changes size
/// over the video, so that the backbone's features vary from snippet to snippet.
fn frame(f: usize) -> Vec<u8> {
    let mut out = Vec::with_capacity(W * H * 3 / 2 + 6);
    out.extend_from_slice(b"FRAME\n");
    let (cx, cy, r) = ((f * 7) % W, (f * 3) % H, 4 + (f / 10) % 10);
    for y in 0..H {
        for x in 0..W {
            let inside = x.abs_diff(cx) < r && y.abs_diff(cy) < r;
            out.push(if inside { 235 } else { (16 + (x * 4 + y * 2 + f) % 200) as u8 });
        }
    }
    for plane in 0..2 {
        for y in 0..H / 2 {
            for x in 0..W / 2 {
                out.push((64 + (x * 5 + y * 3 + f * (plane + 1)) % 128) as u8);
            }
        }
    }
    out
}

fn video(frames: usize) -> Vec<u8> {
    let mut v = format!("YUV4MPEG2 W{W} H{H} F30000:1001 Ip A1:1 C420jpeg\n").into_bytes();
    for f in 0..frames {
        v.extend_from_slice(&frame(f));
    }
    v
}

fn run(args: &[std::ffi::OsString], stdin: Option<&[u8]>) -> Output {
    let mut cmd = bin();
    cmd.args(args).stdout(Stdio::piped()).stderr(Stdio::piped()).stdin(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut input = child.stdin.take().unwrap();
    if let Some(bytes) = stdin {
        // A command that refuses early may close stdin: a broken pipe here is its answer.
        let _ = input.write_all(bytes);
    }
    drop(input);
    child.wait_with_output().unwrap()
}

macro_rules! args {
    ($($a:expr),* $(,)?) => { &[$(std::ffi::OsString::from(AsRef::<std::ffi::OsStr>::as_ref(&$a))),*] };
}

fn ok(o: &Output) -> String {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8(o.stdout.clone()).unwrap()
}

fn err(o: &Output) -> String {
    assert!(!o.status.success(), "succeeded: {}", String::from_utf8_lossy(&o.stdout));
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The features path: `features` then the sidecar's values, as a user would pass them.
struct ByHand {
    _dir: tempfile::TempDir,
    features: PathBuf,
    sidecar: Value,
}

fn by_hand(v: &Path) -> ByHand {
    let dir = tempfile::tempdir().unwrap();
    let features = dir.path().join("v.npy");
    let o = run(
        args![
            "features",
            "--backbone",
            backbone(),
            "--video",
            v,
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--out",
            features
        ],
        None,
    );
    ok(&o);
    let sidecar: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("v.json")).unwrap()).unwrap();
    assert_eq!((sidecar["frames"].as_u64(), sidecar["snippets"].as_u64()), (Some(FRAMES as u64), Some(37)));
    ByHand { _dir: dir, features, sidecar }
}

#[test]
fn detect_video_is_features_then_detect() {
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("clip.y4m");
    std::fs::write(&v, video(FRAMES)).unwrap();
    let hand = by_hand(&v);
    // The video merge: seconds over the video's duration with mmaction2's correction.
    let duration = hand.sidecar["duration_second"].to_string();
    let expected = ok(&run(
        args![
            "detect",
            "--model",
            bmn(),
            "--features",
            hand.features,
            "--duration",
            duration,
            "--frames",
            FRAMES.to_string(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--video-id",
            "clip"
        ],
        None,
    ));
    let o = run(
        args!["detect", "--model", bmn(), "--video", v, "--backbone", backbone(), "--snippet-frames", SNIPPET_FRAMES],
        None,
    );
    let got = ok(&o);
    assert_eq!(got, expected);
    let results: Value = serde_json::from_str(&got).unwrap();
    let proposals = results["results"]["clip"].as_array().unwrap();
    assert!(!proposals.is_empty());
    // Segments in seconds of the video: within the whole snippets' frames.
    let covered = (FRAMES / 4 * 4) as f64 * 1001.0 / 30000.0;
    for p in proposals {
        let s = &p["segment"];
        assert!(s[0].as_f64().unwrap() >= 0.0 && s[1].as_f64().unwrap() <= covered + 1e-9, "{p}");
    }
    let stderr = String::from_utf8_lossy(&o.stderr);
    assert!(
        stderr.contains("150 frames") && stderr.contains("37 snippets") && stderr.contains("2 dropped"),
        "{stderr}"
    );

    // The stream merge: seconds per snippet are 4 frames at 30000/1001 fps.
    let per_snippet = (4.0f64 * 1001.0 / 30000.0).to_string();
    let expected = ok(&run(
        args![
            "detect",
            "--model",
            bmn(),
            "--features",
            hand.features,
            "--merge",
            "stream",
            "--snippet-seconds",
            per_snippet,
            "--video-id",
            "clip"
        ],
        None,
    ));
    let got = ok(&run(
        args![
            "detect",
            "--model",
            bmn(),
            "--video",
            v,
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--merge",
            "stream"
        ],
        None,
    ));
    assert_eq!(got, expected);
}

#[test]
fn stream_video_from_stdin_is_features_then_stream() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = video(FRAMES);
    let v = dir.path().join("clip.y4m");
    std::fs::write(&v, &bytes).unwrap();
    let hand = by_hand(&v);
    let per_snippet = (4.0f64 * 1001.0 / 30000.0).to_string();
    let expected =
        ok(&run(args!["stream", "--model", bmn(), "--input", hand.features, "--snippet-seconds", per_snippet], None));
    let stats = dir.path().join("stats.json");
    let got = ok(&run(
        args![
            "stream",
            "--model",
            bmn(),
            "--video",
            "-",
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--stats-json",
            stats
        ],
        Some(&bytes),
    ));
    assert_eq!(got, expected);
    assert!(got.lines().count() > 0);
    let s: Value = serde_json::from_str(&std::fs::read_to_string(&stats).unwrap()).unwrap();
    assert_eq!(s["snippets"], 37);
    assert_eq!((s["video"]["frames"].as_u64(), s["video"]["snippet_frames"].as_u64()), (Some(150), Some(4)));
    assert!((s["snippet_seconds"].as_f64().unwrap() - 4.0 * 1001.0 / 30000.0).abs() < 1e-15);
}

#[test]
fn a_backbone_that_does_not_feed_the_model_is_refused_at_load() {
    // The goldens' flat backbone gives C = 12; the tiny BMN takes C = 32. The video on stdin
    // is never read.
    let other = root("tests/golden/pixels/backbone_flat.onnx");
    for cmd in ["detect", "stream"] {
        let e = err(&run(args![cmd, "--model", bmn(), "--video", "-", "--backbone", other], Some(b"not a video")));
        assert!(
            e.contains("C = 12") && e.contains("C = 32") && e.contains("backbone_flat.onnx") && e.contains("bmn_tiny"),
            "{cmd}: {e}"
        );
    }
}

#[test]
fn a_video_that_breaks_off_keeps_the_proposals_of_its_whole_snippets() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = video(FRAMES);
    // Cut in the middle of frame 101: frames 0..=100 whole, 25 whole snippets of 4 frames.
    let header = bytes.iter().position(|&b| b == b'\n').unwrap() + 1;
    let frame_len = 6 + W * H * 3 / 2;
    let cut = &bytes[..header + 101 * frame_len + 500];
    let v = dir.path().join("cut.y4m");
    std::fs::write(&v, cut).unwrap();
    let out = dir.path().join("r.json");
    let e = err(&run(
        args![
            "detect",
            "--model",
            bmn(),
            "--video",
            v,
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--out",
            out
        ],
        None,
    ));
    assert!(e.contains("truncated y4m: frame 101") && e.contains("25 whole snippet(s)"), "{e}");
    let written: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert!(!written["results"]["cut"].as_array().unwrap().is_empty());
    // The same proposals as a video of the 101 frames read whole (the same snippets, and the
    // same frame count for the seconds).
    let whole = dir.path().join("first101.y4m");
    std::fs::write(&whole, &bytes[..header + 101 * frame_len]).unwrap();
    let expected = ok(&run(
        args![
            "detect",
            "--model",
            bmn(),
            "--video",
            whole,
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--video-id",
            "cut"
        ],
        None,
    ));
    assert_eq!(std::fs::read_to_string(&out).unwrap(), expected);
    // stream: the lines before the error are all there.
    let lines = dir.path().join("lines.jsonl");
    let e = err(&run(
        args![
            "stream",
            "--model",
            bmn(),
            "--video",
            v,
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES,
            "--out",
            lines
        ],
        None,
    ));
    assert!(e.contains("truncated y4m") && e.contains("after 25 whole snippets"), "{e}");
    let expected = ok(&run(
        args![
            "stream",
            "--model",
            bmn(),
            "--video",
            whole,
            "--backbone",
            backbone(),
            "--snippet-frames",
            SNIPPET_FRAMES
        ],
        None,
    ));
    assert_eq!(std::fs::read_to_string(&lines).unwrap(), expected);
}

#[test]
fn pixel_flags_out_of_place_are_refused() {
    let features = root("models/demo/features/syn4_00000.npy");
    let cases: [(&[std::ffi::OsString], &str); 6] = [
        (
            args!["detect", "--model", bmn(), "--features", features, "--backbone", backbone()],
            "--backbone runs on pixels",
        ),
        (args!["detect", "--model", bmn(), "--video", "x.y4m"], "need --backbone"),
        (
            args!["detect", "--model", bmn(), "--video", "x.y4m", "--backbone", backbone(), "--duration", "3"],
            "come from the video",
        ),
        (args!["detect", "--model", bmn(), "--features", features, "--resize", "20"], "--backbone"),
        (
            args!["stream", "--model", bmn(), "--video", "x.y4m", "--backbone", backbone(), "--snippet-seconds", "1"],
            "cannot be used with",
        ),
        (args!["stream", "--model", bmn(), "--snippet-frames", "4"], "--snippet-frames applies to --video"),
    ];
    for (a, expect) in cases {
        let e = err(&run(a, Some(b"")));
        assert!(e.contains(expect), "{a:?}: {e}");
    }
}

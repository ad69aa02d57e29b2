//! How every command runs a backbone: its buffers stay on the heap from frame to frame
//! (the allocator tuned for it, `cli/process.rs::prepare_for_backbone`), and its threads —
//! one run of frames per thread, or each frame split by tract — give the same features,
//! bit for bit, as one thread.
//!
//! Fixture: `tests/golden/pixels/backbone_c128_224.onnx` (`pixels_reference.py alloc`: the
//! small flat backbone at the 224 crop, C = 128, 4 frames per snippet in its metadata). Its
//! tensors per frame are far above glibc's default 128 KiB mmap threshold: the largest, the
//! second convolution's output, is 128 × 56 × 56 float32 = 1 605 632 bytes = 392 pages of
//! 4 KiB, and it is written whole on every frame. So a command that lets the allocator map
//! its buffers anew faults in at least 392 fresh pages per snippet (measured: ~1 240), and
//! one that reuses its heap next to none (measured: 4–10, the odd buffer that lands on a
//! fresh page). The tests assert fewer than half the largest tensor's pages per snippet,
//! which only a command that keeps that tensor's memory between frames can meet.
#![cfg(all(feature = "engine", target_os = "linux", target_env = "gnu"))]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The binary, with glibc's allocator left to what the command sets.
fn bin() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bmn-edge"));
    c.env_remove("MALLOC_MMAP_THRESHOLD_").env_remove("MALLOC_TRIM_THRESHOLD_");
    c
}

fn backbone() -> PathBuf {
    root("tests/golden/pixels/backbone_c128_224.onnx")
}

/// The shipped pixel BMN model (C = 128, the fixture's width).
fn bmn() -> PathBuf {
    root("models/pixel_bmn_int8.edge.onnx")
}

/// Pages of the fixture's largest tensor (see the module docs).
const LARGEST_PAGES: f64 = (128 * 56 * 56 * 4) as f64 / 4096.0;

/// A 48×36 4:2:0 y4m of `frames` frames (moving gradients) in `dir`.
fn video(dir: &Path, frames: usize) -> PathBuf {
    let (w, h) = (48, 36);
    let path = dir.join("v.y4m");
    let mut f = std::fs::File::create(&path).unwrap();
    writeln!(f, "YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg").unwrap();
    for i in 0..frames {
        f.write_all(b"FRAME\n").unwrap();
        let y: Vec<u8> = (0..w * h).map(|p| ((p % w) * 4 + (p / w) * 2 + i * 9) as u8).collect();
        f.write_all(&y).unwrap();
        let c: Vec<u8> = (0..w * h / 2).map(|p| (64 + (p * 5 + i * 3) % 128) as u8).collect();
        f.write_all(&c).unwrap();
    }
    path
}

fn run(cmd: &mut Command) -> Output {
    let o = cmd.env("RUST_LOG", "info").output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    o
}

/// The minor page faults per snippet after the first that the command logged.
fn faults_per_snippet(o: &Output) -> f64 {
    let err = String::from_utf8_lossy(&o.stderr);
    let line = err.lines().find(|l| l.contains("minor page faults in the")).unwrap_or_else(|| panic!("{err}"));
    let x = line.rsplit_once('(').unwrap().1.split_whitespace().next().unwrap();
    x.parse().unwrap()
}

/// 11 snippets of 4 frames.
const FRAMES: usize = 44;

#[test]
fn every_command_that_runs_a_backbone_keeps_its_buffers_between_frames() {
    let dir = tempfile::tempdir().unwrap();
    let v = video(dir.path(), FRAMES);
    let common = |c: &mut Command| {
        c.arg("--video").arg(&v).arg("--backbone").arg(backbone()).args(["--threads", "1"]);
    };
    let mut features = bin();
    features.arg("features").arg("--out").arg(dir.path().join("f.npy"));
    common(&mut features);
    let mut detect = bin();
    detect.arg("detect").arg("--model").arg(bmn()).arg("--out").arg(dir.path().join("d.json"));
    common(&mut detect);
    let mut stream = bin();
    stream.arg("stream").arg("--model").arg(bmn()).arg("--out").arg(dir.path().join("s.jsonl"));
    common(&mut stream);
    for (name, cmd) in [("features", &mut features), ("detect --video", &mut detect), ("stream --video", &mut stream)] {
        let per = faults_per_snippet(&run(cmd));
        eprintln!("{name}: {per} minor page faults per snippet (largest tensor: {LARGEST_PAGES} pages)");
        assert!(
            per < LARGEST_PAGES / 2.0,
            "{name}: {per} page faults per snippet: the backbone's buffers are mapped anew on every frame"
        );
    }
    // The check can fail: with glibc's default threshold forced back, the same command
    // faults in every tensor on every frame.
    let o = run(features.env("MALLOC_MMAP_THRESHOLD_", "131072"));
    let per = faults_per_snippet(&o);
    assert!(per > LARGEST_PAGES, "with a 128 KiB mmap threshold: {per} page faults per snippet");
}

#[test]
fn backbone_threads_give_the_same_features_bit_for_bit() {
    let dir = tempfile::tempdir().unwrap();
    // 13 snippets: with 2 threads 6 pairs of runs on the workers and a last run alone.
    let v = video(dir.path(), 52);
    // The small flat backbone, and MobileNetV2 (whose depthwise layers run on the engine's
    // kernel: inside a frame-level worker, or split over tract's pool with `within`).
    for model in [backbone(), mbv2("mbv2_w025_64.onnx")] {
        let mut outs = Vec::new();
        for (threads, how) in [("1", "frames"), ("2", "frames"), ("2", "within"), ("3", "frames")] {
            let out = dir.path().join(format!("f_{threads}_{how}.npy"));
            let mut cmd = bin();
            cmd.arg("features").arg("--video").arg(&v).arg("--backbone").arg(&model);
            cmd.args(["--threads", threads, "--backbone-threads", how, "--snippet-frames", "4"]).arg("--out").arg(&out);
            let o = run(&mut cmd);
            let err = String::from_utf8_lossy(&o.stderr);
            let frame_level = err.contains("one run of frames per thread");
            assert_eq!(frame_level, threads != "1" && how == "frames", "{threads} {how}: {err}");
            outs.push((format!("{} {threads} thread(s), {how}", model.display()), std::fs::read(&out).unwrap()));
        }
        for (name, bytes) in &outs[1..] {
            assert!(bytes == &outs[0].1, "{name}: features differ from one thread's");
        }
    }
}

/// `tests/golden/pixels/mbv2/` (`pixels_reference.py mbv2-small`): MobileNetV2 at width
/// 0.25 on 64×64 inputs, a seeded batch and onnxruntime's outputs for it.
fn mbv2(p: &str) -> PathBuf {
    root("tests/golden/pixels/mbv2").join(p)
}

#[test]
fn mobilenet_v2_with_the_engines_depthwise_kernel_equals_onnxruntime() {
    use bmn_edge::engine::backbone::{Backbone, BackboneOptions};
    use bmn_edge::npy::read_f32;
    let x = read_f32(&mbv2("input.npy")).unwrap();
    let want = read_f32(&mbv2("output.npy")).unwrap();
    let scale = want.data.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    let mut outs = Vec::new();
    for own in [true, false] {
        let o = BackboneOptions { own_depthwise: own, ..BackboneOptions::default() };
        let mut b = Backbone::load(&mbv2("mbv2_w025_64.onnx"), &o).unwrap();
        // Every one of MobileNetV2's 17 depthwise convolutions (stride 1 and 2) is ours.
        assert_eq!(b.own_depthwise(), if own { 17 } else { 0 });
        let mut got = vec![0.0; want.data.len()];
        b.run(&x.data, &mut got).unwrap();
        // Both runtimes compute in float32 in different orders (and onnxruntime's depthwise
        // and matrix kernels fuse differently): the outputs agree to float32 rounding
        // amplified through 52 layers; the bound, 1e-4 of the largest output.
        let d = got.iter().zip(&want.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        eprintln!("own depthwise {own}: max |diff| {d:e} (largest output {scale})");
        assert!(d <= 1e-4 * scale, "own depthwise {own}: {d} against {scale}");
        outs.push(got);
    }
    // The kernel changes the arithmetic only to float rounding.
    let d = outs[0].iter().zip(&outs[1]).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(d <= 1e-4 * scale, "ours against tract's depthwise: {d}");
}

#[test]
fn inspect_says_which_operators_run_where() {
    let o = run(bin().args(["inspect", "--backbone", "--json"]).arg(mbv2("mbv2_w025_64.onnx")));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["bmn_edge_depthwise"], 17);
    assert_eq!(j["channels"], 128);
    let ops = j["plan_ops"].as_array().unwrap();
    let count = |name: &str| ops.iter().find(|o| o["op"] == name).map_or(0, |o| o["count"].as_u64().unwrap());
    assert_eq!(count("BmnEdgeDepthwise3x3"), 17, "{ops:?}");
    assert_eq!(count("DepthWise"), 0, "no depthwise convolution is left to tract: {ops:?}");
    // A QOperator file from onnxruntime's quantizer: its contrib ops named, in float.
    let q = root("tests/golden/quantized/q_s8.onnx");
    let o = run(bin().args(["inspect", "--backbone"]).arg(&q));
    let text = String::from_utf8_lossy(&o.stdout);
    for op in ["QGemm", "QLinearAdd", "QLinearConcat", "QLinearGlobalAveragePool", "QLinearMul"] {
        assert!(text.contains(&format!("in float    1 x {op}")), "{op}: {text}");
    }
    assert!(text.contains("arithmetic  int8"), "{text}");
    // A BMN model is not a backbone: a clear error, non-zero exit.
    let o = bin().args(["inspect", "--backbone"]).arg(bmn()).output().unwrap();
    assert!(!o.status.success());
    assert!(
        String::from_utf8_lossy(&o.stderr).contains("inspecting the backbone"),
        "{}",
        String::from_utf8_lossy(&o.stderr)
    );
}

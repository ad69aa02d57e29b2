//! Regression tests for the hostile inputs of issue 14: each hostile input is refused with a
//! clear error and a non-zero exit (1, not a panic's 101), never silent garbage, a hang or an
//! out-of-memory abort. Each test reproduced its finding before the fix.
#![cfg(feature = "engine")]

use bmn_edge::engine::{Engine, EngineErrorKind, EngineOptions};
use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tract_onnx::pb;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("bmn-edge-hardening-{name}-")).tempdir().unwrap()
}

fn fixture(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures").join(p)
}

/// A fuzzing finding's input (`tests/fuzz/crashes/<target>/<name>`).
fn crash(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz/crashes").join(p)
}

const FP32: &str = "onnx/bmn_tiny_pytorch_op17.onnx";
const INT8: &str = "onnx_int8/bmn_tiny_pytorch_int8_qop.onnx";

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd` with a deadline: a hang is a test failure, not a hung test run.
fn run_with_deadline(mut cmd: Command, limit: Duration) -> Output {
    let mut child = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let t0 = Instant::now();
    loop {
        if child.try_wait().unwrap().is_some() {
            return child.wait_with_output().unwrap();
        }
        if t0.elapsed() > limit {
            child.kill().ok();
            let o = child.wait_with_output().unwrap();
            panic!("still running after {limit:?} (killed); stderr: {}", stderr(&o));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The command failed cleanly: exit status 1 (a usage error would be 2, a panic 101, a
/// signal none) and the message contains every one of `says`.
fn assert_clean_failure(o: &Output, says: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1, got {:?}; stderr: {e}", o.status);
    assert!(!e.contains("panicked"), "{e}");
    for s in says {
        assert!(e.contains(s), "stderr lacks `{s}`: {e}");
    }
}

/// A `.npy` v1.0 file with a hand-written header (any shape, lying or not) and `data`.
fn npy_with_header(path: &Path, shape: &str, data: &[u8]) {
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {shape}, }}");
    while (10 + header.len() + 1) % 64 != 0 {
        header.push(' ');
    }
    header.push('\n');
    let mut f = std::fs::File::create(path).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    f.write_all(data).unwrap();
}

/// The model's (T, C).
fn model_dims(model: &Path) -> (usize, usize) {
    let info = bmn_edge::engine::inspect(model).unwrap();
    (info.config.tscale(), info.channels)
}

/// Deterministic features [l, c] in a fresh .npy.
fn features(dir: &Path, l: usize, c: usize) -> PathBuf {
    let p = dir.join("features.npy");
    let data: Vec<f32> = (0..l * c).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    bmn_edge::npy::write_f32(&p, &[l, c], &data).unwrap();
    p
}

fn detect(model: &Path, features: &Path, extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(["detect", "--threads", "1", "--model"]).arg(model).arg("--features").arg(features).args(extra);
    run_with_deadline(cmd, Duration::from_secs(120))
}

// ---------------------------------------------------------------- #1, #2: npy shapes

#[test]
fn npy_shape_whose_element_count_overflows_is_refused() {
    let dir = tmpdir("npy-overflow");
    // #1: (2^62, 400) elements wrap to 0 in 64 bits; 1600 bytes of data follow.
    let p1 = dir.path().join("wrap0.npy");
    npy_with_header(&p1, "(4611686018427387904, 400)", &[0u8; 1600]);
    let e = bmn_edge::npy::read_f32(&p1).unwrap_err();
    assert_eq!(e.kind(), bmn_edge::npy::NpyErrorKind::Format, "{e}");
    assert!(e.to_string().contains("4611686018427387904"), "{e}");
    let mut cmd = bin();
    cmd.args(["bench", "--iterations", "1", "--model"]).arg(fixture(FP32)).arg("--features").arg(&p1);
    assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(120)), &["wrap0.npy", "shape"]);

    // #2: (2^62 + 100, 400) wraps to exactly 100 · 400: 100 real rows follow.
    let model = fixture(FP32);
    let (_, c) = model_dims(&model);
    let p2 = dir.path().join("wrap100.npy");
    let rows: Vec<u8> = (0..100 * c).flat_map(|i| ((i % 13) as f32 * 0.1).to_le_bytes()).collect();
    npy_with_header(&p2, &format!("(4611686018427388004, {c})"), &rows);
    let o = detect(&model, &p2, &[]);
    assert_clean_failure(&o, &["wrap100.npy", "shape"]);
    assert!(o.stdout.is_empty());
}

#[test]
fn npy_header_that_lies_about_the_data_length_is_refused() {
    let dir = tmpdir("npy-lie");
    let p = dir.path().join("short.npy");
    // 3 · 4 floats declared, 11 present; then 13 present.
    npy_with_header(&p, "(3, 4)", &[0u8; 44]);
    assert_eq!(bmn_edge::npy::read_f32(&p).unwrap_err().kind(), bmn_edge::npy::NpyErrorKind::Format);
    npy_with_header(&p, "(3, 4)", &[0u8; 52]);
    assert_eq!(bmn_edge::npy::read_f32(&p).unwrap_err().kind(), bmn_edge::npy::NpyErrorKind::Format);
    npy_with_header(&p, "(3, 4)", &[0u8; 48]);
    assert_eq!(bmn_edge::npy::read_f32(&p).unwrap().shape, vec![3, 4]);
}

// ---------------------------------------------------------------- #3: mask memory bound

#[test]
fn mask_refuses_more_memory_than_the_bound() {
    let dir = tmpdir("mask-mem");
    let out = dir.path().join("m.npy");
    let mask = |extra: &[&str]| {
        let mut cmd = bin();
        cmd.arg("mask").args(extra).arg("--out").arg(&out);
        run_with_deadline(cmd, Duration::from_secs(60))
    };
    // 4096 · 32 · 4096 · 4096 float32 = 8 TiB; 300 · 32 · 300 · 300 float32 = 3.2 GiB.
    assert_clean_failure(&mask(&["--tscale", "4096", "--dscale", "4096"]), &["8388608 MiB", "--max-memory"]);
    assert_clean_failure(&mask(&["--tscale", "300", "--dscale", "300"]), &["3296 MiB", "--max-memory"]);
    assert!(!out.exists());
    // The paper configuration (128 MB) fits the default; a smaller bound refuses it.
    assert_clean_failure(&mask(&["--max-memory", "100"]), &["123 MiB", "--max-memory 100"]);
    let o = mask(&["--tscale", "16", "--dscale", "9", "--max-memory", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(bmn_edge::npy::read_f32(&out).unwrap().shape, vec![16, 32, 9, 16]);
}

// ---------------------------------------------------------------- #4: threads bound

#[test]
fn thread_counts_above_the_bound_are_refused() {
    let dir = tmpdir("threads");
    let model = fixture(FP32);
    let (t, c) = model_dims(&model);
    let f = features(dir.path(), t, c);
    let mut cmd = bin();
    cmd.args(["detect", "--threads", "10000", "--model"]).arg(&model).arg("--features").arg(&f);
    assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &["--threads 10000", "at most"]);
}

/// Limits: a model whose configuration needs more than `--max-memory` is refused at load
/// with what it would need; the bound's arithmetic is `engine::working_memory`, checked
/// here against the paper configuration by hand (5050 valid cells; taps ≤ 2·N·K per bin at
/// 8 bytes, 8 per cell; H = cells × 512 floats; input and maps `(C·T + 3·D·T)·8`).
#[test]
fn a_model_that_needs_more_memory_than_the_bound_is_refused_at_load() {
    let cells: u128 = 100 * 100 - 100 * 99 / 2;
    let by_hand = cells * 2 * 32 * 3 * 8 + cells * 8 + cells * 512 * 4 + (400 * 100 + 3 * 100 * 100) * 8;
    assert_eq!(bmn_edge::engine::working_memory(100, 100, 32, Some(3), 512, 400), by_hand);
    assert!(by_hand < u128::from(bmn_edge::engine::DEFAULT_MAX_MEMORY) / 32);
    // T = D = 4096 (the largest configuration) would need ~28 GiB: far above the default.
    assert!(bmn_edge::engine::working_memory(4096, 4096, 32, Some(3), 512, 400) > 28 << 30);
    // Saturates instead of overflowing.
    assert_eq!(bmn_edge::engine::working_memory(usize::MAX, usize::MAX, usize::MAX, None, usize::MAX, 1), u128::MAX);
    // The tiny fixture (T = D = 16, N = 8, a standard export: K is known only from its mask,
    // so a bin is bounded by T = 16 taps) needs ~0.2 MiB: refused under a bound of 0 MiB,
    // before its plan is built, saying what it would need; loaded under 1 MiB.
    let dir = tmpdir("max-memory");
    let model = fixture(FP32);
    let (t, c) = model_dims(&model);
    let f = features(dir.path(), t, c);
    let o = detect(&model, &f, &["--max-memory", "0"]);
    assert_clean_failure(&o, &["T = 16, D = 16, N = 8, K from its mask", "would need up to 1 MiB", "--max-memory"]);
    assert!(detect(&model, &f, &["--max-memory", "1"]).status.success());
}

// ---------------------------------------------------------------- #5, #6: weights and scales

/// `bytes` (an ONNX model) with the float initializer `name` rewritten by `f`.
fn with_initializer(bytes: &[u8], name: &str, f: impl Fn(&mut [f32])) -> Vec<u8> {
    let mut m = pb::ModelProto::decode(bytes).unwrap();
    let t = m.graph.as_mut().unwrap().initializer.iter_mut().find(|t| t.name == name).unwrap();
    let mut v: Vec<f32> = if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes(c.try_into().unwrap())).collect()
    };
    f(&mut v);
    t.float_data.clear();
    t.raw_data = v.iter().flat_map(|x| x.to_le_bytes()).collect();
    m.encode_to_vec()
}

/// The fp32 fixture's Conv3d weight (the `Conv` with a 5-D weight) and its last `Conv`'s
/// weight (stage B's output layer).
fn conv3d_and_stage_b_weights(bytes: &[u8]) -> (String, String) {
    let m = pb::ModelProto::decode(bytes).unwrap();
    let g = m.graph.unwrap();
    let dims = |n: &str| g.initializer.iter().find(|t| t.name == n).map(|t| t.dims.len());
    let convs: Vec<&pb::NodeProto> = g.node.iter().filter(|n| n.op_type == "Conv").collect();
    let c3 = convs.iter().find(|n| dims(&n.input[1]) == Some(5)).unwrap().input[1].clone();
    let last = convs.last().unwrap().input[1].clone();
    assert_ne!(c3, last);
    (c3, last)
}

fn load_err(bytes: Vec<u8>) -> bmn_edge::engine::EngineError {
    match Engine::from_bytes(bytes, &EngineOptions { threads: 1, ..EngineOptions::default() }) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

#[test]
fn non_finite_weights_are_refused_at_load() {
    let dir = tmpdir("nan-weights");
    let model = fixture(FP32);
    let bytes = std::fs::read(&model).unwrap();
    let (t, c) = model_dims(&model);
    let f = features(dir.path(), t, c);
    let (conv3d, stage_b) = conv3d_and_stage_b_weights(&bytes);
    for name in [&conv3d, &stage_b] {
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let broken = with_initializer(&bytes, name, |v| v[v.len() / 2] = bad);
            let e = load_err(broken.clone());
            assert_eq!(e.kind(), EngineErrorKind::Unsupported, "{name}: {e}");
            assert!(e.to_string().contains(&format!("`{name}`")), "{e}");
            assert!(e.to_string().contains("not finite"), "{e}");
        }
        let p = dir.path().join("nan.onnx");
        std::fs::write(&p, with_initializer(&bytes, name, |v| v[0] = f32::NAN)).unwrap();
        assert_clean_failure(&detect(&p, &f, &[]), &[name.as_str(), "not finite"]);
        // Converting it to the edge format is refused as well.
        let o = run_with_deadline(
            {
                let mut cmd = bin();
                cmd.arg("convert").arg(&p).arg("-o").arg(dir.path().join("e.onnx"));
                cmd
            },
            Duration::from_secs(60),
        );
        assert_clean_failure(&o, &[name.as_str()]);
    }
}

#[test]
fn quantization_scales_that_are_not_positive_and_finite_are_refused() {
    let dir = tmpdir("scales");
    let model = fixture(INT8);
    let bytes = std::fs::read(&model).unwrap();
    let (t, c) = model_dims(&model);
    let f = features(dir.path(), t, c);
    // A stage-B weight scale and a stage-A activation scale.
    for name in ["pem_2d.0.weight_scale", "/base/base.1/Relu_output_0_scale"] {
        for bad in [0.0, -0.0, f32::NAN, f32::INFINITY, -1.0] {
            let broken = with_initializer(&bytes, name, |v| v.iter_mut().for_each(|x| *x = bad));
            let e = load_err(broken.clone());
            assert!(e.to_string().contains(&format!("`{name}`")), "{bad}: {e}");
            assert!(e.to_string().contains("scale"), "{bad}: {e}");
            let e = bmn_edge::engine::convert_to_edge(broken, None, bmn_edge::engine::WindowMode::Sliding)
                .expect_err("converted");
            assert!(e.to_string().contains(&format!("`{name}`")), "{bad}: {e}");
        }
        let p = dir.path().join("zero-scale.onnx");
        std::fs::write(&p, with_initializer(&bytes, name, |v| v.iter_mut().for_each(|x| *x = 0.0))).unwrap();
        assert_clean_failure(&detect(&p, &f, &[]), &[name, "scale"]);
        let o = run_with_deadline(
            {
                let mut cmd = bin();
                cmd.arg("inspect").arg(&p);
                cmd
            },
            Duration::from_secs(60),
        );
        assert_clean_failure(&o, &[name, "scale"]);
    }
    // The untouched model still loads and runs.
    let o = detect(&model, &f, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
}

// ---------------------------------------------------------------- #8, #9: output files

/// Golden maps of one window, as three files (see tests/golden/post/manifest.json).
fn maps(dir: &Path) -> [PathBuf; 3] {
    let golden = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/post/realistic_00.npy");
    let (t, d) = (100, 100);
    let flat = bmn_edge::npy::read_f32(&golden).unwrap().data;
    let paths = [dir.join("start.npy"), dir.join("end.npy"), dir.join("confidence.npy")];
    bmn_edge::npy::write_f32(&paths[0], &[t], &flat[..t]).unwrap();
    bmn_edge::npy::write_f32(&paths[1], &[t], &flat[t..2 * t]).unwrap();
    bmn_edge::npy::write_f32(&paths[2], &[2, d, t], &flat[2 * t..]).unwrap();
    paths
}

fn postprocess(maps: &[PathBuf; 3], extra: &[&str]) -> Output {
    let mut cmd = bin();
    cmd.args(["postprocess", "--start"])
        .arg(&maps[0])
        .arg("--end")
        .arg(&maps[1])
        .arg("--confidence")
        .arg(&maps[2])
        .args(extra);
    run_with_deadline(cmd, Duration::from_secs(60))
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

#[cfg(unix)]
#[test]
fn a_planted_symlink_at_the_old_temporary_name_is_not_followed() {
    let inputs = tmpdir("symlink-in");
    let m = maps(inputs.path());
    let dir = tmpdir("symlink");
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("r.json.tmp-bmn-edge")).unwrap();
    std::os::unix::fs::symlink(&victim, dir.path().join("r.tmp-bmn-edge")).unwrap();
    let out = dir.path().join("r.json");
    let o = postprocess(&m, &["--out", out.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    let v: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(v["results"]["video"].as_array().unwrap().len(), 100);
    // Nothing else was created beside the target.
    assert_eq!(names(dir.path()), ["r.json", "r.json.tmp-bmn-edge", "r.tmp-bmn-edge", "victim.txt"]);
}

#[test]
fn a_failed_output_leaves_no_temporary_file() {
    let inputs = tmpdir("fail-in");
    let m = maps(inputs.path());
    let dir = tmpdir("fail");
    // The target is a directory: the temporary file is written, then cannot replace it.
    let out = dir.path().join("r.json");
    std::fs::create_dir(&out).unwrap();
    std::fs::write(out.join("inside"), b"x").unwrap();
    assert_clean_failure(&postprocess(&m, &["--out", out.to_str().unwrap()]), &["r.json"]);
    assert_eq!(names(dir.path()), ["r.json"]);
    assert_eq!(names(&out), ["inside"]);
    // The target's directory does not exist.
    let missing = dir.path().join("no/such/dir/r.json");
    assert_clean_failure(&postprocess(&m, &["--out", missing.to_str().unwrap()]), &["r.json"]);
    assert_eq!(names(dir.path()), ["r.json"]);
}

// ---------------------------------------------------------------- #10: special files and size

#[cfg(unix)]
fn fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

#[cfg(unix)]
#[test]
fn devices_and_fifos_are_not_read() {
    let dir = tmpdir("special");
    let model = fixture(FP32);
    let (t, c) = model_dims(&model);
    let f = features(dir.path(), t, c);
    let pipe = dir.path().join("pipe");
    fifo(&pipe);
    let zero = PathBuf::from("/dev/zero");
    for special in [&zero, &pipe] {
        let s = special.to_str().unwrap();
        assert_clean_failure(&detect(special, &f, &[]), &[s, "not a regular file"]);
        // Features given to detect: a special file is neither a collection nor read.
        let mut cmd = bin();
        cmd.args(["detect", "--model"]).arg(&model).arg("--features").arg(special);
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
        // Features through the library and `bench`.
        let e = bmn_edge::features::read_features(special).unwrap_err();
        assert_eq!(e.kind(), bmn_edge::features::FeatureErrorKind::Npy(bmn_edge::npy::NpyErrorKind::Io), "{e}");
        assert!(e.to_string().contains("not a regular file"), "{e}");
        let mut cmd = bin();
        cmd.args(["bench", "--iterations", "1", "--model"]).arg(&model).arg("--features").arg(special);
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
        let csv = dir.path().join("features.csv");
        if special == &pipe {
            fifo(&csv);
            let e = bmn_edge::features::read_features(&csv).unwrap_err();
            assert_eq!(e.kind(), bmn_edge::features::FeatureErrorKind::Io, "{e}");
            assert!(e.to_string().contains("not a regular file"), "{e}");
            std::fs::remove_file(&csv).unwrap();
        }
        // Maps for postprocess.
        let mut cmd = bin();
        cmd.args(["postprocess", "--start"]).arg(special).arg("--end").arg(special).arg("--confidence").arg(special);
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
        let mut cmd = bin();
        cmd.args(["eval", "--ground-truth"]).arg(special).arg("--proposals").arg(special);
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
        let mut cmd = bin();
        cmd.arg("inspect").arg(special);
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
        let mut cmd = bin();
        cmd.arg("convert").arg(special).arg("-o").arg(dir.path().join("x.onnx"));
        assert_clean_failure(&run_with_deadline(cmd, Duration::from_secs(60)), &[s, "not a regular file"]);
    }
}

#[test]
fn inputs_larger_than_the_bound_are_refused_before_reading() {
    let dir = tmpdir("large");
    let model = fixture(FP32);
    // Sparse files: the size is declared, nothing is written.
    let big_npy = dir.path().join("big.npy");
    std::fs::File::create(&big_npy).unwrap().set_len(300 << 20).unwrap();
    let e = bmn_edge::npy::read_f32(&big_npy).unwrap_err();
    assert_eq!(e.kind(), bmn_edge::npy::NpyErrorKind::TooLarge, "{e}");
    assert_clean_failure(&detect(&model, &big_npy, &[]), &["big.npy", "300 MiB", "limit"]);
    let big_model = dir.path().join("big.onnx");
    std::fs::File::create(&big_model).unwrap().set_len(600 << 20).unwrap();
    assert_clean_failure(&detect(&big_model, &big_npy, &[]), &["big.onnx", "600 MiB", "limit"]);
}

// ---------------------------------------------------------------- #11: silently ignored flags

#[test]
fn flags_that_would_be_ignored_are_errors() {
    let inputs = tmpdir("flags-in");
    let m = maps(inputs.path());
    // postprocess --top-k: 1..=101 (Soft-NMS keeps at most 101 proposals per window).
    for k in ["0", "102"] {
        let o = postprocess(&m, &["--top-k", k]);
        assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
        assert!(stderr(&o).contains("--top-k") && stderr(&o).contains("1..=101"), "{}", stderr(&o));
    }
    let o = postprocess(&m, &["--top-k", "101"]);
    assert!(o.status.success(), "{}", stderr(&o));
    // --frames changes nothing under the paddle convention: the same output, and a warning.
    let o = postprocess(&m, &["--convention", "paddle", "--duration", "10", "--frames", "320"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("--frames 320 has no effect under the paddle convention"), "{}", stderr(&o));
    let plain = postprocess(&m, &["--convention", "paddle", "--duration", "10"]);
    assert_eq!((o.stdout, stderr(&plain)), (plain.stdout, String::new()));

    let model = fixture(FP32);
    let (t, c) = model_dims(&model);
    // detect --top-k above what the video merge keeps; the stream merge caps per group.
    {
        let dir = tmpdir("topk");
        let f = features(dir.path(), t, c);
        assert_clean_failure(&detect(&model, &f, &["--top-k", "102"]), &["--top-k 102", "101"]);
        let o = detect(&model, &f, &["--top-k", "102", "--merge", "stream"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let f = features(inputs.path(), t, c);
    // --band-rows without --tract-stage-b: a usage error.
    let o = detect(&model, &f, &["--band-rows", "4"]);
    assert_eq!(o.status.code(), Some(2), "{}", stderr(&o));
    assert!(stderr(&o).contains("--tract-stage-b"), "{}", stderr(&o));
    assert!(detect(&model, &f, &["--band-rows", "4", "--tract-stage-b"]).status.success());
    // --emulate-int8 on an fp32 model.
    assert_clean_failure(&detect(&model, &f, &["--emulate-int8"]), &["int8", "fp32"]);
    let e = load_err_with(
        std::fs::read(&model).unwrap(),
        EngineOptions { threads: 1, emulate_int8_stage_b: true, ..EngineOptions::default() },
    );
    assert_eq!(e.kind(), EngineErrorKind::Unsupported, "{e}");
}

fn load_err_with(bytes: Vec<u8>, opts: EngineOptions) -> bmn_edge::engine::EngineError {
    match Engine::from_bytes(bytes, &opts) {
        Ok(_) => panic!("loaded"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------- #13: csv header

#[test]
fn a_csv_without_a_header_row_is_refused() {
    let dir = tmpdir("csv");
    let p = dir.path().join("f.csv");
    std::fs::write(&p, "0.5,1.25\n2,3\n4,5\n").unwrap();
    let e = bmn_edge::features::read_features(&p).unwrap_err();
    assert_eq!(e.kind(), bmn_edge::features::FeatureErrorKind::NoHeader, "{e}");
    assert!(e.to_string().contains("header"), "{e}");
    // pandas' default header (column indices 0..C-1) is a header.
    std::fs::write(&p, "0,1\n2,3\n4,5\n").unwrap();
    let f = bmn_edge::features::read_features(&p).unwrap();
    assert_eq!((f.snippets, f.channels, f.data.clone()), (2, 2, vec![2.0, 3.0, 4.0, 5.0]));
}

// ---------------------------------------------------------------- fuzzing's findings (tests/fuzz)

/// F1: a csv value finite as f64 but beyond f32's range (4e100) was read as an infinite
/// feature; it is refused like NaN and infinity (the fuzzer's input, replayed).
#[test]
fn fuzz_f1_a_csv_value_beyond_float32_is_refused() {
    let dir = tmpdir("f1");
    let p = dir.path().join("f.csv");
    std::fs::copy(crash("features_csv/beyond_f32_range.csv"), &p).unwrap();
    let e = bmn_edge::features::read_features(&p).unwrap_err();
    assert!(e.to_string().contains("beyond float32's range"), "{e}");
    std::fs::write(&p, "0,1\n1e38,-3.4e38\n").unwrap();
    assert_eq!(bmn_edge::features::read_features(&p).unwrap().data, vec![1e38f32, -3.4e38]);
}

/// F3: models that make tract panic while building stage A (an out-of-range Squeeze axis,
/// Conv pads of the wrong length) are load errors (the fuzzer's inputs, every file of
/// `crashes/onnx_model/`, replayed through the library and the command).
#[test]
fn fuzz_f3_a_graph_tract_cannot_build_is_a_load_error() {
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(crash("onnx_model")).unwrap().map(|e| e.unwrap().path()).collect();
    inputs.sort();
    assert!(inputs.len() >= 2, "{inputs:?}");
    let dir = tmpdir("f3");
    let f = features(dir.path(), 16, 8);
    for input in inputs {
        let options = bmn_edge::engine::EngineOptions { threads: 1, ..Default::default() };
        let Err(e) = bmn_edge::engine::Engine::from_bytes(std::fs::read(&input).unwrap(), &options) else {
            panic!("{}: loaded", input.display())
        };
        assert!(e.to_string().contains("tract cannot build this graph"), "{}: {e}", input.display());
        assert_clean_failure(&detect(&input, &f, &[]), &["tract cannot build this graph", "malformed"]);
    }
}

/// F5: a `.npy` header of nested brackets made the header parser backtrack exponentially
/// (a hang: 18 levels took minutes); headers nesting deeper than a plain array's are refused
/// at once (the fuzzer's input, replayed under a deadline through the command too).
#[test]
fn fuzz_f5_a_deeply_nested_npy_header_is_refused_at_once() {
    let input = crash("npy/timeout_nested_brackets.npy");
    let started = std::time::Instant::now();
    let e = bmn_edge::npy::read_f32(&input).unwrap_err();
    assert!(e.to_string().contains("nests brackets deeper than 3"), "{e}");
    assert!(started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());
    let dir = tmpdir("f5");
    let deep = dir.path().join("deep.npy");
    npy_with_header(&deep, "((((((((((((((((((2, 3))))))))))))))))))", &[0u8; 24]);
    let model = fixture(FP32);
    assert_clean_failure(&detect(&model, &deep, &[]), &["nests brackets deeper than 3"]);
    // A plain header still reads.
    let ok = dir.path().join("ok.npy");
    npy_with_header(&ok, "(2, 3)", &[0u8; 24]);
    assert_eq!(bmn_edge::npy::read_f32(&ok).unwrap().shape, vec![2, 3]);
}

/// F7: a graph that defines a tensor name twice (two nodes writing the same output) was
/// converted "successfully" into an edge file without its BM node, which then did not load.
/// Such graphs are refused (ONNX's single-assignment rule), and a conversion checks that
/// what it wrote reads back. The fuzzer's input (`crashes/onnx_convert/`) and a hand-made
/// one (the fp32 fixture with its last node's output renamed to an earlier node's), through
/// the library and `convert`: a clear error, nothing written.
#[test]
fn fuzz_f7_a_tensor_defined_twice_is_refused_and_nothing_is_written() {
    let mut m = pb::ModelProto::decode(&std::fs::read(fixture(FP32)).unwrap()[..]).unwrap();
    let g = m.graph.as_mut().unwrap();
    let earlier = g.node[1].output[0].clone();
    let last = g.node.len() - 1;
    g.node[last].output[0] = earlier;
    let dir = tmpdir("f7");
    let made = dir.path().join("twice.onnx");
    std::fs::write(&made, m.encode_to_vec()).unwrap();
    for input in [crash("onnx_convert/output_defined_twice.onnx"), made] {
        let bytes = std::fs::read(&input).unwrap();
        let e = bmn_edge::engine::convert_to_edge(bytes.clone(), None, bmn_edge::engine::WindowMode::Sliding)
            .err()
            .unwrap_or_else(|| panic!("{}: converted", input.display()));
        assert_eq!(e.kind(), bmn_edge::engine::EngineErrorKind::NotOnnx, "{e}");
        assert!(e.to_string().contains("defined twice"), "{e}");
        let e = load_err_with(bytes, EngineOptions { threads: 1, ..Default::default() });
        assert!(e.to_string().contains("defined twice"), "{e}");
        let out = dir.path().join("out.onnx");
        let o = bin().arg("convert").arg(&input).arg("-o").arg(&out).output().unwrap();
        assert_clean_failure(&o, &["defined twice"]);
        assert!(!out.exists(), "{}: a file was written", out.display());
    }
}

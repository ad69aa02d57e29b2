//! The `mask` and `postprocess` commands, end to end through the built binary.
#![cfg(feature = "std")]

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

/// A scratch directory, removed when dropped (also when the test fails).
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("bmn-edge-cli-{name}-")).tempdir().unwrap()
}

fn golden(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden").join(p)
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn mask_command_writes_the_reference_mask() {
    let dir = tmpdir("mask");
    let out = dir.path().join("m.npy");
    let o = bin()
        .args([
            "mask",
            "--tscale",
            "16",
            "--dscale",
            "9",
            "--num-sample",
            "8",
            "--num-sample-perbin",
            "3",
            "--ratio",
            "0.25",
            "--out",
        ])
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let ours = bmn_edge::npy::read_f32(&out).unwrap();
    let reference = bmn_edge::npy::read_f32(&golden("mask/mask_T16_D9_N8_K3_r0p25.npy")).unwrap();
    assert_eq!(ours, reference);
    // Invalid configuration: a clear message and a non-zero exit.
    let o = bin().args(["mask", "--tscale", "10", "--dscale", "11", "--out"]).arg(&out).output().unwrap();
    assert!(!o.status.success());
    assert!(stderr(&o).contains("D = 11"), "{}", stderr(&o));
}

/// `bmn-edge postprocess` on three map files plus extra arguments.
fn postprocess(maps: &[PathBuf; 3], extra: &[&str]) -> Output {
    let [s, e, c] = maps;
    bin()
        .args(["postprocess", "--start"])
        .arg(s)
        .arg("--end")
        .arg(e)
        .arg("--confidence")
        .arg(c)
        .args(extra)
        .output()
        .unwrap()
}

/// Splits a golden post-processing input into start/end/confidence files.
fn split_case(dir: &Path, file: &str, t: usize, d: usize) -> [PathBuf; 3] {
    let flat = bmn_edge::npy::read_f32(&golden(&format!("post/{file}"))).unwrap().data;
    let paths = [dir.join("start.npy"), dir.join("end.npy"), dir.join("confidence.npy")];
    bmn_edge::npy::write_f32(&paths[0], &[t], &flat[..t]).unwrap();
    bmn_edge::npy::write_f32(&paths[1], &[t], &flat[t..2 * t]).unwrap();
    bmn_edge::npy::write_f32(&paths[2], &[2, d, t], &flat[2 * t..]).unwrap();
    paths
}

#[test]
fn postprocess_command_matches_reference_in_seconds() {
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(golden("post/manifest.json")).unwrap()).unwrap();
    let case = manifest["cases"].as_array().unwrap().iter().find(|c| c["name"] == "realistic_00").unwrap();
    let (t, d) = (case["T"].as_u64().unwrap() as usize, case["D"].as_u64().unwrap() as usize);
    let dir = tmpdir("post");
    let maps = split_case(dir.path(), case["file"].as_str().unwrap(), t, d);
    for conv in ["mmaction2", "paddle"] {
        let out = dir.path().join(format!("{conv}.json"));
        let out_arg = out.to_str().unwrap();
        let o = postprocess(
            &maps,
            &["--convention", conv, "--duration", "124.23", "--video-id", "v_demo", "--out", out_arg],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        let got: Value = serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(got["version"], "VERSION 1.3");
        assert!(got["external_data"].as_object().unwrap().is_empty());
        let props = got["results"]["v_demo"].as_array().unwrap();
        let want = case[conv]["proposals"].as_array().unwrap();
        assert_eq!(props.len(), want.len());
        for (p, w) in props.iter().zip(want) {
            let seg = p["segment"].as_array().unwrap();
            let xmin = w[0].as_f64().unwrap().max(0.0) * 124.23;
            let xmax = w[1].as_f64().unwrap().min(1.0) * 124.23;
            assert_eq!(seg[0].as_f64().unwrap(), xmin);
            assert_eq!(seg[1].as_f64().unwrap(), xmax);
            assert!((p["score"].as_f64().unwrap() - w[2].as_f64().unwrap()).abs() < 1e-14);
        }
    }
    // Default output is stdout, video id "video", normalised time.
    let o = postprocess(&maps, &[]);
    assert!(o.status.success());
    let got: Value = serde_json::from_slice(&o.stdout).unwrap();
    assert!(got["results"]["video"].as_array().unwrap().iter().all(|p| p["segment"][1].as_f64().unwrap() <= 1.0));
}

/// `--frames`: mmaction2 reports seconds over the frames whole 16-frame snippets cover,
/// `(frames // 16 · 16) / frames · duration` (reference §3); paddle over the duration.
#[test]
fn frame_count_corrects_the_duration_under_mmaction2() {
    let dir = tmpdir("frames");
    let maps = split_case(dir.path(), "realistic_00.npy", 100, 100);
    let segments = |extra: &[&str]| -> Vec<(f64, f64)> {
        let o = postprocess(&maps, extra);
        assert!(o.status.success(), "{}", stderr(&o));
        let got: Value = serde_json::from_slice(&o.stdout).unwrap();
        got["results"]["video"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| (p["segment"][0].as_f64().unwrap(), p["segment"][1].as_f64().unwrap()))
            .collect()
    };
    let normalised = segments(&["--convention", "mmaction2"]);
    let corrected = segments(&["--convention", "mmaction2", "--duration", "124.23", "--frames", "3727"]);
    let dur = (3727 / 16 * 16) as f64 / 3727.0 * 124.23; // 3712 of 3727 frames
    assert_eq!(normalised.len(), corrected.len());
    for (n, c) in normalised.iter().zip(&corrected) {
        assert_eq!((n.0 * dur, n.1 * dur), *c);
    }
    let paddle = segments(&["--convention", "paddle", "--duration", "124.23"]);
    assert_eq!(paddle, segments(&["--convention", "paddle", "--duration", "124.23", "--frames", "3727"]));
    // Other snippet lengths; frame counts that are whole snippets change nothing.
    let dur5 = (3727 / 5 * 5) as f64 / 3727.0 * 124.23;
    let by5 = segments(&["--duration", "124.23", "--frames", "3727", "--snippet-frames", "5"]);
    assert!(normalised.iter().zip(&by5).all(|(n, c)| (n.0 * dur5, n.1 * dur5) == *c));
    let whole = segments(&["--duration", "124.23", "--frames", "3712"]);
    assert!(normalised.iter().zip(&whole).all(|(n, c)| (n.0 * 124.23, n.1 * 124.23) == *c));
    // Bad combinations are errors.
    for (extra, needle) in [
        (&["--frames", "3727"][..], "--frames needs --duration"),
        (&["--duration", "10", "--frames", "15"][..], "less than one snippet"),
        (&["--duration", "10", "--frames", "100", "--snippet-frames", "0"][..], "--snippet-frames"),
    ] {
        let o = postprocess(&maps, extra);
        assert_eq!(o.status.code(), Some(1), "{extra:?}");
        assert!(stderr(&o).contains(needle), "{extra:?}: {}", stderr(&o));
    }
}

#[test]
fn postprocess_rejects_bad_input_clearly() {
    let tmp = tmpdir("bad");
    let dir = tmp.path();
    let [s, e, c] = split_case(dir, "realistic_00.npy", 100, 100);
    let run = |start: &Path, end: &Path, conf: &Path, extra: &[&str]| {
        postprocess(&[start.to_path_buf(), end.to_path_buf(), conf.to_path_buf()], extra)
    };
    let expect_error = |o: Output, needle: &str| {
        assert!(!o.status.success(), "expected failure mentioning {needle}");
        assert_eq!(o.status.code(), Some(1), "errors exit with 1, not a panic's 101");
        assert!(stderr(&o).contains(needle), "stderr {:?} lacks {needle:?}", stderr(&o));
    };
    // Not an npy file.
    let junk = dir.join("junk.npy");
    std::fs::write(&junk, b"hello").unwrap();
    expect_error(run(&junk, &e, &c, &[]), "not a valid .npy");
    // Wrong dtype.
    let ints = dir.join("ints.npy");
    npyz::to_file_1d(&ints, vec![1i32; 100]).unwrap();
    expect_error(run(&ints, &e, &c, &[]), "not float32 or float64");
    // Mismatched T.
    let short = dir.join("short.npy");
    bmn_edge::npy::write_f32(&short, &[99], &[0.5; 99]).unwrap();
    expect_error(run(&s, &short, &c, &[]), "shape");
    // NaN.
    let nan = dir.join("nan.npy");
    let mut v = vec![0.5f32; 100];
    v[7] = f32::NAN;
    bmn_edge::npy::write_f32(&nan, &[100], &v).unwrap();
    expect_error(run(&nan, &e, &c, &[]), "index 7");
    // Duration.
    expect_error(run(&s, &e, &c, &["--duration", "0"]), "--duration");
    expect_error(run(&s, &e, &c, &["--duration=-3"]), "--duration");
    // D > T.
    let wide = dir.join("wide.npy");
    bmn_edge::npy::write_f32(&wide, &[2, 3, 2], &[0.5; 12]).unwrap();
    let (s2, e2) = (dir.join("s2.npy"), dir.join("e2.npy"));
    bmn_edge::npy::write_f32(&s2, &[2], &[0.5, 0.6]).unwrap();
    bmn_edge::npy::write_f32(&e2, &[2], &[0.5, 0.6]).unwrap();
    expect_error(run(&s2, &e2, &wide, &[]), "D = 3");
    // Missing file.
    expect_error(run(&dir.join("missing.npy"), &e, &c, &[]), "cannot open");
}

/// Writing results to `/dev/null` must write through the device, not rename a file over it.
#[cfg(unix)]
#[test]
fn output_to_a_device_is_written_through() {
    use std::os::unix::fs::FileTypeExt;
    let dir = tmpdir("devnull");
    let maps = split_case(dir.path(), "realistic_00.npy", 100, 100);
    let o = postprocess(&maps, &["--out", "/dev/null"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let meta = std::fs::metadata("/dev/null").unwrap();
    assert!(meta.file_type().is_char_device(), "/dev/null was replaced by a regular file");
}

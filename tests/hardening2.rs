//! Regression tests for the second hostile probe (issue 24): each finding's reproducer is
//! refused with a clear error and exit 1 (not a panic's 101, not a silent 0), bounded in
//! time, with nothing the user had lost. Each test reproduced its finding on the binary
//! before the fix (`BMN_EDGE_BIN=/path/to/old/bmn-edge cargo test --test hardening2` runs
//! them against another build).
#![cfg(all(feature = "engine", unix))]

use prost::Message;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};
use tract_onnx::pb;

fn bin() -> Command {
    match std::env::var_os("BMN_EDGE_BIN") {
        Some(b) => Command::new(b),
        None => Command::new(env!("CARGO_BIN_EXE_bmn-edge")),
    }
}

fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("bmn-edge-hardening2-{name}-")).tempdir().unwrap()
}

fn root(p: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(p)
}

/// The tiny fp32 BMN (T = 16, C = 32).
fn model() -> PathBuf {
    root("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx")
}

/// The test backbone that feeds it (C = 32).
fn backbone() -> PathBuf {
    root("tests/golden/pixels/backbone_c32.onnx")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `cmd` (stdin empty) with a deadline and an address-space limit of 8 GiB, so that a
/// reader that is unbounded (the findings, on the binary before their fixes) fails here
/// instead of taking the machine's memory. (Address space, not memory: threads' stacks and
/// allocator arenas count, hence the margin.)
fn run(mut cmd: Command) -> Output {
    cmd.stdout(Stdio::piped());
    run_with(&mut cmd, Duration::from_secs(120))
}

/// [`run`] with the caller's stdout (piped unless set) and deadline.
fn run_with(cmd: &mut Command, limit: Duration) -> Output {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe and touches no memory of the parent.
    unsafe {
        cmd.pre_exec(|| {
            let lim = libc::rlimit { rlim_cur: 8 << 30, rlim_max: 8 << 30 };
            libc::setrlimit(libc::RLIMIT_AS, &lim);
            Ok(())
        });
    }
    let mut child = cmd.stdin(Stdio::null()).stderr(Stdio::piped()).spawn().unwrap();
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

fn cmd(args: &[&dyn AsRef<std::ffi::OsStr>]) -> Command {
    let mut c = bin();
    for a in args {
        c.arg(a);
    }
    c
}

/// Exit 1, no panic, and the message says each of `says`.
fn assert_clean_failure(o: &Output, says: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(1), "expected exit 1, got {:?}; stderr: {e}", o.status);
    assert!(!e.contains("panicked"), "{e}");
    for s in says {
        assert!(e.contains(s), "stderr lacks `{s}`: {e}");
    }
}

/// A usage error (exit 2) whose message says each of `says`.
fn assert_usage_error(o: &Output, says: &[&str]) {
    let e = stderr(o);
    assert_eq!(o.status.code(), Some(2), "expected exit 2, got {:?}; stderr: {e}", o.status);
    for s in says {
        assert!(e.contains(s), "stderr lacks `{s}`: {e}");
    }
}

fn fifo(path: &Path) {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes()).unwrap();
    // SAFETY: a NUL-terminated path; mkfifo only reads it.
    assert_eq!(unsafe { libc::mkfifo(c.as_ptr(), 0o600) }, 0);
}

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> =
        std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    v.sort();
    v
}

/// Deterministic features [l, 32] as `<dir>/<name>.npy`.
fn features_named(dir: &Path, name: &str, l: usize) -> PathBuf {
    let p = dir.join(format!("{name}.npy"));
    let data: Vec<f32> = (0..l * 32).map(|i| ((i * 7919 % 1000) as f32 / 500.0) - 1.0).collect();
    bmn_edge::npy::write_f32(&p, &[l, 32], &data).unwrap();
    p
}

/// A small y4m video (48x36, 4:2:0) of `frames` frames.
fn y4m(frames: usize) -> Vec<u8> {
    let (w, h) = (48, 36);
    let mut v = format!("YUV4MPEG2 W{w} H{h} F25:1 Ip A1:1 C420jpeg\n").into_bytes();
    for f in 0..frames {
        v.extend_from_slice(b"FRAME\n");
        v.extend((0..w * h).map(|i| (16 + (i * 3 + f * 5) % 200) as u8));
        v.extend((0..2 * (w / 2) * (h / 2)).map(|i| (64 + (i + f) % 128) as u8));
    }
    v
}

/// A frame image `w`x`h` in `format`, deterministic.
fn image_bytes(w: u32, h: u32, format: image::ImageFormat, seed: u32) -> Vec<u8> {
    let img = image::RgbImage::from_fn(w, h, |x, y| image::Rgb([(x * 5 + seed) as u8, (y * 7) as u8, (x + y) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).unwrap();
    out.into_inner()
}

/// `features --frames-dir DIR --fps 8` through the test backbone into `<out>`.
fn features_from_frames(dir: &Path, out: &Path) -> Output {
    run(cmd(&[
        &"features",
        &"--frames-dir",
        &dir,
        &"--fps",
        &"8",
        &"--snippet-frames",
        &"2",
        &"--backbone",
        &backbone(),
        &"--threads",
        &"1",
        &"--out",
        &out,
    ]))
}

// ------------------------------------------------------- 1: unbounded readers, FIFOs

#[test]
fn f01_merge_resume_log_and_ground_truth_refuse_devices_and_fifos_without_reading() {
    let dir = tmpdir("f01");
    let pipe = dir.path().join("pipe");
    fifo(&pipe);
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    let f = features_named(&coll, "a", 20);
    let zero = PathBuf::from("/dev/zero");
    for special in [&zero, &pipe] {
        let s = special.to_str().unwrap();
        assert_clean_failure(&run(cmd(&[&"merge", special])), &[s, "not a regular file"]);
        let o = run(cmd(&[
            &"detect",
            &"--model",
            &model(),
            &"--features",
            &coll,
            &"--jsonl",
            special,
            &"--resume",
            &"--threads",
            &"1",
        ]));
        assert_clean_failure(&o, &[s, "not a regular file"]);
        let svg = dir.path().join("p.svg");
        let o = run(cmd(&[
            &"plot",
            &"--model",
            &model(),
            &"--features",
            &f,
            &"--ground-truth",
            special,
            &"--threads",
            &"1",
            &"--out",
            &svg,
        ]));
        assert_clean_failure(&o, &[s, "not a regular file"]);
    }
}

#[test]
fn f02_a_frame_that_is_a_symlink_to_a_device_or_fifo_is_refused_without_reading() {
    let dir = tmpdir("f02");
    let pipe = dir.path().join("pipe");
    fifo(&pipe);
    for (k, target) in [PathBuf::from("/dev/zero"), pipe.clone()].iter().enumerate() {
        let frames = dir.path().join(format!("frames{k}"));
        std::fs::create_dir(&frames).unwrap();
        for i in 1..=3 {
            std::fs::write(frames.join(format!("img_{i:05}.png")), image_bytes(40, 30, image::ImageFormat::Png, i))
                .unwrap();
        }
        std::os::unix::fs::symlink(target, frames.join("img_00004.png")).unwrap();
        let out = dir.path().join(format!("f{k}.npy"));
        let o = features_from_frames(&frames, &out);
        assert_clean_failure(&o, &["img_00004.png", "not a regular file"]);
        // The first frame being the link: refused at the folder's opening.
        std::fs::rename(frames.join("img_00001.png"), frames.join("x.png")).unwrap();
        std::fs::rename(frames.join("img_00004.png"), frames.join("img_00001.png")).unwrap();
        std::fs::rename(frames.join("x.png"), frames.join("img_00004.png")).unwrap();
        assert_clean_failure(&features_from_frames(&frames, &out), &["img_00001.png", "not a regular file"]);
    }
}

// ------------------------------------------------------- 2: followed symlinks

#[test]
fn f03_a_symlink_at_detect_jsonl_or_stream_out_is_replaced_not_followed() {
    let dir = tmpdir("f03");
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    let f = features_named(&coll, "a", 20);
    let victim = dir.path().join("victim.txt");
    std::fs::write(&victim, b"precious").unwrap();
    let log = dir.path().join("log.jsonl");
    std::os::unix::fs::symlink(&victim, &log).unwrap();
    let out = dir.path().join("r.json");
    let o = run(cmd(&[
        &"detect",
        &"--model",
        &model(),
        &"--features",
        &coll,
        &"--jsonl",
        &log,
        &"--threads",
        &"1",
        &"--out",
        &out,
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!std::fs::symlink_metadata(&log).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&log).unwrap().starts_with("{\"video\":\"a\""));

    let sout = dir.path().join("s.jsonl");
    std::os::unix::fs::symlink(&victim, &sout).unwrap();
    let o = run(cmd(&[&"stream", &"--model", &model(), &"--input", &f, &"--threads", &"1", &"--out", &sout]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&victim).unwrap(), b"precious");
    assert!(!std::fs::symlink_metadata(&sout).unwrap().file_type().is_symlink());
    assert!(std::fs::read_to_string(&sout).unwrap().contains("\"segment\""));
}

// ------------------------------------------------------- 3: files lost on failure

#[test]
fn f04_a_stream_that_fails_on_its_first_row_leaves_an_existing_out_as_it_was() {
    let dir = tmpdir("f04");
    let out = dir.path().join("s.jsonl");
    std::fs::write(&out, b"an earlier run's lines\n").unwrap();
    // 5 bytes: not even one float32 row of 32 values.
    let input = dir.path().join("short.f32");
    std::fs::write(&input, [0u8; 5]).unwrap();
    let o = run(cmd(&[
        &"stream",
        &"--model",
        &model(),
        &"--input",
        &input,
        &"--format",
        &"raw",
        &"--threads",
        &"1",
        &"--out",
        &out,
    ]));
    assert_clean_failure(&o, &["no proposal was written", "left as it was"]);
    assert!(!stderr(&o).contains("their proposals were written"), "{}", stderr(&o));
    assert_eq!(std::fs::read(&out).unwrap(), b"an earlier run's lines\n");
    assert_eq!(names(dir.path()), ["s.jsonl", "short.f32"]);
}

#[test]
fn f05_a_collection_log_is_untouched_when_the_model_does_not_load() {
    let dir = tmpdir("f05");
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    features_named(&coll, "a", 20);
    let log = dir.path().join("log.jsonl");
    let finished = "{\"video\":\"a\",\"results\":[{\"segment\":[0.1,0.5],\"score\":0.5}]}\n";
    std::fs::write(&log, finished).unwrap();
    let o = run(cmd(&[
        &"detect",
        &"--model",
        &dir.path().join("mistyped.onnx"),
        &"--features",
        &coll,
        &"--jsonl",
        &log,
        &"--threads",
        &"1",
    ]));
    assert_clean_failure(&o, &["mistyped.onnx"]);
    assert_eq!(std::fs::read_to_string(&log).unwrap(), finished);
    assert_eq!(names(dir.path()), ["coll", "log.jsonl"]);
}

#[test]
fn f06_a_collection_where_every_video_fails_leaves_out_as_it_was() {
    let dir = tmpdir("f06");
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    // Both videos have the wrong width (C = 7, the model takes 32).
    for name in ["a", "b"] {
        bmn_edge::npy::write_f32(&coll.join(format!("{name}.npy")), &[20, 7], &[0.5; 140]).unwrap();
    }
    let out = dir.path().join("r.json");
    std::fs::write(&out, b"{\"earlier\": true}\n").unwrap();
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &coll, &"--threads", &"1", &"--out", &out]));
    assert_clean_failure(&o, &["2 of 2 videos failed", "nothing was written"]);
    assert_eq!(std::fs::read(&out).unwrap(), b"{\"earlier\": true}\n");
}

// ------------------------------------------------------- 4: unchecked numbers

#[test]
fn f07_stream_capacity_is_bounded_by_max_memory_before_allocating() {
    let dir = tmpdir("f07");
    let f = features_named(dir.path(), "a", 20);
    for cap in ["18446744073709551615", "1000000000", "100000000"] {
        let o = run(cmd(&[
            &"stream",
            &"--model",
            &model(),
            &"--input",
            &f,
            &"--threads",
            &"1",
            &"--max-memory",
            &"768",
            &"--capacity",
            &cap,
        ]));
        assert_clean_failure(&o, &["--capacity", "--max-memory 768"]);
    }
}

#[test]
fn f08_backbone_batch_is_bounded_before_loading() {
    let dir = tmpdir("f08");
    let v = dir.path().join("v.y4m");
    std::fs::write(&v, y4m(8)).unwrap();
    for batch in ["5000", "100000", "18446744073709551615"] {
        let out = dir.path().join("f.npy");
        let o = run(cmd(&[
            &"features",
            &"--video",
            &v,
            &"--backbone",
            &backbone(),
            &"--batch",
            &batch,
            &"--threads",
            &"1",
            &"--out",
            &out,
        ]));
        assert_clean_failure(&o, &["--batch", "frames per backbone run"]);
        assert!(!stderr(&o).contains("malformed"), "{}", stderr(&o));
        let o = run(cmd(&[
            &"detect",
            &"--model",
            &model(),
            &"--video",
            &v,
            &"--backbone",
            &backbone(),
            &"--batch",
            &batch,
            &"--threads",
            &"1",
        ]));
        assert_clean_failure(&o, &["--batch", "frames per backbone run"]);
    }
}

#[test]
fn f09_bench_iterations_are_bounded() {
    let o = run(cmd(&[&"bench", &"--model", &model(), &"--iterations", &"18446744073709551615"]));
    assert_clean_failure(&o, &["--iterations", "1..=1000000"]);
}

#[test]
fn f10_max_memory_above_the_machine_is_refused() {
    let dir = tmpdir("f10");
    let o = run(cmd(&[
        &"mask",
        &"--tscale",
        &"4096",
        &"--dscale",
        &"4096",
        &"--max-memory",
        &"18446744073709551615",
        &"--out",
        &dir.path().join("m.npy"),
    ]));
    assert_clean_failure(&o, &["--max-memory 18446744073709551615", "more than this machine's memory"]);
    let f = features_named(dir.path(), "a", 20);
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &f, &"--max-memory", &"18446744073709551615"]));
    assert_clean_failure(&o, &["more than this machine's memory"]);
    assert_eq!(names(dir.path()), ["a.npy"]);
}

#[test]
fn f11_frames_per_snippet_is_bounded_before_loading() {
    let dir = tmpdir("f11");
    let v = dir.path().join("v.y4m");
    std::fs::write(&v, y4m(8)).unwrap();
    let t0 = Instant::now();
    let o = run(cmd(&[
        &"features",
        &"--video",
        &v,
        &"--backbone",
        &backbone(),
        &"--frames-per-snippet",
        &"1000000",
        &"--threads",
        &"1",
        &"--out",
        &dir.path().join("f.npy"),
    ]));
    assert_clean_failure(&o, &["--frames-per-snippet 1000000"]);
    assert!(t0.elapsed() < Duration::from_secs(30), "{:?}", t0.elapsed());
}

#[test]
fn f12_a_ground_truth_above_its_bound_is_refused_before_parsing() {
    let dir = tmpdir("f12");
    let gt = dir.path().join("gt.json");
    // Sparse: 33 MiB declared, nothing written; parsed as a JSON tree it would take ~1 GB.
    std::fs::File::create(&gt).unwrap().set_len(33 << 20).unwrap();
    let pr = dir.path().join("pr.json");
    std::fs::write(&pr, r#"{"results": {}}"#).unwrap();
    let o = run(cmd(&[&"eval", &"--ground-truth", &gt, &"--proposals", &pr]));
    assert_clean_failure(&o, &["gt.json", "33 MiB", "limit for this input (32 MiB)"]);
}

#[test]
fn f13_a_csv_wider_than_a_snippet_is_refused_and_long_values_are_cut_in_messages() {
    let dir = tmpdir("f13");
    let wide = dir.path().join("wide.csv");
    let width = bmn_edge::snippets::MAX_CHANNELS + 1;
    let mut header = vec![b'a'; 2 * width - 1];
    for i in (1..header.len()).step_by(2) {
        header[i] = b',';
    }
    header.extend_from_slice(b"\n1\n");
    std::fs::write(&wide, &header).unwrap();
    let e = bmn_edge::features::read_features(&wide).unwrap_err();
    assert!(e.to_string().contains(&format!("{width} channels")), "{e}");
    // A 1 MB value that is not a number: named in a message of a bounded length.
    let long = dir.path().join("long.csv");
    let mut text = b"a,b\n1,".to_vec();
    text.extend(std::iter::repeat_n(b'x', 1 << 20));
    text.push(b'\n');
    std::fs::write(&long, &text).unwrap();
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &long, &"--threads", &"1"]));
    assert_clean_failure(&o, &["row 2, column 2", "is not a number"]);
    assert!(stderr(&o).len() < 1000, "{} bytes of message", stderr(&o).len());
}

// ------------------------------------------------------- 5: silent garbage

#[test]
fn f14_stream_snippet_seconds_that_make_segments_infinite_are_refused() {
    let dir = tmpdir("f14");
    let f = features_named(dir.path(), "a", 40);
    let o = run(cmd(&[&"stream", &"--model", &model(), &"--input", &f, &"--snippet-seconds", &"1e308"]));
    assert_usage_error(&o, &["--snippet-seconds", "(0, 3600]"]);
    assert!(!String::from_utf8_lossy(&o.stdout).contains("null"));
}

fn golden_maps(dir: &Path, f: impl Fn(&mut Vec<f32>)) -> [PathBuf; 3] {
    let golden = root("tests/golden/post/realistic_00.npy");
    let (t, d) = (100, 100);
    let mut flat = bmn_edge::npy::read_f32(&golden).unwrap().data;
    f(&mut flat);
    let paths = [dir.join("start.npy"), dir.join("end.npy"), dir.join("confidence.npy")];
    bmn_edge::npy::write_f32(&paths[0], &[t], &flat[..t]).unwrap();
    bmn_edge::npy::write_f32(&paths[1], &[t], &flat[t..2 * t]).unwrap();
    bmn_edge::npy::write_f32(&paths[2], &[2, d, t], &flat[2 * t..]).unwrap();
    paths
}

#[test]
fn f15_postprocess_refuses_maps_outside_0_1() {
    let dir = tmpdir("f15");
    let post =
        |m: &[PathBuf; 3]| run(cmd(&[&"postprocess", &"--start", &m[0], &"--end", &m[1], &"--confidence", &m[2]]));
    let good = golden_maps(dir.path(), |_| {});
    assert!(post(&good).status.success());
    for (at, v, file) in
        [(3usize, 9000.0f32, "start.npy"), (150, -0.5, "end.npy"), (200 + 12345, 1.5, "confidence.npy")]
    {
        let m = golden_maps(dir.path(), |f| f[at] = v);
        assert_clean_failure(&post(&m), &[file, "not a probability in [0, 1]"]);
    }
}

fn results_file(dir: &Path, name: &str, results: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, format!(r#"{{"version": "VERSION 1.3", "results": {results}, "external_data": {{}}}}"#))
        .unwrap();
    p
}

#[test]
fn f16_merge_refuses_reversed_segments_negative_scores_and_a_repeated_video() {
    let dir = tmpdir("f16");
    let ok = results_file(dir.path(), "ok.json", r#"{"b": [{"segment": [1, 2], "score": 0.5}]}"#);
    let cases = [
        (r#"{"a": [{"segment": [1e308, -1e308], "score": 0.5}]}"#, "ends before it starts"),
        (r#"{"a": [{"segment": [1, 2], "score": -7}]}"#, "score -7"),
        (r#"{"a": [], "c": [], "a": [{"segment": [1, 2], "score": 0.5}]}"#, "\"a\" is given twice"),
    ];
    for (i, (results, says)) in cases.iter().enumerate() {
        let bad = results_file(dir.path(), &format!("bad{i}.json"), results);
        assert_clean_failure(&run(cmd(&[&"merge", &ok, &bad])), &[&format!("bad{i}.json"), says]);
    }
    // The good file alone merges.
    let o = run(cmd(&[&"merge", &ok]));
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn f17_resume_refuses_a_log_detect_cannot_have_written() {
    let dir = tmpdir("f17");
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    features_named(&coll, "a", 20);
    features_named(&coll, "b", 20);
    let many: Vec<String> = (0..200_000).map(|_| r#"{"segment":[0.1,0.2],"score":0.5}"#.to_string()).collect();
    let cases = [
        (r#"{"video":"a","results":[{"segment":[0.9,0.1],"score":0.5}]}"#.to_string(), "ends before it starts"),
        (r#"{"video":"a","results":[{"segment":[0.1,0.9],"score":-5}]}"#.to_string(), "score -5"),
        (format!(r#"{{"video":"a","results":[{}]}}"#, many.join(",")), "200000 proposals"),
    ];
    for (line, says) in cases {
        let log = dir.path().join("log.jsonl");
        std::fs::write(&log, format!("{line}\n")).unwrap();
        let out = dir.path().join("r.json");
        let o = run(cmd(&[
            &"detect",
            &"--model",
            &model(),
            &"--features",
            &coll,
            &"--jsonl",
            &log,
            &"--resume",
            &"--threads",
            &"1",
            &"--out",
            &out,
        ]));
        assert_clean_failure(&o, &["log.jsonl:1", says]);
        assert!(!out.exists());
    }
}

#[test]
fn f18_stream_reads_a_npy_header_strictly() {
    let dir = tmpdir("f18");
    // A float32 [300, 32] array whose header has decoy 'descr'/'shape' inside another
    // key's string: read loosely, it is float64 [150, 32].
    let mut header =
        "{'descr': '<f4', 'fortran_order': False, 'x': \"'descr': '<f8', 'shape': (150, 32)\", 'shape': (300, 32), }"
            .to_string();
    while !(10 + header.len() + 1).is_multiple_of(64) {
        header.push(' ');
    }
    header.push('\n');
    let p = dir.path().join("decoy.npy");
    let mut f = std::fs::File::create(&p).unwrap();
    f.write_all(b"\x93NUMPY\x01\x00").unwrap();
    f.write_all(&(header.len() as u16).to_le_bytes()).unwrap();
    f.write_all(header.as_bytes()).unwrap();
    for i in 0..300 * 32 {
        f.write_all(&((i % 17) as f32 * 0.05).to_le_bytes()).unwrap();
    }
    drop(f);
    let o = run(cmd(&[&"stream", &"--model", &model(), &"--input", &p, &"--threads", &"1"]));
    assert_clean_failure(&o, &["decoy.npy", "unknown key 'x'"]);
    // detect's reader refuses it as well.
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &p, &"--threads", &"1"]));
    assert_clean_failure(&o, &["decoy.npy", "unknown key 'x'"]);
}

#[test]
fn f19_a_truncated_jpeg_frame_is_an_error() {
    let dir = tmpdir("f19");
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for i in 1..=4 {
        std::fs::write(frames.join(format!("img_{i:05}.jpg")), image_bytes(40, 30, image::ImageFormat::Jpeg, i))
            .unwrap();
    }
    let out = dir.path().join("f.npy");
    let o = features_from_frames(&frames, &out);
    assert!(o.status.success(), "{}", stderr(&o));
    // Frame 2 is one that is decoded (the centre of the first two-frame snippet).
    let third = frames.join("img_00002.jpg");
    let bytes = std::fs::read(&third).unwrap();
    std::fs::write(&third, &bytes[..bytes.len() / 2]).unwrap();
    let o = features_from_frames(&frames, &dir.path().join("g.npy"));
    assert_clean_failure(&o, &["img_00002.jpg", "truncated JPEG"]);
}

#[test]
fn f20_mask_ratio_beyond_the_window_is_refused() {
    let dir = tmpdir("f20");
    let out = dir.path().join("m.npy");
    let o = run(cmd(&[&"mask", &"--tscale", &"16", &"--dscale", &"16", &"--ratio", &"1e300", &"--out", &out]));
    assert_clean_failure(&o, &["--ratio 1e300", "outside the window"]);
    assert!(!out.exists());
}

#[test]
fn f21_a_std_below_a_thousandth_is_refused() {
    let dir = tmpdir("f21");
    let v = dir.path().join("v.y4m");
    std::fs::write(&v, y4m(8)).unwrap();
    for backbone in [backbone(), root("models/pixel_backbone_int8.onnx")] {
        let o = run(cmd(&[
            &"features",
            &"--video",
            &v,
            &"--backbone",
            &backbone,
            &"--std",
            &"1e-45,1e-45,1e-45",
            &"--threads",
            &"1",
            &"--out",
            &dir.path().join("f.npy"),
        ]));
        assert_clean_failure(&o, &["std", "must be in [0.001"]);
    }
}

// ------------------------------------------------------- 6: output errors

#[test]
fn f22_a_full_or_closed_stdout_is_a_clean_failure() {
    for args in [vec!["inspect"], vec!["inspect", "--json"]] {
        let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
        let mut c = bin();
        c.args(&args).arg(model());
        let o = run_with(c.stdout(full), Duration::from_secs(60));
        assert_clean_failure(&o, &["writing to stdout", "No space left"]);
    }
    let full = std::fs::OpenOptions::new().write(true).open("/dev/full").unwrap();
    let mut c = cmd(&[&"bench", &"--model", &model(), &"--iterations", &"1"]);
    let o = run_with(c.stdout(full), Duration::from_secs(60));
    assert_clean_failure(&o, &["writing to stdout"]);
    // Stdout closed: `sh` runs the command with descriptor 1 closed. (Told apart from a
    // `>/dev/null` through /proc/self/fdinfo: Linux.)
    if !Path::new("/proc/self/fdinfo").exists() {
        return;
    }
    let mut c = Command::new("sh");
    let exe = std::env::var_os("BMN_EDGE_BIN").map_or_else(|| env!("CARGO_BIN_EXE_bmn-edge").into(), PathBuf::from);
    c.arg("-c").arg("exec \"$0\" inspect \"$1\" >&-").arg(exe).arg(model());
    let o = run_with(c.stdout(Stdio::piped()), Duration::from_secs(60));
    assert_clean_failure(&o, &["stdout is closed"]);
}

#[test]
fn f23_a_sidecar_that_cannot_be_written_leaves_no_features() {
    let dir = tmpdir("f23");
    let v = dir.path().join("v.y4m");
    std::fs::write(&v, y4m(40)).unwrap();
    let out = dir.path().join("f.npy");
    let o = run(cmd(&[
        &"features",
        &"--video",
        &v,
        &"--backbone",
        &backbone(),
        &"--snippet-frames",
        &"4",
        &"--threads",
        &"1",
        &"--out",
        &out,
        &"--sidecar",
        &"/dev/full",
    ]));
    assert_clean_failure(&o, &["sidecar", "/dev/full"]);
    assert_eq!(names(dir.path()), ["v.y4m"]);
}

// ------------------------------------------------------- 7: output = input

#[test]
fn f24_an_output_that_is_one_of_the_inputs_is_refused() {
    let dir = tmpdir("f24");
    let v = dir.path().join("v.y4m");
    let video = y4m(40);
    std::fs::write(&v, &video).unwrap();
    let o = run(cmd(&[&"features", &"--video", &v, &"--backbone", &backbone(), &"--out", &v]));
    assert_clean_failure(&o, &["--out", "same file as --video"]);
    assert_eq!(std::fs::read(&v).unwrap(), video);
    // Through another name of the same file (a hard link).
    let f = features_named(dir.path(), "a", 20);
    let before = std::fs::read(&f).unwrap();
    let link = dir.path().join("link.npy");
    std::fs::hard_link(&f, &link).unwrap();
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &f, &"--threads", &"1", &"--out", &link]));
    assert_clean_failure(&o, &["--out", "same file as --features"]);
    assert_eq!(std::fs::read(&f).unwrap(), before);
    // A collection's --jsonl given as --out too.
    let coll = dir.path().join("coll");
    std::fs::create_dir(&coll).unwrap();
    features_named(&coll, "a", 20);
    let log = dir.path().join("log.jsonl");
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &coll, &"--jsonl", &log, &"--out", &log]));
    assert_clean_failure(&o, &["--jsonl", "same file as --out"]);
    // A merge whose --out is one of its inputs (found when writing: nothing replaced).
    let r = results_file(dir.path(), "r.json", r#"{"b": [{"segment": [1, 2], "score": 0.5}]}"#);
    let before = std::fs::read(&r).unwrap();
    assert_clean_failure(&run(cmd(&[&"merge", &r, &"--out", &r])), &["same file as the input"]);
    assert_eq!(std::fs::read(&r).unwrap(), before);
}

// ------------------------------------------------------- 8: misleading messages

/// The tiny model with `f` applied to its graph.
fn edited_model(dir: &Path, name: &str, f: impl Fn(&mut pb::GraphProto)) -> PathBuf {
    let mut m = pb::ModelProto::decode(std::fs::read(model()).unwrap().as_slice()).unwrap();
    f(m.graph.as_mut().unwrap());
    let p = dir.join(name);
    std::fs::write(&p, m.encode_to_vec()).unwrap();
    p
}

#[test]
fn f25_messages_say_what_is_wrong() {
    let dir = tmpdir("f25");
    let f = features_named(dir.path(), "a", 40);
    // A negative score floor.
    let o = run(cmd(&[&"stream", &"--model", &model(), &"--input", &f, &"--min-score=-0.5"]));
    assert_usage_error(&o, &["--min-score", "not in [0, 1]"]);
    assert!(!stderr(&o).contains("NaN"), "{}", stderr(&o));
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &f, &"--merge", &"stream", &"--min-score=-0.5"]));
    assert_usage_error(&o, &["--min-score", "not in [0, 1]"]);
    // A frame rate too small to keep.
    let v = dir.path().join("v.y4m");
    std::fs::write(&v, y4m(8)).unwrap();
    let o = run(cmd(&[
        &"features",
        &"--video",
        &v,
        &"--fps",
        &"0.0000001",
        &"--backbone",
        &backbone(),
        &"--threads",
        &"1",
        &"--out",
        &dir.path().join("x.npy"),
    ]));
    assert_clean_failure(&o, &["--fps", "not in [0.001, 10^6]"]);
    assert!(!stderr(&o).contains("0:1000"), "{}", stderr(&o));
    // A y4m header ending in CRLF.
    let mut crlf = y4m(8);
    let nl = crlf.iter().position(|&b| b == b'\n').unwrap();
    crlf.insert(nl, b'\r');
    std::fs::write(&v, &crlf).unwrap();
    let o = run(cmd(&[
        &"features",
        &"--video",
        &v,
        &"--backbone",
        &backbone(),
        &"--threads",
        &"1",
        &"--out",
        &dir.path().join("x.npy"),
    ]));
    assert_clean_failure(&o, &["CRLF"]);
    assert!(!stderr(&o).contains("chroma"), "{}", stderr(&o));
    // A UTF-8 byte-order mark before JSON is not an error.
    let r = dir.path().join("bom.json");
    std::fs::write(&r, b"\xEF\xBB\xBF{\"version\": \"VERSION 1.3\", \"results\": {}, \"external_data\": {}}").unwrap();
    let o = run(cmd(&[&"merge", &r]));
    assert!(o.status.success(), "{}", stderr(&o));
    // A missing output folder is named, not a temporary file in it.
    let o = run(cmd(&[&"merge", &r, &"--out", &dir.path().join("no/such/m.json")]));
    assert_clean_failure(&o, &["no/such does not exist"]);
    assert!(!stderr(&o).contains(".m.json."), "{}", stderr(&o));
    // inspect refuses what detect refuses: a self-loop, an initializer in an external file.
    let looped = edited_model(dir.path(), "loop.onnx", |g| {
        let out = g.node[1].output[0].clone();
        g.node[1].input[0] = out;
    });
    let o = run(cmd(&[&"inspect", &looped]));
    assert_clean_failure(&o, &["cycle"]);
    let external = edited_model(dir.path(), "external.onnx", |g| {
        let t = &mut g.initializer[0];
        t.data_location = Some(1);
        t.external_data = vec![pb::StringStringEntryProto { key: "location".into(), value: "w.bin".into() }];
        t.raw_data.clear();
        t.float_data.clear();
    });
    let o = run(cmd(&[&"inspect", &external]));
    assert_clean_failure(&o, &["external file"]);
    for m in [&looped, &external] {
        let o = run(cmd(&[&"detect", &"--model", m, &"--features", &f, &"--threads", &"1"]));
        assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
    }
}

// ------------------------------------------------------- 9: temporary files, used folders

#[test]
fn f26_a_mask_killed_by_a_signal_leaves_no_temporary_file() {
    for signal in [libc::SIGTERM, libc::SIGINT] {
        let dir = tmpdir("f26");
        let out = dir.path().join("m.npy");
        // The paper configuration: 128 MB, several seconds to write in a debug build.
        let mut child = bin()
            .args(["mask", "--out"])
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Wait for the temporary file to appear, then signal.
        let t0 = Instant::now();
        while !names(dir.path()).iter().any(|n| n.ends_with(".tmp")) {
            assert!(t0.elapsed() < Duration::from_secs(60), "no temporary file appeared");
            if child.try_wait().unwrap().is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        // SAFETY: kill with a child's pid and a signal number.
        unsafe { libc::kill(child.id() as i32, signal) };
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        if status.signal().is_none() {
            // It finished before the signal came: nothing to check this time.
            assert!(status.success());
            continue;
        }
        assert_eq!(status.signal(), Some(signal));
        let left: Vec<String> = names(dir.path()).into_iter().filter(|n| n.ends_with(".tmp")).collect();
        assert!(left.is_empty(), "left behind: {left:?}");
    }
}

#[test]
fn f27_dump_maps_into_a_used_folder_is_refused() {
    let dir = tmpdir("f27");
    let f = features_named(dir.path(), "a", 40);
    let maps = dir.path().join("maps");
    let o = run(cmd(&[&"detect", &"--model", &model(), &"--features", &f, &"--threads", &"1", &"--dump-maps", &maps]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(names(&maps).iter().any(|n| n.starts_with("window_")), "{:?}", names(&maps));
    let before = names(&maps);
    let short = features_named(dir.path(), "b", 10);
    let o =
        run(cmd(&[&"detect", &"--model", &model(), &"--features", &short, &"--threads", &"1", &"--dump-maps", &maps]));
    assert_clean_failure(&o, &["--dump-maps", "already holds maps of an earlier run", "window_0000"]);
    assert_eq!(names(&maps), before);
}

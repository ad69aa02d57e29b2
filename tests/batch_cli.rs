//! `bmn-edge detect` on collections (a directory or a manifest of feature files) and
//! `bmn-edge merge`, through the built CLI on the tiny fixture model (T = D = 16, C = 32).
//!
//! The expectation for every video is independent of the batch code: the single-file
//! `detect` of the same feature file (with `--duration`/`--frames` where the batch reads
//! `--video-info`). Both run the same engine on the same f32 input and print the same f64
//! values with round-trip precision, so equality is exact — any difference means the batch
//! path changed a video's arithmetic (state carried between videos, another duration or
//! epsilon, a lossy log).
#![cfg(feature = "engine")]

use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const C: usize = 32;

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx")
}

fn detect() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_bmn-edge"));
    cmd.arg("detect").arg("--model").arg(model()).args(["--threads", "1"]);
    cmd
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Deterministic features in [0, 1): a 64-bit LCG (Knuth's MMIX constants) per seed.
fn features(snippets: usize, seed: u64) -> Vec<f32> {
    let mut s = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
    (0..snippets * C)
        .map(|_| {
            s = s.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            (s >> 40) as f32 / (1u64 << 24) as f32
        })
        .collect()
}

fn write_npy(path: &Path, snippets: usize, seed: u64) {
    bmn_edge::npy::write_f32(path, &[snippets, C], &features(snippets, seed)).unwrap();
}

fn write_csv(path: &Path, snippets: usize, seed: u64) {
    let data = features(snippets, seed);
    let mut text = (0..C).map(|c| format!("f{c}")).collect::<Vec<_>>().join(",") + "\n";
    for row in data.chunks(C) {
        // `{}` of an f32 is its shortest round-trip form: the csv reader gets the same f32.
        text += &(row.iter().map(|v| format!("{v}")).collect::<Vec<_>>().join(",") + "\n");
    }
    std::fs::write(path, text).unwrap();
}

/// A collection: ids with their lengths (one window up to several sliding windows).
const VIDEOS: [(&str, usize); 5] =
    [("v_alpha", 12), ("v_bravo", 16), ("v_charlie", 29), ("v_delta", 40), ("v_echo", 7)];

/// Writes `VIDEOS` into `dir` (`v_charlie` as a BSN csv, the others as .npy).
fn write_collection(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (i, (id, l)) in VIDEOS.iter().enumerate() {
        if *id == "v_charlie" {
            write_csv(&dir.join(format!("{id}.csv")), *l, i as u64);
        } else {
            write_npy(&dir.join(format!("{id}.npy")), *l, i as u64);
        }
    }
}

fn path_of(dir: &Path, id: &str) -> PathBuf {
    let npy = dir.join(format!("{id}.npy"));
    if npy.exists() {
        npy
    } else {
        dir.join(format!("{id}.csv"))
    }
}

/// Duration and frame count per video (frames not a multiple of 16, so that mmaction2's
/// whole-snippet correction matters).
fn info(id: &str) -> (f64, u64) {
    let l = VIDEOS.iter().find(|v| v.0 == id).unwrap().1 as u64;
    (l as f64 * 0.53 + 0.25, l * 16 + 7)
}

/// The single-file `detect` of `path`: the video's proposal list.
fn single(path: &Path, seconds: Option<(f64, u64)>, work: &Path) -> Value {
    let out = work.join("single.json");
    let mut cmd = detect();
    cmd.arg("--features").arg(path).arg("--out").arg(&out);
    if let Some((d, n)) = seconds {
        cmd.args(["--duration", &d.to_string(), "--frames", &n.to_string()]);
    }
    let o = cmd.output().unwrap();
    assert!(o.status.success(), "single detect of {}: {}", path.display(), stderr(&o));
    let file = read_json(&out);
    let stem = path.file_stem().unwrap().to_str().unwrap();
    file["results"][stem].clone()
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn results(path: &Path) -> BTreeMap<String, Value> {
    let v = read_json(path);
    assert_eq!(v["version"], "VERSION 1.3");
    v["results"].as_object().unwrap().iter().map(|(k, v)| (k.clone(), v.clone())).collect()
}

/// The `--jsonl` log's lines as (video, results).
fn log_lines(path: &Path) -> Vec<(String, Value)> {
    let text = std::fs::read_to_string(path).unwrap();
    assert!(text.is_empty() || text.ends_with('\n'), "the log ends with a torn line");
    text.lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (v["video"].as_str().unwrap().to_string(), v["results"].clone())
        })
        .collect()
}

#[test]
fn every_video_equals_its_single_file_run_in_seconds_and_normalised_time() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    write_collection(&dir);
    // ActivityNet style: `database`, with keys the batch must ignore.
    let db: serde_json::Map<String, Value> = VIDEOS
        .iter()
        .map(|(id, _)| {
            let (d, n) = info(id);
            (id.to_string(), json!({"duration_second": d, "duration_frame": n, "feature_frame": n / 16 * 16, "subset": "validation", "annotations": []}))
        })
        .collect();
    let info_file = tmp.path().join("info.json");
    std::fs::write(&info_file, serde_json::to_string(&json!({"version": "1.3", "database": db})).unwrap()).unwrap();

    let (out, log) = (tmp.path().join("all.json"), tmp.path().join("all.jsonl"));
    let o = detect()
        .arg("--features")
        .arg(&dir)
        .arg("--video-info")
        .arg(&info_file)
        .arg("--jsonl")
        .arg(&log)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // stderr is a pipe here: no progress bar, no escape codes.
    assert!(!o.stderr.contains(&0x1b), "escape codes on a non-terminal stderr: {:?}", stderr(&o));
    let got = results(&out);
    assert_eq!(got.len(), VIDEOS.len());
    for (id, _) in VIDEOS {
        let want = single(&path_of(&dir, id), Some(info(id)), tmp.path());
        assert!(!want.as_array().unwrap().is_empty(), "{id}: no proposals to compare");
        assert_eq!(got[id], want, "{id}");
    }
    // The log: one line per video, in collection order (sorted file names), same results.
    let lines = log_lines(&log);
    assert_eq!(lines.iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), VIDEOS.map(|v| v.0));
    for (id, r) in &lines {
        assert_eq!(&got[id], r, "{id}: log and results file differ");
    }

    // A manifest: ids of its own, relative paths, comments; no --video-info: normalised time.
    let manifest = tmp.path().join("list.txt");
    std::fs::write(&manifest, "# two of the videos\nfirst\tfeatures/v_delta.npy\n\nfeatures/v_charlie.csv\n").unwrap();
    let out2 = tmp.path().join("manifest.json");
    let o = detect().arg("--features").arg(&manifest).arg("--out").arg(&out2).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let got = results(&out2);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["first", "v_charlie"]);
    assert_eq!(got["first"], single(&dir.join("v_delta.npy"), None, tmp.path()));
    assert_eq!(got["v_charlie"], single(&dir.join("v_charlie.csv"), None, tmp.path()));
    let max_end = got.values().flat_map(|l| l.as_array().unwrap()).map(|p| p["segment"][1].as_f64().unwrap());
    assert!(max_end.fold(0.0, f64::max) <= 1.0, "without --video-info segments are normalised time");
}

#[test]
fn corrupt_videos_are_reported_and_the_others_kept() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    std::fs::create_dir_all(&dir).unwrap();
    write_npy(&dir.join("a_good.npy"), 20, 1);
    std::fs::write(dir.join("b_garbage.npy"), b"\x93NUMPY this is not an array").unwrap();
    bmn_edge::npy::write_f32(&dir.join("c_width.npy"), &[10, C + 1], &vec![0.5; 10 * (C + 1)]).unwrap();
    let mut nan = features(10, 3);
    nan[5 * C + 7] = f32::NAN;
    bmn_edge::npy::write_f32(&dir.join("d_nan.npy"), &[10, C], &nan).unwrap();
    write_npy(&dir.join("e_good.npy"), 33, 2);
    std::fs::write(dir.join("ignored.txt"), "not a feature file").unwrap();

    let (out, log) = (tmp.path().join("all.json"), tmp.path().join("all.jsonl"));
    let o = detect().arg("--features").arg(&dir).arg("--jsonl").arg(&log).arg("--out").arg(&out).output().unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "a failed video must fail the run: {err}");
    let got = results(&out);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["a_good", "e_good"]);
    for id in ["a_good", "e_good"] {
        assert_eq!(got[id], single(&dir.join(format!("{id}.npy")), None, tmp.path()), "{id}");
    }
    assert_eq!(log_lines(&log).iter().map(|l| l.0.as_str()).collect::<Vec<_>>(), ["a_good", "e_good"]);
    // The summary after the run names each failed video and why.
    let summary = &err[err.find("failed videos:").unwrap_or_else(|| panic!("no summary: {err}"))..];
    assert!(summary.contains("b_garbage") && summary.contains("b_garbage.npy"), "{summary}");
    assert!(summary.contains("c_width") && summary.contains("C = 33"), "{summary}");
    assert!(summary.contains("d_nan") && summary.contains("NaN"), "{summary}");
    assert!(!summary.contains("a_good") && !summary.contains("e_good"), "{summary}");
    assert!(err.contains("3 of 5 videos failed"), "{err}");
}

#[test]
fn an_interrupted_run_resumes_without_redoing_finished_videos() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    write_collection(&dir);
    let (full, log) = (tmp.path().join("full.json"), tmp.path().join("run.jsonl"));
    let o = detect().arg("--features").arg(&dir).arg("--jsonl").arg(&log).arg("--out").arg(&full).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let text = std::fs::read_to_string(&log).unwrap();
    let lines: Vec<&str> = text.split_inclusive('\n').collect();
    assert_eq!(lines.len(), VIDEOS.len());

    // Killed while writing line k + 1: k whole lines and half of the next.
    let k = 2;
    let torn = &lines[k][..lines[k].len() / 2];
    std::fs::write(&log, lines[..k].concat() + torn).unwrap();
    // A finished video's file is now corrupt: resuming must not read it again.
    let finished: Value = serde_json::from_str(lines[0]).unwrap();
    let done = finished["video"].as_str().unwrap();
    std::fs::write(path_of(&dir, done), b"\x93NUMPY overwritten").unwrap();
    let full = results(&full);
    let resume = |features: &Path| {
        let out = tmp.path().join("resumed.json");
        let o = detect()
            .arg("--features")
            .arg(features)
            .arg("--jsonl")
            .arg(&log)
            .arg("--resume")
            .arg("--out")
            .arg(&out)
            .output()
            .unwrap();
        let err = stderr(&o);
        assert!(o.status.success(), "a finished video was read again, or the torn line was not redone: {err}");
        assert!(err.contains(&format!("{k} from the log")), "{err}");
        assert!(results(&out) == full, "the resumed run's results differ from the uninterrupted run's");
        let logged: Vec<String> = log_lines(&log).into_iter().map(|l| l.0).collect();
        assert_eq!(logged, VIDEOS.map(|v| v.0.to_string()), "each video logged once; the torn line cut, not glued to");
    };
    resume(&dir);

    // The same through a manifest that lists a finished video's file that is gone.
    let manifest = tmp.path().join("list.txt");
    let name = |id: &str| path_of(&dir, id).file_name().unwrap().to_str().unwrap().to_string();
    std::fs::write(&manifest, VIDEOS.iter().map(|(id, _)| format!("features/{}\n", name(id))).collect::<String>())
        .unwrap();
    std::fs::remove_file(path_of(&dir, done)).unwrap();
    std::fs::write(&log, lines[..k].concat() + torn).unwrap();
    resume(&manifest);
}

/// 64-bit FNV-1a as documented for `--shard` (offset basis 0xcbf29ce484222325, prime
/// 0x100000001b3), written here from its definition.
fn fnv1a64(s: &str) -> u64 {
    let mut h: u64 = 0xcbf29ce484222325;
    for b in s.bytes() {
        h ^= b as u64;
        h = h.wrapping_mul(0x100000001b3);
    }
    h
}

#[test]
fn shards_partition_the_collection_and_merge_to_the_unsharded_run() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    std::fs::create_dir_all(&dir).unwrap();
    let ids: Vec<String> = (0..9).map(|i| format!("clip_{i}")).collect();
    for (i, id) in ids.iter().enumerate() {
        write_npy(&dir.join(format!("{id}.npy")), 9 + i, 10 + i as u64);
    }
    let all = tmp.path().join("all.json");
    let o = detect().arg("--features").arg(&dir).arg("--out").arg(&all).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    let mut parts = Vec::new();
    let mut seen = BTreeMap::new();
    for i in 0..3u64 {
        let part = tmp.path().join(format!("shard{i}.json"));
        let o = detect()
            .arg("--features")
            .arg(&dir)
            .args(["--shard", &format!("{i}/3")])
            .arg("--out")
            .arg(&part)
            .output()
            .unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
        let got = results(&part);
        let want: Vec<&String> = ids.iter().filter(|id| fnv1a64(id) % 3 == i).collect();
        assert_eq!(got.keys().collect::<Vec<_>>(), want, "shard {i}/3 is not the documented hash's");
        for id in got.keys() {
            *seen.entry(id.clone()).or_insert(0) += 1;
        }
        parts.push(part);
    }
    assert_eq!(seen.keys().collect::<Vec<_>>(), ids.iter().collect::<Vec<_>>());
    assert!(seen.values().all(|&n| n == 1), "every video in exactly one shard: {seen:?}");
    assert!((0..3).all(|i| ids.iter().any(|id| fnv1a64(id) % 3 == i)), "the ids leave a shard empty: pick others");

    let merged = tmp.path().join("merged.json");
    let o = Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
        .arg("merge")
        .args(&parts)
        .arg("--out")
        .arg(&merged)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(read_json(&merged), read_json(&all));

    // A video in two inputs is an error that names it.
    let o = Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
        .arg("merge")
        .arg(&parts[0])
        .arg(&all)
        .arg("--out")
        .arg(tmp.path().join("dup.json"))
        .output()
        .unwrap();
    let err = stderr(&o);
    assert!(!o.status.success(), "{err}");
    let first = results(&parts[0]).into_keys().next().unwrap();
    assert!(err.contains(&format!("{first:?}")), "{err}");
    assert!(!tmp.path().join("dup.json").exists());
}

#[test]
fn collection_options_and_inputs_are_checked() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    write_collection(&dir);
    let run = |args: &[&std::ffi::OsStr]| {
        let o = detect().args(args).output().unwrap();
        assert!(!o.status.success());
        stderr(&o)
    };
    let d = dir.as_os_str();
    let one = dir.join("v_alpha.npy");
    let e = run(&["--features".as_ref(), one.as_os_str(), "--shard".as_ref(), "0/2".as_ref()]);
    assert!(e.contains("--shard") && e.contains("one feature file"), "{e}");
    let e = run(&["--features".as_ref(), d, "--duration".as_ref(), "5".as_ref()]);
    assert!(e.contains("--duration") && e.contains("--video-info"), "{e}");
    let e = run(&["--features".as_ref(), d, "--shard".as_ref(), "3/3".as_ref()]);
    assert!(e.contains("shard index 3"), "{e}");
    let e = run(&["--features".as_ref(), d, "--resume".as_ref()]);
    assert!(e.contains("--jsonl"), "{e}");
    // Two files with one stem: refused before anything runs.
    write_npy(&dir.join("v_charlie.npy"), 5, 0);
    let e = run(&["--features".as_ref(), d]);
    assert!(e.contains("\"v_charlie\"") && e.contains("twice"), "{e}");
    std::fs::remove_file(dir.join("v_charlie.npy")).unwrap();
    // A video --video-info does not list fails (named); the others are written.
    let info = tmp.path().join("info.json");
    std::fs::write(&info, r#"{"v_alpha": {"duration_second": 6.0, "frames": 199}}"#).unwrap();
    let out = tmp.path().join("out.json");
    let e =
        run(&["--features".as_ref(), d, "--video-info".as_ref(), info.as_os_str(), "--out".as_ref(), out.as_os_str()]);
    assert!(e.contains("v_bravo") && e.contains("is not listed") && e.contains("4 of 5"), "{e}");
    let got = results(&out);
    assert_eq!(got.keys().collect::<Vec<_>>(), ["v_alpha"]);
    assert_eq!(got["v_alpha"], single(&one, Some((6.0, 199)), tmp.path()));
}

#[test]
fn a_killed_run_resumes_to_the_uninterrupted_results() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("features");
    std::fs::create_dir_all(&dir).unwrap();
    for i in 0..8u64 {
        write_npy(&dir.join(format!("long_{i}.npy")), 64, 100 + i);
    }
    let full = tmp.path().join("full.json");
    let o = detect().arg("--features").arg(&dir).arg("--out").arg(&full).output().unwrap();
    assert!(o.status.success(), "{}", stderr(&o));

    // Killed (SIGKILL) once the first video is logged: wherever the kill lands — between
    // videos, mid-video, mid-line, or after the end — resuming gives the same results.
    let log = tmp.path().join("run.jsonl");
    let mut child = detect()
        .arg("--features")
        .arg(&dir)
        .arg("--jsonl")
        .arg(&log)
        .arg("--out")
        .arg(tmp.path().join("killed.json"))
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let start = std::time::Instant::now();
    while std::fs::read(&log).map_or(true, |b| !b.contains(&b'\n')) && start.elapsed().as_secs() < 120 {
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let resumed = tmp.path().join("resumed.json");
    let o = detect()
        .arg("--features")
        .arg(&dir)
        .arg("--jsonl")
        .arg(&log)
        .arg("--resume")
        .arg("--out")
        .arg(&resumed)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(results(&resumed) == results(&full), "the resumed run's results differ from the uninterrupted run's");
    assert_eq!(log_lines(&log).len(), 8, "each video logged once");
}

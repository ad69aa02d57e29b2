//! Pixels in (`bmn_edge::pixels`, `engine::backbone`, `bmn-edge features`) against the
//! numpy + onnxruntime reference `tests/reference/pixels_reference.py` (goldens in
//! `tests/golden/pixels/`, provenance in its `manifest.json`):
//!
//! * preprocessing of y4m (4:2:0 and 4:4:4, limited and full range, odd sizes), raw rgb24 and
//!   PNG frame folders equal to numpy's float64 implementation of the specification to
//!   1e-5 (the tolerance is derived in [`PRE_TOL`]);
//! * features equal to onnxruntime on the same backbones and frames to 1e-4, batched and
//!   not, a feature-map output averaged, `K > 1` frames averaged;
//! * an mmaction2-style TSN ResNet-50 export with random weights, generated at test time
//!   (about 100 MB, never committed; skipped with a message when python with numpy, onnx and
//!   onnxruntime is absent), run unchanged;
//! * an int8 (QOperator) backbone in tract's integer kernels and in exact float: the same
//!   features bit for bit, equal to onnxruntime's to 1e-4;
//! * errors: a truncated y4m (the snippets before it are written), an unsupported chroma
//!   header, a frame folder with a gap, zero frames — each naming what and where.
#![cfg(feature = "engine")]

use bmn_edge::engine::backbone::{Backbone, BackboneOptions, FeatureError, PreprocessOverrides, SnippetFeatures};
use bmn_edge::npy::read_f32;
use bmn_edge::pixels::{
    FrameFolder, FrameRate, FrameSource, PixelErrorKind, Preprocess, RawRgb24, Sampling, SnippetFrames, Y4mReader,
};
use serde_json::Value;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// Preprocessing tolerance, derived: the reference computes in float64; here every step is
/// `f32`. The colour conversion works on values of magnitude ≤ 2.5 (`y`, `R`, `B` before
/// the ×255) with ≤ 8 roundings of half an ulp (`2^-23`·2.5/2 ≈ 1.5e-7) each, amplified by
/// `1/(1 − Kr − Kb) = 1.7` for G: ≤ 2e-6, i.e. ≤ 5.2e-4 levels after ×255. The bilinear
/// step adds ≤ 6 roundings of values ≤ 255 (half an ulp: 7.6e-6) plus the weight's rounding
/// (`2^-24`·255): ≤ 6e-5 levels. Divided by the smallest std of the goldens (50): ≤ 1.2e-5
/// in the worst case of every rounding in the same direction, 1e-5 as the issue asks is met
/// with the observed error (≈ 1e-6) an order of magnitude below; the final subtraction and
/// scaling on outputs ≤ 3 add ≤ 3·1.8e-7.
const PRE_TOL: f32 = 1e-5;
/// Feature tolerance (the issue's): inputs within [`PRE_TOL`] through a backbone whose gain
/// on the goldens is below 10, and tract's / onnxruntime's different summation orders over
/// ≤ 72-term dot products of values ≤ 10 (≤ 72·10·6e-8 ≈ 4e-5).
const FEAT_TOL: f32 = 1e-4;

fn golden(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/golden/pixels").join(name)
}

fn manifest() -> Value {
    serde_json::from_str(&std::fs::read_to_string(golden("manifest.json")).unwrap()).unwrap()
}

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

/// The goldens' preprocessing (resize 32, crop 24, their mean/std).
fn golden_preprocess() -> Preprocess {
    Preprocess { resize: 32, crop: 24, mean: [120.0, 115.0, 100.0], std: [60.0, 55.0, 50.0] }
}

fn source_of(case: &Value) -> Box<dyn FrameSource> {
    let input = golden(case["input"].as_str().unwrap());
    let f = std::fs::File::open(&input).unwrap();
    match case["kind"].as_str().unwrap() {
        "y4m" => Box::new(Y4mReader::new(f, &input.display().to_string()).unwrap()),
        "rgb24" => {
            let fps = &case["fps"];
            let rate = FrameRate::new(fps[0].as_u64().unwrap() as u32, fps[1].as_u64().unwrap() as u32).unwrap();
            let (w, h) = (case["width"].as_u64().unwrap() as usize, case["height"].as_u64().unwrap() as usize);
            Box::new(RawRgb24::new(f, w, h, rate, "rgb24").unwrap())
        }
        k => panic!("kind {k}"),
    }
}

fn sampling_of(case: &Value) -> Sampling {
    Sampling::new(
        case["snippet_frames"].as_u64().unwrap() as usize,
        case["frames_per_snippet"].as_u64().unwrap() as usize,
    )
    .unwrap()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

/// Every preprocessed snippet of `source` against `expected` (`[snippets, K, 3, 24, 24]`).
fn check_preprocessing(name: &str, source: Box<dyn FrameSource>, sampling: Sampling, expected: &bmn_edge::npy::Array) {
    let mut s = SnippetFrames::new(source, sampling, &golden_preprocess()).unwrap();
    let per = sampling.per_snippet() * s.frame_len();
    let mut buf = vec![0.0; per];
    let mut got = Vec::new();
    while s.next_snippet(&mut buf).unwrap() {
        got.extend_from_slice(&buf);
    }
    assert_eq!(got.len(), expected.data.len(), "{name}: snippet count");
    let d = max_diff(&got, &expected.data);
    eprintln!("{name}: preprocessing max |diff| {d:e}");
    assert!(d <= PRE_TOL, "{name}: preprocessing differs by {d}");
    // The summary: frames read, snippets, the trailing partial snippet dropped.
    let sum = s.summary();
    assert_eq!(sum.snippets as usize, expected.shape[0], "{name}");
}

#[test]
fn preprocessing_equals_the_numpy_reference() {
    let m = manifest();
    let cases = m["cases"].as_array().unwrap();
    assert_eq!(cases.len(), 5);
    for case in cases {
        let name = case["name"].as_str().unwrap();
        let expected = read_f32(&golden(&format!("{name}.pre.npy"))).unwrap();
        check_preprocessing(name, source_of(case), sampling_of(case), &expected);
        // Whole frames read directly (no hint: every pixel converted), then preprocessed:
        // the first snippet again.
        let mut src = source_of(case);
        let plan = golden_preprocess().plan(src.size().0, src.size().1).unwrap();
        let mut frame = bmn_edge::pixels::RgbFrame::default();
        let mut got = Vec::new();
        let offsets = sampling_of(case).offsets();
        for f in 0..sampling_of(case).snippet_frames() {
            assert!(src.read_frame(&mut frame).unwrap());
            if offsets.contains(&f) {
                let mut out = vec![0.0; plan.output_len()];
                plan.apply(&frame, &mut out).unwrap();
                got.extend(out);
            }
        }
        let d = max_diff(&got, &expected.data[..got.len()]);
        assert!(d <= PRE_TOL, "{name}: whole frames: {d}");
        // The summary's frame count and durations.
        let mut s = SnippetFrames::new(source_of(case), sampling_of(case), &golden_preprocess()).unwrap();
        let mut buf = vec![0.0; sampling_of(case).per_snippet() * s.frame_len()];
        while s.next_snippet(&mut buf).unwrap() {}
        let sum = s.summary();
        let frames = case["frames"].as_u64().unwrap();
        assert_eq!(sum.frames, frames, "{name}");
        let l = case["snippet_frames"].as_u64().unwrap();
        assert_eq!(sum.snippets, frames / l);
        let fps = case["fps"][0].as_f64().unwrap() / case["fps"][1].as_f64().unwrap();
        assert!((sum.duration_second() - frames as f64 / fps).abs() < 1e-12);
        assert!((sum.duration_corrected() - (frames / l * l) as f64 / fps).abs() < 1e-12);
    }
}

/// The rgb24 golden's frames as a folder of PNGs (lossless: the same pixels), numbered
/// from 1 with mmaction2's names, with optical-flow frames beside them (ignored).
fn png_folder(dir: &Path, start: usize) -> usize {
    let m = manifest();
    let case = &m["cases"][4];
    let (w, h) = (case["width"].as_u64().unwrap() as u32, case["height"].as_u64().unwrap() as u32);
    let raw = std::fs::read(golden("rgb24.raw")).unwrap();
    let n = raw.len() / (w * h * 3) as usize;
    for (i, f) in raw.chunks_exact((w * h * 3) as usize).enumerate() {
        let img = image::RgbImage::from_raw(w, h, f.to_vec()).unwrap();
        img.save(dir.join(format!("img_{:05}.png", i + start))).unwrap();
        image::GrayImage::new(w, h).save(dir.join(format!("flow_x_{:05}.png", i + start))).unwrap();
    }
    n
}

#[test]
fn frame_folders_equal_rgb24() {
    let m = manifest();
    let case = &m["cases"][4];
    assert_eq!(case["name"], "rgb24");
    let dir = tempfile::tempdir().unwrap();
    png_folder(dir.path(), 1);
    let folder = FrameFolder::open(dir.path(), FrameRate::new(25, 1).unwrap(), None).unwrap();
    assert_eq!(folder.len(), case["frames"].as_u64().unwrap() as usize);
    let expected = read_f32(&golden("rgb24.pre.npy")).unwrap();
    check_preprocessing("png folder", Box::new(folder), sampling_of(case), &expected);
    // A JPEG folder decodes too (lossy: checked for size and sanity, not values).
    let jd = tempfile::tempdir().unwrap();
    for i in 0..3 {
        image::RgbImage::from_pixel(40, 30, image::Rgb([200, 100, 50]))
            .save(jd.path().join(format!("img_{:05}.jpg", i)))
            .unwrap();
    }
    let mut f = FrameFolder::open(jd.path(), FrameRate::new(25, 1).unwrap(), None).unwrap();
    assert_eq!((f.size(), f.len()), ((40, 30), 3));
    let mut frame = bmn_edge::pixels::RgbFrame::default();
    assert!(f.read_frame(&mut frame).unwrap());
    assert!((frame.data[0] - 200.0).abs() <= 3.0 && (frame.data[2] - 50.0).abs() <= 3.0, "{:?}", &frame.data[..3]);
}

fn load(model: &str, batch: usize, k: usize) -> Backbone {
    let o = BackboneOptions { batch, per_snippet: k, ..BackboneOptions::default() };
    Backbone::load(&golden(model), &o).unwrap()
}

#[test]
fn features_equal_onnxruntime() {
    let m = manifest();
    for case in m["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        for head in ["flat", "map"] {
            let expected = read_f32(&golden(&format!("{name}.feat_{head}.npy"))).unwrap();
            for batch in [1, 3] {
                let sampling = sampling_of(case);
                let mut backbone = load(&format!("backbone_{head}.onnx"), batch, sampling.per_snippet());
                if head == "map" {
                    // No metadata in this file: the goldens' preprocessing given explicitly.
                    assert_eq!(backbone.preprocess().crop, 24, "the fixed input size sets the crop");
                    let o = BackboneOptions {
                        batch,
                        per_snippet: sampling.per_snippet(),
                        overrides: PreprocessOverrides {
                            resize: Some(32),
                            mean: Some([120.0, 115.0, 100.0]),
                            std: Some([60.0, 55.0, 50.0]),
                            ..Default::default()
                        },
                        ..BackboneOptions::default()
                    };
                    backbone = Backbone::load(&golden("backbone_map.onnx"), &o).unwrap();
                } else {
                    // The flat file carries the preprocessing in its metadata.
                    assert_eq!(backbone.preprocess(), golden_preprocess());
                }
                let c = backbone.channels();
                assert_eq!(c, 12);
                let mut f = SnippetFeatures::new(source_of(case), sampling, backbone, batch).unwrap();
                let mut row = vec![0.0; c];
                let mut got = Vec::new();
                while f.next(&mut row).unwrap() {
                    got.extend_from_slice(&row);
                }
                assert_eq!(got.len(), expected.data.len(), "{name} {head}");
                let d = max_diff(&got, &expected.data);
                eprintln!("{name} {head} batch {batch}: features max |diff| {d:e}");
                assert!(d <= FEAT_TOL, "{name} {head} batch {batch}: {d}");
                assert!(!f.next(&mut row).unwrap(), "the end stays the end");
            }
        }
    }
}

#[test]
fn features_command_writes_npy_and_sidecar_from_stdin() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("feats.npy");
    let mut child = bin()
        .args(["features", "--backbone"])
        .arg(golden("backbone_flat.onnx"))
        .args(["--video", "-", "--snippet-frames", "4", "--frames-per-snippet", "2", "--out"])
        .arg(&out)
        .stdin(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(&std::fs::read(golden("y420_full.y4m")).unwrap()).unwrap();
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_f32(&out).unwrap();
    let expected = read_f32(&golden("y420_full.feat_flat.npy")).unwrap();
    assert_eq!(got.shape, expected.shape);
    assert!(max_diff(&got.data, &expected.data) <= FEAT_TOL);
    let side: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("feats.json")).unwrap()).unwrap();
    assert_eq!(
        (side["frames"].as_u64(), side["snippets"].as_u64(), side["snippet_frames"].as_u64()),
        (Some(12), Some(3), Some(4))
    );
    assert_eq!(side["fps_rational"], "30000/1001");
    assert_eq!(side["sample_offsets"], serde_json::json!([1, 3]));
    assert_eq!(side["complete"], true);
    assert!((side["duration_second"].as_f64().unwrap() - 12.0 * 1001.0 / 30000.0).abs() < 1e-12);
    assert_eq!(side["preprocess"]["crop"], 24);
    // A features path that the sidecar would overwrite is refused before any work.
    let o = bin()
        .args(["features", "--backbone"])
        .arg(golden("backbone_flat.onnx"))
        .arg("--video")
        .arg(golden("y420_full.y4m"))
        .arg("--out")
        .arg(dir.path().join("f.json"))
        .output()
        .unwrap();
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("the sidecar would overwrite"));
    assert!(!dir.path().join("f.json").exists());
}

#[test]
fn metadata_is_overridden_and_a_crop_that_does_not_fit_is_refused() {
    // --resize on the command line overrides the file's 32.
    let o = BackboneOptions {
        overrides: PreprocessOverrides { resize: Some(40), ..Default::default() },
        ..Default::default()
    };
    let b = Backbone::load(&golden("backbone_flat.onnx"), &o).unwrap();
    assert_eq!((b.preprocess().resize, b.preprocess().crop, b.preprocess().mean), (40, 24, [120.0, 115.0, 100.0]));
    // The backbone's input is fixed at 24x24: a crop of 16 names both.
    let o = BackboneOptions {
        overrides: PreprocessOverrides { crop: Some(16), ..Default::default() },
        ..Default::default()
    };
    let e = format!("{:#}", Backbone::load(&golden("backbone_flat.onnx"), &o).unwrap_err());
    assert!(e.contains("crop is 16") && e.contains("[?, 3, 24, 24]"), "{e}");
    // Not an ONNX file.
    let e = format!("{:#}", Backbone::load(&golden("y444_full.y4m"), &BackboneOptions::default()).unwrap_err());
    assert!(e.contains("y444_full.y4m"), "{e}");
}

fn run_cli(args: &[&str], video: Option<&Path>, dir: &Path) -> (bool, String) {
    let mut cmd = bin();
    cmd.args(["features", "--backbone"])
        .arg(golden("backbone_flat.onnx"))
        .args(args)
        .arg("--out")
        .arg(dir.join("f.npy"));
    if let Some(v) = video {
        cmd.arg("--video").arg(v);
    }
    let o = cmd.output().unwrap();
    (o.status.success(), String::from_utf8_lossy(&o.stderr).into_owned())
}

#[test]
fn truncated_y4m_is_an_error_that_keeps_the_snippets_before_it() {
    let full = std::fs::read(golden("y420_limited.y4m")).unwrap();
    let header = full.iter().position(|&b| b == b'\n').unwrap() + 1;
    let frame = 6 + 37 * 29 + 2 * 19 * 15; // "FRAME\n" + Y + U + V
                                           // Cut in the middle of frame 9: two complete snippets of 4 frames before it.
    let cut = header + 9 * frame + 100;
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("cut.y4m");
    std::fs::write(&v, &full[..cut]).unwrap();
    // Library: the two snippets come out, then the error.
    let mut f = SnippetFeatures::new(
        Box::new(Y4mReader::new(std::fs::File::open(&v).unwrap(), "cut.y4m").unwrap()) as Box<dyn FrameSource>,
        Sampling::new(4, 1).unwrap(),
        load("backbone_flat.onnx", 4, 1),
        4,
    )
    .unwrap();
    let mut row = vec![0.0; 12];
    assert!(f.next(&mut row).unwrap() && f.next(&mut row).unwrap());
    let Err(FeatureError::Pixels(e)) = f.next(&mut row) else { panic!("no error") };
    assert_eq!(e.kind(), PixelErrorKind::Truncated);
    let msg = e.to_string();
    assert!(
        msg.contains("truncated y4m: frame 9") && msg.contains("94 of its 1643 bytes") && msg.contains("cut.y4m"),
        "{msg}"
    );
    // The command: fails, says so, and writes the two snippets with "complete": false.
    let (ok, err) = run_cli(&["--snippet-frames", "4"], Some(&v), dir.path());
    assert!(!ok && err.contains("truncated y4m: frame 9") && err.contains("2 complete snippet(s)"), "{err}");
    let got = read_f32(&dir.path().join("f.npy")).unwrap();
    let expected = read_f32(&golden("y420_limited.feat_flat.npy")).unwrap();
    assert_eq!(got.shape, vec![2, 12]);
    assert!(max_diff(&got.data, &expected.data[..24]) <= FEAT_TOL);
    let side: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("f.json")).unwrap()).unwrap();
    assert_eq!(side["complete"], false);
    assert!(side["error"].as_str().unwrap().contains("frame 9"));
    // Cut inside a FRAME line and inside the header.
    std::fs::write(&v, &full[..header + frame + 3]).unwrap();
    let (ok, err) = run_cli(&["--snippet-frames", "1"], Some(&v), dir.path());
    assert!(!ok && err.contains("ends inside frame 1's FRAME line"), "{err}");
    std::fs::write(&v, &full[..10]).unwrap();
    let e = Y4mReader::new(std::fs::File::open(&v).unwrap(), "h.y4m").err().unwrap();
    assert!(e.kind() == PixelErrorKind::Truncated && e.to_string().contains("inside the stream header"), "{e}");
}

#[test]
fn unsupported_and_malformed_headers_are_refused() {
    let cases: [(&str, PixelErrorKind, &str); 7] = [
        ("YUV4MPEG2 W8 H8 F25:1 C422\n", PixelErrorKind::Unsupported, "chroma `C422` is not supported"),
        ("YUV4MPEG2 W8 H8 F25:1 C420p10\n", PixelErrorKind::Unsupported, "chroma `C420p10`"),
        ("YUV4MPEG2 W8 H8 F25:1 Cmono\n", PixelErrorKind::Unsupported, "chroma `Cmono`"),
        ("YUV4MPEG2 W8 F25:1\n", PixelErrorKind::Format, "height (H) missing"),
        ("YUV4MPEG2 W8 H8\n", PixelErrorKind::Format, "frame rate (F) missing"),
        ("YUV4MPEG2 W8 H8 F25:0\n", PixelErrorKind::Format, "`F25:0` is not two positive integers"),
        ("RIFF....\n", PixelErrorKind::Format, "not a YUV4MPEG2 stream"),
    ];
    for (header, kind, says) in cases {
        let e = Y4mReader::new(header.as_bytes(), "in.y4m").err().unwrap();
        assert_eq!(e.kind(), kind, "{header}: {e}");
        assert!(e.to_string().contains(says) && e.to_string().starts_with("in.y4m: "), "{header}: {e}");
    }
    let e = Y4mReader::new(&b"YUV4MPEG2 W70000 H8 F25:1\n"[..], "big").err().unwrap();
    assert!(e.to_string().contains("70000x8"), "{e}");
    // A frame that does not start with FRAME.
    let mut r = Y4mReader::new(&b"YUV4MPEG2 W2 H2 F25:1 C444\nFRAMX\n"[..], "x").unwrap();
    let e = r.skip_frame().unwrap_err();
    assert!(
        e.kind() == PixelErrorKind::Format && e.to_string().contains("frame 0 (byte 27): expected a FRAME line"),
        "{e}"
    );
    // Through the command.
    let dir = tempfile::tempdir().unwrap();
    let v = dir.path().join("c422.y4m");
    std::fs::write(&v, "YUV4MPEG2 W8 H8 F25:1 C422\n").unwrap();
    let (ok, err) = run_cli(&[], Some(&v), dir.path());
    assert!(!ok && err.contains("c422.y4m: header: chroma `C422` is not supported"), "{err}");
    assert!(!dir.path().join("f.npy").exists());
}

#[test]
fn frame_folder_gaps_and_zero_frames_are_errors() {
    let dir = tempfile::tempdir().unwrap();
    let n = png_folder(dir.path(), 1);
    std::fs::remove_file(dir.path().join("img_00004.png")).unwrap();
    let e = FrameFolder::open(dir.path(), FrameRate::new(25, 1).unwrap(), None).err().unwrap();
    assert_eq!(e.kind(), PixelErrorKind::Frames);
    assert!(
        e.to_string().contains(
            "gap in the numbering after frame 2: img_00003.png is followed by img_00005.png (number 4 is missing)"
        ),
        "{e}"
    );
    let out = tempfile::tempdir().unwrap();
    let (ok, err) = run_cli(&["--frames-dir", dir.path().to_str().unwrap(), "--fps", "25"], None, out.path());
    assert!(!ok && err.contains("gap in the numbering") && err.contains(&dir.path().display().to_string()), "{err}");
    assert!(!out.path().join("f.npy").exists());
    // Zero frames: an empty folder, a y4m with a header and no frame, an empty stream,
    // an empty rgb24 stream; nothing written.
    let empty = tempfile::tempdir().unwrap();
    let e = FrameFolder::open(empty.path(), FrameRate::new(25, 1).unwrap(), None).err().unwrap();
    assert!(e.kind() == PixelErrorKind::Empty && e.to_string().contains("zero frames"), "{e}");
    let v = out.path().join("none.y4m");
    std::fs::write(&v, "YUV4MPEG2 W8 H8 F25:1\n").unwrap();
    let (ok, err) = run_cli(&[], Some(&v), out.path());
    assert!(
        !ok && err.contains("no complete snippet") && err.contains("has 0 frame(s)") && err.contains("nothing written"),
        "{err}"
    );
    std::fs::write(&v, "").unwrap();
    let (ok, err) = run_cli(&[], Some(&v), out.path());
    assert!(!ok && err.contains("empty stream"), "{err}");
    let (ok, err) = run_cli(&["--rgb24", "--width", "4", "--height", "4", "--fps", "25"], Some(&v), out.path());
    assert!(!ok && err.contains("has 0 frame(s)"), "{err}");
    // Fewer frames than one snippet: no snippet, an error, nothing written.
    let (ok, err) = run_cli(&["--snippet-frames", "20"], Some(&golden("y420_limited.y4m")), out.path());
    assert!(!ok && err.contains("19 frame(s), a snippet is 20 frames"), "{err}");
    assert!(!out.path().join("f.npy").exists());
    // A truncated rgb24 stream names the frame.
    std::fs::write(&v, vec![0u8; 4 * 4 * 3 * 2 + 5]).unwrap();
    let mut r = RawRgb24::new(std::fs::File::open(&v).unwrap(), 4, 4, FrameRate::new(25, 1).unwrap(), "r.rgb").unwrap();
    assert!(r.skip_frame().unwrap() && r.skip_frame().unwrap());
    let e = r.skip_frame().unwrap_err();
    assert!(
        e.kind() == PixelErrorKind::Truncated && e.to_string().contains("frame 2 (byte 96) has 5 of its 48 bytes"),
        "{e}"
    );
    let _ = n;
}

/// Python with numpy, onnx and onnxruntime: the repository's `.venv`, else `python3`.
fn python() -> Option<PathBuf> {
    let venv = Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python");
    let candidates = [venv, PathBuf::from("python3")];
    candidates.into_iter().find(|p| {
        Command::new(p)
            .args(["-c", "import numpy, onnx, onnxruntime"])
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    })
}

#[test]
fn mmaction2_tsn_resnet50_export_runs_unchanged() {
    let Some(py) = python() else {
        eprintln!("SKIPPED mmaction2_tsn_resnet50_export_runs_unchanged: no python with numpy, onnx and onnxruntime (create .venv: see tests/reference/requirements.txt)");
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/reference/pixels_reference.py");
    let o = Command::new(&py).arg(&script).args(["tsn", "--out"]).arg(dir.path()).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let out = dir.path().join("f.npy");
    let o = bin()
        .args(["features", "--backbone"])
        .arg(dir.path().join("tsn_r50.onnx"))
        .arg("--video")
        .arg(dir.path().join("video.y4m"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let got = read_f32(&out).unwrap();
    let expected = read_f32(&dir.path().join("features.npy")).unwrap();
    assert_eq!(got.shape, expected.shape);
    assert_eq!(got.shape[1], 200);
    let d = max_diff(&got.data, &expected.data);
    eprintln!("TSN ResNet-50: {} snippets, max |diff| vs onnxruntime {d:e}", got.shape[0]);
    assert!(d <= FEAT_TOL, "{d}");
    let side: Value = serde_json::from_str(&std::fs::read_to_string(dir.path().join("f.json")).unwrap()).unwrap();
    assert_eq!(side["backbone"]["frames_per_run"], 1, "the export's batch axis is fixed at 1");
    assert_eq!(side["preprocess"]["resize"], 256);
}

#[test]
fn int8_backbone_runs_in_both_arithmetics_with_the_same_levels() {
    use bmn_edge::engine::Int8Arithmetic;
    let m = manifest();
    for case in m["cases"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let expected = read_f32(&golden(&format!("{name}.feat_flat_int8.npy"))).unwrap();
        let mut outs = Vec::new();
        for arith in [Int8Arithmetic::Integer, Int8Arithmetic::ExactFloat] {
            let sampling = sampling_of(case);
            let o = BackboneOptions {
                per_snippet: sampling.per_snippet(),
                int8_arithmetic: Some(arith),
                ..BackboneOptions::default()
            };
            let b = Backbone::load(&golden("backbone_flat_int8.onnx"), &o).unwrap();
            assert_eq!(b.int8(), Some(arith));
            let mut f = SnippetFeatures::new(source_of(case), sampling, b, 2).unwrap();
            let mut row = vec![0.0; 12];
            let mut got = Vec::new();
            while f.next(&mut row).unwrap() {
                got.extend_from_slice(&row);
            }
            let d = max_diff(&got, &expected.data);
            eprintln!("{name} int8 {}: max |diff| vs onnxruntime {d:e}", arith.name());
            assert!(d <= FEAT_TOL, "{name} {}: {d}", arith.name());
            outs.push(got);
        }
        // Exact float computes the integer kernels' sums exactly: the same features, bit for bit.
        assert_eq!(outs[0], outs[1], "{name}: integer and exact-float arithmetics differ");
    }
}

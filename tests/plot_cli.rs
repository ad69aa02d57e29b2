//! `bmn-edge plot` through the built binary: the SVG's series are checked against what
//! `detect` writes for the same video (its maps with `--dump-maps`, its proposals with
//! `--out`) and against the ground truth given, never against the plot's own code.
//!
//! Model: the tiny fixture `tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx` (T = D = 16,
//! C = 32, mmaction2 convention; random weights). Features: generated below.
//!
//! Pixel tolerance: plotters maps a value to an integer pixel by flooring (after adding
//! 1e-3 px), so every drawn coordinate is the exact affine image of its value minus a
//! fraction in [0, 1) px. An affine fit through such points has residuals below 1 px.
#![cfg(feature = "engine")]

use roxmltree::{Document, Node};
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const T: usize = 16;
const D: usize = 16;
const C: usize = 32;

fn bin() -> Command {
    Command::new(env!("CARGO_BIN_EXE_bmn-edge"))
}

fn model() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx")
}

/// A scratch directory, removed when dropped (also when the test fails).
fn tmpdir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new().prefix(&format!("bmn-edge-plot-{name}-")).tempdir().unwrap()
}

fn run(args: &[&str]) -> Output {
    bin().args(args).output().unwrap()
}

fn ok(o: &Output) {
    assert!(o.status.success(), "failed: {}", String::from_utf8_lossy(&o.stderr));
}

/// `[l, C]` features: a slow per-channel wave plus pseudo-random noise (fixed LCG), so
/// that the curves vary and the windows have candidates.
fn write_features(path: &Path, l: usize) {
    let mut state = 0x2545_F491_4F6C_DD1Du64;
    let mut noise = || {
        state = state.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        ((state >> 40) as f64 / (1u64 << 24) as f64) * 2.0 - 1.0
    };
    let data: Vec<f32> = (0..l * C)
        .map(|i| {
            let (r, c) = ((i / C) as f64, (i % C) as f64);
            ((0.35 * r + 0.7 * c).sin() * 1.5 + noise()) as f32
        })
        .collect();
    bmn_edge::npy::write_f32(path, &[l, C], &data).unwrap();
}

fn npy(path: &Path) -> Vec<f32> {
    bmn_edge::npy::read_f32(path).unwrap().data
}

/// The group `<g id="…">` of a panel.
fn group<'a, 'i>(doc: &'a Document<'i>, id: &str) -> Node<'a, 'i> {
    doc.descendants()
        .find(|n| n.has_tag_name("g") && n.attribute("id") == Some(id))
        .unwrap_or_else(|| panic!("no group {id}"))
}

fn elements<'a, 'i>(g: Node<'a, 'i>, tag: &str) -> Vec<Node<'a, 'i>> {
    g.descendants().filter(|n| n.has_tag_name(tag)).collect()
}

fn attr(n: &Node, name: &str) -> String {
    n.attribute(name).unwrap_or_else(|| panic!("no attribute {name}")).to_string()
}

fn num(n: &Node, name: &str) -> f64 {
    attr(n, name).parse().unwrap()
}

fn points(n: &Node) -> Vec<(f64, f64)> {
    attr(n, "points")
        .split_whitespace()
        .map(|p| {
            let (x, y) = p.split_once(',').unwrap();
            (x.parse().unwrap(), y.parse().unwrap())
        })
        .collect()
}

fn texts(g: Node) -> Vec<String> {
    elements(g, "text").iter().map(|t| t.text().unwrap_or("").trim().to_string()).collect()
}

/// Least-squares `y ≈ a + b·x`: `(a, b)`.
fn fit(x: &[f64], y: &[f64]) -> (f64, f64) {
    let n = x.len() as f64;
    let (mx, my) = (x.iter().sum::<f64>() / n, y.iter().sum::<f64>() / n);
    let sxy: f64 = x.iter().zip(y).map(|(a, b)| (a - mx) * (b - my)).sum();
    let sxx: f64 = x.iter().map(|a| (a - mx) * (a - mx)).sum();
    let b = sxy / sxx;
    (my - b * mx, b)
}

/// The largest distance of `y` from the line `a + b·x`.
fn residual(x: &[f64], y: &[f64], (a, b): (f64, f64)) -> f64 {
    x.iter().zip(y).map(|(x, y)| (y - (a + b * x)).abs()).fold(0.0, f64::max)
}

/// The documented map colour: white (0) to #08306B (1), linear per 8-bit channel.
fn map_colour(v: f64) -> [f64; 3] {
    let v = v.clamp(0.0, 1.0);
    [0x08, 0x30, 0x6B].map(|hi: u8| 255.0 + (f64::from(hi) - 255.0) * v)
}

fn hex(s: &str) -> [f64; 3] {
    let s = s.trim_start_matches('#');
    [0, 2, 4].map(|i| f64::from(u8::from_str_radix(&s[i..i + 2], 16).unwrap()))
}

/// Filled rectangles of one colour in a group.
fn bars<'a, 'i>(g: Node<'a, 'i>, fill: &str) -> Vec<Node<'a, 'i>> {
    elements(g, "rect").into_iter().filter(|r| r.attribute("fill") == Some(fill)).collect()
}

#[test]
fn plot_draws_detects_curves_map_and_proposals_against_the_ground_truth() {
    let dir = tmpdir("video");
    let p = |f: &str| dir.path().join(f);
    // 44 snippets: windows of 16 with hop 8 start at 0, 8, 16, 24 and, aligned to the end,
    // 28 (README: the last window is aligned to the end of the video).
    const L: usize = 44;
    let starts = [0usize, 8, 16, 24, 28];
    let (duration, top) = (22.0, 5);
    write_features(&p("vid.npy"), L);
    let gt = serde_json::json!({
        "version": "VERSION 1.3",
        "database": {
            "vid": {"subset": "validation", "duration_second": duration,
                    "annotations": [{"segment": [2.0, 6.5], "label": "a"}, {"segment": [12.0, 20.0], "label": "b"}]},
            "other": {"subset": "validation", "duration_second": 10.0,
                      "annotations": [{"segment": [1.0, 2.0], "label": "a"}]}
        }
    });
    std::fs::write(p("gt.json"), gt.to_string()).unwrap();
    let (m, f, maps, res, svg) = (model(), p("vid.npy"), p("maps"), p("results.json"), p("out.svg"));
    let s = |p: &Path| p.to_str().unwrap().to_string();
    ok(&run(&[
        "detect",
        "--model",
        &s(&m),
        "--features",
        &s(&f),
        "--duration",
        "22",
        "--video-id",
        "vid",
        "--top-k",
        "5",
        "--threads",
        "1",
        "--dump-maps",
        &s(&maps),
        "--out",
        &s(&res),
    ]));
    let o = run(&[
        "plot",
        "--model",
        &s(&m),
        "--features",
        &s(&f),
        "--ground-truth",
        &s(&p("gt.json")),
        "--top",
        "5",
        "--threads",
        "1",
        "-o",
        &s(&svg),
    ]);
    ok(&o);
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = Document::parse(&text).unwrap();

    // Detect's maps, one directory per window.
    let windows: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..starts.len())
        .map(|k| {
            let w = maps.join(format!("window_{k:04}"));
            (npy(&w.join("start.npy")), npy(&w.join("end.npy")), npy(&w.join("confidence.npy")))
        })
        .collect();
    assert!(!maps.join(format!("window_{:04}", starts.len())).exists(), "more windows than expected");

    // 1. Curves: the mean over the windows covering each snippet, one point per snippet.
    let mean = |which: usize| -> Vec<f64> {
        (0..L)
            .map(|q| {
                let v: Vec<f64> = starts
                    .iter()
                    .zip(&windows)
                    .filter(|(&w0, _)| (w0..w0 + T).contains(&q))
                    .map(|(&w0, w)| f64::from(if which == 0 { &w.0 } else { &w.1 }[q - w0]))
                    .collect();
                v.iter().sum::<f64>() / v.len() as f64
            })
            .collect()
    };
    let curves = group(&doc, "curves");
    let line = |colour: &str| -> Vec<(f64, f64)> {
        let found: Vec<_> = elements(curves, "polyline")
            .into_iter()
            .filter(|n| n.attribute("stroke") == Some(colour) && points(n).len() > 2)
            .collect();
        assert_eq!(found.len(), 1, "one {colour} curve");
        points(&found[0])
    };
    let (start_line, end_line) = (line("#1F77B4"), line("#D62728"));
    assert_eq!((start_line.len(), end_line.len()), (L, L));
    let (want_s, want_e) = (mean(0), mean(1));
    let spread = |v: &[f64]| v.iter().cloned().fold(f64::MIN, f64::max) - v.iter().cloned().fold(f64::MAX, f64::min);
    assert!(spread(&want_s) > 0.05 && spread(&want_e) > 0.05, "the curves vary enough to test the mapping");
    // x: snippet q at q/L·duration seconds; y: the value. One mapping for both curves.
    let secs: Vec<f64> = (0..L).map(|q| q as f64 / L as f64 * duration).collect();
    let xs: Vec<f64> = start_line.iter().map(|p| p.0).collect();
    let ys: Vec<f64> = start_line.iter().map(|p| p.1).collect();
    let (fx, fy) = (fit(&secs, &xs), fit(&want_s, &ys));
    assert!(fx.1 > 0.0 && fy.1 < 0.0, "time to the right, probability up");
    assert!(residual(&secs, &xs, fx) < 1.0 && residual(&want_s, &ys, fy) < 1.0);
    let (ex, ey): (Vec<f64>, Vec<f64>) = end_line.iter().cloned().unzip();
    assert!(residual(&secs, &ex, fx) < 1.0, "end curve on the same time axis");
    assert!(residual(&want_e, &ey, fy) < 1.0, "end curve: the mean of detect's end maps");
    // The probability axis spans [0, 1]: its pixel height is the plot's, well above 1 px per 0.01.
    assert!(-fy.1 > 150.0, "{fy:?}");
    let labels = texts(curves);
    for want in ["start probability", "end probability", "time (s)", "probability"] {
        assert!(labels.iter().any(|t| t == want), "curves: no label {want:?} in {labels:?}");
    }

    // 3 (read first: the map's default window is the best proposal's). Proposals.
    let results: Value = serde_json::from_str(&std::fs::read_to_string(&res).unwrap()).unwrap();
    let props: Vec<(f64, f64, f64)> = results["results"]["vid"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["segment"][0].as_f64().unwrap(), p["segment"][1].as_f64().unwrap(), p["score"].as_f64().unwrap()))
        .collect();
    assert_eq!(props.len(), top, "detect found at least {top} proposals");
    let pg = group(&doc, "proposals");
    let mut pbars = bars(pg, "#FF7F0E");
    let gbars = bars(pg, "#505050");
    assert_eq!((pbars.len(), gbars.len()), (top, 2));
    // Best first: from the top down, in detect's order.
    pbars.sort_by(|a, b| num(a, "y").partial_cmp(&num(b, "y")).unwrap());
    let gt_segs = [(2.0, 6.5), (12.0, 20.0)];
    let mut secs_at = Vec::new();
    let mut px = Vec::new();
    for (b, &(s0, s1, _)) in pbars.iter().zip(&props) {
        secs_at.extend([s0, s1]);
        px.extend([num(b, "x"), num(b, "x") + num(b, "width")]);
    }
    let mut gsorted = gbars.clone();
    gsorted.sort_by(|a, b| num(a, "x").partial_cmp(&num(b, "x")).unwrap());
    for (b, &(s0, s1)) in gsorted.iter().zip(&gt_segs) {
        secs_at.extend([s0, s1]);
        px.extend([num(b, "x"), num(b, "x") + num(b, "width")]);
    }
    let fb = fit(&secs_at, &px);
    assert!(residual(&secs_at, &px, fb) < 1.0, "bar edges at the proposals' and ground truth's seconds");
    // The ground-truth row is above every proposal.
    let top_prop = num(&pbars[0], "y");
    assert!(gbars.iter().all(|g| num(g, "y") < top_prop));
    // Scores after the bars, in rank order.
    let shown: Vec<String> = texts(pg).into_iter().filter(|t| t.len() == 5 && t.starts_with("0.")).collect();
    let want: Vec<String> = props.iter().map(|p| format!("{:.3}", p.2)).collect();
    assert_eq!(shown, want);
    let labels = texts(pg);
    for want in ["ground truth", "GT", "#1", "time (s)"] {
        assert!(labels.iter().any(|t| t.contains(want)), "proposals: no {want:?} in {labels:?}");
    }

    // 2. The map: the window named in its caption holds the best proposal with its score.
    let mg = group(&doc, "confidence-map");
    let caption = texts(mg).into_iter().find(|t| t.starts_with("confidence map")).unwrap();
    let k: usize = caption.split("window ").nth(1).unwrap().split(' ').next().unwrap().parse().unwrap();
    assert!(caption.contains("reg·cls") && caption.contains("of 5"), "{caption}");
    let (ps, pe, conf) = &windows[k];
    let (b0, b1, best) = props[0];
    let (gs, ge) = (
        (b0 / duration * L as f64).round() as usize - starts[k],
        (b1 / duration * L as f64).round() as usize - starts[k],
    );
    let (bs, bd) = (gs, ge - gs - 1);
    // mmaction2: score = start[s]·end[s+d+1]·cls·reg (reference §3), in f32.
    let four = ps[gs] * pe[ge] * conf[D * T + bd * T + bs] * conf[bd * T + bs];
    assert!((f64::from(four) - best).abs() <= 1e-6 * best, "window {k}: {four} vs best {best}");
    // D × T filled cells (opacity 1; the legend's background is translucent).
    let cells: Vec<Node> = elements(mg, "rect")
        .into_iter()
        .filter(|r| r.attribute("fill") != Some("none") && r.attribute("opacity") == Some("1"))
        .collect();
    assert_eq!(cells.len(), D * T);
    let mut xs: Vec<f64> = cells.iter().map(|c| num(c, "x")).collect();
    let mut ys: Vec<f64> = cells.iter().map(|c| num(c, "y")).collect();
    for v in [&mut xs, &mut ys] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.dedup();
    }
    assert_eq!((xs.len(), ys.len()), (T, D), "a T × D grid");
    for c in &cells {
        let s = xs.iter().position(|&x| x == num(c, "x")).unwrap();
        let d = D - 1 - ys.iter().position(|&y| y == num(c, "y")).unwrap(); // d = 0 at the bottom
        let got = hex(&attr(c, "fill"));
        if s + d > T - 1 {
            assert_eq!(got, [200.0; 3], "cell ({d}, {s}) outside the window is grey");
        } else {
            let v = f64::from(conf[d * T + s] * conf[D * T + d * T + s]);
            let want = map_colour(v);
            for i in 0..3 {
                // 8-bit rounding of the documented colour: within half a level (plus f32 noise).
                assert!((got[i] - want[i]).abs() <= 0.5 + 1e-6, "cell ({d}, {s}) = {v}: {got:?} vs {want:?}");
            }
        }
    }
    // The best proposal's cell is outlined.
    let outline: Vec<Node> = elements(mg, "rect")
        .into_iter()
        .filter(|r| r.attribute("fill") == Some("none") && r.attribute("stroke") == Some("#FF0000"))
        .filter(|r| num(r, "width") > 5.0)
        .collect();
    assert!(!outline.is_empty());
    let cell = cells.iter().find(|c| num(c, "x") == xs[bs] && num(c, "y") == ys[D - 1 - bd]).unwrap();
    assert!(
        outline
            .iter()
            .any(|o| (num(o, "x") - num(cell, "x")).abs() <= 1.0 && (num(o, "y") - num(cell, "y")).abs() <= 1.0),
        "outline at the best cell ({bd}, {bs})"
    );
    let title = texts(group(&doc, "title")).join(" ");
    assert!(title.contains("vid") && title.contains("44 snippets"), "{title}");
}

#[test]
fn plot_in_rescale_mode_draws_the_single_window_in_snippets() {
    let dir = tmpdir("rescale");
    let p = |f: &str| dir.path().join(f);
    const L: usize = 30;
    write_features(&p("f.npy"), L);
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let (m, f, maps, svg) = (model(), p("f.npy"), p("maps"), p("out.svg"));
    ok(&run(&[
        "detect",
        "--model",
        &s(&m),
        "--features",
        &s(&f),
        "--mode",
        "rescale",
        "--threads",
        "1",
        "--dump-maps",
        &s(&maps),
    ]));
    ok(&run(&[
        "plot",
        "--model",
        &s(&m),
        "--features",
        &s(&f),
        "--mode",
        "rescale",
        "--threads",
        "1",
        "--map",
        "cls",
        "-o",
        &s(&svg),
    ]));
    let text = std::fs::read_to_string(&svg).unwrap();
    let doc = Document::parse(&text).unwrap();
    let start = npy(&maps.join("start.npy"));
    let conf = npy(&maps.join("confidence.npy"));
    let curves = group(&doc, "curves");
    let line: Vec<(f64, f64)> = elements(curves, "polyline")
        .into_iter()
        .filter(|n| n.attribute("stroke") == Some("#1F77B4") && points(n).len() > 2)
        .map(|n| points(&n))
        .next()
        .unwrap();
    assert_eq!(line.len(), T, "one point per position of the rescaled window");
    // Without a duration the time axis is in snippets: position p at p·L/T.
    let at: Vec<f64> = (0..T).map(|q| q as f64 * L as f64 / T as f64).collect();
    let v: Vec<f64> = start.iter().map(|&x| f64::from(x)).collect();
    let (xs, ys): (Vec<f64>, Vec<f64>) = line.into_iter().unzip();
    assert!(residual(&at, &xs, fit(&at, &xs)) < 1.0);
    assert!(residual(&v, &ys, fit(&v, &ys)) < 1.0);
    assert!(texts(curves).iter().any(|t| t == "time (snippets)"));
    // The map: the cls channel of the single window.
    let mg = group(&doc, "confidence-map");
    let caption = texts(mg).into_iter().find(|t| t.starts_with("confidence map")).unwrap();
    assert!(caption.contains("cls") && !caption.contains("reg"), "{caption}");
    let cells: Vec<Node> = elements(mg, "rect")
        .into_iter()
        .filter(|r| r.attribute("fill") != Some("none") && r.attribute("opacity") == Some("1"))
        .collect();
    assert_eq!(cells.len(), D * T);
    let (mut cx, mut cy): (Vec<f64>, Vec<f64>) = cells.iter().map(|c| (num(c, "x"), num(c, "y"))).unzip();
    for v in [&mut cx, &mut cy] {
        v.sort_by(|a, b| a.partial_cmp(b).unwrap());
        v.dedup();
    }
    let c00 = cells.iter().find(|c| num(c, "x") == cx[0] && num(c, "y") == cy[D - 1]).unwrap();
    let want = map_colour(f64::from(conf[D * T]));
    let got = hex(&attr(c00, "fill"));
    assert!((0..3).all(|i| (got[i] - want[i]).abs() <= 0.5 + 1e-6), "cell (0, 0): {got:?} vs {want:?}");
    // No ground truth: no ground-truth bars.
    assert!(bars(group(&doc, "proposals"), "#505050").is_empty());
}

#[test]
fn plot_errors_leave_no_file() {
    let dir = tmpdir("errors");
    let p = |f: &str| dir.path().join(f);
    write_features(&p("vid.npy"), 20);
    let gt =
        serde_json::json!({"database": {"other": {"duration_second": 10.0, "annotations": [{"segment": [1.0, 2.0]}]}}});
    std::fs::write(p("gt.json"), gt.to_string()).unwrap();
    let s = |p: &Path| p.to_str().unwrap().to_string();
    let svg = p("out.svg");
    // An existing figure is left as it was.
    std::fs::write(&svg, "old").unwrap();
    let base = ["plot", "--model", &s(&model()), "--features", &s(&p("vid.npy")), "--threads", "1", "-o", &s(&svg)];
    let cases: [(&[&str], &str); 4] = [
        (&["--ground-truth", &s(&p("gt.json"))], "video \"vid\" is not in the ground truth"),
        (&["--window", "7"], "--window 7: the video has 2 window(s)"),
        (&["--top", "0"], "--top must be at least 1"),
        (&["--duration=-3"], "--duration must be a positive number"),
    ];
    for (extra, message) in cases {
        let o = run(&[&base[..], extra].concat());
        let err = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(1), "{extra:?}: {err}");
        assert!(err.contains(message), "{extra:?}: {err}");
        assert_eq!(std::fs::read_to_string(&svg).unwrap(), "old", "{extra:?}");
    }
    let mut names: Vec<String> =
        std::fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    assert_eq!(names, ["gt.json", "out.svg", "vid.npy"], "no temporary file left behind");
}

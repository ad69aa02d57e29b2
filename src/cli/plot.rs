//! `bmn-edge plot`: one video through the model, drawn as one SVG.
//!
//! The model runs on the video's features exactly as `detect` runs it
//! ([`detect_video`], same windows, same merge), and the figure has three panels, each an
//! SVG group with an id, so that a reader (or a test) can find them:
//!
//! * `curves` — the start and end probability curves over the whole video. With sliding
//!   windows several windows cover a snippet; the curve's value at a video position is the
//!   **mean over the windows whose real (not padded) snippets cover it**, each window's
//!   output at that position. In rescale mode it is the single window's `T` values. Each
//!   value is drawn at the boundary it stands for in the convention's pairing (reference
//!   §3): `start[p]` at grid position `p`, `end[p]` at `p` (mmaction2: pairs end at boundary
//!   `e`) or `p + 1` (paddle: pairs end after snippet `e`); grid position `p` is `p / L` of
//!   the video (sliding) or `p / T` (rescale), as the proposals' times are.
//! * `confidence-map` — one window's confidence map, `D × T` cells: x the start position
//!   `s` in the window, y the duration `d + 1` in snippets. The window is `--window K` (the
//!   index `detect --dump-maps` uses), by default the window that holds the video's best
//!   proposal (the one whose pair, with the same score, the merge kept first); the channel
//!   is `--map`: `product` (default, `reg·cls` as the score uses it), `reg` or `cls`. The
//!   colour is linear from white (0) to navy `#08306B` (1) per 8-bit channel; cells outside
//!   the window (`s + d > T − 1`, never a proposal) are grey `#C8C8C8`; the best proposal's
//!   cell, when it lies in the drawn window, is outlined in red. A colour scale (`colour-scale`)
//!   stands beside it.
//! * `proposals` — the top `N` proposals (`--top`, default 10) as bars on the video's
//!   timeline, best at the top, each with its score (3 decimals) after it, and the video's
//!   ground-truth segments (`--ground-truth`, ActivityNet format) in one row above them.
//!
//! Times are seconds when a duration is known (`--duration`, else the ground truth's
//! `duration_second`), else snippets. Colours: start curve `#1F77B4`, end curve `#D62728`,
//! proposal bars `#FF7F0E`, ground truth `#505050`.
//!
//! The file is written only once everything is drawn, atomically; any error (a video that
//! is not in the ground truth, a window that does not exist, …) leaves no file.

use super::args::{available_cores, ConventionArg, EngineArgs, ModeArg};
use super::output::write_file;
use super::process;
use anyhow::{anyhow, bail, Context, Result};
use bmn_edge::engine::detect::{detect_video, DetectOptions, WindowMode, WindowResult};
use bmn_edge::engine::Engine;
use bmn_edge::eval::{EvalErrorKind, GroundTruth};
use bmn_edge::features::read_features;
use bmn_edge::post::{pair_candidates, select_candidates, Boundary, Proposal, WindowMaps};
use bmn_edge::{Convention, PostConfig};
use plotters::coord::Shift;
use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Colour of the start curve.
const START_COLOUR: RGBColor = RGBColor(0x1F, 0x77, 0xB4);
/// Colour of the end curve.
const END_COLOUR: RGBColor = RGBColor(0xD6, 0x27, 0x28);
/// Colour of the proposal bars.
const PROPOSAL_COLOUR: RGBColor = RGBColor(0xFF, 0x7F, 0x0E);
/// Colour of the ground-truth segments.
const GT_COLOUR: RGBColor = RGBColor(0x50, 0x50, 0x50);
/// Map cells outside the window (`s + d > T − 1`).
const INVALID_COLOUR: RGBColor = RGBColor(0xC8, 0xC8, 0xC8);
/// The colour of 1 on the map (0 is white).
const MAP_HIGH: RGBColor = RGBColor(0x08, 0x30, 0x6B);

/// Width of the figure in pixels.
const WIDTH: u32 = 1000;
const TITLE_HEIGHT: u32 = 40;
const CURVES_HEIGHT: u32 = 320;
const MAP_HEIGHT: u32 = 420;
const SCALE_WIDTH: u32 = 110;

/// The `--map` values: which channel(s) of the confidence map are drawn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MapArg {
    /// `reg · cls`, as the proposal score uses them.
    Product,
    /// Channel 0, the regression (IoU) map.
    Reg,
    /// Channel 1, the classification map.
    Cls,
}

impl MapArg {
    fn label(self) -> &'static str {
        match self {
            MapArg::Product => "reg·cls",
            MapArg::Reg => "reg",
            MapArg::Cls => "cls",
        }
    }
}

/// Arguments of `bmn-edge plot`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model: a standard ONNX export or an edge file from `bmn-edge convert`.
    #[arg(long)]
    model: PathBuf,
    /// Features: .npy [L, C] float32/float64 (one row per snippet) or a BSN csv.
    #[arg(long)]
    features: PathBuf,
    /// ActivityNet ground truth: the video's segments are drawn against the proposals (and
    /// its duration_second gives the time axis when --duration is absent).
    #[arg(long)]
    ground_truth: Option<PathBuf>,
    /// Video id (in the title, and the key in the ground truth); default: the feature
    /// file's stem.
    #[arg(long)]
    video_id: Option<String>,
    /// Video duration in seconds: the time axes are in seconds (snippets without one).
    #[arg(long)]
    duration: Option<f64>,
    /// Proposals drawn, best first.
    #[arg(long, default_value_t = 10)]
    top: usize,
    /// The window whose confidence map is drawn (0-based, as `detect --dump-maps` numbers
    /// them); default: the window holding the best proposal.
    #[arg(long)]
    window: Option<usize>,
    /// The confidence map's channel(s) drawn.
    #[arg(long, value_enum, default_value_t = MapArg::Product)]
    map: MapArg,
    /// Post-processing convention (default: from the model; Paddle variant → paddle).
    #[arg(long, value_enum)]
    convention: Option<ConventionArg>,
    /// Sliding windows (default; an edge file may store another default) or whole-video rescale.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Hop between sliding windows, in snippets (default T/2).
    #[arg(long)]
    hop: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
    /// The SVG file written.
    #[arg(short = 'o', long = "out")]
    out: PathBuf,
}

/// The video's entry in a ground-truth file: its segments (seconds) and duration.
#[derive(Debug, Default)]
struct VideoTruth {
    segments: Vec<[f64; 2]>,
    duration: Option<f64>,
}

/// Reads `id`'s segments and `duration_second` from an ActivityNet ground-truth file,
/// checked as `eval` checks it. A video absent from `database` is an error.
fn read_truth(path: &Path, id: &str) -> Result<VideoTruth> {
    let text = bmn_edge::io::read_text(path, bmn_edge::io::MAX_GROUND_TRUTH_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    let at = || format!("{}", path.display());
    let gt = match GroundTruth::from_json(&text, None) {
        Ok(gt) => Some(gt),
        // A file whose videos have no annotations is still a file with durations.
        Err(e) if e.kind() == EvalErrorKind::EmptyGroundTruth => None,
        Err(e) => return Err(anyhow!("{}: {e}", at())),
    };
    let root: serde_json::Value = serde_json::from_str(&text).with_context(at)?;
    let db = root["database"].as_object().ok_or_else(|| anyhow!("{}: no \"database\" object", at()))?;
    let Some(entry) = db.get(id) else {
        let mut known: Vec<&str> = db.keys().map(String::as_str).take(5).collect();
        if db.len() > known.len() {
            known.push("…");
        }
        bail!(
            "{}: video {id:?} is not in the ground truth ({} videos: {}); give --video-id",
            at(),
            db.len(),
            known.join(", ")
        );
    };
    let duration = match entry.get("duration_second") {
        None | Some(serde_json::Value::Null) => None,
        Some(v) => match v.as_f64() {
            Some(d) if d.is_finite() && d > 0.0 => Some(d),
            _ => bail!("{}: database[{id:?}].duration_second must be a positive number, found {v}", at()),
        },
    };
    let segments =
        gt.as_ref().and_then(|gt| gt.videos().find(|(v, _)| *v == id).map(|(_, s)| s.to_vec())).unwrap_or_default();
    Ok(VideoTruth { segments, duration })
}

/// The mean of each curve over the windows whose real snippets cover a position (see the
/// module docs); `positions` values.
fn mean_curves(windows: &[WindowResult], positions: usize) -> (Vec<f64>, Vec<f64>) {
    let mut sum_s = vec![0.0f64; positions];
    let mut sum_e = vec![0.0f64; positions];
    let mut count = vec![0u32; positions];
    for w in windows {
        for i in 0..w.valid {
            let p = w.start as usize + i;
            if p < positions {
                sum_s[p] += f64::from(w.outputs.start[i]);
                sum_e[p] += f64::from(w.outputs.end[i]);
                count[p] += 1;
            }
        }
    }
    let mean = |sum: Vec<f64>| -> Vec<f64> {
        sum.into_iter().zip(&count).map(|(s, &n)| if n == 0 { f64::NAN } else { s / f64::from(n) }).collect()
    };
    (mean(sum_s), mean(sum_e))
}

/// The window that holds `best` (video grid positions and score, as the merge gives it):
/// the first window whose real snippets hold the pair and whose own pairing gives it with
/// the same score — the pair the merge's Soft-NMS kept first. Also the best proposal's cell
/// `(d, s)` in that window.
fn window_of_best(
    cfg: &PostConfig,
    windows: &[WindowResult],
    best: &Proposal,
) -> Result<Option<(usize, (usize, usize))>> {
    let t = cfg.tscale();
    let mut starts = vec![false; t];
    let mut ends = vec![false; t];
    let mut pairs = vec![Proposal::default(); t * cfg.dscale()];
    for (k, w) in windows.iter().enumerate() {
        let (Some(s), Some(e)) = (u64::from(best.start).checked_sub(w.start), u64::from(best.end).checked_sub(w.start))
        else {
            continue;
        };
        let (s, e) = (s as u32, e as u32);
        // The merge keeps a pair whose last boundary index lies in the real snippets.
        let last = match cfg.convention() {
            Convention::Mmaction2 => e as usize,
            Convention::Paddle => (e as usize).saturating_sub(1),
        };
        if e as usize > t || last >= w.valid {
            continue;
        }
        let o = &w.outputs;
        let maps = WindowMaps::new(cfg, &o.start, &o.end, &o.confidence).map_err(|e| anyhow!("window {k}: {e}"))?;
        select_candidates(maps.start(), cfg.convention(), Boundary::Start, &mut starts)
            .map_err(|e| anyhow!("window {k}: {e}"))?;
        select_candidates(maps.end(), cfg.convention(), Boundary::End, &mut ends)
            .map_err(|e| anyhow!("window {k}: {e}"))?;
        let n = pair_candidates(cfg, &maps, &starts, &ends, &mut pairs).map_err(|e| anyhow!("window {k}: {e}"))?;
        if pairs[..n].iter().any(|p| p.start == s && p.end == e && p.score.to_bits() == best.score.to_bits()) {
            return Ok(Some((k, ((e - s - 1) as usize, s as usize))));
        }
    }
    Ok(None)
}

/// The map's value at cell `(d, s)`.
fn map_value(conf: &[f32], d_len: usize, t: usize, which: MapArg, d: usize, s: usize) -> f32 {
    let reg = conf[d * t + s];
    let cls = conf[d_len * t + d * t + s];
    match which {
        MapArg::Product => reg * cls,
        MapArg::Reg => reg,
        MapArg::Cls => cls,
    }
}

/// White (0) to [`MAP_HIGH`] (1), linear per 8-bit channel; values outside `[0, 1]` clamp.
fn map_colour(v: f32) -> RGBColor {
    let v = f64::from(v).clamp(0.0, 1.0);
    let lerp = |hi: u8| (255.0 + (f64::from(hi) - 255.0) * v).round() as u8;
    RGBColor(lerp(MAP_HIGH.0), lerp(MAP_HIGH.1), lerp(MAP_HIGH.2))
}

fn svg_err<E: std::fmt::Display>(e: E) -> anyhow::Error {
    anyhow!("drawing the figure: {e}")
}

/// Escapes text for an SVG attribute or element.
fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Draws one panel of `size` into its own SVG document.
fn panel(size: (u32, u32), draw: impl FnOnce(&DrawingArea<SVGBackend<'_>, Shift>) -> Result<()>) -> Result<String> {
    let mut s = String::new();
    {
        let root = SVGBackend::with_string(&mut s, size).into_drawing_area();
        draw(&root)?;
        root.present().map_err(svg_err)?;
    }
    Ok(s)
}

/// Everything the figure shows.
struct Figure<'a> {
    video_id: &'a str,
    /// The unit of the time axes and the video's length in it.
    unit: &'static str,
    length: f64,
    start_curve: Vec<(f64, f64)>,
    end_curve: Vec<(f64, f64)>,
    curve_note: String,
    /// `[D, T]` values of the drawn map and its description.
    map: Vec<f32>,
    t: usize,
    d: usize,
    map_caption: String,
    map_which: MapArg,
    best_cell: Option<(usize, usize)>,
    /// `(start, end, score)` in the time unit, best first.
    proposals: Vec<(f64, f64, f64)>,
    truth: Option<Vec<[f64; 2]>>,
    title: String,
}

fn draw(f: &Figure<'_>) -> Result<String> {
    let rows = f.proposals.len() + 1;
    let proposals_height = (160 + 26 * rows as u32).max(240);
    let height = TITLE_HEIGHT + CURVES_HEIGHT + MAP_HEIGHT + proposals_height;
    let axis = format!("time ({})", f.unit);

    let title = panel((WIDTH, TITLE_HEIGHT), |root| {
        root.draw(&Text::new(
            f.title.clone(),
            (WIDTH as i32 / 2, TITLE_HEIGHT as i32 / 2),
            TextStyle::from(("sans-serif", 20).into_font().style(FontStyle::Bold))
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))
        .map_err(svg_err)
    })?;

    let curves = panel((WIDTH, CURVES_HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(format!("boundary probabilities ({})", f.curve_note), ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..f.length, 0.0..1.0)
            .map_err(svg_err)?;
        chart.configure_mesh().x_desc(axis.as_str()).y_desc("probability").draw().map_err(svg_err)?;
        for (points, colour, label) in
            [(&f.start_curve, START_COLOUR, "start probability"), (&f.end_curve, END_COLOUR, "end probability")]
        {
            chart
                .draw_series(LineSeries::new(points.iter().copied(), colour.stroke_width(2)))
                .map_err(svg_err)?
                .label(label)
                .legend(move |(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], colour.stroke_width(2)));
        }
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::UpperRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(svg_err)
    })?;

    let (t, d) = (f.t, f.d);
    let map = panel((WIDTH - SCALE_WIDTH, MAP_HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .caption(&f.map_caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            .build_cartesian_2d(0.0..t as f64, 0.0..d as f64)
            .map_err(svg_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .x_desc("start position s in the window (snippets)")
            .y_desc("duration d + 1 (snippets)")
            .draw()
            .map_err(svg_err)?;
        let cells = (0..d).flat_map(|di| (0..t).map(move |s| (di, s)));
        chart
            .draw_series(cells.map(|(di, s)| {
                let colour = if s + di > t - 1 { INVALID_COLOUR } else { map_colour(f.map[di * t + s]) };
                Rectangle::new([(s as f64, di as f64), (s as f64 + 1.0, di as f64 + 1.0)], colour.filled())
            }))
            .map_err(svg_err)?;
        if let Some((di, s)) = f.best_cell {
            chart
                .draw_series(std::iter::once(Rectangle::new(
                    [(s as f64, di as f64), (s as f64 + 1.0, di as f64 + 1.0)],
                    RED.stroke_width(2),
                )))
                .map_err(svg_err)?
                .label("best proposal")
                .legend(|(x, y)| Rectangle::new([(x, y - 5), (x + 10, y + 5)], RED.stroke_width(2)));
            chart
                .configure_series_labels()
                .position(SeriesLabelPosition::UpperRight)
                .background_style(WHITE.mix(0.85))
                .border_style(BLACK)
                .draw()
                .map_err(svg_err)?;
        }
        Ok(())
    })?;

    let scale = panel((SCALE_WIDTH, MAP_HEIGHT), |root| {
        let mut chart = ChartBuilder::on(root)
            .margin_top(40)
            .margin_bottom(52)
            .margin_right(10)
            .y_label_area_size(45)
            .build_cartesian_2d(0.0..1.0, 0.0..1.0)
            .map_err(svg_err)?;
        chart
            .configure_mesh()
            .disable_mesh()
            .disable_x_axis()
            .y_desc(f.map_which.label())
            .axis_desc_style(("sans-serif", 15))
            .label_style(("sans-serif", 13))
            .y_labels(6)
            .draw()
            .map_err(svg_err)?;
        const STEPS: usize = 64;
        chart
            .draw_series((0..STEPS).map(|i| {
                let (lo, hi) = (i as f64 / STEPS as f64, (i + 1) as f64 / STEPS as f64);
                Rectangle::new([(0.0, lo), (1.0, hi)], map_colour(((lo + hi) / 2.0) as f32).filled())
            }))
            .map_err(svg_err)?;
        Ok(())
    })?;

    let n = f.proposals.len();
    let proposals = panel((WIDTH, proposals_height), |root| {
        // Rows: rank r at y = n + 1 − r (best at the top), the ground truth at n + 1.
        let top = (n + 1) as f64;
        let caption = match f.truth {
            Some(_) => format!("top {n} proposals (best first) and the ground truth"),
            None => format!("top {n} proposals (best first)"),
        };
        let mut chart = ChartBuilder::on(root)
            .caption(caption, ("sans-serif", 16))
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(55)
            // Room after the video's end for the last bar's score, and two empty rows
            // under the last proposal for the legend.
            .build_cartesian_2d(0.0..f.length * 1.1, -1.6..top + 0.6)
            .map_err(svg_err)?;
        chart
            .configure_mesh()
            .disable_y_mesh()
            .x_desc(axis.as_str())
            .y_desc("rank")
            .y_labels(n + 4)
            .y_label_formatter(&|&v| {
                let r = v.round();
                if (v - r).abs() > 1e-6 || r < 1.0 || r > top {
                    String::new()
                } else if r == top {
                    "GT".into()
                } else {
                    format!("#{}", n + 1 - r as usize)
                }
            })
            .draw()
            .map_err(svg_err)?;
        if let Some(truth) = &f.truth {
            chart
                .draw_series(truth.iter().map(|&[s, e]| {
                    let (s, e) = (s.clamp(0.0, f.length), e.clamp(0.0, f.length));
                    Rectangle::new([(s, top - 0.3), (e, top + 0.3)], GT_COLOUR.filled())
                }))
                .map_err(svg_err)?
                .label("ground truth")
                .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], GT_COLOUR.stroke_width(8)));
        }
        chart
            .draw_series(f.proposals.iter().enumerate().map(|(i, &(s, e, _))| {
                let y = (n - i) as f64;
                Rectangle::new([(s, y - 0.3), (e, y + 0.3)], PROPOSAL_COLOUR.filled())
            }))
            .map_err(svg_err)?
            .label("proposal (score after the bar)")
            .legend(|(x, y)| PathElement::new(vec![(x, y), (x + 20, y)], PROPOSAL_COLOUR.stroke_width(8)));
        chart
            .draw_series(f.proposals.iter().enumerate().map(|(i, &(_, e, score))| {
                let y = (n - i) as f64;
                Text::new(
                    format!("{score:.3}"),
                    (e + f.length * 0.005, y),
                    TextStyle::from(("sans-serif", 13).into_font()).pos(Pos::new(HPos::Left, VPos::Center)),
                )
            }))
            .map_err(svg_err)?;
        chart
            .configure_series_labels()
            .position(SeriesLabelPosition::LowerRight)
            .background_style(WHITE.mix(0.85))
            .border_style(BLACK)
            .draw()
            .map_err(svg_err)
    })?;

    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" xmlns="http://www.w3.org/2000/svg">"#
    );
    let _ = writeln!(svg, "<title>{}</title>", escape(&f.title));
    let _ = writeln!(svg, r##"<rect width="{WIDTH}" height="{height}" fill="#FFFFFF"/>"##);
    let map_y = TITLE_HEIGHT + CURVES_HEIGHT;
    for (id, x, y, body) in [
        ("title", 0, 0, &title),
        ("curves", 0, TITLE_HEIGHT, &curves),
        ("confidence-map", 0, map_y, &map),
        ("colour-scale", WIDTH - SCALE_WIDTH, map_y, &scale),
        ("proposals", 0, map_y + MAP_HEIGHT, &proposals),
    ] {
        let _ = writeln!(svg, r#"<g id="{id}" transform="translate({x},{y})">"#);
        svg.push_str(body);
        svg.push_str("</g>\n");
    }
    svg.push_str("</svg>\n");
    Ok(svg)
}

/// Runs `bmn-edge plot`.
pub fn run(a: Args) -> Result<()> {
    if a.top == 0 {
        bail!("--top must be at least 1");
    }
    if let Some(d) = a.duration {
        if !(d.is_finite() && d > 0.0) {
            bail!("--duration must be a positive number of seconds, got {d}");
        }
    }
    let video_id = a
        .video_id
        .clone()
        .unwrap_or_else(|| a.features.file_stem().map_or("video".into(), |s| s.to_string_lossy().into_owned()));
    // The ground truth is checked before the model loads.
    let truth = a.ground_truth.as_deref().map(|p| read_truth(p, &video_id)).transpose()?;
    let gt_duration = truth.as_ref().and_then(|t| t.duration);
    if let (Some(d), Some(g)) = (a.duration, gt_duration) {
        if (d - g).abs() > 1e-9 * g {
            log::warn!("--duration {d} differs from the ground truth's duration_second {g}; using --duration");
        }
    }
    let duration = a.duration.or(gt_duration);
    if duration.is_none() && truth.as_ref().is_some_and(|t| !t.segments.is_empty()) {
        bail!(
            "the ground truth's segments are in seconds but video {video_id:?} has no duration_second there: give --duration"
        );
    }

    let options = a.engine.options(available_cores(), a.convention.map(Into::into))?;
    let mut engine = Engine::load(&a.model, &options).with_context(|| format!("loading {}", a.model.display()))?;
    process::prepare_for_windows();
    let features = read_features(&a.features)?;
    let (l, c) = (features.snippets, features.channels);
    let info = engine.info();
    if c != info.channels {
        bail!(
            "{}: feature width C = {c} does not match the model's input width C = {} ({} rows of {c} values read)",
            a.features.display(),
            info.channels,
            l
        );
    }
    let mode = match a.mode {
        Some(m) => m.into(),
        None if info.window_mode == Some(WindowMode::Rescale) => WindowMode::Rescale,
        None => WindowMode::Sliding,
    };
    let cfg = engine.config().post();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    let rescale_epsilon = duration.map_or(0.0, |dur| 0.0001 * l as f64 / dur);
    let opts = DetectOptions { mode, top_k: a.top, hop: a.hop, rescale_epsilon };
    // Every window's outputs are kept (2·D·T + 2·T values each: 80 kB at T = D = 100).
    let mut windows: Vec<WindowResult> = Vec::new();
    let result = detect_video(&mut engine, &features.data, l, &opts, |_, w| -> Result<()> {
        windows.push(w.clone());
        process::release_free_memory();
        Ok(())
    })?;
    let count = windows.len();
    if let Some(k) = a.window {
        if k >= count {
            bail!("--window {k}: the video has {count} window(s) (0 to {})", count - 1);
        }
    }

    // Grid positions → the time unit: p / L of the video (sliding) or p / T (rescale).
    let grid = if mode == WindowMode::Rescale { t } else { l };
    let (unit, length) = match duration {
        Some(dur) => ("s", dur),
        None => ("snippets", l as f64),
    };
    let at = |p: f64| p / grid as f64 * length;
    let (start_mean, end_mean) = mean_curves(&windows, grid);
    let end_offset = match cfg.convention() {
        Convention::Mmaction2 => 0.0,
        Convention::Paddle => 1.0,
    };
    let start_curve = start_mean.iter().enumerate().map(|(p, &v)| (at(p as f64), v)).collect();
    let end_curve = end_mean.iter().enumerate().map(|(p, &v)| (at(p as f64 + end_offset), v)).collect();
    let curve_note = if mode == WindowMode::Rescale {
        format!("whole video rescaled to T = {t}")
    } else if count == 1 {
        "one window".to_string()
    } else {
        format!("mean over the {count} overlapping windows covering each snippet")
    };

    let best = match result.proposals.first() {
        Some(p) => window_of_best(&cfg, &windows, p)?,
        None => None,
    };
    let (k, best_cell) = match (a.window, best) {
        (Some(k), Some((b, cell))) => (k, (b == k).then_some(cell)),
        (Some(k), None) => (k, None),
        (None, Some((b, cell))) => (b, Some(cell)),
        (None, None) => (0, None),
    };
    let w = &windows[k];
    let map: Vec<f32> = (0..d)
        .flat_map(|di| (0..t).map(move |s| (di, s)))
        .map(|(di, s)| map_value(&w.outputs.confidence, d, t, a.map, di, s))
        .collect();
    let chosen = match (a.window, best) {
        (Some(_), _) => "--window",
        (None, Some(_)) => "holds the best proposal",
        (None, None) => "no proposals: the first",
    };
    let map_caption = if mode == WindowMode::Rescale {
        format!("confidence map {} (D = {d}, T = {t}; the whole video rescaled)", a.map.label())
    } else {
        format!(
            "confidence map {} of window {k} of {count} ({chosen}; video snippets {} to {})",
            a.map.label(),
            w.start,
            w.start + w.valid as u64 - 1
        )
    };

    let proposals = result
        .proposals
        .iter()
        .take(a.top)
        .map(|p| (p.xmin.max(0.0) * length, p.xmax.min(1.0) * length, p.score))
        .collect();
    let title = format!("{video_id}: {l} snippets, {count} window(s) ({} mode, T = {t}, D = {d})", mode.name());
    let figure = Figure {
        video_id: &video_id,
        unit,
        length,
        start_curve,
        end_curve,
        curve_note,
        map,
        t,
        d,
        map_caption,
        map_which: a.map,
        best_cell,
        proposals,
        truth: truth.map(|t| t.segments),
        title,
    };
    let svg = draw(&figure)?;
    write_file(&a.out, svg.as_bytes())?;
    eprintln!(
        "{}: video {}, {l} snippets, {count} window(s), {} proposal(s) drawn, map of window {k}",
        a.out.display(),
        figure.video_id,
        figure.proposals.len()
    );
    Ok(())
}

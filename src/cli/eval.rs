//! `bmn-edge eval`: the official ActivityNet proposal metric (AR@k, AUC, the AR–AN curve),
//! and with `--detection` the official detection metric (AP per class and tIoU, mAP).

use super::output::write_output;
use anyhow::{Context, Result};
use bmn_edge::eval::detection::{
    evaluate_detection, DetectionEvaluation, DetectionGroundTruth, Detections, TiouThresholds,
};
use bmn_edge::eval::{evaluate, Evaluation, GroundTruth, Proposals, REPORTED_K};
use bmn_edge::io::{MAX_DATA_FILE_BYTES, MAX_GROUND_TRUTH_BYTES};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `bmn-edge eval`.
///
/// AR@k and AUC are in percent (published BMN: AR@100 75.01, AUC 67.10; a perfect AUC is 99);
/// with `--detection`, AP and mAP are in percent too.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ground truth in ActivityNet format: {"database": {video: {"subset", "annotations": [{"segment": [s, e], "label": "..."}]}}} (labels needed with --detection).
    #[arg(long)]
    ground_truth: PathBuf,
    /// Proposals in ActivityNet results format: {"results": {video: [{"segment": [s, e], "score": x}]}}; with --detection, detections: [{"label": "...", "score": x, "segment": [s, e]}].
    #[arg(long)]
    proposals: PathBuf,
    /// Evaluate only the ground-truth videos of this subset (e.g. validation); default: all videos.
    #[arg(long)]
    subset: Option<String>,
    /// Labelled detections: the official ActivityNet detection metric (AP per class at each tIoU, mAP, average mAP).
    #[arg(long)]
    detection: bool,
    /// With --detection: the tIoU thresholds, comma-separated (default 0.5:0.05:0.95, numpy's linspace; THUMOS: 0.3,0.4,0.5,0.6,0.7).
    #[arg(long, value_name = "LIST", requires = "detection")]
    tiou: Option<String>,
    /// Print {"AR@1", "AR@5", "AR@10", "AR@100", "AUC"} as one JSON object (percent); with --detection {"tIoU", "mAP", "average_mAP", "classes": [{"label", "AP", ...}], ...} (percent).
    #[arg(long)]
    json: bool,
    /// Write the AR–AN curve as CSV (columns an,ar; AR in percent, 100 rows).
    #[arg(long, conflicts_with = "detection")]
    curve: Option<PathBuf>,
}

/// A JSON input: a regular file of at most `max_bytes`, UTF-8 (a byte-order mark dropped).
fn read(path: &Path, what: &str, max_bytes: u64) -> Result<String> {
    bmn_edge::io::read_text(path, max_bytes).with_context(|| format!("cannot read the {what} file {}", path.display()))
}

/// Runs `bmn-edge eval`.
pub fn run(a: Args) -> Result<()> {
    if a.detection {
        return run_detection(a);
    }
    let gt_text = read(&a.ground_truth, "ground-truth", MAX_GROUND_TRUTH_BYTES)?;
    let gt = GroundTruth::from_json(&gt_text, a.subset.as_deref())
        .with_context(|| format!("{}", a.ground_truth.display()))?;
    drop(gt_text);
    let pr_text = read(&a.proposals, "proposals", MAX_DATA_FILE_BYTES)?;
    let proposals = Proposals::from_json(&pr_text).with_context(|| format!("{}", a.proposals.display()))?;
    drop(pr_text);
    let e = evaluate(&gt, &proposals)?;
    notes(&e, a.subset.is_none() && gt.subsets().len() > 1);
    if let Some(path) = &a.curve {
        write_output(Some(path), curve_csv(&e).trim_end())
            .with_context(|| format!("writing the curve to {}", path.display()))?;
    }
    let text = if a.json { json_summary(&e) } else { human(&e, a.subset.as_deref()) };
    write_output(None, text.trim_end())
}

/// Warnings about inputs that are legal but often a mistake, on stderr.
fn notes(e: &Evaluation, several_subsets: bool) {
    if e.videos_without_proposals > 0 {
        let hint = if several_subsets { "; the file has several subsets: use --subset to evaluate one" } else { "" };
        eprintln!(
            "note: {} of {} ground-truth videos have no proposals (they recall nothing){hint}",
            e.videos_without_proposals, e.videos
        );
    }
    if e.proposals_outside > 0 {
        eprintln!(
            "note: {} proposals of {} videos not in the ground truth are never matched but count in the total \
             (official ratio = 100·V/N), which lowers the scores",
            e.proposals_outside, e.videos_outside
        );
    }
}

/// `{"AR@1": …, "AR@5": …, "AR@10": …, "AR@100": …, "AUC": …}`, in that order.
fn json_summary(e: &Evaluation) -> String {
    let s = e.summary();
    let num = |x: f64| serde_json::to_string(&x).unwrap_or_else(|_| "null".into());
    let mut out = String::from("{");
    for (k, v) in REPORTED_K.iter().zip(s.ar) {
        let _ = write!(out, "\"AR@{k}\": {}, ", num(v));
    }
    let _ = write!(out, "\"AUC\": {}}}", num(s.auc));
    out
}

fn human(e: &Evaluation, subset: Option<&str>) -> String {
    let s = e.summary();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ActivityNet proposal metric ({}): {} videos, {} ground truths, {} of {} proposals kept; AR and AUC in percent",
        subset.map_or_else(|| "all videos".to_string(), |s| format!("subset {s}")),
        e.videos,
        e.ground_truths,
        e.proposals_kept,
        e.proposals_total
    );
    for (k, v) in REPORTED_K.iter().zip(s.ar) {
        let _ = writeln!(out, "{:<8}{v:>7.2}", format!("AR@{k}"));
    }
    let _ = writeln!(out, "{:<8}{:>7.2}", "AUC", s.auc);
    out
}

fn curve_csv(e: &Evaluation) -> String {
    let mut out = String::from("an,ar\n");
    for (an, ar) in e.average_number.iter().zip(&e.average_recall) {
        let _ = writeln!(out, "{an},{}", 100.0 * ar);
    }
    out
}

/// `eval --detection`.
fn run_detection(a: Args) -> Result<()> {
    let thresholds = match &a.tiou {
        Some(list) => TiouThresholds::parse(list).context("--tiou")?,
        None => TiouThresholds::default(),
    };
    let gt_text = read(&a.ground_truth, "ground-truth", MAX_GROUND_TRUTH_BYTES)?;
    let gt = DetectionGroundTruth::from_json(&gt_text, a.subset.as_deref())
        .with_context(|| format!("{}", a.ground_truth.display()))?;
    drop(gt_text);
    let pr_text = read(&a.proposals, "detections", MAX_DATA_FILE_BYTES)?;
    let detections = Detections::from_json(&pr_text).with_context(|| format!("{}", a.proposals.display()))?;
    drop(pr_text);
    let e = evaluate_detection(&gt, &detections, &thresholds)?;
    detection_notes(&e, a.subset.as_deref(), gt.subsets().len() > 1);
    let text = if a.json { detection_json(&e) } else { detection_human(&e, a.subset.as_deref()) };
    write_output(None, text.trim_end())
}

/// Legal inputs that are often a mistake, on stderr.
fn detection_notes(e: &DetectionEvaluation, subset: Option<&str>, several_subsets: bool) {
    let several_subsets = subset.is_none() && several_subsets;
    if e.predictions == 0 {
        eprintln!("note: the detections file has no detections: every AP is 0");
    }
    if e.videos_without_predictions > 0 {
        let hint = if several_subsets { "; the file has several subsets: use --subset to evaluate one" } else { "" };
        eprintln!(
            "note: {} of {} ground-truth videos have no detections (their instances are missed){hint}",
            e.videos_without_predictions, e.videos
        );
    }
    if e.predictions_outside > 0 {
        eprintln!(
            "note: {} detections of {} videos not in the ground truth{} are false positives (as in the official code)",
            e.predictions_outside,
            e.videos_outside,
            if subset.is_some() { " (or not in its subset)" } else { "" }
        );
    }
    let empty: Vec<&str> = e.classes_without_predictions().collect();
    if !empty.is_empty() {
        let shown: Vec<String> = empty.iter().take(10).map(|l| format!("{l:?}")).collect();
        let more = if empty.len() > 10 { format!(" and {} more", empty.len() - 10) } else { String::new() };
        eprintln!(
            "note: {} of {} classes have no detections (AP 0, counted in the mean): {}{more}",
            empty.len(),
            e.classes.len(),
            shown.join(", ")
        );
    }
    if e.nan_matches > 0 {
        eprintln!(
            "note: {} matches (over all thresholds) are of a zero-length detection with a zero-length ground truth \
             (tIoU 0/0 = NaN, which the official arithmetic counts as a match)",
            e.nan_matches
        );
    }
}

fn num(x: f64) -> String {
    serde_json::to_string(&x).unwrap_or_else(|_| "null".into())
}

fn nums(xs: impl IntoIterator<Item = f64>) -> String {
    let v: Vec<String> = xs.into_iter().map(num).collect();
    format!("[{}]", v.join(", "))
}

/// One JSON object; AP and mAP in percent, classes in the official index order.
fn detection_json(e: &DetectionEvaluation) -> String {
    let mut out = String::from("{\"units\": \"percent\", ");
    let _ = write!(out, "\"tIoU\": {}, ", nums(e.thresholds.iter().copied()));
    let _ = write!(out, "\"mAP\": {}, ", nums(e.map.iter().map(|m| 100.0 * m)));
    let _ = write!(out, "\"average_mAP\": {}, \"classes\": [", num(100.0 * e.average_map));
    for (i, c) in e.classes.iter().enumerate() {
        let label = serde_json::to_string(&c.label).unwrap_or_else(|_| "null".into());
        let _ = write!(
            out,
            "{}{{\"label\": {label}, \"ground_truths\": {}, \"predictions\": {}, \"AP\": {}}}",
            if i == 0 { "" } else { ", " },
            c.ground_truths,
            c.predictions,
            nums(c.ap.iter().map(|a| 100.0 * a))
        );
    }
    let _ = write!(
        out,
        "], \"videos\": {}, \"ground_truths\": {}, \"predictions\": {}, \"predictions_outside\": {}}}",
        e.videos, e.ground_truths, e.predictions, e.predictions_outside
    );
    out
}

/// A label as printed in the table: control characters escaped.
fn shown_label(l: &str) -> String {
    if l.chars().any(char::is_control) {
        l.escape_debug().to_string()
    } else {
        l.to_string()
    }
}

fn detection_human(e: &DetectionEvaluation, subset: Option<&str>) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "ActivityNet detection metric ({}): {} videos, {} ground truths of {} classes, {} detections; AP and mAP in percent",
        subset.map_or_else(|| "all videos".to_string(), |s| format!("subset {s}")),
        e.videos,
        e.ground_truths,
        e.classes.len(),
        e.predictions
    );
    let labels: Vec<String> = e.classes.iter().map(|c| shown_label(&c.label)).collect();
    let width = labels.iter().map(|l| l.chars().count()).chain([11]).max().unwrap_or(11);
    let _ = write!(out, "{:<width$}", "tIoU");
    for t in &e.thresholds {
        let _ = write!(out, " {t:>6.2}");
    }
    out.push('\n');
    for (c, l) in e.classes.iter().zip(&labels) {
        let pad = width - l.chars().count();
        let _ = write!(out, "{l}{:pad$}", "");
        for a in &c.ap {
            let _ = write!(out, " {:>6.2}", 100.0 * a);
        }
        out.push('\n');
    }
    let _ = write!(out, "{:<width$}", "mAP");
    for m in &e.map {
        let _ = write!(out, " {:>6.2}", 100.0 * m);
    }
    out.push('\n');
    let range = match (e.thresholds.first(), e.thresholds.last()) {
        (Some(a), Some(b)) if e.thresholds.len() > 1 => {
            format!("tIoU {a:.2}:{b:.2}, {} thresholds", e.thresholds.len())
        }
        (Some(a), _) => format!("tIoU {a:.2}"),
        _ => String::new(),
    };
    let _ = writeln!(out, "average mAP ({range}): {:.2}", 100.0 * e.average_map);
    out
}

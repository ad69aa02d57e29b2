//! `bmn-edge eval`: the official ActivityNet proposal metric (AR@k, AUC, the AR–AN curve).

use super::output::write_output;
use anyhow::{Context, Result};
use bmn_edge::eval::{evaluate, Evaluation, GroundTruth, Proposals, REPORTED_K};
use bmn_edge::io::{MAX_DATA_FILE_BYTES, MAX_GROUND_TRUTH_BYTES};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// Arguments of `bmn-edge eval`.
///
/// AR@k and AUC are in percent (published BMN: AR@100 75.01, AUC 67.10; a perfect AUC is 99).
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Ground truth in ActivityNet format: {"database": {video: {"subset", "annotations": [{"segment": [s, e]}]}}}.
    #[arg(long)]
    ground_truth: PathBuf,
    /// Proposals in ActivityNet results format: {"results": {video: [{"segment": [s, e], "score": x}]}}.
    #[arg(long)]
    proposals: PathBuf,
    /// Evaluate only the ground-truth videos of this subset (e.g. validation); default: all videos.
    #[arg(long)]
    subset: Option<String>,
    /// Print {"AR@1", "AR@5", "AR@10", "AR@100", "AUC"} as one JSON object (percent).
    #[arg(long)]
    json: bool,
    /// Write the AR–AN curve as CSV (columns an,ar; AR in percent, 100 rows).
    #[arg(long)]
    curve: Option<PathBuf>,
}

/// A JSON input: a regular file of at most `max_bytes`, UTF-8 (a byte-order mark dropped).
fn read(path: &Path, what: &str, max_bytes: u64) -> Result<String> {
    bmn_edge::io::read_text(path, max_bytes).with_context(|| format!("cannot read the {what} file {}", path.display()))
}

/// Runs `bmn-edge eval`.
pub fn run(a: Args) -> Result<()> {
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

//! The official ActivityNet proposal metric: average recall against the average number of
//! proposals per video (AR–AN), AR@1/5/10/100 and the area under the curve (reference §4).
//!
//! This is the arithmetic of ActivityNet's `Evaluation/eval_proposal.py` as BSN and BMN call
//! it (`max_avg_nr_proposals = 100`, tIoU thresholds `np.linspace(0.5, 0.95, 10)`),
//! reimplemented from its semantics, quirks included:
//!
//! * **V** is the number of ground-truth videos of the chosen subset that have at least one
//!   annotation; a video with an empty `annotations` list does not count.
//! * **N** is every proposal in the results file, *including those of videos outside the
//!   ground truth*. They are never matched, but they lower `ratio = 100·V/N`: a file that
//!   also holds another subset's proposals scores lower. [`Evaluation::proposals_outside`]
//!   counts them.
//! * Per video, proposals are sorted by score (descending) and the first
//!   `min(int(n·ratio), n)` kept; K is the total kept.
//! * For k = 1..100, `pcn_k = (k/100.0)·(100·V/K)` and a video with `kept_v` proposals uses
//!   its first `min(int(kept_v·pcn_k), kept_v)`. The truncation is of an f64 product, so
//!   with exactly 100 proposals per video k = 29, 57 and 58 use one proposal fewer
//!   (`100 · 0.29 = 28.999999999999996`).
//! * A ground truth is recalled at threshold θ when a used proposal has `tIoU ≥ θ`;
//!   `recall[θ][k]` is recalled over all ground truths; videos without proposals recall
//!   nothing. `AR_k` is the mean over the 10 thresholds; `AN_k = pcn_k·(K/V)` (≈ k).
//! * `AUC = 100·trapz(AR, AN)/AN[-1]`: AN starts at 1, so a perfect score is 99.
//!
//! **Units.** AR@k and AUC are reported in percent, as papers print them (BMN: AR@100 75.01,
//! AUC 67.10) and as the official script prints the AUC; BMN's script prints AR@k as the
//! fraction `np.mean(recall[:, k-1])`, which is `AR@k / 100` here. [`Evaluation::recall`]
//! and [`Evaluation::average_recall`] hold fractions, as the official arrays do.
//!
//! **Bit-level fidelity.** Every f64 operation follows the official order (the tIoU, the
//! products that are truncated, the threshold values, numpy's pairwise summation in
//! `trapz`), so the arrays and the AUC are the official ones bit for bit, which matters
//! because `tIoU ≥ θ` and `int(·)` are discontinuous. Two choices where the official code is
//! silent or fails:
//!
//! * equal scores keep file order (the official order is numpy's unstable `argsort`
//!   reversed, which depends on the machine's sorting kernels);
//! * with N = 0 or K = 0 the official code divides by zero; here that is
//!   [`EvalErrorKind::NoProposals`].
//!
//! Inputs are parsed from JSON text with errors that name the offending entry
//! (`results["v_x"][3].segment: end 1.2 is before start 3.4`).
//!
//! The detection metric (labelled segments: AP per class, mAP over tIoU 0.5:0.95) is in
//! [`detection`].

pub mod detection;

use crate::json::SegmentScore;
use crate::results::ResultsFile;
use serde_json::{Map, Value};
use std::cmp::Ordering;
use std::collections::BTreeMap;
use std::fmt;

/// Number of tIoU thresholds (0.50, 0.55, …, 0.95).
pub const NUM_THRESHOLDS: usize = 10;
/// Number of points on the AR–AN curve (k = 1..100).
pub const NUM_POINTS: usize = 100;
/// `max_avg_nr_proposals`: the average number of proposals per video the curve ends at.
pub const MAX_AVG_PROPOSALS: usize = 100;
/// The AR@k values reported by [`Summary`].
pub const REPORTED_K: [usize; 4] = [1, 5, 10, 100];

/// The tIoU thresholds exactly as `np.linspace(0.5, 0.95, 10)` computes them:
/// `i·((0.95 − 0.5)/9) + 0.5`, the last one set to 0.95 (so the ninth is
/// 0.8999999999999999, not 0.9).
pub fn thresholds() -> [f64; NUM_THRESHOLDS] {
    let (start, stop) = (0.5f64, 0.95f64);
    let step = (stop - start) / (NUM_THRESHOLDS - 1) as f64;
    let mut t = [0.0; NUM_THRESHOLDS];
    for (i, x) in t.iter_mut().enumerate() {
        *x = i as f64 * step + start;
    }
    t[NUM_THRESHOLDS - 1] = stop;
    t
}

/// What was wrong with the inputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EvalErrorKind {
    /// The text is not valid JSON.
    Json,
    /// A required key is missing or a value has the wrong type.
    Format,
    /// A segment is not two finite numbers with `end ≥ start`, or a score is not finite
    /// (or, for detections, negative).
    Segment,
    /// A detection or ground-truth label is an empty string.
    Label,
    /// A detection's label is not a class of the ground truth (detection metric).
    UnknownLabel,
    /// A tIoU threshold list is empty or has a value that is not a number in `[0, 1]`.
    Threshold,
    /// No ground-truth video with annotations (in the chosen subset).
    EmptyGroundTruth,
    /// No ground-truth video has a proposal: the curve is undefined.
    NoProposals,
}

/// An invalid ground-truth or proposals file, or inputs the metric is undefined for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    kind: EvalErrorKind,
    message: String,
}

impl EvalError {
    fn new(kind: EvalErrorKind, message: impl Into<String>) -> Self {
        EvalError { kind, message: message.into() }
    }
    /// The kind of error.
    pub fn kind(&self) -> EvalErrorKind {
        self.kind
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

// ----------------------------------------------------------------------------- JSON helpers

fn parse_json(text: &str) -> Result<Value, EvalError> {
    serde_json::from_str(text).map_err(|e| {
        let mut msg = format!("not valid JSON: {e}");
        if e.is_syntax() && near_non_finite(text, e.line(), e.column()) {
            msg.push_str(" (NaN and Infinity are not JSON numbers; write finite values)");
        }
        EvalError::new(EvalErrorKind::Json, msg)
    })
}

/// Whether the text around a syntax error (1-based line and column) holds `NaN` or
/// `Infinity`, which Python's `json.dump` writes by default.
fn near_non_finite(text: &str, line: usize, column: usize) -> bool {
    let Some(l) = text.lines().nth(line.saturating_sub(1)) else {
        return false;
    };
    let from = column.saturating_sub(12);
    let to = (column + 12).min(l.len());
    let window: String = l.bytes().skip(from).take(to.saturating_sub(from)).map(char::from).collect();
    window.contains("NaN") || window.contains("Infinity")
}

fn as_object<'a>(v: &'a Value, at: &dyn Fn() -> String) -> Result<&'a Map<String, Value>, EvalError> {
    v.as_object().ok_or_else(|| {
        EvalError::new(EvalErrorKind::Format, format!("{}: expected an object, found {}", at(), type_name(v)))
    })
}

fn as_array<'a>(v: &'a Value, at: &dyn Fn() -> String) -> Result<&'a [Value], EvalError> {
    match v {
        Value::Array(a) => Ok(a),
        _ => Err(EvalError::new(EvalErrorKind::Format, format!("{}: expected a list, found {}", at(), type_name(v)))),
    }
}

fn field<'a>(m: &'a Map<String, Value>, key: &str, at: &dyn Fn() -> String) -> Result<&'a Value, EvalError> {
    m.get(key).ok_or_else(|| EvalError::new(EvalErrorKind::Format, format!("{}: missing key \"{key}\"", at())))
}

fn number(v: &Value, at: &dyn Fn() -> String) -> Result<f64, EvalError> {
    match v.as_f64() {
        Some(x) if x.is_finite() => Ok(x),
        Some(x) => Err(EvalError::new(EvalErrorKind::Segment, format!("{}: {x} is not a finite number", at()))),
        None => {
            Err(EvalError::new(EvalErrorKind::Format, format!("{}: expected a number, found {}", at(), type_name(v))))
        }
    }
}

/// `[start, end]`: two finite numbers with `end ≥ start`.
fn segment(v: &Value, at: &dyn Fn() -> String) -> Result<[f64; 2], EvalError> {
    let a = as_array(v, at)?;
    if a.len() != 2 {
        return Err(EvalError::new(
            EvalErrorKind::Format,
            format!("{}: expected [start, end], found a list of {}", at(), a.len()),
        ));
    }
    let start = number(&a[0], &|| format!("{}[0]", at()))?;
    let end = number(&a[1], &|| format!("{}[1]", at()))?;
    check_segment([start, end], at)
}

fn check_segment(s: [f64; 2], at: &dyn Fn() -> String) -> Result<[f64; 2], EvalError> {
    let [start, end] = s;
    if !(start.is_finite() && end.is_finite()) {
        return Err(EvalError::new(EvalErrorKind::Segment, format!("{}: [{start}, {end}] is not finite", at())));
    }
    if end < start {
        return Err(EvalError::new(EvalErrorKind::Segment, format!("{}: end {end} is before start {start}", at())));
    }
    Ok(s)
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

// ----------------------------------------------------------------------------- inputs

/// Ground-truth instances per video: the videos of one subset that have annotations.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct GroundTruth {
    videos: BTreeMap<String, Vec<[f64; 2]>>,
    subsets: BTreeMap<String, usize>,
}

impl GroundTruth {
    /// Reads an ActivityNet ground-truth file:
    /// `{"database": {video: {"subset", "annotations": [{"segment": [s, e], …}], …}}, …}`.
    ///
    /// With `subset`, only videos whose `"subset"` equals it are read (the official script's
    /// default is `"validation"`); without, every video. Only the selected videos are
    /// checked, and only the keys the metric needs (`annotations`, each `segment`; `subset`
    /// when filtering). `version`, `taxonomy`, `duration_second` and `label` are optional.
    /// Videos without annotations are skipped, as the official code does.
    pub fn from_json(text: &str, subset: Option<&str>) -> Result<Self, EvalError> {
        let root = parse_json(text)?;
        let root = as_object(&root, &|| "ground truth".into())?;
        let db = as_object(field(root, "database", &|| "ground truth".into())?, &|| "database".into())?;
        let mut videos = BTreeMap::new();
        let mut subsets: BTreeMap<String, usize> = BTreeMap::new();
        for (id, v) in db {
            let at = || format!("database[{id:?}]");
            let v = as_object(v, &at)?;
            match (subset, v.get("subset")) {
                (None, Some(Value::String(s))) => *subsets.entry(s.clone()).or_default() += 1,
                (None, _) => {}
                (Some(want), s) => {
                    let s = s.ok_or_else(|| {
                        EvalError::new(
                            EvalErrorKind::Format,
                            format!("{}: missing key \"subset\" (needed to select subset {want:?})", at()),
                        )
                    })?;
                    let s = s.as_str().ok_or_else(|| {
                        EvalError::new(
                            EvalErrorKind::Format,
                            format!("{}.subset: expected a string, found {}", at(), type_name(s)),
                        )
                    })?;
                    *subsets.entry(s.to_string()).or_default() += 1;
                    if s != want {
                        continue;
                    }
                }
            }
            let anns = as_array(field(v, "annotations", &at)?, &|| format!("{}.annotations", at()))?;
            let mut segs = Vec::with_capacity(anns.len());
            for (i, a) in anns.iter().enumerate() {
                let at_a = || format!("{}.annotations[{i}]", at());
                let a = as_object(a, &at_a)?;
                segs.push(segment(field(a, "segment", &at_a)?, &|| format!("{}.segment", at_a()))?);
            }
            if !segs.is_empty() {
                videos.insert(id.clone(), segs);
            }
        }
        if videos.is_empty() {
            let msg = match subset {
                None if db.is_empty() => "ground truth: \"database\" is empty".to_string(),
                None => format!("ground truth: none of the {} videos has annotations", db.len()),
                Some(want) => {
                    let present: Vec<String> = subsets.iter().map(|(s, n)| format!("{s:?} ({n})")).collect();
                    let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
                    format!(
                        "ground truth: subset {want:?} has no videos with annotations (subsets in the file: {present})"
                    )
                }
            };
            return Err(EvalError::new(EvalErrorKind::EmptyGroundTruth, msg));
        }
        Ok(GroundTruth { videos, subsets })
    }

    /// Builds ground truth from `(video, segments)` pairs; videos without segments are
    /// skipped, and a video given twice keeps the last (as a JSON object would).
    pub fn from_videos<I, S>(videos: I) -> Result<Self, EvalError>
    where
        I: IntoIterator<Item = (S, Vec<[f64; 2]>)>,
        S: Into<String>,
    {
        let mut out = BTreeMap::new();
        for (id, segs) in videos {
            let id = id.into();
            for (i, s) in segs.iter().enumerate() {
                check_segment(*s, &|| format!("ground truth {id:?} segment {i}"))?;
            }
            if segs.is_empty() {
                out.remove(&id);
            } else {
                out.insert(id, segs);
            }
        }
        if out.is_empty() {
            return Err(EvalError::new(EvalErrorKind::EmptyGroundTruth, "ground truth: no video has a segment"));
        }
        Ok(GroundTruth { videos: out, subsets: BTreeMap::new() })
    }

    /// The `subset` values of the file's videos (all of them, selected or not) and how many
    /// videos each has; empty for [`GroundTruth::from_videos`].
    pub fn subsets(&self) -> &BTreeMap<String, usize> {
        &self.subsets
    }

    /// V: the number of videos (each has at least one instance).
    pub fn num_videos(&self) -> usize {
        self.videos.len()
    }

    /// The number of ground-truth instances over all videos.
    pub fn num_instances(&self) -> usize {
        self.videos.values().map(Vec::len).sum()
    }

    /// The videos and their `[start, end]` instances, by video id.
    pub fn videos(&self) -> impl Iterator<Item = (&str, &[[f64; 2]])> {
        self.videos.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

/// Scored proposals per video, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Proposals {
    videos: BTreeMap<String, Vec<SegmentScore>>,
}

impl Proposals {
    /// Reads an ActivityNet results file: `{"results": {video: [{"segment": [s, e],
    /// "score": x}]}, …}`. Only `results` is required (`version` and `external_data` are
    /// optional). Every segment needs `end ≥ start` and every value must be finite.
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let root = parse_json(text)?;
        let root = as_object(&root, &|| "proposals".into())?;
        let results = as_object(field(root, "results", &|| "proposals".into())?, &|| "results".into())?;
        let mut videos = BTreeMap::new();
        for (id, list) in results {
            let at = || format!("results[{id:?}]");
            let list = as_array(list, &at)?;
            let mut out = Vec::with_capacity(list.len());
            for (i, p) in list.iter().enumerate() {
                let at_p = || format!("{}[{i}]", at());
                let p = as_object(p, &at_p)?;
                let seg = segment(field(p, "segment", &at_p)?, &|| format!("{}.segment", at_p()))?;
                let score = number(field(p, "score", &at_p)?, &|| format!("{}.score", at_p()))?;
                out.push(SegmentScore { segment: seg, score });
            }
            videos.insert(id.clone(), out);
        }
        Ok(Proposals { videos })
    }

    /// Takes the proposals of a [`ResultsFile`], checking segments and scores.
    pub fn from_results(file: &ResultsFile) -> Result<Self, EvalError> {
        for (id, list) in &file.results {
            for (i, p) in list.iter().enumerate() {
                let at = || format!("results[{id:?}][{i}]");
                check_segment(p.segment, &at)?;
                if !p.score.is_finite() {
                    return Err(EvalError::new(
                        EvalErrorKind::Segment,
                        format!("{}.score: {} is not a finite number", at(), p.score),
                    ));
                }
            }
        }
        Ok(Proposals { videos: file.results.clone() })
    }

    /// N: the number of proposals over all videos (the official total).
    pub fn total(&self) -> usize {
        self.videos.values().map(Vec::len).sum()
    }

    /// The proposals of one video, in file order.
    pub fn video(&self, id: &str) -> Option<&[SegmentScore]> {
        self.videos.get(id).map(Vec::as_slice)
    }
}

// ----------------------------------------------------------------------------- metric

/// The AR–AN curve and the numbers derived from it.
#[derive(Debug, Clone, PartialEq)]
pub struct Evaluation {
    /// `recall[θ][k−1]`: fraction of ground truths recalled at threshold θ with pcn_k.
    pub recall: [[f64; NUM_POINTS]; NUM_THRESHOLDS],
    /// `AR_k` (fraction): the mean of `recall[..][k−1]` over the thresholds.
    pub average_recall: [f64; NUM_POINTS],
    /// `AN_k`: the average number of proposals per video at point k (≈ k).
    pub average_number: [f64; NUM_POINTS],
    /// `100·trapz(AR, AN)/AN[−1]`, in percent (at most 99).
    pub auc: f64,
    /// V: ground-truth videos.
    pub videos: usize,
    /// Ground-truth instances.
    pub ground_truths: usize,
    /// N: proposals in the file, all videos.
    pub proposals_total: usize,
    /// K: proposals kept for the ground-truth videos after the `ratio` cut.
    pub proposals_kept: usize,
    /// Ground-truth videos with no proposals in the file (they recall nothing).
    pub videos_without_proposals: usize,
    /// Proposals of videos outside the ground truth (counted in N, never matched).
    pub proposals_outside: usize,
    /// The number of videos those belong to.
    pub videos_outside: usize,
}

/// The reported numbers, in percent.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Summary {
    /// AR@1, AR@5, AR@10, AR@100 (see [`REPORTED_K`]).
    pub ar: [f64; 4],
    /// Area under the AR–AN curve.
    pub auc: f64,
}

impl Evaluation {
    /// AR@k in percent, k in 1..=100: `100·AR_k`.
    ///
    /// # Panics
    /// If k is 0 or above 100.
    pub fn ar_at(&self, k: usize) -> f64 {
        assert!((1..=NUM_POINTS).contains(&k), "AR@k needs 1 <= k <= {NUM_POINTS}, got {k}");
        100.0 * self.average_recall[k - 1]
    }

    /// AR@1/5/10/100 and the AUC, in percent.
    pub fn summary(&self) -> Summary {
        Summary { ar: REPORTED_K.map(|k| self.ar_at(k)), auc: self.auc }
    }
}

/// `tIoU` with the official operation order: `inter / ((g₁ − g₀) + (p₁ − p₀) − inter)`.
/// Two zero-length segments at one point give NaN, which matches no threshold.
#[inline]
fn tiou(g: [f64; 2], p: [f64; 2]) -> f64 {
    let inter = (g[1].min(p[1]) - g[0].max(p[0])).max(0.0);
    let union = (g[1] - g[0]) + (p[1] - p[0]) - inter;
    inter / union
}

/// numpy's `add.reduce` of a contiguous f64 array: pairwise summation with eight
/// accumulators in blocks of up to 128.
fn numpy_sum(a: &[f64]) -> f64 {
    let n = a.len();
    if n < 8 {
        a.iter().fold(0.0, |s, &x| s + x)
    } else if n <= 128 {
        let mut r = [0.0f64; 8];
        r.copy_from_slice(&a[..8]);
        let whole = n - n % 8;
        for block in a[8..whole].chunks_exact(8) {
            for (acc, &x) in r.iter_mut().zip(block) {
                *acc += x;
            }
        }
        let mut s = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
        for &x in &a[whole..] {
            s += x;
        }
        s
    } else {
        let mut n2 = n / 2;
        n2 -= n2 % 8;
        numpy_sum(&a[..n2]) + numpy_sum(&a[n2..])
    }
}

/// `np.trapz(y, x)`: `Σ (x[i+1] − x[i])·(y[i+1] + y[i]) / 2`, summed as numpy does.
fn trapz(y: &[f64], x: &[f64]) -> f64 {
    let terms: Vec<f64> = (0..y.len().saturating_sub(1)).map(|i| (x[i + 1] - x[i]) * (y[i + 1] + y[i]) / 2.0).collect();
    numpy_sum(&terms)
}

/// One ground-truth video after the `ratio` cut: how many proposals it kept, and per
/// threshold and instance the first rank (0-based, among the kept) with `tIoU ≥ θ`.
struct VideoHits {
    kept: usize,
    first_hit: Vec<[usize; NUM_THRESHOLDS]>,
}

/// Computes the official metric. Errors only when no ground-truth video keeps a proposal
/// (the official code divides by zero there).
pub fn evaluate(gt: &GroundTruth, proposals: &Proposals) -> Result<Evaluation, EvalError> {
    let v = gt.num_videos();
    let n_total = proposals.total();
    if n_total == 0 {
        return Err(EvalError::new(
            EvalErrorKind::NoProposals,
            "proposals: the file has no proposals; the metric is undefined",
        ));
    }
    let th = thresholds();
    let ratio = (MAX_AVG_PROPOSALS as f64 * v as f64) / n_total as f64;
    let mut hits = Vec::with_capacity(v);
    let mut without = 0;
    let mut order: Vec<usize> = Vec::new();
    for (id, segs) in &gt.videos {
        let Some(list) = proposals.videos.get(id).filter(|l| !l.is_empty()) else {
            without += 1;
            continue;
        };
        // Stable: equal scores keep file order. partial_cmp: -0.0 ties with 0.0, as in numpy.
        order.clear();
        order.extend(0..list.len());
        order.sort_by(|&a, &b| list[b].score.partial_cmp(&list[a].score).unwrap_or(Ordering::Equal));
        let n = list.len();
        let kept = ((n as f64 * ratio) as usize).min(n);
        let first_hit = segs
            .iter()
            .map(|&g| {
                let mut first = [usize::MAX; NUM_THRESHOLDS];
                for (rank, &i) in order[..kept].iter().enumerate() {
                    let iou = tiou(g, list[i].segment);
                    for (f, &t) in first.iter_mut().zip(&th) {
                        if *f == usize::MAX && iou >= t {
                            *f = rank;
                        }
                    }
                    // Thresholds increase: once the last is met, all are.
                    if first[NUM_THRESHOLDS - 1] != usize::MAX {
                        break;
                    }
                }
                first
            })
            .collect();
        hits.push(VideoHits { kept, first_hit });
    }
    let k_total: usize = hits.iter().map(|h| h.kept).sum();
    if k_total == 0 {
        let msg = if without == v {
            format!("none of the {v} ground-truth videos has a proposal; the metric is undefined (are the video ids the same in both files?)")
        } else {
            format!("no ground-truth video keeps a proposal after the ratio cut (ratio = 100·{v}/{n_total}); the metric is undefined")
        };
        return Err(EvalError::new(EvalErrorKind::NoProposals, msg));
    }
    let factor = (MAX_AVG_PROPOSALS as f64 * v as f64) / k_total as f64;
    let pcn: [f64; NUM_POINTS] = std::array::from_fn(|j| ((j + 1) as f64 / 100.0) * factor);
    let mut matches = [[0usize; NUM_POINTS]; NUM_THRESHOLDS];
    for h in &hits {
        if h.kept == 0 {
            continue;
        }
        for (j, &p) in pcn.iter().enumerate() {
            let used = ((h.kept as f64 * p) as usize).min(h.kept);
            for first in &h.first_hit {
                for (m, &f) in matches.iter_mut().zip(first) {
                    if f < used {
                        m[j] += 1;
                    }
                }
            }
        }
    }
    let positives = gt.num_instances() as f64;
    let recall = matches.map(|row| row.map(|m| m as f64 / positives));
    let average_recall: [f64; NUM_POINTS] = std::array::from_fn(|j| {
        let mut s = recall[0][j];
        for row in &recall[1..] {
            s += row[j];
        }
        s / NUM_THRESHOLDS as f64
    });
    let per_video = k_total as f64 / v as f64;
    let average_number = pcn.map(|p| p * per_video);
    let auc = 100.0 * trapz(&average_recall, &average_number) / average_number[NUM_POINTS - 1];
    let (mut proposals_outside, mut videos_outside) = (0, 0);
    for (id, list) in &proposals.videos {
        if !gt.videos.contains_key(id) {
            proposals_outside += list.len();
            videos_outside += 1;
        }
    }
    Ok(Evaluation {
        recall,
        average_recall,
        average_number,
        auc,
        videos: v,
        ground_truths: gt.num_instances(),
        proposals_total: n_total,
        proposals_kept: k_total,
        videos_without_proposals: without,
        proposals_outside,
        videos_outside,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gt_one(segs: &[[f64; 2]]) -> GroundTruth {
        GroundTruth::from_videos([("v", segs.to_vec())]).unwrap()
    }

    fn props(list: &[([f64; 2], f64)]) -> Proposals {
        let mut p = Proposals::default();
        p.videos.insert("v".into(), list.iter().map(|&(segment, score)| SegmentScore { segment, score }).collect());
        p
    }

    #[test]
    fn thresholds_are_numpy_linspace() {
        let t = thresholds();
        assert_eq!(t[0], 0.5);
        assert_eq!(t[8], 0.8999999999999999);
        assert_eq!(t[9], 0.95);
    }

    #[test]
    fn perfect_proposal_scores_99() {
        let e = evaluate(&gt_one(&[[2.0, 5.0]]), &props(&[([2.0, 5.0], 0.9)])).unwrap();
        assert_eq!(e.summary().ar, [100.0; 4]);
        assert!((e.auc - 99.0).abs() < 1e-12);
    }

    #[test]
    fn truncation_at_29_57_58() {
        // 100 proposals; the only hit at rank 28 is used from k = 30 on, not at k = 29.
        let list: Vec<_> = (0..100)
            .map(|r| {
                (if r == 28 { [50.0, 60.0] } else { [r as f64 * 0.1, r as f64 * 0.1 + 0.05] }, 1.0 - r as f64 / 1000.0)
            })
            .collect();
        let e = evaluate(&gt_one(&[[50.0, 60.0]]), &props(&list)).unwrap();
        assert_eq!(e.average_recall[27], 0.0);
        assert_eq!(e.average_recall[28], 0.0, "k = 29 uses 28 proposals");
        assert_eq!(e.average_recall[29], 1.0);
    }

    #[test]
    fn tiou_ties_count() {
        // tIoU exactly 0.5: recalled at θ = 0.5 only.
        let e = evaluate(&gt_one(&[[0.0, 10.0]]), &props(&[([0.0, 5.0], 1.0)])).unwrap();
        assert_eq!(e.recall[0][99], 1.0);
        assert_eq!(e.recall[1][99], 0.0);
    }

    #[test]
    fn equal_scores_keep_file_order() {
        // V = 1, N = 200 → ratio 0.5 keeps the first 100 in score order; ties keep file order,
        // so the hit at file position 100 (after 100 equal-score misses) is cut.
        let mut list = vec![([0.0, 1.0], 0.5); 100];
        list.push(([50.0, 60.0], 0.5));
        list.extend(vec![([0.0, 1.0], 0.1); 99]);
        let e = evaluate(&gt_one(&[[50.0, 60.0]]), &props(&list)).unwrap();
        assert_eq!(e.proposals_kept, 100);
        assert_eq!(e.average_recall[99], 0.0);
    }

    #[test]
    fn numpy_sum_matches_sequential_for_short() {
        assert_eq!(numpy_sum(&[1.0, 2.0, 3.0]), 6.0);
        let a: Vec<f64> = (0..300).map(|i| i as f64 * 0.5).collect();
        assert_eq!(numpy_sum(&a), a.iter().sum::<f64>());
    }

    #[test]
    fn errors_have_kinds() {
        let e = GroundTruth::from_json("{\"database\": {}}", None).unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::EmptyGroundTruth);
        let e = Proposals::from_json("{\"results\": {\"v\": [{\"segment\": [2, 1], \"score\": 1}]}}").unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::Segment);
        assert!(e.to_string().contains("results[\"v\"][0].segment"), "{e}");
        let e = Proposals::from_json("{\"results\": {\"v\": [{\"segment\": [1, 2], \"score\": NaN}]}}").unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::Json);
        assert!(e.to_string().contains("NaN"), "{e}");
        let e = evaluate(&gt_one(&[[0.0, 1.0]]), &Proposals::default()).unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::NoProposals);
    }
}

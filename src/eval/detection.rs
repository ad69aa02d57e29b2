//! The official ActivityNet temporal action **detection** metric: interpolated average
//! precision per class at each tIoU threshold, its mean over classes (mAP) and the mean of
//! mAP over the thresholds (average mAP), as `bmn-edge eval --detection` reports it.
//!
//! This is the arithmetic of ActivityNet's `Evaluation/eval_detection.py` (`ANETdetection`,
//! the ActivityNet challenge's evaluation), reimplemented from its semantics:
//!
//! * **Classes** are the labels of the selected ground-truth annotations, numbered in order
//!   of first appearance (database order, then annotation order). Only they are evaluated;
//!   a class without predictions has AP 0 at every threshold and counts in the mean.
//! * A **prediction whose label is not a ground-truth class** is an error
//!   ([`EvalErrorKind::UnknownLabel`]): the official code stops there too (a `KeyError`),
//!   so no official number exists for such a file. Labels are compared exactly (case and
//!   spaces included).
//! * **Predictions** are every entry of `results`, for any video: one of a video without
//!   ground truth of its class — including videos outside the ground truth or outside the
//!   chosen subset — is a false positive.
//! * Per class, predictions are visited by score, descending, and each takes the video's
//!   ground-truth instance of that class with the highest tIoU that no earlier prediction
//!   took at that threshold, if its tIoU is at least the threshold: a true positive; else a
//!   false positive. Exactly: the instances are walked in descending tIoU; the walk ends
//!   with a false positive at the first one with `tIoU < θ`, skips the taken ones and
//!   takes the first one left.
//! * `tIoU = inter / ((g₁ − g₀) + (p₁ − p₀) − inter)` with `inter = max(min(g₁, p₁) −
//!   max(g₀, p₀), 0)`, the official operation order (the same as the proposal metric's).
//! * With the cumulative counts, `recall = tp / n_gt` and `precision = tp / (tp + fp)`;
//!   AP is the official `interpolated_prec_rec` (VOC 2011 style): precision padded with 0 at
//!   both ends and recall with 0 and 1, precision made non-increasing from the right,
//!   `AP = Σ (r[i] − r[i−1])·p[i]` over the positions where recall changes.
//! * `mAP[θ]` is the mean of AP over the classes, the average mAP the mean of mAP over the
//!   thresholds. Default thresholds: [`super::thresholds`], i.e.
//!   `np.linspace(0.5, 0.95, 10)` bit for bit (the ninth is 0.8999999999999999, not 0.9,
//!   and the last exactly 0.95); any list can be given ([`TiouThresholds::parse`], e.g.
//!   THUMOS's `0.3,0.4,0.5,0.6,0.7`).
//!
//! **Ties.** The official order is `argsort(x)[::-1]`, for the scores of a class and for
//! the tIoUs of a prediction with its video's instances. numpy's default argsort is not
//! stable, and which of equal values comes first depends on its sorting kernels (on an
//! AVX-512 machine with numpy 2.4.6, for arrays of values drawn from three, the default
//! order differed from the stable one for 28 % of 5-element arrays and for every array of
//! 16 or more), so the official result for tied scores is not defined across machines.
//! Here the same expression is evaluated with a *stable* sort, `argsort(x,
//! kind="stable")[::-1]`: **equal scores are visited in reverse file order** (the last
//! equal-scored prediction of the file first; file order is video keys as they appear in
//! the file, then list order), and of two instances with equal tIoU the later annotation is
//! tried first. tIoU is NaN only for two zero-length segments (0/0); numpy sorts NaN last,
//! so reversed it is tried first, and `NaN < θ` is false, so a zero-length prediction
//! *matches* a free zero-length instance of its video at every threshold — the official
//! arithmetic, kept; [`DetectionEvaluation::nan_matches`] counts such matches.
//!
//! **Bit-level fidelity.** Counts are exact, precision and recall one correctly rounded
//! division each, the AP terms and the means are summed in numpy's pairwise order, so with
//! the tie order above the numbers are the official arrays bit for bit. Checked against the
//! official script itself (outside this repository; details in
//! `tests/reference/detection_reference.py`): with its argsorts made stable, identical bits
//! on every golden case it can run (those with one subset); with its own default sort,
//! identical wherever no tie decides, and on 12,000 detections with continuous scores; on
//! the golden case with many two-decimal ties its own result moved by up to 0.03 AP on that
//! machine, which no reimplementation can match across machines.
//!
//! **Where this differs from the official script** (all of them inputs it takes silently):
//! segments must be two finite numbers with `end ≥ start`, scores finite and `≥ 0`, labels
//! non-empty strings, and a video may appear only once in `database` or `results` (Python
//! would keep the last); each is an error naming the entry. The official script's default
//! subset is `validation`; here, as in the proposal metric, no subset means every video. Its
//! list of blocked videos (fetched from a server) is not used (its `check_status=False`).

use super::{near_non_finite, numpy_sum, thresholds, tiou, EvalError, EvalErrorKind};
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use std::cmp::Ordering;
use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;

// ----------------------------------------------------------------------------- ordered JSON

/// A JSON value whose objects keep their file order (the order decides ties, as Python's
/// `json.load` keeps it) and their duplicate keys.
#[derive(Debug, Clone, PartialEq)]
enum Json {
    Null,
    Bool(bool),
    Num(f64),
    Str(String),
    List(Vec<Json>),
    Obj(Vec<(String, Json)>),
}

impl<'de> Deserialize<'de> for Json {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Json;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a JSON value")
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_none<E: de::Error>(self) -> Result<Json, E> {
                Ok(Json::Null)
            }
            fn visit_bool<E: de::Error>(self, b: bool) -> Result<Json, E> {
                Ok(Json::Bool(b))
            }
            // Integers round to the nearest f64, as Python's float(int) does.
            fn visit_i64<E: de::Error>(self, x: i64) -> Result<Json, E> {
                Ok(Json::Num(x as f64))
            }
            fn visit_u64<E: de::Error>(self, x: u64) -> Result<Json, E> {
                Ok(Json::Num(x as f64))
            }
            fn visit_f64<E: de::Error>(self, x: f64) -> Result<Json, E> {
                Ok(Json::Num(x))
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Json, E> {
                Ok(Json::Str(s.to_owned()))
            }
            fn visit_string<E: de::Error>(self, s: String) -> Result<Json, E> {
                Ok(Json::Str(s))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
                while let Some(x) = a.next_element()? {
                    v.push(x);
                }
                Ok(Json::List(v))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut a: A) -> Result<Json, A::Error> {
                let mut v = Vec::with_capacity(a.size_hint().unwrap_or(0).min(1024));
                while let Some(entry) = a.next_entry::<String, Json>()? {
                    v.push(entry);
                }
                Ok(Json::Obj(v))
            }
        }
        d.deserialize_any(V)
    }
}

fn parse(text: &str) -> Result<Json, EvalError> {
    serde_json::from_str(text).map_err(|e| {
        let mut msg = format!("not valid JSON: {e}");
        if e.is_syntax() && near_non_finite(text, e.line(), e.column()) {
            msg.push_str(" (NaN and Infinity are not JSON numbers; write finite values)");
        }
        EvalError::new(EvalErrorKind::Json, msg)
    })
}

fn kind_of(v: &Json) -> &'static str {
    match v {
        Json::Null => "null",
        Json::Bool(_) => "a boolean",
        Json::Num(_) => "a number",
        Json::Str(_) => "a string",
        Json::List(_) => "a list",
        Json::Obj(_) => "an object",
    }
}

fn format_err(msg: String) -> EvalError {
    EvalError::new(EvalErrorKind::Format, msg)
}

fn object<'a>(v: &'a Json, at: &dyn Fn() -> String) -> Result<&'a [(String, Json)], EvalError> {
    match v {
        Json::Obj(o) => Ok(o),
        _ => Err(format_err(format!("{}: expected an object, found {}", at(), kind_of(v)))),
    }
}

fn list<'a>(v: &'a Json, at: &dyn Fn() -> String) -> Result<&'a [Json], EvalError> {
    match v {
        Json::List(l) => Ok(l),
        _ => Err(format_err(format!("{}: expected a list, found {}", at(), kind_of(v)))),
    }
}

/// The value of `key` (the last one if repeated, as Python's `json.load` keeps it).
fn get<'a>(o: &'a [(String, Json)], key: &str) -> Option<&'a Json> {
    o.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
}

fn field<'a>(o: &'a [(String, Json)], key: &str, at: &dyn Fn() -> String) -> Result<&'a Json, EvalError> {
    get(o, key).ok_or_else(|| format_err(format!("{}: missing key \"{key}\"", at())))
}

/// A video-keyed object whose keys must be unique (a repeated video would lose entries).
fn unique_keys(o: &[(String, Json)], at: &dyn Fn() -> String) -> Result<(), EvalError> {
    let mut seen = HashSet::with_capacity(o.len());
    for (k, _) in o {
        if !seen.insert(k.as_str()) {
            return Err(format_err(format!(
                "{}: video {k:?} appears more than once (a JSON reader would keep only the last)",
                at()
            )));
        }
    }
    Ok(())
}

fn number(v: &Json, at: &dyn Fn() -> String) -> Result<f64, EvalError> {
    match v {
        Json::Num(x) if x.is_finite() => Ok(*x),
        Json::Num(x) => Err(EvalError::new(EvalErrorKind::Segment, format!("{}: {x} is not a finite number", at()))),
        _ => Err(format_err(format!("{}: expected a number, found {}", at(), kind_of(v)))),
    }
}

/// `[start, end]`: two finite numbers with `end ≥ start`.
fn segment(v: &Json, at: &dyn Fn() -> String) -> Result<[f64; 2], EvalError> {
    let a = list(v, at)?;
    if a.len() != 2 {
        return Err(format_err(format!("{}: expected [start, end], found a list of {}", at(), a.len())));
    }
    let start = number(&a[0], &|| format!("{}[0]", at()))?;
    let end = number(&a[1], &|| format!("{}[1]", at()))?;
    if end < start {
        return Err(EvalError::new(EvalErrorKind::Segment, format!("{}: end {end} is before start {start}", at())));
    }
    Ok([start, end])
}

fn label(v: &Json, at: &dyn Fn() -> String) -> Result<String, EvalError> {
    match v {
        Json::Str(s) if s.is_empty() => {
            Err(EvalError::new(EvalErrorKind::Label, format!("{}: the label is an empty string", at())))
        }
        Json::Str(s) => Ok(s.clone()),
        _ => Err(format_err(format!("{}: expected a label string, found {}", at(), kind_of(v)))),
    }
}

fn score(v: &Json, at: &dyn Fn() -> String) -> Result<f64, EvalError> {
    let x = number(v, at)?;
    if x < 0.0 {
        return Err(EvalError::new(EvalErrorKind::Segment, format!("{}: {x} is negative (scores are ≥ 0)", at())));
    }
    Ok(x)
}

// ----------------------------------------------------------------------------- thresholds

/// The tIoU thresholds AP is computed at: a non-empty list of finite values in `[0, 1]`,
/// in the given order (duplicates allowed; each counts in the average, as in the official
/// code).
#[derive(Debug, Clone, PartialEq)]
pub struct TiouThresholds(Vec<f64>);

impl Default for TiouThresholds {
    /// ActivityNet's 0.5:0.05:0.95, i.e. `np.linspace(0.5, 0.95, 10)` bit for bit.
    fn default() -> Self {
        TiouThresholds(thresholds().to_vec())
    }
}

impl TiouThresholds {
    /// THUMOS-style reporting: 0.3, 0.4, 0.5, 0.6, 0.7.
    pub fn thumos() -> Self {
        TiouThresholds(vec![0.3, 0.4, 0.5, 0.6, 0.7])
    }

    /// Checks a list of thresholds.
    pub fn new(values: Vec<f64>) -> Result<Self, EvalError> {
        if values.is_empty() {
            return Err(EvalError::new(EvalErrorKind::Threshold, "tIoU thresholds: the list is empty"));
        }
        for (i, &t) in values.iter().enumerate() {
            if !(0.0..=1.0).contains(&t) {
                return Err(EvalError::new(
                    EvalErrorKind::Threshold,
                    format!("tIoU threshold {} ({t}) is not a number in [0, 1]", i + 1),
                ));
            }
        }
        Ok(TiouThresholds(values))
    }

    /// Parses a comma-separated list such as `0.3,0.4,0.5,0.6,0.7`; each value is the f64
    /// nearest to its decimal text (what Python's `float` gives).
    pub fn parse(text: &str) -> Result<Self, EvalError> {
        let mut values = Vec::new();
        for (i, part) in text.split(',').enumerate() {
            let part = part.trim();
            let t: f64 = part.parse().map_err(|_| {
                EvalError::new(EvalErrorKind::Threshold, format!("tIoU threshold {} ({part:?}) is not a number", i + 1))
            })?;
            values.push(t);
        }
        Self::new(values)
    }

    /// The thresholds, in order.
    pub fn values(&self) -> &[f64] {
        &self.0
    }
}

// ----------------------------------------------------------------------------- inputs

#[derive(Debug, Clone, PartialEq)]
struct Instance {
    video: usize,
    segment: [f64; 2],
    class: usize,
}

/// Labelled ground-truth instances: the annotations of one subset, in file order, and the
/// classes they define (the official activity index).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DetectionGroundTruth {
    classes: Vec<String>,
    class_index: HashMap<String, usize>,
    /// Selected videos with at least one annotation, in file order.
    videos: Vec<String>,
    video_index: HashMap<String, usize>,
    instances: Vec<Instance>,
    subsets: BTreeMap<String, usize>,
}

impl DetectionGroundTruth {
    /// Reads an ActivityNet ground-truth file, `{"database": {video: {"subset",
    /// "annotations": [{"segment": [s, e], "label": "…"}], …}}, …}`, as
    /// [`GroundTruth::from_json`](super::GroundTruth::from_json) does (the same subset
    /// rule: with `subset`, only the videos whose `"subset"` equals it; without, all), and
    /// additionally each annotation's `label` (a non-empty string).
    pub fn from_json(text: &str, subset: Option<&str>) -> Result<Self, EvalError> {
        let root = parse(text)?;
        let root = object(&root, &|| "ground truth".into())?;
        let db_value = field(root, "database", &|| "ground truth".into())?;
        let db = object(db_value, &|| "database".into())?;
        unique_keys(db, &|| "database".into())?;
        let mut gt = DetectionGroundTruth::default();
        for (id, v) in db {
            let at = || format!("database[{id:?}]");
            let v = object(v, &at)?;
            let s = get(v, "subset");
            if let Some(Json::Str(s)) = s {
                *gt.subsets.entry(s.clone()).or_default() += 1;
            }
            if let Some(want) = subset {
                let s = s.ok_or_else(|| {
                    format_err(format!("{}: missing key \"subset\" (needed to select subset {want:?})", at()))
                })?;
                let Json::Str(s) = s else {
                    return Err(format_err(format!("{}.subset: expected a string, found {}", at(), kind_of(s))));
                };
                if s != want {
                    continue;
                }
            }
            let anns = list(field(v, "annotations", &at)?, &|| format!("{}.annotations", at()))?;
            for (i, a) in anns.iter().enumerate() {
                let at_a = || format!("{}.annotations[{i}]", at());
                let a = object(a, &at_a)?;
                let seg = segment(field(a, "segment", &at_a)?, &|| format!("{}.segment", at_a()))?;
                let name = label(field(a, "label", &at_a)?, &|| format!("{}.label", at_a()))?;
                gt.push(id, seg, name);
            }
        }
        if gt.instances.is_empty() {
            let msg = match subset {
                None if db.is_empty() => "ground truth: \"database\" is empty".to_string(),
                None => format!("ground truth: none of the {} videos has annotations", db.len()),
                Some(want) => {
                    let present: Vec<String> = gt.subsets.iter().map(|(s, n)| format!("{s:?} ({n})")).collect();
                    let present = if present.is_empty() { "none".to_string() } else { present.join(", ") };
                    format!(
                        "ground truth: subset {want:?} has no videos with annotations (subsets in the file: {present})"
                    )
                }
            };
            return Err(EvalError::new(EvalErrorKind::EmptyGroundTruth, msg));
        }
        Ok(gt)
    }

    /// Builds ground truth from `(video, segment, label)` instances in order (the order
    /// numbers the classes and breaks ties, as file order does).
    pub fn from_instances<I, S, L>(instances: I) -> Result<Self, EvalError>
    where
        I: IntoIterator<Item = (S, [f64; 2], L)>,
        S: AsRef<str>,
        L: Into<String>,
    {
        let mut gt = DetectionGroundTruth::default();
        for (i, (video, seg, name)) in instances.into_iter().enumerate() {
            let at = || format!("ground truth instance {i}");
            let seg = segment(&Json::List(vec![Json::Num(seg[0]), Json::Num(seg[1])]), &at)?;
            let name = label(&Json::Str(name.into()), &at)?;
            gt.push(video.as_ref(), seg, name);
        }
        if gt.instances.is_empty() {
            return Err(EvalError::new(EvalErrorKind::EmptyGroundTruth, "ground truth: no instances"));
        }
        Ok(gt)
    }

    fn push(&mut self, video: &str, segment: [f64; 2], name: String) {
        let class = match self.class_index.get(&name) {
            Some(&c) => c,
            None => {
                self.class_index.insert(name.clone(), self.classes.len());
                self.classes.push(name);
                self.classes.len() - 1
            }
        };
        let video = match self.video_index.get(video) {
            Some(&v) => v,
            None => {
                self.video_index.insert(video.to_string(), self.videos.len());
                self.videos.push(video.to_string());
                self.videos.len() - 1
            }
        };
        self.instances.push(Instance { video, segment, class });
    }

    /// The classes in the official activity-index order (first appearance).
    pub fn classes(&self) -> &[String] {
        &self.classes
    }

    /// Videos with at least one instance.
    pub fn num_videos(&self) -> usize {
        self.videos.len()
    }

    /// Instances over all videos and classes.
    pub fn num_instances(&self) -> usize {
        self.instances.len()
    }

    /// The `subset` values of the file's videos (selected or not) and how many videos each
    /// has; empty for [`DetectionGroundTruth::from_instances`].
    pub fn subsets(&self) -> &BTreeMap<String, usize> {
        &self.subsets
    }
}

/// One labelled, scored segment of a detection results file.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    /// `[start, end]` in seconds.
    pub segment: [f64; 2],
    /// The confidence (finite, `≥ 0`).
    pub score: f64,
    /// The class name.
    pub label: String,
}

/// Detections per video, in file order (video keys as they appear, then list order).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Detections {
    videos: Vec<(String, Vec<Detection>)>,
}

impl Detections {
    /// Reads an ActivityNet detection results file: `{"results": {video: [{"label": "…",
    /// "score": x, "segment": [s, e]}]}, …}`. Only `results` is required (`version` and
    /// `external_data` are optional).
    pub fn from_json(text: &str) -> Result<Self, EvalError> {
        let root = parse(text)?;
        let root = object(&root, &|| "predictions".into())?;
        let results = object(field(root, "results", &|| "predictions".into())?, &|| "results".into())?;
        unique_keys(results, &|| "results".into())?;
        let mut videos = Vec::with_capacity(results.len());
        for (id, l) in results {
            let at = || format!("results[{id:?}]");
            let l = list(l, &at)?;
            let mut out = Vec::with_capacity(l.len());
            for (i, p) in l.iter().enumerate() {
                let at_p = || format!("{}[{i}]", at());
                let p = object(p, &at_p)?;
                let name = get(p, "label").ok_or_else(|| {
                    format_err(format!(
                        "{}: missing key \"label\" (the detection metric needs labelled detections; \
                         a proposals file has none)",
                        at_p()
                    ))
                })?;
                let name = label(name, &|| format!("{}.label", at_p()))?;
                let score = score(field(p, "score", &at_p)?, &|| format!("{}.score", at_p()))?;
                let seg = segment(field(p, "segment", &at_p)?, &|| format!("{}.segment", at_p()))?;
                out.push(Detection { segment: seg, score, label: name });
            }
            videos.push((id.clone(), out));
        }
        Ok(Detections { videos })
    }

    /// Builds detections from `(video, detections)` pairs in file order, checking each.
    pub fn from_videos<I, S>(videos: I) -> Result<Self, EvalError>
    where
        I: IntoIterator<Item = (S, Vec<Detection>)>,
        S: Into<String>,
    {
        let mut out: Vec<(String, Vec<Detection>)> = Vec::new();
        let mut seen = HashSet::new();
        for (id, list) in videos {
            let id = id.into();
            if !seen.insert(id.clone()) {
                return Err(format_err(format!("results: video {id:?} appears more than once")));
            }
            for (i, d) in list.iter().enumerate() {
                let at = || format!("results[{id:?}][{i}]");
                segment(&Json::List(vec![Json::Num(d.segment[0]), Json::Num(d.segment[1])]), &|| {
                    format!("{}.segment", at())
                })?;
                score(&Json::Num(d.score), &|| format!("{}.score", at()))?;
                label(&Json::Str(d.label.clone()), &|| format!("{}.label", at()))?;
            }
            out.push((id, list));
        }
        Ok(Detections { videos: out })
    }

    /// The number of detections over all videos.
    pub fn total(&self) -> usize {
        self.videos.iter().map(|(_, l)| l.len()).sum()
    }

    /// The videos and their detections, in file order.
    pub fn videos(&self) -> impl Iterator<Item = (&str, &[Detection])> {
        self.videos.iter().map(|(k, v)| (k.as_str(), v.as_slice()))
    }
}

// ----------------------------------------------------------------------------- metric

/// One class's figures.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassAp {
    /// The label.
    pub label: String,
    /// Its ground-truth instances (at least one).
    pub ground_truths: usize,
    /// Its predictions (all videos).
    pub predictions: usize,
    /// AP (fraction) at each threshold, in the thresholds' order.
    pub ap: Vec<f64>,
}

/// The detection metric's result. AP and mAP are fractions in `[0, 1]`, as the official
/// arrays; `bmn-edge eval` prints them in percent.
#[derive(Debug, Clone, PartialEq)]
pub struct DetectionEvaluation {
    /// The thresholds, in order.
    pub thresholds: Vec<f64>,
    /// Per class, in the official activity-index order.
    pub classes: Vec<ClassAp>,
    /// `mAP[θ]`: the mean over classes of AP at each threshold.
    pub map: Vec<f64>,
    /// The mean of `map` over the thresholds.
    pub average_map: f64,
    /// Ground-truth videos (with at least one instance).
    pub videos: usize,
    /// Ground-truth instances.
    pub ground_truths: usize,
    /// Predictions in the file, all videos.
    pub predictions: usize,
    /// Predictions of videos outside the ground truth (all false positives).
    pub predictions_outside: usize,
    /// The number of videos those belong to.
    pub videos_outside: usize,
    /// Ground-truth videos without any prediction.
    pub videos_without_predictions: usize,
    /// (prediction, threshold) matches made through a NaN tIoU (two zero-length segments).
    pub nan_matches: usize,
}

impl DetectionEvaluation {
    /// The labels of the classes without any prediction (AP 0).
    pub fn classes_without_predictions(&self) -> impl Iterator<Item = &str> {
        self.classes.iter().filter(|c| c.predictions == 0).map(|c| c.label.as_str())
    }
}

/// numpy's ascending order for floats: NaN after everything, equal values equal.
fn numpy_cmp(a: f64, b: f64) -> Ordering {
    match (a.is_nan(), b.is_nan()) {
        (true, true) => Ordering::Equal,
        (true, false) => Ordering::Greater,
        (false, true) => Ordering::Less,
        _ => a.partial_cmp(&b).unwrap_or(Ordering::Equal),
    }
}

/// `np.argsort(x, kind="stable")[::-1]`: descending, equal values latest first, NaN first.
fn stable_argsort_reversed(x: &[f64]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..x.len()).collect();
    order.sort_by(|&a, &b| numpy_cmp(x[a], x[b]));
    order.reverse();
    order
}

/// The official `interpolated_prec_rec`: with `mprec = [0, prec…, 0]` made non-increasing
/// from the right and `mrec = [0, rec…, 1]`, `Σ (mrec[i] − mrec[i−1])·mprec[i]` over the i
/// where `mrec` changes, summed in numpy's order.
fn interpolated_ap(prec: &[f64], rec: &[f64]) -> f64 {
    let n = prec.len() + 2;
    let mut mprec = Vec::with_capacity(n);
    mprec.push(0.0);
    mprec.extend_from_slice(prec);
    mprec.push(0.0);
    let mut mrec = Vec::with_capacity(n);
    mrec.push(0.0);
    mrec.extend_from_slice(rec);
    mrec.push(1.0);
    for i in (0..n - 1).rev() {
        // Python's max(a, b): b only if b > a.
        if mprec[i + 1] > mprec[i] {
            mprec[i] = mprec[i + 1];
        }
    }
    let terms: Vec<f64> =
        (1..n).filter(|&i| mrec[i] != mrec[i - 1]).map(|i| (mrec[i] - mrec[i - 1]) * mprec[i]).collect();
    numpy_sum(&terms)
}

/// A prediction of one class: its ground-truth video (None: no instance of the class
/// there) and, in walking order, `(instance, tIoU)` for that video's instances of the class.
struct Candidate {
    score: f64,
    walk: Vec<(usize, f64)>,
}

/// Computes the official detection metric: AP per class and threshold, mAP, average mAP.
///
/// Errors when a prediction's label is not a ground-truth class (the official code fails
/// there too); a file without predictions gives AP 0 everywhere.
pub fn evaluate_detection(
    gt: &DetectionGroundTruth,
    detections: &Detections,
    thresholds: &TiouThresholds,
) -> Result<DetectionEvaluation, EvalError> {
    let th = thresholds.values();
    let n_classes = gt.classes.len();
    check_labels(gt, detections)?;

    // Instances per class, in file order: (video, segment); and per (class, video) the
    // class-local indices of that video's instances, in file order.
    let mut class_instances: Vec<Vec<[f64; 2]>> = vec![Vec::new(); n_classes];
    let mut by_video: Vec<HashMap<usize, Vec<usize>>> = vec![HashMap::new(); n_classes];
    for inst in &gt.instances {
        let local = class_instances[inst.class].len();
        class_instances[inst.class].push(inst.segment);
        by_video[inst.class].entry(inst.video).or_default().push(local);
    }

    // Predictions per class, in file order.
    let mut class_preds: Vec<Vec<Candidate>> = (0..n_classes).map(|_| Vec::new()).collect();
    let (mut predictions_outside, mut videos_outside) = (0, 0);
    let mut videos_with_predictions = HashSet::new();
    for (id, list) in &detections.videos {
        let video = gt.video_index.get(id).copied();
        match video {
            None if !list.is_empty() => {
                predictions_outside += list.len();
                videos_outside += 1;
            }
            Some(v) if !list.is_empty() => {
                videos_with_predictions.insert(v);
            }
            _ => {}
        }
        for d in list {
            let class = gt.class_index[&d.label];
            let walk = match video.and_then(|v| by_video[class].get(&v)) {
                None => Vec::new(),
                Some(locals) => {
                    let ious: Vec<f64> = locals.iter().map(|&j| tiou(class_instances[class][j], d.segment)).collect();
                    stable_argsort_reversed(&ious).into_iter().map(|k| (locals[k], ious[k])).collect()
                }
            };
            class_preds[class].push(Candidate { score: d.score, walk });
        }
    }

    let mut nan_matches = 0;
    let mut classes = Vec::with_capacity(n_classes);
    for (c, preds) in class_preds.iter().enumerate() {
        let n_gt = class_instances[c].len();
        let mut ap = vec![0.0; th.len()];
        if !preds.is_empty() {
            let scores: Vec<f64> = preds.iter().map(|p| p.score).collect();
            let order = stable_argsort_reversed(&scores);
            let npos = n_gt as f64;
            let mut prec = Vec::with_capacity(preds.len());
            let mut rec = Vec::with_capacity(preds.len());
            let mut taken = vec![false; n_gt];
            for (ap_t, &t) in ap.iter_mut().zip(th) {
                taken.fill(false);
                prec.clear();
                rec.clear();
                let (mut tp, mut fp) = (0u64, 0u64);
                for &i in &order {
                    let mut hit = false;
                    for &(j, iou) in &preds[i].walk {
                        if iou < t {
                            break;
                        }
                        if taken[j] {
                            continue;
                        }
                        taken[j] = true;
                        hit = true;
                        if iou.is_nan() {
                            nan_matches += 1;
                        }
                        break;
                    }
                    if hit {
                        tp += 1;
                    } else {
                        fp += 1;
                    }
                    let (tpf, fpf) = (tp as f64, fp as f64);
                    rec.push(tpf / npos);
                    prec.push(tpf / (tpf + fpf));
                }
                *ap_t = interpolated_ap(&prec, &rec);
            }
        }
        classes.push(ClassAp { label: gt.classes[c].clone(), ground_truths: n_gt, predictions: preds.len(), ap });
    }

    let map: Vec<f64> = (0..th.len())
        .map(|t| {
            let row: Vec<f64> = classes.iter().map(|c| c.ap[t]).collect();
            numpy_sum(&row) / n_classes as f64
        })
        .collect();
    let average_map = numpy_sum(&map) / th.len() as f64;
    Ok(DetectionEvaluation {
        thresholds: th.to_vec(),
        classes,
        map,
        average_map,
        videos: gt.num_videos(),
        ground_truths: gt.num_instances(),
        predictions: detections.total(),
        predictions_outside,
        videos_outside,
        videos_without_predictions: gt.num_videos() - videos_with_predictions.len(),
        nan_matches,
    })
}

/// Every prediction's label must be a ground-truth class.
fn check_labels(gt: &DetectionGroundTruth, detections: &Detections) -> Result<(), EvalError> {
    // label -> (count, first place)
    let mut unknown: BTreeMap<&str, (usize, String)> = BTreeMap::new();
    for (id, list) in &detections.videos {
        for (i, d) in list.iter().enumerate() {
            if !gt.class_index.contains_key(&d.label) {
                unknown.entry(d.label.as_str()).or_insert_with(|| (0, format!("results[{id:?}][{i}]"))).0 += 1;
            }
        }
    }
    if unknown.is_empty() {
        return Ok(());
    }
    let total: usize = unknown.values().map(|(n, _)| n).sum();
    let shown: Vec<String> = unknown.iter().take(5).map(|(l, (n, at))| format!("{l:?} ({n}, first at {at})")).collect();
    let more = if unknown.len() > 5 { format!(" and {} more", unknown.len() - 5) } else { String::new() };
    let mut known: Vec<String> = gt.classes.iter().take(8).map(|c| format!("{c:?}")).collect();
    if gt.classes.len() > 8 {
        known.push(format!("… {} in all", gt.classes.len()));
    }
    Err(EvalError::new(
        EvalErrorKind::UnknownLabel,
        format!(
            "{total} predictions have labels that are not ground-truth classes (the official evaluation \
             stops here too): {}{more}; the ground-truth classes are {}",
            shown.join(", "),
            known.join(", ")
        ),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn det(s: f64, e: f64, score: f64, label: &str) -> Detection {
        Detection { segment: [s, e], score, label: label.into() }
    }

    #[test]
    fn interpolation_by_hand() {
        // TP, FP, TP of 2 GTs: p = 1, 1/2, 2/3; r = 1/2, 1/2, 1 -> 1/2·1 + 1/2·2/3.
        let ap = interpolated_ap(&[1.0, 0.5, 2.0 / 3.0], &[0.5, 0.5, 1.0]);
        assert!((ap - (0.5 + 1.0 / 3.0)).abs() < 1e-15, "{ap}");
        // Recall never reaching 1: the step to 1 has precision 0.
        assert_eq!(interpolated_ap(&[1.0], &[0.5]), 0.5);
        assert_eq!(interpolated_ap(&[0.0, 0.0], &[0.0, 0.0]), 0.0);
    }

    #[test]
    fn tie_order_is_reverse_file_order() {
        assert_eq!(stable_argsort_reversed(&[0.5, 0.7, 0.5, 0.5]), vec![1, 3, 2, 0]);
        assert_eq!(stable_argsort_reversed(&[0.2, f64::NAN, 0.9]), vec![1, 2, 0]);
    }

    #[test]
    fn equal_scores_later_first() {
        // One GT; two equal-score predictions, the first in the file a FP, the second a TP:
        // visited second-first, so the TP comes first: AP 1.
        let gt = DetectionGroundTruth::from_instances([("v", [0.0, 10.0], "a")]).unwrap();
        let d = Detections::from_videos([("v", vec![det(50.0, 60.0, 0.5, "a"), det(0.0, 10.0, 0.5, "a")])]).unwrap();
        let e = evaluate_detection(&gt, &d, &TiouThresholds::default()).unwrap();
        assert_eq!(e.classes[0].ap, vec![1.0; 10]);
        // The other way round: FP first, then TP: p = 0, 1/2 -> AP 1/2.
        let d = Detections::from_videos([("v", vec![det(0.0, 10.0, 0.5, "a"), det(50.0, 60.0, 0.5, "a")])]).unwrap();
        let e = evaluate_detection(&gt, &d, &TiouThresholds::default()).unwrap();
        assert_eq!(e.classes[0].ap, vec![0.5; 10]);
    }

    #[test]
    fn a_lower_duplicate_can_raise_ap() {
        // Two identical instances, one detection: recall 1/2, AP 1/2. A zero-score duplicate
        // takes the second instance (the first is taken): AP 1. So "a low-scored duplicate
        // never raises AP" is not a property of this metric; a low-scored false positive
        // changing nothing is (tests/eval_detection.rs).
        let gt = DetectionGroundTruth::from_instances([("v", [0.0, 10.0], "a"), ("v", [0.0, 10.0], "a")]).unwrap();
        let one = Detections::from_videos([("v", vec![det(0.0, 10.0, 0.9, "a")])]).unwrap();
        let e = evaluate_detection(&gt, &one, &TiouThresholds::default()).unwrap();
        assert_eq!(e.average_map, 0.5);
        let two = Detections::from_videos([("v", vec![det(0.0, 10.0, 0.9, "a"), det(0.0, 10.0, 0.0, "a")])]).unwrap();
        let e = evaluate_detection(&gt, &two, &TiouThresholds::default()).unwrap();
        assert_eq!(e.average_map, 1.0);
    }

    #[test]
    fn unknown_label_is_an_error() {
        let gt = DetectionGroundTruth::from_instances([("v", [0.0, 10.0], "a")]).unwrap();
        let d = Detections::from_videos([("v", vec![det(0.0, 10.0, 0.5, "b")])]).unwrap();
        let e = evaluate_detection(&gt, &d, &TiouThresholds::default()).unwrap_err();
        assert_eq!(e.kind(), EvalErrorKind::UnknownLabel);
        assert!(e.to_string().contains("\"b\" (1, first at results[\"v\"][0])"), "{e}");
    }

    #[test]
    fn thresholds_parse_and_check() {
        assert_eq!(TiouThresholds::parse("0.3, 0.4,0.5,0.6,0.7").unwrap(), TiouThresholds::thumos());
        assert_eq!(TiouThresholds::default().values()[8], 0.8999999999999999);
        for bad in ["", "0.5,", "x", "1.5", "-0.1", "NaN", "inf"] {
            let e = TiouThresholds::parse(bad).unwrap_err();
            assert_eq!(e.kind(), EvalErrorKind::Threshold, "{bad:?}");
        }
    }

    #[test]
    fn ordered_json_keeps_file_order() {
        let v = parse(r#"{"b": 1, "a": [true, null, "x"], "b": 2.5}"#).unwrap();
        let o = object(&v, &|| String::new()).unwrap();
        assert_eq!(o.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>(), ["b", "a", "b"]);
        assert_eq!(get(o, "b"), Some(&Json::Num(2.5)));
    }
}

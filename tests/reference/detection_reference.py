"""Reference for `bmn-edge eval --detection`: the ActivityNet temporal action detection metric.

An independent numpy implementation of the arithmetic of the official ActivityNet
`Evaluation/eval_detection.py` (ANETdetection: interpolated average precision per class at
each tIoU threshold, their mean over classes (mAP) and over thresholds (average mAP)),
written from the metric's definition; no upstream code is copied. It also writes the golden
cases under tests/golden/detection/ that tests/eval_detection.rs checks.

Usage (from the repository root):
    .venv/bin/python tests/reference/detection_reference.py              # rewrite goldens
    .venv/bin/python tests/reference/detection_reference.py --check      # recompute, compare
    .venv/bin/python tests/reference/detection_reference.py --ground-truth gt.json \
        --predictions det.json [--subset validation] [--tiou 0.3,0.5]     # evaluate files

Semantics (each point is what the official code does):
  * Classes: the labels of the selected ground-truth annotations, numbered in order of
    first appearance (database order, then annotation order). Only these classes are
    evaluated; a class with no predictions has AP 0 and counts in the mean. A prediction
    whose label is not among them is an error (the official code raises KeyError).
  * Ground truth: the videos of `database` whose `subset` equals the one asked for (all
    videos when none is asked for; the official default is "validation").
  * Predictions: every entry of `results`, for any video, in file order (video keys as they
    appear, then list order). A prediction of a video with no ground truth of its class
    (including videos outside the ground truth) is a false positive.
  * Per class, predictions are visited in the order `argsort(scores)[::-1]`. The official
    code uses numpy's default (quicksort) argsort, which is not stable and whose order among
    equal scores depends on the machine's sorting kernels; here it is the same expression
    with a stable sort, `np.argsort(scores, kind="stable")[::-1]`: equal scores are visited
    in reverse file order. (`--default-argsort` uses this machine's default sort instead.)
  * tIoU(p, g) = inter / ((g_end - g_start) + (p_end - p_start) - inter), inter =
    max(min(ends) - max(starts), 0). 0/0 (two zero-length segments with no overlap or at
    one point) is NaN.
  * Matching at threshold t: the video's ground truths of the class are tried in the order
    `argsort(tiou)[::-1]` (stable here: equal tIoU -> the later annotation first; NaN sorts
    last in numpy, so it is tried first). The walk stops with a false positive at the first
    one with tiou < t (NaN < t is False, so a NaN tIoU matches); a ground truth already
    taken at t is skipped; the first one left is taken: true positive.
  * tp, fp cumulative sums; recall = tp / n_gt; precision = tp / (tp + fp).
  * AP = interpolated_prec_rec: precision padded with 0 at both ends, recall with 0 and 1;
    precision made non-increasing from the right (running maximum); AP = sum over the
    positions i where recall changes of (r[i] - r[i-1]) * p[i].
  * mAP[t] = mean over classes of AP[t] (numpy mean of the [T, C] array along axis 1);
    average mAP = mean of mAP over thresholds.
  * Default thresholds np.linspace(0.5, 0.95, 10) (the ninth is 0.8999999999999999).

Choices where the official code is silent, fails or needs a network:
  * Tie order: as above (stable).
  * Blocked videos (the official code downloads a list when check_status=True): none.
  * Segments that are not two finite numbers with end >= start, scores that are not finite
    or negative, labels that are not non-empty strings, duplicate video keys: errors here
    (the official code takes them or keeps the last duplicate).

Cross-check against the official script (2026-12-08, activitynet/ActivityNet
Evaluation/eval_detection.py at ebc8aebb with utils.py's interpolated_prec_rec and
segment_iou, run under Python 3.11 with numpy 2.4.6 and pandas 3.1.2 after the minimal
Python 3 edits: items(), print(), float for np.float, no urllib2/joblib, no blocked-video
download; outside this repository), on an AVX-512 machine:
  * with the official default argsort: AP, mAP and average mAP identical bit for bit for
    every golden case that has one subset (coverage_all has three; the official code needs
    one) except random and random_thumos, whose two-decimal scores tie often (average mAP
    0.191099 official vs 0.192026 here, AP up to 0.03 apart): the official number for tied
    scores depends on numpy's sorting kernels;
  * with the official code's two argsorts made stable (kind="stable"): identical bit for
    bit for every one of those cases, random included;
  * 300 videos x 40 detections, 20 classes, continuous scores (no ties), official default
    argsort vs `bmn-edge eval --detection --json`: AP within 1.1e-16 (the percent round
    trip), average mAP 0.3457296377240253 on both.
"""

import argparse
import datetime
import json
import math
import os
import platform
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "detection")

THRESHOLDS = np.linspace(0.5, 0.95, 10)
THUMOS = [0.3, 0.4, 0.5, 0.6, 0.7]
SEED = 20_170_606


# ----------------------------------------------------------------------------- loading


def _pairs_no_dup(pairs):
    keys = [k for k, _ in pairs]
    if len(set(keys)) != len(keys):
        raise ValueError("duplicate key")
    return dict(pairs)


def _check_segment(seg, where):
    if not isinstance(seg, list) or len(seg) != 2:
        raise ValueError(f"{where}: segment is not [start, end]")
    s, e = float(seg[0]), float(seg[1])
    if not (math.isfinite(s) and math.isfinite(e)) or e < s:
        raise ValueError(f"{where}: bad segment {seg}")
    return s, e


def _check_label(label, where):
    if not isinstance(label, str) or not label:
        raise ValueError(f"{where}: label is not a non-empty string")
    return label


def load_ground_truth(data, subset=None):
    """(classes in index order, rows [(video, start, end, class_index)] in file order)."""
    index, rows = {}, []
    for vid, v in data["database"].items():
        if subset is not None and v["subset"] != subset:
            continue
        for i, a in enumerate(v["annotations"]):
            label = _check_label(a["label"], f"database[{vid!r}].annotations[{i}]")
            s, e = _check_segment(a["segment"], f"database[{vid!r}].annotations[{i}]")
            if label not in index:
                index[label] = len(index)
            rows.append((vid, s, e, index[label]))
    if not rows:
        raise ValueError("no ground-truth instances")
    classes = sorted(index, key=index.get)
    return classes, rows


def load_predictions(data, classes):
    """rows [(video, start, end, class_index, score)] in file order."""
    index = {c: i for i, c in enumerate(classes)}
    rows = []
    for vid, lst in data["results"].items():
        for i, p in enumerate(lst):
            where = f"results[{vid!r}][{i}]"
            label = _check_label(p["label"], where)
            if label not in index:
                raise ValueError(f"{where}: label {label!r} is not a ground-truth class")
            s, e = _check_segment(p["segment"], where)
            score = float(p["score"])
            if not math.isfinite(score) or score < 0:
                raise ValueError(f"{where}: bad score {score}")
            rows.append((vid, s, e, index[label], score))
    return rows


# ----------------------------------------------------------------------------- metric


def stable_desc(x):
    return np.argsort(np.asarray(x, dtype=np.float64), kind="stable")[::-1]


def default_desc(x):
    return np.argsort(np.asarray(x, dtype=np.float64))[::-1]


def file_order_desc(x):
    """Descending, equal values in file order: a diagnostic of which cases depend on ties."""
    return np.argsort(-np.asarray(x, dtype=np.float64), kind="stable")


def tiou_vector(seg, gts):
    """tIoU of one segment with each row of gts [n, 2], the official operation order."""
    inter = np.clip(np.minimum(seg[1], gts[:, 1]) - np.maximum(seg[0], gts[:, 0]), 0.0, None)
    union = (gts[:, 1] - gts[:, 0]) + (seg[1] - seg[0]) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def envelope_ap(prec, rec):
    """Interpolated AP: non-increasing precision envelope summed over the recall steps."""
    p = np.concatenate(([0.0], prec, [0.0]))
    r = np.concatenate(([0.0], rec, [1.0]))
    p = np.maximum.accumulate(p[::-1])[::-1]
    steps = np.flatnonzero(r[1:] != r[:-1]) + 1
    return float(np.sum((r[steps] - r[steps - 1]) * p[steps]))


def definition_ap(prec, rec):
    """The same quantity from its definition, in Python floats: for each recall level
    reached, (gain in recall) times the best precision at that recall or beyond."""
    total, prev = [], 0.0
    n = len(rec)
    for k in range(n):
        if rec[k] != prev:
            total.append((rec[k] - prev) * max(prec[k:]))
            prev = rec[k]
    return math.fsum(total)


def class_tp_fp(gt_rows, pred_rows, thresholds, desc):
    """tp, fp [T, P] (0/1) for one class, predictions in visiting order; and some counts."""
    T = len(thresholds)
    by_video = {}
    for j, (vid, s, e, _) in enumerate(gt_rows):
        by_video.setdefault(vid, []).append(j)
    gt_segs = np.asarray([[s, e] for _, s, e, _ in gt_rows], dtype=np.float64).reshape(-1, 2)
    order = desc([r[4] for r in pred_rows])
    taken = np.zeros((T, len(gt_rows)), dtype=bool)
    tp = np.zeros((T, len(pred_rows)))
    fp = np.zeros((T, len(pred_rows)))
    nan_matches = 0
    for rank, i in enumerate(order):
        vid, s, e, _, _ = pred_rows[i]
        if vid not in by_video:
            fp[:, rank] = 1.0
            continue
        idx = by_video[vid]
        iou = tiou_vector((s, e), gt_segs[idx])
        walk = desc(iou)
        for ti, t in enumerate(thresholds):
            hit = None
            for w in walk:
                if iou[w] < t:
                    break
                if taken[ti, idx[w]]:
                    continue
                hit = idx[w]
                if math.isnan(iou[w]):
                    nan_matches += 1
                break
            if hit is None:
                fp[ti, rank] = 1.0
            else:
                tp[ti, rank] = 1.0
                taken[ti, hit] = True
    return tp, fp, nan_matches


def evaluate(classes, gt, preds, thresholds=THRESHOLDS, desc=stable_desc, cross_check=True):
    thresholds = np.asarray(thresholds, dtype=np.float64)
    C, T = len(classes), thresholds.size
    ap = np.zeros((T, C))
    counts, nan_total = [], 0
    for c in range(C):
        g = [r for r in gt if r[3] == c]
        p = [r for r in preds if r[3] == c]
        counts.append((len(g), len(p)))
        if not p:
            continue
        tp, fp, nan_matches = class_tp_fp(g, p, thresholds, desc)
        nan_total += nan_matches
        tpc, fpc = np.cumsum(tp, axis=1), np.cumsum(fp, axis=1)
        rec = tpc / float(len(g))
        prec = tpc / (tpc + fpc)
        for ti in range(T):
            ap[ti, c] = envelope_ap(prec[ti], rec[ti])
            if cross_check:
                alt = definition_ap([float(x) for x in prec[ti]], [float(x) for x in rec[ti]])
                assert abs(alt - ap[ti, c]) <= 1e-12, (alt, ap[ti, c])
    m = ap.mean(axis=1)
    gt_videos = {r[0] for r in gt}
    outside = [r for r in preds if r[0] not in gt_videos]
    return {
        "classes": classes,
        "thresholds": thresholds,
        "ap": ap,
        "mAP": m,
        "average_mAP": float(m.mean()),
        "counts": counts,
        "videos": len(gt_videos),
        "ground_truths": len(gt),
        "predictions": len(preds),
        "predictions_outside": len(outside),
        "videos_outside": len({r[0] for r in outside}),
        "videos_without_predictions": len(gt_videos - {r[0] for r in preds}),
        "nan_matches": nan_total,
    }


# ----------------------------------------------------------------------------- cases


def gt_file(db):
    return {"version": "VERSION 1.3", "taxonomy": [], "database": db}


def res_file(res):
    return {"version": "VERSION 1.3", "results": res, "external_data": {}}


def ann(s, e, label):
    return {"segment": [float(s), float(e)], "label": label}


def det(s, e, label, score):
    return {"label": label, "score": score, "segment": [float(s), float(e)]}


def case_ties():
    """Equal scores within a class, within and across videos; the visiting order decides
    which prediction takes a ground truth and where the false positives fall."""
    db = {
        "t_b": {"subset": "validation", "annotations": [ann(0, 10, "jump"), ann(20, 30, "jump"), ann(40, 50, "run")]},
        "t_a": {"subset": "validation", "annotations": [ann(5, 15, "jump"), ann(0, 8, "run")]},
    }
    res = {
        # keys deliberately not sorted: file order is t_b, t_a
        "t_b": [
            det(0, 10, "jump", 0.5),     # TP at every threshold ...
            det(1, 10, "jump", 0.5),     # ... same GT, equal score: one of the two is a FP
            det(20, 29, "jump", 0.5),    # tIoU 0.9
            det(40, 45, "run", 0.75),
            det(60, 70, "run", 0.75),    # no overlap: FP, tied with the one above
        ],
        "t_a": [
            det(5, 15, "jump", 0.5),     # tied with the t_b ones
            det(30, 40, "jump", 0.5),    # FP tied
            det(0, 8, "run", 0.75),
            det(0, 7, "run", 0.25),
        ],
    }
    return gt_file(db), res_file(res)


def case_matching():
    """Several predictions on one ground truth; the highest-tIoU ground truth is taken
    first; a prediction with equal tIoU to two ground truths; a taken GT is skipped for
    the next best."""
    db = {
        "m_1": {"subset": "validation", "annotations": [
            ann(0, 10, "a"), ann(10, 20, "a"), ann(2, 12, "a"), ann(50, 60, "b")]},
        "m_2": {"subset": "validation", "annotations": [ann(0, 100, "a"), ann(0, 100, "a")]},
    }
    res = {
        "m_1": [
            det(5, 15, "a", 0.9),     # tIoU 1/3 with [0,10] and [10,20], 0.6 with [2,12]
            det(0, 10, "a", 0.8),     # best [0,10]
            det(1, 11, "a", 0.7),     # [0,10] and [2,12] both 9/11: the later, [2,12], if free
            det(10, 20, "a", 0.6),
            det(10, 20, "a", 0.55),   # duplicate of a TP: FP
            det(50, 60, "b", 0.4),
            det(50, 60, "b", 0.3),    # duplicate: FP
            det(51, 60, "b", 0.35),   # tIoU 0.9: TP at <= 0.9? GT taken by the 0.4 one: FP
        ],
        "m_2": [
            det(0, 100, "a", 0.2),    # two identical GTs: both taken in turn
            det(0, 100, "a", 0.1),
            det(0, 100, "a", 0.05),   # third one: FP
        ],
    }
    return gt_file(db), res_file(res)


def case_equal_tiou():
    """A prediction with exactly equal tIoU (2/3) to two ground truths takes the later one
    (stable argsort reversed), so the prediction that fits that one exactly finds it taken
    and becomes a false positive (in file order it would be a true positive)."""
    db = {"e_1": {"subset": "validation", "annotations": [ann(3, 13, "x"), ann(7, 17, "x")]}}
    res = {"e_1": [
        det(5, 15, "x", 0.9),     # tIoU 8/12 with both
        det(7, 17, "x", 0.8),     # tIoU 1 with the second, 6/14 with the first
        det(3, 13, "x", 0.7),     # tIoU 1 with the first
    ]}
    return gt_file(db), res_file(res)


def case_boundary():
    """tIoU exactly on thresholds (>= decides): 0.5, 0.75, 0.8, 0.9, 0.95 and the THUMOS
    0.3, 0.4, 0.7; and [0, 6.3] against [0, 7] (6.3 / ((7 + 6.3) - 6.3) = 0.8999999999999999), exactly linspace's ninth threshold
    (it would miss a threshold written 0.9)."""
    db = {
        "b_1": {"subset": "validation", "annotations": [
            ann(0, 20, "k"), ann(100, 120, "k"), ann(200, 220, "k"), ann(300, 320, "k"),
            ann(400, 420, "k"), ann(500, 520, "k"), ann(600, 620, "k")]},
        "b_2": {"subset": "validation", "annotations": [ann(0, 7, "k")]},
    }
    res = {
        "b_1": [
            det(0, 10, "k", 0.9),      # 10/20 = 0.5
            det(100, 115, "k", 0.8),   # 0.75
            det(200, 216, "k", 0.7),   # 0.8
            det(300, 318, "k", 0.6),   # 0.9
            det(400, 419, "k", 0.5),   # 0.95
            det(500, 506, "k", 0.4),   # 0.3 (THUMOS threshold)
            det(600, 614, "k", 0.3),   # 0.7
            det(600, 608, "k", 0.2),   # 0.4, GT taken at <= 0.4 by the one above
        ],
        "b_2": [det(0, 6.3, "k", 0.1)],  # 0.8999999999999999
    }
    return gt_file(db), res_file(res)


def case_coverage():
    """Videos without predictions, predictions for videos outside the ground truth (or its
    subset), a class with no predictions (AP 0, counted in the mean), a video without
    annotations, training videos filtered out by --subset validation."""
    db = {
        "c_val1": {"subset": "validation", "annotations": [ann(1, 5, "cook"), ann(6, 9, "dance")]},
        "c_train": {"subset": "training", "annotations": [ann(0, 4, "dance"), ann(5, 8, "cook")]},
        "c_val2": {"subset": "validation", "annotations": [ann(2, 8, "cook"), ann(10, 12, "sing")]},
        "c_val3": {"subset": "validation", "annotations": []},
        "c_val4": {"subset": "validation", "annotations": [ann(0, 3, "dance")]},  # no predictions
        "c_test": {"subset": "testing", "annotations": []},
    }
    res = {
        "c_val1": [det(1, 5, "cook", 0.9), det(6, 9.5, "dance", 0.6), det(0, 2, "dance", 0.5)],
        "c_train": [det(0, 4, "dance", 0.95), det(5, 8, "cook", 0.85)],  # not in the subset: FPs
        "c_val2": [det(2, 7, "cook", 0.7), det(0, 1, "cook", 0.65)],
        "c_val3": [det(0, 1, "cook", 0.3)],
        "c_nowhere": [det(0, 1, "dance", 0.99)],
        "c_test": [],
        # "sing" has no predictions
    }
    return gt_file(db), res_file(res)


def case_zero_length():
    """Zero-length segments: 0/0 tIoU is NaN, and NaN < t is False, so a zero-length
    prediction matches a zero-length ground truth of its video at every threshold (the
    official arithmetic)."""
    db = {"z_1": {"subset": "validation", "annotations": [ann(5, 5, "p"), ann(10, 20, "p")]}}
    res = {"z_1": [det(3, 3, "p", 0.9), det(10, 20, "p", 0.8), det(15, 15, "p", 0.7)]}
    return gt_file(db), res_file(res)


def case_perfect():
    db = {
        "p_1": {"subset": "validation", "annotations": [ann(0, 10, "a"), ann(20, 25, "b"), ann(20, 25, "b")]},
        "p_2": {"subset": "validation", "annotations": [ann(3, 4, "a")]},
    }
    res = {
        "p_2": [det(3, 4, "a", 0.5)],
        "p_1": [det(20, 25, "b", 0.5), det(0, 10, "a", 0.5), det(20, 25, "b", 0.5)],
    }
    return gt_file(db), res_file(res)


def case_random(rng):
    """40 validation videos, 8 classes, 1-5 instances each, 0-60 predictions per video
    (jittered ground truths with the right or a wrong label, and random segments); scores
    rounded to 2 decimals (many equal scores), segments to 0.1 s; 4 videos without
    predictions, 3 videos outside the ground truth, 6 training videos."""
    labels = [f"class_{k}" for k in range(8)]
    db, res = {}, {}
    ids = [f"r_{i:03d}" for i in range(46)]
    rng.shuffle(ids)  # file order not sorted
    for n, vid in enumerate(ids):
        dur = float(round(rng.uniform(30.0, 200.0), 1))
        anns = []
        for _ in range(int(rng.integers(1, 6))):
            L = rng.uniform(0.03, 0.5) * dur
            s = rng.uniform(0.0, dur - L)
            anns.append(ann(round(s, 1), round(s + L, 1), labels[int(rng.integers(0, 8))]))
        subset = "training" if n % 8 == 7 else "validation"
        db[vid] = {"duration_second": dur, "subset": subset, "annotations": anns}
        if n % 10 == 3:
            continue  # no predictions
        dets = []
        for _ in range(int(rng.integers(0, 61))):
            if rng.random() < 0.6:
                a = anns[int(rng.integers(0, len(anns)))]
                g0, g1 = a["segment"]
                L = g1 - g0
                sc = float(rng.choice([0.05, 0.1, 0.2, 0.4]))
                s0 = g0 + rng.normal(0, sc) * L
                s1 = g1 + rng.normal(0, sc) * L
                s0, s1 = sorted((min(max(s0, 0.0), dur), min(max(s1, 0.0), dur)))
                label = a["label"] if rng.random() < 0.8 else labels[int(rng.integers(0, 8))]
            else:
                s0, s1 = sorted(rng.uniform(0.0, dur, 2))
                label = labels[int(rng.integers(0, 8))]
            dets.append(det(round(s0, 1), round(s1, 1), label, float(round(rng.random(), 2))))
        res[vid] = dets
    for i in range(3):
        res[f"x_{i}"] = [det(round(a, 1), round(a + 5, 1), labels[int(rng.integers(0, 8))],
                             float(round(rng.random(), 2))) for a in rng.uniform(0, 100, 10)]
    return gt_file(db), res_file(res)


def build_cases():
    rng = np.random.default_rng(SEED)
    rand = case_random(rng)
    return [
        ("ties", *case_ties(), None, None,
         "equal scores within and across videos (visiting order: reverse file order)"),
        ("ties_thumos", *case_ties(), None, THUMOS, "the ties case at THUMOS thresholds"),
        ("matching", *case_matching(), None, None,
         "several predictions per ground truth, best-tIoU first, taken GTs skipped, identical GTs"),
        ("equal_tiou", *case_equal_tiou(), None, None,
         "a prediction with equal tIoU to two GTs takes the later one"),
        ("boundary", *case_boundary(), None, None, "tIoU exactly 0.5, 0.75, 0.8, 0.9, 0.95 (>= decides)"),
        ("boundary_thumos", *case_boundary(), None, THUMOS, "tIoU exactly 0.3, 0.4, 0.5, 0.7 at THUMOS thresholds"),
        ("coverage", *case_coverage(), "validation", None,
         "videos without predictions, outside the GT or its subset, a class without predictions"),
        ("coverage_all", *case_coverage(), None, None, "the coverage case without --subset: all videos"),
        ("zero_length", *case_zero_length(), None, None, "zero-length segments: NaN tIoU matches"),
        ("perfect", *case_perfect(), None, None, "every ground truth predicted exactly: AP 1"),
        ("random", *rand, "validation", None, "seeded random case, 8 classes, many equal scores"),
        ("random_thumos", *rand, "validation", THUMOS, "the random case at THUMOS thresholds"),
    ]


def provenance():
    return {
        "script": "tests/reference/detection_reference.py",
        "command": ".venv/bin/python tests/reference/detection_reference.py",
        "seed": SEED,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "semantics": "ActivityNet Evaluation/eval_detection.py (ANETdetection), tie order stable "
                     "(see the script's docstring)",
    }


def run_case(gtd, prd, subset, tiou):
    classes, gt = load_ground_truth(gtd, subset)
    preds = load_predictions(prd, classes)
    th = THRESHOLDS if tiou is None else np.asarray(tiou, dtype=np.float64)
    m = evaluate(classes, gt, preds, th)
    here = evaluate(classes, gt, preds, th, desc=default_desc, cross_check=False)
    m["default_argsort_agrees"] = bool(np.array_equal(m["ap"], here["ap"]))
    fo = evaluate(classes, gt, preds, th, desc=file_order_desc, cross_check=False)
    m["tie_sensitive"] = not bool(np.array_equal(m["ap"], fo["ap"]))
    return m


def expected_of(m):
    return {
        "classes": [
            {"label": c, "ground_truths": g, "predictions": p, "ap": [float(m["ap"][t, i]) for t in range(len(m["thresholds"]))]}
            for i, (c, (g, p)) in enumerate(zip(m["classes"], m["counts"]))
        ],
        "mAP": [float(x) for x in m["mAP"]],
        "average_mAP": m["average_mAP"],
        "videos": m["videos"],
        "ground_truths": m["ground_truths"],
        "predictions": m["predictions"],
        "predictions_outside": m["predictions_outside"],
        "videos_outside": m["videos_outside"],
        "videos_without_predictions": m["videos_without_predictions"],
        "nan_matches": m["nan_matches"],
        "default_argsort_agrees_here": m["default_argsort_agrees"],
        "tie_sensitive": m["tie_sensitive"],
    }


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def hand_checks(name, m):
    """Values worked out by hand from the definition."""
    ap = m["ap"]
    if name in ("ties", "ties_thumos", "equal_tiou", "random", "random_thumos"):
        assert m["tie_sensitive"], name
    if name == "perfect":
        assert np.all(ap == 1.0) and m["average_mAP"] == 1.0
    if name == "equal_tiou":
        # t <= 2/3: TP (takes [7,17]), FP, TP -> p = 1, 1/2, 2/3; r = 1/2, 1/2, 1
        # t > 2/3: FP, TP, TP -> p = 0, 1/2, 2/3; r = 0, 1/2, 1
        for ti, t in enumerate(THRESHOLDS):
            want = 0.5 + 0.5 * (2 / 3) if t <= 2 / 3 else 2 / 3
            assert abs(ap[ti, 0] - want) < 1e-15, (t, ap[ti, 0], want)
    if name in ("boundary", "boundary_thumos"):
        # one class, 8 GTs; predictions in score order with these tIoUs
        tious = [0.5, 0.75, 0.8, 0.9, 0.95, 0.3, 0.7, 0.4, 6.3 / ((7.0 - 0.0) + (6.3 - 0.0) - 6.3)]
        assert tious[-1] == THRESHOLDS[8] and tious[-1] != 0.9
        for ti, t in enumerate(m["thresholds"]):
            hits = [x >= t for x in tious]
            hits[7] = hits[7] and not hits[6]  # its GT is taken by the one before
            tp = np.cumsum(hits)
            prec = tp / np.arange(1, len(tious) + 1)
            want = sum((1 / 8) * max(prec[k:]) for k in range(len(tious)) if hits[k])
            assert abs(ap[ti, 0] - want) < 1e-12, (t, ap[ti, 0], want)
    if name == "zero_length":
        # [3, 3] takes [5, 5] (NaN) at every threshold; [15, 15] finds it taken, then 0 < t
        assert m["nan_matches"] == len(THRESHOLDS), m["nan_matches"]


def write_goldens(check=False):
    os.makedirs(GOLDEN, exist_ok=True)
    entries, written = [], set()
    for name, gtd, prd, subset, tiou, note in build_cases():
        m = run_case(gtd, prd, subset, tiou)
        hand_checks(name, m)
        base = re.sub(r"_thumos$|_all$", "", name)
        gfile, pfile = f"{base}_gt.json", f"{base}_predictions.json"
        if base not in written:
            written.add(base)
            for f, obj in ((gfile, gtd), (pfile, prd)):
                path = os.path.join(GOLDEN, f)
                if check:
                    with open(path) as fh:
                        assert json.load(fh) == obj, f
                else:
                    dump(path, obj)
        entries.append({"name": name, "note": note, "ground_truth": gfile, "predictions": pfile,
                        "subset": subset, "tiou": tiou, "expected": expected_of(m)})
    manifest = {
        "provenance": provenance(),
        "thresholds_default": [float(t) for t in THRESHOLDS],
        "units": "fractions (AP, mAP, average_mAP in [0, 1], as the official arrays)",
        "cases": entries,
    }
    path = os.path.join(GOLDEN, "manifest.json")
    if check:
        with open(path) as f:
            old = json.load(f)
        for a, b in zip(old["cases"], entries, strict=True):
            assert a["expected"] == b["expected"], a["name"]
        print(f"ok: {len(entries)} cases match {os.path.relpath(path, ROOT)}")
        return
    text = json.dumps(manifest, indent=1)
    text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda mo: "[" + re.sub(r"\s+", "", mo.group(1)) + "]", text)
    with open(path, "w") as f:
        f.write(text + "\n")
    for e in entries:
        x = e["expected"]
        print(f"{e['name']:>16}: average mAP {x['average_mAP']:.6f}  mAP {['%.4f' % v for v in x['mAP']]}"
              f"  tie-sensitive {x['tie_sensitive']}, default argsort agrees here {x['default_argsort_agrees_here']}")


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare with the committed goldens")
    ap.add_argument("--ground-truth")
    ap.add_argument("--predictions")
    ap.add_argument("--subset")
    ap.add_argument("--tiou", help="comma-separated thresholds (default 0.5:0.05:0.95)")
    ap.add_argument("--default-argsort", action="store_true", help="numpy's default (unstable) argsort")
    a = ap.parse_args()
    if a.ground_truth or a.predictions:
        with open(a.ground_truth) as f:
            classes, gt = load_ground_truth(json.load(f, object_pairs_hook=_pairs_no_dup), a.subset)
        with open(a.predictions) as f:
            preds = load_predictions(json.load(f, object_pairs_hook=_pairs_no_dup), classes)
        th = THRESHOLDS if a.tiou is None else [float(x) for x in a.tiou.split(",")]
        m = evaluate(classes, gt, preds, th, desc=default_desc if a.default_argsort else stable_desc)
        print(json.dumps({"mAP": [float(x) for x in m["mAP"]], "average_mAP": m["average_mAP"],
                          "AP": {c: [float(x) for x in m["ap"][:, i]] for i, c in enumerate(classes)}}, indent=1))
        return
    write_goldens(check=a.check)


if __name__ == "__main__":
    sys.exit(main())

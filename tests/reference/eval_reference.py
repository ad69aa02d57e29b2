"""Reference for `bmn-edge eval`: the ActivityNet proposal metric (bmn-spec section 4).

An independent numpy implementation of the arithmetic of the official
`ActivityNet/Evaluation/eval_proposal.py` (ANETproposal with max_avg_nr_proposals = 100,
as BSN/BMN call it), written from its semantics; no upstream code is copied. It also
writes the golden cases under tests/golden/eval/ that tests/eval_golden.rs checks.

Usage (from the repository root):
    .venv/bin/python tests/reference/eval_reference.py                 # rewrite goldens
    .venv/bin/python tests/reference/eval_reference.py --check         # recompute, compare
    .venv/bin/python tests/reference/eval_reference.py --ground-truth gt.json \
        --proposals results.json [--subset validation]                 # evaluate files

Semantics (each point is what the official code does):
  * Ground truth: the videos of `database` whose `subset` equals the one asked for (all
    videos when none is asked for; the official default is "validation") and that have at
    least one annotation. V is their number; a video without annotations is not a video.
  * Proposals: every entry of `results`, for any video, counts in the total N (also those of
    videos outside the ground truth, which are never matched).
  * ratio = 100 * V / N (float); per ground-truth video with n proposals, sort by score
    descending and keep the first min(int(n * ratio), n). K = total kept.
  * pcn_k = (k / 100.0) * (100 * V / K) for k = 1..100 (np.arange(1, 101) / 100.0 * ...).
    A video with kept_v proposals uses its first min(int(kept_v * pcn_k), kept_v). With
    exactly 100 kept per video, pcn_k = k/100 and 100 * 0.29 = 28.999999999999996, so
    k = 29, 57 and 58 use one proposal fewer than k.
  * tIoU(p, g) = inter / ((g_end - g_start) + (p_end - p_start) - inter), inter =
    max(min(ends) - max(starts), 0); a ground truth is recalled at threshold t if one of the
    used proposals has tIoU >= t; thresholds np.linspace(0.5, 0.95, 10).
  * recall[t, k] = recalled / all ground-truth instances (of the V videos); a video with no
    proposals recalls nothing. AR[k] = mean over the 10 thresholds.
  * AN_k = pcn_k * (K / V); AUC = 100 * trapz(AR, AN) / AN[-1] (percent; AN starts at 1, so
    the maximum is 99).
  * Reported: AR@k = 100 * AR[k - 1] for k = 1, 5, 10, 100 (percent, as papers print them;
    BMN's script prints the fraction np.mean(recall[:, k - 1])), and AUC in percent.

Choices where the official code is silent or fails:
  * Equal scores: the official order is numpy's unstable argsort reversed (unspecified);
    here ties keep file order (a stable sort of -score).
  * N = 0, or K = 0 (no ground-truth video has a kept proposal): the official code divides
    by zero; here it is an error.
  * Segments with end < start or non-finite values: the official code takes them; here
    (and in bmn-edge) they are an error.

Cross-check against the official script (2026-11-26, activitynet/ActivityNet at 82304fa,
eval_proposal.py run under Python 3 with numpy 2.4.6 and pandas 3.1.1 after the minimal
Python 3 edits: print(), .items(), np.int64, no urllib2/joblib; check_status=False,
max_avg_nr_proposals=100; outside this repository): recall, AR and AN arrays identical
bit for bit for every golden case except score_ties (tie order: official AUC 56.00 with
this machine's numpy sort, 54.97 with file order), and identical AR@1, AR@100 and AUC on
4728 random videos x 100 proposals (ActivityNet validation size).
"""

import argparse
import datetime
import json
import os
import platform
import re
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden", "eval")

MAX_AVG = 100
THRESHOLDS = np.linspace(0.5, 0.95, 10)
SEED = 20_161_104
REPORT_K = (1, 5, 10, 100)

_trapezoid = getattr(np, "trapezoid", None) or getattr(np, "trapz")


# ----------------------------------------------------------------------------- loading


def check(segs, where):
    """The official code accepts anything; bmn-edge rejects end < start and non-finite values."""
    if not np.all(np.isfinite(segs)) or np.any(segs[:, 1] < segs[:, 0]):
        raise ValueError(f"{where}: a segment is not finite or ends before it starts")
    return segs


def load_ground_truth(data, subset=None):
    """{video: float64 [n, 2]} for the selected videos that have annotations."""
    gt = {}
    for vid, v in data["database"].items():
        if subset is not None and v["subset"] != subset:
            continue
        segs = [[float(a["segment"][0]), float(a["segment"][1])] for a in v["annotations"]]
        if segs:
            gt[vid] = check(np.asarray(segs, dtype=np.float64).reshape(-1, 2), f"database[{vid!r}]")
    return gt


def load_proposals(data):
    """({video: (segments [n, 2], scores [n])}, total number of proposals in the file)."""
    props, total = {}, 0
    for vid, lst in data["results"].items():
        segs = np.asarray([[float(p["segment"][0]), float(p["segment"][1])] for p in lst], dtype=np.float64)
        scores = np.asarray([float(p["score"]) for p in lst], dtype=np.float64)
        props[vid] = (check(segs.reshape(-1, 2), f"results[{vid!r}]"), scores)
        total += len(lst)
    return props, total


# ----------------------------------------------------------------------------- metric


def tiou_matrix(gt, prop):
    """[n_gt, n_prop] tIoU, with the official operation order."""
    g0, g1 = gt[:, 0:1], gt[:, 1:2]
    p0, p1 = prop[None, :, 0], prop[None, :, 1]
    inter = np.clip(np.minimum(g1, p1) - np.maximum(g0, p0), 0.0, None)
    union = (g1 - g0) + (p1 - p0) - inter
    with np.errstate(divide="ignore", invalid="ignore"):
        return inter / union


def kept_proposals(gt, props, total):
    """Per ground-truth video: its kept proposals, best first (None: no entry / empty)."""
    ratio = MAX_AVG * float(len(gt)) / total
    kept = {}
    for vid in gt:
        if vid not in props or props[vid][1].size == 0:
            kept[vid] = None
            continue
        segs, scores = props[vid]
        order = np.argsort(-scores, kind="stable")
        n = scores.size
        keep = min(int(n * ratio), n)
        kept[vid] = segs[order][:keep]
    return kept


def evaluate(gt, props, total):
    if not gt:
        raise ValueError("no ground-truth videos")
    if total == 0:
        raise ValueError("no proposals")
    V = len(gt)
    kept = kept_proposals(gt, props, total)
    K = sum(0 if k is None else k.shape[0] for k in kept.values())
    if K == 0:
        raise ValueError("no ground-truth video has a kept proposal")
    pcn = np.arange(1, 101) / 100.0 * (MAX_AVG * float(V) / K)
    positives = sum(g.shape[0] for g in gt.values())
    matches = np.zeros((THRESHOLDS.size, pcn.size), dtype=np.int64)
    for vid, g in gt.items():
        p = kept[vid]
        if p is None or p.shape[0] == 0:
            continue  # recalls nothing
        hit = tiou_matrix(g, p)  # [n_gt, kept_v]
        used = np.minimum((p.shape[0] * pcn).astype(np.int64), p.shape[0])
        for ti, t in enumerate(THRESHOLDS):
            tp = hit >= t
            for j, u in enumerate(used):
                matches[ti, j] += np.count_nonzero(tp[:, :u].any(axis=1))
    recall = matches / float(positives)
    avg_recall = recall.mean(axis=0)
    an = pcn * (float(K) / V)
    auc = 100.0 * float(_trapezoid(avg_recall, an)) / an[-1]
    return {
        "videos": V,
        "ground_truths": int(positives),
        "proposals_total": int(total),
        "proposals_kept": int(K),
        "recall": recall,
        "average_recall": avg_recall,
        "average_number": an,
        "auc": auc,
        "videos_without_proposals": sum(1 for k in kept.values() if k is None),
        "used_per_k": {vid: np.minimum((kept[vid].shape[0] * pcn).astype(np.int64), kept[vid].shape[0])
                       for vid in gt if kept[vid] is not None},
    }


def evaluate_by_rank(gt, props, total):
    """Independent formulation: per ground truth and threshold, the first rank that hits."""
    V = len(gt)
    kept = kept_proposals(gt, props, total)
    K = sum(0 if k is None else k.shape[0] for k in kept.values())
    pcn = [(k / 100.0) * (MAX_AVG * float(V) / K) for k in range(1, 101)]
    positives = 0
    matches = [[0] * 100 for _ in THRESHOLDS]
    for vid, g in gt.items():
        positives += g.shape[0]
        p = kept[vid]
        if p is None or p.shape[0] == 0:
            continue
        n = p.shape[0]
        for gi in range(g.shape[0]):
            gs, ge = float(g[gi, 0]), float(g[gi, 1])
            ious = []
            for pi in range(n):
                ps, pe = float(p[pi, 0]), float(p[pi, 1])
                inter = max(min(ge, pe) - max(gs, ps), 0.0)
                union = (ge - gs) + (pe - ps) - inter
                ious.append(inter / union if union != 0 else float("nan"))
            for ti, t in enumerate(THRESHOLDS):
                first = next((r for r, x in enumerate(ious) if x >= t), None)
                if first is None:
                    continue
                for j in range(100):
                    if first < min(int(n * pcn[j]), n):
                        matches[ti][j] += 1
    avg = [sum(matches[ti][j] / float(positives) for ti in range(len(THRESHOLDS))) / len(THRESHOLDS)
           for j in range(100)]
    an = [x * (float(K) / V) for x in pcn]
    area = sum((an[j + 1] - an[j]) * (avg[j + 1] + avg[j]) / 2.0 for j in range(99))
    return {"average_recall": avg, "average_number": an, "auc": 100.0 * area / an[-1]}


def summary(m):
    out = {f"AR@{k}": 100.0 * float(m["average_recall"][k - 1]) for k in REPORT_K}
    out["AUC"] = float(m["auc"])
    return out


# ----------------------------------------------------------------------------- cases


def seg_round(x, nd):
    return float(round(float(x), nd))


def jitter_of(rng, g, dur, scale):
    s, e = g
    L = e - s
    a = s + rng.normal(0.0, scale) * L
    b = e + rng.normal(0.0, scale) * L
    a, b = min(max(a, 0.0), dur), min(max(b, 0.0), dur)
    return [min(a, b), max(a, b)]


def random_segment(rng, dur):
    a, b = np.sort(rng.uniform(0.0, dur, 2))
    return [float(a), float(b)]


def make_video_gt(rng, dur, n):
    out = []
    for _ in range(n):
        L = rng.uniform(0.02, 0.6) * dur
        s = rng.uniform(0.0, dur - L)
        out.append({"segment": [seg_round(s, 2), seg_round(s + L, 2)], "label": f"class_{int(rng.integers(0, 5))}"})
    return out


def make_video_props(rng, dur, anns, n):
    props = []
    for i in range(n):
        if anns and rng.random() < 0.5:
            g = anns[int(rng.integers(0, len(anns)))]["segment"]
            seg = jitter_of(rng, g, dur, float(rng.choice([0.02, 0.08, 0.2, 0.4])))
        else:
            seg = random_segment(rng, dur)
        seg = [seg_round(seg[0], 3), seg_round(seg[1], 3)]
        props.append({"segment": seg, "score": seg_round(rng.random(), 6)})
    return props


def gt_file(db, with_meta=True):
    d = {"database": db}
    if with_meta:
        d["version"] = "VERSION 1.3"
        d["taxonomy"] = []
    return d


def results_file(res):
    return {"version": "VERSION 1.3", "results": res, "external_data": {}}


def case_random(rng, n_videos, count, *, subset="validation", missing=0.0, empty=0.0, extra=0):
    db, res = {}, {}
    for i in range(n_videos):
        vid = f"v_{i:03d}"
        dur = float(round(rng.uniform(20.0, 240.0), 2))
        anns = make_video_gt(rng, dur, int(rng.integers(1, 6)))
        db[vid] = {"duration_second": dur, "subset": subset, "annotations": anns}
        r = rng.random()
        if r < missing:
            continue
        if r < missing + empty:
            res[vid] = []
            continue
        res[vid] = make_video_props(rng, dur, anns, count(rng))
    for i in range(extra):
        res[f"x_{i:03d}"] = make_video_props(rng, 100.0, [], count(rng))
    return gt_file(db), results_file(res)


def case_truncation():
    """Exactly 100 proposals per video; the only hits sit at ranks 28, 56, 57."""
    db, res = {}, {}
    targets = {"t_rank28": 28, "t_rank56": 56, "t_rank57": 57}
    for vid, rank in targets.items():
        db[vid] = {"duration_second": 1000.0, "subset": "validation",
                   "annotations": [{"segment": [900.0, 950.0], "label": "a"}]}
        props = []
        for r in range(100):
            seg = [900.0, 950.0] if r == rank else [float(r), float(r) + 1.0]
            props.append({"segment": seg, "score": 1.0 - r / 1000.0})
        props.reverse()  # file order is not score order
        res[vid] = props
    return gt_file(db), results_file(res)


def grid_video_props(rng, n, scores):
    props = []
    for i in range(n):
        j = int(rng.integers(0, 4))
        a = 10 * j + int(rng.integers(-3, 6))
        b = a + int(rng.integers(0, 14))
        props.append({"segment": [float(a), float(b)], "score": scores[i]})
    return props


def case_grid(rng, tied_scores):
    """Integer grid segments: tIoU exactly 0.5, 0.6, 0.75, 0.8, 0.9, ... against [10j, 10j + 10].

    With tied_scores, scores come from {0.25, 0.5, 0.75, 1}: the order among equal scores
    (file order here) decides which proposals are kept and used."""
    db, res = {}, {}
    for i in range(10):
        vid = f"g_{i:02d}"
        anns = [{"segment": [float(10 * j), float(10 * j + 10)], "label": "a"} for j in range(1 + i % 3)]
        db[vid] = {"duration_second": 100.0, "subset": "validation", "annotations": anns}
        n = int(rng.integers(5, 130))
        if tied_scores:
            scores = [float(x) for x in rng.choice([0.25, 0.5, 0.75, 1.0], n)]
        else:
            scores = [float(x + 1) / (n + 1) for x in rng.permutation(n)]
        res[vid] = grid_video_props(rng, n, scores)
    return gt_file(db, with_meta=False), results_file(res)


def case_subset(rng):
    db, res = {}, {}
    for i in range(18):
        vid = f"s_{i:03d}"
        sub = ["training", "validation", "validation", "testing"][i % 4]
        dur = float(round(rng.uniform(20.0, 200.0), 2))
        anns = [] if (sub == "testing" or i in (5, 9)) else make_video_gt(rng, dur, int(rng.integers(1, 4)))
        db[vid] = {"duration_second": dur, "subset": sub, "annotations": anns}
        res[vid] = make_video_props(rng, dur, anns, int(rng.integers(40, 160)))
    return gt_file(db), results_file(res)


def case_single():
    db = {"only": {"duration_second": 10.0, "subset": "validation",
                   "annotations": [{"segment": [2.0, 5.0], "label": "a"}]}}
    res = {"only": [{"segment": [2.0, 5.0], "score": 0.9}]}
    return gt_file(db), results_file(res)


def build_cases():
    rng = np.random.default_rng(SEED)
    cases = []
    gtd, prd = case_random(rng, 24, lambda r: int(r.integers(1, 260)), missing=0.12, empty=0.08, extra=3)
    cases.append(("mixed", gtd, prd, None,
                  "1-259 proposals per video, some videos without an entry or with [], 3 non-GT videos"))
    gtd, prd = case_random(rng, 16, lambda r: 100)
    cases.append(("exact100", gtd, prd, None, "exactly 100 proposals per video (k = 29, 57, 58 truncation)"))
    cases.append(("truncation", *case_truncation(), None,
                  "exactly 100 per video; single hits at ranks 28, 56, 57 expose the k = 29, 57, 58 truncation"))
    gtd, prd = case_random(rng, 20, lambda r: int(r.integers(3, 61)))
    cases.append(("fewer", gtd, prd, None, "3-60 proposals per video (ratio > 1)"))
    gtd, prd = case_random(rng, 12, lambda r: int(r.integers(120, 301)))
    cases.append(("more", gtd, prd, None, "120-300 proposals per video (ratio < 1: top-k cut)"))
    gtd, prd = case_random(rng, 10, lambda r: 100, extra=2)
    cases.append(("exact100_extra", gtd, prd, None,
                  "100 per GT video plus 2 non-GT videos of 100: they count in N, so each GT video keeps 83"))
    cases.append(("subset", *case_subset(rng), "validation",
                  "training/validation/testing videos, 2 validation videos without annotations, --subset validation"))
    cases.append(("grid", *case_grid(rng, False), None,
                  "integer grid: tIoU exactly on thresholds (>= decides); no version/taxonomy keys"))
    cases.append(("score_ties", *case_grid(rng, True), None,
                  "integer grid with equal scores: ties keep file order (the official order is numpy's unstable sort)"))
    cases.append(("single", *case_single(), None, "one perfect proposal: AR 100, AUC 99"))
    return cases


def provenance():
    return {
        "script": "tests/reference/eval_reference.py",
        "seed": SEED,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spec": "src/reference.md section 4",
        "semantics": "ActivityNet Evaluation/eval_proposal.py, max_avg_nr_proposals = 100 (see the script's docstring)",
    }


def run_case(gtd, prd, subset):
    gt = load_ground_truth(gtd, subset)
    props, total = load_proposals(prd)
    m = evaluate(gt, props, total)
    alt = evaluate_by_rank(gt, props, total)
    assert np.allclose(m["average_recall"], alt["average_recall"], rtol=0, atol=1e-15)
    assert np.allclose(m["average_number"], alt["average_number"], rtol=0, atol=1e-12)
    assert abs(m["auc"] - alt["auc"]) < 1e-12, (m["auc"], alt["auc"])
    return m


def expected_of(m):
    return {
        "summary": summary(m),
        "videos": m["videos"],
        "ground_truths": m["ground_truths"],
        "proposals_total": m["proposals_total"],
        "proposals_kept": m["proposals_kept"],
        "videos_without_proposals": m["videos_without_proposals"],
        "average_recall": [float(x) for x in m["average_recall"]],
        "average_number": [float(x) for x in m["average_number"]],
        "recall": [[float(x) for x in row] for row in m["recall"]],
    }


def dump(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, separators=(",", ":"))
        f.write("\n")


def write_goldens(check=False):
    os.makedirs(GOLDEN, exist_ok=True)
    entries = []
    for name, gtd, prd, subset, note in build_cases():
        m = run_case(gtd, prd, subset)
        if name == "truncation":
            used = m["used_per_k"]["t_rank28"]
            assert [int(used[k - 1]) for k in (28, 29, 30, 57, 58, 59)] == [28, 28, 30, 56, 57, 59]
            ar = m["average_recall"]
            # rank 28 counts from k = 30 on (k = 29 uses 28 proposals), rank 56 from k = 58
            # (k = 57 uses 56), rank 57 from k = 59 (k = 58 uses 57).
            third = [0.0, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 1.0]
            got = [ar[k - 1] for k in (29, 30, 56, 57, 58, 59)]
            assert np.allclose(got, third, rtol=0, atol=1e-15), got
        if name == "exact100_extra":
            assert m["proposals_kept"] == 10 * 83
        if name == "single":
            assert abs(m["auc"] - 99.0) < 1e-12
        gfile, pfile = f"{name}_gt.json", f"{name}_proposals.json"
        if check:
            with open(os.path.join(GOLDEN, gfile)) as f:
                assert json.load(f) == gtd, gfile
            with open(os.path.join(GOLDEN, pfile)) as f:
                assert json.load(f) == prd, pfile
        else:
            dump(os.path.join(GOLDEN, gfile), gtd)
            dump(os.path.join(GOLDEN, pfile), prd)
        entries.append({"name": name, "note": note, "ground_truth": gfile, "proposals": pfile,
                        "subset": subset, "expected": expected_of(m)})
    manifest = {
        "provenance": provenance(),
        "thresholds": [float(t) for t in THRESHOLDS],
        "units": "summary AR@k and AUC in percent; average_recall and recall as fractions; average_number in proposals",
        "cases": entries,
    }
    path = os.path.join(GOLDEN, "manifest.json")
    if check:
        with open(path) as f:
            old = json.load(f)
        for a, b in zip(old["cases"], entries, strict=True):
            assert a["expected"] == b["expected"], a["name"]
        print(f"ok: {len(entries)} cases match {os.path.relpath(path, ROOT)}")
    else:
        text = json.dumps(manifest, indent=1)
        # one line per number list keeps the manifest small and diffable
        text = re.sub(r"\[\s*([-+0-9.eE,\s]+?)\s*\]", lambda mo: "[" + re.sub(r"\s+", "", mo.group(1)) + "]", text)
        with open(path, "w") as f:
            f.write(text + "\n")
        for e in entries:
            s = e["expected"]["summary"]
            print(f"{e['name']:>15}: " + "  ".join(f"{k} {v:.4f}" for k, v in s.items()))


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--check", action="store_true", help="recompute and compare with the committed goldens")
    ap.add_argument("--ground-truth")
    ap.add_argument("--proposals")
    ap.add_argument("--subset")
    a = ap.parse_args()
    if a.ground_truth or a.proposals:
        with open(a.ground_truth) as f:
            gt = load_ground_truth(json.load(f), a.subset)
        with open(a.proposals) as f:
            props, total = load_proposals(json.load(f))
        print(json.dumps(summary(evaluate(gt, props, total)), indent=1))
        return
    write_goldens(check=a.check)


if __name__ == "__main__":
    sys.exit(main())

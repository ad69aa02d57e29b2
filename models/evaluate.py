"""Inference, post-processing and the ActivityNet proposal metric, in Python.

Used by ``train.py`` for validation and to produce golden values for the Rust side.

    python models/evaluate.py --data DIR [--checkpoint models/work/train/best.pt]
        [--mode window|rescale] [--results out.json] [--baseline]
    python models/evaluate.py --data DIR --proposals results.json   # score a file

A video's proposals are made exactly as ``bmn-edge detect`` makes them, with the project's
one Python reference (``tests/reference/bmn_reference.py``, loaded by path) for
everything after the network:

* window mode (``detect``'s sliding mode): windows of T snippets with hop T/2, the last one
  aligned to the video's end; a video shorter than T is one window **edge-padded** (its
  last snippet repeated, as the runtime does); per window the reference's candidates and
  pairing (convention from the model: mmaction2, or paddle for the paddle variant); pairs
  whose end boundary is a padded snippet are dropped; the rest are moved to video time and
  normalised by the video's snippet count with the convention's expression; one Soft-NMS
  over the merged set (the convention's float64 threshold test), top 100;
* rescale mode: the whole video resampled to T as BSN's ``poolData`` does (the reference's
  ``rescale_pool``, epsilon 0.0001 s in snippets, as ``detect --duration`` computes it),
  post-processed as one window;
* segments in seconds: ``[max(0, xmin)·duration, min(1, xmax)·duration]``;
* the metric is bmn-spec section 4 (official ActivityNet ``eval_proposal`` arithmetic,
  truncation quirks included): AR@1/5/10/100 and AUC;
* ``--baseline``: uniform sliding-window proposals of lengths 2, 4, 8, 16, 32 s, 100 per
  video, allotted and scored by a length prior only (estimated from the training split's
  ground truth when ``models/work/data/train`` exists, else uniform).

Two pieces are vectorised for speed, each tested equal to the reference bit for bit in
``test_evaluate.py``: the Soft-NMS over a video's merged proposals (``finish_video``; tens
of thousands of proposals for a long video) and ``rescale_pool``.

Training inputs are not changed here: ``cut_window`` (zero-padded) and ``rescale_video``
(linear resampling) are what the shipped model was trained on; see models/README.md.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import math

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from paths import WORK, reference  # noqa: E402

R = reference()  # tests/reference/bmn_reference.py


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------

def load_split(data_dir: str):
    with open(os.path.join(data_dir, "ground_truth.json")) as f:
        gt = json.load(f)
    feats = {}
    for vid in gt["database"]:
        feats[vid] = np.load(os.path.join(data_dir, "features", vid + ".npy"))
    return gt, feats


def window_starts(n: int, T: int, hop: int) -> list[int]:
    """Hop-aligned window starts covering [0, n); the last window ends at the video end."""
    return R.window_starts(n, T, hop)


def cut_window(x: np.ndarray, start: int, T: int) -> np.ndarray:
    """Training windows: [T, C] slice starting at ``start``, zero-padded past the end.

    What the shipped model was trained on; evaluation and the runtime edge-pad instead
    (``R.window_input``)."""
    w = x[start:start + T]
    if w.shape[0] < T:
        w = np.concatenate([w, np.zeros((T - w.shape[0], x.shape[1]), x.dtype)], axis=0)
    return w


def rescale_video(x: np.ndarray, T: int) -> np.ndarray:
    """Training input of rescale mode: the whole video linearly resampled to T snippets.

    Evaluation and the runtime use BSN's poolData (``rescale_pool``)."""
    n = x.shape[0]
    if n == 1:
        return np.repeat(x, T, axis=0)
    pos = (np.arange(T) + 0.5) * n / T - 0.5
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return ((1 - w) * x[lo] + w * x[hi]).astype(np.float32)


def rescale_pool(data: np.ndarray, T: int, eps: float) -> np.ndarray:
    """``R.rescale_pool`` vectorised over bins and channels: float64 [T, C], the same
    float64 operations in the same order (equal bit for bit; test_evaluate.py)."""
    data = np.asarray(data)
    L, C = data.shape
    rows = data.astype(np.float64)
    if L == 1:
        return np.repeat(rows, T, axis=0)
    out = np.zeros((T, C), dtype=np.float64)
    xs = np.arange(L, dtype=np.float64) + 0.5
    first, last = float(xs[0]), float(xs[-1])
    for i in range(T):
        a = (1.0 / T * i) * L
        b = (1.0 / T * (i + 1)) * L
        xmin = max(first + eps, a)
        xmax = min(last - eps, b)
        if xmax < first or xmin > last:
            continue
        plen = (xmax - xmin) / 2
        y = []
        for ii in range(3):
            x = xmin + plen * ii
            j = min(max(int(np.searchsorted(xs, x, side="left")), 1), L - 1)
            lo, hi = j - 1, j
            slope = (rows[hi] - rows[lo]) / (xs[hi] - xs[lo])
            y.append(slope * (x - xs[lo]) + rows[lo])
        out[i] = ((y[0] + y[1]) + y[2]) / 3
    return out


# --------------------------------------------------------------------------------------
# post-processing of a video (the reference's, bmn-spec sections 3 and 6)
# --------------------------------------------------------------------------------------

def finish_video(merged: list[dict], L: int, convention: str, top_k: int = R.TOP_K) -> list[dict]:
    """``R.finish_video(...)["final"]`` with the Soft-NMS loop vectorised over the
    remaining proposals: the same float64 expressions elementwise, the same first-maximum
    argmax, ``math.exp`` for the decays, so kept proposals and scores are equal bit for bit
    (test_evaluate.py)."""
    n = len(merged)
    if n <= 1:
        kept = [dict(p) for p in merged]
    else:
        prm = R.SNMS[convention]
        alpha, t1, t2 = prm["alpha"], prm["t1"], prm["t2"]
        order = sorted(range(n), key=lambda i: R._tie_key(merged[i]))
        xmin = np.array([merged[i]["xmin"] for i in order], dtype=np.float64)
        xmax = np.array([merged[i]["xmax"] for i in order], dtype=np.float64)
        score = np.array([merged[i]["score"] for i in order], dtype=np.float64)
        alive = np.ones(n, dtype=bool)
        picks = []
        while True:
            left = n - len(picks)
            if convention == "mmaction2":
                if not (left > 0 and len(picks) <= R.TOP_K):
                    break
            elif not (left > 1 and len(picks) < R.TOP_K + 1):
                break
            idx = np.flatnonzero(alive)
            m = int(idx[int(np.argmax(score[idx]))])  # first maximum in list order
            width = xmax[m] - xmin[m]
            thr = t1 + (t2 - t1) * width
            rest = idx[idx != m]
            inter = np.maximum(np.minimum(xmax[rest], xmax[m]) - np.maximum(xmin[rest], xmin[m]), 0.0)
            if convention == "mmaction2":
                union = ((width - inter) + xmax[rest]) - xmin[rest]
            else:
                union = (((xmax[rest] - xmin[rest]) - inter) + xmax[m]) - xmin[m]
            iou = inter / union
            for j in np.flatnonzero(iou > thr):
                v = float(iou[j])
                score[rest[j]] = float(score[rest[j]]) * math.exp(-(v * v) / alpha)
            picks.append(m)
            alive[m] = False
        kept = [dict(merged[order[m]], score=float(score[m])) for m in picks]
    return sorted(kept, key=R._tie_key)[:top_k]


def video_inputs(x: np.ndarray, T: int, mode: str, duration: float, hop: int | None = None):
    """The network inputs of one video as ``detect`` makes them: (windows [W, T, C]
    float32, starts, valids, normalisation length)."""
    n = x.shape[0]
    if mode == "window":
        starts = R.window_starts(n, T, R.default_hop(T) if hop is None else hop)
        wins = [R.window_input(x, s0, T) for s0 in starts]
        return np.stack([w for w, _ in wins]), starts, [v for _, v in wins], n
    eps = 0.0001 * n / duration  # poolData's 0.0001 s in snippets, as detect --duration
    xw = rescale_pool(np.asarray(x, dtype=np.float32), T, eps).astype(np.float32)
    return xw[None], [0], [T], T


def proposals_from_maps(maps, starts, valids, L, D, convention, duration, top_k=R.TOP_K):
    """One video's maps ((start, end, conf) per window) -> ActivityNet proposals."""
    merged = R.merge_windows(maps, starts, valids, L, D, convention)
    final = finish_video(merged, L, convention, top_k)
    return [{"segment": [max(0.0, p["xmin"]) * duration, min(1.0, p["xmax"]) * duration],
             "score": p["score"]} for p in final]


# --------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------

def run_windows(model, windows: np.ndarray, device="cpu", batch=16):
    """windows [W, T, C] -> (start [W,T], end [W,T], conf [W,2,D,T]) numpy."""
    import torch
    outs = [], [], []
    with torch.no_grad():
        for i in range(0, len(windows), batch):
            x = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch].transpose(0, 2, 1)))
            conf, start, end = model(x.to(device))
            outs[0].append(start.cpu().numpy())
            outs[1].append(end.cpu().numpy())
            outs[2].append(conf.cpu().numpy())
    return tuple(np.concatenate(o) for o in outs)


def video_proposals(model, gt, feats, mode="window", device="cpu"):
    """Proposals of every video: {vid: [{"segment": [s, e], "score": x}, ...]}, as
    ``bmn-edge detect --duration <duration_second>`` gives them for the same maps."""
    T, D = model.tscale, model.dscale
    convention = "paddle" if getattr(model, "variant", "pytorch") == "paddle" else "mmaction2"
    results = {}
    for vid, x in feats.items():
        dur = float(gt["database"][vid]["duration_second"])
        wins, starts, valids, L = video_inputs(x, T, mode, dur)
        st, en, cf = run_windows(model, wins, device)
        maps = [(st[k].astype(np.float32), en[k].astype(np.float32), cf[k].astype(np.float32))
                for k in range(len(starts))]
        results[vid] = proposals_from_maps(maps, starts, valids, L, D, convention, dur)
    return results


def length_prior(train_gt, lengths_s):
    """Fraction of training instances whose length is nearest (in log scale) to each rung."""
    lens = np.array([a["segment"][1] - a["segment"][0]
                     for v in train_gt["database"].values() for a in v["annotations"]])
    rungs = np.log(np.asarray(lengths_s, float))
    near = np.abs(np.log(lens)[:, None] - rungs[None]).argmin(axis=1)
    return np.bincount(near, minlength=len(lengths_s)) / len(lens)


def baseline_proposals(gt, lengths_s=(2, 4, 8, 16, 32), prior=None, per_video=100):
    """Uniform sliding windows of several lengths, scored by a length prior only.

    For each length L (seconds) ``round(per_video * prior[L])`` windows (at least one) are
    spread uniformly over the video (50 % overlap when the video is short enough to tile,
    evenly spaced otherwise); score = prior[L] (ties broken by position). ``prior``
    defaults to uniform; ``length_prior(train_gt, ...)`` estimates it from training data.
    """
    lengths_s = list(lengths_s)
    prior = np.full(len(lengths_s), 1.0 / len(lengths_s)) if prior is None else np.asarray(prior)
    counts = np.maximum(1, np.round(per_video * prior).astype(int))
    results = {}
    for vid, info in gt["database"].items():
        dur = float(info["duration_second"])
        props = []
        for L, n, p in zip(lengths_s, counts, prior):
            L = min(float(L), dur)
            n_tile = max(1, int(np.ceil((dur - L) / (L / 2))) + 1)
            k = min(n, n_tile)
            starts = np.linspace(0.0, dur - L, k) if k > 1 else np.array([(dur - L) / 2])
            for j, t0 in enumerate(starts):
                props.append((float(t0), float(t0 + L), float(p) - 1e-6 * j / max(k, 1)))
        props.sort(key=lambda q: -q[2])
        results[vid] = [{"segment": [a, b], "score": sc} for a, b, sc in props[:per_video]]
    return results


# --------------------------------------------------------------------------------------
# metric (bmn-spec section 4)
# --------------------------------------------------------------------------------------

def _tiou(segs, gt):
    """tIoU of each proposal in segs [P,2] with one ground truth [2]."""
    inter = np.clip(np.minimum(segs[:, 1], gt[1]) - np.maximum(segs[:, 0], gt[0]), 0, None)
    union = (segs[:, 1] - segs[:, 0]) + (gt[1] - gt[0]) - inter
    return inter / union


def ar_an(gt, results, subset=None, max_avg=100):
    thresholds = np.linspace(0.5, 0.95, 10)
    videos = [v for v, info in gt["database"].items()
              if subset is None or info.get("subset") == subset]
    gts = {v: np.array([a["segment"] for a in gt["database"][v]["annotations"]], float)
           .reshape(-1, 2) for v in videos}
    V = len(videos)
    props = {}
    total = 0
    for v in videos:
        p = results.get(v, [])
        segs = np.array([q["segment"] for q in p], float).reshape(-1, 2)
        sc = np.array([q["score"] for q in p], float)
        order = np.argsort(-sc, kind="stable")
        props[v] = segs[order]
        total += len(p)
    ratio = max_avg * float(V) / total if total else 0.0
    kept = {v: props[v][:min(int(props[v].shape[0] * ratio), props[v].shape[0])]
            for v in videos}
    total_kept = sum(k.shape[0] for k in kept.values())
    pcn = np.arange(1, 101) / 100.0 * (max_avg * float(V) / total_kept) if total_kept else \
        np.arange(1, 101) / 100.0
    n_gt = sum(g.shape[0] for g in gts.values())
    recall = np.zeros((len(thresholds), len(pcn)))
    for v in videos:
        g, p = gts[v], kept[v]
        if g.shape[0] == 0:
            continue
        if p.shape[0] == 0:
            continue
        score = np.stack([_tiou(p, gg) for gg in g])        # [G, P]
        for j, c in enumerate(pcn):
            npr = min(int(p.shape[0] * c), p.shape[0])
            sub = score[:, :npr]
            for i, th in enumerate(thresholds):
                recall[i, j] += (sub >= th).any(axis=1).sum() if npr else 0
    recall /= max(n_gt, 1)
    avg = recall.mean(axis=0)
    an = pcn * total_kept / V
    auc = 100.0 * float(np.trapezoid(avg, an)) / an[-1]
    return {"AR@1": 100 * avg[0], "AR@5": 100 * avg[4], "AR@10": 100 * avg[9],
            "AR@100": 100 * avg[99], "AUC": auc}


def write_results(results, path):
    with open(path, "w") as f:
        json.dump({"version": "VERSION 1.3", "results": results, "external_data": {}}, f)


def main(argv=None):
    ap = argparse.ArgumentParser(description="BMN proposals + ActivityNet AR-AN metric")
    ap.add_argument("--data", required=True)
    ap.add_argument("--checkpoint", default=os.path.join(WORK, "train", "last.pt"))
    ap.add_argument("--mode", choices=["window", "rescale"], default=None)
    ap.add_argument("--results", default=None, help="write ActivityNet results JSON here")
    ap.add_argument("--baseline", action="store_true", help="sliding-window baseline only")
    ap.add_argument("--proposals", default=None,
                    help="score an existing ActivityNet results JSON (no model, no features)")
    ap.add_argument("--ground-truth", default=None, help="with --proposals: the GT JSON")
    args = ap.parse_args(argv)
    if args.proposals:
        with open(args.ground_truth or os.path.join(args.data, "ground_truth.json")) as f:
            gt = json.load(f)
        with open(args.proposals) as f:
            res = json.load(f)["results"]
        print(json.dumps({k: round(v, 6) for k, v in ar_an(gt, res).items()}))
        return
    gt, feats = load_split(args.data)
    if not args.baseline:
        import torch
        torch.set_num_threads(2)
    if args.baseline:
        train_gt = os.path.join(WORK, "data", "train", "ground_truth.json")
        prior = None
        if os.path.exists(train_gt):
            with open(train_gt) as f:
                prior = length_prior(json.load(f), (2, 4, 8, 16, 32))
        res = baseline_proposals(gt, prior=prior)
    else:
        from export import load_checkpoint
        model, ck = load_checkpoint(args.checkpoint, form="fast")
        mode = args.mode or ck.get("args", {}).get("mode", "window")
        res = video_proposals(model, gt, feats, mode=mode)
    if args.results:
        write_results(res, args.results)
    print(json.dumps({k: round(v, 4) for k, v in ar_an(gt, res).items()}))


if __name__ == "__main__":
    main()

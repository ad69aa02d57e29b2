"""Inference, post-processing and the ActivityNet proposal metric, in Python.

Used by ``train.py`` for validation and to produce golden values for the Rust side.

    python models/evaluate.py --data DIR [--checkpoint models/work/train/best.pt]
        [--mode window|rescale] [--results out.json] [--baseline]
    python models/evaluate.py --data DIR --proposals results.json   # score a file

* post-processing follows bmn-spec section 3, mmaction2 convention (candidates, pairing,
  Gaussian Soft-NMS with alpha 0.4, t1 0.5, t2 0.9, top 100);
* window mode (streaming): windows of T snippets with hop T/2 (the last one aligned to the
  video's end; videos shorter than T are zero-padded); each window's proposals are mapped
  to video time, all windows' proposals of a video are merged and Soft-NMS runs once over
  the merged set (in video-normalised coordinates);
* the metric is bmn-spec section 4 (official ActivityNet ``eval_proposal`` arithmetic,
  truncation quirks included): AR@1/5/10/100 and AUC;
* ``--baseline``: uniform sliding-window proposals of lengths 2, 4, 8, 16, 32 s, 100 per
  video, allotted and scored by a length prior only (estimated from the training split's
  ground truth when ``models/work/data/train`` exists, else uniform).
"""

from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from paths import WORK  # noqa: E402


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
    if n <= T:
        return [0]
    starts = list(range(0, n - T + 1, hop))
    if starts[-1] + T < n:
        starts.append(n - T)
    return starts


def cut_window(x: np.ndarray, start: int, T: int) -> np.ndarray:
    """[T, C] slice starting at ``start``, zero-padded past the end."""
    w = x[start:start + T]
    if w.shape[0] < T:
        w = np.concatenate([w, np.zeros((T - w.shape[0], x.shape[1]), x.dtype)], axis=0)
    return w


def rescale_video(x: np.ndarray, T: int) -> np.ndarray:
    """Whole video linearly resampled to T snippets (ActivityNet setting)."""
    n = x.shape[0]
    if n == 1:
        return np.repeat(x, T, axis=0)
    pos = (np.arange(T) + 0.5) * n / T - 0.5
    pos = np.clip(pos, 0, n - 1)
    lo = np.floor(pos).astype(int)
    hi = np.minimum(lo + 1, n - 1)
    w = (pos - lo)[:, None]
    return ((1 - w) * x[lo] + w * x[hi]).astype(np.float32)


# --------------------------------------------------------------------------------------
# post-processing (bmn-spec section 3, mmaction2)
# --------------------------------------------------------------------------------------

def candidates(p: np.ndarray, first_on: bool) -> np.ndarray:
    T = p.shape[0]
    on = np.zeros(T, dtype=bool)
    m = p.max()
    mid = p[1:-1]
    peak = (mid > p[:-2]) & (mid > p[2:])
    on[1:-1] = peak | (mid > 0.5 * m)
    if first_on:
        on[0] = True
    else:
        on[-1] = True
    return on


def window_proposals(start, end, conf):
    """All paired proposals of one window: arrays (s, e, score) in snippet units."""
    T = start.shape[0]
    D = conf.shape[1]
    s_on = candidates(start, True)
    e_on = candidates(end, False)
    d, s = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    e = s + d + 1
    ok = (e < T)
    ok[ok] &= s_on[s[ok]] & e_on[e[ok]]
    ss, ee, dd = s[ok], e[ok], d[ok]
    score = (start[ss] * end[ee] * conf[1, dd, ss] * conf[0, dd, ss]).astype(np.float32)
    return ss, ee, score.astype(np.float64)


def soft_nms(xmin, xmax, score, alpha=0.4, t1=0.5, t2=0.9, max_keep=100):
    """Gaussian Soft-NMS, mmaction2 flavour (bmn-spec section 3)."""
    order = np.argsort(-score, kind="stable")
    xmin, xmax, score = xmin[order].copy(), xmax[order].copy(), score[order].copy()
    alive = np.ones(len(score), dtype=bool)
    kept = []
    while alive.any() and len(kept) <= max_keep:
        idx = np.flatnonzero(alive)
        m = idx[np.argmax(score[idx])]
        alive[m] = False
        width = xmax[m] - xmin[m]
        rest = np.flatnonzero(alive)
        inter = np.maximum(np.minimum(xmax[rest], xmax[m]) - np.maximum(xmin[rest], xmin[m]), 0)
        union = ((width - inter) + xmax[rest]) - xmin[rest]
        iou = inter / union
        hit = iou > t1 + (t2 - t1) * width
        score[rest[hit]] *= np.exp(-(iou[hit] ** 2) / alpha)
        kept.append((xmin[m], xmax[m], score[m]))
    kept.sort(key=lambda k: -k[2])
    return kept[:max_keep]


# --------------------------------------------------------------------------------------
# inference
# --------------------------------------------------------------------------------------

@torch.no_grad()
def run_windows(model, windows: np.ndarray, device="cpu", batch=16):
    """windows [W, T, C] -> (start [W,T], end [W,T], conf [W,2,D,T]) numpy."""
    outs = [], [], []
    for i in range(0, len(windows), batch):
        x = torch.from_numpy(np.ascontiguousarray(windows[i:i + batch].transpose(0, 2, 1)))
        conf, start, end = model(x.to(device))
        outs[0].append(start.cpu().numpy())
        outs[1].append(end.cpu().numpy())
        outs[2].append(conf.cpu().numpy())
    return tuple(np.concatenate(o) for o in outs)


def video_proposals(model, gt, feats, mode="window", device="cpu", pre_nms_top=3000):
    """Proposals of every video: {vid: [{"segment": [s, e], "score": x}, ...]}."""
    T = model.tscale
    hop = T // 2
    results = {}
    for vid, x in feats.items():
        info = gt["database"][vid]
        n = x.shape[0]
        dur = float(info["duration_second"])
        if mode == "window":
            starts = window_starts(n, T, hop)
            wins = np.stack([cut_window(x, s0, T) for s0 in starts])
        else:
            starts = [0]
            wins = rescale_video(x, T)[None]
        st, en, cf = run_windows(model, wins, device)
        xs, xe, sc = [], [], []
        for k, s0 in enumerate(starts):
            s, e, score = window_proposals(st[k], en[k], cf[k])
            if mode == "window":
                xs.append((s0 + s) / n)
                xe.append((s0 + e) / n)
            else:
                xs.append(s / T)
                xe.append(e / T)
            sc.append(score)
        xs, xe, sc = np.concatenate(xs), np.concatenate(xe), np.concatenate(sc)
        if len(sc) > pre_nms_top:
            top = np.argsort(-sc, kind="stable")[:pre_nms_top]
            xs, xe, sc = xs[top], xe[top], sc[top]
        kept = soft_nms(xs, xe, sc)
        results[vid] = [{"segment": [max(0.0, a) * dur, min(1.0, b) * dur], "score": float(c)}
                        for a, b, c in kept]
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
    torch.set_num_threads(2)
    if args.proposals:
        with open(args.ground_truth or os.path.join(args.data, "ground_truth.json")) as f:
            gt = json.load(f)
        with open(args.proposals) as f:
            res = json.load(f)["results"]
        print(json.dumps({k: round(v, 6) for k, v in ar_an(gt, res).items()}))
        return
    gt, feats = load_split(args.data)
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

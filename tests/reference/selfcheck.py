"""Cross-checks of bmn_reference.py against independent vectorized formulations.

Run: .venv/bin/python tests/reference/selfcheck.py
Checks (not part of the golden data):
  * BM mask == a numpy formulation via the s-independent offset table (exact);
  * rescale_pool == a numpy np.interp formulation (|diff| <= 1e-12);
  * post_process == an upstream-style formulation (numpy IoU vectors, np.exp,
    stable argsort): identical grid decisions, scores within 1e-15 relative;
  * every golden file on disk matches a fresh recomputation.
"""

import json
import math
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bmn_reference as R  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
G = os.path.join(ROOT, "tests", "golden")


def mask_np(T, D, N, K, r):
    M = np.zeros((T, N, D, T), dtype=np.float64)
    for d in range(D):
        cl = float(d) + 1
        # absolute positions per s: an s-independent offset table is NOT
        # bit-exact (xmin = s - cl*r and xmin + step*i round per s)
        for s in range(T - d):
            xmin = s - cl * r
            xmax = (s + d) + cl * r
            step = float(xmax - xmin) / (N * K - 1.0)
            p = xmin + step * np.arange(N * K, dtype=np.float64)
            frac, down = np.modf(p)
            up = np.ceil(p)
            di = down.astype(np.int64)
            ui = up.astype(np.int64)
            for i in range(N * K):
                n = i // K
                if 0 <= di[i] <= T - 1:
                    M[di[i], n, d, s] += 1 - frac[i]
                if 0 <= ui[i] <= T - 1:
                    M[ui[i], n, d, s] += frac[i]
    return ((1.0 / K) * M).astype(np.float32)


def rescale_np(x, T, eps):
    x = np.asarray(x, dtype=np.float64)
    L, C = x.shape
    if L == 1:
        return np.repeat(x, T, axis=0)
    xs = np.arange(L) + 0.5
    out = np.zeros((T, C))
    for i in range(T):
        a = (1.0 / T * i) * L
        b = (1.0 / T * (i + 1)) * L
        lo = max(0.5 + eps, a)
        hi = min(L - 0.5 - eps, b)
        if hi < 0.5 or lo > L - 0.5:
            continue
        pts = lo + (hi - lo) / 2 * np.arange(3)
        for c in range(C):
            out[i, c] = np.mean(np.interp(pts, xs, x[:, c]))
    return out


def post_np(start, end, conf, D, conv):
    T = len(start)
    sb, eb, props = R.pair(start, end, conf, D, conv)
    if len(props) <= 1:
        return [(p["sg"], p["eg"], p["score"]) for p in props]
    prm = R.SNMS[conv]
    sc = np.array([p["score"] for p in props])
    order = np.argsort(-sc, kind="stable")
    ts = [props[k]["xmin"] for k in order]
    te = [props[k]["xmax"] for k in order]
    tsc = [props[k]["score"] for k in order]
    tg = [(props[k]["sg"], props[k]["eg"]) for k in order]
    kept = []
    while True:
        if conv == "mmaction2" and not (len(tsc) > 0 and len(kept) <= 100):
            break
        if conv == "paddle" and not (len(tsc) > 1 and len(kept) < 101):
            break
        m = int(np.argmax(tsc))
        a_s, a_e = np.array(ts), np.array(te)
        inter = np.maximum(np.minimum(a_e, te[m]) - np.maximum(a_s, ts[m]), 0.0)
        if conv == "mmaction2":
            union = (te[m] - ts[m]) - inter + a_e - a_s
        else:
            union = (a_e - a_s) - inter + te[m] - ts[m]
        iou = inter / union
        thr = prm["t1"] + (prm["t2"] - prm["t1"]) * (te[m] - ts[m])
        for i in range(len(tsc)):
            if i != m and iou[i] > thr:
                tsc[i] = tsc[i] * np.exp(-np.square(iou[i]) / prm["alpha"])
        kept.append((tg[m][0], tg[m][1], float(tsc[m])))
        for lst in (ts, te, tsc, tg):
            lst.pop(m)
    return kept[:100]


def main():
    for cfg in [(8, 8, 4, 3, 0.5), (20, 20, 6, 3, 1.0), (40, 40, 16, 3, 0.5),
                (12, 12, 3, 4, 0.3), (7, 7, 2, 3, 0.0), (30, 10, 8, 3, 0.25)]:
        a = R.bm_mask(*cfg)
        b = mask_np(*cfg)
        assert np.array_equal(a, b), cfg
    print("mask: OK")
    man = json.load(open(os.path.join(G, "mask", "manifest.json")))
    for f in man["files"]:
        M = np.load(os.path.join(G, "mask", f["file"]))
        assert np.array_equal(M, R.bm_mask(f["T"], f["D"], f["N"], f["K"], f["r"])), f["file"]
    print("mask golden files: OK")

    man = json.load(open(os.path.join(G, "rescale", "manifest.json")))
    for f in man["files"]:
        x = np.load(os.path.join(G, "rescale", f["input"]))
        y = np.load(os.path.join(G, "rescale", f["output"]))
        assert np.array_equal(y, R.rescale_pool(x, f["T"], f["eps"])), f
        z = rescale_np(x, f["T"], f["eps"])
        assert np.max(np.abs(y - z)) <= 1e-12, (f, np.max(np.abs(y - z)))
    print("rescale: OK")

    man = json.load(open(os.path.join(G, "post", "manifest.json")))
    maxrel = 0.0
    for c in man["cases"]:
        x = np.load(os.path.join(G, "post", c["file"]))
        s, e, cf = R.split_window(x, c["T"], c["D"])
        for conv in R.CONVENTIONS:
            res = R.post_process(s, e, cf, c["D"], conv)
            assert res == {k: v for k, v in c[conv].items() if k != "note"}, (c["name"], conv)
            alt = post_np(s, e, cf, c["D"], conv)
            got = [(p[3], p[4], p[2]) for p in res["proposals"]]
            assert [g[:2] for g in got] == [a[:2] for a in alt], (c["name"], conv)
            for g, a in zip(got, alt):
                if g[2] != a[2]:
                    maxrel = max(maxrel, abs(g[2] - a[2]) / abs(g[2]))
    assert maxrel <= 1e-15, maxrel
    print("post: OK (max relative score diff math.exp vs np.exp: %g)" % maxrel)


if __name__ == "__main__":
    main()

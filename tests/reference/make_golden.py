"""Regenerate the golden data under tests/golden/ from bmn_reference.py.

Usage (from the repository root):
    .venv/bin/python tests/reference/make_golden.py            # mask, post, rescale
    .venv/bin/python tests/reference/make_golden.py mask post  # some parts
    .venv/bin/python tests/reference/make_golden.py video      # needs onnxruntime
    .venv/bin/python tests/reference/make_golden.py --out /tmp/g post   # elsewhere

Deterministic: every random input comes from numpy.random.default_rng with the
fixed seeds below. Each part writes a manifest.json with its provenance.
"""

import datetime
import hashlib
import json
import math
import os
import platform
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import bmn_reference as R  # noqa: E402

ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
GOLDEN = os.path.join(ROOT, "tests", "golden")

SEED_MASK = 20190709
SEED_POST = 1907_09702
SEED_RESCALE = 400_100
SEED_VIDEO = 2026_0806

# The semantics these goldens follow, in this repository.
SPEC_FIELD = "src/reference.md sections 2 and 3"


def provenance(seed, part, spec=SPEC_FIELD):
    return {
        "script": "tests/reference/make_golden.py",
        "reference": "tests/reference/bmn_reference.py",
        "part": part,
        "seed": seed,
        "numpy": np.__version__,
        "python": platform.python_version(),
        "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        "spec": spec,
    }


def sha256_file(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        h.update(f.read())
    return h.hexdigest()


def write_json(path, obj):
    with open(path, "w") as f:
        json.dump(obj, f, indent=1, allow_nan=False)
        f.write("\n")


def save_npy(path, arr):
    # C order, little-endian, numpy format 1.0
    arr = np.ascontiguousarray(arr)
    arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
    np.save(path, arr, allow_pickle=False)


# --------------------------------------------------------------------------
# mask
# --------------------------------------------------------------------------

MASK_DENSE = [
    (8, 8, 4, 3, 0.5),
    (10, 6, 5, 2, 0.5),
    (12, 12, 3, 4, 0.3),
    (16, 9, 8, 3, 0.25),
    (2, 2, 1, 2, 0.5),
    (7, 7, 2, 3, 0.0),
    (20, 20, 6, 3, 1.0),
]
MASK_CHECKSUM = [
    (100, 100, 32, 3, 0.5),
    (100, 100, 32, 3, 0.3),
    (128, 64, 32, 3, 0.5),
    (40, 40, 16, 3, 0.5),
]


def mask_name(T, D, N, K, r):
    return "mask_T%d_D%d_N%d_K%d_r%s.npy" % (T, D, N, K, repr(r).replace(".", "p"))


def mask_stats(M, T, D, N, K, r, rng):
    nz = np.flatnonzero(M)
    t, n, d, s = np.unravel_index(nz, M.shape)
    vals = M.reshape(-1)[nz].astype(np.float64)
    w = (t * 7 + n * 13 + d * 31 + s * 101) % 1009
    named = {}
    cells = [(0, 0), (9, 45), (D - 1, 0), (D // 2, T // 4), (0, T - 1),
             (min(D - 1, T // 3), T - 1 - min(D - 1, T // 3)), (D - 1, T - 1)]
    for (cd, cs) in cells:
        if 0 <= cd < D and 0 <= cs < T:
            key = "%d,%d" % (cd, cs)
            named[key] = math.fsum(M[:, :, cd, cs].astype(np.float64).reshape(-1).tolist())
    pick_nz = rng.choice(len(nz), size=min(100, len(nz)), replace=False)
    pick_any = rng.choice(M.size, size=min(100, M.size), replace=False)
    samples = []
    for fi in list(nz[np.sort(pick_nz)]) + sorted(pick_any.tolist()):
        tt, nn, dd, ss = np.unravel_index(int(fi), M.shape)
        samples.append([int(tt), int(nn), int(dd), int(ss), float(M[tt, nn, dd, ss])])
    tiny = np.flatnonzero((vals > 0) & (vals < 1e-6))
    tiny_entries = [[int(t[k]), int(n[k]), int(d[k]), int(s[k]), float(vals[k])] for k in tiny[:50]]
    return {
        "T": T, "D": D, "N": N, "K": K, "r": r,
        "shape": [T, N, D, T],
        "tiny_nnz": int(len(tiny)),
        "tiny_entries_first50": tiny_entries,
        "nnz": int(len(nz)),
        "sum": math.fsum(vals.tolist()),
        "sum_sq": math.fsum((vals * vals).tolist()),
        "weighted_sum": math.fsum((vals * w).tolist()),
        "sha256_f32le_c_order": hashlib.sha256(
            np.ascontiguousarray(M).astype("<f4").tobytes()).hexdigest(),
        "cell_sums": named,
        "samples": samples,
    }


def make_mask():
    out = os.path.join(GOLDEN, "mask")
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED_MASK)
    files = []
    for cfg in MASK_DENSE:
        T, D, N, K, r = cfg
        M = R.bm_mask(T, D, N, K, r)
        name = mask_name(*cfg)
        path = os.path.join(out, name)
        save_npy(path, M)
        assert os.path.getsize(path) < 300 * 1024
        st = mask_stats(M, T, D, N, K, r, rng)
        files.append({"file": name, "T": T, "D": D, "N": N, "K": K, "r": r,
                      "shape": [T, N, D, T], "dtype": "float32",
                      "nnz": st["nnz"], "sum": st["sum"],
                      "sha256_file": sha256_file(path)})
        print("mask", name, st["nnz"], os.path.getsize(path))
    checks = []
    for cfg in MASK_CHECKSUM:
        T, D, N, K, r = cfg
        M = R.bm_mask(T, D, N, K, r)
        st = mask_stats(M, T, D, N, K, r, rng)
        if cfg == (100, 100, 32, 3, 0.5):
            # bmn-spec section 2 checks for the paper configuration
            assert st["nnz"] == 476827, st["nnz"]
            assert abs(st["cell_sums"]["9,45"] - 32.0) < 1e-5
            assert abs(st["cell_sums"]["99,0"] - 16.0) < 1e-5
            assert M[50, 16, 9, 45] == np.float32(0.8)
            ts = set(np.nonzero(M[:, :, 0, 0])[0].tolist())
            assert ts <= {0, 1}, ts
            assert M.nbytes == 128_000_000
            assert int(np.count_nonzero(M.sum(axis=(0, 1)))) == 5050
        checks.append(st)
        print("mask checksums", cfg, st["nnz"])
        del M
    write_json(os.path.join(out, "checksums.json"), {
        "provenance": provenance(SEED_MASK, "mask"),
        "layout": "M[t, n, d, s], float32; sums are math.fsum (correctly rounded exact sums) "
                  "of the f32 values widened to f64; sum_sq and weighted_sum products are exact "
                  "in f64; weight = (t*7 + n*13 + d*31 + s*101) % 1009; cell_sums key 'd,s' = "
                  "sum over t, n of M[t, n, d, s]; samples are [t, n, d, s, value] (first half "
                  "non-zeros, second half uniform positions); sha256 of the dense f32 "
                  "little-endian C-order bytes; tiny_nnz counts non-zeros below 1e-6 (float64 "
                  "rounding residue of (1-frac)+frac sums; an s-independent offset table does not "
                  "reproduce them bit for bit), tiny_entries_first50 lists them",
        "configs": checks,
    })
    write_json(os.path.join(out, "manifest.json"), {
        "provenance": provenance(SEED_MASK, "mask"),
        "format": ".npy v1.0, '<f4', C order, shape [T, N, D, T] = M[t, n, d, s]",
        "files": files,
        "checksums": "checksums.json",
    })


# --------------------------------------------------------------------------
# post
# --------------------------------------------------------------------------

def f32(x):
    return np.asarray(x, dtype=np.float32)


def flat(start, end, conf):
    return np.concatenate([f32(start).reshape(-1), f32(end).reshape(-1),
                           f32(conf).reshape(-1)])


def gen_random(rng, T, D):
    return rng.random(T), rng.random(T), rng.random((2, D, T))


def _bumps(rng, T, centers, lo, hi):
    x = np.arange(T, dtype=np.float64)
    p = 0.03 + 0.07 * rng.random(T)
    for c in centers:
        a = rng.uniform(lo, hi)
        sig = rng.uniform(0.8, 2.5)
        p = p + a * np.exp(-0.5 * ((x - c) / sig) ** 2)
    return np.clip(p, 0.005, 0.995)


def gen_realistic(rng, T, D):
    k = int(rng.integers(1, 5))
    segs = []
    for _ in range(k):
        length = int(rng.integers(3, max(4, min(D, T) - 2)))
        s0 = int(rng.integers(0, T - length))
        segs.append((s0, s0 + length))
    start = _bumps(rng, T, [a for a, _ in segs], 0.4, 0.9)
    end = _bumps(rng, T, [b - 1 for _, b in segs], 0.4, 0.9)
    dd, ss = np.meshgrid(np.arange(D), np.arange(T), indexing="ij")
    xmin = ss.astype(np.float64)
    xmax = (ss + dd + 1).astype(np.float64)
    iou = np.zeros((D, T))
    for a, b in segs:
        inter = np.clip(np.minimum(xmax, b) - np.maximum(xmin, a), 0, None)
        union = (xmax - xmin) + (b - a) - inter
        iou = np.maximum(iou, inter / union)
    reg = np.clip(iou + 0.08 * rng.standard_normal((D, T)), 0.01, 0.99)
    cls = np.clip(iou ** 2 + 0.05 * rng.random((D, T)), 0.01, 0.99)
    return start, end, np.stack([reg, cls])


def gen_coarse(rng, T, D, levels):
    lv = np.asarray(levels, dtype=np.float64)
    return (rng.choice(lv, size=T), rng.choice(lv, size=T), rng.choice(lv, size=(2, D, T)))


def post_cases():
    """(name, kind, T, D, seed, generator) in a fixed order."""
    cases = []
    for i in range(12):
        cases.append(("random_%02d" % i, "random", 100, 100, SEED_POST + i,
                      lambda rng, T, D: gen_random(rng, T, D)))
    for i in range(8):
        cases.append(("realistic_%02d" % i, "realistic", 100, 100, SEED_POST + 100 + i,
                      lambda rng, T, D: gen_realistic(rng, T, D)))
    for i in range(2):
        cases.append(("realistic_T128_D64_%02d" % i, "realistic", 128, 64, SEED_POST + 150 + i,
                      lambda rng, T, D: gen_realistic(rng, T, D)))
    level_sets = [
        [k / 8 for k in range(1, 9)],
        [k / 4 for k in range(1, 5)],
        [0.5, 1.0],
        [k / 8 for k in range(4, 9)],
        [0.25, 0.5, 0.75],
    ]
    for i in range(26):
        lv = level_sets[i % len(level_sets)]
        cases.append(("ties_%02d" % i, "ties", 40, 40, SEED_POST + 200 + i,
                      (lambda lv: lambda rng, T, D: gen_coarse(rng, T, D, lv))(lv)))

    def const(v, cv):
        return lambda rng, T, D: (np.full(T, v), np.full(T, v), np.full((2, D, T), cv))

    cases += [
        ("flat_const_T100", "edge", 100, 100, 0, const(0.5, 0.5)),
        ("flat_const_T40", "edge", 40, 40, 0, const(0.25, 0.75)),
        ("flat_zero_T40", "edge", 40, 40, 0, const(0.0, 0.0)),
        ("flat_zero_curves_random_conf_T40", "edge", 40, 40, SEED_POST + 300,
         lambda rng, T, D: (np.zeros(T), np.zeros(T), rng.random((2, D, T)))),
        ("flat_curves_coarse_conf_T40", "edge", 40, 40, SEED_POST + 301,
         lambda rng, T, D: (np.full(T, 0.625), np.full(T, 0.625),
                            rng.choice([0.25, 0.5, 0.75, 1.0], size=(2, D, T)))),
        ("single_proposal_T100", "edge", 100, 100, SEED_POST + 302,
         lambda rng, T, D: (np.eye(1, T, 0)[0], np.eye(1, T, T - 1)[0], rng.random((2, D, T)))),
        ("two_proposals_T40", "edge", 40, 40, SEED_POST + 303,
         lambda rng, T, D: (np.eye(1, T, 0)[0] + np.eye(1, T, 20)[0], np.eye(1, T, T - 1)[0],
                            rng.random((2, D, T)))),
        ("T2_random", "edge", 2, 2, SEED_POST + 304, lambda rng, T, D: gen_random(rng, T, D)),
        ("T2_zero", "edge", 2, 2, 0, const(0.0, 0.0)),
        ("T3_random", "edge", 3, 3, SEED_POST + 305, lambda rng, T, D: gen_random(rng, T, D)),
        ("T1", "edge", 1, 1, 0, const(0.5, 0.5)),
        ("T30_D10_random", "edge", 30, 10, SEED_POST + 306, lambda rng, T, D: gen_random(rng, T, D)),
        ("T30_D10_zero", "edge", 30, 10, 0, const(0.0, 0.0)),
        ("T30_D10_realistic", "edge", 30, 10, SEED_POST + 307,
         lambda rng, T, D: gen_realistic(rng, T, D)),
        ("tiny_values_T40", "edge", 40, 40, SEED_POST + 308,
         lambda rng, T, D: tuple(1e-12 * (1 + a) for a in gen_random(rng, T, D))),
        ("max_below_half_T40", "edge", 40, 40, SEED_POST + 309,
         lambda rng, T, D: (0.001 + 0.01 * rng.random(T), 0.001 + 0.01 * rng.random(T),
                            rng.random((2, D, T)))),
    ]
    return cases


def make_post():
    out = os.path.join(GOLDEN, "post")
    os.makedirs(out, exist_ok=True)
    entries = []
    totals = {c: {"ties": 0, "ties_decayed": 0, "cases_with_ties": 0,
                  "selection_order_differs": 0} for c in R.CONVENTIONS}
    tie_case_hits = 0
    for (name, kind, T, D, seed, gen) in post_cases():
        rng = np.random.default_rng(seed)
        start, end, conf = gen(rng, T, D)
        x = flat(start, end, conf)
        fname = name + ".npy"
        save_npy(os.path.join(out, fname), x)
        s, e, c = R.split_window(x, T, D)
        ent = {"name": name, "file": fname, "T": T, "D": D, "kind": kind, "seed": seed}
        any_tie = False
        for conv in R.CONVENTIONS:
            res = R.post_process(s, e, c, D, conv)
            if res["num_pairs"] == 0 and conv == "mmaction2":
                res["note"] = "no proposals: upstream mmaction2 raises (np.stack of an empty list); we output none"
            ent[conv] = res
            tt = totals[conv]
            tt["ties"] += res["threshold_ties"]
            tt["ties_decayed"] += res["threshold_ties_decayed"]
            tt["cases_with_ties"] += 1 if res["threshold_ties"] else 0
            tt["selection_order_differs"] += 0 if res["selection_order_equals_sorted"] else 1
            any_tie = any_tie or res["threshold_ties"] > 0
        if kind == "ties" and any_tie:
            tie_case_hits += 1
        entries.append(ent)
        print("post %-34s T=%3d D=%3d pairs mm=%5d pd=%5d kept mm=%3d pd=%3d ties mm=%4d pd=%4d" % (
            name, T, D, ent["mmaction2"]["num_pairs"], ent["paddle"]["num_pairs"],
            ent["mmaction2"]["kept"], ent["paddle"]["kept"],
            ent["mmaction2"]["threshold_ties"], ent["paddle"]["threshold_ties"]))
    n_ties_cases = sum(1 for e in entries if e["kind"] == "ties")
    assert tie_case_hits >= n_ties_cases // 2, (tie_case_hits, n_ties_cases)
    for conv in R.CONVENTIONS:
        assert totals[conv]["ties"] > 0
        assert totals[conv]["ties_decayed"] > 0  # f64 rounding says '>' at some ties
        assert totals[conv]["ties_decayed"] < totals[conv]["ties"]  # ... and '<=' at others
    # equal scores must occur in the tie-heavy set
    eq = 0
    for e in entries:
        if e["kind"] == "ties":
            sc = [p[2] for p in e["mmaction2"]["proposals"]]
            eq += len(sc) - len(set(sc))
    assert eq > 0
    totals["equal_output_scores_in_ties_set_mmaction2"] = eq
    totals["ties_cases_with_threshold_ties"] = tie_case_hits
    manifest = {
        "provenance": provenance(SEED_POST, "post"),
        "input_format": (".npy v1.0 '<f4' 1-D vector of length 2*T + 2*D*T: start[T], end[T], "
                         "confidence[2, D, T] in C order (channel 0 = reg, channel 1 = cls)"),
        "output_format": {
            "start_candidates / end_candidates": "list of T ints 0/1, forced ends included",
            "num_pairs": "number of proposals after pairing (before Soft-NMS)",
            "soft_nms_applied": "false when num_pairs <= 1 (both upstreams skip Soft-NMS then)",
            "kept": "number of proposals kept by Soft-NMS, before the top-100 truncation",
            "threshold_ties": "comparisons (i != m) where IoU == threshold exactly in integers: "
                              "inter*100*T == union*(t1*100*T + (t2-t1)*100*W), grid units",
            "threshold_ties_decayed": "of those, how many the f64 expression decided as '>' (decayed)",
            "selection_order_equals_sorted": "whether the final tie-rule sort equals the Soft-NMS selection order",
            "proposals": "final list (<= 100) of [xmin, xmax, score, start_grid, end_grid]; floats "
                         "are f64 written with shortest round-trip repr; segment = "
                         "[start_grid/T, end_grid/T]; mmaction2 end_grid = e, paddle end_grid = e+1",
        },
        "conventions": {
            "mmaction2": {"alpha": 0.4, "t1": 0.5, "t2": 0.9,
                          "loop": "while remaining > 0 and kept <= 100", "top_k": 100},
            "paddle": {"alpha": 0.4, "t1": 0.55, "t2": 0.9,
                       "loop": "while remaining > 1 and kept < 101", "top_k": 100},
        },
        "tie_rule": ("initial order: score descending, then shorter (end_grid - start_grid), then "
                     "smaller start_grid (= stable sort of generation order d outer, s inner); "
                     "argmax = first maximum in list order; pop keeps order; final: kept sorted "
                     "by the same key, top 100"),
        "decay": "score * math.exp(-(iou * iou) / alpha)  (C libm exp)",
        "tie_stats": totals,
        "cases": entries,
    }
    path = os.path.join(out, "manifest.json")
    with open(path, "w") as f:
        # one case per line block, compact inside: keeps the file small and diffable
        head = {k: v for k, v in manifest.items() if k != "cases"}
        txt = json.dumps(head, indent=1, allow_nan=False)
        f.write(txt[:-2] + ',\n "cases": [\n')
        for i, ent in enumerate(entries):
            f.write("  " + json.dumps(ent, separators=(",", ":"), allow_nan=False))
            f.write(",\n" if i + 1 < len(entries) else "\n")
        f.write(" ]\n}\n")
    json.load(open(path))  # well-formed
    print("post tie stats", json.dumps(totals))


# --------------------------------------------------------------------------
# rescale
# --------------------------------------------------------------------------

EPS_BSN = 0.0001 / 0.5333


def make_rescale():
    out = os.path.join(GOLDEN, "rescale")
    os.makedirs(out, exist_ok=True)
    C = 6
    configs = []
    for L in (1, 7, 50, 100, 123, 250, 1000):
        configs.append((L, 100, EPS_BSN))
    for L in (7, 123, 1000):
        configs.append((L, 100, 0.0))
    configs.append((50, 16, EPS_BSN))
    configs.append((250, 16, 0.0))
    files = []
    for idx, (L, T, eps) in enumerate(configs):
        rng = np.random.default_rng(SEED_RESCALE + L)
        j = np.arange(L)[:, None]
        base = np.sin(j * (0.05 + 0.1 * np.arange(C))[None, :] + np.arange(C)[None, :])
        x = (base + 0.3 * rng.standard_normal((L, C))).astype(np.float32)
        in_name = "in_L%d.npy" % L
        save_npy(os.path.join(out, in_name), x)
        y = R.rescale_pool(x, T, eps)
        tag = "bsn" if eps else "0"
        out_name = "out_L%d_T%d_eps%s.npy" % (L, T, tag)
        save_npy(os.path.join(out, out_name), y)
        zero_rows = int(np.sum(np.all(y == 0.0, axis=1)))
        files.append({"input": in_name, "output": out_name, "L": L, "C": C, "T": T,
                      "eps": eps, "zero_rows": zero_rows, "seed": SEED_RESCALE + L})
        print("rescale", out_name, "zero rows", zero_rows)
    write_json(os.path.join(out, "manifest.json"), {
        "provenance": provenance(SEED_RESCALE, "rescale"),
        "input_format": ".npy '<f4' [L, C] C order: row j = snippet j (centre at j + 0.5)",
        "output_format": (".npy '<f8' [T, C] C order (row i = output position i); the Rust side "
                          "stores [C, T] f32, i.e. the transpose"),
        "algorithm": ("bin i: a = (1.0/T*i)*L, b = (1.0/T*(i+1))*L; xmin = max(0.5+eps, a), "
                      "xmax = min(L-0.5-eps, b); zeros if xmax < 0.5 or xmin > L-0.5; else "
                      "mean ((y0+y1)+y2)/3 of linear interpolation at xmin + ((xmax-xmin)/2)*ii, "
                      "ii=0,1,2 (segment [j-1, j] with j the first centre >= x, clamped to "
                      "[1, L-1]; y = (f[j]-f[j-1])/(x_j - x_{j-1})*(x - x_{j-1}) + f[j-1]); "
                      "L == 1 replicates the row"),
        "eps_note": "eps in snippet units; 'bsn' = 0.0001 s / 0.5333 s per snippet",
        "files": files,
    })


# --------------------------------------------------------------------------
# video: detect on whole videos through the committed ONNX fixtures
# --------------------------------------------------------------------------

ONNX_DIR = os.path.join(ROOT, "tests", "fixtures", "onnx")
# (file stem, tag, convention): the post-processing convention bmn-edge derives from the
# variant (pytorch -> mmaction2, paddle -> paddle); the goldens pass it explicitly too.
VIDEO_MODELS = [
    ("bmn_tiny_pytorch_op17", "pytorch", "mmaction2"),
    ("bmn_tiny_paddle_op17", "paddle", "paddle"),
]
# (name, L, hop (None: the default T/2), mode). T = D = 16 in the fixtures.
VIDEO_CASES = [
    ("L40", 40, None, "sliding"),         # default hop 8: starts 0, 8, 16, 24 (24 + 16 = 40)
    ("L40_hop5", 40, 5, "sliding"),       # 0, 5, 10, 15, 20, then 24 aligned to the end
    ("L40_hop16", 40, 16, "sliding"),     # no overlap: 0, 16, then 24 aligned to the end
    ("L45", 45, None, "sliding"),         # 0, 8, 16, 24, then 29 aligned to the end
    ("L16", 16, None, "sliding"),         # exactly T: one window
    ("L7", 7, None, "sliding"),           # shorter than T: edge-padded, padded ends dropped
    ("L1", 1, None, "sliding"),           # one snippet (mmaction2: no pair survives)
    ("L53_rescale", 53, None, "rescale"),  # whole video resampled to T (poolData)
]
# Map perturbation the goldens must be robust to, and from which the score tolerance is
# derived: tests/fixtures/onnx/manifest.json gives ~1e-5 abs as the tolerance for other
# engines against onnxruntime (bmn-edge measured ~2e-6 on these inputs, see README).
VIDEO_DELTA = 1e-5
# Relative slack for the f32 rounding of the four-factor score: each side rounds three
# f32 products (<= 3 * 2^-24 relative each side), 6 * 2^-24 < 2^-21.
VIDEO_REL = 2.0 ** -21
VIDEO_MAX_ATTEMPTS = 20


def _ort_session(stem):
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    sess = ort.InferenceSession(os.path.join(ONNX_DIR, stem + ".onnx"), so,
                                providers=["CPUExecutionProvider"])
    names = [o.name for o in sess.get_outputs()]
    iname = sess.get_inputs()[0].name

    def run(x):
        x = np.ascontiguousarray(np.asarray(x, dtype=np.float32).T[None])  # [1, C, T]
        out = dict(zip(names, sess.run(None, {iname: x})))
        return (out["start"][0].astype(np.float32), out["end"][0].astype(np.float32),
                out["confidence"][0].astype(np.float32))
    return sess, run


def _curve_margin(p, convention, forced, never):
    """Largest delta such that no |perturbation| <= delta of the curve changes a
    candidate flag (forced / never: indices whose flag does not depend on values)."""
    v = [float(x) for x in p]
    T = len(v)
    m = max(v)
    half = 0.5 * m
    worst = math.inf
    for i in range(T):
        if i in forced or i in never:
            continue
        if convention == "mmaction2":
            if not (1 <= i <= T - 2):
                continue
            nb = [(v[i - 1], 2.0), (v[i + 1], 2.0)]
        else:
            nb = [(v[i - 1] if i > 0 else 0.0, 2.0 if i > 0 else 1.0),
                  (v[i + 1] if i < T - 1 else 0.0, 2.0 if i < T - 1 else 1.0)]
        gaps = [(v[i] - u) / k for u, k in nb]  # > 0: the comparison is true
        peak = all(g > 0 for g in gaps)
        peak_margin = min(gaps) if peak else max(-g for g in gaps if g <= 0)
        hgap = (v[i] - half) / 1.5  # v[i] moves by delta, 0.5 * max by delta / 2
        on = peak or hgap > 0
        if on:
            margin = max(peak_margin if peak else 0.0, hgap if hgap > 0 else 0.0)
        else:
            margin = min(peak_margin, -hgap)
        worst = min(worst, margin)
    return worst


def _factors(maps, p, convention):
    """(ps, pe, cls, reg) of a merged proposal, widened to f64."""
    st, en, cf = maps[p["window"]]
    s, eg = p["ws"], p["we"]
    d = eg - s - 1  # both conventions: mmaction2 e = s + d + 1; paddle eg = (s + d) + 1
    e = eg if convention == "mmaction2" else eg - 1
    return float(st[s]), float(en[e]), float(cf[1, d, s]), float(cf[0, d, s])


def _score_error(fac, delta, score, base):
    """Bound on |score - score'| when every map value moves by at most delta: the
    product of four factors in [0, 1] moves by at most prod(v + delta) - prod(v), the
    decays (exact functions of the grid) scale that by score / base, plus each side's
    f32 rounding of the product."""
    hi = 1.0
    lo = 1.0
    for v in fac:
        hi *= v + delta
        lo *= v
    ratio = score / base if base > 0 else 1.0
    return (hi - lo) * ratio + VIDEO_REL * score


def _video_run(maps, windows, L, T, D, convention, mode, top_k, trace=None):
    """The reference on given maps: the sliding path (merge + one Soft-NMS) or, for
    rescale, the one window as a video of T snippets (identical to post_process)."""
    starts = [w[0] for w in windows]
    valids = [w[1] for w in windows]
    n = T if mode == "rescale" else L
    merged = R.merge_windows(maps, starts, valids, n, D, convention)
    return merged, R.finish_video(merged, n, convention, top_k, trace=trace)


def _robustness(maps, windows, L, T, D, convention, mode, top_k, res, merged, trace):
    """(margin, parts, perturbations): margin = the largest map perturbation under which
    every candidate flag and every Soft-NMS pick provably stays (bisection on the bound
    of _score_error), and a list of the perturbed re-runs made at VIDEO_DELTA."""
    cm = math.inf
    for st, en, _ in maps:
        cm = min(cm, _curve_margin(st, convention, {0}, set() if convention == "paddle" else {T - 1}))
        cm = min(cm, _curve_margin(en, convention, {T - 1}, set() if convention == "paddle" else {0}))
    info = {p["uid"]: (_factors(maps, p, convention), p["score"]) for p in merged}

    def snms_ok(delta):
        for mi, scores, uids in trace:
            fw, bw = info[uids[mi]]
            ew = _score_error(fw, delta, scores[mi], bw)
            for j, (sc, u) in enumerate(zip(scores, uids)):
                if j == mi:
                    continue
                fj, bj = info[u]
                if not scores[mi] - sc > ew + _score_error(fj, delta, sc, bj):
                    return False
        return True

    lo, hi = 0.0, 1.0
    if not snms_ok(0.0):
        sm = 0.0
    else:
        for _ in range(60):
            mid = 0.5 * (lo + hi)
            if snms_ok(mid):
                lo = mid
            else:
                hi = mid
        sm = lo
    want = [(p["sg"], p["eg"]) for p in res["final"]]
    tried = []
    rng = np.random.default_rng(SEED_VIDEO)
    patterns = [("all +delta", lambda a: np.ones_like(a)),
                ("all -delta", lambda a: -np.ones_like(a)),
                ("alternating signs", lambda a: np.where(np.arange(a.size).reshape(a.shape) % 2 == 0, 1.0, -1.0)),
                ("random signs 1", lambda a: rng.choice([-1.0, 1.0], size=a.shape)),
                ("random signs 2", lambda a: rng.choice([-1.0, 1.0], size=a.shape)),
                ("random uniform", lambda a: rng.uniform(-1.0, 1.0, size=a.shape))]
    for name, sign in patterns:
        pm = [tuple((np.asarray(a, np.float64) + VIDEO_DELTA * sign(np.asarray(a))).astype(np.float32)
                    for a in m) for m in maps]
        _, r2 = _video_run(pm, windows, L, T, D, convention, mode, top_k)
        got = [(p["sg"], p["eg"]) for p in r2["final"]]
        tried.append({"perturbation": name, "same_segments_and_order": got == want})
    return min(cm, sm), {"candidates": cm, "soft_nms": sm}, tried


def make_video():
    import onnxruntime as ort
    out = os.path.join(GOLDEN, "video")
    os.makedirs(out, exist_ok=True)
    fx = json.load(open(os.path.join(ONNX_DIR, "manifest.json")))
    fx = {f["name"]: f for f in fx["fixtures"]}
    entries = []
    for mi, (stem, tag, conv) in enumerate(VIDEO_MODELS):
        cfg = fx[stem]["config"]
        T, D, C = cfg["tscale"], cfg["dscale"], cfg["feat_dim"]
        _, run = _ort_session(stem)
        for ci, (cname, L, hop, mode) in enumerate(VIDEO_CASES):
            duration = round(0.53 * L, 6)
            # poolData's 0.0001 s in snippets, as `detect` computes it from --duration
            eps = 0.0001 * L / duration if mode == "rescale" else 0.0
            top_k = R.TOP_K
            rejected = []
            for attempt in range(VIDEO_MAX_ATTEMPTS):
                seed = SEED_VIDEO + 1000 * mi + 20 * ci + attempt
                rng = np.random.default_rng(seed)
                x = rng.standard_normal((L, C)).astype(np.float32)
                res = R.detect_video(x, run, T, D, conv, mode=mode, hop=hop, top_k=top_k, eps=eps)
                trace = []
                merged, vres = _video_run(res["maps"], res["windows"], L, T, D, conv, mode, top_k, trace)
                # the merged path (and, for rescale, post_process) agree
                assert vres["proposals"] == res["proposals"], (cname, tag)
                margin, parts, tried = _robustness(res["maps"], res["windows"], L, T, D, conv, mode,
                                                   top_k, vres, merged, trace)
                robust = margin > VIDEO_DELTA and all(t["same_segments_and_order"] for t in tried)
                if robust:
                    break
                rejected.append({"seed": seed, "margin": margin})
            else:
                raise SystemExit("video %s %s: no robust seed in %d attempts" % (tag, cname, VIDEO_MAX_ATTEMPTS))
            name = "%s_%s" % (tag, cname)
            save_npy(os.path.join(out, name + ".npy"), x)
            save_npy(os.path.join(out, name + "_maps.npy"),
                     np.stack([flat(*m) for m in res["maps"]]))
            props = []
            for p in vres["final"]:
                fac = _factors(res["maps"], p, conv)
                seg = [max(0.0, p["xmin"]) * duration, min(1.0, p["xmax"]) * duration]
                base = merged[p["uid"]]["score"]  # before the decays
                tol = _score_error(fac, VIDEO_DELTA, p["score"], base)
                props.append([p["sg"], p["eg"], p["xmin"], p["xmax"], seg[0], seg[1], p["score"], tol])
            hop_used = R.default_hop(T) if hop is None else hop
            cmd = ["bmn-edge", "detect", "--model", "tests/fixtures/onnx/%s.onnx" % stem,
                   "--features", "tests/golden/video/%s.npy" % name, "--duration", repr(duration),
                   "--convention", conv, "--video-id", name]
            if hop is not None:
                cmd += ["--hop", str(hop)]
            if mode == "rescale":
                cmd += ["--mode", "rescale"]
            ent = {"name": name, "model": "tests/fixtures/onnx/%s.onnx" % stem, "convention": conv,
                   "mode": mode, "features": name + ".npy", "maps": name + "_maps.npy",
                   "L": L, "C": C, "T": T, "D": D, "hop": hop, "hop_used": hop_used if mode == "sliding" else None,
                   "duration": duration, "duration_arg": repr(duration),
                   "rescale_epsilon": eps if mode == "rescale" else None, "top_k": top_k,
                   "seed": seed, "seeds_rejected": rejected, "command": cmd,
                   "windows": res["windows"], "num_pairs": vres["num_pairs"],
                   "soft_nms_applied": vres["soft_nms_applied"], "kept": vres["kept"],
                   "selection_order_equals_sorted": vres["selection_order_equals_sorted"],
                   "robust_margin": margin, "margin_parts": parts, "perturbed_reruns": tried,
                   "proposals": props}
            entries.append(ent)
            print("video %-22s L=%3d windows=%-28s pairs=%4d kept=%3d out=%3d margin=%.2e (cand %.2e, snms %.2e) rejected=%d" % (
                name, L, [w[0] for w in res["windows"]], vres["num_pairs"], vres["kept"], len(props),
                margin, parts["candidates"], parts["soft_nms"], len(rejected)))
    manifest = {
        "provenance": dict(provenance(SEED_VIDEO, "video", "tests/reference/README.md (video part); "
                                      "tests/reference/bmn_reference.py section 6"),
                           onnxruntime=ort.__version__,
                           command=".venv/bin/python tests/reference/make_golden.py video"),
        "input_format": ("<name>.npy: '<f4' [L, C] features, rows are snippets, "
                         "numpy.random.default_rng(seed).standard_normal((L, C)) cast to float32"),
        "maps_format": ("<name>_maps.npy: '<f4' [W, 2T + 2DT], one row per window in order: "
                        "start[T] | end[T] | confidence[2, D, T] (0 = reg, 1 = cls), onnxruntime "
                        "(CPUExecutionProvider, 1 thread) on the window's input [1, C, T]"),
        "output_format": {
            "windows": "[first snippet, real snippets] per window (rescale: [[0, T]])",
            "num_pairs": "proposals after pairing and the padding rule, all windows merged",
            "kept": "proposals kept by the one Soft-NMS (<= 101), before the top-k cut",
            "proposals": ("[start_grid, end_grid, xmin, xmax, segment_start_s, segment_end_s, score, "
                          "score_tol] in output order; grids are snippets of the video "
                          "(rescale: of the T-window), xmin/xmax the f64 values of the "
                          "convention (mmaction2 g / L, paddle (1.0 / L) * g; rescale: L = T), "
                          "segment = [max(0, xmin) * duration, min(1, xmax) * duration] in f64, "
                          "score the reference's f64 score"),
            "robust_margin": ("largest |map perturbation| under which every candidate flag and "
                              "every Soft-NMS pick provably stays the same (min of margin_parts; "
                              "must exceed delta)"),
            "perturbed_reruns": "the reference re-run on maps perturbed by delta in these patterns: "
                                "same segments in the same order in every case",
        },
        "semantics": ("sliding: windows of T every hop (default T/2) while a window fits, one more "
                      "aligned to the end unless the hops ended there, a video shorter than T "
                      "edge-padded (last snippet repeated); per window candidates and pairing; a "
                      "pair whose end-curve index (mmaction2 e, paddle e) is >= the window's real "
                      "snippets is dropped; positions w0 + s, w0 + e normalised by L with the "
                      "convention's expression; one Soft-NMS over the merged set (f64 threshold "
                      "test), kept sorted by the tie rule, top k. rescale: rescale_pool(features, "
                      "T, eps) with eps = 0.0001 * L / duration (detect's poolData epsilon), cast "
                      "to f32, one window post-processed"),
        "delta": VIDEO_DELTA,
        "score_tolerance": ("score_tol = (prod(v + delta) - prod(v)) * score / base + 2^-21 * score, "
                            "with v = (start[s], end[e], cls[d, s], reg[d, s]) of the window the "
                            "proposal came from (f64), base = their f32 product, score / base the "
                            "Soft-NMS decays (exact functions of the grid, identical on both sides), "
                            "2^-21 the two sides' f32 rounding of the product (3 roundings of 2^-24 "
                            "each side); delta bounds another engine's map error against these maps"),
        "segments": "exact: both sides compute max(0, xmin) * duration and min(1, xmax) * duration in f64",
        "cases": entries,
    }
    path = os.path.join(out, "manifest.json")
    with open(path, "w") as f:
        head = {k: v for k, v in manifest.items() if k != "cases"}
        txt = json.dumps(head, indent=1, allow_nan=False)
        f.write(txt[:-2] + ',\n "cases": [\n')
        for i, ent in enumerate(entries):
            f.write("  " + json.dumps(ent, separators=(",", ":"), allow_nan=False))
            f.write(",\n" if i + 1 < len(entries) else "\n")
        f.write(" ]\n}\n")
    json.load(open(path))


def main(argv):
    global GOLDEN
    args = list(argv[1:])
    if "--out" in args:
        i = args.index("--out")
        GOLDEN = os.path.abspath(args[i + 1])
        del args[i:i + 2]
    parts = args or ["mask", "post", "rescale"]
    for p in parts:
        {"mask": make_mask, "post": make_post, "rescale": make_rescale, "video": make_video}[p]()


if __name__ == "__main__":
    main(sys.argv)

"""Time the Python reference post-processing (mmaction2 convention) on the
T = D = 100 windows that the Rust criterion bench uses.

Usage (from the repository root):
    .venv/bin/python benches/reference/postprocess_ref_bench.py            # time
    .venv/bin/python benches/reference/postprocess_ref_bench.py --write-data
        # (re)write benches/data/window_{random,realistic}.npy + manifest.json

Input format (same as tests/golden/post): .npy '<f4' 1-D vector of length
2*T + 2*D*T = start[T], end[T], confidence[2, D, T] (channel 0 reg, 1 cls).

Prints one JSON line per (case, implementation):
  impl "reference_loops": tests/reference/bmn_reference.py (pure Python loops)
  impl "upstream_style":  candidates/pairing in Python loops, Soft-NMS with a
                          numpy IoU vector per step and np.exp (how the
                          upstream scripts are written; our own code)
"""

import datetime
import json
import os
import platform
import statistics
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.abspath(os.path.join(HERE, "..", ".."))
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import bmn_reference as R  # noqa: E402
import make_golden as MG  # noqa: E402

DATA = os.path.join(ROOT, "benches", "data")
T = D = 100
CASES = {
    "window_random": (20260101, MG.gen_random),
    "window_realistic": (20260102, MG.gen_realistic),
}


def write_data():
    os.makedirs(DATA, exist_ok=True)
    files = []
    for name, (seed, gen) in CASES.items():
        rng = np.random.default_rng(seed)
        x = MG.flat(*gen(rng, T, D))
        MG.save_npy(os.path.join(DATA, name + ".npy"), x)
        files.append({"file": name + ".npy", "T": T, "D": D, "seed": seed,
                      "generator": "make_golden." + gen.__name__})
    MG.write_json(os.path.join(DATA, "manifest.json"), {
        "provenance": {
            "script": "benches/reference/postprocess_ref_bench.py --write-data",
            "numpy": np.__version__, "python": platform.python_version(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
        },
        "format": ".npy '<f4' 1-D: start[T], end[T], confidence[2, D, T] C order (0 reg, 1 cls)",
        "files": files,
    })


def upstream_style(start, end, conf, D):
    T = len(start)
    sb, eb, props = R.pair(start, end, conf, D, "mmaction2")
    if len(props) <= 1:
        return props
    prm = R.SNMS["mmaction2"]
    sc = np.array([p["score"] for p in props])
    order = np.argsort(-sc, kind="stable")
    ts = [props[k]["xmin"] for k in order]
    te = [props[k]["xmax"] for k in order]
    tsc = [props[k]["score"] for k in order]
    rs, re_, rsc = [], [], []
    while len(tsc) > 0 and len(rsc) <= 100:
        m = int(np.argmax(tsc))
        w = te[m] - ts[m]
        a_s, a_e = np.array(ts), np.array(te)
        inter = np.maximum(np.minimum(a_e, te[m]) - np.maximum(a_s, ts[m]), 0.0)
        iou = inter / (w - inter + a_e - a_s)
        dec = np.exp(-np.square(iou) / prm["alpha"])
        thr = prm["t1"] + (prm["t2"] - prm["t1"]) * w
        for i in range(len(tsc)):
            if i != m and iou[i] > thr:
                tsc[i] = tsc[i] * dec[i]
        rs.append(ts.pop(m))
        re_.append(te.pop(m))
        rsc.append(tsc.pop(m))
    out = np.stack([rs, re_, rsc], axis=1)
    return out[np.argsort(-out[:, 2], kind="stable")][:100]


def bench(fn, reps):
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t0) * 1e3)
    return statistics.median(times), min(times)


def main():
    if "--write-data" in sys.argv or not all(
            os.path.exists(os.path.join(DATA, n + ".npy")) for n in CASES):
        write_data()
    reps = 15
    for name in CASES:
        x = np.load(os.path.join(DATA, name + ".npy"))
        s, e, c = R.split_window(x, T, D)
        res = R.post_process(s, e, c, D, "mmaction2")
        for impl, fn in (("reference_loops", lambda: R.post_process(s, e, c, D, "mmaction2")),
                         ("upstream_style", lambda: upstream_style(s, e, c, D))):
            med, mn = bench(fn, reps)
            print(json.dumps({"case": name, "impl": impl, "convention": "mmaction2",
                              "median_ms": round(med, 3), "min_ms": round(mn, 3), "reps": reps,
                              "num_pairs": res["num_pairs"], "kept": res["kept"],
                              "python": platform.python_version(), "numpy": np.__version__}))


if __name__ == "__main__":
    main()

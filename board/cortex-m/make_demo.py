"""Writes the firmware demo's window maps (board/cortex-m/demo/maps.bin) and, with
--npy DIR, the same maps as .npy files for the host's `bmn-edge postprocess`.

The maps are synthetic, shaped like a BMN window's outputs for T = D = 16: start and end
probabilities with two clear peaks each over a low noisy floor, and a [2, D, T] confidence
map (reg, cls) with two high blobs where those peaks pair up. Seeded: the file is the same
on every run (numpy's PCG64, seed 11). Layout of maps.bin: little-endian float32,
start[T], end[T], confidence[2][D][T] (the engine's WindowOutputs order), 2176 bytes.

Run from the repository root: .venv/bin/python board/cortex-m/make_demo.py [--npy DIR]
"""
import argparse
import pathlib

import numpy as np

T = D = 16
HERE = pathlib.Path(__file__).resolve().parent


def maps():
    rng = np.random.default_rng(11)
    start = rng.uniform(0.02, 0.2, T)
    end = rng.uniform(0.02, 0.2, T)
    start[[2, 9]] = [0.91, 0.74]  # actions start at snippets 2 and 9
    end[[6, 13]] = [0.88, 0.69]   # ... and end at 6 and 13 (grid ends 7 and 14)
    start[3] = 0.45               # a shoulder, not a peak
    conf = rng.uniform(0.0, 0.3, (2, D, T))
    # cell (d, s): duration d (snippets s..s+d), as the BM layer lays it out
    for d, s, v in [(4, 2, 0.93), (4, 9, 0.81), (11, 2, 0.55)]:
        conf[:, d, s] = v
        conf[:, max(d - 1, 0):d + 2, s] = np.maximum(conf[:, max(d - 1, 0):d + 2, s], v * 0.8)
    return start.astype(np.float32), end.astype(np.float32), conf.astype(np.float32)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--npy", type=pathlib.Path, help="also write start.npy, end.npy, confidence.npy here")
    a = ap.parse_args()
    start, end, conf = maps()
    blob = np.concatenate([start, end, conf.ravel()]).astype("<f4").tobytes()
    assert len(blob) == 4 * (2 * T + 2 * D * T)
    (HERE / "demo" / "maps.bin").write_bytes(blob)
    if a.npy:
        a.npy.mkdir(parents=True, exist_ok=True)
        np.save(a.npy / "start.npy", start)
        np.save(a.npy / "end.npy", end)
        np.save(a.npy / "confidence.npy", conf)
    print(f"maps.bin: {len(blob)} bytes (numpy {np.__version__})")


if __name__ == "__main__":
    main()

"""The backbone through bmn-edge against onnxruntime, side by side, per snippet.

    .venv/bin/python benches/backbone_compare.py [--snippets 24] [--threads 1 2] [--rounds 3]

One invocation:

1. Writes (into a scratch folder) an mmaction2-style TSN ResNet-50 RGB export with a
   400-way fc and random weights (``tests/reference/pixels_reference.py``'s ``tsn_r50``,
   input ``[1, 1, 3, 224, 224]``), and a synthetic 320x240 30 fps y4m video of
   ``--snippets`` snippets of 16 frames.
2. Per thread count, ``--rounds`` interleaved rounds of
   * bmn-edge: ``bmn-edge features --backbone … --video … --threads N`` — decode, sampling
     (the centre frame), preprocessing and the backbone, per snippet (the wall time of the
     command minus the time of the same command on a 1-snippet video: loading);
   * onnxruntime: an ``InferenceSession`` (``intra_op_num_threads = N``, one inter-op thread)
     on one input per snippet (random values: they do not change the time), after 2 warm-up
     runs; no decoding or preprocessing (bmn-edge's per-snippet time includes them: about
     1–2 ms of the ~100 ms).
3. Prints the median round's ms per snippet of each and their ratio, with the CPU.

Needs numpy, onnx and onnxruntime (``tests/reference/requirements.txt`` + onnx) and the
release binary (``cargo build --release``). Timings on a shared machine are noisy.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "tests", "reference"))
import pixels_reference as ref  # noqa: E402

BIN = os.environ.get("BMN_EDGE_BIN", os.path.join(ROOT, "target", "release", "bmn-edge"))


def write_video(path: str, snippets: int, w: int = 320, h: int = 240) -> None:
    rng = np.random.default_rng(1)
    with open(path, "wb") as f:
        f.write(f"YUV4MPEG2 W{w} H{h} F30:1 Ip A1:1 C420jpeg\n".encode())
        base = rng.integers(16, 236, (h, w), dtype=np.uint8)
        chroma = rng.integers(64, 192, (2, h // 2, w // 2), dtype=np.uint8).tobytes()
        for i in range(snippets * 16):
            f.write(b"FRAME\n" + np.roll(base, i, axis=1).tobytes() + chroma)


def edge_run(model: str, video: str, threads: int) -> float:
    t0 = time.perf_counter()
    subprocess.run([BIN, "features", "--backbone", model, "--video", video, "--threads", str(threads),
                    "--out", os.path.join(os.path.dirname(video), "f.npy")], check=True, capture_output=True)
    return time.perf_counter() - t0


def ort_per_snippet(model: str, threads: int, snippets: int) -> float:
    import onnxruntime as ort
    o = ort.SessionOptions()
    o.intra_op_num_threads = threads
    o.inter_op_num_threads = 1
    s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
    x = np.random.default_rng(2).standard_normal((1, 1, 3, 224, 224)).astype(np.float32)
    for _ in range(2):
        s.run(None, {"input": x})
    t0 = time.perf_counter()
    for _ in range(snippets):
        s.run(None, {"input": x})
    return (time.perf_counter() - t0) / snippets


def cpu() -> str:
    info = open("/proc/cpuinfo").read()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    keep = [f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")]
    return f"{model} ({', '.join(keep)}), {os.cpu_count()} CPUs"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--snippets", type=int, default=24)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    a = ap.parse_args(argv)
    if not os.path.exists(BIN):
        sys.exit(f"build the binary first: cargo build --release ({BIN} missing)")
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "tsn_r50_400.onnx")
        ref.tsn_r50(model, np.random.default_rng(ref.SEED + 3), classes=400)
        video, one = os.path.join(tmp, "v.y4m"), os.path.join(tmp, "one.y4m")
        write_video(video, a.snippets)
        write_video(one, 1)
        print(f"CPU: {cpu()}; {a.snippets} snippets of 16 frames, 320x240", file=sys.stderr)
        print("| threads | bmn-edge (ms per snippet) | onnxruntime (ms per snippet) | onnxruntime / bmn-edge |")
        print("|---|---|---|---|")
        for th in a.threads:
            edge, onnx = [], []
            for _ in range(a.rounds):
                edge.append((edge_run(model, video, th) - edge_run(model, one, th)) / (a.snippets - 1) * 1e3)
                onnx.append(ort_per_snippet(model, th, a.snippets) * 1e3)
            print(f"{th} threads, every round: bmn-edge {[round(v, 1) for v in edge]}, onnxruntime "
                  f"{[round(v, 1) for v in onnx]}", file=sys.stderr)
            e, o = statistics.median(edge), statistics.median(onnx)
            print(f"| {th} | {e:.1f} | {o:.1f} | {o / e:.2f} |")


if __name__ == "__main__":
    main()

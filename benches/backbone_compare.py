"""Backbones through bmn-edge against onnxruntime, side by side, per snippet.

    .venv/bin/python benches/backbone_compare.py [--models r50 mbv2] [--snippets 24]
        [--threads 1 2] [--rounds 3] [--avx2-view] [--backbone-threads frames within]

One invocation:

1. Writes (into a scratch folder) the benchmark exports with random weights
   (``tests/reference/pixels_reference.py``): ``r50``, an mmaction2-style TSN ResNet-50 RGB
   export with a 400-way fc (``tsn_r50``, input ``[1, 1, 3, 224, 224]``); ``mbv2``,
   torchvision's MobileNetV2 as ``torch.onnx.export`` writes it (``mobilenet_v2``, input
   ``[1, 3, 224, 224]``); and a synthetic 320x240 30 fps y4m video of ``--snippets``
   snippets of 16 frames.
2. Per model and thread count, ``--rounds`` interleaved rounds of
   * bmn-edge: ``bmn-edge features --backbone … --video … --threads N`` — decode, sampling
     (the centre frame), preprocessing and the backbone, per snippet (the wall time of the
     command minus the time of the same command on a 1-snippet video: loading), once per
     ``--backbone-threads`` value; with ``--avx2-view`` also under
     ``TRACT_CPU_ISA=-avx512f,...`` (tract's and bmn-edge's AVX2 code on this CPU);
   * onnxruntime: an ``InferenceSession`` (``intra_op_num_threads = N``, one inter-op thread)
     on one input per snippet (random values: they do not change the time), after 2 warm-up
     runs, in a child process; no decoding or preprocessing (bmn-edge's per-snippet time
     includes them: about 1–2 ms).
   Each run's peak resident set (the child's ``ru_maxrss``) is recorded.
3. Prints, per model and threads, the median round's ms per snippet of each, their ratio
   (onnxruntime's time / bmn-edge's: > 1 means bmn-edge is faster) and the peak RSS, with
   the CPU.

With ``--int8`` each model is also quantized by onnxruntime's own ``quantize_static`` (QDQ
and QOperator) and both runtimes run each quantized file.

Needs numpy, onnx and onnxruntime (``tests/reference/requirements.txt`` + onnx; sympy for
``--int8``'s ``quant_pre_process``) and the release binary (``cargo build --release``). Timings on a shared machine are noisy.
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


AVX2_VIEW = "-avx512f,-avx512vnni,-avx512fp16,-avxvnni"


def peak_of(cmd: list, env=None) -> tuple:
    """Runs cmd under GNU time (``/usr/bin/time -f %M``: the peak resident set of the
    command itself — a child's ``ru_maxrss`` seen from here would include the forked copy
    of this Python process); returns (wall seconds, peak RSS in MB, stdout)."""
    with tempfile.NamedTemporaryFile("r") as rss:
        t0 = time.perf_counter()
        p = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", rss.name] + cmd, capture_output=True, env=env)
        wall = time.perf_counter() - t0
        if p.returncode != 0:
            sys.exit(f"{' '.join(cmd)} failed: {p.stderr.decode()[-2000:]}")
        return wall, int(rss.read().split()[-1]) / 1024.0, p.stdout


def edge_run(model: str, video: str, threads: int, how: str, avx2: bool) -> tuple:
    env = dict(os.environ)
    if avx2:
        env["TRACT_CPU_ISA"] = AVX2_VIEW
    wall, peak, _ = peak_of([BIN, "features", "--backbone", model, "--video", video, "--threads", str(threads),
                             "--backbone-threads", how, "--out", os.path.join(os.path.dirname(video), "f.npy")], env)
    return wall, peak


ORT_CHILD = r"""
import sys, time, numpy as np, onnxruntime as ort
model, threads, snippets, shape = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), [int(v) for v in sys.argv[4].split(",")]
o = ort.SessionOptions(); o.intra_op_num_threads = threads; o.inter_op_num_threads = 1
s = ort.InferenceSession(model, o, providers=["CPUExecutionProvider"])
x = np.random.default_rng(2).standard_normal(shape).astype(np.float32)
name = s.get_inputs()[0].name
for _ in range(2): s.run(None, {name: x})
t0 = time.perf_counter()
for _ in range(snippets): s.run(None, {name: x})
print((time.perf_counter() - t0) / snippets)
"""


def ort_per_snippet(model: str, threads: int, snippets: int, shape: list) -> tuple:
    """(seconds per snippet, peak RSS in MB) of onnxruntime in a child Python process (its
    peak includes the interpreter, numpy and onnxruntime's library: what a Python pipeline
    holds)."""
    _, peak, out = peak_of([sys.executable, "-c", ORT_CHILD, model, str(threads), str(snippets), ",".join(map(str, shape))])
    return float(out.decode().strip()), peak


def quantize(model: str, shape: list, tmp: str, key: str) -> list:
    """onnxruntime's own quantizer on `model`, as a user runs it: quant_pre_process, then
    quantize_static in both formats, int8 activations and weights, symmetric, per tensor."""
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process
    pre = os.path.join(tmp, f"{key}_pre.onnx")
    quant_pre_process(model, pre)
    out = []
    for fmt in ["QDQ", "QOperator"]:
        rng = np.random.default_rng(3)

        class Reader(CalibrationDataReader):
            def __init__(self):
                self.it = iter([{"input": rng.standard_normal(shape).astype(np.float32)} for _ in range(4)])

            def get_next(self):
                return next(self.it, None)

        path = os.path.join(tmp, f"{key}_{fmt}.onnx")
        quantize_static(pre, path, Reader(), quant_format=getattr(QuantFormat, fmt), activation_type=QuantType.QInt8,
                        weight_type=QuantType.QInt8, per_channel=False,
                        extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
        out.append((fmt, path))
    return out


MODELS = {
    "r50": ("TSN ResNet-50 (400-way fc)", lambda path: ref.tsn_r50(path, np.random.default_rng(ref.SEED + 3), classes=400),
            [1, 1, 3, 224, 224]),
    "mbv2": ("MobileNetV2 (torchvision layout)", lambda path: ref.mobilenet_v2(path, np.random.default_rng(ref.SEED + 5)),
             [1, 3, 224, 224]),
}


def cpu() -> str:
    info = open("/proc/cpuinfo").read()
    model = next((l.split(":", 1)[1].strip() for l in info.splitlines() if l.startswith("model name")), "?")
    flags = next((l.split(":", 1)[1].split() for l in info.splitlines() if l.startswith("flags")), [])
    keep = [f for f in flags if f in ("avx2", "fma", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8", "asimddp")]
    return f"{model} ({', '.join(keep)}), {os.cpu_count()} CPUs"


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="+", choices=sorted(MODELS), default=["r50", "mbv2"])
    ap.add_argument("--snippets", type=int, default=24)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--backbone-threads", nargs="+", choices=["frames", "within"], default=["frames"])
    ap.add_argument("--avx2-view", action="store_true", help="also bmn-edge under TRACT_CPU_ISA's AVX2-only view")
    ap.add_argument("--int8", action="store_true",
                    help="also int8: each model quantized by onnxruntime's quantize_static (QDQ and QOperator, "
                         "int8 symmetric per tensor, 4 random calibration frames), both runtimes on each file")
    a = ap.parse_args(argv)
    if not os.path.exists(BIN):
        sys.exit(f"build the binary first: cargo build --release ({BIN} missing)")
    with tempfile.TemporaryDirectory() as tmp:
        video, one = os.path.join(tmp, "v.y4m"), os.path.join(tmp, "one.y4m")
        write_video(video, a.snippets)
        write_video(one, 1)
        print(f"CPU: {cpu()}; {a.snippets} snippets of 16 frames, 320x240", file=sys.stderr)
        print("| model | threads | bmn-edge variant | bmn-edge (ms per snippet) | onnxruntime (ms per snippet) "
              "| bmn-edge speed / onnxruntime's | peak RSS bmn-edge / onnxruntime (MB) |")
        print("|---|---|---|---|---|---|---|")
        jobs = []
        for key in a.models:
            title, make, shape = MODELS[key]
            model = os.path.join(tmp, f"{key}.onnx")
            make(model)
            jobs.append((title, key, model, shape))
            if a.int8:
                for fmt, path in quantize(model, shape, tmp, key):
                    jobs.append((f"{title}, int8 {fmt}", key, path, shape))
        for title, key, model, shape in jobs:
            variants = [(how, False) for how in a.backbone_threads] + ([(how, True) for how in a.backbone_threads] if a.avx2_view else [])
            for th in a.threads:
                edge = {v: [] for v in variants}
                rss = {v: [] for v in variants}
                onnx, onnx_rss = [], []
                for _ in range(a.rounds):
                    for v in variants:
                        full, peak = edge_run(model, video, th, *v)
                        load, _ = edge_run(model, one, th, *v)
                        edge[v].append((full - load) / (a.snippets - 1) * 1e3)
                        rss[v].append(peak)
                    t, r = ort_per_snippet(model, th, a.snippets, shape)
                    onnx.append(t * 1e3)
                    onnx_rss.append(r)
                o = statistics.median(onnx)
                for v in variants:
                    e = statistics.median(edge[v])
                    name = f"{v[0]}{', AVX2 view' if v[1] else ''}"
                    print(f"{key} {th} threads {name}, every round: bmn-edge {[round(x, 1) for x in edge[v]]}, "
                          f"onnxruntime {[round(x, 1) for x in onnx]}", file=sys.stderr)
                    print(f"| {title} | {th} | {name} | {e:.1f} | {o:.1f} | {o / e:.2f} | "
                          f"{statistics.median(rss[v]):.0f} / {statistics.median(onnx_rss):.0f} |")
                    sys.stdout.flush()


if __name__ == "__main__":
    main()

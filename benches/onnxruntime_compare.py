"""bmn-edge against onnxruntime, side by side, on the paper configuration.

    .venv/bin/python benches/onnxruntime_compare.py [--iterations 10] [--threads 1 2]

What it does, in one invocation:

1. Exports (once, into ``bench/`` of the work directory — ``$BMN_EDGE_WORK``, default
   ``models/work/``, git-ignored) a random-weight PyTorch-variant BMN at the paper
   configuration (C = 400, T = D = 100, N = 32, K = 3, r = 0.5) as a **standard** ONNX
   export (dense mask initializer, Conv3d; ~148 MB), with ``models/bmn.py`` and
   ``models/export.py``; seed 0.
2. Writes the **reassociated-but-dense** ONNX: the same weights with the BM layer as the
   projection ``Z = W3 . y`` (a kernel-1 Conv1d) followed by one dense
   ``[N.T, D.T]`` MatMul — the best a user can do in onnxruntime without a sparse kernel.
3. Converts the standard export to the **edge** format with ``bmn-edge convert``.
4. Times, per window (median of ``--iterations`` after 2 warm-ups), at each thread count:
   onnxruntime on the standard export, onnxruntime on the reassociated ONNX, and bmn-edge
   (``bmn-edge bench --json``) on the standard and on the edge file. Each runtime runs in
   its own process so peak RSS (VmHWM) is per runtime; bmn-edge's is also measured for
   ``bmn-edge detect`` on the edge file with one window of features (``--features``).
5. Prints a Markdown table with the ratios (onnxruntime time / bmn-edge time).

The bmn-edge binary is ``target/release/bmn-edge`` (build it first:
``cargo build --release``). Timings on a shared machine are noisy; run it idle.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
sys.path.insert(0, os.path.join(ROOT, "models"))
from paths import WORK as _WORK  # noqa: E402

WORK = os.path.join(_WORK, "bench")
BIN = os.environ.get("BMN_EDGE_BIN", os.path.join(ROOT, "target", "release", "bmn-edge"))
# The one-window input of ``detect`` (peak RSS, int8 deviation): ``--features``, else the
# real ActivityNet window of the development workspace when it is there, else the first
# T = 100 snippets of the committed demo video (C = 400, as the paper configuration).
DEMO_FEAT = os.path.join(ROOT, "models", "demo", "features", "syn4_00000.npy")
FEAT = DEMO_FEAT


def pick_features(path: str | None) -> str:
    """The feature file for ``detect`` (see ``FEAT``); writes the demo window when needed."""
    if path:
        return path
    import numpy as np
    out = os.path.join(WORK, "demo_window.npy")
    if not os.path.exists(out):
        os.makedirs(WORK, exist_ok=True)
        np.save(out, np.load(DEMO_FEAT)[:100].astype(np.float32))
    return out
STANDARD = os.path.join(WORK, "bmn_paper_pytorch_op17.onnx")
REASSOC = os.path.join(WORK, "bmn_paper_pytorch_reassociated_dense.onnx")
EDGE = os.path.join(WORK, "bmn_paper_pytorch_edge.onnx")
INT8_QOP = os.path.join(WORK, "bmn_paper_pytorch_int8_qop.onnx")
INT8_EDGE = os.path.join(WORK, "bmn_paper_pytorch_int8_edge.onnx")
INT8_QDQ = os.path.join(WORK, "bmn_paper_pytorch_int8_qdq_u8.onnx")
INT8_QOP_C3 = os.path.join(WORK, "bmn_paper_pytorch_int8_qop_conv3d.onnx")
INT8_EDGE_C3 = os.path.join(WORK, "bmn_paper_pytorch_int8c3_edge.onnx")
INT8_REASSOC = os.path.join(WORK, "bmn_paper_pytorch_reassociated_int8_qdq_u8.onnx")


def export_int8(windows: int = 4) -> None:
    """int8 files: QOperator s8 symmetric per-tensor (``models/quantize.py``, the form tract
    runs fast) converted to the edge format for bmn-edge, and onnxruntime's own preferred
    form (QDQ, u8 activations, s8 weights) for onnxruntime. Calibration: ``windows``
    seeded standard-normal windows (random weights have no data to calibrate on)."""
    import numpy as np
    from quantize import bm_matmul_nodes, quantize  # noqa: E402
    x = np.random.default_rng(1).standard_normal((windows, 400, 100)).astype(np.float32)
    if not os.path.exists(INT8_QOP):
        quantize(STANDARD, INT8_QOP, x, "minmax")
    if not os.path.exists(INT8_EDGE):
        subprocess.run([BIN, "convert", INT8_QOP, "-o", INT8_EDGE], check=True)
    if not os.path.exists(INT8_QOP_C3):
        # Every convolution in int8, the BM layer's Conv3d included: the engine keeps its
        # weights (the projection) in int8, which is what makes the file and the process small.
        quantize(STANDARD, INT8_QOP_C3, x, "minmax", quantize_conv3d=True)
    if not os.path.exists(INT8_EDGE_C3):
        subprocess.run([BIN, "convert", INT8_QOP_C3, "-o", INT8_EDGE_C3], check=True)
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from quantize import WindowReader  # noqa: E402
    if not os.path.exists(INT8_QDQ):
        exclude = bm_matmul_nodes(onnx.load(STANDARD, load_external_data=False))
        quantize_static(STANDARD, INT8_QDQ, WindowReader(x), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv", "MatMul"], per_channel=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                        nodes_to_exclude=exclude)
    if not os.path.exists(INT8_REASSOC):
        # onnxruntime's preferred int8 form of the reassociated-but-dense graph: every Conv
        # and MatMul quantized, the dense [N*T, D*T] mask MatMul included (its fastest form).
        quantize_static(REASSOC, INT8_REASSOC, WindowReader(x), quant_format=QuantFormat.QDQ,
                        op_types_to_quantize=["Conv", "MatMul"], per_channel=False,
                        activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8)


def export_models(seed: int = 0) -> None:
    import numpy as np
    import torch
    from torch import nn

    from bmn import BMN, dense_bm_mask  # noqa: E402
    from export import export_onnx  # noqa: E402

    os.makedirs(WORK, exist_ok=True)
    torch.manual_seed(seed)
    torch.set_num_threads(2)
    model = BMN(variant="pytorch").eval()
    if not os.path.exists(STANDARD):
        export_onnx(model, STANDARD, opset=17)
    if not os.path.exists(REASSOC):
        T, D, N = model.tscale, model.dscale, model.num_sample
        W = model.pem_3d.weight.detach()[:, :, :, 0, 0]           # [O, P, N]
        O, P = W.shape[0], W.shape[1]
        m = dense_bm_mask(T, D, N, model.num_sample_perbin, float(model.ratio))  # [T,N,D,T]
        m2 = np.ascontiguousarray(m.transpose(1, 0, 2, 3).reshape(N * T, D * T))

        class Reassociated(nn.Module):
            def __init__(self):
                super().__init__()
                self.m = model
                self.proj = nn.Conv1d(P, O * N, 1, bias=False)
                self.proj.weight.data = W.permute(0, 2, 1).reshape(O * N, P, 1).clone()
                self.register_buffer("mask2", torch.from_numpy(m2))
                self.register_buffer("bias3", model.pem_3d.bias.detach().view(1, O, 1).clone())

            def forward(self, x):
                m = self.m
                base = m.base(x)
                start = m.tem_start(base).squeeze(1)
                end = m.tem_end(base).squeeze(1)
                y = m.pem_1d(base)
                z = self.proj(y).reshape(x.shape[0], O, N * T)      # [B, O, (n, t)]
                h = torch.relu(torch.matmul(z, self.mask2) + self.bias3)
                conf = m.pem_2d(h.reshape(x.shape[0], O, D, T))
                return conf, start, end

        r = Reassociated().eval()
        with torch.no_grad():
            torch.onnx.export(r, (torch.zeros(1, model.feat_dim, T),), REASSOC, dynamo=False,
                              opset_version=17, input_names=["x"],
                              output_names=["confidence", "start", "end"],
                              do_constant_folding=True)
    if not os.path.exists(EDGE) and os.path.exists(BIN):
        subprocess.run([BIN, "convert", STANDARD, "-o", EDGE], check=True)


ORT_CHILD = r"""
import json, statistics, sys, time
import numpy as np, onnxruntime as ort
path, threads, iters = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
so = ort.SessionOptions()
so.intra_op_num_threads = threads
so.inter_op_num_threads = 1
so.log_severity_level = 3
sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
x = np.random.default_rng(0).standard_normal((1, 400, 100)).astype(np.float32)
for _ in range(2):
    sess.run(None, {"x": x})
ts = []
for _ in range(iters):
    t0 = time.perf_counter(); sess.run(None, {"x": x}); ts.append(time.perf_counter() - t0)
rss = 0
for line in open("/proc/self/status"):
    if line.startswith("VmHWM:"):
        rss = int(line.split()[1]) / 1024
print(json.dumps({"median_ms": 1000 * statistics.median(ts), "peak_rss_mb": rss}))
"""


def ort_time(path: str, threads: int, iters: int) -> dict:
    out = subprocess.run([sys.executable, "-c", ORT_CHILD, path, str(threads), str(iters)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def edge_time(path: str, threads: int, iters: int) -> dict:
    out = subprocess.run([BIN, "bench", "--model", path, "--threads", str(threads),
                          "--iterations", str(iters), "--json"],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out)


def detect_rss(path: str, threads: int) -> float:
    """Peak RSS (VmHWM, MiB) of ``bmn-edge detect`` on one window of features (``FEAT``)."""
    out = subprocess.run(["/usr/bin/time", "-f", "%M", BIN, "detect", "--model", path,
                          "--features", FEAT, "--threads", str(threads), "--out", os.devnull],
                         check=True, capture_output=True, text=True)
    return int(out.stderr.strip().splitlines()[-1]) / 1024


def rounds(threads: int, args, engines: list) -> list:
    """Runs every ``(label, timer, model, iterations)`` ``args.rounds`` times, interleaved, and
    returns for each the run with the median time (the lower middle for an even count); every
    round's time goes to stderr."""
    runs = [[] for _ in engines]
    for _ in range(args.rounds):
        for rs, (_, timer, path, iters) in zip(runs, engines):
            rs.append(timer(path, threads, iters))
    out = []
    for rs, (label, timer, _, _) in zip(runs, engines):
        key = "median_ms" if timer is ort_time else "total_ms"
        print(f"{threads} threads, {label}, every round: {[round(r[key], 1) for r in rs]} ms", file=sys.stderr)
        out.append(sorted(rs, key=lambda r: r[key])[(len(rs) - 1) // 2])
    return out


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--iterations", type=int, default=10)
    ap.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--int8", action="store_true", help="also the int8 comparison")
    ap.add_argument("--rounds", type=int, default=3,
                    help="runs of every engine, interleaved; the tables give the median round "
                         "(the machine's speed drifts by tens of percent between minutes)")
    ap.add_argument("--features", default=None,
                    help="one window of features [100, 400] (.npy) for detect's peak RSS and the "
                         "int8 deviation (default: the first 100 snippets of the demo video)")
    args = ap.parse_args(argv)
    global FEAT
    FEAT = pick_features(args.features)
    if not os.path.exists(BIN):
        sys.exit(f"build the binary first: cargo build --release ({BIN} missing)")
    export_models()
    rows = []
    for th in args.threads:
        std, ee, rea, es = rounds(th, args, [
            ("ort standard", ort_time, STANDARD, max(3, args.iterations // 2)),
            ("bmn-edge edge", edge_time, EDGE, args.iterations),
            ("ort reassociated", ort_time, REASSOC, args.iterations),
            ("bmn-edge standard", edge_time, STANDARD, args.iterations),
        ])
        rows.append((th, std, rea, es, ee))
        print(f"threads {th}: ort standard {std['median_ms']:.1f} ms, ort reassociated "
              f"{rea['median_ms']:.1f} ms, bmn-edge standard {es['total_ms']:.1f} ms, "
              f"bmn-edge edge {ee['total_ms']:.1f} ms", file=sys.stderr)
    rss_edge = detect_rss(EDGE, 2)
    rss_std = detect_rss(STANDARD, 2)
    print("| threads | onnxruntime standard (ms) | onnxruntime reassociated dense (ms) "
          "| bmn-edge (ms) [A / BM / B / post] | vs standard | vs reassociated |")
    print("|---|---|---|---|---|---|")
    for th, std, rea, es, ee in rows:
        s = ee["stages_ms"]
        print(f"| {th} | {std['median_ms']:.1f} | {rea['median_ms']:.1f} | {ee['total_ms']:.1f} "
              f"[{s['stage_a']:.1f} / {s['bm']:.1f} / {s['stage_b']:.1f} / {s['post']:.2f}] "
              f"| {std['median_ms'] / ee['total_ms']:.1f}x | {rea['median_ms'] / ee['total_ms']:.1f}x |")
    print()
    print("| peak RSS (MiB) | value |")
    print("|---|---|")
    print(f"| onnxruntime, standard export (session + run) | {rows[-1][1]['peak_rss_mb']:.0f} |")
    print(f"| onnxruntime, reassociated dense | {rows[-1][2]['peak_rss_mb']:.0f} |")
    print(f"| bmn-edge detect, edge file, 2 threads | {rss_edge:.1f} |")
    print(f"| bmn-edge detect, standard file, 2 threads | {rss_std:.0f} |")
    if args.int8:
        export_int8()
        print()
        print("| threads | onnxruntime int8 QDQ u8, standard (ms) | onnxruntime int8 QDQ u8, reassociated dense (ms) "
              "| bmn-edge int8 s8, all convolutions, edge (ms) [A / BM / B / post] | vs standard | vs reassociated "
              "| bmn-edge int8, Conv3d float, edge (ms) |")
        print("|---|---|---|---|---|---|---|")
        for th in args.threads:
            q, e, qr, e2 = rounds(th, args, [
                ("ort int8 QDQ standard", ort_time, INT8_QDQ, args.iterations),
                ("bmn-edge all-int8", edge_time, INT8_EDGE_C3, args.iterations),
                ("ort int8 QDQ reassociated", ort_time, INT8_REASSOC, args.iterations),
                ("bmn-edge int8 Conv3d float", edge_time, INT8_EDGE, args.iterations),
            ])
            s = e["stages_ms"]
            print(f"| {th} | {q['median_ms']:.1f} | {qr['median_ms']:.1f} | {e['total_ms']:.1f} "
                  f"[{s['stage_a']:.1f} / {s['bm']:.1f} / {s['stage_b']:.1f} / {s['post']:.2f}] "
                  f"| {q['median_ms'] / e['total_ms']:.1f}x | {qr['median_ms'] / e['total_ms']:.1f}x | {e2['total_ms']:.1f} |")
        print(f"\nPeak RSS (MiB), 2 threads: bmn-edge detect on the all-int8 edge file {detect_rss(INT8_EDGE_C3, 2):.1f}, "
              f"on the Conv3d-float int8 edge file {detect_rss(INT8_EDGE, 2):.1f}; onnxruntime int8 standard "
              f"{q['peak_rss_mb']:.0f}, reassociated {qr['peak_rss_mb']:.0f}")
        import numpy as np
        import tempfile
        with tempfile.TemporaryDirectory() as tmp:
            maps = {}
            for name, path in (("fp32", EDGE), ("int8", INT8_EDGE_C3)):
                d = os.path.join(tmp, name)
                subprocess.run([BIN, "detect", "--model", path, "--features", FEAT, "--dump-maps", d,
                                "--video-id", "window", "--out", os.path.join(tmp, name + ".json")],
                               check=True, capture_output=True)
                maps[name] = {k: np.load(os.path.join(d, k + ".npy")) for k in ("start", "end", "confidence")}
                maps[name]["props"] = [tuple(p["segment"]) for p in json.load(open(os.path.join(tmp, name + ".json")))["results"]["window"]]
            dev = {k: float(np.abs(maps["int8"][k] - maps["fp32"][k]).max()) for k in ("start", "end", "confidence")}
            overlap = len(set(maps["int8"]["props"]) & set(maps["fp32"]["props"]))
            print(f"int8 vs fp32 maps (features {os.path.basename(FEAT)}): max |d| start {dev['start']:.3g}, "
                  f"end {dev['end']:.3g}, confidence {dev['confidence']:.3g}; top-100 overlap {overlap}/{len(maps['fp32']['props'])}")
    print(f"\n(bmn-edge bench's own VmHWM: standard {rows[-1][3]['peak_rss_mb']:.0f} MB, "
          f"edge {rows[-1][4]['peak_rss_mb']:.0f} MB; {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())})")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--export-only":
        export_models()
    else:
        main()

"""Small random-weight standard ONNX exports of BMN, with golden input/output, for the
engine's tests: ``tests/fixtures/onnx/``.

    python models/make_fixtures.py [--out tests/fixtures/onnx] [--seed 20261126]

Tiny configuration: T = D = 16, N = 8, K = 3, r = 0.5, C = 32, and hidden widths reduced
(base 64, PEM 64 for the PyTorch variant / 32 for paddle, Conv3d 128, 2-d 32) so every
file stays well under 2 MB. The graph structure is exactly the standard export's: grouped
Conv1d base, two TEM heads, PEM Conv1d, MatMul with the dense mask initializer
``[T, N*D*T]``, Reshape ``[B, P, N, D, T]``, Conv3d with kernel and stride (N, 1, 1),
Squeeze, 2-d convolutions, Sigmoid.

Weights: PyTorch's default initialisation from ``--seed``; then each of the three heads'
final 1x1 convolution is rescaled and re-centred so its logits on the golden input have
mean 0 and standard deviation 1.2 (sigmoid outputs spread over about (0.05, 0.95) instead
of sitting near 0.5). All three PyTorch-variant files carry the same weights, so their
outputs agree; the paddle file has its own.

Each ``<name>.io/`` holds ``input.npy`` (float32 [T, C], one row per snippet; the network
input is its transpose with a batch axis, [1, C, T]) and onnxruntime's outputs
``start.npy`` [T], ``end.npy`` [T], ``confidence.npy`` [2, D, T] (channel 0 = reg,
1 = cls), all float32. ``manifest.json`` records provenance.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import sys

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bmn import BMN, count_parameters  # noqa: E402
from export import TINY, TINY_WIDTHS, export_onnx  # noqa: E402

FIXTURES = [
    # name, variant, opset, legacy initializers-as-inputs, dynamic batch
    ("bmn_tiny_pytorch_op17", "pytorch", 17, False, False),
    ("bmn_tiny_paddle_op17", "paddle", 17, False, False),
    ("bmn_tiny_pytorch_op11_legacy", "pytorch", 11, True, False),
    ("bmn_tiny_pytorch_dynbatch_op17", "pytorch", 17, False, True),
]


def build_model(variant: str, seed: int, x: torch.Tensor) -> tuple[BMN, dict]:
    torch.manual_seed(seed)
    model = BMN(**TINY, variant=variant, widths=TINY_WIDTHS[variant], form="standard").eval()
    heads = {"start": model.tem_start[2], "end": model.tem_end[2], "confidence": model.pem_2d[6]}
    logits = {}
    hooks = [conv.register_forward_hook(
        lambda mod, inp, out, k=k: logits.__setitem__(k, out.detach().clone()))
        for k, conv in heads.items()]
    with torch.no_grad():
        model(x)
    for h in hooks:
        h.remove()
    scaling = {}
    with torch.no_grad():
        for k, conv in heads.items():
            z = logits[k]
            if k == "confidence":   # per output channel (reg, cls), valid cells only
                T = model.tscale
                d, s = torch.meshgrid(torch.arange(model.dscale), torch.arange(T), indexing="ij")
                valid = (s + d) <= T - 1
                zz = z[0][:, valid]                      # [2, cells]
                mean, std = zz.mean(dim=1), zz.std(dim=1)
            else:
                mean, std = z.mean().reshape(1), z.std().reshape(1)
            a = 1.2 / std
            conv.weight.mul_(a.view(-1, *([1] * (conv.weight.dim() - 1))))
            conv.bias.sub_(mean).mul_(a)
            scaling[k] = {"mean": mean.tolist(), "std": std.tolist()}
    return model, scaling


def sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def main(argv=None):
    import onnx
    import onnxruntime as ort

    ap = argparse.ArgumentParser(description="tiny BMN ONNX fixtures with golden I/O")
    ap.add_argument("--out", default=os.path.join(HERE, "..", "tests", "fixtures", "onnx"))
    ap.add_argument("--seed", type=int, default=20261126)
    args = ap.parse_args(argv)
    out = os.path.abspath(args.out)
    os.makedirs(out, exist_ok=True)
    torch.set_num_threads(2)

    T, C = TINY["tscale"], TINY["feat_dim"]
    rng = np.random.default_rng(args.seed)
    x_tc = rng.standard_normal((T, C)).astype(np.float32)     # rows are snippets
    x = torch.from_numpy(np.ascontiguousarray(x_tc.T))[None]  # [1, C, T]

    models = {v: build_model(v, args.seed, x) for v in ("pytorch", "paddle")}
    entries = []
    for name, variant, opset, legacy, dyn in FIXTURES:
        model, scaling = models[variant]
        path = os.path.join(out, name + ".onnx")
        export_onnx(model, path, opset=opset, legacy_inputs=legacy, dynamic_batch=dyn)
        onnx.checker.check_model(onnx.load(path))
        so = ort.SessionOptions()
        so.log_severity_level = 3   # legacy files list initializers as inputs: expected
        sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        conf, start, end = sess.run(["confidence", "start", "end"], {"x": x.numpy()})
        with torch.no_grad():
            tc, ts, te = model(x)
        err = max(float(np.abs(a - b.numpy()).max())
                  for a, b in ((conf, tc), (start, ts), (end, te)))
        assert err < 1e-5, (name, err)
        if dyn:   # the symbolic batch axis really works: batch of 3 == three singles
            xb = np.concatenate([x.numpy(), x.numpy() * 0.5, -x.numpy()], axis=0)
            cb, sb, eb = sess.run(["confidence", "start", "end"], {"x": xb})
            assert cb.shape[0] == 3 and np.abs(cb[0] - conf[0]).max() < 1e-5
        io = os.path.join(out, name + ".io")
        os.makedirs(io, exist_ok=True)
        np.save(os.path.join(io, "input.npy"), x_tc)
        np.save(os.path.join(io, "start.npy"), start[0].astype(np.float32))
        np.save(os.path.join(io, "end.npy"), end[0].astype(np.float32))
        np.save(os.path.join(io, "confidence.npy"), conf[0].astype(np.float32))
        d, s_ = np.meshgrid(np.arange(TINY["dscale"]), np.arange(T), indexing="ij")
        conf_valid = conf[0][:, (s_ + d) <= T - 1]
        ranges = {k: [float(v.min()), float(v.max())]
                  for k, v in (("start", start), ("end", end), ("confidence_valid", conf_valid))}
        for k, (lo, hi) in ranges.items():
            assert 0.005 < lo < 0.25 and 0.75 < hi < 0.995, (name, k, lo, hi)
        g = onnx.load(path)
        size = os.path.getsize(path)
        assert size < 2 * 1024 * 1024, (name, size)
        entries.append({
            "name": name, "file": name + ".onnx", "sha256": sha256(path), "bytes": size,
            "io": name + ".io", "variant": variant, "opset": opset,
            "initializers_as_inputs": legacy, "dynamic_batch": dyn,
            "graph_inputs": [i.name for i in g.graph.input][:1] + (
                [f"... {len(g.graph.input) - 1} initializers"] if legacy else []),
            "config": model.config, "parameters": count_parameters(model),
            "mask_initializer_shape": [T, TINY["num_sample"] * TINY["dscale"] * T],
            "ops": sorted({n.op_type for n in g.graph.node}),
            "output_ranges": ranges,
            "confidence_range_all_cells": [float(conf.min()), float(conf.max())], "onnxruntime_vs_torch_max_abs": err,
            "head_rescaling": scaling,
        })
        print(f"{name}: {size} bytes, ranges {ranges}, ort-vs-torch {err:.2e}")

    manifest = {
        "script": "models/make_fixtures.py",
        "command": f"python models/make_fixtures.py --seed {args.seed}",
        "seed": args.seed,
        "input": "input.npy float32 [T, C] (rows are snippets) drawn with "
                 "numpy.random.default_rng(seed).standard_normal((T, C)); the network "
                 "input is its transpose [1, C, T]",
        "outputs": "onnxruntime (CPUExecutionProvider) outputs for batch 1: start [T], "
                   "end [T], confidence [2, D, T] (0 = reg, 1 = cls), float32",
        "note": "random weights (not trained); the three pytorch-variant files share "
                "weights and so share outputs. Tolerance for other engines: ~1e-5 abs.",
        "versions": {"python": platform.python_version(), "torch": torch.__version__,
                     "onnx": onnx.__version__, "onnxruntime": ort.__version__,
                     "numpy": np.__version__},
        "fixtures": entries,
    }
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=2)
        f.write("\n")
    print("wrote", os.path.join(out, "manifest.json"))


if __name__ == "__main__":
    main()

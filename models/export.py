"""Standard ONNX export of a BMN checkpoint (bmn-spec section 1), plus int8 quantization.

The standard export is what the reference codebases produce: the BM layer is a MatMul
with the dense mask ``[T, N*D*T]`` as an initializer (128 MB at T=100, about 148 MB in
all), then Reshape and Conv3d. It is generated on demand into ``models/work/`` and never
committed.

    python models/export.py                        # trained checkpoint -> opset 17
    python models/export.py --opset 11 --legacy    # opset 11, initializers also inputs
    python models/export.py --dynamic-batch        # batch axis symbolic
    python models/export.py --tiny --out /tmp/t.onnx   # tiny random-weight model

Output names: ``confidence`` [B,2,D,T], ``start`` [B,T], ``end`` [B,T]; input ``x``
[B,C,T]. The legacy TorchScript exporter is used (``dynamo=False``) because it is what
upstream's tools used and it supports ``keep_initializers_as_inputs``.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import warnings

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from bmn import BMN  # noqa: E402

from paths import WORK  # noqa: E402
TINY = dict(tscale=16, dscale=16, num_sample=8, num_sample_perbin=3, ratio=0.5, feat_dim=32)
TINY_WIDTHS = {"pytorch": {"base": 64, "pem": 64, "3d": 128, "2d": 32},
               "paddle": {"base": 64, "pem": 32, "3d": 128, "2d": 32}}


def export_onnx(model: BMN, path: str, opset: int = 17, legacy_inputs: bool = False,
                dynamic_batch: bool = False, batch: int = 1) -> str:
    """Export ``model`` in the standard form (dense mask initializer + Conv3d) to ``path``."""
    model = model.eval()
    prev_form = model.form
    model.set_form("standard", persistent_mask=True)
    x = torch.zeros(batch, model.feat_dim, model.tscale)
    kwargs = {}
    if dynamic_batch:
        kwargs["dynamic_axes"] = {"x": {0: "batch"}, "confidence": {0: "batch"},
                                  "start": {0: "batch"}, "end": {0: "batch"}}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.onnx.export(model, (x,), path, dynamo=False, opset_version=opset,
                          input_names=["x"], output_names=["confidence", "start", "end"],
                          keep_initializers_as_inputs=legacy_inputs,
                          do_constant_folding=True, **kwargs)
    model.set_form(prev_form)
    return path


def load_checkpoint(path: str, form: str = "standard") -> tuple[BMN, dict]:
    ck = torch.load(path, map_location="cpu", weights_only=False)
    cfg = dict(ck["config"])
    model = BMN(**cfg, form=form)
    model.load_state_dict(ck["model"])
    return model.eval(), ck


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--checkpoint", default=os.path.join(WORK, "train", "last.pt"),
                    help="default: the end-of-schedule checkpoint (best.pt: best val AUC)")
    ap.add_argument("--out", default=None, help="output .onnx (default models/work/...)")
    ap.add_argument("--opset", type=int, default=17)
    ap.add_argument("--legacy", action="store_true",
                    help="keep_initializers_as_inputs=True (as mmaction2's tool wrote them)")
    ap.add_argument("--dynamic-batch", action="store_true")
    ap.add_argument("--tiny", action="store_true",
                    help="random-weight tiny-config model instead of a checkpoint")
    ap.add_argument("--variant", default="pytorch", choices=["pytorch", "paddle"])
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    if args.tiny:
        torch.manual_seed(args.seed)
        model = BMN(**TINY, variant=args.variant, widths=TINY_WIDTHS[args.variant])
        stem = f"bmn_tiny_{args.variant}"
    else:
        model, ck = load_checkpoint(args.checkpoint)
        stem = f"bmn_{model.variant}"
    suffix = f"_op{args.opset}" + ("_legacy" if args.legacy else "") + \
        ("_dynbatch" if args.dynamic_batch else "")
    out = args.out or os.path.join(WORK, "onnx", stem + suffix + ".onnx")
    export_onnx(model, out, opset=args.opset, legacy_inputs=args.legacy,
                dynamic_batch=args.dynamic_batch)
    print(json.dumps({"onnx": out, "bytes": os.path.getsize(out), "config": model.config}))


if __name__ == "__main__":
    torch.set_num_threads(2)
    main()

"""int8 QOperator quantization of a standard BMN export with onnxruntime's quantizer.

    python models/quantize.py [--onnx models/work/onnx/bmn_pytorch_op17.onnx]
        [--methods minmax percentile entropy] [--calib-windows 16] [--eval-data DIR]

The form tract runs fast (design.md "Quantized"): QOperator (QLinearConv), int8
activations and int8 weights, symmetric (zero points 0), per-tensor scales; only Conv and
MatMul are quantized, and the BM MatMul (the one with the dense mask constant) is
excluded, so no ``com.microsoft`` op (QLinearSigmoid, ...) appears. Calibration windows are
training windows (seeded choice). Each calibration method's model is scored by the
validation AUC (window mode, the same post-processing as the fp32 model) and the best is
copied to ``<stem>_int8.onnx``; ``quantize_report.json`` records the comparison.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import time

import numpy as np
import onnx
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from evaluate import ar_an, cut_window, load_split, video_proposals, window_starts  # noqa: E402

from paths import WORK  # noqa: E402


def bm_matmul_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of MatMul nodes whose second input is a constant of shape [T, N*D*T]."""
    inits = {i.name: list(i.dims) for i in model.graph.initializer}
    for n in model.graph.node:
        if n.op_type == "Constant":
            for a in n.attribute:
                if a.name == "value":
                    inits[n.output[0]] = list(a.t.dims)
    out = []
    for n in model.graph.node:
        if n.op_type == "MatMul" and len(n.input) == 2:
            dims = inits.get(n.input[1])
            if dims is not None and len(dims) == 2 and dims[1] > 64 * dims[0]:
                out.append(n.name)
    return out


class WindowReader:
    """onnxruntime CalibrationDataReader over a fixed list of [1, C, T] windows."""

    def __init__(self, windows: np.ndarray, input_name: str = "x"):
        self.windows, self.name, self.i = windows, input_name, 0

    def get_next(self):
        if self.i >= len(self.windows):
            return None
        x = self.windows[self.i:self.i + 1]
        self.i += 1
        return {self.name: x}

    def rewind(self):
        self.i = 0


def calibration_windows(data_dir: str, n: int, T: int, seed: int = 0) -> np.ndarray:
    gt, feats = load_split(data_dir)
    wins = []
    for vid in sorted(feats):
        x = feats[vid]
        for s0 in window_starts(x.shape[0], T, T // 2):
            wins.append((vid, s0))
    pick = np.random.default_rng(seed).choice(len(wins), size=min(n, len(wins)), replace=False)
    return np.stack([cut_window(feats[wins[i][0]], wins[i][1], T).T for i in sorted(pick)]
                    ).astype(np.float32)


def conv3d_nodes(model: onnx.ModelProto) -> list[str]:
    """Names of Conv nodes with a 5-d weight (the PEM Conv3d after the BM layer)."""
    dims = {i.name: len(i.dims) for i in model.graph.initializer}
    return [n.name for n in model.graph.node
            if n.op_type == "Conv" and dims.get(n.input[1]) == 5]


def stage_tensors(model: onnx.ModelProto) -> tuple[str, str]:
    """(y, h): the BM MatMul's feature input and the [B,512,D,T] tensor after Conv3d+ReLU+
    Squeeze -- where the engine cuts the graph into stage A and stage B."""
    nodes = model.graph.node
    bm = set(bm_matmul_nodes(model))
    y = next(n.input[0] for n in nodes if n.name in bm)
    c3 = set(conv3d_nodes(model))
    cur = next(n.output[0] for n in nodes if n.name in c3)
    for op in ("Relu", "Squeeze"):
        nxt = next(n for n in nodes if cur in n.input)
        assert nxt.op_type == op, (op, nxt.op_type)
        cur = nxt.output[0]
    return y, cur


def quantize(fp32_path: str, out_path: str, windows: np.ndarray, method: str,
             quantize_conv3d: bool = False):
    from onnxruntime.quantization import (CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)
    methods = {"minmax": CalibrationMethod.MinMax, "percentile": CalibrationMethod.Percentile,
               "entropy": CalibrationMethod.Entropy}
    m = onnx.load(fp32_path)
    exclude = bm_matmul_nodes(m)
    assert exclude, "no BM MatMul found"
    if not quantize_conv3d:
        # The engine computes MatMul + Conv3d reassociated, in float (design.md); a
        # QLinearConv there would quantize the 5-d BM output, which reassociation cannot
        # reproduce. So the Conv3d stays float by default.
        exclude += conv3d_nodes(m)
    del m
    # (CalibMaxIntermediateOutputs is not used: in this onnxruntime version it discards
    # the batches it was meant to merge.) Calibration keeps every window's intermediate
    # tensors in memory, ~360 MB per paper-config window (the 5-d BM output), so the
    # default is 8 windows.
    extra = {"ActivationSymmetric": True, "WeightSymmetric": True}
    if method == "percentile":
        extra["CalibPercentile"] = 99.999
    quantize_static(fp32_path, out_path, WindowReader(windows),
                    quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv", "MatMul"],
                    per_channel=False, reduce_range=False,
                    activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                    nodes_to_exclude=exclude, calibrate_method=methods[method],
                    extra_options=extra)
    q = onnx.load(out_path)
    domains = {n.domain for n in q.graph.node if n.domain not in ("", "ai.onnx")}
    assert not domains, f"non-standard op domains in {out_path}: {domains}"
    return sorted({n.op_type for n in q.graph.node}), exclude


class OrtBMN:
    """An onnxruntime session with the call signature of models.bmn.BMN (batch looped)."""

    def __init__(self, path: str, threads: int = 2):
        import onnxruntime as ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.inter_op_num_threads = 1
        so.log_severity_level = 3
        self.sess = ort.InferenceSession(path, so, providers=["CPUExecutionProvider"])
        shape = self.sess.get_inputs()[0].shape
        self.feat_dim, self.tscale = int(shape[1]), int(shape[2])
        conf_shape = self.sess.get_outputs()[0].shape
        self.dscale = int(conf_shape[2])

    def eval(self):
        return self

    def __call__(self, x: torch.Tensor):
        outs = [self.sess.run(["confidence", "start", "end"], {"x": xb[None].numpy()})
                for xb in x]
        return tuple(torch.from_numpy(np.concatenate([o[k] for o in outs])) for k in range(3))


class HybridBMN:
    """Runs a (quantized) standard export the way the engine does: stage A (x -> start,
    end, y) and stage B (h -> confidence) in onnxruntime, cut out of the file, and the BM
    layer + Conv3d between them in the reassociated fast form (torch, float), with the
    file's own Conv3d weights. Requires the Conv3d and the BM MatMul to be float."""

    def __init__(self, path: str, threads: int = 2, workdir: str | None = None):
        import onnxruntime as ort
        from onnx import numpy_helper

        from bmn import BMN
        m = onnx.load(path)
        y_name, h_name = stage_tensors(m)
        inits = {i.name: i for i in m.graph.initializer}
        c3 = next(n for n in m.graph.node if n.name in set(conv3d_nodes(m)))
        w3 = numpy_helper.to_array(inits[c3.input[1]])
        b3 = numpy_helper.to_array(inits[c3.input[2]])
        mask = next(i for i in m.graph.initializer
                    if len(i.dims) == 2 and i.dims[1] > 64 * i.dims[0])
        T = int(mask.dims[0])
        shape = [d.dim_value for d in m.graph.input[0].type.tensor_type.shape.dim]
        self.feat_dim, self.tscale = int(shape[1]), T
        del m
        workdir = workdir or os.path.dirname(os.path.abspath(path))
        stem = os.path.join(workdir, os.path.splitext(os.path.basename(path))[0])
        a_path, b_path = stem + ".stageA.onnx", stem + ".stageB.onnx"
        onnx.utils.extract_model(path, a_path, ["x"], ["start", "end", y_name])
        onnx.utils.extract_model(path, b_path, [h_name], ["confidence"])
        so = ort.SessionOptions()
        so.intra_op_num_threads = threads
        so.log_severity_level = 3
        self.a = ort.InferenceSession(a_path, so, providers=["CPUExecutionProvider"])
        self.b = ort.InferenceSession(b_path, so, providers=["CPUExecutionProvider"])
        self.y_name, self.h_name = y_name, h_name
        # N and D from the Conv3d kernel and the mask width (N*D*T)
        N = int(w3.shape[2])
        D = int(mask.dims[1]) // (N * T)
        self.dscale = D
        self.bm = BMN(tscale=T, dscale=D, num_sample=N, feat_dim=self.feat_dim,
                      widths={"pem": int(w3.shape[1]), "3d": int(w3.shape[0])}, form="fast")
        with torch.no_grad():
            self.bm.pem_3d.weight.copy_(torch.from_numpy(w3.copy()))
            self.bm.pem_3d.bias.copy_(torch.from_numpy(b3.copy()))

    def eval(self):
        return self

    @torch.no_grad()
    def __call__(self, x: torch.Tensor):
        confs, starts, ends = [], [], []
        for xb in x:
            st, en, y = self.a.run(["start", "end", self.y_name], {"x": xb[None].numpy()})
            h = self.bm._bm_fast(torch.from_numpy(y)).contiguous().numpy()
            (c,) = self.b.run(["confidence"], {self.h_name: h})
            confs.append(c); starts.append(st); ends.append(en)
        return tuple(torch.from_numpy(np.concatenate(v)) for v in (confs, starts, ends))


def main(argv=None):
    ap = argparse.ArgumentParser(description="int8 QOperator quantization + calibration "
                                             "method comparison")
    ap.add_argument("--onnx", default=os.path.join(WORK, "onnx", "bmn_pytorch_op17.onnx"))
    ap.add_argument("--calib-data", default=os.path.join(WORK, "data", "train"))
    ap.add_argument("--calib-windows", type=int, default=8)
    ap.add_argument("--eval-data", default=os.path.join(WORK, "data", "val"))
    ap.add_argument("--test-data", default=os.path.join(WORK, "data", "test"),
                    help="final metrics of fp32, the best int8 and the baseline here")
    ap.add_argument("--methods", nargs="+", default=["minmax", "percentile", "entropy"])
    ap.add_argument("--quantize-conv3d", action="store_true",
                    help="also quantize the Conv3d (then only full-graph evaluation)")
    ap.add_argument("--no-eval", action="store_true")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    torch.set_num_threads(2)
    from evaluate import baseline_proposals, write_results

    stem = os.path.splitext(args.onnx)[0]
    Runner = OrtBMN if args.quantize_conv3d else HybridBMN
    fp32 = Runner(args.onnx)
    windows = calibration_windows(args.calib_data, args.calib_windows, fp32.tscale, args.seed)
    report = {"fp32": args.onnx, "calibration": {"data": args.calib_data,
              "windows": int(len(windows)), "seed": args.seed},
              "evaluation": f"{Runner.__name__} on {args.eval_data}", "methods": {}}
    if not args.no_eval:
        gt, feats = load_split(args.eval_data)
        t0 = time.time()
        report["fp32_metrics"] = ar_an(gt, video_proposals(fp32, gt, feats))
        report["fp32_eval_seconds"] = round(time.time() - t0, 1)
        print("fp32", json.dumps(report["fp32_metrics"]), flush=True)
    for method in args.methods:
        out = f"{stem}_int8_{method}.onnx"
        t0 = time.time()
        ops, excluded = quantize(args.onnx, out, windows, method, args.quantize_conv3d)
        rec = {"file": out, "bytes": os.path.getsize(out), "ops": ops, "excluded": excluded,
               "quantize_seconds": round(time.time() - t0, 1)}
        if not args.no_eval:
            t0 = time.time()
            rec["metrics"] = ar_an(gt, video_proposals(Runner(out), gt, feats))
            rec["eval_seconds"] = round(time.time() - t0, 1)
        report["methods"][method] = rec
        print(method, json.dumps(rec), flush=True)
    if not args.no_eval:
        best = max(report["methods"], key=lambda k: report["methods"][k]["metrics"]["AUC"])
        report["best"] = best
        best_path = f"{stem}_int8.onnx"
        shutil.copyfile(report["methods"][best]["file"], best_path)
        # the split evaluation equals onnxruntime on the whole file: check on two windows
        x = torch.from_numpy(windows[:2])
        full, split = OrtBMN(best_path)(x), Runner(best_path)(x)
        report["split_vs_full_max_abs"] = max(float((u - v).abs().max())
                                              for u, v in zip(full, split))
        if args.test_data and os.path.exists(args.test_data):
            gt_t, f_t = load_split(args.test_data)
            test = {}
            for name, runner in (("fp32", fp32), ("int8", Runner(best_path))):
                res = video_proposals(runner, gt_t, f_t)
                write_results(res, f"{stem}_test_results_{name}.json")
                test[name] = ar_an(gt_t, res)
                print("test", name, json.dumps(test[name]), flush=True)
            res = baseline_proposals(gt_t)
            write_results(res, os.path.join(os.path.dirname(stem), "baseline_test_results.json"))
            test["baseline"] = ar_an(gt_t, res)
            report["test_metrics"] = test
    with open(f"{stem}_quantize_report.json", "w") as f:
        json.dump(report, f, indent=1)
    print(json.dumps({"best": report.get("best"), "test": report.get("test_metrics")}))


if __name__ == "__main__":
    main()

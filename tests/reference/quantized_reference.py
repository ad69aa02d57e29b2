"""Backbones quantized by onnxruntime's own quantizer, with onnxruntime's outputs: the
goldens of `tests/quantized_backbones.rs` (bmn-edge loads onnxruntime's QOperator contrib
ops by lowering them, `src/engine/onnx/qoperator.rs`).

    .venv/bin/python tests/reference/quantized_reference.py --out tests/golden/quantized

Writes
* `float.onnx`: a small backbone [N, 3, 24, 24] -> [N, 12] whose graph makes the quantizer
  emit every common QOperator op: Conv (stride 2, and a depthwise one), Relu, a residual
  Add, Mul, Concat, GlobalAveragePool, Flatten, Gemm. Random weights (seeded).
* `q_<form>.onnx` for the forms below, by
  `onnxruntime.quantization.quantize_static(..., quant_format=QOperator)` calibrated on 8
  seeded random inputs:
  `s8` (int8 activations and weights, symmetric, per tensor — the issue's setting),
  `u8pc` (uint8 asymmetric activations, int8 per-channel weights), and
  `qdq_s8` and `qdq_u8pc` (the QDQ forms of both: bmn-edge folds their
  DequantizeLinear -> Conv -> QuantizeLinear into QLinearConv, as onnxruntime does).
* `input.npy` [16, 3, 24, 24] float32 (seeded normal values) and, per file,
  `q_<form>.out.npy` [16, 12]: onnxruntime's CPU outputs for it, one input at a time.
* `manifest.json`: provenance (script, seed, numpy/onnx/onnxruntime versions, date) and,
  per quantized file, the output's dequantization scale (the last QuantizeLinear's or
  QGemm's y_scale), its zero point and the op types it holds.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform

import numpy as np

SEED = 20261208


def float_model(path: str, rng) -> None:
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = []

    def w(name, shape, s):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * s).astype(np.float32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", w("w1", (8, 3, 3, 3), 0.3), w("b1", (8,), 0.1)], ["c1"], pads=[1] * 4, strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", (8, 8, 3, 3), 0.2), w("b2", (8,), 0.1)], ["c2"], pads=[1] * 4),
        helper.make_node("Add", ["c2", "r1"], ["a"]),
        helper.make_node("Relu", ["a"], ["r2"]),
        helper.make_node("Conv", ["r2", w("w3", (8, 1, 3, 3), 0.3), w("b3", (8,), 0.1)], ["c3"], pads=[1] * 4, group=8),
        helper.make_node("Mul", ["c3", "r2"], ["m"]),
        helper.make_node("Concat", ["m", "r2"], ["cat"], axis=1),
        helper.make_node("GlobalAveragePool", ["cat"], ["g"]),
        helper.make_node("Flatten", ["g"], ["f"]),
        helper.make_node("Gemm", ["f", w("wf", (12, 16), 0.3), w("bf", (12,), 0.1)], ["feat"], transB=1),
    ]
    g = helper.make_graph(nodes, "quantizable", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 24, 24])],
                          [helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", 12])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="quantized_reference.py")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def main() -> None:
    import onnx
    import onnxruntime as ort
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    os.makedirs(a.out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    fp = os.path.join(a.out, "float.onnx")
    float_model(fp, rng)
    calib = [rng.standard_normal((1, 3, 24, 24)).astype(np.float32) for _ in range(8)]
    x = rng.standard_normal((16, 3, 24, 24)).astype(np.float32)
    np.save(os.path.join(a.out, "input.npy"), x)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": c} for c in calib])

        def get_next(self):
            return next(self.it, None)

    forms = {
        "s8": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                   per_channel=False, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}),
        "u8pc": dict(quant_format=QuantFormat.QOperator, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                     per_channel=True),
        "qdq_s8": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QInt8, weight_type=QuantType.QInt8,
                       per_channel=False, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True}),
        "qdq_u8pc": dict(quant_format=QuantFormat.QDQ, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
                         per_channel=True),
    }
    files = {}
    for name, kw in forms.items():
        path = os.path.join(a.out, f"q_{name}.onnx")
        quantize_static(fp, path, Reader(), **kw)
        m = onnx.load(path)
        inits = {t.name: t for t in m.graph.initializer}
        # The output's quantization: the QGemm's y_scale (QOperator) or the QuantizeLinear
        # that feeds the last DequantizeLinear (QDQ).
        last = [n for n in m.graph.node if n.output[0] == "feat"][0]
        if last.op_type == "DequantizeLinear":
            scale_name, zero_name = last.input[1], last.input[2]
        else:
            raise SystemExit(f"unexpected last op {last.op_type}")
        scale = float(onnx.numpy_helper.to_array(inits[scale_name]))
        zero = int(onnx.numpy_helper.to_array(inits[zero_name]))
        s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
        out = np.concatenate([s.run(None, {"x": x[i:i + 1]})[0] for i in range(len(x))])
        np.save(os.path.join(a.out, f"q_{name}.out.npy"), out.astype(np.float32))
        files[name] = {"file": f"q_{name}.onnx", "output_scale": scale, "output_zero_point": zero,
                       "ops": sorted({f"{n.domain}:{n.op_type}" if n.domain else n.op_type for n in m.graph.node}),
                       "quantize_static": {k: str(v) for k, v in kw.items()}}
    manifest = {
        "provenance": {
            "script": "tests/reference/quantized_reference.py", "seed": SEED, "numpy": np.__version__,
            "onnx": onnx.__version__, "onnxruntime": ort.__version__, "python": platform.python_version(),
            "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "command": "python tests/reference/quantized_reference.py --out tests/golden/quantized",
        },
        "files": files,
    }
    with open(os.path.join(a.out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()

"""Writes the committed seed corpora of tests/fuzz/corpus/ (run once by hand; CI does not).

    python tests/fuzz/make_seeds.py [path/to/bmn-edge]

Needs numpy and onnx (the models/ virtual environment has both) and, for the model seeds,
a built `bmn-edge` binary (default target/debug/bmn-edge) for `convert`. The seeds are
small on purpose: the fixtures (tests/fixtures/onnx*/) join the model target's working
corpus at run time (run.sh).
"""
import io
import json
import os
import subprocess
import sys
import tempfile

import numpy as np
import onnx
from onnx import numpy_helper

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
C = os.path.join(HERE, "corpus")


def put(target, name, data):
    os.makedirs(os.path.join(C, target), exist_ok=True)
    with open(os.path.join(C, target, name), "wb") as f:
        f.write(data if isinstance(data, bytes) else data.encode())


def npy_bytes(a, version=None):
    b = io.BytesIO()
    if version:
        np.lib.format.write_array(b, a, version=version)
    else:
        np.save(b, a)
    return b.getvalue()


def npy_seeds():
    put("npy", "f4_2x3.npy", npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3) * 0.5))
    put("npy", "f8_1x2.npy", npy_bytes(np.array([[0.1, -2.5]], dtype="<f8")))
    put("npy", "be_f4_2x2.npy", npy_bytes(np.arange(4, dtype=">f4").reshape(2, 2)))
    put("npy", "fortran_2x3.npy", npy_bytes(np.asfortranarray(np.arange(6, dtype="<f4").reshape(2, 3))))
    put("npy", "empty_0x4.npy", npy_bytes(np.zeros((0, 4), dtype="<f4")))
    put("npy", "rank1.npy", npy_bytes(np.arange(3, dtype="<f4")))
    put("npy", "rank3.npy", npy_bytes(np.ones((1, 2, 2), dtype="<f4")))
    put("npy", "int32.npy", npy_bytes(np.arange(2, dtype="<i4").reshape(1, 2)))
    put("npy", "v2_2x1.npy", npy_bytes(np.ones((2, 1), dtype="<f4"), version=(2, 0)))


def snippet_seeds():
    # First byte: bits 0-1 the format (0 recognised, 1 raw, 2 npy), bits 2-7 the width C.
    def opt(fmt, c):
        return bytes([fmt | (c << 2)])

    raw = np.arange(6, dtype="<f4").tobytes()
    put("snippet_stream", "raw_c3", opt(1, 3) + raw)
    put("snippet_stream", "raw_cut", opt(0, 4) + raw[:-2])
    put("snippet_stream", "npy_f4_2x3", opt(0, 0) + npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3)))
    put("snippet_stream", "npy_f8_3x2", opt(0, 0) + npy_bytes(np.arange(6, dtype="<f8").reshape(3, 2)))
    put("snippet_stream", "npy_truncated_c3", opt(2, 3) + npy_bytes(np.arange(6, dtype="<f4").reshape(2, 3))[:-5])


def y4m_seeds():
    # First byte: bit 0 hint the preprocessing's pixels, bits 1-7 convert (0) or skip (1).
    def y4m(w, h, frames, extra="", c444=False):
        cw, ch = (w, h) if c444 else ((w + 1) // 2, (h + 1) // 2)
        out = f"YUV4MPEG2 W{w} H{h} F30000:1001 Ip A1:1{extra}\n".encode()
        rng = np.random.default_rng(1)
        for _ in range(frames):
            out += b"FRAME\n" + rng.integers(0, 256, w * h + 2 * cw * ch, dtype=np.uint8).tobytes()
        return out

    put("y4m", "420_4x4_2f", b"\x00" + y4m(4, 4, 2, " C420jpeg"))
    put("y4m", "420_5x3_hint", b"\x01" + y4m(5, 3, 2, " C420mpeg2"))
    put("y4m", "444_full_3x2", b"\x02" + y4m(3, 2, 3, " C444 XCOLORRANGE=FULL", c444=True))
    put("y4m", "420_20x18_skip", b"\x55" + y4m(20, 18, 3))


def text_seeds():
    put("features_csv", "bsn.csv", "a,b,c\n0.5,-1.25,3\n1e-3,2.0,  -0\n")
    put("features_csv", "pandas_crlf.csv", b"0,1\r\n1,2\r\n\r\n3.25,4e10\r\n")
    put("features_csv", "no_header.csv", "1,2\n3,4\n")
    put("features_csv", "short_row.csv", "x,y\n1,2\n3\n")
    gt = {"version": "VERSION 1.3", "taxonomy": [], "database": {
        "v_a": {"subset": "validation", "duration_second": 30.0,
                "annotations": [{"segment": [1.5, 7.25], "label": "x"}, {"segment": [10, 20], "label": "y"}]},
        "v_b": {"subset": "training", "duration_second": 12.0,
                "annotations": [{"segment": [0, 12.0], "label": "x"}]},
        "v_c": {"subset": "validation", "annotations": []}}}
    put("ground_truth_json", "activitynet.json", json.dumps(gt, indent=1))
    put("ground_truth_json", "bad_segment.json",
        '{"database": {"v": {"subset": "validation", "annotations": [{"segment": [3, 1]}]}}}')
    put("ground_truth_json", "nan.json", '{"database": {"v": {"annotations": [{"segment": [NaN, 1]}]}}}')
    res = {"version": "VERSION 1.3", "results": {
        "v_a": [{"segment": [1.5, 7.0], "score": 0.9}, {"segment": [0.0, 30.0], "score": 0.25}],
        "v_b": [{"segment": [2, 3], "score": 1}], "0": [{"segment": [0.0, 0.0], "score": -0.0}]},
        "external_data": {}}
    put("results_json", "results.json", json.dumps(res, indent=2))
    put("results_json", "list_form.json",
        '{"version": "v", "results": {"v_a": [[[1, 2], 0.5]]}, "external_data": {"used": true}}')
    put("results_json", "reversed.json", '{"results": {"v_a": [{"segment": [5, 2], "score": 0.5}]}}')


def onnx_seeds(binary):
    """The tiny fixture with every width cut to 8 (C = 8; T = D = 16, N = 8 and the mask
    kept), converted to the edge format (14 KB, loads and runs); and the cut standard export
    with its mask's data removed (refused at load, after the graph is analysed)."""
    m = onnx.load(os.path.join(ROOT, "tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx"))
    g = m.graph
    rng = np.random.default_rng(7)
    shapes = {
        "base.0.weight": (8, 2, 3), "base.2.weight": (8, 2, 3),
        "tem_start.0.weight": (8, 2, 3), "tem_start.2.weight": (1, 8, 1),
        "tem_end.0.weight": (8, 2, 3), "tem_end.2.weight": (1, 8, 1),
        "pem_1d.0.weight": (8, 8, 3), "pem_3d.weight": (8, 8, 8, 1, 1),
        "pem_2d.0.weight": (8, 8, 1, 1), "pem_2d.2.weight": (8, 8, 3, 3),
        "pem_2d.4.weight": (8, 8, 3, 3), "pem_2d.6.weight": (2, 8, 1, 1),
    }
    new = []
    for t in g.initializer:
        a = numpy_helper.to_array(t)
        if t.name in shapes:
            a = (rng.standard_normal(shapes[t.name]) * 0.3).astype(np.float32)
        elif t.name.endswith(".bias"):
            a = (rng.standard_normal(shapes[t.name[:-5] + ".weight"][0]) * 0.1).astype(np.float32)
        new.append(numpy_helper.from_array(a, t.name))
    del g.initializer[:]
    g.initializer.extend(new)
    for n in g.node:
        if n.op_type == "Constant" and n.output[0] == "/Constant_2_output_0":
            for a in n.attribute:
                if a.name == "value":
                    a.t.CopyFrom(numpy_helper.from_array(np.array([1, 8, 8, 16, 16], dtype=np.int64)))
    g.input[0].type.tensor_type.shape.dim[1].dim_value = 8
    del g.value_info[:]
    onnx.checker.check_model(m)
    with tempfile.TemporaryDirectory() as d:
        std, edge = os.path.join(d, "std.onnx"), os.path.join(d, "edge.onnx")
        onnx.save(m, std)
        subprocess.run([binary, "convert", std, "-o", edge], check=True)
        with open(edge, "rb") as f:
            put("onnx_model", "small_edge.onnx", f.read())
    for t in m.graph.initializer:
        if t.name == "sample_mask":
            t.ClearField("raw_data")
    put("onnx_model", "small_std_no_mask_data.onnx", m.SerializeToString())


if __name__ == "__main__":
    npy_seeds()
    snippet_seeds()
    y4m_seeds()
    text_seeds()
    onnx_seeds(sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "target/debug/bmn-edge"))

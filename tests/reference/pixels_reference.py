#!/usr/bin/env python3
"""Reference for bmn-edge's pixels pipeline (src/pixels): a numpy implementation of the
preprocessing specification (src/pixels/mod.rs, "Preprocessing, exactly"), small test
backbones built with onnx.helper, and onnxruntime's features on them.

  python tests/reference/pixels_reference.py goldens --out tests/golden/pixels
      writes the y4m / rgb24 inputs, the numpy-preprocessed snippet tensors, two small
      backbones (feature map / flat output, a few KB), onnxruntime's features and a manifest
      (command, versions, seed). Needs numpy, onnx, onnxruntime (no torch).

  python tests/reference/pixels_reference.py tsn --out DIR
      writes an mmaction2-style TSN ResNet-50 RGB export with random weights (about 100 MB,
      never committed), a short y4m video and onnxruntime's features on it
      (tests/pixels.rs generates it at test time, or skips when python is absent).

The numpy code computes in float64 and rounds to float32 once, at the end.
"""
import argparse
import json
import os
import platform
import sys

import numpy as np

KR, KB = 0.299, 0.114
IMAGENET_MEAN = [123.675, 116.28, 103.53]
IMAGENET_STD = [58.395, 57.12, 57.375]
SEED = 20261201


# ---------------------------------------------------------------- the specification

def yuv_to_rgb(y, u, v, full):
    """Planes (uint8, chroma already at luma resolution) -> float64 RGB [H, W, 3] on [0, 255]."""
    y, u, v = (a.astype(np.float64) for a in (y, u, v))
    if full:
        yy, pb, pr = y / 255.0, (u - 128.0) / 255.0, (v - 128.0) / 255.0
    else:
        yy, pb, pr = (y - 16.0) / 219.0, (u - 128.0) / 224.0, (v - 128.0) / 224.0
    r = yy + 2 * (1 - KR) * pr
    b = yy + 2 * (1 - KB) * pb
    g = (yy - KR * r - KB * b) / (1 - KR - KB)
    return np.clip(np.stack([r, g, b], axis=-1) * 255.0, 0.0, 255.0)


def upsample_chroma(c, h, w):
    """Replication: chroma sample (cy, cx) covers luma rows 2cy..2cy+1, columns 2cx..2cx+1."""
    return np.repeat(np.repeat(c, 2, axis=0), 2, axis=1)[:h, :w]


def resized_size(w, h, short):
    if w <= h:
        return short, int(np.floor(h * short / w + 0.5))
    return int(np.floor(w * short / h + 0.5)), short


def taps(n_in, n_out):
    d = np.arange(n_out, dtype=np.float64)
    src = np.clip((d + 0.5) * (n_in / n_out) - 0.5, 0.0, n_in - 1)
    i0 = np.floor(src).astype(np.int64)
    i1 = np.minimum(i0 + 1, n_in - 1)
    return i0, i1, src - i0


def resize_bilinear(img, ow, oh):
    """img float64 [H, W, 3] -> [oh, ow, 3], half-pixel centres, clamped, no antialiasing."""
    h, w, _ = img.shape
    x0, x1, fx = taps(w, ow)
    y0, y1, fy = taps(h, oh)
    top = img[y0][:, x0] * (1 - fx)[None, :, None] + img[y0][:, x1] * fx[None, :, None]
    bot = img[y1][:, x0] * (1 - fx)[None, :, None] + img[y1][:, x1] * fx[None, :, None]
    return top * (1 - fy)[:, None, None] + bot * fy[:, None, None]


def preprocess(rgb, resize, crop, mean, std):
    """float64 RGB [H, W, 3] -> float32 [3, crop, crop]."""
    h, w, _ = rgb.shape
    ow, oh = resized_size(w, h, resize)
    r = resize_bilinear(rgb, ow, oh)
    x, y = (ow - crop) // 2, (oh - crop) // 2
    c = r[y:y + crop, x:x + crop]
    c = (c - np.array(mean)) / np.array(std)
    return c.transpose(2, 0, 1).astype(np.float32)


def sample_offsets(L, K):
    return [(2 * j + 1) * L // (2 * K) for j in range(K)]


# ---------------------------------------------------------------- inputs

def synthetic_yuv(rng, n, w, h, chroma):
    """Smooth moving patterns plus noise, full 0..255 byte range used (limited-range
    clamping exercised)."""
    cw, ch = ((w + 1) // 2, (h + 1) // 2) if chroma == "420" else (w, h)
    frames = []
    for t in range(n):
        yy, xx = np.mgrid[0:h, 0:w]
        base = 128 + 100 * np.sin(0.3 * xx + 0.2 * yy + 0.5 * t)
        Y = np.clip(base + rng.normal(0, 20, (h, w)), 0, 255).astype(np.uint8)
        cy, cx = np.mgrid[0:ch, 0:cw]
        U = np.clip(128 + 90 * np.cos(0.4 * cx - 0.3 * t) + rng.normal(0, 25, (ch, cw)), 0, 255).astype(np.uint8)
        V = np.clip(128 + 90 * np.sin(0.5 * cy + 0.2 * t) + rng.normal(0, 25, (ch, cw)), 0, 255).astype(np.uint8)
        frames.append((Y, U, V))
    return frames


def write_y4m(path, frames, w, h, chroma, fps, full):
    head = f"YUV4MPEG2 W{w} H{h} F{fps[0]}:{fps[1]} Ip A1:1 C{'420jpeg' if chroma == '420' else '444'}"
    if full:
        head += " XCOLORRANGE=FULL"
    with open(path, "wb") as f:
        f.write((head + "\n").encode())
        for Y, U, V in frames:
            f.write(b"FRAME\n")
            f.write(Y.tobytes() + U.tobytes() + V.tobytes())


def yuv_frames_rgb(frames, w, h, chroma, full):
    out = []
    for Y, U, V in frames:
        if chroma == "420":
            U, V = upsample_chroma(U, h, w), upsample_chroma(V, h, w)
        out.append(yuv_to_rgb(Y, U, V, full))
    return out


def snippet_tensors(rgbs, L, K, pp):
    """[snippets, K, 3, crop, crop] of the sampled frames; the partial tail dropped."""
    s = len(rgbs) // L
    offs = sample_offsets(L, K)
    return np.stack([np.stack([preprocess(rgbs[i * L + o], **pp) for o in offs]) for i in range(s)])


# ---------------------------------------------------------------- backbones

def small_backbone(path, rng, crop, head, meta, width=12):
    """conv3x3 s2 (3->8) relu, conv3x3 s2 (8->width) relu, maxpool 2; head 'map' keeps the
    [N, width, h, w] map, 'flat' adds GlobalAveragePool + Flatten -> [N, width]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    inits = []

    def w(name, shape, scale):
        inits.append(numpy_helper.from_array((rng.standard_normal(shape) * scale).astype(np.float32), name))
        return name

    nodes = [
        helper.make_node("Conv", ["x", w("w1", (8, 3, 3, 3), 0.3), w("b1", (8,), 0.1)], ["c1"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c1"], ["r1"]),
        helper.make_node("Conv", ["r1", w("w2", (width, 8, 3, 3), 0.2), w("b2", (width,), 0.1)], ["c2"], pads=[1, 1, 1, 1], strides=[2, 2]),
        helper.make_node("Relu", ["c2"], ["r2"]),
        helper.make_node("MaxPool", ["r2"], ["m"], kernel_shape=[2, 2], strides=[2, 2]),
    ]
    side = crop // 8
    if head == "flat":
        nodes += [helper.make_node("GlobalAveragePool", ["m"], ["g"]), helper.make_node("Flatten", ["g"], ["feat"])]
        out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", width])
    else:
        nodes += [helper.make_node("Identity", ["m"], ["feat"])]
        out = helper.make_tensor_value_info("feat", TensorProto.FLOAT, ["N", width, side, side])
    inp = helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, crop, crop])
    g = helper.make_graph(nodes, f"small_{head}", [inp], [out], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 13)], producer_name="pixels_reference.py")
    m.ir_version = 8
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    onnx.checker.check_model(m)
    onnx.save(m, path)


def quantize_int8(src, dst, frames):
    import onnx
    from onnxruntime.quantization import CalibrationDataReader, QuantFormat, QuantType, quantize_static

    class Frames(CalibrationDataReader):
        def __init__(self):
            self.it = iter([{"x": f[None]} for f in frames])

        def get_next(self):
            return next(self.it, None)

    quantize_static(src, dst, Frames(), quant_format=QuantFormat.QOperator, op_types_to_quantize=["Conv"],
                    per_channel=False, reduce_range=False, activation_type=QuantType.QInt8,
                    weight_type=QuantType.QInt8, extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
    m = onnx.load(dst)
    assert "QLinearConv" in {n.op_type for n in m.graph.node}


def tsn_r50(path, rng, classes=200):
    """An mmaction2-style TSN ResNet-50 RGB export, as tools/deployment/pytorch2onnx.py
    writes a Recognizer2D: input [1, 1, 3, 224, 224] (batch, segments, C, H, W), reshaped to
    [-1, 3, 224, 224], ResNet-50 (conv-BatchNormalization-Relu, bottlenecks with the stride
    on the 3x3, downsample branches), AdaptiveAvgPool (GlobalAveragePool), the segment
    consensus (Reshape + ReduceMean), the fc -> [1, classes]. Random weights."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    count = [0]

    def fresh(p):
        count[0] += 1
        return f"{p}_{count[0]}"

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    def conv_bn(x, cin, cout, k, s, relu=True):
        n = fresh("conv")
        wt = (rng.standard_normal((cout, cin, k, k)) * np.sqrt(2.0 / (cin * k * k))).astype(np.float32)
        nodes.append(helper.make_node("Conv", [x, const(n + ".w", wt)], [n], kernel_shape=[k, k], strides=[s, s], pads=[k // 2] * 4))
        b = fresh("bn")
        gamma = (0.5 + 0.5 * rng.random(cout)).astype(np.float32)
        beta = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        mean = (0.1 * rng.standard_normal(cout)).astype(np.float32)
        var = (0.5 + rng.random(cout)).astype(np.float32)
        nodes.append(helper.make_node("BatchNormalization", [n, const(b + ".g", gamma), const(b + ".b", beta), const(b + ".m", mean), const(b + ".v", var)], [b], epsilon=1e-5))
        if not relu:
            return b
        r = fresh("relu")
        nodes.append(helper.make_node("Relu", [b], [r]))
        return r

    x = fresh("reshape")
    nodes.append(helper.make_node("Reshape", ["input", const("shape_in", np.array([-1, 3, 224, 224], np.int64))], [x]))
    x = conv_bn(x, 3, 64, 7, 2)
    mp = fresh("maxpool")
    nodes.append(helper.make_node("MaxPool", [x], [mp], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1]))
    x, cin = mp, 64
    for planes, blocks, stride in [(64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)]:
        for i in range(blocks):
            s = stride if i == 0 else 1
            out = conv_bn(x, cin, planes, 1, 1)
            out = conv_bn(out, planes, planes, 3, s)
            out = conv_bn(out, planes, planes * 4, 1, 1, relu=False)
            idn = conv_bn(x, cin, planes * 4, 1, s, relu=False) if i == 0 else x
            a = fresh("add")
            nodes.append(helper.make_node("Add", [out, idn], [a]))
            r = fresh("relu")
            nodes.append(helper.make_node("Relu", [a], [r]))
            x, cin = r, planes * 4
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Reshape", ["pooled", const("shape_seg", np.array([-1, 1, 2048, 1, 1], np.int64))], ["segs"]))
    nodes.append(helper.make_node("ReduceMean", ["segs"], ["consensus"], axes=[1], keepdims=1))
    nodes.append(helper.make_node("Reshape", ["consensus", const("shape_fc", np.array([1, -1], np.int64))], ["flat"]))
    fcw = (rng.standard_normal((classes, 2048)) * 0.01).astype(np.float32)
    nodes.append(helper.make_node("Gemm", ["flat", const("fc.w", fcw), const("fc.b", np.zeros(classes, np.float32))], ["cls_score"], transB=1))
    g = helper.make_graph(nodes, "tsn_r50", [helper.make_tensor_value_info("input", TensorProto.FLOAT, [1, 1, 3, 224, 224])],
                          [helper.make_tensor_value_info("cls_score", TensorProto.FLOAT, [1, classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 11)], producer_name="pytorch")
    m.ir_version = 6
    onnx.save(m, path)


def mobilenet_v2(path, rng, classes=1000, alpha=1.0, side=224):
    """torchvision's MobileNetV2 (width 1.0, 224) as ``torch.onnx.export`` writes it in eval
    mode at opset 17: BatchNormalization folded into each Conv's bias, ReLU6 as Clip(0, 6),
    depthwise 3x3 convolutions (group = channels, stride 1 and 2), the inverted residual
    blocks (expand 1x1, depthwise 3x3, project 1x1 linear; Add where the stride is 1 and the
    widths agree), the 1x1 conv to 1280, GlobalAveragePool, Flatten and the classifier Gemm
    -> [1, classes]. Input [1, 3, side, side] named ``input``. ``alpha`` scales every
    width (torchvision's width_mult, rounded to multiples of 8 as it does). Random weights
    (He-scaled, so the activations stay in range through the 17 blocks)."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper
    nodes, inits = [], []
    count = [0]

    def fresh(p):
        count[0] += 1
        return f"{p}_{count[0]}"

    def const(name, arr):
        inits.append(numpy_helper.from_array(arr, name))
        return name

    lo, hi = const("clip_min", np.array(0.0, np.float32)), const("clip_max", np.array(6.0, np.float32))

    def conv(x, cin, cout, k, s, group=1, relu6=True):
        n = fresh("conv")
        fan_in = cin // group * k * k
        wt = (rng.standard_normal((cout, cin // group, k, k)) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        b = (0.05 * rng.standard_normal(cout)).astype(np.float32)
        nodes.append(helper.make_node("Conv", [x, const(n + ".w", wt), const(n + ".b", b)], [n], kernel_shape=[k, k],
                                      strides=[s, s], pads=[k // 2] * 4, group=group, dilations=[1, 1]))
        if not relu6:
            return n
        r = fresh("clip")
        nodes.append(helper.make_node("Clip", [n, lo, hi], [r]))
        return r

    def width(c):
        v = max(8, int(c * alpha + 4) // 8 * 8)
        return v + 8 if v < 0.9 * c * alpha else v

    first, last = width(32), max(1280, width(1280))
    x, cin = conv("input", 3, first, 3, 2), first
    for t, c, n, s in [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]:
        c = width(c)
        for i in range(n):
            stride = s if i == 0 else 1
            hidden = cin * t
            y = conv(x, cin, hidden, 1, 1) if t != 1 else x
            y = conv(y, hidden, hidden, 3, stride, group=hidden)
            y = conv(y, hidden, c, 1, 1, relu6=False)
            if stride == 1 and cin == c:
                a = fresh("add")
                nodes.append(helper.make_node("Add", [x, y], [a]))
                y = a
            x, cin = y, c
    if alpha < 1.0:
        last = width(1280)
    x = conv(x, cin, last, 1, 1)
    nodes.append(helper.make_node("GlobalAveragePool", [x], ["pooled"]))
    nodes.append(helper.make_node("Flatten", ["pooled"], ["flat"], axis=1))
    fcw = (rng.standard_normal((classes, last)) * 0.01).astype(np.float32)
    nodes.append(helper.make_node("Gemm", ["flat", const("fc.w", fcw), const("fc.b", np.zeros(classes, np.float32))], ["logits"],
                                  alpha=1.0, beta=1.0, transB=1))
    g = helper.make_graph(nodes, "mobilenet_v2", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["N", 3, side, side])],
                          [helper.make_tensor_value_info("logits", TensorProto.FLOAT, ["N", classes])], inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)], producer_name="pytorch")
    m.ir_version = 8
    onnx.checker.check_model(m)
    onnx.save(m, path)


def ort_features(model, snippets, pool):
    """onnxruntime on each sampled frame, one frame per run (the export's batch may be fixed),
    pooled to [C] if the output is a map, averaged over each snippet's K frames."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    sess = ort.InferenceSession(model, so, providers=["CPUExecutionProvider"])
    inp = sess.get_inputs()[0]
    rank = len(inp.shape)
    feats = []
    for snip in snippets:
        per = []
        for frame in snip:
            x = frame[None] if rank == 4 else frame[None, None]
            y = sess.run(None, {inp.name: x})[0][0].astype(np.float64)
            if y.ndim == 3:
                y = y.mean(axis=(1, 2))
            per.append(y)
        feats.append(np.mean(per, axis=0))
    return np.array(feats, dtype=np.float32)


def versions():
    import onnx
    import onnxruntime
    return {"python": platform.python_version(), "numpy": np.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}


# ---------------------------------------------------------------- commands

def goldens(out):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED)
    cases = []
    pp = dict(resize=32, crop=24, mean=[120.0, 115.0, 100.0], std=[60.0, 55.0, 50.0])
    # y4m: 4:2:0 limited (odd size: the last chroma column/row covers one luma column/row),
    # 4:2:0 full, 4:4:4 limited, 4:4:4 full (portrait); rgb24.
    specs = [
        ("y420_limited", "420", False, 37, 29, 19, 4, 1),
        ("y420_full", "420", True, 40, 30, 12, 4, 2),
        ("y444_limited", "444", False, 33, 21, 9, 3, 3),
        ("y444_full", "444", True, 26, 35, 8, 4, 1),
    ]
    for name, chroma, full, w, h, n, L, K in specs:
        frames = synthetic_yuv(rng, n, w, h, chroma)
        write_y4m(os.path.join(out, name + ".y4m"), frames, w, h, chroma, (30000, 1001), full)
        rgbs = yuv_frames_rgb(frames, w, h, chroma, full)
        t = snippet_tensors(rgbs, L, K, pp)
        np.save(os.path.join(out, name + ".pre.npy"), t)
        cases.append(dict(name=name, input=name + ".y4m", kind="y4m", chroma=chroma, full_range=full, width=w, height=h,
                          frames=n, snippet_frames=L, frames_per_snippet=K, snippets=int(t.shape[0]), fps=[30000, 1001]))
    w, h, n, L, K = 70, 50, 10, 5, 2  # a downscale (the y4m cases upscale)
    raw = rng.integers(0, 256, (n, h, w, 3), dtype=np.uint8)
    raw.tofile(os.path.join(out, "rgb24.raw"))
    t = snippet_tensors([f.astype(np.float64) for f in raw], L, K, pp)
    np.save(os.path.join(out, "rgb24.pre.npy"), t)
    cases.append(dict(name="rgb24", input="rgb24.raw", kind="rgb24", width=w, height=h, frames=n, snippet_frames=L,
                      frames_per_snippet=K, snippets=int(t.shape[0]), fps=[25, 1]))
    # Backbones: the flat one carries the preprocessing in metadata_props.
    meta = {"bmn_edge.pixels.resize": "32", "bmn_edge.pixels.crop": "24",
            "bmn_edge.pixels.mean": "120,115,100", "bmn_edge.pixels.std": "60,55,50"}
    small_backbone(os.path.join(out, "backbone_flat.onnx"), rng, 24, "flat", meta)
    small_backbone(os.path.join(out, "backbone_map.onnx"), rng, 24, "map", {})
    # int8: the flat backbone quantized as the BMN models are (models/quantize.py):
    # QOperator, Conv only, int8 activations and weights, symmetric, per tensor; calibrated
    # on the goldens' preprocessed frames.
    quantize_int8(os.path.join(out, "backbone_flat.onnx"), os.path.join(out, "backbone_flat_int8.onnx"),
                  np.concatenate([np.load(os.path.join(out, c["name"] + ".pre.npy")).reshape(-1, 3, 24, 24) for c in cases]))
    feats = {}
    for c in cases:
        t = np.load(os.path.join(out, c["name"] + ".pre.npy"))
        for b in ("flat", "map", "flat_int8"):
            f = ort_features(os.path.join(out, f"backbone_{b}.onnx"), t, b == "map")
            np.save(os.path.join(out, f"{c['name']}.feat_{b}.npy"), f)
            feats[f"{c['name']}.feat_{b}.npy"] = list(f.shape)
    manifest = dict(
        generator="tests/reference/pixels_reference.py",
        command="python tests/reference/pixels_reference.py goldens --out tests/golden/pixels",
        seed=SEED, versions=versions(), preprocess=pp,
        spec="src/pixels/mod.rs, 'Preprocessing, exactly': float64 numpy, rounded to float32 once",
        cases=cases, features=feats,
        note="*.pre.npy: [snippets, K, 3, crop, crop] preprocessed sampled frames; *.feat_{flat,map,flat_int8}.npy: onnxruntime "
             "(CPU, 1 thread) per frame, map outputs averaged over H and W, then the mean over K",
    )
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)
    total = sum(os.path.getsize(os.path.join(out, p)) for p in os.listdir(out))
    print(f"wrote {len(os.listdir(out))} files, {total} bytes, to {out}")


def tsn(out, frames=36, w=96, h=72):
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED + 1)
    tsn_r50(os.path.join(out, "tsn_r50.onnx"), rng)
    fr = synthetic_yuv(rng, frames, w, h, "420")
    write_y4m(os.path.join(out, "video.y4m"), fr, w, h, "420", (25, 1), False)
    t = snippet_tensors(yuv_frames_rgb(fr, w, h, "420", False), 16, 1,
                        dict(resize=256, crop=224, mean=IMAGENET_MEAN, std=IMAGENET_STD))
    np.save(os.path.join(out, "features.npy"), ort_features(os.path.join(out, "tsn_r50.onnx"), t, False))
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(dict(command=" ".join(sys.argv), seed=SEED + 1, versions=versions(), frames=frames, width=w, height=h), f)


def chain(out):
    """backbone_c32.onnx: the flat small backbone with C = 32, the input width of the tiny
    BMN fixtures (tests/fixtures/onnx, T = D = 16), so that frames -> backbone -> BMN runs
    end to end in tests; its preprocessing (resize 20, crop 16) in metadata_props."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED + 2)
    meta = {"bmn_edge.pixels.resize": "20", "bmn_edge.pixels.crop": "16",
            "bmn_edge.pixels.mean": "120,115,100", "bmn_edge.pixels.std": "60,55,50"}
    small_backbone(os.path.join(out, "backbone_c32.onnx"), rng, 16, "flat", meta, width=32)


def alloc(out):
    """backbone_c128_224.onnx: the flat small backbone at ImageNet's 224 crop with C = 128
    (the shipped pixel BMN's input width), so that its activations (0.4-1.6 MB a frame) are
    far above glibc's default 128 KiB mmap threshold: the tests that check every command
    running a backbone keeps its buffers on the heap (page faults per snippet) use it."""
    os.makedirs(out, exist_ok=True)
    rng = np.random.default_rng(SEED + 4)
    meta = {"bmn_edge.pixels.resize": "256", "bmn_edge.pixels.crop": "224", "bmn_edge.pixels.snippet_frames": "4"}
    small_backbone(os.path.join(out, "backbone_c128_224.onnx"), rng, 224, "flat", meta, width=128)


def mbv2_small(out):
    """mbv2/: MobileNetV2 at width 0.25 and a 64x64 input (``mobilenet_v2``, 17 depthwise
    3x3 convolutions, stride 1 and 2, down to 2x2 maps) with a 128-way classifier; a seeded
    batch of 4 inputs ``input.npy`` and onnxruntime's outputs for it ``output.npy`` — the
    golden of the engine's own depthwise kernel inside a whole backbone
    (tests/backbone_runtime.rs)."""
    import onnxruntime as ort
    d = os.path.join(out, "mbv2")
    os.makedirs(d, exist_ok=True)
    path = os.path.join(d, "mbv2_w025_64.onnx")
    mobilenet_v2(path, np.random.default_rng(SEED + 6), classes=128, alpha=0.25, side=64)
    x = np.random.default_rng(SEED + 7).standard_normal((4, 3, 64, 64)).astype(np.float32)
    s = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    y = np.concatenate([s.run(None, {"input": x[i:i + 1]})[0] for i in range(len(x))])
    np.save(os.path.join(d, "input.npy"), x)
    np.save(os.path.join(d, "output.npy"), y.astype(np.float32))
    with open(os.path.join(d, "manifest.json"), "w") as f:
        json.dump({"script": "tests/reference/pixels_reference.py mbv2-small", "seed": SEED + 6, "input_seed": SEED + 7,
                   "numpy": np.__version__, "onnxruntime": ort.__version__, "model": "mobilenet_v2(alpha=0.25, side=64, classes=128)",
                   "date_utc": __import__("datetime").datetime.now(__import__("datetime").timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")},
                  f, indent=1)
        f.write("\n")


def r50_400(out):
    """tsn_r50_400.onnx: the TSN ResNet-50 export with a 400-way fc, so that its output feeds
    the shipped BMN models (C = 400) for the pixel pipeline's benchmark (benches/pixels.sh).
    Random weights: the timings are real, the proposals mean nothing."""
    os.makedirs(out, exist_ok=True)
    tsn_r50(os.path.join(out, "tsn_r50_400.onnx"), np.random.default_rng(SEED + 3), classes=400)


def read_y4m(path):
    """A whole 4:2:0 / 4:4:4 y4m file -> (frames [(Y, U, V)], w, h, chroma, full)."""
    with open(path, "rb") as f:
        data = f.read()
    end = data.index(b"\n")
    params = data[:end].decode().split()[1:]
    kv = {p[0]: p[1:] for p in params}
    w, h = int(kv["W"]), int(kv["H"])
    chroma = "444" if kv.get("C", "420").startswith("444") else "420"
    full = "XCOLORRANGE=FULL" in params
    cw, ch = ((w + 1) // 2, (h + 1) // 2) if chroma == "420" else (w, h)
    frames, o = [], end + 1
    while o < len(data):
        o = data.index(b"\n", o) + 1                    # FRAME header
        planes = []
        for pw, ph in ((w, h), (cw, ch), (cw, ch)):
            planes.append(np.frombuffer(data, np.uint8, pw * ph, o).reshape(ph, pw))
            o += pw * ph
        frames.append(tuple(planes))
    return frames, w, h, chroma, full


def shipped(out):
    """Goldens for the shipped pixel model (models/pixel_backbone_{fp32,int8}.onnx): the
    demo video (models/demo/pixels) decoded and preprocessed by this file's specification,
    each snippet's centre frame through onnxruntime. The preprocessing and the snippet
    length come from the backbone's metadata_props, as bmn-edge takes them."""
    import onnx
    os.makedirs(out, exist_ok=True)
    root = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..")
    video = os.path.join(root, "models", "demo", "pixels", "videos", "v_pix_s12_0000.y4m")
    frames, w, h, chroma, full = read_y4m(video)
    rgbs = yuv_frames_rgb(frames, w, h, chroma, full)
    files = {}
    for kind in ("fp32", "int8"):
        model = os.path.join(root, "models", f"pixel_backbone_{kind}.onnx")
        meta = {p.key: p.value for p in onnx.load(model).metadata_props}
        trip = lambda k: [float(v) for v in meta[k].split(",")]  # noqa: E731
        pp = dict(resize=int(meta["bmn_edge.pixels.resize"]), crop=int(meta["bmn_edge.pixels.crop"]),
                  mean=trip("bmn_edge.pixels.mean"), std=trip("bmn_edge.pixels.std"))
        L = int(meta["bmn_edge.pixels.snippet_frames"])
        feats = ort_features(model, snippet_tensors(rgbs, L, 1, pp), pool=True)
        name = f"demo_features_{kind}.npy"
        np.save(os.path.join(out, name), feats)
        files[kind] = {"model": f"models/pixel_backbone_{kind}.onnx", "features": name,
                       "snippets": int(feats.shape[0]), "channels": int(feats.shape[1]),
                       "snippet_frames": L, "preprocess": pp}
    manifest = {"generator": "tests/reference/pixels_reference.py",
                "command": f"python tests/reference/pixels_reference.py shipped --out {out}",
                "video": "models/demo/pixels/videos/v_pix_s12_0000.y4m", "frames": len(frames),
                "versions": versions(), "goldens": files}
    with open(os.path.join(out, "manifest.json"), "w") as f:
        json.dump(manifest, f, indent=1)


if __name__ == "__main__":
    ap = argparse.ArgumentParser()
    ap.add_argument("what", choices=["goldens", "tsn", "chain", "alloc", "mbv2-small", "r50-400", "shipped"])
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    {"goldens": goldens, "tsn": tsn, "chain": chain, "alloc": alloc, "mbv2-small": mbv2_small, "r50-400": r50_400, "shipped": shipped}[a.what](a.out)

"""The pixel model's backbone: a small 2-D CNN trained on synthetic videos' snippets.

    python models/pixel_backbone.py train  --data models/work/pixel/train --val models/work/pixel/val
    python models/pixel_backbone.py export --out-fp32 models/pixel_backbone_fp32.onnx \\
        --out-int8 models/pixel_backbone_int8.onnx

**Inputs, exactly as served.** Training frames are read back from the ``.y4m`` files
``synth_video.py`` wrote (4:2:0, limited range) and converted with the decoder's own
specification (``tests/reference/pixels_reference.py``: chroma replicated, BT.601 in float,
never rounded to 8 bits), then normalised with the mean/std this file records in the
exported model's ``metadata_props``: the network sees in training what ``bmn-edge
features`` gives it in serving. One frame per snippet: the centre frame ``4 i + 2`` of
snippet ``i`` (4 frames per snippet), as ``bmn-edge`` samples it.

**Network** (268,543 parameters with its training head; the exported trunk 267,640):
six 3x3 convolutions with batch norm and ReLU, ``3 -> 24 (stride 2) -> 48 (s2) -> 48 ->
96 (s2) -> 96 -> 128 (s2)``, global average pooling: 128 features per frame. The head
(training only) is a linear layer to 7 classes, the six action kinds and background; a
frame is labelled with the kind of the instance whose segment contains it. Batch norm is
folded into the convolutions at export.

**Exports**: ``[N, 3, 64, 64] -> [N, 128]`` (dynamic N), opset 13, metadata
``bmn_edge.pixels.{resize, crop, mean, std, snippet_frames}``; int8 is onnxruntime's
static QOperator quantization of the convolutions (symmetric int8 activations and
weights, per tensor, as the BMN models; MinMax calibration on training frames).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from paths import WORK, pixels_reference  # noqa: E402
import synth_video as SV  # noqa: E402

MEAN = (110.0, 110.0, 110.0)
STD = (60.0, 60.0, 60.0)
CROP = 64
WIDTHS = (24, 48, 48, 96, 96, 128)
STRIDES = (2, 2, 1, 2, 1, 2)
NUM_CLASSES = len(SV.KINDS) + 1          # + background
DEFAULT_CKPT = os.path.join(WORK, "pixel", "backbone.pt")


def read_y4m_frames(path: str, which):
    """The RGB (float64, [0, 255]) of frames ``which`` (sorted indices) of a synth_video y4m."""
    R = pixels_reference()
    with open(path, "rb") as f:
        head = f.readline().decode()
        assert head.startswith(f"YUV4MPEG2 W{SV.W} H{SV.H} "), head
        size = SV.W * SV.H * 3 // 2
        data = f.read()
    frame_bytes = len(b"FRAME\n") + size
    out = []
    for i in which:
        o = i * frame_bytes + len(b"FRAME\n")
        buf = np.frombuffer(data, np.uint8, size, o)
        Y = buf[:SV.W * SV.H].reshape(SV.H, SV.W)
        U = buf[SV.W * SV.H:SV.W * SV.H * 5 // 4].reshape(SV.H // 2, SV.W // 2)
        V = buf[SV.W * SV.H * 5 // 4:].reshape(SV.H // 2, SV.W // 2)
        out.append(R.yuv_to_rgb(Y, R.upsample_chroma(U, SV.H, SV.W), R.upsample_chroma(V, SV.H, SV.W), False))
    return out


def normalise(rgb):
    """float64 RGB [H, W, 3] -> float32 [3, 64, 64] (resize to 64 and crop 64 are identities)."""
    R = pixels_reference()
    return R.preprocess(rgb, CROP, CROP, MEAN, STD)


def snippet_frames_and_labels(data: str, max_per_video: int | None = None, seed: int = 0):
    """Centre frames of every snippet of every video in ``data`` -> x [M, 3, 64, 64], y [M]."""
    with open(os.path.join(data, "ground_truth.json")) as f:
        gt = json.load(f)
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for vid, info in gt["database"].items():
        n = info["num_snippets"]
        idx = np.arange(n)
        if max_per_video and n > max_per_video:
            idx = np.sort(rng.choice(n, max_per_video, replace=False))
        frames = [SV.SNIPPET_FRAMES * i + SV.SNIPPET_FRAMES // 2 for i in idx]
        t = (np.array(frames) + 0.5) / SV.FPS                 # the frame's mid-time
        y = np.full(len(frames), NUM_CLASSES - 1, np.int64)
        for a in info["annotations"]:
            s, e = a["segment"]
            y[(t >= s) & (t < e)] = SV.KINDS.index(a["label"])
        for rgb in read_y4m_frames(os.path.join(data, "videos", vid + ".y4m"), frames):
            xs.append(normalise(rgb))
        ys.append(y)
    return np.stack(xs), np.concatenate(ys)


def build(torch_nn):
    nn = torch_nn

    class Backbone(nn.Module):
        def __init__(self):
            super().__init__()
            layers, c = [], 3
            for w, s in zip(WIDTHS, STRIDES):
                layers += [nn.Conv2d(c, w, 3, stride=s, padding=1, bias=False), nn.BatchNorm2d(w),
                           nn.ReLU(inplace=True)]
                c = w
            self.trunk = nn.Sequential(*layers, nn.AdaptiveAvgPool2d(1), nn.Flatten())
            self.head = nn.Linear(c, NUM_CLASSES)

        def forward(self, x):
            return self.trunk(x)

    return Backbone()


def train(args):
    import torch
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    t0 = time.time()
    x, y = snippet_frames_and_labels(args.data, args.max_per_video, args.seed)
    xv, yv = snippet_frames_and_labels(args.val, args.max_per_video, args.seed + 1)
    print(f"frames: train {len(x)} (background {np.mean(y == NUM_CLASSES - 1):.2f}), val {len(xv)}; "
          f"read in {time.time() - t0:.0f} s", flush=True)
    model = build(torch.nn)
    print("parameters", sum(p.numel() for p in model.parameters()),
          "trunk", sum(p.numel() for p in model.trunk.parameters()), flush=True)
    # classes are unbalanced (background is most frames): weight by inverse frequency^0.5
    freq = np.bincount(y, minlength=NUM_CLASSES) / len(y)
    weight = torch.tensor((1.0 / np.maximum(freq, 1e-3)) ** 0.5, dtype=torch.float32)
    weight /= weight.mean()
    opt = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=1e-4)
    steps = args.epochs * int(np.ceil(len(x) / args.batch))
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, args.lr, total_steps=steps, pct_start=0.15)
    X, Y = torch.from_numpy(x), torch.from_numpy(y)
    gen = torch.Generator().manual_seed(args.seed)
    for epoch in range(args.epochs):
        model.train()
        perm = torch.randperm(len(X), generator=gen)
        tot, n = 0.0, 0
        for i in range(0, len(X), args.batch):
            b = perm[i:i + args.batch]
            xb = X[b]
            flip = torch.rand(len(b), generator=gen) < 0.5
            xb = torch.where(flip[:, None, None, None], xb.flip(3), xb)
            logits = model.head(model(xb))
            loss = torch.nn.functional.cross_entropy(logits, Y[b], weight=weight)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            tot += loss.item() * len(b)
            n += len(b)
        acc = accuracy(model, xv, yv)
        print(json.dumps({"epoch": epoch + 1, "loss": round(tot / n, 4), "val_acc": round(acc, 4),
                          "minutes": round((time.time() - t0) / 60, 2)}), flush=True)
    os.makedirs(os.path.dirname(args.checkpoint), exist_ok=True)
    torch.save({"model": model.state_dict(), "val_acc": acc, "args": vars(args)}, args.checkpoint)
    print(f"saved {args.checkpoint}", flush=True)


def accuracy(model, x, y):
    import torch
    model.eval()
    with torch.no_grad():
        pred = np.concatenate([model.head(model(torch.from_numpy(x[i:i + 256]))).argmax(1).numpy()
                               for i in range(0, len(x), 256)])
    return float(np.mean(pred == y))


def export(args):
    import onnx
    import torch
    model = build(torch.nn)
    ck = torch.load(args.checkpoint, map_location="cpu", weights_only=False)
    model.load_state_dict(ck["model"])
    model.eval()
    tmp = args.out_fp32 + ".tmp.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, CROP, CROP),), tmp, dynamo=False, opset_version=13,
                      input_names=["x"], output_names=["features"], do_constant_folding=True,
                      dynamic_axes={"x": {0: "N"}, "features": {0: "N"}})
    m = onnx.load(tmp)
    os.remove(tmp)
    ops = sorted({n.op_type for n in m.graph.node})
    assert "BatchNormalization" not in ops, ops
    meta = {"bmn_edge.pixels.resize": str(CROP), "bmn_edge.pixels.crop": str(CROP),
            "bmn_edge.pixels.mean": ",".join(f"{v:g}" for v in MEAN),
            "bmn_edge.pixels.std": ",".join(f"{v:g}" for v in STD),
            "bmn_edge.pixels.snippet_frames": str(SV.SNIPPET_FRAMES)}
    del m.metadata_props[:]
    for k, v in meta.items():
        m.metadata_props.add(key=k, value=v)
    m.producer_name = "bmn-edge models/pixel_backbone.py"
    onnx.checker.check_model(m)
    onnx.save(m, args.out_fp32)
    print(f"{args.out_fp32}: ops {ops}, {os.path.getsize(args.out_fp32)} bytes", flush=True)
    # int8: calibration frames from the training videos
    x, _ = snippet_frames_and_labels(args.calib_data, 4, args.seed)
    rng = np.random.default_rng(args.seed)
    calib = x[rng.choice(len(x), min(args.calib_frames, len(x)), replace=False)]
    R = pixels_reference()
    R.quantize_int8(args.out_fp32, args.out_int8, list(calib))
    q = onnx.load(args.out_int8)
    del q.metadata_props[:]
    for k, v in meta.items():
        q.metadata_props.add(key=k, value=v)
    q.producer_name = "bmn-edge models/pixel_backbone.py (onnxruntime quantize_static)"
    onnx.save(q, args.out_int8)
    print(f"{args.out_int8}: ops {sorted({n.op_type for n in q.graph.node})}, "
          f"{os.path.getsize(args.out_int8)} bytes", flush=True)
    # agreement of the two on held-out frames, through onnxruntime
    import onnxruntime as ort
    xv, _ = snippet_frames_and_labels(args.val, 8, args.seed + 1)
    f32 = ort.InferenceSession(args.out_fp32).run(None, {"x": xv})[0]
    i8 = ort.InferenceSession(args.out_int8).run(None, {"x": xv})[0]
    with torch.no_grad():
        ref = model(torch.from_numpy(xv)).numpy()
    print(f"fp32 export vs torch: max |diff| {np.abs(f32 - ref).max():.2e}; int8 vs fp32: "
          f"relative rms {np.sqrt(np.mean((i8 - f32) ** 2) / np.mean(f32 ** 2)):.4f}", flush=True)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    t = sub.add_parser("train")
    t.add_argument("--data", default=os.path.join(WORK, "pixel", "train"))
    t.add_argument("--val", default=os.path.join(WORK, "pixel", "val"))
    t.add_argument("--checkpoint", default=DEFAULT_CKPT)
    t.add_argument("--epochs", type=int, default=6)
    t.add_argument("--batch", type=int, default=64)
    t.add_argument("--lr", type=float, default=3e-3)
    t.add_argument("--max-per-video", type=int, default=None, help="snippets per video at most")
    t.add_argument("--threads", type=int, default=2)
    t.add_argument("--seed", type=int, default=0)
    e = sub.add_parser("export")
    e.add_argument("--checkpoint", default=DEFAULT_CKPT)
    e.add_argument("--out-fp32", default=os.path.join(HERE, "pixel_backbone_fp32.onnx"))
    e.add_argument("--out-int8", default=os.path.join(HERE, "pixel_backbone_int8.onnx"))
    e.add_argument("--calib-data", default=os.path.join(WORK, "pixel", "train"))
    e.add_argument("--calib-frames", type=int, default=256)
    e.add_argument("--val", default=os.path.join(WORK, "pixel", "val"))
    e.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    train(args) if args.cmd == "train" else export(args)


if __name__ == "__main__":
    main()

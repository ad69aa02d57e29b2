"""Deterministic synthetic untrimmed *videos* (pixels) for the pixel-to-proposal model.

    python models/synth_video.py --seed S --videos N --out DIR [--subset NAME]
    python models/synth_video.py --seed 12 --videos 1 --min-snippets 120 --out models/demo/pixels   # the demo

writes ``DIR/videos/<video_id>.y4m`` (YUV4MPEG2, 64x64, 4:2:0, limited range BT.601,
8 fps) and ``DIR/ground_truth.json`` in the ActivityNet format of ``synth.py``
(``database -> video -> duration_second, subset, num_snippets, snippet_period_second,
num_frames, fps, annotations[{segment, label}]``). numpy only. Video ``i`` of seed ``S``
uses ``numpy.random.default_rng([S, i])``: the same seed gives the same bytes.

A *snippet* is 4 frames (0.5 s at 8 fps); every video has a whole number of snippets.

What is in a video (``models/README.md`` has the longer account):

* **Background**: a textured scene (a few coloured sinusoidal gratings and smooth
  blotches), replaced at hard shot cuts (about one per 60 s; they are not action
  boundaries); the camera shakes (a smooth random walk of a few pixels); the lighting
  drifts (slow AR(1) gain, and a slow colour cast); sensor noise on every pixel.
* **Distractors** (not actions): 0 to 3 desaturated blobs and squares wandering by random
  walks, each coming and going at random times.
* **Actions**, six kinds, each an object with its own look moving in its own way:
  ``orbit`` (a red square circling a point), ``spin`` (a blue bar rotating about its
  centre), ``grow`` (a green disc growing over the action), ``flash`` (a ring whose colour
  alternates yellow/magenta about once a second), ``bounce`` (an orange triangle going
  left and right), ``cross`` (a cyan X drifting diagonally while turning). 1 + Poisson
  (snippets / 80) instances per video, durations log-uniform from 2 snippets (1 s) to
  ``min(85, 0.8 * snippets)``, non-overlapping with gaps of at least 2 snippets; each
  fades in and out through sigmoid ramps (10-90 % widths 0.25-1.5 s) of its opacity and
  size, so onsets are gradual.

Ground truth: an instance from ``a`` to ``b`` seconds (the ramps' midpoints; ``a`` and
``b`` on frame edges) has ``segment = [a, b]``.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

W = H = 64
FPS = 8
SNIPPET_FRAMES = 4
PERIOD = SNIPPET_FRAMES / FPS
KINDS = ("orbit", "spin", "grow", "flash", "bounce", "cross")
MIN_SNIPPETS, MAX_SNIPPETS = 60, 360
MIN_ACT, MAX_ACT = 2, 85
KR, KB = 0.299, 0.114

_YY, _XX = np.mgrid[0:H, 0:W].astype(np.float64)
_YY += 0.5
_XX += 0.5


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-np.clip(x, -60.0, 60.0)))


# ---------------------------------------------------------------- shapes (signed distances)

def _rot(cx, cy, theta):
    c, s = np.cos(theta), np.sin(theta)
    dx, dy = _XX - cx, _YY - cy
    return c * dx + s * dy, -s * dx + c * dy


def _disc(cx, cy, r):
    return r - np.hypot(_XX - cx, _YY - cy)


def _box(cx, cy, hx, hy, theta):
    u, v = _rot(cx, cy, theta)
    return np.minimum(hx - np.abs(u), hy - np.abs(v))


def _ring(cx, cy, r_out, r_in):
    d = np.hypot(_XX - cx, _YY - cy)
    return np.minimum(r_out - d, d - r_in)


def _triangle(cx, cy, r, theta):
    u, v = _rot(cx, cy, theta)
    d = None
    for k in range(3):
        a = 2 * np.pi * k / 3
        e = r * 0.5 - (np.cos(a) * u + np.sin(a) * v)
        d = e if d is None else np.minimum(d, e)
    return d


def _cover(sd):
    """Signed distance (pixels, positive inside) -> coverage in [0, 1], 1 px anti-aliasing."""
    return np.clip(sd + 0.5, 0.0, 1.0)


# ---------------------------------------------------------------- the video

def _texture(rng):
    """A scene: [H + 16, W + 16, 3] float RGB in [0, 255] (the margin is for the shake)."""
    h, w = H + 16, W + 16
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    base = rng.uniform(60, 190, 3)
    img = np.broadcast_to(base, (h, w, 3)).copy()
    for _ in range(rng.integers(2, 5)):
        f = rng.uniform(0.05, 0.45)
        a = rng.uniform(0, np.pi)
        ph = rng.uniform(0, 2 * np.pi)
        g = np.sin(f * (np.cos(a) * xx + np.sin(a) * yy) + ph)
        img += g[..., None] * rng.uniform(-35, 35, 3)
    for _ in range(rng.integers(2, 6)):
        cx, cy, r = rng.uniform(0, w), rng.uniform(0, h), rng.uniform(6, 20)
        blob = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))
        img += blob[..., None] * rng.uniform(-50, 50, 3)
    return img


def _smooth_walk(rng, n, step, lo, hi, start=None):
    """A reflected random walk with momentum, n values in [lo, hi]."""
    x = rng.uniform(lo, hi) if start is None else start
    v = 0.0
    out = np.empty(n)
    for i in range(n):
        v = 0.85 * v + rng.normal(0, step)
        x += v
        if x < lo:
            x, v = 2 * lo - x, -v
        if x > hi:
            x, v = 2 * hi - x, -v
        x = min(max(x, lo), hi)
        out[i] = x
    return out


def _place_instances(rng, n_snip):
    count = 1 + rng.poisson(n_snip / 80)
    hi = min(MAX_ACT, 0.8 * n_snip)
    placed = []
    for _ in range(60 * count):
        if len(placed) >= count:
            break
        length = int(round(np.exp(rng.uniform(np.log(MIN_ACT), np.log(hi)))))
        length = max(MIN_ACT, min(length, int(hi)))
        start = int(rng.integers(1, max(2, n_snip - length)))
        # frame edges: any frame, not only snippet edges
        a = start * SNIPPET_FRAMES + int(rng.integers(0, SNIPPET_FRAMES))
        b = a + length * SNIPPET_FRAMES + int(rng.integers(-1, 2))
        if b >= n_snip * SNIPPET_FRAMES - 2:
            continue
        if any(a < pb + 2 * SNIPPET_FRAMES and pa < b + 2 * SNIPPET_FRAMES for pa, pb, _ in placed):
            continue
        placed.append((a, b, int(rng.integers(len(KINDS)))))
    return sorted(placed)


def _action_frame(kind, t, dur, rng_state, alpha, size):
    """Coverage mask and RGB colour of one action object at time t (s) since its onset."""
    cx, cy, phase, speed, jit = rng_state
    col_jit = jit
    if kind == "orbit":
        ang = phase + 2 * np.pi * t * speed * 0.4
        x, y = cx + 13 * np.cos(ang), cy + 13 * np.sin(ang)
        sd = _box(x, y, 6 * size, 6 * size, 0.3 * ang)
        col = np.array([220, 40, 40]) + col_jit
    elif kind == "spin":
        sd = _box(cx, cy, 17 * size, 3.5 * size, phase + 2 * np.pi * t * speed * 0.7)
        col = np.array([40, 70, 230]) + col_jit
    elif kind == "grow":
        prog = min(max(t / max(dur, 1e-6), 0.0), 1.0)
        sd = _disc(cx, cy, (3 + 16 * prog) * size)
        col = np.array([40, 200, 60]) + col_jit
    elif kind == "flash":
        on = np.sin(2 * np.pi * t * (0.8 + 0.4 * speed) + phase) > 0
        sd = _ring(cx, cy, 12 * size, 6.5 * size)
        col = (np.array([235, 225, 30]) if on else np.array([220, 40, 220])) + col_jit
    elif kind == "bounce":
        x = cx + 18 * np.sin(2 * np.pi * t * 0.45 * speed + phase)
        sd = _triangle(x, cy, 11 * size, phase)
        col = np.array([245, 140, 20]) + col_jit
    else:  # cross
        d = ((t * 4 * speed + phase * 5) % 40) - 20
        x, y = cx + d, cy + d * 0.6
        th = phase + t * speed * 1.2
        sd = np.maximum(_box(x, y, 10 * size, 2.5 * size, th), _box(x, y, 10 * size, 2.5 * size, th + np.pi / 2))
        col = np.array([30, 220, 220]) + col_jit
    return _cover(sd) * alpha, np.clip(col, 0, 255)


def render_video(rng: np.random.Generator, n_snip: int | None = None):
    """-> (frames uint8 RGB [F, H, W, 3] rendered before YUV, instances [(a, b, kind)] in frames)."""
    if n_snip is None:
        n_snip = int(round(np.exp(rng.uniform(np.log(MIN_SNIPPETS), np.log(MAX_SNIPPETS)))))
    F = n_snip * SNIPPET_FRAMES
    # scenes and cuts
    n_cuts = rng.poisson(F / FPS / 60.0)
    cuts = np.sort(rng.integers(FPS * 2, max(FPS * 2 + 1, F - FPS * 2), n_cuts)) if n_cuts else np.array([], int)
    bounds = [0, *cuts.tolist(), F]
    scenes = [_texture(rng) for _ in range(len(bounds) - 1)]
    shake_x = _smooth_walk(rng, F, rng.uniform(0.1, 0.6), 0, 16)
    shake_y = _smooth_walk(rng, F, rng.uniform(0.1, 0.6), 0, 16)
    gain = 1.0 + _smooth_walk(rng, F, 0.004, -0.25, 0.25, start=rng.uniform(-0.1, 0.1))
    cast = np.stack([_smooth_walk(rng, F, 0.15, -15, 15, start=0.0) for _ in range(3)], axis=1)
    noise = rng.uniform(3, 9)
    # distractors
    distractors = []
    for _ in range(rng.integers(0, 4)):
        grey = rng.uniform(70, 200)
        col = grey + rng.uniform(-20, 20, 3)
        xs, ys = _smooth_walk(rng, F, 0.25, 6, W - 6), _smooth_walk(rng, F, 0.25, 6, H - 6)
        on = np.zeros(F, bool)
        t = int(rng.integers(0, F))
        while t < F:  # alternate present / absent spells of 2-20 s
            length = int(rng.uniform(2, 20) * FPS)
            on[t:t + length] = True
            t += length + int(rng.uniform(2, 20) * FPS)
        distractors.append((col, xs, ys, on, rng.uniform(3, 7), bool(rng.integers(2))))
    # actions
    inst = _place_instances(rng, n_snip)
    acts = []
    for a, b, k in inst:
        w_on, w_off = rng.uniform(0.25, 1.5, 2) * FPS / 4.394  # 10-90 % width -> logistic scale
        state = (rng.uniform(22, 42), rng.uniform(22, 42), rng.uniform(0, 2 * np.pi), rng.uniform(0.7, 1.3),
                 rng.uniform(-25, 25, 3))
        acts.append((a, b, KINDS[k], w_on, w_off, state))
    frames = np.empty((F, H, W, 3), np.uint8)
    scene_of = np.searchsorted(np.array(bounds[1:]), np.arange(F), side="right")
    for f in range(F):
        sc = scenes[scene_of[f]]
        ox, oy = int(shake_x[f]), int(shake_y[f])
        img = sc[oy:oy + H, ox:ox + W] * gain[f] + cast[f]
        for col, xs, ys, on, r, square in distractors:
            if on[f]:
                sd = _box(xs[f], ys[f], r, r, 0.0) if square else _disc(xs[f], ys[f], r)
                m = _cover(sd)[..., None]
                img = img * (1 - m) + m * col
        for a, b, kind, w_on, w_off, state in acts:
            tf = f + 0.5
            alpha = _sigmoid((tf - a) / w_on) * _sigmoid((b - tf) / w_off)
            if alpha < 2e-3:
                continue
            size = 0.6 + 0.4 * alpha
            m, col = _action_frame(kind, (tf - a) / FPS, (b - a) / FPS, state, alpha, size)
            m = m[..., None]
            img = img * (1 - m) + m * col
        img = img + rng.normal(0, noise, img.shape)
        frames[f] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames, [(a, b, kind) for a, b, kind, *_ in acts]


def rgb_to_yuv420(rgb: np.ndarray):
    """uint8 RGB [H, W, 3] -> (Y [H, W], U, V [H/2, W/2]) uint8, BT.601 limited range; the
    inverse of the decoder's conversion (``src/pixels/mod.rs``) up to rounding, chroma
    averaged over 2x2 blocks."""
    x = rgb.astype(np.float64) / 255.0
    y = KR * x[..., 0] + (1 - KR - KB) * x[..., 1] + KB * x[..., 2]
    pb = (x[..., 2] - y) / (2 * (1 - KB))
    pr = (x[..., 0] - y) / (2 * (1 - KR))
    Y = np.clip(np.rint(16 + 219 * y), 0, 255).astype(np.uint8)
    h, w = y.shape
    sub = lambda c: c.reshape(h // 2, 2, w // 2, 2).mean(axis=(1, 3))  # noqa: E731
    U = np.clip(np.rint(128 + 224 * sub(pb)), 0, 255).astype(np.uint8)
    V = np.clip(np.rint(128 + 224 * sub(pr)), 0, 255).astype(np.uint8)
    return Y, U, V


def write_y4m(path: str, frames: np.ndarray):
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(f"YUV4MPEG2 W{W} H{H} F{FPS}:1 Ip A1:1 C420jpeg\n".encode())
        for rgb in frames:
            Y, U, V = rgb_to_yuv420(rgb)
            f.write(b"FRAME\n")
            f.write(Y.tobytes() + U.tobytes() + V.tobytes())
    os.replace(tmp, path)


def generate(seed: int, videos: int, out: str, subset: str = "training",
             min_snippets: int | None = None, max_snippets: int | None = None, first: int = 0):
    os.makedirs(os.path.join(out, "videos"), exist_ok=True)
    db = {}
    for i in range(first, first + videos):
        rng = np.random.default_rng([seed, i])
        n = None
        if min_snippets is not None:
            lo, hi = min_snippets, max_snippets or min_snippets
            n = int(rng.integers(lo, hi + 1))
        frames, inst = render_video(rng, n)
        vid = f"v_pix_s{seed}_{i:04d}"
        write_y4m(os.path.join(out, "videos", vid + ".y4m"), frames)
        F = len(frames)
        db[vid] = {
            "duration_second": F / FPS,
            "subset": subset,
            "num_snippets": F // SNIPPET_FRAMES,
            "snippet_period_second": PERIOD,
            "num_frames": F,
            "fps": FPS,
            "annotations": [{"segment": [round(a / FPS, 6), round(b / FPS, 6)], "label": k}
                            for a, b, k in inst],
        }
    gt = {"version": "bmn-edge synth_video 1", "database": db}
    with open(os.path.join(out, "ground_truth.json"), "w") as f:
        json.dump(gt, f, indent=1)
    return gt


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--videos", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subset", default=None,
                    help="subset name in the JSON (default: from the folder name, else training)")
    ap.add_argument("--min-snippets", type=int, default=None, help="length range (default 60-360, log-uniform)")
    ap.add_argument("--max-snippets", type=int, default=None)
    args = ap.parse_args(argv)
    subset = args.subset
    if subset is None:
        base = os.path.basename(os.path.normpath(args.out))
        subset = ("validation" if "val" in base else "testing" if "test" in base else "training")
    gt = generate(args.seed, args.videos, args.out, subset, args.min_snippets, args.max_snippets)
    db = gt["database"]
    print(f"{len(db)} videos, {sum(v['num_snippets'] for v in db.values())} snippets, "
          f"{sum(len(v['annotations']) for v in db.values())} instances -> {args.out}")


if __name__ == "__main__":
    main()

"""Deterministic synthetic untrimmed "videos" for BMN: feature sequences + ActivityNet GT.

    python models/synth.py --seed S --videos N --out DIR [--subset NAME]

writes ``DIR/features/<video_id>.npy`` (float32 [snippets, 400]) and
``DIR/ground_truth.json`` (``{"version", "database": {video_id: {"duration_second",
"subset", "snippet_period_second", "num_snippets", "annotations": [{"segment": [s, e],
"label"}]}}}``). Needs only numpy. The generative model is documented in
``models/README.md``; in short:

* A fixed *world* (``--world-seed``, shared by every split): a latent appearance space
  (32-d) and motion space (16-d), linear "feature extractor" maps to 200 RGB + 200 flow
  channels, 20 action classes, each with a start-phase and an end-phase appearance
  prototype and a motion prototype, a pool of background scene vectors.
* Each *video* (``--seed``; splits use different seeds): length log-uniform in
  [40, 3000] snippets at 0.5 s per snippet; background = piecewise scenes separated by
  hard shot cuts (boundaries that are not actions) with slow AR(1) drift; 1 + Poisson
  action instances (more in longer videos), lengths log-uniform from 3 snippets to 85
  (most of a 100-snippet window), non-overlapping with gaps of at least 2 snippets.
  Within an instance the appearance drifts from the class's start prototype to its end
  prototype; it blends into the background through sigmoid onsets/offsets 0.5 to 4
  snippets wide. Distractor bursts that are not actions: camera motion (flow only),
  partial class appearance without motion at low strength, and motion bursts with
  a random appearance. Per-video gain and offset (domain shift), latent drift noise and
  isotropic observation noise.

Ground truth: an instance occupying snippets [a, b) (b exclusive, onset/offset centred
on those snippet edges) has ``segment = [a * P, b * P]`` seconds, P = snippet period.
"""

from __future__ import annotations

import argparse
import json
import os

import numpy as np

C_RGB, C_FLOW = 200, 200
LAT_APP, LAT_MOT = 32, 16
NUM_CLASSES = 20
SNIPPET_SECONDS = 0.5
MIN_LEN, MAX_LEN = 40, 3000
MIN_ACT, MAX_ACT = 3, 85


class World:
    """Everything shared by all splits (fixed by ``world_seed``)."""

    def __init__(self, world_seed: int = 20261126, num_classes: int = NUM_CLASSES):
        rng = np.random.default_rng(world_seed)
        self.num_classes = num_classes
        # linear "feature extractor": latent -> channels (columns ~ unit norm), a little
        # cross-talk from motion into RGB (blur) and from appearance into flow
        self.w_rgb = rng.standard_normal((C_RGB, LAT_APP)) / np.sqrt(LAT_APP)
        self.w_rgb_mot = 0.15 * rng.standard_normal((C_RGB, LAT_MOT)) / np.sqrt(LAT_MOT)
        self.w_flow = rng.standard_normal((C_FLOW, LAT_MOT)) / np.sqrt(LAT_MOT)
        self.w_flow_app = 0.15 * rng.standard_normal((C_FLOW, LAT_APP)) / np.sqrt(LAT_APP)
        # classes: start/end appearance prototypes (drift within an action), motion
        # prototype; a shared "a person is doing something" component makes actions
        # as a whole related, as in real data
        shared = 0.6 * rng.standard_normal(LAT_APP)
        self.app_start = shared + rng.standard_normal((num_classes, LAT_APP))
        self.app_end = shared + rng.standard_normal((num_classes, LAT_APP))
        shared_m = 0.8 * rng.standard_normal(LAT_MOT)
        self.mot = shared_m + rng.standard_normal((num_classes, LAT_MOT))
        self.class_names = [f"synthetic_action_{i:02d}" for i in range(num_classes)]
        # typical length per class (snippets): some short, some long classes
        self.class_len = np.exp(rng.uniform(np.log(MIN_ACT + 2), np.log(MAX_ACT - 10),
                                            num_classes))
        self.scene_scale = 1.0


def _sigmoid(x):
    return 0.5 * (1.0 + np.tanh(0.5 * x))


def _place_instances(rng, world, n_snip):
    """Non-overlapping instances [(a, b, cls)], gap >= 2 snippets, within [0, n_snip)."""
    lam = n_snip / 180.0
    n_want = int(min(1 + rng.poisson(lam), 30))
    inst = []
    occupied = np.zeros(n_snip + 4, dtype=bool)
    tries = 0
    while len(inst) < n_want and tries < 50 * n_want:
        tries += 1
        c = int(rng.integers(world.num_classes))
        # length: class-typical length times a log-normal factor, clipped
        length = world.class_len[c] * np.exp(0.6 * rng.standard_normal())
        length = int(round(np.clip(length, MIN_ACT, min(MAX_ACT, 0.9 * n_snip))))
        if length < MIN_ACT or length >= n_snip - 1:
            continue
        a = int(rng.integers(0, n_snip - length + 1))
        b = a + length
        lo, hi = max(0, a - 2), min(n_snip, b + 2)
        if occupied[lo:hi].any():
            continue
        occupied[a:b] = True
        inst.append((a, b, c))
    inst.sort()
    return inst


def make_video(world: World, rng: np.random.Generator, n_snip: int | None = None):
    """One video: (features float32 [n, 400], instances [(a, b, cls)])."""
    if n_snip is None:
        n_snip = int(round(np.exp(rng.uniform(np.log(MIN_LEN), np.log(MAX_LEN)))))
    n = n_snip
    t = np.arange(n) + 0.5                                     # snippet centres

    # ---- background: scenes with hard cuts, AR(1) drift --------------------------------
    n_cuts = rng.poisson(n / 250.0)
    cuts = np.sort(rng.integers(1, n, n_cuts)) if n_cuts else np.zeros(0, dtype=int)
    scene_id = np.searchsorted(cuts, np.arange(n), side="right")
    scenes = world.scene_scale * rng.standard_normal((len(cuts) + 1, LAT_APP))
    bg = scenes[scene_id]
    rho, innov = 0.95, 0.3 * np.sqrt(1 - 0.95 ** 2)
    drift = np.zeros((n, LAT_APP))
    e = innov * rng.standard_normal((n, LAT_APP))
    acc = 0.3 * rng.standard_normal(LAT_APP)
    for i in range(n):
        acc = rho * acc + e[i]
        drift[i] = acc
    app = bg + drift
    cam_level = 0.25 * rng.standard_normal(LAT_MOT)            # per-video camera shake
    mot = cam_level + 0.25 * rng.standard_normal((n, LAT_MOT))

    # ---- action instances --------------------------------------------------------------
    inst = _place_instances(rng, world, n)
    for a, b, c in inst:
        w_on, w_off = rng.uniform(0.5, 4.0, 2) / 4.4           # 10-90 % width 0.5..4 snippets
        alpha = _sigmoid((t - a) / w_on) * _sigmoid((b - t) / w_off)
        span = max(b - a, 1)
        phase = np.clip((t - a) / span, 0.0, 1.0)[:, None]
        proto = (1 - phase) * world.app_start[c] + phase * world.app_end[c]
        proto = proto + 0.5 * rng.standard_normal(LAT_APP)     # instance appearance
        m = world.mot[c] * rng.uniform(0.7, 1.3) + 0.3 * rng.standard_normal(LAT_MOT)
        # periodic motion (e.g. repetitions) modulates the flow strength inside actions
        period = rng.uniform(3, 12)
        mod = 1.0 + 0.3 * np.sin(2 * np.pi * t / period + rng.uniform(0, 2 * np.pi))
        strength = rng.uniform(0.75, 1.0)
        al = (strength * alpha)[:, None]
        app = (1 - al) * app + al * proto
        mot = mot + (al * mod[:, None]) * m

    # ---- distractor bursts (not actions) -----------------------------------------------
    n_dis = rng.poisson(n / 120.0)
    for _ in range(n_dis):
        length = int(rng.integers(2, 16))
        a = int(rng.integers(0, max(1, n - length)))
        b = a + length
        alpha = _sigmoid((t - a) / 0.5) * _sigmoid((b - t) / 0.5)
        kind = rng.integers(3)
        if kind == 0:        # camera motion: strong flow, no appearance change
            mot = mot + alpha[:, None] * (1.5 * rng.standard_normal(LAT_MOT))
        elif kind == 1:      # an action's appearance, weakly, with no motion
            c = int(rng.integers(world.num_classes))
            s = rng.uniform(0.25, 0.45)
            app = (1 - s * alpha[:, None]) * app + s * alpha[:, None] * world.app_start[c]
        else:                # something moves through the scene (random appearance)
            app = app + alpha[:, None] * (0.8 * rng.standard_normal(LAT_APP))
            mot = mot + alpha[:, None] * (0.8 * rng.standard_normal(LAT_MOT))

    # ---- observation -------------------------------------------------------------------
    rgb = app @ world.w_rgb.T + mot @ world.w_rgb_mot.T
    flow = mot @ world.w_flow.T + app @ world.w_flow_app.T
    x = np.concatenate([rgb, flow], axis=1)
    gain = rng.uniform(0.8, 1.25)
    offset = 0.2 * rng.standard_normal(C_RGB + C_FLOW)
    x = gain * x + offset + 0.6 * rng.standard_normal(x.shape)
    return x.astype(np.float32), inst


def generate(seed: int, videos: int, out: str, subset: str = "training",
             world_seed: int = 20261126, prefix: str | None = None,
             length: int | None = None):
    world = World(world_seed)
    os.makedirs(os.path.join(out, "features"), exist_ok=True)
    prefix = prefix or f"syn{seed}"
    db = {}
    for i in range(videos):
        rng = np.random.default_rng([seed, i])
        x, inst = make_video(world, rng, length)
        vid = f"{prefix}_{i:05d}"
        np.save(os.path.join(out, "features", vid + ".npy"), x)
        n = x.shape[0]
        db[vid] = {
            "duration_second": round(n * SNIPPET_SECONDS, 6),
            "subset": subset,
            "num_snippets": n,
            "snippet_period_second": SNIPPET_SECONDS,
            "annotations": [{"segment": [round(a * SNIPPET_SECONDS, 6),
                                         round(b * SNIPPET_SECONDS, 6)],
                             "label": world.class_names[c]} for a, b, c in inst],
        }
    gt = {"version": "synthetic-bmn 1.0", "world_seed": world_seed, "seed": seed,
          "database": db}
    with open(os.path.join(out, "ground_truth.json"), "w") as f:
        json.dump(gt, f, indent=1)
        f.write("\n")
    return gt


def main(argv=None):
    ap = argparse.ArgumentParser(description="synthetic untrimmed BMN feature videos")
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--videos", type=int, required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--subset", default=None,
                    help="subset name in the JSON (default: training/validation/testing "
                         "guessed from the output directory name, else 'training')")
    ap.add_argument("--world-seed", type=int, default=20261126)
    ap.add_argument("--length", type=int, default=None,
                    help="fixed number of snippets per video (default: log-uniform 40..3000)")
    args = ap.parse_args(argv)
    subset = args.subset
    if subset is None:
        base = os.path.basename(os.path.normpath(args.out)).lower()
        subset = ("validation" if "val" in base else "testing" if "test" in base
                  else "training")
    gt = generate(args.seed, args.videos, args.out, subset, args.world_seed,
                  length=args.length)
    db = gt["database"]
    snips = sum(v["num_snippets"] for v in db.values())
    ann = sum(len(v["annotations"]) for v in db.values())
    print(f"{len(db)} videos, {snips} snippets, {ann} instances -> {args.out}")


if __name__ == "__main__":
    main()

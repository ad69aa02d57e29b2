"""evaluate.py's video path against the project's reference (numpy only, no torch).

Run: ``python -m pytest -q models/test_evaluate.py`` or ``python models/test_evaluate.py``.

* ``finish_video`` (vectorised Soft-NMS) equals ``bmn_reference.finish_video`` bit for bit
  (segments, order, scores) on every window of tests/golden/post, on the merged windows of
  tests/golden/video and on random multi-window videos, both conventions;
* ``rescale_pool`` (vectorised) equals ``bmn_reference.rescale_pool`` bit for bit on
  tests/golden/rescale's inputs;
* ``video_inputs`` + ``proposals_from_maps`` reproduce tests/golden/video (onnxruntime's
  maps of the committed fixtures) exactly: windows, edge padding, segments in seconds, scores.
"""

import json
import os
import sys

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from evaluate import (R, finish_video, proposals_from_maps, rescale_pool,  # noqa: E402
                      video_inputs)

GOLDEN = os.path.join(HERE, "..", "tests", "golden")


def _load(part):
    with open(os.path.join(GOLDEN, part, "manifest.json")) as f:
        return json.load(f)


def _same(fast, ref):
    key = [(p["sg"], p["eg"], p["xmin"], p["xmax"], p["score"]) for p in fast]
    want = [(p["sg"], p["eg"], p["xmin"], p["xmax"], p["score"]) for p in ref["final"]]
    assert key == want


def test_finish_video_equals_reference_on_post_goldens():
    m = _load("post")
    for case in m["cases"]:
        T, D = case["T"], case["D"]
        x = np.load(os.path.join(GOLDEN, "post", case["file"]))
        maps = R.split_window(x, T, D)
        for conv in R.CONVENTIONS:
            merged = R.merge_windows([maps], [0], [T], T, D, conv)
            ref = R.finish_video(merged, T, conv)
            _same(finish_video(merged, T, conv), ref)
            # the one-window video is the window's post-processing
            assert ref["proposals"] == case[conv]["proposals"], (case["name"], conv)


def test_finish_video_equals_reference_on_random_videos():
    rng = np.random.default_rng(20261130)
    T, D = 20, 12
    for k in range(6):
        L = int(rng.integers(T + 1, 90))
        for conv in R.CONVENTIONS:
            hop = int(rng.integers(1, T + 1))
            starts = R.window_starts(L, T, hop)
            maps = [(rng.random(T, dtype=np.float32), rng.random(T, dtype=np.float32),
                     rng.random((2, D, T), dtype=np.float32)) for _ in starts]
            merged = R.merge_windows(maps, starts, [T] * len(starts), L, D, conv)
            for top_k in (100, 7):
                _same(finish_video(merged, L, conv, top_k), R.finish_video(merged, L, conv, top_k))


def test_rescale_pool_equals_reference():
    m = _load("rescale")
    for ent in m["files"]:
        x = np.load(os.path.join(GOLDEN, "rescale", ent["input"]))
        got = rescale_pool(x, ent["T"], ent["eps"])
        assert np.array_equal(got, R.rescale_pool(x, ent["T"], ent["eps"])), ent["input"]
        assert np.array_equal(got, np.load(os.path.join(GOLDEN, "rescale", ent["output"])))


def test_video_path_reproduces_video_goldens():
    m = _load("video")
    seen_padded = False
    for case in m["cases"]:
        T, D = case["T"], case["D"]
        x = np.load(os.path.join(GOLDEN, "video", case["features"]))
        mode = "rescale" if case["mode"] == "rescale" else "window"
        wins, starts, valids, L = video_inputs(x, T, mode, case["duration"], case["hop"])
        assert [[a, b] for a, b in zip(starts, valids)] == case["windows"], case["name"]
        if mode == "window":
            for w, s0, v in zip(wins, starts, valids):
                assert np.array_equal(w[:v], x[s0:s0 + v])
                # edge padding: the last real snippet repeated
                assert np.array_equal(w[v:], np.repeat(x[s0 + v - 1:s0 + v], T - v, axis=0))
                seen_padded |= v < T
        else:
            want = R.rescale_pool(x, T, case["rescale_epsilon"]).astype(np.float32)
            assert np.array_equal(wins[0], want)
        flat = np.load(os.path.join(GOLDEN, "video", case["maps"]))
        maps = [R.split_window(row, T, D) for row in flat]
        got = proposals_from_maps(maps, starts, valids, L, D, case["convention"], case["duration"])
        want = [{"segment": [p[4], p[5]], "score": p[6]} for p in case["proposals"]]
        assert got == want, case["name"]
    assert seen_padded


def test_short_video_is_edge_padded_not_zero_padded():
    x = np.arange(3 * 2, dtype=np.float32).reshape(3, 2) + 1
    wins, starts, valids, L = video_inputs(x, 5, "window", 1.5)
    assert starts == [0] and valids == [3] and L == 3
    assert wins[0].tolist() == [[1, 2], [3, 4], [5, 6], [5, 6], [5, 6]]


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)

"""Checks for synth.py, train.py's labels and losses, and evaluate.py's metric.
Run: ``python -m pytest -q models/test_pipeline.py`` (seconds). evaluate.py's
post-processing against the reference: ``test_evaluate.py`` (no torch needed)."""

import json
import os
import sys
import tempfile

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from evaluate import ar_an, window_starts  # noqa: E402
from synth import generate  # noqa: E402
from train import binary_logistic, bmn_loss, make_labels  # noqa: E402


def test_synth_deterministic_and_format():
    with tempfile.TemporaryDirectory() as a, tempfile.TemporaryDirectory() as b:
        generate(7, 3, a)
        generate(7, 3, b)
        ga = json.load(open(os.path.join(a, "ground_truth.json")))
        gb = json.load(open(os.path.join(b, "ground_truth.json")))
        assert ga == gb
        for vid, info in ga["database"].items():
            x = np.load(os.path.join(a, "features", vid + ".npy"))
            y = np.load(os.path.join(b, "features", vid + ".npy"))
            assert x.dtype == np.float32 and x.shape[1] == 400
            assert np.array_equal(x, y)
            assert info["duration_second"] == x.shape[0] * 0.5
            assert 1 <= len(info["annotations"])
            for ann in info["annotations"]:
                s, e = ann["segment"]
                assert 0 <= s < e <= info["duration_second"]
                assert ann["label"].startswith("synthetic_action_")


def test_window_starts():
    assert window_starts(50, 100, 50) == [0]
    assert window_starts(100, 100, 50) == [0]
    assert window_starts(230, 100, 50) == [0, 50, 100, 130]


def test_labels():
    iou, st, en = make_labels(np.array([[0.2, 0.5]]), 100, 100)
    assert abs(iou[29, 20] - 1.0) < 1e-6          # cell (d=29, s=20) = [0.2, 0.5]
    assert st[19] == 1.0 and st[20] == 1.0 and abs(st[18] - 0.5) < 1e-6
    assert en[49] == 1.0 and en[50] == 1.0
    iou, st, en = make_labels(np.zeros((0, 2)), 100, 100)
    assert not iou.any() and not st.any()


def test_losses_guard_empty_positives():
    pred = torch.full((2, 100), 0.3)
    gt = torch.zeros(2, 100)
    v = binary_logistic(pred, gt, 0.5)
    assert torch.isfinite(v)
    conf = torch.full((2, 2, 100, 100), 0.5, requires_grad=True)
    d, s = np.meshgrid(np.arange(100), np.arange(100), indexing="ij")
    valid = torch.from_numpy(((s + d) <= 99).astype(np.float32))[None]
    loss, _ = bmn_loss(conf, pred, pred, torch.zeros(2, 100, 100), gt, gt, valid,
                       torch.Generator().manual_seed(0))
    loss.backward()
    assert torch.isfinite(loss) and torch.isfinite(conf.grad).all()


def test_metric_perfect_is_99():
    gt = {"database": {"v": {"duration_second": 10.0, "subset": "validation",
                             "annotations": [{"segment": [1.0, 3.0], "label": "a"}]}}}
    res = {"v": [{"segment": [1.0, 3.0], "score": 1.0}] * 100}
    m = ar_an(gt, res)
    assert abs(m["AUC"] - 99.0) < 1e-9 and m["AR@1"] == 100.0


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)

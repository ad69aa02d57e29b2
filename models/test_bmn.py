"""Checks for models/bmn.py. Run: ``python -m pytest models/test_bmn.py`` or
``python models/test_bmn.py`` (plain asserts, no pytest needed)."""

import os
import sys

import numpy as np
import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from bmn import BMN, bm_mask_coo, count_parameters, dense_bm_mask  # noqa: E402

torch.set_num_threads(min(2, torch.get_num_threads()))


def test_parameter_counts():
    assert count_parameters(BMN(variant="pytorch", form="fast")) == 4_978_564
    assert count_parameters(BMN(variant="paddle", form="fast")) == 2_782_980


def test_mask_reference_checks():
    """The checks of bmn-spec section 2 for T=D=100, N=32, K=3, r=0.5."""
    m = dense_bm_mask(100, 100, 32, 3, 0.5)
    assert m.shape == (100, 32, 100, 100)
    assert np.count_nonzero(m) == 476_827
    assert m.nbytes == 128_000_000
    assert abs(float(m[:, :, 9, 45].astype(np.float64).sum()) - 32.0) < 1e-4
    assert abs(float(m[:, :, 99, 0].astype(np.float64).sum()) - 16.0) < 1e-4
    assert abs(float(m[50, 16, 9, 45]) - 0.8) < 1e-6
    touched = np.nonzero(m[:, :, 0, 0].sum(axis=1))[0]
    assert set(touched.tolist()) <= {0, 1}
    # invalid cells are all zero
    d, s = np.meshgrid(np.arange(100), np.arange(100), indexing="ij")
    assert not m[:, :, (s + d) > 99].any()
    # at most 2K non-zero taps per (n, d, s)
    t, n, dd, ss, _ = bm_mask_coo(100, 100, 32, 3, 0.5)
    key = (n * 100 + dd) * 100 + ss
    assert np.bincount(key).max() <= 6


def test_mask_is_the_reference():
    """bmn.py lays out tests/reference/bmn_reference.py's mask; the committed golden masks."""
    import json
    from paths import reference
    ref = reference()
    gold = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "golden", "mask")
    with open(os.path.join(gold, "manifest.json")) as f:
        files = json.load(f)["files"]
    for ent in files:
        cfg = (ent["T"], ent["D"], ent["N"], ent["K"], ent["r"])
        m = dense_bm_mask(*cfg)
        assert np.array_equal(m, np.load(os.path.join(gold, ent["file"]))), ent["file"]
        assert np.array_equal(m, ref.bm_mask(*cfg))


def test_point_in_minus_one_zero_puts_one_on_index_zero():
    # cell (d=9, s=0): region starts at -5; points in (-1, 0) put exactly 1.0/K on t=0
    m = dense_bm_mask(20, 20, 4, 3, 0.5)
    assert m.shape == (20, 4, 20, 20)
    assert np.all(m >= 0)


def _compare_forms(cfg, batch, seed, tol=1e-5):
    torch.manual_seed(seed)
    std = BMN(**cfg, form="standard").eval()
    fast = BMN(**cfg, form="fast").eval()
    fast.load_state_dict(std.state_dict())
    x = torch.randn(batch, cfg["feat_dim"], cfg["tscale"])
    with torch.no_grad():
        a = std(x)
        b = fast(x)
    for u, v in zip(a, b):
        assert u.shape == v.shape
        err = (u - v).abs().max().item()
        assert err < tol, err
    return a


def test_forms_agree_small():
    for variant in ("pytorch", "paddle"):
        cfg = dict(tscale=16, dscale=16, num_sample=8, num_sample_perbin=3, ratio=0.5,
                   feat_dim=32, variant=variant)
        conf, start, end = _compare_forms(cfg, batch=3, seed=1)
        assert conf.shape == (3, 2, 16, 16) and start.shape == (3, 16) and end.shape == (3, 16)
    # D < T, r != 0.5
    cfg = dict(tscale=24, dscale=12, num_sample=6, num_sample_perbin=2, ratio=0.3,
               feat_dim=16, variant="pytorch")
    _compare_forms(cfg, batch=2, seed=2)


def test_forms_agree_paper_config():
    cfg = dict(tscale=100, dscale=100, num_sample=32, num_sample_perbin=3, ratio=0.5,
               feat_dim=400, variant="pytorch")
    conf, start, end = _compare_forms(cfg, batch=1, seed=3)
    assert conf.shape == (1, 2, 100, 100) and start.shape == (1, 100)


def test_invalid_cells_hold_relu_bias():
    torch.manual_seed(4)
    m = BMN(tscale=12, dscale=12, num_sample=4, feat_dim=8, form="fast").eval()
    captured = {}

    def hook(mod, inp, out):
        captured["h"] = inp[0].clone()

    m.pem_2d[0].register_forward_hook(hook)
    with torch.no_grad():
        m(torch.randn(2, 8, 12))
    h = captured["h"]
    relu_b = torch.relu(m.pem_3d.bias)
    assert torch.equal(h[:, :, 11, 11], relu_b.expand(2, -1))
    assert torch.equal(h[:, :, 5, 7], relu_b.expand(2, -1))


def test_fast_form_gradients_match():
    cfg = dict(tscale=16, dscale=16, num_sample=8, num_sample_perbin=3, ratio=0.5,
               feat_dim=32, variant="pytorch")
    torch.manual_seed(5)
    std = BMN(**cfg, form="standard")
    fast = BMN(**cfg, form="fast")
    fast.load_state_dict(std.state_dict())
    x = torch.randn(2, 32, 16)
    for m in (std, fast):
        c, s, e = m(x)
        (c.square().sum() + s.sum() + 2 * e.sum()).backward()
    for (name, p), q in zip(std.named_parameters(), fast.parameters()):
        err = (p.grad - q.grad).abs().max().item()
        assert err < 1e-4 * max(1.0, p.grad.abs().max().item()), (name, err)


if __name__ == "__main__":
    for name, fn in list(globals().items()):
        if name.startswith("test_") and callable(fn):
            fn()
            print("ok", name)

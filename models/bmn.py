"""BMN (Boundary-Matching Network, Lin et al., ICCV 2019) in PyTorch.

The network follows bmn-spec section 1 (layers, outputs, parameter counts) and section 2
(the boundary-matching sampling mask, with the reference's ``math.modf`` truncation quirk);
the mask's values come from the project's reference, ``tests/reference/bmn_reference.py``.
Written from the specification; no upstream code is copied.

Two forms of the same function share one set of parameters (identical ``state_dict`` keys):

* ``form="standard"`` -- what every reference implementation exports: the BM layer is a
  MatMul of the features with a dense constant mask ``[T, N*D*T]`` (128 MB at T=100),
  reshaped to ``[B, P, N, D, T]``, followed by a Conv3d whose kernel spans the N axis.
  ``models/export.py`` exports this form.
* ``form="fast"`` -- the reassociated BM layer of ``design.md``: first
  ``Z[b,o,n,t] = sum_c W3d[o,c,n] * y[b,c,t]`` (a kernel-1 projection), then a sparse
  sampling ``H[b,o,d,s] = bias[o] + sum_n sum_t M[t,n,d,s] * Z[b,o,n,t]`` that only visits
  the <= 2K non-zero taps of each (n, d, s). Neither the dense mask nor the 5-d tensor is
  ever built. Invalid cells (s + d >= T) have no taps and hold ``relu(bias)``, exactly as
  the standard form. Training uses this form.
"""

from __future__ import annotations

import os
import sys
import warnings
from functools import lru_cache

import numpy as np
import torch
from torch import nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from paths import reference  # noqa: E402

_REF = reference()  # tests/reference/bmn_reference.py: the BM mask's one definition

warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta state")

__all__ = ["BMN", "bm_mask_coo", "dense_bm_mask", "count_parameters"]


# --------------------------------------------------------------------------------------
# The BM sampling mask (bmn-spec section 2)
# --------------------------------------------------------------------------------------

def _cell_column(s: int, d: int, T: int, N: int, K: int, r: float) -> np.ndarray:
    """The mask columns of one valid cell (d, s): float64 array [N, T] (bin n, snippet t).

    The values are the project's reference's (``tests/reference/bmn_reference.py``,
    ``bm_cell``): region ``[s - r(d+1), s + d + r(d+1)]``; ``N*K`` points spread over it
    with both ends included; bin ``n`` owns points ``n*K .. n*K+K-1``. Each point ``p``
    adds ``1 - frac`` at ``down`` and ``frac`` at ``up`` where ``(frac, down) = modf(p)``
    truncates toward zero and ``up = ceil(p)``; an index outside ``[0, T-1]`` is dropped.
    The truncation is what makes a point in (-1, 0) put a total weight of 1.0 on snippet 0,
    and what makes a point in (T-1, T) keep only its ``1 - frac`` share. This only lays
    the reference's float64 values out as an array.
    """
    col = np.zeros((N, T), dtype=np.float64)
    for n, taps in enumerate(_REF.bm_cell(T, N, K, r, d, s)):
        for t, v in taps.items():
            col[n, t] = v
    return col


@lru_cache(maxsize=8)
def bm_mask_coo(T: int, D: int, N: int, K: int, r: float):
    """Non-zeros of the mask ``M[t, n, d, s]`` as COO arrays ``(t, n, d, s, value_f32)``.

    Only valid cells (``s + d <= T - 1``) have entries. Cached per configuration.
    Values are the float64 reference values rounded once to float32.
    """
    ts, ns, ds, ss, vs = [], [], [], [], []
    for s in range(T):
        for d in range(D):
            if s + d > T - 1:
                continue
            col = _cell_column(s, d, T, N, K, r)
            nn_, tt = np.nonzero(col)
            ts.append(tt)
            ns.append(nn_)
            ds.append(np.full(tt.shape, d))
            ss.append(np.full(tt.shape, s))
            vs.append(col[nn_, tt])
    t = np.concatenate(ts).astype(np.int64)
    n = np.concatenate(ns).astype(np.int64)
    d = np.concatenate(ds).astype(np.int64)
    s = np.concatenate(ss).astype(np.int64)
    v = np.concatenate(vs).astype(np.float32)
    for a in (t, n, d, s, v):
        a.setflags(write=False)
    return t, n, d, s, v


def dense_bm_mask(T: int, D: int, N: int, K: int, r: float) -> np.ndarray:
    """The dense mask ``[T, N, D, T]`` float32 (invalid cells all zero)."""
    t, n, d, s, v = bm_mask_coo(T, D, N, K, r)
    m = np.zeros((T, N, D, T), dtype=np.float32)
    m[t, n, d, s] = v
    return m


# --------------------------------------------------------------------------------------
# Sparse sampling with an explicit backward (both directions are CSR x dense products)
# --------------------------------------------------------------------------------------

class _SparseSample(torch.autograd.Function):
    """``out[b] = A @ z[b]`` with ``A`` sparse CSR [cells, N*T] and ``z`` dense [B, N*T, O].

    One product per batch item keeps the dense operand (N*T x O, ~6 MB at the paper
    config) cache-resident; on 2 CPU cores that is twice as fast as one wide product.
    The backward is the same kind of product with the transposed table.
    """

    @staticmethod
    def forward(ctx, z, a, a_t):  # noqa: D401 - torch API
        ctx.save_for_backward(a_t)
        return torch.stack([torch.sparse.mm(a, zb) for zb in z.unbind(0)])

    @staticmethod
    def backward(ctx, grad_out):
        (a_t,) = ctx.saved_tensors
        grad = torch.stack([torch.sparse.mm(a_t, g.contiguous()) for g in grad_out.unbind(0)])
        return grad, None, None


# --------------------------------------------------------------------------------------
# The network (bmn-spec section 1)
# --------------------------------------------------------------------------------------

class BMN(nn.Module):
    """BMN with the ActivityNet layer sizes; see the module docstring for the two forms.

    Args:
        tscale: T, snippets per window (temporal scale).
        dscale: D, number of proposal durations (map rows); ``dscale <= tscale``.
        num_sample: N, sampling bins per proposal.
        num_sample_perbin: K, sub-samples per bin.
        ratio: r, boundary expansion ratio.
        feat_dim: C, input feature channels (divisible by 4: grouped convs).
        variant: ``"pytorch"`` (mmaction2 / PyTorch port, PEM width 256) or
            ``"paddle"`` (PaddleVideo, PEM width 128).
        form: ``"standard"`` (dense mask + Conv3d; export) or ``"fast"`` (reassociated).
        widths: optional overrides of the hidden widths ``{"base": 256, "pem": 256|128,
            "3d": 512, "2d": 128}``, only for tiny test fixtures; the default is the spec.
    """

    def __init__(self, tscale: int = 100, dscale: int = 100, num_sample: int = 32,
                 num_sample_perbin: int = 3, ratio: float = 0.5, feat_dim: int = 400,
                 variant: str = "pytorch", form: str = "standard", widths: dict | None = None):
        super().__init__()
        if variant not in ("pytorch", "paddle"):
            raise ValueError(f"variant must be 'pytorch' or 'paddle', not {variant!r}")
        if dscale > tscale:
            raise ValueError("dscale must not exceed tscale")
        self.tscale, self.dscale = tscale, dscale
        self.num_sample, self.num_sample_perbin, self.ratio = num_sample, num_sample_perbin, ratio
        self.feat_dim, self.variant = feat_dim, variant
        w = {"base": 256, "pem": 256 if variant == "pytorch" else 128, "3d": 512, "2d": 128}
        unknown = set(widths or {}) - set(w)
        if unknown:
            raise ValueError(f"unknown widths {sorted(unknown)}")
        w.update(widths or {})
        self.widths = w
        self.hidden_1d, self.hidden_pem = w["base"], w["pem"]
        self.hidden_3d, self.hidden_2d = w["3d"], w["2d"]
        h = self.hidden_1d

        self.base = nn.Sequential(
            nn.Conv1d(feat_dim, h, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(h, h, 3, padding=1, groups=4), nn.ReLU(inplace=True))
        self.tem_start = nn.Sequential(
            nn.Conv1d(h, h, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(h, 1, 1), nn.Sigmoid())
        self.tem_end = nn.Sequential(
            nn.Conv1d(h, h, 3, padding=1, groups=4), nn.ReLU(inplace=True),
            nn.Conv1d(h, 1, 1), nn.Sigmoid())
        self.pem_1d = nn.Sequential(
            nn.Conv1d(h, self.hidden_pem, 3, padding=1), nn.ReLU(inplace=True))
        self.pem_3d = nn.Conv3d(self.hidden_pem, self.hidden_3d,
                                kernel_size=(num_sample, 1, 1), stride=(num_sample, 1, 1))
        self.pem_2d = nn.Sequential(
            nn.Conv2d(self.hidden_3d, self.hidden_2d, 1), nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden_2d, self.hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden_2d, self.hidden_2d, 3, padding=1), nn.ReLU(inplace=True),
            nn.Conv2d(self.hidden_2d, 2, 1), nn.Sigmoid())

        self.form = None
        self.set_form(form)

    # -- configuration ------------------------------------------------------------------

    @property
    def config(self) -> dict:
        return dict(tscale=self.tscale, dscale=self.dscale, num_sample=self.num_sample,
                    num_sample_perbin=self.num_sample_perbin, ratio=self.ratio,
                    feat_dim=self.feat_dim, variant=self.variant, widths=dict(self.widths))

    def _mask_args(self):
        return (self.tscale, self.dscale, self.num_sample, self.num_sample_perbin,
                float(self.ratio))

    def set_form(self, form: str, persistent_mask: bool = False) -> "BMN":
        """Switch between ``"standard"`` and ``"fast"``; builds only what that form needs.

        The mask buffers are non-persistent by default, so ``state_dict`` holds exactly the
        learned parameters and checkpoints move freely between the forms. The exporter
        asks for ``persistent_mask=True`` so that the dense mask becomes a graph
        initializer (as in upstream exports, where it is a frozen parameter) rather than a
        Constant node.
        """
        if form not in ("standard", "fast"):
            raise ValueError(f"form must be 'standard' or 'fast', not {form!r}")
        if form == self.form and not persistent_mask:
            return self
        device = self.pem_3d.weight.device
        for name in ("sample_mask", "sample_csr", "sample_csr_t"):
            if hasattr(self, name):
                delattr(self, name)
        T, D, N, K, r = self._mask_args()
        if form == "standard":
            m = dense_bm_mask(T, D, N, K, r).reshape(T, N * D * T)
            self.register_buffer("sample_mask", torch.from_numpy(m).to(device),
                                 persistent=persistent_mask)
        else:
            t, n, d, s, v = bm_mask_coo(T, D, N, K, r)
            rows = torch.from_numpy(d * T + s)           # output cell (d, s)
            cols = torch.from_numpy(n * T + t)           # input (n, t) of Z
            vals = torch.from_numpy(v.copy())
            a = torch.sparse_coo_tensor(torch.stack([rows, cols]), vals, (D * T, N * T),
                                        check_invariants=True)
            a_t = torch.sparse_coo_tensor(torch.stack([cols, rows]), vals, (N * T, D * T),
                                          check_invariants=True)
            self.register_buffer("sample_csr", a.coalesce().to_sparse_csr().to(device),
                                 persistent=False)
            self.register_buffer("sample_csr_t", a_t.coalesce().to_sparse_csr().to(device),
                                 persistent=False)
        self.form = form
        return self

    # -- forward ------------------------------------------------------------------------

    def forward(self, x: torch.Tensor):
        """x: [B, C, T] -> (confidence [B, 2, D, T], start [B, T], end [B, T])."""
        base = self.base(x)
        start = self.tem_start(base).squeeze(1)
        end = self.tem_end(base).squeeze(1)
        y = self.pem_1d(base)
        if self.form == "standard":
            h = self._bm_standard(y)
        else:
            h = self._bm_fast(y)
        confidence = self.pem_2d(h)
        return confidence, start, end

    def _bm_standard(self, y: torch.Tensor) -> torch.Tensor:
        b, p, _ = y.shape
        f = torch.matmul(y, self.sample_mask).reshape(
            b, p, self.num_sample, self.dscale, self.tscale)
        return torch.relu(self.pem_3d(f)).squeeze(2)

    def _bm_fast(self, y: torch.Tensor) -> torch.Tensor:
        b = y.shape[0]
        T, D, N = self.tscale, self.dscale, self.num_sample
        w = self.pem_3d.weight[:, :, :, 0, 0]            # [O, P, N]
        o = w.shape[0]
        # Z laid out as [b, (n, t), o]: per batch item the sampling is one CSR x dense product.
        z = torch.einsum("bpt,opn->bnto", y, w).reshape(b, N * T, o)
        hz = _SparseSample.apply(z, self.sample_csr, self.sample_csr_t)   # [B, D*T, O]
        # [B, D, T, O] viewed as [B, O, D, T]: a channels-last tensor, which the 2-d
        # convolutions run fastest on (CPU).
        h = hz.reshape(b, D, T, o).permute(0, 3, 1, 2)
        return torch.relu(h + self.pem_3d.bias.view(1, o, 1, 1))


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


if __name__ == "__main__":
    for variant in ("pytorch", "paddle"):
        m = BMN(variant=variant, form="fast")
        print(variant, count_parameters(m))

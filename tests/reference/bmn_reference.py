"""Independent Python reference for bmn-edge golden data.

Written from the team's BMN reference semantics (bmn-spec sections 2, 3 and 6; what this
module implements is restated in tests/reference/README.md) and the BSN "poolData"
rescaling semantics; no upstream code is copied. Everything is plain Python loops on
float64 Python floats, in the operation order the spec gives, so that the Rust
implementation can be compared bit for bit (decisions) and to the last ulp (values).

This is the project's one reference for the BM mask, candidates, pairing and Soft-NMS:
models/bmn.py and models/evaluate.py import it (by path) instead of keeping copies.

Public functions
----------------
bm_mask(T, D, N, K, r)                        -> np.ndarray float32 [T, N, D, T] (t, n, d, s)
bm_cell(T, N, K, r, d, s)                     -> list of N dicts {t: float64 value}
candidates(p, convention)                     -> list[int] of 0/1, length T
pair(start, end, conf, D, convention)         -> (start_flags, end_flags, proposals)
soft_nms(props, T, convention)                -> kept proposals, in selection order
post_process(start, end, conf, D, convention) -> dict (see PostResult below)
rescale_pool(data, T, eps)                    -> np.ndarray float64 [T, C]
window_starts(L, T, hop)                      -> list[int] (sliding windows)
window_input(features, start, T)              -> (float32 [T, C], valid)
merge_windows(maps, starts, valids, L, D, convention) -> merged proposals in video time
finish_video(merged, L, convention, top_k)    -> dict (Soft-NMS over the merged set, top k)
detect_video(features, run_window, T, D, convention, mode, hop, top_k, eps) -> dict

Tie rule (ours; upstream sorts with an unstable numpy/pandas sort):
  * initial order: score descending, ties broken by shorter proposal first
    (end_grid - start_grid), then smaller start_grid; this is a stable sort of
    the generation order (d outer, s inner) by score descending;
  * each Soft-NMS step picks the first maximum in current list order;
  * removing the picked proposal keeps the order of the others (list.pop);
  * the kept list is sorted by score descending with the same tie rule
    (shorter first, then smaller start), then truncated to the top 100.
    (The generator also checks that this order equals the selection order.)
"""

import math

import numpy as np

CONVENTIONS = ("mmaction2", "paddle")

# Soft-NMS parameters per convention.
SNMS = {
    "mmaction2": {"alpha": 0.4, "t1": 0.5, "t2": 0.9},
    "paddle": {"alpha": 0.4, "t1": 0.55, "t2": 0.9},
}
# The same thresholds in hundredths, for the exact integer tie test.
SNMS_INT = {
    "mmaction2": (50, 40),  # t1*100, (t2-t1)*100
    "paddle": (55, 35),
}
TOP_K = 100


# --------------------------------------------------------------------------
# 2. BM sampling mask
# --------------------------------------------------------------------------

def bm_mask(T, D, N, K, r):
    """Dense BM mask M[t, n, d, s] as float32 (bmn-spec section 2)."""
    M = np.zeros((T, N, D, T), dtype=np.float32)
    for s in range(T):
        for d in range(D):
            if s + d > T - 1:
                continue  # invalid cell: all zero
            cols = bm_cell(T, N, K, r, d, s)
            cell = np.zeros((N, T), dtype=np.float64)
            for n in range(N):
                for t, v in cols[n].items():
                    cell[n, t] = v
            M[:, :, d, s] = cell.T.astype(np.float32)  # cast to f32 at the end
    return M


def bm_cell(T, N, K, r, d, s):
    """Non-zero pattern of the columns M[:, n, d, s], n = 0..N-1, in float64
    (before the final float32 cast): a list of N dicts {t: value}.

    Upstream accumulates into a zero vector of length T; accumulating into a
    dict that starts at 0.0 performs the same float64 additions in the same
    order (entries never touched stay exactly 0.0)."""
    p_xmin = s
    p_xmax = s + d
    center_len = float(p_xmax - p_xmin) + 1
    xmin = p_xmin - center_len * r
    xmax = p_xmax + center_len * r
    plen = float(xmax - xmin)
    step = plen / (N * K - 1.0)
    points = [xmin + step * i for i in range(N * K)]
    scale = 1.0 / K
    cols = []
    for n in range(N):
        col = {}
        for p in points[n * K:(n + 1) * K]:
            up = math.ceil(p)
            frac, down = math.modf(p)  # C modf: truncation toward zero
            if 0 <= int(down) <= T - 1:
                col[int(down)] = col.get(int(down), 0.0) + (1 - frac)
            if 0 <= int(up) <= T - 1:
                col[int(up)] = col.get(int(up), 0.0) + frac
        cols.append({t: scale * v for t, v in col.items()})
    return cols


# --------------------------------------------------------------------------
# 3. Post-processing of one window
# --------------------------------------------------------------------------

def candidates(p, convention):
    """Unforced boundary candidate flags (0/1) of one curve p (float32 [T]).

    The caller forces start[0] and end[T-1] on (see boundary_flags)."""
    T = len(p)
    v = [float(x) for x in p]  # exact: f32 -> f64
    m = max(v)
    half = 0.5 * m  # exact
    out = [0] * T
    if convention == "mmaction2":
        for i in range(1, T - 1):
            if v[i] > v[i - 1] and v[i] > v[i + 1]:
                out[i] = 1
            elif v[i] > half:
                out[i] = 1
    elif convention == "paddle":
        for i in range(T):
            left = v[i - 1] if i > 0 else 0.0
            right = v[i + 1] if i < T - 1 else 0.0
            if v[i] > half or (v[i] > left and v[i] > right):
                out[i] = 1
    else:
        raise ValueError(convention)
    return out


def boundary_flags(start, end, convention):
    sb = candidates(start, convention)
    eb = candidates(end, convention)
    T = len(start)
    sb[0] = 1
    eb[T - 1] = 1
    return sb, eb


def pair(start, end, conf, D, convention):
    """Pairing. conf is float32 [2, D, T] (channel 0 reg, channel 1 cls).

    Returns (start_flags, end_flags, proposals) where proposals is a list of
    dicts in generation order (d outer, s inner) with keys
    xmin, xmax, score (Python floats), sg, eg (grid ints: segment = [sg/T, eg/T])."""
    T = len(start)
    sb, eb = boundary_flags(start, end, convention)
    start = np.asarray(start, dtype=np.float32)
    end = np.asarray(end, dtype=np.float32)
    conf = np.asarray(conf, dtype=np.float32)
    props = []
    for d in range(D):
        for s in range(T):
            if convention == "mmaction2":
                e = s + d + 1
                if e < T and sb[s] == 1 and eb[e] == 1:
                    xmin = s / T
                    xmax = e / T
                    ps = start[s]
                    pe = end[e]
                    cls = conf[1, d, s]
                    reg = conf[0, d, s]
                    sc = ((ps * pe) * cls) * reg  # np.float32 throughout
                    assert isinstance(sc, np.float32)
                    props.append({"xmin": xmin, "xmax": xmax, "score": float(sc),
                                  "sg": s, "eg": e})
            else:
                e = s + d
                if e < T and sb[s] == 1 and eb[e] == 1:
                    xmin = (1.0 / T) * s
                    xmax = (1.0 / T) * (e + 1)
                    ps = start[s]
                    pe = end[e]
                    reg = conf[0, d, s]
                    cls = conf[1, d, s]
                    sc = (ps * pe) * (reg * cls)  # np.float32 throughout
                    assert isinstance(sc, np.float32)
                    props.append({"xmin": xmin, "xmax": xmax, "score": float(sc),
                                  "sg": s, "eg": e + 1})
    return sb, eb, props


def _tie_key(p):
    return (-p["score"], p["eg"] - p["sg"], p["sg"])


def soft_nms(props, T, convention, stats=None, trace=None):
    """Gaussian Soft-NMS with the width-adaptive threshold (bmn-spec section 3).

    props: list of proposal dicts in generation order, on a grid of T per unit
    (sg, eg: the segment is [sg/T, eg/T]). Returns the kept list (before the final
    sort and top-100 truncation), in selection order. Decisions are the f64
    expression's; the integer test in grid units is only a cross-check.
    stats (optional dict) receives 'ties' (exact integer ties of IoU with the
    threshold), 'ties_decayed' (how many of them the f64 test decided '>').
    trace (optional list) receives, for every step, (index of the pick, the
    remaining proposals' scores at that moment, in list order) -- for margin checks;
    it changes nothing."""
    prm = SNMS[convention]
    alpha, t1, t2 = prm["alpha"], prm["t1"], prm["t2"]
    a100, b100 = SNMS_INT[convention]
    # Stable sort of the generation order by score descending == tie rule.
    rem = sorted(props, key=_tie_key)
    rem = [dict(p) for p in rem]
    kept = []
    ties = 0
    ties_decayed = 0
    while True:
        if convention == "mmaction2":
            if not (len(rem) > 0 and len(kept) <= TOP_K):
                break
        else:
            if not (len(rem) > 1 and len(kept) < TOP_K + 1):
                break
        # first maximum in list order
        mi = 0
        for i in range(1, len(rem)):
            if rem[i]["score"] > rem[mi]["score"]:
                mi = i
        if trace is not None:
            trace.append((mi, [p["score"] for p in rem], [p.get("uid") for p in rem]))
        pm = rem[mi]
        xmin_m, xmax_m = pm["xmin"], pm["xmax"]
        width = xmax_m - xmin_m
        thr = t1 + (t2 - t1) * width
        wg = pm["eg"] - pm["sg"]
        for i in range(len(rem)):
            if i == mi:
                continue
            pi = rem[i]
            xmin_i, xmax_i = pi["xmin"], pi["xmax"]
            inter = max(min(xmax_i, xmax_m) - max(xmin_i, xmin_m), 0.0)
            if convention == "mmaction2":
                union = ((width - inter) + xmax_i) - xmin_i
            else:
                union = (((xmax_i - xmin_i) - inter) + xmax_m) - xmin_m
            iou = inter / union
            decide = iou > thr
            # exact integer test in grid units
            ig = max(min(pi["eg"], pm["eg"]) - max(pi["sg"], pm["sg"]), 0)
            ug = (wg - ig) + (pi["eg"] - pi["sg"])
            lhs = ig * 100 * T
            rhs = ug * (a100 * T + b100 * wg)
            if lhs == rhs:
                ties += 1
                if decide:
                    ties_decayed += 1
            else:
                # away from ties the integer test must agree with the f64 one
                assert decide == (lhs > rhs), (convention, pm, pi, iou, thr)
            if decide:
                pi["score"] = pi["score"] * math.exp(-(iou * iou) / alpha)
        kept.append(pm)
        rem.pop(mi)
    if stats is not None:
        stats["ties"] = stats.get("ties", 0) + ties
        stats["ties_decayed"] = stats.get("ties_decayed", 0) + ties_decayed
    return kept


def post_process(start, end, conf, D, convention, top_k=TOP_K):
    """Full post-processing of one window.

    start, end: float32 [T]; conf: float32 [2, D, T].
    Returns dict with start_candidates, end_candidates, num_pairs,
    soft_nms_applied, kept (count before top-100 truncation), ties,
    ties_decayed, selection_order_equals_sorted, proposals
    ([xmin, xmax, score, start_grid, end_grid], at most 100)."""
    T = len(start)
    sb, eb, props = pair(start, end, conf, D, convention)
    stats = {"ties": 0, "ties_decayed": 0}
    # Both upstreams skip Soft-NMS when there is at most one proposal.
    if len(props) > 1:
        kept = soft_nms(props, T, convention, stats)
        applied = True
    else:
        kept = [dict(p) for p in props]
        applied = False
    final = sorted(kept, key=_tie_key)
    same = [(p["sg"], p["eg"]) for p in final] == [(p["sg"], p["eg"]) for p in kept]
    out = [[p["xmin"], p["xmax"], p["score"], p["sg"], p["eg"]] for p in final[:top_k]]
    return {
        "start_candidates": sb,
        "end_candidates": eb,
        "num_pairs": len(props),
        "soft_nms_applied": applied,
        "kept": len(kept),
        "threshold_ties": stats["ties"],
        "threshold_ties_decayed": stats["ties_decayed"],
        "selection_order_equals_sorted": same,
        "proposals": out,
    }


def split_window(flat, T, D):
    """Inverse of the flat golden input layout: start[T], end[T], conf[2*D*T]."""
    flat = np.asarray(flat, dtype=np.float32)
    assert flat.shape == (2 * T + 2 * D * T,), flat.shape
    start = flat[:T]
    end = flat[T:2 * T]
    conf = flat[2 * T:].reshape(2, D, T)
    return start, end, conf


# --------------------------------------------------------------------------
# BSN poolData-style whole-video rescale (snippet units)
# --------------------------------------------------------------------------

def _interp_linear(xs, ys_col, x):
    """Linear interpolation like a linear interp1d: segment found by a
    left-sided search, clamped to the first/last segment."""
    n = len(xs)
    # left-sided search: first j with xs[j] >= x
    j = 0
    while j < n and xs[j] < x:
        j += 1
    if j < 1:
        j = 1
    if j > n - 1:
        j = n - 1
    lo, hi = j - 1, j
    slope = (ys_col[hi] - ys_col[lo]) / (xs[hi] - xs[lo])
    return slope * (x - xs[lo]) + ys_col[lo]


def rescale_pool(data, T, eps):
    """Rescale L snippet rows [L, C] to T positions; returns float64 [T, C].

    Snippet j has its centre at j + 0.5. Bin i covers [(1.0/T*i)*L,
    (1.0/T*(i+1))*L]; xmin = max(0.5 + eps, a), xmax = min(L - 0.5 - eps, b);
    zeros if xmax < 0.5 or xmin > L - 0.5; else the mean of 3 interpolated
    points xmin + ((xmax - xmin)/2)*ii, ii = 0, 1, 2."""
    data = np.asarray(data)
    L, C = data.shape
    rows = [[float(v) for v in data[j]] for j in range(L)]
    out = np.zeros((T, C), dtype=np.float64)
    if L == 1:
        for i in range(T):
            for c in range(C):
                out[i, c] = rows[0][c]
        return out
    xs = [j + 0.5 for j in range(L)]
    first = xs[0]
    last = xs[-1]
    for i in range(T):
        a = (1.0 / T * i) * L
        b = (1.0 / T * (i + 1)) * L
        xmin = max(first + eps, a)
        xmax = min(last - eps, b)
        if xmax < first or xmin > last:
            continue  # zeros
        plen = (xmax - xmin) / 2
        pts = [xmin + plen * ii for ii in range(3)]
        for c in range(C):
            col = [rows[j][c] for j in range(L)]
            y = [_interp_linear(xs, col, x) for x in pts]
            out[i, c] = ((y[0] + y[1]) + y[2]) / 3
    return out


# --------------------------------------------------------------------------
# 6. A whole video: sliding windows merged in video time, or the whole video
#    rescaled to one window
# --------------------------------------------------------------------------
#
# Sliding (the streaming setting, bmn-spec section 6, as bmn-edge's runtime defines
# it): windows of T snippets every `hop` snippets (default T/2) from snippet 0 while a
# whole window fits; one more window aligned to the end of the video when the hops did
# not end exactly there; a video shorter than T is one window, edge-padded (its last
# snippet repeated). Each window is post-processed up to pairing (candidates and
# pairing, no per-window Soft-NMS); a pair whose end-curve index lies in the padding
# (index >= the window's real snippets) is dropped; the others are moved to video
# positions w0 + s, w0 + e and normalised by L, the video's snippet count, with the
# convention's expression (mmaction2 p / L, paddle (1.0 / L) * p). Then one Soft-NMS
# runs over the merged set -- the convention's float64 threshold test on these
# normalised coordinates -- and the top k of the kept proposals, sorted by the tie rule,
# are the video's proposals. A video of exactly T snippets gives exactly the window's
# proposals.
#
# Rescale (the ActivityNet setting): the whole video resampled to T positions with
# rescale_pool, cast to float32, and post-processed as one window (post_process).

def default_hop(T):
    """T // 2 (50 % overlap), at least 1."""
    return T // 2 if T >= 2 else 1


def window_starts(L, T, hop):
    """First snippet of every sliding window over a video of L snippets."""
    if not (L >= 1 and T >= 1 and 1 <= hop <= T):
        raise ValueError("need L >= 1, T >= 1 and 1 <= hop <= T (L=%r, T=%r, hop=%r)" % (L, T, hop))
    if L <= T:
        return [0]
    starts = []
    w0 = 0
    while w0 + T <= L:
        starts.append(w0)
        w0 += hop
    if starts[-1] + T != L:
        starts.append(L - T)  # aligned to the end
    return starts


def window_input(features, start, T):
    """The network input of the window starting at `start`: float32 [T, C] (rows
    are snippets; the network takes the transpose) and `valid`, the number of real
    snippets in it. Past the end of the video the last snippet is repeated."""
    L = len(features)
    valid = min(T, L - start)
    if valid < 1:
        raise ValueError("window start %d is past the end of a %d-snippet video" % (start, L))
    rows = [np.asarray(features[start + min(j, valid - 1)], dtype=np.float32) for j in range(T)]
    return np.stack(rows), valid


def merge_windows(window_maps, starts, valids, L, D, convention):
    """Pairs of every window in video time (see the section comment).

    window_maps: one (start[T], end[T], conf[2, D, T]) float32 triple per window.
    Returns the merged proposal dicts, windows in order, each window in generation
    order, with keys xmin, xmax, score, sg, eg (video grid: segment = [sg/L, eg/L]),
    window (index), ws, we (the window's own grid values) and uid (position)."""
    merged = []
    for k, ((start, end, conf), w0, valid) in enumerate(zip(window_maps, starts, valids)):
        _, _, props = pair(start, end, conf, D, convention)
        for p in props:
            # the end curve's index: mmaction2 e = eg; paddle e = eg - 1
            e_index = p["eg"] if convention == "mmaction2" else p["eg"] - 1
            if e_index >= valid:
                continue  # the end boundary is a padded snippet
            sg = w0 + p["sg"]
            eg = w0 + p["eg"]
            if convention == "mmaction2":
                xmin = sg / L
                xmax = eg / L
            else:
                xmin = (1.0 / L) * sg
                xmax = (1.0 / L) * eg
            merged.append({"xmin": xmin, "xmax": xmax, "score": p["score"], "sg": sg, "eg": eg,
                           "window": k, "ws": p["sg"], "we": p["eg"], "uid": len(merged)})
    return merged


def finish_video(merged, L, convention, top_k=TOP_K, stats=None, trace=None):
    """One Soft-NMS over the merged proposals (skipped for at most one, as in a
    window), then the kept ones sorted by the tie rule and cut to top_k.

    Returns {num_pairs, soft_nms_applied, kept, selection_order_equals_sorted,
    final (the proposal dicts), proposals ([xmin, xmax, score, sg, eg])}."""
    if len(merged) > 1:
        kept = soft_nms(merged, L, convention, stats, trace)
        applied = True
    else:
        kept = [dict(p) for p in merged]
        applied = False
    final = sorted(kept, key=_tie_key)
    same = [p["uid"] for p in final] == [p["uid"] for p in kept]
    final = final[:top_k]
    return {
        "num_pairs": len(merged),
        "soft_nms_applied": applied,
        "kept": len(kept),
        "selection_order_equals_sorted": same,
        "final": final,
        "proposals": [[p["xmin"], p["xmax"], p["score"], p["sg"], p["eg"]] for p in final],
    }


def detect_video(features, run_window, T, D, convention, mode="sliding", hop=None,
                 top_k=TOP_K, eps=0.0):
    """A whole video's proposals (see the section comment).

    features: [L, C] (rows are snippets; float32 as the runtime reads them).
    run_window(x): the network on one window, x float32 [T, C] -> (start[T], end[T],
    conf[2, D, T]) float32. mode: "sliding" (hop: default T/2) or "rescale" (eps:
    poolData's epsilon in snippets). Returns finish_video's dict (sliding) or
    post_process's (rescale, grid T), plus windows ([start, valid] each) and maps
    (the network outputs per window)."""
    features = np.asarray(features)
    if features.ndim != 2 or features.shape[0] < 1:
        raise ValueError("features must be [L, C] with L >= 1, not %r" % (features.shape,))
    L = features.shape[0]
    if mode == "rescale":
        x = rescale_pool(features, T, eps).astype(np.float32)
        maps = run_window(x)
        res = post_process(maps[0], maps[1], maps[2], D, convention, top_k)
        res["windows"] = [[0, T]]
        res["maps"] = [maps]
        return res
    if mode != "sliding":
        raise ValueError(mode)
    hop = default_hop(T) if hop is None else hop
    starts = window_starts(L, T, hop)
    maps, valids = [], []
    for w0 in starts:
        x, valid = window_input(features, w0, T)
        maps.append(run_window(x))
        valids.append(valid)
    merged = merge_windows(maps, starts, valids, L, D, convention)
    res = finish_video(merged, L, convention, top_k)
    res["windows"] = [[w0, v] for w0, v in zip(starts, valids)]
    res["maps"] = maps
    return res

//! Gaussian Soft-NMS with the width-adaptive threshold (reference §3), in place, bounded.
//!
//! Repeatedly take the best remaining proposal `m` (first in list order on equal scores),
//! decay every other remaining `i` with `IoU(i, m) > t1 + (t2 − t1)·width(m)` by
//! `exp(−IoU²/α)`, and move `m` to the kept list. The loop stops by the convention's rule
//! (mmaction2: while something remains and at most `top_k` (100) are kept, so up to 101;
//! paddle: while more than one remains and fewer than 101 are kept — the last remaining
//! proposal is never kept).
//!
//! ## Exact decisions
//!
//! On the snippet grid the IoU often equals the threshold exactly (`T = 40`, a 10-snippet
//! proposal: threshold 0.6 = 6/10), and then the reference's float64 rounding decides. With
//! a grid and thresholds that are whole hundredths (all defaults are), the test is first
//! made in integers: `100·T·I` against `U·(100·t1·T + 100·(t2−t1)·W)`, with `I`, `U`, `W`
//! the intersection, union and width in snippets. When they differ, that is the answer (the
//! exact values differ by at least `1/(200·T²)`, far above float64 rounding for
//! `T ≤ 4096`); when they are equal — an exact tie — the reference's float64 expression is
//! evaluated, operation order included, and decides. Decays use the float64 IoU and
//! `libm::exp`, identical on every target.
//!
//! ## Ties on scores
//!
//! The input is first sorted by [`Proposal::rank_cmp`] (score descending; equal scores:
//! shorter first, then earlier start — the references' generation order, i.e. a stable
//! sort); removal keeps the remaining list's order, and the argmax takes the first maximum.

use super::Proposal;
use crate::config::Convention;

/// Soft-NMS parameters.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SoftNmsParams {
    /// Which IoU expression (operation order) to use.
    pub convention: Convention,
    /// Gaussian width α.
    pub alpha: f64,
    /// Low threshold `t1`.
    pub t1: f64,
    /// High threshold `t2`.
    pub t2: f64,
    /// The loop continues while at least this many proposals remain (mmaction2 1, paddle 2).
    pub min_remaining: usize,
    /// The loop stops once this many are kept (101 for both conventions).
    pub max_kept: usize,
}

impl SoftNmsParams {
    /// The reference parameters of a convention: mmaction2 α 0.4, t1 0.5, t2 0.9;
    /// paddle α 0.4, t1 0.55, t2 0.9.
    pub const fn for_convention(convention: Convention) -> Self {
        match convention {
            Convention::Mmaction2 => {
                SoftNmsParams { convention, alpha: 0.4, t1: 0.5, t2: 0.9, min_remaining: 1, max_kept: 101 }
            }
            Convention::Paddle => {
                SoftNmsParams { convention, alpha: 0.4, t1: 0.55, t2: 0.9, min_remaining: 2, max_kept: 101 }
            }
        }
    }

    /// `(100·t1, 100·t2)` when both thresholds are whole hundredths exactly as float64
    /// writes them (`0.55 == 55.0 / 100.0`), enabling the integer fast path.
    fn hundredths(&self) -> Option<(i64, i64)> {
        let h = |x: f64| {
            let r = libm::round(x * 100.0);
            (r.abs() <= 1.0e6 && r / 100.0 == x).then_some(r as i64)
        };
        Some((h(self.t1)?, h(self.t2)?))
    }
}

/// What a Soft-NMS run decided, for tests and diagnostics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct SoftNmsStats {
    /// Threshold tests that were exact ties in integers and went to the float64 expression
    /// (only tests that were needed: decays of proposals that can no longer win are skipped).
    pub exact_ties: usize,
    /// Threshold tests made in float64 for want of a grid.
    pub float_tests: usize,
    /// Decays applied.
    pub decays: usize,
}

/// Float64 IoU exactly as the convention's reference computes it (proposal `i` against the
/// current maximum `m`).
#[inline]
pub fn reference_iou(convention: Convention, i: &Proposal, m: &Proposal) -> f64 {
    let inter = (i.xmax.min(m.xmax) - i.xmin.max(m.xmin)).max(0.0);
    let union = match convention {
        // mmaction2: len_anchors = width(m); union = width(m) − inter + xmax_i − xmin_i.
        Convention::Mmaction2 => (((m.xmax - m.xmin) - inter) + i.xmax) - i.xmin,
        // paddle: len_anchors = width(i); union = width(i) − inter + xmax_m − xmin_m.
        Convention::Paddle => (((i.xmax - i.xmin) - inter) + m.xmax) - m.xmin,
    };
    inter / union
}

/// Applies to `proposals[i]` the decays of kept proposals `proposals[seen..kept]`.
fn refresh(
    proposals: &mut [Proposal],
    i: usize,
    kept: usize,
    params: &SoftNmsParams,
    fast: Option<(i64, (i64, i64))>,
    stats: &mut SoftNmsStats,
) {
    let mut pi = proposals[i];
    for pm in &proposals[pi.seen as usize..kept] {
        let width = pm.xmax - pm.xmin;
        let threshold = params.t1 + (params.t2 - params.t1) * width;
        let exceeds = match fast {
            Some((t, (t1, t2))) => {
                let (ms, me) = (pm.start as i64, pm.end as i64);
                let (is, ie) = (pi.start as i64, pi.end as i64);
                let inter = ie.min(me) - is.max(ms);
                if inter <= 0 {
                    false
                } else {
                    let w = me - ms;
                    let lhs = 100 * t * inter;
                    let rhs = (w - inter + (ie - is)) * (t1 * t + (t2 - t1) * w);
                    if lhs != rhs {
                        lhs > rhs
                    } else {
                        stats.exact_ties += 1;
                        reference_iou(params.convention, &pi, pm) > threshold
                    }
                }
            }
            None => {
                stats.float_tests += 1;
                reference_iou(params.convention, &pi, pm) > threshold
            }
        };
        if exceeds {
            let iou = reference_iou(params.convention, &pi, pm);
            pi.score *= libm::exp(-(iou * iou) / params.alpha);
            stats.decays += 1;
        }
    }
    // kept ≤ max_kept ≤ u16::MAX.
    pi.seen = kept as u16;
    proposals[i] = pi;
}

/// Runs Soft-NMS in place. On return `proposals[..kept]` are the kept proposals sorted
/// best first ([`Proposal::rank_cmp`]); the rest of the slice holds the unkept ones in no
/// particular order. `grid` is `Some(T)` when every proposal's `start`/`end` are positions
/// on a grid of `T` per unit (window post-processing), enabling the integer fast path.
pub fn soft_nms(proposals: &mut [Proposal], params: &SoftNmsParams, grid: Option<u32>) -> (usize, SoftNmsStats) {
    let mut stats = SoftNmsStats::default();
    proposals.sort_unstable_by(Proposal::rank_cmp);
    for p in proposals.iter_mut() {
        p.seen = 0;
    }
    let len = proposals.len();
    let fast = match (grid, params.hundredths()) {
        (Some(t), Some(h)) if (1..=4096).contains(&t) => Some((t as i64, h)),
        _ => None,
    };
    // Decays are applied lazily: proposal i's score includes the decays of the first
    // `seen` kept proposals. Since decays only lower scores, a stale score is an upper
    // bound, so the argmax only refreshes the proposals that could still win; the others
    // are skipped (their final scores are never reported). Each refresh applies the same
    // factors in the same order as the eager loop of the reference, so every kept score
    // is bit-identical to it.
    let max_kept = params.max_kept.min(u16::MAX as usize);
    let mut kept = 0;
    while len - kept >= params.min_remaining.max(1) && kept < max_kept {
        let mut best = usize::MAX;
        let mut best_score = f64::NEG_INFINITY;
        for i in kept..len {
            // A later proposal needs a strictly higher score to win (first maximum wins).
            if best != usize::MAX && proposals[i].score <= best_score {
                continue;
            }
            refresh(proposals, i, kept, params, fast, &mut stats);
            let score = proposals[i].score;
            if best == usize::MAX || score > best_score {
                best = i;
                best_score = score;
            }
        }
        // Move the maximum to the kept prefix, keeping the remaining list's order.
        proposals[kept..=best].rotate_right(1);
        kept += 1;
    }
    proposals[..kept].sort_unstable_by(Proposal::rank_cmp);
    (kept, stats)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(start: u32, end: u32, t: u32, score: f64) -> Proposal {
        Proposal::new(start, end, start as f64 / t as f64, end as f64 / t as f64, score)
    }

    #[test]
    fn exact_tie_goes_to_float64() {
        // T = 40; m = [0, 10) (width 0.25, threshold 0.5 + 0.4·0.25 = 0.6);
        // i = [0, 6): IoU = 6/10 = 0.6 exactly in integers.
        let mut v = [p(0, 10, 40, 0.9), p(0, 6, 40, 0.8)];
        let params = SoftNmsParams::for_convention(Convention::Mmaction2);
        let (kept, stats) = soft_nms(&mut v, &params, Some(40));
        assert_eq!(kept, 2);
        assert_eq!(stats.exact_ties, 1);
        let float_decision = reference_iou(Convention::Mmaction2, &p(0, 6, 40, 0.0), &p(0, 10, 40, 0.0))
            > 0.5 + (0.9 - 0.5) * (10.0 / 40.0 - 0.0 / 40.0);
        assert_eq!(v[1].score != 0.8, float_decision);
    }

    #[test]
    fn paddle_never_keeps_the_last() {
        let mut v = [p(0, 3, 10, 0.5)];
        let (kept, _) = soft_nms(&mut v, &SoftNmsParams::for_convention(Convention::Paddle), Some(10));
        assert_eq!(kept, 0);
        let (kept, _) = soft_nms(&mut v, &SoftNmsParams::for_convention(Convention::Mmaction2), Some(10));
        assert_eq!(kept, 1);
    }
}

//! A stream that never ends: proposals emitted as soon as no later window can change them,
//! in bounded memory ([`StreamMerger`]); and the same semantics over a whole recording at
//! once ([`merge_stream`], what `detect --merge stream` runs).
//!
//! The video-level merge ([`super::merge`]) cannot stream: it normalises positions by the
//! video's length `L`, known only at the end, and keeps the video's global top 100. The
//! **stream semantics** replace both:
//!
//! 1. **Windows on a grid.** Windows start at multiples of the hop `H` (`0, H, 2H, …`);
//!    when the stream ends, one more window at the next multiple of `H` covers the
//!    snippets the last complete window did not, edge-padded as a short stream is
//!    ([`WindowBuffer::finish_on_grid`](crate::window::WindowBuffer::finish_on_grid)). So
//!    after the window at `w`, no later window starts before `w + H`: the **frontier**.
//! 2. **Pairs** of each window (candidates and pairing, as in the video merge) lose those
//!    ending in the padding (same rule as [`super::merge`]) and those scoring below a
//!    **floor** `min_score`; the rest are placed at stream positions `w + s`, `w + e`.
//! 3. **Groups.** Two proposals *overlap* when their half-open snippet intervals intersect.
//!    A group is a connected set of overlapping proposals (the connected components of the
//!    overlap graph); groups occupy disjoint spans of the stream.
//! 4. **Soft-NMS per group**, with widths normalised by the window length `T` — a
//!    proposal's `width` in the adaptive threshold `t1 + (t2 − t1)·width` is its length in
//!    snippets over `T`, exactly as inside one window — coordinates relative to the
//!    group's first snippet, the convention's IoU expression and `t1`, no "last remaining
//!    proposal" quirk (the loop runs while anything remains, for both conventions), and
//!    at most `top_k` proposals kept **per group**.
//! 5. **Output**: the kept proposals scoring at least the floor, group by group in stream
//!    order, best first within a group.
//!
//! ## Why a group can be emitted before the stream ends
//!
//! Soft-NMS only ever decays a proposal by another one it overlaps (an IoU of 0 never
//! exceeds the threshold, which is at least `t1`). So Soft-NMS over proposals that split
//! into non-overlapping groups is Soft-NMS over each group alone: scores never cross
//! between groups. (The kept proposals' scores are non-increasing in selection order,
//! so "the first `top_k` selected" are a group's `top_k` best final scores.) A later
//! window starts at or after the frontier and its proposals start there too; a group that
//! ends at or before the frontier can therefore never be overlapped — it is complete, and
//! its Soft-NMS result is final. [`StreamMerger`] emits it and forgets it; the groups
//! still reaching past the frontier wait. The floor does not change any emitted score
//! either: a proposal below the floor is selected only after every proposal that ends
//! above it, so it never decays one of them; dropping it early only saves memory.
//!
//! ## Bounded memory
//!
//! The merger keeps only the groups that are not complete, in a caller's
//! [`ProposalStore`] (a slice, a `heapless::Vec`). A run of overlapping proposals that
//! never breaks would grow one group without end; when a window's pairs would not fit,
//! the merger **flushes**: it emits every pending group as if it were complete (its
//! Soft-NMS then does not see the proposals that come later, so a proposal on either
//! side of the cut is not suppressed against the other) and reports it
//! ([`WindowReport::flushed`], [`StreamStats::flushes`]). Nothing is lost. Without a flush
//! the result is exactly [`merge_stream`]'s over the same windows.
//!
//! Positions are `u64` snippets; stored positions are relative to a base that follows the
//! stream, so a stream may run for as long as a `u64` counts.

use super::{soft_nms, PostError, Proposal, ProposalStore, SoftNmsParams};
use crate::config::Convention;

/// The default score floor of the stream semantics (`stream`, `detect --merge stream`).
pub const DEFAULT_MIN_SCORE: f64 = 0.01;

/// ActivityNet's snippet in seconds: 16 frames at 30 frames per second.
pub const ACTIVITYNET_SNIPPET_SECONDS: f64 = 16.0 / 30.0;

/// The stream semantics' parameters (see the [module docs](self)).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamParams {
    convention: Convention,
    tscale: u32,
    min_score: f64,
    top_k: usize,
}

impl StreamParams {
    /// `convention` (IoU expression, `t1`), the window length `T` that normalises widths
    /// (`1..=4096`), the score floor (finite, `≥ 0`) and the proposals kept per group
    /// (`1..=65535`).
    pub fn new(convention: Convention, tscale: usize, min_score: f64, top_k: usize) -> Result<Self, PostError> {
        let range = |what, value: u64, min, max| PostError::OutOfRange { what, value, min, max };
        if !(1..=4096).contains(&tscale) {
            return Err(range("window length T", tscale as u64, 1, 4096));
        }
        if !(1..=u16::MAX as usize).contains(&top_k) {
            return Err(range("proposals kept per group", top_k as u64, 1, u16::MAX as u64));
        }
        if !(min_score.is_finite() && min_score >= 0.0) {
            return Err(PostError::NonFinite { what: "score floor (finite, at least 0)", index: 0 });
        }
        Ok(StreamParams { convention, tscale: tscale as u32, min_score, top_k })
    }

    /// The convention.
    pub fn convention(&self) -> Convention {
        self.convention
    }
    /// The window length `T`.
    pub fn tscale(&self) -> usize {
        self.tscale as usize
    }
    /// The score floor.
    pub fn min_score(&self) -> f64 {
        self.min_score
    }
    /// Proposals kept per group.
    pub fn top_k(&self) -> usize {
        self.top_k
    }

    fn soft_nms(&self) -> SoftNmsParams {
        let mut p = SoftNmsParams::for_convention(self.convention);
        p.min_remaining = 1;
        p.max_kept = self.top_k;
        p
    }

    /// Whether a window pair (window grid positions) is kept: not empty, its last boundary
    /// snippet among the window's `valid` real ones, and scoring at least the floor.
    fn accepts(&self, p: &Proposal, valid: u64) -> Accept {
        let (start, end) = (u64::from(p.start), u64::from(p.end));
        let inside = match self.convention {
            Convention::Mmaction2 => end < valid,
            Convention::Paddle => end <= valid,
        };
        if start >= end || !inside {
            Accept::Padding
        } else if !reaches(p.score, self.min_score) {
            Accept::BelowFloor
        } else {
            Accept::Yes
        }
    }
}

/// `score ≥ floor`; a NaN score never reaches it.
fn reaches(score: f64, floor: f64) -> bool {
    score >= floor
}

enum Accept {
    Yes,
    Padding,
    BelowFloor,
}

/// A final proposal in stream time: snippet positions (`end` exclusive) and its score
/// after Soft-NMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StreamProposal {
    /// First snippet.
    pub start: u64,
    /// One past the last snippet (a boundary position).
    pub end: u64,
    /// Score after the group's Soft-NMS.
    pub score: f64,
}

/// Counters of a stream so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct StreamStats {
    /// Windows pushed.
    pub windows: u64,
    /// Pairs accepted (inside the real snippets, at least the floor).
    pub accepted: u64,
    /// Pairs dropped because they ended in a window's padding.
    pub padding: u64,
    /// Pairs dropped below the score floor.
    pub below_floor: u64,
    /// Groups completed and run through Soft-NMS.
    pub groups: u64,
    /// Proposals emitted.
    pub emitted: u64,
    /// Times the store was full and every pending group was emitted early.
    pub flushes: u64,
    /// The most proposals pending at once.
    pub peak_pending: usize,
}

/// What one [`StreamMerger::push_window`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WindowReport {
    /// Pairs of the window accepted.
    pub accepted: usize,
    /// Proposals emitted.
    pub emitted: usize,
    /// The store was full: every group pending before this window was emitted early.
    pub flushed: bool,
}

/// The bounded incremental merger of the stream semantics (see the [module docs](self)).
#[derive(Debug)]
pub struct StreamMerger<S> {
    store: S,
    params: StreamParams,
    /// Stream position of stored position 0.
    base: u64,
    /// No later window may start before this.
    frontier: u64,
    stats: StreamStats,
}

impl<S: ProposalStore> StreamMerger<S> {
    /// A merger collecting pending proposals in `store` (emptied first). The store must
    /// hold at least one window's pairs (`T·D` always suffices) and should hold several:
    /// a full store forces a flush.
    pub fn new(params: StreamParams, mut store: S) -> Self {
        store.truncate(0);
        StreamMerger { store, params, base: 0, frontier: 0, stats: StreamStats::default() }
    }

    /// The parameters.
    pub fn params(&self) -> &StreamParams {
        &self.params
    }

    /// Counters so far.
    pub fn stats(&self) -> StreamStats {
        self.stats
    }

    /// Proposals pending (in groups that are not complete).
    pub fn pending(&self) -> usize {
        self.store.as_slice().len()
    }

    /// The pending proposals in stream positions, with their scores before Soft-NMS (an
    /// upper bound of their final ones): what may still be reported about the snippets
    /// seen last, e.g. to light an indicator while one covers the newest snippet.
    pub fn pending_proposals(&self) -> impl Iterator<Item = StreamProposal> + '_ {
        let base = self.base;
        self.store.as_slice().iter().map(move |p| StreamProposal {
            start: base + u64::from(p.start),
            end: base + u64::from(p.end),
            score: p.score,
        })
    }

    /// The first snippet of the earliest pending proposal, if any.
    pub fn pending_start(&self) -> Option<u64> {
        self.store.as_slice().iter().map(|p| self.base + u64::from(p.start)).min()
    }

    /// Adds one window's candidate pairs (window grid positions, as
    /// [`pair_candidates`](super::pair_candidates) writes them): the window starts at
    /// stream snippet `window_start`, has `valid` real snippets (`1..=T`) and no later
    /// window will start before `frontier` (`window_start + H` on the grid; `u64::MAX`
    /// for the last window). Emits, through `emit`, every group this completes.
    ///
    /// Errors, with nothing changed: a window starting before the previous frontier, a
    /// frontier before the window, `valid` outside `1..=T`, or one window's accepted pairs
    /// more than the store can hold ([`PostError::Capacity`] with the first that would
    /// not fit).
    pub fn push_window(
        &mut self,
        pairs: &[Proposal],
        window_start: u64,
        valid: usize,
        frontier: u64,
        mut emit: impl FnMut(StreamProposal),
    ) -> Result<WindowReport, PostError> {
        let range = |what, value: u64, min, max| PostError::OutOfRange { what, value, min, max };
        if window_start < self.frontier {
            return Err(range("window start (before the previous frontier)", window_start, self.frontier, u64::MAX));
        }
        if frontier < window_start {
            return Err(range("frontier (before its window)", frontier, window_start, u64::MAX));
        }
        let t = u64::from(self.params.tscale);
        if !(1..=t).contains(&(valid as u64)) {
            return Err(range("real snippets in the window", valid as u64, 1, t));
        }
        let valid = valid as u64;
        let accepted = pairs.iter().filter(|p| matches!(self.params.accepts(p, valid), Accept::Yes)).count();
        let capacity = self.store.capacity();
        let mut report = WindowReport { accepted, ..WindowReport::default() };
        if accepted > capacity {
            let first = pairs.iter().find(|p| matches!(self.params.accepts(p, valid), Accept::Yes));
            let rejected = first.copied().unwrap_or_default();
            return Err(PostError::Capacity { rejected, capacity });
        }
        self.rebase(window_start);
        if window_start - self.base + t > u64::from(u32::MAX) {
            // Only a pending group spanning 2^31 snippets could do this.
            return Err(range("pending span in snippets", window_start - self.base + t, 0, u64::from(u32::MAX)));
        }
        if capacity - self.pending() < accepted {
            report.emitted += self.complete(None, &mut emit);
            report.flushed = true;
            self.stats.flushes += 1;
        }
        self.stats.windows += 1;
        for p in pairs {
            match self.params.accepts(p, valid) {
                Accept::Padding => self.stats.padding += 1,
                Accept::BelowFloor => self.stats.below_floor += 1,
                Accept::Yes => {
                    // Relative to the base, which is ≤ window_start and within 2^31 of it.
                    let offset = window_start - self.base;
                    let q = Proposal::new(
                        (offset + u64::from(p.start)) as u32,
                        (offset + u64::from(p.end)) as u32,
                        0.0,
                        0.0,
                        p.score,
                    );
                    // Room was checked above.
                    let _ = self.store.try_push(q);
                }
            }
        }
        self.stats.accepted += accepted as u64;
        self.stats.peak_pending = self.stats.peak_pending.max(self.pending());
        self.frontier = frontier;
        report.emitted += self.complete(Some(frontier), &mut emit);
        Ok(report)
    }

    /// Ends the stream: emits every pending group. The merger can go on with a new stream
    /// whose windows start at or after the last frontier.
    pub fn finish(&mut self, mut emit: impl FnMut(StreamProposal)) -> usize {
        self.complete(None, &mut emit)
    }

    /// Moves the base forward when the window is far from it, so that stored positions
    /// stay within `u32`. Pending proposals all start at or after the base.
    fn rebase(&mut self, window_start: u64) {
        if window_start - self.base < 1 << 31 {
            return;
        }
        let new_base = self.pending_start().unwrap_or(window_start).min(window_start);
        let shift = (new_base - self.base) as u32;
        for p in self.store.as_mut_slice() {
            p.start -= shift;
            p.end -= shift;
        }
        self.base = new_base;
    }

    /// Emits the groups that end at or before `limit` (all of them for `None`), in stream
    /// order, and removes them. Returns how many proposals were emitted.
    fn complete(&mut self, limit: Option<u64>, emit: &mut impl FnMut(StreamProposal)) -> usize {
        let slice = self.store.as_mut_slice();
        slice.sort_unstable_by(position_cmp);
        let limit = limit.map(|l| l.saturating_sub(self.base));
        let mut done = 0;
        let mut emitted = 0;
        while done < slice.len() {
            let len = group_len(&slice[done..]);
            let end = slice[done..done + len].iter().map(|p| p.end).max().unwrap_or(0);
            if limit.is_some_and(|l| u64::from(end) > l) {
                // Groups are in stream order: the later ones end later still.
                break;
            }
            emitted += emit_group(&mut slice[done..done + len], &self.params, self.base, emit);
            self.stats.groups += 1;
            done += len;
        }
        slice.copy_within(done.., 0);
        let remaining = slice.len() - done;
        self.store.truncate(remaining);
        self.stats.emitted += emitted as u64;
        emitted
    }
}

/// Stream order: start, then end, then the higher score first (a total order, so that
/// any arrival order gives the same groups and the same Soft-NMS input).
fn position_cmp(a: &Proposal, b: &Proposal) -> core::cmp::Ordering {
    a.start.cmp(&b.start).then(a.end.cmp(&b.end)).then(b.score.total_cmp(&a.score))
}

/// The length of the group at the front of `sorted` (sorted by [`position_cmp`]): the
/// proposals reached through overlaps.
fn group_len(sorted: &[Proposal]) -> usize {
    let mut reach = match sorted.first() {
        Some(p) => p.end,
        None => return 0,
    };
    let mut len = 1;
    for p in &sorted[1..] {
        if p.start >= reach {
            break;
        }
        reach = reach.max(p.end);
        len += 1;
    }
    len
}

/// Soft-NMS over one complete group (positions relative to `base`): coordinates relative
/// to the group's first snippet over `T`, at most `top_k` kept; emits those at least the
/// floor, best first. Returns how many were emitted.
fn emit_group(
    group: &mut [Proposal],
    params: &StreamParams,
    base: u64,
    emit: &mut impl FnMut(StreamProposal),
) -> usize {
    let first = group.iter().map(|p| p.start).min().unwrap_or(0);
    for p in group.iter_mut() {
        *p = Proposal::on_grid(p.start - first, p.end - first, params.tscale, params.convention, p.score);
    }
    let (kept, _) = soft_nms(group, &params.soft_nms(), Some(params.tscale));
    let origin = base + u64::from(first);
    let mut emitted = 0;
    for p in &group[..kept] {
        if !reaches(p.score, params.min_score) {
            // Kept proposals are best first.
            break;
        }
        emit(StreamProposal { start: origin + u64::from(p.start), end: origin + u64::from(p.end), score: p.score });
        emitted += 1;
    }
    emitted
}

/// The stream semantics over a whole recording at once (what `detect --merge stream`
/// runs): `proposals` are every window's accepted pairs in stream positions (`u32`
/// snippets; see [`StreamMerger`] for streams longer than that), any order; pairs below
/// the floor are dropped here. Emits what a [`StreamMerger`] fed the same windows emits
/// (when it never flushed), in the same order; returns how many.
///
/// Works in place (reorders `proposals`) without allocating.
pub fn merge_stream(proposals: &mut [Proposal], params: &StreamParams, mut emit: impl FnMut(StreamProposal)) -> usize {
    // Drop the pairs below the floor: move the others to the front.
    let mut kept = 0;
    for i in 0..proposals.len() {
        if reaches(proposals[i].score, params.min_score) {
            proposals.swap(kept, i);
            kept += 1;
        }
    }
    let all = &mut proposals[..kept];
    all.sort_unstable_by(position_cmp);
    // Connected components of the overlap graph, swept in stream order.
    let mut emitted = 0;
    let mut first = 0;
    while first < all.len() {
        let mut reach = all[first].end;
        let mut last = first + 1;
        while last < all.len() && all[last].start < reach {
            reach = reach.max(all[last].end);
            last += 1;
        }
        emitted += emit_group(&mut all[first..last], params, 0, &mut emit);
        first = last;
    }
    emitted
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::config::PostConfig;
    use crate::post::{postprocess_window, SliceStore, WindowMaps};
    use proptest::prelude::*;
    use std::{vec, vec::Vec};

    const BOTH: [Convention; 2] = [Convention::Mmaction2, Convention::Paddle];

    /// One window: its start, real snippets, frontier and pairs (window grid positions).
    #[derive(Debug, Clone)]
    struct Window {
        start: u64,
        valid: usize,
        frontier: u64,
        pairs: Vec<Proposal>,
    }

    /// The grid schedule of a stream of `len` snippets: windows at multiples of `hop` while
    /// complete, then one padded window at the next multiple if snippets remain uncovered
    /// (the schedule `WindowBuffer` follows with `finish_on_grid`, tested there).
    fn schedule(len: u64, t: u64, hop: u64) -> Vec<(u64, usize)> {
        let mut out = Vec::new();
        let mut w = 0;
        while w + t <= len {
            out.push((w, t as usize));
            w += hop;
        }
        let covered = out.last().map_or(0, |&(s, _)| s + t);
        if covered < len {
            out.push((w, (len - w) as usize));
        }
        out
    }

    /// Random pairs on a window of `t` with scores in eighths (ties) times `scale`.
    fn windows(len: u64, t: usize, d: usize, hop: u64, seed: u64, density: u64) -> Vec<Window> {
        let mut rng = seed | 1;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let sched = schedule(len, t as u64, hop);
        let last = sched.len() - 1;
        sched
            .into_iter()
            .enumerate()
            .map(|(i, (start, valid))| {
                let mut pairs = Vec::new();
                for dd in 0..d {
                    for s in 0..t - dd {
                        if next() % 100 < density {
                            let score = ((next() >> 40) % 8 + 1) as f64 / 8.0 * [1.0, 0.5, 0.25][(next() % 3) as usize];
                            pairs.push(Proposal::new(s as u32, (s + dd + 1) as u32, 0.0, 0.0, score));
                        }
                    }
                }
                let frontier = if i == last { u64::MAX } else { start + hop };
                Window { start, valid, frontier, pairs }
            })
            .collect()
    }

    fn incremental<S: ProposalStore>(
        params: StreamParams,
        store: S,
        ws: &[Window],
    ) -> (Vec<StreamProposal>, StreamStats, Vec<usize>) {
        let mut merger = StreamMerger::new(params, store);
        let mut out = Vec::new();
        let mut pending = Vec::new();
        for w in ws {
            merger.push_window(&w.pairs, w.start, w.valid, w.frontier, |p| out.push(p)).unwrap();
            pending.push(merger.pending());
        }
        merger.finish(|p| out.push(p));
        (out, merger.stats(), pending)
    }

    fn offline(params: StreamParams, ws: &[Window]) -> Vec<StreamProposal> {
        let mut all = Vec::new();
        for w in ws {
            for p in &w.pairs {
                // The padding rule, independently: mmaction2 pairs end at boundary `end`,
                // paddle's at snippet `end − 1`; kept when that snippet is real.
                let last = match params.convention() {
                    Convention::Mmaction2 => p.end as usize,
                    Convention::Paddle => p.end as usize - 1,
                };
                if last < w.valid {
                    all.push(Proposal::new(p.start + w.start as u32, p.end + w.start as u32, 0.0, 0.0, p.score));
                }
            }
        }
        let mut out = Vec::new();
        merge_stream(&mut all, &params, |p| out.push(p));
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

        /// The incremental merger emits exactly the offline merge's proposals, in the same
        /// order, whenever it did not flush; with a large store it never does.
        #[test]
        fn incremental_equals_offline(
            t in 2usize..20, dfrac in 1usize..=4, hop_frac in 1usize..=4, len in 1u64..120,
            seed in any::<u64>(), density in 1u64..40, floor in 0usize..3, top_k in prop::sample::select(vec![1usize, 2, 5, 100]),
            paddle in any::<bool>(),
        ) {
            let d = (t * dfrac / 4).max(1);
            let hop = ((t * hop_frac) / 4).max(1) as u64;
            let convention = if paddle { Convention::Paddle } else { Convention::Mmaction2 };
            let params = StreamParams::new(convention, t, [0.0, 0.1, 0.3][floor], top_k).unwrap();
            let ws = windows(len, t, d, hop, seed, density);
            let want = offline(params, &ws);
            let (got, stats, _) = incremental(params, Vec::new(), &ws);
            prop_assert_eq!(stats.flushes, 0);
            prop_assert_eq!(&got, &want);
            // A store of a few windows' pairs: equal unless it had to flush.
            let cap = (t * d * 2).max(1);
            let mut buf = vec![Proposal::default(); cap];
            let (got, stats, pending) = incremental(params, SliceStore::new(&mut buf), &ws);
            prop_assert!(pending.iter().all(|&n| n <= cap));
            if stats.flushes == 0 {
                prop_assert_eq!(&got, &want);
            }
        }

        /// Nothing is lost or duplicated, flushes or not: with no floor and no cap, every
        /// accepted pair is emitted exactly once (Soft-NMS only lowers scores).
        #[test]
        fn every_accepted_pair_is_emitted_once(
            t in 2usize..16, len in 1u64..150, seed in any::<u64>(), cap_windows in 1usize..4, hop in 1u64..16,
        ) {
            let hop = hop.min(t as u64);
            let params = StreamParams::new(Convention::Mmaction2, t, 0.0, u16::MAX as usize).unwrap();
            let ws = windows(len, t, t, hop, seed, 30);
            let mut buf = vec![Proposal::default(); t * t * cap_windows];
            let (got, stats, _) = incremental(params, SliceStore::new(&mut buf), &ws);
            let mut want: Vec<(u64, u64)> = Vec::new();
            for w in &ws {
                for p in &w.pairs {
                    if (p.end as usize) < w.valid {
                        want.push((w.start + p.start as u64, w.start + p.end as u64));
                    }
                }
            }
            let mut got_pos: Vec<(u64, u64)> = got.iter().map(|p| (p.start, p.end)).collect();
            want.sort_unstable();
            got_pos.sort_unstable();
            prop_assert_eq!(got_pos, want);
            prop_assert_eq!(stats.emitted as usize, got.len());
            prop_assert_eq!(stats.accepted, stats.emitted);
        }
    }

    #[test]
    // Minutes under Miri (the paper-sized or long loops); the smaller tests cover the same code.
    #[cfg_attr(miri, ignore)]
    fn pending_stays_bounded_on_a_long_stream() {
        // Sparse proposals: groups complete behind the frontier and are forgotten.
        let (t, hop) = (16, 8);
        let params = StreamParams::new(Convention::Mmaction2, t, 0.0, 100).unwrap();
        let ws = windows(20_000, t, 8, hop, 7, 3);
        let (got, stats, pending) = incremental(params, Vec::new(), &ws);
        assert_eq!(stats.flushes, 0);
        assert!(stats.groups > 100, "{stats:?}");
        let most = pending.iter().copied().max().unwrap();
        assert!(most < 4 * t * 8, "pending up to {most}");
        assert_eq!(got, offline(params, &ws));
    }

    #[test]
    fn one_window_is_the_window_post_processing() {
        // A stream of exactly T snippets is one window; with fewer than 100 pairs, no
        // floor and mmaction2's loop (which keeps all), the proposals are the window
        // post-processing's, as a set, with scores equal to float rounding: coordinates
        // relative to a group's start give IoUs that may differ in the last bit.
        let (t, d) = (16, 8);
        let cfg = PostConfig::new(t, d, Convention::Mmaction2).unwrap();
        let mut compared = 0;
        for seed in 1..30u64 {
            let mut rng = seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1;
            let mut next = || {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                ((rng >> 32) % 8 + 1) as f32 / 8.0
            };
            let start: Vec<f32> = (0..t).map(|_| next()).collect();
            let mut end: Vec<f32> = (0..t).map(|_| next()).collect();
            // No end candidate at the last snippet: no pair ends at boundary T.
            end[t - 1] = 0.0;
            let conf: Vec<f32> = (0..2 * d * t).map(|_| next()).collect();
            let maps = WindowMaps::new(&cfg, &start, &end, &conf).unwrap();
            let (mut s, mut e) = (vec![false; t], vec![false; t]);
            let mut want = vec![Proposal::default(); cfg.cells()];
            let summary = postprocess_window(&cfg, &maps, &mut s, &mut e, &mut want, 100).unwrap();
            if summary.pairs >= 100 {
                continue;
            }
            want.truncate(summary.output);
            let mut pairs = vec![Proposal::default(); cfg.cells()];
            let n = crate::post::pair_candidates(&cfg, &maps, &s, &e, &mut pairs).unwrap();
            // Pairs ending at boundary T are in no padding here: all T snippets are real,
            // but the stream semantics (as the video merge) keep a pair only when its end
            // boundary is a real snippet, so compare on those.
            let params = StreamParams::new(Convention::Mmaction2, t, 0.0, 100).unwrap();
            let ws = [Window { start: 0, valid: t, frontier: u64::MAX, pairs: pairs[..n].to_vec() }];
            let (got, _, _) = incremental(params, Vec::new(), &ws);
            let mut got: Vec<_> = got.iter().map(|p| (p.start, p.end, p.score)).collect();
            let inside: Vec<_> = want.iter().filter(|p| (p.end as usize) < t).collect();
            if inside.len() != want.len() {
                continue;
            }
            let mut want: Vec<_> = inside.iter().map(|p| (p.start as u64, p.end as u64, p.score)).collect();
            got.sort_by_key(|a| (a.0, a.1));
            want.sort_by_key(|a| (a.0, a.1));
            assert_eq!(got.len(), want.len(), "seed {seed}");
            for (g, w) in got.iter().zip(&want) {
                assert_eq!((g.0, g.1), (w.0, w.1), "seed {seed}");
                // Each decay is exp(−IoU²/α) with IoU off by at most a few ulps: a relative
                // error of ~1e-15 per decay, far below 1e-12.
                assert!((g.2 - w.2).abs() <= 1e-12 * w.2.max(1e-300), "seed {seed}: {} vs {}", g.2, w.2);
            }
            compared += got.len();
        }
        assert!(compared > 100, "{compared}");
    }

    #[test]
    fn groups_split_at_gaps_and_are_capped_separately() {
        for convention in BOTH {
            let params = StreamParams::new(convention, 10, 0.0, 1).unwrap();
            // Two overlapping proposals at [0, 4) and [1, 5); one alone at [5, 8) (touching
            // [1, 5) does not overlap); top 1 per group.
            let pairs = [(0, 4, 0.5), (1, 5, 0.75), (5, 8, 0.25)].map(|(s, e, x)| Proposal::new(s, e, 0.0, 0.0, x));
            let mut out = Vec::new();
            let mut merger = StreamMerger::new(params, heapless::Vec::<Proposal, 8>::new());
            // valid 10: every pair's last snippet is real (paddle: end − 1 < 10 too).
            let r = merger.push_window(&pairs, 100, 10, 105, |p| out.push(p)).unwrap();
            // [100, 104) and [101, 105) end at or before the frontier 105: emitted; [105, 108) waits.
            assert_eq!((r.accepted, r.emitted, merger.pending()), (3, 1, 1));
            let pending: Vec<_> = merger.pending_proposals().collect();
            assert_eq!(pending, [StreamProposal { start: 105, end: 108, score: 0.25 }]);
            assert_eq!(out, [StreamProposal { start: 101, end: 105, score: 0.75 }]);
            assert_eq!(merger.finish(|p| out.push(p)), 1);
            assert_eq!(out[1], StreamProposal { start: 105, end: 108, score: 0.25 });
        }
    }

    #[test]
    fn the_floor_drops_pairs_and_decayed_proposals() {
        let params = StreamParams::new(Convention::Mmaction2, 10, 0.3, 100).unwrap();
        // Identical positions: the second decays by exp(−1/0.4) ≈ 0.082 → 0.5·0.082 < 0.3.
        let pairs = [(0, 4, 0.9), (0, 4, 0.5), (6, 8, 0.2)].map(|(s, e, x)| Proposal::new(s, e, 0.0, 0.0, x));
        let mut out = Vec::new();
        let mut merger = StreamMerger::new(params, Vec::new());
        merger.push_window(&pairs, 0, 10, u64::MAX, |p| out.push(p)).unwrap();
        assert_eq!(out, [StreamProposal { start: 0, end: 4, score: 0.9 }]);
        let s = merger.stats();
        assert_eq!((s.accepted, s.below_floor, s.emitted, s.groups), (2, 1, 1, 1));
    }

    #[test]
    fn a_full_store_flushes_and_loses_nothing() {
        let params = StreamParams::new(Convention::Mmaction2, 10, 0.0, 100).unwrap();
        let long = |s| Proposal::new(s, s + 8, 0.0, 0.0, 0.5);
        let mut buf = [Proposal::default(); 3];
        let mut merger = StreamMerger::new(params, SliceStore::new(&mut buf));
        let mut out = Vec::new();
        // Windows at 0, 5, 10 each add two long overlapping pairs: one endless group.
        let r0 = merger.push_window(&[long(0), long(1)], 0, 10, 5, |p| out.push(p)).unwrap();
        assert_eq!((r0.emitted, r0.flushed), (0, false));
        let r1 = merger.push_window(&[long(0), long(1)], 5, 10, 10, |p| out.push(p)).unwrap();
        assert_eq!((r1.emitted, r1.flushed), (2, true));
        assert_eq!(merger.pending(), 2);
        // A window with more accepted pairs than the store holds is an error; nothing changes.
        let e = merger.push_window(&[long(0), long(0), long(0), long(0)], 10, 10, 15, |p| out.push(p)).unwrap_err();
        assert_eq!(e.kind(), crate::post::PostErrorKind::Capacity);
        assert_eq!((merger.pending(), out.len()), (2, 2));
        merger.finish(|p| out.push(p));
        assert_eq!(out.len(), 4);
        assert_eq!(merger.stats().flushes, 1);
    }

    #[test]
    fn window_order_and_ranges_are_checked() {
        let params = StreamParams::new(Convention::Mmaction2, 10, 0.0, 100).unwrap();
        let mut merger = StreamMerger::new(params, Vec::new());
        merger.push_window(&[], 0, 10, 5, |_| ()).unwrap();
        let kind = |r: Result<WindowReport, PostError>| r.unwrap_err().kind();
        use crate::post::PostErrorKind::Range;
        assert_eq!(kind(merger.push_window(&[], 4, 10, 9, |_| ())), Range);
        assert_eq!(kind(merger.push_window(&[], 6, 10, 5, |_| ())), Range);
        assert_eq!(kind(merger.push_window(&[], 6, 0, 11, |_| ())), Range);
        assert_eq!(kind(merger.push_window(&[], 6, 11, 11, |_| ())), Range);
        assert!(merger.push_window(&[], 5, 10, 10, |_| ()).is_ok());
        assert!(StreamParams::new(Convention::Mmaction2, 0, 0.0, 1).is_err());
        assert!(StreamParams::new(Convention::Mmaction2, 10, f64::NAN, 1).is_err());
        assert!(StreamParams::new(Convention::Mmaction2, 10, 0.0, 0).is_err());
    }

    #[test]
    fn positions_past_u32_are_rebased() {
        // A stream 2^40 snippets in: stored positions stay u32, emitted ones are exact.
        let params = StreamParams::new(Convention::Mmaction2, 10, 0.0, 100).unwrap();
        let mut merger = StreamMerger::new(params, Vec::new());
        let mut out = Vec::new();
        let far = 1u64 << 40;
        let pairs = [Proposal::new(2, 6, 0.0, 0.0, 0.5), Proposal::new(7, 9, 0.0, 0.0, 0.25)];
        merger.push_window(&pairs, far, 10, far + 5, |p| out.push(p)).unwrap();
        merger.push_window(&pairs, far + 5, 10, u64::MAX, |p| out.push(p)).unwrap();
        merger.finish(|p| out.push(p));
        let pos: Vec<_> = out.iter().map(|p| (p.start - far, p.end - far)).collect();
        assert_eq!(pos, [(2, 6), (7, 11), (7, 9), (12, 14)]);
    }
}

//! Windows to video (reference §6): one window's candidate pairs at a time are mapped to
//! video time and collected; one Soft-NMS then runs over the whole video's set.
//!
//! A long video is cut into windows of `T` snippets (overlapping, e.g. hop `T/2`; a video
//! shorter than `T` is one edge-padded window). For each window, the caller runs candidate
//! selection and pairing ([`select_candidates`](super::select_candidates),
//! [`pair_candidates`](super::pair_candidates)) — no per-window Soft-NMS — and hands the
//! pairs to [`VideoMerger::push_window`] with the window's first snippet in the video and
//! its count of real (not padded) snippets. The merger
//!
//! * drops the pairs whose last boundary snippet lies in the padding: the end boundary
//!   index is `e = end` for mmaction2 (its pairs end at boundary `s + d + 1`) and
//!   `e = end − 1` for paddle (its pairs end at snippet `s + d`); kept when `e < valid`;
//! * maps the rest to video grid positions `w0 + start`, `w0 + end` and normalises them by
//!   the video's length `L` with the convention's expression ([`Proposal::on_grid`]:
//!   mmaction2 `p / L`, paddle `(1/L)·p`);
//! * appends them to a [`ProposalStore`] — caller-provided storage: a [`SliceStore`] over a
//!   `&mut [Proposal]`, a `heapless::Vec` with a const capacity, or (with `std`) a growing
//!   `Vec`. A full store is [`PostError::Capacity`] carrying the proposal that did not fit;
//!   what is already stored stays.
//!
//! [`VideoMerger::finish`] then runs the single Soft-NMS over the merged set and keeps the
//! top `k` (the video's, not each window's: the references report 100 proposals per video).
//!
//! ## Why normalise by `L`
//!
//! Soft-NMS's IoU does not depend on the unit, but its width-adaptive threshold
//! `t1 + (t2 − t1)·width` does: `width` is a fraction of the unit. Normalising by the
//! video's length treats the video as one grid of `L` positions exactly as a window is a
//! grid of `T`, so `width` is a fraction of the video (as in the whole-video rescale
//! setting), results convert to seconds as `x·duration`, and a video of exactly `T`
//! snippets gives exactly the window's own post-processing result (same positions, same
//! float64 expressions, same decisions). The threshold test runs on these float64
//! coordinates (`grid = None`): the convention's own expression, whatever `L` is (the
//! integer fast path of [`soft_nms`](fn@super::soft_nms) needs a grid of at most 4096).
//! As in window post-processing, a single proposal is kept without Soft-NMS (paddle's loop
//! never keeps the last remaining one).
//!
//! ## Streaming
//!
//! `L` is known only once the video has ended, so this offline merge keeps every window's
//! proposals until [`finish`](VideoMerger::finish). When the windows must run before `L`
//! is known (frames arriving through a backbone, each window run as soon as its snippets
//! exist), an [`OpenVideoMerger`] takes them and becomes a [`VideoMerger`] once the video
//! has ended ([`OpenVideoMerger::with_len`]): the grid positions are kept and normalised
//! then, with the same expression on the same integers — the same bits as a merger that
//! knew `L` from the start. A live stream uses the stream semantics
//! of [`super::stream`] instead: widths normalised by `T`, Soft-NMS per group of
//! overlapping proposals, emitted as soon as no later window can reach them.

use super::{soft_nms, PostError, Proposal, SoftNmsParams};
use crate::config::Convention;

/// Append-only storage for merged proposals, possibly bounded.
pub trait ProposalStore {
    /// Appends `p`, or hands it back when the store is full.
    fn try_push(&mut self, p: Proposal) -> Result<(), Proposal>;
    /// The stored proposals, in the order stored (until Soft-NMS reorders them).
    fn as_slice(&self) -> &[Proposal];
    /// The stored proposals, mutably (Soft-NMS works in place).
    fn as_mut_slice(&mut self) -> &mut [Proposal];
    /// Keeps the first `len` proposals (no effect when fewer are stored).
    fn truncate(&mut self, len: usize);
    /// The most proposals the store can hold (`usize::MAX` for one that grows).
    fn capacity(&self) -> usize;
}

/// A [`ProposalStore`] over a caller's slice: at most `buf.len()` proposals, no allocation.
#[derive(Debug)]
pub struct SliceStore<'a> {
    buf: &'a mut [Proposal],
    len: usize,
}

impl<'a> SliceStore<'a> {
    /// An empty store using `buf` (its contents are overwritten).
    pub fn new(buf: &'a mut [Proposal]) -> Self {
        SliceStore { buf, len: 0 }
    }

    /// Number of stored proposals.
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether nothing is stored.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl ProposalStore for SliceStore<'_> {
    fn try_push(&mut self, p: Proposal) -> Result<(), Proposal> {
        match self.buf.get_mut(self.len) {
            Some(slot) => {
                *slot = p;
                self.len += 1;
                Ok(())
            }
            None => Err(p),
        }
    }
    fn as_slice(&self) -> &[Proposal] {
        &self.buf[..self.len]
    }
    fn as_mut_slice(&mut self) -> &mut [Proposal] {
        &mut self.buf[..self.len]
    }
    fn truncate(&mut self, len: usize) {
        self.len = self.len.min(len);
    }
    fn capacity(&self) -> usize {
        self.buf.len()
    }
}

impl<const N: usize> ProposalStore for heapless::Vec<Proposal, N> {
    fn try_push(&mut self, p: Proposal) -> Result<(), Proposal> {
        self.push(p)
    }
    fn as_slice(&self) -> &[Proposal] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [Proposal] {
        self
    }
    fn truncate(&mut self, len: usize) {
        heapless::Vec::truncate(self, len);
    }
    fn capacity(&self) -> usize {
        N
    }
}

/// A growing store (std only, and the core's tests): never full.
#[cfg(any(feature = "std", test))]
impl ProposalStore for std::vec::Vec<Proposal> {
    fn try_push(&mut self, p: Proposal) -> Result<(), Proposal> {
        self.push(p);
        Ok(())
    }
    fn as_slice(&self) -> &[Proposal] {
        self
    }
    fn as_mut_slice(&mut self) -> &mut [Proposal] {
        self
    }
    fn truncate(&mut self, len: usize) {
        std::vec::Vec::truncate(self, len);
    }
    fn capacity(&self) -> usize {
        usize::MAX
    }
}

/// A store lent to a merger (e.g. a `static` buffer on a microcontroller).
impl<S: ProposalStore + ?Sized> ProposalStore for &mut S {
    fn try_push(&mut self, p: Proposal) -> Result<(), Proposal> {
        (**self).try_push(p)
    }
    fn as_slice(&self) -> &[Proposal] {
        (**self).as_slice()
    }
    fn as_mut_slice(&mut self) -> &mut [Proposal] {
        (**self).as_mut_slice()
    }
    fn truncate(&mut self, len: usize) {
        (**self).truncate(len)
    }
    fn capacity(&self) -> usize {
        (**self).capacity()
    }
}

/// Merges one video's windows: [`push_window`](Self::push_window) per window, then
/// [`finish`](Self::finish). See the [module docs](self).
#[derive(Debug)]
pub struct VideoMerger<S> {
    store: S,
    convention: Convention,
    video_len: u32,
    windows: usize,
    dropped: usize,
}

impl<S: ProposalStore> VideoMerger<S> {
    /// A merger for a video of `video_len` snippets (`1..=u32::MAX`: grid positions are
    /// `u32`) under `convention`, collecting into `store`, which is emptied first.
    pub fn new(convention: Convention, video_len: u64, mut store: S) -> Result<Self, PostError> {
        let video_len = check_len(video_len)?;
        store.truncate(0);
        Ok(VideoMerger { store, convention, video_len, windows: 0, dropped: 0 })
    }

    /// Adds one window's candidate pairs (window grid positions, as
    /// [`pair_candidates`](super::pair_candidates) writes them). `window_start` is the
    /// window's first snippet in the video and `valid` its number of real snippets (the
    /// rest is padding); `window_start + valid` must not exceed the video's length.
    ///
    /// Pairs whose last boundary snippet is in the padding are dropped (so are empty ones,
    /// which pairing never produces); the others are mapped and appended. Returns how many
    /// were appended. A full store is [`PostError::Capacity`] with the first mapped
    /// proposal that did not fit; the proposals stored before it, this window's included,
    /// stay stored.
    pub fn push_window(&mut self, pairs: &[Proposal], window_start: u64, valid: usize) -> Result<usize, PostError> {
        let video_len = u64::from(self.video_len);
        let window_end = window_start.saturating_add(valid as u64);
        if window_end > video_len {
            return Err(PostError::OutOfRange {
                what: "window end (first snippet + real snippets)",
                value: window_end,
                min: 0,
                max: video_len,
            });
        }
        self.windows += 1;
        let mut appended = 0;
        for p in pairs {
            let (start, end) = (u64::from(p.start), u64::from(p.end));
            // The last boundary snippet: mmaction2's end boundary e = end; paddle's end
            // snippet e = end − 1. Kept when e < valid.
            let inside = match self.convention {
                Convention::Mmaction2 => end < valid as u64,
                Convention::Paddle => end <= valid as u64,
            };
            if start >= end || !inside {
                self.dropped += 1;
                continue;
            }
            // end ≤ valid, so both positions are ≤ window_end ≤ video_len ≤ u32::MAX.
            let (s, e) = ((window_start + start) as u32, (window_start + end) as u32);
            let q = Proposal::on_grid(s, e, self.video_len, self.convention, p.score);
            self.store
                .try_push(q)
                .map_err(|rejected| PostError::Capacity { rejected, capacity: self.store.capacity() })?;
            appended += 1;
        }
        Ok(appended)
    }

    /// The merged proposals so far (video positions, normalised by `L`), in arrival order.
    pub fn proposals(&self) -> &[Proposal] {
        self.store.as_slice()
    }

    /// Windows pushed so far.
    pub fn windows(&self) -> usize {
        self.windows
    }

    /// Pairs dropped so far because they ended in a window's padding.
    pub fn dropped(&self) -> usize {
        self.dropped
    }

    /// The video's length `L` in snippets.
    pub fn video_len(&self) -> u32 {
        self.video_len
    }

    /// Runs the video's Soft-NMS over everything merged (not when there is a single
    /// proposal: it is kept as it is) and keeps the best `top_k` of the kept proposals
    /// (Soft-NMS keeps at most [`SoftNmsParams::max_kept`], 101). Returns the store holding
    /// them, best first ([`Proposal::rank_cmp`]).
    pub fn finish(mut self, top_k: usize) -> S {
        let params = SoftNmsParams::for_convention(self.convention);
        let n = self.store.as_slice().len();
        let kept = if n > 1 { soft_nms(self.store.as_mut_slice(), &params, None).0 } else { n };
        self.store.truncate(kept.min(top_k));
        self.store
    }
}

/// A [`VideoMerger`] for a video whose length is not known yet: windows are pushed as they
/// run, and [`with_len`](Self::with_len) gives `L` once the video has ended. Until then the
/// proposals' bounds are provisional (normalised by `u32::MAX`); their grid positions and
/// scores are final.
#[derive(Debug)]
pub struct OpenVideoMerger<S> {
    inner: VideoMerger<S>,
    /// The largest window end (first snippet + real snippets) pushed.
    reach: u64,
}

impl<S: ProposalStore> OpenVideoMerger<S> {
    /// An open-ended merger under `convention`, collecting into `store` (emptied first).
    pub fn new(convention: Convention, mut store: S) -> Self {
        store.truncate(0);
        let inner = VideoMerger { store, convention, video_len: u32::MAX, windows: 0, dropped: 0 };
        OpenVideoMerger { inner, reach: 0 }
    }

    /// [`VideoMerger::push_window`], for any window end up to `u32::MAX`.
    pub fn push_window(&mut self, pairs: &[Proposal], window_start: u64, valid: usize) -> Result<usize, PostError> {
        let n = self.inner.push_window(pairs, window_start, valid)?;
        self.reach = self.reach.max(window_start.saturating_add(valid as u64));
        Ok(n)
    }

    /// Windows pushed so far.
    pub fn windows(&self) -> usize {
        self.inner.windows
    }

    /// The video has `video_len` snippets: every proposal normalised by it (as
    /// [`VideoMerger::push_window`] would have), and the merger to finish. A length outside
    /// `1..=u32::MAX`, or below a pushed window's end, is [`PostError::OutOfRange`].
    pub fn with_len(self, video_len: u64) -> Result<VideoMerger<S>, PostError> {
        let l = check_len(video_len)?;
        if self.reach > video_len {
            return Err(PostError::OutOfRange {
                what: "video length below a pushed window's end",
                value: video_len,
                min: self.reach,
                max: u32::MAX as u64,
            });
        }
        let mut inner = self.inner;
        inner.video_len = l;
        let convention = inner.convention;
        for p in inner.store.as_mut_slice() {
            *p = Proposal::on_grid(p.start, p.end, l, convention, p.score);
        }
        Ok(inner)
    }
}

/// `L` checked to be in `1..=u32::MAX` (grid positions are `u32`).
fn check_len(video_len: u64) -> Result<u32, PostError> {
    match u32::try_from(video_len) {
        Ok(l) if l >= 1 => Ok(l),
        _ => Err(PostError::OutOfRange {
            what: "video length in snippets",
            value: video_len,
            min: 1,
            max: u32::MAX as u64,
        }),
    }
}

#[cfg(test)]
mod tests {
    extern crate std;
    use super::*;
    use crate::config::PostConfig;
    use crate::post::{pair_candidates, postprocess_window, select_candidates, Boundary, PostErrorKind, WindowMaps};
    use std::{vec, vec::Vec};

    /// Room for every pair of the test windows (T·D ≤ 256), inline.
    type Store = heapless::Vec<Proposal, 256>;

    const BOTH: [Convention; 2] = [Convention::Mmaction2, Convention::Paddle];

    /// xorshift64: deterministic test data without a dependency.
    struct Rng(u64);
    impl Rng {
        /// A value in {1/8, 2/8, …, 1}: coarse, so equal scores and exact IoU ties occur.
        fn eighth(&mut self) -> f32 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            ((self.0 >> 32) % 8 + 1) as f32 / 8.0
        }
    }

    fn cfg(t: usize, d: usize, convention: Convention) -> PostConfig {
        PostConfig::new(t, d, convention).unwrap()
    }

    /// One window's candidate pairs from random maps (candidates + pairing, no Soft-NMS).
    fn window_pairs(cfg: &PostConfig, maps: &WindowMaps<'_>) -> Vec<Proposal> {
        let t = cfg.tscale();
        let (mut s, mut e) = (vec![false; t], vec![false; t]);
        select_candidates(maps.start(), cfg.convention(), Boundary::Start, &mut s).unwrap();
        select_candidates(maps.end(), cfg.convention(), Boundary::End, &mut e).unwrap();
        let mut pairs = vec![Proposal::default(); cfg.cells()];
        let n = pair_candidates(cfg, maps, &s, &e, &mut pairs).unwrap();
        pairs.truncate(n);
        pairs
    }

    #[test]
    fn a_video_of_t_snippets_is_the_window_result() {
        // The window path decides Soft-NMS thresholds in integers on the window grid; the
        // merge maps to the video grid and decides in float64. They must agree bit for bit.
        let (t, d) = (16, 12);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
        let (mut compared, mut ties) = (0, 0);
        for convention in BOTH {
            let cfg = cfg(t, d, convention);
            for round in 0..40 {
                let start: Vec<f32> = (0..t).map(|_| rng.eighth()).collect();
                let end: Vec<f32> = (0..t).map(|_| rng.eighth()).collect();
                let conf: Vec<f32> = (0..2 * d * t).map(|_| rng.eighth()).collect();
                let maps = WindowMaps::new(&cfg, &start, &end, &conf).unwrap();
                let top_k = if round % 2 == 0 { 100 } else { 5 };
                let (mut s, mut e) = (vec![false; t], vec![false; t]);
                let mut want = vec![Proposal::default(); cfg.cells()];
                let summary = postprocess_window(&cfg, &maps, &mut s, &mut e, &mut want, top_k).unwrap();
                want.truncate(summary.output);
                ties += summary.soft_nms.exact_ties;

                let mut merger = VideoMerger::new(convention, t as u64, Store::new()).unwrap();
                merger.push_window(&window_pairs(&cfg, &maps), 0, t).unwrap();
                let got = merger.finish(top_k);
                assert_eq!(got.as_slice(), &want[..], "{convention:?} round {round}");
                compared += got.len();
            }
        }
        // Enough proposals, and threshold tests that were exact ties on the window grid.
        assert!(compared > 200 && ties > 20, "{compared} proposals, {ties} ties");
    }

    #[test]
    fn an_open_merger_given_its_length_equals_one_that_knew_it() {
        // Several overlapping windows of a 40-snippet video, the last one aligned to the
        // end: pushed into a merger that knows L and into an open one given L afterwards,
        // the finished proposals are the same bits.
        let (t, d, l) = (16, 12, 40u64);
        let mut rng = Rng(0x2545_f491_4f6c_dd1d);
        for convention in BOTH {
            let cfg = cfg(t, d, convention);
            for round in 0..10 {
                let mut known = VideoMerger::new(convention, l, Vec::new()).unwrap();
                let mut open = OpenVideoMerger::new(convention, Vec::new());
                for w0 in [0u64, 8, 16, 24] {
                    let start: Vec<f32> = (0..t).map(|_| rng.eighth()).collect();
                    let end: Vec<f32> = (0..t).map(|_| rng.eighth()).collect();
                    let conf: Vec<f32> = (0..2 * d * t).map(|_| rng.eighth()).collect();
                    let maps = WindowMaps::new(&cfg, &start, &end, &conf).unwrap();
                    let pairs = window_pairs(&cfg, &maps);
                    assert_eq!(known.push_window(&pairs, w0, t).unwrap(), open.push_window(&pairs, w0, t).unwrap());
                }
                assert_eq!(open.windows(), 4);
                let opened = open.with_len(l).unwrap();
                assert_eq!(opened.proposals(), known.proposals(), "{convention:?} round {round}: before Soft-NMS");
                assert_eq!(opened.finish(100), known.finish(100), "{convention:?} round {round}");
            }
        }
        // A length below a pushed window's end, or none at all, is refused.
        let mut open = OpenVideoMerger::new(Convention::Mmaction2, Vec::new());
        open.push_window(&[], 20, 16).unwrap();
        let e = open.with_len(35).unwrap_err();
        assert!(matches!(e, PostError::OutOfRange { value: 35, min: 36, .. }), "{e:?}");
        assert!(OpenVideoMerger::new(Convention::Paddle, Vec::new()).with_len(0).is_err());
    }

    #[test]
    fn pairs_ending_in_the_padding_are_dropped() {
        // Every flag on: every valid cell (s, d) is a pair. mmaction2's pair ends at boundary
        // s + d + 1, paddle's at snippet s + d; a pair stays when that snippet is real.
        let (t, d) = (16, 10);
        let conf = vec![0.5f32; 2 * d * t];
        let flags = vec![true; t];
        for convention in BOTH {
            let cfg = cfg(t, d, convention);
            let ones = vec![1.0f32; t];
            let maps = WindowMaps::new(&cfg, &ones, &ones, &conf).unwrap();
            let mut pairs = vec![Proposal::default(); cfg.cells()];
            let n = pair_candidates(&cfg, &maps, &flags, &flags, &mut pairs).unwrap();
            for valid in [1, 5, 9, 15, 16] {
                let mut want = Vec::new();
                for dd in 0..d {
                    for s in 0..t {
                        let last = match convention {
                            Convention::Mmaction2 => s + dd + 1,
                            Convention::Paddle => s + dd,
                        };
                        if last < valid {
                            want.push((s as u32, (s + dd + 1) as u32));
                        }
                    }
                }
                let mut merger = VideoMerger::new(convention, 100, Store::new()).unwrap();
                let appended = merger.push_window(&pairs[..n], 0, valid).unwrap();
                let got: Vec<_> = merger.proposals().iter().map(|p| (p.start, p.end)).collect();
                assert_eq!(got, want, "{convention:?} valid {valid}");
                assert_eq!((appended, merger.dropped()), (want.len(), n - want.len()));
            }
        }
    }

    #[test]
    fn positions_are_offset_and_normalised_by_the_video_length() {
        // L = 40, window at 16 of T = 16: window pair [7, 12) -> video [23, 28). For both 23
        // and 28, 23/40 != (1/40)·23 in float64, so the two conventions' expressions differ.
        assert_ne!(23.0 / 40.0, (1.0 / 40.0) * 23.0);
        assert_ne!(28.0 / 40.0, (1.0 / 40.0) * 28.0);
        for convention in BOTH {
            let pair = Proposal::on_grid(7, 12, 16, convention, 0.375);
            let mut merger = VideoMerger::new(convention, 40, Store::new()).unwrap();
            assert_eq!(merger.push_window(&[pair], 16, 16), Ok(1));
            let q = merger.proposals()[0];
            let (xmin, xmax) = match convention {
                Convention::Mmaction2 => (23.0 / 40.0, 28.0 / 40.0),
                Convention::Paddle => ((1.0 / 40.0) * 23.0, (1.0 / 40.0) * 28.0),
            };
            assert_eq!((q.start, q.end, q.xmin, q.xmax, q.score), (23, 28, xmin, xmax, 0.375), "{convention:?}");
        }
    }

    #[test]
    fn bad_lengths_are_errors() {
        let store = Store::new;
        for len in [0, 1 << 32] {
            let e = VideoMerger::new(Convention::Mmaction2, len, store()).unwrap_err();
            assert_eq!(e.kind(), PostErrorKind::Range);
        }
        let mut merger = VideoMerger::new(Convention::Mmaction2, 40, store()).unwrap();
        assert!(merger.push_window(&[], 24, 16).is_ok());
        let e = merger.push_window(&[], 25, 16).unwrap_err();
        assert_eq!(e, PostError::OutOfRange { what: e_what(&e), value: 41, min: 0, max: 40 });
        assert_eq!(merger.push_window(&[], u64::MAX, 2).unwrap_err().kind(), PostErrorKind::Range);
        // Empty or reversed pairs (pairing makes none) are not proposals: dropped, counted.
        let odd = [Proposal::new(5, 5, 0.0, 0.0, 0.5), Proposal::new(u32::MAX, 4, 0.0, 0.0, 0.5)];
        assert_eq!(merger.push_window(&odd, 24, 16), Ok(0));
        assert_eq!((merger.windows(), merger.dropped(), merger.proposals().len()), (2, 2, 0));
    }

    fn e_what(e: &PostError) -> &'static str {
        match e {
            PostError::OutOfRange { what, .. } => what,
            _ => "",
        }
    }

    /// Five pairs on a window of 16, all inside the real snippets.
    fn five(convention: Convention) -> [Proposal; 5] {
        [(0, 4, 0.9), (2, 6, 0.8), (5, 9, 0.7), (8, 12, 0.6), (1, 3, 0.5)]
            .map(|(s, e, score)| Proposal::on_grid(s, e, 16, convention, score))
    }

    #[test]
    fn a_full_store_keeps_what_it_has() {
        for convention in BOTH {
            let mapped = |p: &Proposal| Proposal::on_grid(p.start + 10, p.end + 10, 50, convention, p.score);
            let pairs = five(convention);
            let mut buf = [Proposal::default(); 3];
            let mut merger = VideoMerger::new(convention, 50, SliceStore::new(&mut buf)).unwrap();
            let e = merger.push_window(&pairs, 10, 16).unwrap_err();
            assert_eq!(e, PostError::Capacity { rejected: mapped(&pairs[3]), capacity: 3 });
            let want: Vec<_> = pairs[..3].iter().map(mapped).collect();
            assert_eq!(merger.proposals(), &want[..]);
            // A later window does not fit either, and loses nothing already stored.
            let e = merger.push_window(&pairs[4..], 10, 16).unwrap_err();
            assert_eq!(e, PostError::Capacity { rejected: mapped(&pairs[4]), capacity: 3 });
            assert_eq!(merger.proposals(), &want[..]);
            // The stored three go through Soft-NMS (paddle's loop never keeps the last one).
            let kept = match convention {
                Convention::Mmaction2 => 3,
                Convention::Paddle => 2,
            };
            assert_eq!(merger.finish(100).len(), kept);

            // The same with a const-capacity heapless vector.
            let mut merger = VideoMerger::new(convention, 50, heapless::Vec::<Proposal, 2>::new()).unwrap();
            let e = merger.push_window(&pairs, 10, 16).unwrap_err();
            assert_eq!(e, PostError::Capacity { rejected: mapped(&pairs[2]), capacity: 2 });
            assert_eq!(merger.proposals(), &want[..2]);
        }
    }

    #[test]
    fn finish_keeps_a_single_proposal_and_cuts_to_top_k() {
        let params = SoftNmsParams::for_convention(Convention::Paddle);
        let one = [Proposal::on_grid(3, 7, 16, Convention::Paddle, 0.5)];
        // Paddle's Soft-NMS loop alone would keep nothing of a single proposal.
        assert_eq!(soft_nms(&mut one.clone(), &params, None).0, 0);
        for convention in BOTH {
            let one = [Proposal::on_grid(3, 7, 16, convention, 0.5)];
            let mut merger = VideoMerger::new(convention, 16, Store::new()).unwrap();
            merger.push_window(&one, 0, 16).unwrap();
            assert_eq!(merger.finish(100).as_slice(), &one[..]);
            let merger = VideoMerger::new(convention, 16, Store::new()).unwrap();
            assert!(merger.finish(100).is_empty());

            // Disjoint proposals: IoU 0, no decay; the top 3 scores, best first.
            let disjoint = [(0, 2, 0.2), (2, 4, 0.7), (4, 6, 0.4), (6, 8, 0.9), (8, 10, 0.1), (10, 12, 0.6)]
                .map(|(s, e, score)| Proposal::on_grid(s, e, 16, convention, score));
            let mut merger = VideoMerger::new(convention, 16, Store::new()).unwrap();
            merger.push_window(&disjoint, 0, 16).unwrap();
            let got: Vec<_> = merger.finish(3).iter().map(|p| (p.start, p.score)).collect();
            assert_eq!(got, [(6, 0.9), (2, 0.7), (10, 0.6)], "{convention:?}");
        }
    }

    #[test]
    fn one_segment_seen_by_two_windows_is_suppressed_once() {
        // Windows at 0 and 8 (T = 16, L = 24) both see video snippets [8, 12): as [8, 12) in
        // the first, [0, 4) in the second. After the merge they coincide (IoU 1 > any
        // threshold): the weaker copy decays by exp(−1/α), α = 0.4.
        let convention = Convention::Mmaction2;
        let a = Proposal::on_grid(8, 12, 16, convention, 0.5);
        let b = Proposal::on_grid(0, 4, 16, convention, 0.25);
        let mut merger = VideoMerger::new(convention, 24, Store::new()).unwrap();
        merger.push_window(&[a], 0, 16).unwrap();
        merger.push_window(&[b], 8, 16).unwrap();
        let got = merger.finish(100);
        assert_eq!(got.iter().map(|p| (p.start, p.end)).collect::<Vec<_>>(), [(8, 12), (8, 12)]);
        assert_eq!(got[0].score, 0.5);
        let want = 0.25 * (-1.0f64 / 0.4).exp();
        // libm's exp may differ from the platform's in the last bit.
        assert!((got[1].score - want).abs() <= 2.0 * f64::EPSILON * want, "{} vs {want}", got[1].score);
    }
}

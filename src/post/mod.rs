//! Post-processing of one window (reference §3): boundary candidates → pairing with the
//! confidence map → Soft-NMS → top-k proposals; and of a video cut into windows
//! ([`merge`], reference §6): each window's pairs mapped to video time, one Soft-NMS over the
//! video. No allocation: buffers are slices or const generics ([`WindowPostProcessor`],
//! [`SliceStore`]); a full buffer is a [`PostError::Capacity`] carrying the proposal that did
//! not fit.
//!
//! Every decision equals the float reference's: candidates compare the f32 outputs through
//! an order-preserving integer encoding ([`encode`]), pairing works on snippet indices, and
//! the Soft-NMS threshold test runs on snippet-unit integers with the reference's float64
//! expression at exact ties ([`soft_nms`](fn@soft_nms)).

pub mod candidates;
pub mod encode;
pub mod merge;
pub mod pairing;
pub mod soft_nms;
pub mod stream;

use crate::config::PostConfig;
use core::fmt;

pub use candidates::{select_candidates, Boundary};
pub use merge::{OpenVideoMerger, ProposalStore, SliceStore, VideoMerger};
pub use pairing::pair_candidates;
pub use soft_nms::{soft_nms, SoftNmsParams, SoftNmsStats};
pub use stream::{merge_stream, StreamMerger, StreamParams, StreamProposal, StreamStats, WindowReport};

/// Number of proposals a window (and a video) reports by default.
pub const DEFAULT_TOP_K: usize = 100;

/// A scored temporal proposal.
///
/// `start` and `end` are grid positions (snippets) with the segment `[start/T, end/T]` in
/// exact arithmetic (`end` exclusive: a proposal of snippets `s..=e` has `end = e + 1`);
/// `xmin`/`xmax` are the float64 values the convention computes from them (mmaction2 `s/T`,
/// paddle `(1.0/T)·s`), which Soft-NMS uses exactly as the reference does.
#[derive(Debug, Clone, Copy, Default)]
pub struct Proposal {
    /// Start grid position.
    pub start: u32,
    /// End grid position (exclusive).
    pub end: u32,
    /// Normalised start time as the convention computes it.
    pub xmin: f64,
    /// Normalised end time as the convention computes it.
    pub xmax: f64,
    /// Score: the four-factor product in f32, carried in f64 through Soft-NMS decays.
    pub score: f64,
    /// Soft-NMS bookkeeping: how many kept proposals' decays `score` already includes.
    seen: u16,
}

/// Equality of the public fields (Soft-NMS bookkeeping is ignored).
impl PartialEq for Proposal {
    fn eq(&self, o: &Self) -> bool {
        (self.start, self.end, self.xmin, self.xmax, self.score) == (o.start, o.end, o.xmin, o.xmax, o.score)
    }
}

impl Proposal {
    /// A proposal from its grid positions, float64 bounds and score.
    pub const fn new(start: u32, end: u32, xmin: f64, xmax: f64, score: f64) -> Self {
        Proposal { start, end, xmin, xmax, score, seen: 0 }
    }

    /// A proposal on a grid of `T` positions per unit, with the bounds computed as the
    /// convention computes them (mmaction2 `start/T`, `end/T`; paddle `(1.0/T)·start`,
    /// `(1.0/T)·end`).
    pub fn on_grid(start: u32, end: u32, tscale: u32, convention: crate::Convention, score: f64) -> Self {
        let t = tscale as f64;
        let (xmin, xmax) = match convention {
            crate::Convention::Mmaction2 => (start as f64 / t, end as f64 / t),
            crate::Convention::Paddle => ((1.0 / t) * start as f64, (1.0 / t) * end as f64),
        };
        Proposal::new(start, end, xmin, xmax, score)
    }

    /// Length in grid units.
    pub fn len(&self) -> u32 {
        self.end.saturating_sub(self.start)
    }

    /// Whether the proposal is empty (never produced by pairing).
    pub fn is_empty(&self) -> bool {
        self.end <= self.start
    }

    /// The deterministic order used everywhere a list is sorted by score: higher score
    /// first; on equal scores the shorter proposal first, then the earlier start. That is
    /// the order in which both references generate proposals (duration outer, start inner),
    /// so it is what a stable descending sort of the generated list gives. (Upstream uses
    /// numpy's and pandas' unstable sorts, whose order on ties is unspecified.)
    pub fn rank_cmp(&self, other: &Self) -> core::cmp::Ordering {
        other.score.total_cmp(&self.score).then(self.len().cmp(&other.len())).then(self.start.cmp(&other.start))
    }
}

/// What went wrong in post-processing, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PostErrorKind {
    /// An input had the wrong length.
    Length,
    /// An input held NaN or an infinity.
    NonFinite,
    /// An output buffer was full.
    Capacity,
    /// A length or position was outside what it may be.
    Range,
}

/// A post-processing error.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub enum PostError {
    /// `what` had `actual` elements where `expected` were required.
    Length {
        /// Which input.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// `what[index]` is NaN or infinite.
    NonFinite {
        /// Which input.
        what: &'static str,
        /// Flat index of the first bad value.
        index: usize,
    },
    /// The proposal buffer of `capacity` entries was full; `rejected` did not fit.
    Capacity {
        /// The proposal that did not fit.
        rejected: Proposal,
        /// The buffer's capacity.
        capacity: usize,
    },
    /// `what` is `value`, outside `min..=max`.
    OutOfRange {
        /// Which quantity.
        what: &'static str,
        /// Its value.
        value: u64,
        /// Smallest allowed value.
        min: u64,
        /// Largest allowed value.
        max: u64,
    },
}

impl PostError {
    /// The kind of error.
    pub fn kind(&self) -> PostErrorKind {
        match self {
            PostError::Length { .. } => PostErrorKind::Length,
            PostError::NonFinite { .. } => PostErrorKind::NonFinite,
            PostError::Capacity { .. } => PostErrorKind::Capacity,
            PostError::OutOfRange { .. } => PostErrorKind::Range,
        }
    }
}

impl fmt::Display for PostError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PostError::Length { what, expected, actual } => {
                write!(f, "{what} has {actual} values, expected {expected}")
            }
            PostError::NonFinite { what, index } => {
                write!(f, "{what} holds a NaN or infinite value at flat index {index}")
            }
            PostError::Capacity { rejected, capacity } => write!(
                f,
                "proposal buffer full ({capacity} entries); proposal [{}, {}) score {} did not fit",
                rejected.start, rejected.end, rejected.score
            ),
            PostError::OutOfRange { what, value, min, max } => write!(f, "{what} is {value}, outside {min}..={max}"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for PostError {}

/// The network's outputs for one window, checked against a configuration:
/// `start[T]`, `end[T]`, `confidence[2, D, T]` (channel 0 = reg, channel 1 = cls), all finite.
#[derive(Debug, Clone, Copy)]
pub struct WindowMaps<'a> {
    start: &'a [f32],
    end: &'a [f32],
    confidence: &'a [f32],
    tscale: usize,
    dscale: usize,
}

impl<'a> WindowMaps<'a> {
    /// Checks lengths and finiteness.
    pub fn new(cfg: &PostConfig, start: &'a [f32], end: &'a [f32], confidence: &'a [f32]) -> Result<Self, PostError> {
        let (t, d) = (cfg.tscale(), cfg.dscale());
        check(start, "start", t)?;
        check(end, "end", t)?;
        check(confidence, "confidence", 2 * d * t)?;
        Ok(WindowMaps { start, end, confidence, tscale: t, dscale: d })
    }

    /// Start probabilities `[T]`.
    pub fn start(&self) -> &'a [f32] {
        self.start
    }
    /// End probabilities `[T]`.
    pub fn end(&self) -> &'a [f32] {
        self.end
    }
    /// `reg[d, s]` (confidence channel 0).
    pub fn reg(&self, d: usize, s: usize) -> f32 {
        self.confidence[d * self.tscale + s]
    }
    /// `cls[d, s]` (confidence channel 1).
    pub fn cls(&self, d: usize, s: usize) -> f32 {
        self.confidence[(self.dscale + d) * self.tscale + s]
    }
}

fn check(v: &[f32], what: &'static str, expected: usize) -> Result<(), PostError> {
    if v.len() != expected {
        return Err(PostError::Length { what, expected, actual: v.len() });
    }
    match v.iter().position(|x| !x.is_finite()) {
        Some(index) => Err(PostError::NonFinite { what, index }),
        None => Ok(()),
    }
}

/// What [`postprocess_window`] did, stage by stage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PostSummary {
    /// Start candidates selected.
    pub start_candidates: usize,
    /// End candidates selected.
    pub end_candidates: usize,
    /// Candidate pairs (proposals before Soft-NMS).
    pub pairs: usize,
    /// Proposals kept by Soft-NMS (before the top-k cut).
    pub kept: usize,
    /// Proposals output: `min(kept, top_k)`, best first at the front of the pairs buffer.
    pub output: usize,
    /// Soft-NMS decisions.
    pub soft_nms: SoftNmsStats,
}

/// Runs the whole window post-processing with caller-provided buffers:
/// `starts`/`ends` of at least `T` flags, `pairs` large enough for every pair (at most
/// `D·T`). The output proposals are `pairs[..summary.output]`, best first.
///
/// As in both references, Soft-NMS runs only when there are at least two pairs: a single
/// pair is reported as it is (paddle's loop would otherwise never keep it).
pub fn postprocess_window(
    cfg: &PostConfig,
    maps: &WindowMaps<'_>,
    starts: &mut [bool],
    ends: &mut [bool],
    pairs: &mut [Proposal],
    top_k: usize,
) -> Result<PostSummary, PostError> {
    let t = cfg.tscale();
    if starts.len() < t || ends.len() < t {
        return Err(PostError::Length {
            what: "candidate flags buffer",
            expected: t,
            actual: starts.len().min(ends.len()),
        });
    }
    let (starts, ends) = (&mut starts[..t], &mut ends[..t]);
    let mut summary = PostSummary {
        start_candidates: select_candidates(maps.start(), cfg.convention(), Boundary::Start, starts)?,
        end_candidates: select_candidates(maps.end(), cfg.convention(), Boundary::End, ends)?,
        ..PostSummary::default()
    };
    summary.pairs = pair_candidates(cfg, maps, starts, ends, pairs)?;
    if summary.pairs > 1 {
        let params = SoftNmsParams::for_convention(cfg.convention());
        let (kept, stats) = soft_nms(&mut pairs[..summary.pairs], &params, Some(t as u32));
        summary.kept = kept;
        summary.soft_nms = stats;
    } else {
        summary.kept = summary.pairs;
    }
    summary.output = summary.kept.min(top_k);
    Ok(summary)
}

/// Window post-processing with its buffers inline: at most `MAX_T` snippets and
/// `MAX_PAIRS` candidate pairs (`T·D` always suffices; `4950` for the paper config).
#[derive(Debug)]
pub struct WindowPostProcessor<const MAX_T: usize, const MAX_PAIRS: usize> {
    starts: [bool; MAX_T],
    ends: [bool; MAX_T],
    pairs: [Proposal; MAX_PAIRS],
}

impl<const MAX_T: usize, const MAX_PAIRS: usize> Default for WindowPostProcessor<MAX_T, MAX_PAIRS> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const MAX_T: usize, const MAX_PAIRS: usize> WindowPostProcessor<MAX_T, MAX_PAIRS> {
    /// Empty buffers.
    pub const fn new() -> Self {
        WindowPostProcessor {
            starts: [false; MAX_T],
            ends: [false; MAX_T],
            pairs: [Proposal::new(0, 0, 0.0, 0.0, 0.0); MAX_PAIRS],
        }
    }

    /// Post-processes one window; returns the top-k proposals, best first.
    pub fn run(&mut self, cfg: &PostConfig, maps: &WindowMaps<'_>, top_k: usize) -> Result<&[Proposal], PostError> {
        let summary = postprocess_window(cfg, maps, &mut self.starts, &mut self.ends, &mut self.pairs, top_k)?;
        Ok(&self.pairs[..summary.output])
    }

    /// The candidate flags of the last run (`[..T]` are meaningful).
    pub fn candidates(&self) -> (&[bool], &[bool]) {
        (&self.starts, &self.ends)
    }
}

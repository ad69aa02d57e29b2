//! A whole video through the engine: windows → network → proposals in video time.
//!
//! Two modes:
//!
//! * **Sliding** (the streaming setting, reference §6): the core's
//!   [`WindowBuffer`] cuts the `L` snippets into windows of
//!   `T` with hop `T/2`; the last window is aligned to the end of the video; a video shorter
//!   than `T` is one window, edge-padded (its last snippet repeated). Each window's candidate
//!   pairs (candidates and pairing, no per-window Soft-NMS) go to the core's
//!   [`OpenVideoMerger`] (a [`crate::post::VideoMerger`] whose `L` is given once the rows
//!   end), which drops those ending in the padding, maps the rest to video
//!   positions normalised by `L` (so a video of exactly `T` snippets gives exactly the
//!   window's proposals), and at the end runs one Soft-NMS over the merged set and keeps the
//!   top `k` (see [`crate::post::merge`]). Here the merger collects into a growing `Vec`.
//!   [`detect_video_rows`] runs the windows as the rows arrive (frames through a backbone);
//!   [`detect_video`] is the same loop over a slice.
//! * **Rescale** (the ActivityNet setting): the whole video is resampled to `T` positions
//!   ([`rescale_to_window`]) and post-processed as one
//!   window ([`postprocess_window`]).
//!
//! And the **stream semantics** over a whole recording ([`detect_stream`]; `detect --merge
//! stream`): windows on the hop grid, every window's pairs merged by
//! [`merge_stream`] — what `bmn-edge stream` emits incrementally (see
//! [`crate::post::stream`]).

use super::{Engine, EngineError, EngineErrorKind, StageTimes, WindowOutputs};
use crate::config::PostConfig;
use crate::post::postprocess_window;
use crate::post::{
    merge_stream, pair_candidates, select_candidates, Boundary, OpenVideoMerger, PostError, Proposal, StreamParams,
    StreamProposal, WindowMaps,
};
use crate::window::{rescale_to_window, WindowBuffer, WindowError};
use std::time::{Duration, Instant};

pub use super::info::WindowMode;

/// Options of [`detect_video`].
#[derive(Debug, Clone, Copy)]
pub struct DetectOptions {
    /// Sliding windows or whole-video rescale.
    pub mode: WindowMode,
    /// Proposals kept per video.
    pub top_k: usize,
    /// Hop between windows in snippets (sliding mode; default `T/2`, at least 1).
    pub hop: Option<usize>,
    /// BSN's `poolData` epsilon in snippets (rescale mode).
    pub rescale_epsilon: f64,
}

impl Default for DetectOptions {
    fn default() -> Self {
        DetectOptions { mode: WindowMode::Sliding, top_k: crate::post::DEFAULT_TOP_K, hop: None, rescale_epsilon: 0.0 }
    }
}

/// One window's result.
#[derive(Debug, Clone)]
pub struct WindowResult {
    /// Index of the window's first snippet in the video (0 in rescale mode).
    pub start: u64,
    /// Real (not padded) snippets in the window.
    pub valid: usize,
    /// The network's outputs.
    pub outputs: WindowOutputs,
    /// Stage timings.
    pub times: StageTimes,
}

/// A video's proposals.
#[derive(Debug, Clone, Default)]
pub struct VideoResult {
    /// Best first, normalised to the video (`[0, 1]`).
    pub proposals: Vec<Proposal>,
    /// Windows run.
    pub windows: usize,
    /// Summed stage times.
    pub times: StageTimes,
    /// Post-processing time (candidates, pairing, merge, Soft-NMS).
    pub post: Duration,
}

fn post_err(e: PostError) -> EngineError {
    EngineError::new(EngineErrorKind::Runtime, format!("post-processing: {e}"))
}

fn window_err(e: WindowError) -> EngineError {
    EngineError::new(EngineErrorKind::Input, format!("features: {e}"))
}

/// Scratch for one window's candidate pairs (candidates and pairing, no Soft-NMS).
#[derive(Debug)]
pub struct WindowPairs {
    cfg: PostConfig,
    starts: Vec<bool>,
    ends: Vec<bool>,
    pairs: Vec<Proposal>,
}

impl WindowPairs {
    /// Buffers for windows of `cfg`.
    pub fn new(cfg: PostConfig) -> Self {
        let t = cfg.tscale();
        WindowPairs { cfg, starts: vec![false; t], ends: vec![false; t], pairs: vec![Proposal::default(); cfg.cells()] }
    }

    /// The window's candidate pairs, on the window's grid.
    pub fn pairs(&mut self, outputs: &WindowOutputs) -> Result<&[Proposal], EngineError> {
        let cfg = &self.cfg;
        let maps = WindowMaps::new(cfg, &outputs.start, &outputs.end, &outputs.confidence).map_err(post_err)?;
        select_candidates(maps.start(), cfg.convention(), Boundary::Start, &mut self.starts).map_err(post_err)?;
        select_candidates(maps.end(), cfg.convention(), Boundary::End, &mut self.ends).map_err(post_err)?;
        let n = pair_candidates(cfg, &maps, &self.starts, &self.ends, &mut self.pairs).map_err(post_err)?;
        Ok(&self.pairs[..n])
    }
}

/// The hop: `hop` or `T/2`, checked to be in `1..=T`.
pub fn check_hop(hop: Option<usize>, tscale: usize) -> Result<usize, EngineError> {
    let hop = hop.unwrap_or(WindowBuffer::default_hop(tscale));
    if !(1..=tscale).contains(&hop) {
        return Err(EngineError::new(
            EngineErrorKind::Input,
            format!("the hop must be between 1 and the window length T = {tscale} snippets, got {hop}"),
        ));
    }
    Ok(hop)
}

/// Checks a `[L, C]` feature sequence against the engine's input width.
fn check_features(engine: &Engine, features: &[f32], snippets: usize) -> Result<(), EngineError> {
    let c = engine.info().channels;
    if snippets == 0 {
        return Err(EngineError::new(EngineErrorKind::Input, "the feature sequence is empty"));
    }
    if features.len() != snippets * c {
        return Err(EngineError::new(
            EngineErrorKind::Input,
            format!("feature width {} does not match the model's input width C = {c}", features.len() / snippets),
        ));
    }
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::new(
            EngineErrorKind::Input,
            format!("feature value at snippet {}, channel {} is NaN or infinite", i / c, i % c),
        ));
    }
    Ok(())
}

/// A recording's proposals under the stream semantics.
#[derive(Debug, Clone, Default)]
pub struct StreamResult {
    /// In stream positions (snippets), group by group in stream order, best first within a
    /// group — the order `bmn-edge stream` emits them.
    pub proposals: Vec<StreamProposal>,
    /// Windows run.
    pub windows: usize,
    /// Summed stage times.
    pub times: StageTimes,
    /// Post-processing time (candidates, pairing, merge, Soft-NMS).
    pub post: Duration,
}

/// Runs a recording of `snippets` rows of `C` features (`[L, C]` row-major) under the
/// stream semantics ([`crate::post::stream`]): windows at multiples of `hop` (`None`: `T/2`),
/// the last one padded on the grid, all pairs merged at once by [`merge_stream`].
/// `on_window` sees each window.
pub fn detect_stream<E: From<EngineError>>(
    engine: &mut Engine,
    features: &[f32],
    snippets: usize,
    hop: Option<usize>,
    params: &StreamParams,
    mut on_window: impl FnMut(usize, &WindowResult) -> Result<(), E>,
) -> Result<StreamResult, E> {
    check_features(engine, features, snippets)?;
    let cfg = engine.config().post();
    let (t, c) = (cfg.tscale(), engine.info().channels);
    if params.tscale() != t || params.convention() != cfg.convention() {
        return Err(EngineError::new(EngineErrorKind::Input, "stream parameters for another T or convention").into());
    }
    let hop = check_hop(hop, t)?;
    let mut storage = vec![0.0f32; c * t];
    let mut window = vec![0.0f32; c * t];
    let mut buffer = WindowBuffer::new(&mut storage, t, c, hop).map_err(window_err)?;
    let mut scratch = WindowPairs::new(cfg);
    let mut all: Vec<Proposal> = Vec::new();
    let mut result = StreamResult::default();
    let mut run = |engine: &mut Engine, window: &[f32], start: u64, valid: usize, result: &mut StreamResult| {
        let (outputs, times) = engine.run(window)?;
        let w = WindowResult { start, valid, outputs, times };
        on_window(result.windows, &w)?;
        result.times += w.times;
        result.windows += 1;
        let p0 = Instant::now();
        for p in scratch.pairs(&w.outputs)? {
            // The padding rule of the video merge: the pair's last boundary snippet is real.
            let last = match cfg.convention() {
                crate::Convention::Mmaction2 => p.end as usize,
                crate::Convention::Paddle => p.end as usize - 1,
            };
            if p.start < p.end && last < valid {
                let at = |x: u32| u32::try_from(start + u64::from(x)).ok();
                let (Some(s), Some(e)) = (at(p.start), at(p.end)) else {
                    return Err(EngineError::new(EngineErrorKind::Input, "recording longer than 2^32 snippets").into());
                };
                all.push(Proposal::new(s, e, 0.0, 0.0, p.score));
            }
        }
        result.post += p0.elapsed();
        Ok::<(), E>(())
    };
    for row in features.chunks_exact(c) {
        if let Some(em) = buffer.push(row, &mut window).map_err(window_err)? {
            run(engine, &window, em.start, em.valid, &mut result)?;
        }
    }
    if let Some(em) = buffer.finish_on_grid(&mut window).map_err(window_err)? {
        run(engine, &window, em.start, em.valid, &mut result)?;
    }
    let p0 = Instant::now();
    merge_stream(&mut all, params, |p| result.proposals.push(p));
    result.post += p0.elapsed();
    Ok(result)
}

/// Runs a video of `snippets` rows of `C` features (`features` is `[L, C]` row-major).
/// `on_window` sees each window's outputs (e.g. to dump maps).
pub fn detect_video<E: From<EngineError>>(
    engine: &mut Engine,
    features: &[f32],
    snippets: usize,
    opts: &DetectOptions,
    mut on_window: impl FnMut(usize, &WindowResult) -> Result<(), E>,
) -> Result<VideoResult, E> {
    check_features(engine, features, snippets)?;
    let cfg = engine.config().post();
    let (t, c) = (cfg.tscale(), engine.info().channels);
    let mut result = VideoResult::default();
    let mut window = vec![0.0f32; c * t];
    if opts.mode == WindowMode::Rescale {
        rescale_to_window(features, snippets, c, t, opts.rescale_epsilon, &mut window).map_err(window_err)?;
        let (outputs, times) = engine.run(&window)?;
        let w = WindowResult { start: 0, valid: t, outputs, times };
        on_window(0, &w)?;
        let p0 = Instant::now();
        let maps = WindowMaps::new(&cfg, &w.outputs.start, &w.outputs.end, &w.outputs.confidence).map_err(post_err)?;
        let mut starts = vec![false; t];
        let mut ends = vec![false; t];
        let mut pairs = vec![Proposal::default(); t * cfg.dscale()];
        let summary =
            postprocess_window(&cfg, &maps, &mut starts, &mut ends, &mut pairs, opts.top_k).map_err(post_err)?;
        pairs.truncate(summary.output);
        result.proposals = pairs;
        result.post = p0.elapsed();
        result.windows = 1;
        result.times = w.times;
        return Ok(result);
    }

    let mut rows = features.chunks_exact(c);
    let run = detect_video_rows(
        engine,
        |row: &mut [f32]| Ok::<bool, core::convert::Infallible>(rows.next().map(|r| row.copy_from_slice(r)).is_some()),
        opts,
        on_window,
    )?;
    debug_assert_eq!(run.snippets, snippets);
    Ok(run.video)
}

/// What [`detect_video_rows`] read and found.
#[derive(Debug)]
pub struct RowsResult<F> {
    /// The video's proposals (of the snippets read whole).
    pub video: VideoResult,
    /// Snippets read.
    pub snippets: usize,
    /// The error that ended the rows early, if one did (the proposals are those of the
    /// snippets before it).
    pub failure: Option<F>,
}

/// Runs a video in sliding windows as its snippets arrive: `next_row` writes the next
/// snippet's `C` features and says whether there was one (frames through a backbone, a
/// slice's rows). Each window runs as soon as its snippets exist, so only one window's
/// snippets are held, not the video's; its pairs go to an [`OpenVideoMerger`], which
/// normalises them by the video's length once the rows end — the same proposals, bit for
/// bit, as [`detect_video`] on the same rows. An error of `next_row` ends the video there:
/// the snippets before it are windowed and merged, and the error is handed back in
/// [`RowsResult::failure`]. No row at all gives no windows and no proposals. Sliding mode
/// only (the whole-video rescale needs every snippet first).
pub fn detect_video_rows<E: From<EngineError>, F>(
    engine: &mut Engine,
    mut next_row: impl FnMut(&mut [f32]) -> Result<bool, F>,
    opts: &DetectOptions,
    mut on_window: impl FnMut(usize, &WindowResult) -> Result<(), E>,
) -> Result<RowsResult<F>, E> {
    if opts.mode != WindowMode::Sliding {
        return Err(EngineError::new(EngineErrorKind::Input, "windows as snippets arrive need the sliding mode").into());
    }
    let cfg = engine.config().post();
    let (t, c) = (cfg.tscale(), engine.info().channels);
    let hop = check_hop(opts.hop, t)?;
    let mut result = VideoResult::default();
    let mut window = vec![0.0f32; c * t];
    let mut storage = vec![0.0f32; c * t];
    let mut buffer = WindowBuffer::new(&mut storage, t, c, hop).map_err(window_err)?;
    // The core's merger over a growing Vec: a window's pairs are kept until the video ends.
    let mut merger = OpenVideoMerger::new(cfg.convention(), Vec::new());
    let mut scratch = WindowPairs::new(cfg);
    let mut process = |engine: &mut Engine,
                       window: &[f32],
                       start: u64,
                       valid: usize,
                       index: usize,
                       result: &mut VideoResult|
     -> Result<(), E> {
        let (outputs, times) = engine.run(window)?;
        let w = WindowResult { start, valid, outputs, times };
        on_window(index, &w)?;
        result.times += w.times;
        result.windows += 1;
        let p0 = Instant::now();
        merger.push_window(scratch.pairs(&w.outputs)?, start, valid).map_err(post_err)?;
        result.post += p0.elapsed();
        Ok(())
    };
    let mut index = 0;
    let mut row = vec![0.0f32; c];
    let mut snippets = 0usize;
    let mut failure = None;
    loop {
        match next_row(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        if let Some(ch) = row.iter().position(|v| !v.is_finite()) {
            return Err(EngineError::new(
                EngineErrorKind::Input,
                format!("feature value at snippet {snippets}, channel {ch} is NaN or infinite"),
            )
            .into());
        }
        snippets += 1;
        if let Some(em) = buffer.push(&row, &mut window).map_err(window_err)? {
            process(engine, &window, em.start, em.valid, index, &mut result)?;
            index += 1;
        }
    }
    if snippets == 0 {
        return Ok(RowsResult { video: result, snippets, failure });
    }
    if let Some(em) = buffer.finish(&mut window).map_err(window_err)? {
        process(engine, &window, em.start, em.valid, index, &mut result)?;
    }
    let p0 = Instant::now();
    let merger = merger.with_len(snippets as u64).map_err(post_err)?;
    result.proposals = merger.finish(opts.top_k);
    result.post += p0.elapsed();
    Ok(RowsResult { video: result, snippets, failure })
}

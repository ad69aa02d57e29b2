//! A whole video through the engine: windows → network → proposals in video time.
//!
//! Two modes:
//!
//! * **Sliding** (the streaming setting, reference §6): the core's
//!   [`WindowBuffer`] cuts the `L` snippets into windows of
//!   `T` with hop `T/2`; the last window is aligned to the end of the video; a video shorter
//!   than `T` is one window, edge-padded (its last snippet repeated). Each window's candidate
//!   pairs (candidates and pairing, no per-window Soft-NMS) go to the core's
//!   [`VideoMerger`], which drops those ending in the padding, maps the rest to video
//!   positions normalised by `L` (so a video of exactly `T` snippets gives exactly the
//!   window's proposals), and at the end runs one Soft-NMS over the merged set and keeps the
//!   top `k` (see [`crate::post::merge`]). Here the merger collects into a growing `Vec`.
//! * **Rescale** (the ActivityNet setting): the whole video is resampled to `T` positions
//!   ([`rescale_to_window`]) and post-processed as one
//!   window ([`postprocess_window`]).

use super::{Engine, EngineError, EngineErrorKind, StageTimes, WindowOutputs};
use crate::post::postprocess_window;
use crate::post::{pair_candidates, select_candidates, Boundary, PostError, Proposal, VideoMerger, WindowMaps};
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

fn add(t: &mut StageTimes, w: &StageTimes) {
    t.stage_a += w.stage_a;
    t.bm += w.bm;
    t.stage_b += w.stage_b;
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
    let cfg = engine.config().post();
    let (t, c) = (cfg.tscale(), engine.info().channels);
    if snippets == 0 {
        return Err(EngineError::new(EngineErrorKind::Input, "the feature sequence is empty").into());
    }
    if features.len() != snippets * c {
        return Err(EngineError::new(
            EngineErrorKind::Input,
            format!("feature width {} does not match the model's input width C = {c}", features.len() / snippets),
        )
        .into());
    }
    if let Some(i) = features.iter().position(|v| !v.is_finite()) {
        return Err(EngineError::new(
            EngineErrorKind::Input,
            format!("feature value at snippet {}, channel {} is NaN or infinite", i / c, i % c),
        )
        .into());
    }
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

    let hop = opts.hop.unwrap_or(WindowBuffer::default_hop(t)).clamp(1, t);
    let mut storage = vec![0.0f32; c * t];
    let mut buffer = WindowBuffer::new(&mut storage, t, c, hop).map_err(window_err)?;
    // The core's merger over a growing Vec: a window's pairs are kept until the video ends.
    let mut merger = VideoMerger::new(cfg.convention(), snippets as u64, Vec::new())
        .map_err(|e| EngineError::new(EngineErrorKind::Input, format!("features: {e}")))?;
    let mut starts = vec![false; t];
    let mut ends = vec![false; t];
    let mut pairs = vec![Proposal::default(); t * cfg.dscale()];
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
        add(&mut result.times, &w.times);
        result.windows += 1;
        let p0 = Instant::now();
        let maps = WindowMaps::new(&cfg, &w.outputs.start, &w.outputs.end, &w.outputs.confidence).map_err(post_err)?;
        select_candidates(maps.start(), cfg.convention(), Boundary::Start, &mut starts).map_err(post_err)?;
        select_candidates(maps.end(), cfg.convention(), Boundary::End, &mut ends).map_err(post_err)?;
        let n = pair_candidates(&cfg, &maps, &starts, &ends, &mut pairs).map_err(post_err)?;
        merger.push_window(&pairs[..n], start, valid).map_err(post_err)?;
        result.post += p0.elapsed();
        Ok(())
    };
    let mut index = 0;
    for row in features.chunks_exact(c) {
        if let Some(em) = buffer.push(row, &mut window).map_err(window_err)? {
            process(engine, &window, em.start, em.valid, index, &mut result)?;
            index += 1;
        }
    }
    if let Some(em) = buffer.finish(&mut window).map_err(window_err)? {
        process(engine, &window, em.start, em.valid, index, &mut result)?;
    }
    let p0 = Instant::now();
    result.proposals = merger.finish(opts.top_k);
    result.post += p0.elapsed();
    Ok(result)
}

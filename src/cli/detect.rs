//! `bmn-edge detect`: features → network → ActivityNet proposals, for one feature file, a
//! whole collection (a directory or a manifest: [`batch`]) or a video's pixels (`--video`
//! or `--frames-dir` with `--backbone`: frames → backbone → BMN in one process, one
//! snippet's frames in memory at a time). All load the model once ([`load`]) and run each
//! video through [`detect_video`] with the same options ([`Loaded::options`]), so a video's
//! proposals do not depend on the path that ran it.

#[path = "batch.rs"]
mod batch;

use super::args::{available_cores, ConventionArg, EngineArgs, ModeArg, SecondsArgs};
use super::output::write_output;
use super::process;
use super::video::{open_features, BackboneArgs, Feeds, VideoArgs};
use anyhow::{bail, Context, Result};
use bmn_edge::engine::detect::{
    detect_stream, detect_video, detect_video_rows, DetectOptions, WindowMode, WindowResult,
};
use bmn_edge::engine::Engine;
use bmn_edge::engine::StageTimes;
use bmn_edge::features::{read_features, Features};
use bmn_edge::json::SegmentScore;
use bmn_edge::npy::write_f32;
use bmn_edge::post::stream::{ACTIVITYNET_SNIPPET_SECONDS, DEFAULT_MIN_SCORE};
use bmn_edge::post::{StreamParams, DEFAULT_TOP_K};
use bmn_edge::results::{to_seconds, ResultsFile};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// Arguments of `bmn-edge detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model: a standard ONNX export or an edge file from `bmn-edge convert`.
    #[arg(long)]
    model: PathBuf,
    /// Features: .npy [L, C] float32/float64 (one row per snippet) or a BSN csv
    /// (header row, one row of C values per snippet). A directory or a manifest (any other
    /// file: one feature path per line, or `id<TAB>path`) indexes a collection.
    #[arg(long, required_unless_present_any = ["video", "frames_dir"], conflicts_with_all = ["video", "frames_dir"])]
    features: Option<PathBuf>,
    /// Pixels instead of features (`--video FILE|-` or `--frames-dir DIR`, with
    /// `--backbone`): the snippets' features come from the backbone, `--snippet-frames`
    /// frames per snippet, and segments are in seconds of the video.
    #[command(flatten)]
    video: VideoArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    #[command(flatten)]
    seconds: SecondsArgs,
    /// Video id (key in the results file); default: the feature file's stem.
    #[arg(long)]
    video_id: Option<String>,
    /// Post-processing convention (default: from the model; Paddle variant → paddle).
    #[arg(long, value_enum)]
    convention: Option<ConventionArg>,
    /// Sliding windows (default; an edge file may store another default) or whole-video rescale.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Hop between sliding windows, in snippets (default T/2).
    #[arg(long)]
    hop: Option<usize>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Proposals kept per video.
    #[arg(long, default_value_t = DEFAULT_TOP_K)]
    top_k: usize,
    /// Write each window's maps: start.npy [T], end.npy [T], confidence.npy [2, D, T]
    /// (float32). One window: directly in DIR; several: DIR/window_NNNN/.
    #[arg(long)]
    dump_maps: Option<PathBuf>,
    /// Results file (stdout when absent).
    #[arg(long)]
    out: Option<PathBuf>,
    /// How windows become a video's proposals: `video` (default: one Soft-NMS over the
    /// video, positions normalised by its length, its top k) or `stream` (the stream
    /// semantics, exactly what `bmn-edge stream` emits for the same snippets; see the
    /// README's "Live streams").
    #[arg(long, value_enum, default_value_t = MergeArg::Video)]
    merge: MergeArg,
    /// With --merge stream: seconds of video per snippet (default 16/30, ActivityNet's).
    #[arg(long, value_parser = super::args::parse_snippet_seconds)]
    snippet_seconds: Option<f64>,
    /// With --merge stream: the score floor (default 0.01).
    #[arg(long, value_parser = super::args::parse_score_floor)]
    min_score: Option<f64>,
    #[command(flatten)]
    batch: batch::BatchArgs,
}

/// The `--merge` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum MergeArg {
    /// One Soft-NMS over the video (the references' video-level merge).
    Video,
    /// The stream semantics (groups of overlapping proposals, widths over T).
    Stream,
}

/// One video's proposals in seconds (or normalised time), with what running it took.
struct VideoRun {
    results: Vec<SegmentScore>,
    windows: usize,
    times: StageTimes,
    post: Duration,
}

/// Checks the flags of `--merge` against each other; returns the stream parameters and
/// seconds per snippet under `--merge stream`.
fn merge_flags(a: &Args, m: &Loaded, video_per_snippet: Option<f64>) -> Result<Option<(StreamParams, f64)>> {
    match a.merge {
        MergeArg::Video => {
            if a.snippet_seconds.is_some() || a.min_score.is_some() {
                bail!("--snippet-seconds and --min-score apply to --merge stream only");
            }
            Ok(None)
        }
        MergeArg::Stream => {
            if m.mode == WindowMode::Rescale {
                bail!("--merge stream needs sliding windows, not --mode rescale (or a rescale model's default)");
            }
            if a.seconds.duration.is_some() || a.seconds.frames.is_some() {
                bail!("--merge stream reports seconds from --snippet-seconds; --duration/--frames do not apply");
            }
            let seconds = video_per_snippet.or(a.snippet_seconds).unwrap_or(ACTIVITYNET_SNIPPET_SECONDS);
            if !(seconds.is_finite() && seconds > 0.0) {
                bail!("--snippet-seconds must be a positive number, got {seconds}");
            }
            let cfg = m.engine.config().post();
            let params =
                StreamParams::new(cfg.convention(), cfg.tscale(), a.min_score.unwrap_or(DEFAULT_MIN_SCORE), a.top_k)
                    .map_err(|e| anyhow::anyhow!("--min-score / --top-k: {e}"))?;
            Ok(Some((params, seconds)))
        }
    }
}

/// Runs one video (`features` of `l` snippets) with the merge `a` asks for; `seconds`
/// gives the video-merge's duration and scale, the stream merge uses `video_per_snippet`
/// (a video's own) or `--snippet-seconds`.
fn run_video(
    a: &Args,
    m: &mut Loaded,
    features: &[f32],
    l: usize,
    seconds: &SecondsArgs,
    video_per_snippet: Option<f64>,
    mut on_window: impl FnMut(usize, &WindowResult) -> Result<()>,
) -> Result<VideoRun> {
    if let Some((params, per_snippet)) = merge_flags(a, m, video_per_snippet)? {
        let r = detect_stream(&mut m.engine, features, l, a.hop, &params, on_window)?;
        let results = r
            .proposals
            .iter()
            .map(|p| SegmentScore {
                segment: [p.start as f64 * per_snippet, p.end as f64 * per_snippet],
                score: p.score,
            })
            .collect();
        return Ok(VideoRun { results, windows: r.windows, times: r.times, post: r.post });
    }
    let opts = m.options(a, l, seconds.duration);
    let r = detect_video(&mut m.engine, features, l, &opts, &mut on_window)?;
    let results = to_seconds(&r.proposals, seconds.scale(m.convention())?);
    Ok(VideoRun { results, windows: r.windows, times: r.times, post: r.post })
}

/// The model loaded, with what was chosen from it and the command line.
struct Loaded {
    engine: Engine,
    /// The engine's threads (a backbone gets the same: tract's executor is shared).
    threads: usize,
    mode: WindowMode,
    /// The window's T and D.
    t: usize,
    d: usize,
}

/// Checks `--top-k`, loads the model and chooses the window mode (`--mode`, else the
/// model file's, else sliding).
fn load(a: &Args) -> Result<Loaded> {
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    // The video merge's Soft-NMS keeps at most 101; the stream merge's cap is per group.
    let most = bmn_edge::post::SoftNmsParams::for_convention(bmn_edge::Convention::Mmaction2).max_kept;
    if a.merge == MergeArg::Video && a.top_k > most {
        bail!("--top-k {} is more than the video merge keeps ({most}); --merge stream caps per group", a.top_k);
    }
    let options = a.engine.options(available_cores(), a.convention.map(Into::into))?;
    let engine = Engine::load(&a.model, &options).with_context(|| format!("loading {}", a.model.display()))?;
    process::prepare_for_windows();
    let info = engine.info();
    let mode = match a.mode {
        Some(m) => m.into(),
        None if info.window_mode == Some(WindowMode::Rescale) => WindowMode::Rescale,
        None => WindowMode::Sliding,
    };
    let chosen_by = match (a.mode, &info.window_mode) {
        (Some(_), _) => "--mode",
        (None, Some(_)) => "the model file",
        (None, None) => "default",
    };
    log::info!("window mode: {} ({chosen_by})", mode.name());
    let cfg = engine.config().post();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    Ok(Loaded { engine, threads: options.threads, mode, t, d })
}

impl Loaded {
    /// The options for one video of `snippets` snippets and, when known, `duration` seconds.
    fn options(&self, a: &Args, snippets: usize, duration: Option<f64>) -> DetectOptions {
        // BSN's poolData epsilon (0.0001 s) in snippets.
        let rescale_epsilon = duration.map_or(0.0, |dur| 0.0001 * snippets as f64 / dur);
        DetectOptions { mode: self.mode, top_k: a.top_k, hop: a.hop, rescale_epsilon }
    }

    /// The model's post-processing convention.
    fn convention(&self) -> bmn_edge::Convention {
        self.engine.config().post().convention()
    }

    /// Refuses features whose width is not the model's C.
    fn check_width(&self, path: &Path, features: &Features) -> Result<()> {
        let (l, c) = (features.snippets, features.channels);
        let channels = self.engine.info().channels;
        if c != channels {
            bail!(
                "{}: feature width C = {c} does not match the model's input width C = {channels} ({l} rows of {c} values read)",
                path.display()
            );
        }
        Ok(())
    }
}

fn dump(dir: &Path, w: &WindowResult, t: usize, d: usize) -> Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    write_f32(&dir.join("start.npy"), &[t], &w.outputs.start)?;
    write_f32(&dir.join("end.npy"), &[t], &w.outputs.end)?;
    write_f32(&dir.join("confidence.npy"), &[2, d, t], &w.outputs.confidence)?;
    Ok(())
}

/// Runs `bmn-edge detect`.
pub fn run(a: Args) -> Result<()> {
    check_outputs(&a)?;
    let Some(features) = a.features.clone() else { return run_pixels(a) };
    if a.backbone.backbone.is_some() {
        bail!("--backbone runs on pixels (--video or --frames-dir), not on --features");
    }
    if batch::is_collection(&features) {
        return batch::run(a, &features);
    }
    a.batch.refuse_single(&features)?;
    run_single(a, &features)
}

/// Where `--dump-maps` writes a video's windows: directly in the folder when the video is
/// one window, else one folder per window.
#[derive(Debug, Clone, Copy)]
struct Dumps<'a> {
    dir: Option<&'a Path>,
    single: bool,
    t: usize,
    d: usize,
}

impl<'a> Dumps<'a> {
    fn new(a: &'a Args, m: &Loaded, l: usize) -> Dumps<'a> {
        Dumps { dir: a.dump_maps.as_deref(), single: m.mode == WindowMode::Rescale || l <= m.t, t: m.t, d: m.d }
    }

    /// Writes window `index`'s maps (if asked) and lets go of the window's memory.
    fn window(&self, index: usize, w: &WindowResult) -> Result<()> {
        if let Some(dir) = self.dir {
            let dir = if self.single { dir.to_path_buf() } else { dir.join(format!("window_{index:04}")) };
            dump(&dir, w, self.t, self.d)?;
            log::debug!("window {index}: maps written to {}", dir.display());
        }
        process::release_free_memory();
        Ok(())
    }
}

/// Writes one video's results and the summary line.
fn finish(a: &Args, m: &Loaded, video_id: String, l: usize, result: VideoRun) -> Result<()> {
    let mut file = ResultsFile::default();
    let count = result.results.len();
    file.results.insert(video_id, result.results);
    write_output(a.out.as_deref(), &file.to_json_pretty()?)?;
    eprintln!(
        "{} snippets, {} window(s) ({} mode, T = {}), {} proposals; stage A {:.1} ms, BM {:.1} ms, stage B {:.1} ms, post {:.1} ms; peak RSS {:.1} MB",
        l,
        result.windows,
        match a.merge {
            MergeArg::Video => m.mode.name(),
            MergeArg::Stream => "sliding mode, stream merge",
        },
        m.t,
        count,
        result.times.stage_a.as_secs_f64() * 1e3,
        result.times.bm.as_secs_f64() * 1e3,
        result.times.stage_b.as_secs_f64() * 1e3,
        result.post.as_secs_f64() * 1e3,
        process::peak_rss_mb().unwrap_or(f64::NAN),
    );
    Ok(())
}

/// One feature file → one video's results.
fn run_single(a: Args, path: &Path) -> Result<()> {
    // Checked before the model loads; the convention is known after.
    a.seconds.scale(bmn_edge::Convention::Mmaction2)?;
    let mut m = load(&a)?;
    let features = read_features(path)?;
    let l = features.snippets;
    log::info!("features: {l} snippets of {} channels from {}", features.channels, path.display());
    m.check_width(path, &features)?;
    let dumps = Dumps::new(&a, &m, l);
    let result = run_video(&a, &mut m, &features.data, l, &a.seconds, None, |i, w| dumps.window(i, w))?;
    let video_id = a
        .video_id
        .clone()
        .unwrap_or_else(|| path.file_stem().map_or("video".into(), |s| s.to_string_lossy().into_owned()));
    finish(&a, &m, video_id, l, result)
}

/// A video's pixels → backbone → BMN → one video's results. Sliding windows under the
/// video merge run as the snippets arrive, holding one window's features (the merge
/// normalises by the video's length once it has ended: `OpenVideoMerger`); the stream
/// merge, the rescale mode and `--dump-maps` keep the whole snippets' features (`L·C`
/// floats) first. The frames are never kept. Segments are in seconds of the video (its frame count and rate; under
/// mmaction2's convention over the frames whole snippets cover). A video that breaks off
/// (a truncated file, a bad frame) still gets the proposals of the snippets read whole,
/// written before the error is reported.
fn run_pixels(a: Args) -> Result<()> {
    if a.seconds.duration.is_some() || a.seconds.frames.is_some() {
        bail!("--duration and --frames come from the video itself with --video / --frames-dir");
    }
    if a.snippet_seconds.is_some() {
        bail!("--snippet-seconds comes from the video (--snippet-frames / its frame rate) with --video / --frames-dir");
    }
    a.batch.refuse_single(Path::new(&a.video.display()))?;
    let snippet_frames = a.seconds.snippet_frames.map(usize::try_from).transpose().context("--snippet-frames")?;
    let mut m = load(&a)?;
    let c = m.engine.info().channels;
    let feeds = Feeds { model: &a.model, channels: c };
    let mut opened = open_features(&a.video, &a.backbone, snippet_frames, m.threads, Some(feeds))?;
    // Sliding windows merged over the video run as the snippets arrive (one window's
    // features held, not the video's); the stream merge, the rescale mode and the map dumps
    // (whose layout depends on the video's length) take the whole video first.
    let as_they_come = a.merge == MergeArg::Video && m.mode == WindowMode::Sliding && a.dump_maps.is_none();
    let (features, failure, early) = if as_they_come {
        let opts = m.options(&a, 0, None);
        let run = detect_video_rows(
            &mut m.engine,
            |row: &mut [f32]| opened.next(row),
            &opts,
            |_, _| -> Result<()> {
                process::release_free_memory();
                Ok(())
            },
        )?;
        if run.snippets == 0 {
            return Err(opened.no_snippet(run.failure));
        }
        (Vec::new(), run.failure, Some((run.video, run.snippets)))
    } else {
        let (features, failure) = opened.read_all()?;
        (features, failure, None)
    };
    let summary = opened.features.summary();
    let snippet_frames = summary.sampling.snippet_frames();
    let l = early.as_ref().map_or(features.len() / c, |(_, l)| *l);
    log::info!(
        "video: {} frames at {} fps from {}, {l} snippets of {c} features",
        summary.frames,
        summary.rate,
        opened.source
    );
    // Seconds of the video: the stream merge's per snippet, the video merge's duration with
    // mmaction2's correction for the frames a partial last snippet leaves out.
    let per_snippet = snippet_frames as f64 / summary.rate.fps();
    let seconds = SecondsArgs {
        duration: Some(summary.duration_second()),
        frames: (m.convention() == bmn_edge::Convention::Mmaction2).then_some(summary.frames),
        snippet_frames: Some(snippet_frames as u64),
    };
    let result = match early {
        Some((r, _)) => {
            let results = to_seconds(&r.proposals, seconds.scale(m.convention())?);
            VideoRun { results, windows: r.windows, times: r.times, post: r.post }
        }
        None => {
            let dumps = Dumps::new(&a, &m, l);
            run_video(&a, &mut m, &features, l, &seconds, Some(per_snippet), |i, w| dumps.window(i, w))?
        }
    };
    let video_id = a.video_id.clone().unwrap_or_else(|| a.video.name());
    finish(&a, &m, video_id, l, result)?;
    eprintln!(
        "{}: {} frames at {} fps, {l} snippets of {snippet_frames} frames ({} dropped at the end), {:.1} s",
        opened.source,
        summary.frames,
        summary.rate,
        summary.dropped_frames(),
        summary.duration_second()
    );
    match failure {
        Some(e) => bail!(
            "{e:#}; the proposals of the {l} whole snippet(s) before it were written{}",
            a.out.as_ref().map_or(String::new(), |p| format!(" to {}", p.display()))
        ),
        None => Ok(()),
    }
}

/// Refuses, before anything runs, an output that is one of the inputs (or another output)
/// and a `--dump-maps` folder that holds an earlier run's maps (they would mix with this
/// run's).
fn check_outputs(a: &Args) -> Result<()> {
    let video = a.video.video.as_deref().filter(|p| p.as_os_str() != "-");
    bmn_edge::io::refuse_overlap(
        &[("--out", a.out.as_deref())],
        &[
            ("--model", Some(&a.model)),
            ("--features", a.features.as_deref()),
            ("--video", video),
            ("--backbone", a.backbone.backbone.as_deref()),
        ],
    )?;
    let Some(dir) = &a.dump_maps else { return Ok(()) };
    let Ok(entries) = std::fs::read_dir(dir) else { return Ok(()) };
    let mut used: Vec<String> = entries
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("window_") || ["start.npy", "end.npy", "confidence.npy"].contains(&n.as_str()))
        .collect();
    if !used.is_empty() {
        used.sort();
        let shown = used.iter().take(3).cloned().collect::<Vec<_>>().join(", ");
        bail!(
            "--dump-maps {} already holds maps of an earlier run ({shown}{}): they would mix with this run's; give an empty or new folder",
            dir.display(),
            if used.len() > 3 { ", …" } else { "" }
        );
    }
    Ok(())
}

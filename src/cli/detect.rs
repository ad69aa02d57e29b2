//! `bmn-edge detect`: features → network → ActivityNet proposals.

use super::args::{available_cores, ConventionArg, EngineArgs, ModeArg, SecondsArgs};
use super::output::write_output;
use super::process;
use anyhow::{bail, Context, Result};
use bmn_edge::engine::detect::{detect_video, DetectOptions, WindowMode, WindowResult};
use bmn_edge::engine::Engine;
use bmn_edge::features::read_features;
use bmn_edge::npy::write_f32;
use bmn_edge::post::DEFAULT_TOP_K;
use bmn_edge::results::{to_seconds, ResultsFile};
use std::path::{Path, PathBuf};

/// Arguments of `bmn-edge detect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model: a standard ONNX export or an edge file from `bmn-edge convert`.
    #[arg(long)]
    model: PathBuf,
    /// Features: .npy [L, C] float32/float64 (one row per snippet) or a BSN csv
    /// (header row, one row of C values per snippet).
    #[arg(long)]
    features: PathBuf,
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
    // Checked before the model loads; the convention is known after.
    a.seconds.scale(bmn_edge::Convention::Mmaction2)?;
    let duration = a.seconds.duration;
    if a.top_k == 0 {
        bail!("--top-k must be at least 1");
    }
    let options = a.engine.options(available_cores(), a.convention.map(Into::into))?;
    let mut engine = Engine::load(&a.model, &options).with_context(|| format!("loading {}", a.model.display()))?;
    process::prepare_for_windows();
    let features = read_features(&a.features)?;
    let (l, c) = (features.snippets, features.channels);
    log::info!("features: {l} snippets of {c} channels from {}", a.features.display());
    let info = engine.info();
    if c != info.channels {
        bail!(
            "{}: feature width C = {c} does not match the model's input width C = {} ({} rows of {c} values read)",
            a.features.display(),
            info.channels,
            l
        );
    }
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
    let single = mode == WindowMode::Rescale || l <= t;
    // BSN's poolData epsilon (0.0001 s) in snippets.
    let rescale_epsilon = duration.map_or(0.0, |dur| 0.0001 * l as f64 / dur);
    let opts = DetectOptions { mode, top_k: a.top_k, hop: a.hop, rescale_epsilon };
    let dump_dir = a.dump_maps.clone();
    let result = detect_video(&mut engine, &features.data, l, &opts, |index, w| -> Result<()> {
        if let Some(dir) = &dump_dir {
            let dir = if single { dir.clone() } else { dir.join(format!("window_{index:04}")) };
            dump(&dir, w, t, d)?;
            log::debug!("window {index}: maps written to {}", dir.display());
        }
        process::release_free_memory();
        Ok(())
    })?;
    let video_id = a
        .video_id
        .unwrap_or_else(|| a.features.file_stem().map_or("video".into(), |s| s.to_string_lossy().into_owned()));
    let mut file = ResultsFile::default();
    let scale = a.seconds.scale(cfg.convention())?;
    file.results.insert(video_id, to_seconds(&result.proposals, scale));
    write_output(a.out.as_deref(), &file.to_json_pretty()?)?;
    eprintln!(
        "{} snippets, {} window(s) ({} mode, T = {t}), {} proposals; stage A {:.1} ms, BM {:.1} ms, stage B {:.1} ms, post {:.1} ms; peak RSS {:.1} MB",
        l,
        result.windows,
        mode.name(),
        result.proposals.len(),
        result.times.stage_a.as_secs_f64() * 1e3,
        result.times.bm.as_secs_f64() * 1e3,
        result.times.stage_b.as_secs_f64() * 1e3,
        result.post.as_secs_f64() * 1e3,
        process::peak_rss_mb().unwrap_or(f64::NAN),
    );
    Ok(())
}

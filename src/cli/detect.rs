//! `bmn-edge detect`: features → network → ActivityNet proposals.

use super::{write_output, ConventionArg, SecondsArgs};
use anyhow::{bail, Context, Result};
use bmn_edge::engine::detect::{detect_video, DetectOptions, WindowMode, WindowResult};
use bmn_edge::engine::{Engine, EngineOptions};
use bmn_edge::npy::{expect_shape, read_f32, write_f32};
use bmn_edge::post::DEFAULT_TOP_K;
use bmn_edge::results::{to_seconds, ResultsFile};
use std::path::{Path, PathBuf};

/// The `--mode` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ModeArg {
    /// Windows of T snippets with hop T/2, merged in video time (THUMOS-style streaming).
    Sliding,
    /// The whole video rescaled to T snippets (the ActivityNet setting).
    Rescale,
}

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
    /// Threads for tract's matrix products and the BM kernel (default: available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Sliding windows (default; an edge file may store another default) or whole-video rescale.
    #[arg(long, value_enum)]
    mode: Option<ModeArg>,
    /// Hop between sliding windows, in snippets (default T/2).
    #[arg(long)]
    hop: Option<usize>,
    /// Map rows per stage-B band when stage B runs in tract (quantized models, or with
    /// --tract-stage-b; default 25): smaller bands use less memory and a little more
    /// arithmetic; the map's D runs stage B on the whole map.
    #[arg(long)]
    band_rows: Option<usize>,
    /// Run stage B as tract runs the graph (row bands) instead of the sparse tail.
    #[arg(long)]
    tract_stage_b: bool,
    /// Run a symmetric int8 stage B in float arithmetic emulating the quantization instead
    /// of integer products (for comparisons).
    #[arg(long)]
    emulate_int8: bool,
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

/// Features `[L, C]` row-major and `(L, C)`.
pub fn read_features(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let is_csv = path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv"));
    if is_csv {
        return read_csv(path);
    }
    let a = read_f32(path)?;
    expect_shape(&a, path, &[None, None], "features [L, C] (rows are snippets)")?;
    let (l, c) = (a.shape[0], a.shape[1]);
    if l == 0 || c == 0 {
        bail!("{}: empty feature array {:?}", path.display(), a.shape);
    }
    Ok((a.data, l, c))
}

/// A BSN `csv_mean_100` file: a header row, then one row of C comma-separated values per
/// snippet.
fn read_csv(path: &Path) -> Result<(Vec<f32>, usize, usize)> {
    let text = std::fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().with_context(|| format!("{}: empty csv", path.display()))?;
    let c = header.split(',').count();
    let mut data = Vec::new();
    let mut l = 0;
    for (i, line) in lines.enumerate() {
        let row: Vec<&str> = line.split(',').collect();
        if row.len() != c {
            bail!("{}: row {} has {} values, the header has {c}", path.display(), i + 2, row.len());
        }
        for (j, v) in row.iter().enumerate() {
            let x: f64 = v.trim().parse().with_context(|| {
                format!("{}: row {}, column {}: `{v}` is not a number", path.display(), i + 2, j + 1)
            })?;
            if !x.is_finite() {
                bail!(
                    "{}: row {}, column {} is {x} (NaN or infinite values are not accepted)",
                    path.display(),
                    i + 2,
                    j + 1
                );
            }
            data.push(x as f32);
        }
        l += 1;
    }
    if l == 0 {
        bail!("{}: no snippet rows after the header", path.display());
    }
    Ok((data, l, c))
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
    let threads = a.threads.unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    if threads == 0 {
        bail!("--threads must be at least 1");
    }
    let mut engine = Engine::load(
        &a.model,
        &EngineOptions {
            threads,
            convention: a.convention.map(Into::into),
            band_rows: a.band_rows,
            tract_stage_b: a.tract_stage_b,
            emulate_int8_stage_b: a.emulate_int8,
        },
    )
    .with_context(|| format!("loading {}", a.model.display()))?;
    crate::prepare_for_windows();
    let (features, l, c) = read_features(&a.features)?;
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
        Some(ModeArg::Sliding) => WindowMode::Sliding,
        Some(ModeArg::Rescale) => WindowMode::Rescale,
        None if info.window_mode.as_deref() == Some("rescale") => WindowMode::Rescale,
        None => WindowMode::Sliding,
    };
    let cfg = *engine.config();
    let (t, d) = (cfg.tscale(), cfg.dscale());
    let single = mode == WindowMode::Rescale || l <= t;
    // BSN's poolData epsilon (0.0001 s) in snippets.
    let rescale_epsilon = duration.map_or(0.0, |dur| 0.0001 * l as f64 / dur);
    let opts = DetectOptions { mode, top_k: a.top_k, hop: a.hop, rescale_epsilon };
    let dump_dir = a.dump_maps.clone();
    let result = detect_video(&mut engine, &features, l, &opts, |index, w| -> Result<()> {
        if let Some(dir) = &dump_dir {
            let dir = if single { dir.clone() } else { dir.join(format!("window_{index:04}")) };
            dump(&dir, w, t, d)?;
        }
        crate::release_free_memory();
        Ok(())
    })?;
    let video_id = a
        .video_id
        .unwrap_or_else(|| a.features.file_stem().map_or("video".into(), |s| s.to_string_lossy().into_owned()));
    let mut file = ResultsFile::default();
    let scale = a.seconds.scale(cfg.convention())?;
    file.results.insert(video_id, to_seconds(&result.proposals, scale));
    write_output(a.out.as_deref(), &file.to_json_pretty())?;
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
        super::bench::peak_rss_mb().unwrap_or(f64::NAN),
    );
    Ok(())
}

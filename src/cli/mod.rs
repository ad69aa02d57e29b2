//! Command-line parsing and dispatch.

#[cfg(feature = "engine")]
pub mod bench;
#[cfg(feature = "engine")]
pub mod convert;
#[cfg(feature = "engine")]
pub mod detect;
pub mod eval;
#[cfg(feature = "engine")]
pub mod inspect;
pub mod mask;
pub mod postprocess;

use anyhow::{bail, Context, Result};
use bmn_edge::Convention;
use clap::{Parser, Subcommand, ValueEnum};
use std::io::Write;
use std::path::Path;

/// BMN temporal action proposals on the edge.
#[derive(Debug, Parser)]
#[command(name = "bmn-edge", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Write the dense BM sampling mask [T, N, D, T] as float32 .npy (for checks).
    Mask(mask::Args),
    /// Post-process one window's network outputs into ActivityNet proposals.
    Postprocess(postprocess::Args),
    /// Score proposals with the official ActivityNet metric (AR@1/5/10/100, AUC; percent).
    Eval(eval::Args),
    /// Run a BMN model on a video's features: ActivityNet results JSON (and maps).
    #[cfg(feature = "engine")]
    Detect(detect::Args),
    /// Convert a standard ONNX export to the edge format (dense mask verified, then dropped).
    #[cfg(feature = "engine")]
    Convert(convert::Args),
    /// Describe a model file: format, variant, T, D, N, K, r, input and output names.
    #[cfg(feature = "engine")]
    Inspect(inspect::Args),
    /// Median latency per stage (stage A, BM, stage B, post-processing) and peak RSS.
    #[cfg(feature = "engine")]
    Bench(bench::Args),
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Mask(a) => mask::run(a),
        Command::Postprocess(a) => postprocess::run(a),
        Command::Eval(a) => eval::run(a),
        #[cfg(feature = "engine")]
        Command::Detect(a) => detect::run(a),
        #[cfg(feature = "engine")]
        Command::Convert(a) => convert::run(a),
        #[cfg(feature = "engine")]
        Command::Inspect(a) => inspect::run(a),
        #[cfg(feature = "engine")]
        Command::Bench(a) => bench::run(a),
    }
}

/// The `--convention` flag.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum ConventionArg {
    /// OpenMMLab mmaction2 (default).
    #[default]
    Mmaction2,
    /// PaddleVideo.
    Paddle,
}

impl From<ConventionArg> for Convention {
    fn from(c: ConventionArg) -> Self {
        match c {
            ConventionArg::Mmaction2 => Convention::Mmaction2,
            ConventionArg::Paddle => Convention::Paddle,
        }
    }
}

/// Checks a video duration given in seconds.
fn check_duration(duration: f64) -> Result<f64> {
    if !(duration.is_finite() && duration > 0.0) {
        bail!("--duration must be a positive number of seconds, got {duration}");
    }
    Ok(duration)
}

/// How proposals' normalised video time becomes seconds (shared by `detect` and
/// `postprocess`).
#[derive(Debug, Clone, clap::Args)]
pub struct SecondsArgs {
    /// Video duration in seconds; segments are reported in seconds (normalised [0, 1] video
    /// time when absent).
    #[arg(long)]
    pub duration: Option<f64>,
    /// The video's frame count (with --duration): under the mmaction2 convention, seconds
    /// then count only the frames whole snippets cover, as mmaction2 reports them.
    #[arg(long)]
    pub frames: Option<u64>,
    /// Frames per feature snippet, for --frames (mmaction2's feature_extraction_interval).
    #[arg(long, default_value_t = 16)]
    pub snippet_frames: u64,
}

impl SecondsArgs {
    /// What normalised video time is multiplied by to give seconds (bmn-spec §3): the
    /// duration (1 without one: normalised time), or — with the video's frame count under
    /// the mmaction2 convention — the part of it that whole feature snippets cover,
    /// `(frames // snippet_frames · snippet_frames) / frames · duration` (mmaction2's
    /// `feature_extraction_interval`, 16 by default). The paddle convention uses the
    /// duration as it is. Errors name the offending option.
    pub fn scale(&self, convention: Convention) -> Result<f64> {
        let duration = self.duration.map(check_duration).transpose()?;
        let Some(frames) = self.frames else { return Ok(duration.unwrap_or(1.0)) };
        let Some(duration) = duration else { bail!("--frames needs --duration (the video's length in seconds)") };
        let per = self.snippet_frames;
        if per == 0 {
            bail!("--snippet-frames must be at least 1");
        }
        if frames < per {
            bail!("--frames {frames} is less than one snippet of {per} frames");
        }
        Ok(match convention {
            Convention::Mmaction2 => (frames / per * per) as f64 / frames as f64 * duration,
            Convention::Paddle => duration,
        })
    }
}

/// Writes `text` to `out`, or to stdout when `out` is `None`; see [`write_file`].
pub fn write_output(out: Option<&Path>, text: &str) -> Result<()> {
    match out {
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes()).context("writing to stdout")?;
            stdout.write_all(b"\n").context("writing to stdout")?;
            Ok(())
        }
        Some(path) => write_file(path, format!("{text}\n").as_bytes()),
    }
}

/// Writes `bytes` to `path`. A regular file (or a new one) is written atomically: to a
/// temporary file beside it, then renamed into place, so a failure never leaves half a file.
/// Anything else that exists at `path` — `/dev/null`, a FIFO, a terminal — is written
/// directly: renaming over it would replace the device node itself.
pub fn write_file(path: &Path, bytes: &[u8]) -> Result<()> {
    let special = std::fs::metadata(path).map(|m| !m.is_file()).unwrap_or(false);
    if special {
        return std::fs::write(path, bytes).with_context(|| format!("cannot write {}", path.display()));
    }
    let tmp = path.with_extension("tmp-bmn-edge");
    std::fs::write(&tmp, bytes).with_context(|| format!("cannot write {}", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("cannot move {} to {}", tmp.display(), path.display()))
}

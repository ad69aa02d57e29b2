//! Arguments that several commands share: the convention and window-mode values, the
//! seconds group (`--duration`, `--frames`, `--snippet-frames`) and the engine group
//! (`--threads`, `--band-rows`, `--tract-stage-b`, `--emulate-int8`).

use anyhow::{bail, Result};
use bmn_edge::Convention;
use clap::ValueEnum;

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

/// The `--mode` flag.
#[cfg(feature = "engine")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ModeArg {
    /// Windows of T snippets with hop T/2, merged in video time (THUMOS-style streaming).
    Sliding,
    /// The whole video rescaled to T snippets (the ActivityNet setting).
    Rescale,
}

#[cfg(feature = "engine")]
impl From<ModeArg> for bmn_edge::engine::detect::WindowMode {
    fn from(m: ModeArg) -> Self {
        match m {
            ModeArg::Sliding => Self::Sliding,
            ModeArg::Rescale => Self::Rescale,
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

/// How the engine runs a model (shared by `detect` and `bench`); [`EngineArgs::options`]
/// turns it into the engine's options.
#[cfg(feature = "engine")]
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Threads for tract's matrix products and the BM kernel (default: the available cores
    /// for detect, 1 for bench).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Map rows per stage-B band when stage B runs in tract (quantized models, or with
    /// --tract-stage-b; default 25): smaller bands use less memory and a little more
    /// arithmetic; the map's D runs stage B on the whole map.
    #[arg(long)]
    pub band_rows: Option<usize>,
    /// Run stage B as tract runs the graph (row bands) instead of the sparse tail.
    #[arg(long)]
    pub tract_stage_b: bool,
    /// Run a symmetric int8 stage B in float arithmetic emulating the quantization instead
    /// of integer products (for comparisons).
    #[arg(long)]
    pub emulate_int8: bool,
    /// How an int8 model's products run: `auto` (default) uses tract's integer kernels where
    /// the CPU has dot-product instructions (AVX-512 VNNI, Arm dotprod) and exact float
    /// elsewhere; `integer` or `float` forces one (both give the same levels).
    #[arg(long, value_enum, default_value_t = Int8Arg::Auto)]
    pub int8: Int8Arg,
}

/// The `--int8` values.
#[cfg(feature = "engine")]
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Int8Arg {
    /// Chosen for this CPU.
    Auto,
    /// tract's integer kernels.
    Integer,
    /// tract's float kernels on integer-valued levels (exact).
    Float,
}

#[cfg(feature = "engine")]
impl EngineArgs {
    /// The engine's options: `--threads`, else `default_threads` (at least 1: 0 is an
    /// error), and the post-processing convention (`None`: the model's).
    pub fn options(
        &self,
        default_threads: usize,
        convention: Option<Convention>,
    ) -> Result<bmn_edge::engine::EngineOptions> {
        let threads = self.threads.unwrap_or(default_threads);
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        Ok(bmn_edge::engine::EngineOptions {
            threads,
            convention,
            band_rows: self.band_rows,
            tract_stage_b: self.tract_stage_b,
            emulate_int8_stage_b: self.emulate_int8,
            int8_arithmetic: match self.int8 {
                Int8Arg::Auto => None,
                Int8Arg::Integer => Some(bmn_edge::engine::Int8Arithmetic::Integer),
                Int8Arg::Float => Some(bmn_edge::engine::Int8Arithmetic::ExactFloat),
            },
        })
    }
}

/// The available cores (1 when unknown): `detect`'s default thread count.
#[cfg(feature = "engine")]
pub fn available_cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Seconds {
        #[command(flatten)]
        s: SecondsArgs,
    }

    fn scale(args: &[&str], c: Convention) -> Result<f64> {
        Seconds::try_parse_from(std::iter::once("t").chain(args.iter().copied())).unwrap().s.scale(c)
    }

    #[test]
    fn seconds_scale_follows_the_formula() {
        assert_eq!(scale(&[], Convention::Mmaction2).unwrap(), 1.0);
        assert_eq!(scale(&["--duration", "20"], Convention::Mmaction2).unwrap(), 20.0);
        // 1000 frames, 16 per snippet: 62 whole snippets = 992 frames of 1000.
        assert_eq!(
            scale(&["--duration", "20", "--frames", "1000"], Convention::Mmaction2).unwrap(),
            992.0 / 1000.0 * 20.0
        );
        assert_eq!(scale(&["--duration", "20", "--frames", "1000"], Convention::Paddle).unwrap(), 20.0);
        let e = |a: &[&str]| scale(a, Convention::Mmaction2).unwrap_err().to_string();
        assert!(e(&["--frames", "100"]).contains("--frames needs --duration"));
        assert!(e(&["--duration", "0"]).contains("positive"));
        assert!(e(&["--duration", "NaN"]).contains("positive"));
        assert!(e(&["--duration", "5", "--frames", "10"]).contains("less than one snippet"));
        assert!(e(&["--duration", "5", "--frames", "10", "--snippet-frames", "0"]).contains("at least 1"));
    }

    #[cfg(feature = "engine")]
    #[test]
    fn engine_args_become_engine_options() {
        #[derive(Debug, Parser)]
        struct E {
            #[command(flatten)]
            e: EngineArgs,
        }
        let parse = |a: &[&str]| E::try_parse_from(std::iter::once("t").chain(a.iter().copied())).unwrap().e;
        let o = parse(&[]).options(3, None).unwrap();
        assert_eq!(
            (o.threads, o.convention, o.band_rows, o.tract_stage_b, o.emulate_int8_stage_b),
            (3, None, None, false, false)
        );
        let o = parse(&["--threads", "2", "--band-rows", "10", "--tract-stage-b", "--emulate-int8"])
            .options(7, Some(Convention::Paddle))
            .unwrap();
        assert_eq!(
            (o.threads, o.convention, o.band_rows, o.tract_stage_b, o.emulate_int8_stage_b),
            (2, Some(Convention::Paddle), Some(10), true, true)
        );
        let e = parse(&["--threads", "0"]).options(1, None).unwrap_err().to_string();
        assert!(e.contains("--threads must be at least 1"), "{e}");
        assert!(parse(&[]).options(0, None).is_err());
    }
}

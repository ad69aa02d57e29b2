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
    /// Frames per feature snippet, for --frames (mmaction2's feature_extraction_interval;
    /// default 16). With --video / --frames-dir: frames per snippet through the backbone
    /// (default: the backbone's `bmn_edge.pixels.snippet_frames`, else 16).
    #[arg(long)]
    pub snippet_frames: Option<u64>,
}

/// Frames per snippet when neither the command line nor a backbone's metadata says:
/// ActivityNet's (mmaction2's `feature_extraction_interval`). Here, not in `video.rs`, because
/// builds without the engine (`--features std`) convert frames to seconds too.
pub const DEFAULT_SNIPPET_FRAMES: usize = 16;

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
        let per = self.snippet_frames.unwrap_or(DEFAULT_SNIPPET_FRAMES as u64);
        if per == 0 {
            bail!("--snippet-frames must be at least 1");
        }
        if frames < per {
            bail!("--frames {frames} is less than one snippet of {per} frames");
        }
        match convention {
            Convention::Mmaction2 => Ok((frames / per * per) as f64 / frames as f64 * duration),
            // PaddleVideo reports seconds over the duration as it is, so the frame count
            // changes nothing. A warning, not an error: the output is the paddle reference's,
            // exactly, and a script may pass each video's frame count whatever the model's
            // convention (for `detect` it is known only once the model is loaded).
            Convention::Paddle => {
                log::warn!(
                    "--frames {frames} has no effect under the paddle convention: PaddleVideo reports seconds over the whole --duration"
                );
                Ok(duration)
            }
        }
    }
}

/// Soft-NMS keeps at most this many proposals (both references' loop: `max_kept`, 101), so a
/// larger `--top-k` could never be met.
pub const MAX_TOP_K: usize = bmn_edge::post::SoftNmsParams::for_convention(Convention::Mmaction2).max_kept;

/// The `--top-k` value parser: 1..=[`MAX_TOP_K`] (shared by the commands that take it).
pub fn parse_top_k(s: &str) -> std::result::Result<usize, String> {
    let k: usize = s.parse().map_err(|e| format!("`{s}` is not a count: {e}"))?;
    if !(1..=MAX_TOP_K).contains(&k) {
        return Err(format!(
            "{k} is not in 1..={MAX_TOP_K} (Soft-NMS keeps at most {MAX_TOP_K} proposals, as both references do)"
        ));
    }
    Ok(k)
}

/// The `--min-score` value parser: a score floor is a probability, a finite number in
/// [0, 1] (above 1 nothing could pass it).
#[cfg(feature = "engine")]
pub fn parse_score_floor(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(v.is_finite() && (0.0..=1.0).contains(&v)) {
        return Err(format!("{v} is not in [0, 1] (a score floor: scores are probabilities)"));
    }
    Ok(v)
}

/// The most seconds of video per snippet `--snippet-seconds` takes: an hour (ActivityNet's
/// snippets are 0.53 s; segments are these seconds times snippet positions, which must stay
/// finite).
#[cfg(feature = "engine")]
pub const MAX_SNIPPET_SECONDS: f64 = 3600.0;

/// The `--snippet-seconds` value parser: in (0, [`MAX_SNIPPET_SECONDS`]].
#[cfg(feature = "engine")]
pub fn parse_snippet_seconds(s: &str) -> std::result::Result<f64, String> {
    let v: f64 = s.trim().parse().map_err(|e| format!("`{s}` is not a number: {e}"))?;
    if !(v.is_finite() && v > 0.0 && v <= MAX_SNIPPET_SECONDS) {
        return Err(format!("{v} is not a positive number of seconds per snippet up to {MAX_SNIPPET_SECONDS}, in (0, {MAX_SNIPPET_SECONDS}]"));
    }
    Ok(v)
}

/// This machine's physical memory in MiB (`MemTotal` of `/proc/meminfo`), if known.
pub fn physical_memory_mib() -> Option<u64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: u64 = line.trim_start_matches("MemTotal:").trim().trim_end_matches("kB").trim().parse().ok()?;
    Some(kib / 1024)
}

/// Checks a `--max-memory` value (MiB) before anything is sized by it: not more than this
/// machine has (a bound above the physical memory bounds nothing: the
/// allocation it lets through aborts the process). Returns it in bytes.
pub fn check_max_memory(mib: u64) -> Result<u64> {
    if let Some(have) = physical_memory_mib() {
        if mib > have {
            bail!("--max-memory {mib} (MiB) is more than this machine's memory ({have} MiB)");
        }
    }
    mib.checked_mul(1 << 20).ok_or_else(|| anyhow::anyhow!("--max-memory {mib} (MiB) is too large"))
}

/// How the engine runs a model (shared by `detect` and `bench`); [`EngineArgs::options`]
/// turns it into the engine's options.
#[cfg(feature = "engine")]
#[derive(Debug, Clone, clap::Args)]
pub struct EngineArgs {
    /// Threads for tract's matrix products and the BM kernel (default: the available cores
    /// for detect, 1 for bench). At most 4 × the available cores and never above 256: more
    /// threads than that only add contention (each is a worker with its own buffers).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Map rows per stage-B band when stage B runs in tract (needs --tract-stage-b;
    /// default 25): smaller bands use less memory and a little more arithmetic; the map's D
    /// runs stage B on the whole map.
    #[arg(long, requires = "tract_stage_b")]
    pub band_rows: Option<usize>,
    /// Run stage B as tract runs the graph (row bands) instead of the sparse tail.
    #[arg(long)]
    pub tract_stage_b: bool,
    /// Run a symmetric int8 stage B in float arithmetic emulating the quantization instead
    /// of integer products (for comparisons; int8 models only, not with --tract-stage-b).
    #[arg(long, conflicts_with = "tract_stage_b")]
    pub emulate_int8: bool,
    /// How an int8 model's products run: `auto` (default) uses tract's integer kernels where
    /// the CPU has dot-product instructions (AVX-512 VNNI, Arm dotprod) and exact float
    /// elsewhere; `integer` or `float` forces one (both give the same levels).
    #[arg(long, value_enum, default_value_t = Int8Arg::Auto)]
    pub int8: Int8Arg,
    /// The most memory, in MiB, the engine's buffers that grow with the model's
    /// configuration (T, D, N, K) may need: a model that would need more is refused at
    /// load, saying how much (the paper configuration needs about 18). The default leaves a
    /// 1 GB board room for the rest.
    #[arg(long, default_value_t = bmn_edge::engine::DEFAULT_MAX_MEMORY >> 20)]
    pub max_memory: u64,
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
    /// bmn-edge's own AVX2 integer kernel for the BM projection and stage B (`vpmaddwd`; portable
    /// Rust on a CPU without AVX2); layers inside tract's graphs (stage A, a backbone) in
    /// exact float.
    Widened,
}

#[cfg(feature = "engine")]
impl Int8Arg {
    /// The engine's choice: `None` for the CPU's own.
    pub fn arithmetic(self) -> Option<bmn_edge::engine::Int8Arithmetic> {
        match self {
            Int8Arg::Auto => None,
            Int8Arg::Integer => Some(bmn_edge::engine::Int8Arithmetic::Integer),
            Int8Arg::Float => Some(bmn_edge::engine::Int8Arithmetic::ExactFloat),
            Int8Arg::Widened => Some(bmn_edge::engine::Int8Arithmetic::Widened),
        }
    }
}

#[cfg(feature = "engine")]
impl EngineArgs {
    /// The engine's options: `--threads`, else `default_threads` (in
    /// 1..=[`max_threads`] of the available cores), and the post-processing convention
    /// (`None`: the model's).
    pub fn options(
        &self,
        default_threads: usize,
        convention: Option<Convention>,
    ) -> Result<bmn_edge::engine::EngineOptions> {
        self.options_for_cores(default_threads, convention, available_cores())
    }

    /// [`Self::options`] on a machine with `cores` available cores.
    fn options_for_cores(
        &self,
        default_threads: usize,
        convention: Option<Convention>,
        cores: usize,
    ) -> Result<bmn_edge::engine::EngineOptions> {
        let threads = self.threads.unwrap_or(default_threads);
        if threads == 0 {
            bail!("--threads must be at least 1");
        }
        let max = max_threads(cores);
        if threads > max {
            bail!(
                "--threads {threads} is too many: at most {max} (4 × the {cores} available core(s), never above {MAX_THREADS})"
            );
        }
        if self.band_rows == Some(0) {
            bail!("--band-rows must be at least 1");
        }
        Ok(bmn_edge::engine::EngineOptions {
            threads,
            convention,
            band_rows: self.band_rows,
            tract_stage_b: self.tract_stage_b,
            emulate_int8_stage_b: self.emulate_int8,
            int8_arithmetic: self.int8.arithmetic(),
            max_memory: Some(check_max_memory(self.max_memory)?),
        })
    }
}

/// The most threads any command takes, however many cores there are.
#[cfg(feature = "engine")]
pub const MAX_THREADS: usize = 256;

/// The most threads accepted on a machine with `cores` available cores: 4 per core, at most
/// [`MAX_THREADS`].
#[cfg(feature = "engine")]
pub fn max_threads(cores: usize) -> usize {
    cores.max(1).saturating_mul(4).min(MAX_THREADS)
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
        // Under paddle the frame count changes nothing (with a warning).
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
        let o = parse(&["--threads", "2", "--band-rows", "10", "--tract-stage-b"])
            .options(7, Some(Convention::Paddle))
            .unwrap();
        assert_eq!(
            (o.threads, o.convention, o.band_rows, o.tract_stage_b, o.emulate_int8_stage_b),
            (2, Some(Convention::Paddle), Some(10), true, false)
        );
        assert!(parse(&["--emulate-int8"]).options(1, None).unwrap().emulate_int8_stage_b);
        let e = parse(&["--threads", "0"]).options(1, None).unwrap_err().to_string();
        assert!(e.contains("--threads must be at least 1"), "{e}");
        assert!(parse(&[]).options(0, None).is_err());
        // At most 4 threads per available core, never above 256.
        assert_eq!(
            (max_threads(0), max_threads(1), max_threads(2), max_threads(64), max_threads(1000)),
            (4, 4, 8, 256, 256)
        );
        assert_eq!(parse(&["--threads", "8"]).options_for_cores(1, None, 2).unwrap().threads, 8);
        let e = parse(&["--threads", "9"]).options_for_cores(1, None, 2).unwrap_err().to_string();
        assert!(e.contains("--threads 9 is too many: at most 8"), "{e}");
        let e = parse(&["--threads", "10000"]).options_for_cores(1, None, 4096).unwrap_err().to_string();
        assert!(e.contains("at most 256"), "{e}");
        // --band-rows only with --tract-stage-b (where it applies), and not 0; --emulate-int8
        // not with it (that stage B has nothing to emulate).
        let p = |a: &[&str]| E::try_parse_from(std::iter::once("t").chain(a.iter().copied()));
        assert!(p(&["--band-rows", "4"]).unwrap_err().to_string().contains("--tract-stage-b"));
        assert!(p(&["--tract-stage-b", "--emulate-int8"]).is_err());
        let e = parse(&["--tract-stage-b", "--band-rows", "0"]).options(1, None).unwrap_err().to_string();
        assert!(e.contains("--band-rows must be at least 1"), "{e}");
    }

    #[test]
    fn top_k_is_between_1_and_what_soft_nms_keeps() {
        assert_eq!(MAX_TOP_K, 101);
        assert_eq!((parse_top_k("1"), parse_top_k("101")), (Ok(1), Ok(101)));
        for bad in ["0", "102", "-1", "x"] {
            assert!(parse_top_k(bad).is_err(), "{bad}");
        }
    }
}

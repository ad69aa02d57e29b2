//! Pixels in, shared by the commands that take them (`features`, `detect --video`,
//! `stream --video`): where the frames come from ([`VideoArgs`]), the backbone and its
//! preprocessing ([`BackboneArgs`]), and [`open_features`], which chains them into a
//! [`SnippetFeatures`] stream — one snippet's frames in memory at a time.

use super::args::{Int8Arg, DEFAULT_SNIPPET_FRAMES};
use anyhow::{bail, Context, Result};
use bmn_edge::engine::backbone::{
    Backbone, BackboneOptions, BackboneThreads, FeatureError, PreprocessOverrides, SnippetFeatures,
};
use bmn_edge::pixels::{FrameFolder, FrameRate, FrameSource, RawRgb24, Sampling, Y4mReader};
use std::io::Read;
use std::path::PathBuf;

/// Where the frames come from.
#[derive(Debug, Clone, clap::Args)]
pub struct VideoArgs {
    /// The video: a YUV4MPEG2 file, or `-` for stdin (`ffmpeg -i in.mp4 -f yuv4mpegpipe
    /// -pix_fmt yuv420p -`); raw rgb24 with --rgb24.
    #[arg(long, conflicts_with = "frames_dir")]
    pub video: Option<PathBuf>,
    /// The video is raw rgb24 (`ffmpeg … -f rawvideo -pix_fmt rgb24 -`): needs --width,
    /// --height and --fps.
    #[arg(long, requires_all = ["width", "height", "fps", "video"])]
    pub rgb24: bool,
    /// Frame width of --rgb24.
    #[arg(long, requires = "rgb24")]
    pub width: Option<usize>,
    /// Frame height of --rgb24.
    #[arg(long, requires = "rgb24")]
    pub height: Option<usize>,
    /// A folder of numbered frames (`img_00001.jpg`, mmaction2's rawframes; JPEG or PNG),
    /// consecutive from 0 or 1; needs --fps.
    #[arg(long, requires = "fps")]
    pub frames_dir: Option<PathBuf>,
    /// The prefix of --frames-dir's file names (default `img_` if present, else the only one).
    #[arg(long, requires = "frames_dir")]
    pub frames_prefix: Option<String>,
    /// Frames per second (rgb24 and frame folders; for y4m it overrides the header's).
    #[arg(long)]
    pub fps: Option<f64>,
    /// Frames per snippet through the backbone, their features averaged: 1 (default) is
    /// the centre frame `16·i + 8`; K takes the centre of each of K equal parts.
    #[arg(long, default_value_t = 1)]
    pub frames_per_snippet: usize,
}

/// The backbone and its preprocessing.
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneArgs {
    /// Backbone ONNX: input [N, 3, H, W] (or [N, 1, 3, H, W]), output [N, C], [N, C, 1, 1] or
    /// a feature map [N, C, h, w] (averaged). Required with pixels in.
    #[arg(long)]
    pub backbone: Option<PathBuf>,
    /// Short side after resizing (default: the backbone's metadata, else ⌈crop·8/7⌉ = 256).
    #[arg(long, requires = "backbone")]
    pub resize: Option<usize>,
    /// Centre crop side (default: the backbone's metadata or fixed input size, else 224).
    #[arg(long, requires = "backbone")]
    pub crop: Option<usize>,
    /// Per-channel mean, RGB, 0–255 scale: three comma-separated numbers (default: the
    /// backbone's metadata, else ImageNet's 123.675,116.28,103.53).
    #[arg(long, requires = "backbone")]
    pub mean: Option<String>,
    /// Per-channel std, RGB, 0–255 scale (default: metadata, else 58.395,57.12,57.375).
    #[arg(long, requires = "backbone")]
    pub std: Option<String>,
    /// Snippets per backbone run (when the backbone's batch axis is dynamic). 1 is
    /// fastest with tract on ResNet-50 here (batch 4 took 1.5x longer per frame); with
    /// frame-level threads one run per thread is read ahead.
    #[arg(long, default_value_t = 1, requires = "backbone")]
    pub batch: usize,
    /// How an int8 backbone's convolutions run: `auto` (per CPU, as for BMN models),
    /// `integer` or `float` (exact float on the same levels).
    #[arg(long, value_enum, default_value_t = Int8Arg::Auto, requires = "backbone")]
    pub backbone_int8: Int8Arg,
    /// How the threads share the backbone: `frames` (default: one run of frames per thread,
    /// each single-threaded; reads one snippet per thread ahead) or `within` (each frame
    /// split over the threads by tract: the lowest latency per frame, less throughput).
    #[arg(long, value_enum, default_value_t = ThreadsArg::Frames, requires = "backbone")]
    pub backbone_threads: ThreadsArg,
    /// Leave the depthwise 3x3 convolutions to tract instead of bmn-edge's own kernel (to
    /// compare the two; the features agree to float rounding).
    #[arg(long, requires = "backbone")]
    pub tract_depthwise: bool,
}

/// `--backbone-threads`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ThreadsArg {
    /// One run of frames per thread.
    Frames,
    /// Each run split over the threads.
    Within,
}

impl From<ThreadsArg> for BackboneThreads {
    fn from(a: ThreadsArg) -> Self {
        match a {
            ThreadsArg::Frames => BackboneThreads::Frames,
            ThreadsArg::Within => BackboneThreads::Within,
        }
    }
}

impl BackboneArgs {
    /// The backbone's path; an error saying it is needed when absent.
    pub fn path(&self) -> Result<&std::path::Path> {
        self.backbone
            .as_deref()
            .context("pixels in (--video or --frames-dir) need --backbone: the ONNX that turns frames into features")
    }
}

fn triple(s: &str, what: &str) -> Result<[f32; 3]> {
    let v: Vec<f32> = s
        .split(',')
        .map(|p| p.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .with_context(|| format!("{what} {s:?}: not numbers"))?;
    match v.as_slice() {
        [a, b, c] => Ok([*a, *b, *c]),
        _ => bail!("{what} {s:?}: expected three comma-separated numbers (R,G,B), got {}", v.len()),
    }
}

/// What [`open_features`] opened.
pub struct Opened {
    /// The stream of snippet features.
    pub features: SnippetFeatures<Box<dyn FrameSource>>,
    /// The source's description.
    pub source: String,
    /// Minor page faults once the first snippet was out, and snippets since (see
    /// [`Opened::next`]).
    faults: Option<(u64, u64)>,
}

/// Opens the frame source of `v`.
pub fn open_source(v: &VideoArgs) -> Result<Box<dyn FrameSource>> {
    let rate = v.fps.map(FrameRate::from_f64).transpose().context("--fps")?;
    if let Some(dir) = &v.frames_dir {
        let rate = rate.context("--frames-dir needs --fps")?;
        return Ok(Box::new(FrameFolder::open(dir, rate, v.frames_prefix.as_deref())?));
    }
    let path = v.video.as_ref().context("--video or --frames-dir is required")?;
    let (reader, name): (Box<dyn Read>, String) = if path.as_os_str() == "-" {
        (Box::new(std::io::stdin()), "stdin".to_string())
    } else {
        if path.is_dir() {
            bail!("--video {} is a directory (a folder of frames is --frames-dir)", path.display());
        }
        let f = std::fs::File::open(path).with_context(|| format!("cannot open --video {}", path.display()))?;
        bmn_edge::io::note_input(path);
        (Box::new(f), path.display().to_string())
    };
    if v.rgb24 {
        let (Some(w), Some(h), Some(rate)) = (v.width, v.height, rate) else {
            bail!("--rgb24 needs --width, --height and --fps");
        };
        return Ok(Box::new(RawRgb24::new(reader, w, h, rate, &name)?));
    }
    let y4m = Y4mReader::new(reader, &name)?;
    Ok(match rate {
        Some(r) if r != y4m.rate() => {
            log::warn!("--fps {r} overrides the y4m header's {}", y4m.rate());
            Box::new(WithRate { inner: y4m, rate: r })
        }
        _ => Box::new(y4m),
    })
}

/// A source with its frame rate replaced.
struct WithRate<S> {
    inner: S,
    rate: FrameRate,
}

impl<S: FrameSource> FrameSource for WithRate<S> {
    fn size(&self) -> (usize, usize) {
        self.inner.size()
    }
    fn rate(&self) -> FrameRate {
        self.rate
    }
    fn read_frame(&mut self, out: &mut bmn_edge::pixels::RgbFrame) -> Result<bool, bmn_edge::pixels::PixelError> {
        self.inner.read_frame(out)
    }
    fn skip_frame(&mut self) -> Result<bool, bmn_edge::pixels::PixelError> {
        self.inner.skip_frame()
    }
    fn frames_read(&self) -> u64 {
        self.inner.frames_read()
    }
    fn describe(&self) -> String {
        format!("{} (rate set to {} fps)", self.inner.describe(), self.rate)
    }
}

/// Loads the backbone of `b` for `v`'s sampling, with `threads` threads for tract (tract's
/// executor is one per process: a command that also runs a BMN engine gives both the same).
fn load_backbone(b: &BackboneArgs, v: &VideoArgs, threads: usize) -> Result<Backbone> {
    let max = bmn_edge::engine::backbone::MAX_FRAMES_PER_RUN;
    if b.batch == 0 || v.frames_per_snippet == 0 || b.batch.saturating_mul(v.frames_per_snippet) > max {
        bail!(
            "--batch {} x --frames-per-snippet {} must be between 1 and {max} frames per backbone run",
            b.batch,
            v.frames_per_snippet
        );
    }
    let options = BackboneOptions {
        threads,
        batch: b.batch,
        per_snippet: v.frames_per_snippet,
        int8_arithmetic: b.backbone_int8.arithmetic(),
        parallel: b.backbone_threads.into(),
        own_depthwise: !b.tract_depthwise,
        overrides: PreprocessOverrides {
            resize: b.resize,
            crop: b.crop,
            mean: b.mean.as_deref().map(|s| triple(s, "--mean")).transpose()?,
            std: b.std.as_deref().map(|s| triple(s, "--std")).transpose()?,
        },
    };
    let path = b.path()?;
    Backbone::load(path, &options).with_context(|| format!("loading the backbone {}", path.display()))
}

/// The BMN model a backbone must feed: its path and input width `C`.
#[derive(Debug, Clone, Copy)]
pub struct Feeds<'a> {
    /// The BMN model's file (named in a mismatch's message).
    pub model: &'a std::path::Path,
    /// Its input width `C`.
    pub channels: usize,
}

/// Loads the backbone, checks its width against the model it `feeds` (before the video is
/// touched: a mismatch consumes nothing from stdin), opens the video and chains them;
/// `snippet_frames` frames per snippet, else the backbone's `bmn_edge.pixels.snippet_frames`,
/// else [`DEFAULT_SNIPPET_FRAMES`] (the one used: `Opened::features.summary().sampling`).
pub fn open_features(
    v: &VideoArgs,
    b: &BackboneArgs,
    snippet_frames: Option<usize>,
    threads: usize,
    feeds: Option<Feeds<'_>>,
) -> Result<Opened> {
    let backbone = load_backbone(b, v, threads)?;
    // Every command that runs a backbone opens it here, so none can forget this.
    super::process::prepare_for_backbone(backbone.buffers(), backbone.parallel_runs());
    let snippet_frames = snippet_frames.or(backbone.snippet_frames()).unwrap_or(DEFAULT_SNIPPET_FRAMES);
    let sampling =
        Sampling::new(snippet_frames, v.frames_per_snippet).context("--snippet-frames / --frames-per-snippet")?;
    if let Some(f) = feeds {
        check_widths(b.path()?, backbone.channels(), f.model, f.channels)?;
    }
    let source = open_source(v)?;
    let describe = source.describe();
    let features = SnippetFeatures::new(source, sampling, backbone, b.batch).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    Ok(Opened { features, source: describe, faults: None })
}

impl Opened {
    /// The next snippet's `C` features into `row`; `false` at the end. At the end it logs
    /// (info) the minor page faults of the snippets after the first: in a steady state the
    /// backbone reuses its buffers and faults in next to nothing, so a count near one
    /// frame's activation pages per snippet means the allocator maps them anew
    /// ([`super::process::prepare_for_backbone`] not in force).
    pub fn next(&mut self, row: &mut [f32]) -> Result<bool, FeatureError> {
        let more = self.features.next(row)?;
        match (&mut self.faults, more) {
            (None, true) => self.faults = super::process::minor_faults().map(|f| (f, 0)),
            (Some((_, n)), true) => *n += 1,
            (Some((first, n)), false) => {
                if let Some(now) = super::process::minor_faults() {
                    let faults = now.saturating_sub(*first);
                    log::info!(
                        "backbone: {faults} minor page faults in the {n} snippet(s) after the first ({:.1} per snippet)",
                        faults as f64 / (*n).max(1) as f64
                    );
                }
                self.faults = None;
            }
            (None, false) => {}
        }
        Ok(more)
    }

    /// Every snippet's `C` features, in order, to the end of the video or its first error
    /// (returned beside what came before it: nothing read whole is lost). A video without
    /// one whole snippet is an error (the reading error, if that is what stopped it).
    pub fn read_all(&mut self) -> Result<(Vec<f32>, Option<FeatureError>)> {
        let c = self.features.channels();
        let mut row = vec![0.0f32; c];
        let mut all = Vec::new();
        let mut failure = None;
        loop {
            match self.next(&mut row) {
                Ok(true) => all.extend_from_slice(&row),
                Ok(false) => break,
                Err(e) => {
                    failure = Some(e);
                    break;
                }
            }
        }
        if all.is_empty() {
            return Err(self.no_snippet(failure));
        }
        Ok((all, failure))
    }

    /// The error of a video without one whole snippet: the reading error, if that is what
    /// stopped it, else the frame count against the snippet length.
    pub fn no_snippet(&self, failure: Option<FeatureError>) -> anyhow::Error {
        if let Some(e) = failure {
            return anyhow::anyhow!("{e:#}");
        }
        let s = self.features.summary();
        anyhow::anyhow!(
            "no complete snippet: {} has {} frame(s), a snippet is {} frames; nothing written",
            self.source,
            s.frames,
            s.sampling.snippet_frames()
        )
    }
}

impl VideoArgs {
    /// Whether any video source was given (`--video` or `--frames-dir`).
    pub fn given(&self) -> bool {
        self.video.is_some() || self.frames_dir.is_some()
    }

    /// The source as the user named it (`--video FILE`, `--video -`, `--frames-dir DIR`).
    pub fn display(&self) -> String {
        match (&self.video, &self.frames_dir) {
            (Some(v), _) => v.display().to_string(),
            (None, Some(d)) => d.display().to_string(),
            (None, None) => "(no video)".to_string(),
        }
    }

    /// The video's name for results: the file's (or folder's) stem, `video` for stdin.
    pub fn name(&self) -> String {
        match self.video.as_ref().or(self.frames_dir.as_ref()) {
            Some(p) if p.as_os_str() != "-" => {
                p.file_stem().map_or_else(|| "video".to_string(), |s| s.to_string_lossy().into_owned())
            }
            _ => "video".to_string(),
        }
    }
}

/// Refuses a backbone whose feature width is not the BMN model's input width.
fn check_widths(backbone: &std::path::Path, c_backbone: usize, model: &std::path::Path, c_model: usize) -> Result<()> {
    if c_backbone != c_model {
        bail!(
            "the backbone {} gives C = {c_backbone} features per snippet, but the BMN model {} takes C = {c_model}: \
             they are not a pair (a BMN model is trained on one backbone's features)",
            backbone.display(),
            model.display()
        );
    }
    Ok(())
}

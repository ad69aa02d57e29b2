//! `bmn-edge features`: pixels → per-snippet features. A video (y4m from a file or stdin,
//! raw rgb24, or a folder of numbered JPEG/PNG frames) through the snippet sampling, the
//! preprocessing and a backbone ONNX, written as `[snippets, C]` float32 `.npy` with a JSON
//! sidecar (frame rate, frames, snippet frames, durations, the preprocessing used).
//!
//! [`VideoArgs`] and [`BackboneArgs`] are the argument groups a command that takes pixels
//! needs; [`open_features`] turns them into a [`SnippetFeatures`] stream.

use anyhow::{bail, Context, Result};
use bmn_edge::engine::backbone::{Backbone, BackboneOptions, FeatureError, PreprocessOverrides, SnippetFeatures};
use bmn_edge::engine::Int8Arithmetic;
use bmn_edge::pixels::{FrameFolder, FrameRate, FrameSource, RawRgb24, Sampling, VideoSummary, Y4mReader};
use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Where the frames come from.
#[derive(Debug, Clone, clap::Args)]
pub struct VideoArgs {
    /// The video: a YUV4MPEG2 file, or `-` for stdin (`ffmpeg -i in.mp4 -f yuv4mpegpipe
    /// -pix_fmt yuv420p -`); raw rgb24 with --rgb24.
    #[arg(long, required_unless_present = "frames_dir", conflicts_with = "frames_dir")]
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
    /// Frames per snippet (ActivityNet's 16).
    #[arg(long, default_value_t = 16)]
    pub snippet_frames: usize,
    /// Frames per snippet through the backbone, their features averaged: 1 (default) is
    /// the centre frame `16·i + 8`; K takes the centre of each of K equal parts.
    #[arg(long, default_value_t = 1)]
    pub frames_per_snippet: usize,
}

/// The backbone and its preprocessing.
#[derive(Debug, Clone, clap::Args)]
pub struct BackboneArgs {
    /// Backbone ONNX: input [N, 3, H, W] (or [N, 1, 3, H, W]), output [N, C], [N, C, 1, 1] or
    /// a feature map [N, C, h, w] (averaged).
    #[arg(long)]
    pub backbone: PathBuf,
    /// Short side after resizing (default: the backbone's metadata, else ⌈crop·8/7⌉ = 256).
    #[arg(long)]
    pub resize: Option<usize>,
    /// Centre crop side (default: the backbone's metadata or fixed input size, else 224).
    #[arg(long)]
    pub crop: Option<usize>,
    /// Per-channel mean, RGB, 0–255 scale: three comma-separated numbers (default: the
    /// backbone's metadata, else ImageNet's 123.675,116.28,103.53).
    #[arg(long)]
    pub mean: Option<String>,
    /// Per-channel std, RGB, 0–255 scale (default: metadata, else 58.395,57.12,57.375).
    #[arg(long)]
    pub std: Option<String>,
    /// Snippets per backbone run (when the backbone's batch axis is dynamic). 1 is
    /// fastest with tract on ResNet-50 here (batch 4 took 1.5x longer per frame), and keeps
    /// a live stream's latency at one snippet.
    #[arg(long, default_value_t = 1)]
    pub batch: usize,
    /// tract's threads for the backbone.
    #[arg(long, default_value_t = 1)]
    pub backbone_threads: usize,
    /// How an int8 backbone's convolutions run: `auto` (per CPU, as for BMN models),
    /// `integer` or `float` (exact float on the same levels).
    #[arg(long, default_value = "auto")]
    pub backbone_int8: String,
}

/// Arguments of `bmn-edge features`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    video: VideoArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// Output .npy ([snippets, C] float32); the sidecar goes beside it (`.json`).
    #[arg(long)]
    out: PathBuf,
    /// The JSON sidecar's path (default: --out with the extension `.json`).
    #[arg(long)]
    sidecar: Option<PathBuf>,
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

/// Loads the backbone of `b` for `v`'s sampling.
pub fn load_backbone(b: &BackboneArgs, v: &VideoArgs) -> Result<Backbone> {
    let int8_arithmetic = match b.backbone_int8.as_str() {
        "auto" => None,
        s => Some(
            Int8Arithmetic::parse(s)
                .with_context(|| format!("--backbone-int8 {s:?}: expected auto, integer or float"))?,
        ),
    };
    if b.batch == 0 {
        bail!("--batch must be at least 1");
    }
    if b.backbone_threads == 0 {
        bail!("--backbone-threads must be at least 1");
    }
    let options = BackboneOptions {
        threads: b.backbone_threads,
        batch: b.batch,
        per_snippet: v.frames_per_snippet,
        int8_arithmetic,
        overrides: PreprocessOverrides {
            resize: b.resize,
            crop: b.crop,
            mean: b.mean.as_deref().map(|s| triple(s, "--mean")).transpose()?,
            std: b.std.as_deref().map(|s| triple(s, "--std")).transpose()?,
        },
    };
    Ok(Backbone::load(&b.backbone, &options)?)
}

/// Opens the video, loads the backbone and chains them.
pub fn open_features(v: &VideoArgs, b: &BackboneArgs) -> Result<Opened> {
    let sampling =
        Sampling::new(v.snippet_frames, v.frames_per_snippet).context("--snippet-frames / --frames-per-snippet")?;
    let backbone = load_backbone(b, v)?;
    let source = open_source(v)?;
    let describe = source.describe();
    let features = SnippetFeatures::new(source, sampling, backbone, b.batch).map_err(|e| anyhow::anyhow!("{e:#}"))?;
    Ok(Opened { features, source: describe })
}

/// The sidecar's fields for a video read (completely or up to an error).
pub fn sidecar_json(s: &VideoSummary, opened: &Opened, backbone_path: &Path, error: Option<&str>) -> serde_json::Value {
    let f = &opened.features;
    let p = f.backbone().preprocess();
    let r = f.frames().resized();
    serde_json::json!({
        "source": opened.source,
        "fps": s.rate.fps(),
        "fps_rational": s.rate.to_string(),
        "frames": s.frames,
        "snippet_frames": s.sampling.snippet_frames(),
        "frames_per_snippet": s.sampling.per_snippet(),
        "sample_offsets": s.sampling.offsets(),
        "snippets": s.snippets,
        "channels": f.channels(),
        "dropped_frames": s.dropped_frames(),
        "duration_second": s.duration_second(),
        "duration_corrected": s.duration_corrected(),
        "duration_corrected_note": "mmaction2: floor(frames / snippet_frames) * snippet_frames / frames * duration_second",
        "preprocess": {
            "resize": p.resize, "crop": p.crop, "mean": p.mean, "std": p.std,
            "resized_size": r.resized_size(), "crop_offset": r.crop_offset(),
        },
        "backbone": {
            "path": backbone_path.display().to_string(),
            "frames_per_run": f.backbone().frames_per_run(),
            "int8": f.backbone().int8().map(|a| a.name()),
        },
        "complete": error.is_none(),
        "error": error,
    })
}

/// Runs `bmn-edge features`.
pub fn run(a: Args) -> Result<()> {
    let started = Instant::now();
    let sidecar = a.sidecar.clone().unwrap_or_else(|| a.out.with_extension("json"));
    if sidecar == a.out {
        bail!("the sidecar would overwrite --out {}: give the features a .npy name or --sidecar", a.out.display());
    }
    let mut opened = open_features(&a.video, &a.backbone)?;
    let c = opened.features.channels();
    let mut row = vec![0.0f32; c];
    let mut feats: Vec<f32> = Vec::new();
    let mut error: Option<FeatureError> = None;
    loop {
        match opened.features.next(&mut row) {
            Ok(true) => feats.extend_from_slice(&row),
            Ok(false) => break,
            Err(e) => {
                error = Some(e);
                break;
            }
        }
    }
    let summary = opened.features.summary();
    let snippets = feats.len() / c;
    if snippets == 0 {
        if let Some(e) = error {
            bail!("{e:#}");
        }
        bail!(
            "no complete snippet: {} has {} frame(s), a snippet is {} frames; nothing written",
            opened.source,
            summary.frames,
            summary.sampling.snippet_frames()
        );
    }
    let message = error.as_ref().map(|e| format!("{e:#}"));
    bmn_edge::npy::write_f32(&a.out, &[snippets, c], &feats)?;
    let json = sidecar_json(&summary, &opened, &a.backbone.backbone, message.as_deref());
    super::output::write_file(&sidecar, format!("{}\n", serde_json::to_string_pretty(&json)?).as_bytes())?;
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{}: {} frames, {snippets} snippets x {c} features -> {} ({:.1} s, {:.1} frames/s)",
        opened.source,
        summary.frames,
        a.out.display(),
        secs,
        summary.frames as f64 / secs.max(1e-9)
    );
    if let Some(m) = message {
        bail!(
            "{m}; the {snippets} complete snippet(s) before it were written to {} (sidecar: \"complete\": false)",
            a.out.display()
        );
    }
    Ok(())
}

//! `bmn-edge features`: pixels → per-snippet features. A video (y4m from a file or stdin,
//! raw rgb24, or a folder of numbered JPEG/PNG frames) through the snippet sampling, the
//! preprocessing and a backbone ONNX (the shared [`super::video`] pieces), written as
//! `[snippets, C]` float32 `.npy` with a JSON sidecar (frame rate, frames, snippet frames,
//! durations, the preprocessing used).

use super::args::{available_cores, max_threads};
use super::video::{open_features, BackboneArgs, Opened, VideoArgs};
use anyhow::{bail, Context, Result};
use bmn_edge::pixels::VideoSummary;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Arguments of `bmn-edge features`.
#[derive(Debug, clap::Args)]
pub struct Args {
    #[command(flatten)]
    video: VideoArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// Frames per snippet (default: the backbone's `bmn_edge.pixels.snippet_frames`, else
    /// ActivityNet's 16).
    #[arg(long)]
    snippet_frames: Option<usize>,
    /// tract's threads for the backbone (default: the available cores).
    #[arg(long)]
    threads: Option<usize>,
    /// Output .npy ([snippets, C] float32); the sidecar goes beside it (`.json`).
    #[arg(long)]
    out: PathBuf,
    /// The JSON sidecar's path (default: --out with the extension `.json`).
    #[arg(long)]
    sidecar: Option<PathBuf>,
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
    let cores = available_cores();
    let threads = a.threads.unwrap_or(cores);
    if threads == 0 || threads > max_threads(cores) {
        bail!("--threads {threads}: expected 1..={} (4 × the {cores} available core(s))", max_threads(cores));
    }
    let video = a.video.video.as_deref().filter(|p| p.as_os_str() != "-");
    bmn_edge::io::refuse_overlap(
        &[("--out", Some(&a.out)), ("--sidecar", Some(&sidecar))],
        &[("--video", video), ("--backbone", a.backbone.backbone.as_deref())],
    )?;
    let mut opened = open_features(&a.video, &a.backbone, a.snippet_frames, threads, None)?;
    let c = opened.features.channels();
    let (feats, error) = opened.read_all()?;
    let summary = opened.features.summary();
    let snippets = feats.len() / c;
    let message = error.as_ref().map(|e| format!("{e:#}"));
    // Both written whole before either is put in place: a sidecar that cannot be written
    // leaves no features without it.
    let npy = bmn_edge::npy::stage_f32(&a.out, &[snippets, c], &feats)?;
    let json = sidecar_json(&summary, &opened, a.backbone.path()?, message.as_deref());
    let text = format!("{}\n", serde_json::to_string_pretty(&json)?);
    let side = bmn_edge::io::stage(&sidecar, |w| w.write_all(text.as_bytes()))
        .with_context(|| format!("cannot write the sidecar {}", sidecar.display()))?;
    npy.commit().with_context(|| format!("cannot write {}", a.out.display()))?;
    side.commit().with_context(|| format!("cannot write the sidecar {}", sidecar.display()))?;
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

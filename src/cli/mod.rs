//! Command-line parsing and dispatch. Each command lives in its own module and imports only
//! the shared modules, never another command: [`args`] (argument groups and values shared
//! by several commands), [`output`] (writing results) and [`process`] (allocator and memory
//! tuning), and for the commands that take pixels [`video`] (frames, backbone, snippet
//! features).

pub mod args;
pub mod output;
pub mod process;
#[cfg(feature = "engine")]
pub mod video;

#[cfg(feature = "engine")]
pub mod bench;
#[cfg(feature = "engine")]
pub mod convert;
#[cfg(feature = "engine")]
pub mod detect;
pub mod eval;
#[cfg(feature = "engine")]
pub mod features;
#[cfg(feature = "gpio")]
pub mod gpio;
#[cfg(feature = "engine")]
pub mod inspect;
pub mod mask;
pub mod merge;
#[cfg(feature = "engine")]
pub mod plot;
pub mod postprocess;
#[cfg(feature = "engine")]
pub mod stream;

use anyhow::Result;
use clap::{Parser, Subcommand};

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
    /// Score proposals with the official ActivityNet metric (AR@1/5/10/100, AUC; percent), or
    /// with --detection labelled detections with the official detection metric (AP, mAP; percent).
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
    /// Index a live stream of features: JSON lines of proposals as soon as they are final.
    #[cfg(feature = "engine")]
    Stream(stream::Args),
    /// Pixels to features: a video through a backbone ONNX -> [snippets, C] .npy + JSON sidecar.
    #[cfg(feature = "engine")]
    Features(features::Args),
    /// Merge the results files of several shards of a collection into one.
    Merge(merge::Args),
    /// Draw a video's start/end curves, a confidence map and its proposals as SVG.
    #[cfg(feature = "engine")]
    Plot(plot::Args),
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
        #[cfg(feature = "engine")]
        Command::Stream(a) => stream::run(a),
        #[cfg(feature = "engine")]
        Command::Features(a) => features::run(a),
        Command::Merge(a) => merge::run(a),
        #[cfg(feature = "engine")]
        Command::Plot(a) => plot::run(a),
    }
}

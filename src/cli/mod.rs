//! Command-line parsing and dispatch. Each command lives in its own module and imports only
//! the shared modules, never another command: [`args`] (argument groups and values shared
//! by several commands), [`output`] (writing results) and [`process`] (allocator and memory
//! tuning).

pub mod args;
pub mod output;
pub mod process;

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

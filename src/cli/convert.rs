//! `bmn-edge convert`: standard export → edge format (no dense mask, parameters in metadata).

use super::args::{ConventionArg, ModeArg};
use super::output::write_file;
use anyhow::{bail, Context, Result};
use bmn_edge::engine::detect::WindowMode;
use bmn_edge::engine::{convert_to_edge, Converted, ModelFormat};
use bmn_edge::npy::{read_regular_file, MAX_MODEL_FILE_BYTES};
use std::path::PathBuf;

/// Arguments of `bmn-edge convert`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// A standard BMN ONNX export (dense BM mask).
    input: PathBuf,
    /// The edge-format ONNX to write.
    #[arg(short, long)]
    output: PathBuf,
    /// Convention stored in the file (default: by variant, Paddle → paddle).
    #[arg(long, value_enum)]
    convention: Option<ConventionArg>,
    /// Default window mode stored in the file.
    #[arg(long, value_enum, default_value = "sliding")]
    mode: ModeArg,
}

/// Runs `bmn-edge convert`.
pub fn run(a: Args) -> Result<()> {
    let bytes = read_regular_file(&a.input, MAX_MODEL_FILE_BYTES)
        .with_context(|| format!("cannot read {}", a.input.display()))?;
    let in_len = bytes.len();
    let mode = WindowMode::from(a.mode);
    let Converted { edge, info, input_format } = convert_to_edge(bytes, a.convention.map(Into::into), mode)
        .with_context(|| format!("converting {}", a.input.display()))?;
    if a.output == a.input {
        bail!("refusing to overwrite the input; choose another output path");
    }
    write_file(&a.output, &edge)?;
    let c = info.config;
    let what = match input_format {
        ModelFormat::Standard => format!("mask verified ({} non-zeros) and dropped", info.mask_nnz),
        ModelFormat::Edge => "already an edge file: its metadata checked against its graph and rewritten".to_string(),
    };
    eprintln!(
        "{} ({:.1} MB) -> {} ({:.1} MB): {} variant, T = {}, D = {}, N = {}, K = {}, r = {}, convention {}, {what}",
        a.input.display(),
        in_len as f64 / 1e6,
        a.output.display(),
        edge.len() as f64 / 1e6,
        info.variant,
        c.tscale(),
        c.dscale(),
        c.num_sample(),
        c.num_sample_perbin(),
        c.ratio(),
        c.convention(),
    );
    Ok(())
}

//! `bmn-edge inspect`: what a model file is.

use super::output::{cpu_json, cpu_line, write_output};
use anyhow::{Context, Result};
use bmn_edge::engine::{inspect, CpuReport, ModelInfo};
use std::path::PathBuf;

/// Arguments of `bmn-edge inspect`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// The ONNX file (standard export or edge format).
    model: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn to_json(info: &ModelInfo) -> serde_json::Value {
    let c = info.config;
    serde_json::json!({
        "format": info.format.name(),
        "quantized_ops": info.quantized_ops,
        "variant": info.variant.to_string(),
        "tscale": c.tscale(), "dscale": c.dscale(), "num_sample": c.num_sample(),
        "num_sample_perbin": c.num_sample_perbin(), "ratio": c.ratio(),
        "convention": c.convention().name(),
        "window_mode": info.window_mode.map(|m| m.name()),
        "channels": info.channels, "pem_width": info.pem_width, "bm_width": info.bm_width,
        "mask_nnz": info.mask_nnz,
        "input": info.input,
        "outputs": {"confidence": info.outputs[0], "start": info.outputs[1], "end": info.outputs[2]},
        "opset": info.opset,
        "warnings": info.warnings,
        "this_cpu": cpu_json(&CpuReport::this_cpu()),
    })
}

/// Runs `bmn-edge inspect`.
pub fn run(a: Args) -> Result<()> {
    let info = inspect(&a.model).with_context(|| format!("inspecting {}", a.model.display()))?;
    // The whole text first, then one checked write: a full or closed stdout is an error.
    let mut s = String::new();
    macro_rules! line {
        ($($t:tt)*) => {{
            s.push_str(&format!($($t)*));
            s.push('\n');
        }};
    }
    if a.json {
        line!("{}", serde_json::to_string_pretty(&to_json(&info))?);
        return write_output(None, s.trim_end());
    }
    let c = info.config;
    let format = if info.quantized_ops.is_empty() {
        info.format.name().to_string()
    } else {
        format!("{} (int8: {})", info.format.name(), info.quantized_ops.join(", "))
    };
    line!("format      {format}");
    line!("variant     {} (P = {}, O = {})", info.variant, info.pem_width, info.bm_width);
    line!("T D N K r   {} {} {} {} {}", c.tscale(), c.dscale(), c.num_sample(), c.num_sample_perbin(), c.ratio());
    line!("convention  {}", c.convention());
    if let Some(m) = info.window_mode {
        line!("window mode {}", m.name());
    }
    line!("input       {} [1, {}, {}]", info.input, info.channels, c.tscale());
    line!("outputs     confidence = {}, start = {}, end = {}", info.outputs[0], info.outputs[1], info.outputs[2]);
    line!("mask nnz    {}", info.mask_nnz);
    line!("opset       {}", info.opset);
    line!("this CPU    {}", cpu_line(&CpuReport::this_cpu()));
    for w in &info.warnings {
        line!("warning     {w}");
    }
    write_output(None, s.trim_end())
}

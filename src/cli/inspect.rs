//! `bmn-edge inspect`: what a model file is.

use super::output::{cpu_json, cpu_line};
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
    if a.json {
        println!("{}", serde_json::to_string_pretty(&to_json(&info))?);
        return Ok(());
    }
    let c = info.config;
    let format = if info.quantized_ops.is_empty() {
        info.format.name().to_string()
    } else {
        format!("{} (int8: {})", info.format.name(), info.quantized_ops.join(", "))
    };
    println!("format      {format}");
    println!("variant     {} (P = {}, O = {})", info.variant, info.pem_width, info.bm_width);
    println!("T D N K r   {} {} {} {} {}", c.tscale(), c.dscale(), c.num_sample(), c.num_sample_perbin(), c.ratio());
    println!("convention  {}", c.convention());
    if let Some(m) = info.window_mode {
        println!("window mode {}", m.name());
    }
    println!("input       {} [1, {}, {}]", info.input, info.channels, c.tscale());
    println!("outputs     confidence = {}, start = {}, end = {}", info.outputs[0], info.outputs[1], info.outputs[2]);
    println!("mask nnz    {}", info.mask_nnz);
    println!("opset       {}", info.opset);
    println!("this CPU    {}", cpu_line(&CpuReport::this_cpu()));
    for w in &info.warnings {
        println!("warning     {w}");
    }
    Ok(())
}

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
    /// The file is a feature backbone (frames -> features), not a BMN model: its input,
    /// output, preprocessing, int8 arithmetic, and which operators run where (tract's, or
    /// bmn-edge's own kernels), as `features` would load it.
    #[arg(long)]
    backbone: bool,
}

/// `inspect --backbone`.
fn run_backbone(a: &Args) -> Result<()> {
    use bmn_edge::engine::backbone::{Backbone, BackboneOptions};
    let b = Backbone::load(&a.model, &BackboneOptions::default())
        .with_context(|| format!("inspecting the backbone {}", a.model.display()))?;
    let p = b.preprocess();
    let ops = b.plan_ops();
    if a.json {
        let json = serde_json::json!({
            "input": b.input_shape(),
            "channels": b.channels(),
            "output": match b.output() {
                bmn_edge::engine::backbone::BackboneOutput::Vector => "vector".to_string(),
                bmn_edge::engine::backbone::BackboneOutput::Map { cells } => format!("map of {cells} cells, averaged"),
            },
            "preprocess": {"resize": p.resize, "crop": p.crop, "mean": p.mean, "std": p.std},
            "snippet_frames": b.snippet_frames(),
            "int8": b.int8().map(|i| i.name()),
            "onnxruntime_contrib_ops_in_float": b.lowered_ops().iter().map(|(op, n)| serde_json::json!({"op": op, "count": n})).collect::<Vec<_>>(),
            "bmn_edge_depthwise": b.own_depthwise(),
            "qdq_convs_as_qlinearconv": b.qdq_convs(),
            "plan_ops": ops.iter().map(|(op, n)| serde_json::json!({"op": op, "count": n})).collect::<Vec<_>>(),
            "this_cpu": cpu_json(&CpuReport::this_cpu()),
        });
        println!("{}", serde_json::to_string_pretty(&json)?);
        return Ok(());
    }
    println!("format      backbone (frames -> features)");
    println!("input       {:?}", b.input_shape());
    println!("features    C = {} ({:?})", b.channels(), b.output());
    println!("preprocess  resize {}, crop {}, mean {:?}, std {:?}", p.resize, p.crop, p.mean, p.std);
    if let Some(f) = b.snippet_frames() {
        println!("snippet     {f} frames (the file's)");
    }
    println!("arithmetic  {}", b.int8().map_or("fp32".to_string(), |i| format!("int8 ({})", i.name())));
    for (op, n) in b.lowered_ops() {
        println!("in float    {n} x {op} (onnxruntime contrib op: dequantize, op, quantize)");
    }
    if b.qdq_convs() > 0 {
        println!(
            "QDQ         {} convolution(s) (DequantizeLinear -> Conv -> QuantizeLinear) run as QLinearConv",
            b.qdq_convs()
        );
    }
    println!("bmn-edge    {} depthwise 3x3 convolution(s) on bmn-edge's kernel", b.own_depthwise());
    let list: Vec<String> = ops.iter().map(|(op, n)| format!("{op} x{n}")).collect();
    println!("plan        {}", list.join(", "));
    println!("this CPU    {}", cpu_line(&CpuReport::this_cpu()));
    Ok(())
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
    if a.backbone {
        return run_backbone(&a);
    }
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

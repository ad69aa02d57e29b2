//! `bmn-edge bench`: median latency per stage and peak RSS.

use anyhow::{bail, Context, Result};
use bmn_edge::engine::{Engine, EngineOptions};
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `bmn-edge bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model (standard export or edge file).
    #[arg(long)]
    model: PathBuf,
    /// Threads for tract's matrix products and the BM kernel.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Timed iterations (after two warm-up runs).
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Input window: a features file ([L, C] .npy or BSN csv; the first T rows, edge-padded);
    /// default: seeded pseudo-random values.
    #[arg(long)]
    features: Option<PathBuf>,
    /// Map rows per stage-B band when stage B runs in tract (quantized models, or with
    /// --tract-stage-b; default 25): smaller bands use less memory and a little more
    /// arithmetic; the map's D runs stage B on the whole map.
    #[arg(long)]
    band_rows: Option<usize>,
    /// Run stage B as tract runs the graph (row bands) instead of the sparse tail.
    #[arg(long)]
    tract_stage_b: bool,
    /// Run a symmetric int8 stage B in float arithmetic emulating the quantization instead
    /// of integer products (for comparisons).
    #[arg(long)]
    emulate_int8: bool,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// Peak resident set size of this process (VmHWM), in MiB.
pub fn peak_rss_mb() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        0.5 * (v[n / 2 - 1] + v[n / 2])
    }
}

/// Runs `bmn-edge bench`.
pub fn run(a: Args) -> Result<()> {
    if a.iterations == 0 || a.threads == 0 {
        bail!("--iterations and --threads must be at least 1");
    }
    let t0 = Instant::now();
    let mut engine = Engine::load(
        &a.model,
        &EngineOptions {
            threads: a.threads,
            convention: None,
            band_rows: a.band_rows,
            tract_stage_b: a.tract_stage_b,
            emulate_int8_stage_b: a.emulate_int8,
        },
    )
    .with_context(|| format!("loading {}", a.model.display()))?;
    crate::prepare_for_windows();
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let cfg = *engine.config();
    let (c, t, d) = (engine.info().channels, cfg.tscale(), cfg.dscale());
    let x: Vec<f32> = match &a.features {
        Some(p) => {
            let (f, l, fc) = super::detect::read_features(p)?;
            if fc != c {
                bail!("{}: feature width {fc} does not match the model's C = {c}", p.display());
            }
            let mut x = vec![0.0; c * t];
            for col in 0..t {
                let row = col.min(l - 1);
                for ch in 0..c {
                    x[ch * t + col] = f[row * c + ch];
                }
            }
            x
        }
        None => {
            // xorshift, then roughly unit-variance values.
            let mut s: u64 = 0x9e37_79b9_7f4a_7c15;
            (0..c * t)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 7;
                    s ^= s << 17;
                    ((s >> 40) as f32 / (1u64 << 24) as f32 - 0.5) * 3.4
                })
                .collect()
        }
    };
    let mut starts = vec![false; t];
    let mut ends = vec![false; t];
    let mut pairs = vec![Proposal::default(); t * d];
    let (mut sa, mut sbm, mut sb, mut sp, mut tot) = (vec![], vec![], vec![], vec![], vec![]);
    for i in 0..a.iterations + 2 {
        let w0 = Instant::now();
        let (out, times) = engine.run(&x)?;
        let p0 = Instant::now();
        let maps = WindowMaps::new(&cfg, &out.start, &out.end, &out.confidence)?;
        postprocess_window(&cfg, &maps, &mut starts, &mut ends, &mut pairs, 100)?;
        let post = p0.elapsed().as_secs_f64() * 1e3;
        let total = w0.elapsed().as_secs_f64() * 1e3;
        if i >= 2 {
            sa.push(times.stage_a.as_secs_f64() * 1e3);
            sbm.push(times.bm.as_secs_f64() * 1e3);
            sb.push(times.stage_b.as_secs_f64() * 1e3);
            sp.push(post);
            tot.push(total);
        }
    }
    let info = engine.info();
    let (ma, mbm, mb, mp, mt) = (median(&mut sa), median(&mut sbm), median(&mut sb), median(&mut sp), median(&mut tot));
    let rss = peak_rss_mb().unwrap_or(f64::NAN);
    if a.json {
        let v = serde_json::json!({
            "model": a.model.display().to_string(),
            "format": info.format.name(),
            "variant": info.variant,
            "threads": a.threads,
            "band_rows": a.band_rows,
            "stage_b_form": engine.stage_b_form(),
            "simd": engine.kernel().simd().name(),
            "iterations": a.iterations,
            "load_ms": load_ms,
            "total_ms": mt,
            "best_total_ms": tot.iter().copied().fold(f64::INFINITY, f64::min),
            "stages_ms": {"stage_a": ma, "bm": mbm, "stage_b": mb, "post": mp},
            "peak_rss_mb": rss,
        });
        println!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        println!("model     {} ({}, {} variant)", a.model.display(), info.format.name(), info.variant);
        println!("threads   {}, {} iterations (median per window)", a.threads, a.iterations);
        println!("kernels   stage B {}, BM {}", engine.stage_b_form(), engine.kernel().simd().name());
        println!("load      {load_ms:9.1} ms");
        println!("stage A   {ma:9.2} ms");
        println!("BM        {mbm:9.2} ms");
        println!("stage B   {mb:9.2} ms");
        println!("post      {mp:9.2} ms");
        println!("total     {mt:9.2} ms");
        println!("peak RSS  {rss:9.1} MB");
    }
    Ok(())
}

//! `bmn-edge bench`: median latency per stage and peak RSS.

use super::args::EngineArgs;
use super::output::{cpu_json, cpu_line};
use super::process::{self, peak_rss_mb};
use anyhow::{bail, Context, Result};
use bmn_edge::engine::{CpuReport, Engine};
use bmn_edge::features::read_features;
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `bmn-edge bench`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model (standard export or edge file).
    #[arg(long)]
    model: PathBuf,
    /// Timed iterations (after two warm-up runs), 1..=1000000.
    #[arg(long, default_value_t = 10)]
    iterations: usize,
    /// Input window: a features file ([L, C] .npy or BSN csv; the first T rows, edge-padded);
    /// default: seeded pseudo-random values.
    #[arg(long)]
    features: Option<PathBuf>,
    #[command(flatten)]
    engine: EngineArgs,
    /// Print JSON.
    #[arg(long)]
    json: bool,
}

/// The most timed iterations: a million windows of the paper configuration take hours, and
/// the timings kept are 40 bytes each.
const MAX_ITERATIONS: usize = 1_000_000;

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
    if !(1..=MAX_ITERATIONS).contains(&a.iterations) {
        bail!("--iterations {} is not in 1..={MAX_ITERATIONS}", a.iterations);
    }
    // One thread unless told: the per-window cost on one core.
    let options = a.engine.options(1, None)?;
    let threads = options.threads;
    let t0 = Instant::now();
    let mut engine = Engine::load(&a.model, &options).with_context(|| format!("loading {}", a.model.display()))?;
    process::prepare_for_windows();
    let load_ms = t0.elapsed().as_secs_f64() * 1e3;
    let cfg = engine.config().post();
    let (c, t, d) = (engine.info().channels, cfg.tscale(), cfg.dscale());
    let x: Vec<f32> = match &a.features {
        Some(p) => {
            let features = read_features(p)?;
            let (f, l, fc) = (&features.data, features.snippets, features.channels);
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
    // The whole text first, then one checked write: a full or closed stdout is an error.
    let mut s = String::new();
    macro_rules! line {
        ($($t:tt)*) => {{
            s.push_str(&format!($($t)*));
            s.push('\n');
        }};
    }
    if a.json {
        let v = serde_json::json!({
            "model": a.model.display().to_string(),
            "format": info.format.name(),
            "variant": info.variant.to_string(),
            "threads": threads,
            "band_rows": a.engine.band_rows,
            "stage_b_form": engine.stage_b_form().name(),
            "simd": engine.kernel().simd().name(),
            "int8": engine.int8_plan().map(|p| serde_json::json!({
                "arithmetic": p.chosen.name(),
                "forced": p.forced,
                "stage_a": p.stage_a.map(|a| a.name()),
                "projection": p.projection.map(|a| a.name()),
                "stage_b": p.stage_b.iter().map(|a| a.name()).collect::<Vec<_>>(),
                "widened_code": p.widened_code().map(|c| c.name()),
            })),
            "this_cpu": cpu_json(&CpuReport::this_cpu()),
            "iterations": a.iterations,
            "load_ms": load_ms,
            "total_ms": mt,
            "best_total_ms": tot.iter().copied().fold(f64::INFINITY, f64::min),
            "stages_ms": {"stage_a": ma, "bm": mbm, "stage_b": mb, "post": mp},
            "peak_rss_mb": rss,
        });
        line!("{}", serde_json::to_string_pretty(&v)?);
    } else {
        line!("model     {} ({}, {} variant)", a.model.display(), info.format.name(), info.variant);
        line!("threads   {threads}, {} iterations (median per window)", a.iterations);
        line!("kernels   stage B {}, BM {}", engine.stage_b_form().name(), engine.kernel().simd().name());
        if let Some(p) = engine.int8_plan() {
            line!(
                "int8      {} ({}): stage A {}, projection {}, stage B {}{}",
                p.chosen.name(),
                if p.forced { "forced" } else { "chosen for this CPU" },
                p.stage_a.map_or("-", |a| a.name()),
                p.projection.map_or("-", |a| a.name()),
                p.stage_b.iter().map(|a| a.name()).collect::<Vec<_>>().join(", "),
                p.widened_code().map_or(String::new(), |c| format!("; widened code {}", c.name())),
            );
        }
        line!("this CPU  {}", cpu_line(&CpuReport::this_cpu()));
        line!("load      {load_ms:9.1} ms");
        line!("stage A   {ma:9.2} ms");
        line!("BM        {mbm:9.2} ms");
        line!("stage B   {mb:9.2} ms");
        line!("post      {mp:9.2} ms");
        line!("total     {mt:9.2} ms");
        line!("peak RSS  {rss:9.1} MB");
    }
    super::output::write_output(None, s.trim_end())
}

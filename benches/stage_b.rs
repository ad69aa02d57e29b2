//! Stage B (the 2-d convolutions, H[512, D, T] → confidence[2, D, T]), 1 and 2 threads:
//! the sparse Winograd tail (fp32), and for an int8 model the integer tail against the float
//! emulation of the same quantized graph.
//!
//! Models: `$BMN_BENCH_MODEL` alone when set; else the paper-config edge files that
//! `benches/onnxruntime_compare.py --int8` writes into `bench/` of the work directory
//! (`$BMN_EDGE_WORK`, default `models/work/` in the checkout) — `bmn_paper_pytorch_edge.onnx`
//! and `bmn_paper_pytorch_int8c3_edge.onnx` — where they exist; else the shipped models
//! (`models/bmn_synth_{fp32,int8}.edge.onnx`, T = D = 100, O = 512). The int8 model runs
//! three ways: integer products, exact float products (the same levels) and the float
//! emulation (Winograd).

use bmn_edge::engine::{Engine, EngineOptions, Int8Arithmetic};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::{Path, PathBuf};

fn models() -> Vec<(&'static str, PathBuf)> {
    if let Ok(p) = std::env::var("BMN_BENCH_MODEL") {
        return vec![("model", p.into())];
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::var_os("BMN_EDGE_WORK").map_or_else(|| root.join("models").join("work"), PathBuf::from);
    let pick = |paper: &str, shipped: &str| {
        let p = work.join("bench").join(paper);
        if p.exists() {
            p
        } else {
            root.join("models").join(shipped)
        }
    };
    vec![
        ("fp32", pick("bmn_paper_pytorch_edge.onnx", "bmn_synth_fp32.edge.onnx")),
        ("int8", pick("bmn_paper_pytorch_int8c3_edge.onnx", "bmn_synth_int8.edge.onnx")),
    ]
}

fn bench(c: &mut Criterion) {
    for (kind, path) in models() {
        let forms: &[(bool, Option<Int8Arithmetic>)] = if kind == "int8" {
            &[(false, Some(Int8Arithmetic::Integer)), (false, Some(Int8Arithmetic::ExactFloat)), (true, None)]
        } else {
            &[(false, None)]
        };
        for &(emulate, arithmetic) in forms {
            let opts = EngineOptions {
                threads: 1,
                emulate_int8_stage_b: emulate,
                int8_arithmetic: arithmetic,
                ..EngineOptions::default()
            };
            let mut engine = Engine::load(&path, &opts).expect("model");
            let cfg = engine.config().post();
            let len = engine.info().bm_width * cfg.dscale() * cfg.tscale();
            let h: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
            let form = match arithmetic {
                Some(a) => format!("{}-{}", engine.stage_b_form().name(), a.name()),
                None => engine.stage_b_form().name().to_string(),
            };
            let name = format!("stage_b/{kind}/T{}_O{}/{form}", cfg.tscale(), engine.info().bm_width);
            for threads in [1, 2] {
                engine.set_threads(threads).expect("worker threads");
                c.bench_function(&format!("{name}/{threads}t"), |b| {
                    b.iter(|| engine.run_stage_b(black_box(&h)).unwrap())
                });
            }
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);

//! Stage B (the 2-d convolutions, H[512, D, T] → confidence[2, D, T]: the sparse Winograd
//! tail, or tract when the graph is not a plain convolution chain), 1 and
//! 2 threads. Model: `$BMN_BENCH_MODEL`, else the paper-config edge file that
//! `benches/onnxruntime_compare.py` writes (`bench/bmn_paper_pytorch_edge.onnx` in the work
//! directory: `$BMN_EDGE_WORK`, default `models/work/` in the checkout) when it exists, else
//! the tiny committed fixture.

use bmn_edge::engine::{Engine, EngineOptions};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::{Path, PathBuf};

fn model() -> PathBuf {
    if let Ok(p) = std::env::var("BMN_BENCH_MODEL") {
        return p.into();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let work = std::env::var_os("BMN_EDGE_WORK").map_or_else(|| root.join("models").join("work"), PathBuf::from);
    let paper = work.join("bench").join("bmn_paper_pytorch_edge.onnx");
    if paper.exists() {
        paper
    } else {
        root.join("tests/fixtures/onnx/bmn_tiny_pytorch_op17.onnx")
    }
}

fn bench(c: &mut Criterion) {
    let path = model();
    let mut engine = Engine::load(&path, &EngineOptions { threads: 1, ..EngineOptions::default() }).expect("model");
    let cfg = *engine.config();
    let len = engine.info().bm_width * cfg.dscale() * cfg.tscale();
    let h: Vec<f32> = (0..len).map(|i| ((i * 7919) % 1000) as f32 * 1e-3).collect();
    let name = format!("stage_b/T{}_O{}", cfg.tscale(), engine.info().bm_width);
    for threads in [1, 2] {
        engine.set_threads(threads).expect("worker threads");
        c.bench_function(&format!("{name}/{threads}t"), |b| b.iter(|| engine.run_stage_b(black_box(&h)).unwrap()));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(10);
    targets = bench
}
criterion_main!(benches);

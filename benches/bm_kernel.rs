//! The BM kernel (sparse sampling of Z into H) at the paper configuration
//! (T = D = 100, N = 32, K = 3, r = 0.5, O = 512), 1 and 2 threads, baseline instructions
//! and the CPU's fused multiply-adds. Target: ≤ 25 ms per
//! window with 2 threads on the 2-core development machine.

use bmn_edge::engine::bm::{BmKernel, Simd, TapPlan};
use bmn_edge::engine::workers::Workers;
use bmn_edge::{Convention, WindowConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

fn bench(c: &mut Criterion) {
    let cfg = WindowConfig::paper(Convention::Mmaction2);
    let plan = TapPlan::new(cfg);
    let bias: Vec<f32> = (0..512).map(|i| (i as f32 - 256.0) * 1e-3).collect();
    let mut kernel = BmKernel::new(plan, &bias);
    let mut s: u32 = 12345;
    let z: Vec<f32> = (0..kernel.z_len())
        .map(|_| {
            s = s.wrapping_mul(1_664_525).wrapping_add(1_013_904_223);
            (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
        })
        .collect();
    let mut h = vec![0.0f32; kernel.h_len()];
    c.bench_function("plan/paper", |b| b.iter(|| TapPlan::new(black_box(cfg)).nnz()));
    // The baseline (SSE2 on x86-64) against the best the CPU has (AVX2 + FMA, NEON).
    for simd in [Simd::Baseline, Simd::detect()] {
        kernel.set_simd(simd);
        for threads in [1, 2] {
            let workers = Workers::new(threads).unwrap();
            c.bench_function(&format!("bm_kernel/paper/{}/{threads}t", simd.name()), |b| {
                b.iter(|| kernel.run(black_box(&z), &mut h, Some(&workers)).unwrap())
            });
        }
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

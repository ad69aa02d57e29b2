//! Window post-processing (candidates + pairing + Soft-NMS) on T = D = 100 windows:
//! `benches/data/window_random.npy` (many candidates) and `window_realistic.npy`.
//! `benches/compare_postprocess.sh` runs this and the Python reference side by side.

use bmn_edge::post::{postprocess_window, Proposal, WindowMaps};
use bmn_edge::{Convention, PostConfig};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::path::Path;

fn load(name: &str) -> Vec<f32> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/data").join(name);
    bmn_edge::npy::read_f32(&p).expect("bench input").data
}

fn bench(c: &mut Criterion) {
    let (t, d) = (100, 100);
    for case in ["window_random", "window_realistic"] {
        let flat = load(&format!("{case}.npy"));
        for conv in [Convention::Mmaction2, Convention::Paddle] {
            let cfg = PostConfig::paper(conv);
            let maps = WindowMaps::new(&cfg, &flat[..t], &flat[t..2 * t], &flat[2 * t..]).unwrap();
            let mut starts = vec![false; t];
            let mut ends = vec![false; t];
            let mut pairs = vec![Proposal::default(); t * d];
            c.bench_function(&format!("postprocess/{case}/{conv}"), |b| {
                b.iter(|| postprocess_window(&cfg, black_box(&maps), &mut starts, &mut ends, &mut pairs, 100).unwrap())
            });
        }
    }
}

criterion_group!(benches, bench);
criterion_main!(benches);

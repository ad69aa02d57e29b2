//! Instruction-count probe: one post-processing call per run (use with callgrind).
use bmn_edge::post::*;
use bmn_edge::*;
fn main() {
    let reps: usize = std::env::args().nth(1).map(|s| s.parse().unwrap()).unwrap_or(1);
    let flat = bmn_edge::npy::read_f32(std::path::Path::new("benches/data/window_random.npy")).unwrap().data;
    let cfg = PostConfig::paper(Convention::Mmaction2);
    let maps = WindowMaps::new(&cfg, &flat[..100], &flat[100..200], &flat[200..]).unwrap();
    let (mut s, mut e, mut p) = (vec![false; 100], vec![false; 100], vec![Proposal::default(); 10000]);
    for _ in 0..reps {
        std::hint::black_box(postprocess_window(&cfg, &maps, &mut s, &mut e, &mut p, 100).unwrap());
    }
}

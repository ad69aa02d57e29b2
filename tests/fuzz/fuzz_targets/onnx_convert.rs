//! Model conversion: ONNX bytes through `bmn_edge::engine::convert_to_edge` — the protobuf
//! wire reader, finding the BM layer by structure, verifying the dense mask against the BM
//! table, the surgery into the edge graph and its encoding — everything of model loading
//! that is bmn-edge's own code, without tract (which `onnx_model` adds, at ~26 inputs/s).
//! Fast enough for 10⁶ executions.
//!
//! Properties: no panic. A model that converts describes itself consistently (`1 ≤ D ≤ T`,
//! `C ≥ 1`, `K ≥ 1`), and converting its edge file again gives the same description, the
//! same mask taps and the same bytes (conversion is idempotent).
//!
//! The working corpus gets the test fixtures at run time (run.sh), as `onnx_model`'s.
#![no_main]

use bmn_edge::engine::{convert_to_edge, ModelFormat, WindowMode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(first) = convert_to_edge(data.to_vec(), None, WindowMode::Sliding) else {
        return;
    };
    let cfg = first.info.config;
    let (t, d, c) = (cfg.tscale(), cfg.dscale(), first.info.channels);
    assert!(t >= 1 && d >= 1 && d <= t && c >= 1 && cfg.num_sample_perbin() >= 1, "T = {t}, D = {d}, C = {c}");
    assert_eq!(first.info.format, ModelFormat::Edge);
    let again = convert_to_edge(first.edge.clone(), None, WindowMode::Sliding)
        .unwrap_or_else(|e| panic!("an edge file written by convert_to_edge does not convert again: {e:#}"));
    assert_eq!(again.input_format, ModelFormat::Edge);
    let cfg2 = again.info.config;
    assert_eq!((cfg2.tscale(), cfg2.dscale(), again.info.channels), (t, d, c));
    assert_eq!(
        (cfg2.num_sample(), cfg2.num_sample_perbin(), cfg2.ratio().to_bits()),
        (cfg.num_sample(), cfg.num_sample_perbin(), cfg.ratio().to_bits())
    );
    assert_eq!(again.info.mask_nnz, first.info.mask_nnz);
    assert!(again.edge == first.edge, "converting an edge file again changed its bytes");
});

//! Whole-video rescale (BSN poolData reading) against the Python reference
//! (tests/reference/make_golden.py; provenance in tests/golden/rescale/manifest.json).
#![cfg(feature = "std")]

use bmn_edge::window::rescale_to_window;
use serde_json::Value;
use std::path::Path;

#[test]
fn rescale_matches_reference() {
    let dir = Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/rescale"));
    let manifest: Value = serde_json::from_str(&std::fs::read_to_string(dir.join("manifest.json")).unwrap()).unwrap();
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() >= 6);
    for f in files {
        let input = bmn_edge::npy::read_f32(&dir.join(f["input"].as_str().unwrap())).unwrap();
        let expected = bmn_edge::npy::read_f32(&dir.join(f["output"].as_str().unwrap())).unwrap();
        let (l, c) = (input.shape[0], input.shape[1]);
        let t = f["T"].as_u64().unwrap() as usize;
        assert_eq!(expected.shape, vec![t, c]);
        let mut out = vec![0.0f32; c * t];
        rescale_to_window(&input.data, l, c, t, f["eps"].as_f64().unwrap(), &mut out).unwrap();
        let mut zero_rows = 0;
        for i in 0..t {
            let mut all_zero = true;
            for ch in 0..c {
                let (got, want) = (out[ch * t + i], expected.data[i * c + ch]);
                assert!(
                    (got - want).abs() <= 1e-6 * want.abs().max(1.0),
                    "{}: position {i} channel {ch}: {got} vs {want}",
                    f["output"]
                );
                all_zero &= got == 0.0;
            }
            zero_rows += all_zero as u64;
        }
        assert_eq!(zero_rows, f["zero_rows"].as_u64().unwrap(), "{}", f["output"]);
    }
}

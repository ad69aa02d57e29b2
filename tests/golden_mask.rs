//! The BM sampling table against the reference mask (tests/reference/bmn_reference.py;
//! goldens by tests/reference/make_golden.py, provenance in the manifests).
#![cfg(feature = "std")]

use bmn_edge::bm::BmTable;
use bmn_edge::{Convention, WindowConfig};
use serde_json::Value;
use sha2::{Digest, Sha256};
use std::path::Path;

fn dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/golden/mask"))
}

fn load(name: &str) -> Value {
    serde_json::from_str(&std::fs::read_to_string(dir().join(name)).unwrap()).unwrap()
}

fn config(c: &Value) -> WindowConfig {
    let u = |k: &str| c[k].as_u64().unwrap() as usize;
    WindowConfig::new(u("T"), u("D"), u("N"), u("K"), c["r"].as_f64().unwrap(), Convention::Mmaction2).unwrap()
}

#[test]
fn small_masks_equal_the_reference_everywhere() {
    let manifest = load("manifest.json");
    let files = manifest["files"].as_array().unwrap();
    assert!(files.len() >= 5);
    for f in files {
        let cfg = config(f);
        let reference = bmn_edge::npy::read_f32(&dir().join(f["file"].as_str().unwrap())).unwrap();
        assert_eq!(reference.shape, vec![cfg.tscale(), cfg.num_sample(), cfg.dscale(), cfg.tscale()]);
        let ours = BmTable::new(cfg).to_dense().unwrap();
        let worst = ours.iter().zip(&reference.data).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(worst <= 1e-6, "{}: max |Δ| = {worst}", f["file"]);
        let nnz = ours.iter().filter(|&&x| x != 0.0).count();
        assert_eq!(nnz as u64, f["nnz"].as_u64().unwrap(), "{}", f["file"]);
        assert_eq!(BmTable::new(cfg).nnz(), nnz, "{}: iterator and dense disagree", f["file"]);
    }
}

/// Paper configuration and other large ones: checksums, named cells and sampled entries.
#[test]
fn large_masks_reproduce_reference_checksums() {
    let sums = load("checksums.json");
    for c in sums["configs"].as_array().unwrap() {
        let cfg = config(c);
        let table = BmTable::new(cfg);
        let dense = table.to_dense().unwrap();
        let label = format!("T={} D={} N={} K={} r={}", c["T"], c["D"], c["N"], c["K"], c["r"]);
        assert_eq!(table.nnz() as u64, c["nnz"].as_u64().unwrap(), "{label}: nnz");
        let (mut sum, mut sum_sq, mut weighted) = (0.0f64, 0.0f64, 0.0f64);
        let (n_len, d_len, t_len) = (cfg.num_sample(), cfg.dscale(), cfg.tscale());
        for (i, &v) in dense.iter().enumerate() {
            if v != 0.0 {
                let s = i % t_len;
                let d = (i / t_len) % d_len;
                let n = (i / (t_len * d_len)) % n_len;
                let t = i / (t_len * d_len * n_len);
                let v = v as f64;
                sum += v;
                sum_sq += v * v;
                weighted += v * ((t * 7 + n * 13 + d * 31 + s * 101) % 1009) as f64;
            }
        }
        let close = |a: f64, b: &Value| (a - b.as_f64().unwrap()).abs() <= 1e-9 * a.abs().max(1.0);
        assert!(close(sum, &c["sum"]), "{label}: sum {sum} vs {}", c["sum"]);
        assert!(close(sum_sq, &c["sum_sq"]), "{label}: sum of squares");
        assert!(close(weighted, &c["weighted_sum"]), "{label}: weighted sum");
        for (cell, want) in c["cell_sums"].as_object().unwrap() {
            let (d, s) = cell.split_once(',').unwrap();
            let (d, s): (usize, usize) = (d.parse().unwrap(), s.parse().unwrap());
            let got: f64 = (0..t_len)
                .flat_map(|t| (0..n_len).map(move |n| (t, n)))
                .map(|(t, n)| dense[((t * n_len + n) * d_len + d) * t_len + s] as f64)
                .sum();
            assert!((got - want.as_f64().unwrap()).abs() < 1e-9, "{label}: cell {cell}");
        }
        for smp in c["samples"].as_array().unwrap() {
            let v: Vec<f64> = smp.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect();
            let idx = ((v[0] as usize * n_len + v[1] as usize) * d_len + v[2] as usize) * t_len + v[3] as usize;
            assert_eq!(dense[idx] as f64, v[4], "{label}: M{:?}", &v[..4]);
        }
        let bytes: Vec<u8> = dense.iter().flat_map(|x| x.to_le_bytes()).collect();
        let digest = Sha256::digest(&bytes);
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(hex, c["sha256_f32le_c_order"].as_str().unwrap(), "{label}: bit-exact dense mask");
    }
}

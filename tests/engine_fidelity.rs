//! The engine's maps against onnxruntime's on the standard-export fixtures.
//!
//! Goldens: `tests/fixtures/onnx/<name>.io/` (input [T, C] and onnxruntime's start, end,
//! confidence), made by `python models/make_fixtures.py --seed 20261126` (provenance in
//! `tests/fixtures/onnx/manifest.json`). Tolerance: max |Δ| ≤ 1e-4 (issue 3).

#![cfg(feature = "engine")]

use bmn_edge::engine::{Engine, EngineOptions, ModelFormat, StageBForm, Variant};
use bmn_edge::npy::read_f32;
use std::path::{Path, PathBuf};

pub const FIXTURES: [&str; 4] =
    ["bmn_tiny_pytorch_op17", "bmn_tiny_paddle_op17", "bmn_tiny_pytorch_op11_legacy", "bmn_tiny_pytorch_dynbatch_op17"];

fn dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/onnx")
}

/// `[T, C]` → `[C, T]`.
fn transpose(data: &[f32], t: usize, c: usize) -> Vec<f32> {
    let mut out = vec![0.0; t * c];
    for i in 0..t {
        for j in 0..c {
            out[j * t + i] = data[i * c + j];
        }
    }
    out
}

fn max_abs(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0.0, f32::max)
}

#[test]
fn maps_match_onnxruntime() {
    for name in FIXTURES {
        let io = dir().join(format!("{name}.io"));
        // The sparse Winograd tail (default) and tract's row bands.
        let runs = [
            (1, None, false),
            (2, None, false),
            (3, None, false),
            (1, None, true),
            (2, Some(5), true),
            (1, Some(1), true),
        ];
        for (threads, band_rows, tract_stage_b) in runs {
            let opts = EngineOptions { threads, band_rows, tract_stage_b, ..EngineOptions::default() };
            let mut engine = Engine::load(&dir().join(format!("{name}.onnx")), &opts).unwrap();
            assert_eq!(
                engine.stage_b_form(),
                if tract_stage_b { StageBForm::TractBands } else { StageBForm::Winograd }
            );
            let info = engine.info().clone();
            assert_eq!(info.format, ModelFormat::Standard);
            let cfg = *engine.config();
            assert_eq!(
                (cfg.tscale(), cfg.dscale(), cfg.num_sample(), cfg.num_sample_perbin(), cfg.ratio()),
                (16, 16, 8, 3, 0.5)
            );
            let x = read_f32(&io.join("input.npy")).unwrap();
            let (t, c) = (x.shape[0], x.shape[1]);
            assert_eq!((t, c), (16, info.channels));
            let (out, _) = engine.run(&transpose(&x.data, t, c)).unwrap();
            let start = read_f32(&io.join("start.npy")).unwrap();
            let end = read_f32(&io.join("end.npy")).unwrap();
            let conf = read_f32(&io.join("confidence.npy")).unwrap();
            let errs =
                [max_abs(&out.start, &start.data), max_abs(&out.end, &end.data), max_abs(&out.confidence, &conf.data)];
            eprintln!(
                "{name} threads {threads} bands {band_rows:?} {}: max |Δ| start {:.2e} end {:.2e} confidence {:.2e}",
                engine.stage_b_form().name(),
                errs[0],
                errs[1],
                errs[2]
            );
            assert!(errs.iter().all(|&e| e <= 1e-4), "{name}: {errs:?}");
            // A second run reuses the buffers and gives the same maps.
            let (again, _) = engine.run(&transpose(&x.data, t, c)).unwrap();
            assert_eq!(again, out);
        }
    }
}

#[test]
fn variant_and_convention_are_recognised() {
    let e = Engine::load(&dir().join("bmn_tiny_paddle_op17.onnx"), &EngineOptions::default()).unwrap();
    assert_eq!(e.info().variant, Variant::Paddle);
    assert_eq!(e.config().convention(), bmn_edge::Convention::Paddle);
    let e = Engine::load(&dir().join("bmn_tiny_pytorch_op11_legacy.onnx"), &EngineOptions::default()).unwrap();
    assert_eq!(e.info().variant, Variant::Pytorch);
    assert_eq!(e.config().convention(), bmn_edge::Convention::Mmaction2);
    assert_eq!(e.info().outputs, ["confidence".to_string(), "start".into(), "end".into()]);
    assert_eq!(e.info().mask_nnz, bmn_edge::bm::BmTable::new(*e.config()).nnz());
}

//! Model loading: ONNX bytes through `bmn_edge::engine::Engine::from_bytes` (the protobuf
//! wire reader, finding and verifying the BM layer, the graph surgery into stage A / BM /
//! stage B, then tract's model building), one thread.
//!
//! Properties: no panic. A model that loads describes itself consistently (`T`, `D`, `C` of
//! its config and info), runs one window of zeros (an error is fine, a panic is not) and,
//! converted to the edge format (`convert_to_edge`), loads again with the same `T`, `D`,
//! `C` and mask taps.
//!
//! The working corpus gets the test fixtures (`tests/fixtures/onnx*/*.onnx`, ~0.3–0.6 MB)
//! at run time (run.sh); the committed seeds are small (see README.md).
#![no_main]

use bmn_edge::engine::{convert_to_edge, Engine, EngineError, EngineOptions, WindowMode};
use libfuzzer_sys::fuzz_target;
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{self, AssertUnwindSafe};
use std::sync::{Mutex, Once};

/// Open finding F3 (README.md, "Findings"; inputs in `crashes/onnx_model/`): a malformed
/// graph panics inside tract while `Engine::from_bytes` builds stage A (`build_stage` →
/// `into_optimized`) instead of being refused: a `Squeeze` axis out of range (tract-hir
/// `ops/array/squeeze.rs` → smallvec `remove`: `assertion failed: index < len`), a `Conv`
/// whose `pads` has the wrong length (tract-core `ops/cnn/padding.rs`: index out of
/// bounds), and likely more of the kind. While this is `true`, a panic whose location is in
/// tract or smallvec and whose backtrace passes through tract is taken as a refusal, so that
/// fuzzing goes on past it (each such site is printed once); a panic anywhere else, our
/// crate's included, still aborts. Set it to `false` once fixed.
const OPEN_FINDING_F3: bool = false;

thread_local! {
    static KNOWN_PANIC: Cell<bool> = const { Cell::new(false) };
}

/// Whether a panic at `file` is one of finding F3's: inside tract (or smallvec, which tract
/// indexes), reached through tract.
fn inside_tract(file: &str) -> bool {
    let in_dep = ["/tract-", "/smallvec-"].iter().any(|d| file.contains(d));
    in_dep && std::backtrace::Backtrace::force_capture().to_string().contains("/tract-")
}

/// Loads a model; with [`OPEN_FINDING_F3`], a panic inside tract is an error.
fn load(bytes: Vec<u8>) -> Result<Engine, Option<EngineError>> {
    if !OPEN_FINDING_F3 {
        return Engine::from_bytes(bytes, &options()).map_err(Some);
    }
    static HOOK: Once = Once::new();
    HOOK.call_once(|| {
        // libFuzzer's hook (installed first) aborts on any panic; it stays in charge of all
        // but finding F3's.
        let abort_hook = panic::take_hook();
        let seen = Mutex::new(HashSet::new());
        panic::set_hook(Box::new(move |info| {
            let Some(at) = info.location().filter(|l| inside_tract(l.file())) else {
                return abort_hook(info);
            };
            KNOWN_PANIC.with(|k| k.set(true));
            if seen.lock().unwrap().insert(format!("{}:{}", at.file(), at.line())) {
                eprintln!("open finding F3: tract panicked at {at}: {}", info.payload_as_str().unwrap_or("?"));
            }
        }));
    });
    KNOWN_PANIC.with(|k| k.set(false));
    match panic::catch_unwind(AssertUnwindSafe(|| Engine::from_bytes(bytes, &options()))) {
        Ok(r) => r.map_err(Some),
        Err(_) if KNOWN_PANIC.with(|k| k.get()) => Err(None),
        Err(p) => panic::resume_unwind(p),
    }
}

fn options() -> EngineOptions {
    EngineOptions { threads: 1, ..EngineOptions::default() }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut engine) = load(data.to_vec()) else {
        return;
    };
    let (t, d) = (engine.config().tscale(), engine.config().dscale());
    let c = engine.info().channels;
    assert!(t >= 1 && d >= 1 && d <= t && c >= 1, "T = {t}, D = {d}, C = {c}");
    let nnz = engine.info().mask_nnz;
    // One window (C·T values) if it is small: a loaded model runs or errs, never panics.
    if c.saturating_mul(t) <= 1 << 16 {
        let _ = engine.run(&vec![0.0f32; c * t]);
    }
    drop(engine);
    let converted = convert_to_edge(data.to_vec(), None, WindowMode::Sliding).expect("a model that loads converts");
    let edge = load(converted.edge).unwrap_or_else(|e| panic!("the converted model does not load: {e:?}"));
    assert_eq!((edge.config().tscale(), edge.config().dscale(), edge.info().channels), (t, d, c));
    assert_eq!(edge.info().mask_nnz, nnz);
});

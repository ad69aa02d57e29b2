//! `.npy` reader (`bmn_edge::npy::read_f32`, and `features::read_npy_features` on the same
//! file). The library reads `.npy` only from a path, so each input is written to a scratch
//! file first (in `/dev/shm` where there is one).
//!
//! Properties: no panic; an array that parses has `data.len()` = the product of its shape
//! and only finite values; it survives `write_f32` → `read_f32` unchanged (bit for bit);
//! as features it is accepted exactly when it is `[L, C]` with `L, C ≥ 1`, with the same data.
#![no_main]

use bmn_edge::{features, npy};
use libfuzzer_sys::fuzz_target;
use std::path::PathBuf;
use std::sync::OnceLock;

/// A per-process scratch directory.
fn scratch(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // run.sh gives a directory it removes at the end; else /dev/shm or the temporary
        // directory.
        let shm = PathBuf::from("/dev/shm");
        let base = match std::env::var_os("BMN_EDGE_FUZZ_SCRATCH") {
            Some(dir) => PathBuf::from(dir),
            None if shm.is_dir() => shm,
            None => std::env::temp_dir(),
        };
        let dir = base.join(format!("bmn-edge-fuzz-npy-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("create the scratch directory");
        dir
    });
    dir.join(name)
}

/// Open finding F5 (README.md, "Findings"; input in `crashes/npy/`): a header with nested
/// brackets (`'shape': (1, 2),[[[[…`) takes time exponential in their number in npyz's
/// header parser (py_literal, a pest grammar), which `read_f32` calls after its own checks:
/// 14 brackets take 13 s, 18 over two minutes. Headers with more than 4 brackets of any
/// kind (numpy writes 2: `{` and `(`) are skipped while this is `true`; set it to `false`
/// once fixed.
const OPEN_FINDING_F5: bool = false;

/// Whether the header (as its length field declares it, cut to the input) has more than 4
/// brackets.
fn many_brackets(data: &[u8]) -> bool {
    let (len, start) = match data.get(6..12) {
        Some(&[1, _, a, b, ..]) => (usize::from(u16::from_le_bytes([a, b])), 10),
        Some(&[2 | 3, _, a, b, c, d]) => (u32::from_le_bytes([a, b, c, d]) as usize, 12),
        _ => return false,
    };
    let header = &data[start.min(data.len())..start.saturating_add(len).min(data.len())];
    header.iter().filter(|b| matches!(b, b'[' | b'(' | b'{')).count() > 4
}

fuzz_target!(|data: &[u8]| {
    if OPEN_FINDING_F5 && many_brackets(data) {
        return;
    }
    let path = scratch("input.npy");
    std::fs::write(&path, data).expect("write the scratch file");
    let Ok(a) = npy::read_f32(&path) else {
        // Refused with an error: fine. The features reader must refuse it too.
        assert!(features::read_npy_features(&path).is_err());
        return;
    };
    let count = a.shape.iter().try_fold(1usize, |acc, &d| acc.checked_mul(d)).expect("shape product fits usize");
    assert_eq!(a.data.len(), count, "shape {:?}", a.shape);
    assert!(a.data.iter().all(|x| x.is_finite()));

    let f = features::read_npy_features(&path);
    match (a.shape.as_slice(), f) {
        (&[l, c], Ok(f)) if l > 0 && c > 0 => {
            assert_eq!((f.snippets, f.channels), (l, c));
            assert!(f.data.iter().map(|x| x.to_bits()).eq(a.data.iter().map(|x| x.to_bits())));
        }
        (&[l, c], Err(_)) if l > 0 && c > 0 => panic!("a [{l}, {c}] array is refused as features"),
        (shape, Ok(f)) => panic!("shape {shape:?} accepted as features {}x{}", f.snippets, f.channels),
        (_, Err(_)) => {}
    }

    // Round trip through the writer.
    let out = scratch("round-trip.npy");
    npy::write_f32(&out, &a.shape, &a.data).expect("write back");
    let b = npy::read_f32(&out).expect("read back what was written");
    assert_eq!(a.shape, b.shape);
    assert!(a.data.iter().map(|x| x.to_bits()).eq(b.data.iter().map(|x| x.to_bits())));
});

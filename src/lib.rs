//! # bmn-edge
//!
//! An edge-inference runtime for BMN (Boundary-Matching Network, Lin et al., ICCV 2019):
//! per-snippet video features in, temporal action proposals `(start, end, score)` out,
//! with the reference implementation's results.
//!
//! The modules follow the data flow:
//!
//! ```text
//! features -> window (ring buffer / whole-video rescale)          no_std
//!          -> engine: stage A (tract) -> bm (sparse BM layer) -> stage B (tract)   std
//!          -> post: candidates -> pairing -> soft_nms            no_std
//!          -> post::merge: windows -> video time, one soft_nms    no_std
//!          -> sink: json (proposal serialisation)                no_std
//! ```
//!
//! Everything marked no_std builds with `cargo build --no-default-features`: no standard
//! library, no allocator, no panics on capacity. Capacities are const generics or
//! caller-provided buffers; a full buffer is an error value that carries what did not fit.
//!
//! The `std` feature (default) adds file formats ([`npy`]), ActivityNet results files
//! ([`results`]) and the `bmn-edge` command-line tool.
#![cfg_attr(not(feature = "std"), no_std)]
#![warn(missing_docs)]
// No unsafe code, except in two audited engine kernels: the BM kernel's call of a function
// compiled for AVX2 + FMA after run-time detection (`engine::bm::kernel::Simd`), and the
// widened int8 product's AVX2 code (`engine::widened`: calls after run-time detection,
// unaligned loads and stores within slices whose lengths are asserted).
#![cfg_attr(not(feature = "engine"), forbid(unsafe_code))]
#![cfg_attr(feature = "engine", deny(unsafe_code))]

// The unit tests of the no_std core link std (the test harness does anyway), so that they
// can use growing stores and proptest under `cargo test --no-default-features --lib` (and
// Miri); the library itself stays no_std.
#[cfg(all(test, not(feature = "std")))]
extern crate std;

pub mod bm;
pub mod config;
pub mod json;
pub mod post;
#[doc = include_str!("reference.md")]
pub mod reference {}
pub mod window;

#[cfg(feature = "engine")]
pub mod engine;

#[cfg(feature = "hal")]
pub mod indicator;

#[cfg(feature = "std")]
pub mod eval;
#[cfg(feature = "std")]
pub mod features;
#[cfg(feature = "std")]
pub mod io;
#[cfg(feature = "std")]
pub mod npy;
#[cfg(feature = "std")]
pub mod pixels;
#[cfg(feature = "std")]
pub mod results;
#[cfg(feature = "std")]
pub mod snippets;

pub use config::{ConfigError, ConfigErrorKind, Convention, PostConfig, WindowConfig};

/// The README's Rust examples, compiled and run by `cargo test` as doctests.
#[cfg(all(doctest, feature = "std"))]
#[doc = include_str!("../README.md")]
pub struct ReadmeDoctests;

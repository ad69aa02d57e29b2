//! The BM layer in Rust.

pub mod kernel;
pub mod plan;
pub mod zbuf;

/// Output channels per block of Z.
pub const CHUNK: usize = 32;

pub use kernel::{BmKernel, Simd};
pub use plan::{identify_mask, MaskData, TapPlan};
pub use zbuf::ZBuf;

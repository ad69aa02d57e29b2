//! What the CPU offers for int8 products, and which arithmetic an int8 model should use.
//!
//! An int8 model can run its products in three arithmetics with the **same levels**:
//!
//! * [`Int8Arithmetic::Integer`]: tract's integer kernels (`MatMulInteger`, int8 × int8 →
//!   int32). Fast where the CPU has a dot-product instruction: x86-64 AVX-512 VNNI
//!   (`vpdpbusd`), AVX-VNNI, AMX-INT8; aarch64 `sdot` (FEAT_DotProd), SVE/SME. On an x86-64
//!   with only AVX2, tract's integer kernel (`avx2_mmm_i32_8x8`) is an emulation of the dot
//!   product and runs the shipped model's products about 20× slower than tract's float
//!   kernels (benches/int8_kernels.rs).
//! * [`Int8Arithmetic::ExactFloat`]: the same int8 levels and weights stored as
//!   integer-valued `f32`s, multiplied by tract's float kernels. Every product of two levels
//!   is at most `128 · 128 = 2^14` in magnitude, so a sum of `K` of them is an integer below
//!   `K · 2^14`, and every partial sum is exact in `f32` (24-bit significand) while it stays
//!   below `2^24` — for any data when `K ≤ 1024` ([`EXACT_F32_TERMS`]). The sums, hence the
//!   requantized levels, are then bit-identical to the integer kernels', whatever order the
//!   float kernel adds in. Longer sums are exact too when the weights certify it
//!   ([`weights_exact_in_f32`]: `128 · Σ|w|` per output channel at most `2^24`, checked once
//!   at load); otherwise they are split into chunks that are, added in `i32`.
//!
//! * [`Int8Arithmetic::Widened`]: bmn-edge's own integer kernel for x86-64 with AVX2
//!   ([`widened`](super::widened): `vpmaddwd` on operands widened to `i16`, or `vpdpwssd`
//!   with AVX-512 VNNI), for the products the engine runs itself (the BM projection, stage
//!   B); stage A's convolutions, inside tract's graph, run in tract's integer kernels where
//!   those use a dot product, else in exact float. 1.4–2× faster than exact float on the
//!   shipped model's products (benches/int8_kernels.rs).
//!
//! [`CpuFeatures::detect`] reads the relevant features (the standard library's run-time
//! detection; AMX from tract-linalg's probe), [`tract_kernel`] names the
//! tract-linalg kernel tract's dispatch picks for a float or an integer product of a given
//! shape on this CPU, and [`Int8Arithmetic::choose`] combines the two, per product: the
//! engine's own products (projection, stage B) widened wherever the CPU has AVX2 (with
//! AVX-512 VNNI too: there the widened tile runs `vpdpwssd`, and a window runs 1.2–1.4×
//! faster than through tract's VNNI kernels); else tract's integer kernels where the CPU
//! has a dot-product instruction *and* tract's choice uses it (tract compiles some of
//! those kernels only when its build's assembler can encode them); else exact float. The
//! convolutions inside tract's graphs (stage A, a pixel backbone) run tract's integer
//! kernels under that same condition, else exact float ([`Int8Arithmetic::in_tract_graph`]).

use std::fmt;
use tract_onnx::prelude::DatumType;

/// Largest number of int8 × int8 terms whose sum (and every partial sum, in any order) is
/// exact in `f32` for any levels: `|a · b| ≤ 128 · 128 = 2^14`, and `1024 · 2^14 = 2^24`
/// (integers up to `2^24` are exact in `f32`; the bound is reached only when every term is
/// `(−128)·(−128)`).
pub const EXACT_F32_TERMS: usize = 1024;

/// Whether a sum of `k` int8 × int8 products is exact in `f32` for all inputs.
pub fn exact_in_f32(k: usize) -> bool {
    k <= EXACT_F32_TERMS
}

/// Whether `f32` sums of the products of the int8 weight rows `w` (`[rows][k]`, row-major)
/// with **any** int8 levels are exact, in any summation order: every partial sum of row `c`
/// is at most `128 · Σ_j |w[c][j]|` in magnitude, so this holds when that bound is at most
/// `2^24` for every row. A load-time certificate that holds for far longer rows than
/// [`EXACT_F32_TERMS`] when the weights are not all extreme: the shipped model's worst layer
/// (a 3×3, `K = 1152`) reaches 16 % of the bound. A layer that fails it can split `K` into
/// chunks that pass, summed in `i32`. `false` when `k` is 0 or does not divide `w.len()`.
pub fn weights_exact_in_f32(w: &[i8], k: usize) -> bool {
    if k == 0 || !w.len().is_multiple_of(k) {
        return false;
    }
    w.chunks_exact(k).all(|row| 128 * row.iter().map(|&v| i64::from(v).abs()).sum::<i64>() <= 1 << 24)
}

/// The instruction-set features that decide how int8 products should run. Features of the
/// other architecture are `false`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CpuFeatures {
    /// x86-64: AVX usable (CPUID and enabled by the OS in XCR0).
    pub avx: bool,
    /// x86-64: AVX2.
    pub avx2: bool,
    /// x86-64: FMA3.
    pub fma: bool,
    /// x86-64: AVX-512 Foundation (with the OS saving the 512-bit state).
    pub avx512f: bool,
    /// x86-64: AVX-512 VNNI (`vpdpbusd` on 128/256/512-bit registers).
    pub avx512vnni: bool,
    /// x86-64: AVX-VNNI (the VEX-encoded `vpdpbusd`, for CPUs without AVX-512).
    pub avxvnni: bool,
    /// x86-64: AMX-INT8 tiles usable by tract (CPUID, the OS's XCR0 and, on Linux, the
    /// per-process permission; tract-linalg's probe, `false` in builds without its AMX kernels).
    pub amx_int8: bool,
    /// aarch64: FEAT_DotProd (`sdot`/`udot`).
    pub dotprod: bool,
    /// aarch64: FEAT_I8MM (`smmla`; no tract 0.23.9 kernel uses it).
    pub i8mm: bool,
    /// aarch64: SVE.
    pub sve: bool,
    /// aarch64: SVE2.
    pub sve2: bool,
}

impl CpuFeatures {
    /// The running CPU's features.
    pub fn detect() -> CpuFeatures {
        detect_impl()
    }

    /// Whether the CPU has an instruction that multiplies and adds int8 vectors into int32
    /// lanes (a dot product), i.e. whether integer products can beat float ones at all.
    pub fn has_int8_dot(&self) -> bool {
        self.avx512vnni || self.avxvnni || self.amx_int8 || self.dotprod || self.i8mm || self.sve
    }

    /// The features present, by their usual names (`avx2`, `fma`, `avx512vnni`, `dotprod`, …).
    pub fn names(&self) -> Vec<&'static str> {
        [
            (self.avx, "avx"),
            (self.avx2, "avx2"),
            (self.fma, "fma"),
            (self.avx512f, "avx512f"),
            (self.avx512vnni, "avx512vnni"),
            (self.avxvnni, "avxvnni"),
            (self.amx_int8, "amx-int8"),
            (self.dotprod, "dotprod"),
            (self.i8mm, "i8mm"),
            (self.sve, "sve"),
            (self.sve2, "sve2"),
        ]
        .into_iter()
        .filter_map(|(on, name)| on.then_some(name))
        .collect()
    }
}

impl fmt::Display for CpuFeatures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names = self.names();
        if names.is_empty() {
            f.write_str("(none of the int8-relevant features)")
        } else {
            f.write_str(&names.join(","))
        }
    }
}

#[cfg(target_arch = "x86_64")]
fn detect_impl() -> CpuFeatures {
    // The standard library checks CPUID and that the OS saves the registers' state (XCR0).
    // A feature that `TRACT_CPU_ISA` takes away (`-avx512f`) counts as absent, so that the
    // variable makes tract *and* the engine behave as on a CPU without it; adding one the CPU
    // lacks (`+avx512f`) changes nothing here.
    let removed = removed_by_tract_cpu_isa();
    macro_rules! has {
        ($f:tt) => {
            std::arch::is_x86_feature_detected!($f) && !removed.iter().any(|r| r == $f)
        };
    }
    let avx512f = has!("avx512f");
    CpuFeatures {
        avx: has!("avx"),
        avx2: has!("avx2"),
        fma: has!("fma"),
        avx512f,
        // EVEX-encoded, so no use without AVX-512 Foundation (nor is it to tract).
        avx512vnni: avx512f && has!("avx512vnni"),
        avxvnni: has!("avxvnni"),
        // AMX needs, besides CPUID and XCR0, a per-process permission on Linux; tract's own
        // probe checks all three (and only in builds whose assembler has the AMX kernels).
        amx_int8: tract_linalg::isa::native().has(tract_linalg::isa::Isa::X86_64AmxInt8),
        ..CpuFeatures::default()
    }
}

/// The features `TRACT_CPU_ISA` removes (its `-name` tokens), by tract-linalg's names, which
/// are the standard library's for the features read here.
#[cfg(any(target_arch = "x86_64", target_arch = "aarch64"))]
fn removed_by_tract_cpu_isa() -> Vec<String> {
    let spec = std::env::var("TRACT_CPU_ISA").unwrap_or_default();
    spec.split(',').filter_map(|t| t.trim().strip_prefix('-')).map(str::to_string).collect()
}

#[cfg(target_arch = "aarch64")]
fn detect_impl() -> CpuFeatures {
    // As on x86-64: a feature `TRACT_CPU_ISA` takes away counts as absent.
    let removed = removed_by_tract_cpu_isa();
    macro_rules! has {
        ($f:tt) => {
            std::arch::is_aarch64_feature_detected!($f) && !removed.iter().any(|r| r == $f)
        };
    }
    CpuFeatures {
        dotprod: has!("dotprod"),
        i8mm: has!("i8mm"),
        sve: has!("sve"),
        sve2: has!("sve2"),
        ..CpuFeatures::default()
    }
}

#[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
fn detect_impl() -> CpuFeatures {
    CpuFeatures::default()
}

/// The element type of a product, as tract-linalg's kernels are chosen for it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Product {
    /// `f32 × f32 → f32`.
    F32,
    /// `i8 × i8 → i32` (`MatMulInteger`, `QLinearConv`).
    I8,
}

/// The tract-linalg kernel tract's dispatch prefers on this CPU for a product of `m × k`
/// by `k × n` (`None`: a dimension unknown when the model is optimised), e.g.
/// `fma_mmm_f32_16x6` or `avx2_mmm_i32_8x8`; `None` when no dispatch tier has an opinion.
///
/// This is tract-linalg's own answer (`MmmDispatch::preferred_kernel`), the one its
/// einsum lowering uses when all three dimensions are known; with a symbolic `n` tract's
/// optimiser picks among the same kernels by packing, which on the CPUs measured here gave
/// the same integer kernel. `TRACT_CPU_ISA` edits what tract believes the CPU has.
pub fn tract_kernel(product: Product, m: Option<usize>, k: Option<usize>, n: Option<usize>) -> Option<String> {
    let acc = match product {
        Product::F32 => DatumType::F32,
        Product::I8 => DatumType::I32,
    };
    tract_linalg::MmmDispatch::native().preferred_kernel(acc, m, k, n).map(|ker| ker.name().to_string())
}

/// Whether a tract-linalg integer kernel, by its name, is built on a dot-product
/// instruction (`vpdpbusd`, AMX tiles, `sdot`, SME outer products) rather than on widening
/// multiplies (`avx2_mmm_i32_8x8`, `avx_mmm_i32_8x4`, `arm64simd_mmm_i32_8x8`, and tract
/// 0.23.9's `sve_mmm_i32_8x8`, a widening multiply-add without `sdot` — checked under qemu
/// `-cpu max`) or portable Rust.
pub fn is_dot_product_kernel(name: &str) -> bool {
    ["vnni", "amx", "_dot", "sme_"].iter().any(|tag| name.contains(tag))
}

/// Whether tract's integer kernel `i8_kernel` is built on a dot-product instruction that the
/// CPU has (only then are tract's integer kernels faster than its float ones).
fn integer_kernels_are_fast(features: &CpuFeatures, i8_kernel: Option<&str>) -> bool {
    i8_kernel.is_some_and(|name| features.has_int8_dot() && is_dot_product_kernel(name))
}

/// What this CPU and this build of tract do for int8 models: the features, tract's
/// kernels for f32 and int8 products (stage-B shapes), and the arithmetic chosen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuReport {
    /// The int8-relevant features.
    pub features: CpuFeatures,
    /// tract's kernel for an f32 product of the stage-B layers' shape.
    pub f32_kernel: Option<String>,
    /// tract's kernel for an int8 product of the same shape.
    pub i8_kernel: Option<String>,
    /// [`Int8Arithmetic::choose`] for these.
    pub arithmetic: Int8Arithmetic,
}

impl CpuReport {
    /// This CPU's.
    pub fn this_cpu() -> CpuReport {
        let (m, k, n) = (Some(256), Some(512), Some(128));
        let features = CpuFeatures::detect();
        let i8_kernel = tract_kernel(Product::I8, m, k, n);
        CpuReport {
            features,
            f32_kernel: tract_kernel(Product::F32, m, k, n),
            arithmetic: Int8Arithmetic::choose(&features, i8_kernel.as_deref()),
            i8_kernel,
        }
    }
}

/// How an int8 model's products run. All three give the same `i32` sums, hence the same
/// outputs to the bit; they differ in speed only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Int8Arithmetic {
    /// tract's integer kernels (int8 operands, int32 sums).
    Integer,
    /// tract's float kernels on integer-valued `f32` levels and weights: the same sums
    /// exactly (see the module docs), for CPUs whose integer kernels are slow.
    ExactFloat,
    /// bmn-edge's own integer kernel for x86-64 with AVX2 ([`widened`](super::widened):
    /// operands widened to `i16`, `vpmaddwd`, or `vpdpwssd` with AVX-512 VNNI) for the
    /// products the engine runs itself — the BM projection and stage B; the layers inside
    /// tract's graphs (stage A, a backbone) run as [`Self::in_tract_graph`] says. On a CPU
    /// without AVX2 (forced) the same sums come from portable Rust.
    Widened,
}

impl Int8Arithmetic {
    /// The arithmetic of the products the engine runs itself (the BM projection, stage B)
    /// on a CPU with `features` on which tract runs the integer kernel `i8_kernel` (see
    /// [`tract_kernel`]); the convolutions inside tract's graphs follow
    /// [`Self::tract_graph_for`].
    ///
    /// * x86-64 with AVX2: bmn-edge's widened kernel — `vpmaddwd` (16 multiply-adds per
    ///   instruction against an 8-lane FMA's 8, on int8 operands instead of `f32`), or
    ///   `vpdpwssd` with AVX-512 VNNI. Per window: 1.2–1.3× fp32 with AVX2 only, and
    ///   1.2–1.4× tract's VNNI integer kernels on an AVX-512 VNNI Zen 4,
    ///   whose products alone are as fast as the widened tile but cost more per call in the
    ///   engine (benches/README.md, session 9);
    /// * else tract's integer kernels where its choice is a dot-product kernel and the CPU
    ///   has the instruction (aarch64 FEAT_DotProd: Cortex-A76, A78AE; and x86-64 whose
    ///   tract kernel uses AMX-INT8 tiles, whose matrix instructions the widened tile was
    ///   never measured against);
    /// * else exact float. aarch64 without FEAT_DotProd (Cortex-A72: Raspberry Pi 4) gets
    ///   exact float: its integer kernel widens and multiplies (`smlal`) at the same 4 lanes
    ///   per instruction as `fmla`, so integers save memory traffic but not arithmetic — to
    ///   be confirmed on the board.
    pub fn choose(features: &CpuFeatures, i8_kernel: Option<&str>) -> Int8Arithmetic {
        let amx = features.amx_int8 && i8_kernel.is_some_and(|k| k.contains("amx"));
        if features.avx2 && !amx {
            Int8Arithmetic::Widened
        } else if integer_kernels_are_fast(features, i8_kernel) {
            Int8Arithmetic::Integer
        } else {
            Int8Arithmetic::ExactFloat
        }
    }

    /// The arithmetic of the int8 convolutions inside tract's graphs (stage A, a pixel
    /// backbone) when the engine's own products run in `self`: the widened kernel is the
    /// engine's, so there it means tract's integer kernels where they are built on a dot
    /// product, else exact float ([`Self::tract_graph_for`] with this CPU's report).
    pub fn in_tract_graph(self) -> Int8Arithmetic {
        let r = CpuReport::this_cpu();
        self.tract_graph_for(&r.features, r.i8_kernel.as_deref())
    }

    /// [`Self::in_tract_graph`] for a CPU with `features` whose tract integer kernel is
    /// `i8_kernel`.
    pub fn tract_graph_for(self, features: &CpuFeatures, i8_kernel: Option<&str>) -> Int8Arithmetic {
        match self {
            Int8Arithmetic::Widened if integer_kernels_are_fast(features, i8_kernel) => Int8Arithmetic::Integer,
            Int8Arithmetic::Widened => Int8Arithmetic::ExactFloat,
            a => a,
        }
    }

    /// [`Self::choose`] for this CPU and tract's integer kernel for a product with a long
    /// `m` and `n` (the stage-B layers'). Deterministic for a given CPU and build: no
    /// timing is involved. `EngineOptions::int8_arithmetic` (`--int8` on the command line)
    /// forces either.
    pub fn for_this_cpu() -> Int8Arithmetic {
        CpuReport::this_cpu().arithmetic
    }

    /// `integer`, `float` (also `exact-float`) or `widened`.
    pub fn parse(s: &str) -> Option<Int8Arithmetic> {
        match s {
            "integer" | "int" => Some(Int8Arithmetic::Integer),
            "float" | "exact-float" => Some(Int8Arithmetic::ExactFloat),
            "widened" => Some(Int8Arithmetic::Widened),
            _ => None,
        }
    }

    /// `integer`, `exact-float` or `widened`.
    pub fn name(self) -> &'static str {
        match self {
            Int8Arithmetic::Integer => "integer",
            Int8Arithmetic::ExactFloat => "exact-float",
            Int8Arithmetic::Widened => "widened",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dot_product_kernels_by_name() {
        for k in ["avx512vnni_mmm_i32_16x16", "avxvnni_mmm_i32_8x8", "arm64simd_mmm_i32_8x8_dot", "amx_mmm_i32"] {
            assert!(is_dot_product_kernel(k), "{k}");
        }
        for k in ["avx2_mmm_i32_8x8", "arm64simd_mmm_i32_8x8", "sve_mmm_i32_8x8", "generic_i32_4x4"] {
            assert!(!is_dot_product_kernel(k), "{k}");
        }
    }

    /// The kernel's view of the CPU (`/proc/cpuinfo` on Linux): `flags` on x86-64,
    /// `Features` on aarch64, of the first processor. `None` where it cannot be read.
    fn cpuinfo_flags(key: &str) -> Option<Vec<String>> {
        let text = std::fs::read_to_string("/proc/cpuinfo").ok()?;
        let line = text.lines().find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))?;
        Some(line.split(':').nth(1)?.split_whitespace().map(str::to_string).collect())
    }

    /// Detection agrees with the Linux kernel's feature flags (which it clears for features
    /// the OS does not enable), feature by feature.
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_detection_agrees_with_the_kernel() {
        let Some(flags) = cpuinfo_flags("flags") else { return };
        let has = |name: &str| flags.iter().any(|f| f == name);
        let (f, removed) = (CpuFeatures::detect(), removed_by_tract_cpu_isa());
        for (got, flag, name) in [
            (f.avx, "avx", "avx"),
            (f.avx2, "avx2", "avx2"),
            (f.fma, "fma", "fma"),
            (f.avx512f, "avx512f", "avx512f"),
            (f.avx512vnni, "avx512_vnni", "avx512vnni"),
            (f.avxvnni, "avx_vnni", "avxvnni"),
        ] {
            let implied = name != "avx512vnni" || f.avx512f;
            assert_eq!(got, has(flag) && !removed.iter().any(|r| r == name) && implied, "{flag}");
        }
        // AMX as tract sees it implies the kernel's flag (not conversely: tract's build may lack
        // the AMX kernels, or the process its permission).
        assert!(!f.amx_int8 || has("amx_int8"));
        assert!(!f.dotprod && !f.i8mm && !f.sve && !f.sve2);
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_detection_agrees_with_the_kernel() {
        let Some(flags) = cpuinfo_flags("Features") else { return };
        let has = |name: &str| flags.iter().any(|f| f == name);
        let (f, removed) = (CpuFeatures::detect(), removed_by_tract_cpu_isa());
        for (got, flag, name) in [
            (f.dotprod, "asimddp", "dotprod"),
            (f.i8mm, "i8mm", "i8mm"),
            (f.sve, "sve", "sve"),
            (f.sve2, "sve2", "sve2"),
        ] {
            assert_eq!(got, has(flag) && !removed.iter().any(|r| r == name), "{flag}");
        }
        assert!(!f.avx2 && !f.avx512vnni);
    }

    /// The x86 features agree with what tract-linalg's own probe found (it decides which
    /// kernels run), also when `TRACT_CPU_ISA` takes features away (CI runs this test with
    /// `TRACT_CPU_ISA=-avx512f,-avx512vnni`, `board/determinism.sh`).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn x86_detection_agrees_with_tract() {
        if std::env::var("TRACT_CPU_ISA").is_ok_and(|s| s.contains('+')) {
            return;
        }
        use tract_linalg::isa::Isa;
        let (f, isa) = (CpuFeatures::detect(), tract_linalg::isa::native());
        assert_eq!(f.avx2, isa.has(Isa::X86_64Avx2));
        assert_eq!(f.fma, isa.has(Isa::X86_64Fma));
        assert_eq!(f.avx512f, isa.has(Isa::X86_64Avx512f));
    }

    #[cfg(target_arch = "aarch64")]
    #[test]
    fn aarch64_detection_agrees_with_tract() {
        if std::env::var("TRACT_CPU_ISA").is_ok_and(|s| s.contains('+'))
            || std::env::var_os("TRACT_DOTPROD_DISABLE").is_some()
        {
            return;
        }
        let (f, isa) = (CpuFeatures::detect(), tract_linalg::isa::native());
        assert_eq!(f.dotprod, isa.has(tract_linalg::isa::Isa::Aarch64DotProd));
        assert!(!f.avx2 && !f.avx512vnni);
    }

    /// tract names a kernel of its x86-64 family for both products, of the element type
    /// asked for, and an integer kernel built on a dot product exactly when the CPU has one
    /// (or, with AVX-VNNI only, when tract's build includes that kernel).
    #[cfg(target_arch = "x86_64")]
    #[test]
    fn tract_kernels_on_this_cpu() {
        if std::env::var("TRACT_CPU_ISA").is_ok_and(|s| s.contains('+')) {
            return;
        }
        let f = CpuFeatures::detect();
        for (m, k, n) in [(1024, 256, 100), (256, 512, 128), (256, 2304, 256)] {
            let f32k = tract_kernel(Product::F32, Some(m), Some(k), Some(n)).expect("an f32 kernel");
            let i8k = tract_kernel(Product::I8, Some(m), Some(k), Some(n)).expect("an int8 kernel");
            assert!(f32k.contains("_mmm_f32_"), "{f32k}");
            assert!(i8k.contains("_mmm_i32_"), "{i8k}");
            if f.fma && !f.avx512f {
                assert!(f32k.starts_with("fma_mmm_f32_"), "{f32k}");
            }
            if f.avx2 && !f.avx512vnni && !f.avxvnni && !f.amx_int8 {
                assert_eq!(i8k, "avx2_mmm_i32_8x8");
            }
            if f.avx512vnni {
                assert!(i8k.starts_with("avx512"), "{i8k}");
            }
            assert_eq!(is_dot_product_kernel(&i8k), f.avx512vnni || f.amx_int8 || i8k.contains("avxvnni"));
        }
    }

    #[test]
    fn weight_certificate() {
        // 1024 weights of −128: 128 · 2^17 = 2^24 exactly, certified; one more 1 is not.
        let mut w = vec![-128i8; 1024];
        assert!(weights_exact_in_f32(&w, 1024));
        w.push(1);
        assert!(!weights_exact_in_f32(&w, 1025));
        // K = 1152 (a 3×3 over 128 channels) of moderate weights passes; of extreme ones fails.
        let row: Vec<i8> = (0..1152).map(|j| ((j * 37) % 61) as i8 - 30).collect();
        let two: Vec<i8> = row.iter().chain(&row).copied().collect();
        assert!(weights_exact_in_f32(&two, 1152));
        assert!(!weights_exact_in_f32(&[127; 1152], 1152));
        assert!(!weights_exact_in_f32(&two, 1000) && !weights_exact_in_f32(&two, 0));
        // The certificate's guarantee on a worst-case input for the certified row: the f32
        // sum in either order equals the exact one.
        let x: Vec<i8> = row.iter().map(|&v| if v < 0 { -128 } else { 127 }).collect();
        let exact: i64 = row.iter().zip(&x).map(|(&a, &b)| i64::from(a) * i64::from(b)).sum();
        let fwd: f32 = row.iter().zip(&x).map(|(&a, &b)| f32::from(a) * f32::from(b)).sum();
        let rev: f32 = row.iter().zip(&x).rev().map(|(&a, &b)| f32::from(a) * f32::from(b)).sum();
        assert_eq!((fwd as i64, rev as i64), (exact, exact));
    }

    #[test]
    fn integer_only_with_a_dot_product_kernel_and_instruction() {
        let avx = CpuFeatures { avx: true, ..CpuFeatures::default() };
        let avx2 = CpuFeatures { avx2: true, fma: true, ..avx };
        let vnni = CpuFeatures { avx512f: true, avx512vnni: true, ..avx2 };
        let a72 = CpuFeatures::default();
        let a76 = CpuFeatures { dotprod: true, ..a72 };
        use Int8Arithmetic::{ExactFloat, Integer, Widened};
        // (CPU, tract's integer kernel, the engine's products, tract's graphs)
        let cases = [
            // AVX2 without a dot product: bmn-edge's widened kernel, not tract's emulation;
            // exact float inside tract's graphs.
            (avx2, Some("avx2_mmm_i32_8x8"), Widened, ExactFloat),
            // AVX-512 VNNI: widened (vpdpwssd) for the engine's products, tract's VNNI
            // kernels inside its graphs.
            (vnni, Some("avx512vnni_mmm_i32_8x8"), Widened, Integer),
            (vnni, Some("avx512vnni_mmm_i32_16x16"), Widened, Integer),
            // AVX-VNNI hardware, with and without tract's kernel for it.
            (CpuFeatures { avxvnni: true, ..avx2 }, Some("avx2_mmm_i32_8x8"), Widened, ExactFloat),
            (CpuFeatures { avxvnni: true, ..avx2 }, Some("avxvnni_mmm_i32_8x8"), Widened, Integer),
            // No AVX2 (Sandy Bridge, or x86-64 under a minimal emulated CPU): exact float.
            (avx, Some("avx_mmm_i32_8x4"), ExactFloat, ExactFloat),
            (a72, Some("arm64simd_mmm_i32_8x8"), ExactFloat, ExactFloat),
            (a76, Some("arm64simd_mmm_i32_8x8_dot"), Integer, Integer),
            // A dot-product kernel name without the instruction (TRACT_CPU_ISA forcing).
            (avx2, Some("avx512vnni_mmm_i32_8x8"), Widened, ExactFloat),
            (vnni, None, Widened, ExactFloat),
            (a76, None, ExactFloat, ExactFloat),
            // AMX-INT8 tiles in tract's kernel: tract's integer kernels throughout; AMX
            // hardware whose tract build lacks the tiles: as AVX-512 VNNI.
            (CpuFeatures { amx_int8: true, ..vnni }, Some("avx512amx_mmm_i32_16x16"), Integer, Integer),
            (CpuFeatures { amx_int8: true, ..vnni }, Some("avx512vnni_mmm_i32_8x8"), Widened, Integer),
        ];
        for (f, kernel, want, graph) in cases {
            let chosen = Int8Arithmetic::choose(&f, kernel);
            assert_eq!(chosen, want, "{f} / {kernel:?}");
            assert_eq!(chosen.tract_graph_for(&f, kernel), graph, "{f} / {kernel:?}: tract's graphs");
        }
        // Forcing: integer and exact float are the same everywhere; widened's graphs follow
        // the CPU.
        for (f, kernel, _, graph) in cases {
            assert_eq!(Integer.tract_graph_for(&f, kernel), Integer);
            assert_eq!(ExactFloat.tract_graph_for(&f, kernel), ExactFloat);
            assert_eq!(Widened.tract_graph_for(&f, kernel), graph, "{f} / {kernel:?}");
        }
        assert_eq!(Int8Arithmetic::parse("integer"), Some(Int8Arithmetic::Integer));
        assert_eq!(Int8Arithmetic::parse("float"), Some(Int8Arithmetic::ExactFloat));
        assert_eq!(Int8Arithmetic::parse("widened"), Some(Int8Arithmetic::Widened));
        assert_eq!(Int8Arithmetic::parse("fast"), None);
        for a in [Int8Arithmetic::Integer, Int8Arithmetic::ExactFloat, Int8Arithmetic::Widened] {
            assert_eq!(Int8Arithmetic::parse(a.name()), Some(a));
        }
    }

    /// The exactness bound: at `K = 1024` the worst sum is exactly `2^24`; past the bound an
    /// integer sum need not be representable (`2^24 + 1` is not), shown by a sum `f32` gets
    /// wrong one term past it. Below it, random levels sum exactly in any order.
    #[test]
    fn f32_sums_of_level_products_are_exact_up_to_the_bound() {
        assert!(exact_in_f32(EXACT_F32_TERMS) && !exact_in_f32(EXACT_F32_TERMS + 1));
        let worst = -128.0f32 * -128.0;
        let s: f32 = (0..EXACT_F32_TERMS).map(|_| worst).sum();
        assert_eq!(s as i64, EXACT_F32_TERMS as i64 * 16384);
        let over: f32 = (0..EXACT_F32_TERMS).map(|_| worst).chain([1.0]).sum();
        assert_ne!(over as i64, EXACT_F32_TERMS as i64 * 16384 + 1);
        // Random levels, K = 1024, checked against i64 sums in both summation orders.
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut level = || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed >> 56) as u8 as i8
        };
        for _ in 0..50 {
            let (a, b): (Vec<i8>, Vec<i8>) = (0..EXACT_F32_TERMS).map(|_| (level(), level())).unzip();
            let exact: i64 = a.iter().zip(&b).map(|(&x, &y)| i64::from(x) * i64::from(y)).sum();
            let fwd: f32 = a.iter().zip(&b).map(|(&x, &y)| f32::from(x) * f32::from(y)).sum();
            let rev: f32 = a.iter().zip(&b).rev().map(|(&x, &y)| f32::from(x) * f32::from(y)).sum();
            assert_eq!((fwd as i64, rev as i64), (exact, exact));
        }
    }
}

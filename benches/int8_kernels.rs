//! The int8 model's matrix products in tract, on one thread, in both arithmetics that give
//! the same int8 sums (`bmn_edge::engine::cpu`):
//!
//! * `i8`: `MatMulInteger` (int8 × int8 → int32), tract's integer kernel for this CPU;
//! * `f32`: `MatMul` on the same levels and weights stored as integer-valued `f32`s, tract's
//!   float kernel; its sums equal the integer ones exactly (checked below before timing)
//!   while every partial sum stays below `2^24`;
//! * `widened_avx2`: bmn-edge's own kernel (`bmn_edge::engine::widened`, `vpmaddwd` on
//!   operands widened to `i16`; `widened_portable` on a CPU without AVX2), timed from the
//!   int8 levels to the `i32` sums, packing included — the same sums (checked); and
//!   `widened_avx512vnni` where the CPU has AVX-512 VNNI (`vpdpwssd`: the multiply-add and
//!   the add in one instruction);
//! * `f32x2` (3×3 layers only, `K = 9·cin` > 1024): the float product split into two halves
//!   of `K`, each exact for any levels, as the float path would run a layer whose weights do
//!   not certify a single product (`bmn_edge::engine::cpu::weights_exact_in_f32`).
//!
//! Shapes are the shipped model's (`models/bmn_synth_int8.edge.onnx`, paper configuration
//! T = D = 100, N = 32, P = 256, O = 512; stage B 512 → 128 → 128 (3×3) → 128 (3×3) → 2):
//!
//! | product | `W` | `X` | as the engine builds it |
//! |---|---|---|---|
//! | projection (one block of 32 BM channels) | `[N·32 = 1024][P = 256]` | `[256][T = 100]` | `Wᵀ·y`, all dims fixed |
//! | stage B first layer (1×1) | `[128][512]` | `[512][128 cells]` | `n` fixed (`CELL_CHUNK`) |
//! | stage B 3×3 layer (im2col) | `[128][9·128 = 1152]` | `[1152][256 cells]` | `n` symbolic (chunks of ≤ 256) |
//! | the same, `n` fixed | | | (not how the engine builds it today) |
//!
//! The bench prints the kernel tract-linalg names for each product on this CPU first.
//!
//! `cargo bench --bench int8_kernels`

use bmn_edge::engine::cpu::{tract_kernel, CpuFeatures, Int8Arithmetic, Product};
use bmn_edge::engine::widened::{WidenedGemm, WidenedScratch, WidenedSimd};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;
use std::sync::Arc;
use tract_onnx::pb;
use tract_onnx::prelude::*;
use tract_onnx::tract_core::model::TypedRunnableModel;

const ONNX_FLOAT: i32 = 1;
const ONNX_INT8: i32 = 3;
const ONNX_INT32: i32 = 6;

/// One product of the model.
struct Shape {
    name: &'static str,
    m: usize,
    k: usize,
    n: usize,
    /// Whether the engine leaves `n` symbolic when it optimises the product.
    symbolic_n: bool,
}

const SHAPES: [Shape; 4] = [
    Shape { name: "projection", m: 1024, k: 256, n: 100, symbolic_n: false },
    Shape { name: "stage_b_1x1", m: 128, k: 512, n: 128, symbolic_n: false },
    Shape { name: "stage_b_3x3", m: 128, k: 1152, n: 256, symbolic_n: true },
    // The same with `n` fixed when optimising (the engine would pad its last chunk).
    Shape { name: "stage_b_3x3_fixed_n", m: 128, k: 1152, n: 256, symbolic_n: false },
];

fn tensor_type(elem: i32, dims: Option<&[Option<usize>]>) -> pb::TypeProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = dims.map(|dims| pb::TensorShapeProto {
        dim: dims
            .iter()
            .map(|d| Dimension {
                denotation: String::new(),
                value: Some(match d {
                    Some(v) => Value::DimValue(*v as i64),
                    None => Value::DimParam("n".into()),
                }),
            })
            .collect(),
    });
    pb::TypeProto {
        denotation: String::new(),
        value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: elem, shape })),
    }
}

/// A one-node model `y = op(W, x)` with the constant `W` (`[m][k]`, raw little-endian bytes
/// of `elem`) and the input `x` (`[k][n]`), optimised by tract as the engine's products are.
fn product(
    op: &str,
    elem: i32,
    out_elem: i32,
    w: Vec<u8>,
    m: usize,
    k: usize,
    n: Option<usize>,
) -> Arc<TypedRunnableModel> {
    let x_dims = [Some(k), n];
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(pb::GraphProto {
            node: vec![pb::NodeProto {
                input: vec!["w".into(), "x".into()],
                output: vec!["y".into()],
                name: "product".into(),
                op_type: op.into(),
                ..Default::default()
            }],
            name: "int8_kernels_bench".into(),
            initializer: vec![pb::TensorProto {
                dims: vec![m as i64, k as i64],
                data_type: elem,
                name: "w".into(),
                raw_data: w,
                ..Default::default()
            }],
            input: vec![pb::ValueInfoProto {
                name: "x".into(),
                r#type: Some(tensor_type(elem, Some(&x_dims))),
                doc_string: String::new(),
            }],
            output: vec![pb::ValueInfoProto {
                name: "y".into(),
                r#type: Some(tensor_type(out_elem, None)),
                doc_string: String::new(),
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    tract_onnx::onnx()
        .model_for_proto_model(&model)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .expect("the product model")
}

/// Random int8 levels (xorshift), the full range.
fn levels(len: usize, seed: &mut u64) -> Vec<i8> {
    (0..len)
        .map(|_| {
            *seed ^= *seed << 13;
            *seed ^= *seed >> 7;
            *seed ^= *seed << 17;
            (*seed >> 56) as u8 as i8
        })
        .collect()
}

fn run(model: &Arc<TypedRunnableModel>, x: &Tensor) -> Tensor {
    let mut out = model.run(tvec!(x.clone().into_tvalue())).expect("product runs");
    out.pop().expect("one output").into_tensor()
}

fn bench(c: &mut Criterion) {
    use tract_onnx::prelude::tract_linalg::multithread::{set_default_executor, Executor};
    set_default_executor(Executor::SingleThread);
    let features = CpuFeatures::detect();
    eprintln!("CPU features: {features}; int8 arithmetic for this CPU: {}", Int8Arithmetic::for_this_cpu().name());
    let mut seed = 0x9e37_79b9_7f4a_7c15u64;
    for s in &SHAPES {
        let (m, k, n) = (s.m, s.k, s.n);
        let n_opt = if s.symbolic_n { None } else { Some(n) };
        eprintln!(
            "{}: [{m}×{k}]·[{k}×{n}]{}: tract kernels f32 {:?}, i8 {:?}",
            s.name,
            if s.symbolic_n { " (n symbolic)" } else { "" },
            tract_kernel(Product::F32, Some(m), Some(k), n_opt),
            tract_kernel(Product::I8, Some(m), Some(k), n_opt),
        );
        let (w, x) = (levels(m * k, &mut seed), levels(k * n, &mut seed));
        let wf: Vec<f32> = w.iter().map(|&v| f32::from(v)).collect();
        let xf: Vec<f32> = x.iter().map(|&v| f32::from(v)).collect();
        let int = product("MatMulInteger", ONNX_INT8, ONNX_INT32, w.iter().map(|&v| v as u8).collect(), m, k, n_opt);
        let float = product("MatMul", ONNX_FLOAT, ONNX_FLOAT, bytes(&wf), m, k, n_opt);
        let xi = Tensor::from_shape(&[k, n], &x).expect("x");
        let xt = Tensor::from_shape(&[k, n], &xf).expect("x");

        // The arithmetics agree exactly on these levels (sums far below 2^24), and with a
        // direct i64 product.
        let yi = run(&int, &xi);
        let yf = run(&float, &xt);
        let yi = plain::<i32>(&yi);
        let yf = plain::<f32>(&yf);
        for (r, (a, b)) in yi.iter().zip(yf).enumerate().step_by(97) {
            let (row, col) = (r / n, r % n);
            let direct: i64 = (0..k).map(|j| i64::from(w[row * k + j]) * i64::from(x[j * n + col])).sum();
            assert_eq!((i64::from(*a), *b as i64), (direct, direct), "{} at ({row}, {col})", s.name);
        }
        assert!(yi.iter().zip(yf).all(|(&a, &b)| a as f32 == b), "{}: f32 and i32 sums differ", s.name);

        let group = format!("int8_kernels/{}/{m}x{k}x{n}", s.name);
        c.bench_function(&format!("{group}/i8"), |b| b.iter(|| run(&int, black_box(&xi))));
        c.bench_function(&format!("{group}/f32"), |b| b.iter(|| run(&float, black_box(&xt))));
        // bmn-edge's own AVX2 kernel (`engine::widened`), from the int8 levels (packing
        // included) to the i32 sums — the same sums.
        // Each code this CPU can run (the portable one only where no other can).
        let mut widened = WidenedGemm::new(&w, m, k).expect("packed weights");
        let simds = [WidenedSimd::Avx512Vnni, WidenedSimd::Avx2, WidenedSimd::Portable];
        for simd in simds
            .into_iter()
            .filter(|s| s.available())
            .take_while(|&s| s != WidenedSimd::Portable || !WidenedSimd::Avx2.available())
        {
            widened.set_simd(simd);
            let (mut scratch, mut acc) = (WidenedScratch::default(), Vec::new());
            widened.run(&x, n, &mut scratch, &mut acc).expect("widened product");
            assert_eq!(acc, yi, "{}: widened ({}) sums differ", s.name, simd.name());
            c.bench_function(&format!("{group}/widened_{}", simd.name()), |b| {
                b.iter(|| widened.run(black_box(&x), n, &mut scratch, &mut acc).expect("widened product"))
            });
        }
        if k > bmn_edge::engine::cpu::EXACT_F32_TERMS {
            // Two exact halves of K (channel-aligned: 9·cin/2 = 9·(cin/2) rows of the im2col).
            let h = k / 2;
            let (w0, w1): (Vec<f32>, Vec<f32>) = {
                let mut w0 = Vec::with_capacity(m * h);
                let mut w1 = Vec::with_capacity(m * (k - h));
                for row in wf.chunks_exact(k) {
                    w0.extend_from_slice(&row[..h]);
                    w1.extend_from_slice(&row[h..]);
                }
                (w0, w1)
            };
            let p0 = product("MatMul", ONNX_FLOAT, ONNX_FLOAT, bytes(&w0), m, h, n_opt);
            let p1 = product("MatMul", ONNX_FLOAT, ONNX_FLOAT, bytes(&w1), m, k - h, n_opt);
            let x0 = Tensor::from_shape(&[h, n], &xf[..h * n]).expect("x0");
            let x1 = Tensor::from_shape(&[k - h, n], &xf[h * n..]).expect("x1");
            let split = |x0: &Tensor, x1: &Tensor| -> Vec<i32> {
                let (a, b) = (run(&p0, x0), run(&p1, x1));
                let (a, b) = (plain::<f32>(&a), plain::<f32>(&b));
                a.iter().zip(b).map(|(&u, &v)| u as i32 + v as i32).collect()
            };
            assert_eq!(split(&x0, &x1), yi, "{}: split float sums differ", s.name);
            c.bench_function(&format!("{group}/f32x2"), |b| b.iter(|| split(black_box(&x0), black_box(&x1))));
        }
    }
}

fn plain<T: Datum>(t: &Tensor) -> &[T] {
    t.try_as_plain_ram().and_then(|p| p.as_slice::<T>()).expect("a plain tensor of the expected type")
}

fn bytes(v: &[f32]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_le_bytes()).collect()
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);

//! One-node tract models for the engine's matrix products, and reading their outputs.

use crate::engine::cpu::{weights_exact_in_f32, Int8Arithmetic};
use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::onnx::{dtype, pb, value_info};
use crate::engine::widened::{self, WidenedGemm, WidenedScratch};
use std::sync::Arc;
use tract_core::model::TypedRunnableModel;
use tract_onnx::prelude::*;

/// A one-node tract model: `op(a, b)` where one operand is the input `x` (`x_dims`, `None`
/// for a symbolic `n`; element type `elem`) and the other the constant `w` (`w_dims`, raw
/// little-endian bytes of the same type); `x_left` puts the input first.
pub(crate) fn product_model(
    op: &str,
    elem: i32,
    w: Vec<u8>,
    w_dims: &[usize],
    x_dims: &[Option<usize>],
    x_left: bool,
    what: &str,
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let dims = x_dims
        .iter()
        .map(|d| Dimension {
            denotation: String::new(),
            value: Some(match d {
                Some(v) => Value::DimValue(*v as i64),
                None => Value::DimParam("n".into()),
            }),
        })
        .collect();
    let input = pb::ValueInfoProto {
        name: "x".into(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: elem,
                shape: Some(pb::TensorShapeProto { dim: dims }),
            })),
        }),
        doc_string: String::new(),
    };
    let operands = if x_left { vec!["x".into(), "w".into()] } else { vec!["w".into(), "x".into()] };
    let model = pb::ModelProto {
        ir_version: 8,
        opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
        graph: Some(pb::GraphProto {
            node: vec![pb::NodeProto {
                input: operands,
                output: vec!["y".into()],
                name: "product".into(),
                op_type: op.into(),
                ..Default::default()
            }],
            name: format!("bmn_edge_{what}"),
            initializer: vec![pb::TensorProto {
                dims: w_dims.iter().map(|&v| v as i64).collect(),
                data_type: elem,
                name: "w".into(),
                raw_data: w,
                ..Default::default()
            }],
            input: vec![input],
            output: vec![value_info("y", None)],
            ..Default::default()
        }),
        ..Default::default()
    };
    tract_onnx::onnx()
        .model_for_proto_model(&model)
        .and_then(|m| m.into_optimized())
        .and_then(|m| m.into_runnable())
        .map_err(|e| EngineError::tract(what, e))
}

/// Builds a tract model computing `W · X` for a constant `W` `[batch][m][k]` and an input
/// `X` `[batch][k][n]` (the batch axis dropped when `batch` is 1); `n: None` leaves the
/// column count symbolic (chunks of any width run through the same plan).
pub(crate) fn matmul_model(
    w: Vec<f32>,
    batch: usize,
    m: usize,
    k: usize,
    n: Option<usize>,
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    let (wd, mut xd): (Vec<usize>, Vec<Option<usize>>) =
        if batch == 1 { (vec![m, k], vec![Some(k)]) } else { (vec![batch, m, k], vec![Some(batch), Some(k)]) };
    xd.push(n);
    let raw: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
    drop(w);
    product_model("MatMul", dtype::FLOAT, raw, &wd, &xd, false, "stage B matrix product")
}

/// Builds a tract model computing `X · W` for an input `X` `[m][k]` and a constant `W`
/// `[k][n]` (f32, raw little-endian bytes): one block of the BM layer's float projection.
pub(crate) fn projection_model(
    raw: Vec<u8>,
    m: usize,
    k: usize,
    n: usize,
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    product_model("MatMul", dtype::FLOAT, raw, &[k, n], &[Some(m), Some(k)], true, "BM projection")
}

/// Runs a [`matmul_model`] on `x` (`shape`); returns the product as a plain tensor.
pub(crate) fn run_matmul(model: &Arc<TypedRunnableModel>, x: &[f32], shape: &[usize]) -> Result<Tensor, EngineError> {
    let tract = |e: TractError| EngineError::tract("stage B matrix product", e);
    let input = Tensor::from_shape(shape, x).map_err(tract)?;
    let mut out = model.run(tvec!(input.into_tvalue())).map_err(tract)?;
    let y = out.pop().ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "stage B matrix product: no output"))?;
    Ok(y.into_tensor())
}

pub(crate) fn plain_f32(t: &Tensor) -> Result<&[f32], EngineError> {
    t.try_as_plain_ram().and_then(|p| p.as_slice::<f32>()).map_err(|e| EngineError::tract("stage B matrix product", e))
}

pub(crate) fn run_i8(model: &Arc<TypedRunnableModel>, x: &[i8], shape: &[usize]) -> Result<Tensor, EngineError> {
    let tract = |e: TractError| EngineError::tract("stage B integer product", e);
    let input = Tensor::from_shape(shape, x).map_err(tract)?;
    let mut out = model.run(tvec!(input.into_tvalue())).map_err(tract)?;
    let y =
        out.pop().ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "stage B integer product: no output"))?;
    Ok(y.into_tensor())
}

pub(crate) fn plain_i32(t: &Tensor) -> Result<&[i32], EngineError> {
    t.try_as_plain_ram().and_then(|p| p.as_slice::<i32>()).map_err(|e| EngineError::tract("stage B integer product", e))
}

/// A stage output as a vector of `len` floats (an error names `what` otherwise).
pub(crate) fn plain(v: &TValue, what: &str, len: usize) -> Result<Vec<f32>, EngineError> {
    let s = v
        .try_as_plain_ram()
        .and_then(|p| p.as_slice::<f32>().map(|s| s.to_vec()))
        .map_err(|e| EngineError::tract(what, e))?;
    if s.len() != len {
        return Err(EngineError::new(
            EngineErrorKind::Runtime,
            format!("{what} has {} values, expected {len}", s.len()),
        ));
    }
    Ok(s)
}

/// An int8 product `W · X` — `W` a constant `[m][k]` of int8 weights, `X` `[k][n]` int8
/// levels — giving the exact `i32` sums, in one of three arithmetics
/// ([`Int8Arithmetic`]): tract's integer kernels (`MatMulInteger`); bmn-edge's own AVX2
/// kernel ([`WidenedGemm`]); or tract's float kernels on integer-valued `f32` (`MatMul`),
/// which is exact when the weights pass [`weights_exact_in_f32`] (checked here: a product
/// that fails it runs in integers). All give the same `i32` values, so everything after the
/// product is shared.
pub(crate) struct Int8Gemm {
    kernel: Kernel,
    m: usize,
    k: usize,
}

enum Kernel {
    /// tract's `MatMulInteger` (any `n`).
    Integer(Arc<TypedRunnableModel>),
    /// tract's `MatMul` on `f32` levels, planned for a fixed column count (tract plans a
    /// fixed `n` several times faster than a symbolic one); inputs with fewer columns are
    /// padded with zeros.
    ExactFloat { model: Arc<TypedRunnableModel>, cols: usize },
    /// bmn-edge's `vpmaddwd` kernel.
    Widened(WidenedGemm),
}

/// A worker's buffers for [`Int8Gemm::run`], kept from call to call: allocating a new
/// megabyte-sized input per call fragmented the heap between worker threads (+55 MiB
/// resident at two threads on the shipped model).
#[derive(Default)]
pub(crate) struct GemmScratch {
    /// The exact-float form's input tensors, one per shape.
    inputs: Vec<Arc<Tensor>>,
    /// The widened kernel's packed levels.
    widened: WidenedScratch,
}

impl GemmScratch {
    /// Empty buffers.
    pub(crate) const fn new() -> GemmScratch {
        GemmScratch { inputs: Vec::new(), widened: WidenedScratch::new() }
    }
}

impl Int8Gemm {
    /// `w` is `[m][k]`; `n` the input's column count (`None`: any). `wanted` is the
    /// arithmetic asked for; the float form also needs the exactness certificate (else
    /// integers), and takes `float_cols` as its fixed width when `n` is `None`; the widened
    /// form falls back to it for sums too long for `i32`.
    pub(crate) fn new(
        w: &[i8],
        (m, k): (usize, usize),
        n: Option<usize>,
        wanted: Int8Arithmetic,
        float_cols: usize,
        what: &str,
    ) -> Result<Int8Gemm, EngineError> {
        if w.len() != m * k {
            return Err(EngineError::new(EngineErrorKind::Runtime, format!("{what}: weights are not [{m}][{k}]")));
        }
        // Widened takes any k a model has (up to 2^17 − 1); past that, or when exact float is
        // asked for, exact float if the weights certify it; tract's integer kernels last.
        let kernel = match wanted {
            Int8Arithmetic::Widened if k <= widened::MAX_K => Kernel::Widened(WidenedGemm::new(w, m, k)?),
            Int8Arithmetic::ExactFloat | Int8Arithmetic::Widened if weights_exact_in_f32(w, k) => {
                let cols = n.unwrap_or(float_cols);
                let raw: Vec<u8> = w.iter().flat_map(|&v| f32::from(v).to_le_bytes()).collect();
                let model = product_model("MatMul", dtype::FLOAT, raw, &[m, k], &[Some(k), Some(cols)], false, what)?;
                Kernel::ExactFloat { model, cols }
            }
            _ => {
                let raw: Vec<u8> = w.iter().map(|&v| v as u8).collect();
                Kernel::Integer(product_model("MatMulInteger", dtype::INT8, raw, &[m, k], &[Some(k), n], false, what)?)
            }
        };
        Ok(Int8Gemm { kernel, m, k })
    }

    /// The arithmetic this product runs in.
    pub(crate) fn arithmetic(&self) -> Int8Arithmetic {
        match self.kernel {
            Kernel::Integer(_) => Int8Arithmetic::Integer,
            Kernel::ExactFloat { .. } => Int8Arithmetic::ExactFloat,
            Kernel::Widened(_) => Int8Arithmetic::Widened,
        }
    }

    /// `W · X` for `x` `[k][n]`, into `acc` (`[m][n]`, resized).
    pub(crate) fn run(
        &self,
        x: &[i8],
        n: usize,
        scratch: &mut GemmScratch,
        acc: &mut Vec<i32>,
    ) -> Result<(), EngineError> {
        let (m, k) = (self.m, self.k);
        if x.len() != k * n {
            return Err(EngineError::new(EngineErrorKind::Runtime, "int8 product: input size"));
        }
        acc.clear();
        match &self.kernel {
            Kernel::Widened(g) => g.run(x, n, &mut scratch.widened, acc)?,
            Kernel::Integer(model) => {
                let y = run_i8(model, x, &[k, n])?;
                acc.extend_from_slice(plain_i32(&y)?);
            }
            &Kernel::ExactFloat { ref model, cols } => {
                if n > cols {
                    return Err(EngineError::new(EngineErrorKind::Runtime, "int8 product: too many columns"));
                }
                let tract = |e: TractError| EngineError::tract("int8 product (exact float)", e);
                let inputs = &mut scratch.inputs;
                let at = match inputs.iter().position(|t| t.shape() == [k, cols]) {
                    Some(i) => i,
                    None => {
                        inputs.push(Tensor::zero::<f32>(&[k, cols]).map_err(tract)?.into_arc_tensor());
                        inputs.len() - 1
                    }
                };
                {
                    let input = Arc::get_mut(&mut inputs[at])
                        .ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "int8 product: input in use"))?;
                    let mut view = input.try_as_plain_ram_mut().map_err(tract)?;
                    let s = view.as_slice_mut::<f32>().map_err(tract)?;
                    for (dst, src) in s.chunks_exact_mut(cols).zip(x.chunks_exact(n.max(1))) {
                        for (d, &v) in dst[..n].iter_mut().zip(src) {
                            *d = f32::from(v);
                        }
                        dst[n..].fill(0.0);
                    }
                }
                let mut out = model.run(tvec!(TValue::from_const(inputs[at].clone()))).map_err(tract)?;
                let y =
                    out.pop().ok_or_else(|| EngineError::new(EngineErrorKind::Runtime, "int8 product: no output"))?;
                let y = y.try_as_plain_ram().and_then(|p| p.as_slice::<f32>()).map_err(tract)?;
                // Exact integers below 2^24 (the certificate): the conversion is exact.
                for row in y.chunks_exact(cols) {
                    acc.extend(row[..n].iter().map(|&v| v as i32));
                }
            }
        }
        if acc.len() != m * n {
            return Err(EngineError::new(EngineErrorKind::Runtime, "int8 product: output size"));
        }
        Ok(())
    }
}

/// Builds a stage (a part of the model's graph) as a runnable tract model for a fixed input
/// shape (`BMN_EDGE_DUMP_PLAN=1` prints tract's optimized graph).
pub(crate) fn build_stage(
    proto: tract_onnx::pb::ModelProto,
    stage: &str,
    input_shape: &[usize],
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    build_stage_with(proto, stage, input_shape, None)
}

/// A pass over the decluttered typed model before tract's optimizer runs (the engine's own
/// ops in place of tract's: `depthwise::replace_depthwise`).
pub(crate) type TypedPass<'a> = &'a dyn Fn(&mut TypedModel) -> TractResult<()>;

/// [`build_stage`], with `pass` run on the decluttered model first when given.
pub(crate) fn build_stage_with(
    proto: tract_onnx::pb::ModelProto,
    stage: &str,
    input_shape: &[usize],
    pass: Option<TypedPass<'_>>,
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    // tract asserts (panics) on some malformed graphs instead of returning an error (an
    // out-of-range Squeeze axis, found by fuzzing): a file from elsewhere must not take the
    // process down, so such a panic becomes this model's load error, without the panic
    // hook's report (see `quiet_tract_panics`).
    let built = quiet_tract_panics(|| {
        let model = tract_onnx::onnx().model_for_proto_model(&proto).map_err(|e| EngineError::tract(stage, e))?;
        drop(proto);
        let model = model.with_input_fact(0, f32::fact(input_shape).into());
        match pass {
            None => model.and_then(|m| m.into_optimized()),
            Some(pass) => model.and_then(|m| m.into_typed()).and_then(|m| m.into_decluttered()).and_then(|mut m| {
                pass(&mut m)?;
                m.into_optimized()
            }),
        }
        .and_then(|m| {
            if std::env::var_os("BMN_EDGE_DUMP_PLAN").is_some() {
                eprintln!("{stage}:\n{m}");
            }
            m.into_runnable()
        })
        .map_err(|e| EngineError::tract(stage, e))
    });
    built.unwrap_or_else(|panic| {
        let what = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "no message".to_string());
        Err(EngineError::new(
            EngineErrorKind::NotOnnx,
            format!("{stage}: tract cannot build this graph (it stopped on an internal check: {what}); the model is malformed"),
        ))
    })
}

std::thread_local! {
    /// Whether this thread is inside [`quiet_tract_panics`].
    static BUILDING: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs `f` (tract building a graph from a file) catching a panic as `Err(payload)`. The
/// process' panic hook is wrapped once so that it stays silent for a panic caught here on
/// this thread and reports every other panic exactly as before.
fn quiet_tract_panics<T>(f: impl FnOnce() -> T) -> Result<T, Box<dyn std::any::Any + Send>> {
    static WRAP: std::sync::Once = std::sync::Once::new();
    WRAP.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            if !BUILDING.with(|b| b.get()) {
                previous(info);
            }
        }));
    });
    BUILDING.with(|b| b.set(true));
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(f));
    BUILDING.with(|b| b.set(false));
    r
}

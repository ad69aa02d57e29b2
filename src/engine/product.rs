//! One-node tract models for the engine's matrix products, and reading their outputs.

use crate::engine::error::{EngineError, EngineErrorKind};
use crate::engine::onnx::{dtype, pb, value_info};
use std::sync::Arc;
use tract_onnx::prelude::*;
use tract_core::model::TypedRunnableModel;

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

/// Builds a tract model computing `W · X` for a constant int8 `W` `[m][k]` (raw bytes) and
/// an int8 input `X` `[k][n]` (`MatMulInteger`, int32 product): one block of the BM layer's
/// int8 projection, transposed.
pub(crate) fn projection_model_t(
    raw: Vec<u8>,
    n: usize,
    k: usize,
    m: usize,
) -> Result<Arc<TypedRunnableModel>, EngineError> {
    product_model("MatMulInteger", dtype::INT8, raw, &[m, k], &[Some(k), Some(n)], false, "BM projection")
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

//! Reading BMN ONNX files: the wire format, the BM site, the split into stages, the edge
//! format and the recognition of stage B's convolution chain.

pub(crate) mod chain;
pub(crate) mod edge;
pub(crate) mod exact_float;
pub(crate) mod index;
pub(crate) mod qoperator;
pub(crate) mod site;
pub(crate) mod split;
pub(crate) mod weights;
pub(crate) mod wire;

pub(crate) use crate::engine::error::{EngineError, EngineErrorKind};
pub(crate) use std::collections::{HashMap, HashSet};
pub(crate) use tract_onnx::pb;

/// Domain of the edge format's BM node.
pub const EDGE_DOMAIN: &str = "ai.bmn_edge";
/// Op type of the edge format's BM node.
pub const EDGE_OP: &str = "BoundaryMatching";
/// Prefix of the edge format's metadata keys.
pub const META_PREFIX: &str = "bmn_edge.";

/// ONNX tensor element types (`TensorProto.DataType`) the engine reads.
pub(crate) mod dtype {
    /// float32.
    pub const FLOAT: i32 = 1;
    /// uint8.
    pub const UINT8: i32 = 2;
    /// int8.
    pub const INT8: i32 = 3;
    /// int32.
    pub const INT32: i32 = 6;
}

fn not_bmn(msg: impl Into<String>) -> EngineError {
    EngineError::new(EngineErrorKind::NotBmn, msg)
}

/// The attribute `name` of `node`.
pub(crate) fn attr<'n>(node: &'n pb::NodeProto, name: &str) -> Option<&'n pb::AttributeProto> {
    node.attribute.iter().find(|a| a.name == name)
}

fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    attr(node, name).map(|a| a.ints.clone())
}

fn is_onnx(node: &pb::NodeProto) -> bool {
    node.domain.is_empty() || node.domain == "ai.onnx"
}

pub(crate) fn value_dims(v: &pb::ValueInfoProto) -> Option<Vec<Option<usize>>> {
    let pb::type_proto::Value::TensorType(t) = v.r#type.as_ref()?.value.as_ref()?;
    let shape = t.shape.as_ref()?;
    Some(
        shape
            .dim
            .iter()
            .map(|d| match d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                _ => None,
            })
            .collect(),
    )
}

/// A float tensor's value info (`dims`: `None` leaves the shape unknown).
pub(crate) fn value_info(name: &str, dims: Option<&[usize]>) -> pb::ValueInfoProto {
    use pb::tensor_shape_proto::{dimension::Value, Dimension};
    let shape = dims.map(|d| pb::TensorShapeProto {
        dim: d
            .iter()
            .map(|&v| Dimension { denotation: String::new(), value: Some(Value::DimValue(v as i64)) })
            .collect(),
    });
    pb::ValueInfoProto {
        name: name.to_string(),
        r#type: Some(pb::TypeProto {
            denotation: String::new(),
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: dtype::FLOAT, shape })),
        }),
        doc_string: String::new(),
    }
}

//! The model's constants checked at load: every float weight finite, every quantization
//! scale finite and positive.
//!
//! Non-finite weights are refused rather than propagated. onnxruntime gives NaN maps for
//! them, which post-processing refuses (`WindowMaps::new`), but the engine's sparse stage B
//! skips the cells where the map is constant — there a NaN weight never meets a value, and
//! the engine would report finite, plausible proposals from a broken model. Propagating
//! NaN through every shortcut would cost the hot path a check per cell and report the fault
//! only after a window has run; refusing at load costs one pass over the weights and names
//! the tensor.
//!
//! A quantization scale of 0, a negative one or a non-finite one makes every level
//! meaningless (a division by zero in quantization, levels of the wrong sign), and tract and
//! the integer tail would run with it silently: refused with the tensor's name.

use super::index::GraphIndex;
use super::*;

/// Ops whose float constants may legitimately be infinite: bounds, not weights.
const BOUND_OPS: [&str; 3] = ["Clip", "Min", "Max"];

/// The scale inputs of the quantized ops the engine reads (ONNX input positions).
fn scale_inputs(node: &pb::NodeProto) -> &'static [usize] {
    match (node.domain.as_str(), node.op_type.as_str()) {
        ("" | "ai.onnx", "QuantizeLinear" | "DequantizeLinear") => &[1],
        // x_scale, w_scale / b_scale, y_scale.
        ("" | "ai.onnx", "QLinearConv" | "QLinearMatMul") => &[1, 4, 6],
        // The edge node: (y, W, b, x_scale, w_scale, w_zero_point).
        (EDGE_DOMAIN, EDGE_OP) => &[3, 4],
        _ => &[],
    }
}

/// A float constant's values, or `None` when it is not float32 or not stored inline (the
/// loader reports those where it reads them).
fn floats(t: &pb::TensorProto) -> Option<Vec<f32>> {
    if t.data_type != dtype::FLOAT || t.data_location == Some(1) || !t.external_data.is_empty() {
        return None;
    }
    Some(if t.raw_data.is_empty() {
        t.float_data.clone()
    } else {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    })
}

fn unsupported(msg: String) -> EngineError {
    EngineError::new(EngineErrorKind::Unsupported, msg)
}

/// Checks the graph's constants (initializers and `Constant` nodes; a deferred mask is not
/// in the decoded graph and is verified against the BM table instead): float weights finite,
/// quantization scales finite and positive. Errors name the tensor.
pub(crate) fn check_constants(graph: &pb::GraphProto) -> Result<(), EngineError> {
    let ix = GraphIndex::new(graph, &[]);
    for node in &graph.node {
        for &i in scale_inputs(node) {
            let Some(name) = node.input.get(i).filter(|n| !n.is_empty()) else { continue };
            let Some(values) = ix.const_tensor(name).and_then(floats) else { continue };
            if let Some((j, v)) = values.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
                return Err(unsupported(format!(
                    "quantization scale `{name}` (input {i} of {} `{}`) has value {v} at index {j} of {}: a scale must be finite and positive",
                    node.op_type,
                    node.name,
                    values.len()
                )));
            }
        }
    }
    let constant_nodes = graph.node.iter().filter(|n| n.op_type == "Constant").filter_map(|n| {
        let t = attr(n, "value").and_then(|a| a.t.as_ref())?;
        Some((n.output.first()?.as_str(), t))
    });
    let tensors = graph.initializer.iter().map(|t| (t.name.as_str(), t)).chain(constant_nodes);
    for (name, t) in tensors {
        let bounds_only = {
            let c = ix.consumers(name);
            !c.is_empty() && c.iter().all(|&k| BOUND_OPS.contains(&graph.node[k].op_type.as_str()))
        };
        if bounds_only {
            continue;
        }
        let Some(values) = floats(t) else { continue };
        if let Some((j, v)) = values.iter().enumerate().find(|(_, v)| !v.is_finite()) {
            return Err(unsupported(format!(
                "weight `{name}` is not finite: value {j} of {} is {v} (a model with NaN or infinite weights has no meaningful maps)",
                values.len()
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::onnx::wire::f32_tensor;

    fn node(op: &str, inputs: &[&str]) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            name: format!("{op}_0"),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec!["out".into()],
            ..Default::default()
        }
    }

    fn graph(nodes: Vec<pb::NodeProto>, inits: Vec<pb::TensorProto>) -> pb::GraphProto {
        pb::GraphProto { node: nodes, initializer: inits, ..Default::default() }
    }

    #[test]
    fn weights_must_be_finite_except_as_bounds() {
        let w = |v: f32| f32_tensor("w", &[2], &[1.0, v]);
        assert!(check_constants(&graph(vec![node("Conv", &["x", "w"])], vec![w(0.5)])).is_ok());
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY] {
            let e = check_constants(&graph(vec![node("Conv", &["x", "w"])], vec![w(bad)])).unwrap_err();
            assert_eq!(e.kind(), EngineErrorKind::Unsupported);
            assert!(e.to_string().starts_with("weight `w` is not finite: value 1 of 2"), "{e}");
            // An upper bound of a Clip may be infinite.
            assert!(check_constants(&graph(vec![node("Clip", &["x", "lo", "w"])], vec![w(bad)])).is_ok());
        }
    }

    #[test]
    fn scales_must_be_finite_and_positive() {
        let s = |v: f32| f32_tensor("s", &[], &[v]);
        let q = |v: f32| graph(vec![node("QuantizeLinear", &["x", "s", "z"])], vec![s(v)]);
        assert!(check_constants(&q(0.02)).is_ok());
        for bad in [0.0, -0.0, -1.0, f32::NAN, f32::INFINITY] {
            let e = check_constants(&q(bad)).unwrap_err();
            assert!(e.to_string().starts_with("quantization scale `s` (input 1 of QuantizeLinear"), "{bad}: {e}");
        }
        // A QLinearConv's y_scale (input 6), and the edge node's w_scale (input 4).
        let mut conv = node("QLinearConv", &["x", "xs", "xz", "w", "ws", "wz", "s", "yz"]);
        let e = check_constants(&graph(vec![conv.clone()], vec![s(0.0)])).unwrap_err();
        assert!(e.to_string().contains("input 6 of QLinearConv"), "{e}");
        conv.input = vec!["y".into(), "w".into(), "b".into(), "xs".into(), "s".into()];
        conv.op_type = EDGE_OP.into();
        conv.domain = EDGE_DOMAIN.into();
        let e = check_constants(&graph(vec![conv], vec![s(-2.0)])).unwrap_err();
        assert!(e.to_string().contains("input 4 of BoundaryMatching"), "{e}");
    }
}

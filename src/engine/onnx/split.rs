//! Cutting a BMN graph around its BM layer: stage A (ending at `yᵀ`), the BM layer's
//! weights (as projection blocks and a bias) and stage B.

use super::index::GraphIndex;
use super::site::Site;
use super::wire::tensor_f32;
use super::*;

/// Moves the named constants out of `graph` (initializers; `Constant` nodes stay as nodes).
fn take_initializers(graph: &mut pb::GraphProto, names: &HashSet<String>) -> Vec<pb::TensorProto> {
    let (take, keep): (Vec<_>, Vec<_>) =
        std::mem::take(&mut graph.initializer).into_iter().partition(|t| names.contains(&t.name));
    graph.initializer = keep;
    take
}

pub(crate) fn inputs_of(graph: &pb::GraphProto, nodes: &[usize]) -> HashSet<String> {
    nodes.iter().flat_map(|&i| graph.node[i].input.iter().filter(|s| !s.is_empty()).cloned()).collect()
}

/// The receptive-field radius of stage B (the nodes between `h` and the confidence
/// output), when it is made only of stride-1 "same" convolutions and element-wise ops:
/// `Σ (k − 1)/2 · dilation`. `None` for anything else (then stage B runs on the whole map).
pub(crate) fn stage_b_halo(graph: &pb::GraphProto, site: &Site) -> Option<usize> {
    let ix = GraphIndex::new(graph, &[]);
    let nodes = ix.ancestors(&[&site.outputs[0]], &[&site.h]);
    let mut halo = 0;
    for &i in &nodes {
        let n = &graph.node[i];
        match n.op_type.as_str() {
            "Conv" | "QLinearConv" => {
                let k = attr_ints(n, "kernel_shape")?;
                if k.len() != 2 || k[0] != k[1] || k[0] % 2 == 0 {
                    return None;
                }
                let r = (k[0] as usize - 1) / 2;
                let dil = attr_ints(n, "dilations").map_or(1, |d| d.first().copied().unwrap_or(1));
                if attr_ints(n, "dilations").is_some_and(|d| d.iter().any(|&x| x != dil)) || dil < 1 {
                    return None;
                }
                if attr_ints(n, "strides").is_some_and(|st| st.iter().any(|&x| x != 1))
                    || attr(n, "group").is_some_and(|g| g.i != 1)
                {
                    return None;
                }
                let pad = r as i64 * dil;
                let pads_ok = match attr_ints(n, "pads") {
                    Some(p) => p.iter().all(|&x| x == pad),
                    None => {
                        pad == 0 || attr(n, "auto_pad").is_some_and(|a| a.s == b"SAME_UPPER" || a.s == b"SAME_LOWER")
                    }
                };
                if !pads_ok {
                    return None;
                }
                halo += r * dil as usize;
            }
            "Relu" | "Sigmoid" | "Clip" | "LeakyRelu" | "QuantizeLinear" | "DequantizeLinear" | "Identity"
            | "Constant" => {}
            _ => return None,
        }
    }
    Some(halo)
}

/// Name of stage A's third output, `yᵀ` `[1, T, P]`.
const YT_NAME: &str = "bmn_edge_y_t";

/// The two tract-ready models and what the BM kernel needs.
pub(crate) struct Split {
    /// Stage B's receptive-field radius, if it is all "same" convolutions.
    pub halo: Option<usize>,
    pub stage_a: pb::ModelProto,
    pub stage_b: pb::ModelProto,
    /// BM bias `[O]`.
    pub bias: Vec<f32>,
    /// The projection `Z = yᵀ · Wz`, per block of output channels (stage A ends at `yᵀ`).
    pub projection: Projection,
    /// Stage A's start and end sigmoids were cut out of its graph ([`sigmoid_tails`]): the
    /// engine applies them (`Act::Sigmoid`) to stage A's outputs.
    pub sigmoid_after_a: bool,
}

/// Shape-only operators a sigmoid commutes with on its way to a graph output.
const SHAPE_ONLY: [&str; 5] = ["Squeeze", "Unsqueeze", "Reshape", "Flatten", "Identity"];

/// The `Sigmoid` node that ends each of `outputs` in `nodes`, through shape-only operators
/// (`Squeeze`, `Reshape`, …); nothing but the chain may read the sigmoid's output or the
/// shape ops' (nor the graph output itself); `None` unless every output has one.
///
/// Why: tract's sigmoid is a per-CPU kernel (AVX2, AVX-512 and NEON approximations that
/// differ in the last bits), so start/end computed by it differ across instruction sets
/// even when the logits before it are exact (an int8 model's levels times a scale). Cut
/// out (turned into `Identity`) and applied by the engine with `libm`'s `expf`, an int8
/// model's outputs are the same bytes on x86-64 and aarch64.
pub(crate) fn sigmoid_tails(nodes: &[pb::NodeProto], outputs: &[&str]) -> Option<Vec<usize>> {
    let producer = |name: &str| nodes.iter().position(|n| n.output.iter().any(|o| o == name));
    let consumers = |name: &str| nodes.iter().filter(|n| n.input.iter().any(|i| i == name)).count();
    let mut found = Vec::new();
    for &out in outputs {
        let mut name = out.to_string();
        loop {
            let i = producer(&name)?;
            let n = &nodes[i];
            // Only the chain itself may read what the sigmoid and the shape ops produce: a
            // node reading any of it would see the values without the sigmoid.
            if consumers(&name) != usize::from(name != out) {
                return None;
            }
            if n.op_type == "Sigmoid" && n.input.len() == 1 && n.output.len() == 1 {
                found.push(i);
                break;
            }
            if !SHAPE_ONLY.contains(&n.op_type.as_str()) || n.input.is_empty() {
                return None;
            }
            name = n.input[0].clone();
        }
    }
    Some(found)
}

/// The BM layer's projection weights, per block of `chunk` output channels: `[P][N·chunk]`.
pub(crate) enum Projection {
    /// Float weights.
    Float { blocks: Vec<Vec<f32>> },
    /// int8 symmetric weights; `Z[.., o] = (y_q · W_q)[.., o] · col_scale[o]` with
    /// `y_q = round(y / x_scale)`.
    Int8 { blocks: Vec<Vec<i8>>, x_scale: f32, col_scale: Vec<f32> },
}

pub(crate) fn int_values(t: &pb::TensorProto) -> Result<Vec<i64>, EngineError> {
    let raw = &t.raw_data;
    let v: Vec<i64> = match t.data_type {
        dtype::UINT8 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b)).collect(),
        dtype::INT8 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b as i8)).collect(),
        dtype::INT32 if !raw.is_empty() => {
            raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        dtype::UINT8 | dtype::INT8 | dtype::INT32 => t.int32_data.iter().map(|&x| i64::from(x)).collect(),
        other => {
            return Err(EngineError::new(
                EngineErrorKind::Unsupported,
                format!("tensor `{}` has data type {other}, expected int8/uint8/int32", t.name),
            ))
        }
    };
    Ok(v)
}

/// The BM layer's float weight `[O, P, N]` and bias `[O]` (dequantized for a QLinearConv:
/// `W = (w − zp)·w_scale`, `b = B·x_scale·w_scale`, per tensor or per output channel).
pub(crate) fn float_weights(ix: &GraphIndex<'_>, site: &Site) -> Result<(Vec<f32>, Vec<f32>), EngineError> {
    let get = |name: &str| ix.const_tensor(name).ok_or_else(|| not_bmn(format!("BM constant `{name}` missing")));
    let o = site.out_width;
    match &site.qlinear {
        None => {
            // Float constants, or QDQ: DequantizeLinear of constants.
            let value = |name: &str| -> Result<Vec<f32>, EngineError> {
                if let Some((q, scale, zp)) = ix.dequantized(name) {
                    let qv = int_values(q)?;
                    let sv = tensor_f32(scale)?;
                    let zv = match zp {
                        Some(z) => int_values(z)?,
                        None => vec![0],
                    };
                    let per = (qv.len() / sv.len().max(1)).max(1);
                    return Ok(qv
                        .iter()
                        .enumerate()
                        .map(|(i, &v)| {
                            let c = i / per;
                            (v - zv[if zv.len() == 1 { 0 } else { c }]) as f32 * sv[if sv.len() == 1 { 0 } else { c }]
                        })
                        .collect());
                }
                tensor_f32(get(name)?)
            };
            let weight = value(&site.weight)?;
            let bias = match &site.bias {
                Some(b) => value(b)?,
                None => vec![0.0; o],
            };
            Ok((weight, bias))
        }
        Some((x_scale, w_scale, w_zp)) => {
            let xs = tensor_f32(get(x_scale)?)?;
            let ws = tensor_f32(get(w_scale)?)?;
            let zp = int_values(get(w_zp)?)?;
            let w = int_values(get(&site.weight)?)?;
            if xs.len() != 1 || !(ws.len() == 1 || ws.len() == o) || !(zp.len() == 1 || zp.len() == o) {
                return Err(EngineError::new(
                    EngineErrorKind::Unsupported,
                    "BM QLinearConv with unexpected scale or zero-point shapes",
                ));
            }
            let per = w.len() / o;
            let weight = w
                .iter()
                .enumerate()
                .map(|(i, &q)| {
                    let oo = i / per;
                    ((q - zp[if zp.len() == 1 { 0 } else { oo }]) as f32) * ws[if ws.len() == 1 { 0 } else { oo }]
                })
                .collect();
            let bias = match &site.bias {
                Some(b) => int_values(get(b)?)?
                    .iter()
                    .enumerate()
                    .map(|(oo, &q)| q as f32 * xs[0] * ws[if ws.len() == 1 { 0 } else { oo }])
                    .collect(),
                None => vec![0.0; o],
            };
            Ok((weight, bias))
        }
    }
}

/// The BM layer's weights when they are int8 and symmetric (a `QLinearConv` Conv3d with
/// int8 weights, zero points 0, per-tensor input scale): kept in int8 by the engine.
pub(crate) struct Int8Bm {
    /// `[O, P, N]`.
    pub weight: Vec<i8>,
    /// Per tensor (1) or per output channel (`O`).
    pub w_scale: Vec<f32>,
    pub x_scale: f32,
    /// Dequantized `[O]`.
    pub bias: Vec<f32>,
}

/// Whether the BM layer is a `QLinearConv` with int8 symmetric weights the engine keeps in
/// int8 (zero points 0, per-tensor input scale, per-tensor or per-channel weight scale).
pub(crate) fn int8_bm_symmetric(ix: &GraphIndex<'_>, site: &Site) -> Result<bool, EngineError> {
    let Some((x_scale, w_scale, w_zp)) = &site.qlinear else { return Ok(false) };
    let (Some(w), Some(xs), Some(ws), Some(zp)) =
        (ix.const_tensor(&site.weight), ix.const_tensor(x_scale), ix.const_tensor(w_scale), ix.const_tensor(w_zp))
    else {
        return Ok(false);
    };
    let o = site.out_width;
    let (xs, ws, zp) = (tensor_f32(xs)?, tensor_f32(ws)?, int_values(zp)?);
    let len = if w.raw_data.is_empty() { w.int32_data.len() } else { w.raw_data.len() };
    Ok(w.data_type == dtype::INT8
        && xs.len() == 1
        && (ws.len() == 1 || ws.len() == o)
        && zp.iter().all(|&z| z == 0)
        && len == o * site.pem_width * site.num_sample)
}

pub(crate) fn int8_bm_weights(ix: &GraphIndex<'_>, site: &Site) -> Result<Option<Int8Bm>, EngineError> {
    if !int8_bm_symmetric(ix, site)? {
        return Ok(None);
    }
    let Some((x_scale, w_scale, _)) = &site.qlinear else { return Ok(None) };
    let (Some(w), Some(xs), Some(ws)) =
        (ix.const_tensor(&site.weight), ix.const_tensor(x_scale), ix.const_tensor(w_scale))
    else {
        return Ok(None);
    };
    let (xs, ws) = (tensor_f32(xs)?, tensor_f32(ws)?);
    // From the raw bytes: `int_values` would hold 8 bytes per weight.
    let weight: Vec<i8> = if w.raw_data.is_empty() {
        w.int32_data.iter().map(|&v| v as i8).collect()
    } else {
        w.raw_data.iter().map(|&b| b as i8).collect()
    };
    let bias = match &site.bias {
        Some(b) => {
            let t = ix.const_tensor(b).ok_or_else(|| not_bmn("BM bias missing"))?;
            int_values(t)?
                .iter()
                .enumerate()
                .map(|(oo, &q)| q as f32 * xs[0] * ws[if ws.len() == 1 { 0 } else { oo }])
                .collect()
        }
        None => vec![0.0; site.out_width],
    };
    Ok(Some(Int8Bm { weight, w_scale: ws, x_scale: xs[0], bias }))
}

/// Cuts `proto` (mask already removed or released) into stage A (x → start, end, Z) and
/// stage B (h → confidence). `chunk` is the output-channel block of Z's layout
/// `[O/chunk, T, N·chunk]`.
pub(crate) fn split(
    mut proto: pb::ModelProto,
    site: &Site,
    channels: usize,
    chunk: usize,
) -> Result<Split, EngineError> {
    let mut graph = proto.graph.take().ok_or_else(|| not_bmn("no graph"))?;
    let halo = stage_b_halo(&graph, site);
    let (a_nodes, b_nodes) = {
        let ix = GraphIndex::new(&graph, &[]);
        let a = ix.ancestors(&[&site.outputs[1], &site.outputs[2], &site.y], &[&site.input]);
        let b = ix.ancestors(&[&site.outputs[0]], &[&site.h]);
        (a, b)
    };
    if let Some(&c) = site.chain.iter().find(|c| a_nodes.contains(c) || b_nodes.contains(c)) {
        return Err(not_bmn(format!("node {c} of the BM layer is needed outside it; cannot split")));
    }
    let (o, p, n, t, d) = (site.out_width, site.pem_width, site.num_sample, site.tscale, site.dscale);
    let nc = o.div_ceil(chunk);
    // Projection weights per block of `chunk` output channels:
    // Wz_c[p, n·chunk + j] = W[c·chunk + j, p, n] (zero for padding), filled straight from
    // the weight's bytes so that W is held once.
    let int8 = int8_bm_weights(&GraphIndex::new(&graph, &[]), site)?;
    let plain_weight = site.qlinear.is_none()
        && graph.initializer.iter().any(|t| t.name == site.weight && t.data_type == dtype::FLOAT);
    let at = |pp: usize, nn: usize, j: usize| pp * n * chunk + nn * chunk + j;
    let (projection, bias) = if let Some(q) = int8 {
        // int8 symmetric QLinearConv: Wz stays int8, y is quantized with the QLinearConv's
        // input scale, Z = (y_q · Wz_q) · x_scale · w_scale[o].
        let mut blocks = vec![vec![0i8; p * n * chunk]; nc];
        let col_scale: Vec<f32> =
            (0..o).map(|oo| q.x_scale * q.w_scale[if q.w_scale.len() == 1 { 0 } else { oo }]).collect();
        for oo in 0..o {
            let (c, j) = (oo / chunk, oo % chunk);
            for pp in 0..p {
                for nn in 0..n {
                    blocks[c][at(pp, nn, j)] = q.weight[(oo * p + pp) * n + nn];
                }
            }
        }
        (Projection::Int8 { blocks, x_scale: q.x_scale, col_scale }, q.bias)
    } else if plain_weight {
        let mut wb = HashSet::new();
        wb.insert(site.weight.clone());
        let mut w = take_initializers(&mut graph, &wb);
        let w = w.pop().ok_or_else(|| not_bmn("BM weight missing"))?;
        let bytes: std::borrow::Cow<'_, [u8]> = if w.raw_data.is_empty() {
            std::borrow::Cow::Owned(w.float_data.iter().flat_map(|v| v.to_le_bytes()).collect())
        } else {
            std::borrow::Cow::Borrowed(&w.raw_data)
        };
        if w.data_type != dtype::FLOAT || bytes.len() != o * p * n * 4 {
            return Err(EngineError::new(
                EngineErrorKind::Unsupported,
                format!("BM weight `{}` must be float32 [O, P, N, 1, 1]", w.name),
            ));
        }
        let mut blocks = vec![vec![0f32; p * n * chunk]; nc];
        for oo in 0..o {
            let (c, j) = (oo / chunk, oo % chunk);
            for pp in 0..p {
                for nn in 0..n {
                    let src = ((oo * p + pp) * n + nn) * 4;
                    blocks[c][at(pp, nn, j)] =
                        f32::from_le_bytes([bytes[src], bytes[src + 1], bytes[src + 2], bytes[src + 3]]);
                }
            }
        }
        drop(bytes);
        drop(w);
        let bias = match &site.bias {
            Some(b) => {
                tensor_f32(GraphIndex::new(&graph, &[]).const_tensor(b).ok_or_else(|| not_bmn("BM bias missing"))?)?
            }
            None => vec![0.0; o],
        };
        (Projection::Float { blocks }, bias)
    } else {
        let (weight, b) = float_weights(&GraphIndex::new(&graph, &[]), site)?;
        let mut blocks = vec![vec![0f32; p * n * chunk]; nc];
        for oo in 0..o {
            let (c, j) = (oo / chunk, oo % chunk);
            for pp in 0..p {
                for nn in 0..n {
                    blocks[c][at(pp, nn, j)] = weight[(oo * p + pp) * n + nn];
                }
            }
        }
        (Projection::Float { blocks }, b)
    };

    let mut nodes: Vec<Option<pb::NodeProto>> = std::mem::take(&mut graph.node).into_iter().map(Some).collect();
    let mut a_graph_nodes: Vec<pb::NodeProto> = a_nodes.iter().filter_map(|&i| nodes[i].take()).collect();
    let b_graph_nodes: Vec<pb::NodeProto> = b_nodes.iter().filter_map(|&i| nodes[i].take()).collect();
    drop(nodes);
    let tails = sigmoid_tails(&a_graph_nodes, &[&site.outputs[1], &site.outputs[2]]);
    for &i in tails.iter().flatten() {
        let n = &mut a_graph_nodes[i];
        n.op_type = "Identity".into();
        n.attribute.clear();
    }
    let sigmoid_after_a = tails.is_some();
    let a_inputs: HashSet<String> = a_graph_nodes.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let b_inputs: HashSet<String> = b_graph_nodes.iter().flat_map(|n| n.input.iter().cloned()).collect();
    let a_inits = take_initializers(&mut graph, &a_inputs);
    let b_inits = take_initializers(&mut graph, &b_inputs);
    drop(graph);

    a_graph_nodes.push(pb::NodeProto {
        input: vec![site.y.clone()],
        output: vec![YT_NAME.into()],
        name: "bmn_edge_transpose_y".into(),
        op_type: "Transpose".into(),
        attribute: vec![pb::AttributeProto {
            name: "perm".into(),
            r#type: 7,
            ints: vec![0, 2, 1],
            ..Default::default()
        }],
        ..Default::default()
    });
    let stage_a = pb::ModelProto {
        ir_version: proto.ir_version,
        opset_import: proto.opset_import.clone(),
        graph: Some(pb::GraphProto {
            node: a_graph_nodes,
            name: "bmn_stage_a".into(),
            initializer: a_inits,
            input: vec![value_info(&site.input, Some(&[1, channels, t]))],
            output: vec![
                value_info(&site.outputs[1], None),
                value_info(&site.outputs[2], None),
                value_info(YT_NAME, None),
            ],
            ..Default::default()
        }),
        ..Default::default()
    };
    let stage_b = pb::ModelProto {
        ir_version: proto.ir_version,
        opset_import: std::mem::take(&mut proto.opset_import),
        graph: Some(pb::GraphProto {
            node: b_graph_nodes,
            name: "bmn_stage_b".into(),
            initializer: b_inits,
            input: vec![value_info(&site.h, Some(&[1, o, d, t]))],
            output: vec![value_info(&site.outputs[0], None)],
            ..Default::default()
        }),
        ..Default::default()
    };
    Ok(Split { halo, stage_a, stage_b, bias, projection, sigmoid_after_a })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(op: &str, inputs: &[&str], output: &str) -> pb::NodeProto {
        pb::NodeProto {
            op_type: op.into(),
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![output.into()],
            ..Default::default()
        }
    }

    /// mmaction2's TEM tails: `… → Sigmoid → Squeeze → start`, and the same for `end`.
    fn tem(start_tail: &[pb::NodeProto]) -> Vec<pb::NodeProto> {
        let mut n = vec![node("Conv", &["x", "w"], "base"), node("Conv", &["base", "ws"], "ls")];
        n.extend_from_slice(start_tail);
        n.extend([
            node("Conv", &["base", "we"], "le"),
            node("Sigmoid", &["le"], "se"),
            node("Squeeze", &["se", "axes"], "end"),
            node("Conv", &["base", "wy"], "y"),
        ]);
        n
    }

    #[test]
    fn the_start_and_end_sigmoids_are_found_through_shape_ops() {
        let nodes = tem(&[node("Sigmoid", &["ls"], "ss"), node("Squeeze", &["ss", "axes"], "start")]);
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), Some(vec![2, 5]));
        // Directly at the output, too.
        let nodes = tem(&[node("Sigmoid", &["ls"], "start")]);
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), Some(vec![2, 4]));
    }

    #[test]
    fn no_cut_unless_every_output_ends_in_a_sigmoid_used_only_there() {
        // start without a sigmoid: neither is cut (start and end stay consistent).
        let nodes = tem(&[node("Squeeze", &["ls", "axes"], "start")]);
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), None);
        // The sigmoid's output also feeds another node: cutting it would change that node.
        let mut nodes = tem(&[node("Sigmoid", &["ls"], "ss"), node("Squeeze", &["ss", "axes"], "start")]);
        nodes.push(node("Mul", &["ss", "y"], "other"));
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), None);
        // A node inside the graph also reads the output `start` itself.
        let mut nodes = tem(&[node("Sigmoid", &["ls"], "ss"), node("Squeeze", &["ss", "axes"], "start")]);
        nodes.push(node("Add", &["start", "y"], "other"));
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), None);
        // Arithmetic between the sigmoid and the output: not a shape op.
        let nodes = tem(&[node("Sigmoid", &["ls"], "ss"), node("Mul", &["ss", "k"], "start")]);
        assert_eq!(sigmoid_tails(&nodes, &["start", "end"]), None);
    }
}

//! Finding the BM layer in an ONNX graph, and cutting the graph around it.
//!
//! The pattern is found by op types, constant shapes and wiring only — never by node or
//! tensor names, which differ between exporters:
//!
//! ```text
//! y[B,P,T] ─ MatMul(·, M[T, N·D·T]) ─ Reshape[B,P,N,D,T] ─ Conv(W[O,P,N,1,1], kernel (N,1,1))
//!           ─ Relu / Squeeze (either order) ─ h[B,O,D,T]
//! ```
//!
//! or, in the edge format, one `ai.bmn_edge.BoundaryMatching(y, W, b) -> h` node. Everything
//! that computes the graph outputs from `x` without passing through `h` is stage A; what
//! lies between `h` and the confidence output is stage B.

use super::index::{GraphIndex, MaskRef};
use super::wire::ModelFile;
use super::*;
use crate::engine::info::ModelFormat;

/// The BM layer and its surroundings, found structurally.
#[derive(Debug, Clone)]
pub(crate) struct Site {
    pub format: ModelFormat,
    /// The graph's data input `x` and its declared dims (None = symbolic).
    pub input: String,
    pub input_dims: Vec<Option<usize>>,
    /// Input of the BM layer (PEM 1-d output).
    pub y: String,
    /// Output of the BM layer (after ReLU and squeeze).
    pub h: String,
    /// Conv3d weight `[O, P, N, 1, 1]` and bias `[O]`.
    pub weight: String,
    pub bias: Option<String>,
    /// For a `QLinearConv` Conv3d: `(x_scale, w_scale, w_zero_point)`; the weight is int8
    /// and the bias int32 (`b·x_scale·w_scale`). The engine runs the BM layer in float with
    /// the dequantized weights.
    pub qlinear: Option<(String, String, String)>,
    pub outputs: [String; 3],
    /// Nodes of the BM chain (replaced in the edge format).
    pub chain: Vec<usize>,
    pub mask: Option<MaskRef>,
    pub tscale: usize,
    pub dscale: usize,
    pub num_sample: usize,
    /// `(K, r)` when the file states them (edge format).
    pub perbin_ratio: Option<(usize, f64)>,
    pub pem_width: usize,
    pub out_width: usize,
    /// Channels of the tensor the PEM 1-d convolution reads (the "base" width).
    pub base_width: Option<usize>,
    /// Quantized op types found (QLinearConv, QuantizeLinear, ...).
    pub quant_ops: Vec<String>,
    /// Quantization forms that tract runs slowly (QDQ, asymmetric, per-channel, u8).
    pub quant_slow: Vec<String>,
}

/// Which quantization forms of a graph tract 0.23 runs slowly (README, "Model files").
fn quant_slow_forms(ix: &GraphIndex<'_>) -> Vec<String> {
    let g = ix.graph;
    let mut out = Vec::new();
    let from_dq = |name: &str| ix.producer.get(name).is_some_and(|&p| g.node[p].op_type == "DequantizeLinear");
    if g.node
        .iter()
        .any(|n| matches!(n.op_type.as_str(), "Conv" | "MatMul" | "Gemm") && n.input.iter().skip(1).any(|i| from_dq(i)))
    {
        out.push(
            "QDQ (DequantizeLinear feeding float Conv/MatMul: tract runs it in float, slower than fp32)".to_string(),
        );
    }
    let (mut asym, mut per_channel, mut unsigned) = (false, false, false);
    let zero_point_of = |n: &pb::NodeProto| -> Vec<usize> {
        match n.op_type.as_str() {
            "QLinearConv" | "QLinearMatMul" => vec![2, 5, 7],
            "QuantizeLinear" | "DequantizeLinear" => vec![2],
            _ => vec![],
        }
    };
    for n in &g.node {
        for z in zero_point_of(n) {
            if let Some(t) = n.input.get(z).and_then(|i| ix.const_tensor(i)) {
                unsigned |= t.data_type == dtype::UINT8;
                // int32 bias zero points (DequantizeLinear of a bias) are always 0.
                asym |= t.raw_data.iter().any(|&b| b != 0) || t.int32_data.iter().any(|&v| v != 0);
            }
        }
        if n.op_type == "QLinearConv" || n.op_type == "QLinearMatMul" {
            if let Some(t) = n.input.get(4).and_then(|i| ix.const_tensor(i)) {
                per_channel |= t.dims.iter().product::<i64>() > 1;
            }
        }
        if n.op_type == "DequantizeLinear" && n.input.first().is_some_and(|i| ix.const_tensor(i).is_some()) {
            if let Some(t) = n.input.get(1).and_then(|i| ix.const_tensor(i)) {
                per_channel |= t.dims.iter().product::<i64>() > 1;
            }
        }
    }
    if asym {
        out.push("asymmetric quantization (non-zero zero points: tract adds zero-point corrections that cost more than int8 saves)".to_string());
    }
    if per_channel {
        out.push("per-channel weight scales (tract adds corrections; per-tensor is the fast form)".to_string());
    }
    if unsigned {
        out.push("uint8 tensors (tract's fast integer kernels want int8 activations and weights)".to_string());
    }
    out
}

pub(crate) fn find_site(file: &ModelFile) -> Result<Site, EngineError> {
    let graph = file.proto.graph.as_ref().ok_or_else(|| not_bmn("no graph"))?;
    let ix = GraphIndex::new(graph, &file.deferred);
    let inputs = ix.data_inputs();
    if inputs.len() != 1 {
        return Err(not_bmn(format!(
            "a BMN graph has one data input x[B, C, T]; this one has {} ({})",
            inputs.len(),
            inputs.iter().map(|i| i.name.as_str()).collect::<Vec<_>>().join(", ")
        )));
    }
    let input = inputs[0].name.clone();
    let input_dims = value_dims(inputs[0]).unwrap_or_default();
    if !input_dims.is_empty() && input_dims.len() != 3 {
        return Err(not_bmn(format!("the input `{input}` has rank {}, a BMN input is [B, C, T]", input_dims.len())));
    }
    if graph.output.len() != 3 {
        return Err(not_bmn(format!(
            "a BMN graph has three outputs (confidence, start, end); this one has {}",
            graph.output.len()
        )));
    }
    let quant_ops: Vec<String> = {
        let mut q: Vec<String> = graph
            .node
            .iter()
            .filter(|n| {
                n.op_type.starts_with("QLinear")
                    || n.op_type.to_ascii_lowercase().contains("quantize")
                    || n.op_type.starts_with("ConvInteger")
                    || n.op_type.starts_with("MatMulInteger")
            })
            .map(|n| if n.domain.is_empty() { n.op_type.clone() } else { format!("{}.{}", n.domain, n.op_type) })
            .collect();
        q.sort();
        q.dedup();
        q
    };

    // Edge format: one custom node.
    let edge: Vec<usize> = (0..graph.node.len())
        .filter(|&i| graph.node[i].op_type == EDGE_OP && graph.node[i].domain == EDGE_DOMAIN)
        .collect();
    let (chain, y, h, weight, bias, qlinear, mask, tscale, dscale, num_sample, perbin_ratio, format) = if let Some(&e) =
        edge.first()
    {
        if edge.len() > 1 {
            return Err(not_bmn("more than one BoundaryMatching node"));
        }
        let node = &graph.node[e];
        let int = |k: &str| -> Result<usize, EngineError> {
            attr(node, k)
                .map(|a| a.i)
                .filter(|&v| v > 0)
                .map(|v| v as usize)
                .ok_or_else(|| not_bmn(format!("BoundaryMatching node lacks a positive `{k}` attribute")))
        };
        let ratio = attr(node, "ratio")
            .and_then(|a| std::str::from_utf8(&a.s).ok().and_then(|s| s.parse::<f64>().ok()))
            .ok_or_else(|| not_bmn("BoundaryMatching node lacks its `ratio` attribute"))?;
        if node.input.len() < 2 || node.input.len() == 4 || node.input.len() == 5 || node.output.len() != 1 {
            return Err(not_bmn(
                "BoundaryMatching node must have inputs (y, weight[, bias[, x_scale, w_scale, w_zero_point]]) and one output",
            ));
        }
        (
            vec![e],
            node.input[0].clone(),
            node.output[0].clone(),
            node.input[1].clone(),
            node.input.get(2).filter(|s| !s.is_empty()).cloned(),
            (node.input.len() >= 6).then(|| (node.input[3].clone(), node.input[4].clone(), node.input[5].clone())),
            None,
            int("tscale")?,
            int("dscale")?,
            int("num_sample")?,
            Some((int("num_sample_perbin")?, ratio)),
            ModelFormat::Edge,
        )
    } else {
        // Standard export: MatMul with a constant [T, L].
        let mut found = None;
        for (i, n) in graph.node.iter().enumerate() {
            if n.op_type != "MatMul" || !is_onnx(n) || n.input.len() != 2 || !ix.is_const(&n.input[1]) {
                continue;
            }
            let Some(dims) = ix.const_dims(&n.input[1], &file.deferred) else { continue };
            if dims.len() != 2 || dims[0] < 1 || dims[1] < dims[0] || dims[1] % dims[0] != 0 {
                continue;
            }
            found = Some((i, dims[0] as usize, dims[1] as usize));
            break;
        }
        let Some((mm, t, l)) = found else {
            return Err(not_bmn(
                "no BM layer found: a BMN graph has a MatMul with a constant mask of shape [T, N·D·T] followed by Reshape and a Conv3d",
            ));
        };
        let mm_node = &graph.node[mm];
        let mut chain = vec![mm];
        let reshape_ix = ix
            .single_consumer_ix(&mm_node.output[0])
            .ok_or_else(|| not_bmn("the BM MatMul's output must feed exactly one Reshape"))?;
        let reshape = &graph.node[reshape_ix];
        if reshape.op_type != "Reshape" {
            return Err(not_bmn(format!("the BM MatMul is followed by {}, expected Reshape", reshape.op_type)));
        }
        chain.push(reshape_ix);
        let mut after = reshape.output[0].clone();
        // int8 exports quantize the BM output before the Conv3d (QOperator: QuantizeLinear
        // then QLinearConv; QDQ: QuantizeLinear, DequantizeLinear, then a float Conv).
        while let Some(q) = ix
            .single_consumer_ix(&after)
            .filter(|&q| matches!(graph.node[q].op_type.as_str(), "QuantizeLinear" | "DequantizeLinear"))
        {
            chain.push(q);
            after = graph.node[q].output[0].clone();
        }
        let conv_ix =
            ix.single_consumer_ix(&after).ok_or_else(|| not_bmn("the BM Reshape must feed exactly one Conv3d"))?;
        let conv = &graph.node[conv_ix];
        let quant = conv.op_type == "QLinearConv";
        let (w_ix, b_ix) = if quant { (3, 8) } else { (1, 2) };
        if !(conv.op_type == "Conv" || quant) || conv.input.len() <= w_ix {
            return Err(not_bmn(format!("the BM Reshape is followed by {}, expected a Conv3d", conv.op_type)));
        }
        chain.push(conv_ix);
        let qlinear = quant.then(|| (conv.input[1].clone(), conv.input[4].clone(), conv.input[5].clone()));
        let wdims = ix
            .const_dims(&conv.input[w_ix], &file.deferred)
            .ok_or_else(|| not_bmn("the Conv3d after the BM layer has no constant weight"))?;
        if wdims.len() != 5 || wdims[3] != 1 || wdims[4] != 1 || wdims.iter().any(|&d| d < 1) {
            return Err(not_bmn(format!(
                "the Conv3d after the BM layer has weight dims {wdims:?}, expected [O, P, N, 1, 1]"
            )));
        }
        let n = wdims[2] as usize;
        if l % (n * t) != 0 {
            return Err(not_bmn(format!("mask width {l} is not N·D·T with N = {n} (from the Conv3d) and T = {t}")));
        }
        let d = l / (n * t);
        if d < 1 || d > t {
            return Err(not_bmn(format!("mask [T = {t}, {l}] gives D = {d}, outside 1..=T")));
        }
        let ks = attr_ints(conv, "kernel_shape");
        let ok_kernel = ks.as_ref().is_none_or(|k| k == &[n as i64, 1, 1]);
        let ok_group = attr(conv, "group").is_none_or(|a| a.i == 1);
        let ok_pads = attr_ints(conv, "pads").is_none_or(|p| p.iter().all(|&x| x == 0));
        let ok_dil = attr_ints(conv, "dilations").is_none_or(|p| p.iter().all(|&x| x == 1));
        let ok_auto = attr(conv, "auto_pad").is_none_or(|a| a.s.is_empty() || a.s == b"NOTSET" || a.s == b"VALID");
        if !(ok_kernel && ok_group && ok_pads && ok_dil && ok_auto) {
            return Err(not_bmn(
                "the Conv3d after the BM layer must have kernel (N, 1, 1), no padding, no dilation and one group",
            ));
        }
        if let Some(shape) = ix.const_tensor(&reshape.input[1]) {
            let want = [wdims[1], n as i64, d as i64, t as i64];
            let got: Vec<i64> = if shape.int64_data.is_empty() {
                shape.raw_data.chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap_or([0; 8]))).collect()
            } else {
                shape.int64_data.clone()
            };
            if got.len() != 5 || got[1..] != want {
                return Err(not_bmn(format!(
                    "the BM Reshape targets {got:?}, expected [B, {}, {n}, {d}, {t}]",
                    wdims[1]
                )));
            }
        }
        // ReLU and the squeeze of the N axis, in either order (after a DequantizeLinear
        // for a QLinearConv).
        let mut cur = conv.output[0].clone();
        if quant {
            let dq = ix
                .single_consumer_ix(&cur)
                .filter(|&q| graph.node[q].op_type == "DequantizeLinear")
                .ok_or_else(|| not_bmn("the BM QLinearConv must be followed by DequantizeLinear"))?;
            chain.push(dq);
            cur = graph.node[dq].output[0].clone();
        }
        let (mut relu, mut squeeze) = (false, false);
        while !(relu && squeeze) {
            let Some(next_ix) = ix.single_consumer_ix(&cur) else { break };
            let next = &graph.node[next_ix];
            match next.op_type.as_str() {
                "Relu" if !relu => relu = true,
                "Squeeze" | "Reshape" if !squeeze => squeeze = true,
                // QDQ fake quantization of the Conv3d output (the engine's BM is float).
                "QuantizeLinear" | "DequantizeLinear" => {}
                _ => break,
            }
            chain.push(next_ix);
            cur = next.output[0].clone();
        }
        if !(relu && squeeze) {
            return Err(not_bmn("the Conv3d after the BM layer must be followed by Relu and Squeeze"));
        }
        (
            chain,
            mm_node.input[0].clone(),
            cur,
            conv.input[w_ix].clone(),
            conv.input.get(b_ix).filter(|s| !s.is_empty()).cloned(),
            qlinear,
            ix.mask_ref(&mm_node.input[1]),
            t,
            d,
            n,
            None,
            ModelFormat::Standard,
        )
    };

    let wdims = ix.const_dims(&weight, &file.deferred).ok_or_else(|| not_bmn("the BM weight is not a constant"))?;
    if wdims.len() != 5 || wdims[2] as usize != num_sample || wdims[3] != 1 || wdims[4] != 1 {
        return Err(not_bmn(format!("BM weight dims {wdims:?} do not match N = {num_sample}")));
    }
    let out_width = wdims[0] as usize;
    let pem_width = wdims[1] as usize;
    if let Some(b) = &bias {
        let bd = ix.const_dims(b, &file.deferred).ok_or_else(|| not_bmn("the BM bias is not a constant"))?;
        if bd != [out_width as i64] {
            return Err(not_bmn(format!("BM bias dims {bd:?}, expected [{out_width}]")));
        }
    }
    if tscale > crate::WindowConfig::MAX_TSCALE {
        return Err(not_bmn(format!("T = {tscale} is larger than supported ({})", crate::WindowConfig::MAX_TSCALE)));
    }

    // Outputs: the one downstream of h is the confidence map; the other two are start, end.
    let down = ix.descendants(&h);
    let (conf, others): (Vec<&pb::ValueInfoProto>, Vec<&pb::ValueInfoProto>) =
        graph.output.iter().partition(|o| down.contains(o.name.as_str()));
    if conf.len() != 1 || others.len() != 2 {
        return Err(not_bmn(format!(
            "expected one output after the BM layer (confidence) and two before it (start, end); found {} and {}",
            conf.len(),
            others.len()
        )));
    }
    let outputs = [conf[0].name.clone(), others[0].name.clone(), others[1].name.clone()];
    if let Some(&first) = ix.ancestors(&[&outputs[0]], &[&h]).iter().find(|&&n| graph.node[n].input.contains(&input)) {
        return Err(not_bmn(format!(
            "node {} ({}) after the BM layer reads the input directly; the engine cannot split this graph",
            first, graph.node[first].op_type
        )));
    }
    // Width of the tensor the PEM 1-d conv reads: its weight's input channels.
    let base_width = ix.producer.get(y.as_str()).and_then(|&p| {
        let mut node = &graph.node[p];
        // Skip an activation and a dequantization.
        for _ in 0..3 {
            if node.op_type == "Conv" || node.op_type == "QLinearConv" {
                break;
            }
            node = ix.producer.get(node.input.first()?.as_str()).map(|&q| &graph.node[q])?;
        }
        let w_ix = if node.op_type == "QLinearConv" { 3 } else { 1 };
        let w = ix.const_dims(node.input.get(w_ix)?, &file.deferred)?;
        ((node.op_type == "Conv" || node.op_type == "QLinearConv") && w.len() == 3)
            .then(|| w[1] as usize * attr(node, "group").map_or(1, |a| a.i.max(1) as usize))
    });
    let quant_slow = quant_slow_forms(&ix);
    Ok(Site {
        quant_slow,
        format,
        input,
        input_dims,
        y,
        h,
        weight,
        bias,
        qlinear,
        outputs,
        chain,
        mask,
        tscale,
        dscale,
        num_sample,
        perbin_ratio,
        pem_width,
        out_width,
        base_width,
        quant_ops,
    })
}

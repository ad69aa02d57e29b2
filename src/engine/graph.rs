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

use super::proto::{f32_tensor, tensor_f32, Deferred, ModelFile};
use super::{EngineError, EngineErrorKind, ModelFormat};
use std::collections::{HashMap, HashSet};
use tract_onnx::pb;

/// Domain of the edge format's BM node.
pub const EDGE_DOMAIN: &str = "ai.bmn_edge";
/// Op type of the edge format's BM node.
pub const EDGE_OP: &str = "BoundaryMatching";
/// Prefix of the edge format's metadata keys.
pub const META_PREFIX: &str = "bmn_edge.";

fn not_bmn(msg: impl Into<String>) -> EngineError {
    EngineError::new(EngineErrorKind::NotBmn, msg)
}

/// Where the dense mask lives.
#[derive(Debug, Clone)]
pub(crate) enum MaskRef {
    /// A deferred initializer (index into `ModelFile::deferred`).
    Deferred(usize),
    /// An initializer in the decoded graph.
    Initializer(String),
    /// A `Constant` node's value (node index).
    ConstantNode(usize),
}

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

/// Which quantization forms of a graph tract 0.23 runs slowly (design.md "Quantized").
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
                unsigned |= t.data_type == 2;
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

/// Index over a graph: producers, consumers and constants by tensor name.
pub(crate) struct GraphIndex<'a> {
    pub graph: &'a pb::GraphProto,
    producer: HashMap<&'a str, usize>,
    consumers: HashMap<&'a str, Vec<usize>>,
    initializers: HashMap<&'a str, usize>,
    deferred: HashMap<&'a str, usize>,
}

impl<'a> GraphIndex<'a> {
    pub fn new(graph: &'a pb::GraphProto, deferred: &'a [Deferred]) -> Self {
        let mut producer = HashMap::new();
        let mut consumers: HashMap<&str, Vec<usize>> = HashMap::new();
        for (i, n) in graph.node.iter().enumerate() {
            for o in &n.output {
                producer.insert(o.as_str(), i);
            }
            for inp in n.input.iter().filter(|s| !s.is_empty()) {
                consumers.entry(inp.as_str()).or_default().push(i);
            }
        }
        let initializers = graph.initializer.iter().enumerate().map(|(i, t)| (t.name.as_str(), i)).collect();
        let deferred = deferred.iter().enumerate().map(|(i, d)| (d.name.as_str(), i)).collect();
        GraphIndex { graph, producer, consumers, initializers, deferred }
    }

    fn consumers(&self, name: &str) -> &[usize] {
        self.consumers.get(name).map_or(&[], |v| v.as_slice())
    }

    fn is_output(&self, name: &str) -> bool {
        self.graph.output.iter().any(|o| o.name == name)
    }

    /// The only consumer of `name`, if it has exactly one and is not a graph output.
    fn single_consumer_ix(&self, name: &str) -> Option<usize> {
        match self.consumers(name) {
            [i] if !self.is_output(name) => Some(*i),
            _ => None,
        }
    }

    fn is_const(&self, name: &str) -> bool {
        self.initializers.contains_key(name)
            || self.deferred.contains_key(name)
            || self.producer.get(name).is_some_and(|&i| self.graph.node[i].op_type == "Constant")
    }

    /// A constant's tensor proto (initializer or `Constant` node value).
    pub fn const_tensor(&self, name: &str) -> Option<&'a pb::TensorProto> {
        if let Some(&i) = self.initializers.get(name) {
            return Some(&self.graph.initializer[i]);
        }
        let &p = self.producer.get(name)?;
        let node = &self.graph.node[p];
        if node.op_type != "Constant" {
            return None;
        }
        node.attribute.iter().find(|a| a.name == "value").and_then(|a| a.t.as_ref())
    }

    /// A constant's dims.
    fn const_dims(&self, name: &str, deferred: &[Deferred]) -> Option<Vec<i64>> {
        if let Some(&i) = self.deferred.get(name) {
            return Some(deferred[i].dims.clone());
        }
        if let Some((q, _, _)) = self.dequantized(name) {
            return Some(q.dims.clone());
        }
        self.const_tensor(name).map(|t| t.dims.clone())
    }

    /// `name` is `DequantizeLinear(q, scale[, zero_point])` of constants (QDQ form): those.
    pub fn dequantized(
        &self,
        name: &str,
    ) -> Option<(&'a pb::TensorProto, &'a pb::TensorProto, Option<&'a pb::TensorProto>)> {
        let &p = self.producer.get(name)?;
        let node = &self.graph.node[p];
        if node.op_type != "DequantizeLinear" {
            return None;
        }
        let q = self.const_tensor(node.input.first()?)?;
        let scale = self.const_tensor(node.input.get(1)?)?;
        let zp = node.input.get(2).filter(|s| !s.is_empty()).and_then(|z| self.const_tensor(z));
        Some((q, scale, zp))
    }

    fn mask_ref(&self, name: &str) -> Option<MaskRef> {
        if let Some(&i) = self.deferred.get(name) {
            return Some(MaskRef::Deferred(i));
        }
        if self.initializers.contains_key(name) {
            return Some(MaskRef::Initializer(name.to_string()));
        }
        self.producer.get(name).map(|&p| MaskRef::ConstantNode(p))
    }

    /// Nodes needed to compute `targets`, stopping at `stops` (graph order).
    pub fn ancestors(&self, targets: &[&str], stops: &[&str]) -> Vec<usize> {
        let mut seen = HashSet::new();
        let mut stack: Vec<&str> = targets.to_vec();
        let mut visited_names = HashSet::new();
        while let Some(name) = stack.pop() {
            if stops.contains(&name) || !visited_names.insert(name) {
                continue;
            }
            if let Some(&p) = self.producer.get(name) {
                if seen.insert(p) {
                    for i in self.graph.node[p].input.iter().filter(|s| !s.is_empty()) {
                        stack.push(i.as_str());
                    }
                }
            }
        }
        let mut v: Vec<usize> = seen.into_iter().collect();
        v.sort_unstable();
        v
    }

    /// Tensor names reachable forward from `from`.
    fn descendants(&self, from: &str) -> HashSet<&'a str> {
        let mut out = HashSet::new();
        let mut stack = vec![from.to_string()];
        while let Some(name) = stack.pop() {
            for &c in self.consumers(&name) {
                for o in &self.graph.node[c].output {
                    if out.insert(o.as_str()) {
                        stack.push(o.clone());
                    }
                }
            }
        }
        out
    }

    /// Graph inputs that are not initializers (legacy exports list every weight as an input).
    fn data_inputs(&self) -> Vec<&'a pb::ValueInfoProto> {
        self.graph
            .input
            .iter()
            .filter(|i| {
                !self.initializers.contains_key(i.name.as_str()) && !self.deferred.contains_key(i.name.as_str())
            })
            .collect()
    }
}

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

/// Finds the BM site.
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
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor { elem_type: 1, shape })),
        }),
        doc_string: String::new(),
    }
}

/// Moves the named constants out of `graph` (initializers; `Constant` nodes stay as nodes).
fn take_initializers(graph: &mut pb::GraphProto, names: &HashSet<String>) -> Vec<pb::TensorProto> {
    let (take, keep): (Vec<_>, Vec<_>) =
        std::mem::take(&mut graph.initializer).into_iter().partition(|t| names.contains(&t.name));
    graph.initializer = keep;
    take
}

fn inputs_of(graph: &pb::GraphProto, nodes: &[usize]) -> HashSet<String> {
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
        2 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b)).collect(),
        3 if !raw.is_empty() => raw.iter().map(|&b| i64::from(b as i8)).collect(),
        6 if !raw.is_empty() => {
            raw.chunks_exact(4).map(|c| i64::from(i32::from_le_bytes([c[0], c[1], c[2], c[3]]))).collect()
        }
        2 | 3 | 6 => t.int32_data.iter().map(|&x| i64::from(x)).collect(),
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
    Ok(w.data_type == 3
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
        && graph.initializer.iter().any(|t| t.name == site.weight && t.data_type == super::proto::ONNX_FLOAT);
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
        if w.data_type != super::proto::ONNX_FLOAT || bytes.len() != o * p * n * 4 {
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
    Ok(Split { halo, stage_a, stage_b, bias, projection })
}

/// Rewrites a standard export (mask released) into the edge format: the BM chain becomes
/// one `BoundaryMatching` node, dead nodes and constants are dropped, and the parameters go
/// into `metadata_props`.
pub(crate) fn to_edge(
    mut proto: pb::ModelProto,
    site: &Site,
    k: usize,
    ratio: f64,
    meta: &[(String, String)],
) -> Result<pb::ModelProto, EngineError> {
    let graph = proto.graph.as_mut().ok_or_else(|| not_bmn("no graph"))?;
    let mut site = site.clone();
    let plain_weight =
        graph.initializer.iter().any(|t| t.name == site.weight && t.data_type == super::proto::ONNX_FLOAT);
    let keep_int8 = int8_bm_symmetric(&GraphIndex::new(graph, &[]), &site)?;
    if !keep_int8 && (site.qlinear.is_some() || !plain_weight) {
        // The edge node takes float weights (or int8 symmetric ones with their scales):
        // dequantize the BM layer's others.
        let (w, b) = float_weights(&GraphIndex::new(graph, &[]), &site)?;
        let (o, p, n) = (site.out_width, site.pem_width, site.num_sample);
        graph.initializer.push(f32_tensor("bmn_edge_bm_weight", &[o, p, n, 1, 1], &w));
        graph.initializer.push(f32_tensor("bmn_edge_bm_bias", &[o], &b));
        site.weight = "bmn_edge_bm_weight".into();
        site.bias = Some("bmn_edge_bm_bias".into());
        site.qlinear = None;
    }
    let site = &site;
    let first = *site.chain.iter().min().unwrap_or(&0);
    let chain: HashSet<usize> = site.chain.iter().copied().collect();
    let mut nodes: Vec<pb::NodeProto> = Vec::new();
    for (i, n) in std::mem::take(&mut graph.node).into_iter().enumerate() {
        if i == first {
            let mut input = vec![site.y.clone(), site.weight.clone()];
            input.push(site.bias.clone().unwrap_or_default());
            if let Some((xs, ws, zp)) = &site.qlinear {
                input.extend([xs.clone(), ws.clone(), zp.clone()]);
            }
            while input.last().is_some_and(|s| s.is_empty()) {
                input.pop();
            }
            let int = |name: &str, v: usize| pb::AttributeProto {
                name: name.into(),
                r#type: 2,
                i: v as i64,
                ..Default::default()
            };
            nodes.push(pb::NodeProto {
                input,
                output: vec![site.h.clone()],
                name: "bmn_edge_boundary_matching".into(),
                op_type: EDGE_OP.into(),
                domain: EDGE_DOMAIN.into(),
                attribute: vec![
                    int("tscale", site.tscale),
                    int("dscale", site.dscale),
                    int("num_sample", site.num_sample),
                    int("num_sample_perbin", k),
                    pb::AttributeProto { name: "ratio".into(), r#type: 3, s: format!("{ratio:?}").into_bytes(), ..Default::default() },
                ],
                doc_string: "BMN boundary-matching layer: H = relu(bias + Conv3d_N(y · M)) with the sampling mask M of (T, D, N, K, r); inputs (y, weight[, bias[, x_scale, w_scale, w_zero_point]]): an int8 weight is QLinearConv's (int32 bias); see bmn-edge".into(),
            });
        }
        if !chain.contains(&i) {
            nodes.push(n);
        }
    }
    graph.node = nodes;
    // Dead-code elimination from the outputs.
    let live: HashSet<usize> = {
        let ix = GraphIndex::new(graph, &[]);
        let outs: Vec<&str> = graph.output.iter().map(|o| o.name.as_str()).collect();
        ix.ancestors(&outs, &[]).into_iter().collect()
    };
    graph.node = std::mem::take(&mut graph.node)
        .into_iter()
        .enumerate()
        .filter(|(i, _)| live.contains(i))
        .map(|(_, n)| n)
        .collect();
    let all: Vec<usize> = (0..graph.node.len()).collect();
    let used = inputs_of(graph, &all);
    graph.initializer.retain(|t| used.contains(&t.name));
    let produced: HashSet<String> = graph.node.iter().flat_map(|n| n.output.iter().cloned()).collect();
    let inits: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    graph.input.retain(|i| i.name == site.input || inits.contains(&i.name));
    graph.value_info.retain(|v| produced.contains(&v.name) || inits.contains(&v.name));
    if !proto.opset_import.iter().any(|o| o.domain == EDGE_DOMAIN) {
        proto.opset_import.push(pb::OperatorSetIdProto { domain: EDGE_DOMAIN.into(), version: 1 });
    }
    proto.metadata_props.retain(|e| !e.key.starts_with(META_PREFIX));
    for (k, v) in meta {
        proto.metadata_props.push(pb::StringStringEntryProto { key: format!("{META_PREFIX}{k}"), value: v.clone() });
    }
    Ok(proto)
}

/// The edge format's metadata value for `key` (without the prefix).
pub(crate) fn metadata<'p>(proto: &'p pb::ModelProto, key: &str) -> Option<&'p str> {
    proto.metadata_props.iter().find(|e| e.key.strip_prefix(META_PREFIX) == Some(key)).map(|e| e.value.as_str())
}

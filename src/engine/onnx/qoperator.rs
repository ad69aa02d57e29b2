//! onnxruntime's QOperator contrib ops (domain `com.microsoft`) lowered to standard ONNX,
//! so that a backbone quantized with `onnxruntime.quantization.quantize_static(...,
//! quant_format=QOperator)` loads.
//!
//! onnxruntime's quantizer writes the standard `QLinearConv`/`QLinearMatMul` (which tract
//! runs on its integer kernels, or `exact_float` rewrites) and, for everything else, its own
//! contrib ops, which tract does not know. Each of those is, by its definition, "dequantize
//! the inputs, apply the float op, quantize the result":
//!
//! | contrib op | lowered to |
//! |---|---|
//! | `QLinearAdd`, `QLinearMul` | `DequantizeLinear` ×2 → `Add` / `Mul` → `QuantizeLinear` |
//! | `QLinearConcat` | `DequantizeLinear` per input → `Concat` → `QuantizeLinear` |
//! | `QLinearGlobalAveragePool` (channels first) | `DequantizeLinear` → `GlobalAveragePool` → `QuantizeLinear` |
//! | `QLinearAveragePool` (channels first) | `DequantizeLinear` → `AveragePool` → `QuantizeLinear` |
//! | `QLinearLeakyRelu`, `QLinearSigmoid` | `DequantizeLinear` → `LeakyRelu` / `Sigmoid` → `QuantizeLinear` |
//! | `QGemm` | `DequantizeLinear(A)` → `Gemm` with `B` and `C` dequantized here (per tensor or per output channel) → `QuantizeLinear` when it has an output scale |
//!
//! so these run in float between integer levels: the output levels are onnxruntime's except
//! where its integer (or fixed-point) evaluation and the float one round a value that lies
//! within float32 rounding of a half level to different sides — at most one level, rarely
//! (the tests count them). `QuantizeLinear` rounds half to even and saturates, as
//! onnxruntime does.
//!
//! Checked while lowering (a hostile file gets a clear error, never silent levels): every
//! scale is a constant, finite and positive, with one value (per tensor) — or, for `QGemm`'s
//! `B`, one per output channel; every zero point is a constant of the quantized tensor's
//! type (int8 or uint8) with as many values as its scale; `QGemm`'s `B` and `C` are
//! constants of the right shapes. Contrib ops outside the table (and channels-last pools)
//! are refused by name.

use super::index::GraphIndex;
use super::split::int_values;
use super::wire::{f32_tensor, tensor_f32};
use super::*;
use std::fmt;

/// The contrib domain onnxruntime's quantizer writes.
pub(crate) const MS_DOMAIN: &str = "com.microsoft";

/// What [`lower_qoperator`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Lowered {
    /// `(op type, count)` of the contrib nodes lowered, by op type.
    pub ops: Vec<(String, usize)>,
}

impl Lowered {
    /// Nodes lowered.
    pub fn count(&self) -> usize {
        self.ops.iter().map(|(_, n)| n).sum()
    }
}

impl fmt::Display for Lowered {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.ops.is_empty() {
            return write!(f, "no onnxruntime contrib op");
        }
        write!(f, "onnxruntime contrib ops run in float between int levels (dequantize, op, quantize): ")?;
        for (i, (op, n)) in self.ops.iter().enumerate() {
            write!(f, "{}{n} {op}", if i > 0 { ", " } else { "" })?;
        }
        Ok(())
    }
}

fn bad(node: &pb::NodeProto, msg: impl fmt::Display) -> EngineError {
    let which = if node.name.is_empty() {
        format!("(output `{}`)", node.output.first().map_or("", String::as_str))
    } else {
        format!("`{}`", node.name)
    };
    EngineError::new(EngineErrorKind::Unsupported, format!("{} {which}: {msg}", node.op_type))
}

/// A scale/zero-point pair of one quantized tensor.
struct QParams<'a> {
    scale: &'a str,
    /// `None`: absent (zero point 0 of the default type).
    zero: Option<&'a str>,
}

/// The checks every (scale, zero point) pair of a lowered op passes; returns the zero
/// point's element type (`None` when absent).
fn check_qparams(
    ix: &GraphIndex<'_>,
    node: &pb::NodeProto,
    q: &QParams<'_>,
    per_channel: Option<usize>,
) -> Result<Option<i32>, EngineError> {
    let s = ix.const_tensor(q.scale).ok_or_else(|| bad(node, format!("scale `{}` is not a constant", q.scale)))?;
    let sv = tensor_f32(s).map_err(|e| bad(node, format!("scale `{}`: {e}", q.scale)))?;
    let want = per_channel.unwrap_or(1);
    if sv.len() != want && !(per_channel.is_some() && sv.len() == 1) {
        return Err(bad(node, format!("scale `{}` has {} values, expected {want}", q.scale, sv.len())));
    }
    if let Some((j, v)) = sv.iter().enumerate().find(|(_, v)| !(v.is_finite() && **v > 0.0)) {
        return Err(bad(
            node,
            format!("scale `{}` has value {v} at index {j}: a scale must be finite and positive", q.scale),
        ));
    }
    let Some(z) = q.zero else { return Ok(None) };
    let zt = ix.const_tensor(z).ok_or_else(|| bad(node, format!("zero point `{z}` is not a constant")))?;
    if zt.data_type != dtype::INT8 && zt.data_type != dtype::UINT8 {
        return Err(bad(node, format!("zero point `{z}` has data type {}, expected int8 or uint8", zt.data_type)));
    }
    let zv = int_values(zt).map_err(|e| bad(node, format!("zero point `{z}`: {e}")))?;
    if zv.len() != sv.len() {
        return Err(bad(
            node,
            format!("zero point `{z}` has {} values, its scale `{}` {}", zv.len(), q.scale, sv.len()),
        ));
    }
    Ok(Some(zt.data_type))
}

/// Names for the new tensors and nodes, unique in the graph.
struct Names {
    taken: HashSet<String>,
}

impl Names {
    fn fresh(&mut self, base: &str) -> String {
        let mut k = 0;
        loop {
            let name = format!("{base}__bmn_edge{k}");
            if self.taken.insert(name.clone()) {
                return name;
            }
            k += 1;
        }
    }
}

fn node(
    op: &str,
    name: String,
    inputs: Vec<String>,
    outputs: Vec<String>,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto { op_type: op.into(), name, input: inputs, output: outputs, attribute, ..Default::default() }
}

fn opt(node: &pb::NodeProto, i: usize) -> Option<&str> {
    node.input.get(i).map(String::as_str).filter(|s| !s.is_empty())
}

fn req<'n>(node: &'n pb::NodeProto, i: usize, what: &str) -> Result<&'n str, EngineError> {
    opt(node, i).ok_or_else(|| bad(node, format!("input {i} ({what}) is missing")))
}

/// The lowering of one node: nodes to put in its place, initializers to add.
struct Lowering {
    nodes: Vec<pb::NodeProto>,
    inits: Vec<pb::TensorProto>,
}

/// A zero point of the given type and value 0 (an absent output zero point, whose tensor
/// type must still be the op's).
fn zero_point(name: &str, ty: i32) -> pb::TensorProto {
    pb::TensorProto { name: name.into(), data_type: ty, dims: vec![], raw_data: vec![0u8], ..Default::default() }
}

/// One contrib op's row of the module table: its `(tensor, scale, zero point)` input
/// positions, its output's `(scale, zero point)` positions, the float op and its attributes.
type Table<'a> = (Vec<(usize, usize, usize)>, Option<(usize, usize)>, &'a str, Vec<pb::AttributeProto>);

/// Lowers `n` (a contrib op) or says it is not one of the table's.
fn lower_node(ix: &GraphIndex<'_>, n: &pb::NodeProto, names: &mut Names) -> Result<Lowering, EngineError> {
    let mut out = Lowering { nodes: Vec::new(), inits: Vec::new() };
    let base = if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
    let y = n.output.first().filter(|s| !s.is_empty()).ok_or_else(|| bad(n, "no output"))?.clone();
    // (tensor, scale, zero point) input triples, the output's (scale, zero point), the float op.
    let (triples, y_q, op, attrs): Table<'_> = match n.op_type.as_str() {
        "QLinearAdd" => (vec![(0, 1, 2), (3, 4, 5)], Some((6, 7)), "Add", vec![]),
        "QLinearMul" => (vec![(0, 1, 2), (3, 4, 5)], Some((6, 7)), "Mul", vec![]),
        "QLinearSigmoid" => (vec![(0, 1, 2)], Some((3, 4)), "Sigmoid", vec![]),
        "QLinearLeakyRelu" => {
            let alpha = n.attribute.iter().filter(|a| a.name == "alpha").cloned().collect();
            (vec![(0, 1, 2)], Some((3, 4)), "LeakyRelu", alpha)
        }
        "QLinearGlobalAveragePool" | "QLinearAveragePool" => {
            if attr(n, "channels_last").is_some_and(|a| a.i != 0) {
                return Err(bad(n, "channels_last = 1 is not supported (a channels-first export pools NCHW)"));
            }
            let keep: Vec<pb::AttributeProto> =
                n.attribute.iter().filter(|a| a.name != "channels_last").cloned().collect();
            let op = if n.op_type == "QLinearGlobalAveragePool" { "GlobalAveragePool" } else { "AveragePool" };
            (vec![(0, 1, 2)], Some((3, 4)), op, keep)
        }
        "QLinearConcat" => {
            // (Y_scale, Y_zero_point, then (X, X_scale, X_zero_point) per input).
            if n.input.len() < 5 || !(n.input.len() - 2).is_multiple_of(3) {
                return Err(bad(n, format!("{} inputs: expected 2 + 3 per concatenated tensor", n.input.len())));
            }
            let triples = (0..(n.input.len() - 2) / 3).map(|k| (2 + 3 * k, 3 + 3 * k, 4 + 3 * k)).collect();
            let axis = n.attribute.iter().filter(|a| a.name == "axis").cloned().collect();
            (triples, Some((0, 1)), "Concat", axis)
        }
        "QGemm" => return lower_qgemm(ix, n, names, &base, &y),
        other => return Err(bad(n, format!("onnxruntime contrib op {other} is not supported (domain {MS_DOMAIN})"))),
    };
    let mut ty = None;
    let mut floats = Vec::new();
    for &(x, s, z) in &triples {
        let q = QParams { scale: req(n, s, "scale")?, zero: opt(n, z) };
        let t = check_qparams(ix, n, &q, None)?;
        ty = ty.or(t);
        let f = names.fresh(&format!("{base}_dq"));
        let mut inputs = vec![req(n, x, "input")?.to_string(), q.scale.to_string()];
        inputs.extend(q.zero.map(str::to_string));
        out.nodes.push(node("DequantizeLinear", names.fresh(&format!("{base}_dq")), inputs, vec![f.clone()], vec![]));
        floats.push(f);
    }
    let (ys, yz) = y_q.expect("every table op has an output scale");
    let q = QParams { scale: req(n, ys, "output scale")?, zero: opt(n, yz) };
    let ty = check_qparams(ix, n, &q, None)?.or(ty).unwrap_or(dtype::UINT8);
    let zero = match q.zero {
        Some(z) => z.to_string(),
        None => {
            let z = names.fresh(&format!("{base}_zero"));
            out.inits.push(zero_point(&z, ty));
            z
        }
    };
    let f = names.fresh(&format!("{base}_f"));
    out.nodes.push(node(op, names.fresh(&format!("{base}_op")), floats, vec![f.clone()], attrs));
    out.nodes.push(node(
        "QuantizeLinear",
        names.fresh(&format!("{base}_q")),
        vec![f, q.scale.to_string(), zero],
        vec![y],
        vec![],
    ));
    Ok(out)
}

/// `QGemm(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?; alpha, transA, transB)`:
/// `Y = alpha · (A − a_zp)(B − b_zp) · a_scale · b_scale + C · a_scale · b_scale`, quantized
/// with `y_scale`/`y_zp` when given, else float. `B` is dequantized here (per tensor, or
/// per output channel: `b_scale` of `N` values along `B`'s output axis), `C` (int32, scale
/// `a_scale · b_scale`) too.
fn lower_qgemm(
    ix: &GraphIndex<'_>,
    n: &pb::NodeProto,
    names: &mut Names,
    base: &str,
    y: &str,
) -> Result<Lowering, EngineError> {
    let mut out = Lowering { nodes: Vec::new(), inits: Vec::new() };
    let int_attr = |name: &str| attr(n, name).map_or(0, |a| a.i);
    let trans_b = int_attr("transB");
    let qa = QParams { scale: req(n, 1, "a_scale")?, zero: opt(n, 2) };
    let ty_a = check_qparams(ix, n, &qa, None)?;
    let b_name = req(n, 3, "B")?;
    let bt = ix.const_tensor(b_name).ok_or_else(|| bad(n, format!("B `{b_name}` is not a constant")))?;
    let [k0, k1] = bt.dims.as_slice() else {
        return Err(bad(n, format!("B `{b_name}` has dims {:?}, expected 2", bt.dims)));
    };
    let (rows, cols) = (usize::try_from(*k0).unwrap_or(0), usize::try_from(*k1).unwrap_or(0));
    let outputs = if trans_b != 0 { rows } else { cols };
    let qb = QParams { scale: req(n, 4, "b_scale")?, zero: opt(n, 5) };
    check_qparams(ix, n, &qb, Some(outputs))?;
    let bv = int_values(bt).map_err(|e| bad(n, format!("B: {e}")))?;
    if bv.len() != rows * cols || rows == 0 || cols == 0 {
        return Err(bad(n, format!("B `{b_name}` has {} values for dims {:?}", bv.len(), bt.dims)));
    }
    let per = |name: &str| -> Result<Vec<f32>, EngineError> {
        let t = ix.const_tensor(name).ok_or_else(|| bad(n, format!("`{name}` is not a constant")))?;
        tensor_f32(t).map_err(|e| bad(n, format!("`{name}`: {e}")))
    };
    let a_scale = per(qa.scale)?[0];
    let b_scale = per(qb.scale)?;
    let b_zero = match qb.zero {
        Some(z) => {
            int_values(ix.const_tensor(z).expect("checked")).map_err(|e| bad(n, format!("b_zero_point: {e}")))?
        }
        None => vec![0],
    };
    let at = |v: &[f32], j: usize| if v.len() == 1 { v[0] } else { v[j] };
    let at_i = |v: &[i64], j: usize| if v.len() == 1 { v[0] } else { v[j] };
    // B dequantized: element (r, c); its output channel is r (transB) or c.
    let b_float: Vec<f32> = bv
        .iter()
        .enumerate()
        .map(|(i, &q)| {
            let j = if trans_b != 0 { i / cols } else { i % cols };
            (q - at_i(&b_zero, j)) as f32 * at(&b_scale, j)
        })
        .collect();
    let b_f = names.fresh(&format!("{base}_b"));
    out.inits.push(f32_tensor(&b_f, &[rows, cols], &b_float));
    let mut gemm_inputs = Vec::new();
    let a_f = names.fresh(&format!("{base}_a"));
    let mut dq = vec![req(n, 0, "A")?.to_string(), qa.scale.to_string()];
    dq.extend(qa.zero.map(str::to_string));
    out.nodes.push(node("DequantizeLinear", names.fresh(&format!("{base}_dq")), dq, vec![a_f.clone()], vec![]));
    gemm_inputs.push(a_f);
    gemm_inputs.push(b_f);
    if let Some(c) = opt(n, 6) {
        let ct = ix.const_tensor(c).ok_or_else(|| bad(n, format!("C `{c}` is not a constant")))?;
        if ct.data_type != dtype::INT32 {
            return Err(bad(n, format!("C `{c}` has data type {}, expected int32", ct.data_type)));
        }
        let cv = int_values(ct).map_err(|e| bad(n, format!("C: {e}")))?;
        if cv.len() != outputs && cv.len() != 1 {
            return Err(bad(n, format!("C `{c}` has {} values, expected {outputs} (or 1)", cv.len())));
        }
        let c_float: Vec<f32> = if cv.len() == 1 {
            (0..outputs).map(|j| cv[0] as f32 * (a_scale * at(&b_scale, j))).collect()
        } else {
            cv.iter().enumerate().map(|(j, &q)| q as f32 * (a_scale * at(&b_scale, j))).collect()
        };
        let c_f = names.fresh(&format!("{base}_c"));
        out.inits.push(f32_tensor(&c_f, &[outputs], &c_float));
        gemm_inputs.push(c_f);
    }
    let mut attrs: Vec<pb::AttributeProto> =
        n.attribute.iter().filter(|a| matches!(a.name.as_str(), "alpha" | "transA" | "transB")).cloned().collect();
    match opt(n, 7) {
        Some(ys) => {
            let qy = QParams { scale: ys, zero: opt(n, 8) };
            let ty = check_qparams(ix, n, &qy, None)?.or(ty_a).unwrap_or(dtype::UINT8);
            let zero = match qy.zero {
                Some(z) => z.to_string(),
                None => {
                    let z = names.fresh(&format!("{base}_zero"));
                    out.inits.push(zero_point(&z, ty));
                    z
                }
            };
            let f = names.fresh(&format!("{base}_f"));
            out.nodes.push(node(
                "Gemm",
                names.fresh(&format!("{base}_op")),
                gemm_inputs,
                vec![f.clone()],
                std::mem::take(&mut attrs),
            ));
            out.nodes.push(node(
                "QuantizeLinear",
                names.fresh(&format!("{base}_q")),
                vec![f, ys.to_string(), zero],
                vec![y.to_string()],
                vec![],
            ));
        }
        None => {
            out.nodes.push(node("Gemm", names.fresh(&format!("{base}_op")), gemm_inputs, vec![y.to_string()], attrs));
        }
    }
    Ok(out)
}

/// Lowers every contrib node of the default graph (see the module docs). Returns what was
/// lowered; an error names the first node that cannot be.
pub(crate) fn lower_qoperator(model: &mut pb::ModelProto) -> Result<Lowered, EngineError> {
    let opset =
        model.opset_import.iter().find(|o| o.domain.is_empty() || o.domain == "ai.onnx").map_or(0, |o| o.version);
    let Some(graph) = model.graph.as_mut() else { return Ok(Lowered::default()) };
    if !graph.node.iter().any(|n| n.domain == MS_DOMAIN) {
        return Ok(Lowered::default());
    }
    if opset < 10 {
        return Err(EngineError::new(
            EngineErrorKind::Unsupported,
            format!("the model imports ONNX opset {opset}; its onnxruntime contrib ops lower to QuantizeLinear/DequantizeLinear, opset 10 or later"),
        ));
    }
    let mut taken: HashSet<String> = graph.initializer.iter().map(|t| t.name.clone()).collect();
    for n in &graph.node {
        taken.extend(n.output.iter().cloned());
        taken.insert(n.name.clone());
    }
    taken.extend(graph.input.iter().map(|v| v.name.clone()));
    let mut names = Names { taken };
    let mut lowered: Vec<(usize, Lowering)> = Vec::new();
    let mut counts: Vec<(String, usize)> = Vec::new();
    {
        let ix = GraphIndex::new(graph, &[]);
        for (k, n) in graph.node.iter().enumerate().filter(|(_, n)| n.domain == MS_DOMAIN) {
            lowered.push((k, lower_node(&ix, n, &mut names)?));
            match counts.iter_mut().find(|(op, _)| *op == n.op_type) {
                Some((_, c)) => *c += 1,
                None => counts.push((n.op_type.clone(), 1)),
            }
        }
    }
    // Splice in order (nodes stay topologically sorted: each replacement reads what the
    // contrib node read and writes what it wrote).
    let old = std::mem::take(&mut graph.node);
    let mut next = lowered.into_iter().peekable();
    for (k, n) in old.into_iter().enumerate() {
        match next.peek() {
            Some((at, _)) if *at == k => {
                let (_, l) = next.next().expect("peeked");
                graph.node.extend(l.nodes);
                graph.initializer.extend(l.inits);
            }
            _ => graph.node.push(n),
        }
    }
    // Nothing of the contrib domain is left: its opset import goes too (tract refuses
    // unknown domains only where they are used, but the file then says what it holds).
    model.opset_import.retain(|o| o.domain != MS_DOMAIN);
    counts.sort();
    Ok(Lowered { ops: counts })
}

/// The QDQ form's convolutions as the integer op they stand for: onnxruntime's quantizer
/// (QDQ format) writes each quantized convolution as
///
/// ```text
/// DequantizeLinear(x_q, xs, xz) ─┐
/// DequantizeLinear(w_q, ws, wz) ─┼─ Conv ─ QuantizeLinear(ys, yz) → y_q
/// DequantizeLinear(b_q, xs·ws) ──┘
/// ```
///
/// and onnxruntime itself runs that as one `QLinearConv(x_q, xs, xz, w_q, ws, wz, ys, yz,
/// b_q)`; so does this rewrite, so that the backbone's int8 path (tract's integer kernels
/// or their exact-float rewrite, `exact_float`) takes QDQ files as it takes QOperator ones.
/// Folded only when the pattern is exactly that: the weight and bias constants (int8/uint8
/// weights, int32 bias), every zero point present, the bias's scale equal to `xs · ws`
/// (as the quantizer writes it) with zero point 0, and the Conv's output read by that one
/// `QuantizeLinear` alone. Anything else stays in float. Returns how many were folded.
pub(crate) fn fold_qdq_convs(model: &mut pb::ModelProto) -> Result<usize, EngineError> {
    let Some(graph) = model.graph.as_mut() else { return Ok(0) };
    if !graph.node.iter().any(|n| n.op_type == "QuantizeLinear") {
        return Ok(0);
    }
    let mut folds: Vec<(usize, usize, pb::NodeProto)> = Vec::new();
    {
        let ix = GraphIndex::new(graph, &[]);
        let dq_of = |name: &str| -> Option<&pb::NodeProto> {
            let &p = ix.producer.get(name)?;
            let n = &graph.node[p];
            (n.op_type == "DequantizeLinear" && (n.domain.is_empty() || n.domain == "ai.onnx")).then_some(n)
        };
        for (k, conv) in graph.node.iter().enumerate() {
            if conv.op_type != "Conv" || !(conv.domain.is_empty() || conv.domain == "ai.onnx") {
                continue;
            }
            let Some(y) = conv.output.first() else { continue };
            let Some(qk) = ix.single_consumer_ix(y) else { continue };
            let q = &graph.node[qk];
            if q.op_type != "QuantizeLinear" || q.input.first() != Some(y) || q.input.len() < 3 {
                continue;
            }
            let (Some(x), Some(w)) =
                (conv.input.first().and_then(|i| dq_of(i)), conv.input.get(1).and_then(|i| dq_of(i)))
            else {
                continue;
            };
            if x.input.len() < 3 || w.input.len() < 3 || x.input.iter().chain(&w.input).any(|s| s.is_empty()) {
                continue;
            }
            // The weights: a constant of int8/uint8 levels, per tensor or per output channel
            // (axis 0, the ONNX default being 1 only matters for more than one value).
            let Some(wt) = ix.const_tensor(&w.input[0]) else { continue };
            if wt.data_type != dtype::INT8 && wt.data_type != dtype::UINT8 {
                continue;
            }
            let Some(ws) = ix.const_tensor(&w.input[1]).and_then(|t| tensor_f32(t).ok()) else { continue };
            if ws.len() > 1 && attr(w, "axis").map_or(1, |a| a.i) != 0 {
                continue;
            }
            let Some(xs) = ix.const_tensor(&x.input[1]).and_then(|t| tensor_f32(t).ok()) else { continue };
            if xs.len() != 1 {
                continue;
            }
            let mut inputs = vec![
                x.input[0].clone(),
                x.input[1].clone(),
                x.input[2].clone(),
                w.input[0].clone(),
                w.input[1].clone(),
                w.input[2].clone(),
                q.input[1].clone(),
                q.input[2].clone(),
            ];
            if let Some(bname) = conv.input.get(2).filter(|s| !s.is_empty()) {
                let Some(b) = dq_of(bname) else { continue };
                let Some(bt) = ix.const_tensor(&b.input[0]) else { continue };
                if bt.data_type != dtype::INT32 {
                    continue;
                }
                let Some(bs) = b.input.get(1).and_then(|s| ix.const_tensor(s)).and_then(|t| tensor_f32(t).ok()) else {
                    continue;
                };
                let zero_ok = match b.input.get(2).filter(|s| !s.is_empty()) {
                    None => true,
                    Some(z) => {
                        ix.const_tensor(z).and_then(|t| int_values(t).ok()).is_some_and(|v| v.iter().all(|&z| z == 0))
                    }
                };
                // The bias's scale is xs · ws, value for value (as the quantizer computes it).
                let expect: Vec<f32> = ws.iter().map(|&s| xs[0] * s).collect();
                let same = bs.len() == expect.len() && bs.iter().zip(&expect).all(|(a, b)| a == b)
                    || (bs.len() == 1 && expect.iter().all(|&e| e == bs[0]));
                if !zero_ok || !same {
                    continue;
                }
                inputs.push(b.input[0].clone());
            }
            let attribute = conv.attribute.clone();
            let folded = pb::NodeProto {
                op_type: "QLinearConv".into(),
                name: if conv.name.is_empty() { String::new() } else { format!("{}__qdq", conv.name) },
                input: inputs,
                output: q.output.clone(),
                attribute,
                ..Default::default()
            };
            folds.push((k, qk, folded));
        }
    }
    let n = folds.len();
    if n == 0 {
        return Ok(0);
    }
    // The Conv becomes the QLinearConv (in the Conv's place: its inputs are all defined
    // before it), the QuantizeLinear goes; DequantizeLinears nothing reads any more are
    // left for tract, which drops what no output needs.
    let mut replace: HashMap<usize, pb::NodeProto> = HashMap::new();
    let mut drop: HashSet<usize> = HashSet::new();
    for (k, qk, folded) in folds {
        replace.insert(k, folded);
        drop.insert(qk);
    }
    let old = std::mem::take(&mut graph.node);
    for (k, node) in old.into_iter().enumerate() {
        if drop.contains(&k) {
            continue;
        }
        graph.node.push(replace.remove(&k).unwrap_or(node));
    }
    Ok(n)
}

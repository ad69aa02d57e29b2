//! Stage A's int8 convolutions rewritten as float convolutions on integer-valued levels,
//! with the same output levels as tract's `QLinearConv`.
//!
//! On an x86-64 CPU without a dot-product instruction (AVX2 + FMA only), tract runs an int8
//! `QLinearConv` through an emulated integer kernel (`avx2_mmm_i32_8x8`), far slower than
//! its float kernels (see `engine::cpu`). A `QLinearConv` with int8 input and weights, zero
//! points 0 and an int8 output computes, per output element,
//!
//! ```text
//! acc = Σ x_q · w_q + b_q            (int32)
//! y_q = saturate_i8(round_half_even(acc · m)),   m = fl(fl(x_scale · w_scale) / y_scale)
//! ```
//!
//! and the rewrite computes the same thing with float operators:
//!
//! ```text
//! Cast(x_q → f32) → Conv(w_q as f32, b_q as f32) → [requantization] → y_q
//! ```
//!
//! **Why the sums are exact.** Every term `x_q · w_q` is an integer and every partial sum
//! of output channel `c`, in any order and with the bias added anywhere, is at most
//! `128 · Σ|w_c| + |b_c|` in magnitude. When that bound is at most `2^24` (the certificate,
//! checked here per channel from the layer's weights and bias), every partial sum is an
//! integer `f32` represents exactly, so the float convolution's `acc` is the integer
//! kernel's, bit for bit, whatever order tract's kernel adds in. A layer that fails the
//! certificate is left as a `QLinearConv`.
//!
//! **Why the requantization is done in `f64`.** tract 0.23 does not round `acc · m` the
//! same way for every layer:
//!
//! * per-tensor scales (`m` uniform): `m` becomes a fixed-point multiplier (`Scaler`, a
//!   24-bit mantissa and a shift) applied to `acc` in `i64`, so tract rounds the **exact**
//!   product `acc · m` half to even;
//! * per-channel scales: its `Scale` operator rounds the `f32` product `fl(acc · m_c)` half
//!   to even.
//!
//! The two differ when `acc · m` lies within half an `f32` ulp of a half-integer (then
//! `fl(acc · m)` *is* the half-integer and ties to even). A plain `Mul` in `f32` followed by
//! `QuantizeLinear` would reproduce only the second. `acc · m` is exact in `f64` (an integer
//! below `2^25` times a 24-bit significand fits 53 bits), so the rewrite multiplies there and
//! then either rounds the exact product half to even (per tensor: adding and subtracting
//! `1.5 · 2^52`, where the `f64` ulp is 1) or rounds it to `f32` first (per channel: the cast
//! rounds to nearest even, which is `fl(acc · m_c)`). `QuantizeLinear` with scale 1 and zero
//! point 0 then rounds half to even (a no-op on integers) and saturates to int8. The `f64`
//! step also keeps tract from folding a per-channel `Mul` that directly follows a float
//! `Conv` into its weights, which would make them non-integer.
//!
//! Anything else (uint8 or asymmetric tensors, scales that are not constants, a non-int8
//! output) is left as it is and reported.

use super::index::GraphIndex;
use super::split::int_values;
use super::wire::{f32_tensor, tensor_f32};
use super::*;
use std::fmt;

/// `TensorProto.DataType` double (not in [`dtype`]: only this rewrite produces it).
const DOUBLE: i32 = 11;

/// Integers up to `2^24` in magnitude are exact in `f32`.
const EXACT_F32_LIMIT: i64 = 1 << 24;

/// Largest magnitude of an int8 level (`−128`).
const MAX_LEVEL: i64 = 128;

/// `1.5 · 2^52`: for `|v| < 2^51`, `(v + ROUND_MAGIC) − ROUND_MAGIC` in `f64` is `v` rounded
/// half to even (the sum lies in `[2^52, 2^53)`, where the `f64` ulp is 1).
const ROUND_MAGIC: f64 = 6_755_399_441_055_744.0;

/// How one `QLinearConv` was requantized in its rewrite (mirrors tract's two roundings).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Requant {
    /// One multiplier: the exact product rounded half to even.
    PerTensor,
    /// One multiplier per output channel: the `f32` product rounded half to even.
    PerChannel,
}

/// Why a `QLinearConv` was left as it is.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum LeftReason {
    /// Fewer than 8 inputs, or an empty required input name.
    Malformed,
    /// An input other than `x` is not a constant (initializer or `Constant` node).
    NotConstant(String),
    /// `x` or `w` is not int8 (read from the zero point's and the weight's data types).
    NotInt8(&'static str),
    /// A zero point of `x` or `w` is not 0.
    ZeroPoint(&'static str),
    /// The output is not int8 with zero point 0.
    Output,
    /// A scale has an unexpected length, or the multiplier is not a positive finite `f32`.
    Scale(String),
    /// The weight or bias does not hold the values its dims say.
    Shape(String),
    /// `128 · Σ|w_c| + |b_c|` exceeds `2^24` for output channel `channel`.
    Certificate { channel: usize, bound: i64 },
}

impl fmt::Display for LeftReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LeftReason::Malformed => f.write_str("malformed inputs"),
            LeftReason::NotConstant(name) => write!(f, "`{name}` is not a constant"),
            LeftReason::NotInt8(which) => write!(f, "{which} is not int8"),
            LeftReason::ZeroPoint(which) => write!(f, "{which} has a non-zero zero point"),
            LeftReason::Output => f.write_str("the output is not int8 with zero point 0"),
            LeftReason::Scale(what) => write!(f, "scale: {what}"),
            LeftReason::Shape(what) => write!(f, "shape: {what}"),
            LeftReason::Certificate { channel, bound } => write!(
                f,
                "float sums not certified exact: output channel {channel} has 128·Σ|w| + |b| = {bound} > 2^24"
            ),
        }
    }
}

/// One `QLinearConv` left as it is, and why.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct LeftConv {
    pub node: String,
    pub reason: LeftReason,
}

/// One `QLinearConv` rewritten.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct RewrittenConv {
    pub node: String,
    pub requant: Requant,
    /// The largest `(128 · Σ|w_c| + |b_c|) / 2^24` over the layer's output channels.
    pub certificate_use: f64,
}

/// What [`qlinearconv_to_exact_float`] did.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct ExactFloatRewrite {
    pub rewritten: Vec<RewrittenConv>,
    pub left: Vec<LeftConv>,
}

impl fmt::Display for ExactFloatRewrite {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} QLinearConv rewritten as exact float", self.rewritten.len())?;
        if let Some(worst) = self.rewritten.iter().map(|r| r.certificate_use).reduce(f64::max) {
            write!(f, " (sums at most {:.1} % of 2^24)", worst * 100.0)?;
        }
        if !self.left.is_empty() {
            write!(f, "; {} left:", self.left.len())?;
            for l in &self.left {
                write!(f, " `{}` ({});", l.node, l.reason)?;
            }
        }
        Ok(())
    }
}

/// The certificate that `f32` sums of a layer's products are exact for any int8 input:
/// `128 · Σ_j |w[c][j]| + |bias[c]| ≤ 2^24` for every output channel `c` (`w` is
/// `[channels][k]`, row-major). `Ok` with the largest bound, or the first channel that fails.
pub(crate) fn certify(w: &[i64], bias: Option<&[i64]>, channels: usize) -> Result<i64, LeftReason> {
    if channels == 0 || w.is_empty() || !w.len().is_multiple_of(channels) {
        return Err(LeftReason::Shape(format!("{} weights for {channels} output channels", w.len())));
    }
    if bias.is_some_and(|b| b.len() != channels) {
        return Err(LeftReason::Shape(format!(
            "bias of length {} for {channels} channels",
            bias.map_or(0, <[_]>::len)
        )));
    }
    let mut worst = 0;
    for (c, row) in w.chunks_exact(w.len() / channels).enumerate() {
        let bound = MAX_LEVEL * row.iter().map(|v| v.abs()).sum::<i64>() + bias.map_or(0, |b| b[c].abs());
        if bound > EXACT_F32_LIMIT {
            return Err(LeftReason::Certificate { channel: c, bound });
        }
        worst = worst.max(bound);
    }
    Ok(worst)
}

/// The requantization multiplier as tract and onnxruntime compute it in `f32`:
/// `(x_scale · w_scale) / y_scale`.
fn multiplier(x_scale: f32, w_scale: f32, y_scale: f32) -> f32 {
    (x_scale * w_scale) / y_scale
}

/// Fresh tensor and node names.
struct Names {
    used: HashSet<String>,
}

impl Names {
    fn new(graph: &pb::GraphProto) -> Self {
        let mut used = HashSet::new();
        for n in &graph.node {
            used.insert(n.name.clone());
            used.extend(n.input.iter().cloned());
            used.extend(n.output.iter().cloned());
        }
        used.extend(graph.initializer.iter().map(|t| t.name.clone()));
        used.extend(graph.input.iter().chain(&graph.output).map(|v| v.name.clone()));
        Names { used }
    }

    fn fresh(&mut self, base: &str) -> String {
        let mut name = base.to_string();
        let mut i = 1;
        while !self.used.insert(name.clone()) {
            name = format!("{base}_{i}");
            i += 1;
        }
        name
    }
}

fn f64_tensor(name: &str, dims: &[usize], values: &[f64]) -> pb::TensorProto {
    pb::TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: DOUBLE,
        name: name.to_string(),
        raw_data: values.iter().flat_map(|v| v.to_le_bytes()).collect(),
        ..Default::default()
    }
}

fn int8_scalar(name: &str, value: i8) -> pb::TensorProto {
    pb::TensorProto {
        data_type: dtype::INT8,
        name: name.to_string(),
        raw_data: vec![value as u8],
        ..Default::default()
    }
}

fn node(
    name: String,
    op: &str,
    input: Vec<String>,
    output: String,
    attribute: Vec<pb::AttributeProto>,
) -> pb::NodeProto {
    pb::NodeProto { name, op_type: op.into(), input, output: vec![output], attribute, ..Default::default() }
}

fn cast_to(to: i32) -> Vec<pb::AttributeProto> {
    // AttributeProto.AttributeType INT = 2.
    vec![pb::AttributeProto { name: "to".into(), r#type: 2, i: i64::from(to), ..Default::default() }]
}

/// What a `QLinearConv` is replaced with.
struct Plan {
    nodes: Vec<pb::NodeProto>,
    initializers: Vec<pb::TensorProto>,
    done: RewrittenConv,
}

/// The checked constants of one `QLinearConv`.
struct Layer {
    weight: Vec<i64>,
    weight_dims: Vec<usize>,
    bias: Option<Vec<i64>>,
    /// Per output channel, or one.
    mult: Vec<f32>,
    bound: i64,
}

fn read_layer(ix: &GraphIndex<'_>, n: &pb::NodeProto) -> Result<Layer, LeftReason> {
    if n.input.len() < 8 || n.input[..8].iter().any(String::is_empty) || n.output.len() != 1 {
        return Err(LeftReason::Malformed);
    }
    let get = |i: usize| ix.const_tensor(&n.input[i]).ok_or_else(|| LeftReason::NotConstant(n.input[i].clone()));
    let (xs, xz, w, ws, wz, ys, yz) = (get(1)?, get(2)?, get(3)?, get(4)?, get(5)?, get(6)?, get(7)?);
    let bias = match n.input.get(8).filter(|b| !b.is_empty()) {
        Some(_) => Some(get(8)?),
        None => None,
    };
    let ints = |t: &pb::TensorProto| int_values(t).map_err(|e| LeftReason::Shape(e.to_string()));
    let floats = |t: &pb::TensorProto| tensor_f32(t).map_err(|e| LeftReason::Scale(e.to_string()));
    if xz.data_type != dtype::INT8 {
        return Err(LeftReason::NotInt8("x"));
    }
    if w.data_type != dtype::INT8 || wz.data_type != dtype::INT8 {
        return Err(LeftReason::NotInt8("w"));
    }
    if ints(xz)?.iter().any(|&z| z != 0) {
        return Err(LeftReason::ZeroPoint("x"));
    }
    if ints(wz)?.iter().any(|&z| z != 0) {
        return Err(LeftReason::ZeroPoint("w"));
    }
    if yz.data_type != dtype::INT8 || ints(yz)? != [0] {
        return Err(LeftReason::Output);
    }
    let weight_dims: Vec<usize> = w.dims.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
    let channels = weight_dims.first().copied().unwrap_or(0);
    let weight = ints(w)?;
    if weight_dims.len() < 3 || weight.len() != weight_dims.iter().product::<usize>() {
        return Err(LeftReason::Shape(format!(
            "weight `{}` of dims {:?} holds {} values",
            w.name,
            w.dims,
            weight.len()
        )));
    }
    if bias.is_some_and(|b| b.data_type != dtype::INT32) {
        return Err(LeftReason::Shape("the bias is not int32".into()));
    }
    let bias = bias.map(ints).transpose()?;
    let bound = certify(&weight, bias.as_deref(), channels)?;
    let (xs, ws, ys) = (floats(xs)?, floats(ws)?, floats(ys)?);
    if xs.len() != 1 || ys.len() != 1 || !(ws.len() == 1 || ws.len() == channels) {
        return Err(LeftReason::Scale(format!(
            "x/w/y scales of lengths {}/{}/{} for {channels} output channels",
            xs.len(),
            ws.len(),
            ys.len()
        )));
    }
    let mult: Vec<f32> = ws.iter().map(|&w| multiplier(xs[0], w, ys[0])).collect();
    if let Some(m) = mult.iter().find(|m| !(m.is_finite() && **m > 0.0)) {
        return Err(LeftReason::Scale(format!("multiplier {m} is not positive and finite")));
    }
    Ok(Layer { weight, weight_dims, bias, mult, bound })
}

fn plan(n: &pb::NodeProto, layer: Layer, names: &mut Names) -> Plan {
    let base = if n.name.is_empty() { n.output[0].clone() } else { n.name.clone() };
    let p = format!("{base}/bmn_edge_exact");
    let mut fresh = |s: &str| names.fresh(&format!("{p}/{s}"));
    let channels = layer.weight_dims[0];
    let weights: Vec<f32> = layer.weight.iter().map(|&v| v as f32).collect();
    let mut inits = vec![f32_tensor(&fresh("w"), &layer.weight_dims, &weights)];
    let x = fresh("x");
    let mut conv_in = vec![x.clone(), inits[0].name.clone()];
    if let Some(b) = &layer.bias {
        // |b| ≤ 2^24 (certified), so exact in f32.
        let b: Vec<f32> = b.iter().map(|&v| v as f32).collect();
        inits.push(f32_tensor(&fresh("b"), &[channels], &b));
        conv_in.push(inits.last().map(|t| t.name.clone()).unwrap_or_default());
    }
    // tract treats a scale whose values are all equal as one multiplier (fixed point).
    let requant = if layer.mult.iter().all(|m| m.to_bits() == layer.mult[0].to_bits()) {
        Requant::PerTensor
    } else {
        Requant::PerChannel
    };
    let mult_name = fresh("m");
    inits.push(match requant {
        Requant::PerTensor => f64_tensor(&mult_name, &[], &[f64::from(layer.mult[0])]),
        Requant::PerChannel => {
            // [1, C, 1, ...]: broadcast over the batch and spatial axes of the output.
            let mut dims = vec![1; layer.weight_dims.len()];
            dims[1] = channels;
            f64_tensor(&mult_name, &dims, &layer.mult.iter().map(|&m| f64::from(m)).collect::<Vec<_>>())
        }
    });
    let (acc, acc64, scaled) = (fresh("acc"), fresh("acc_f64"), fresh("scaled"));
    let conv_attrs: Vec<pb::AttributeProto> = n.attribute.clone();
    let mut nodes = vec![
        node(fresh("cast_x"), "Cast", vec![n.input[0].clone()], x, cast_to(dtype::FLOAT)),
        node(fresh("conv"), "Conv", conv_in, acc.clone(), conv_attrs),
        node(fresh("cast_f64"), "Cast", vec![acc], acc64.clone(), cast_to(DOUBLE)),
        node(fresh("mul"), "Mul", vec![acc64, mult_name], scaled.clone(), vec![]),
    ];
    let rounded = match requant {
        Requant::PerTensor => {
            let magic = fresh("round_magic");
            inits.push(f64_tensor(&magic, &[], &[ROUND_MAGIC]));
            let (up, down) = (fresh("round_up"), fresh("rounded"));
            nodes.push(node(fresh("round_add"), "Add", vec![scaled, magic.clone()], up.clone(), vec![]));
            nodes.push(node(fresh("round_sub"), "Sub", vec![up, magic], down.clone(), vec![]));
            down
        }
        Requant::PerChannel => scaled,
    };
    let (narrow, one, zero) = (fresh("f32"), fresh("one"), fresh("zero"));
    inits.push(f32_tensor(&one, &[], &[1.0]));
    inits.push(int8_scalar(&zero, 0));
    nodes.push(node(fresh("cast_f32"), "Cast", vec![rounded], narrow.clone(), cast_to(dtype::FLOAT)));
    nodes.push(node(fresh("quantize"), "QuantizeLinear", vec![narrow, one, zero], n.output[0].clone(), vec![]));
    let done = RewrittenConv { node: base, requant, certificate_use: layer.bound as f64 / EXACT_F32_LIMIT as f64 };
    Plan { nodes, initializers: inits, done }
}

fn is_qlinearconv(n: &pb::NodeProto) -> bool {
    n.op_type == "QLinearConv" && (n.domain.is_empty() || n.domain == "ai.onnx")
}

/// Rewrites every int8 `QLinearConv` of `model`'s graph (zero points 0, int8 output,
/// per-tensor or per-channel weight scale, constant scales and weights) whose weights pass
/// the exactness certificate into `Cast → Conv → Cast(f64) → Mul → [round] → Cast(f32) →
/// QuantizeLinear`, in place of the `QLinearConv` (the graph stays in topological order;
/// its output keeps its name). Initializers only the rewritten nodes read are removed.
/// Returns what was rewritten and what was left, and why.
pub(crate) fn qlinearconv_to_exact_float(model: &mut pb::ModelProto) -> Result<ExactFloatRewrite, EngineError> {
    qlinearconv_to_exact_float_where(model, |_| true)
}

/// [`qlinearconv_to_exact_float`] for the `QLinearConv`s `which` selects (the others stay,
/// unreported).
pub(crate) fn qlinearconv_to_exact_float_where(
    model: &mut pb::ModelProto,
    which: impl Fn(&pb::NodeProto) -> bool,
) -> Result<ExactFloatRewrite, EngineError> {
    let graph = model.graph.as_mut().ok_or_else(|| EngineError::new(EngineErrorKind::NotOnnx, "no graph"))?;
    let mut report = ExactFloatRewrite::default();
    let mut plans: Vec<(usize, Plan)> = Vec::new();
    {
        let ix = GraphIndex::new(graph, &[]);
        let mut names = Names::new(graph);
        for (i, n) in graph.node.iter().enumerate().filter(|(_, n)| is_qlinearconv(n) && which(n)) {
            match read_layer(&ix, n) {
                Ok(layer) => plans.push((i, plan(n, layer, &mut names))),
                Err(reason) => {
                    let node =
                        if n.name.is_empty() { n.output.first().cloned().unwrap_or_default() } else { n.name.clone() };
                    report.left.push(LeftConv { node, reason });
                }
            }
        }
    }
    if plans.is_empty() {
        return Ok(report);
    }
    let mut replaced: Vec<Option<Plan>> = (0..graph.node.len()).map(|_| None).collect();
    for (i, p) in plans {
        replaced[i] = Some(p);
    }
    let old_inputs: HashSet<String> = replaced
        .iter()
        .zip(&graph.node)
        .filter(|(p, _)| p.is_some())
        .flat_map(|(_, n)| n.input.iter().cloned())
        .collect();
    let old = std::mem::take(&mut graph.node);
    for (n, p) in old.into_iter().zip(replaced) {
        match p {
            Some(p) => {
                graph.node.extend(p.nodes);
                graph.initializer.extend(p.initializers);
                report.rewritten.push(p.done);
            }
            None => graph.node.push(n),
        }
    }
    // Drop the int8 weights (and any scale or bias) nothing reads any more.
    let read: HashSet<&str> = graph
        .node
        .iter()
        .flat_map(|n| n.input.iter())
        .chain(graph.output.iter().map(|o| &o.name))
        .map(String::as_str)
        .collect();
    let declared: HashSet<&str> = graph.input.iter().map(|i| i.name.as_str()).collect();
    let unused: HashSet<String> = old_inputs
        .into_iter()
        .filter(|name| !read.contains(name.as_str()) && !declared.contains(name.as_str()))
        .collect();
    graph.initializer.retain(|t| !unused.contains(&t.name));
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine::bm::CHUNK;
    use crate::engine::load::analyse;
    use crate::engine::onnx::split::split;
    use crate::engine::product::build_stage;
    use std::path::Path;
    use std::time::{Duration, Instant};
    use tract_onnx::prelude::*;

    fn repo(rel: &str) -> std::path::PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)
    }

    /// Stage A of a model file as the engine splits it, with C and T.
    fn stage_a(rel: &str) -> (pb::ModelProto, usize, usize) {
        let a = analyse(std::fs::read(repo(rel)).unwrap(), None).unwrap();
        let (c, t) = (a.info.channels, a.info.config.tscale());
        (split(a.proto, &a.site, c, CHUNK).unwrap().stage_a, c, t)
    }

    fn count_op(m: &pb::ModelProto, op: &str) -> usize {
        m.graph.as_ref().unwrap().node.iter().filter(|n| n.op_type == op).count()
    }

    type Runnable = Arc<tract_core::model::TypedRunnableModel>;

    /// Every output of one run, as the bits of its f32 values.
    fn run_bits(model: &Runnable, shape: &[usize], x: &[f32]) -> Vec<Vec<u32>> {
        let input = Tensor::from_shape(shape, x).unwrap();
        model
            .run(tvec!(input.into_tvalue()))
            .unwrap()
            .iter()
            .map(|o| {
                let o = o.cast_to::<f32>().unwrap();
                o.try_as_plain_ram().unwrap().as_slice::<f32>().unwrap().iter().map(|v| v.to_bits()).collect()
            })
            .collect()
    }

    /// The fastest of `n` runs.
    fn time(model: &Runnable, shape: &[usize], x: &[f32], n: usize) -> Duration {
        let input = Tensor::from_shape(shape, x).unwrap();
        (0..n)
            .map(|_| {
                let t0 = Instant::now();
                model.run(tvec!(input.clone().into_tvalue())).unwrap();
                t0.elapsed()
            })
            .min()
            .unwrap()
    }

    /// xorshift64: deterministic values uniform in `[-amp, amp)`.
    fn noise(len: usize, amp: f32, mut seed: u64) -> Vec<f32> {
        (0..len)
            .map(|_| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                ((seed >> 40) as f32 / (1u64 << 24) as f32 * 2.0 - 1.0) * amp
            })
            .collect()
    }

    /// A `[L, C]` feature array's snippets `from..from + t`, as the engine's `[C, T]` window.
    fn window(rel: &str, from: usize, t: usize) -> Vec<f32> {
        let a = crate::npy::read_f32(&repo(rel)).unwrap();
        let c = a.shape[1];
        (0..c).flat_map(|ch| (from..from + t).map(move |s| (s, ch))).map(|(s, ch)| a.data[s * c + ch]).collect()
    }

    /// Builds stage A as split and as rewritten, runs both on each input and asserts the
    /// outputs are bit-identical; returns the two stage times (fastest of a few runs).
    fn assert_bit_identical(
        name: &str,
        original: pb::ModelProto,
        c: usize,
        t: usize,
        inputs: &[Vec<f32>],
    ) -> (ExactFloatRewrite, Duration, Duration) {
        let mut rewritten = original.clone();
        let report = qlinearconv_to_exact_float(&mut rewritten).unwrap();
        let q = build_stage(original, "stage A", &[1, c, t]).unwrap();
        let f = build_stage(rewritten, "stage A rewritten", &[1, c, t]).unwrap();
        let shape = [1, c, t];
        for (k, x) in inputs.iter().enumerate() {
            let (want, got) = (run_bits(&q, &shape, x), run_bits(&f, &shape, x));
            assert_eq!(want.len(), 3, "{name}: stage A has three outputs");
            for (o, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w.len(), g.len(), "{name}, input {k}, output {o}");
                let diff = w.iter().zip(g).filter(|(a, b)| a != b).count();
                assert_eq!(diff, 0, "{name}, input {k}, output {o}: {diff} of {} values differ", w.len());
            }
        }
        crate::engine::workers::set_tract_threads(1);
        let (tq, tf) = (time(&q, &shape, &inputs[0], 3), time(&f, &shape, &inputs[0], 3));
        (report, tq, tf)
    }

    #[test]
    fn shipped_model_stage_a_is_bit_identical() {
        let (stage, c, t) = stage_a("models/bmn_synth_int8.edge.onnx");
        assert_eq!((c, t), (400, 100));
        let convs = count_op(&stage, "QLinearConv");
        let demo = "models/demo/features/syn4_00000.npy";
        let len = c * t;
        // Two windows of the demo video, noise in the features' range, and noise that
        // saturates the input's int8 levels (x_scale 0.053: |x| > 6.8).
        let inputs = [window(demo, 0, t), window(demo, 150, t), noise(len, 4.0, 1), noise(len, 12.0, 2)];
        let (report, tq, tf) = assert_bit_identical("shipped", stage, c, t, &inputs);
        assert_eq!(report.rewritten.len(), convs, "{report}");
        assert_eq!(convs, 7);
        assert!(report.left.is_empty(), "{report}");
        assert!(report.rewritten.iter().all(|r| r.requant == Requant::PerTensor && r.certificate_use < 0.2));
        eprintln!(
            "shipped stage A [1, {c}, {t}], 1 thread, CPU features {}: QLinearConv {:.2} ms, exact float {:.2} ms; {report}",
            crate::engine::cpu::CpuFeatures::detect(),
            tq.as_secs_f64() * 1e3,
            tf.as_secs_f64() * 1e3
        );
    }

    #[test]
    fn fixture_stage_a_is_bit_identical() {
        let (stage, c, t) = stage_a("tests/fixtures/onnx_int8/bmn_tiny_pytorch_int8_qop.onnx");
        let convs = count_op(&stage, "QLinearConv");
        // The fixture's golden input is [T, C].
        let io = crate::npy::read_f32(&repo("tests/fixtures/onnx/bmn_tiny_pytorch_op17.io/input.npy")).unwrap();
        assert_eq!(io.shape, [t, c]);
        let golden: Vec<f32> =
            (0..c).flat_map(|ch| (0..t).map(move |s| (s, ch))).map(|(s, ch)| io.data[s * c + ch]).collect();
        let inputs = [golden, noise(c * t, 3.0, 3), noise(c * t, 8.0, 4)];
        let (report, _, _) = assert_bit_identical("fixture", stage, c, t, &inputs);
        assert_eq!((report.rewritten.len(), convs), (7, 7), "{report}");
        assert!(report.left.is_empty(), "{report}");
    }

    // ----- Synthetic single-layer models -----

    const X: &str = "x";
    const Y: &str = "y";

    fn int_attr(name: &str, ints: &[i64]) -> pb::AttributeProto {
        // AttributeProto.AttributeType INTS = 7.
        pb::AttributeProto { name: name.into(), r#type: 7, ints: ints.to_vec(), ..Default::default() }
    }

    fn i32_tensor(name: &str, dims: &[usize], v: &[i32]) -> pb::TensorProto {
        pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: dtype::INT32,
            name: name.into(),
            raw_data: v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            ..Default::default()
        }
    }

    fn i8_tensor(name: &str, dims: &[usize], v: &[i8]) -> pb::TensorProto {
        pb::TensorProto {
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type: dtype::INT8,
            name: name.into(),
            raw_data: v.iter().map(|&x| x as u8).collect(),
            ..Default::default()
        }
    }

    /// One 1-d QLinearConv layer `[1, C_in, T] → [1, M, T]` (kernel 1) between a
    /// `QuantizeLinear` and a `DequantizeLinear` of scale 1, so that the input values are
    /// the int8 levels and the output values the QLinearConv's levels.
    struct Layer1d {
        w: Vec<i8>,
        m: usize,
        bias: Option<Vec<i32>>,
        xs: f32,
        ws: Vec<f32>,
        ys: f32,
        /// Scales and zero points as `Constant` nodes instead of initializers.
        constant_nodes: bool,
    }

    impl Layer1d {
        fn model(&self, t: usize) -> pb::ModelProto {
            let cin = self.w.len() / self.m;
            let per_channel = [self.m];
            let w_dims: &[usize] = if self.ws.len() == 1 { &[] } else { &per_channel };
            let mut consts = vec![
                f32_tensor("one", &[], &[1.0]),
                int8_scalar("zero", 0),
                f32_tensor("xs", &[], &[self.xs]),
                int8_scalar("xz", 0),
                f32_tensor("ws", w_dims, &self.ws),
                i8_tensor("wz", w_dims, &vec![0; self.ws.len()]),
                f32_tensor("ys", &[], &[self.ys]),
                int8_scalar("yz", 0),
            ];
            let mut inits = vec![i8_tensor("w", &[self.m, cin, 1], &self.w)];
            let mut conv_in: Vec<String> = ["xq", "xs", "xz", "w", "ws", "wz", "ys", "yz"].map(String::from).to_vec();
            if let Some(b) = &self.bias {
                inits.push(i32_tensor("b", &[self.m], b));
                conv_in.push("b".into());
            }
            let mut nodes = vec![];
            if self.constant_nodes {
                for t in consts.drain(2..) {
                    let value = pb::AttributeProto {
                        name: "value".into(),
                        r#type: 4,
                        t: Some(t.clone()),
                        ..Default::default()
                    };
                    nodes.push(node(format!("const_{}", t.name), "Constant", vec![], t.name, vec![value]));
                }
            }
            inits.extend(consts);
            nodes.push(node(
                "q".into(),
                "QuantizeLinear",
                vec![X.into(), "one".into(), "zero".into()],
                "xq".into(),
                vec![],
            ));
            let attrs = vec![int_attr("kernel_shape", &[1]), int_attr("pads", &[0, 0]), int_attr("strides", &[1])];
            nodes.push(node("conv".into(), "QLinearConv", conv_in, "yq".into(), attrs));
            nodes.push(node(
                "dq".into(),
                "DequantizeLinear",
                vec!["yq".into(), "one".into(), "zero".into()],
                Y.into(),
                vec![],
            ));
            pb::ModelProto {
                ir_version: 8,
                opset_import: vec![pb::OperatorSetIdProto { domain: String::new(), version: 17 }],
                graph: Some(pb::GraphProto {
                    node: nodes,
                    name: "layer".into(),
                    initializer: inits,
                    input: vec![value_info(X, Some(&[1, cin, t]))],
                    output: vec![value_info(Y, None)],
                    ..Default::default()
                }),
                ..Default::default()
            }
        }

        /// The layer's int32 accumulators for input levels `x` `[C_in, T]`: `[M, T]`.
        fn acc(&self, x: &[f32], t: usize) -> Vec<i64> {
            let cin = self.w.len() / self.m;
            (0..self.m)
                .flat_map(|o| (0..t).map(move |s| (o, s)))
                .map(|(o, s)| {
                    let b = self.bias.as_ref().map_or(0, |b| i64::from(b[o]));
                    b + (0..cin).map(|i| i64::from(self.w[o * cin + i]) * x[i * t + s] as i64).sum::<i64>()
                })
                .collect()
        }

        fn mult(&self, o: usize) -> f32 {
            multiplier(self.xs, self.ws[if self.ws.len() == 1 { 0 } else { o }], self.ys)
        }
    }

    fn saturate(v: f64) -> f32 {
        v.clamp(-128.0, 127.0) as f32
    }

    /// Output levels with the exact product `acc · m` rounded half to even.
    fn levels_exact(l: &Layer1d, acc: &[i64], t: usize) -> Vec<f32> {
        acc.iter()
            .enumerate()
            .map(|(i, &a)| saturate((a as f64 * f64::from(l.mult(i / t))).round_ties_even()))
            .collect()
    }

    /// Output levels with the f32 product `fl(acc · m)` rounded half to even.
    fn levels_f32(l: &Layer1d, acc: &[i64], t: usize) -> Vec<f32> {
        acc.iter()
            .enumerate()
            .map(|(i, &a)| saturate(f64::from((a as f32 * l.mult(i / t)).round_ties_even())))
            .collect()
    }

    fn run_levels(model: pb::ModelProto, cin: usize, t: usize, x: &[f32]) -> Vec<f32> {
        let m = build_stage(model, "layer", &[1, cin, t]).unwrap();
        run_bits(&m, &[1, cin, t], x).remove(0).into_iter().map(f32::from_bits).collect()
    }

    /// Every int8 level once, on one input channel.
    fn all_levels() -> Vec<f32> {
        (-128..128).map(|v| v as f32).collect()
    }

    /// Weights 1, −1, 2, 7 on one input channel, `y_scale` 6: `m = fl(1/6)` lies above 1/6,
    /// so the accumulators `±3·(2j + 1)` (and more) fall just above a half-integer, where
    /// `fl(acc · m)` is the half-integer itself.
    fn near_tie_layer(ws: Vec<f32>, constant_nodes: bool) -> Layer1d {
        Layer1d { w: vec![1, -1, 2, 7], m: 4, bias: Some(vec![0, 0, 3, -40]), xs: 1.0, ws, ys: 6.0, constant_nodes }
    }

    #[test]
    fn per_tensor_rounding_is_tracts_exact_product() {
        // One scale (initializer or `Constant` node), or one per channel, all equal: tract
        // treats a uniform multiplier as one.
        for (ws, constant_nodes) in [(vec![1.0], false), (vec![1.0], true), (vec![1.0; 4], false)] {
            let l = near_tie_layer(ws, constant_nodes);
            let (x, t) = (all_levels(), 256);
            let acc = l.acc(&x, t);
            let (exact, naive) = (levels_exact(&l, &acc, t), levels_f32(&l, &acc, t));
            let near_ties = exact.iter().zip(&naive).filter(|(a, b)| a != b).count();
            // The input discriminates the two roundings.
            assert!(near_ties >= 20, "{near_ties}");
            let tract = run_levels(l.model(t), 1, t, &x);
            assert_eq!(tract, exact, "tract's QLinearConv rounds the exact product (per-tensor scale)");
            let mut model = l.model(t);
            let report = qlinearconv_to_exact_float(&mut model).unwrap();
            assert_eq!(report.rewritten.len(), 1, "{report}");
            assert_eq!(report.rewritten[0].requant, Requant::PerTensor);
            assert_eq!(count_op(&model, "QLinearConv"), 0);
            assert_eq!(run_levels(model, 1, t, &x), exact);
        }
    }

    #[test]
    fn per_channel_rounding_is_tracts_f32_product() {
        let l = near_tie_layer(vec![1.0, 1.0, 0.5, 3.0], false);
        let (x, t) = (all_levels(), 256);
        let acc = l.acc(&x, t);
        let (exact, naive) = (levels_exact(&l, &acc, t), levels_f32(&l, &acc, t));
        assert!(exact.iter().zip(&naive).filter(|(a, b)| a != b).count() >= 20);
        let tract = run_levels(l.model(t), 1, t, &x);
        assert_eq!(tract, naive, "tract's QLinearConv rounds the f32 product (per-channel scale)");
        let mut model = l.model(t);
        let report = qlinearconv_to_exact_float(&mut model).unwrap();
        assert_eq!(report.rewritten.len(), 1, "{report}");
        assert_eq!(report.rewritten[0].requant, Requant::PerChannel);
        assert_eq!(run_levels(model, 1, t, &x), naive);
    }

    #[test]
    fn certificate_bound_is_inclusive_and_counts_the_bias() {
        // Σ|w| = 1032·127 + 8 = 2^17, so 128·Σ|w| = 2^24 exactly.
        let mut row = vec![127i64; 1032];
        row.push(-8);
        let two_rows: Vec<i64> = row.iter().chain(&row).copied().collect();
        assert_eq!(certify(&two_rows, None, 2), Ok(1 << 24));
        assert_eq!(certify(&two_rows, Some(&[0, 0]), 2), Ok(1 << 24));
        assert_eq!(
            certify(&two_rows, Some(&[0, -1]), 2),
            Err(LeftReason::Certificate { channel: 1, bound: (1 << 24) + 1 })
        );
        assert!(matches!(certify(&row[..3], None, 2), Err(LeftReason::Shape(_))));
        assert!(matches!(certify(&row, Some(&[0, 0]), 1), Err(LeftReason::Shape(_))));
    }

    #[test]
    fn a_layer_failing_the_certificate_is_left_alone() {
        // K = 1100 weights of 127: 128·Σ|w| = 17 881 600 > 2^24.
        let l =
            Layer1d { w: vec![127; 1100], m: 1, bias: None, xs: 1.0, ws: vec![1.0], ys: 1.0, constant_nodes: false };
        let original = l.model(4);
        let mut model = original.clone();
        let report = qlinearconv_to_exact_float(&mut model).unwrap();
        assert!(report.rewritten.is_empty());
        assert_eq!(
            report.left,
            [LeftConv { node: "conv".into(), reason: LeftReason::Certificate { channel: 0, bound: 128 * 127 * 1100 } }]
        );
        assert_eq!(model, original);
    }

    #[test]
    fn only_the_uncertified_layer_of_a_stage_is_left() {
        // The fixture's stage A with one layer's bias pushed past the certificate.
        let (mut stage, c, t) = stage_a("tests/fixtures/onnx_int8/bmn_tiny_pytorch_int8_qop.onnx");
        let target = "/tem_start/tem_start.2/Conv_quant";
        let graph = stage.graph.as_mut().unwrap();
        let bias = graph.node.iter().find(|n| n.name == target).unwrap().input[8].clone();
        let b = graph.initializer.iter_mut().find(|i| i.name == bias).unwrap();
        assert_eq!(b.dims, [1]);
        b.raw_data = (1i32 << 24).to_le_bytes().to_vec();
        let (report, _, _) =
            assert_bit_identical("fixture, one bias too large", stage.clone(), c, t, &[noise(c * t, 3.0, 5)]);
        assert_eq!(report.rewritten.len(), 6, "{report}");
        assert_eq!(report.left.len(), 1, "{report}");
        assert_eq!(report.left[0].node, target);
        assert!(matches!(report.left[0].reason, LeftReason::Certificate { channel: 0, bound } if bound > 1 << 24));
        let mut rewritten = stage;
        qlinearconv_to_exact_float(&mut rewritten).unwrap();
        let g = rewritten.graph.as_ref().unwrap();
        assert_eq!(
            g.node.iter().filter(|n| n.op_type == "QLinearConv").map(|n| n.name.as_str()).collect::<Vec<_>>(),
            [target]
        );
        // Node and tensor names stay unique, and every input is produced before it is read.
        let mut seen: HashSet<&str> =
            g.initializer.iter().map(|i| i.name.as_str()).chain(g.input.iter().map(|i| i.name.as_str())).collect();
        let mut node_names = HashSet::new();
        for n in &g.node {
            assert!(node_names.insert(n.name.as_str()), "node name `{}` twice", n.name);
            for i in n.input.iter().filter(|i| !i.is_empty()) {
                assert!(seen.contains(i.as_str()), "`{i}` read by `{}` before it is produced", n.name);
            }
            for o in &n.output {
                assert!(seen.insert(o.as_str()), "tensor `{o}` produced twice");
            }
        }
    }

    /// Sets a synthetic model's initializer `name` to an int8/uint8 scalar `value`.
    fn set_zero_point(model: &mut pb::ModelProto, name: &str, data_type: i32, value: u8) {
        let t = model.graph.as_mut().unwrap().initializer.iter_mut().find(|i| i.name == name).unwrap();
        (t.data_type, t.raw_data) = (data_type, vec![value]);
    }

    #[test]
    fn other_quantizations_are_left_and_listed() {
        let l = near_tie_layer(vec![1.0], false);
        let cases: [(&str, i32, u8, LeftReason); 4] = [
            ("xz", dtype::UINT8, 128, LeftReason::NotInt8("x")),
            ("xz", dtype::INT8, 3, LeftReason::ZeroPoint("x")),
            ("wz", dtype::INT8, 1, LeftReason::ZeroPoint("w")),
            ("yz", dtype::UINT8, 0, LeftReason::Output),
        ];
        for (name, data_type, value, reason) in cases {
            let mut model = l.model(8);
            set_zero_point(&mut model, name, data_type, value);
            let before = model.clone();
            let report = qlinearconv_to_exact_float(&mut model).unwrap();
            assert_eq!(report.left, [LeftConv { node: "conv".into(), reason }], "{name}");
            assert_eq!(model, before);
        }
        // A scale that is not a constant.
        let mut model = l.model(8);
        let g = model.graph.as_mut().unwrap();
        g.node.iter_mut().find(|n| n.name == "conv").unwrap().input[6] = X.into();
        let report = qlinearconv_to_exact_float(&mut model).unwrap();
        assert_eq!(report.left[0].reason, LeftReason::NotConstant(X.into()));
        assert!(report.to_string().contains("0 QLinearConv rewritten"), "{report}");
    }
}

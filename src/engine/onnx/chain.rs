//! Recognising stage B as a chain of 1×1 / 3×3 "same" convolutions with activations
//! (float `Conv`, or `QLinearConv` between Quantize/DequantizeLinear).

use super::split::int_values;
use super::wire::tensor_f32;
use super::*;
use crate::engine::quant::{Act, Quant};

/// One convolution of the tail, as found in the graph (a `QLinearConv` with dequantized
/// weights and bias, and the quantization of its input and output).
#[derive(Debug, Clone)]
pub(crate) struct ConvSpec {
    pub cout: usize,
    pub cin: usize,
    /// 1 or 3.
    pub kernel: usize,
    /// `[cout][cin][k][k]`.
    pub weight: Vec<f32>,
    pub bias: Vec<f32>,
    pub act: Act,
    /// Quantization of the input (QLinearConv's `x_scale`, `x_zero_point`).
    pub in_q: Option<Quant>,
    /// Quantization of the output before the activation (`y_scale`, `y_zero_point`).
    pub out_q: Option<Quant>,
    /// The integer weights of a quantized convolution whose weight zero points are 0.
    pub int_w: Option<IntWeights>,
}

impl ConvSpec {
    /// A float convolution with no activation yet.
    pub(crate) fn float(cout: usize, cin: usize, kernel: usize, weight: Vec<f32>, bias: Vec<f32>) -> ConvSpec {
        ConvSpec { cout, cin, kernel, weight, bias, act: Act::None, in_q: None, out_q: None, int_w: None }
    }
}

/// A quantized convolution's weights as integers: `weight = q · scale[cout]`.
#[derive(Debug, Clone)]
pub(crate) struct IntWeights {
    /// `[cout][cin][k][k]`.
    pub q: Vec<i8>,
    /// Per output channel.
    pub scale: Vec<f32>,
}

fn attr_ints(node: &pb::NodeProto, name: &str) -> Option<Vec<i64>> {
    node.attribute.iter().find(|a| a.name == name).map(|a| a.ints.clone())
}

/// `act(out_q(acc))` as a level of the next layer's input quantization `next` (the
/// integer tail's `levels_row` computes this row-wise; tests check one against the other).
#[cfg(test)]
pub(crate) fn finish_level(spec: &ConvSpec, next: Quant, acc: f32) -> f32 {
    let v = match spec.out_q {
        Some(q) => q.apply(acc),
        None => acc,
    };
    next.level(spec.act.apply(v))
}

/// `act(out_q(acc))`, then the next layer's input quantization.
#[inline]
pub(crate) fn finish(spec: &ConvSpec, next_in: Option<Quant>, acc: f32) -> f32 {
    let v = match spec.out_q {
        Some(q) => q.apply(acc),
        None => acc,
    };
    let v = spec.act.apply(v);
    match next_in {
        Some(q) => q.apply(v),
        None => v,
    }
}

/// Recognises stage B as a chain of stride-1 "same" 1×1 / 3×3 convolutions (float weights),
/// each optionally followed by Relu or Sigmoid, the first a 1×1 over the `o` BM channels.
/// `None`: anything else (quantized convolutions, other ops); stage B then runs in tract.
pub(crate) fn recognise(stage_b: &pb::ModelProto, h: &str, output: &str, o: usize) -> Option<Vec<ConvSpec>> {
    let graph = stage_b.graph.as_ref()?;
    let inits: HashMap<&str, &pb::TensorProto> = graph.initializer.iter().map(|t| (t.name.as_str(), t)).collect();
    let consumers = |name: &str| -> Vec<&pb::NodeProto> {
        graph.node.iter().filter(|n| n.input.iter().any(|i| i == name)).collect()
    };
    let single = |name: &str| -> Option<&pb::NodeProto> {
        let c = consumers(name);
        (c.len() == 1).then(|| c[0])
    };
    let f32s = |name: &str| -> Option<Vec<f32>> {
        let t = inits.get(name)?;
        (t.data_type == dtype::FLOAT).then(|| tensor_f32(t).ok()).flatten()
    };
    let ints = |name: &str| -> Option<(Vec<i64>, i32)> {
        let t = inits.get(name)?;
        Some((int_values(t).ok()?, t.data_type))
    };
    // A per-tensor quantization from (scale, zero point) constant names.
    let quant = |scale: &str, zp: Option<&String>| -> Option<Quant> {
        let sc = f32s(scale)?;
        let (z, ty) = match zp.filter(|z| !z.is_empty()) {
            Some(z) => ints(z)?,
            None => (vec![0], 2),
        };
        let (lo, hi) = match ty {
            dtype::UINT8 => (0.0, 255.0),
            dtype::INT8 => (-128.0, 127.0),
            _ => return None,
        };
        (sc.len() == 1 && z.len() == 1 && sc[0] > 0.0 && sc[0].is_finite()).then(|| Quant {
            scale: sc[0],
            zp: z[0] as f32,
            lo,
            hi,
        })
    };
    let mut cur = h.to_string();
    let mut convs: Vec<ConvSpec> = Vec::new();
    let mut seen = 0usize;
    // A QuantizeLinear seen, waiting for its QLinearConv; inside a QLinearConv's output.
    let mut pending_q: Option<Quant> = None;
    let mut quantized_out = false;
    while cur != output {
        let node = single(&cur)?;
        seen += 1;
        if !(node.domain.is_empty() || node.domain == "ai.onnx") || node.output.len() != 1 {
            return None;
        }
        match node.op_type.as_str() {
            "Identity" => {}
            "QuantizeLinear" => {
                if pending_q.is_some() || quantized_out || node.input.first()? != &cur {
                    return None;
                }
                pending_q = Some(quant(node.input.get(1)?, node.input.get(2))?);
            }
            "DequantizeLinear" => {
                let last = convs.last()?;
                let q = quant(node.input.get(1)?, node.input.get(2))?;
                if !quantized_out || last.out_q != Some(q) {
                    return None;
                }
                quantized_out = false;
            }
            "QLinearConv" => {
                let in_q = pending_q.take()?;
                let i = &node.input;
                if i.len() < 8 || i[0] != cur || quant(&i[1], i.get(2))? != in_q {
                    return None;
                }
                let out_q = quant(&i[6], i.get(7))?;
                let w = inits.get(i[3].as_str())?;
                let dims: Vec<usize> = w.dims.iter().map(|&x| usize::try_from(x).ok()).collect::<Option<_>>()?;
                if dims.len() != 4 {
                    return None;
                }
                let (cout, cin, k) = (dims[0], dims[1], dims[2]);
                let (wq, _) = ints(&i[3])?;
                let ws = f32s(&i[4])?;
                let (wz, _) = ints(&i[5])?;
                let per_channel = |v: usize| v == 1 || v == cout;
                if wq.len() != cout * cin * k * k || !per_channel(ws.len()) || !per_channel(wz.len()) {
                    return None;
                }
                let pick = |len: usize, c: usize| if len == 1 { 0 } else { c };
                let per = cin * k * k;
                let weight: Vec<f32> = wq
                    .iter()
                    .enumerate()
                    .map(|(j, &q)| {
                        let c = j / per;
                        (q - wz[pick(wz.len(), c)]) as f32 * ws[pick(ws.len(), c)]
                    })
                    .collect();
                let bias = match i.get(8).filter(|b| !b.is_empty()) {
                    Some(b) => {
                        let (bq, _) = ints(b)?;
                        if bq.len() != cout {
                            return None;
                        }
                        bq.iter().enumerate().map(|(c, &q)| q as f32 * in_q.scale * ws[pick(ws.len(), c)]).collect()
                    }
                    None => vec![0.0; cout],
                };
                let int_w = (w.data_type == dtype::INT8 && wz.iter().all(|&z| z == 0)).then(|| IntWeights {
                    q: wq.iter().map(|&q| q as i8).collect(),
                    scale: (0..cout).map(|c| ws[pick(ws.len(), c)]).collect(),
                });
                let spec = ConvSpec {
                    in_q: Some(in_q),
                    out_q: Some(out_q),
                    int_w,
                    ..ConvSpec::float(cout, cin, k, weight, bias)
                };
                push_conv(&mut convs, node, spec, o, dims[3])?;
                quantized_out = true;
            }
            "Relu" | "Sigmoid" => {
                if pending_q.is_some() || quantized_out {
                    return None;
                }
                let last = convs.last_mut()?;
                if last.act != Act::None {
                    return None;
                }
                last.act = if node.op_type == "Relu" { Act::Relu } else { Act::Sigmoid };
            }
            "Conv" => {
                if pending_q.is_some() || quantized_out || node.input.first()? != &cur || node.input.len() < 2 {
                    return None;
                }
                let w = inits.get(node.input[1].as_str())?;
                if w.data_type != dtype::FLOAT || w.dims.len() != 4 {
                    return None;
                }
                let dims: Vec<usize> = w.dims.iter().map(|&x| usize::try_from(x).ok()).collect::<Option<_>>()?;
                let (cout, cin, k) = (dims[0], dims[1], dims[2]);
                let weight = tensor_f32(w).ok()?;
                let bias = match node.input.get(2).filter(|b| !b.is_empty()) {
                    Some(b) => f32s(b)?,
                    None => vec![0.0; cout],
                };
                if weight.len() != cout * cin * k * k || bias.len() != cout {
                    return None;
                }
                push_conv(&mut convs, node, ConvSpec::float(cout, cin, k, weight, bias), o, dims[3])?;
            }
            _ => return None,
        }
        cur = node.output[0].clone();
    }
    // Every node of stage B must be on the chain (no side branches feeding the output).
    if convs.is_empty() || seen != graph.node.len() || pending_q.is_some() || quantized_out {
        return None;
    }
    Some(convs)
}

/// Appends `spec` (from `node`, kernel width `kw`) to the chain if the tail can run it
/// ([`conv_shape_ok`]; the first takes the `o` BM channels).
fn push_conv(convs: &mut Vec<ConvSpec>, node: &pb::NodeProto, spec: ConvSpec, o: usize, kw: usize) -> Option<()> {
    let cin = convs.last().map_or(o, |c| c.cout);
    conv_shape_ok(node, &spec, cin, convs.is_empty(), kw).then(|| convs.push(spec))
}

/// A convolution the tail runs: 1×1 or 3×3 square kernel, stride and dilation 1, one group,
/// "same" padding, `cin` matching the previous layer (the first: a 1×1 over the BM width).
fn conv_shape_ok(node: &pb::NodeProto, spec: &ConvSpec, expect_cin: usize, first: bool, kw: usize) -> bool {
    let k = spec.kernel;
    if kw != k || !(k == 1 || k == 3) || spec.cin != expect_cin || (first && k != 1) {
        return false;
    }
    if attr_ints(node, "strides").is_some_and(|s| s.iter().any(|&x| x != 1))
        || attr_ints(node, "dilations").is_some_and(|s| s.iter().any(|&x| x != 1))
        || node.attribute.iter().any(|a| a.name == "group" && a.i != 1)
    {
        return false;
    }
    let r = (k as i64 - 1) / 2;
    match attr_ints(node, "pads") {
        Some(p) => p.len() == 4 && p.iter().all(|&x| x == r),
        None => {
            r == 0
                || node.attribute.iter().any(|a| a.name == "auto_pad" && (a.s == b"SAME_UPPER" || a.s == b"SAME_LOWER"))
        }
    }
}

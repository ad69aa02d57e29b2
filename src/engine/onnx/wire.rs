//! Reading ONNX files with the dense mask held once.
//!
//! A standard export is about 148 MB, 128 MB of which is the BM mask. Decoding it with prost
//! straight from the file bytes would hold the mask twice (file bytes + decoded `raw_data`),
//! and more while prost grows its buffers. Instead the file is read once into memory, the
//! protobuf wire format is walked by hand down to `ModelProto.graph.initializer`, and every
//! large rank-2 float initializer (the only shape a BM mask can have) is *deferred*: left
//! where it is in the file bytes and cut out of the copy that prost decodes. The engine then
//! verifies the mask straight from the file bytes, drops the file, and whatever else was
//! deferred (nothing, in a BMN) is put back into the decoded model.
//!
//! Only the few wire-format rules needed for this are implemented: varints, the four live
//! wire types, and length-delimited sub-messages. Anything malformed or truncated is a
//! [`EngineErrorKind::NotOnnx`](super::EngineErrorKind::NotOnnx) error.

use super::{dtype, EngineError, EngineErrorKind};
use prost::Message;
use std::ops::Range;
use tract_onnx::pb;

/// Initializers at least this large (in bytes) with rank 2 are deferred.
const DEFER_BYTES: usize = 1 << 20;

/// A large float initializer left in the file bytes.
#[derive(Debug, Clone)]
pub(crate) struct Deferred {
    /// Tensor name.
    pub name: String,
    /// Dimensions.
    pub dims: Vec<i64>,
    /// Byte range of its little-endian f32 data in the file.
    pub data: Range<usize>,
}

/// An ONNX model read with its large constants deferred (see the module docs).
#[derive(Debug)]
pub(crate) struct ModelFile {
    /// The whole file (empty once released).
    pub bytes: Vec<u8>,
    /// The model, without the deferred initializers.
    pub proto: pb::ModelProto,
    /// The deferred initializers, in file order.
    pub deferred: Vec<Deferred>,
}

#[derive(Debug, Clone)]
struct Field {
    number: u32,
    wire: u8,
    /// Start of the key.
    start: usize,
    /// Value bytes: the payload for length-delimited fields, the encoded value otherwise.
    value: Range<usize>,
    /// Decoded value of a varint field.
    varint: u64,
}

fn not_onnx(msg: impl Into<String>) -> EngineError {
    EngineError::new(EngineErrorKind::NotOnnx, msg)
}

fn varint(buf: &[u8], pos: &mut usize, end: usize) -> Result<u64, EngineError> {
    let mut v: u64 = 0;
    for shift in (0..64).step_by(7) {
        if *pos >= end {
            return Err(not_onnx("truncated protobuf (the file ends inside a varint)"));
        }
        let b = buf[*pos];
        *pos += 1;
        v |= u64::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            return Ok(v);
        }
    }
    Err(not_onnx("malformed protobuf varint"))
}

/// The fields of the message in `buf[range]`.
fn fields(buf: &[u8], range: Range<usize>) -> Result<Vec<Field>, EngineError> {
    let mut out = Vec::new();
    let end = range.end;
    let mut pos = range.start;
    while pos < end {
        let start = pos;
        let key = varint(buf, &mut pos, end)?;
        let number = (key >> 3) as u32;
        let wire = (key & 7) as u8;
        if number == 0 {
            return Err(not_onnx("malformed protobuf (field number 0)"));
        }
        let (value, v) = match wire {
            0 => {
                let s = pos;
                let v = varint(buf, &mut pos, end)?;
                (s..pos, v)
            }
            1 | 5 => {
                let w = if wire == 1 { 8 } else { 4 };
                if end - pos < w {
                    return Err(not_onnx("truncated protobuf (the file ends inside a fixed-width field)"));
                }
                pos += w;
                (pos - w..pos, 0)
            }
            2 => {
                let len = varint(buf, &mut pos, end)?;
                if len > (end - pos) as u64 {
                    return Err(not_onnx(format!(
                        "truncated protobuf: a field announces {len} bytes but only {} remain",
                        end - pos
                    )));
                }
                let len = len as usize;
                pos += len;
                (pos - len..pos, len as u64)
            }
            w => return Err(not_onnx(format!("malformed protobuf (wire type {w})"))),
        };
        out.push(Field { number, wire, start, value, varint: v });
    }
    Ok(out)
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    loop {
        let b = (v & 0x7f) as u8;
        v >>= 7;
        if v == 0 {
            out.push(b);
            return;
        }
        out.push(b | 0x80);
    }
}

/// Reads a deferrable tensor's metadata: rank-2 float with inline data of at least
/// [`DEFER_BYTES`].
fn deferrable(buf: &[u8], range: Range<usize>) -> Result<Option<Deferred>, EngineError> {
    if range.len() < DEFER_BYTES {
        return Ok(None);
    }
    let mut dims = Vec::new();
    let mut data_type = 0;
    let mut name = None;
    let mut data = None;
    let mut external = false;
    for f in fields(buf, range)? {
        match (f.number, f.wire) {
            (1, 0) => dims.push(f.varint as i64),
            (1, 2) => {
                let mut p = f.value.start;
                while p < f.value.end {
                    dims.push(varint(buf, &mut p, f.value.end)? as i64);
                }
            }
            (2, 0) => data_type = f.varint as i32,
            (8, 2) => name = Some(String::from_utf8_lossy(&buf[f.value.clone()]).into_owned()),
            (9, 2) | (4, 2) => data = Some(f.value.clone()),
            (14, 0) => external = f.varint == 1,
            (13, _) => external = true,
            _ => {}
        }
    }
    match (name, data) {
        (Some(name), Some(data))
            if !external && data_type == dtype::FLOAT && dims.len() == 2 && data.len() >= DEFER_BYTES =>
        {
            Ok(Some(Deferred { name, dims, data }))
        }
        _ => Ok(None),
    }
}

impl ModelFile {
    /// Parses an ONNX file held in `bytes`.
    pub fn parse(bytes: Vec<u8>) -> Result<Self, EngineError> {
        Self::parse_inner(bytes).map_err(|e| {
            if e.kind() != EngineErrorKind::NotOnnx || e.to_string().starts_with("not an ONNX") {
                e
            } else if e.to_string().contains("truncated") {
                not_onnx(format!("not an ONNX model or a truncated one: {e}"))
            } else {
                not_onnx(format!("not an ONNX model: {e}"))
            }
        })
    }

    fn parse_inner(bytes: Vec<u8>) -> Result<Self, EngineError> {
        if bytes.is_empty() {
            return Err(not_onnx("the file is empty"));
        }
        let top = fields(&bytes, 0..bytes.len())?;
        let mut deferred = Vec::new();
        let mut saw_graph = false;
        // First pass: what to defer. Second pass (only when something is): the copy without it.
        let mut keep: Vec<(usize, Range<usize>)> = Vec::new();
        for f in &top {
            if f.number == 7 && f.wire == 2 {
                saw_graph = true;
                for g in fields(&bytes, f.value.clone())? {
                    if g.number == 5 && g.wire == 2 {
                        if let Some(d) = deferrable(&bytes, g.value.clone())? {
                            deferred.push(d);
                            continue;
                        }
                    }
                    keep.push((f.start, g.start..g.value.end));
                }
            }
        }
        if !saw_graph {
            return Err(not_onnx("no graph in the file (is it an ONNX model?)"));
        }
        let mut filtered = Vec::new();
        if !deferred.is_empty() {
            filtered.reserve(bytes.len() - deferred.iter().map(|d| d.data.len()).sum::<usize>() + 64);
            for f in &top {
                if f.number == 7 && f.wire == 2 {
                    let parts: Vec<&Range<usize>> =
                        keep.iter().filter(|(s, _)| *s == f.start).map(|(_, r)| r).collect();
                    put_varint(&mut filtered, (7 << 3) | 2);
                    put_varint(&mut filtered, parts.iter().map(|r| r.len()).sum::<usize>() as u64);
                    for r in parts {
                        filtered.extend_from_slice(&bytes[r.clone()]);
                    }
                } else {
                    filtered.extend_from_slice(&bytes[f.start..f.value.end]);
                }
            }
        }
        // Without deferred tensors the filtered copy equals the file: decode the file itself
        // and hold one copy less.
        let source = if deferred.is_empty() {
            drop(filtered);
            &bytes[..]
        } else {
            &filtered[..]
        };
        let proto = pb::ModelProto::decode(source)
            .map_err(|e| not_onnx(format!("the file is not a valid ONNX protobuf: {e}")))?;
        let graph = proto.graph.as_ref().ok_or_else(|| not_onnx("no graph in the file"))?;
        if graph.node.is_empty() {
            return Err(not_onnx("the ONNX graph has no nodes"));
        }
        Ok(ModelFile { bytes, proto, deferred })
    }

    /// Releases the file bytes after putting every deferred initializer not named in
    /// `drop` back into the decoded graph.
    pub fn release(&mut self, drop: &[&str]) {
        let deferred = std::mem::take(&mut self.deferred);
        if let Some(graph) = self.proto.graph.as_mut() {
            for d in deferred {
                if drop.contains(&d.name.as_str()) {
                    continue;
                }
                graph.initializer.push(pb::TensorProto {
                    dims: d.dims,
                    data_type: dtype::FLOAT,
                    name: d.name,
                    raw_data: self.bytes[d.data].to_vec(),
                    ..Default::default()
                });
            }
        }
        self.bytes = Vec::new();
    }
}

/// A float tensor's values, from `raw_data` or `float_data`.
pub(crate) fn tensor_f32(t: &pb::TensorProto) -> Result<Vec<f32>, EngineError> {
    if t.data_type != dtype::FLOAT {
        return Err(EngineError::new(
            EngineErrorKind::Unsupported,
            format!("tensor `{}` has ONNX data type {}, expected float32", t.name, t.data_type),
        ));
    }
    if t.data_location == Some(1) || !t.external_data.is_empty() {
        return Err(EngineError::new(
            EngineErrorKind::Unsupported,
            format!("tensor `{}` is stored in an external file, which is not supported", t.name),
        ));
    }
    let len: i64 = t.dims.iter().product();
    let v: Vec<f32> = if !t.raw_data.is_empty() {
        t.raw_data.chunks_exact(4).map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]])).collect()
    } else {
        t.float_data.clone()
    };
    if v.len() as i64 != len {
        return Err(not_onnx(format!("tensor `{}` holds {} values for dims {:?}", t.name, v.len(), t.dims)));
    }
    Ok(v)
}

/// A float tensor proto from values.
pub(crate) fn f32_tensor(name: &str, dims: &[usize], values: &[f32]) -> pb::TensorProto {
    let mut raw = Vec::with_capacity(values.len() * 4);
    for v in values {
        raw.extend_from_slice(&v.to_le_bytes());
    }
    pb::TensorProto {
        dims: dims.iter().map(|&d| d as i64).collect(),
        data_type: dtype::FLOAT,
        name: name.to_string(),
        raw_data: raw,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_round_trip() {
        for v in [0u64, 1, 127, 128, 300, 1 << 35, u64::MAX] {
            let mut b = Vec::new();
            put_varint(&mut b, v);
            let mut p = 0;
            assert_eq!(varint(&b, &mut p, b.len()).unwrap(), v);
            assert_eq!(p, b.len());
        }
    }

    #[test]
    fn garbage_and_truncation_are_not_onnx() {
        assert_eq!(ModelFile::parse(vec![]).unwrap_err().kind(), EngineErrorKind::NotOnnx);
        assert_eq!(ModelFile::parse(b"\x93NUMPY garbage".to_vec()).unwrap_err().kind(), EngineErrorKind::NotOnnx);
        // Field 7, length 100, only 3 bytes.
        assert_eq!(ModelFile::parse(vec![0x3a, 100, 1, 2, 3]).unwrap_err().kind(), EngineErrorKind::NotOnnx);
    }
}

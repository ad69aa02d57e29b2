//! `.npy` arrays of f32 (float32 or float64 on disk), with errors that name the file.

use std::fmt;
use std::path::{Path, PathBuf};

/// A dense float32 array in C order.
#[derive(Debug, Clone, PartialEq)]
pub struct Array {
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// `shape.iter().product()` values, row-major.
    pub data: Vec<f32>,
}

/// What went wrong reading or writing an array.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum NpyErrorKind {
    /// The file could not be opened, read or written.
    Io,
    /// Not a valid `.npy` file.
    Format,
    /// The element type is not float32 or float64, or the order is Fortran.
    Dtype,
    /// The shape is not the one required.
    Shape,
    /// A value is NaN or infinite.
    NonFinite,
    /// The file, or the array its header declares, is larger than the limit.
    TooLarge,
}

/// An error about one `.npy` file.
#[derive(Debug)]
pub struct NpyError {
    kind: NpyErrorKind,
    path: PathBuf,
    message: String,
}

impl NpyError {
    fn new(kind: NpyErrorKind, path: &Path, message: impl Into<String>) -> Self {
        NpyError { kind, path: path.to_path_buf(), message: message.into() }
    }
    /// The kind of error.
    pub fn kind(&self) -> NpyErrorKind {
        self.kind
    }
    /// The file concerned.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl fmt::Display for NpyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path.display(), self.message)
    }
}

impl std::error::Error for NpyError {}

pub use crate::io::{mib, read_regular_file, write_atomically, MAX_DATA_FILE_BYTES, MAX_MODEL_FILE_BYTES, MIB};

/// What a `.npy` header declares, read without trusting it: the shape (each dimension
/// parsed as u64, their product checked) and where the data starts.
struct Header {
    shape: Vec<usize>,
    descr: String,
    /// `shape`'s product: it fits `usize`.
    count: usize,
    data_offset: usize,
}

/// Parses the magic, version, header length and the header's `'shape'` tuple; npyz parses
/// the rest. npyz multiplies the dimensions unchecked (a header declaring `(2**62, 400)`
/// wraps to 0 elements, `(2**62 + 100, 400)` to 100 rows' worth), so the product is checked
/// here first.
/// The deepest bracket nesting a `.npy` header may have (see [`parse_header`]).
const MAX_HEADER_NESTING: usize = 3;

fn parse_header(bytes: &[u8]) -> Result<Header, String> {
    if bytes.len() < 10 || &bytes[..6] != b"\x93NUMPY" {
        return Err("no .npy magic number".into());
    }
    let (len, start): (usize, usize) = match bytes[6] {
        1 => (u16::from_le_bytes([bytes[8], bytes[9]]) as usize, 10),
        2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
        v => return Err(format!("unsupported .npy version {v}")),
    };
    let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or("truncated header")?;
    let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| "header is not text")?;
    // A plain array's header nests two levels (`{… 'shape': (L, C)}`; a structured dtype's
    // list three). npyz's header parser backtracks exponentially on deeper nesting (found by
    // fuzzing: 18 nested brackets took minutes), so deeper headers are refused before it.
    let mut depth = 0usize;
    for c in text.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                if depth > MAX_HEADER_NESTING {
                    return Err(format!("the header nests brackets deeper than {MAX_HEADER_NESTING} levels"));
                }
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    // The header is parsed strictly (every key once, no other key, values of their type),
    // so that a decoy `'descr'` or `'shape'` inside another value's string cannot be what is
    // read; npyz must then read the same shape.
    let dict = parse_header_dict(text)?;
    let mut shape = Vec::new();
    for &v in &dict.shape {
        shape.push(usize::try_from(v).map_err(|_| format!("shape dimension {v} is too large"))?);
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("the header declares shape {shape:?}, more elements than this machine can address"))?;
    Ok(Header { shape, descr: dict.descr, count, data_offset: end })
}

/// A `.npy` header's dictionary: `{'descr': '<f4', 'fortran_order': False, 'shape': (L, C), }`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeaderDict {
    /// The element type, e.g. `<f4`.
    pub descr: String,
    /// Whether the data is in Fortran order.
    pub fortran_order: bool,
    /// The dimensions, outermost first.
    pub shape: Vec<u64>,
}

/// Parses a `.npy` header's dictionary strictly, as the format defines it (a Python literal
/// of exactly the keys `descr` (a string), `fortran_order` (`True`/`False`) and `shape` (a
/// tuple of integers), each once, in any order; trailing commas and spaces allowed). A
/// structured dtype (`descr` a list) is refused: only plain arrays are read here. The
/// error says what is wrong.
pub fn parse_header_dict(text: &str) -> Result<HeaderDict, String> {
    struct P<'a> {
        s: &'a [u8],
        i: usize,
    }
    impl P<'_> {
        fn ws(&mut self) {
            while self.i < self.s.len() && matches!(self.s[self.i], b' ' | b'\t' | b'\n' | b'\r') {
                self.i += 1;
            }
        }
        fn eat(&mut self, c: u8) -> bool {
            self.ws();
            if self.s.get(self.i) == Some(&c) {
                self.i += 1;
                true
            } else {
                false
            }
        }
        fn string(&mut self) -> Result<String, String> {
            self.ws();
            let q = match self.s.get(self.i) {
                Some(&q @ (b'\'' | b'"')) => q,
                _ => return Err(format!("expected a quoted string at byte {}", self.i)),
            };
            let start = self.i + 1;
            let len = self.s[start..].iter().position(|&c| c == q).ok_or("an unterminated string")?;
            let body = &self.s[start..start + len];
            if body.contains(&b'\\') {
                return Err("a string with an escape".into());
            }
            self.i = start + len + 1;
            Ok(String::from_utf8_lossy(body).into_owned())
        }
        fn word(&mut self) -> &[u8] {
            self.ws();
            let start = self.i;
            while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
                self.i += 1;
            }
            &self.s[start..self.i]
        }
    }
    let mut p = P { s: text.as_bytes(), i: 0 };
    if !p.eat(b'{') {
        return Err("the header is not a dictionary".into());
    }
    let (mut descr, mut fortran, mut shape) = (None, None, None);
    loop {
        if p.eat(b'}') {
            break;
        }
        let key = p.string()?;
        if !p.eat(b':') {
            return Err(format!("no `:` after the key '{key}'"));
        }
        match key.as_str() {
            "descr" if descr.is_none() => {
                p.ws();
                if p.s.get(p.i) == Some(&b'[') {
                    return Err("a structured dtype (descr is a list) is not an array of floats".into());
                }
                descr = Some(p.string()?);
            }
            "fortran_order" if fortran.is_none() => {
                fortran = Some(match p.word() {
                    b"True" => true,
                    b"False" => false,
                    w => return Err(format!("fortran_order `{}` is not True or False", String::from_utf8_lossy(w))),
                });
            }
            "shape" if shape.is_none() => {
                if !p.eat(b'(') {
                    return Err("the shape is not a tuple".into());
                }
                let mut dims = Vec::new();
                loop {
                    if p.eat(b')') {
                        break;
                    }
                    let w = p.word().to_vec();
                    let w = String::from_utf8_lossy(&w).into_owned();
                    let v: u64 = w
                        .strip_suffix('L')
                        .unwrap_or(&w)
                        .parse()
                        .map_err(|_| format!("shape dimension `{w}` is not a size"))?;
                    dims.push(v);
                    if !p.eat(b',') {
                        if p.eat(b')') {
                            break;
                        }
                        return Err("the shape tuple is malformed".into());
                    }
                }
                shape = Some(dims);
            }
            "descr" | "fortran_order" | "shape" => return Err(format!("the key '{key}' is given twice")),
            _ => return Err(format!("unknown key '{key}' in the header")),
        }
        if !p.eat(b',') {
            if p.eat(b'}') {
                break;
            }
            return Err(format!("expected `,` or `}}` after the value of '{key}'"));
        }
    }
    p.ws();
    if p.i != p.s.len() {
        return Err("text after the header's dictionary".into());
    }
    match (descr, fortran, shape) {
        (Some(descr), Some(fortran_order), Some(shape)) => Ok(HeaderDict { descr, fortran_order, shape }),
        (None, _, _) => Err("the header has no 'descr'".into()),
        (_, None, _) => Err("the header has no 'fortran_order'".into()),
        (_, _, None) => Err("header has no 'shape'".into()),
    }
}

/// Reads a float32 or float64 `.npy` file (C order) as f32, rejecting NaN and infinities.
/// float64 values are rounded to the nearest f32. The file must be a regular file of at most
/// [`MAX_DATA_FILE_BYTES`] (see [`read_regular_file`]) and hold exactly the data its header
/// declares.
pub fn read_f32(path: &Path) -> Result<Array, NpyError> {
    read_f32_limited(path, MAX_DATA_FILE_BYTES)
}

/// [`read_f32`] with another size limit.
pub fn read_f32_limited(path: &Path, max_bytes: u64) -> Result<Array, NpyError> {
    let bytes = read_regular_file(path, max_bytes).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::FileTooLarge { NpyErrorKind::TooLarge } else { NpyErrorKind::Io };
        NpyError::new(kind, path, format!("cannot open: {e}"))
    })?;
    let format = |m: String| NpyError::new(NpyErrorKind::Format, path, format!("not a valid .npy file: {m}"));
    let header = parse_header(&bytes).map_err(format)?;
    let npy = npyz::NpyFile::new(&bytes[..]).map_err(|e| format(e.to_string()))?;
    if npy.order() != npyz::Order::C && npy.shape().len() > 1 {
        return Err(NpyError::new(
            NpyErrorKind::Dtype,
            path,
            "Fortran-ordered arrays are not supported; save with C order",
        ));
    }
    let shape = header.shape;
    if npy.shape().len() != shape.len() || npy.shape().iter().zip(&shape).any(|(&a, &b)| a as usize != b) {
        return Err(format("the header's shape could not be read unambiguously".into()));
    }
    let descr = npy.dtype().descr();
    if descr.trim_matches('\'') != header.descr {
        return Err(format("the header's dtype could not be read unambiguously".into()));
    }
    let item = match descr.trim_matches('\'') {
        "<f4" | ">f4" => 4,
        "<f8" | ">f8" => 8,
        other => {
            return Err(NpyError::new(NpyErrorKind::Dtype, path, format!("dtype {other} is not float32 or float64")));
        }
    };
    // The data must be exactly what the header declares: no more (a header that
    // understates), no less (truncated, or a header that overstates).
    let present = (bytes.len() - header.data_offset) as u128;
    let declared = header.count as u128 * item;
    if present != declared {
        return Err(format(format!(
            "the header declares shape {shape:?} ({declared} bytes of data) but the file holds {present} bytes"
        )));
    }
    let truncated =
        |e: std::io::Error| NpyError::new(NpyErrorKind::Format, path, format!("truncated or unreadable data: {e}"));
    let data: Vec<f32> = if item == 4 {
        npy.into_vec::<f32>().map_err(truncated)?
    } else {
        npy.into_vec::<f64>().map_err(truncated)?.into_iter().map(|x| x as f32).collect()
    };
    drop(bytes);
    if data.len() != header.count {
        return Err(NpyError::new(NpyErrorKind::Format, path, "data length does not match the header's shape"));
    }
    if let Some(i) = data.iter().position(|x| !x.is_finite()) {
        return Err(NpyError::new(
            NpyErrorKind::NonFinite,
            path,
            format!("value at flat index {i} is {} (NaN or infinite values are not accepted)", data[i]),
        ));
    }
    Ok(Array { shape, data })
}

/// Checks `array`'s shape against `expected` (`None` matches any size), naming the file.
pub fn expect_shape(array: &Array, path: &Path, expected: &[Option<usize>], what: &str) -> Result<(), NpyError> {
    let ok =
        array.shape.len() == expected.len() && array.shape.iter().zip(expected).all(|(&a, e)| e.is_none_or(|e| e == a));
    if ok {
        return Ok(());
    }
    let want: Vec<String> = expected.iter().map(|e| e.map_or("_".to_string(), |v| v.to_string())).collect();
    Err(NpyError::new(
        NpyErrorKind::Shape,
        path,
        format!("{what} must have shape [{}], found {:?}", want.join(", "), array.shape),
    ))
}

/// Writes a float32 `.npy` file of the given shape from an iterator of values (atomically,
/// see [`write_atomically`]).
pub fn write_f32_iter(path: &Path, shape: &[usize], values: impl IntoIterator<Item = f32>) -> Result<(), NpyError> {
    let io = |e: std::io::Error| NpyError::new(NpyErrorKind::Io, path, format!("cannot write: {e}"));
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    write_atomically(path, |w| {
        let mut writer = npyz::WriteOptions::new().default_dtype().shape(&dims).writer(w).begin_nd()?;
        writer.extend(values)?;
        writer.finish()
    })
    .map_err(io)
}

/// Stages a float32 `.npy` file ([`crate::io::stage`]): written whole beside `path`, put in
/// place by [`crate::io::Staged::commit`], so that it can be committed together with
/// another output (or not at all).
pub fn stage_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<crate::io::Staged, NpyError> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(NpyError::new(
            NpyErrorKind::Shape,
            path,
            format!("{} values do not make shape {shape:?}", data.len()),
        ));
    }
    let io = |e: std::io::Error| NpyError::new(NpyErrorKind::Io, path, format!("cannot write: {e}"));
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    crate::io::stage(path, |w| {
        let mut writer = npyz::WriteOptions::new().default_dtype().shape(&dims).writer(w).begin_nd()?;
        writer.extend(data.iter().copied())?;
        writer.finish()
    })
    .map_err(io)
}

/// Writes a float32 `.npy` file.
pub fn write_f32(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), NpyError> {
    if shape.iter().product::<usize>() != data.len() {
        return Err(NpyError::new(
            NpyErrorKind::Shape,
            path,
            format!("{} values do not make shape {shape:?}", data.len()),
        ));
    }
    write_f32_iter(path, shape, data.iter().copied())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_dicts_are_parsed_strictly() {
        let d = parse_header_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (3, 400), }   \n").unwrap();
        assert_eq!(d, HeaderDict { descr: "<f4".into(), fortran_order: false, shape: vec![3, 400] });
        // Any key order, double quotes, a 1-tuple, Python 2's `L`, no trailing comma.
        let d = parse_header_dict(r#"{"shape": (7L,), "fortran_order": True, "descr": ">f8"}"#).unwrap();
        assert_eq!(d, HeaderDict { descr: ">f8".into(), fortran_order: true, shape: vec![7] });
        assert_eq!(
            parse_header_dict("{'descr': '<f4', 'fortran_order': False, 'shape': ()}").unwrap().shape,
            Vec::<u64>::new()
        );
        for (bad, says) in [
            ("{'descr': '<f4', 'fortran_order': False, 'x': \"'shape': (1,)\", 'shape': (2,)}", "unknown key 'x'"),
            ("{'descr': '<f4', 'descr': '<f8', 'fortran_order': False, 'shape': (2,)}", "given twice"),
            ("{'descr': [('a', '<f4')], 'fortran_order': False, 'shape': (2,)}", "structured"),
            ("{'descr': '<f4', 'fortran_order': 0, 'shape': (2,)}", "not True or False"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2, -1)}", "not a size"),
            ("{'descr': '<f4', 'fortran_order': False}", "no 'shape'"),
            ("{'descr': '<f4', 'fortran_order': False, 'shape': (2,)} x", "text after"),
        ] {
            let e = parse_header_dict(bad).unwrap_err();
            assert!(e.contains(says), "{bad}: {e}");
        }
    }

    #[test]
    fn round_trip_and_errors() {
        let dir = tempfile::Builder::new().prefix("bmn-edge-npy-").tempdir().unwrap();
        let p = dir.path().join("a.npy");
        write_f32(&p, &[2, 3], &[1., 2., 3., 4., 5., 6.]).unwrap();
        let a = read_f32(&p).unwrap();
        assert_eq!(a.shape, vec![2, 3]);
        assert_eq!(a.data, vec![1., 2., 3., 4., 5., 6.]);
        assert!(expect_shape(&a, &p, &[Some(2), None], "x").is_ok());
        assert_eq!(expect_shape(&a, &p, &[Some(3), None], "x").unwrap_err().kind(), NpyErrorKind::Shape);
        write_f32(&p, &[2], &[1., f32::NAN]).unwrap();
        assert_eq!(read_f32(&p).unwrap_err().kind(), NpyErrorKind::NonFinite);
        std::fs::write(&p, b"not numpy").unwrap();
        assert_eq!(read_f32(&p).unwrap_err().kind(), NpyErrorKind::Format);
        assert_eq!(read_f32(&dir.path().join("missing.npy")).unwrap_err().kind(), NpyErrorKind::Io);
    }
}

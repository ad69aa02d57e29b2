//! Snippets from a byte stream, one row at a time: raw little-endian float32 rows, or a
//! `.npy` array `[L, C]` (float32 or float64, C order) read as it arrives. Nothing is held
//! but the row being read, so a pipe that never ends is fine.
//!
//! ```text
//! raw:  row 0 (C × f32 LE) | row 1 | …            (e.g. numpy's arr.astype('<f4').tofile)
//! npy:  \x93NUMPY header {'descr': '<f4', 'fortran_order': False, 'shape': (L, C)} | rows
//! ```
//!
//! A stream that ends inside a row is [`SnippetErrorKind::CutMidRow`], which says how many
//! whole snippets came before it; a `.npy` stream that ends before its declared `L` rows is
//! [`SnippetErrorKind::Truncated`]. Values are not checked here (the window buffer refuses
//! NaN and infinities, naming the snippet).

use std::fmt;
use std::io::{Chain, Cursor, Read};

/// The format of a snippet stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SnippetFormat {
    /// Rows of `C` little-endian float32 values, nothing else.
    Raw,
    /// A `.npy` array `[L, C]`, float32 or float64, C order.
    Npy,
}

/// What went wrong reading a snippet stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum SnippetErrorKind {
    /// Reading failed.
    Io,
    /// The stream ended inside a row.
    CutMidRow,
    /// A `.npy` stream ended before the rows its header declares.
    Truncated,
    /// A `.npy` header that is not `[L, C]` float32/float64 in C order, or not `.npy`.
    Format,
    /// The row width is not the one required.
    Width,
}

/// A snippet-stream error; [`snippets`](Self::snippets) whole snippets were read before it.
#[derive(Debug)]
pub struct SnippetError {
    kind: SnippetErrorKind,
    snippets: u64,
    message: String,
}

impl SnippetError {
    fn new(kind: SnippetErrorKind, snippets: u64, message: impl Into<String>) -> Self {
        SnippetError { kind, snippets, message: message.into() }
    }
    /// The kind of error.
    pub fn kind(&self) -> SnippetErrorKind {
        self.kind
    }
    /// Whole snippets read before the error.
    pub fn snippets(&self) -> u64 {
        self.snippets
    }
}

impl fmt::Display for SnippetError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (after {} whole snippets)", self.message, self.snippets)
    }
}

impl std::error::Error for SnippetError {}

/// Element type of a `.npy` stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Element {
    F32,
    F64,
}

/// Reads snippets one row at a time from `R`.
#[derive(Debug)]
pub struct SnippetReader<R> {
    /// The bytes read to recognise the format, then the rest of the stream.
    reader: Chain<Cursor<Vec<u8>>, R>,
    format: SnippetFormat,
    element: Element,
    channels: usize,
    /// Rows a `.npy` header declares.
    declared: Option<u64>,
    rows: u64,
    bytes: Vec<u8>,
}

/// The `.npy` magic string.
const NPY_MAGIC: &[u8] = b"\x93NUMPY";

impl<R: Read> SnippetReader<R> {
    /// A reader of rows of `channels` values in `format` — or, for `None`, the format
    /// recognised from the first bytes (`.npy` when they are its magic string, raw
    /// otherwise; this blocks until six bytes or the end arrive). For `.npy` the header is
    /// read now; its `C` must equal `channels` when given (`None`: the header's).
    pub fn new(reader: R, format: Option<SnippetFormat>, channels: Option<usize>) -> Result<Self, SnippetError> {
        let mut reader = Cursor::new(Vec::new()).chain(reader);
        let format = match format {
            Some(f) => f,
            None => {
                let mut magic = Vec::with_capacity(NPY_MAGIC.len());
                (&mut reader)
                    .take(NPY_MAGIC.len() as u64)
                    .read_to_end(&mut magic)
                    .map_err(|e| SnippetError::new(SnippetErrorKind::Io, 0, format!("reading the stream: {e}")))?;
                let f = if magic == NPY_MAGIC { SnippetFormat::Npy } else { SnippetFormat::Raw };
                reader = Cursor::new(magic).chain(reader.into_inner().1);
                f
            }
        };
        let (element, channels, declared) = match format {
            SnippetFormat::Raw => {
                let Some(c) = channels.filter(|&c| c > 0) else {
                    return Err(SnippetError::new(SnippetErrorKind::Width, 0, "raw float32 rows need a width C ≥ 1"));
                };
                (Element::F32, c, None)
            }
            SnippetFormat::Npy => {
                let (element, rows, c) = read_npy_header(&mut reader)?;
                if let Some(want) = channels {
                    if want != c {
                        return Err(SnippetError::new(
                            SnippetErrorKind::Width,
                            0,
                            format!("the .npy stream has rows of C = {c} values, {want} expected"),
                        ));
                    }
                }
                (element, c, Some(rows))
            }
        };
        let width = match element {
            Element::F32 => 4,
            Element::F64 => 8,
        };
        // A row is one snippet's features (hundreds to a few thousand values): a header that
        // declares more than MAX_CHANNELS is refused before its row buffer is allocated
        // (found by fuzzing: C = 7.8e17 from a .npy header aborted on allocation).
        if channels > MAX_CHANNELS {
            return Err(SnippetError::new(
                SnippetErrorKind::Width,
                0,
                format!("row width C = {channels} is more than {MAX_CHANNELS} values per snippet"),
            ));
        }
        let bytes = vec![0u8; channels * width];
        Ok(SnippetReader { reader, format, element, channels, declared, rows: 0, bytes })
    }

    /// The row width `C`.
    pub fn channels(&self) -> usize {
        self.channels
    }

    /// The format.
    pub fn format(&self) -> SnippetFormat {
        self.format
    }

    /// Whole snippets read so far.
    pub fn snippets(&self) -> u64 {
        self.rows
    }

    /// Rows a `.npy` header declared.
    pub fn declared(&self) -> Option<u64> {
        self.declared
    }

    /// Reads the next row into `row` (`C` values): `Ok(true)`, or `Ok(false)` at the end of
    /// the stream. An error leaves [`snippets`](Self::snippets) at the whole rows read.
    pub fn next_row(&mut self, row: &mut [f32]) -> Result<bool, SnippetError> {
        if row.len() != self.channels {
            return Err(SnippetError::new(
                SnippetErrorKind::Width,
                self.rows,
                format!("row buffer of {} values for rows of {}", row.len(), self.channels),
            ));
        }
        if self.declared == Some(self.rows) {
            // A .npy stream ends after its declared rows; anything after is ignored as
            // numpy ignores it.
            return Ok(false);
        }
        let mut filled = 0;
        while filled < self.bytes.len() {
            match self.reader.read(&mut self.bytes[filled..]) {
                Ok(0) => break,
                Ok(n) => filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    return Err(SnippetError::new(SnippetErrorKind::Io, self.rows, format!("reading the stream: {e}")))
                }
            }
        }
        if filled == 0 {
            if let Some(declared) = self.declared {
                return Err(SnippetError::new(
                    SnippetErrorKind::Truncated,
                    self.rows,
                    format!("the .npy stream ended before the {declared} rows its header declares"),
                ));
            }
            return Ok(false);
        }
        if filled < self.bytes.len() {
            return Err(SnippetError::new(
                SnippetErrorKind::CutMidRow,
                self.rows,
                format!("the stream ended inside a row: {filled} of its {} bytes", self.bytes.len()),
            ));
        }
        match self.element {
            Element::F32 => {
                for (v, b) in row.iter_mut().zip(self.bytes.chunks_exact(4)) {
                    *v = f32::from_le_bytes([b[0], b[1], b[2], b[3]]);
                }
            }
            Element::F64 => {
                for (v, b) in row.iter_mut().zip(self.bytes.chunks_exact(8)) {
                    *v = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f32;
                }
            }
        }
        self.rows += 1;
        Ok(true)
    }
}

/// The widest row a [`SnippetReader`] takes: 2^20 values per snippet (4 MiB as float32; a
/// ResNet-50's features are 2048).
pub const MAX_CHANNELS: usize = 1 << 20;

/// Reads a `.npy` header from the stream: element type, rows `L` and width `C`.
fn read_npy_header(reader: &mut impl Read) -> Result<(Element, u64, usize), SnippetError> {
    let format = |m: String| SnippetError::new(SnippetErrorKind::Format, 0, m);
    let io = |e: std::io::Error| SnippetError::new(SnippetErrorKind::Io, 0, format!("reading the .npy header: {e}"));
    let mut pre = [0u8; 8];
    reader.read_exact(&mut pre).map_err(io)?;
    if &pre[..6] != NPY_MAGIC {
        return Err(format("not a .npy stream (no \\x93NUMPY magic)".into()));
    }
    let len = match pre[6] {
        1 => {
            let mut l = [0u8; 2];
            reader.read_exact(&mut l).map_err(io)?;
            u16::from_le_bytes(l) as usize
        }
        2 | 3 => {
            let mut l = [0u8; 4];
            reader.read_exact(&mut l).map_err(io)?;
            u32::from_le_bytes(l) as usize
        }
        v => return Err(format(format!(".npy format version {v} is not supported"))),
    };
    // numpy writes headers of a few hundred bytes; refuse anything absurd before allocating.
    if len > 1 << 16 {
        return Err(format(format!(".npy header of {len} bytes")));
    }
    let mut header = vec![0u8; len];
    reader.read_exact(&mut header).map_err(io)?;
    let header = String::from_utf8_lossy(&header);
    // Strictly, as the format defines it: a decoy `'descr'` inside another key's string is
    // not what is read (numpy refuses such a header too).
    let dict = crate::npy::parse_header_dict(header.trim_end())
        .map_err(|m| format(format!("the .npy header {header:?} is not valid: {m}")))?;
    let element = match dict.descr.as_str() {
        "<f4" => Element::F32,
        "<f8" => Element::F64,
        d => return Err(format(format!("element type {d}: float32 or float64 (little-endian) expected"))),
    };
    if dict.fortran_order {
        return Err(format("a Fortran-order .npy cannot be read row by row".into()));
    }
    let shape = format!("{:?}", dict.shape);
    match dict.shape.as_slice() {
        &[l, c] => {
            let c = usize::try_from(c)
                .ok()
                .filter(|&c| c > 0)
                .ok_or_else(|| format(format!("shape {shape}: C must be at least 1")))?;
            Ok((element, l, c))
        }
        _ => Err(format(format!("shape {shape}: a [snippets, C] array expected"))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Cursor;

    fn raw(rows: &[[f32; 3]]) -> Vec<u8> {
        rows.iter().flatten().flat_map(|v| v.to_le_bytes()).collect()
    }

    fn npy<T: npyz::Serialize + npyz::AutoSerialize + Copy>(rows: &[[T; 3]], declared: u64) -> Vec<u8> {
        use npyz::WriterBuilder;
        let mut out = Vec::new();
        let mut w = npyz::WriteOptions::<T>::new()
            .default_dtype()
            .shape(&[declared, 3])
            .writer(Cursor::new(&mut out))
            .begin_nd()
            .unwrap();
        for r in rows {
            w.extend(r.iter().copied()).unwrap();
        }
        w.finish().unwrap();
        out
    }

    fn read_all(bytes: &[u8], channels: Option<usize>) -> (Vec<[f32; 3]>, Result<(), SnippetError>) {
        let mut reader = match SnippetReader::new(bytes, None, channels) {
            Ok(x) => x,
            Err(e) => return (vec![], Err(e)),
        };
        let mut out = vec![];
        let mut row = [0.0f32; 3];
        loop {
            match reader.next_row(&mut row) {
                Ok(true) => out.push(row),
                Ok(false) => return (out, Ok(())),
                Err(e) => {
                    assert_eq!(e.snippets(), out.len() as u64);
                    return (out, Err(e));
                }
            }
        }
    }

    const ROWS: [[f32; 3]; 3] = [[1.0, 2.0, 3.0], [4.5, -5.0, 6.25], [7.0, 8.0, 1e-3]];

    #[test]
    fn raw_and_npy_give_the_same_rows() {
        let (got, end) = read_all(&raw(&ROWS), Some(3));
        assert!(end.is_ok());
        assert_eq!(got, ROWS);
        let (got, end) = read_all(&npy(&ROWS, 3), None);
        assert!(end.is_ok(), "{end:?}");
        assert_eq!(got, ROWS);
        let wide: Vec<[f64; 3]> = ROWS.iter().map(|r| r.map(f64::from)).collect();
        let (got, end) = read_all(&npy(&wide, 3), Some(3));
        assert!(end.is_ok());
        assert_eq!(got, ROWS);
        // An empty stream is zero snippets, not an error.
        assert_eq!(read_all(&[], Some(3)).0.len(), 0);
    }

    #[test]
    fn a_stream_cut_mid_row_says_how_many_snippets_came_before() {
        let mut bytes = raw(&ROWS);
        bytes.truncate(2 * 12 + 5);
        let (got, end) = read_all(&bytes, Some(3));
        assert_eq!(got, ROWS[..2]);
        let e = end.unwrap_err();
        assert_eq!((e.kind(), e.snippets()), (SnippetErrorKind::CutMidRow, 2));
        assert!(e.to_string().contains("5 of its 12 bytes") && e.to_string().contains("after 2 whole snippets"), "{e}");
        // A .npy stream: cut mid-row, and cut at a row boundary before its declared rows.
        let full = npy(&ROWS, 3);
        let (got, end) = read_all(&full[..full.len() - 2], None);
        assert_eq!((got.len(), end.unwrap_err().kind()), (2, SnippetErrorKind::CutMidRow));
        let (got, end) = read_all(&full[..full.len() - 12], None);
        assert_eq!((got.len(), end.unwrap_err().kind()), (2, SnippetErrorKind::Truncated));
    }

    #[test]
    fn bad_headers_and_widths_are_errors() {
        let (_, end) = read_all(&npy(&ROWS, 3), Some(4));
        assert_eq!(end.unwrap_err().kind(), SnippetErrorKind::Width);
        let (_, end) = read_all(&raw(&ROWS), None);
        assert_eq!(end.unwrap_err().kind(), SnippetErrorKind::Width);
        let ints: Vec<u8> = {
            use npyz::WriterBuilder;
            let mut out = Vec::new();
            let mut w = npyz::WriteOptions::<i32>::new()
                .default_dtype()
                .shape(&[1, 3])
                .writer(Cursor::new(&mut out))
                .begin_nd()
                .unwrap();
            w.extend([1, 2, 3]).unwrap();
            w.finish().unwrap();
            out
        };
        let (_, end) = read_all(&ints, None);
        assert_eq!(end.unwrap_err().kind(), SnippetErrorKind::Format);
        // A declared shape of 2^62 rows allocates nothing: rows are read as they come.
        let mut huge = npy(&ROWS, 3);
        let at = huge.windows(10).position(|w| w == b"'shape': (").unwrap() + 10;
        let close = at + huge[at..].iter().position(|&b| b == b')').unwrap();
        let grow = 22 - (close - at);
        huge.splice(at..close, b"4611686018427387904, 3".iter().copied());
        let len = u16::from_le_bytes([huge[8], huge[9]]) + grow as u16;
        huge[8..10].copy_from_slice(&len.to_le_bytes());
        let (got, end) = read_all(&huge, None);
        let e = end.unwrap_err();
        assert_eq!((got.len(), e.kind()), (3, SnippetErrorKind::Truncated), "{e}");
    }

    /// Fuzzing: a `.npy` header declaring C = 777777777777777773 aborted on the row
    /// buffer's allocation; rows wider than MAX_CHANNELS are refused first (raw rows too).
    #[test]
    fn a_row_wider_than_the_bound_is_refused_before_allocating() {
        let header = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 777777777777777773), }";
        let mut npy = b"\x93NUMPY\x01\x00".to_vec();
        npy.extend_from_slice(&(header.len() as u16 + 1).to_le_bytes());
        npy.extend_from_slice(header.as_bytes());
        npy.push(b'\n');
        let e = SnippetReader::new(Cursor::new(npy), None, None).err().unwrap();
        assert_eq!(e.kind(), SnippetErrorKind::Width, "{e}");
        assert!(e.to_string().contains("more than 1048576 values per snippet"), "{e}");
        let e =
            SnippetReader::new(Cursor::new(vec![]), Some(SnippetFormat::Raw), Some(MAX_CHANNELS + 1)).err().unwrap();
        assert_eq!(e.kind(), SnippetErrorKind::Width, "{e}");
        assert!(SnippetReader::new(Cursor::new(vec![]), Some(SnippetFormat::Raw), Some(MAX_CHANNELS)).is_ok());
    }
}

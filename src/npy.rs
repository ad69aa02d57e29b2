//! `.npy` arrays of f32 (float32 or float64 on disk), with errors that name the file.

use std::fmt;
use std::io::BufWriter;
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

/// One mebibyte, the unit of the size limits.
pub const MIB: u64 = 1 << 20;

/// The largest data file (features `.npy` or csv, maps, JSON) read: 256 MiB. A two-hour
/// video's 400-channel float64 features are 46 MB; a board with 1 GB holds the file, the
/// values parsed from it and the engine together only well below this.
pub const MAX_DATA_FILE_BYTES: u64 = 256 * MIB;

/// The largest model file read: 512 MiB (the paper configuration's standard export, with
/// its 128 MB dense mask, is 148 MB; the edge format 20 MB).
pub const MAX_MODEL_FILE_BYTES: u64 = 512 * MIB;

/// `bytes` in MiB, rounded up, for messages.
pub fn mib(bytes: u128) -> u128 {
    bytes.div_ceil(MIB as u128)
}

/// Reads a whole input file, which must be a regular file of at most `max_bytes`: the one
/// reader of the commands' input files (models, features, maps, JSON).
///
/// The file type and size are checked before anything is read, so `/dev/zero` is not read
/// until memory runs out and a FIFO does not block: the file is opened non-blocking (so
/// opening a FIFO without a writer returns at once) and its type checked on the open
/// descriptor (no race with a rename between a check and the open); at most `max_bytes + 1`
/// bytes are read, so a file that grows after the check is refused too. Errors
/// ([`std::io::ErrorKind::InvalidInput`] for a file that is not regular,
/// [`std::io::ErrorKind::FileTooLarge`] for one over the limit) say what it is and how much
/// it would need; the caller names the file.
pub fn read_regular_file(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::{Error, ErrorKind, Read};
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "a device, FIFO or socket" };
        return Err(Error::new(ErrorKind::InvalidInput, format!("not a regular file ({what})")));
    }
    let too_large = |size: u64| {
        Error::new(
            ErrorKind::FileTooLarge,
            format!(
                "{size} bytes ({} MiB) is more than the limit for this input ({} MiB)",
                mib(size as u128),
                mib(max_bytes as u128)
            ),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// What a `.npy` header declares, read without trusting it: the shape (each dimension
/// parsed as u64, their product checked) and where the data starts.
struct Header {
    shape: Vec<usize>,
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
    // One `shape` key: npyz must read the tuple checked here.
    if text.matches("shape").count() != 1 {
        return Err("the header must name `shape` exactly once".into());
    }
    let after_key = text
        .find("'shape'")
        .or_else(|| text.find("\"shape\""))
        .map(|i| &text[i + 7..])
        .ok_or("header has no 'shape'")?;
    let open = after_key.find('(').ok_or("header's shape is not a tuple")?;
    let close = after_key[open..].find(')').ok_or("header's shape is not a tuple")? + open;
    let mut shape = Vec::new();
    for dim in after_key[open + 1..close].split(',').map(str::trim).filter(|d| !d.is_empty()) {
        let v: u64 = dim.trim_end_matches('L').parse().map_err(|_| format!("shape dimension `{dim}` is not a size"))?;
        shape.push(usize::try_from(v).map_err(|_| format!("shape dimension {v} is too large"))?);
    }
    let count = shape
        .iter()
        .try_fold(1usize, |acc, &d| acc.checked_mul(d))
        .ok_or_else(|| format!("the header declares shape {shape:?}, more elements than this machine can address"))?;
    Ok(Header { shape, count, data_offset: end })
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

/// Writes a file through `write`, atomically: into a fresh temporary file created
/// exclusively (never following a symlink, never reusing a name) in `path`'s directory, then
/// renamed over `path`, so a reader never sees half a file and a failure at any step leaves
/// neither half a file nor the temporary one behind (it is removed when dropped). The
/// file's permissions are those of a new file (`0666` less the umask), as `File::create`
/// gives.
///
/// Something at `path` that is neither a regular file nor a directory — `/dev/null`, a FIFO,
/// a terminal — is written directly: renaming over it would replace the device node
/// itself. A directory at `path` is an error (the rename fails; nothing is left).
pub fn write_atomically(
    path: &Path,
    write: impl FnOnce(&mut dyn std::io::Write) -> std::io::Result<()>,
) -> std::io::Result<()> {
    use std::io::Write;
    if let Ok(meta) = std::fs::metadata(path) {
        if !meta.is_file() && !meta.is_dir() {
            let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
            write(&mut f)?;
            return f.flush();
        }
    }
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    let tmp = builder.tempfile_in(dir)?;
    let mut w = BufWriter::new(tmp);
    write(&mut w)?;
    let tmp = w.into_inner().map_err(|e| e.into_error())?;
    tmp.as_file().sync_data()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(())
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

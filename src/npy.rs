//! `.npy` arrays of f32 (float32 or float64 on disk), with errors that name the file.

use std::fmt;
use std::fs::File;
use std::io::{BufReader, BufWriter};
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

/// Reads a float32 or float64 `.npy` file (C order) as f32, rejecting NaN and infinities.
/// float64 values are rounded to the nearest f32.
pub fn read_f32(path: &Path) -> Result<Array, NpyError> {
    let file = File::open(path).map_err(|e| NpyError::new(NpyErrorKind::Io, path, format!("cannot open: {e}")))?;
    let npy = npyz::NpyFile::new(BufReader::new(file))
        .map_err(|e| NpyError::new(NpyErrorKind::Format, path, format!("not a valid .npy file: {e}")))?;
    if npy.order() != npyz::Order::C && npy.shape().len() > 1 {
        return Err(NpyError::new(
            NpyErrorKind::Dtype,
            path,
            "Fortran-ordered arrays are not supported; save with C order",
        ));
    }
    let shape: Vec<usize> = npy.shape().iter().map(|&d| d as usize).collect();
    let descr = npy.dtype().descr();
    let truncated =
        |e: std::io::Error| NpyError::new(NpyErrorKind::Format, path, format!("truncated or unreadable data: {e}"));
    let data: Vec<f32> = match descr.trim_matches('\'') {
        "<f4" | ">f4" => npy.into_vec::<f32>().map_err(truncated)?,
        "<f8" | ">f8" => npy.into_vec::<f64>().map_err(truncated)?.into_iter().map(|x| x as f32).collect(),
        other => {
            return Err(NpyError::new(NpyErrorKind::Dtype, path, format!("dtype {other} is not float32 or float64")));
        }
    };
    if data.len() != shape.iter().product::<usize>() {
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

/// Writes a float32 `.npy` file of the given shape from an iterator of values.
pub fn write_f32_iter(path: &Path, shape: &[usize], values: impl IntoIterator<Item = f32>) -> Result<(), NpyError> {
    let io = |e: std::io::Error| NpyError::new(NpyErrorKind::Io, path, format!("cannot write: {e}"));
    let file = File::create(path).map_err(io)?;
    let dims: Vec<u64> = shape.iter().map(|&d| d as u64).collect();
    use npyz::WriterBuilder;
    let mut writer =
        npyz::WriteOptions::new().default_dtype().shape(&dims).writer(BufWriter::new(file)).begin_nd().map_err(io)?;
    writer.extend(values).map_err(io)?;
    writer.finish().map_err(io)
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

//! Feature files: a video's per-snippet features as the engine takes them, `[L, C]` row-major
//! f32 (one row of C channels per snippet), read from a `.npy` array or a BSN csv file.
//!
//! Two formats are in use for BMN features: `.npy` arrays `[L, C]` (mmaction2's extracted
//! features, float32 or float64) and BSN's `csv_mean_100` files (a header row naming the C
//! channels, then one row of C comma-separated values per snippet). [`read_features`] picks
//! the reader by the file's extension. Both reject NaN and infinite values and empty inputs,
//! with errors that name the file and, for a csv, the row and column.

use crate::npy::{expect_shape, read_f32, NpyError, NpyErrorKind, MAX_DATA_FILE_BYTES};
use std::fmt;
use std::path::{Path, PathBuf};

/// A video's features: `snippets` rows of `channels` values, row-major.
#[derive(Debug, Clone, PartialEq)]
pub struct Features {
    /// `snippets · channels` values; row `l` is `data[l · channels .. (l + 1) · channels]`.
    pub data: Vec<f32>,
    /// L: snippets (rows), at least 1.
    pub snippets: usize,
    /// C: channels per snippet, at least 1.
    pub channels: usize,
}

/// What went wrong reading a feature file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FeatureErrorKind {
    /// The csv file could not be read.
    Io,
    /// The `.npy` file could not be read as a float array of rank 2 (the kind says why).
    Npy(NpyErrorKind),
    /// A csv row does not have as many values as the header has names.
    RowLength,
    /// A csv value is not a number.
    NotANumber,
    /// A csv value is NaN or infinite.
    NonFinite,
    /// No snippets, or no channels.
    Empty,
    /// The csv's first row is numbers, not a header row naming the channels.
    NoHeader,
}

/// An error about one feature file; its message names the file.
#[derive(Debug)]
pub struct FeatureError {
    kind: FeatureErrorKind,
    path: PathBuf,
    message: String,
}

impl FeatureError {
    fn new(kind: FeatureErrorKind, path: &Path, message: impl fmt::Display) -> Self {
        FeatureError { kind, path: path.to_path_buf(), message: format!("{}: {message}", path.display()) }
    }
    /// The kind of error.
    pub fn kind(&self) -> FeatureErrorKind {
        self.kind
    }
    /// The file concerned.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl From<NpyError> for FeatureError {
    fn from(e: NpyError) -> Self {
        // The npy error's message already names the file.
        FeatureError { kind: FeatureErrorKind::Npy(e.kind()), path: e.path().to_path_buf(), message: e.to_string() }
    }
}

impl fmt::Display for FeatureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for FeatureError {}

/// Reads a feature file: a BSN csv when the extension is `csv` (any case), else a `.npy`
/// array; see [`read_bsn_csv`] and [`read_npy_features`].
pub fn read_features(path: &Path) -> Result<Features, FeatureError> {
    if path.extension().is_some_and(|e| e.eq_ignore_ascii_case("csv")) {
        read_bsn_csv(path)
    } else {
        read_npy_features(path)
    }
}

/// Reads a `.npy` array `[L, C]`, float32 or float64 (rounded to the nearest f32), C order:
/// one row per snippet.
pub fn read_npy_features(path: &Path) -> Result<Features, FeatureError> {
    let a = read_f32(path)?;
    expect_shape(&a, path, &[None, None], "features [L, C] (rows are snippets)")?;
    let (snippets, channels) = (a.shape[0], a.shape[1]);
    if snippets == 0 || channels == 0 {
        return Err(FeatureError::new(FeatureErrorKind::Empty, path, format!("empty feature array {:?}", a.shape)));
    }
    Ok(Features { data: a.data, snippets, channels })
}

/// Reads a BSN `csv_mean_100` file: a header row (its number of comma-separated names is C),
/// then one row of C comma-separated numbers per snippet. Blank lines are skipped; values
/// may have surrounding spaces, are parsed as f64 and rounded to the nearest f32.
///
/// A first row of numbers is refused ([`FeatureErrorKind::NoHeader`]): it is a file
/// without its header, whose first snippet would otherwise be taken as the header and lost.
/// The one numeric header accepted is `0,1,…,C−1`, the column names pandas writes for an
/// unnamed array (`pd.DataFrame(x).to_csv(index=False)`).
///
/// The file must be a regular file of at most [`MAX_DATA_FILE_BYTES`] (checked before
/// reading; see [`crate::io::read_regular_file`]).
pub fn read_bsn_csv(path: &Path) -> Result<Features, FeatureError> {
    let io = |message: String| FeatureError { kind: FeatureErrorKind::Io, path: path.to_path_buf(), message };
    // Through the one reader as text: a UTF-8 byte-order mark is dropped.
    let text = crate::io::read_text(path, MAX_DATA_FILE_BYTES)
        .map_err(|e| io(format!("cannot read {}: {e}", path.display())))?;
    parse_bsn_csv(&text, path)
}

/// [`read_bsn_csv`] on text already read; `path` names the file in errors. Rows are numbered
/// from 1 at the header, blank lines not counted.
fn parse_bsn_csv(text: &str, path: &Path) -> Result<Features, FeatureError> {
    let mut lines = text.lines().filter(|l| !l.trim().is_empty());
    let header = lines.next().ok_or_else(|| FeatureError::new(FeatureErrorKind::Empty, path, "empty csv"))?;
    // The width is counted before anything is split out: a 240 MB header of 62.9 M names
    // would otherwise take 1 GB of string slices before being refused.
    let channels = header.bytes().filter(|&b| b == b',').count() + 1;
    if channels > crate::snippets::MAX_CHANNELS {
        return Err(FeatureError::new(
            FeatureErrorKind::RowLength,
            path,
            format!(
                "the header names {channels} channels, more than the {} a snippet may have",
                crate::snippets::MAX_CHANNELS
            ),
        ));
    }
    let names: Vec<&str> = header.split(',').map(str::trim).collect();
    let numeric = names.iter().all(|n| n.parse::<f64>().is_ok());
    let pandas_indices = names.iter().enumerate().all(|(i, n)| *n == i.to_string());
    if numeric && !pandas_indices {
        let shown: String = header.chars().take(60).collect();
        return Err(FeatureError::new(
            FeatureErrorKind::NoHeader,
            path,
            format!(
                "the first row (`{shown}`{}) is numbers, not a header row naming the {channels} channels: a BSN csv starts with a header (add one, e.g. `0,1,…,{}`)",
                if shown.len() < header.len() { "…" } else { "" },
                channels - 1
            ),
        ));
    }
    let mut data = Vec::new();
    let mut snippets = 0;
    for (i, line) in lines.enumerate() {
        let row_no = i + 2;
        let values = line.bytes().filter(|&b| b == b',').count() + 1;
        if values != channels {
            return Err(FeatureError::new(
                FeatureErrorKind::RowLength,
                path,
                format!("row {row_no} has {values} values, the header has {channels}"),
            ));
        }
        for (j, v) in line.split(',').enumerate() {
            let x: f64 = v.trim().parse().map_err(|e| {
                // At most 40 characters of the value: a 50 MB value is no 50 MB message.
                let shown: String = v.trim().chars().take(40).collect();
                let more = if shown.len() < v.trim().len() { "…" } else { "" };
                FeatureError::new(
                    FeatureErrorKind::NotANumber,
                    path,
                    format!("row {row_no}, column {}: `{shown}{more}` is not a number: {e}", j + 1),
                )
            })?;
            // Finite as f64 is not enough: features are f32, and 4e100 would become inf.
            if !x.is_finite() || !(x as f32).is_finite() {
                return Err(FeatureError::new(
                    FeatureErrorKind::NonFinite,
                    path,
                    format!(
                        "row {row_no}, column {} is {x} (NaN or infinite values, or values beyond float32's range, are not accepted)",
                        j + 1
                    ),
                ));
            }
            data.push(x as f32);
        }
        snippets += 1;
    }
    if snippets == 0 {
        return Err(FeatureError::new(FeatureErrorKind::Empty, path, "no snippet rows after the header"));
    }
    Ok(Features { data, snippets, channels })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A fresh path in the temporary directory, unique to this process and test.
    fn temp(name: &str) -> PathBuf {
        std::env::temp_dir().join(format!("bmn-edge-features-{}-{name}", std::process::id()))
    }

    fn csv_err(text: &str) -> FeatureError {
        parse_bsn_csv(text, Path::new("f.csv")).unwrap_err()
    }

    #[test]
    fn csv_rows_are_snippets_in_order() {
        // Values exactly representable in f32, so parsing and rounding are exact; blank lines,
        // spaces around values and CRLF line ends are accepted.
        let text = "a,b,c\r\n0.5, -1.25,3\r\n\r\n1e-3,2.0,  -0\n7.75,8,9.5\n";
        let f = parse_bsn_csv(text, Path::new("f.csv")).unwrap();
        assert_eq!((f.snippets, f.channels), (3, 3));
        assert_eq!(f.data, vec![0.5, -1.25, 3.0, 0.001, 2.0, -0.0, 7.75, 8.0, 9.5]);
    }

    #[test]
    fn csv_values_round_to_nearest_f32() {
        // 0.1 is not an f32: the f64 parse rounds once more, to the nearest f32.
        let f = parse_bsn_csv("x\n0.1\n16777217\n", Path::new("f.csv")).unwrap();
        assert_eq!(f.data, vec![0.1f64 as f32, 16_777_216.0]);
    }

    #[test]
    fn csv_errors_name_the_row_and_column() {
        let e = csv_err("a,b\n1,2\n3\n");
        assert_eq!(e.kind(), FeatureErrorKind::RowLength);
        assert_eq!(e.to_string(), "f.csv: row 3 has 1 values, the header has 2");
        let e = csv_err("a,b\n1,2\n3,x4\n");
        assert_eq!(e.kind(), FeatureErrorKind::NotANumber);
        assert!(e.to_string().starts_with("f.csv: row 3, column 2: `x4` is not a number"), "{e}");
        for bad in ["nan", "NaN", "inf", "-infinity", "1e400", "4e100", "-3.5e38"] {
            let e = csv_err(&format!("a,b\n1,{bad}\n"));
            assert_eq!(e.kind(), FeatureErrorKind::NonFinite, "{bad}");
            assert!(
                e.to_string().contains("row 2, column 2 is") && e.to_string().contains("beyond float32's range"),
                "{e}"
            );
        }
        assert_eq!(csv_err("").kind(), FeatureErrorKind::Empty);
        assert_eq!(csv_err("\n  \n").kind(), FeatureErrorKind::Empty);
        let e = csv_err("a,b,c\n\n");
        assert_eq!(e.kind(), FeatureErrorKind::Empty);
        assert_eq!(e.to_string(), "f.csv: no snippet rows after the header");
    }

    #[test]
    fn csv_chosen_by_extension_in_any_case() {
        let path = temp("upper.CSV");
        std::fs::write(&path, "a,b\n1,2\n3,4\n").unwrap();
        let f = read_features(&path);
        std::fs::remove_file(&path).ok();
        assert_eq!(f.unwrap(), Features { data: vec![1.0, 2.0, 3.0, 4.0], snippets: 2, channels: 2 });
        let e = read_features(&temp("missing.csv")).unwrap_err();
        assert_eq!(e.kind(), FeatureErrorKind::Io);
    }

    #[test]
    fn npy_float32_round_trip() {
        let path = temp("f32.npy");
        let data: Vec<f32> = (0..12).map(|i| i as f32 * 0.37 - 1.0).collect();
        crate::npy::write_f32(&path, &[4, 3], &data).unwrap();
        let f = read_features(&path);
        std::fs::remove_file(&path).ok();
        assert_eq!(f.unwrap(), Features { data, snippets: 4, channels: 3 });
    }

    #[test]
    fn npy_float64_rounds_to_nearest_f32() {
        use npyz::WriterBuilder;
        let path = temp("f64.npy");
        let values = [0.1f64, 1.0 / 3.0, -2.5, 1e-40, 123456789.0, 0.0];
        let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let mut w = npyz::WriteOptions::<f64>::new().default_dtype().shape(&[2, 3]).writer(file).begin_nd().unwrap();
        w.extend(values).unwrap();
        w.finish().unwrap();
        let f = read_npy_features(&path);
        std::fs::remove_file(&path).ok();
        let expected: Vec<f32> = values.iter().map(|&x| x as f32).collect();
        assert_eq!(f.unwrap(), Features { data: expected, snippets: 2, channels: 3 });
    }

    #[test]
    fn npy_must_be_a_non_empty_matrix() {
        let path = temp("rank1.npy");
        crate::npy::write_f32(&path, &[5], &[1.0; 5]).unwrap();
        let e = read_features(&path).unwrap_err();
        assert_eq!(e.kind(), FeatureErrorKind::Npy(NpyErrorKind::Shape));
        assert!(e.to_string().contains("features [L, C]"), "{e}");
        crate::npy::write_f32(&path, &[0, 4], &[]).unwrap();
        let e = read_features(&path).unwrap_err();
        std::fs::remove_file(&path).ok();
        assert_eq!(e.kind(), FeatureErrorKind::Empty);
        assert!(e.to_string().contains("empty feature array [0, 4]"), "{e}");
        let e = read_features(&temp("missing.npy")).unwrap_err();
        assert_eq!(e.kind(), FeatureErrorKind::Npy(NpyErrorKind::Io));
    }
}

//! Pixels in: video frames → preprocessed snippet tensors, the input of a feature backbone
//! (`engine::backbone`), whose per-snippet features feed BMN.
//!
//! ```text
//! frames      y4m (4:2:0 / 4:4:4, 8-bit; a file or a pipe)        y4m.rs
//!             raw rgb24 (--width --height --fps)                  frames.rs
//!             a folder of numbered JPEG/PNG frames (img_00001.jpg) frames.rs
//!   -> sampling   snippet i = frames [L·i, L·i + L); its K sampled frames   snippets.rs
//!   -> preprocess YUV → RGB (float), resize, centre crop, mean/std, NCHW     preprocess.rs
//!   -> backbone   ONNX [N, 3, H, W] → [N, C] in tract, batches of snippets   engine::backbone
//!   -> features   one row of C floats per snippet (mean over its K frames)
//! ```
//!
//! Memory is bounded: a source reads one frame at a time into a caller's buffer, only the
//! sampled frames are converted, and at most one batch of preprocessed frames exists.
//!
//! ## Sampling (`snippets.rs`)
//!
//! A snippet is `L` consecutive frames (`--snippet-frames`, default 16: ActivityNet's
//! setting). Snippet `i` covers frames `[L·i, L·i + L)` (0-based). Its feature is the
//! backbone's output on its centre frame `L·i + ⌊L/2⌋` (`16·i + 8`, as mmaction2's untrimmed
//! sampler takes it) or, with `--frames-per-snippet K`, the mean of the features of the `K`
//! frames `L·i + ⌊(2j + 1)·L / (2K)⌋`, `j = 0..K` — the centre frame of each of `K` equal
//! parts of the snippet (`K = 1` is the centre frame; `K = L` is every frame). A trailing
//! partial snippet (fewer than `L` frames) is dropped, as upstream does; the frame count, the
//! frame rate and mmaction2's corrected duration `⌊frames / L⌋·L / fps` are reported.
//!
//! ## Preprocessing, exactly (`preprocess.rs`)
//!
//! This is the specification the tests hold the code to (against a numpy implementation in
//! `tests/reference/pixels_reference.py`, to 1e-5):
//!
//! 1. **Chroma** (y4m): replicated, never interpolated — a 4:2:0 chroma sample `(cx, cy)`
//!    covers luma pixels `(2cx..2cx+1, 2cy..2cy+1)` (for an odd width or height the last
//!    chroma column/row covers one luma column/row). 4:4:4 needs nothing. The chroma
//!    siting of the header (`420jpeg`, `420mpeg2`, `420paldv`) is not used.
//! 2. **YUV → RGB**, BT.601 (`Kr = 0.299`, `Kb = 0.114`). Limited range unless the header
//!    says `XCOLORRANGE=FULL`: `y = (Y − 16)/219`, `pb = (U − 128)/224`, `pr = (V − 128)/224`;
//!    full range: `y = Y/255`, `pb = (U − 128)/255`, `pr = (V − 128)/255`. Then
//!    `R = y + 2(1 − Kr)·pr`, `B = y + 2(1 − Kb)·pb`, `G = (y − Kr·R − Kb·B)/(1 − Kr − Kb)`;
//!    each times 255 and clamped to `[0, 255]`, kept as `f32`: **never rounded to 8 bits**.
//!    rgb24 and JPEG/PNG frames are already RGB: their bytes are taken as they are.
//! 3. **Resize** so that the short side is `--resize` `S` (default 256) and the long side is
//!    `⌊long·S/short + 0.5⌋`; bilinear on half-pixel centres: output pixel `d` samples the
//!    input at `src = (d + 0.5)·in/out − 0.5`, clamped to `[0, in − 1]`, between
//!    `x0 = ⌊src⌋` and `min(x0 + 1, in − 1)` with weight `src − x0` on the latter; rows and
//!    columns alike, no antialiasing. This is the geometry of OpenCV's `INTER_LINEAR` (and of
//!    mmcv's `imresize`), in float instead of OpenCV's fixed-point weights.
//! 4. **Centre crop** `--crop` `C` (default 224): the `C × C` window at
//!    `((W − C) div 2, (H − C) div 2)` of the resized `W × H` image. Only the cropped pixels
//!    are computed.
//! 5. **Normalise** per channel: `(v − mean[c]) / std[c]`, RGB order, defaults ImageNet's
//!    `[123.675, 116.28, 103.53]` / `[58.395, 57.12, 57.375]`; laid out NCHW, `f32`.
//!
//! The backbone file may carry `resize`, `crop`, `mean` and `std` in its `metadata_props`
//! (`engine::backbone`); command-line flags override them.
//!
//! **How this differs from decoding to uint8 first.** mmaction2 and PaddleVideo decode a
//! video with OpenCV or decord to 8-bit RGB, which rounds each YUV → RGB value to an integer
//! (and OpenCV's converter uses fixed-point coefficients), then resize with OpenCV's 11-bit
//! fixed-point bilinear weights and round again to uint8. Here the colour conversion and the
//! resize run in float, so a pixel can differ from such a pipeline by at most about one
//! level (of 255) before normalisation — `1/58 ≈ 0.017` after it; the chroma siting and
//! the 8-bit rounding are the whole difference. rgb24 and image frames are identical inputs
//! to both; only the resize's rounding differs.

pub mod frames;
pub mod preprocess;
pub mod snippets;
pub mod y4m;

pub use frames::{FrameFolder, RawRgb24};
pub use preprocess::{ColorRange, Preprocess, Resized};
pub use snippets::{SampledFrames, Sampling, SnippetFrames, VideoSummary};
pub use y4m::{Chroma, Y4mReader};

use std::fmt;
use std::io::Read;

/// What went wrong reading or preparing frames, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PixelErrorKind {
    /// Reading failed (the underlying I/O error is the message).
    Io,
    /// The stream is not what it claims (a bad header, a bad frame marker).
    Format,
    /// The stream ended inside a frame or a header.
    Truncated,
    /// A valid but unsupported input (4:2:2 chroma, 10-bit samples, ...).
    Unsupported,
    /// A frame folder whose numbering has a gap, or no frames where frames are needed.
    Frames,
    /// A parameter is out of range (a crop larger than the resized frame, K > L, ...).
    Parameter,
    /// The video has no complete snippet.
    Empty,
}

/// An error reading or preparing frames: a kind and a message saying what and where (which
/// frame, which byte, which file).
#[derive(Debug, Clone)]
pub struct PixelError {
    kind: PixelErrorKind,
    message: String,
}

impl PixelError {
    pub(crate) fn new(kind: PixelErrorKind, message: impl Into<String>) -> Self {
        PixelError { kind, message: message.into() }
    }

    /// The kind of error.
    pub fn kind(&self) -> PixelErrorKind {
        self.kind
    }
}

impl fmt::Display for PixelError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for PixelError {}

/// A frame rate as a fraction (`30000/1001`), as video headers give it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameRate {
    /// Numerator (frames).
    pub num: u32,
    /// Denominator (seconds).
    pub den: u32,
}

impl FrameRate {
    /// `num/den`, both positive.
    pub fn new(num: u32, den: u32) -> Result<FrameRate, PixelError> {
        if num == 0 || den == 0 {
            return Err(PixelError::new(PixelErrorKind::Parameter, format!("frame rate {num}:{den} is not positive")));
        }
        Ok(FrameRate { num, den })
    }

    /// A frame rate given as a decimal (`29.97`, `25`): kept as `round(fps·1000)/1000`
    /// (exact for integers and the usual decimals).
    pub fn from_f64(fps: f64) -> Result<FrameRate, PixelError> {
        // Non-integer rates are kept in thousandths: below 0.001 the rate would round to 0.
        if !(fps.is_finite() && (0.001..=1.0e6).contains(&fps)) {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!("frame rate {fps} is not in [0.001, 10^6] frames per second"),
            ));
        }
        if fps.fract() == 0.0 {
            return FrameRate::new(fps as u32, 1);
        }
        let num = (fps * 1000.0).round() as u32;
        FrameRate::new(num, 1000)
    }

    /// Frames per second.
    pub fn fps(self) -> f64 {
        f64::from(self.num) / f64::from(self.den)
    }
}

impl fmt::Display for FrameRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.den == 1 {
            write!(f, "{}", self.num)
        } else {
            write!(f, "{}/{}", self.num, self.den)
        }
    }
}

/// One frame as the preprocessor takes it: `height × width` pixels of interleaved RGB in
/// `f32` on the `[0, 255]` scale (not rounded: a y4m frame's colour conversion keeps its
/// fraction).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RgbFrame {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `height · width · 3` values, row-major, RGB interleaved.
    pub data: Vec<f32>,
}

impl RgbFrame {
    /// Resizes the buffer to `width × height` (reusing its allocation).
    pub fn reshape(&mut self, width: usize, height: usize) {
        self.width = width;
        self.height = height;
        self.data.resize(width * height * 3, 0.0);
    }
}

/// A source of frames, read one at a time.
pub trait FrameSource {
    /// Frame width and height.
    fn size(&self) -> (usize, usize);
    /// Frame rate (from the stream header, or given).
    fn rate(&self) -> FrameRate;
    /// Reads the next frame into `out`: `Ok(false)` at the clean end of the stream (at a
    /// frame boundary), an error for a stream that ends inside a frame.
    fn read_frame(&mut self, out: &mut RgbFrame) -> Result<bool, PixelError>;
    /// Skips the next frame without converting it (`Ok(false)` at the end).
    fn skip_frame(&mut self) -> Result<bool, PixelError>;
    /// Frames read or skipped so far.
    fn frames_read(&self) -> u64;
    /// What the source is, for messages (`y4m 640x360 4:2:0 limited range, 30000/1001 fps`).
    fn describe(&self) -> String;
    /// Tells the source which pixels the preprocessing reads (sorted source rows and
    /// columns; [`preprocess::Resized::source_rows`]): a source that converts its frames
    /// (y4m) may then convert only those, leaving the others unspecified. The default
    /// ignores the hint.
    fn hint_needed(&mut self, rows: &[usize], cols: &[usize]) {
        let _ = (rows, cols);
    }
}

impl<S: FrameSource + ?Sized> FrameSource for Box<S> {
    fn size(&self) -> (usize, usize) {
        (**self).size()
    }
    fn rate(&self) -> FrameRate {
        (**self).rate()
    }
    fn read_frame(&mut self, out: &mut RgbFrame) -> Result<bool, PixelError> {
        (**self).read_frame(out)
    }
    fn skip_frame(&mut self) -> Result<bool, PixelError> {
        (**self).skip_frame()
    }
    fn frames_read(&self) -> u64 {
        (**self).frames_read()
    }
    fn describe(&self) -> String {
        (**self).describe()
    }
    fn hint_needed(&mut self, rows: &[usize], cols: &[usize]) {
        (**self).hint_needed(rows, cols)
    }
}

/// Largest frame side accepted (a header claiming more is refused before any allocation).
pub const MAX_SIDE: usize = 16384;

/// Checks a frame size from a header or the command line.
pub(crate) fn check_size(width: usize, height: usize, what: &str) -> Result<(), PixelError> {
    if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
        return Err(PixelError::new(
            PixelErrorKind::Parameter,
            format!("{what}: frame size {width}x{height} is not within 1..={MAX_SIDE} on each side"),
        ));
    }
    Ok(())
}

/// Fills `buf` from `r`; returns how many bytes were read (less than `buf.len()` only at the
/// end of the stream). Interrupted reads are retried.
pub(crate) fn read_full(r: &mut dyn Read, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(got)
}

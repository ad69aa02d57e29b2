//! Frames that are already RGB: raw `rgb24` (`ffmpeg -f rawvideo -pix_fmt rgb24 -`, the size
//! and the rate given), and folders of numbered JPEG/PNG frames (mmaction2's rawframes
//! layout `img_00001.jpg`, PaddleVideo's extracted frames). Bytes are taken as they are
//! (`v as f32`).

use super::{check_size, read_full, FrameRate, FrameSource, PixelError, PixelErrorKind, RgbFrame};
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};

/// Raw `rgb24` frames from any reader: `height · width · 3` bytes per frame, no header.
pub struct RawRgb24<R: Read> {
    r: BufReader<R>,
    width: usize,
    height: usize,
    rate: FrameRate,
    frames: u64,
    buf: Vec<u8>,
    name: String,
}

impl<R: Read> RawRgb24<R> {
    /// A raw stream of `width × height` frames at `rate`; `name` is for messages.
    pub fn new(r: R, width: usize, height: usize, rate: FrameRate, name: &str) -> Result<Self, PixelError> {
        check_size(width, height, name)?;
        Ok(RawRgb24 {
            r: BufReader::with_capacity(1 << 16, r),
            width,
            height,
            rate,
            frames: 0,
            buf: vec![0; width * height * 3],
            name: name.to_string(),
        })
    }

    fn next_bytes(&mut self) -> Result<bool, PixelError> {
        let need = self.buf.len();
        let got = read_full(&mut self.r, &mut self.buf)
            .map_err(|e| PixelError::new(PixelErrorKind::Io, format!("{}: frame {}: {e}", self.name, self.frames)))?;
        if got == 0 {
            return Ok(false);
        }
        if got < need {
            return Err(PixelError::new(
                PixelErrorKind::Truncated,
                format!(
                    "{}: truncated rgb24: frame {} (byte {}) has {got} of its {need} bytes ({}x{}x3); {} complete frame(s) before it",
                    self.name,
                    self.frames,
                    self.frames * need as u64,
                    self.width,
                    self.height,
                    self.frames
                ),
            ));
        }
        self.frames += 1;
        Ok(true)
    }
}

impl<R: Read> FrameSource for RawRgb24<R> {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn rate(&self) -> FrameRate {
        self.rate
    }
    fn read_frame(&mut self, out: &mut RgbFrame) -> Result<bool, PixelError> {
        if !self.next_bytes()? {
            return Ok(false);
        }
        out.reshape(self.width, self.height);
        for (o, &b) in out.data.iter_mut().zip(&self.buf) {
            *o = f32::from(b);
        }
        Ok(true)
    }
    fn skip_frame(&mut self) -> Result<bool, PixelError> {
        self.next_bytes()
    }
    fn frames_read(&self) -> u64 {
        self.frames
    }
    fn describe(&self) -> String {
        format!("rgb24 {}x{}, {} fps", self.width, self.height, self.rate)
    }
}

/// A folder of numbered frames: files `<prefix><number>.<ext>` with `ext` one of `jpg`,
/// `jpeg`, `png` (any case). The prefix is `img_` when such files exist (mmaction2's
/// rawframes put `flow_x_`/`flow_y_` frames beside them), otherwise the one prefix all
/// numbered images share (several prefixes are an error naming them). Numbers must be
/// consecutive from 0 or 1: a gap is an error naming the missing frame's neighbours. Other
/// files are ignored. Every frame must have the first frame's size.
pub struct FrameFolder {
    dir: PathBuf,
    files: Vec<String>,
    width: usize,
    height: usize,
    rate: FrameRate,
    next: usize,
}

/// `(prefix, number, digits)` of a numbered image file name.
fn numbered(name: &str) -> Option<(&str, u64)> {
    let (stem, ext) = name.rsplit_once('.')?;
    if !["jpg", "jpeg", "png"].iter().any(|e| ext.eq_ignore_ascii_case(e)) {
        return None;
    }
    let digits = stem.bytes().rev().take_while(u8::is_ascii_digit).count();
    if digits == 0 || digits > 18 {
        return None;
    }
    let (prefix, num) = stem.split_at(stem.len() - digits);
    Some((prefix, num.parse().ok()?))
}

impl FrameFolder {
    /// Lists `dir` (names only; no image is decoded but the first, for the size) with frames
    /// at `rate`; `prefix` forces the file-name prefix (`None`: `img_` if present, else the
    /// single one).
    pub fn open(dir: &Path, rate: FrameRate, prefix: Option<&str>) -> Result<Self, PixelError> {
        let err = |kind, m: String| PixelError::new(kind, format!("frame folder {}: {m}", dir.display()));
        let entries = std::fs::read_dir(dir).map_err(|e| err(PixelErrorKind::Io, format!("cannot list: {e}")))?;
        let mut all: Vec<(String, u64, String)> = Vec::new();
        for e in entries {
            let e = e.map_err(|e| err(PixelErrorKind::Io, format!("cannot list: {e}")))?;
            let Ok(name) = e.file_name().into_string() else { continue };
            if let Some((p, n)) = numbered(&name) {
                all.push((p.to_string(), n, name.clone()));
            }
        }
        let chosen = match prefix {
            Some(p) => p.to_string(),
            None => {
                let mut prefixes: Vec<&str> = all.iter().map(|(p, _, _)| p.as_str()).collect();
                prefixes.sort_unstable();
                prefixes.dedup();
                if prefixes.contains(&"img_") {
                    "img_".to_string()
                } else if prefixes.len() > 1 {
                    return Err(err(
                        PixelErrorKind::Frames,
                        format!(
                            "numbered images with several prefixes ({}): choose one with --frames-prefix",
                            prefixes.join(", ")
                        ),
                    ));
                } else {
                    prefixes.first().map(|s| s.to_string()).unwrap_or_default()
                }
            }
        };
        let mut frames: Vec<(u64, String)> =
            all.into_iter().filter(|(p, _, _)| *p == chosen).map(|(_, n, name)| (n, name)).collect();
        if frames.is_empty() {
            return Err(err(
                PixelErrorKind::Empty,
                format!(
                    "no frames: no files named {}<number>.jpg/.jpeg/.png (zero frames)",
                    if chosen.is_empty() { "" } else { &chosen }
                ),
            ));
        }
        frames.sort_unstable();
        let first = frames[0].0;
        if first > 1 {
            return Err(err(
                PixelErrorKind::Frames,
                format!("the first frame is {} (number {first}); numbering must start at 0 or 1", frames[0].1),
            ));
        }
        for (i, w) in frames.windows(2).enumerate() {
            if w[1].0 == w[0].0 {
                return Err(err(
                    PixelErrorKind::Frames,
                    format!("frames {} and {} have the same number", w[0].1, w[1].1),
                ));
            }
            if w[1].0 != w[0].0 + 1 {
                let (a, b) = (w[0].0 + 1, w[1].0 - 1);
                let missing =
                    if a == b { format!("number {a} is missing") } else { format!("numbers {a}..={b} are missing") };
                return Err(err(
                    PixelErrorKind::Frames,
                    format!("gap in the numbering after frame {i}: {} is followed by {} ({missing})", w[0].1, w[1].1),
                ));
            }
        }
        let files: Vec<String> = frames.into_iter().map(|(_, n)| n).collect();
        let first = read_image_file(&dir.join(&files[0]))?;
        let (width, height) = image::ImageReader::new(std::io::Cursor::new(&first))
            .with_guessed_format()
            .map_err(|e| e.to_string())
            .and_then(|r| r.into_dimensions().map_err(|e| e.to_string()))
            .map_err(|e| err(PixelErrorKind::Format, format!("{}: {e}", files[0])))?;
        check_size(width as usize, height as usize, &dir.join(&files[0]).display().to_string())?;
        Ok(FrameFolder { dir: dir.to_path_buf(), files, width: width as usize, height: height as usize, rate, next: 0 })
    }

    /// Number of frames in the folder.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// Whether the folder has no frames (never: [`FrameFolder::open`] refuses that).
    pub fn is_empty(&self) -> bool {
        self.files.is_empty()
    }
}

impl FrameSource for FrameFolder {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }
    fn rate(&self) -> FrameRate {
        self.rate
    }
    fn read_frame(&mut self, out: &mut RgbFrame) -> Result<bool, PixelError> {
        let Some(name) = self.files.get(self.next) else { return Ok(false) };
        let path = self.dir.join(name);
        let bytes =
            read_image_file(&path).map_err(|e| PixelError::new(e.kind(), format!("frame {}: {e}", self.next)))?;
        let img = decode_image(&bytes)
            .map_err(|e| {
                PixelError::new(PixelErrorKind::Format, format!("frame {} ({}): {e}", self.next, path.display()))
            })?
            .to_rgb8();
        if (img.width() as usize, img.height() as usize) != (self.width, self.height) {
            return Err(PixelError::new(
                PixelErrorKind::Frames,
                format!(
                    "frame {} ({}) is {}x{}, the first frame is {}x{}",
                    self.next,
                    path.display(),
                    img.width(),
                    img.height(),
                    self.width,
                    self.height
                ),
            ));
        }
        out.reshape(self.width, self.height);
        for (o, &b) in out.data.iter_mut().zip(img.as_raw()) {
            *o = f32::from(b);
        }
        self.next += 1;
        Ok(true)
    }
    fn skip_frame(&mut self) -> Result<bool, PixelError> {
        if self.next >= self.files.len() {
            return Ok(false);
        }
        self.next += 1;
        Ok(true)
    }
    fn frames_read(&self) -> u64 {
        self.next as u64
    }
    fn describe(&self) -> String {
        format!(
            "{} frames {}x{} in {}, {} fps",
            self.files.len(),
            self.width,
            self.height,
            self.dir.display(),
            self.rate
        )
    }
}

/// A frame's file through the bounded reader ([`crate::io::read_regular_file`]): a regular
/// file (a symlink to `/dev/zero` or to a FIFO is refused without reading) of at most
/// [`crate::io::MAX_FRAME_FILE_BYTES`].
fn read_image_file(path: &Path) -> Result<Vec<u8>, PixelError> {
    crate::io::read_regular_file(path, crate::io::MAX_FRAME_FILE_BYTES).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound { PixelErrorKind::Io } else { PixelErrorKind::Format };
        PixelError::new(kind, format!("{}: cannot read: {e}", path.display()))
    })
}

/// Decodes one JPEG or PNG frame from its bytes (the format by its magic bytes). A JPEG
/// must end with its end-of-image marker (`FF D9`, trailing padding allowed): the decoder
/// fills a truncated file's missing rows silently.
pub fn decode_image(bytes: &[u8]) -> Result<image::DynamicImage, String> {
    let reader =
        image::ImageReader::new(std::io::Cursor::new(bytes)).with_guessed_format().map_err(|e| e.to_string())?;
    if reader.format() == Some(image::ImageFormat::Jpeg) {
        let end = bytes.iter().rposition(|&b| !matches!(b, 0x00 | b'\n' | b'\r' | b' ')).map_or(0, |i| i + 1);
        if !bytes[..end].ends_with(&[0xFF, 0xD9]) {
            return Err("truncated JPEG: no end-of-image marker (FF D9) at the end of the file".into());
        }
    }
    reader.decode().map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::numbered;

    #[test]
    fn numbered_names() {
        assert_eq!(numbered("img_00001.jpg"), Some(("img_", 1)));
        assert_eq!(numbered("flow_x_00012.JPG"), Some(("flow_x_", 12)));
        assert_eq!(numbered("00003.png"), Some(("", 3)));
        assert_eq!(numbered("img_.jpg"), None);
        assert_eq!(numbered("img_00001.txt"), None);
        assert_eq!(numbered("notes"), None);
    }
}

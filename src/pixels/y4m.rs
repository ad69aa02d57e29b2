//! YUV4MPEG2 (`.y4m`) frames from any reader: a file, or ffmpeg on a pipe
//! (`ffmpeg -i in.mp4 -f yuv4mpegpipe -pix_fmt yuv420p -`).
//!
//! The stream header is `YUV4MPEG2` followed by space-separated parameters and a newline:
//! `W` and `H` (required), `F` (frame rate `num:den`, required here: the snippets' times
//! need it), `C` (chroma: `420jpeg`, `420mpeg2`, `420paldv`, `420` and `444` are read;
//! absent means `420jpeg`, as the format defines), `I` and `A` (interlacing and aspect,
//! not used: frames are taken as progressive), `X` extensions (`XCOLORRANGE=FULL` or
//! `=LIMITED` sets the range; others are ignored). Each frame is `FRAME`, optional
//! parameters, a newline, then the Y, U and V planes, 8 bits per sample. The chroma planes
//! of 4:2:0 are `⌈W/2⌉ × ⌈H/2⌉`.
//!
//! Only one frame's bytes are held. The colour conversion (`preprocess::yuv_to_rgb`) runs
//! only on frames that are read, not on skipped ones, and, once the preprocessing has said
//! which rows and columns it samples (`FrameSource::hint_needed`), only on those pixels:
//! about a tenth of a 1080p frame for a 224 crop of a 256 short side.

use super::preprocess::{yuv_to_rgb_frame, ColorRange};
use super::{check_size, read_full, FrameRate, FrameSource, PixelError, PixelErrorKind, RgbFrame};
use std::io::{BufReader, Read};

/// Longest header or frame line accepted.
const MAX_LINE: usize = 4096;

/// Chroma subsampling of a y4m stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chroma {
    /// 4:2:0: one chroma sample per 2×2 luma block.
    C420,
    /// 4:4:4: one chroma sample per pixel.
    C444,
}

impl Chroma {
    /// `4:2:0` or `4:4:4`.
    pub fn name(self) -> &'static str {
        match self {
            Chroma::C420 => "4:2:0",
            Chroma::C444 => "4:4:4",
        }
    }
}

/// A YUV4MPEG2 reader: the header is parsed on construction, frames are read one at a time.
pub struct Y4mReader<R: Read> {
    r: BufReader<R>,
    width: usize,
    height: usize,
    chroma: Chroma,
    range: ColorRange,
    rate: FrameRate,
    frames: u64,
    /// Bytes consumed so far (for error messages).
    offset: u64,
    buf: Vec<u8>,
    name: String,
    /// Rows and columns to convert (`FrameSource::hint_needed`); all when `None`.
    needed: Option<(Vec<usize>, Vec<usize>)>,
}

fn bad(kind: PixelErrorKind, name: &str, msg: impl std::fmt::Display) -> PixelError {
    PixelError::new(kind, format!("{name}: {msg}"))
}

impl<R: Read> Y4mReader<R> {
    /// Reads the stream header from `r`. `name` says where the stream comes from (a file
    /// name, `stdin`) in error messages.
    pub fn new(r: R, name: &str) -> Result<Self, PixelError> {
        let mut r = BufReader::with_capacity(1 << 16, r);
        let name = name.to_string();
        let (line, _) = read_line(&mut r, &name, 0, "the stream header")?
            .ok_or_else(|| bad(PixelErrorKind::Empty, &name, "empty stream: no YUV4MPEG2 header (zero frames)"))?;
        let offset = line.len() as u64 + 1;
        if line.ends_with(b"\r") {
            return Err(bad(
                PixelErrorKind::Format,
                &name,
                "the stream header ends in CRLF (\\r\\n), not a bare newline: the file's line endings were converted (a y4m file is binary)",
            ));
        }
        let text = String::from_utf8_lossy(&line);
        let mut parts = text.split(' ').filter(|p| !p.is_empty());
        if parts.next() != Some("YUV4MPEG2") {
            let start: String = text.chars().take(16).collect();
            return Err(bad(
                PixelErrorKind::Format,
                &name,
                format!("not a YUV4MPEG2 stream: the header starts with {start:?}, not \"YUV4MPEG2 \""),
            ));
        }
        let (mut w, mut h, mut rate, mut chroma, mut range) = (None, None, None, Chroma::C420, ColorRange::Limited);
        for p in parts {
            // The first character, whatever its width (a non-ASCII byte became U+FFFD).
            let (tag, v) = p.split_at(p.chars().next().map_or(0, char::len_utf8));
            let int = |v: &str, what: &str| {
                v.parse::<usize>()
                    .map_err(|_| bad(PixelErrorKind::Format, &name, format!("header: {what} `{p}` is not a number")))
            };
            match tag {
                "W" => w = Some(int(v, "width")?),
                "H" => h = Some(int(v, "height")?),
                "F" => {
                    let (n, d) = v.split_once(':').ok_or_else(|| {
                        bad(PixelErrorKind::Format, &name, format!("header: frame rate `{p}` is not `Fnum:den`"))
                    })?;
                    let (n, d) = (n.parse::<u32>(), d.parse::<u32>());
                    rate = Some(match (n, d) {
                        (Ok(n), Ok(d)) if n > 0 && d > 0 => FrameRate { num: n, den: d },
                        _ => {
                            return Err(bad(
                                PixelErrorKind::Format,
                                &name,
                                format!("header: frame rate `{p}` is not two positive integers"),
                            ))
                        }
                    });
                }
                "C" => {
                    chroma = match v {
                        "420jpeg" | "420mpeg2" | "420paldv" | "420" => Chroma::C420,
                        "444" => Chroma::C444,
                        _ => {
                            return Err(bad(
                                PixelErrorKind::Unsupported,
                                &name,
                                format!(
                                    "header: chroma `{p}` is not supported: 8-bit 4:2:0 (C420jpeg, C420mpeg2, C420paldv, C420) and 4:4:4 (C444) are (convert with ffmpeg -pix_fmt yuv420p)"
                                ),
                            ))
                        }
                    }
                }
                "X" => {
                    if let Some(r) = v.strip_prefix("COLORRANGE=") {
                        range = match r {
                            "FULL" => ColorRange::Full,
                            "LIMITED" => ColorRange::Limited,
                            _ => {
                                return Err(bad(
                                    PixelErrorKind::Format,
                                    &name,
                                    format!("header: `{p}` is neither XCOLORRANGE=FULL nor XCOLORRANGE=LIMITED"),
                                ))
                            }
                        }
                    }
                }
                "I" | "A" => {}
                _ => {
                    return Err(bad(PixelErrorKind::Format, &name, format!("header: unknown parameter `{p}`")));
                }
            }
        }
        let (Some(width), Some(height)) = (w, h) else {
            return Err(bad(PixelErrorKind::Format, &name, "header: width (W) or height (H) missing"));
        };
        let rate = rate.ok_or_else(|| bad(PixelErrorKind::Format, &name, "header: frame rate (F) missing"))?;
        check_size(width, height, &name)?;
        Ok(Y4mReader { r, width, height, chroma, range, rate, frames: 0, offset, buf: Vec::new(), name, needed: None })
    }

    /// The chroma subsampling.
    pub fn chroma(&self) -> Chroma {
        self.chroma
    }

    /// The colour range (`XCOLORRANGE`; limited when absent).
    pub fn range(&self) -> ColorRange {
        self.range
    }

    /// Bytes of one frame's planes.
    pub fn frame_bytes(&self) -> usize {
        let (cw, ch) = self.chroma_size();
        self.width * self.height + 2 * cw * ch
    }

    fn chroma_size(&self) -> (usize, usize) {
        match self.chroma {
            Chroma::C420 => (self.width.div_ceil(2), self.height.div_ceil(2)),
            Chroma::C444 => (self.width, self.height),
        }
    }

    /// Reads the next frame's planes into `self.buf`: `Ok(false)` at a clean end.
    fn next_planes(&mut self) -> Result<bool, PixelError> {
        let frame = self.frames;
        let Some((line, n)) = read_line(&mut self.r, &self.name, self.offset, &format!("frame {frame}'s FRAME line"))?
        else {
            return Ok(false);
        };
        if !line.starts_with(b"FRAME") || line.get(5).is_some_and(|&c| c != b' ') {
            let start: String = String::from_utf8_lossy(&line).chars().take(16).collect();
            return Err(bad(
                PixelErrorKind::Format,
                &self.name,
                format!("frame {frame} (byte {}): expected a FRAME line, found {start:?}", self.offset),
            ));
        }
        self.offset += n as u64;
        let need = self.frame_bytes();
        // The buffer grows with the bytes that arrive (at most GROW ahead of them), so a
        // header that declares huge frames costs memory only if the frames are really there.
        const GROW: usize = 1 << 20;
        let mut got = 0;
        while got < need {
            let end = if self.buf.len() >= need { need } else { (got + GROW).min(need) };
            if self.buf.len() < end {
                self.buf.resize(end, 0);
            }
            let n = read_full(&mut self.r, &mut self.buf[got..end]).map_err(|e| {
                bad(PixelErrorKind::Io, &self.name, format!("frame {frame} (byte {}): {e}", self.offset))
            })?;
            got += n;
            if got < end {
                break;
            }
        }
        if got < need {
            return Err(bad(
                PixelErrorKind::Truncated,
                &self.name,
                format!(
                    "truncated y4m: frame {frame} (byte {}) has {got} of its {need} bytes; {frame} complete frame(s) before it",
                    self.offset
                ),
            ));
        }
        self.offset += need as u64;
        self.frames += 1;
        Ok(true)
    }
}

/// Reads one line (up to `\n`, not included) and the bytes consumed; `None` at a clean end
/// of stream (no byte at all).
fn read_line(r: &mut impl Read, name: &str, offset: u64, what: &str) -> Result<Option<(Vec<u8>, usize)>, PixelError> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match r.read(&mut byte) {
            Ok(0) if line.is_empty() => return Ok(None),
            Ok(0) => {
                return Err(bad(
                    PixelErrorKind::Truncated,
                    name,
                    format!("truncated y4m: the stream ends inside {what} (byte {offset})"),
                ))
            }
            Ok(_) if byte[0] == b'\n' => {
                let n = line.len() + 1;
                return Ok(Some((line, n)));
            }
            Ok(_) => {
                line.push(byte[0]);
                if line.len() > MAX_LINE {
                    return Err(bad(
                        PixelErrorKind::Format,
                        name,
                        format!("{what} (byte {offset}) is longer than {MAX_LINE} bytes: not a y4m stream"),
                    ));
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(bad(PixelErrorKind::Io, name, format!("reading {what} (byte {offset}): {e}"))),
        }
    }
}

impl<R: Read> FrameSource for Y4mReader<R> {
    fn size(&self) -> (usize, usize) {
        (self.width, self.height)
    }

    fn rate(&self) -> FrameRate {
        self.rate
    }

    fn read_frame(&mut self, out: &mut RgbFrame) -> Result<bool, PixelError> {
        if !self.next_planes()? {
            return Ok(false);
        }
        let (w, h) = (self.width, self.height);
        let (cw, ch) = self.chroma_size();
        let (y, rest) = self.buf.split_at(w * h);
        let (u, v) = rest.split_at(cw * ch);
        out.reshape(w, h);
        let sub = match self.chroma {
            Chroma::C420 => 1,
            Chroma::C444 => 0,
        };
        let needed = self.needed.as_ref().map(|(r, c)| (r.as_slice(), c.as_slice()));
        yuv_to_rgb_frame(y, u, v, w, h, cw, sub, self.range, needed, &mut out.data);
        Ok(true)
    }

    fn skip_frame(&mut self) -> Result<bool, PixelError> {
        self.next_planes()
    }

    fn frames_read(&self) -> u64 {
        self.frames
    }

    fn hint_needed(&mut self, rows: &[usize], cols: &[usize]) {
        self.needed = Some((rows.to_vec(), cols.to_vec()));
    }

    fn describe(&self) -> String {
        format!(
            "y4m {}x{} {} {} range, {} fps",
            self.width,
            self.height,
            self.chroma.name(),
            self.range.name(),
            self.rate
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Fuzzing finding F4: a 41-byte header that declares 16384 × 16384 4:4:4 frames made
    /// the reader allocate the whole 768 MiB frame before any of it arrived. The buffer now
    /// grows with the bytes read: a truncated frame costs what arrived plus 1 MiB.
    #[test]
    fn a_huge_declared_frame_costs_only_what_arrives() {
        let mut stream = b"YUV4MPEG2 W16384 H16384 F25:1 C444\nFRAME\n".to_vec();
        stream.extend_from_slice(&[128u8; 3000]);
        let mut r = Y4mReader::new(&stream[..], "huge").unwrap();
        let e = r.next_planes().unwrap_err();
        assert_eq!(e.kind(), PixelErrorKind::Truncated, "{e}");
        assert!(e.to_string().contains("3000 of its 805306368 bytes"), "{e}");
        assert!(r.buf.capacity() <= (1 << 20) + 4096, "{} bytes held", r.buf.capacity());
    }

    /// Fuzzing finding F2: a header parameter starting with a non-ASCII byte panicked
    /// (`split_at(1)` inside U+FFFD); it is an unknown parameter like any other.
    #[test]
    fn a_non_ascii_header_parameter_is_not_a_panic() {
        for (header, says) in [
            (&b"YUV4MPEG2 \xff\n"[..], "unknown parameter `\u{fffd}`"),
            (&b"YUV4MPEG2 W4 H4 F25:1 \xc3\xa9x\n"[..], "unknown parameter `\u{e9}x`"),
        ] {
            let Err(e) = Y4mReader::new(header, "odd") else { panic!("accepted {header:?}") };
            assert!(e.kind() == PixelErrorKind::Format && e.to_string().contains(says), "{e}");
        }
    }
}

//! The preprocessing specification (module docs of [`crate::pixels`], steps 1–5): YUV → RGB
//! in float, short-side resize with half-pixel bilinear sampling, centre crop, per-channel
//! mean/std, NCHW `f32`.
//!
//! The resize and the crop are fused: [`Resized`] holds, for each column and row of the
//! crop, its two source taps and weight, so only the `crop × crop` output pixels are
//! computed and the resized frame never exists.

use super::{PixelError, PixelErrorKind, RgbFrame};

/// BT.601 luma coefficient of red.
pub const KR: f64 = 0.299;
/// BT.601 luma coefficient of blue.
pub const KB: f64 = 0.114;

/// ImageNet's per-channel mean, RGB, on the `[0, 255]` scale.
pub const IMAGENET_MEAN: [f32; 3] = [123.675, 116.28, 103.53];
/// ImageNet's per-channel standard deviation, RGB, on the `[0, 255]` scale.
pub const IMAGENET_STD: [f32; 3] = [58.395, 57.12, 57.375];

/// The range of YUV samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColorRange {
    /// Y in 16..=235, U/V in 16..=240 (`y = (Y − 16)/219`, `p = (U − 128)/224`): video's default.
    Limited,
    /// Y, U, V in 0..=255 (`y = Y/255`, `p = (U − 128)/255`): y4m `XCOLORRANGE=FULL`.
    Full,
}

impl ColorRange {
    /// `limited` or `full`.
    pub fn name(self) -> &'static str {
        match self {
            ColorRange::Limited => "limited",
            ColorRange::Full => "full",
        }
    }
}

/// Per-range lookup tables: `y`, `pb` (= `pr`) for each 8-bit sample, computed in `f64`
/// and stored as `f32`.
struct Luts {
    y: [f32; 256],
    p: [f32; 256],
}

fn luts(range: ColorRange) -> Luts {
    let (y0, ys, ps) = match range {
        ColorRange::Limited => (16.0, 219.0, 224.0),
        ColorRange::Full => (0.0, 255.0, 255.0),
    };
    let mut l = Luts { y: [0.0; 256], p: [0.0; 256] };
    for i in 0..256 {
        l.y[i] = ((i as f64 - y0) / ys) as f32;
        l.p[i] = ((i as f64 - 128.0) / ps) as f32;
    }
    l
}

/// One pixel: 8-bit Y, U, V → R, G, B on `[0, 255]`, clamped, not rounded (step 2).
pub fn yuv_to_rgb(y: u8, u: u8, v: u8, range: ColorRange) -> [f32; 3] {
    let l = luts(range);
    convert(l.y[y as usize], l.p[u as usize], l.p[v as usize])
}

#[inline]
fn convert(y: f32, pb: f32, pr: f32) -> [f32; 3] {
    const CR: f32 = (2.0 * (1.0 - KR)) as f32;
    const CB: f32 = (2.0 * (1.0 - KB)) as f32;
    const KRF: f32 = KR as f32;
    const KBF: f32 = KB as f32;
    const KG: f32 = (1.0 - KR - KB) as f32;
    let r = y + CR * pr;
    let b = y + CB * pb;
    let g = (y - KRF * r - KBF * b) / KG;
    [(r * 255.0).clamp(0.0, 255.0), (g * 255.0).clamp(0.0, 255.0), (b * 255.0).clamp(0.0, 255.0)]
}

/// A whole frame's planes to interleaved RGB (`out`: `w · h · 3`). The chroma planes are
/// `cw` samples wide; `sub` is 1 for 4:2:0 (chroma sample `(x >> 1, y >> 1)`: replication)
/// and 0 for 4:4:4.
#[allow(clippy::too_many_arguments)]
pub(crate) fn yuv_to_rgb_frame(
    y: &[u8],
    u: &[u8],
    v: &[u8],
    w: usize,
    h: usize,
    cw: usize,
    sub: u32,
    range: ColorRange,
    needed: Option<(&[usize], &[usize])>,
    out: &mut [f32],
) {
    let l = luts(range);
    let px = |row: usize, x: usize, out: &mut [f32]| {
        let c = (row >> sub) * cw + (x >> sub);
        let i = row * w + x;
        out[i * 3..i * 3 + 3].copy_from_slice(&convert(l.y[y[i] as usize], l.p[u[c] as usize], l.p[v[c] as usize]));
    };
    match needed {
        Some((rows, cols)) => {
            for &row in rows.iter().filter(|&&r| r < h) {
                for &x in cols.iter().filter(|&&x| x < w) {
                    px(row, x, out);
                }
            }
        }
        None => {
            for row in 0..h {
                for x in 0..w {
                    px(row, x, out);
                }
            }
        }
    }
}

/// The preprocessing parameters (steps 3–5).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocess {
    /// Short side after resizing (`--resize`).
    pub resize: usize,
    /// Side of the square centre crop (`--crop`), the backbone's input `H = W`.
    pub crop: usize,
    /// Per-channel mean, RGB, on the `[0, 255]` scale.
    pub mean: [f32; 3],
    /// Per-channel standard deviation, RGB, on the `[0, 255]` scale.
    pub std: [f32; 3],
}

impl Default for Preprocess {
    /// Resize 256, crop 224, ImageNet mean/std (mmaction2's TSN test pipeline).
    fn default() -> Self {
        Preprocess { resize: 256, crop: 224, mean: IMAGENET_MEAN, std: IMAGENET_STD }
    }
}

/// Largest resized side accepted (only the crop is computed, but the taps are tabulated).
const MAX_RESIZED: usize = 1 << 20;

impl Preprocess {
    /// Checks the parameters: `1 ≤ crop ≤ resize`, finite means, finite positive stds.
    pub fn check(&self) -> Result<(), PixelError> {
        const MIN_STD: f32 = 1e-3;
        const MAX_STD: f32 = 1e6;
        let p = |m: String| Err(PixelError::new(PixelErrorKind::Parameter, m));
        if self.resize == 0 || self.crop == 0 || self.resize > MAX_RESIZED {
            return p(format!("resize {} and crop {} must be in 1..={MAX_RESIZED}", self.resize, self.crop));
        }
        if self.crop > self.resize {
            return p(format!(
                "crop {} is larger than the resized short side {}: the crop must fit in the resized frame",
                self.crop, self.resize
            ));
        }
        if !self.mean.iter().all(|m| m.is_finite()) {
            return p(format!("mean {:?} is not finite", self.mean));
        }
        // On the 0–255 scale (ImageNet's are about 58): below a thousandth of a level the
        // normalised values reach 10^5 and beyond, 255/1e-45 is infinite in float32, and an
        // int8 backbone's quantizer saturates on them without a word.
        if !self.std.iter().all(|s| s.is_finite() && (MIN_STD..=MAX_STD).contains(s)) {
            return p(format!("std {:?} must be in [{MIN_STD}, {MAX_STD}] on the 0–255 scale", self.std));
        }
        Ok(())
    }

    /// The resized size of a `width × height` frame: the short side becomes `resize`, the
    /// long side `⌊long·resize/short + 0.5⌋` (computed in integers, exactly).
    pub fn resized_size(&self, width: usize, height: usize) -> (usize, usize) {
        let scale = |long: usize, short: usize| {
            ((2 * long as u128 * self.resize as u128 + short as u128) / (2 * short as u128)) as usize
        };
        if width <= height {
            (self.resize, scale(height, width))
        } else {
            (scale(width, height), self.resize)
        }
    }

    /// The fused resize + crop for frames of `width × height`.
    pub fn plan(&self, width: usize, height: usize) -> Result<Resized, PixelError> {
        self.check()?;
        if width == 0 || height == 0 {
            return Err(PixelError::new(PixelErrorKind::Parameter, format!("frame size {width}x{height} is empty")));
        }
        let (ow, oh) = self.resized_size(width, height);
        if ow > MAX_RESIZED || oh > MAX_RESIZED {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!(
                    "frame {width}x{height} resized to short side {} would be {ow}x{oh}: too elongated",
                    self.resize
                ),
            ));
        }
        let c = self.crop;
        let (x_off, y_off) = ((ow - c) / 2, (oh - c) / 2);
        Ok(Resized {
            width,
            height,
            resized: (ow, oh),
            offset: (x_off, y_off),
            xs: taps(width, ow, x_off, c),
            ys: taps(height, oh, y_off, c),
            crop: c,
            mean: self.mean,
            inv_std: [1.0 / self.std[0], 1.0 / self.std[1], 1.0 / self.std[2]],
            std: self.std,
        })
    }
}

/// One output coordinate's two source taps and the weight of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    i0: usize,
    i1: usize,
    f: f32,
}

/// The taps of output coordinates `offset..offset + count` of a resize from `input` to
/// `output` samples: `src = (d + 0.5)·input/output − 0.5` clamped to `[0, input − 1]`.
fn taps(input: usize, output: usize, offset: usize, count: usize) -> Vec<Tap> {
    let scale = input as f64 / output as f64;
    (offset..offset + count)
        .map(|d| {
            let src = ((d as f64 + 0.5) * scale - 0.5).clamp(0.0, (input - 1) as f64);
            let i0 = src.floor() as usize;
            Tap { i0, i1: (i0 + 1).min(input - 1), f: (src - i0 as f64) as f32 }
        })
        .collect()
}

fn used(taps: &[Tap]) -> Vec<usize> {
    let mut v: Vec<usize> = taps.iter().flat_map(|t| [t.i0, t.i1]).collect();
    v.sort_unstable();
    v.dedup();
    v
}

/// The resize + crop + normalisation for one input frame size ([`Preprocess::plan`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Resized {
    width: usize,
    height: usize,
    resized: (usize, usize),
    offset: (usize, usize),
    xs: Vec<Tap>,
    ys: Vec<Tap>,
    crop: usize,
    mean: [f32; 3],
    std: [f32; 3],
    inv_std: [f32; 3],
}

impl Resized {
    /// The resized frame size `(W, H)` (before the crop).
    pub fn resized_size(&self) -> (usize, usize) {
        self.resized
    }

    /// The crop's top-left corner in the resized frame.
    pub fn crop_offset(&self) -> (usize, usize) {
        self.offset
    }

    /// Values of one output tensor: `3 · crop · crop`.
    pub fn output_len(&self) -> usize {
        3 * self.crop * self.crop
    }

    /// Preprocesses `frame` into `out` (`[3, crop, crop]`, channel-major).
    pub fn apply(&self, frame: &RgbFrame, out: &mut [f32]) -> Result<(), PixelError> {
        if (frame.width, frame.height) != (self.width, self.height) || frame.data.len() != self.width * self.height * 3
        {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!(
                    "frame is {}x{}, the preprocessing was planned for {}x{}",
                    frame.width, frame.height, self.width, self.height
                ),
            ));
        }
        if out.len() != self.output_len() {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!(
                    "output buffer has {} values, a {}x{} crop needs {}",
                    out.len(),
                    self.crop,
                    self.crop,
                    self.output_len()
                ),
            ));
        }
        let c = self.crop;
        let plane = c * c;
        let stride = self.width * 3;
        let d = &frame.data;
        for (oy, ty) in self.ys.iter().enumerate() {
            let r0 = &d[ty.i0 * stride..(ty.i0 + 1) * stride];
            let r1 = &d[ty.i1 * stride..(ty.i1 + 1) * stride];
            let (wy0, wy1) = (1.0 - ty.f, ty.f);
            for (ox, tx) in self.xs.iter().enumerate() {
                let (wx0, wx1) = (1.0 - tx.f, tx.f);
                let (a, b) = (tx.i0 * 3, tx.i1 * 3);
                for ch in 0..3 {
                    let top = wx0 * r0[a + ch] + wx1 * r0[b + ch];
                    let bottom = wx0 * r1[a + ch] + wx1 * r1[b + ch];
                    let v = wy0 * top + wy1 * bottom;
                    out[ch * plane + oy * c + ox] = (v - self.mean[ch]) * self.inv_std[ch];
                }
            }
        }
        Ok(())
    }

    /// The source rows the crop reads, sorted, each once.
    pub fn source_rows(&self) -> Vec<usize> {
        used(&self.ys)
    }

    /// The source columns the crop reads, sorted, each once.
    pub fn source_cols(&self) -> Vec<usize> {
        used(&self.xs)
    }

    /// The normalisation's mean and std.
    pub fn mean_std(&self) -> ([f32; 3], [f32; 3]) {
        (self.mean, self.std)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resized_size_rounds_half_up_in_integers() {
        let p = Preprocess::default();
        assert_eq!(p.resized_size(1920, 1080), (455, 256)); // 1920·256/1080 = 455.11
        assert_eq!(p.resized_size(340, 256), (340, 256));
        assert_eq!(p.resized_size(320, 240), (341, 256)); // 341.33
        assert_eq!(p.resized_size(200, 100), (512, 256));
        assert_eq!(p.resized_size(100, 200), (256, 512));
        // 5·256/2 = 640 exactly; 3·256/2 = 384; 7·256/6 = 298.67 -> 299; half: 9·2/4 = 4.5 -> 5.
        let q = Preprocess { resize: 2, ..p };
        assert_eq!(q.resized_size(9, 4), (5, 2));
        assert_eq!(q.resized_size(7, 4), (4, 2)); // 3.5 -> 4
        assert_eq!(q.resized_size(5, 4), (3, 2)); // 2.5 -> 3
    }

    #[test]
    fn yuv_corners() {
        // Limited range: black, white and the primaries' extremes clamp to [0, 255].
        assert_eq!(yuv_to_rgb(16, 128, 128, ColorRange::Limited), [0.0, 0.0, 0.0]);
        let w = yuv_to_rgb(235, 128, 128, ColorRange::Limited);
        assert!(w.iter().all(|&v| (v - 255.0).abs() < 1e-4), "{w:?}");
        assert_eq!(yuv_to_rgb(0, 0, 0, ColorRange::Full)[0], 0.0);
        let g = yuv_to_rgb(128, 128, 128, ColorRange::Full);
        assert!(g.iter().all(|&v| (v - 128.0).abs() < 1e-4), "{g:?}");
    }

    #[test]
    fn identity_resize_and_crop_pick_pixels() {
        // resize = short side: taps are the identity; the crop takes the centre.
        let p = Preprocess { resize: 4, crop: 2, mean: [0.0; 3], std: [1.0; 3] };
        let mut f = RgbFrame::default();
        f.reshape(6, 4);
        for (i, v) in f.data.iter_mut().enumerate() {
            *v = i as f32;
        }
        let r = p.plan(6, 4).unwrap();
        assert_eq!((r.resized_size(), r.crop_offset()), ((6, 4), (2, 1)));
        let mut out = vec![0.0; r.output_len()];
        r.apply(&f, &mut out).unwrap();
        // channel 0 at (x, y) = ((2 + ox), (1 + oy)) -> index ((1+oy)·6 + 2+ox)·3
        assert_eq!(&out[..4], &[24.0, 27.0, 42.0, 45.0]);
        assert!(matches!(p.plan(0, 4), Err(e) if e.kind() == PixelErrorKind::Parameter));
        let bad = Preprocess { crop: 5, ..p };
        assert!(bad.plan(6, 4).unwrap_err().to_string().contains("crop 5 is larger than the resized short side 4"));
    }
}

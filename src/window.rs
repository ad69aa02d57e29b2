//! Windows of snippets: the streaming ring buffer and the whole-video rescale.
//!
//! The network sees `T` snippets at a time, as `x[C, T]` (channel-major). Two ways to get
//! there:
//!
//! * **Streaming** ([`WindowBuffer`]): a ring of the last `T` snippets; every `H` snippets
//!   (hop, default `T/2`) a complete window is copied out, oldest snippet first. At the end
//!   of the stream [`WindowBuffer::finish`] emits one last window aligned to the end if the
//!   regular hops did not end exactly there, and a stream shorter than `T` is padded by
//!   repeating its last snippet (edge padding; the [`Emitted::valid`] count says how many
//!   columns are real, so proposals past it can be dropped). Each emission copies exactly
//!   one window; a push copies one snippet.
//! * **Whole video** ([`rescale_to_window`]): the ActivityNet setting; the whole sequence is
//!   resampled to `T` positions as BSN's `poolData` does (below).

use core::fmt;

/// A window-buffer error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum WindowError {
    /// A buffer had the wrong length.
    Length {
        /// Which buffer.
        what: &'static str,
        /// Required length.
        expected: usize,
        /// Given length.
        actual: usize,
    },
    /// The parameters are unusable (zero sizes, hop 0 or larger than T).
    Parameters,
    /// A value is NaN or infinite.
    NonFinite {
        /// Flat index of the first bad value.
        index: usize,
    },
    /// `finish` was called on a buffer that never received a snippet.
    Empty,
}

impl fmt::Display for WindowError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WindowError::Length { what, expected, actual } => {
                write!(f, "{what} has {actual} values, expected {expected}")
            }
            WindowError::Parameters => write!(f, "window parameters must have T ≥ 1, C ≥ 1 and 1 ≤ hop ≤ T"),
            WindowError::NonFinite { index } => write!(f, "feature value at flat index {index} is NaN or infinite"),
            WindowError::Empty => write!(f, "no snippet was pushed"),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for WindowError {}

/// A window written out by [`WindowBuffer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Emitted {
    /// Index of the window's first snippet in the stream.
    pub start: u64,
    /// How many of the `T` columns hold real snippets (`T` except for a padded short stream).
    pub valid: usize,
}

/// A ring of `T` snippets × `C` features that yields complete windows with hop `H`.
///
/// Storage is caller-provided (`T·C` floats), so the buffer works without an allocator.
#[derive(Debug)]
pub struct WindowBuffer<'a> {
    ring: &'a mut [f32],
    tscale: usize,
    channels: usize,
    hop: usize,
    /// Snippets pushed so far.
    count: u64,
    /// Start of the last emitted window, if any.
    last_start: Option<u64>,
}

impl<'a> WindowBuffer<'a> {
    /// The default hop, `T/2` (50 % overlap, the streaming setting of reference §6), at least 1.
    pub const fn default_hop(tscale: usize) -> usize {
        if tscale >= 2 {
            tscale / 2
        } else {
            1
        }
    }

    /// A buffer over `storage` (`T·C` floats) with hop `hop` (`1 ≤ hop ≤ T`).
    pub fn new(storage: &'a mut [f32], tscale: usize, channels: usize, hop: usize) -> Result<Self, WindowError> {
        if tscale == 0 || channels == 0 || hop == 0 || hop > tscale {
            return Err(WindowError::Parameters);
        }
        let expected = tscale.checked_mul(channels).ok_or(WindowError::Parameters)?;
        if storage.len() != expected {
            return Err(WindowError::Length { what: "window storage", expected, actual: storage.len() });
        }
        Ok(WindowBuffer { ring: storage, tscale, channels, hop, count: 0, last_start: None })
    }

    /// Snippets pushed so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// Adds one snippet (`C` features). When that completes a window (`T` snippets since
    /// the stream began, then every `hop`), copies it into `out` (`[C, T]`, `C·T` floats)
    /// and returns where it starts. A rejected snippet leaves the buffer unchanged.
    pub fn push(&mut self, snippet: &[f32], out: &mut [f32]) -> Result<Option<Emitted>, WindowError> {
        if snippet.len() != self.channels {
            return Err(WindowError::Length { what: "snippet", expected: self.channels, actual: snippet.len() });
        }
        if out.len() != self.ring.len() {
            return Err(WindowError::Length { what: "window output", expected: self.ring.len(), actual: out.len() });
        }
        if let Some(index) = snippet.iter().position(|x| !x.is_finite()) {
            return Err(WindowError::NonFinite { index });
        }
        let slot = (self.count % self.tscale as u64) as usize;
        self.ring[slot * self.channels..(slot + 1) * self.channels].copy_from_slice(snippet);
        self.count += 1;
        let t = self.tscale as u64;
        if self.count >= t && (self.count - t).is_multiple_of(self.hop as u64) {
            let start = self.count - t;
            self.copy_window(out, self.tscale);
            self.last_start = Some(start);
            return Ok(Some(Emitted { start, valid: self.tscale }));
        }
        Ok(None)
    }

    /// Ends the stream: emits the final window if one is still owed — the last `T`
    /// snippets when the hops did not end exactly at the last snippet, or the whole stream
    /// edge-padded to `T` when it is shorter than `T`. Returns `None` when the last emitted
    /// window already ended at the last snippet.
    pub fn finish(&mut self, out: &mut [f32]) -> Result<Option<Emitted>, WindowError> {
        if out.len() != self.ring.len() {
            return Err(WindowError::Length { what: "window output", expected: self.ring.len(), actual: out.len() });
        }
        let t = self.tscale as u64;
        if self.count == 0 {
            return Err(WindowError::Empty);
        }
        if self.count < t {
            let valid = self.count as usize;
            self.copy_window(out, valid);
            self.last_start = Some(0);
            return Ok(Some(Emitted { start: 0, valid }));
        }
        let start = self.count - t;
        if self.last_start == Some(start) {
            return Ok(None);
        }
        self.copy_window(out, self.tscale);
        self.last_start = Some(start);
        Ok(Some(Emitted { start, valid: self.tscale }))
    }

    /// Ends the stream on the hop grid (the stream semantics, [`crate::post::stream`]):
    /// windows only ever start at multiples of the hop, so the last one is the next
    /// multiple after the last complete window, edge-padded — emitted when the stream has
    /// snippets the complete windows did not cover (or none was complete: a stream shorter
    /// than `T` is one padded window at 0). Returns `None` when every snippet is covered.
    /// Called again, it returns `None`.
    pub fn finish_on_grid(&mut self, out: &mut [f32]) -> Result<Option<Emitted>, WindowError> {
        if out.len() != self.ring.len() {
            return Err(WindowError::Length { what: "window output", expected: self.ring.len(), actual: out.len() });
        }
        if self.count == 0 {
            return Err(WindowError::Empty);
        }
        let t = self.tscale as u64;
        let start = match self.last_start {
            None => 0,
            Some(last) if self.count <= last + t => return Ok(None),
            Some(last) => last + self.hop as u64,
        };
        // The windows so far were complete (or this is the only one), so fewer than T
        // snippets follow `start`, all still in the ring.
        let valid = (self.count - start) as usize;
        self.copy_window(out, valid);
        self.last_start = Some(start);
        Ok(Some(Emitted { start, valid }))
    }

    /// Copies the last `valid` snippets (oldest first) into `out` as `[C, T]`, repeating the
    /// newest one in the remaining columns.
    fn copy_window(&self, out: &mut [f32], valid: usize) {
        let (t, c) = (self.tscale, self.channels);
        let first = self.count - valid as u64;
        for col in 0..t {
            let pos = first + col.min(valid - 1) as u64;
            let slot = (pos % t as u64) as usize;
            let snippet = &self.ring[slot * c..(slot + 1) * c];
            for (ch, &v) in snippet.iter().enumerate() {
                out[ch * t + col] = v;
            }
        }
    }
}

/// Resamples a whole video of `L` snippets (`features`, `[L, C]` row-major) to `T`
/// positions, written as `[C, T]` into `out`, as BSN's `poolData` (mean pooling, one bin,
/// three samples) does.
///
/// Our reading of `poolData`, in snippet units (BSN works in seconds with snippet period
/// `st`; dividing every position by `st` gives these): snippet `j` sits at its centre
/// `j + 0.5`; output position `i` covers `[(1/T·i)·L, (1/T·(i+1))·L]`, clamped to
/// `[0.5 + ε, L − 0.5 − ε]` where `ε` is BSN's 0.0001 s in snippets (`0.0001 / st`); a
/// position entirely before the first centre or after the last one is all zeros; otherwise
/// the mean of the values linearly interpolated at three equally spaced points
/// (`xmin + (xmax − xmin)/2 · k`, `k = 0, 1, 2`). A single-snippet video is repeated.
/// Arithmetic is float64, stored as f32.
pub fn rescale_to_window(
    features: &[f32],
    snippets: usize,
    channels: usize,
    tscale: usize,
    epsilon: f64,
    out: &mut [f32],
) -> Result<(), WindowError> {
    if snippets == 0 || channels == 0 || tscale == 0 || !(epsilon.is_finite() && epsilon >= 0.0) {
        return Err(WindowError::Parameters);
    }
    let expected = snippets.checked_mul(channels).ok_or(WindowError::Parameters)?;
    if features.len() != expected {
        return Err(WindowError::Length { what: "features", expected, actual: features.len() });
    }
    let out_len = tscale.checked_mul(channels).ok_or(WindowError::Parameters)?;
    if out.len() != out_len {
        return Err(WindowError::Length { what: "window output", expected: out_len, actual: out.len() });
    }
    if let Some(index) = features.iter().position(|x| !x.is_finite()) {
        return Err(WindowError::NonFinite { index });
    }
    let row = |j: usize| &features[j * channels..(j + 1) * channels];
    if snippets == 1 {
        for (ch, &v) in row(0).iter().enumerate() {
            out[ch * tscale..(ch + 1) * tscale].fill(v);
        }
        return Ok(());
    }
    let len = snippets as f64;
    let first = 0.5;
    let last = len - 0.5;
    let inv_t = 1.0 / tscale as f64;
    for i in 0..tscale {
        let xmin = (first + epsilon).max(inv_t * i as f64 * len);
        let xmax = (last - epsilon).min(inv_t * (i + 1) as f64 * len);
        if xmax < first || xmin > last {
            for ch in 0..channels {
                out[ch * tscale + i] = 0.0;
            }
            continue;
        }
        let plen = (xmax - xmin) / 2.0;
        let mut acc = [0.0f64; 3];
        let mut taps = [(0usize, 0usize, 0.0f64); 3];
        for (k, tap) in taps.iter_mut().enumerate() {
            let x = xmin + plen * k as f64;
            // Interpolate between centres j + 0.5 and j + 1.5.
            let pos = (x - 0.5).clamp(0.0, len - 1.0);
            let j = (libm::floor(pos) as usize).min(snippets - 2);
            *tap = (j, j + 1, pos - j as f64);
        }
        for ch in 0..channels {
            for (k, &(j0, j1, w)) in taps.iter().enumerate() {
                let (a, b) = (row(j0)[ch] as f64, row(j1)[ch] as f64);
                acc[k] = a + (b - a) * w;
            }
            out[ch * tscale + i] = ((acc[0] + acc[1] + acc[2]) / 3.0) as f32;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(len: usize, t: usize, c: usize, hop: usize) -> heapless::Vec<(Emitted, [f32; 8]), 64> {
        let mut storage = [0.0f32; 8];
        let mut buf = WindowBuffer::new(&mut storage[..t * c], t, c, hop).unwrap();
        let mut out = [0.0f32; 8];
        let mut got = heapless::Vec::new();
        for j in 0..len {
            let snippet: heapless::Vec<f32, 8> = (0..c).map(|ch| (j * 10 + ch) as f32).collect();
            if let Some(e) = buf.push(&snippet, &mut out[..t * c]).unwrap() {
                got.push((e, out)).unwrap();
            }
        }
        if let Some(e) = buf.finish(&mut out[..t * c]).unwrap() {
            got.push((e, out)).unwrap();
        }
        got
    }

    #[test]
    fn windows_hop_and_final_alignment() {
        // T = 4, C = 2, hop 2, 9 snippets: windows at 0, 2, 4, then 5 aligned to the end.
        let got = stream(9, 4, 2, 2);
        let starts: heapless::Vec<u64, 8> = got.iter().map(|(e, _)| e.start).collect();
        assert_eq!(&starts[..], &[0, 2, 4, 5]);
        // Window at 5: snippets 5..9, channel-major.
        let w = got[3].1;
        assert_eq!(&w[..8], &[50., 60., 70., 80., 51., 61., 71., 81.]);
        // Exactly aligned: 8 snippets give 0, 2, 4 and nothing from finish.
        let got = stream(8, 4, 2, 2);
        assert_eq!(got.len(), 3);
    }

    #[test]
    fn short_stream_is_edge_padded() {
        let got = stream(3, 4, 2, 2);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].0, Emitted { start: 0, valid: 3 });
        assert_eq!(&got[0].1[..8], &[0., 10., 20., 20., 1., 11., 21., 21.]);
    }

    #[test]
    fn finishing_on_the_grid_pads_the_next_hop() {
        // Against direct indexing: for every T, hop and length, the windows start at
        // multiples of the hop, cover every snippet, and hold snippet `start + col` (the
        // last real one in the padding), with snippet j channel ch = 10·j + ch.
        extern crate std;
        use std::vec;
        for t in 1..7usize {
            for hop in 1..=t {
                for len in 1..30usize {
                    let c = 2;
                    let mut storage = vec![0.0f32; t * c];
                    let mut buf = WindowBuffer::new(&mut storage, t, c, hop).unwrap();
                    let mut out = vec![0.0f32; t * c];
                    let mut got = std::vec::Vec::new();
                    let check = |e: Emitted, out: &[f32]| {
                        for col in 0..t {
                            let j = e.start as usize + col.min(e.valid - 1);
                            for ch in 0..c {
                                assert_eq!(out[ch * t + col], (j * 10 + ch) as f32, "t {t} hop {hop} len {len}");
                            }
                        }
                    };
                    for j in 0..len {
                        let snippet = [(j * 10) as f32, (j * 10 + 1) as f32];
                        if let Some(e) = buf.push(&snippet, &mut out).unwrap() {
                            check(e, &out);
                            got.push(e);
                        }
                    }
                    if let Some(e) = buf.finish_on_grid(&mut out).unwrap() {
                        check(e, &out);
                        got.push(e);
                    }
                    assert_eq!(buf.finish_on_grid(&mut out), Ok(None));
                    let ctx = (t, hop, len);
                    for (k, e) in got.iter().enumerate() {
                        assert_eq!(e.start, (k * hop) as u64, "{ctx:?}");
                        assert_eq!(e.valid, t.min(len - k * hop), "{ctx:?}");
                    }
                    let last = got.last().unwrap();
                    assert_eq!(last.start as usize + last.valid, len, "{ctx:?}: the last snippet is covered");
                    // No window is redundant: each covers a snippet the one before did not.
                    for w in got.windows(2) {
                        assert!(w[1].start as usize + w[1].valid > w[0].start as usize + w[0].valid, "{ctx:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn rejected_snippet_leaves_state() {
        let mut storage = [0.0f32; 4];
        let mut buf = WindowBuffer::new(&mut storage, 2, 2, 1).unwrap();
        let mut out = [0.0f32; 4];
        assert!(buf.push(&[1.0, f32::NAN], &mut out).is_err());
        assert!(buf.push(&[1.0], &mut out).is_err());
        assert_eq!(buf.count(), 0);
        assert_eq!(buf.finish(&mut out), Err(WindowError::Empty));
    }

    #[test]
    fn rescale_identity_when_lengths_match() {
        // L = T: bin i covers [i, i+1]; points i (clamped), i+0.5, i+1 → mean of a linear
        // ramp is the ramp's value at the centre for interior bins.
        let feats: [f32; 6] = [0., 1., 2., 3., 4., 5.];
        let mut out = [0.0f32; 6];
        rescale_to_window(&feats, 6, 1, 6, 0.0, &mut out).unwrap();
        for i in 1..5 {
            assert!((out[i] - i as f32).abs() < 1e-6, "{out:?}");
        }
    }
}

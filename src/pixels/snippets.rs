//! Snippet sampling: which frames of a snippet go through the backbone (module docs of
//! [`crate::pixels`], "Sampling"), and [`SnippetFrames`], the stream of each snippet's
//! preprocessed frames read from a [`FrameSource`] one frame at a time.

use super::preprocess::{Preprocess, Resized};
use super::{FrameRate, FrameSource, PixelError, PixelErrorKind, RgbFrame};

/// How snippets are cut and sampled: `L` frames per snippet (`--snippet-frames`), `K` frames
/// per snippet through the backbone (`--frames-per-snippet`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sampling {
    snippet_frames: usize,
    per_snippet: usize,
}

impl Sampling {
    /// `L` frames per snippet, `K` of them sampled: `1 ≤ K ≤ L`.
    pub fn new(snippet_frames: usize, per_snippet: usize) -> Result<Sampling, PixelError> {
        if snippet_frames == 0 || per_snippet == 0 || per_snippet > snippet_frames {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!(
                    "frames per snippet {per_snippet} must be in 1..=snippet frames ({snippet_frames}), and snippet frames at least 1"
                ),
            ));
        }
        Ok(Sampling { snippet_frames, per_snippet })
    }

    /// mmaction2's: 16 frames per snippet, the centre one.
    pub fn centre_of_16() -> Sampling {
        Sampling { snippet_frames: 16, per_snippet: 1 }
    }

    /// `L`.
    pub fn snippet_frames(&self) -> usize {
        self.snippet_frames
    }

    /// `K`.
    pub fn per_snippet(&self) -> usize {
        self.per_snippet
    }

    /// The offset within its snippet of sampled frame `j` (`0 ≤ j < K`):
    /// `⌊(2j + 1)·L / (2K)⌋`, the centre of the `j`-th of `K` equal parts (`L/2` for `K = 1`).
    /// Strictly increasing in `j` (parts are at least one frame long since `K ≤ L`).
    pub fn offset(&self, j: usize) -> usize {
        (2 * j + 1) * self.snippet_frames / (2 * self.per_snippet)
    }

    /// All `K` offsets, increasing.
    pub fn offsets(&self) -> Vec<usize> {
        (0..self.per_snippet).map(|j| self.offset(j)).collect()
    }
}

/// What a video turned out to be, once read to its end.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VideoSummary {
    /// Frames in the video (the dropped trailing partial snippet's included).
    pub frames: u64,
    /// Complete snippets (features).
    pub snippets: u64,
    /// Frame rate.
    pub rate: FrameRate,
    /// The sampling.
    pub sampling: Sampling,
}

impl VideoSummary {
    /// `frames / fps`.
    pub fn duration_second(&self) -> f64 {
        self.frames as f64 / self.rate.fps()
    }

    /// mmaction2's corrected duration: the seconds the complete snippets cover,
    /// `⌊frames / L⌋·L / frames · duration = snippets·L / fps` (what its BMN dataset
    /// reports segments over, `feature_frame / video_frame · duration_second`).
    pub fn duration_corrected(&self) -> f64 {
        (self.snippets * self.sampling.snippet_frames as u64) as f64 / self.rate.fps()
    }

    /// Frames of the dropped trailing partial snippet.
    pub fn dropped_frames(&self) -> u64 {
        self.frames - self.snippets * self.sampling.snippet_frames as u64
    }
}

/// One snippet's preprocessed frames.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SampledFrames {
    /// `K · 3 · crop · crop` values: `K` NCHW images.
    pub data: Vec<f32>,
}

/// A stream of snippets: reads a source one frame at a time, converts and preprocesses only
/// each snippet's `K` sampled frames, skips the others; a trailing partial snippet is
/// dropped. Holds one frame and one preprocessed tensor per sampled frame.
pub struct SnippetFrames<S: FrameSource> {
    source: S,
    sampling: Sampling,
    offsets: Vec<usize>,
    resized: Resized,
    frame: RgbFrame,
    snippets: u64,
    ended: bool,
}

impl<S: FrameSource> SnippetFrames<S> {
    /// Snippets of `source`, sampled by `sampling`, preprocessed by `preprocess`.
    pub fn new(mut source: S, sampling: Sampling, preprocess: &Preprocess) -> Result<Self, PixelError> {
        let (w, h) = source.size();
        let resized = preprocess.plan(w, h)?;
        source.hint_needed(&resized.source_rows(), &resized.source_cols());
        Ok(SnippetFrames {
            source,
            offsets: sampling.offsets(),
            sampling,
            resized,
            frame: RgbFrame::default(),
            snippets: 0,
            ended: false,
        })
    }

    /// Values of one preprocessed frame (`3 · crop · crop`).
    pub fn frame_len(&self) -> usize {
        self.resized.output_len()
    }

    /// The sampling.
    pub fn sampling(&self) -> Sampling {
        self.sampling
    }

    /// The source.
    pub fn source(&self) -> &S {
        &self.source
    }

    /// The fused resize + crop in use.
    pub fn resized(&self) -> &Resized {
        &self.resized
    }

    /// Reads the next snippet's `K` preprocessed frames into `out` (`K · frame_len()`
    /// values): `Ok(false)` at the end (a trailing partial snippet is read and dropped). An
    /// error (a truncated stream, an unreadable frame) leaves the snippets already returned
    /// valid; the stream must not be read further.
    pub fn next_snippet(&mut self, out: &mut [f32]) -> Result<bool, PixelError> {
        let n = self.frame_len();
        if out.len() != n * self.offsets.len() {
            return Err(PixelError::new(
                PixelErrorKind::Parameter,
                format!(
                    "snippet buffer has {} values, {} frames need {}",
                    out.len(),
                    self.offsets.len(),
                    n * self.offsets.len()
                ),
            ));
        }
        if self.ended {
            return Ok(false);
        }
        let mut next = 0;
        for f in 0..self.sampling.snippet_frames {
            let more = if self.offsets.get(next) == Some(&f) {
                let got = self.source.read_frame(&mut self.frame)?;
                if got {
                    self.resized.apply(&self.frame, &mut out[next * n..(next + 1) * n])?;
                    next += 1;
                }
                got
            } else {
                self.source.skip_frame()?
            };
            if !more {
                self.ended = true;
                return Ok(false);
            }
        }
        self.snippets += 1;
        Ok(true)
    }

    /// The video so far (complete once [`Self::next_snippet`] returned `Ok(false)`).
    pub fn summary(&self) -> VideoSummary {
        VideoSummary {
            frames: self.source.frames_read(),
            snippets: self.snippets,
            rate: self.source.rate(),
            sampling: self.sampling,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offsets_are_part_centres() {
        assert_eq!(Sampling::centre_of_16().offsets(), vec![8]);
        assert_eq!(Sampling::new(16, 2).unwrap().offsets(), vec![4, 12]);
        assert_eq!(Sampling::new(16, 4).unwrap().offsets(), vec![2, 6, 10, 14]);
        assert_eq!(Sampling::new(16, 3).unwrap().offsets(), vec![2, 8, 13]); // 16/6 = 2.67, 8, 13.3
        assert_eq!(Sampling::new(16, 16).unwrap().offsets(), (0..16).collect::<Vec<_>>());
        assert_eq!(Sampling::new(5, 1).unwrap().offsets(), vec![2]);
        assert!(Sampling::new(4, 5).is_err());
        assert!(Sampling::new(0, 1).is_err());
        // Always strictly increasing and inside the snippet.
        for l in 1..40 {
            for k in 1..=l {
                let o = Sampling::new(l, k).unwrap().offsets();
                assert!(o.windows(2).all(|w| w[0] < w[1]) && *o.last().unwrap() < l, "L={l} K={k}: {o:?}");
            }
        }
    }

    #[test]
    fn durations() {
        let s = VideoSummary {
            frames: 1000,
            snippets: 62,
            rate: FrameRate::new(25, 1).unwrap(),
            sampling: Sampling::centre_of_16(),
        };
        assert_eq!(s.duration_second(), 40.0);
        assert_eq!(s.duration_corrected(), 992.0 / 25.0);
        assert_eq!(s.dropped_frames(), 8);
    }
}

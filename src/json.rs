//! Proposal serialisation for JSON lines, into a caller-provided buffer (serde-json-core).

use serde::Serialize;

/// One proposal as ActivityNet writes it: `{"segment":[start,end],"score":x}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct SegmentScore {
    /// `[start, end]`, in seconds or normalised time.
    pub segment: [f64; 2],
    /// The proposal's score.
    pub score: f64,
}

/// One proposal of a live stream (`bmn-edge stream`): its segment in seconds of stream
/// time and score, with how many windows had run and how many snippets had arrived when it
/// was emitted: `{"segment":[s,e],"score":x,"window":n,"position":p}`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct StreamLine {
    /// `[start, end]` in seconds since the stream began.
    pub segment: [f64; 2],
    /// The proposal's score after Soft-NMS.
    pub score: f64,
    /// Windows run when it was emitted.
    pub window: u64,
    /// Snippets received when it was emitted.
    pub position: u64,
}

/// The buffer was too small for the serialised proposal.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BufferFull {
    /// The buffer's length.
    pub capacity: usize,
}

impl core::fmt::Display for BufferFull {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "JSON output buffer of {} bytes is too small for one proposal", self.capacity)
    }
}

#[cfg(feature = "std")]
impl std::error::Error for BufferFull {}

/// Writes `p` (a [`SegmentScore`], a [`StreamLine`]) as one JSON object followed by `\n`
/// into `buf`; returns the bytes written. A full buffer is an error and nothing partial is
/// reported as written.
pub fn write_json_line<T: Serialize>(p: &T, buf: &mut [u8]) -> Result<usize, BufferFull> {
    let full = BufferFull { capacity: buf.len() };
    let n = serde_json_core::to_slice(p, buf).map_err(|_| full)?;
    match buf.get_mut(n) {
        Some(b) => {
            *b = b'\n';
            Ok(n + 1)
        }
        None => Err(full),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_serde_json() {
        let p = SegmentScore { segment: [0.1, 12.345678901234567], score: 0.987654321 };
        let mut buf = [0u8; 128];
        let n = write_json_line(&p, &mut buf).unwrap();
        assert_eq!(buf[n - 1], b'\n');
        let back: (heapless::Vec<f64, 2>, f64) = {
            #[derive(serde::Deserialize)]
            struct S {
                segment: heapless::Vec<f64, 2>,
                score: f64,
            }
            let (s, _): (S, usize) = serde_json_core::from_slice(&buf[..n - 1]).unwrap();
            (s.segment, s.score)
        };
        assert_eq!(back.0[0], 0.1);
        assert_eq!(back.0[1], 12.345678901234567);
        assert_eq!(back.1, 0.987654321);
        let mut small = [0u8; 10];
        assert_eq!(write_json_line(&p, &mut small), Err(BufferFull { capacity: 10 }));
    }
}

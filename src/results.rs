//! ActivityNet results files: `{"version", "results": {video: [{segment, score}]}, "external_data"}`.

use crate::json::SegmentScore;
use crate::post::Proposal;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// An ActivityNet proposal results file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ResultsFile {
    /// `"VERSION 1.3"`.
    pub version: String,
    /// Proposals per video id, best first.
    pub results: BTreeMap<String, Vec<SegmentScore>>,
    /// Always `{}` here.
    pub external_data: serde_json::Value,
}

impl Default for ResultsFile {
    fn default() -> Self {
        ResultsFile { version: "VERSION 1.3".into(), results: BTreeMap::new(), external_data: serde_json::json!({}) }
    }
}

/// A results file that cannot be written: a value JSON cannot carry.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultsError {
    /// The video whose proposal is at fault.
    pub video: String,
    /// The proposal's index in that video's list.
    pub index: usize,
    /// The offending proposal.
    pub proposal: SegmentScore,
}

impl std::fmt::Display for ResultsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "proposal {} of video `{}` is not finite (segment [{}, {}], score {}): JSON has no NaN or infinity",
            self.index, self.video, self.proposal.segment[0], self.proposal.segment[1], self.proposal.score
        )
    }
}

impl std::error::Error for ResultsError {}

impl ResultsFile {
    /// Serialises with two-space indentation. A segment bound or score that is NaN or
    /// infinite is an error (serde_json would write it as `null`, which no reader accepts).
    pub fn to_json_pretty(&self) -> Result<String, ResultsError> {
        for (video, list) in &self.results {
            if let Some((index, p)) =
                list.iter().enumerate().find(|(_, p)| !(p.score.is_finite() && p.segment.iter().all(|v| v.is_finite())))
            {
                return Err(ResultsError { video: video.clone(), index, proposal: *p });
            }
        }
        // Maps, strings and finite floats: serde_json cannot fail on them.
        Ok(serde_json::to_string_pretty(self).expect("finite values serialise"))
    }
}

/// Converts normalised proposals to seconds: `[max(0, xmin)·dur, min(1, xmax)·dur]`.
pub fn to_seconds(proposals: &[Proposal], duration: f64) -> Vec<SegmentScore> {
    proposals
        .iter()
        .map(|p| SegmentScore { segment: [p.xmin.max(0.0) * duration, p.xmax.min(1.0) * duration], score: p.score })
        .collect()
}

impl<'de> Deserialize<'de> for SegmentScore {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct Raw {
            segment: [f64; 2],
            score: f64,
        }
        let r = Raw::deserialize(d)?;
        Ok(SegmentScore { segment: r.segment, score: r.score })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_values_are_refused_not_written_as_null() {
        let mut f = ResultsFile::default();
        let ok = SegmentScore { segment: [1.0, 2.5], score: 0.75 };
        f.results.insert("v".into(), vec![ok]);
        let text = f.to_json_pretty().unwrap();
        let back: ResultsFile = serde_json::from_str(&text).unwrap();
        assert_eq!(back, f);
        for bad in [SegmentScore { score: f64::NAN, ..ok }, SegmentScore { segment: [0.0, f64::INFINITY], ..ok }] {
            f.results.insert("w".into(), vec![ok, bad]);
            let e = f.to_json_pretty().unwrap_err();
            assert_eq!((e.video.as_str(), e.index), ("w", 1));
        }
    }
}

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

impl ResultsFile {
    /// Serialises with two-space indentation.
    pub fn to_json_pretty(&self) -> String {
        // Serialising plain maps, strings and finite floats cannot fail.
        serde_json::to_string_pretty(self).unwrap_or_default()
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

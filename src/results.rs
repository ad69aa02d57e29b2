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
    /// Proposals per video id, best first. Read, a video id given twice is an error (a JSON
    /// object with a repeated key would otherwise keep its last value silently).
    #[serde(deserialize_with = "unique_videos")]
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

/// Reads the `results` map, refusing a video id given twice.
fn unique_videos<'de, D: serde::Deserializer<'de>>(d: D) -> Result<BTreeMap<String, Vec<SegmentScore>>, D::Error> {
    struct Visitor;
    impl<'de> serde::de::Visitor<'de> for Visitor {
        type Value = BTreeMap<String, Vec<SegmentScore>>;
        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("an object of videos")
        }
        fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut out = BTreeMap::new();
            while let Some(id) = map.next_key::<String>()? {
                let list: Vec<SegmentScore> = map.next_value()?;
                if out.contains_key(&id) {
                    return Err(serde::de::Error::custom(format!(
                        "video {id:?} is given twice (which of its lists is meant?)"
                    )));
                }
                out.insert(id, list);
            }
            Ok(out)
        }
    }
    d.deserialize_map(Visitor)
}

/// Checks a proposal read from a file for the range its meaning allows: a finite segment
/// `[start, end]` with `start ≤ end`, and a finite, non-negative score.
pub fn check_proposal(p: &SegmentScore) -> Result<(), String> {
    let [s, e] = p.segment;
    if !(s.is_finite() && e.is_finite()) {
        return Err(format!("segment [{s}, {e}] is not finite"));
    }
    if s > e {
        return Err(format!("segment [{s}, {e}] ends before it starts"));
    }
    if !(p.score.is_finite() && p.score >= 0.0) {
        return Err(format!("score {} is not a finite, non-negative number", p.score));
    }
    Ok(())
}

/// The first proposal of `list` that [`check_proposal`] refuses, as a message naming its
/// index.
pub fn check_proposals(list: &[SegmentScore]) -> Result<(), String> {
    for (i, p) in list.iter().enumerate() {
        check_proposal(p).map_err(|m| format!("proposal {i}: {m}"))?;
    }
    Ok(())
}

impl ResultsFile {
    /// Reads a results file (`detect --out`, a shard's), checked: a video id given twice
    /// and a proposal [`check_proposal`] refuses are errors that name them.
    pub fn from_json(text: &str) -> Result<ResultsFile, String> {
        let file: ResultsFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
        for (video, list) in &file.results {
            check_proposals(list).map_err(|m| format!("video {video:?}: {m}"))?;
        }
        Ok(file)
    }
}

/// The whole lines of a `detect --jsonl` log, read for `--resume`.
#[derive(Debug, Clone, PartialEq)]
pub struct ResumeLog {
    /// The videos logged, with their proposals.
    pub videos: BTreeMap<String, Vec<SegmentScore>>,
    /// The length in bytes of the whole lines (what follows is a torn last line).
    pub whole_len: usize,
}

/// Parses a `detect --jsonl` log: one line `{"video": ID, "results": [...]}` per finished
/// video. A line counts once its newline is there (a torn last line is left out, its
/// length reported by `whole_len`); a whole line that is not a log entry, a video logged
/// twice, more than `max_per_video` proposals for one video, or a proposal
/// [`check_proposal`] refuses is an error naming the line (from 1).
pub fn parse_resume_log(bytes: &[u8], max_per_video: usize) -> Result<ResumeLog, (usize, String)> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Entry {
        video: String,
        results: Vec<SegmentScore>,
    }
    let mut videos = BTreeMap::new();
    let mut len = 0;
    for (i, line) in bytes.split_inclusive(|&b| b == b'\n').enumerate() {
        let Some(body) = line.strip_suffix(b"\n") else { break };
        if !body.iter().all(u8::is_ascii_whitespace) {
            let e: Entry = serde_json::from_slice(body)
                .map_err(|e| (i + 1, format!("not a log line of `detect --jsonl`: {e}")))?;
            if e.results.len() > max_per_video {
                return Err((
                    i + 1,
                    format!(
                        "video {:?} has {} proposals; detect logs at most {max_per_video}",
                        e.video,
                        e.results.len()
                    ),
                ));
            }
            check_proposals(&e.results).map_err(|m| (i + 1, format!("video {:?}: {m}", e.video)))?;
            if videos.insert(e.video.clone(), e.results).is_some() {
                return Err((i + 1, format!("video {:?} is logged twice", e.video)));
            }
        }
        len += line.len();
    }
    Ok(ResumeLog { videos, whole_len: len })
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
    fn results_files_are_checked_on_reading() {
        let ok = r#"{"version":"VERSION 1.3","results":{"a":[{"segment":[0.5,1.5],"score":0.25}]},"external_data":{}}"#;
        assert_eq!(ResultsFile::from_json(ok).unwrap().results["a"][0].segment, [0.5, 1.5]);
        let with = |results: &str| format!(r#"{{"version":"VERSION 1.3","results":{results},"external_data":{{}}}}"#);
        let e = ResultsFile::from_json(&with(r#"{"a":[],"a":[]}"#)).unwrap_err();
        assert!(e.contains("\"a\" is given twice"), "{e}");
        for (bad, says) in [
            (r#"[{"segment":[1e308,-1e308],"score":0.5}]"#, "ends before it starts"),
            (r#"[{"segment":[0,1],"score":-7}]"#, "score -7"),
            (r#"[{"segment":[0,1e309],"score":1}]"#, ""),
        ] {
            let e = ResultsFile::from_json(&with(&format!(r#"{{"v":{bad}}}"#))).unwrap_err();
            assert!(e.contains(says), "{e}");
        }
    }

    #[test]
    fn a_resume_log_is_checked_line_by_line() {
        let good = "{\"video\":\"a\",\"results\":[{\"segment\":[0.5,1.0],\"score\":0.5}]}\n";
        let log = parse_resume_log(format!("{good}{{\"vid").as_bytes(), 101).unwrap();
        assert_eq!((log.videos.len(), log.whole_len), (1, good.len()));
        let reversed = "{\"video\":\"b\",\"results\":[{\"segment\":[2.0,1.0],\"score\":0.5}]}\n";
        assert_eq!(parse_resume_log(format!("{good}{reversed}").as_bytes(), 101).unwrap_err().0, 2);
        assert!(parse_resume_log(format!("{good}{good}").as_bytes(), 101).unwrap_err().1.contains("twice"));
        assert!(parse_resume_log(good.as_bytes(), 0).unwrap_err().1.contains("at most 0"));
    }

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

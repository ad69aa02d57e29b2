//! The `detect --jsonl` log as `--resume` reads it: `bmn_edge::results::parse_resume_log`.
//!
//! Properties: no panic; what parses is what `detect` can have written — `whole_len` ends
//! at a line boundary within the input, at most `MAX` proposals per video, every segment
//! ordered and finite, every score finite and non-negative, each video once — and the
//! videos written back as log lines parse again to the same videos.
#![no_main]

use bmn_edge::results::{check_proposal, parse_resume_log};
use libfuzzer_sys::fuzz_target;

/// Proposals per video (`detect --top-k` is at most 101).
const MAX: usize = 101;

fuzz_target!(|data: &[u8]| {
    let Ok(log) = parse_resume_log(data, MAX) else {
        return;
    };
    assert!(log.whole_len <= data.len());
    assert!(log.whole_len == 0 || data[log.whole_len - 1] == b'\n');
    let mut again = Vec::new();
    for (video, list) in &log.videos {
        assert!(list.len() <= MAX);
        for p in list {
            check_proposal(p).expect("an accepted proposal is in range");
        }
        let results: Vec<serde_json::Value> =
            list.iter().map(|p| serde_json::json!({"segment": p.segment, "score": p.score})).collect();
        again.extend_from_slice(serde_json::json!({"video": video, "results": results}).to_string().as_bytes());
        again.push(b'\n');
    }
    let back = parse_resume_log(&again, MAX).expect("written back, a log reads again");
    assert_eq!(back.videos, log.videos);
    assert_eq!(back.whole_len, again.len());
});

//! A shard's results file as `merge` reads it: `bmn_edge::results::ResultsFile::from_json`
//! (serde, a video given twice refused, every proposal checked).
//!
//! Properties: no panic; an accepted file has only proposals in range (ordered finite
//! segments, finite non-negative scores), serialises (`to_json_pretty`) and reads back
//! equal through the same checked reader.
#![no_main]

use bmn_edge::results::{check_proposal, ResultsFile};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(file) = ResultsFile::from_json(text) else {
        return;
    };
    for list in file.results.values() {
        for p in list {
            check_proposal(p).expect("an accepted proposal is in range");
        }
    }
    let json = file.to_json_pretty().expect("checked values are finite and serialise");
    let back = ResultsFile::from_json(&json).expect("read back what was written");
    assert_eq!(back, file);
});

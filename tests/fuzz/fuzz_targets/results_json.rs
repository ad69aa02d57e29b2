//! ActivityNet results JSON: `bmn_edge::eval::Proposals::from_json` (what `eval` reads) and
//! `bmn_edge::results::ResultsFile` (the serde type `detect` writes), then the metric
//! against a fixed ground truth.
//!
//! Properties: no panic; a `ResultsFile` that parses serialises (`to_json_pretty`) and
//! reads back equal, and a text `Proposals::from_json` accepts gives the same proposals
//! through `Proposals::from_results`; the metric is either an error or finite numbers in
//! range.
#![no_main]

use bmn_edge::eval::{evaluate, GroundTruth, Proposals};
use bmn_edge::results::ResultsFile;
use libfuzzer_sys::fuzz_target;
use std::sync::OnceLock;

fn ground_truth() -> &'static GroundTruth {
    static GT: OnceLock<GroundTruth> = OnceLock::new();
    GT.get_or_init(|| {
        GroundTruth::from_videos([
            ("v_a", vec![[0.0, 10.0], [12.5, 30.0]]),
            ("v_b", vec![[1.0, 2.0]]),
            ("0", vec![[0.0, 0.0], [5.0, 1e6]]),
        ])
        .unwrap()
    })
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let proposals = Proposals::from_json(text);
    if let Ok(file) = serde_json::from_str::<ResultsFile>(text) {
        let json = file.to_json_pretty().expect("parsed values are finite and serialise");
        let back: ResultsFile = serde_json::from_str(&json).expect("read back what was written");
        assert_eq!(back, file);
        // from_json is the stricter reader (objects only, where serde also takes a
        // `[segment, score]` list for a proposal): what it takes, from_results takes alike.
        if let Ok(a) = &proposals {
            let b = Proposals::from_results(&file).expect("from_results refuses what from_json accepts");
            assert_eq!(a, &b);
        }
    }
    let Ok(proposals) = proposals else {
        return;
    };
    if let Ok(e) = evaluate(ground_truth(), &proposals) {
        assert_eq!(e.proposals_total, proposals.total());
        assert!(e.proposals_kept >= 1);
        for row in &e.recall {
            assert!(row.iter().all(|r| (0.0..=1.0).contains(r)), "{row:?}");
        }
        assert!(e.average_recall.iter().all(|r| (0.0..=1.0).contains(r)));
        assert!(e.auc.is_finite() && (0.0..=100.0).contains(&e.auc), "auc {}", e.auc);
    }
});

//! ActivityNet ground-truth JSON (`bmn_edge::eval::GroundTruth::from_json`), all subsets
//! and the `validation` subset, then the metric (`eval::evaluate`) with the ground truth's
//! own segments as proposals.
//!
//! Properties: no panic; a ground truth that parses has at least one video, every video at
//! least one finite `[start, end]` with `end ≥ start`, and `num_instances` their count; the
//! metric on it is defined (it has proposals) and its numbers are finite and in range.
#![no_main]

use bmn_edge::eval::{evaluate, GroundTruth, Proposals, NUM_POINTS};
use libfuzzer_sys::fuzz_target;

fn check(gt: &GroundTruth) {
    assert!(gt.num_videos() >= 1);
    let mut instances = 0;
    let mut results = serde_json::Map::new();
    for (id, segs) in gt.videos() {
        assert!(!segs.is_empty(), "video {id:?} without segments");
        for s in segs {
            assert!(s[0].is_finite() && s[1].is_finite() && s[1] >= s[0], "{s:?}");
        }
        instances += segs.len();
        let list: Vec<_> = segs.iter().map(|s| serde_json::json!({"segment": s, "score": 1.0})).collect();
        results.insert(id.to_string(), list.into());
    }
    assert_eq!(gt.num_instances(), instances);

    // The ground truth's own segments as proposals: N = K > 0, so the metric is defined.
    let text = serde_json::json!({ "results": results }).to_string();
    let proposals = Proposals::from_json(&text).expect("the ground truth's segments as proposals");
    assert_eq!(proposals.total(), instances);
    let e = evaluate(gt, &proposals).expect("the metric on the ground truth's own segments");
    assert_eq!((e.videos, e.ground_truths, e.proposals_total), (gt.num_videos(), instances, instances));
    assert_eq!((e.videos_without_proposals, e.proposals_outside), (0, 0));
    assert!(e.proposals_kept >= 1 && e.proposals_kept <= instances);
    for row in &e.recall {
        assert!(row.iter().all(|r| (0.0..=1.0).contains(r)), "{row:?}");
    }
    assert!(e.average_recall.iter().all(|r| (0.0..=1.0).contains(r)));
    assert!(e.average_number.iter().all(|a| a.is_finite() && *a > 0.0));
    assert!(e.auc.is_finite() && (0.0..=100.0).contains(&e.auc), "auc {}", e.auc);
    let s = e.summary();
    assert!(s.ar.iter().all(|a| (0.0..=100.0).contains(a)));
    assert_eq!(e.ar_at(NUM_POINTS), s.ar[3]);
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(gt) = GroundTruth::from_json(text, None) {
        check(&gt);
    }
    if let Ok(gt) = GroundTruth::from_json(text, Some("validation")) {
        check(&gt);
    }
});

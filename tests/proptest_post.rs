//! Properties of candidate selection and Soft-NMS (core only: runs without `std` too).

use bmn_edge::post::{select_candidates, soft_nms, Boundary, Proposal, SoftNmsParams};
use bmn_edge::Convention;
use proptest::prelude::*;

fn convention() -> impl Strategy<Value = Convention> {
    prop_oneof![Just(Convention::Mmaction2), Just(Convention::Paddle)]
}

/// Curves with many exact repeats (a coarse value set) as well as arbitrary values.
fn curve() -> impl Strategy<Value = Vec<f32>> {
    prop_oneof![
        prop::collection::vec(0.0f32..=1.0, 1..120),
        prop::collection::vec((0u8..=8).prop_map(|v| v as f32 / 8.0), 1..60),
    ]
}

/// The rules of reference §3 written plainly with float64 comparisons.
fn float_rule(p: &[f32], conv: Convention, boundary: Boundary) -> Vec<bool> {
    let t = p.len();
    let v: Vec<f64> = p.iter().map(|&x| x as f64).collect();
    let max = v.iter().cloned().fold(f64::MIN, f64::max);
    let mut out = vec![false; t];
    for i in 0..t {
        out[i] = match conv {
            Convention::Mmaction2 => i >= 1 && i + 1 < t && ((v[i] > v[i - 1] && v[i] > v[i + 1]) || v[i] > 0.5 * max),
            Convention::Paddle => {
                let l = if i == 0 { 0.0 } else { v[i - 1] };
                let r = if i + 1 == t { 0.0 } else { v[i + 1] };
                (v[i] > l && v[i] > r) || v[i] > 0.5 * max
            }
        };
    }
    match boundary {
        Boundary::Start => out[0] = true,
        Boundary::End => out[t - 1] = true,
    }
    out
}

fn grid_proposals(t: u32) -> impl Strategy<Value = Vec<Proposal>> {
    prop::collection::vec((0..t, 1..=t, (0u8..=16).prop_map(|v| v as f64 / 16.0), 0.0f64..1.0, any::<bool>()), 0..160)
        .prop_map(move |raw| {
            raw.into_iter()
                .map(|(s, len, coarse, fine, use_coarse)| {
                    let e = (s + len).min(t).max(s + 1);
                    let score = if use_coarse { coarse } else { fine };
                    Proposal::new(s, e, s as f64 / t as f64, e as f64 / t as f64, score)
                })
                .collect()
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn candidates_equal_the_float_rule(p in curve(), conv in convention(), start in any::<bool>()) {
        let boundary = if start { Boundary::Start } else { Boundary::End };
        let mut out = vec![false; p.len()];
        let count = select_candidates(&p, conv, boundary, &mut out).unwrap();
        let want = float_rule(&p, conv, boundary);
        prop_assert_eq!(&out, &want);
        prop_assert_eq!(count, want.iter().filter(|&&b| b).count());
        prop_assert!(count >= 1 && count <= p.len());
    }

    #[test]
    fn soft_nms_is_bounded_sorted_and_only_decays(
        t in prop_oneof![Just(40u32), Just(100u32), 2u32..64],
        input in grid_proposals(100),
        conv in convention(),
    ) {
        // Re-grid the generated proposals onto T.
        let input: Vec<Proposal> = input.into_iter().map(|p| {
            let s = p.start % t;
            let e = (s + p.len()).min(t);
            Proposal::new(s, e, s as f64 / t as f64, e as f64 / t as f64, p.score)
        }).collect();
        let params = SoftNmsParams::for_convention(conv);
        let mut v = input.clone();
        let (kept, _) = soft_nms(&mut v, &params, Some(t));
        let n = input.len();
        let expected_kept = match conv {
            Convention::Mmaction2 => n.min(101),
            Convention::Paddle => n.saturating_sub(1).min(101),
        };
        prop_assert_eq!(kept, expected_kept);
        for w in v[..kept].windows(2) {
            prop_assert!(w[0].rank_cmp(&w[1]) != core::cmp::Ordering::Greater, "output not sorted");
        }
        // Every kept proposal comes from the input with a score that never increased, and a
        // proposal that overlaps no other one keeps its score exactly.
        let mut unused = vec![true; n];
        for k in &v[..kept] {
            let src = (0..n).find(|&i| unused[i] && input[i].start == k.start && input[i].end == k.end && k.score <= input[i].score);
            prop_assert!(src.is_some(), "kept proposal {:?} has no source with a higher score", k);
            let i = src.unwrap();
            unused[i] = false;
            let isolated = input.iter().enumerate().all(|(j, o)| j == i || o.end <= k.start || o.start >= k.end);
            if isolated {
                prop_assert_eq!(k.score, input[i].score);
            }
        }
    }

    #[test]
    fn integer_fast_path_equals_float64_path(input in grid_proposals(40), conv in convention()) {
        let params = SoftNmsParams::for_convention(conv);
        let mut a = input.clone();
        let mut b = input;
        let (ka, stats) = soft_nms(&mut a, &params, Some(40));
        let (kb, float_stats) = soft_nms(&mut b, &params, None);
        prop_assert_eq!(ka, kb);
        prop_assert_eq!(&a[..ka], &b[..kb]);
        prop_assert_eq!(stats.float_tests, 0);
        prop_assert_eq!(stats.decays, float_stats.decays);
    }
}

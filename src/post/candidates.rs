//! Boundary candidates: which snippets may start or end a proposal (reference §3).

use super::encode::{half_key, key32, wide_key};
use super::PostError;
use crate::config::Convention;

/// Which boundary curve is being thresholded (decides the forced position).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Boundary {
    /// The start curve: position 0 is always a candidate.
    Start,
    /// The end curve: position `T − 1` is always a candidate.
    End,
}

/// Marks the candidates of `curve` in `out` (same length) and returns how many there are.
///
/// * mmaction2: `i` in `1..T−1` is on if it is a strict local peak, else if
///   `p[i] > 0.5·max`; position 0 (start) or `T−1` (end) is forced on, the other end is
///   never on.
/// * paddle: on if `p[i] > 0.5·max` or a strict peak with zero padding outside the curve
///   (so both ends can be peaks); position 0 (start) or `T−1` (end) forced on.
///
/// All comparisons are integer comparisons of [`super::encode`] keys, equal to the float
/// reference's decisions.
pub fn select_candidates(
    curve: &[f32],
    convention: Convention,
    boundary: Boundary,
    out: &mut [bool],
) -> Result<usize, PostError> {
    let t = curve.len();
    if out.len() != t {
        return Err(PostError::Length { what: "candidate flags", expected: t, actual: out.len() });
    }
    if let Some(index) = curve.iter().position(|x| !x.is_finite()) {
        return Err(PostError::NonFinite { what: "boundary curve", index });
    }
    if t == 0 {
        return Ok(0);
    }
    let max = curve.iter().copied().fold(curve[0], |m, x| if key32(x) > key32(m) { x } else { m });
    let half = half_key(max);
    let high = |i: usize| wide_key(curve[i]) > half;
    match convention {
        Convention::Mmaction2 => {
            out.fill(false);
            for i in 1..t.saturating_sub(1) {
                let k = key32(curve[i]);
                let peak = k > key32(curve[i + 1]) && k > key32(curve[i - 1]);
                out[i] = peak || high(i);
            }
        }
        Convention::Paddle => {
            let zero = key32(0.0);
            for i in 0..t {
                let k = key32(curve[i]);
                let left = if i == 0 { zero } else { key32(curve[i - 1]) };
                let right = if i + 1 == t { zero } else { key32(curve[i + 1]) };
                out[i] = (k > left && k > right) || high(i);
            }
        }
    }
    match boundary {
        Boundary::Start => out[0] = true,
        Boundary::End => out[t - 1] = true,
    }
    Ok(out.iter().filter(|&&b| b).count())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_curves() {
        let mut out = [false; 5];
        // Flat non-zero: no peaks, but every value is above half the maximum.
        assert_eq!(select_candidates(&[0.4; 5], Convention::Mmaction2, Boundary::Start, &mut out).unwrap(), 4);
        assert_eq!(out, [true, true, true, true, false]);
        // Flat zero: nothing but the forced end.
        assert_eq!(select_candidates(&[0.0; 5], Convention::Paddle, Boundary::End, &mut out).unwrap(), 1);
        assert_eq!(out, [false, false, false, false, true]);
        // Paddle: flat non-zero curve's ends are peaks against the zero padding? No: they
        // equal their inner neighbour, so only the half-maximum rule fires (everywhere).
        assert_eq!(select_candidates(&[0.4; 5], Convention::Paddle, Boundary::Start, &mut out).unwrap(), 5);
    }

    #[test]
    fn paddle_end_peaks_and_strictness() {
        let curve = [0.3, 0.1, 0.05, 0.1, 0.2];
        let mut out = [false; 5];
        select_candidates(&curve, Convention::Paddle, Boundary::Start, &mut out).unwrap();
        // max 0.3: half 0.15; 0.3 > .15, 0.2 > .15; ends are peaks with zero padding.
        assert_eq!(out, [true, false, false, false, true]);
        select_candidates(&curve, Convention::Mmaction2, Boundary::End, &mut out).unwrap();
        // mmaction2 never looks at 0 for the end curve; 4 is forced.
        assert_eq!(out, [false, false, false, false, true]);
        // Exactly half is not above half.
        let curve = [0.5, 0.25, 1.0, 0.25, 0.5];
        select_candidates(&curve, Convention::Mmaction2, Boundary::Start, &mut out).unwrap();
        assert_eq!(out, [true, false, true, false, false]);
    }

    #[test]
    fn errors() {
        let mut out = [false; 3];
        assert!(select_candidates(&[0.1, f32::NAN, 0.2], Convention::Paddle, Boundary::Start, &mut out).is_err());
        assert!(select_candidates(&[0.1, 0.2], Convention::Paddle, Boundary::Start, &mut out).is_err());
    }
}

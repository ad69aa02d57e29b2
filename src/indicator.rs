//! A proposal indicator for a board: one digital output (an LED, a relay, a GPIO line to
//! another device) driven high exactly while a proposal scoring at least a threshold covers
//! the current position of the stream, low otherwise. Generic over
//! [`embedded_hal::digital::OutputPin`] (embedded-hal 1.0, feature `hal`); no_std, no
//! allocation, no panics.
//!
//! ## Positions and intervals
//!
//! Positions are snippet indices of the stream (`u64`: the video's snippet `0, 1, 2, …`),
//! and a proposal is `(start, end, score)` in the same units, as the post-processing core
//! produces them: [`Proposal`](crate::post::Proposal)'s `start` and `end` are grid
//! positions and, after [`VideoMerger`](crate::post::VideoMerger), snippet indices of the
//! video (`u64::from(p.start)`, `u64::from(p.end)`, `p.score`).
//!
//! A proposal covers position `p` when `start <= p < end`: the interval is **half-open**.
//! That is the core's own convention — in both conventions a proposal of snippets `s..=e`
//! has `end = e + 1` (the grid end is exclusive; see [`Proposal`](crate::post::Proposal)) —
//! so the pin is high on exactly the proposal's snippets: a closed interval would keep it
//! high one snippet too long. It also means that two proposals `[a, b)` and `[b, c)` light
//! the pin without a gap and without an extra snippet, and that an empty proposal
//! (`start == end`, or the malformed `start > end`) covers nothing.
//!
//! ## Scores and the threshold
//!
//! A proposal qualifies when `score >= threshold` (a score equal to the threshold lights
//! the pin). A NaN score never qualifies (no comparison with NaN is true). A NaN threshold
//! is refused by [`Indicator::new`] (a [`NanThreshold`], which hands the pin back): every
//! comparison with it would be false and the pin could never go high, which is a
//! configuration mistake rather than an intent. Infinite thresholds are accepted
//! (`-inf`: every proposal with a non-NaN score qualifies; `+inf`: only `+inf` scores).
//!
//! ## Updates and writes
//!
//! [`Indicator::update`] takes the current position and the proposals that may be active
//! (any iterator: a slice of the merger's proposals mapped to tuples, a `heapless::Vec`, a
//! filtered view of a larger store), decides the level — high when any of them qualifies
//! and covers the position — and writes the pin **only when that level differs from the
//! level the pin is known to have**. The decision depends on the arguments alone, so
//! positions need not increase, and the cost is one pass over the proposals (stopping at
//! the first that lights the pin).
//!
//! The level the pin is known to have starts *unknown* (the indicator does not assume what
//! the pin was left at), so the first update always writes. A write that fails is returned
//! as an [`IndicatorError`] carrying the pin's error (and its
//! [`kind`](embedded_hal::digital::Error::kind)); the level is then unknown again — a
//! failed write may have left the line either way — so the next update writes again,
//! whatever level it decides. No error is swallowed and no write is repeated needlessly.
//!
//! ## Example
//!
//! ```
//! use bmn_edge::indicator::Indicator;
//! use bmn_edge::post::Proposal;
//! use core::convert::Infallible;
//! use embedded_hal::digital::{ErrorType, OutputPin};
//!
//! /// A pin that records its level and counts its writes.
//! struct Led {
//!     high: bool,
//!     writes: u32,
//! }
//! impl ErrorType for Led {
//!     type Error = Infallible;
//! }
//! impl OutputPin for Led {
//!     fn set_low(&mut self) -> Result<(), Infallible> {
//!         self.high = false;
//!         self.writes += 1;
//!         Ok(())
//!     }
//!     fn set_high(&mut self) -> Result<(), Infallible> {
//!         self.high = true;
//!         self.writes += 1;
//!         Ok(())
//!     }
//! }
//!
//! // Proposals in video snippets, as the merger holds them (xmin/xmax do not matter here).
//! let merged = [
//!     Proposal::new(10, 20, 0.10, 0.20, 0.8), // snippets 10..=19
//!     Proposal::new(15, 30, 0.15, 0.30, 0.4), // below the threshold: never lights the pin
//! ];
//! let mut indicator = Indicator::new(Led { high: false, writes: 0 }, 0.5).unwrap();
//! for position in 0..40u64 {
//!     let active = merged.iter().map(|p| (u64::from(p.start), u64::from(p.end), p.score));
//!     let high = indicator.update(position, active).unwrap();
//!     assert_eq!(high, (10..20).contains(&position));
//! }
//! // Three writes in 40 updates: low at 0, high at 10, low at 20.
//! assert_eq!(indicator.release().writes, 3);
//!
//! // A NaN threshold is refused, and the pin comes back.
//! let Err(refused) = Indicator::new(Led { high: false, writes: 0 }, f64::NAN) else {
//!     panic!("a NaN threshold was accepted");
//! };
//! assert_eq!(refused.into_pin().writes, 0);
//! ```

use core::fmt;
use embedded_hal::digital::{self, OutputPin};

/// Drives an output pin high exactly while a proposal scoring at least the threshold covers
/// the current position (see the [module documentation](self) for the semantics).
#[derive(Debug)]
pub struct Indicator<P> {
    pin: P,
    threshold: f64,
    /// The level the pin is known to have: `None` before the first successful write and
    /// after a failed one.
    level: Option<bool>,
}

impl<P: OutputPin> Indicator<P> {
    /// An indicator on `pin` lighting for proposals with `score >= threshold`. The pin is not
    /// written until the first [`update`](Self::update).
    ///
    /// A NaN `threshold` is refused: the error hands `pin` back.
    pub fn new(pin: P, threshold: f64) -> Result<Self, NanThreshold<P>> {
        if threshold.is_nan() {
            return Err(NanThreshold { pin });
        }
        Ok(Indicator { pin, threshold, level: None })
    }

    /// Sets the pin for `position`: high when one of `active`'s `(start, end, score)`
    /// proposals has `start <= position < end` and `score >= threshold`, low otherwise.
    /// Writes the pin only when that level is not the one it is known to have.
    ///
    /// Returns the level decided (`true`: high). A failed write is returned with the pin's
    /// error; the pin's level is then unknown, and the next update writes again.
    pub fn update<I>(&mut self, position: u64, active: I) -> Result<bool, IndicatorError<P::Error>>
    where
        I: IntoIterator<Item = (u64, u64, f64)>,
    {
        let threshold = self.threshold;
        let high =
            active.into_iter().any(|(start, end, score)| start <= position && position < end && score >= threshold);
        self.drive(high)?;
        Ok(high)
    }

    /// Writes `high` unless the pin is known to be at that level already.
    fn drive(&mut self, high: bool) -> Result<(), IndicatorError<P::Error>> {
        if self.level == Some(high) {
            return Ok(());
        }
        // Unknown until the write has succeeded: a failed write may have left either level.
        self.level = None;
        let written = if high { self.pin.set_high() } else { self.pin.set_low() };
        written.map_err(|error| IndicatorError { error, high })?;
        self.level = Some(high);
        Ok(())
    }
}

impl<P> Indicator<P> {
    /// The level the pin is known to have (`Some(true)`: high), `None` before the first
    /// successful write and after a failed one.
    pub fn level(&self) -> Option<bool> {
        self.level
    }

    /// The score threshold (never NaN).
    pub fn threshold(&self) -> f64 {
        self.threshold
    }

    /// The pin, handed back (at whatever level it was last set to).
    pub fn release(self) -> P {
        self.pin
    }
}

/// [`Indicator::new`] was given a NaN threshold; the pin it was given is handed back.
pub struct NanThreshold<P> {
    pin: P,
}

impl<P> NanThreshold<P> {
    /// The pin that was given to [`Indicator::new`].
    pub fn into_pin(self) -> P {
        self.pin
    }
}

/// Written by hand so that it needs no `Debug` from the pin (`unwrap` works with any pin).
impl<P> fmt::Debug for NanThreshold<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NanThreshold").finish_non_exhaustive()
    }
}

impl<P> fmt::Display for NanThreshold<P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the indicator's score threshold is NaN (no score could ever reach it)")
    }
}

impl<P> core::error::Error for NanThreshold<P> {}

/// Writing the indicator's pin failed: the pin's error, and the level that was being
/// written. The indicator now takes the pin's level as unknown (its next update writes).
///
/// It is itself an [`embedded_hal::digital::Error`]: its [`kind`](Self::kind) is the pin
/// error's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndicatorError<E> {
    error: E,
    high: bool,
}

impl<E> IndicatorError<E> {
    /// The pin's error.
    pub fn pin_error(&self) -> &E {
        &self.error
    }

    /// The pin's error, by value.
    pub fn into_pin_error(self) -> E {
        self.error
    }

    /// The level that was being written (`true`: high).
    pub fn wanted_high(&self) -> bool {
        self.high
    }
}

impl<E: digital::Error> IndicatorError<E> {
    /// The pin error's kind.
    pub fn kind(&self) -> digital::ErrorKind {
        self.error.kind()
    }
}

impl<E: digital::Error> digital::Error for IndicatorError<E> {
    fn kind(&self) -> digital::ErrorKind {
        self.error.kind()
    }
}

impl<E: fmt::Debug> fmt::Display for IndicatorError<E> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let level = if self.high { "high" } else { "low" };
        write!(f, "driving the indicator pin {level} failed: {:?}", self.error)
    }
}

impl<E: fmt::Debug> core::error::Error for IndicatorError<E> {}

#[cfg(all(test, feature = "hal"))]
mod tests {
    extern crate std;

    use super::*;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;
    use std::io::ErrorKind as IoKind;
    use std::vec::Vec;

    fn io_error() -> MockError {
        MockError::Io(IoKind::BrokenPipe)
    }

    /// Runs `positions` through an indicator on a mock expecting exactly `writes`, checks
    /// the returned levels against `levels`, and that every expected write happened.
    fn run(threshold: f64, proposals: &[(u64, u64, f64)], positions: &[u64], levels: &[bool], writes: &[Transaction]) {
        let mut indicator = Indicator::new(Mock::new(writes), threshold).unwrap();
        for (&position, &level) in positions.iter().zip(levels) {
            let got = indicator.update(position, proposals.iter().copied()).unwrap();
            assert_eq!(got, level, "level at position {position}");
            assert_eq!(indicator.level(), Some(level));
        }
        indicator.release().done();
    }

    #[test]
    fn high_exactly_while_a_qualifying_proposal_covers_the_position() {
        // Threshold 0.5. A = [2, 5) and B = [4, 8) overlap (and touch at 4..5); C = [10, 14)
        // scores below the threshold; D = [14, 16) scores exactly the threshold and starts
        // where C ends.
        let proposals = [(2, 5, 0.9), (4, 8, 0.6), (10, 14, 0.3), (14, 16, 0.5)];
        let positions: Vec<u64> = (0..18).collect();
        // Written by hand from the half-open rule: 2..=7 (A ∪ B) and 14..=15 (D).
        #[rustfmt::skip]
        let levels = [
            false, false,                               // 0, 1
            true, true, true, true, true, true,         // 2..=7: A, A, A+B, B (A ended), B, B
            false, false,                               // 8 (B's end), 9
            false, false, false, false,                 // 10..=13: only C, below the threshold
            true, true,                                 // 14, 15: D (score == threshold)
            false, false,                               // 16 (D's end), 17
        ];
        // The first update writes (the level is unknown), then only the four changes.
        let writes = [
            Transaction::set(State::Low),  // 0
            Transaction::set(State::High), // 2
            Transaction::set(State::Low),  // 8
            Transaction::set(State::High), // 14
            Transaction::set(State::Low),  // 16
        ];
        run(0.5, &proposals, &positions, &levels, &writes);
    }

    #[test]
    fn interval_ends_are_half_open() {
        // One proposal [5, 6): exactly one snippet. Probed at its start, its end and around.
        let proposals = [(5, 6, 1.0)];
        let positions = [4, 5, 6, 5, 5, 6, 7];
        let levels = [false, true, false, true, true, false, false];
        let writes = [
            Transaction::set(State::Low),  // 4
            Transaction::set(State::High), // 5
            Transaction::set(State::Low),  // 6
            Transaction::set(State::High), // 5 again: positions need not increase
            Transaction::set(State::Low),  // 6
        ];
        run(0.5, &proposals, &positions, &levels, &writes);
    }

    #[test]
    fn empty_inverted_nan_scored_and_missing_proposals_never_light() {
        let proposals = [(3, 3, 1.0), (7, 2, 1.0), (0, 10, f64::NAN)];
        let positions: Vec<u64> = (0..12).collect();
        run(0.0, &proposals, &positions, &[false; 12], &[Transaction::set(State::Low)]);
        // No proposals at all: low, written once.
        let mut indicator = Indicator::new(Mock::new(&[Transaction::set(State::Low)]), 0.5).unwrap();
        for position in [0, 1, u64::MAX] {
            assert!(!indicator.update(position, core::iter::empty()).unwrap());
        }
        indicator.release().done();
    }

    #[test]
    fn extreme_positions_and_infinite_thresholds() {
        // Up to u64::MAX (exclusive); a threshold of -inf admits any non-NaN score.
        let proposals = [(u64::MAX - 1, u64::MAX, f64::NEG_INFINITY)];
        let positions = [0, u64::MAX - 2, u64::MAX - 1, u64::MAX];
        let levels = [false, false, true, false];
        let writes = [Transaction::set(State::Low), Transaction::set(State::High), Transaction::set(State::Low)];
        run(f64::NEG_INFINITY, &proposals, &positions, &levels, &writes);
        // A threshold of +inf admits only +inf.
        let proposals = [(0, 2, f64::MAX), (1, 3, f64::INFINITY)];
        let writes = [Transaction::set(State::Low), Transaction::set(State::High), Transaction::set(State::Low)];
        run(f64::INFINITY, &proposals, &[0, 1, 2, 3], &[false, true, true, false], &writes);
    }

    #[test]
    fn a_pin_error_is_reported_and_the_next_update_writes_again() {
        let proposals = [(2, 4, 0.9)];
        let writes = [
            Transaction::set(State::Low),                         // 0
            Transaction::set(State::High).with_error(io_error()), // 2: fails
            Transaction::set(State::High),                        // 2 again: retried
            // 3: high, known: no write
            Transaction::set(State::Low).with_error(io_error()), // 4: fails
            Transaction::set(State::Low).with_error(io_error()), // 5: fails again
            Transaction::set(State::High),                       // 3: unknown, so written
            Transaction::set(State::Low),                        // 6
        ];
        let mut indicator = Indicator::new(Mock::new(&writes), 0.5).unwrap();
        let mut update = |position: u64| indicator.update(position, proposals);
        assert_eq!(update(0), Ok(false));
        let err = update(2).unwrap_err();
        assert_eq!(err.pin_error(), &io_error());
        assert!(err.wanted_high());
        assert_eq!(err.kind(), digital::ErrorKind::Other); // the mock's errors are all Other
        assert_eq!(digital::Error::kind(&err), digital::ErrorKind::Other);
        assert_eq!(update(2), Ok(true));
        assert_eq!(update(3), Ok(true));
        let err = update(4).unwrap_err();
        assert!(!err.wanted_high());
        assert_eq!(err.into_pin_error(), io_error());
        assert!(update(5).is_err());
        assert_eq!(update(3), Ok(true));
        assert_eq!(update(6), Ok(false));
        assert_eq!(indicator.level(), Some(false));
        indicator.release().done();
    }

    #[test]
    fn the_level_is_unknown_until_a_write_succeeds() {
        let writes = [Transaction::set(State::Low).with_error(io_error()), Transaction::set(State::Low)];
        let mut indicator = Indicator::new(Mock::new(&writes), 0.5).unwrap();
        assert_eq!(indicator.level(), None);
        assert!(indicator.update(0, []).is_err());
        assert_eq!(indicator.level(), None);
        assert_eq!(indicator.update(0, []), Ok(false));
        assert_eq!(indicator.level(), Some(false));
        indicator.release().done();
    }

    #[test]
    fn a_nan_threshold_is_refused_and_the_pin_handed_back() {
        let refused = Indicator::new(Mock::new(&[]), f64::NAN).unwrap_err();
        assert!(std::format!("{refused}").contains("NaN"));
        // The pin comes back untouched (no write was expected or made).
        refused.into_pin().done();
        let indicator = Indicator::new(Mock::new(&[]), -0.0).unwrap();
        assert_eq!(indicator.threshold(), 0.0);
        indicator.release().done();
    }

    mod model {
        //! The indicator against a model: levels painted on an array from the proposals (not
        //! the indicator's per-position test), and the writes a pin that is only written on
        //! a change of level must see, with failures injected at random.
        use super::*;
        use proptest::prelude::*;

        const SPAN: u64 = 48;

        fn painted(threshold: f64, proposals: &[(u64, u64, f64)]) -> [bool; SPAN as usize] {
            let mut lit = [false; SPAN as usize];
            for &(start, end, score) in proposals {
                if score >= threshold {
                    for p in start..end.min(SPAN) {
                        lit[p as usize] = true;
                    }
                }
            }
            lit
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(256))]
            #[test]
            fn writes_are_the_changes_of_the_painted_level(
                threshold in 0.0..1.0f64,
                proposals in prop::collection::vec((0..SPAN, 0..SPAN, 0.0..1.0f64), 0..8),
                steps in prop::collection::vec((0..SPAN, any::<bool>()), 1..64),
            ) {
                let lit = painted(threshold, &proposals);
                // The expected transactions: a write whenever the level differs from the
                // known one; a failing write makes the known level unknown.
                let mut known = None;
                let mut writes = Vec::new();
                for &(p, fail) in &steps {
                    let level = lit[p as usize];
                    if known != Some(level) {
                        let state = if level { State::High } else { State::Low };
                        let t = Transaction::set(state);
                        writes.push(if fail { t.with_error(io_error()) } else { t });
                        known = if fail { None } else { Some(level) };
                    }
                }
                let mut indicator = Indicator::new(Mock::new(&writes), threshold).unwrap();
                for &(p, _) in &steps {
                    let expected = lit[p as usize];
                    match indicator.update(p, proposals.iter().copied()) {
                        Ok(level) => prop_assert_eq!(level, expected),
                        Err(e) => {
                            prop_assert_eq!(e.wanted_high(), expected);
                            prop_assert_eq!(indicator.level(), None);
                        }
                    }
                }
                indicator.release().done();
            }
        }
    }
}

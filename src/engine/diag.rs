//! Diagnostics: per-stage times of a window and the resident-set trace
//! (`BMN_EDGE_TRACE_RSS=1`).

use std::ops::AddAssign;
use std::time::Duration;

/// Per-stage wall time of one window (or, summed with `+=`, of many).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StageTimes {
    /// Stage A (tract): 1-d convolutions, heads and the projection Z.
    pub stage_a: Duration,
    /// The BM kernel.
    pub bm: Duration,
    /// Stage B: 2-d convolutions.
    pub stage_b: Duration,
}

impl StageTimes {
    /// The three stages together.
    pub fn total(&self) -> Duration {
        self.stage_a + self.bm + self.stage_b
    }
}

impl AddAssign for StageTimes {
    fn add_assign(&mut self, w: StageTimes) {
        self.stage_a += w.stage_a;
        self.bm += w.bm;
        self.stage_b += w.stage_b;
    }
}

/// The memory lines of `/proc/self/status`, in MiB.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Rss {
    /// `VmRSS`: resident now.
    pub current: f64,
    /// `VmHWM`: the peak so far.
    pub peak: f64,
    /// `RssAnon`: anonymous memory (heap, stacks).
    pub anonymous: f64,
    /// `RssFile`: file-backed pages (code, mapped files).
    pub file: f64,
}

impl Rss {
    /// Parses `/proc/self/status` text once; a missing line reads as 0.
    pub fn parse(status: &str) -> Rss {
        let mut r = Rss::default();
        for line in status.lines() {
            let mut f = line.split_whitespace();
            let (Some(key), Some(v)) = (f.next(), f.next().and_then(|v| v.parse::<f64>().ok())) else { continue };
            let mib = v / 1024.0;
            match key {
                "VmRSS:" => r.current = mib,
                "VmHWM:" => r.peak = mib,
                "RssAnon:" => r.anonymous = mib,
                "RssFile:" => r.file = mib,
                _ => {}
            }
        }
        r
    }

    /// This process's, where `/proc` exists.
    pub fn read() -> Option<Rss> {
        std::fs::read_to_string("/proc/self/status").ok().map(|s| Rss::parse(&s))
    }
}

/// With `BMN_EDGE_TRACE_RSS` set, prints the resident set size (current and peak) at
/// `label` to stderr: a memory-budget debugging aid.
pub(crate) fn trace_rss(label: &str) {
    if std::env::var_os("BMN_EDGE_TRACE_RSS").is_none() {
        return;
    }
    let r = Rss::read().unwrap_or_default();
    eprintln!(
        "[rss] {label:<16} {:7.1} MiB (peak {:7.1} MiB; anonymous {:.1}, file-backed {:.1})",
        r.current, r.peak, r.anonymous, r.file
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_lines_parse_to_mib() {
        let s = "Name:\tx\nVmHWM:\t  20480 kB\nVmRSS:\t   10240 kB\nRssAnon:\t    5120 kB\nRssFile:\t 2048 kB\n";
        assert_eq!(Rss::parse(s), Rss { current: 10.0, peak: 20.0, anonymous: 5.0, file: 2.0 });
        assert_eq!(Rss::parse("garbage"), Rss::default());
    }

    #[test]
    fn times_add_up() {
        let ms = Duration::from_millis;
        let mut t = StageTimes { stage_a: ms(1), bm: ms(2), stage_b: ms(3) };
        t += StageTimes { stage_a: ms(10), bm: ms(20), stage_b: ms(30) };
        assert_eq!(t, StageTimes { stage_a: ms(11), bm: ms(22), stage_b: ms(33) });
        assert_eq!(t.total(), ms(66));
    }
}

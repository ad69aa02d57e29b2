//! Pairing start and end candidates through the confidence map (reference §3).

use super::{PostError, Proposal, WindowMaps};
use crate::config::{Convention, PostConfig};

/// Writes every candidate pair into `out` in generation order (duration `d` outer, start
/// `s` inner, as both references loop) and returns how many there are.
///
/// * mmaction2: cell `(d, s)` pairs start `s` with end `e = s + d + 1` (kept if `e < T`);
///   `xmin = s/T`, `xmax = e/T`, score `((ps[s]·pe[e])·cls[d,s])·reg[d,s]` in f32.
/// * paddle: `e = s + d`; `xmin = (1/T)·s`, `xmax = (1/T)·(e+1)`, score
///   `(ps[s]·pe[e])·(reg[d,s]·cls[d,s])` in f32.
///
/// (The paper writes `sqrt(cls·reg)`; every codebase multiplies plainly, and so do we.)
/// A full `out` is [`PostError::Capacity`] with the first proposal that did not fit.
pub fn pair_candidates(
    cfg: &PostConfig,
    maps: &WindowMaps<'_>,
    starts: &[bool],
    ends: &[bool],
    out: &mut [Proposal],
) -> Result<usize, PostError> {
    let (t, d_len) = (cfg.tscale(), cfg.dscale());
    if starts.len() != t || ends.len() != t {
        return Err(PostError::Length { what: "candidate flags", expected: t, actual: starts.len().min(ends.len()) });
    }
    let (ps, pe) = (maps.start(), maps.end());
    let mut n = 0;
    for d in 0..d_len {
        for s in 0..t {
            let conv = cfg.convention();
            // mmaction2 pairs start s with end s + d + 1 (exclusive grid end e); paddle with
            // end snippet s + d, i.e. exclusive grid end s + d + 1 as well.
            let e = match conv {
                Convention::Mmaction2 => s + d + 1,
                Convention::Paddle => s + d,
            };
            if e >= t || !starts[s] || !ends[e] {
                continue;
            }
            let score = match conv {
                Convention::Mmaction2 => ps[s] * pe[e] * maps.cls(d, s) * maps.reg(d, s),
                Convention::Paddle => ps[s] * pe[e] * (maps.reg(d, s) * maps.cls(d, s)),
            };
            let grid_end = match conv {
                Convention::Mmaction2 => e,
                Convention::Paddle => e + 1,
            };
            let p = Proposal::on_grid(s as u32, grid_end as u32, t as u32, conv, score as f64);
            match out.get_mut(n) {
                Some(slot) => *slot = p,
                None => return Err(PostError::Capacity { rejected: p, capacity: out.len() }),
            }
            n += 1;
        }
    }
    Ok(n)
}

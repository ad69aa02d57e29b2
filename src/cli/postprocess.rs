//! `bmn-edge postprocess`: one window's maps → ActivityNet results JSON.

use super::args::{parse_top_k, ConventionArg, SecondsArgs};
use super::output::write_output;
use anyhow::{bail, Result};
use bmn_edge::npy::{expect_shape, read_f32};
use bmn_edge::post::{postprocess_window, Proposal, WindowMaps, DEFAULT_TOP_K};
use bmn_edge::results::{to_seconds, ResultsFile};
use bmn_edge::PostConfig;
use std::path::PathBuf;

/// Arguments of `bmn-edge postprocess`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// Start probabilities, float32/float64 .npy of shape [T].
    #[arg(long)]
    start: PathBuf,
    /// End probabilities, .npy of shape [T].
    #[arg(long)]
    end: PathBuf,
    /// Confidence map, .npy of shape [2, D, T] (channel 0 reg, channel 1 cls).
    #[arg(long)]
    confidence: PathBuf,
    /// Post-processing convention.
    #[arg(long, value_enum, default_value_t)]
    convention: ConventionArg,
    #[command(flatten)]
    seconds: SecondsArgs,
    /// Video id used as the key in the results file.
    #[arg(long, default_value = "video")]
    video_id: String,
    /// Number of proposals to report, 1..=101 (Soft-NMS keeps at most 101).
    #[arg(long, default_value_t = DEFAULT_TOP_K, value_parser = parse_top_k)]
    top_k: usize,
    /// Output file (stdout when absent).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// Runs `bmn-edge postprocess`.
pub fn run(a: Args) -> Result<()> {
    let convention = a.convention.into();
    let duration = a.seconds.scale(convention)?;
    let start = read_f32(&a.start)?;
    expect_shape(&start, &a.start, &[None], "start")?;
    let t = start.shape[0];
    let end = read_f32(&a.end)?;
    expect_shape(&end, &a.end, &[Some(t)], "end (same T as start)")?;
    let conf = read_f32(&a.confidence)?;
    expect_shape(&conf, &a.confidence, &[Some(2), None, Some(t)], "confidence [2, D, T]")?;
    // The maps are probabilities (sigmoid outputs): anything outside [0, 1] is not a BMN's
    // map, and would give scores outside it (8.2e7, negative) without a word.
    for (array, path, what) in
        [(&start, &a.start, "start"), (&end, &a.end, "end"), (&conf, &a.confidence, "confidence")]
    {
        if let Some(i) = array.data.iter().position(|v| !(0.0..=1.0).contains(v)) {
            bail!(
                "{}: {what} value {} at flat index {i} is not a probability in [0, 1]",
                path.display(),
                array.data[i]
            );
        }
    }
    let d = conf.shape[1];
    if t == 0 || d == 0 || d > t {
        bail!("confidence map has D = {d} and T = {t}; need 1 ≤ D ≤ T");
    }
    let cfg = PostConfig::new(t, d, convention)?;
    let maps = WindowMaps::new(&cfg, &start.data, &end.data, &conf.data)?;
    let mut starts = vec![false; t];
    let mut ends = vec![false; t];
    let mut pairs = vec![Proposal::default(); t * d];
    let summary = postprocess_window(&cfg, &maps, &mut starts, &mut ends, &mut pairs, a.top_k)?;
    let mut file = ResultsFile::default();
    file.results.insert(a.video_id, to_seconds(&pairs[..summary.output], duration));
    write_output(a.out.as_deref(), &file.to_json_pretty()?)
}

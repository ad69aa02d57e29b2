//! `bmn-edge merge`: the results files of a collection's shards (`detect --shard I/N`) into
//! one. Every video must come from exactly one input: a video id found in two inputs is an
//! error that names it and both files (two shards of different splits, or a file given
//! twice). Needs no engine.

use super::output::write_output;
use anyhow::{bail, Context, Result};
use bmn_edge::results::ResultsFile;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Arguments of `bmn-edge merge`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// ActivityNet results files (`detect --out`), one per shard.
    #[arg(required = true, num_args = 1..)]
    inputs: Vec<PathBuf>,
    /// Merged results file (stdout when absent).
    #[arg(long)]
    out: Option<PathBuf>,
}

/// One input through the bounded reader, checked ([`ResultsFile::from_json`]: a video given
/// twice, a reversed or infinite segment, a negative score are errors).
fn read(path: &Path) -> Result<ResultsFile> {
    let text = bmn_edge::io::read_text(path, bmn_edge::io::MAX_DATA_FILE_BYTES)
        .with_context(|| format!("cannot read {}", path.display()))?;
    ResultsFile::from_json(&text)
        .map_err(|e| anyhow::anyhow!("{}: not an ActivityNet results file: {e}", path.display()))
}

/// Merges `files` (each with the path it came from); a video in two of them is an error.
fn merge<'a>(files: impl IntoIterator<Item = (&'a Path, ResultsFile)>) -> Result<ResultsFile> {
    let mut out = ResultsFile::default();
    let mut from: BTreeMap<String, &Path> = BTreeMap::new();
    let mut first_version: Option<(String, &Path)> = None;
    for (path, file) in files {
        match &first_version {
            None => first_version = Some((file.version.clone(), path)),
            Some((v, p)) if *v != file.version => bail!(
                "{} has version {:?}, {} has {:?}: not results of one collection",
                p.display(),
                v,
                path.display(),
                file.version
            ),
            Some(_) => {}
        }
        for (video, list) in file.results {
            if let Some(first) = from.get(&video) {
                bail!("video {video:?} is in both {} and {}", first.display(), path.display());
            }
            from.insert(video.clone(), path);
            out.results.insert(video, list);
        }
    }
    if let Some((version, _)) = first_version {
        out.version = version;
    }
    Ok(out)
}

/// Runs `bmn-edge merge`.
pub fn run(a: Args) -> Result<()> {
    let mut files = Vec::with_capacity(a.inputs.len());
    for path in &a.inputs {
        files.push((path.as_path(), read(path)?));
    }
    let merged = merge(files)?;
    write_output(a.out.as_deref(), &merged.to_json_pretty()?)?;
    eprintln!("{} videos from {} files", merged.results.len(), a.inputs.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use bmn_edge::json::SegmentScore;

    fn file(videos: &[(&str, f64)]) -> ResultsFile {
        let mut f = ResultsFile::default();
        for (id, s) in videos {
            f.results.insert(id.to_string(), vec![SegmentScore { segment: [0.0, *s], score: 0.5 }]);
        }
        f
    }

    #[test]
    fn disjoint_files_merge_and_a_shared_video_is_named() {
        let (a, b) = (Path::new("a.json"), Path::new("b.json"));
        let m = merge([(a, file(&[("x", 1.0), ("z", 3.0)])), (b, file(&[("y", 2.0)]))]).unwrap();
        assert_eq!(m, file(&[("x", 1.0), ("y", 2.0), ("z", 3.0)]));
        let e = merge([(a, file(&[("x", 1.0)])), (b, file(&[("y", 2.0), ("x", 1.0)]))]).unwrap_err().to_string();
        assert!(e.contains("\"x\"") && e.contains("a.json") && e.contains("b.json"), "{e}");
    }
}

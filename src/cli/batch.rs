//! `bmn-edge detect` on a collection: every video of a directory or a manifest through one
//! loaded engine, unattended.
//!
//! * **Collection.** A directory: its `.npy` and `.csv` files (extension in any case, not
//!   recursive), sorted by file name, video id = file stem. A manifest (any file that is not
//!   a feature file: not `.csv`, not a `.npy` array): UTF-8 text, one video per line, either
//!   `PATH` (id = the file's stem) or `ID<TAB>PATH`; a relative path is relative to the
//!   manifest's folder; blank lines and lines starting with `#` are skipped. A video id given
//!   twice is an error before the model loads.
//! * **`--shard I/N`.** Keeps the videos whose id hashes to `I`: 64-bit FNV-1a of the id's
//!   UTF-8 bytes, modulo `N`. It depends on the id alone — not on listing order, file system
//!   or machine — so `N` machines given `0/N … N-1/N` index every video exactly once.
//! * **`--video-info FILE`.** Per-video duration and frame count, so that segments come out in
//!   seconds as `--duration`/`--frames` give them for one video. An ActivityNet-style file
//!   (`{"database": {id: {…}}}`) or a plain map `{id: {…}}`; per video, the duration is
//!   `duration_second` (else `duration`, as the official ActivityNet file names it) and the
//!   frame count `duration_frame` (mmaction2's annotations) or `frames`. mmaction2's
//!   `feature_frame` is not a frame count of the video and is not read. A video the file does
//!   not list fails (reported; its results would be in another unit than the others').
//!   Without `--video-info`, segments are normalised video time.
//! * **`--jsonl FILE`.** One line per finished video, written and flushed as it finishes:
//!   `{"video":ID,"results":[{"segment":[s,e],"score":x},…]}`. Failed videos are not logged.
//!   The log is opened once the model has loaded, as a new file beside it that replaces it
//!   at the first video logged ([`bmn_edge::io::ReplacingFile`]): a model that does not load,
//!   or a run that logs nothing, leaves the old log as it was; a symlink there is replaced.
//! * **`--resume`.** Videos present in the `--jsonl` log are not run again; their results come
//!   from the log. A line counts once its newline is written: a torn last line (the run was
//!   killed while writing it) is cut off the log and its video redone. Without `--resume` the
//!   log is started afresh. A missing log is an empty one. A log line `detect` cannot have
//!   written (see [`bmn_edge::results::parse_resume_log`]) is an error naming it.
//! * **Failures.** A video that cannot be read or run (unreadable or corrupt file, wrong C,
//!   NaN, missing from `--video-info`) is reported on stderr and the run goes on; the outputs
//!   are written with every other video (when every video failed, an existing `--out` is
//!   left as it was); then a summary names each failed video and why, and the exit status is
//!   non-zero.

use super::{load, Args, Loaded};
use crate::cli::args::SecondsArgs;
use crate::cli::output::write_output;
use crate::cli::process;
use anyhow::{anyhow, bail, Context, Result};
use bmn_edge::features::read_features;
use bmn_edge::json::SegmentScore;
use bmn_edge::results::ResultsFile;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Instant;

/// The collection options of `bmn-edge detect`.
#[derive(Debug, clap::Args)]
pub struct BatchArgs {
    /// Collections: a JSON lines log, one line per video as it finishes
    /// ({"video": ID, "results": [{"segment": [s, e], "score": x}, ...]}), flushed at once.
    #[arg(long)]
    jsonl: Option<PathBuf>,
    /// Collections: skip the videos already in the --jsonl log (a torn last line is redone).
    #[arg(long, requires = "jsonl")]
    resume: bool,
    /// Collections: per-video duration and frame count (ActivityNet ground truth or
    /// {id: {"duration_second": s, "duration_frame"/"frames": n}}), for segments in seconds.
    #[arg(long)]
    video_info: Option<PathBuf>,
    /// Collections: only the videos with FNV-1a-64(id) mod N = I (I from 0 to N-1).
    #[arg(long, value_name = "I/N")]
    shard: Option<Shard>,
}

impl BatchArgs {
    /// Refuses the collection options when `--features` names one feature file.
    pub(super) fn refuse_single(&self, features: &Path) -> Result<()> {
        let given = [
            ("--jsonl", self.jsonl.is_some()),
            ("--video-info", self.video_info.is_some()),
            ("--shard", self.shard.is_some()),
        ];
        if let Some((flag, _)) = given.iter().find(|(_, on)| *on) {
            bail!(
                "{flag} indexes a collection, but --features {} is one feature file (give a directory or a manifest)",
                features.display()
            );
        }
        Ok(())
    }
}

/// `--shard I/N`: one of `N` disjoint shares of a collection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    index: u64,
    count: u64,
}

impl FromStr for Shard {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let (i, n) = s.split_once('/').ok_or_else(|| format!("expected I/N (e.g. 0/4), got {s:?}"))?;
        let parse = |v: &str, what: &str| {
            v.trim().parse::<u64>().map_err(|e| format!("shard {what} {v:?} is not a non-negative integer: {e}"))
        };
        let (index, count) = (parse(i, "index")?, parse(n, "count")?);
        if count == 0 {
            return Err("the shard count N must be at least 1".into());
        }
        if index >= count {
            return Err(format!("shard index {index} is not below the count {count} (shards are 0 to {})", count - 1));
        }
        Ok(Shard { index, count })
    }
}

impl Shard {
    /// Whether the video `id` belongs to this shard.
    fn contains(&self, id: &str) -> bool {
        fnv1a64(id.as_bytes()) % self.count == self.index
    }
}

/// 64-bit FNV-1a: offset basis 0xcbf29ce484222325, prime 0x100000001b3.
fn fnv1a64(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3))
}

/// One video of the collection.
#[derive(Debug, Clone, PartialEq)]
struct Video {
    id: String,
    path: PathBuf,
}

fn has_ext(path: &Path, ext: &str) -> bool {
    path.extension().is_some_and(|e| e.eq_ignore_ascii_case(ext))
}

/// Whether `--features` names a collection: a directory, or a file that is neither a `.csv`
/// nor a `.npy` array (by its magic bytes or its extension). A path that cannot be read is
/// left to the one-file reader, which names the problem.
pub(super) fn is_collection(path: &Path) -> bool {
    let Ok(meta) = std::fs::metadata(path) else { return false };
    if meta.is_dir() {
        return true;
    }
    // A FIFO or a device is no manifest: the one-file reader refuses it without reading.
    if !meta.is_file() {
        return false;
    }
    if has_ext(path, "csv") || has_ext(path, "npy") {
        return false;
    }
    let mut magic = [0u8; 6];
    let npy = File::open(path).and_then(|mut f| f.read_exact(&mut magic)).is_ok() && &magic == b"\x93NUMPY";
    !npy
}

fn stem(path: &Path) -> Result<String> {
    path.file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| anyhow!("{}: no file name to take a video id from", path.display()))
}

/// The feature files of a directory, sorted by file name.
fn list_dir(dir: &Path) -> Result<Vec<Video>> {
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("cannot list {}", dir.display()))? {
        let path = entry.with_context(|| format!("cannot list {}", dir.display()))?.path();
        if (has_ext(&path, "npy") || has_ext(&path, "csv")) && path.is_file() {
            paths.push(path);
        }
    }
    paths.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
    if paths.is_empty() {
        bail!("{}: no .npy or .csv feature files in this directory", dir.display());
    }
    paths.into_iter().map(|path| Ok(Video { id: stem(&path)?, path })).collect()
}

/// A manifest's videos, in its order; `where_` names the manifest in errors.
fn parse_manifest(text: &str, base: &Path, where_: &str) -> Result<Vec<Video>> {
    let mut videos = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.trim().is_empty() || line.trim_start().starts_with('#') {
            continue;
        }
        let at = || format!("{where_}:{}", i + 1);
        let (id, path) = match line.split_once('\t') {
            Some((id, path)) => (Some(id.trim()), path.trim()),
            None => (None, line.trim()),
        };
        if path.is_empty() || path.contains('\t') {
            bail!("{}: expected PATH or ID<TAB>PATH, got {line:?}", at());
        }
        let path = base.join(path);
        let id = match id {
            Some("") => bail!("{}: empty video id before the tab", at()),
            Some(id) => id.to_string(),
            None => stem(&path).with_context(at)?,
        };
        videos.push(Video { id, path });
    }
    if videos.is_empty() {
        bail!("{where_}: the manifest lists no videos");
    }
    Ok(videos)
}

/// The collection `--features` names, every id once.
/// A UTF-8 text file through the bounded reader (a regular file, at most 256 MiB).
fn read_text(path: &Path) -> Result<String> {
    Ok(bmn_edge::io::read_text(path, bmn_edge::io::MAX_DATA_FILE_BYTES)?)
}

fn collection(features: &Path) -> Result<Vec<Video>> {
    let videos = if features.is_dir() {
        list_dir(features)?
    } else {
        let text = read_text(features).with_context(|| format!("cannot read the manifest {}", features.display()))?;
        let base = features.parent().unwrap_or(Path::new(""));
        parse_manifest(&text, base, &features.display().to_string())?
    };
    let mut seen: HashMap<&str, &Path> = HashMap::new();
    for v in &videos {
        if let Some(first) = seen.insert(&v.id, &v.path) {
            bail!("video id {:?} is given twice: {} and {}", v.id, first.display(), v.path.display());
        }
    }
    Ok(videos)
}

/// `--video-info`: the per-video objects (the `database` map, or the top level).
struct VideoInfo {
    path: PathBuf,
    videos: serde_json::Map<String, serde_json::Value>,
}

impl VideoInfo {
    fn read(path: &Path) -> Result<Self> {
        let text = read_text(path).with_context(|| format!("cannot read {}", path.display()))?;
        let root: serde_json::Value =
            serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
        let serde_json::Value::Object(mut root) = root else {
            bail!("{}: expected a JSON object of videos", path.display())
        };
        let videos = match root.remove("database") {
            Some(serde_json::Value::Object(db)) => db,
            Some(_) => bail!("{}: \"database\" is not an object of videos", path.display()),
            None => root,
        };
        Ok(VideoInfo { path: path.to_path_buf(), videos })
    }

    /// The video's duration in seconds and frame count (when given).
    fn get(&self, id: &str) -> Result<(f64, Option<u64>)> {
        let at = || format!("{}: video {id:?}", self.path.display());
        let v = self.videos.get(id).ok_or_else(|| anyhow!("{} is not listed", at()))?;
        let v = v.as_object().ok_or_else(|| anyhow!("{}: expected an object", at()))?;
        let duration = ["duration_second", "duration"]
            .iter()
            .find_map(|k| v.get(*k))
            .ok_or_else(|| anyhow!("{}: no \"duration_second\" (or \"duration\")", at()))?;
        let duration = duration.as_f64().ok_or_else(|| anyhow!("{}: the duration {duration} is not a number", at()))?;
        let frames = match ["duration_frame", "frames"].iter().find_map(|k| v.get(*k)) {
            None => None,
            Some(n) => Some(
                n.as_u64()
                    .or_else(|| {
                        n.as_f64().filter(|f| *f >= 0.0 && f.fract() == 0.0 && *f < 2f64.powi(53)).map(|f| f as u64)
                    })
                    .ok_or_else(|| anyhow!("{}: the frame count {n} is not a non-negative integer", at()))?,
            ),
        };
        Ok((duration, frames))
    }
}

/// The videos of a log, with their proposals.
type Logged = BTreeMap<String, Vec<SegmentScore>>;

/// One line of the `--jsonl` log.
#[derive(Serialize)]
struct LogLine<'a> {
    video: &'a str,
    results: &'a [SegmentScore],
}

/// Reads a log for `--resume`: the videos of its whole lines, and the length in bytes of
/// those lines (what follows is a torn line). A whole line that is not a log entry, a video
/// logged twice, or proposals `detect` cannot have written (more than `--top-k` allows, a
/// segment reversed or not finite, a score negative or not finite) are errors: only the
/// last line can be torn.
fn read_log(bytes: &[u8], where_: &str) -> Result<(BTreeMap<String, Vec<SegmentScore>>, usize)> {
    let log = bmn_edge::results::parse_resume_log(bytes, crate::cli::args::MAX_TOP_K)
        .map_err(|(line, m)| anyhow!("{where_}:{line}: {m}"))?;
    Ok((log.videos, log.whole_len))
}

/// The `--jsonl` log read for `--resume` (bounded, a regular file; a missing log is an
/// empty one): its whole lines' bytes and their videos.
fn read_resumed(path: &Path) -> Result<(Vec<u8>, Logged)> {
    let mut bytes = match bmn_edge::io::read_regular_file(path, bmn_edge::io::MAX_DATA_FILE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read the --jsonl log {}", path.display())),
    };
    // The log is read to be rewritten: not an input the writer must leave alone.
    bmn_edge::io::forget_input(path);
    let (done, len) = read_log(&bytes, &path.display().to_string())?;
    if len < bytes.len() {
        log::warn!(
            "{}: a torn last line ({} bytes) is dropped; its video is redone",
            path.display(),
            bytes.len() - len
        );
        bytes.truncate(len);
    }
    Ok((bytes, done))
}

/// Opens the `--jsonl` log once the model has loaded: a new file beside it holding the
/// resumed whole lines (none without `--resume`), which replaces the log at the first video
/// logged ([`bmn_edge::io::ReplacingFile`]): a run that logs nothing leaves the log as it
/// was, and a symlink at the path is replaced, not followed.
fn open_log(path: &Path, kept: &[u8]) -> Result<bmn_edge::io::ReplacingFile> {
    let mut f = bmn_edge::io::ReplacingFile::create(path)
        .with_context(|| format!("cannot create the --jsonl log {}", path.display()))?;
    f.write_all(kept).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(f)
}

/// A failed video.
struct Failure {
    video: Video,
    error: anyhow::Error,
}

/// Runs `detect` on the collection `features` (`a`'s `--features`) names.
pub(super) fn run(a: Args, features: &Path) -> Result<()> {
    let refused = [
        ("--video-id", a.video_id.is_some()),
        ("--dump-maps", a.dump_maps.is_some()),
        ("--duration (per video: --video-info)", a.seconds.duration.is_some()),
        ("--frames (per video: --video-info)", a.seconds.frames.is_some()),
    ];
    if let Some((flag, _)) = refused.iter().find(|(_, on)| *on) {
        bail!("{flag} is for one feature file; --features {} is a collection", features.display());
    }
    let b = &a.batch;
    let all = collection(features)?;
    let total = all.len();
    let videos: Vec<Video> = match b.shard {
        Some(s) => all.into_iter().filter(|v| s.contains(&v.id)).collect(),
        None => all,
    };
    if let Some(s) = b.shard {
        log::info!("shard {}/{}: {} of {total} videos", s.index, s.count, videos.len());
    }
    let info = b.video_info.as_deref().map(VideoInfo::read).transpose()?;
    bmn_edge::io::refuse_overlap(
        &[("--out", a.out.as_deref()), ("--jsonl", b.jsonl.as_deref())],
        &[("--features", Some(features)), ("--video-info", b.video_info.as_deref()), ("--model", Some(&a.model))],
    )?;
    let (kept, mut logged) = match &b.jsonl {
        Some(path) if b.resume => read_resumed(path)?,
        _ => (Vec::new(), BTreeMap::new()),
    };
    let mut log_file = None;
    let wanted: std::collections::HashSet<&str> = videos.iter().map(|v| v.id.as_str()).collect();
    let foreign = logged.keys().filter(|id| !wanted.contains(id.as_str())).count();
    if foreign > 0 {
        log::warn!(
            "{foreign} video(s) in the --jsonl log are not in this collection (or shard): left out of the results"
        );
        logged.retain(|id, _| wanted.contains(id.as_str()));
    }
    let todo: Vec<&Video> = videos.iter().filter(|v| !logged.contains_key(&v.id)).collect();
    let mut file = ResultsFile::default();
    let resumed = logged.len();
    file.results.append(&mut logged);

    let mut failures = Vec::new();
    let started = Instant::now();
    // Time in the videos, after the model loaded (which the total includes).
    let mut videos_time = std::time::Duration::ZERO;
    if !todo.is_empty() {
        let mut m = load(&a)?;
        // The log is opened only now: a model that does not load leaves it as it was.
        log_file = b.jsonl.as_deref().map(|p| open_log(p, &kept)).transpose()?;
        let loaded = Instant::now();
        let bar = progress_bar(todo.len() as u64);
        for video in &todo {
            bar.set_message(video.id.clone());
            let t0 = Instant::now();
            match one_video(&a, &mut m, info.as_ref(), video) {
                Ok(results) => {
                    if let (Some(f), Some(path)) = (log_file.as_mut(), &b.jsonl) {
                        let mut line = serde_json::to_string(&LogLine { video: &video.id, results: &results })?;
                        line.push('\n');
                        f.write_all(line.as_bytes())
                            .and_then(|()| f.publish())
                            .with_context(|| format!("cannot write {}", path.display()))?;
                    }
                    log::info!(
                        "{}: {} proposals in {:.0} ms",
                        video.id,
                        results.len(),
                        t0.elapsed().as_secs_f64() * 1e3
                    );
                    file.results.insert(video.id.clone(), results);
                }
                Err(error) => {
                    bar.suspend(|| eprintln!("failed: {} ({}): {error:#}", video.id, video.path.display()));
                    failures.push(Failure { video: (*video).clone(), error });
                }
            }
            bar.inc(1);
        }
        bar.finish_and_clear();
        videos_time = loaded.elapsed();
    }
    if let (Some(f), Some(path)) = (&log_file, &b.jsonl) {
        if !f.published() {
            log::warn!("no video finished: the --jsonl log {} is left as it was", path.display());
        }
    }
    drop(log_file);
    // Results of no video at all would replace an existing --out with an empty one.
    let nothing = file.results.is_empty() && !failures.is_empty();
    if nothing {
        if let Some(out) = &a.out {
            eprintln!("no video was indexed: {} is left as it was", out.display());
        }
    } else {
        write_output(a.out.as_deref(), &file.to_json_pretty()?)?;
    }
    let new = todo.len() - failures.len();
    let elapsed = started.elapsed().as_secs_f64();
    let shard = b.shard.map_or(String::new(), |s| format!(" (shard {}/{} of {total})", s.index, s.count));
    eprintln!(
        "{} videos{shard}: {} indexed ({resumed} from the log, {new} run), {} failed; {elapsed:.1} s{}; peak RSS {:.1} MB",
        videos.len(),
        resumed + new,
        failures.len(),
        if todo.is_empty() {
            String::new()
        } else {
            format!(", {:.0} ms per video run (model load excluded)", videos_time.as_secs_f64() * 1e3 / todo.len() as f64)
        },
        process::peak_rss_mb().unwrap_or(f64::NAN),
    );
    if failures.is_empty() {
        return Ok(());
    }
    eprintln!("failed videos:");
    for f in &failures {
        eprintln!("  {} ({}): {:#}", f.video.id, f.video.path.display(), f.error);
    }
    let names: Vec<&str> = failures.iter().map(|f| f.video.id.as_str()).collect();
    bail!(
        "{} of {} videos failed ({}){}",
        failures.len(),
        videos.len(),
        names.join(", "),
        if nothing { "; nothing was written" } else { "; the others' results are written" }
    )
}

/// A bar on stderr when it is a terminal; nothing (no escape codes) otherwise.
fn progress_bar(len: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(len), ProgressDrawTarget::stderr());
    match ProgressStyle::with_template("{elapsed_precise} [{wide_bar}] {pos}/{len} videos, eta {eta} {msg}") {
        Ok(style) => bar.with_style(style),
        Err(_) => bar,
    }
}

/// One video: features → proposals in seconds (with `--video-info`) or normalised time.
fn one_video(a: &Args, m: &mut Loaded, info: Option<&VideoInfo>, video: &Video) -> Result<Vec<SegmentScore>> {
    let seconds = match info {
        Some(info) => {
            let (duration, frames) = info.get(&video.id)?;
            let s = SecondsArgs { duration: Some(duration), frames, snippet_frames: a.seconds.snippet_frames };
            // The checks `--duration`/`--frames` get; the convention is the model's.
            s.scale(m.convention()).with_context(|| format!("{}: video {:?}", info.path.display(), video.id))?;
            s
        }
        None => SecondsArgs { duration: None, frames: None, snippet_frames: a.seconds.snippet_frames },
    };
    let features = read_features(&video.path)?;
    m.check_width(&video.path, &features)?;
    let l = features.snippets;
    let results = super::run_video(a, m, &features.data, l, &seconds, None, |_, _| -> Result<()> {
        process::release_free_memory();
        Ok(())
    })?
    .results;
    if let Some((i, p)) =
        results.iter().enumerate().find(|(_, p)| !(p.score.is_finite() && p.segment.iter().all(|v| v.is_finite())))
    {
        bail!("proposal {i} is not finite (segment [{}, {}], score {})", p.segment[0], p.segment[1], p.score);
    }
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fnv1a64_matches_the_published_vectors() {
        // The FNV reference test suite's values for "", "a", "foobar".
        assert_eq!(fnv1a64(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(b"a"), 0xaf63_dc4c_8601_ec8c);
        assert_eq!(fnv1a64(b"foobar"), 0x8594_4171_f739_67e8);
    }

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!("2/5".parse::<Shard>().unwrap(), Shard { index: 2, count: 5 });
        for bad in ["5/5", "1/0", "3", "-1/4", "a/4", "1/4/2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let shards: Vec<Shard> = (0..7).map(|i| Shard { index: i, count: 7 }).collect();
        for k in 0..500 {
            let id = format!("v_{k:05}");
            assert_eq!(shards.iter().filter(|s| s.contains(&id)).count(), 1, "{id}");
        }
    }

    #[test]
    fn manifests_take_paths_and_ids() {
        let text = "# comment\n\na.npy\r\nclip 2\tsub/b.csv\n/abs/c.npy\n";
        let v = parse_manifest(text, Path::new("base"), "m.txt").unwrap();
        let got: Vec<(&str, PathBuf)> = v.iter().map(|v| (v.id.as_str(), v.path.clone())).collect();
        assert_eq!(
            got,
            [
                ("a", PathBuf::from("base/a.npy")),
                ("clip 2", PathBuf::from("base/sub/b.csv")),
                ("c", PathBuf::from("/abs/c.npy"))
            ]
        );
        let e = parse_manifest("a.npy\n\tb.npy\n", Path::new(""), "m.txt").unwrap_err().to_string();
        assert!(e.contains("m.txt:2") && e.contains("empty video id"), "{e}");
        assert!(parse_manifest("# nothing\n", Path::new(""), "m.txt").is_err());
    }

    #[test]
    fn a_torn_last_line_is_dropped_and_others_are_kept() {
        let whole = "{\"video\":\"a\",\"results\":[{\"segment\":[0.5,1.25],\"score\":0.75}]}\n{\"video\":\"b\",\"results\":[]}\n";
        let torn = format!("{whole}{{\"video\":\"c\",\"resu");
        let (done, len) = read_log(torn.as_bytes(), "log").unwrap();
        assert_eq!(len, whole.len());
        assert_eq!(done.keys().collect::<Vec<_>>(), ["a", "b"]);
        assert_eq!(done["a"], [SegmentScore { segment: [0.5, 1.25], score: 0.75 }]);
        // A whole line, even one that parses, counts only with its newline.
        let (done, _) = read_log(whole.trim_end().as_bytes(), "log").unwrap();
        assert_eq!(done.keys().collect::<Vec<_>>(), ["a"]);
        let e = read_log(b"{\"video\":\"a\"}\n{}", "log").unwrap_err();
        assert!(format!("{e:#}").contains("log:1"), "{e:#}");
    }
}

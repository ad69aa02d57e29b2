//! `bmn-edge stream`: a live stream of snippets in, JSON lines of final proposals out, in
//! bounded memory (the stream semantics of `bmn_edge::post::stream`).
//!
//! Per snippet: read one row, push it into the window buffer; per window (every `H`
//! snippets): run the engine, hand the window's pairs to the incremental merger, write the
//! proposals it finalises and flush. At the end of the input: one padded window on the hop
//! grid, then everything pending. Memory: the window ring (`T·C` floats), one window, the
//! engine's buffers, the merger's store (`--capacity` proposals) and the arrival times of
//! the snippets still pending — none of it grows with the stream.
//!
//! With `--video`/`--frames-dir` and `--backbone` the snippets come from pixels instead:
//! frames are decoded, sampled and run through the backbone one snippet at a time, so the
//! frames held are one snippet's, whatever the video's length.

use super::args::{available_cores, parse_score_floor, parse_snippet_seconds, ConventionArg, EngineArgs};
use super::process;
use super::video::{open_features, BackboneArgs, Feeds, Opened, VideoArgs};
use anyhow::{bail, Context, Result};
use bmn_edge::engine::detect::{check_hop, WindowPairs};
use bmn_edge::engine::Engine;
use bmn_edge::json::{write_json_line, StreamLine};
use bmn_edge::post::stream::{ACTIVITYNET_SNIPPET_SECONDS, DEFAULT_MIN_SCORE};
use bmn_edge::post::{Proposal, SliceStore, StreamMerger, StreamParams, StreamProposal, StreamStats};
use bmn_edge::snippets::{SnippetFormat, SnippetReader};
use bmn_edge::window::{Emitted, WindowBuffer};
use std::collections::VecDeque;
use std::io::{Read, Write};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Arguments of `bmn-edge stream`.
#[derive(Debug, clap::Args)]
pub struct Args {
    /// BMN model: a standard ONNX export or an edge file.
    #[arg(long)]
    model: PathBuf,
    /// Snippets: a file or FIFO, or `-` for stdin. Raw little-endian float32 rows of C
    /// values, or a .npy [L, C] (float32/float64) — recognised by its magic bytes.
    /// Default: stdin (unless the snippets come from --video or --frames-dir).
    #[arg(long, conflicts_with_all = ["video", "frames_dir"])]
    input: Option<PathBuf>,
    /// Pixels instead of features (`--video FILE|-` or `--frames-dir DIR`, with
    /// `--backbone`): each snippet's feature comes from the backbone as its frames arrive.
    #[command(flatten)]
    video: VideoArgs,
    #[command(flatten)]
    backbone: BackboneArgs,
    /// With --video / --frames-dir: frames per snippet (default: the backbone's
    /// `bmn_edge.pixels.snippet_frames`, else ActivityNet's 16); the seconds per snippet are
    /// then these frames at the video's rate.
    #[arg(long)]
    snippet_frames: Option<usize>,
    /// Force the input format instead of recognising it.
    #[arg(long, value_enum)]
    format: Option<FormatArg>,
    /// Values per snippet, C (default: the model's; must equal it).
    #[arg(long)]
    feature_dim: Option<usize>,
    /// Seconds of video per snippet: segments are reported in seconds of stream time
    /// (default 16/30, ActivityNet's 16 frames at 30 fps; with --video, from the video).
    #[arg(long, conflicts_with_all = ["video", "frames_dir"], value_parser = parse_snippet_seconds)]
    snippet_seconds: Option<f64>,
    /// Hop between windows, in snippets (default T/2).
    #[arg(long)]
    hop: Option<usize>,
    /// Score floor: pairs below it are dropped, proposals decayed below it not reported.
    #[arg(long, default_value_t = DEFAULT_MIN_SCORE, value_parser = parse_score_floor)]
    min_score: f64,
    /// Proposals kept per group of overlapping proposals.
    #[arg(long, default_value_t = bmn_edge::post::DEFAULT_TOP_K)]
    top_k: usize,
    /// Proposals the merger may hold pending (at least T·D; 40 bytes each, within
    /// --max-memory). When a window does not fit, everything pending is emitted early and a
    /// warning says so.
    #[arg(long, default_value_t = 1 << 16)]
    capacity: usize,
    /// Post-processing convention (default: from the model).
    #[arg(long, value_enum)]
    convention: Option<ConventionArg>,
    #[command(flatten)]
    engine: EngineArgs,
    /// JSON lines out (stdout when absent); each line is flushed as soon as it is written.
    /// A file is written beside --out and replaces it at the first proposal (or at the end
    /// of a stream without any): a stream that fails before leaves an existing file as it was.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Also write the run's summary (counts, latency, real-time factor) as JSON here.
    #[arg(long)]
    stats_json: Option<PathBuf>,
    #[cfg(feature = "gpio")]
    #[command(flatten)]
    gpio: super::gpio::GpioArgs,
}

/// The `--format` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum FormatArg {
    /// Little-endian float32 rows.
    Raw,
    /// A .npy array.
    Npy,
}

/// Emission delays: snippets and wall time from a proposal's last snippet to its line.
#[derive(Debug, Default)]
struct Latency {
    /// Count of delays in snippets, by value (the last bucket holds all larger ones).
    snippets: Vec<u64>,
    wall_sum: Duration,
    wall_max: Duration,
    /// Wall delays in milliseconds, by value (the last bucket holds all larger ones).
    wall_ms: Vec<u64>,
    count: u64,
}

impl Latency {
    const BUCKETS: usize = 1 << 16;

    fn record(&mut self, snippets: u64, wall: Duration) {
        if self.snippets.is_empty() {
            self.snippets = vec![0; Self::BUCKETS];
            self.wall_ms = vec![0; Self::BUCKETS];
        }
        self.snippets[(snippets as usize).min(Self::BUCKETS - 1)] += 1;
        self.wall_ms[(wall.as_millis() as usize).min(Self::BUCKETS - 1)] += 1;
        self.wall_sum += wall;
        self.wall_max = self.wall_max.max(wall);
        self.count += 1;
    }

    /// The `q`-quantile of a histogram (the smallest value with at least `q` of the mass).
    fn quantile(hist: &[u64], count: u64, q: f64) -> Option<u64> {
        let need = ((count as f64 * q).ceil() as u64).max(1);
        let mut seen = 0;
        for (v, &n) in hist.iter().enumerate() {
            seen += n;
            if seen >= need {
                return Some(v as u64);
            }
        }
        None
    }

    fn json(&self) -> serde_json::Value {
        let q = |h: &[u64], p| Self::quantile(h, self.count, p);
        serde_json::json!({
            "proposals": self.count,
            "snippets_median": q(&self.snippets, 0.5),
            "snippets_p95": q(&self.snippets, 0.95),
            "snippets_max": self.snippets.iter().rposition(|&n| n > 0),
            "wall_ms_median": q(&self.wall_ms, 0.5),
            "wall_ms_p95": q(&self.wall_ms, 0.95),
            "wall_ms_mean": (self.count > 0).then(|| self.wall_sum.as_secs_f64() * 1e3 / self.count as f64),
            "wall_ms_max": self.wall_max.as_secs_f64() * 1e3,
        })
    }
}

/// Where the lines go: stdout, or a file that replaces `--out` once it holds a line
/// ([`bmn_edge::io::ReplacingFile`]: a stream that fails before its first proposal leaves
/// an existing file as it was, and a symlink there is replaced, not followed).
enum Out {
    Stdout(std::io::StdoutLock<'static>),
    File(std::io::BufWriter<bmn_edge::io::ReplacingFile>),
}

impl Out {
    /// Puts the file in place (after flushing); nothing for stdout.
    fn publish(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => s.flush(),
            Out::File(f) => {
                f.flush()?;
                f.get_mut().publish()
            }
        }
    }
}

impl Write for Out {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Out::Stdout(s) => s.write(buf),
            Out::File(f) => f.write(buf),
        }
    }
    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Out::Stdout(s) => s.flush(),
            Out::File(f) => f.flush(),
        }
    }
}

/// Where lines go, with what was written so far.
struct Sink {
    out: Out,
    seconds: f64,
    buf: [u8; 256],
    lines: u64,
}

impl Sink {
    fn write(&mut self, p: &StreamProposal, window: u64, position: u64) -> Result<()> {
        let line = StreamLine {
            segment: [p.start as f64 * self.seconds, p.end as f64 * self.seconds],
            score: p.score,
            window,
            position,
        };
        if !(line.segment.iter().all(|v| v.is_finite()) && line.score.is_finite()) {
            bail!(
                "proposal [{}, {}) in snippets is not finite in seconds ({:?}, score {})",
                p.start,
                p.end,
                line.segment,
                p.score
            );
        }
        let n = write_json_line(&line, &mut self.buf)?;
        self.out.write_all(&self.buf[..n]).context("writing a proposal")?;
        self.lines += 1;
        Ok(())
    }
}

/// The run's state between windows.
struct Run<'a> {
    engine: &'a mut Engine,
    pairs: WindowPairs,
    merger: StreamMerger<SliceStore<'a>>,
    sink: Sink,
    hop: u64,
    windows: u64,
    /// Arrival time of snippet `arrivals_from + i`.
    arrivals: VecDeque<Instant>,
    arrivals_from: u64,
    latency: Latency,
    /// No later window starts before this.
    frontier: u64,
    capacity: usize,
    flushes: u64,
    /// The GPIO indicator (`--gpio-chip`), lit while a pending proposal covers the newest snippet.
    #[cfg(feature = "gpio")]
    gpio: Option<super::gpio::LineIndicator>,
}

impl Run<'_> {
    /// Runs one window and writes what it finalises. `last`: no window follows.
    fn window(&mut self, window: &[f32], em: Emitted, last: bool, position: u64) -> Result<()> {
        let (outputs, _) = self.engine.run(window)?;
        self.windows += 1;
        let frontier = if last { u64::MAX } else { em.start + self.hop };
        let mut emitted: Vec<StreamProposal> = Vec::new();
        let report = self
            .merger
            .push_window(self.pairs.pairs(&outputs)?, em.start, em.valid, frontier, |p| emitted.push(p))
            .context("merging the window's proposals")?;
        if report.flushed {
            self.flushes += 1;
            eprintln!(
                "bmn-edge stream: the merger's store ({} proposals, --capacity) was full at snippet {position}: every \
                 pending group was emitted early, so proposals on either side of snippet {} were not suppressed \
                 against each other (flush {})",
                self.capacity, em.start, self.flushes
            );
        }
        self.frontier = frontier;
        self.emit(&emitted, position)?;
        // The newest snippet is `position - 1`; emitted groups end at or before the
        // frontier, so only pending proposals can still cover it.
        #[cfg(feature = "gpio")]
        if let Some(gpio) = self.gpio.as_mut() {
            gpio.update(
                position.saturating_sub(1),
                self.merger.pending_proposals().map(|p| (p.start, p.end, p.score)),
            )?;
        }
        process::release_free_memory();
        Ok(())
    }

    fn emit(&mut self, emitted: &[StreamProposal], position: u64) -> Result<()> {
        let now = Instant::now();
        for p in emitted {
            self.sink.write(p, self.windows, position)?;
            // The proposal's last snippet is end − 1.
            let last = p.end.saturating_sub(1);
            let arrived = last.checked_sub(self.arrivals_from).and_then(|i| self.arrivals.get(i as usize));
            let wall = arrived.map_or(Duration::ZERO, |&t| now - t);
            self.latency.record(position - p.end.min(position), wall);
        }
        if self.sink.lines > 0 {
            self.sink.out.publish().context("writing the output")?;
        } else {
            self.sink.out.flush().context("flushing the output")?;
        }
        // Arrival times are needed from the first pending snippet on: later proposals are
        // in a pending group or start at or after the frontier.
        let keep_from = self.merger.pending_start().unwrap_or(u64::MAX).min(self.frontier).min(position);
        while self.arrivals_from < keep_from && !self.arrivals.is_empty() {
            self.arrivals.pop_front();
            self.arrivals_from += 1;
        }
        Ok(())
    }
}

/// Where the snippets come from: feature rows, or pixels through a backbone.
enum Rows {
    Features { reader: SnippetReader<Box<dyn Read>>, name: String },
    Pixels(Box<Opened>),
}

impl Rows {
    /// Reads the next snippet's `C` values into `row`; `false` at the end.
    fn next(&mut self, row: &mut [f32]) -> Result<bool> {
        match self {
            Rows::Features { reader, name } => reader.next_row(row).with_context(|| format!("reading {name}")),
            Rows::Pixels(p) => p.next(row).map_err(|e| anyhow::anyhow!("{e:#}")),
        }
    }

    /// The video's frames and rate, for the summary.
    fn video(&self) -> Option<serde_json::Value> {
        let Rows::Pixels(p) = self else { return None };
        let s = p.features.summary();
        Some(serde_json::json!({
            "source": p.source,
            "frames": s.frames,
            "fps": s.rate.fps(),
            "snippet_frames": s.sampling.snippet_frames(),
            "frames_per_snippet": s.sampling.per_snippet(),
            "duration_second": s.duration_second(),
        }))
    }
}

fn open_input(path: &std::path::Path) -> Result<Box<dyn Read>> {
    if path.as_os_str() == "-" {
        return Ok(Box::new(std::io::stdin().lock()));
    }
    let meta = std::fs::metadata(path).with_context(|| format!("cannot read {}", path.display()))?;
    if meta.is_dir() {
        bail!("{} is a directory, not a stream of snippets", path.display());
    }
    let file = std::fs::File::open(path).with_context(|| format!("cannot open {}", path.display()))?;
    bmn_edge::io::note_input(path);
    Ok(Box::new(std::io::BufReader::with_capacity(1 << 16, file)))
}

fn open_output(path: Option<&std::path::Path>) -> Result<Out> {
    Ok(match path {
        None => Out::Stdout(super::output::stdout()?),
        Some(p) => Out::File(std::io::BufWriter::new(
            bmn_edge::io::ReplacingFile::create(p).with_context(|| format!("cannot create {}", p.display()))?,
        )),
    })
}

/// Runs `bmn-edge stream`.
pub fn run(a: Args) -> Result<()> {
    let pixels = a.video.given();
    if !pixels && a.backbone.backbone.is_some() {
        bail!("--backbone runs on pixels (--video or --frames-dir), not on feature rows");
    }
    if !pixels && a.snippet_frames.is_some() {
        bail!("--snippet-frames applies to --video / --frames-dir (for feature rows, give --snippet-seconds)");
    }
    let mut snippet_seconds = a.snippet_seconds.unwrap_or(ACTIVITYNET_SNIPPET_SECONDS);
    if !(snippet_seconds.is_finite() && snippet_seconds > 0.0) {
        bail!("--snippet-seconds must be a positive number, got {snippet_seconds}");
    }
    let options = a.engine.options(available_cores(), a.convention.map(Into::into))?;
    // The merger's store is allocated whole: within --max-memory, before anything loads.
    let store_bytes = a.capacity.checked_mul(std::mem::size_of::<Proposal>());
    let limit = options.max_memory.unwrap_or(u64::MAX);
    if store_bytes.is_none_or(|b| b as u64 > limit) {
        bail!(
            "--capacity {} proposals would take {} MiB, more than --max-memory {} (MiB)",
            a.capacity,
            store_bytes.map_or(u128::MAX, |b| bmn_edge::io::mib(b as u128)),
            a.engine.max_memory
        );
    }
    let input_path = a.input.as_deref().filter(|p| p.as_os_str() != "-");
    bmn_edge::io::refuse_overlap(
        &[("--out", a.out.as_deref()), ("--stats-json", a.stats_json.as_deref())],
        &[
            ("--model", Some(&a.model)),
            ("--input", input_path),
            ("--video", a.video.video.as_deref()),
            ("--backbone", a.backbone.backbone.as_deref()),
        ],
    )?;
    // The GPIO line first: a missing or busy chip is an error before anything else starts.
    #[cfg(feature = "gpio")]
    let gpio = a.gpio.open()?;
    let mut engine = Engine::load(&a.model, &options).with_context(|| format!("loading {}", a.model.display()))?;
    let cfg = engine.config().post();
    let (t, d, c) = (cfg.tscale(), cfg.dscale(), engine.info().channels);
    if let Some(dim) = a.feature_dim {
        if dim != c {
            bail!("--feature-dim {dim} does not match the model's input width C = {c}");
        }
    }
    let hop = check_hop(a.hop, t)?;
    let params = StreamParams::new(cfg.convention(), t, a.min_score, a.top_k)
        .map_err(|e| anyhow::anyhow!("--min-score / --top-k: {e}"))?;
    if a.capacity < t * d {
        bail!("--capacity {} is less than one window's pairs at most, T·D = {}", a.capacity, t * d);
    }
    let mut rows = if pixels {
        let feeds = Feeds { model: &a.model, channels: c };
        let opened = open_features(&a.video, &a.backbone, a.snippet_frames, options.threads, Some(feeds))?;
        let snippet_frames = opened.features.summary().sampling.snippet_frames();
        snippet_seconds = snippet_frames as f64 / opened.features.frames().source().rate().fps();
        log::info!(
            "stream: pixels from {}, {snippet_frames} frames per snippet ({snippet_seconds:.4} s) through {} (C = {c})",
            opened.source,
            a.backbone.path()?.display()
        );
        Rows::Pixels(Box::new(opened))
    } else {
        let input = a.input.clone().unwrap_or_else(|| PathBuf::from("-"));
        let format = a.format.map(|f| match f {
            FormatArg::Raw => SnippetFormat::Raw,
            FormatArg::Npy => SnippetFormat::Npy,
        });
        let reader = SnippetReader::new(open_input(&input)?, format, Some(c))
            .with_context(|| format!("reading {}", input.display()))?;
        log::info!("stream: {:?} rows of C = {c} from {}", reader.format(), input.display());
        Rows::Features { reader, name: input.display().to_string() }
    };
    process::prepare_for_windows();
    log::info!("stream: T = {t}, hop {hop}, floor {}, top {} per group, capacity {}", a.min_score, a.top_k, a.capacity);
    let mut store = vec![Proposal::default(); a.capacity];
    let mut ring = vec![0.0f32; c * t];
    let mut buffer = WindowBuffer::new(&mut ring, t, c, hop).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut window = vec![0.0f32; c * t];
    let mut row = vec![0.0f32; c];
    let mut run = Run {
        engine: &mut engine,
        pairs: WindowPairs::new(cfg),
        merger: StreamMerger::new(params, SliceStore::new(&mut store)),
        sink: Sink { out: open_output(a.out.as_deref())?, seconds: snippet_seconds, buf: [0; 256], lines: 0 },
        hop: hop as u64,
        windows: 0,
        arrivals: VecDeque::new(),
        arrivals_from: 0,
        latency: Latency::default(),
        frontier: 0,
        capacity: a.capacity,
        flushes: 0,
        #[cfg(feature = "gpio")]
        gpio,
    };
    let began = Instant::now();
    // A failure while reading ends the stream where it broke: what was read whole is
    // still windowed, merged and written; then the error is reported.
    let mut failure: Option<anyhow::Error> = None;
    loop {
        match rows.next(&mut row) {
            Ok(true) => {}
            Ok(false) => break,
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
        run.arrivals.push_back(Instant::now());
        let position = buffer.count() + 1;
        match buffer.push(&row, &mut window) {
            Ok(Some(em)) => run.window(&window, em, false, position)?,
            Ok(None) => {}
            Err(e) => {
                run.arrivals.pop_back();
                failure = Some(anyhow::anyhow!("snippet {}: {e}", position - 1));
                break;
            }
        }
    }
    let snippets = buffer.count();
    if snippets > 0 {
        if let Some(em) = buffer.finish_on_grid(&mut window).map_err(|e| anyhow::anyhow!("{e}"))? {
            run.window(&window, em, true, snippets)?;
        }
    }
    let mut rest = Vec::new();
    run.merger.finish(|p| rest.push(p));
    run.emit(&rest, snippets)?;
    // Low at the end (the drop would do it too, but could only log a failure).
    #[cfg(feature = "gpio")]
    if let Some(gpio) = run.gpio.take() {
        gpio.release()?;
    }
    let elapsed = began.elapsed();
    let stats = run.merger.stats();
    let mut summary = summary(snippet_seconds, snippets, run.windows, &stats, &run.latency, elapsed, (t, hop));
    if let Some(video) = rows.video() {
        summary["video"] = video;
    }
    eprintln!("{}", summary_line(&summary));
    if let Some(path) = &a.stats_json {
        super::output::write_file(path, format!("{:#}\n", summary).as_bytes())?;
    }
    let written = run.sink.lines;
    let mut out = run.sink.out;
    match failure {
        Some(e) => {
            let what = match (&a.out, written) {
                (Some(p), 0) => format!("no proposal was written; {} is left as it was", p.display()),
                (_, n) => format!("their {n} proposal(s) were written"),
            };
            Err(e.context(format!("stream stopped after {snippets} whole snippets; {what}")))
        }
        // A stream without proposals is a result too: an empty file.
        None => out.publish().context("writing the output"),
    }
}

fn summary(
    snippet_seconds: f64,
    snippets: u64,
    windows: u64,
    stats: &StreamStats,
    latency: &Latency,
    elapsed: Duration,
    (t, hop): (usize, usize),
) -> serde_json::Value {
    let video = snippets as f64 * snippet_seconds;
    let secs = elapsed.as_secs_f64();
    serde_json::json!({
        "snippets": snippets,
        "windows": windows,
        "tscale": t,
        "hop": hop,
        "proposals": stats.emitted,
        "groups": stats.groups,
        "pairs_accepted": stats.accepted,
        "pairs_below_floor": stats.below_floor,
        "pairs_in_padding": stats.padding,
        "flushes": stats.flushes,
        "peak_pending": stats.peak_pending,
        "snippet_seconds": snippet_seconds,
        "elapsed_s": secs,
        "snippets_per_s": snippets as f64 / secs,
        "real_time_factor": video / secs,
        "latency": latency.json(),
        "peak_rss_mb": process::peak_rss_mb(),
    })
}

fn summary_line(s: &serde_json::Value) -> String {
    let l = &s["latency"];
    format!(
        "{} snippets, {} windows (T = {}, hop {}), {} proposals in {} groups, {} flushes; delay after a proposal's end: \
         median {} snippets (p95 {}), {} ms (p95 {} ms); {:.0} snippets/s, real-time factor {:.1}; peak RSS {:.1} MB",
        s["snippets"],
        s["windows"],
        s["tscale"],
        s["hop"],
        s["proposals"],
        s["groups"],
        s["flushes"],
        l["snippets_median"],
        l["snippets_p95"],
        l["wall_ms_median"],
        l["wall_ms_p95"],
        s["snippets_per_s"].as_f64().unwrap_or(0.0),
        s["real_time_factor"].as_f64().unwrap_or(0.0),
        s["peak_rss_mb"].as_f64().unwrap_or(f64::NAN),
    )
}

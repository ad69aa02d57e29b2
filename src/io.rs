//! General file I/O of the commands: the one reader of input files and the one writer of
//! output files (`.npy` itself is [`crate::npy`]).
//!
//! * **Reading** ([`read_regular_file`], [`read_text`]): a regular file only (a FIFO does
//!   not block, `/dev/zero` is not read until memory runs out, a symlink to either is refused
//!   the same way), at most a bound the caller derives from what its format can need,
//!   checked before anything is allocated. Every file read is noted (device and inode), so
//!   that the writer can refuse to replace one of the command's inputs.
//! * **Writing** ([`stage`], [`write_atomically`], [`ReplacingFile`]): into a fresh temporary
//!   file created exclusively beside the output, renamed over it once complete, so an
//!   existing file is never truncated before its replacement is whole, and a symlink at the
//!   output is replaced itself, never followed to its target file. A device or FIFO at the
//!   path (`/dev/null`, a pipe, or a symlink to one such as `/dev/stderr`) is written
//!   directly. An output that is the same file (device and
//!   inode) as one of the inputs read is refused. The temporary files being written are
//!   listed ([`remove_pending_temporaries`]), so that a command killed by SIGINT or SIGTERM
//!   can remove them.

use std::fmt;
use std::io::{BufWriter, Error, ErrorKind, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;

/// One mebibyte, the unit of the size limits.
pub const MIB: u64 = 1 << 20;

/// The largest data file (features `.npy` or csv, maps, manifests, results) read: 256 MiB. A
/// two-hour video's 400-channel float64 features are 46 MB; a board with 1 GB holds the
/// file, the values parsed from it and the engine together only well below this.
pub const MAX_DATA_FILE_BYTES: u64 = 256 * MIB;

/// The largest ActivityNet ground-truth file read: 32 MiB. ActivityNet v1.3's whole
/// ground truth (19,994 videos) is 4.7 MB; parsed into a JSON tree a file takes about 30
/// times its size in memory, so the 256 MiB of [`MAX_DATA_FILE_BYTES`] would allow 7.5 GB.
pub const MAX_GROUND_TRUTH_BYTES: u64 = 32 * MIB;

/// The largest model file read: 512 MiB (the paper configuration's standard export, with
/// its 128 MB dense mask, is 148 MB; the edge format 20 MB).
pub const MAX_MODEL_FILE_BYTES: u64 = 512 * MIB;

/// The largest single frame image (JPEG or PNG of a `--frames-dir`) read: 64 MiB. A frame
/// is at most 16384 × 16384 pixels; an uncompressed-size PNG of a 4K frame is 25 MB.
pub const MAX_FRAME_FILE_BYTES: u64 = 64 * MIB;

/// `bytes` in MiB, rounded up, for messages.
pub fn mib(bytes: u128) -> u128 {
    bytes.div_ceil(MIB as u128)
}

/// A file's identity: device and inode.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileId {
    dev: u64,
    ino: u64,
}

#[cfg(unix)]
fn file_id(meta: &std::fs::Metadata) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    Some(FileId { dev: meta.dev(), ino: meta.ino() })
}

#[cfg(not(unix))]
fn file_id(_meta: &std::fs::Metadata) -> Option<FileId> {
    None
}

/// The inputs read so far by this process, with the path each was read as (once
/// [`refuse_replacing_inputs`] has been called).
static INPUTS: Mutex<Vec<(FileId, PathBuf)>> = Mutex::new(Vec::new());

/// Whether inputs are noted.
static NOTING: AtomicBool = AtomicBool::new(false);

/// From now on, the files read are noted and the writer refuses to replace one of them
/// (for a command-line process, whose inputs stay for its whole run: the `bmn-edge` tool
/// calls this first thing). Off by default: a long-lived program that reads, deletes and
/// writes files could see an inode number reused.
pub fn refuse_replacing_inputs() {
    NOTING.store(true, Ordering::Relaxed);
}

/// The temporary files being written now.
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// Notes `path` as one of this command's inputs (done by [`read_regular_file`]; for inputs
/// opened otherwise, such as a video read as a stream): an output that is the same file is
/// then refused. A path that cannot be looked up is not noted.
pub fn note_input(path: &Path) {
    if let Some(id) = std::fs::metadata(path).ok().as_ref().and_then(file_id) {
        note_input_id(id, path);
    }
}

fn note_input_id(id: FileId, path: &Path) {
    if !NOTING.load(Ordering::Relaxed) {
        return;
    }
    let mut inputs = lock(&INPUTS);
    if !inputs.iter().any(|(i, _)| *i == id) {
        inputs.push((id, path.to_path_buf()));
    }
}

/// Forgets the input `path` (a file read to be rewritten: a log that is resumed).
pub fn forget_input(path: &Path) {
    if let Some(id) = std::fs::metadata(path).ok().as_ref().and_then(file_id) {
        lock(&INPUTS).retain(|(i, _)| *i != id);
    }
}

/// The input `path` is (device and inode), if it is one of the inputs noted.
fn input_at(path: &Path) -> Option<PathBuf> {
    let id = std::fs::metadata(path).ok().as_ref().and_then(file_id)?;
    lock(&INPUTS).iter().find(|(i, _)| *i == id).map(|(_, p)| p.clone())
}

/// Whether `a` and `b` are the same file (device and inode) when both exist, else the same
/// entry of the same folder (after resolving the folder): `out.json` and `./out.json`,
/// a hard link, or a symlink to the other are all one destination.
pub fn same_file(a: &Path, b: &Path) -> bool {
    if let (Ok(ma), Ok(mb)) = (std::fs::metadata(a), std::fs::metadata(b)) {
        if let (Some(x), Some(y)) = (file_id(&ma), file_id(&mb)) {
            return x == y;
        }
    }
    let entry = |p: &Path| -> Option<PathBuf> {
        let dir = match p.parent() {
            Some(d) if !d.as_os_str().is_empty() => d,
            _ => Path::new("."),
        };
        Some(std::fs::canonicalize(dir).ok()?.join(p.file_name()?))
    };
    match (entry(a), entry(b)) {
        (Some(x), Some(y)) => x == y,
        _ => a == b,
    }
}

/// An error naming the output that is also an input.
#[derive(Debug)]
pub struct SameFileError {
    /// The output's flag (`--out`) and path.
    pub output: (String, PathBuf),
    /// The input's flag and path.
    pub input: (String, PathBuf),
}

impl fmt::Display for SameFileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} is the same file as {} {}: writing it would replace that input; give another output path",
            self.output.0,
            self.output.1.display(),
            self.input.0,
            self.input.1.display()
        )
    }
}

impl std::error::Error for SameFileError {}

/// Refuses outputs (flag, path) that are one of `inputs` (flag, path) or one another
/// ([`same_file`]): checked before any work starts. Absent entries (`None`) are skipped.
pub fn refuse_overlap(
    outputs: &[(&str, Option<&Path>)],
    inputs: &[(&str, Option<&Path>)],
) -> Result<(), SameFileError> {
    let outs: Vec<(&str, &Path)> = outputs.iter().filter_map(|(f, p)| p.map(|p| (*f, p))).collect();
    let ins: Vec<(&str, &Path)> = inputs.iter().filter_map(|(f, p)| p.map(|p| (*f, p))).collect();
    let err = |o: (&str, &Path), i: (&str, &Path)| SameFileError {
        output: (o.0.to_string(), o.1.to_path_buf()),
        input: (i.0.to_string(), i.1.to_path_buf()),
    };
    for (k, &o) in outs.iter().enumerate() {
        // `-` is stdin or stdout, never a file of that name.
        if o.1.as_os_str() == "-" {
            continue;
        }
        if let Some(&i) = ins.iter().find(|i| i.1.as_os_str() != "-" && same_file(o.1, i.1)) {
            return Err(err(o, i));
        }
        if let Some(&other) = outs[..k].iter().find(|p| same_file(o.1, p.1)) {
            return Err(err(o, other));
        }
    }
    Ok(())
}

/// Reads a whole input file, which must be a regular file of at most `max_bytes`: the one
/// reader of the commands' input files (models, features, maps, JSON, frames).
///
/// The file type and size are checked before anything is read, so `/dev/zero` is not read
/// until memory runs out and a FIFO does not block: the file is opened non-blocking (so
/// opening a FIFO without a writer returns at once) and its type checked on the open
/// descriptor (no race with a rename between a check and the open; a symlink is checked as
/// what it points to); at most `max_bytes + 1` bytes are read, so a file that grows after
/// the check is refused too. Errors ([`ErrorKind::InvalidInput`] for a file that is not
/// regular, [`ErrorKind::FileTooLarge`] for one over the limit) say what it is and how much
/// it would need; the caller names the file. The file is noted as an input ([`note_input`]).
pub fn read_regular_file(path: &Path, max_bytes: u64) -> std::io::Result<Vec<u8>> {
    use std::io::Read;
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(libc::O_NONBLOCK);
    }
    let file = options.open(path)?;
    let meta = file.metadata()?;
    if !meta.is_file() {
        let what = if meta.is_dir() { "a directory" } else { "a device, FIFO or socket" };
        return Err(Error::new(ErrorKind::InvalidInput, format!("not a regular file ({what})")));
    }
    let too_large = |size: u64| {
        Error::new(
            ErrorKind::FileTooLarge,
            format!(
                "{size} bytes ({} MiB) is more than the limit for this input ({} MiB)",
                mib(size as u128),
                mib(max_bytes as u128)
            ),
        )
    };
    if meta.len() > max_bytes {
        return Err(too_large(meta.len()));
    }
    if let Some(id) = file_id(&meta) {
        note_input_id(id, path);
    }
    let mut bytes = Vec::with_capacity(meta.len() as usize);
    file.take(max_bytes + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max_bytes {
        return Err(too_large(bytes.len() as u64));
    }
    Ok(bytes)
}

/// [`read_regular_file`] as UTF-8 text. A UTF-8 byte-order mark at the start (which some
/// editors write) is dropped: JSON and csv parsers would otherwise report "expected value
/// at line 1 column 1" about an invisible character.
pub fn read_text(path: &Path, max_bytes: u64) -> std::io::Result<String> {
    let mut bytes = read_regular_file(path, max_bytes)?;
    if bytes.starts_with(b"\xEF\xBB\xBF") {
        bytes.drain(..3);
    }
    String::from_utf8(bytes).map_err(|e| {
        Error::new(
            ErrorKind::InvalidData,
            format!("not UTF-8 text (invalid byte at offset {})", e.utf8_error().valid_up_to()),
        )
    })
}

/// What is at an output path.
enum Target {
    /// Nothing, a regular file, or a symlink to a regular file or to nothing: replaced by a
    /// rename (a symlink is replaced itself, its target left alone).
    Replace,
    /// A device, FIFO or socket, or a symlink to one (`/dev/stderr`): written directly
    /// (renaming over it would replace the node or the link itself).
    Direct,
}

fn target(path: &Path) -> std::io::Result<Target> {
    let Ok(meta) = std::fs::symlink_metadata(path) else { return Ok(Target::Replace) };
    let t = meta.file_type();
    if t.is_dir() {
        return Err(Error::new(ErrorKind::IsADirectory, "is a directory"));
    }
    if t.is_file() {
        return Ok(Target::Replace);
    }
    if t.is_symlink() {
        return match std::fs::metadata(path) {
            Ok(m) if m.is_dir() => Err(Error::new(ErrorKind::IsADirectory, "is a symlink to a directory")),
            Ok(m) if !m.is_file() => Ok(Target::Direct),
            _ => Ok(Target::Replace),
        };
    }
    Ok(Target::Direct)
}

/// The folder a new file at `path` goes into; an error saying so when it does not exist
/// (rather than naming the temporary file that could not be created there).
fn folder_of(path: &Path) -> std::io::Result<&Path> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    match std::fs::metadata(dir) {
        Ok(m) if m.is_dir() => Ok(dir),
        Ok(_) => Err(Error::new(ErrorKind::NotADirectory, format!("{} is not a folder", dir.display()))),
        Err(e) if e.kind() == ErrorKind::NotFound => {
            Err(Error::new(e.kind(), format!("the folder {} does not exist", dir.display())))
        }
        Err(e) => Err(Error::new(e.kind(), format!("the folder {} cannot be used: {e}", dir.display()))),
    }
}

/// Refuses to write `path` when it is one of the inputs noted.
fn refuse_input(path: &Path) -> std::io::Result<()> {
    match input_at(path) {
        Some(input) => Err(Error::new(
            ErrorKind::AlreadyExists,
            format!("it is the same file as the input {}: refusing to replace an input", input.display()),
        )),
        None => Ok(()),
    }
}

/// A fresh temporary file beside `path`, created exclusively, listed as pending.
fn temporary_beside(path: &Path) -> std::io::Result<tempfile::NamedTempFile> {
    let dir = folder_of(path)?;
    let name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let prefix = format!(".{name}.");
    let mut builder = tempfile::Builder::new();
    builder.prefix(&prefix).suffix(".tmp");
    // The name is listed before the file is created (and unlisted if that fails), so a
    // signal at any moment finds every temporary file that exists.
    builder.make_in(dir, |path| {
        lock(&PENDING).push(path.to_path_buf());
        let mut options = std::fs::OpenOptions::new();
        options.read(true).write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o666);
        }
        options.open(path).inspect_err(|_| unlist(path))
    })
}

fn unlist(tmp: &Path) {
    lock(&PENDING).retain(|p| p != tmp);
}

/// Removes every temporary file being written now (for a signal handler's thread: the
/// command is about to die and their drops will not run). Returns how many were removed.
pub fn remove_pending_temporaries() -> usize {
    let pending = std::mem::take(&mut *lock(&PENDING));
    pending.iter().filter(|p| std::fs::remove_file(p).is_ok()).count()
}

/// An output written completely but not yet in place ([`stage`]); [`Staged::commit`] puts
/// it there. Dropped uncommitted, it leaves nothing behind.
#[must_use = "a staged output is written only by commit()"]
pub struct Staged {
    tmp: Option<tempfile::NamedTempFile>,
    path: PathBuf,
}

impl Staged {
    /// Renames the staged file over its path (a symlink there is replaced, not followed).
    pub fn commit(mut self) -> std::io::Result<()> {
        let Some(tmp) = self.tmp.take() else { return Ok(()) };
        let at = tmp.path().to_path_buf();
        let r = tmp.persist(&self.path).map(drop).map_err(|e| e.error);
        unlist(&at);
        r
    }
}

impl Drop for Staged {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let at = tmp.path().to_path_buf();
            drop(tmp);
            unlist(&at);
        }
    }
}

/// Writes an output through `write` into a fresh temporary file beside `path` and syncs it,
/// without putting it in place yet: several outputs that belong together (features and
/// their sidecar) are all staged, then committed, so that a failure of any leaves none
/// written. A device or FIFO at `path` is written now, directly. A directory at `path`, a
/// missing folder, or `path` being one of the inputs read are errors before anything is
/// written.
pub fn stage(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<Staged> {
    refuse_input(path)?;
    if let Target::Direct = target(path)? {
        let mut f = std::fs::OpenOptions::new().write(true).open(path)?;
        write(&mut f)?;
        f.flush()?;
        return Ok(Staged { tmp: None, path: path.to_path_buf() });
    }
    let tmp = temporary_beside(path)?;
    let staged = Staged { tmp: Some(tmp), path: path.to_path_buf() };
    let file = staged.tmp.as_ref().map(|t| t.as_file()).expect("just created");
    let mut w = BufWriter::new(file);
    write(&mut w)?;
    w.flush()?;
    drop(w);
    file.sync_data()?;
    Ok(staged)
}

/// Writes a file through `write`, atomically ([`stage`], then [`Staged::commit`]): a reader
/// never sees half a file, an existing file is never truncated before its replacement is
/// complete, a symlink at `path` is replaced (its target left alone), and a failure at any
/// step leaves neither half a file nor the temporary one behind. The file's permissions are
/// those of a new file (`0666` less the umask), as `File::create` gives.
pub fn write_atomically(path: &Path, write: impl FnOnce(&mut dyn Write) -> std::io::Result<()>) -> std::io::Result<()> {
    stage(path, write)?.commit()
}

/// An output written as it goes (a stream's JSON lines, a collection's log) that replaces
/// what was at its path only once it holds something: lines go into a temporary file beside
/// the path, which [`ReplacingFile::publish`] renames into place (the file stays open, so
/// later lines go on being appended and flushed where a reader following the path sees
/// them). Dropped before being published, it leaves the path as it was and no temporary
/// file. A symlink at the path is replaced, not followed; a device or FIFO is written
/// directly.
pub struct ReplacingFile {
    file: std::fs::File,
    /// The temporary file, until published.
    tmp: Option<tempfile::TempPath>,
    path: PathBuf,
}

impl ReplacingFile {
    /// Creates the temporary file for `path` (nothing at `path` changes yet).
    pub fn create(path: &Path) -> std::io::Result<ReplacingFile> {
        refuse_input(path)?;
        if let Target::Direct = target(path)? {
            let file = std::fs::OpenOptions::new().write(true).open(path)?;
            return Ok(ReplacingFile { file, tmp: None, path: path.to_path_buf() });
        }
        let (file, tmp) = temporary_beside(path)?.into_parts();
        Ok(ReplacingFile { file, tmp: Some(tmp), path: path.to_path_buf() })
    }

    /// Whether the file is in place at its path.
    pub fn published(&self) -> bool {
        self.tmp.is_none()
    }

    /// Flushes and renames the temporary file over the path (once; later calls only flush).
    pub fn publish(&mut self) -> std::io::Result<()> {
        self.file.flush()?;
        if let Some(tmp) = self.tmp.take() {
            let at = tmp.to_path_buf();
            let r = tmp.persist(&self.path).map_err(|e| {
                let error = Error::new(e.error.kind(), format!("cannot move it into place: {}", e.error));
                self.tmp = Some(e.path);
                error
            });
            if r.is_ok() {
                unlist(&at);
            }
            r?;
        }
        Ok(())
    }
}

impl Write for ReplacingFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl Drop for ReplacingFile {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let at = tmp.to_path_buf();
            drop(tmp);
            unlist(&at);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> =
            std::fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().to_string_lossy().into_owned()).collect();
        v.sort();
        v
    }

    #[test]
    fn a_staged_output_is_written_only_on_commit() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("a.txt");
        std::fs::write(&p, "old").unwrap();
        let s = stage(&p, |w| w.write_all(b"new")).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "old");
        drop(s);
        assert_eq!(names(dir.path()), ["a.txt"]);
        stage(&p, |w| w.write_all(b"new")).unwrap().commit().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "new");
        assert_eq!(names(dir.path()), ["a.txt"]);
    }

    #[test]
    fn a_replacing_file_leaves_the_old_one_until_published() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("log");
        std::fs::write(&p, "finished log\n").unwrap();
        let mut f = ReplacingFile::create(&p).unwrap();
        f.write_all(b"line 1\n").unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "finished log\n");
        assert_eq!(names(dir.path()), ["log"]);
        let mut f = ReplacingFile::create(&p).unwrap();
        f.write_all(b"line 1\n").unwrap();
        f.publish().unwrap();
        f.write_all(b"line 2\n").unwrap();
        f.flush().unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "line 1\nline 2\n");
        assert_eq!(names(dir.path()), ["log"]);
    }

    #[cfg(unix)]
    #[test]
    fn a_symlink_at_an_output_is_replaced_not_followed() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep").unwrap();
        let link = dir.path().join("out");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let mut f = ReplacingFile::create(&link).unwrap();
        f.write_all(b"x\n").unwrap();
        f.publish().unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        assert!(!std::fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
        std::os::unix::fs::symlink(&target, dir.path().join("out2")).unwrap();
        write_atomically(&dir.path().join("out2"), |w| w.write_all(b"y")).unwrap();
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep");
        // A symlink to a device (as /dev/stderr is) is written through, and stays.
        let null = dir.path().join("null");
        std::os::unix::fs::symlink("/dev/null", &null).unwrap();
        write_atomically(&null, |w| w.write_all(b"z")).unwrap();
        let mut f = ReplacingFile::create(&null).unwrap();
        f.write_all(b"z").unwrap();
        f.publish().unwrap();
        assert!(std::fs::symlink_metadata(&null).unwrap().file_type().is_symlink());
    }

    #[test]
    fn an_input_is_not_replaced_and_overlaps_are_found() {
        let dir = tempfile::tempdir().unwrap();
        // (The writer's refusal of a noted input is a process-wide setting: the command
        // line's tests check it, in their own processes.)
        let p = dir.path().join("in.txt");
        std::fs::write(&p, "input").unwrap();
        let dotted = dir.path().join(".").join("in.txt");
        assert!(same_file(&p, &dotted));
        let missing = dir.path().join("new.json");
        assert!(same_file(&missing, &dir.path().join(".").join("new.json")));
        assert!(!same_file(&missing, &p));
        let e = refuse_overlap(&[("--out", Some(&missing)), ("--jsonl", Some(&missing))], &[]).unwrap_err();
        assert!(e.to_string().contains("--jsonl") && e.to_string().contains("--out"), "{e}");
        assert!(refuse_overlap(&[("--out", Some(&dotted))], &[("--features", Some(&p))]).is_err());
    }

    #[test]
    fn a_bom_is_dropped_and_a_missing_folder_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("b.json");
        std::fs::write(&p, b"\xEF\xBB\xBF{}").unwrap();
        assert_eq!(read_text(&p, 100).unwrap(), "{}");
        let e = write_atomically(&dir.path().join("no/such/x.json"), |w| w.write_all(b"x")).unwrap_err();
        assert!(e.to_string().contains("no/such does not exist") && !e.to_string().contains(".x.json."), "{e}");
    }
}

//! Process tuning for a small resident set on a board, all of it here: glibc's allocator
//! (`mallopt`, `malloc_trim`), the executable's load-only code pages (`madvise`), and the
//! peak resident set that `detect` and `bench` report. Off glibc or off Linux each of
//! these does nothing (the peak resident set is then unknown).
//!
//! The order of use: [`tune_allocator`] first thing in `main`; [`prepare_for_windows`] once
//! the model is loaded, [`prepare_for_backbone`] once a backbone is (`video::open_features`,
//! the one place every command opens one, calls it), in either order: each raises the
//! allocator's thresholds to what it needs, never lowers them; [`release_free_memory`]
//! between windows.

/// Keeps peak memory close to live memory on glibc while a model loads: large buffers (the
/// file, decoded weights) go straight to `mmap` and back to the system when freed, and at
/// most one malloc arena exists, instead of the default per-thread arenas that hold freed
/// memory. [`tune_allocator_for_windows`] then lets window-sized buffers be reused. One
/// arena: the engine's worker threads allocate a few buffers per chunk, so sharing one
/// arena costs nothing measurable and saves the second arena's retained memory (~2 MB).
/// Environment variables `MALLOC_MMAP_THRESHOLD_`, `MALLOC_TRIM_THRESHOLD_` and
/// `MALLOC_ARENA_MAX` still override these defaults, as glibc reads them first.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
pub fn tune_allocator() {
    mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024, "MALLOC_MMAP_THRESHOLD_");
    mallopt(libc::M_ARENA_MAX, 1, "MALLOC_ARENA_MAX");
}

/// Once the model is loaded: the allocator tuned for windows ([`tune_allocator_for_windows`]),
/// the heap that loading left returned ([`release_free_memory`]), and the code only loading
/// ran dropped from the resident set ([`release_code_pages`]).
#[cfg(feature = "engine")]
pub fn prepare_for_windows() {
    tune_allocator_for_windows();
    release_free_memory();
    release_code_pages();
}

/// Once the model is loaded: buffers up to 4 MB (tract's packed operands and products, the
/// stage-B chunks) come from the heap and are reused from window to window instead of being
/// mapped, faulted in and unmapped on every matrix product — that churn made tract's
/// products 2–3× slower, and serialised threads on the kernel's memory map. Freed memory
/// at the top of the heap is kept up to 8 MB.
#[cfg(all(feature = "engine", target_os = "linux", target_env = "gnu"))]
fn tune_allocator_for_windows() {
    raise_thresholds(4 << 20, 8 << 20);
}

/// glibc's largest mmap threshold (`DEFAULT_MMAP_THRESHOLD_MAX`, half its `HEAP_MAX_SIZE`):
/// 4 MiB · sizeof(long) = 32 MiB on 64-bit targets, 512 KiB on 32-bit ones (a Pi's armv7);
/// `mallopt(M_MMAP_THRESHOLD)` refuses anything larger, so requests are capped here.
#[cfg(all(feature = "engine", target_pointer_width = "64"))]
const MMAP_THRESHOLD_MAX: usize = 32 << 20;
/// See the 64-bit definition.
#[cfg(all(feature = "engine", not(target_pointer_width = "64")))]
const MMAP_THRESHOLD_MAX: usize = 512 << 10;

/// The allocator's thresholds as last raised (bytes; 0: not yet).
#[cfg(all(feature = "engine", target_os = "linux", target_env = "gnu"))]
static THRESHOLDS: std::sync::Mutex<(usize, usize)> = std::sync::Mutex::new((0, 0));

/// Raises the mmap and trim thresholds to at least `mmap` and `trim` bytes (never lowers
/// them: a command that runs a backbone and a BMN model gets the larger of their needs).
#[cfg(all(feature = "engine", target_os = "linux", target_env = "gnu"))]
fn raise_thresholds(mmap: usize, trim: usize) {
    let mut t = THRESHOLDS.lock().unwrap_or_else(|p| p.into_inner());
    let mmap = mmap.clamp(t.0, MMAP_THRESHOLD_MAX);
    let trim = trim.max(t.1).min(i32::MAX as usize);
    if mmap != t.0 {
        mallopt(libc::M_MMAP_THRESHOLD, mmap as libc::c_int, "MALLOC_MMAP_THRESHOLD_");
    }
    if trim != t.1 {
        mallopt(libc::M_TRIM_THRESHOLD, trim as libc::c_int, "MALLOC_TRIM_THRESHOLD_");
    }
    *t = (mmap, trim);
}

/// Once a backbone is loaded: its per-frame buffers come from the heap and are reused from
/// frame to frame. A backbone allocates every activation anew on every frame, most of them
/// far above glibc's 128 KiB default threshold (ResNet-50 at 224: 3.2 MB activations, a
/// 7.4 MB packed stem; MobileNetV2: 1.6 MB); mapped, each is faulted in page by page and
/// unmapped again, frame after frame — 44 % of MobileNetV2's time was in the kernel's page
/// faults. So the mmap threshold goes to glibc's maximum ([`MMAP_THRESHOLD_MAX`], 32 MiB on
/// 64-bit: above every buffer a 224 backbone packs; the plan's largest node output is
/// logged beside it), and the trim threshold to what `workers` concurrent runs hold at most
/// (the plan's node outputs summed, [`BufferSizes::total`], per worker), so freeing one
/// frame's tensors does not hand the heap back only to fault it in again for the next.
/// The resident set this keeps is the backbone's working set, which it reaches on every
/// frame anyway.
#[cfg(feature = "engine")]
pub fn prepare_for_backbone(buffers: bmn_edge::engine::backbone::BufferSizes, workers: usize) {
    let trim = buffers.total.saturating_mul(workers.max(1)).max(8 << 20);
    if buffers.largest > MMAP_THRESHOLD_MAX {
        log::warn!(
            "the backbone's largest tensor is {:.1} MB, above the allocator's largest heap threshold ({} MB): it is mapped anew on every frame",
            buffers.largest as f64 / 1e6,
            MMAP_THRESHOLD_MAX >> 20
        );
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    raise_thresholds(MMAP_THRESHOLD_MAX, trim);
    log::info!(
        "allocator for the backbone: largest tensor {:.1} MB, {:.1} MB per run; mmap threshold {} MB, trim threshold {:.1} MB",
        buffers.largest as f64 / 1e6,
        buffers.total as f64 / 1e6,
        MMAP_THRESHOLD_MAX >> 20,
        trim as f64 / 1e6
    );
}

/// Minor page faults of this process so far (`getrusage`; `None` where it fails): a
/// steady-state loop that faults in fresh pages on every iteration is mapping and unmapping
/// its buffers.
#[cfg(feature = "engine")]
#[allow(unsafe_code)]
pub fn minor_faults() -> Option<u64> {
    let mut u = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage writes one rusage struct into the pointer it is given, which points
    // to a zeroed, properly aligned one owned here.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_SELF, u.as_mut_ptr()) };
    if rc != 0 {
        return None;
    }
    // SAFETY: getrusage returned 0, so the struct is initialised.
    let u = unsafe { u.assume_init() };
    u64::try_from(u.ru_minflt).ok()
}

/// Loading a model runs a lot of code that the windows never run again (ONNX decoding,
/// tract's graph optimizer: ~10 MiB of the executable's pages here, a quarter of the peak
/// resident set of an int8 `detect`), and those pages stay resident. This drops the
/// executable's code pages from the resident set (`madvise(MADV_DONTNEED)` on its `r-xp`
/// mappings); the code the windows do run is read back from the page cache on first use
/// (minor faults, once). Without `/proc` (or if anything does not parse) it does nothing.
#[cfg(all(feature = "engine", target_os = "linux"))]
#[allow(unsafe_code)]
fn release_code_pages() {
    let (Ok(exe), Ok(maps)) = (std::env::current_exe(), std::fs::read_to_string("/proc/self/maps")) else {
        return;
    };
    let Some(exe) = exe.to_str() else { return };
    for line in maps.lines() {
        // start-end perms offset dev inode path
        let f: Vec<&str> = line.split_whitespace().collect();
        if f.len() != 6 || f[1] != "r-xp" || f[5] != exe {
            continue;
        }
        let Some((a, b)) = f[0].split_once('-') else { continue };
        let (Ok(a), Ok(b)) = (usize::from_str_radix(a, 16), usize::from_str_radix(b, 16)) else { continue };
        // SAFETY: [a, b) is one whole mapping of the executable's code as the kernel lists
        // it: private, read-only and never written (code is mapped without write permission
        // and a PIE executable has no text relocations), so discarding its pages loses
        // nothing: the kernel reads them back from the file on the next access, exactly as
        // after eviction under memory pressure. No Rust reference points into code.
        unsafe {
            libc::madvise(a as *mut libc::c_void, b.saturating_sub(a), libc::MADV_DONTNEED);
        }
    }
}

/// Between windows: returns the heap's free pages to the system (`malloc_trim`), so that a
/// long video's windows do not add up heap fragments in the resident set.
#[cfg(all(feature = "engine", target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_memory() {
    // SAFETY: malloc_trim only returns free heap pages to the kernel; it takes the arena
    // locks itself and is safe to call at any time.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// Sets one of glibc's allocator tunables, unless its environment variable `var` is set
/// (glibc has then applied the user's value, which wins).
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn mallopt(param: libc::c_int, value: libc::c_int, var: &str) {
    if std::env::var_os(var).is_none() {
        // SAFETY: mallopt only adjusts allocator tunables, with documented parameters and
        // values; glibc serialises it against concurrent allocations.
        unsafe {
            libc::mallopt(param, value);
        }
    }
}

/// Peak resident set size of this process (`VmHWM`), in MiB; `None` without `/proc`.
#[cfg(feature = "engine")]
pub fn peak_rss_mb() -> Option<f64> {
    bmn_edge::engine::diag::Rss::read().map(|r| r.peak).filter(|&p| p > 0.0)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn tune_allocator() {}

#[cfg(all(feature = "engine", not(all(target_os = "linux", target_env = "gnu"))))]
fn tune_allocator_for_windows() {}

#[cfg(all(feature = "engine", not(target_os = "linux")))]
fn release_code_pages() {}

#[cfg(all(feature = "engine", not(all(target_os = "linux", target_env = "gnu"))))]
pub fn release_free_memory() {}

//! Demo firmware: bmn-edge's no_std core on a Cortex-M4F.
//!
//! One window's network outputs (T = D = 16: start and end probabilities, the [2, D, T]
//! confidence map) are stored in flash (`demo/maps.bin`, written by `make_demo.py`). At
//! reset the firmware post-processes them with the core — candidates, pairing, Soft-NMS
//! (`WindowPostProcessor`, buffers in a static) — writes the top proposals as JSON lines
//! to a serial-like sink, and drives the proposal indicator on a pin over the window's
//! snippets. Then it reports how much stack the run used (the stack is painted first) and
//! exits (under qemu or a debugger, through semihosting) or sleeps.
//!
//! On a real part, the maps would arrive over a UART or SPI from the device that runs the
//! network; only [`MAPS`] changes. The pin is a stand-in that records its level: replace
//! [`DemoPin`] by the HAL's output pin (any `embedded_hal::digital::OutputPin`).
#![no_std]
#![no_main]

use bmn_edge::indicator::Indicator;
use bmn_edge::json::{write_json_line, SegmentScore};
use bmn_edge::post::{WindowMaps, WindowPostProcessor};
use bmn_edge::window::WindowBuffer;
use bmn_edge::{Convention, PostConfig};
use core::convert::Infallible;
use core::fmt::Write as _;
use cortex_m_rt::entry;
use embedded_hal::digital::{ErrorType, OutputPin};
use panic_halt as _;

/// Window length and durations of the demo maps.
const T: usize = 16;
const D: usize = 16;
/// Candidate pairs at most: T·D always suffices.
const MAX_PAIRS: usize = T * D;
/// Proposals reported.
const TOP_K: usize = 10;
/// Score from which a proposal lights the indicator.
const THRESHOLD: f64 = 0.2;
/// The snippet stream of the window-buffer part: features per snippet, hop, snippets.
const C: usize = 4;
const HOP: usize = 8;
const SNIPPETS: u64 = 43;

const N_MAPS: usize = 2 * T + 2 * D * T;

/// `maps.bin` (little-endian float32: start[T], end[T], confidence[2][D][T]) decoded at
/// compile time into a table in flash.
static MAPS: [f32; N_MAPS] = decode(include_bytes!("../demo/maps.bin"));

const fn decode(bytes: &[u8]) -> [f32; N_MAPS] {
    assert!(bytes.len() == 4 * N_MAPS, "demo/maps.bin has the wrong size for T = D = 16");
    let mut out = [0.0f32; N_MAPS];
    let mut i = 0;
    while i < N_MAPS {
        let b = [bytes[4 * i], bytes[4 * i + 1], bytes[4 * i + 2], bytes[4 * i + 3]];
        out[i] = f32::from_bits(u32::from_le_bytes(b));
        i += 1;
    }
    out
}

/// A serial-like byte sink.
trait Serial {
    fn write(&mut self, bytes: &[u8]);
}

/// The host's stdout through semihosting (qemu `-semihosting`, or a debugger).
#[cfg(feature = "semihosting")]
struct Host(Option<cortex_m_semihosting::hio::HostStream>);

#[cfg(feature = "semihosting")]
impl Serial for Host {
    fn write(&mut self, bytes: &[u8]) {
        if let Some(out) = self.0.as_mut() {
            let _ = out.write_all(bytes);
        }
    }
}

/// The last bytes written, in RAM, for a board without a debugger attached.
#[cfg(not(feature = "semihosting"))]
struct Ring {
    buf: [u8; 1024],
    next: usize,
}

#[cfg(not(feature = "semihosting"))]
impl Serial for Ring {
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.buf[self.next] = b;
            self.next = (self.next + 1) % self.buf.len();
        }
    }
}

/// `core::fmt` on a [`Serial`], for the text lines of the report.
struct Text<'a, S: Serial>(&'a mut S);

impl<S: Serial> core::fmt::Write for Text<'_, S> {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        self.0.write(s.as_bytes());
        Ok(())
    }
}

/// The indicator's pin: records its level and counts writes (a real HAL pin goes here).
struct DemoPin {
    high: bool,
    writes: u32,
}

impl ErrorType for DemoPin {
    type Error = Infallible;
}

impl OutputPin for DemoPin {
    fn set_low(&mut self) -> Result<(), Infallible> {
        self.high = false;
        self.writes += 1;
        Ok(())
    }
    fn set_high(&mut self) -> Result<(), Infallible> {
        self.high = true;
        self.writes += 1;
        Ok(())
    }
}

/// Word written over the free stack before the run; the deepest overwritten word is the
/// high-water mark.
const PAINT: u32 = 0x5AC7_C0DE;

extern "C" {
    // From cortex-m-rt's link.x: the end of the static data (.data, .bss, .uninit) and
    // the initial stack pointer (the end of RAM). The stack grows down towards __sheap.
    static __sheap: u32;
    static _stack_start: u32;
}

/// Paints the words from the end of the static data up to a little below this function's
/// own frame; returns (bottom, top of the stack).
#[inline(never)]
fn paint_stack() -> (usize, usize) {
    // Only the symbols' addresses are taken (no read: safe).
    let (bottom, top) = (core::ptr::addr_of!(__sheap) as usize, core::ptr::addr_of!(_stack_start) as usize);
    let limit = (cortex_m::register::msp::read() as usize).saturating_sub(64) & !3;
    let mut p = bottom;
    while p < limit {
        // SAFETY: [bottom, limit) is RAM between the static data and the live stack
        // (64 bytes of margin below this frame; the loop calls nothing).
        unsafe { (p as *mut u32).write_volatile(PAINT) };
        p += 4;
    }
    (bottom, top)
}

/// Bytes of stack used since [`paint_stack`]: from the top down to the deepest word that
/// no longer holds the paint.
fn stack_used(bottom: usize, top: usize) -> usize {
    let mut p = bottom;
    // SAFETY: reads of RAM words in [bottom, top).
    while p < top && unsafe { (p as *const u32).read_volatile() } == PAINT {
        p += 4;
    }
    top - p
}

#[entry]
fn main() -> ! {
    // ~10 KiB of buffers in .bss, not on the stack: cortex-m-rt turns a `static mut` at the
    // top of the entry function into a `&'static mut` (safe: main runs once). Its
    // initialiser is const, so nothing is built on the stack and copied (as
    // `cortex_m::singleton!` would: it measured 22.5 KiB of stack here).
    static mut POST: WindowPostProcessor<T, MAX_PAIRS> = WindowPostProcessor::new();
    let (bottom, top) = paint_stack();

    #[cfg(feature = "semihosting")]
    let mut serial = Host(cortex_m_semihosting::hio::hstdout().ok());
    #[cfg(not(feature = "semihosting"))]
    let mut serial = Ring { buf: [0; 1024], next: 0 };

    let ok = windows(&mut serial) && run(&mut serial, POST);

    let used = stack_used(bottom, top);
    let _ = writeln!(
        Text(&mut serial),
        "# stack: {used} bytes used at most, of {} free above the static data",
        top - bottom
    );
    exit(ok)
}

/// The window buffer on a stream of snippets, as firmware that receives features (and
/// hands each window to the device running the network) would use it: `SNIPPETS`
/// snippets of `C` features, feature `c` of snippet `i` = `i + c/8` (exact in f32), windows
/// of `T` with hop `HOP`, the last on the hop grid. Checks every emitted window against
/// that formula (the `[C, T]` layout, edge padding past the last snippet) and reports the
/// window starts; false on any mismatch or error.
fn windows<S: Serial>(serial: &mut S) -> bool {
    let mut ring = [0.0f32; C * T];
    let mut window = [0.0f32; C * T];
    let Ok(mut buffer) = WindowBuffer::new(&mut ring, T, C, HOP) else {
        return false;
    };
    let mut starts = [0u64; 8];
    let mut n = 0;
    let mut ok = true;
    let mut check = |em: bmn_edge::window::Emitted, window: &[f32], n: &mut usize| {
        for c in 0..C {
            for t in 0..T {
                // Columns past the last real snippet repeat it (edge padding).
                let i = (em.start + t.min(em.valid - 1) as u64).min(SNIPPETS - 1);
                ok &= window[c * T + t] == i as f32 + c as f32 / 8.0;
            }
        }
        if *n < starts.len() {
            starts[*n] = em.start;
        }
        *n += 1;
    };
    for i in 0..SNIPPETS {
        let snippet: [f32; C] = core::array::from_fn(|c| i as f32 + c as f32 / 8.0);
        match buffer.push(&snippet, &mut window) {
            Ok(Some(em)) => check(em, &window, &mut n),
            Ok(None) => {}
            Err(_) => return false,
        }
    }
    let mut last_valid = T;
    match buffer.finish_on_grid(&mut window) {
        Ok(Some(em)) => {
            last_valid = em.valid;
            check(em, &window, &mut n)
        }
        Ok(None) => {}
        Err(_) => return false,
    }
    let mut text = Text(serial);
    let _ = write!(text, "# window buffer (T = {T}, hop {HOP}, C = {C}) on {SNIPPETS} snippets: windows at");
    for s in &starts[..n.min(starts.len())] {
        let _ = write!(text, " {s}");
    }
    let _ = writeln!(text, " (last: {last_valid} real snippets); contents {}", if ok { "checked" } else { "WRONG" });
    ok
}

/// Post-processes the window, writes the JSON lines and drives the indicator; false on
/// any error (reported as a `# error` line).
fn run<S: Serial>(serial: &mut S, post: &mut WindowPostProcessor<T, MAX_PAIRS>) -> bool {
    let Ok(cfg) = PostConfig::new(T, D, Convention::Mmaction2) else {
        let _ = writeln!(Text(serial), "# error: bad configuration");
        return false;
    };
    let (start, rest) = MAPS.split_at(T);
    let (end, confidence) = rest.split_at(T);
    let maps = match WindowMaps::new(&cfg, start, end, confidence) {
        Ok(m) => m,
        Err(e) => {
            let _ = writeln!(Text(serial), "# error: {e}");
            return false;
        }
    };
    let proposals = match post.run(&cfg, &maps, TOP_K) {
        Ok(p) => p,
        Err(e) => {
            let _ = writeln!(Text(serial), "# error: {e}");
            return false;
        }
    };

    // The proposals, best first: {"segment":[xmin,xmax],"score":s} (normalised time).
    let mut line = [0u8; 96];
    for p in proposals {
        match write_json_line(&SegmentScore { segment: [p.xmin, p.xmax], score: p.score }, &mut line) {
            Ok(n) => serial.write(&line[..n]),
            Err(e) => {
                let _ = writeln!(Text(serial), "# error: {e}");
                return false;
            }
        }
    }

    // The indicator over the window's snippets, as a stream would drive it.
    let Ok(mut indicator) = Indicator::new(DemoPin { high: false, writes: 0 }, THRESHOLD) else {
        return false;
    };
    let mut lit = [b'.'; T];
    for (s, mark) in lit.iter_mut().enumerate() {
        let active = proposals.iter().map(|p| (u64::from(p.start), u64::from(p.end), p.score));
        // DemoPin cannot fail (Infallible); a real pin's error would be reported here.
        match indicator.update(s as u64, active) {
            Ok(true) => *mark = b'#',
            Ok(false) => {}
            Err(_) => *mark = b'!',
        }
    }
    let pin = indicator.release();
    let _ = writeln!(
        Text(serial),
        "# indicator (score >= {THRESHOLD}) over snippets 0..{T}: {} ({} pin writes)",
        core::str::from_utf8(&lit).unwrap_or("?"),
        pin.writes
    );
    true
}

#[cfg(feature = "semihosting")]
fn exit(ok: bool) -> ! {
    use cortex_m_semihosting::debug;
    debug::exit(if ok { debug::EXIT_SUCCESS } else { debug::EXIT_FAILURE });
    loop {
        cortex_m::asm::wfi();
    }
}

#[cfg(not(feature = "semihosting"))]
fn exit(_ok: bool) -> ! {
    loop {
        cortex_m::asm::wfi();
    }
}

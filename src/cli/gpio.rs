//! `--gpio-chip`, `--gpio-line`, `--gpio-threshold` (feature `gpio`, Linux): the proposal
//! indicator ([`bmn_edge::indicator::Indicator`]) on a real GPIO line, through the kernel's
//! GPIO character device (`/dev/gpiochipN`, via `linux-embedded-hal`).
//!
//! Everything that can be checked before the stream starts is checked in [`GpioArgs::open`]:
//! the chip exists and is a GPIO character device, the line exists on it, no other program
//! holds it, and the kernel grants it as an output (driven low). A mistake there is an
//! error naming the chip and line, before the first snippet is read; during the stream a
//! failed write is an error too (the indicator never swallows one). When the indicator is
//! dropped — the stream ended, or failed — it drives the line low, so a service that stops
//! does not leave the line lit (the kernel keeps a released line's last value on many
//! controllers).

use anyhow::{bail, Context, Result};
use bmn_edge::indicator::Indicator;
use embedded_hal::digital::OutputPin;
use linux_embedded_hal::gpio_cdev::{Chip, LineRequestFlags};
use linux_embedded_hal::CdevPin;
use std::path::{Path, PathBuf};

/// The consumer name the line is requested under (shown by `gpioinfo`).
const CONSUMER: &str = "bmn-edge";

/// The default score threshold: a proposal lights the line from this score on.
pub const DEFAULT_GPIO_THRESHOLD: f64 = 0.5;

/// The indicator on a GPIO character-device line, as [`GpioArgs::open`] returns it.
pub type LineIndicator = GpioIndicator<CdevPin>;

/// The indicator's GPIO line (feature `gpio`).
#[derive(Debug, Clone, clap::Args)]
pub struct GpioArgs {
    /// GPIO character device whose line shows the proposals (e.g. /dev/gpiochip0; on a Pi 5
    /// the header's pins are on the chip labelled pinctrl-rp1, see `gpiodetect`).
    #[arg(long, value_name = "DEVICE", requires = "gpio_line")]
    pub gpio_chip: Option<PathBuf>,
    /// Line (offset on the chip, as `gpioinfo` numbers them) driven high while a proposal
    /// scoring at least --gpio-threshold covers the newest snippet.
    #[arg(long, value_name = "OFFSET", requires = "gpio_chip")]
    pub gpio_line: Option<u32>,
    /// Score from which a proposal lights the line [default: 0.5].
    #[arg(long, value_name = "SCORE", requires = "gpio_chip", value_parser = parse_threshold)]
    pub gpio_threshold: Option<f64>,
}

fn parse_threshold(s: &str) -> Result<f64, String> {
    let x: f64 = s.parse().map_err(|e| format!("{e}"))?;
    if x.is_nan() {
        return Err("NaN: no score could ever reach it".into());
    }
    Ok(x)
}

impl GpioArgs {
    /// Opens the line when `--gpio-chip` is given (`None` otherwise): requested as an
    /// output, driven low. Every error names the chip and line and says what to check.
    pub fn open(&self) -> Result<Option<LineIndicator>> {
        let (Some(chip), Some(line)) = (&self.gpio_chip, self.gpio_line) else {
            return Ok(None);
        };
        let pin = request_output(chip, line)?;
        let threshold = self.gpio_threshold.unwrap_or(DEFAULT_GPIO_THRESHOLD);
        let name = format!("line {line} of {}", chip.display());
        let mut indicator = GpioIndicator::new(pin, threshold, name)?;
        // Low now: the line's state is known from the start, and a line that cannot be
        // written fails here rather than at the first window.
        indicator.update(0, std::iter::empty())?;
        Ok(Some(indicator))
    }
}

/// Requests `line` of `chip` as an output, initially low.
fn request_output(chip: &Path, line: u32) -> Result<CdevPin> {
    let shown = chip.display();
    let meta = std::fs::metadata(chip).map_err(|e| {
        let hint = if e.kind() == std::io::ErrorKind::NotFound {
            " (no such device; `ls /dev/gpiochip*` lists the chips)"
        } else {
            ""
        };
        anyhow::anyhow!("--gpio-chip {shown}: {e}{hint}")
    })?;
    // Not opened unless it is a character device: opening a FIFO would block, and a
    // regular file is certainly not a chip.
    if !std::os::unix::fs::FileTypeExt::is_char_device(&meta.file_type()) {
        bail!("--gpio-chip {shown} is not a character device (a GPIO chip is /dev/gpiochipN)");
    }
    let mut c = Chip::new(chip).map_err(|e| {
        anyhow::anyhow!(
            "--gpio-chip {shown}: cannot open it as a GPIO chip: {e} (is it a /dev/gpiochipN \
             device, and may this user open it? on Raspberry Pi OS: the `gpio` group)"
        )
    })?;
    let lines = c.num_lines();
    if line >= lines {
        bail!("--gpio-line {line}: {shown} ({}) has {lines} lines, 0 to {}", c.label(), lines.saturating_sub(1));
    }
    let l = c.get_line(line).with_context(|| format!("--gpio-line {line} of {shown}"))?;
    let info = l.info().with_context(|| format!("--gpio-line {line} of {shown}: reading its state"))?;
    if info.is_used() {
        let by = info.consumer().unwrap_or("the kernel or another program");
        bail!("--gpio-line {line} of {shown} is busy: held by '{by}' (see `gpioinfo`); choose a free line");
    }
    let handle = l
        .request(LineRequestFlags::OUTPUT, 0, CONSUMER)
        .with_context(|| format!("--gpio-line {line} of {shown}: the kernel refused it as an output"))?;
    CdevPin::new(handle).with_context(|| format!("--gpio-line {line} of {shown}: reading the granted line"))
}

/// The indicator on an output pin, with errors that name the line, driven low when dropped.
/// [`GpioArgs::open`] makes one on a GPIO line; any [`OutputPin`] works (the tests use a
/// mock).
pub struct GpioIndicator<P: OutputPin> {
    indicator: Option<Indicator<P>>,
    name: String,
}

impl<P: OutputPin> GpioIndicator<P> {
    /// An indicator on `pin` (called `name` in messages) lighting for scores `>= threshold`;
    /// a NaN threshold is an error.
    pub fn new(pin: P, threshold: f64, name: String) -> Result<Self> {
        let indicator = Indicator::new(pin, threshold).map_err(|e| anyhow::anyhow!("GPIO {name}: {e}"))?;
        Ok(GpioIndicator { indicator: Some(indicator), name })
    }

    /// Sets the line for stream snippet `position` from the proposals that may cover it,
    /// `(start, end, score)` in snippets (`end` exclusive); writes only on a change of
    /// level. Returns the level (`true`: high).
    pub fn update(&mut self, position: u64, active: impl IntoIterator<Item = (u64, u64, f64)>) -> Result<bool> {
        let Some(indicator) = self.indicator.as_mut() else {
            bail!("GPIO {}: the indicator was released", self.name);
        };
        indicator.update(position, active).map_err(|e| {
            let level = if e.wanted_high() { "high" } else { "low" };
            anyhow::anyhow!("GPIO {}: driving it {level} at snippet {position} failed: {:?}", self.name, e.pin_error())
        })
    }

    /// The level the line is known to have (`Some(true)`: high).
    #[cfg(test)]
    fn level(&self) -> Option<bool> {
        self.indicator.as_ref().and_then(Indicator::level)
    }

    /// Drives the line low and hands the pin back (at the end of a stream: unlike the
    /// drop, a failed write is an error).
    pub fn release(mut self) -> Result<P> {
        self.update(u64::MAX, std::iter::empty())?;
        let indicator = self.indicator.take().expect("present until released");
        Ok(indicator.release())
    }
}

impl<P: OutputPin> Drop for GpioIndicator<P> {
    fn drop(&mut self) {
        if let Some(indicator) = self.indicator.as_mut() {
            // An empty set of proposals: low (written unless known low already).
            if let Err(e) = indicator.update(u64::MAX, std::iter::empty()) {
                log::warn!("GPIO {}: could not drive it low at the end: {:?}", self.name, e.pin_error());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use embedded_hal_mock::eh1::digital::{Mock, State, Transaction};
    use embedded_hal_mock::eh1::MockError;

    #[derive(Debug, Parser)]
    struct Cli {
        #[command(flatten)]
        gpio: GpioArgs,
    }

    fn parse(args: &[&str]) -> Result<GpioArgs, clap::Error> {
        Cli::try_parse_from(std::iter::once("t").chain(args.iter().copied())).map(|c| c.gpio)
    }

    fn open_err(chip: &Path, line: u32) -> String {
        let args = GpioArgs { gpio_chip: Some(chip.to_path_buf()), gpio_line: Some(line), gpio_threshold: None };
        match args.open() {
            Ok(_) => panic!("{} opened as a GPIO chip", chip.display()),
            Err(e) => format!("{e:#}"),
        }
    }

    #[test]
    fn no_flags_no_indicator() {
        let args = parse(&[]).unwrap();
        assert!(args.open().unwrap().is_none());
    }

    #[test]
    fn chip_and_line_go_together_and_the_threshold_needs_them() {
        assert!(parse(&["--gpio-chip", "/dev/gpiochip0"]).is_err());
        assert!(parse(&["--gpio-line", "17"]).is_err());
        assert!(parse(&["--gpio-threshold", "0.7"]).is_err());
        assert!(parse(&["--gpio-chip", "/dev/gpiochip0", "--gpio-line", "17", "--gpio-threshold", "nan"]).is_err());
        assert!(parse(&["--gpio-chip", "/dev/gpiochip0", "--gpio-line", "-1"]).is_err());
        let a = parse(&["--gpio-chip", "/dev/gpiochip0", "--gpio-line", "17", "--gpio-threshold", "0.7"]).unwrap();
        assert_eq!(
            (a.gpio_chip.unwrap(), a.gpio_line, a.gpio_threshold),
            ("/dev/gpiochip0".into(), Some(17), Some(0.7))
        );
    }

    #[test]
    fn a_missing_chip_is_a_clear_error_at_open() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("gpiochip99");
        let e = open_err(&missing, 3);
        assert!(e.contains("--gpio-chip") && e.contains("gpiochip99"), "{e}");
        assert!(e.contains("no such device"), "{e}");
    }

    #[test]
    fn a_file_that_is_not_a_chip_is_refused_without_blocking() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("gpiochip0");
        std::fs::write(&file, b"not a chip").unwrap();
        let e = open_err(&file, 0);
        assert!(e.contains("not a character device"), "{e}");
        // A FIFO with no writer would block an open(); it is refused before opening.
        let fifo = dir.path().join("fifo");
        let made = std::process::Command::new("mkfifo").arg(&fifo).status().map(|s| s.success()).unwrap_or(false);
        if made {
            let e = open_err(&fifo, 0);
            assert!(e.contains("not a character device"), "{e}");
        }
    }

    #[test]
    fn a_character_device_that_is_not_a_gpio_chip_is_refused() {
        // /dev/null is a character device; the chip-info ioctl fails on it.
        let e = open_err(Path::new("/dev/null"), 0);
        assert!(e.contains("cannot open it as a GPIO chip"), "{e}");
    }

    #[test]
    fn updates_drive_the_pin_and_drop_leaves_it_low() {
        // [2, 4) scores 0.9: high at 2 and 3. Dropped while high: driven low.
        let writes = [
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low),
            Transaction::set(State::High),
            Transaction::set(State::Low), // the drop
        ];
        let mut mock = Mock::new(&writes);
        let mut ind = GpioIndicator::new(mock.clone(), 0.5, "test pin".into()).unwrap();
        let proposals = [(2u64, 4u64, 0.9f64), (5, 9, 0.4)];
        let levels: Vec<bool> = (0..6).map(|p| ind.update(p, proposals).unwrap()).collect();
        assert_eq!(levels, [false, false, true, true, false, false]);
        assert!(ind.update(3, proposals).unwrap());
        drop(ind);
        mock.done();
    }

    #[test]
    fn release_drives_low_once_and_a_failed_write_names_the_line() {
        // Known low: release writes nothing more.
        let mut mock = Mock::new(&[Transaction::set(State::Low)]);
        let mut ind = GpioIndicator::new(mock.clone(), 0.5, "line 7 of chip".into()).unwrap();
        ind.update(0, []).unwrap();
        ind.release().unwrap();
        mock.done();
        // A failing write is an error that names the line and the snippet.
        let fail = Transaction::set(State::High).with_error(MockError::Io(std::io::ErrorKind::BrokenPipe));
        let mut mock = Mock::new(&[fail, Transaction::set(State::Low)]);
        let mut ind = GpioIndicator::new(mock.clone(), 0.5, "line 7 of chip".into()).unwrap();
        let e = format!("{:#}", ind.update(12, [(10, 20, 1.0)]).unwrap_err());
        assert!(e.contains("line 7 of chip") && e.contains("high") && e.contains("snippet 12"), "{e}");
        assert_eq!(ind.level(), None);
        drop(ind); // unknown level: the drop writes low
        mock.done();
    }

    #[test]
    fn a_nan_threshold_is_refused() {
        let mut mock = Mock::new(&[]);
        let e = GpioIndicator::new(mock.clone(), f64::NAN, "x".into()).err().expect("NaN accepted");
        assert!(format!("{e}").contains("NaN"));
        mock.done();
    }
}

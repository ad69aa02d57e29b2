//! Window configuration, in two parts that different consumers need:
//!
//! * [`PostConfig`]: the map's size `T × D` and the post-processing convention — all that
//!   candidates, pairing, Soft-NMS and the video merge use;
//! * [`WindowConfig`]: a whole BMN window, the BM layer's geometry `(T, D, N, K, r)` plus the
//!   convention — what a model defines; [`WindowConfig::post`] gives its [`PostConfig`].
//!
//! Both can only be built through their validating constructors, so a configuration that
//! exists is a valid one: `1 ≤ D ≤ T ≤ 4096`, `N·K ≥ 2`, `r` finite and `≥ 0`, and every
//! size the core derives from it (cells, samples, grid positions) fits the integer types
//! used for it.

use core::fmt;

/// Which reference implementation's post-processing conventions to follow (reference §3).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Convention {
    /// OpenMMLab mmaction2 (and the JJBOY PyTorch port): the default.
    #[default]
    Mmaction2,
    /// PaddleVideo, the authors' implementation.
    Paddle,
}

impl Convention {
    /// The name used on the command line and in model metadata.
    pub const fn name(self) -> &'static str {
        match self {
            Convention::Mmaction2 => "mmaction2",
            Convention::Paddle => "paddle",
        }
    }

    /// Parses `mmaction2` or `paddle`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "mmaction2" => Some(Convention::Mmaction2),
            "paddle" => Some(Convention::Paddle),
            _ => None,
        }
    }
}

impl fmt::Display for Convention {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What was wrong with a configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ConfigErrorKind {
    /// `T` is zero or larger than [`WindowConfig::MAX_TSCALE`].
    Tscale,
    /// `D` is zero or larger than `T`.
    Dscale,
    /// `N` or `K` is zero, or `N·K < 2` (the sample spacing divides by `N·K − 1`),
    /// or `N·K` exceeds [`WindowConfig::MAX_SAMPLES`].
    Samples,
    /// The expansion ratio `r` is negative, NaN or infinite.
    Ratio,
}

/// An invalid [`WindowConfig`]: which parameter, and the value given.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ConfigError {
    kind: ConfigErrorKind,
    value: f64,
}

impl ConfigError {
    /// Which parameter was rejected.
    pub fn kind(&self) -> ConfigErrorKind {
        self.kind
    }
    /// The rejected value (as f64, for messages).
    pub fn value(&self) -> f64 {
        self.value
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.kind {
            ConfigErrorKind::Tscale => {
                write!(f, "temporal scale T = {} must be in 1..={}", self.value, WindowConfig::MAX_TSCALE)
            }
            ConfigErrorKind::Dscale => {
                write!(f, "duration scale D = {} must be in 1..=T", self.value)
            }
            ConfigErrorKind::Samples => write!(
                f,
                "samples N·K = {} must be at least 2 (and at most {}), with N ≥ 1 and K ≥ 1",
                self.value,
                WindowConfig::MAX_SAMPLES
            ),
            ConfigErrorKind::Ratio => write!(f, "expansion ratio r = {} must be finite and non-negative", self.value),
        }
    }
}

#[cfg(feature = "std")]
impl std::error::Error for ConfigError {}

/// What post-processing needs of a window: the map's size and the convention.
///
/// * `tscale` `T`: snippets per window (the map's start axis).
/// * `dscale` `D`: proposal durations (the map's duration axis), `D ≤ T`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PostConfig {
    tscale: u16,
    dscale: u16,
    convention: Convention,
}

impl PostConfig {
    /// Validates and builds a configuration (`1 ≤ D ≤ T ≤` [`WindowConfig::MAX_TSCALE`]).
    pub fn new(tscale: usize, dscale: usize, convention: Convention) -> Result<Self, ConfigError> {
        let err = |kind, value: usize| ConfigError { kind, value: value as f64 };
        if tscale == 0 || tscale > WindowConfig::MAX_TSCALE {
            return Err(err(ConfigErrorKind::Tscale, tscale));
        }
        if dscale == 0 || dscale > tscale {
            return Err(err(ConfigErrorKind::Dscale, dscale));
        }
        // The casts cannot truncate: both are bounded by 4096 above.
        Ok(PostConfig { tscale: tscale as u16, dscale: dscale as u16, convention })
    }

    /// The ActivityNet map of the paper: `T = D = 100`.
    pub fn paper(convention: Convention) -> Self {
        PostConfig { tscale: 100, dscale: 100, convention }
    }

    /// `T`, snippets per window.
    pub fn tscale(&self) -> usize {
        self.tscale as usize
    }
    /// `D`, number of proposal durations.
    pub fn dscale(&self) -> usize {
        self.dscale as usize
    }
    /// The post-processing convention.
    pub fn convention(&self) -> Convention {
        self.convention
    }
    /// Number of map cells `D·T` (valid or not).
    pub fn cells(&self) -> usize {
        self.dscale() * self.tscale()
    }
    /// Number of valid cells, those with `s + d ≤ T − 1`.
    pub fn valid_cells(&self) -> usize {
        let (t, d) = (self.tscale(), self.dscale());
        // Σ_{d<D} (T − d)
        d * t - d * (d - 1) / 2
    }
    /// Whether cell `(d, s)` is a valid proposal (`s + d ≤ T − 1`).
    pub fn is_valid_cell(&self, d: usize, s: usize) -> bool {
        d < self.dscale() && s < self.tscale() && s + d < self.tscale()
    }
}

impl From<WindowConfig> for PostConfig {
    fn from(w: WindowConfig) -> PostConfig {
        w.post()
    }
}

impl From<&WindowConfig> for PostConfig {
    fn from(w: &WindowConfig) -> PostConfig {
        w.post()
    }
}

/// Geometry of one BMN window (the BM layer's `T, D, N, K, r`) plus the post-processing
/// convention: what a model defines.
///
/// * `tscale` `T`: snippets per window (the map's start axis).
/// * `dscale` `D`: proposal durations (the map's duration axis), `D ≤ T`.
/// * `num_sample` `N`: sampling bins per proposal in the BM layer.
/// * `num_sample_perbin` `K`: interpolation points per bin.
/// * `ratio` `r`: expansion of the sampled region on both sides, in proposal lengths.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct WindowConfig {
    tscale: u16,
    dscale: u16,
    num_sample: u16,
    num_sample_perbin: u16,
    ratio: f64,
    convention: Convention,
}

impl WindowConfig {
    /// Largest supported `T` (grid positions are carried as `u16`; `T·D` and the dense
    /// mask size `T·N·D·T` are computed in `u64` and checked where they are used).
    pub const MAX_TSCALE: usize = 4096;
    /// Largest supported `N·K`.
    pub const MAX_SAMPLES: usize = 4096;

    /// Validates and builds a configuration.
    pub fn new(
        tscale: usize,
        dscale: usize,
        num_sample: usize,
        num_sample_perbin: usize,
        ratio: f64,
        convention: Convention,
    ) -> Result<Self, ConfigError> {
        let err = |kind, value: f64| ConfigError { kind, value };
        if tscale == 0 || tscale > Self::MAX_TSCALE {
            return Err(err(ConfigErrorKind::Tscale, tscale as f64));
        }
        if dscale == 0 || dscale > tscale {
            return Err(err(ConfigErrorKind::Dscale, dscale as f64));
        }
        let nk = num_sample.checked_mul(num_sample_perbin);
        match nk {
            Some(nk) if num_sample >= 1 && num_sample_perbin >= 1 && (2..=Self::MAX_SAMPLES).contains(&nk) => {}
            _ => {
                let v = (num_sample as f64) * (num_sample_perbin as f64);
                return Err(err(ConfigErrorKind::Samples, v));
            }
        }
        if !ratio.is_finite() || ratio < 0.0 {
            return Err(err(ConfigErrorKind::Ratio, ratio));
        }
        // The casts cannot truncate: all three are bounded by 4096 above.
        Ok(WindowConfig {
            tscale: tscale as u16,
            dscale: dscale as u16,
            num_sample: num_sample as u16,
            num_sample_perbin: num_sample_perbin as u16,
            ratio,
            convention,
        })
    }

    /// The ActivityNet configuration of the paper: `T = D = 100, N = 32, K = 3, r = 0.5`.
    pub fn paper(convention: Convention) -> Self {
        WindowConfig { tscale: 100, dscale: 100, num_sample: 32, num_sample_perbin: 3, ratio: 0.5, convention }
    }

    /// What post-processing needs of it: `T`, `D` and the convention.
    pub fn post(&self) -> PostConfig {
        PostConfig { tscale: self.tscale, dscale: self.dscale, convention: self.convention }
    }

    /// The same geometry with another convention.
    pub fn with_convention(mut self, convention: Convention) -> Self {
        self.convention = convention;
        self
    }

    /// `T`, snippets per window.
    pub fn tscale(&self) -> usize {
        self.tscale as usize
    }
    /// `D`, number of proposal durations.
    pub fn dscale(&self) -> usize {
        self.dscale as usize
    }
    /// `N`, sampling bins per proposal.
    pub fn num_sample(&self) -> usize {
        self.num_sample as usize
    }
    /// `K`, interpolation points per bin.
    pub fn num_sample_perbin(&self) -> usize {
        self.num_sample_perbin as usize
    }
    /// `r`, the expansion ratio.
    pub fn ratio(&self) -> f64 {
        self.ratio
    }
    /// The post-processing convention.
    pub fn convention(&self) -> Convention {
        self.convention
    }
    /// Number of map cells `D·T` (valid or not).
    pub fn cells(&self) -> usize {
        self.post().cells()
    }
    /// Number of valid cells, those with `s + d ≤ T − 1`.
    pub fn valid_cells(&self) -> usize {
        self.post().valid_cells()
    }
    /// Whether cell `(d, s)` is a valid proposal (`s + d ≤ T − 1`).
    pub fn is_valid_cell(&self, d: usize, s: usize) -> bool {
        self.post().is_valid_cell(d, s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_rejects_each_bad_parameter() {
        let c = Convention::Mmaction2;
        assert_eq!(WindowConfig::new(0, 0, 32, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Tscale);
        assert_eq!(WindowConfig::new(5000, 10, 32, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Tscale);
        assert_eq!(WindowConfig::new(10, 11, 32, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Dscale);
        assert_eq!(WindowConfig::new(10, 0, 32, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Dscale);
        assert_eq!(WindowConfig::new(10, 10, 1, 1, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Samples);
        assert_eq!(WindowConfig::new(10, 10, 0, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Samples);
        assert_eq!(WindowConfig::new(10, 10, usize::MAX, 3, 0.5, c).unwrap_err().kind(), ConfigErrorKind::Samples);
        assert_eq!(WindowConfig::new(10, 10, 32, 3, -0.1, c).unwrap_err().kind(), ConfigErrorKind::Ratio);
        assert_eq!(WindowConfig::new(10, 10, 32, 3, f64::NAN, c).unwrap_err().kind(), ConfigErrorKind::Ratio);
        assert!(WindowConfig::new(10, 10, 2, 1, 0.0, c).is_ok());
        assert!(WindowConfig::new(1, 1, 1, 2, 0.0, c).is_ok());
    }

    #[test]
    fn post_config_is_the_window_s_map_and_validates_alone() {
        let w = WindowConfig::new(30, 10, 4, 3, 0.5, Convention::Paddle).unwrap();
        let p = w.post();
        assert_eq!((p.tscale(), p.dscale(), p.convention()), (30, 10, Convention::Paddle));
        assert_eq!((p.cells(), p.valid_cells()), (w.cells(), w.valid_cells()));
        assert_eq!(p, PostConfig::new(30, 10, Convention::Paddle).unwrap());
        assert_eq!(PostConfig::from(&w), p);
        assert_eq!(PostConfig::paper(Convention::Mmaction2), WindowConfig::paper(Convention::Mmaction2).post());
        assert_eq!(PostConfig::new(0, 0, Convention::Paddle).unwrap_err().kind(), ConfigErrorKind::Tscale);
        assert_eq!(PostConfig::new(10, 11, Convention::Paddle).unwrap_err().kind(), ConfigErrorKind::Dscale);
        assert_eq!(PostConfig::new(5000, 10, Convention::Paddle).unwrap_err().kind(), ConfigErrorKind::Tscale);
    }

    #[test]
    // Minutes under Miri (the paper-sized or long loops); the smaller tests cover the same code.
    #[cfg_attr(miri, ignore)]
    fn paper_config_counts() {
        let cfg = WindowConfig::paper(Convention::Mmaction2);
        assert_eq!(cfg, WindowConfig::new(100, 100, 32, 3, 0.5, Convention::Mmaction2).unwrap());
        assert_eq!(cfg.valid_cells(), 5050);
        let small = WindowConfig::new(30, 10, 4, 3, 0.5, Convention::Paddle).unwrap();
        let brute =
            (0..10).flat_map(|d| (0..30).map(move |s| (d, s))).filter(|&(d, s)| small.is_valid_cell(d, s)).count();
        assert_eq!(small.valid_cells(), brute);
    }
}

//! What the engine found in a model file, as types: the file's form, the BMN variant, the
//! window geometry, and how stage B runs.

use super::cpu::Int8Arithmetic;
use super::widened::WidenedSimd;
use crate::config::{Convention, WindowConfig};
use std::fmt;

/// Which form the model file is in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    /// A standard export with the dense mask.
    Standard,
    /// The edge format (`bmn-edge convert`).
    Edge,
}

impl ModelFormat {
    /// `standard` or `edge`.
    pub fn name(self) -> &'static str {
        match self {
            ModelFormat::Standard => "standard",
            ModelFormat::Edge => "edge",
        }
    }
}

/// Which BMN variant the widths say this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Variant {
    /// mmaction2 / BMN-PyTorch: the PEM 1-d width equals the base width.
    Pytorch,
    /// PaddleVideo: the PEM 1-d width is half the base width.
    Paddle,
    /// Any other width relation (PEM 1-d width `pem_width`).
    Custom {
        /// The PEM 1-d width `P`.
        pem_width: usize,
    },
}

impl Variant {
    /// From the base width (what the PEM 1-d convolution reads) and the PEM width.
    pub(crate) fn from_widths(base: Option<usize>, pem: usize) -> Variant {
        match base {
            Some(b) if b == pem => Variant::Pytorch,
            Some(b) if b == 2 * pem => Variant::Paddle,
            _ => Variant::Custom { pem_width: pem },
        }
    }

    /// The convention a model of this variant is post-processed with by default.
    pub fn default_convention(self) -> Convention {
        match self {
            Variant::Paddle => Convention::Paddle,
            _ => Convention::Mmaction2,
        }
    }
}

impl fmt::Display for Variant {
    /// `pytorch`, `paddle` or `custom (P = …)` — the edge metadata's `variant` value.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Variant::Pytorch => f.write_str("pytorch"),
            Variant::Paddle => f.write_str("paddle"),
            Variant::Custom { pem_width } => write!(f, "custom (P = {pem_width})"),
        }
    }
}

/// How a video becomes windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum WindowMode {
    /// Windows of `T` with a hop (default `T/2`), merged in video time.
    #[default]
    Sliding,
    /// The whole video resampled to `T` (ActivityNet).
    Rescale,
}

impl WindowMode {
    /// `sliding` or `rescale`.
    pub fn name(self) -> &'static str {
        match self {
            WindowMode::Sliding => "sliding",
            WindowMode::Rescale => "rescale",
        }
    }

    /// Parses `sliding` or `rescale`.
    pub fn parse(s: &str) -> Option<WindowMode> {
        match s {
            "sliding" => Some(WindowMode::Sliding),
            "rescale" => Some(WindowMode::Rescale),
            _ => None,
        }
    }
}

/// How stage B runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StageBForm {
    /// The sparse float tail: valid cells only, 3×3s in Winograd F(2×2, 3×3) form
    /// (quantized chains with their quantization emulated in float).
    Winograd,
    /// The sparse integer tail (symmetric int8 models): int8 products, 3×3s by im2col.
    Integer,
    /// tract runs the exported stage-B graph, in row bands.
    TractBands,
}

impl StageBForm {
    /// `sparse-winograd`, `sparse-int8` or `tract-bands`.
    pub fn name(self) -> &'static str {
        match self {
            StageBForm::Winograd => "sparse-winograd",
            StageBForm::Integer => "sparse-int8",
            StageBForm::TractBands => "tract-bands",
        }
    }
}

/// How an int8 model's products run ([`Int8Arithmetic`]), product by product: chosen once at
/// load from the CPU (or forced), and shown by `inspect`, `bench` and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Int8Plan {
    /// Forced by [`EngineOptions::int8_arithmetic`](super::EngineOptions::int8_arithmetic)
    /// (`false`: chosen for this CPU, [`Int8Arithmetic::for_this_cpu`]).
    pub forced: bool,
    /// The arithmetic asked of every product.
    pub chosen: Int8Arithmetic,
    /// Stage A's quantized convolutions (`None`: stage A has none).
    pub stage_a: Option<Int8Arithmetic>,
    /// The BM layer's projection (`None`: float weights).
    pub projection: Option<Int8Arithmetic>,
    /// Each layer of the integer stage B (empty when stage B runs another form).
    pub stage_b: Vec<Int8Arithmetic>,
}

impl Int8Plan {
    /// The code the widened products run ([`WidenedSimd::detect`]); `None` when no product
    /// is widened.
    pub fn widened_code(&self) -> Option<WidenedSimd> {
        let widened = self.projection.iter().chain(&self.stage_b).any(|&a| a == Int8Arithmetic::Widened);
        widened.then(WidenedSimd::detect)
    }
}

/// What the engine found in a model file.
#[derive(Debug, Clone)]
pub struct ModelInfo {
    /// Standard or edge.
    pub format: ModelFormat,
    /// Quantized op types in the graph (empty for fp32), for display.
    pub quantized_ops: Vec<String>,
    /// PyTorch, Paddle or custom widths.
    pub variant: Variant,
    /// `T, D, N, K, r` and the post-processing convention.
    pub config: WindowConfig,
    /// Input channels `C`.
    pub channels: usize,
    /// PEM 1-d width `P` (256 PyTorch, 128 Paddle).
    pub pem_width: usize,
    /// BM output width `O` (512).
    pub bm_width: usize,
    /// Non-zeros of the BM mask.
    pub mask_nnz: usize,
    /// Input name.
    pub input: String,
    /// Output names: confidence, start, end.
    pub outputs: [String; 3],
    /// ONNX default-domain opset.
    pub opset: i64,
    /// Window mode stored in an edge file, if any.
    pub window_mode: Option<WindowMode>,
    /// Things the user should know (slow quantization forms, ...).
    pub warnings: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn variant_from_widths_and_names() {
        assert_eq!(Variant::from_widths(Some(256), 256), Variant::Pytorch);
        assert_eq!(Variant::from_widths(Some(256), 128), Variant::Paddle);
        assert_eq!(Variant::from_widths(Some(100), 128), Variant::Custom { pem_width: 128 });
        assert_eq!(Variant::from_widths(None, 64), Variant::Custom { pem_width: 64 });
        assert_eq!(Variant::Paddle.default_convention(), Convention::Paddle);
        assert_eq!(Variant::Custom { pem_width: 3 }.to_string(), "custom (P = 3)");
        for m in [WindowMode::Sliding, WindowMode::Rescale] {
            assert_eq!(WindowMode::parse(m.name()), Some(m));
        }
        assert_eq!(WindowMode::parse("Sliding"), None);
    }
}

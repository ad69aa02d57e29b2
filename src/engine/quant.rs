//! int8 quantization arithmetic, as onnxruntime computes it: levels, requantization and
//! the activations between layers.

/// An element-wise activation after a convolution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Act {
    None,
    Relu,
    Sigmoid,
}

impl Act {
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        match self {
            Act::None => x,
            Act::Relu => x.max(0.0),
            // `libm`'s expf, not the platform's: the same bits on every target (no
            // contraction, no per-CPU kernel), so an int8 model's maps are byte-identical
            // across instruction sets (`onnx::split::sigmoid_tails`).
            Act::Sigmoid => 1.0 / (1.0 + libm::expf(-x)),
        }
    }
}

/// Fake quantization, as onnxruntime's `QuantizeLinear` then `DequantizeLinear` compute it:
/// `(clamp(round_half_even(x / scale) + zp, lo, hi) − zp) · scale`.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Quant {
    pub(crate) scale: f32,
    pub(crate) zp: f32,
    pub(crate) lo: f32,
    pub(crate) hi: f32,
}

impl Quant {
    /// `x` quantized and dequantized.
    #[inline]
    pub(crate) fn apply(self, x: f32) -> f32 {
        self.level(x) * self.scale
    }

    /// The quantized value minus the zero point (an integer, as a float).
    #[inline]
    pub(crate) fn level(self, x: f32) -> f32 {
        // Clamping before rounding gives the same (the bounds are integers); rounding half to
        // even by adding and removing 1.5·2²³ (exact below 2²², inlined and vectorised where
        // `round_ties_even` would be a library call on the SSE2 baseline).
        const MAGIC: f32 = 12_582_912.0;
        let v = (x / self.scale).clamp(self.lo - self.zp, self.hi - self.zp);
        (v + MAGIC) - MAGIC
    }

    /// [`Self::level`] as an `i8`, for quantizations whose levels fit one (symmetric int8).
    /// The integer is read from the bits of the rounding sum rather than converted (a
    /// float-to-int conversion does not vectorise on the x86-64 baseline).
    #[inline]
    pub(crate) fn level_i8(self, x: f32) -> i8 {
        const MAGIC: f32 = 12_582_912.0;
        let v = (x / self.scale).clamp(self.lo - self.zp, self.hi - self.zp);
        ((v + MAGIC).to_bits() as i32 - MAGIC.to_bits() as i32) as i8
    }

    /// Symmetric int8 with `scale`.
    #[cfg(test)]
    pub(crate) fn symmetric_s8(scale: f32) -> Quant {
        Quant { scale, zp: 0.0, lo: -128.0, hi: 127.0 }
    }

    /// This scale with another zero point and range.
    #[cfg(test)]
    pub(crate) fn with_zero_point(self, zp: f32, lo: f32, hi: f32) -> Quant {
        Quant { zp, lo, hi, ..self }
    }

    /// Symmetric int8 (zero point 0, levels −128..=127): levels are `i8`s.
    pub(crate) fn is_symmetric_s8(self) -> bool {
        self.zp == 0.0 && self.lo == -128.0 && self.hi == 127.0
    }

    /// The scale.
    pub(crate) fn scale(self) -> f32 {
        self.scale
    }
}

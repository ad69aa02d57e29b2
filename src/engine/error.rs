//! The engine's error type: a matchable [`EngineErrorKind`], a message saying what and
//! where, and the underlying error (tract's, post-processing's, the window buffer's, an
//! I/O error) kept as the [`source`](std::error::Error::source), not flattened to text.

use std::error::Error;
use std::fmt;
use std::sync::Arc;

/// What went wrong in the engine, for matching.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum EngineErrorKind {
    /// The model file could not be read.
    Io,
    /// The file is not an ONNX model (not protobuf, truncated, no graph).
    NotOnnx,
    /// The ONNX graph is not a BMN (the BM layer pattern is missing or malformed).
    NotBmn,
    /// The BM layer's constant is not a BM sampling mask.
    NotBmMask,
    /// An edge-format file whose metadata names another format version, or disagrees with
    /// its graph.
    EdgeMetadata,
    /// A feature the engine does not support (external data, non-float weights, ...).
    Unsupported,
    /// The input does not fit the model (width, length, NaN/Inf).
    Input,
    /// Post-processing rejected the maps (a capacity, a map that is not finite).
    PostProcessing,
    /// tract failed to load or run a stage.
    Runtime,
    /// The model's configuration would need more memory than the bound allows
    /// ([`EngineOptions::max_memory`](super::EngineOptions::max_memory)).
    TooLarge,
}

/// An engine error: a kind, a message and, where there is one, the error it came from.
#[derive(Debug, Clone)]
pub struct EngineError {
    kind: EngineErrorKind,
    message: String,
    source: Option<Arc<dyn Error + Send + Sync + 'static>>,
}

impl EngineError {
    pub(crate) fn new(kind: EngineErrorKind, message: impl Into<String>) -> Self {
        EngineError { kind, message: message.into(), source: None }
    }

    /// An error of `kind` caused by `source`; `message` says what was being done.
    pub(crate) fn with_source(
        kind: EngineErrorKind,
        message: impl Into<String>,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        EngineError { kind, message: message.into(), source: Some(Arc::from(source.into())) }
    }

    /// tract failed in `stage`.
    pub(crate) fn tract(stage: &str, e: tract_onnx::prelude::TractError) -> Self {
        let boxed: Box<dyn Error + Send + Sync + 'static> = e.into();
        EngineError::with_source(EngineErrorKind::Runtime, format!("tract, {stage}"), boxed)
    }

    /// The kind of error.
    pub fn kind(&self) -> EngineErrorKind {
        self.kind
    }
}

impl fmt::Display for EngineError {
    /// The message, then (with `{:#}`) each source in turn: `message: cause: cause`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)?;
        if f.alternate() {
            let mut next = self.source();
            while let Some(e) = next {
                write!(f, ": {e}")?;
                next = e.source();
            }
        }
        Ok(())
    }
}

impl Error for EngineError {
    fn source(&self) -> Option<&(dyn Error + 'static)> {
        self.source.as_deref().map(|e| e as &(dyn Error + 'static))
    }
}

impl From<crate::post::PostError> for EngineError {
    fn from(e: crate::post::PostError) -> Self {
        EngineError::with_source(EngineErrorKind::PostProcessing, "post-processing", e)
    }
}

impl From<crate::window::WindowError> for EngineError {
    fn from(e: crate::window::WindowError) -> Self {
        EngineError::with_source(EngineErrorKind::Input, "features", e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_are_kept_and_printed_in_the_alternate_form() {
        let io = std::io::Error::new(std::io::ErrorKind::NotFound, "no such file");
        let e = EngineError::with_source(EngineErrorKind::Io, "cannot read m.onnx", io);
        assert_eq!(e.kind(), EngineErrorKind::Io);
        assert_eq!(e.to_string(), "cannot read m.onnx");
        assert_eq!(format!("{e:#}"), "cannot read m.onnx: no such file");
        let src = e.source().expect("source kept");
        assert!(src.downcast_ref::<std::io::Error>().is_some_and(|x| x.kind() == std::io::ErrorKind::NotFound));
        // anyhow-based tract errors keep their chain too.
        let t = EngineError::tract("stage A", tract_onnx::prelude::TractError::msg("inner").context("outer"));
        assert_eq!(format!("{t:#}"), "tract, stage A: outer: inner");
    }
}

//! Voice activity detection (Silero v6 through ort) and the turn endpointer on top of it.
//!
//! Three layers, so each can be tested on its own:
//! - [`SileroModel`] / [`SileroVad`]: the ONNX model, shared by every call, and one
//!   recurrent state per call; turns 20 ms frames into one speech probability per
//!   model chunk (32 ms: 512 samples at 16 kHz, 256 at 8 kHz).
//! - [`Endpointer`]: pure logic on the probability stream (no model), emitting
//!   [`EndpointEvent`]s: speech start, a *tentative* end at a short pause (so ASR can
//!   start speculatively), the confirmed end or a resumption that cancels the guess.
//! - [`TurnDetector`]: both together plus the current turn's audio (with pre-roll),
//!   which is what the call pipeline feeds frame by frame.

mod endpoint;
mod silero;
mod turn;

pub use endpoint::{EndReason, EndpointConfig, EndpointEvent, Endpointer};
pub use silero::{SileroModel, SileroVad, VadRate};
pub use turn::TurnDetector;

use crate::models::ModelPaths;

/// Errors from the VAD.
#[derive(Debug, thiserror::Error)]
pub enum VadError {
    #[error(transparent)]
    Models(#[from] crate::models::ModelsError),
    #[error("Silero VAD model {path} could not be loaded: {message}. Re-provision it with `tingshuo models fetch` (expected Silero v6 from silero-vad==6.2.3).")]
    Load { path: String, message: String },
    #[error("Silero VAD inference failed: {0}")]
    Run(String),
    #[error("VAD sample rate {0} Hz is not supported: Silero runs at 8000 or 16000 Hz; resample the audio first (tingshuo::audio::resample).")]
    Rate(u32),
    #[error("endpointer config is invalid: {0}")]
    Config(String),
}

/// The process-wide ONNX Runtime environment (ort allows exactly one per process),
/// shared with TTS through [`crate::models::ort_environment`].
pub fn ort_environment(paths: &ModelPaths) -> Result<ort::environment::Environment, VadError> {
    crate::models::ort_environment(paths).map_err(|e| VadError::Load {
        path: "ONNX Runtime environment".to_string(),
        message: e.to_string(),
    })
}

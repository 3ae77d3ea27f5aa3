//! Mandarin text-to-speech: a Rust text front-end (normalisation, pinyin, Baker symbols)
//! feeding a FastSpeech2 + MB-MelGAN ONNX pair through `ort`.
//!
//! - [`frontend`]: text → clauses of symbol ids (no model needed besides the tables).
//! - [`engine`]: the ONNX pair on a dedicated worker thread, clause-by-clause streaming.
//! - [`cache`]: pre-synthesised fixed lines (memory + disk) so known lines play at once.
//! - [`cli`]: `tingshuo say`.
//!
//! Typical use by the call layer:
//!
//! ```text
//! let worker = Arc::new(TtsWorker::spawn(&paths, ModelConfig::baker(&paths))?);   // once
//! let cache = Arc::new(PhraseCache::new(worker.clone(), Some(PhraseCache::default_dir(&paths)))?);
//! cache.presynthesize(script_fixed_lines, voice)?;      // script load, background priority
//! cache.presynthesize(lines_with_call_variables, voice)?; // call set-up
//! match cache.speak(text, &voice)? {                      // when the agent talks
//!     Speech::Ready(pcm) => play(pcm),                    // zero synthesis wait
//!     Speech::Streaming(clauses) => for c in clauses { play(c?.samples) }, // first clause early
//! }
//! ```
//!
//! Audio is 24 kHz f32 mono; resample to 8 kHz for G.711 with `crate::audio`.
//! The voice (Baker corpus) restricts commercial use; any FastSpeech2-style acoustic
//! model + vocoder pair with the same tensors can be configured through [`ModelConfig`].

pub mod cache;
pub mod cli;
pub mod engine;
pub mod frontend;

use std::path::PathBuf;

pub use cache::{PhraseCache, Speech, Synthesize};
pub use engine::{ClauseAudio, ClauseStream, ModelConfig, TtsEngine, TtsWorker, VoiceParams};
pub use frontend::{Clause, Frontend};

/// Errors from the TTS module. Each names the problem and the fix.
#[derive(Debug, thiserror::Error)]
pub enum TtsError {
    #[error(transparent)]
    Models(#[from] crate::models::ModelsError),
    #[error("cannot use {path}: {message}. Run `tingshuo models fetch` to (re)provision the model files.")]
    Data { path: PathBuf, message: String },
    #[error("ONNX Runtime failed while {stage}: {message}. Check that the TTS model files match the configured model pair (input/output names) and run `tingshuo models fetch` if they are damaged.")]
    Ort {
        stage: &'static str,
        message: String,
    },
    #[error("nothing to say: {0:?} has no readable Chinese text, numbers or letters")]
    NothingToSay(String),
    #[error(
        "the TTS worker thread has stopped (an earlier error or a panic); create a new TtsWorker"
    )]
    WorkerGone,
    #[error("TTS cache I/O at {path}: {message}. Check the cache directory's permissions and free space.")]
    Cache { path: PathBuf, message: String },
    #[error("cannot write WAV {path}: {message}")]
    Wav { path: PathBuf, message: String },
    #[error("resampling from {from} Hz to {to} Hz failed: {message}")]
    Resample { from: u32, to: u32, message: String },
}

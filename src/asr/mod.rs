//! Speech recognition: whisper-rs (multilingual base) tuned for short telephone turns,
//! served by a shared pool of worker threads with a bounded queue.
//!
//! - [`engine`]: the model, one recogniser per worker, clip-sized `audio_ctx`,
//!   hallucination guards (voice gate, no-speech probability, log-probability,
//!   silence-phrase blacklist, loop collapse), simplified-Chinese output.
//! - [`pool`]: the worker pool (submit → outcome channel, queue wait vs inference time,
//!   cancellation of speculative jobs).
//! - [`text`]: text clean-up and CER normalisation.
//! - [`bias`] and [`correct`]: what the call's script tells the recogniser (the
//!   prompt's expected answers, and near-homophones rewritten as script terms).
//! - [`file`]: whole-file transcription for `tingshuo transcribe`.

pub mod bias;
pub mod correct;
pub mod engine;
pub mod file;
pub mod pool;
pub mod text;

pub use engine::{AsrConfig, Recognizer, Rejection, Segment, Transcript, WhisperModel};
pub use pool::{AsrJob, AsrOutcome, AsrPool, CancelToken, JobHandle};

/// Errors from speech recognition.
#[derive(Debug, thiserror::Error)]
pub enum AsrError {
    #[error(transparent)]
    Models(#[from] crate::models::ModelsError),
    #[error("Whisper model {path} could not be loaded: {message}. Re-provision it with `tingshuo models fetch` (it must be the multilingual base model in ggml format).")]
    Load { path: String, message: String },
    #[error("Whisper failed: {0}")]
    Whisper(String),
    #[error(transparent)]
    Vad(#[from] crate::vad::VadError),
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    #[error("the ASR queue is full ({capacity} jobs waiting): the machine is overloaded; ask the caller to repeat, or raise asr workers/queue capacity")]
    QueueFull { capacity: usize },
    #[error("the ASR pool has shut down")]
    PoolClosed,
    #[error("ASR worker {worker} crashed on this clip ({message}); it was restarted with a fresh Whisper state")]
    WorkerCrashed { worker: usize, message: String },
}

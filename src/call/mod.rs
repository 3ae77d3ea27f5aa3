//! Calls end to end: the per-call real-time pipeline joining SIP/RTP, speech and dialogue.
//!
//! * [`agent`]: `tingshuo serve`, the SIP agent and one thread per call;
//! * [`campaign`], [`callbacks`]: `tingshuo campaign` and the callback scheduler;
//! * [`session`]: one call's loop (VAD, endpointing, ASR, dialogue, playback, barge-in);
//! * [`engines`]: the speech models shared by every call;
//! * [`records`]: the call-record writer thread;
//! * [`recording`]: the stereo WAV of a call, written off the real-time path;
//! * [`local`]: `tingshuo talk`, a call on the computer's microphone and speaker;
//! * [`barge_in`], [`continuation`], [`timing`], [`health`], [`transfer`]: sans-IO pieces
//!   (echo-aware barge-in, a turn ended early that goes on, turn timing, answer rate and
//!   alert level, transfer to a person).

pub mod admission;
pub mod agent;
pub mod alerts;
pub mod barge_in;
pub mod callbacks;
pub mod campaign;
pub mod continuation;
pub mod emergency;
pub mod engines;
pub mod health;
pub mod local;
pub mod recording;
pub mod records;
pub mod session;
pub mod timing;
pub mod transfer;

/// Why a call (or the agent) could not run.
#[derive(Debug, thiserror::Error)]
pub enum CallError {
    #[error(transparent)]
    Models(#[from] crate::models::ModelsError),
    #[error(transparent)]
    Vad(#[from] crate::vad::VadError),
    #[error(transparent)]
    Asr(#[from] crate::asr::AsrError),
    #[error(transparent)]
    Tts(#[from] crate::tts::TtsError),
    #[error(transparent)]
    Dialogue(#[from] crate::dialogue::DialogueError),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error(transparent)]
    Audio(#[from] crate::audio::AudioError),
    #[error(transparent)]
    Device(#[from] crate::audio::device::DeviceError),
    #[error(transparent)]
    Rtp(#[from] crate::rtp::RtpError),
    #[error(transparent)]
    Sip(#[from] crate::sip::driver::SipError),
    #[error("call record: {0}")]
    Record(String),
    #[error("internal thread: {0}")]
    Thread(String),
}

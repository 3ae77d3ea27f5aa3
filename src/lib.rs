//! tingshuo (听说): a real-time, on-device Mandarin speech agent for SIP telephony.
//!
//! One module per concern; the README's pipeline picture shows how they connect:
//!
//! ```text
//!  SIP (sip) ──▶ call (call) ──▶ RTP in (rtp) ─▶ G.711 decode (codec) ─▶ 8→16 kHz (audio)
//!                                               (or G.722 decode: 16 kHz as it is)
//!                                 ─▶ VAD/endpointer (vad) ─▶ Whisper ASR pool (asr)
//!                                 ─▶ script dialogue (dialogue) ─▶ TTS / pre-synthesized PCM (tts)
//!                                 ─▶ 24→8 kHz (audio) ─▶ G.711 encode (codec) ─▶ RTP out (rtp)
//!                                    (or 24→16 kHz ─▶ G.722 encode)
//!  records (store) · operator console (console) · config (config) · model files (models)
//! ```

pub mod asr;
pub mod audio;
pub mod call;
pub mod codec;
pub mod config;
pub mod console;
pub mod dialogue;
pub mod logging;
pub mod models;
pub mod rtp;
pub mod sip;
pub mod store;
pub mod tts;
pub mod vad;

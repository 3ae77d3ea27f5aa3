//! The speech engines every call shares, loaded once per process: the Silero model
//! (each call gets its own VAD state), the Whisper worker pool, the TTS worker with its
//! phrase cache, and the copies of known lines ready to be sent at each call rate:
//! 8 kHz for G.711 calls, 16 kHz for wideband (G.722) calls.
//!
//! Known lines (every fixed line of the loaded scripts) are synthesized and converted
//! to both rates when the script loads, so a reply starts playing without waiting for TTS.
//! Dynamic text goes to a render thread; the call's real-time loop never waits on it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use crossbeam_channel::{Receiver, Sender};

use crate::asr::{AsrConfig, AsrPool, WhisperModel};
use crate::audio;
use crate::models::ModelPaths;
use crate::tts::{ModelConfig, PhraseCache, TtsWorker, VoiceParams};
use crate::vad::SileroModel;

use super::CallError;

/// One line of agent audio at a call rate (8 or 16 kHz), padded to whole 20 ms frames.
pub type LineAudio = Arc<[i16]>;
/// A line at 8 kHz (G.711 calls, the emergency flow).
pub type Line8k = LineAudio;

/// The call rates lines are prepared at: G.711 and G.722.
pub const CALL_RATES: [u32; 2] = [8000, 16_000];

/// A dynamic line to render off the real-time path.
pub struct RenderRequest {
    pub text: String,
    /// 8000 or 16000.
    pub rate: u32,
    pub reply: Sender<(String, Result<LineAudio, CallError>)>,
}

/// Shared speech resources.
pub struct SpeechEngines {
    pub paths: ModelPaths,
    pub vad: SileroModel,
    pub asr: AsrPool,
    pub phrases: Arc<PhraseCache>,
    pub voice: VoiceParams,
    lines: Mutex<HashMap<(String, u32), LineAudio>>,
    render_tx: Sender<RenderRequest>,
}

impl SpeechEngines {
    /// Loads every model. A missing file is an error naming `tingshuo models fetch`.
    pub fn load(
        paths: &ModelPaths,
        asr_cfg: AsrConfig,
        tts_cfg: &crate::config::TtsConfig,
    ) -> Result<Arc<Self>, CallError> {
        let vad = SileroModel::load(paths)?;
        let whisper = WhisperModel::load_for(paths, &asr_cfg)?;
        let asr = AsrPool::new(&whisper, Some(&vad), asr_cfg)?;
        // The term segmenter's dictionary loads once here, not at a call's start.
        crate::asr::correct::warm_up();
        let tts = Arc::new(TtsWorker::spawn(paths, tts_model_config(paths, tts_cfg))?);
        let phrases = Arc::new(PhraseCache::new(
            tts.clone(),
            Some(paths.cache.join("phrases")),
        )?);
        let (render_tx, render_rx) = crossbeam_channel::unbounded::<RenderRequest>();
        let engines = Arc::new(Self {
            paths: paths.clone(),
            vad,
            asr,
            phrases,
            voice: VoiceParams {
                speed: tts_cfg.speed,
                pitch: tts_cfg.pitch,
                ..VoiceParams::default()
            },
            lines: Mutex::new(HashMap::new()),
            render_tx,
        });
        let weak = Arc::downgrade(&engines);
        std::thread::Builder::new()
            .name("tts-render".into())
            .spawn(move || render_loop(weak, render_rx))
            .map_err(|e| CallError::Thread(e.to_string()))?;
        Ok(engines)
    }

    /// The 8 kHz audio of `text` if it was prepared already (never blocks on TTS).
    pub fn ready_line(&self, text: &str) -> Option<Line8k> {
        self.ready_line_at(text, 8000)
    }

    /// The audio of `text` at `rate` (8000 or 16000) if it was prepared already.
    pub fn ready_line_at(&self, text: &str, rate: u32) -> Option<LineAudio> {
        self.lines_lock()
            .get(&(text.trim().to_string(), rate))
            .cloned()
    }

    /// Synthesizes (or takes from the phrase cache) and converts to 8 kHz. Blocking:
    /// for start-up, call set-up and the render thread, never the frame loop.
    pub fn prepare_line(&self, text: &str) -> Result<Line8k, CallError> {
        self.prepare_line_at(text, 8000)
    }

    /// [`Self::prepare_line`] at `rate`: 8000 (G.711) or 16000 (G.722; the voice's
    /// 24 kHz is resampled to 16 kHz, not to 8 kHz).
    pub fn prepare_line_at(&self, text: &str, rate: u32) -> Result<LineAudio, CallError> {
        if let Some(l) = self.ready_line_at(text, rate) {
            return Ok(l);
        }
        let pcm = self.phrases.get_or_synthesize(text, &self.voice)?;
        let pcm = audio::resample(&pcm, self.phrases.sample_rate(), rate)?;
        // The reply is heard as soon as its first syllable is: start the line 10 ms
        // before it (room for the onset) rather than after the voice's silent lead-in.
        let pcm = audio::trim_leading_silence(&pcm, rate, LEAD_IN_DBFS, 10);
        let frame = rate as usize / 50;
        let frames = pcm.len().div_ceil(frame).max(1);
        let mut out = vec![0i16; frames * frame];
        for (o, s) in out.iter_mut().zip(pcm) {
            *o = audio::f32_to_i16(*s);
        }
        let line: LineAudio = out.into();
        self.lines_lock()
            .insert((text.trim().to_string(), rate), line.clone());
        Ok(line)
    }

    /// Prepares many lines at every call rate (script load); returns how many failed,
    /// logging each.
    pub fn prepare_lines<'a>(&self, lines: impl IntoIterator<Item = &'a str>) -> usize {
        let mut failed = 0;
        for text in lines {
            for rate in CALL_RATES {
                if let Err(e) = self.prepare_line_at(text, rate) {
                    tracing::warn!(line = text, rate, error = %e, "could not pre-synthesize a script line");
                    failed += 1;
                    break;
                }
            }
        }
        failed
    }

    /// Queues `text` for rendering at `rate`; the result arrives on `reply`.
    pub fn render_async(
        &self,
        text: &str,
        rate: u32,
        reply: Sender<(String, Result<LineAudio, CallError>)>,
    ) -> Result<(), CallError> {
        self.render_tx
            .send(RenderRequest {
                text: text.to_string(),
                rate,
                reply,
            })
            .map_err(|_| CallError::Thread("the TTS render thread has stopped".into()))
    }

    fn lines_lock(&self) -> std::sync::MutexGuard<'_, HashMap<(String, u32), LineAudio>> {
        // A panic while holding this lock cannot leave the map half-updated
        // (single insert), so a poisoned lock is still usable.
        self.lines.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// Level below which a synthesized line's lead-in counts as silence (the bench's
/// "agent speaking" threshold is about −36 dBFS, so −45 keeps every audible onset).
const LEAD_IN_DBFS: f32 = -45.0;

/// The voice the config names: the provisioned Baker pair unless `[tts]` swaps it.
pub fn tts_model_config(paths: &ModelPaths, cfg: &crate::config::TtsConfig) -> ModelConfig {
    let mut m = ModelConfig::baker(paths);
    if let Some(p) = &cfg.acoustic_model {
        m.acoustic = p.clone();
    }
    if let Some(p) = &cfg.vocoder {
        m.vocoder = p.clone();
    }
    if let Some(p) = &cfg.symbols {
        m.mapper = p.clone();
    }
    m.sample_rate = cfg.sample_rate;
    m.input_ids = cfg.input_ids.clone();
    m.mel_output = cfg.mel_output.clone();
    m.vocoder_input = cfg.vocoder_input.clone();
    m.vocoder_output = cfg.vocoder_output.clone();
    m
}

fn render_loop(engines: std::sync::Weak<SpeechEngines>, rx: Receiver<RenderRequest>) {
    for req in rx {
        let Some(engines) = engines.upgrade() else {
            return;
        };
        let result = engines.prepare_line_at(&req.text, req.rate);
        let _ = req.reply.send((req.text, result));
    }
}

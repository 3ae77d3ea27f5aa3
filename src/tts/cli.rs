//! `tingshuo say TEXT -o OUT.wav [--rate 8000|16000|24000]`.

use std::path::Path;

use super::engine::{ModelConfig, TtsEngine, VoiceParams};
use super::TtsError;
use crate::models::ModelPaths;

/// What `say` did, for the CLI's one-line summary.
#[derive(Debug, Clone, PartialEq)]
pub struct SayReport {
    pub samples: usize,
    pub rate: u32,
    pub seconds: f32,
    pub synthesis_ms: u128,
    pub clauses: usize,
}

/// Synthesises `text` with the provisioned voice and writes a 16-bit mono WAV at `rate`.
pub fn say(
    paths: &ModelPaths,
    text: &str,
    output: &Path,
    rate: u32,
) -> Result<SayReport, TtsError> {
    let mut engine = TtsEngine::load(paths, ModelConfig::baker(paths))?;
    let start = std::time::Instant::now();
    let clauses = engine.frontend().analyze(text).len();
    let audio = engine.synthesize(text, &VoiceParams::default())?;
    let synthesis_ms = start.elapsed().as_millis();
    let from = engine.sample_rate();
    let audio = crate::audio::resample(&audio, from, rate).map_err(|e| TtsError::Resample {
        from,
        to: rate,
        message: e.to_string(),
    })?;
    crate::audio::write_wav(output, &audio, rate).map_err(|e| TtsError::Wav {
        path: output.to_path_buf(),
        message: e.to_string(),
    })?;
    Ok(SayReport {
        samples: audio.len(),
        rate,
        seconds: audio.len() as f32 / rate as f32,
        synthesis_ms,
        clauses,
    })
}

//! Whole-file transcription (`tingshuo transcribe`): any WAV rate and channel count,
//! split into turns by the same VAD + endpointer the calls use, each turn
//! recognised through the worker pool, with timings per segment.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

use super::engine::{AsrConfig, Rejection, WhisperModel};
use super::pool::{AsrJob, AsrPool};
use super::AsrError;
use crate::models::ModelPaths;
use crate::vad::{EndpointConfig, EndpointEvent, SileroModel, TurnDetector};

/// One recognised turn of the file.
#[derive(Debug, Clone, Serialize)]
pub struct FileSegment {
    pub start_ms: u64,
    pub end_ms: u64,
    pub text: String,
    /// Why the segment gave no text, if it did not.
    pub rejected: Option<Rejection>,
    pub audio_ctx: u32,
    pub queue_ms: f64,
    pub infer_ms: f64,
    pub no_speech_prob: Option<f32>,
    pub avg_logprob: Option<f32>,
}

/// Timings for the whole file.
#[derive(Debug, Clone, Serialize)]
pub struct FileTimings {
    pub load_ms: f64,
    pub vad_ms: f64,
    pub queue_ms: f64,
    pub infer_ms: f64,
    pub total_ms: f64,
}

/// `tingshuo transcribe --json` output.
#[derive(Debug, Clone, Serialize)]
pub struct FileTranscript {
    pub text: String,
    pub segments: Vec<FileSegment>,
    pub audio_ms: u64,
    pub input_rate: u32,
    pub timings: FileTimings,
}

/// Reads `wav`, resamples to 16 kHz, segments by VAD and transcribes every turn.
pub fn transcribe_file(
    wav: &Path,
    paths: &ModelPaths,
    cfg: AsrConfig,
) -> Result<FileTranscript, AsrError> {
    let t0 = Instant::now();
    let audio = crate::audio::read_wav(wav)?;
    let samples = crate::audio::resample(&audio.samples, audio.rate, 16_000)?;
    let vad = SileroModel::load(paths)?;
    let model = WhisperModel::load_for(paths, &cfg)?;
    let pool = AsrPool::new(&model, Some(&vad), cfg)?;
    let load_ms = ms(t0);

    let t1 = Instant::now();
    let turns = split_turns(&vad, &samples)?;
    let vad_ms = ms(t1);

    let mut handles = Vec::with_capacity(turns.len());
    for (i, (start_ms, end_ms, clip)) in turns.into_iter().enumerate() {
        let job = AsrJob {
            id: i as u64,
            samples: clip,
            hot_words: Vec::new().into(),
            terms: Vec::new().into(),
        };
        // One file never has more turns queued than the pool allows: wait when full.
        let handle = loop {
            match pool.submit(job.clone()) {
                Err(AsrError::QueueFull { .. }) => {
                    std::thread::sleep(std::time::Duration::from_millis(20))
                }
                other => break other?,
            }
        };
        handles.push((start_ms, end_ms, handle));
    }
    let mut segments = Vec::with_capacity(handles.len());
    let (mut queue_ms, mut infer_ms) = (0.0, 0.0);
    for (start_ms, end_ms, h) in handles {
        let o = h.wait()?;
        let t = o.result?;
        queue_ms += o.queue_ms;
        infer_ms += o.infer_ms;
        let best = t
            .segments
            .iter()
            .find(|s| !s.dropped)
            .or(t.segments.first());
        segments.push(FileSegment {
            start_ms,
            end_ms,
            text: t.text,
            rejected: t.rejected,
            audio_ctx: t.audio_ctx,
            queue_ms: o.queue_ms,
            infer_ms: o.infer_ms,
            no_speech_prob: best.map(|s| s.no_speech_prob),
            avg_logprob: best.map(|s| s.avg_logprob),
        });
    }
    let text = segments
        .iter()
        .map(|s| s.text.as_str())
        .collect::<Vec<_>>()
        .join("");
    Ok(FileTranscript {
        text,
        segments,
        audio_ms: (samples.len() / 16) as u64,
        input_rate: audio.rate,
        timings: FileTimings {
            load_ms,
            vad_ms,
            queue_ms,
            infer_ms,
            total_ms: ms(t0),
        },
    })
}

/// Splits 16 kHz audio into turns (start ms, end ms, samples) with the call endpointer.
pub fn split_turns(
    vad: &SileroModel,
    samples: &[f32],
) -> Result<Vec<(u64, u64, Vec<f32>)>, AsrError> {
    let mut det = TurnDetector::new(vad, 16_000, EndpointConfig::default())?;
    let mut turns = Vec::new();
    for frame in samples.chunks(320) {
        if let Some(EndpointEvent::SpeechEnd {
            start_ms,
            speech_end_ms,
            ..
        }) = det.push_frame(frame)?
        {
            turns.push((start_ms, speech_end_ms, det.turn_audio().to_vec()));
        }
    }
    // The file may end mid-turn: flush what was heard.
    if let Some(start_ms) = det.endpointer().turn_start_ms() {
        let end_ms = (samples.len() / 16) as u64;
        turns.push((start_ms, end_ms, det.turn_audio().to_vec()));
    }
    Ok(turns)
}

fn ms(t: Instant) -> f64 {
    t.elapsed().as_secs_f64() * 1e3
}

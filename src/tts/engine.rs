//! Synthesis: symbol ids → mel (FastSpeech2) → 24 kHz waveform (MB-MelGAN) through `ort`.
//!
//! [`TtsEngine`] owns the two ONNX sessions and runs synchronously; [`TtsWorker`] puts one
//! engine on a dedicated OS thread (inference must never run on tokio threads) and streams
//! audio clause by clause, so the first clause can play while the rest renders.
//! The model pair is described by [`ModelConfig`] (paths and tensor names), so any
//! FastSpeech2-style acoustic model + vocoder pair with the same interface can replace it.

use std::borrow::Cow;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender};
use ort::environment::Environment;
use ort::session::builder::GraphOptimizationLevel;
use ort::session::{Session, SessionInputValue};
use ort::value::Tensor;
use sha2::{Digest, Sha256};

use super::frontend::{Clause, ClauseEnd, Frontend};
use super::TtsError;
use crate::models::ModelPaths;

/// The acoustic model + vocoder pair and their tensor names.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub acoustic: PathBuf,
    pub vocoder: PathBuf,
    /// Symbol table the acoustic model was trained with (Baker mapper format).
    pub mapper: PathBuf,
    pub input_ids: String,
    /// Optional scalar inputs; `None` when the model does not have them.
    pub speaker_ids: Option<String>,
    pub speed_ratios: Option<String>,
    pub f0_ratios: Option<String>,
    pub energy_ratios: Option<String>,
    /// Acoustic output holding the mel spectrogram `[1, frames, n_mels]`.
    pub mel_output: String,
    pub vocoder_input: String,
    /// Vocoder output holding the waveform `[1, samples, 1]` (or `[1, samples]`).
    pub vocoder_output: String,
    pub speaker_id: i32,
    pub sample_rate: u32,
    /// ONNX Runtime intra-op threads per session.
    pub threads: usize,
    /// Trim the silence the model renders for `sil` at clause edges (up to ~0.2 s),
    /// keeping a short margin, so the first sound plays sooner and pauses between
    /// clauses are the configured length.
    pub trim_silence: bool,
    /// Interactive requests cut a first clause longer than this many syllables at a
    /// word boundary so the first audio is ready sooner (pre-synthesis never cuts).
    pub first_chunk_syllables: Option<usize>,
}

impl ModelConfig {
    /// The provisioned Baker voice (TensorFlowTTS FastSpeech2 + MB-MelGAN converted to ONNX).
    pub fn baker(paths: &ModelPaths) -> Self {
        Self {
            acoustic: paths.fastspeech2.clone(),
            vocoder: paths.mb_melgan.clone(),
            mapper: paths.baker_mapper.clone(),
            input_ids: "input_ids".into(),
            speaker_ids: Some("speaker_ids".into()),
            speed_ratios: Some("speed_ratios".into()),
            f0_ratios: Some("f0_ratios".into()),
            energy_ratios: Some("energy_ratios".into()),
            mel_output: "Identity_1".into(),
            vocoder_input: "mels".into(),
            vocoder_output: "Identity".into(),
            speaker_id: 0,
            sample_rate: 24_000,
            threads: 1,
            trim_silence: true,
            first_chunk_syllables: Some(8),
        }
    }
}

/// Voice controls. All default to 1.0.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct VoiceParams {
    /// Speaking rate: 1.2 is 20 % faster (durations are divided by it).
    pub speed: f32,
    /// Pitch factor applied to the predicted F0.
    pub pitch: f32,
    /// Energy factor applied to the predicted energy.
    pub energy: f32,
}

impl Default for VoiceParams {
    fn default() -> Self {
        Self {
            speed: 1.0,
            pitch: 1.0,
            energy: 1.0,
        }
    }
}

impl VoiceParams {
    /// Stable text form for cache keys.
    pub fn key(&self) -> String {
        format!(
            "speed={:.3};pitch={:.3};energy={:.3}",
            self.speed, self.pitch, self.energy
        )
    }
}

/// One rendered clause.
#[derive(Debug, Clone, PartialEq)]
pub struct ClauseAudio {
    pub index: usize,
    pub text: String,
    /// Samples at the engine's sample rate.
    pub samples: Vec<f32>,
    /// Silence to play after this clause, in samples (0 after the last).
    pub pause_samples: usize,
    pub last: bool,
    /// Order in which the worker took up the request (0 for direct engine use);
    /// shows that interactive requests overtake queued pre-synthesis.
    pub request_seq: u64,
    /// Time spent in the acoustic model and in the vocoder for this clause.
    pub acoustic_ms: f32,
    pub vocoder_ms: f32,
}

/// Pause after a clause, in seconds (about 0.2 s between clauses).
fn pause_seconds(end: ClauseEnd) -> f32 {
    match end {
        ClauseEnd::List => 0.12,
        ClauseEnd::Comma => 0.2,
        ClauseEnd::Sentence => 0.3,
        ClauseEnd::End | ClauseEnd::Join => 0.0,
    }
}

/// Bumped whenever [`trim_edges`] or other post-processing changes what a line sounds
/// like (it keys the phrase cache through the model id).
const POSTPROCESS_REVISION: &str = "p2";

/// Cuts leading/trailing silence in 10 ms windows. The first sound is the first
/// window louder than 40 dB below the loudest (quiet onsets such as s/f/x sit
/// 25–35 dB down, the vocoder's idle hiss further), and 10 ms are kept before it:
/// every millisecond of lead-in is heard as turn latency. The end is the last window
/// within 30 dB of the loudest, with 60 ms kept after it (a natural decay).
fn trim_edges(mut samples: Vec<f32>, rate: u32) -> Vec<f32> {
    let win = (rate / 100).max(1) as usize;
    let rms: Vec<f32> = samples
        .chunks(win)
        .map(|c| (c.iter().map(|v| v * v).sum::<f32>() / c.len() as f32).sqrt())
        .collect();
    let loudest = rms.iter().fold(0.0f32, |m, &v| m.max(v));
    if loudest <= 0.0 {
        return samples;
    }
    let (Some(first), Some(last)) = (
        rms.iter().position(|&v| v > loudest * 0.01),
        rms.iter().rposition(|&v| v > loudest * 0.0316),
    ) else {
        return samples;
    };
    let start = (first * win).saturating_sub(win);
    let end = ((last + 1) * win + 6 * win).min(samples.len());
    samples.truncate(end);
    samples.drain(..start);
    samples
}

/// The process-wide ONNX Runtime environment (ort allows one per process), shared
/// with every other module through [`crate::models::ort_environment`].
pub fn ort_environment(paths: &ModelPaths) -> Result<Environment, TtsError> {
    Ok(crate::models::ort_environment(paths)?)
}

fn ort_err<E: std::fmt::Display>(stage: &'static str) -> impl FnOnce(E) -> TtsError {
    move |e| TtsError::Ort {
        stage,
        message: e.to_string(),
    }
}

fn open_session(env: &Environment, path: &Path, threads: usize) -> Result<Session, TtsError> {
    Session::builder(env)
        .map_err(ort_err("creating a session builder"))?
        .with_optimization_level(GraphOptimizationLevel::All)
        .map_err(ort_err("setting the optimisation level"))?
        .with_intra_threads(threads.max(1))
        .map_err(ort_err("setting intra-op threads"))?
        .with_inter_threads(1)
        .map_err(ort_err("setting inter-op threads"))?
        // Spinning worker threads steal the cores the call path needs; short TTS runs
        // gain little from it.
        .with_intra_op_spinning(false)
        .map_err(ort_err("disabling intra-op spinning"))?
        .commit_from_file(path)
        .map_err(|e| TtsError::Data {
            path: path.to_path_buf(),
            message: format!("ONNX Runtime cannot load it: {e}"),
        })
}

/// SHA-256 over the model files, so caches notice a swapped or updated voice.
fn model_checksum(files: &[&Path]) -> Result<String, TtsError> {
    let mut h = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    for f in files {
        let mut file = std::fs::File::open(f).map_err(|e| TtsError::Data {
            path: f.to_path_buf(),
            message: e.to_string(),
        })?;
        loop {
            let n = file.read(&mut buf).map_err(|e| TtsError::Data {
                path: f.to_path_buf(),
                message: e.to_string(),
            })?;
            if n == 0 {
                break;
            }
            h.update(&buf[..n]);
        }
    }
    Ok(hex::encode(&h.finalize()[..12]))
}

/// The ONNX model pair with its front-end; synchronous. Use [`TtsWorker`] off-thread.
pub struct TtsEngine {
    acoustic: Session,
    vocoder: Session,
    frontend: Arc<Frontend>,
    cfg: ModelConfig,
    model_id: String,
    clauses_rendered: Arc<AtomicU64>,
    /// (acoustic ms, vocoder ms) of the last render.
    last_timing: (f32, f32),
}

impl TtsEngine {
    /// Loads the front-end tables and both models.
    pub fn load(paths: &ModelPaths, cfg: ModelConfig) -> Result<Self, TtsError> {
        paths.require("pinyin phrase table", &paths.pinyin_phrases)?;
        paths.require("pinyin character table", &paths.pinyin_chars)?;
        let mapper = paths.require("TTS symbol table (baker_mapper)", &cfg.mapper)?;
        let frontend = Frontend::from_files(&paths.pinyin_phrases, &paths.pinyin_chars, mapper)?;
        Self::with_frontend(paths, cfg, Arc::new(frontend))
    }

    /// Loads the models, sharing an already loaded front-end.
    pub fn with_frontend(
        paths: &ModelPaths,
        cfg: ModelConfig,
        frontend: Arc<Frontend>,
    ) -> Result<Self, TtsError> {
        let acoustic_path = paths.require("TTS acoustic model (fastspeech2)", &cfg.acoustic)?;
        let vocoder_path = paths.require("TTS vocoder (mb_melgan)", &cfg.vocoder)?;
        let env = ort_environment(paths)?;
        let acoustic = open_session(&env, acoustic_path, cfg.threads)?;
        let vocoder = open_session(&env, vocoder_path, cfg.threads)?;
        // The post-processing revision is part of the id: cached phrases rendered
        // with older trimming are rendered again rather than played as they were.
        let model_id = format!(
            "{}-{POSTPROCESS_REVISION}",
            model_checksum(&[acoustic_path, vocoder_path, &cfg.mapper])?
        );
        Ok(Self {
            acoustic,
            vocoder,
            frontend,
            cfg,
            model_id,
            clauses_rendered: Arc::new(AtomicU64::new(0)),
            last_timing: (0.0, 0.0),
        })
    }

    pub fn frontend(&self) -> &Arc<Frontend> {
        &self.frontend
    }

    /// Checksum of the model files (first 24 hex digits of SHA-256).
    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn sample_rate(&self) -> u32 {
        self.cfg.sample_rate
    }

    /// How many clauses this engine has rendered (every model call counts).
    pub fn clauses_rendered(&self) -> u64 {
        self.clauses_rendered.load(Ordering::Relaxed)
    }

    /// Renders one clause's ids to samples.
    pub fn render_ids(&mut self, ids: &[i32], voice: &VoiceParams) -> Result<Vec<f32>, TtsError> {
        self.clauses_rendered.fetch_add(1, Ordering::Relaxed);
        let t0 = std::time::Instant::now();
        let cfg = &self.cfg;
        let scalar = |v: f32| Tensor::from_array(([1usize], vec![v]));
        let mut inputs: Vec<(Cow<'_, str>, SessionInputValue<'_>)> = Vec::with_capacity(5);
        let ids_t = Tensor::from_array(([1usize, ids.len()], ids.to_vec()))
            .map_err(ort_err("building input_ids"))?;
        inputs.push((Cow::from(cfg.input_ids.as_str()), ids_t.into()));
        if let Some(name) = &cfg.speaker_ids {
            let t = Tensor::from_array(([1usize], vec![cfg.speaker_id]))
                .map_err(ort_err("building speaker_ids"))?;
            inputs.push((Cow::from(name.as_str()), t.into()));
        }
        // FastSpeech2 multiplies durations by speed_ratios: a faster voice is a smaller ratio.
        let scalars = [
            (&cfg.speed_ratios, 1.0 / voice.speed.clamp(0.25, 4.0)),
            (&cfg.f0_ratios, voice.pitch.clamp(0.25, 4.0)),
            (&cfg.energy_ratios, voice.energy.clamp(0.25, 4.0)),
        ];
        for (name, v) in scalars {
            if let Some(name) = name {
                let t = scalar(v).map_err(ort_err("building a ratio input"))?;
                inputs.push((Cow::from(name.as_str()), t.into()));
            }
        }
        let outputs = self
            .acoustic
            .run(inputs)
            .map_err(ort_err("running the acoustic model"))?;
        let mel_value = outputs.get(&cfg.mel_output).ok_or_else(|| TtsError::Ort {
            stage: "reading the acoustic model's output",
            message: format!("no output named {:?}", cfg.mel_output),
        })?;
        let (shape, mel) = mel_value
            .try_extract_tensor::<f32>()
            .map_err(ort_err("reading the mel spectrogram"))?;
        let dims: Vec<usize> = shape.iter().map(|&d| d.max(0) as usize).collect();
        if dims.len() != 3 || dims[1] == 0 {
            return Err(TtsError::Ort {
                stage: "reading the mel spectrogram",
                message: format!("unexpected mel shape {dims:?}"),
            });
        }
        let mel_t = Tensor::from_array(([dims[0], dims[1], dims[2]], mel.to_vec()))
            .map_err(ort_err("building the vocoder input"))?;
        drop(outputs);
        let t1 = std::time::Instant::now();
        let vin: Vec<(Cow<'_, str>, SessionInputValue<'_>)> =
            vec![(Cow::from(cfg.vocoder_input.as_str()), mel_t.into())];
        let outputs = self
            .vocoder
            .run(vin)
            .map_err(ort_err("running the vocoder"))?;
        let wav = outputs
            .get(&cfg.vocoder_output)
            .ok_or_else(|| TtsError::Ort {
                stage: "reading the vocoder's output",
                message: format!("no output named {:?}", cfg.vocoder_output),
            })?;
        let (_, samples) = wav
            .try_extract_tensor::<f32>()
            .map_err(ort_err("reading the waveform"))?;
        let samples = samples.to_vec();
        self.last_timing = (
            (t1 - t0).as_secs_f32() * 1000.0,
            t1.elapsed().as_secs_f32() * 1000.0,
        );
        Ok(samples)
    }

    /// Renders one analysed clause (edge silence trimmed when configured).
    pub fn render_clause(
        &mut self,
        clause: &Clause,
        voice: &VoiceParams,
    ) -> Result<Vec<f32>, TtsError> {
        let samples = self.render_ids(&clause.ids, voice)?;
        Ok(if self.cfg.trim_silence {
            trim_edges(samples, self.cfg.sample_rate)
        } else {
            samples
        })
    }

    /// Renders `text` clause by clause, handing each to `sink` as soon as it is ready.
    /// `sink` returns false to stop early (e.g. the caller hung up).
    pub fn stream(
        &mut self,
        text: &str,
        voice: &VoiceParams,
        sink: impl FnMut(ClauseAudio) -> bool,
    ) -> Result<(), TtsError> {
        self.stream_with(text, voice, None, sink)
    }

    /// [`TtsEngine::stream`] with a first clause cut after at most `first_chunk`
    /// syllables (see [`Frontend::analyze_with`]).
    pub fn stream_with(
        &mut self,
        text: &str,
        voice: &VoiceParams,
        first_chunk: Option<usize>,
        mut sink: impl FnMut(ClauseAudio) -> bool,
    ) -> Result<(), TtsError> {
        let clauses = self.frontend.analyze_with(text, first_chunk);
        if clauses.is_empty() {
            return Err(TtsError::NothingToSay(text.to_string()));
        }
        let n = clauses.len();
        for (index, clause) in clauses.iter().enumerate() {
            let samples = self.render_clause(clause, voice)?;
            let last = index + 1 == n;
            let pause = if last {
                0
            } else {
                (pause_seconds(clause.end) * self.cfg.sample_rate as f32) as usize
            };
            let go_on = sink(ClauseAudio {
                index,
                text: clause.text.clone(),
                samples,
                pause_samples: pause,
                last,
                request_seq: 0,
                acoustic_ms: self.last_timing.0,
                vocoder_ms: self.last_timing.1,
            });
            if !go_on {
                break;
            }
        }
        Ok(())
    }

    /// Renders all of `text` with the pauses between clauses.
    pub fn synthesize(&mut self, text: &str, voice: &VoiceParams) -> Result<Vec<f32>, TtsError> {
        let mut out = Vec::new();
        self.stream(text, voice, |c| {
            out.extend_from_slice(&c.samples);
            out.resize(out.len() + c.pause_samples, 0.0);
            true
        })?;
        Ok(out)
    }
}

enum Job {
    Speak {
        text: String,
        voice: VoiceParams,
        /// Cut a long first clause (interactive requests only).
        fast_start: bool,
        reply: Sender<Result<ClauseAudio, TtsError>>,
    },
}

/// Audio of one request, clause by clause; ends after the last clause or an error.
pub struct ClauseStream {
    rx: Receiver<Result<ClauseAudio, TtsError>>,
}

impl ClauseStream {
    /// A stream over clauses sent by another renderer.
    pub fn from_receiver(rx: Receiver<Result<ClauseAudio, TtsError>>) -> Self {
        Self { rx }
    }

    /// The next clause if one is already rendered (never blocks: for a real-time loop).
    pub fn try_next(&mut self) -> Option<Result<ClauseAudio, TtsError>> {
        self.rx.try_recv().ok()
    }
}

impl Iterator for ClauseStream {
    type Item = Result<ClauseAudio, TtsError>;
    fn next(&mut self) -> Option<Self::Item> {
        self.rx.recv().ok()
    }
}

/// A [`TtsEngine`] on its own thread. Requests queue in order; each answers with a
/// [`ClauseStream`]. Cheap to share behind an `Arc`.
pub struct TtsWorker {
    tx: Option<Sender<Job>>,
    /// Pre-synthesis jobs: served only when no interactive request waits.
    bg_tx: Option<Sender<Job>>,
    handle: Option<JoinHandle<()>>,
    model_id: String,
    sample_rate: u32,
    frontend: Arc<Frontend>,
    requests: AtomicU64,
    clauses_rendered: Arc<AtomicU64>,
}

impl TtsWorker {
    /// Starts the worker thread and loads the models on it; returns once loaded.
    pub fn spawn(paths: &ModelPaths, cfg: ModelConfig) -> Result<Self, TtsError> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let (bg_tx, bg_rx) = crossbeam_channel::unbounded::<Job>();
        let (ready_tx, ready_rx) = crossbeam_channel::bounded(1);
        let paths = paths.clone();
        let handle = std::thread::Builder::new()
            .name("tts-worker".into())
            .spawn(move || {
                let mut engine = match TtsEngine::load(&paths, cfg) {
                    Ok(e) => e,
                    Err(e) => {
                        let _ = ready_tx.send(Err(e));
                        return;
                    }
                };
                let info = (
                    engine.model_id().to_string(),
                    engine.sample_rate(),
                    engine.frontend().clone(),
                    engine.clauses_rendered.clone(),
                );
                if ready_tx.send(Ok(info)).is_err() {
                    return;
                }
                let mut seq = 0u64;
                let first_chunk = engine.cfg.first_chunk_syllables;
                loop {
                    // Interactive requests (a call waiting) go before pre-synthesis.
                    let job = crossbeam_channel::select_biased! {
                        recv(rx) -> j => j,
                        recv(bg_rx) -> j => j,
                    };
                    let Ok(job) = job else { break };
                    seq += 1;
                    match job {
                        Job::Speak {
                            text,
                            voice,
                            fast_start,
                            reply,
                        } => {
                            let chunk = if fast_start { first_chunk } else { None };
                            let result = engine.stream_with(&text, &voice, chunk, |mut c| {
                                c.request_seq = seq;
                                reply.send(Ok(c)).is_ok()
                            });
                            if let Err(e) = result {
                                let _ = reply.send(Err(e));
                            }
                        }
                    }
                }
            })
            .map_err(|e| TtsError::Ort {
                stage: "starting the TTS worker thread",
                message: e.to_string(),
            })?;
        let (model_id, sample_rate, frontend, clauses_rendered) =
            ready_rx.recv().map_err(|_| TtsError::WorkerGone)??;
        Ok(Self {
            tx: Some(tx),
            bg_tx: Some(bg_tx),
            handle: Some(handle),
            model_id,
            sample_rate,
            frontend,
            requests: AtomicU64::new(0),
            clauses_rendered,
        })
    }

    /// Queues `text`; clauses arrive on the returned stream as they are rendered.
    pub fn stream(&self, text: &str, voice: VoiceParams) -> Result<ClauseStream, TtsError> {
        self.queue(text, voice, false)
    }

    /// Like [`TtsWorker::stream`] at background priority (pre-synthesis): runs only when
    /// no interactive request is waiting.
    pub fn stream_background(
        &self,
        text: &str,
        voice: VoiceParams,
    ) -> Result<ClauseStream, TtsError> {
        self.queue(text, voice, true)
    }

    fn queue(
        &self,
        text: &str,
        voice: VoiceParams,
        background: bool,
    ) -> Result<ClauseStream, TtsError> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let (reply, rx) = crossbeam_channel::unbounded();
        let tx = if background { &self.bg_tx } else { &self.tx };
        tx.as_ref()
            .ok_or(TtsError::WorkerGone)?
            .send(Job::Speak {
                text: text.to_string(),
                voice,
                fast_start: !background,
                reply,
            })
            .map_err(|_| TtsError::WorkerGone)?;
        Ok(ClauseStream { rx })
    }

    /// Renders all of `text` (with pauses) and waits for it.
    pub fn synthesize(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError> {
        collect(self.stream(text, voice)?)
    }

    /// [`TtsWorker::synthesize`] at background priority.
    pub fn synthesize_background(
        &self,
        text: &str,
        voice: VoiceParams,
    ) -> Result<Vec<f32>, TtsError> {
        collect(self.stream_background(text, voice)?)
    }

    pub fn model_id(&self) -> &str {
        &self.model_id
    }

    pub fn sample_rate(&self) -> u32 {
        self.sample_rate
    }

    pub fn frontend(&self) -> &Arc<Frontend> {
        &self.frontend
    }

    /// Synthesis requests received (each `stream`/`synthesize` call counts once).
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    /// Clauses the models have rendered.
    pub fn clauses_rendered(&self) -> u64 {
        self.clauses_rendered.load(Ordering::Relaxed)
    }
}

/// Joins a clause stream into one signal with the pauses.
fn collect(stream: ClauseStream) -> Result<Vec<f32>, TtsError> {
    let mut out = Vec::new();
    for clause in stream {
        let c = clause?;
        out.extend_from_slice(&c.samples);
        out.resize(out.len() + c.pause_samples, 0.0);
    }
    Ok(out)
}

impl Drop for TtsWorker {
    fn drop(&mut self) {
        // Closing the queue ends the thread after the current job.
        self.tx.take();
        self.bg_tx.take();
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trimming_keeps_the_sound_and_a_margin() {
        let rate = 24_000;
        let mut x = vec![0.0f32; 4800]; // 200 ms silence
        x.extend((0..2400).map(|i| (i as f32 * 0.1).sin() * 0.5)); // 100 ms tone
        x.extend(vec![0.0f32; 4800]);
        let y = trim_edges(x, rate);
        // 10 ms + 100 ms + 60 ms.
        assert_eq!(y.len(), 240 + 2400 + 1440);
        assert!(y[240..240 + 2400].iter().any(|v| v.abs() > 0.4));
        // All silence stays as it is.
        assert_eq!(trim_edges(vec![0.0; 100], rate).len(), 100);
    }

    #[test]
    fn a_quiet_onset_is_kept() {
        let rate = 24_000;
        let mut x = vec![0.0f32; 4800];
        // 50 ms of a fricative-like onset 34 dB below the vowel, then the vowel.
        x.extend((0..1200).map(|i| if i % 2 == 0 { 0.01 } else { -0.01 }));
        x.extend((0..2400).map(|i| (i as f32 * 0.1).sin() * 0.7));
        let y = trim_edges(x, rate);
        // The onset and 10 ms before it stay.
        assert_eq!(y.len(), 240 + 1200 + 2400);
        assert_eq!(y[240], 0.01);
    }
}

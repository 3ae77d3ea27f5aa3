//! Pre-synthesised lines: every fixed line of a script is rendered once (at script load or
//! call set-up) and kept in memory and on disk, so the agent never waits for TTS on a known
//! line. Keys cover the text, the voice parameters and the model checksum, so a changed
//! voice or model never plays stale audio.
//!
//! Truly dynamic text (a read-back time) goes to the engine's clause stream instead.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use sha2::{Digest, Sha256};

use super::engine::{ClauseAudio, ClauseStream, TtsWorker, VoiceParams};
use super::TtsError;

/// Something that renders whole lines (the real one is [`TtsWorker`]).
pub trait Synthesize: Send + Sync {
    fn synthesize(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError>;
    /// The same at low priority (pre-synthesis must not delay a waiting call).
    fn synthesize_background(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError> {
        self.synthesize(text, voice)
    }
    /// Identifies the voice/model; part of every cache key.
    fn model_id(&self) -> &str;
    fn sample_rate(&self) -> u32;
    /// Clause-by-clause rendering for dynamic text. The default renders the whole line
    /// and delivers it as one clause; [`TtsWorker`] streams each clause as it is ready.
    fn stream(&self, text: &str, voice: VoiceParams) -> Result<ClauseStream, TtsError> {
        let samples = self.synthesize(text, voice)?;
        let (tx, rx) = crossbeam_channel::bounded(1);
        let _ = tx.send(Ok(ClauseAudio {
            index: 0,
            text: text.to_string(),
            samples,
            pause_samples: 0,
            last: true,
            request_seq: 0,
            acoustic_ms: 0.0,
            vocoder_ms: 0.0,
        }));
        Ok(ClauseStream::from_receiver(rx))
    }
}

/// What to play for a line: cached audio at once, or clauses as they render.
pub enum Speech {
    /// Pre-synthesised: the whole line, no synthesis wait.
    Ready(Pcm),
    /// Dynamic text: the first clause arrives while the rest renders.
    Streaming(ClauseStream),
}

impl Synthesize for TtsWorker {
    fn synthesize(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError> {
        TtsWorker::synthesize(self, text, voice)
    }
    fn model_id(&self) -> &str {
        TtsWorker::model_id(self)
    }
    fn sample_rate(&self) -> u32 {
        TtsWorker::sample_rate(self)
    }
    fn stream(&self, text: &str, voice: VoiceParams) -> Result<ClauseStream, TtsError> {
        TtsWorker::stream(self, text, voice)
    }
    fn synthesize_background(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError> {
        TtsWorker::synthesize_background(self, text, voice)
    }
}

/// Counters for tests and the console.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct CacheStats {
    pub memory_hits: u64,
    pub disk_hits: u64,
    pub syntheses: u64,
}

/// Audio shared between the cache and players without copying.
pub type Pcm = Arc<[f32]>;

/// Memory + disk cache of rendered lines.
pub struct PhraseCache {
    synth: Arc<dyn Synthesize>,
    dir: Option<PathBuf>,
    mem: Mutex<HashMap<String, Pcm>>,
    memory_hits: AtomicU64,
    disk_hits: AtomicU64,
    syntheses: AtomicU64,
}

/// Result of a background pre-synthesis run.
#[derive(Debug, Default)]
pub struct PresynthReport {
    pub lines: usize,
    pub synthesized: usize,
    pub already_cached: usize,
    /// Lines that failed, with the error text.
    pub failed: Vec<(String, String)>,
}

impl PhraseCache {
    /// `dir`: where rendered lines persist (e.g. `$CACHE/tts-lines`); `None` = memory only.
    pub fn new(synth: Arc<dyn Synthesize>, dir: Option<PathBuf>) -> Result<Self, TtsError> {
        if let Some(d) = &dir {
            std::fs::create_dir_all(d).map_err(|e| TtsError::Cache {
                path: d.clone(),
                message: e.to_string(),
            })?;
        }
        Ok(Self {
            synth,
            dir,
            mem: Mutex::new(HashMap::new()),
            memory_hits: AtomicU64::new(0),
            disk_hits: AtomicU64::new(0),
            syntheses: AtomicU64::new(0),
        })
    }

    pub fn sample_rate(&self) -> u32 {
        self.synth.sample_rate()
    }

    /// Cache key: SHA-256 over model id, voice parameters and text.
    pub fn key(&self, text: &str, voice: &VoiceParams) -> String {
        let mut h = Sha256::new();
        h.update(self.synth.model_id().as_bytes());
        h.update([0]);
        h.update(voice.key().as_bytes());
        h.update([0]);
        h.update(text.trim().as_bytes());
        hex::encode(&h.finalize()[..16])
    }

    fn path_for(&self, key: &str) -> Option<PathBuf> {
        self.dir.as_ref().map(|d| d.join(format!("{key}.wav")))
    }

    /// Cached audio if present (memory, then disk). Never synthesises.
    pub fn get(&self, text: &str, voice: &VoiceParams) -> Option<Pcm> {
        let key = self.key(text, voice);
        if let Some(p) = self.lock().get(&key) {
            self.memory_hits.fetch_add(1, Ordering::Relaxed);
            return Some(p.clone());
        }
        let path = self.path_for(&key)?;
        let pcm = read_wav(&path, self.synth.sample_rate())?;
        self.disk_hits.fetch_add(1, Ordering::Relaxed);
        self.lock().insert(key, pcm.clone());
        Some(pcm)
    }

    /// Cached audio, or synthesise now and cache it.
    pub fn get_or_synthesize(&self, text: &str, voice: &VoiceParams) -> Result<Pcm, TtsError> {
        self.fetch(text, voice, false)
    }

    fn fetch(&self, text: &str, voice: &VoiceParams, background: bool) -> Result<Pcm, TtsError> {
        if let Some(p) = self.get(text, voice) {
            return Ok(p);
        }
        let samples = if background {
            self.synth.synthesize_background(text, *voice)?
        } else {
            self.synth.synthesize(text, *voice)?
        };
        self.syntheses.fetch_add(1, Ordering::Relaxed);
        let pcm: Pcm = samples.into();
        let key = self.key(text, voice);
        if let Some(path) = self.path_for(&key) {
            write_wav_atomic(&path, &pcm, self.synth.sample_rate())?;
        }
        self.lock().insert(key, pcm.clone());
        Ok(pcm)
    }

    /// The line to play: cached audio if this line was pre-synthesised, otherwise a
    /// clause stream from the engine (dynamic text is not cached: it rarely repeats).
    pub fn speak(&self, text: &str, voice: &VoiceParams) -> Result<Speech, TtsError> {
        match self.get(text, voice) {
            Some(pcm) => Ok(Speech::Ready(pcm)),
            None => Ok(Speech::Streaming(self.synth.stream(text, *voice)?)),
        }
    }

    /// Renders `lines` on a background thread (script load / call set-up) at background
    /// priority, so a call waiting for dynamic text is served first. Lines already cached
    /// cost nothing. Join the handle to wait; lines become available as they finish.
    pub fn presynthesize(
        self: &Arc<Self>,
        lines: Vec<String>,
        voice: VoiceParams,
    ) -> Result<JoinHandle<PresynthReport>, TtsError> {
        let cache = Arc::clone(self);
        std::thread::Builder::new()
            .name("tts-presynth".into())
            .spawn(move || {
                let mut report = PresynthReport {
                    lines: lines.len(),
                    ..Default::default()
                };
                for line in lines {
                    if cache.get(&line, &voice).is_some() {
                        report.already_cached += 1;
                        continue;
                    }
                    match cache.fetch(&line, &voice, true) {
                        Ok(_) => report.synthesized += 1,
                        Err(e) => report.failed.push((line, e.to_string())),
                    }
                }
                report
            })
            .map_err(|e| TtsError::Cache {
                path: PathBuf::from("<thread>"),
                message: format!("cannot start the pre-synthesis thread: {e}"),
            })
    }

    /// Where rendered lines persist by default: `$CACHE/tts-lines`.
    pub fn default_dir(paths: &crate::models::ModelPaths) -> PathBuf {
        paths.cache.join("tts-lines")
    }

    pub fn stats(&self) -> CacheStats {
        CacheStats {
            memory_hits: self.memory_hits.load(Ordering::Relaxed),
            disk_hits: self.disk_hits.load(Ordering::Relaxed),
            syntheses: self.syntheses.load(Ordering::Relaxed),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Pcm>> {
        // A panic while holding the lock leaves a valid map; keep serving.
        self.mem.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn read_wav(path: &Path, rate: u32) -> Option<Pcm> {
    let reader = hound::WavReader::open(path).ok()?;
    let spec = reader.spec();
    if spec.sample_rate != rate
        || spec.channels != 1
        || spec.sample_format != hound::SampleFormat::Float
    {
        return None;
    }
    let samples: Result<Vec<f32>, _> = reader.into_samples::<f32>().collect();
    match samples {
        Ok(s) => Some(s.into()),
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "damaged TTS cache file ignored");
            None
        }
    }
}

/// Writes a 32-bit float mono WAV via a temporary file and rename, so a crash never
/// leaves a half-written line that would later play as truncated audio.
pub(crate) fn write_wav_atomic(path: &Path, samples: &[f32], rate: u32) -> Result<(), TtsError> {
    let err = |e: hound::Error| TtsError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    };
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: rate,
        bits_per_sample: 32,
        sample_format: hound::SampleFormat::Float,
    };
    let mut w = hound::WavWriter::create(&tmp, spec).map_err(err)?;
    for &s in samples {
        w.write_sample(s).map_err(err)?;
    }
    w.finalize().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(|e| TtsError::Cache {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A deterministic stand-in renderer (a tone whose length follows the text) so the
    /// cache's bookkeeping is tested without models; tests/tts.rs repeats this with the
    /// real voice.
    struct ToneSynth {
        calls: AtomicU64,
    }

    impl Synthesize for ToneSynth {
        fn synthesize(&self, text: &str, voice: VoiceParams) -> Result<Vec<f32>, TtsError> {
            self.calls.fetch_add(1, Ordering::Relaxed);
            let n = text.chars().count() * 100;
            Ok((0..n)
                .map(|i| (i as f32 * 0.05 * voice.pitch).sin() * 0.3)
                .collect())
        }
        fn model_id(&self) -> &str {
            "tone-v1"
        }
        fn sample_rate(&self) -> u32 {
            24_000
        }
    }

    #[test]
    fn second_request_is_served_without_synthesis() {
        let dir = tempfile::tempdir().expect("tempdir");
        let synth = Arc::new(ToneSynth {
            calls: AtomicU64::new(0),
        });
        let cache = Arc::new(
            PhraseCache::new(synth.clone(), Some(dir.path().to_path_buf())).expect("cache"),
        );
        let v = VoiceParams::default();
        let a = cache.get_or_synthesize("您好", &v).expect("first");
        let b = cache.get_or_synthesize("您好", &v).expect("second");
        assert_eq!(synth.calls.load(Ordering::Relaxed), 1);
        assert_eq!(a, b);
        assert_eq!(cache.stats().memory_hits, 1);

        // A different voice is a different entry.
        let faster = VoiceParams { speed: 1.2, ..v };
        cache
            .get_or_synthesize("您好", &faster)
            .expect("other voice");
        assert_eq!(synth.calls.load(Ordering::Relaxed), 2);

        // A fresh cache on the same directory serves from disk.
        let cache2 =
            PhraseCache::new(synth.clone(), Some(dir.path().to_path_buf())).expect("cache");
        let c = cache2.get("您好", &v).expect("from disk");
        assert_eq!(c, a);
        assert_eq!(cache2.stats().disk_hits, 1);
        assert_eq!(synth.calls.load(Ordering::Relaxed), 2);
    }

    #[test]
    fn speak_plays_cached_lines_and_streams_the_rest() {
        let synth = Arc::new(ToneSynth {
            calls: AtomicU64::new(0),
        });
        let cache = PhraseCache::new(synth.clone(), None).expect("cache");
        let v = VoiceParams::default();
        cache.get_or_synthesize("欢迎致电", &v).expect("fixed line");
        assert!(matches!(cache.speak("欢迎致电", &v), Ok(Speech::Ready(_))));
        assert_eq!(synth.calls.load(Ordering::Relaxed), 1);
        match cache.speak("您的预约在下午三点", &v) {
            Ok(Speech::Streaming(s)) => {
                let clauses: Vec<_> = s.collect::<Result<_, _>>().expect("clauses");
                assert_eq!(clauses.len(), 1);
                assert!(clauses[0].last);
            }
            _ => panic!("dynamic text must stream"),
        }
        assert_eq!(synth.calls.load(Ordering::Relaxed), 2);
        // Dynamic text is not cached.
        assert!(cache.get("您的预约在下午三点", &v).is_none());
    }

    #[test]
    fn presynthesis_fills_the_cache_in_the_background() {
        let synth = Arc::new(ToneSynth {
            calls: AtomicU64::new(0),
        });
        let cache = Arc::new(PhraseCache::new(synth.clone(), None).expect("cache"));
        let v = VoiceParams::default();
        let lines = vec![
            "第一句".to_string(),
            "第二句".to_string(),
            "第一句".to_string(),
        ];
        let report = cache
            .presynthesize(lines, v)
            .expect("thread")
            .join()
            .expect("join");
        assert_eq!(report.lines, 3);
        assert_eq!(report.synthesized, 2);
        assert_eq!(report.already_cached, 1);
        assert!(cache.get("第二句", &v).is_some());
        assert_eq!(synth.calls.load(Ordering::Relaxed), 2);
    }
}

//! Emergency mode: the minimal script that keeps a hotline answering when the normal
//! service cannot run (the hotline-continuity requirements' 应急极简话术).
//!
//! A call switches to it mid-call when its ASR or TTS work fails, hangs or waits too
//! long in the queue (see the triggers in [`super::session`]); every call gets it when
//! a model was missing at start-up. The flow needs no model at all: the lines were
//! synthesized at start-up and kept in memory (and in a small disk cache of 8 kHz
//! WAVs, so a broken TTS model still has audio if the lines were ever synthesized),
//! the end of the caller's message is found by frame energy, not by the VAD model.
//!
//! Flow: greeting → beep → the caller's voice message (WAV file) → closing → hang up.
//! The record gets `mode = 'emergency'`, the message file, and a pending callback to
//! the caller's number within the configured hours.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{select, Receiver, Sender};
use sha2::{Digest, Sha256};

use crate::audio::{self, FRAME_8K};
use crate::config::EmergencyConfig;
use crate::console::hub::{CallEnd, Speaker, TranscriptLine};
use crate::console::ConsoleHub;
use crate::dialogue::Outcome;
use crate::models::ModelPaths;

use super::engines::{Line8k, SpeechEngines};
use super::records::RecordWriter;
use super::session::{CallMedia, CallReport, CallRequest, CallSetup, CallSignal, ConsoleLink};
use super::CallError;

/// Frame RMS (i16 scale) above which a frame counts as the caller speaking.
/// About -40 dBFS: well above G.711 idle noise, well below speech.
const SPEECH_RMS: f64 = 330.0;
/// A message with no speech at all ends after this long.
const NO_SPEECH_END: Duration = Duration::from_secs(10);
/// After a call lost its speech workers, new calls start in emergency mode for this
/// long instead of each finding out by a timeout; then one call tries again.
pub const FAULT_HOLD: Duration = Duration::from_secs(60);

/// The emergency lines as 8 kHz audio, ready to send.
#[derive(Clone)]
pub struct EmergencyAudio {
    pub greeting: Option<Line8k>,
    pub closing: Option<Line8k>,
    pub beep: Line8k,
}

/// Shared emergency state: config, audio, the start-up fault and the calls in
/// emergency mode (for the `tingshuo_emergency_mode` metric).
pub struct Emergency {
    cfg: EmergencyConfig,
    audio: EmergencyAudio,
    messages_dir: PathBuf,
    startup_fault: Option<String>,
    active: AtomicUsize,
    hub: ConsoleHub,
    /// The last speech-worker fault a call hit, and when.
    last_fault: std::sync::Mutex<Option<(Instant, String)>>,
}

/// While alive, one call runs the emergency script.
pub struct ActiveGuard<'a>(&'a Emergency);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.active.fetch_sub(1, Ordering::AcqRel);
        self.0.publish();
    }
}

impl Emergency {
    pub fn new(
        cfg: EmergencyConfig,
        audio: EmergencyAudio,
        messages_dir: PathBuf,
        startup_fault: Option<String>,
        hub: ConsoleHub,
    ) -> Arc<Self> {
        let em = Arc::new(Self {
            cfg,
            audio,
            messages_dir,
            startup_fault,
            active: AtomicUsize::new(0),
            hub,
            last_fault: std::sync::Mutex::new(None),
        });
        em.publish();
        em
    }

    pub fn config(&self) -> &EmergencyConfig {
        &self.cfg
    }

    /// Why the whole agent is in emergency mode (a model missing at start-up).
    pub fn startup_fault(&self) -> Option<&str> {
        self.startup_fault.as_deref()
    }

    /// Records that a call lost its speech workers (see [`FAULT_HOLD`]).
    pub fn note_fault(&self, at: Instant, reason: &str) {
        *self.last_fault.lock().unwrap_or_else(|p| p.into_inner()) = Some((at, reason.to_string()));
    }

    /// The fault a call hit less than [`FAULT_HOLD`] ago: new calls skip the normal
    /// script while it holds.
    pub fn recent_fault(&self, now: Instant) -> Option<String> {
        let last = self.last_fault.lock().unwrap_or_else(|p| p.into_inner());
        last.as_ref()
            .filter(|(at, _)| now.saturating_duration_since(*at) < FAULT_HOLD)
            .map(|(_, why)| format!("speech workers failed on a recent call: {why}"))
    }

    /// Emergency calls in progress.
    pub fn active(&self) -> usize {
        self.active.load(Ordering::Acquire)
    }

    fn enter(&self) -> ActiveGuard<'_> {
        self.active.fetch_add(1, Ordering::AcqRel);
        self.publish();
        ActiveGuard(self)
    }

    fn publish(&self) {
        let on = self.startup_fault.is_some() || self.active() > 0;
        self.hub.metrics().set_emergency_mode(on);
    }
}

/// The closing line with `{hours}` filled in.
pub fn closing_text(cfg: &EmergencyConfig) -> String {
    cfg.closing
        .replace("{hours}", &cfg.callback_within_hours.to_string())
}

/// Prepares the emergency lines: from the running engines, else from a TTS loaded on
/// its own (the ASR model may be the missing one), else from the disk cache. A line
/// with no audio at all is `None` and logged loudly: the call is still answered and
/// the message still recorded.
pub fn prepare_audio(
    cfg: &EmergencyConfig,
    engines: Option<&SpeechEngines>,
    paths: &ModelPaths,
    tts: &crate::config::TtsConfig,
) -> EmergencyAudio {
    let dir = paths.cache.join("phrases").join("emergency");
    let texts = [cfg.greeting.trim().to_string(), closing_text(cfg)];
    let mut lines: Vec<Option<Line8k>> = Vec::new();
    let mut standalone: Option<SpeechOnlyTts> = None;
    for text in &texts {
        let fresh = match engines {
            Some(e) => e
                .prepare_line(text)
                .map_err(|e| tracing::error!(line = %text, error = %e, "cannot synthesize an emergency line"))
                .ok(),
            None => {
                if standalone.is_none() {
                    standalone = SpeechOnlyTts::load(paths, tts);
                }
                standalone.as_ref().and_then(|t| t.line(text))
            }
        };
        let line = match fresh {
            Some(l) => {
                if let Err(e) = save_line(&dir, text, &l) {
                    tracing::warn!(error = %e, dir = %dir.display(), "cannot cache an emergency line on disk");
                }
                Some(l)
            }
            None => {
                let cached = load_line(&dir, text);
                if cached.is_some() {
                    tracing::warn!(line = %text, "emergency line taken from the disk cache (TTS unavailable)");
                }
                cached
            }
        };
        if line.is_none() {
            tracing::error!(
                line = %text,
                "NO AUDIO for this emergency line (TTS unavailable and never cached): callers hear only the beep; \
                 run `tingshuo models fetch` and restart"
            );
        }
        lines.push(line);
    }
    let closing = lines.pop().flatten();
    let greeting = lines.pop().flatten();
    EmergencyAudio {
        greeting,
        closing,
        beep: beep(),
    }
}

/// A TTS loaded alone (when the full engines could not load).
struct SpeechOnlyTts {
    cache: crate::tts::PhraseCache,
    voice: crate::tts::VoiceParams,
}

impl SpeechOnlyTts {
    fn load(paths: &ModelPaths, cfg: &crate::config::TtsConfig) -> Option<Self> {
        let worker =
            crate::tts::TtsWorker::spawn(paths, super::engines::tts_model_config(paths, cfg))
                .map_err(|e| tracing::error!(error = %e, "TTS unavailable for the emergency lines"))
                .ok()?;
        let cache =
            crate::tts::PhraseCache::new(Arc::new(worker), Some(paths.cache.join("phrases")))
                .map_err(|e| tracing::error!(error = %e, "TTS phrase cache unavailable"))
                .ok()?;
        Some(Self {
            cache,
            voice: crate::tts::VoiceParams {
                speed: cfg.speed,
                pitch: cfg.pitch,
                ..Default::default()
            },
        })
    }

    fn line(&self, text: &str) -> Option<Line8k> {
        let pcm = self
            .cache
            .get_or_synthesize(text, &self.voice)
            .map_err(|e| tracing::error!(error = %e, "cannot synthesize an emergency line"))
            .ok()?;
        let pcm8 = audio::resample(&pcm, self.cache.sample_rate(), 8000).ok()?;
        Some(to_frames(pcm8.iter().map(|s| audio::f32_to_i16(*s))))
    }
}

fn to_frames(samples: impl Iterator<Item = i16>) -> Line8k {
    let mut v: Vec<i16> = samples.collect();
    let frames = v.len().div_ceil(FRAME_8K).max(1);
    v.resize(frames * FRAME_8K, 0);
    v.into()
}

/// 400 ms at 1 kHz, the "after the tone" cue.
fn beep() -> Line8k {
    let n = 8000 * 4 / 10;
    to_frames((0..n).map(|i| {
        let t = i as f32 / 8000.0;
        (0.3 * (2.0 * std::f32::consts::PI * 1000.0 * t).sin() * 32767.0) as i16
    }))
}

fn line_path(dir: &Path, text: &str) -> PathBuf {
    let h = Sha256::digest(text.trim().as_bytes());
    dir.join(format!("{}.wav", hex::encode(&h[..16])))
}

fn wav_spec() -> hound::WavSpec {
    hound::WavSpec {
        channels: 1,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    }
}

/// Writes 8 kHz mono i16 audio atomically (temp file + rename).
fn write_wav(path: &Path, samples: &[i16]) -> Result<(), String> {
    if let Some(d) = path.parent() {
        std::fs::create_dir_all(d).map_err(|e| format!("{}: {e}", d.display()))?;
    }
    let tmp = path.with_extension("wav.part");
    let mut w = hound::WavWriter::create(&tmp, wav_spec()).map_err(|e| e.to_string())?;
    for s in samples {
        w.write_sample(*s).map_err(|e| e.to_string())?;
    }
    w.finalize().map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, path).map_err(|e| format!("{}: {e}", path.display()))
}

fn save_line(dir: &Path, text: &str, line: &Line8k) -> Result<(), String> {
    let path = line_path(dir, text);
    if path.is_file() {
        return Ok(());
    }
    write_wav(&path, line)
}

fn load_line(dir: &Path, text: &str) -> Option<Line8k> {
    let reader = hound::WavReader::open(line_path(dir, text)).ok()?;
    let spec = reader.spec();
    if spec.sample_rate != 8000 || spec.channels != 1 || spec.bits_per_sample != 16 {
        return None;
    }
    let samples: Result<Vec<i16>, _> = reader.into_samples::<i16>().collect();
    Some(to_frames(samples.ok()?.into_iter()))
}

/// The dialable number in a From header or URI: `"Li" <sip:1001@host>;tag=x` → `1001`.
pub fn caller_number(from: &str) -> String {
    let uri = match (from.find('<'), from.find('>')) {
        (Some(a), Some(b)) if b > a => &from[a + 1..b],
        _ => from.split(';').next().unwrap_or(from),
    };
    let uri = uri.trim();
    let rest = uri
        .strip_prefix("sips:")
        .or_else(|| uri.strip_prefix("sip:"))
        .or_else(|| uri.strip_prefix("tel:"))
        .unwrap_or(uri);
    let user = rest.split('@').next().unwrap_or(rest);
    let user = user.split([';', ':']).next().unwrap_or(user);
    if user.is_empty() {
        from.trim().to_string()
    } else {
        user.to_string()
    }
}

/// Energy end-pointing of the voice message.
struct MessageEnd {
    silence_end: Duration,
    max: Duration,
    spoke: bool,
    quiet: Duration,
    total: Duration,
}

impl MessageEnd {
    fn new(cfg: &EmergencyConfig) -> Self {
        Self {
            silence_end: Duration::from_secs_f32(cfg.message_silence_secs.max(0.5)),
            max: Duration::from_secs(u64::from(cfg.max_message_secs)),
            spoke: false,
            quiet: Duration::ZERO,
            total: Duration::ZERO,
        }
    }

    /// Feeds one 20 ms frame; true when the message is over.
    fn push(&mut self, frame: &[i16]) -> bool {
        const FRAME: Duration = Duration::from_millis(20);
        let energy: f64 = frame.iter().map(|s| f64::from(*s).powi(2)).sum();
        let rms = (energy / frame.len().max(1) as f64).sqrt();
        self.total += FRAME;
        if rms >= SPEECH_RMS {
            self.spoke = true;
            self.quiet = Duration::ZERO;
        } else {
            self.quiet += FRAME;
        }
        self.total >= self.max
            || (self.spoke && self.quiet >= self.silence_end)
            || (!self.spoke && self.total >= NO_SPEECH_END)
    }
}

/// What happened on the line while the agent played or listened.
enum Heard {
    Done,
    HungUp,
}

/// Sends `lines` one after another and waits until they have left; frames heard
/// meanwhile are discarded. Never blocks longer than a frame on a full queue.
fn play(lines: &[&Line8k], media: &CallMedia, signals: &Receiver<CallSignal>) -> Heard {
    let mut queue = lines
        .iter()
        .flat_map(|l| l.chunks_exact(FRAME_8K))
        .peekable();
    loop {
        while let Some(chunk) = queue.peek() {
            let mut frame = [0i16; FRAME_8K];
            frame.copy_from_slice(chunk);
            if media.playback.push(&frame).is_err() {
                break;
            }
            queue.next();
        }
        if queue.peek().is_none() && media.playback.is_empty() {
            return Heard::Done;
        }
        select! {
            recv(media.inbound) -> f => if f.is_err() { return Heard::HungUp },
            recv(signals) -> _ => return Heard::HungUp,
            default(Duration::from_millis(20)) => {}
        }
        while media.sent.try_recv().is_ok() {}
    }
}

/// Records the caller's message until it ends or the caller hangs up.
fn record_message(
    cfg: &EmergencyConfig,
    media: &CallMedia,
    signals: &Receiver<CallSignal>,
) -> (Vec<i16>, Heard) {
    let mut end = MessageEnd::new(cfg);
    let mut samples = Vec::with_capacity(cfg.max_message_secs as usize * 8000);
    let started = Instant::now();
    // The inbound stream stops when the media does; a stall longer than the message
    // limit must still end the recording.
    let deadline = started + end.max + Duration::from_secs(2);
    loop {
        select! {
            recv(media.inbound) -> f => match f {
                Ok(f) => {
                    // The message is kept at 8 kHz whatever the codec (a G.722
                    // caller's 16 kHz frames are decimated).
                    let narrow = f.samples.narrowband();
                    samples.extend_from_slice(&narrow);
                    if end.push(&narrow) {
                        return (samples, Heard::Done);
                    }
                }
                Err(_) => return (samples, Heard::HungUp),
            },
            recv(signals) -> _ => return (samples, Heard::HungUp),
            default(Duration::from_millis(200)) => {
                if Instant::now() > deadline {
                    return (samples, Heard::Done);
                }
            }
        }
        while media.sent.try_recv().is_ok() {}
    }
}

/// The parts of a call the emergency flow needs.
pub struct EmergencyCall<'a> {
    pub call_id: &'a str,
    pub peer: &'a str,
    pub record_id: Option<i64>,
    /// Why the call is in emergency mode (logged and shown to operators).
    pub reason: &'a str,
}

/// How the emergency flow ended.
pub struct EmergencyEnd {
    pub outcome: Outcome,
    /// The caller hung up (no BYE to send).
    pub remote_hangup: bool,
    pub voice_message: Option<PathBuf>,
}

/// Runs the emergency flow on the call's thread, from the current point of the call.
pub fn run(
    em: &Emergency,
    call: EmergencyCall<'_>,
    media: &CallMedia,
    records: &RecordWriter,
    signals: &Receiver<CallSignal>,
    console: Option<&ConsoleLink>,
) -> EmergencyEnd {
    let switched = Instant::now();
    let _active = em.enter();
    tracing::warn!(reason = call.reason, "EMERGENCY MODE for this call");
    let number = caller_number(call.peer);
    if let Some(id) = call.record_id {
        records.apply("marking the call as emergency", move |s| {
            s.set_mode(id, "emergency")
        });
    }
    if let Some(c) = console {
        c.publisher.transcript(TranscriptLine::new(
            Speaker::Agent,
            format!("（应急模式 / emergency mode: {}）", call.reason),
        ));
    }
    media.playback.flush();
    let mut lines: Vec<&Line8k> = Vec::new();
    if let Some(g) = &em.audio.greeting {
        lines.push(g);
    }
    lines.push(&em.audio.beep);
    let first = play(&lines, media, signals);
    tracing::info!(
        switch_ms = switched.elapsed().as_millis() as u64,
        "emergency greeting played"
    );
    let (message, heard) = match first {
        Heard::HungUp => (Vec::new(), Heard::HungUp),
        Heard::Done => record_message(&em.cfg, media, signals),
    };
    let voice_message = (!message.is_empty())
        .then(|| {
            let name = match call.record_id {
                Some(id) => format!("call-{id}.wav"),
                None => format!("sip-{}.wav", sanitize(call.call_id)),
            };
            let path = em.messages_dir.join(name);
            match write_wav(&path, &message) {
                Ok(()) => Some(path),
                Err(e) => {
                    tracing::error!(error = %e, "cannot write the voice message");
                    None
                }
            }
        })
        .flatten();
    let now = chrono::Local::now().fixed_offset();
    let due = now + chrono::Duration::hours(i64::from(em.cfg.callback_within_hours));
    tracing::info!(
        caller = %number,
        message_s = message.len() as f64 / 8000.0,
        callback_due = %due.to_rfc3339(),
        "emergency: caller's number and message recorded, callback scheduled"
    );
    if let Some(id) = call.record_id {
        let msg = voice_message.as_ref().map(|p| p.display().to_string());
        let (due, now, target) = (due.to_rfc3339(), now.to_rfc3339(), number.clone());
        // One transaction would be nicer, but the two writes are each idempotent
        // enough: a retry after an outage rewrites the same message path.
        let mut scheduled = false;
        records.apply(
            "recording the voice message and scheduling the callback",
            move |s| {
                if let Some(m) = &msg {
                    s.set_voice_message(id, m)?;
                }
                if !scheduled {
                    s.schedule_callback(id, &due, &target, &now)?;
                    scheduled = true;
                }
                Ok(())
            },
        );
    } else {
        tracing::error!(caller = %number, "no call record: the callback could not be stored");
    }
    let remote_hangup = match heard {
        Heard::HungUp => true,
        Heard::Done => match &em.audio.closing {
            Some(c) => matches!(play(&[c], media, signals), Heard::HungUp),
            None => false,
        },
    };
    EmergencyEnd {
        outcome: Outcome::CallbackScheduled,
        remote_hangup,
        voice_message,
    }
}

fn sanitize(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .take(40)
        .collect()
}

/// A whole call in emergency mode (the agent started without its models).
pub fn run_call(
    em: &Emergency,
    setup: CallSetup,
    media: CallMedia,
    records: RecordWriter,
    signals: Receiver<CallSignal>,
    requests: Sender<CallRequest>,
    console: Option<ConsoleLink>,
) -> Result<CallReport, CallError> {
    let reason = em
        .startup_fault()
        .unwrap_or("speech engines unavailable")
        .to_string();
    let end = run(
        em,
        EmergencyCall {
            call_id: &setup.call_id,
            peer: &setup.peer,
            record_id: setup.record_id,
            reason: &reason,
        },
        &media,
        &records,
        &signals,
        console.as_ref(),
    );
    finish(&setup, &end, &records, &requests, console);
    Ok(CallReport {
        call_id: setup.call_id.clone(),
        record_id: setup.record_id,
        outcome: end.outcome,
        turns: 0,
        barge_ins: 0,
        latencies: Vec::new(),
    })
}

/// Hangs up (unless the caller did), closes the record and the console view.
pub fn finish(
    setup: &CallSetup,
    end: &EmergencyEnd,
    records: &RecordWriter,
    requests: &Sender<CallRequest>,
    console: Option<ConsoleLink>,
) {
    if !end.remote_hangup {
        let _ = requests.send(CallRequest::Hangup {
            call_id: setup.call_id.clone(),
        });
    }
    if let Some(id) = setup.record_id {
        records.end_call(
            id,
            end.outcome.as_str(),
            &chrono::Local::now().fixed_offset().to_rfc3339(),
        );
    }
    if let Some(c) = console {
        let mut fields = std::collections::BTreeMap::new();
        fields.insert("mode".to_string(), "emergency".to_string());
        c.publisher.end(CallEnd {
            outcome: end.outcome.as_str().to_string(),
            fields,
            recording: end.voice_message.clone(),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn caller_numbers_from_headers() {
        assert_eq!(caller_number("<sip:1001@127.0.0.1>;tag=abc"), "1001");
        assert_eq!(
            caller_number("\"张三\" <sip:13800001111@pbx.example;user=phone>;tag=1"),
            "13800001111"
        );
        assert_eq!(caller_number("sip:1002@10.0.0.1:5060;tag=x"), "1002");
        assert_eq!(caller_number("<tel:+8613900002222>"), "+8613900002222");
    }

    #[test]
    fn closing_names_the_hours() {
        let cfg = EmergencyConfig::default();
        let c = closing_text(&cfg);
        assert!(c.contains("2小时"), "{c}");
        assert!(!c.contains('{'));
    }

    fn frames(rms: i16, secs: f32) -> Vec<[i16; FRAME_8K]> {
        let n = (secs * 50.0) as usize;
        (0..n)
            .map(|_| {
                let mut f = [0i16; FRAME_8K];
                for (i, s) in f.iter_mut().enumerate() {
                    *s = if i % 2 == 0 { rms } else { -rms };
                }
                f
            })
            .collect()
    }

    fn frames_until_end(end: &mut MessageEnd, parts: &[(i16, f32)]) -> Option<usize> {
        let mut n = 0;
        for (rms, secs) in parts {
            for f in frames(*rms, *secs) {
                n += 1;
                if end.push(&f) {
                    return Some(n);
                }
            }
        }
        None
    }

    #[test]
    fn message_ends_after_silence_following_speech() {
        let cfg = EmergencyConfig {
            message_silence_secs: 1.0,
            ..Default::default()
        };
        let mut end = MessageEnd::new(&cfg);
        // 2 s of speech then silence: ends 1 s into the silence (50 frames).
        assert_eq!(
            frames_until_end(&mut end, &[(3000, 2.0), (10, 5.0)]),
            Some(100 + 50)
        );
    }

    #[test]
    fn message_without_speech_or_too_long_ends() {
        let cfg = EmergencyConfig {
            max_message_secs: 3,
            ..Default::default()
        };
        let mut end = MessageEnd::new(&cfg);
        assert_eq!(frames_until_end(&mut end, &[(3000, 10.0)]), Some(150));
        let mut end = MessageEnd::new(&EmergencyConfig::default());
        assert_eq!(frames_until_end(&mut end, &[(10, 20.0)]), Some(500));
    }

    #[test]
    fn lines_round_trip_through_the_disk_cache() {
        let dir = tempfile::tempdir().unwrap();
        let line = to_frames((0..500).map(|i| i as i16));
        save_line(dir.path(), "应急", &line).unwrap();
        let back = load_line(dir.path(), " 应急 ").unwrap();
        assert_eq!(&back[..], &line[..]);
        assert_eq!(back.len() % FRAME_8K, 0);
        assert!(load_line(dir.path(), "别的").is_none());
    }

    #[test]
    fn no_models_still_gives_a_beep_and_logs() {
        let dir = tempfile::tempdir().unwrap();
        let paths = ModelPaths::in_cache(dir.path());
        let audio = prepare_audio(
            &EmergencyConfig::default(),
            None,
            &paths,
            &crate::config::TtsConfig::default(),
        );
        assert!(audio.greeting.is_none() && audio.closing.is_none());
        assert_eq!(audio.beep.len(), 3200);
        let hub = ConsoleHub::new();
        let em = Emergency::new(
            EmergencyConfig::default(),
            audio,
            dir.path().join("m"),
            Some("whisper missing".into()),
            hub.clone(),
        );
        assert!(hub.metrics().render().contains("tingshuo_emergency_mode 1"));
        assert_eq!(em.active(), 0);
        let t0 = Instant::now();
        assert_eq!(em.recent_fault(t0), None);
        em.note_fault(t0, "ASR timed out");
        assert!(em
            .recent_fault(t0 + Duration::from_secs(5))
            .is_some_and(|r| r.contains("ASR timed out")));
        assert_eq!(
            em.recent_fault(t0 + FAULT_HOLD),
            None,
            "a later call tries again"
        );
    }
}

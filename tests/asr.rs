//! Whisper recogniser, pool and `tingshuo transcribe` (needs all models:
//! `tingshuo models fetch`). Silence, line noise and DTMF must give no text.

mod asr_support;

use std::sync::Arc;

use asr_support::*;
use tingshuo::asr::text::char_errors;
use tingshuo::asr::{AsrConfig, AsrError, AsrJob, AsrPool, Recognizer, Rejection, WhisperModel};
use tingshuo::tts::{ModelConfig, TtsEngine, VoiceParams};
use tingshuo::vad::SileroModel;

struct Models {
    vad: SileroModel,
    whisper: WhisperModel,
}

/// The models, loaded once for all the tests of this file (they run in parallel on
/// one copy; recognisers and pools borrow them).
fn models() -> &'static Models {
    static MODELS: std::sync::OnceLock<Models> = std::sync::OnceLock::new();
    MODELS.get_or_init(|| {
        let p = paths();
        Models {
            vad: SileroModel::load(&p).unwrap_or_else(|e| panic!("{e}")),
            whisper: WhisperModel::load(&p).unwrap_or_else(|e| panic!("{e}")),
        }
    })
}

/// The TTS voice, loaded once (one synthesis at a time).
fn tts() -> std::sync::MutexGuard<'static, TtsEngine> {
    static TTS: std::sync::OnceLock<std::sync::Mutex<TtsEngine>> = std::sync::OnceLock::new();
    TTS.get_or_init(|| {
        let p = paths();
        std::sync::Mutex::new(
            TtsEngine::load(&p, ModelConfig::baker(&p)).unwrap_or_else(|e| panic!("{e}")),
        )
    })
    .lock()
    .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// 16 kHz speech from our TTS through the telephone channel.
fn tts_clip(text: &str) -> Vec<f32> {
    let mut tts = tts();
    let a = tts.synthesize(text, &VoiceParams::default()).unwrap();
    telephone(&a, tts.sample_rate())
}

fn non_speech_signals() -> Vec<(&'static str, Vec<f32>)> {
    let r = 8000;
    vec![
        ("digital silence", vec![0.0; 3 * r as usize]),
        ("white noise -50 dBFS", white_noise(r, 3.0, -50.0, 11)),
        ("white noise -35 dBFS", white_noise(r, 3.0, -35.0, 12)),
        ("pink noise -45 dBFS", pink_noise(r, 3.0, -45.0, 13)),
        ("pink noise -30 dBFS", pink_noise(r, 3.0, -30.0, 14)),
        ("DTMF 4008123", dtmf(r, "4008123")),
        ("DTMF #*0", dtmf(r, "#*0#*0")),
    ]
    .into_iter()
    // Every signal goes through the same telephone channel as real calls.
    .map(|(n, s)| (n, telephone(&s, r)))
    .collect()
}

#[test]
fn silence_line_noise_and_dtmf_transcribe_to_nothing() {
    let m = models();
    let mut rec = Recognizer::new(&m.whisper, AsrConfig::default(), Some(&m.vad)).unwrap();
    for (name, clip) in non_speech_signals() {
        let t = rec.transcribe(&clip, &[], None).unwrap();
        assert_eq!(t.text, "", "{name} gave {:?} ({:?})", t.text, t.segments);
        assert!(t.rejected.is_some(), "{name}");
    }
}

#[test]
fn whisper_guards_alone_reject_noise_and_dtmf() {
    // Without the voice and level gates Whisper itself sees the noise; the
    // no-speech / log-probability / silence-phrase guards must still hold.
    let m = models();
    let cfg = AsrConfig {
        min_rms_dbfs: -200.0,
        ..AsrConfig::default()
    };
    let mut rec = Recognizer::new(&m.whisper, cfg, None).unwrap();
    for (name, clip) in non_speech_signals() {
        let t = rec.transcribe(&clip, &[], None).unwrap();
        eprintln!("{name}: {:?} {:?} {:?}", t.text, t.rejected, t.segments);
        assert_eq!(t.text, "", "{name} gave {:?} ({:?})", t.text, t.segments);
    }
}

#[test]
fn speech_is_recognised_in_simplified_chinese() {
    let m = models();
    let mut rec = Recognizer::new(&m.whisper, AsrConfig::default(), Some(&m.vad)).unwrap();
    let reference = "请问您明天上午在家吗？";
    let t = rec.transcribe(&tts_clip(reference), &[], None).unwrap();
    let (e, n) = char_errors(reference, &t.text);
    assert!(e * 5 <= n, "{reference} → {:?}", t.text);
    assert_eq!(t.text, tingshuo::asr::text::to_simplified(&t.text));
    assert!(t.audio_ctx >= AsrConfig::default().min_audio_ctx && t.audio_ctx < 400);
}

#[test]
fn pool_reports_queue_wait_and_cancels_superseded_jobs() {
    let m = models();
    let cfg = AsrConfig {
        workers: 1,
        queue_capacity: 2,
        ..AsrConfig::default()
    };
    let pool = AsrPool::new(&m.whisper, Some(&m.vad), cfg).unwrap();
    let clip = tts_clip("好的，我知道了，谢谢。");
    let job = |id| AsrJob {
        id,
        samples: clip.clone(),
        hot_words: Arc::from(Vec::<String>::new()),
        terms: Arc::from(Vec::new()),
    };
    let first = pool.submit(job(1)).unwrap();
    let second = pool.submit(job(2)).unwrap();
    // Superseded before a worker took it: comes back cancelled, not decoded.
    second.cancel();
    let a = first.wait().unwrap();
    let b = second.wait().unwrap();
    assert_eq!(a.id, 1);
    assert!(!a.cancelled());
    assert!(!a.result.as_ref().unwrap().text.is_empty());
    assert!(b.cancelled(), "{b:?}");
    // Job 2 waited in the queue while job 1 ran.
    assert!(
        b.queue_ms > 0.5 * a.infer_ms,
        "queue {} vs infer {}",
        b.queue_ms,
        a.infer_ms
    );

    // A full queue refuses instead of blocking.
    let mut refused = 0;
    let mut handles = Vec::new();
    for id in 10..16 {
        match pool.submit(job(id)) {
            Ok(h) => handles.push(h),
            Err(AsrError::QueueFull { capacity: 2 }) => refused += 1,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(refused >= 3, "only {refused} refused");
    for h in handles {
        h.cancel();
        assert!(h.wait().is_ok());
    }
}

#[test]
fn cancel_during_decoding_stops_early() {
    let m = models();
    let pool = AsrPool::new(&m.whisper, Some(&m.vad), AsrConfig::default()).unwrap();
    let clip = tts_clip("我们明天上午九点过来检修，维修大概需要两个小时，请您提前安排好时间。");
    // Decode twice and time the warm run: a cold first decode would make the wait
    // below longer than a whole warm decode, and the cancel would come too late.
    let mut full = None;
    for id in [10, 11] {
        full = Some(
            pool.submit(AsrJob {
                id,
                samples: clip.clone(),
                hot_words: Arc::from(Vec::<String>::new()),
                terms: Arc::from(Vec::new()),
            })
            .unwrap()
            .wait()
            .unwrap(),
        );
    }
    let full = full.expect("two decodes ran");
    let h = pool
        .submit(AsrJob {
            id: 2,
            samples: clip,
            hot_words: Arc::from(Vec::<String>::new()),
            terms: Arc::from(Vec::new()),
        })
        .unwrap();
    // A quarter of the warm decode, but at most 50 ms: the warm decode was timed
    // under whatever load the machine had then, and a quarter of a slow one (8 s
    // beside other builds) outlasted this whole decode once (2 s), so the cancel came
    // after the transcript. Any cancel before the decode returns must stop it.
    std::thread::sleep(std::time::Duration::from_millis(
        ((full.infer_ms / 4.0) as u64).min(50),
    ));
    h.cancel();
    let o = h.wait().unwrap();
    assert!(o.cancelled(), "{o:?}");
    assert_eq!(o.result.unwrap().rejected, Some(Rejection::Cancelled));
}

#[test]
fn transcribe_cli_reads_any_wav_and_prints_json() {
    let reference = "这个月的电费是一百二十八元。";
    let (a, rate) = {
        let mut tts = tts();
        (
            tts.synthesize(reference, &VoiceParams::default()).unwrap(),
            tts.sample_rate(),
        )
    };
    // Stereo 44.1 kHz 16-bit with a second of silence before and after.
    let a = tingshuo::audio::resample(&a, rate, 44_100).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let wav = dir.path().join("in.wav");
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 44_100,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(&wav, spec).unwrap();
    let pad = vec![0.0f32; 44_100];
    for s in pad.iter().chain(&a).chain(&pad) {
        let v = tingshuo::audio::f32_to_i16(*s);
        w.write_sample(v).unwrap();
        w.write_sample(v).unwrap();
    }
    w.finalize().unwrap();

    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .args(["transcribe", "--json"])
        .arg(&wav)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    let text = v["text"].as_str().unwrap();
    let (e, n) = char_errors(reference, text);
    assert!(e * 5 <= n, "{reference} → {text}");
    let seg = &v["segments"][0];
    let start = seg["start_ms"].as_u64().unwrap();
    assert!(
        (800..=1300).contains(&start),
        "segment starts at {start} ms"
    );
    assert!(seg["audio_ctx"].as_u64().unwrap() >= 160);
    assert!(v["timings"]["infer_ms"].as_f64().unwrap() > 0.0);
    assert!(v["timings"]["queue_ms"].as_f64().is_some());
    assert_eq!(v["input_rate"].as_u64(), Some(44_100));

    // Plain mode prints just the text; a missing file is a clear error.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .args(["transcribe", "/nonexistent/x.wav"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("x.wav"));
}

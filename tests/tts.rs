//! Synthesis with the provisioned voice (FastSpeech2 + MB-MelGAN through ort): audible,
//! plausible length, deterministic, streamed by clause, controllable, cached.
//! Needs `tingshuo models fetch`; fails naming it when the models are missing.

use std::sync::{Arc, LazyLock};

use tingshuo::models::ModelPaths;
use tingshuo::tts::{ModelConfig, PhraseCache, TtsWorker, VoiceParams};

static WORKER: LazyLock<Arc<TtsWorker>> = LazyLock::new(|| {
    let paths = ModelPaths::default_cache();
    let worker = TtsWorker::spawn(&paths, ModelConfig::baker(&paths))
        .unwrap_or_else(|e| panic!("the TTS tests need the provisioned voice: {e}"));
    Arc::new(worker)
});

fn rms(x: &[f32]) -> f32 {
    (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
}

const LINE: &str = "您好，这里是物业服务中心，明天上午九点停水两个小时。";

#[test]
fn sentence_is_audible_with_plausible_duration() {
    let w = &*WORKER;
    let audio = w
        .synthesize(LINE, VoiceParams::default())
        .expect("synthesis");
    let secs = audio.len() as f32 / w.sample_rate() as f32;
    let syllables = w.frontend().pinyin(LINE).split(' ').count();
    assert_eq!(syllables, 23);
    // Mandarin read at 3-7 syllables per second, plus two clause pauses.
    assert!(
        secs > syllables as f32 / 7.0 && secs < syllables as f32 / 3.0 + 0.6,
        "{secs:.2} s for {syllables} syllables"
    );
    let peak = audio.iter().fold(0.0f32, |m, v| m.max(v.abs()));
    assert!(rms(&audio) > 0.02, "too quiet: rms {}", rms(&audio));
    assert!(peak > 0.1 && peak <= 1.5, "peak {peak}");
    assert!(audio.iter().all(|v| v.is_finite()));
}

#[test]
fn synthesis_is_deterministic() {
    let w = &*WORKER;
    let a = w
        .synthesize("请问您是王先生吗？", VoiceParams::default())
        .expect("a");
    let b = w
        .synthesize("请问您是王先生吗？", VoiceParams::default())
        .expect("b");
    assert_eq!(a, b);
}

#[test]
fn clauses_stream_in_order_and_add_up_to_the_whole() {
    let w = &*WORKER;
    let clauses: Vec<_> = w
        .stream(LINE, VoiceParams::default())
        .expect("queued")
        .collect::<Result<_, _>>()
        .expect("stream");
    assert_eq!(clauses.len(), 3);
    for (i, c) in clauses.iter().enumerate() {
        assert_eq!(c.index, i);
        assert_eq!(c.last, i == 2);
        assert!(rms(&c.samples) > 0.01, "clause {i} is silent");
    }
    // ~0.2 s pause after a comma at 24 kHz.
    assert_eq!(clauses[0].pause_samples, 4800);
    assert_eq!(clauses[2].pause_samples, 0);
    let joined: Vec<f32> = clauses
        .iter()
        .flat_map(|c| {
            c.samples
                .iter()
                .copied()
                .chain(std::iter::repeat_n(0.0, c.pause_samples))
        })
        .collect();
    assert_eq!(
        joined,
        w.synthesize(LINE, VoiceParams::default()).expect("whole")
    );
}

#[test]
fn speed_and_pitch_controls_take_effect() {
    let w = &*WORKER;
    let text = "我们会在三个工作日内给您回复";
    let normal = w.synthesize(text, VoiceParams::default()).expect("normal");
    let fast = w
        .synthesize(
            text,
            VoiceParams {
                speed: 1.5,
                ..Default::default()
            },
        )
        .expect("fast");
    let high = w
        .synthesize(
            text,
            VoiceParams {
                pitch: 1.3,
                ..Default::default()
            },
        )
        .expect("high");
    assert!(
        (fast.len() as f32) < normal.len() as f32 * 0.8,
        "fast {} vs normal {}",
        fast.len(),
        normal.len()
    );
    assert_ne!(high, normal);
    // Pitch does not change timing much.
    let ratio = high.len() as f32 / normal.len() as f32;
    assert!(
        (0.9..1.1).contains(&ratio),
        "pitch changed duration by {ratio}"
    );
}

#[test]
fn cached_line_is_served_without_a_synthesis_call() {
    let dir = tempfile::tempdir().expect("tempdir");
    let w = WORKER.clone();
    let cache =
        Arc::new(PhraseCache::new(w.clone(), Some(dir.path().to_path_buf())).expect("cache"));
    let v = VoiceParams::default();
    let line = "感谢您的耐心等待。";
    let report = cache
        .presynthesize(vec![line.to_string(), "好的，再见。".to_string()], v)
        .expect("thread")
        .join()
        .expect("join");
    assert_eq!(report.synthesized, 2, "{:?}", report.failed);
    // Other tests share the worker: compare this cache's own counter, and the worker's
    // request counter around a hit.
    let before = cache.stats().syntheses;
    let hit = cache
        .get(line, &v)
        .expect("pre-synthesised line must be cached");
    let again = cache.get_or_synthesize(line, &v).expect("served");
    assert_eq!(cache.stats().syntheses, before);
    assert_eq!(hit, again);
    assert!(rms(&hit) > 0.01);
    // A new cache on the same directory (the next process) reads it from disk.
    let cache2 = PhraseCache::new(w.clone(), Some(dir.path().to_path_buf())).expect("cache");
    let from_disk = cache2.get_or_synthesize(line, &v).expect("disk");
    assert_eq!(cache2.stats().syntheses, 0);
    assert_eq!(cache2.stats().disk_hits, 1);
    assert_eq!(from_disk, hit);
}

#[test]
fn dynamic_text_streams_its_first_clause_before_the_rest() {
    let w = WORKER.clone();
    let cache = PhraseCache::new(w, None).expect("cache");
    let text = "您的预约时间是下午2:30，地点在3号楼302室，请提前十分钟到达。";
    let Ok(tingshuo::tts::Speech::Streaming(mut s)) = cache.speak(text, &VoiceParams::default())
    else {
        panic!("uncached text must stream");
    };
    let first = s.next().expect("a clause").expect("rendered");
    assert_eq!(first.index, 0);
    // The 14-syllable first clause is cut at a word boundary for a faster start.
    assert!(first.text.chars().count() <= 8, "{}", first.text);
    assert!("您的预约时间是下午两点三十分".starts_with(&first.text));
    assert_eq!(first.pause_samples, 0);
    let rest: Vec<_> = s.collect::<Result<_, _>>().expect("rest");
    assert_eq!(rest.len(), 3);
    assert!(rest[2].last);
}

#[test]
fn interactive_requests_overtake_queued_presynthesis() {
    // A private worker, so other tests' requests do not interleave.
    let paths = ModelPaths::default_cache();
    let w = TtsWorker::spawn(&paths, ModelConfig::baker(&paths)).expect("worker");
    let v = VoiceParams::default();
    let long = "尊敬的业主您好，因管道检修，本小区明天凌晨零点到四点停水，请您提前储水，感谢您的理解与配合。";
    let bg: Vec<_> = (0..4)
        .map(|_| w.stream_background(long, v).expect("queued"))
        .collect();
    let urgent: Vec<_> = w
        .stream("好的，马上为您查询。", v)
        .expect("queued")
        .collect::<Result<_, _>>()
        .expect("urgent");
    let bg_seqs: Vec<u64> = bg
        .into_iter()
        .map(|s| s.collect::<Result<Vec<_>, _>>().expect("bg")[0].request_seq)
        .collect();
    // The call's line runs first, or second when the first background line had already
    // been taken up; the background lines keep their order.
    let u = urgent[0].request_seq;
    assert!(u <= 2, "urgent ran as request {u}, background {bg_seqs:?}");
    let expected: Vec<u64> = (1..=5).filter(|&k| k != u).collect();
    assert_eq!(bg_seqs, expected);
}

#[test]
fn say_writes_a_telephone_rate_wav() {
    let dir = tempfile::tempdir().expect("tempdir");
    let out = dir.path().join("line.wav");
    let paths = ModelPaths::default_cache();
    let r = tingshuo::tts::cli::say(&paths, "好的，我知道了。", &out, 8000).expect("say");
    let reader = hound::WavReader::open(&out).expect("wav");
    let spec = reader.spec();
    assert_eq!(
        (spec.sample_rate, spec.channels, spec.bits_per_sample),
        (8000, 1, 16)
    );
    assert_eq!(reader.len() as usize, r.samples);
    assert!(r.seconds > 0.6 && r.seconds < 3.0, "{} s", r.seconds);
}

#[test]
fn missing_models_name_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let paths = ModelPaths::in_cache(dir.path());
    let err = TtsWorker::spawn(&paths, ModelConfig::baker(&paths))
        .err()
        .expect("must fail without models")
        .to_string();
    assert!(err.contains("tingshuo models fetch"), "{err}");
}

#[test]
fn text_without_anything_to_say_is_an_error() {
    let err = WORKER
        .synthesize("……", VoiceParams::default())
        .expect_err("nothing to say");
    assert!(err.to_string().contains("nothing to say"), "{err}");
}

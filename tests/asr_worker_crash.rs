//! A crashed ASR worker costs one clip, not the pool: the job that crashed it is
//! answered with `WorkerCrashed` at once (its call can switch to the emergency
//! script), and the worker is back with a fresh Whisper state for the next job.
//! Needs the models (`tingshuo models fetch`). Its own test binary: the fault
//! injection variable is read once per process.

mod asr_support;

use asr_support::*;
use tingshuo::asr::pool::FAULT_CRASH_AFTER_ENV;
use tingshuo::asr::{AsrConfig, AsrError, AsrJob, AsrPool, WhisperModel};
use tingshuo::tts::{ModelConfig, TtsEngine, VoiceParams};
use tingshuo::vad::SileroModel;

#[test]
fn a_crashed_worker_answers_its_job_with_an_error_and_serves_the_next() {
    // The second job in the process crashes its worker; the others are normal.
    std::env::set_var(FAULT_CRASH_AFTER_ENV, "1:1");
    let p = paths();
    let vad = SileroModel::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let whisper = WhisperModel::load(&p).unwrap_or_else(|e| panic!("{e}"));
    let mut tts = TtsEngine::load(&p, ModelConfig::baker(&p)).unwrap_or_else(|e| panic!("{e}"));
    let clip = telephone(
        &tts.synthesize("好的，没问题。", &VoiceParams::default())
            .expect("synthesized"),
        tts.sample_rate(),
    );
    // One worker: the job after the crash must be served by the restarted one.
    let cfg = AsrConfig {
        workers: 1,
        ..AsrConfig::default()
    };
    let pool = AsrPool::new(&whisper, Some(&vad), cfg).expect("pool");
    let job = |id| AsrJob {
        id,
        samples: clip.clone(),
        hot_words: std::sync::Arc::from(Vec::<String>::new()),
        terms: std::sync::Arc::from(Vec::new()),
    };
    let first = pool
        .submit(job(1))
        .expect("queued")
        .wait()
        .expect("answered");
    let text = first.result.expect("first job decodes").text;
    assert!(text.contains("好"), "first job: {text:?}");

    let crashed = pool
        .submit(job(2))
        .expect("queued")
        .wait()
        .expect("answered");
    assert_eq!(crashed.id, 2);
    assert!(
        matches!(
            crashed.result,
            Err(AsrError::WorkerCrashed { worker: 0, .. })
        ),
        "the crashed job reports the crash: {:?}",
        crashed.result
    );

    let after = pool
        .submit(job(3))
        .expect("queued")
        .wait()
        .expect("answered");
    let text = after.result.expect("the restarted worker decodes").text;
    assert!(text.contains("好"), "after the restart: {text:?}");
}

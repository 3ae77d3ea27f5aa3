//! Emergency mode, black box: baresip registered on Kamailio calls `tingshuo serve`.
//!
//! 1. The ASR workers are killed mid-call (fault injection: every worker panics on
//!    its first job): the call must continue with the emergency script, the caller
//!    hears it, leaves a message, and the record shows mode `emergency`, the voice
//!    message file and a pending callback to the caller's number.
//! 2. The Whisper model file is missing at start-up: the agent must still start (no
//!    crash loop), say so loudly, and answer calls with the emergency script.

mod resilience_support;
mod support;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use resilience_support::*;
use support::*;

/// What the record of the (only) call says, once it has ended.
struct Record {
    outcome: String,
    mode: String,
    voice_message: Option<String>,
    callbacks: Vec<(String, String, String)>,
}

fn ended_record(db: &Path) -> Option<Record> {
    let conn = rusqlite::Connection::open(db).ok()?;
    let (id, outcome, mode, voice_message): (i64, Option<String>, String, Option<String>) = conn
        .query_row(
            "SELECT id, outcome, mode, voice_message FROM calls ORDER BY id DESC LIMIT 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .ok()?;
    let outcome = outcome?;
    let mut st = conn
        .prepare("SELECT COALESCE(target, ''), status, due_at FROM callbacks WHERE call_id = ?1")
        .ok()?;
    let callbacks = st
        .query_map([id], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .ok()?
        .collect::<Result<Vec<_>, _>>()
        .ok()?;
    Some(Record {
        outcome,
        mode,
        voice_message,
        callbacks,
    })
}

fn wait_for_record(agent: &Agent, secs: u64) -> Record {
    let mut rec = None;
    wait_until(Duration::from_secs(secs), || {
        rec = ended_record(&agent.db);
        rec.is_some()
    });
    rec.unwrap_or_else(|| {
        panic!(
            "the call did not end with a record; agent log:\n{}",
            agent.proc.log_text()
        )
    })
}

fn wav_seconds(path: &Path) -> f64 {
    let r = hound::WavReader::open(path).expect("voice message is a WAV file");
    r.duration() as f64 / f64::from(r.spec().sample_rate)
}

/// The emergency-mode record every test expects, with the message's length.
fn assert_emergency_record(rec: &Record, agent: &Agent, min_message_s: f64) {
    let log = agent.proc.log_text();
    assert_eq!(rec.mode, "emergency", "call mode; log:\n{log}");
    assert_eq!(rec.outcome, "callback_scheduled", "outcome; log:\n{log}");
    let msg = rec
        .voice_message
        .as_deref()
        .unwrap_or_else(|| panic!("no voice message recorded; log:\n{log}"));
    let msg = Path::new(msg);
    assert!(
        msg.starts_with(messages_dir(agent.config.parent().expect("config dir"))),
        "message under messages_dir: {}",
        msg.display()
    );
    let secs = wav_seconds(msg);
    assert!(
        secs >= min_message_s,
        "voice message is {secs:.1} s, expected at least {min_message_s} s; log:\n{log}"
    );
    assert_eq!(rec.callbacks.len(), 1, "one callback; log:\n{log}");
    let (target, status, due) = &rec.callbacks[0];
    assert_eq!(target, "1001", "callback dials the caller");
    assert_eq!(status, "pending");
    let due = chrono::DateTime::parse_from_rfc3339(due).expect("due_at is RFC 3339");
    let in_hours =
        (due.with_timezone(&chrono::Utc) - chrono::Utc::now()).num_minutes() as f64 / 60.0;
    assert!(
        (1.8..=2.0).contains(&in_hours),
        "callback due within the configured 2 hours, got {in_hours:.2} h"
    );
}

#[test]
fn asr_killed_mid_call_continues_in_emergency_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    // A short ASR timeout: a crashed worker is noticed after 2.5 s.
    let agent = start_agent(
        dir.path(),
        &kam,
        "asr_timeout_ms = 2500\n",
        &[("TINGSHUO_FAULT_ASR_CRASH_AFTER", "0")],
    );

    // Opening line (about 7 s), a question whose recognition kills the ASR worker,
    // the emergency greeting (about 12 s after a 2.5 s timeout), then the message.
    let mut caller = silence(8.0);
    caller.extend(say(
        dir.path(),
        "q",
        "我家里的宽带从昨天晚上开始就上不了网了。",
    ));
    let message = say(
        dir.path(),
        "msg",
        "我姓王，住在幸福小区三号楼，麻烦尽快帮我修一下网络。",
    );
    place(&mut caller, 32.0, &message);
    caller.extend(silence(25.0));

    let phone = Baresip::start("1001", kam.port, "auto", &caller);
    phone.dial("bot");
    let dialled = Instant::now();

    let flagged = wait_until(Duration::from_secs(40), || {
        emergency_flag(agent.console_port) == Some(1.0)
    });
    let flag_at = dialled.elapsed();
    let rec = wait_for_record(&agent, 90);
    let log = agent.proc.log_text();
    assert!(
        flagged,
        "/metrics showed tingshuo_emergency_mode 1 during the call; log:\n{log}"
    );
    assert!(
        log.contains("crashing this ASR worker")
            && log.contains("switching the call to emergency mode"),
        "the worker crashed and the call switched; log:\n{log}"
    );
    assert_emergency_record(&rec, &agent, 2.0);
    for line in log.lines().filter(|l| {
        l.contains("emergency") || l.contains("ASR worker") || l.contains("caller said")
    }) {
        eprintln!("{line}");
    }
    eprintln!(
        "emergency flag on /metrics {:.1} s after dialling",
        flag_at.as_secs_f64()
    );
    let back_to_normal = wait_until(Duration::from_secs(10), || {
        emergency_flag(agent.console_port) == Some(0.0)
    });
    assert!(
        back_to_normal,
        "the flag clears when the emergency call ends"
    );

    // The caller heard the emergency greeting (transcribed with our own ASR, which
    // runs in this separate process without the fault).
    phone.ctrl("hangup", "");
    std::thread::sleep(Duration::from_secs(1));
    let (heard, _) = phone.dumps();
    let heard = heard.expect("baresip wrote what it heard");
    let transcript = transcribe(&heard);
    let covered = bigram_coverage(
        "当前为应急服务时段请在提示音后留下您的姓名和需求",
        &transcript,
    );
    assert!(
        covered >= 0.3,
        "emergency greeting heard by the caller ({:.0} % of its bigrams): {transcript}",
        covered * 100.0
    );
}

#[test]
fn missing_whisper_model_starts_in_emergency_mode() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A model cache with everything but the Whisper model (and an empty phrase cache,
    // so the emergency lines are synthesized by the TTS loaded on its own).
    let real = std::env::var_os("TINGSHUO_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME")).join(".cache/tingshuo")
        });
    let cache = dir.path().join("cache");
    std::fs::create_dir_all(&cache).expect("cache dir");
    for sub in ["onnxruntime", "tts", "vad", "pinyin"] {
        let src = real.join(sub);
        assert!(
            src.is_dir(),
            "{} is missing: run `tingshuo models fetch` first",
            src.display()
        );
        std::os::unix::fs::symlink(&src, cache.join(sub)).expect("symlink model dir");
    }
    assert!(!cache.join("whisper").exists());
    let kam = Kamailio::start();
    let agent = start_agent(
        dir.path(),
        &kam,
        &format!("[models]\ndir = \"{}\"\n", cache.display()),
        &[],
    );
    let log = agent.proc.log_text();
    assert!(
        log.contains("EMERGENCY MODE") && log.contains("models fetch"),
        "the start-up says loudly that it runs in emergency mode; log:\n{log}"
    );
    assert!(
        emergency_flag(agent.console_port) == Some(1.0),
        "emergency flag set from start-up"
    );

    let caller = caller_lines(
        dir.path(),
        &[(16.0, "你好，我的电话打不出去了，请回电给我。")],
        22.0,
    );
    let phone = Baresip::start("1001", kam.port, "auto", &caller);
    phone.dial("bot");
    let rec = wait_for_record(&agent, 90);
    assert_emergency_record(&rec, &agent, 2.0);
    phone.ctrl("hangup", "");
    std::thread::sleep(Duration::from_secs(1));
    let (heard, _) = phone.dumps();
    let heard = heard.expect("baresip wrote what it heard");
    let r = hound::WavReader::open(&heard).expect("heard wav");
    let loud = r
        .into_samples::<i16>()
        .filter_map(Result::ok)
        .filter(|s| s.unsigned_abs() > 2000)
        .count();
    assert!(
        loud > 8000 * 3,
        "the caller heard the emergency lines (only {loud} loud samples)"
    );
}

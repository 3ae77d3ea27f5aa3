//! The console in a real headless browser (Debian's Chromium driven by playwright-core):
//! log in, see the live call and its transcript stream, listen in (WebRTC stats: bytes
//! received and audio level > 0), take over with Chromium's fake microphone and check
//! that its audio reaches the call, hand back, hang up, open the history.
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install chromium`) and
//! `npm ci --prefix tests/browser`; it fails with that message when one is missing.
//! Screenshots go to a temporary directory, or to `docs/` with
//! `TINGSHUO_UPDATE_SCREENSHOTS=1`.

#[path = "console_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tingshuo::console::{AuthPolicy, CallEnd, CallInfo, OperatorAction, Speaker, TranscriptLine};

const CALLER: &str = "13912345678";

fn prerequisites(root: &Path) -> Result<PathBuf, String> {
    let chromium = std::env::var_os("CHROMIUM")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/bin/chromium"));
    let node = std::process::Command::new("node").arg("--version").output();
    if !matches!(node, Ok(ref o) if o.status.success()) {
        return Err("`node` is not installed: apt-get install -y nodejs npm".into());
    }
    if !chromium.exists() {
        return Err(format!(
            "{} is missing: apt-get install -y chromium (or set CHROMIUM to its path)",
            chromium.display()
        ));
    }
    if !root
        .join("tests/browser/node_modules/playwright-core")
        .is_dir()
    {
        return Err("playwright-core is not installed: run `npm ci --prefix tests/browser`".into());
    }
    Ok(chromium)
}

fn write_recording(path: &Path) {
    let spec = hound::WavSpec {
        channels: 2,
        sample_rate: 8000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("wav");
    let (mut a, mut b) = (0.0, 0.0);
    for i in 0..150 {
        let left = tone_frame(&mut a, 440.0, if i % 50 < 25 { 6000.0 } else { 0.0 });
        let right = tone_frame(&mut b, 660.0, if i % 50 >= 25 { 6000.0 } else { 0.0 });
        for (l, r) in left.iter().zip(right.iter()) {
            w.write_sample(*l).expect("l");
            w.write_sample(*r).expect("r");
        }
    }
    w.finalize().expect("finalize");
}

/// A finished call in history, as the call layer would leave it.
fn finished_call(tc: &TestConsole) {
    let wav = tc.dir.path().join("done.wav");
    write_recording(&wav);
    let (p, _c) = tc.hub.start_call(CallInfo {
        id: "call-0917-a".into(),
        caller: "13700001111".into(),
        script: "燃气安全检查预约".into(),
        started_at: chrono::Utc::now() - chrono::Duration::minutes(12),
    });
    for (speaker, text, intent, field) in [
        (
            Speaker::Agent,
            "您好，这里是燃气公司，想和您约一下上门安检的时间。",
            None,
            None,
        ),
        (
            Speaker::Caller,
            "好的，周五上午可以吗？",
            Some("propose_time"),
            Some(("visit_day", "周五上午")),
        ),
        (
            Speaker::Agent,
            "可以，周五上午九点到十二点之间师傅上门，请问您的地址是？",
            None,
            None,
        ),
        (
            Speaker::Caller,
            "幸福路十八号三单元四零二。",
            Some("give_address"),
            Some(("address", "幸福路十八号三单元四零二")),
        ),
        (
            Speaker::Agent,
            "好的，已为您登记，感谢接听，再见。",
            None,
            None,
        ),
    ] {
        let mut line = TranscriptLine::new(speaker, text);
        if let Some(i) = intent {
            line = line.with_intent(i);
        }
        if let Some((k, v)) = field {
            line = line.with_field(k, v);
        }
        p.transcript(line);
    }
    for ms in [540, 610, 1180] {
        p.turn_latency(Duration::from_millis(ms));
    }
    let fields: BTreeMap<String, String> = [
        ("visit_day", "周五上午"),
        ("address", "幸福路十八号三单元四零二"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    p.end(CallEnd {
        outcome: "completed".into(),
        fields,
        recording: Some(wav),
    });
}

/// Caller lines the call layer publishes while the operator watches.
async fn speak_more(lines: tokio::sync::mpsc::UnboundedSender<TranscriptLine>) {
    for text in [
        "对了，我家厨房的热水器也想顺便看一下。",
        "师傅大概几点能到？",
        "好的，我会提前把门口的东西挪开。",
    ] {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if lines
            .send(TranscriptLine::new(Speaker::Caller, text).with_intent("question"))
            .is_err()
        {
            return;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_console_in_headless_chromium() {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = prerequisites(&root).unwrap_or_else(|e| panic!("browser test cannot run: {e}"));
    let shots = if std::env::var_os("TINGSHUO_UPDATE_SCREENSHOTS").is_some() {
        root.join("docs")
    } else {
        std::env::temp_dir().join("tingshuo-console-screenshots")
    };
    std::fs::create_dir_all(&shots).expect("screenshot dir");

    let tc = TestConsole::start(AuthPolicy::default()).await;
    finished_call(&tc);
    let mut call = start_synthetic_call(&tc.hub, "call-0931-b", true);
    tc.hub.metrics().call_answered();

    // The call layer's side while the browser works: three more caller lines once an
    // operator listens, the operator actions, and the operator's audio while taken over.
    let lines = call.lines.clone();
    let call_side = tokio::spawn(async move {
        let mut actions = Vec::new();
        let mut loud_frames = 0usize;
        let mut taken_over = false;
        loop {
            tokio::select! {
                a = call.control.actions.recv() => {
                    let Some(a) = a else { break };
                    actions.push(a.clone());
                    match a {
                        OperatorAction::TakeOver { operator } => {
                            taken_over = true;
                            let _ = lines.send(TranscriptLine::new(Speaker::Operator, format!("（{operator} 已接管通话）您好，我是人工客服。")));
                        }
                        OperatorAction::HandBack { .. } => taken_over = false,
                        OperatorAction::HangUp { .. } => break,
                        OperatorAction::Listen { .. } if actions.len() == 1 => {
                            tokio::spawn(speak_more(lines.clone()));
                        }
                        OperatorAction::Listen { .. } => {}
                    }
                }
                Some(frame) = call.control.operator_audio.recv() => {
                    let energy = (frame.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 160.0).sqrt();
                    if taken_over && energy > 500.0 {
                        loud_frames += 1;
                    }
                }
            }
        }
        call.end(CallEnd {
            outcome: "hung_up_by_operator".into(),
            ..CallEnd::default()
        })
        .await;
        (actions, loud_frames)
    });

    let mut cmd = tokio::process::Command::new("node");
    cmd.arg(root.join("tests/browser/console.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("CONSOLE_URL", format!("http://{}", tc.addr))
        .env("CONSOLE_USER", OPERATOR)
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("CALLER", CALLER)
        .env("CHROMIUM", &chromium)
        .env("SCREENSHOT_DIR", &shots)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let out = tokio::time::timeout(Duration::from_secs(90), cmd.output())
        .await
        .expect("browser test finishes within 90 s")
        .expect("node runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result line from node:\n{stdout}\n{stderr}"));
    eprintln!("browser result: {result}");
    assert!(
        out.status.success() && result["ok"] == true,
        "browser test failed: {result}"
    );
    assert!(result["listen"]["bytesReceived"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(result["listen"]["audioLevel"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(result["listen"]["codec"], "audio/PCMU");
    assert_eq!(result["recording_ok"], true);

    let (actions, loud_frames) = tokio::time::timeout(Duration::from_secs(10), call_side)
        .await
        .expect("call side ends after hang-up")
        .expect("call side task");
    let kinds: Vec<&str> = actions
        .iter()
        .map(|a| match a {
            OperatorAction::Listen { .. } => "listen",
            OperatorAction::TakeOver { .. } => "take_over",
            OperatorAction::HandBack { .. } => "hand_back",
            OperatorAction::HangUp { .. } => "hang_up",
        })
        .collect();
    assert_eq!(
        kinds,
        ["listen", "take_over", "hand_back", "listen", "hang_up"]
    );
    assert!(
        loud_frames >= 5,
        "the fake microphone's beeps reach the call while taken over ({loud_frames} loud frames)"
    );
    eprintln!("operator audio frames with sound while taken over: {loud_frames}");
    let audit = std::fs::read_to_string(tc.audit_path()).expect("audit");
    for action in [
        "login",
        "listen",
        "take_over",
        "hand_back",
        "hang_up",
        "recording",
    ] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{action} missing in {audit}"
        );
    }
    tc.server.shutdown().await;
}

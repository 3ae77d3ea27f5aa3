//! The console in a real headless browser (Debian's Chromium driven by playwright-core):
//! log in, see the live call and its transcript stream, listen in (WebRTC stats: bytes
//! received and audio level > 0), take over with Chromium's fake microphone and check
//! that its audio reaches the call, hand back, hang up, open the history.
//!
//! Two calls: a synthetic one published straight into the hub (fast; screenshots, the
//! history with a recording, the server's CPU per listener), and a real phone call that
//! baresip places through Kamailio to `tingshuo serve` (the operator's beeps must reach
//! baresip's ear, hang-up must BYE the phone and end the record; it also times
//! listen-in latency from the phone line to the page). The two share one browser at a
//! time.
//!
//! Needs `node`, `/usr/bin/chromium` (`apt-get install chromium`) and
//! `npm ci --prefix tests/browser`; it fails with that message when one is missing.
//! The phone call also needs kamailio, baresip and the speech models.
//! Screenshots go to a temporary directory, or to `docs/` with
//! `TINGSHUO_UPDATE_SCREENSHOTS=1`.

#[path = "console_common/mod.rs"]
mod common;
mod support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::*;
use tingshuo::console::{AuthPolicy, CallEnd, CallInfo, OperatorAction, Speaker, TranscriptLine};

const CALLER: &str = "13912345678";

/// One Chromium at a time: the two tests would otherwise fight over 2 CI cores.
static BROWSER: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// CPU seconds this process has used (all threads; microsecond resolution).
fn self_cpu_s() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we own.
    let mut u: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut u) };
    let tv = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    tv(u.ru_utime) + tv(u.ru_stime)
}

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
    let _one_browser = BROWSER.lock().await;
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
                        OperatorAction::Listen { .. } | OperatorAction::Transfer { .. } => {}
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

    // This process's CPU (console server + synthetic call), sampled every 100 ms.
    let cpu = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(f64, f64)>::new()));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (cpu, sampling) = (cpu.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                cpu.lock().expect("cpu").push((epoch_ms(), self_cpu_s()));
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

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
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    assert!(
        out.status.success() && result["ok"] == true,
        "browser test failed: {result}"
    );
    let samples = cpu.lock().expect("cpu").clone();
    let window = |k: &str| {
        let w = &result[k];
        cpu_share(
            &samples,
            w[0].as_f64().unwrap_or(0.0),
            w[1].as_f64().unwrap_or(0.0),
        )
    };
    eprintln!(
        "console server CPU (share of a core): page open, nobody listening {:?}; \
         one Chromium listening {:?}",
        window("idle_window"),
        window("listen_window")
    );
    assert!(result["listen"]["bytesReceived"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(result["listen"]["audioLevel"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(result["listen"]["codec"], "audio/PCMU");
    assert_eq!(result["recording_ok"], true);
    let played = result["recording_duration"].as_f64().unwrap_or(0.0);
    assert!(
        (played - 3.0).abs() < 0.05,
        "the history player loads the 3 s recording (duration {played})"
    );

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
            OperatorAction::Transfer { .. } => "transfer",
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

// ---------------------------------------------------------------------------------
// A real phone call: baresip (the caller) → Kamailio → `tingshuo serve`, supervised
// from Chromium through the agent's own console.
// ---------------------------------------------------------------------------------

/// The caller's tone bursts (listen-in timing) and the operator's beeps (take-over).
const BURST_HZ: f64 = 2000.0;
const OPERATOR_HZ: f64 = 1300.0;

fn epoch_ms() -> f64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or(0.0)
}

/// Share of a block's energy at `hz` (Goertzel), and the block's mean power.
fn tone_share(x: &[i16], hz: f64, rate: f64) -> (f64, f64) {
    let coeff = 2.0 * (2.0 * std::f64::consts::PI * hz / rate).cos();
    let (mut s1, mut s2, mut energy) = (0.0f64, 0.0f64, 0.0f64);
    for &v in x {
        let v = v as f64;
        let s0 = v + coeff * s1 - s2;
        s2 = s1;
        s1 = s0;
        energy += v * v;
    }
    let tone = (s1 * s1 + s2 * s2 - coeff * s1 * s2) * 2.0 / x.len() as f64;
    (tone / energy.max(1.0), energy / x.len() as f64)
}

use support::say;

/// The caller's side: four utterances, and between them a 200 ms tone burst every
/// 2 s. Returns the samples and the bursts' offsets (seconds from the start).
fn caller_audio(dir: &Path) -> (Vec<i16>, Vec<f64>) {
    let total = 100.0;
    let mut pcm = vec![0i16; (total * 8000.0) as usize];
    let mut speech = Vec::new();
    for (at, name, text) in [
        (9.0, "a", "我家的宽带从早上开始就连不上了。"),
        (30.0, "b", "网速也特别慢，是线路出了问题吗？"),
        (55.0, "c", "好的，那我再重启一下试试。"),
        (80.0, "d", "还有别的办法吗？"),
    ] {
        let s = say(dir, name, text);
        let start = (at * 8000.0) as usize;
        for (d, v) in pcm[start..].iter_mut().zip(s.iter()) {
            *d = *v;
        }
        speech.push((at, at + s.len() as f64 / 8000.0));
    }
    let mut bursts = Vec::new();
    let mut at = 4.0;
    while at + 0.2 < total {
        let clear = speech
            .iter()
            .all(|&(a, b)| at + 0.2 < a - 0.6 || at > b + 0.6);
        if clear {
            let start = (at * 8000.0) as usize;
            for (i, d) in pcm[start..start + 1600].iter_mut().enumerate() {
                let t = i as f64 / 8000.0;
                *d = (9000.0 * (2.0 * std::f64::consts::PI * BURST_HZ * t).sin()) as i16;
            }
            bursts.push(at);
        }
        at += 2.0;
    }
    (pcm, bursts)
}

/// The operator's fake microphone: 250 ms beeps with 250 ms pauses (a steady tone
/// would be taken for noise by Chromium's noise suppression).
fn operator_wav(path: &Path) {
    let spec = hound::WavSpec {
        channels: 1,
        sample_rate: 48000,
        bits_per_sample: 16,
        sample_format: hound::SampleFormat::Int,
    };
    let mut w = hound::WavWriter::create(path, spec).expect("operator wav");
    for i in 0..96000 {
        let t = i as f64 / 48000.0;
        let on = (t * 2.0).fract() < 0.5;
        let v = if on {
            12000.0 * (2.0 * std::f64::consts::PI * OPERATOR_HZ * t).sin()
        } else {
            0.0
        };
        w.write_sample(v as i16).expect("sample");
    }
    w.finalize().expect("finalize");
}

/// One persistent ctrl_tcp connection to baresip: commands go out on it and every
/// event comes back on it, stamped with the wall clock when it arrived. (baresip keeps
/// one ctrl connection: a second one would replace this one.)
struct PhoneCtrl {
    stream: std::net::TcpStream,
    events: std::sync::Arc<std::sync::Mutex<Vec<(f64, serde_json::Value)>>>,
}

impl PhoneCtrl {
    fn connect(port: u16) -> Self {
        use std::io::Read;
        let stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("baresip ctrl_tcp");
        let mut reader = stream.try_clone().expect("clone");
        let events = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let sink = events.clone();
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            let mut chunk = [0u8; 4096];
            while let Ok(n) = reader.read(&mut chunk) {
                if n == 0 {
                    return;
                }
                let now = epoch_ms();
                buf.extend_from_slice(&chunk[..n]);
                // Netstrings: "<len>:<json>,".
                while let Some(colon) = buf.iter().position(|&b| b == b':') {
                    let Some(len) = std::str::from_utf8(&buf[..colon])
                        .ok()
                        .and_then(|s| s.parse::<usize>().ok())
                    else {
                        buf.clear();
                        break;
                    };
                    if buf.len() < colon + 2 + len {
                        break;
                    }
                    if let Ok(v) = serde_json::from_slice(&buf[colon + 1..colon + 1 + len]) {
                        sink.lock().expect("events").push((now, v));
                    }
                    buf.drain(..colon + 2 + len);
                }
            }
        });
        Self { stream, events }
    }

    fn send(&mut self, command: &str, params: &str) {
        use std::io::Write;
        let json = serde_json::json!({ "command": command, "params": params, "token": command })
            .to_string();
        self.stream
            .write_all(format!("{}:{},", json.len(), json).as_bytes())
            .expect("ctrl_tcp write");
    }

    /// Wall time of the first event of `kind` (e.g. `CALL_ESTABLISHED`), waiting up to `timeout`.
    fn wait_event(&self, kind: &str, timeout: Duration) -> Option<f64> {
        let end = std::time::Instant::now() + timeout;
        while std::time::Instant::now() < end {
            if let Some((t, _)) = self
                .events
                .lock()
                .expect("events")
                .iter()
                .find(|(_, e)| e["type"] == kind)
            {
                return Some(*t);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    fn dump(&self) -> String {
        self.events
            .lock()
            .expect("events")
            .iter()
            .map(|(t, e)| format!("{t:.0} {e}\n"))
            .collect()
    }
}

/// CPU seconds a process has used (utime + stime from /proc; 10 ms resolution).
fn process_cpu_s(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(") ")?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = f.get(11)?.parse::<f64>().ok()? + f.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some(ticks / hz.max(1.0))
}

/// CPU used between two wall times, from (wall ms, cpu s) samples, as a share of a core.
fn cpu_share(samples: &[(f64, f64)], from: f64, to: f64) -> Option<f64> {
    let a = samples.iter().find(|(t, _)| *t >= from)?;
    let b = samples.iter().rev().find(|(t, _)| *t <= to)?;
    (b.0 > a.0 + 500.0).then(|| (b.1 - a.1) / ((b.0 - a.0) / 1000.0))
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

#[test]
fn phone_call_supervised_in_headless_chromium() {
    let _one_browser = BROWSER.blocking_lock();
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let chromium = prerequisites(&root).unwrap_or_else(|e| panic!("browser test cannot run: {e}"));
    let dir = tempfile::tempdir().expect("tempdir");
    let d = dir.path();

    // The agent with its console, and an operator account beside its config.
    let kam = support::Kamailio::start();
    let setup = support::AgentSetup::new(d).registrar(&kam);
    let written = setup.write();
    let (config, console_port) = (written.path.clone(), written.console_port);
    written.add_operator(OPERATOR, PASSWORD);
    let (callee, bursts) = caller_audio(d);
    let op_wav = d.join("operator.wav");
    operator_wav(&op_wav);

    let agent = setup.start_with(written);
    let agent_pid = agent.pid();

    // The agent's CPU, sampled every 200 ms for the whole call.
    let cpu = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(f64, f64)>::new()));
    let sampling = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let sampler = {
        let (cpu, sampling) = (cpu.clone(), sampling.clone());
        std::thread::spawn(move || {
            while sampling.load(std::sync::atomic::Ordering::Relaxed) {
                if let Some(c) = process_cpu_s(agent_pid) {
                    cpu.lock().expect("cpu").push((epoch_ms(), c));
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };

    let phone = support::Baresip::start("1001", kam.port, "auto", &callee);
    let mut ctrl = PhoneCtrl::connect(phone.ctrl_port);
    ctrl.send("dial", "bot");
    let established = ctrl
        .wait_event("CALL_ESTABLISHED", Duration::from_secs(20))
        .unwrap_or_else(|| {
            panic!(
                "the call was not established; baresip events:\n{}\nagent log:\n{}",
                ctrl.dump(),
                agent.log_text()
            )
        });

    let mut node = std::process::Command::new("node")
        .arg(root.join("tests/browser/phone_call.mjs"))
        .current_dir(root.join("tests/browser"))
        .env("CONSOLE_URL", format!("http://127.0.0.1:{console_port}"))
        .env("CONSOLE_USER", OPERATOR)
        .env("CONSOLE_PASSWORD", PASSWORD)
        .env("OPERATOR_WAV", &op_wav)
        .env("BURST_HZ", BURST_HZ.to_string())
        .env("CHROMIUM", &chromium)
        .envs(
            std::env::var_os("TINGSHUO_UPDATE_SCREENSHOTS")
                .map(|_| ("SCREENSHOT_DIR", root.join("docs"))),
        )
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("node runs");
    let out = {
        use std::io::Read;
        let (mut so, mut se) = (
            node.stdout.take().expect("stdout"),
            node.stderr.take().expect("stderr"),
        );
        let so = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = so.read_to_end(&mut b);
            b
        });
        let se = std::thread::spawn(move || {
            let mut b = Vec::new();
            let _ = se.read_to_end(&mut b);
            b
        });
        let finished = support::wait_until(Duration::from_secs(180), || {
            matches!(node.try_wait(), Ok(Some(_)))
        });
        if !finished {
            let _ = node.kill();
        }
        std::process::Output {
            status: node.wait().expect("node status"),
            stdout: so.join().unwrap_or_default(),
            stderr: se.join().unwrap_or_default(),
        }
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stderr}");
    let result: serde_json::Value = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok())
        .unwrap_or_else(|| panic!("no result line from node:\n{stdout}\n{stderr}"));
    assert!(
        out.status.success() && result["ok"] == true,
        "browser test failed: {result}\nbaresip events:\n{}\nagent log:\n{}",
        ctrl.dump(),
        agent.log_text()
    );
    let listen = &result["listen"];
    assert!(listen["bytesReceived"].as_f64().unwrap_or(0.0) > 0.0);
    assert!(listen["audioLevel"].as_f64().unwrap_or(0.0) > 0.0);
    assert_eq!(listen["codec"], "audio/PCMU");
    assert!(
        result["transcript_lines"].as_u64().unwrap_or(0)
            >= result["transcript_before"].as_u64().unwrap_or(u64::MAX) + 2,
        "transcript lines streamed in: {result}"
    );

    // The agent hung up on the operator's request: baresip got the BYE ...
    let closed = ctrl
        .wait_event("CALL_CLOSED", Duration::from_secs(15))
        .unwrap_or_else(|| panic!("baresip saw no BYE; events:\n{}", ctrl.dump()));
    let hangup_at = result["hangup_at"].as_f64().unwrap_or(f64::MAX);
    // `hangup_at` is stamped once Playwright's click on Hang up has returned, and
    // the BYE can reach baresip before that: allow it to come a little earlier.
    assert!(
        closed >= hangup_at - 1000.0 && closed < hangup_at + 5000.0,
        "the call closed {:.0} ms after the console's hang-up; events:\n{}",
        closed - hangup_at,
        ctrl.dump()
    );
    assert!(
        agent.log_text().contains("operator hung up the call"),
        "the agent logs the operator's hang-up:\n{}",
        agent.log_text()
    );
    sampling.store(false, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.join();
    // ... and the record shows the call ended.
    let list = support::records(&config, &["list"]);
    let call = &list[0];
    assert!(
        !call["outcome"].is_null() && !call["ended_at"].is_null(),
        "the record shows the ended call: {list}"
    );
    assert_eq!(
        result["history"]["outcome"].as_str(),
        call["outcome"].as_str(),
        "history page shows the stored outcome"
    );

    // Who listened to, took over and hung up the call: the audit log beside the config.
    let audit = std::fs::read_to_string(d.join("console-audit.log")).expect("audit log");
    let call_id = call["id"].to_string();
    for action in ["login", "listen", "take_over", "hand_back", "hang_up"] {
        assert!(
            audit.lines().any(|l| {
                let e: serde_json::Value = serde_json::from_str(l).unwrap_or_default();
                e["action"] == action
                    && e["operator"] == OPERATOR
                    && (action == "login" || e["call_id"].as_str() == Some(call_id.as_str()))
            }),
            "{action} of call {call_id} by {OPERATOR} in the audit log:\n{audit}"
        );
    }

    // What baresip heard: the operator's beeps, inside the take-over window only.
    let (heard, _) = phone.dumps();
    let heard = heard.expect("baresip wrote what it heard");
    let pcm: Vec<i16> = hound::WavReader::open(&heard)
        .expect("heard wav")
        .into_samples::<i16>()
        .map(|s| s.expect("sample"))
        .collect();
    let t_on = result["takeover_started_at"].as_f64().unwrap_or(0.0) - established;
    let t_off = result["takeover_ended_at"].as_f64().unwrap_or(0.0) - established;
    let mut inside = 0usize;
    let mut outside = Vec::new();
    for (i, frame) in pcm.chunks_exact(160).enumerate() {
        let (share, power) = tone_share(frame, OPERATOR_HZ, 8000.0);
        if share > 0.5 && power > 300.0 * 300.0 {
            let at_ms = i as f64 * 20.0;
            // The take-over opens a moment before the browser sees it connected.
            if at_ms > t_on - 1500.0 && at_ms < t_off + 1000.0 {
                inside += 1;
            } else {
                outside.push(at_ms);
            }
        }
    }
    eprintln!(
        "caller heard {inside} frames of operator beeps in the take-over window \
         ({:.1}..{:.1} s), {} outside",
        t_on / 1000.0,
        t_off / 1000.0,
        outside.len()
    );
    assert!(
        inside >= 25,
        "the operator's beeps reached the caller during the take-over ({inside} frames): {result}"
    );
    assert!(
        outside.len() <= 5,
        "operator beeps heard outside the take-over window at {outside:?} ms"
    );

    // Listen-in latency: each burst's onset in the page minus when baresip sent it.
    let mut latencies = Vec::new();
    for w in result["bursts"].as_array().into_iter().flatten() {
        let Some(w) = w.as_f64() else { continue };
        let offset = w - established;
        if let Some(sent) = bursts
            .iter()
            .map(|b| b * 1000.0)
            .rfind(|&b| b <= offset && offset - b < 1000.0)
        {
            latencies.push(offset - sent);
        }
    }
    if latencies.is_empty() {
        eprintln!("no caller burst was timed in the page: {result}");
    } else {
        eprintln!(
            "listen-in latency, phone line (baresip sends) -> played in the page: \
             n={} min {:.0} ms, median {:.0} ms, max {:.0} ms (Chromium jitter buffer {:.0} ms)",
            latencies.len(),
            latencies.iter().cloned().fold(f64::INFINITY, f64::min),
            median(latencies.clone()),
            latencies.iter().cloned().fold(0.0, f64::max),
            result["listen"]["jitterBufferDelayMsAfter"]
                .as_f64()
                .unwrap_or(f64::NAN),
        );
    }
    let samples = cpu.lock().expect("cpu").clone();
    let l0 = result["listen_started_at"].as_f64().unwrap_or(0.0);
    let l1 = result["listen_ended_at"].as_f64().unwrap_or(0.0);
    eprintln!(
        "agent CPU (share of a core): before listening {:?}, listening {:?}",
        cpu_share(&samples, established, l0),
        cpu_share(&samples, l0 + 1000.0, l1)
    );
    drop(phone);
    drop(agent);
}

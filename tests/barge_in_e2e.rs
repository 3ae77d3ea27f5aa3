//! Barge-in measured on the wire. The agent (`tingshuo serve`, direct mode, call
//! recording on) is called by the project's own SIP stack; the media peer is a raw RTP
//! socket, so every time below is a packet's send or arrival time, with no jitter buffer
//! or playout on the caller's side:
//!
//! * **reference**: the caller stays silent; the agent's long opening line plays whole;
//! * **echo**: the peer sends the agent's own audio back (120 ms late, −6 dB): the line
//!   must play exactly as long as in the reference (no barge-in);
//! * **barge-in** (several calls): 1 s into the opening line the caller starts talking
//!   (our TTS). From the first voiced caller packet *sent* to the first agent packet
//!   *received* after which the agent stays silent must be ≤ 150 ms.
//!
//! The first barge-in call's stereo recording is checked too: 2 channels at 8 kHz, the
//! agent's opening on the right, the caller's words on the left.

mod support;

use std::collections::VecDeque;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use support::*;
use tingshuo::codec::G711;
use tingshuo::sip::{self, CallEvent, Codec, LocalMedia, SipEvent, UaConfig};

/// A caller packet is voiced above this RMS (about −40 dBFS).
const VOICED_RMS: f64 = 330.0;
/// An agent packet carries speech above this RMS (about −36 dBFS).
const SPEECH_RMS: f64 = 500.0;
/// Below this the agent is silent (it sends digital silence after a flush).
const QUIET_RMS: f64 = 100.0;
/// Silent packets in a row that mean "stopped", longer than any pause inside a line.
const STOPPED_PACKETS: usize = 30;
/// The issue's budget from the caller's speech onset to silence on the wire.
const BUDGET_MS: f64 = 150.0;
const BARGE_RUNS: usize = 5;

/// Our own script (not the demo's): a long, interruptible opening line.
const SCRIPT: &str = r#"# 晨光物业报修热线（呼入）

## 客服坐席（AI接听）

#### 角色
晨光物业的智能客服，负责登记业主的报修。

#### 分步流程和话术

**第1步：询问报修内容**
- "请问需要报修的是水电、门窗还是公共设施？"

**第2步：结束致谢**
- "好的，已经为您登记，维修师傅会尽快联系您。"

#### 开场白
"您好，这里是晨光物业报修热线，请您讲清楚楼栋号、房间号，还有需要维修的具体位置。"

#### 结束
**结束条件：** 已登记报修
**结束语：** "感谢您的来电，再见。"
"#;

fn say(dir: &Path, text: &str) -> Vec<i16> {
    support::say(dir, "caller", text)
}

fn rms(x: &[i16]) -> f64 {
    if x.is_empty() {
        return 0.0;
    }
    (x.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / x.len() as f64).sqrt()
}

/// A script whose first line is a legal notice marked non-interruptible (the opening
/// is that same line, so the notice opens the call).
const NOTICE_SCRIPT: &str = r#"# 晨光物业满意度回访（呼出）

## 客服坐席（AI外呼）

#### 角色
晨光物业的回访专员。

#### 分步流程和话术

**第1步：录音告知（不可打断）**
- "温馨提示，本次通话将全程录音，录音仅用于核实服务质量，我们会严格保护您的个人信息，不会用于其他用途。"

**第2步：满意度**
- "请问您对上周的维修服务满意吗？"

#### 开场白
"温馨提示，本次通话将全程录音，录音仅用于核实服务质量，我们会严格保护您的个人信息，不会用于其他用途。"

#### 结束
**结束条件：** 回访完成
**结束语：** "感谢您的配合，再见。"
"#;

/// The agent in direct mode on `script_text`, recording its calls' audio.
fn start_agent(dir: &Path, script_text: &str) -> Agent {
    let script = dir.join("script.md");
    std::fs::write(&script, script_text).expect("write script");
    AgentSetup::new(dir)
        .toml(&format!(
            "[agent]\nscript = \"{}\"\nrecord_audio = true\n",
            script.display()
        ))
        .start()
}

/// What the raw RTP peer does.
#[derive(Clone)]
enum Mode {
    Silent,
    /// Returns the agent's audio `delay` frames late, scaled by `gain`.
    Echo {
        delay: usize,
        gain: f32,
    },
    /// Talks (`audio`) from the first loud agent packet ≥ 1 s into the agent's speech.
    Talk {
        audio: Arc<Vec<i16>>,
    },
    /// Talks (`audio`) once the agent's first line is over (1 s quiet after speech).
    Answer {
        audio: Arc<Vec<i16>>,
    },
}

#[derive(Default)]
struct Wire {
    /// Agent packets: arrival time and RMS.
    received: Vec<(Instant, f64)>,
    /// Caller packets: send time and RMS.
    sent: Vec<(Instant, f64)>,
}

/// A raw RTP peer: PCMU, 20 ms packets, paced by the clock; records every packet.
fn run_peer(
    sock: UdpSocket,
    remote: SocketAddr,
    mode: Mode,
    stop: Arc<AtomicBool>,
) -> Arc<Mutex<Wire>> {
    let wire = Arc::new(Mutex::new(Wire::default()));
    let (echo_tx, echo_rx) = crossbeam_channel::unbounded::<[i16; 160]>();
    let rx_sock = sock.try_clone().expect("clone socket");
    rx_sock
        .set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    {
        let wire = wire.clone();
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut buf = [0u8; 2048];
            while !stop.load(Ordering::Relaxed) {
                let Ok(n) = rx_sock.recv(&mut buf) else {
                    continue;
                };
                let at = Instant::now();
                if n < 12 || buf[0] >> 6 != 2 || buf[1] & 0x7f != 0 {
                    continue; // not PCMU RTP (RTCP goes to the other port)
                }
                let header = 12 + 4 * usize::from(buf[0] & 0x0f);
                if n < header + 160 {
                    continue;
                }
                let mut pcm = [0i16; 160];
                G711::Pcmu.decode(&buf[header..header + 160], &mut pcm);
                wire.lock().unwrap().received.push((at, rms(&pcm)));
                let _ = echo_tx.send(pcm);
            }
        });
    }
    {
        let wire = wire.clone();
        std::thread::spawn(move || {
            let ssrc: u32 = 0x5eed_1234;
            let mut seq: u16 = 1;
            let mut ts: u32 = 0;
            let mut next = Instant::now();
            let mut delay_line: VecDeque<[i16; 160]> = VecDeque::new();
            let mut talk_pos: Option<usize> = None;
            let mut pkt = [0u8; 172];
            while !stop.load(Ordering::Relaxed) {
                let mut frame = [0i16; 160];
                match &mode {
                    Mode::Silent => {}
                    Mode::Echo { delay, gain } => {
                        while let Ok(f) = echo_rx.try_recv() {
                            delay_line.push_back(f);
                        }
                        if delay_line.len() > *delay {
                            if let Some(f) = delay_line.pop_front() {
                                for (o, s) in frame.iter_mut().zip(f) {
                                    *o = (f32::from(s) * gain) as i16;
                                }
                            }
                        }
                    }
                    Mode::Talk { audio } => {
                        if talk_pos.is_none() {
                            let w = wire.lock().unwrap();
                            let first = w.received.iter().find(|r| r.1 > SPEECH_RMS);
                            let last_loud = w.received.last().is_some_and(|r| r.1 > SPEECH_RMS);
                            if first.is_some_and(|f| f.0.elapsed() >= Duration::from_secs(1))
                                && last_loud
                            {
                                talk_pos = Some(0);
                            }
                        }
                        if let Some(p) = talk_pos.as_mut() {
                            if *p + 160 <= audio.len() {
                                frame.copy_from_slice(&audio[*p..*p + 160]);
                                *p += 160;
                            }
                        }
                    }
                    Mode::Answer { audio } => {
                        if talk_pos.is_none() {
                            let w = wire.lock().unwrap();
                            let spoke = w.received.iter().any(|r| r.1 > SPEECH_RMS);
                            let quiet = w.received.len() >= 50
                                && w.received[w.received.len() - 50..]
                                    .iter()
                                    .all(|r| r.1 < QUIET_RMS);
                            if spoke && quiet {
                                talk_pos = Some(0);
                            }
                        }
                        if let Some(p) = talk_pos.as_mut() {
                            if *p + 160 <= audio.len() {
                                frame.copy_from_slice(&audio[*p..*p + 160]);
                                *p += 160;
                            }
                        }
                    }
                }
                pkt[0] = 0x80;
                pkt[1] = 0;
                pkt[2..4].copy_from_slice(&seq.to_be_bytes());
                pkt[4..8].copy_from_slice(&ts.to_be_bytes());
                pkt[8..12].copy_from_slice(&ssrc.to_be_bytes());
                G711::Pcmu.encode(&frame, &mut pkt[12..]);
                let _ = sock.send_to(&pkt, remote);
                wire.lock()
                    .unwrap()
                    .sent
                    .push((Instant::now(), rms(&frame)));
                seq = seq.wrapping_add(1);
                ts = ts.wrapping_add(160);
                next += Duration::from_millis(20);
                if let Some(d) = next.checked_duration_since(Instant::now()) {
                    std::thread::sleep(d);
                }
            }
        });
    }
    wire
}

/// Places one call to the agent with a raw RTP peer in `mode`; hangs up after `hold`
/// (or once `done` says the call has what it needs). Returns the packet log.
fn call(
    rt: &tokio::runtime::Runtime,
    agent: SocketAddr,
    mode: Mode,
    hold: Duration,
    done: impl Fn(&Wire) -> bool,
) -> Wire {
    rt.block_on(async {
        // UDP and TCP share the port: retry when another process holds the TCP one.
        let mut ua = None;
        for _ in 0..10 {
            let local = SocketAddr::from(([127, 0, 0, 1], free_port()));
            if let Ok(h) = sip::driver::start_with(UaConfig::direct(local)).await {
                ua = Some(h);
                break;
            }
        }
        let mut ua = ua.expect("caller SIP stack starts");
        let (sock, local) = media_socket();
        let call_id = sip::new_call_id();
        ua.send(sip::Command::PlaceCall {
            call_id: call_id.clone(),
            target: format!("sip:bot@{agent}"),
            media: LocalMedia {
                rtp_addr: local,
                codecs: vec![Codec::Pcmu],
                telephone_event_pt: None,
            },
            ring_timeout: Duration::from_secs(10),
        })
        .expect("place call");
        let ev = wait_event(&mut ua, Duration::from_secs(20), "Answered", |e| {
            matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
        })
        .await;
        let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = ev else {
            unreachable!()
        };
        let remote = negotiated.remote.rtp_addr.expect("agent RTP address");
        let stop = Arc::new(AtomicBool::new(false));
        let wire = run_peer(sock, remote, mode, stop.clone());
        let end = Instant::now() + hold;
        while Instant::now() < end && !done(&wire.lock().unwrap()) {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        stop.store(true, Ordering::Relaxed);
        ua.send(sip::Command::Hangup {
            call_id: call_id.clone(),
        })
        .expect("hang up");
        wait_event(&mut ua, Duration::from_secs(10), "Ended", |e| {
            matches!(e, SipEvent::Call(CallEvent::Ended { .. }))
        })
        .await;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut w = wire.lock().unwrap();
        std::mem::take(&mut *w)
    })
}

/// First to last loud agent packet of the first utterance (ends at a ≥ 1.5 s silence).
fn first_line_span(w: &Wire) -> Option<(Instant, Instant)> {
    let first = w.received.iter().find(|r| r.1 > SPEECH_RMS)?.0;
    let mut last = first;
    for &(at, level) in &w.received {
        if at < first {
            continue;
        }
        if level > SPEECH_RMS {
            if at.duration_since(last) >= Duration::from_millis(1500) {
                break;
            }
            last = at;
        }
    }
    Some((first, last))
}

/// Milliseconds from the caller's first voiced packet sent to the first agent packet
/// received that begins a run of [`STOPPED_PACKETS`] silent ones.
fn stop_time_ms(w: &Wire) -> Result<f64, String> {
    let onset = w
        .sent
        .iter()
        .find(|s| s.1 > VOICED_RMS)
        .ok_or("the caller never spoke")?
        .0;
    let before: Vec<f64> = w
        .received
        .iter()
        .filter(|r| r.0 <= onset)
        .rev()
        .take(3)
        .map(|r| r.1)
        .collect();
    if !before.iter().any(|&l| l > SPEECH_RMS) {
        return Err(format!(
            "the agent was not speaking when the caller started (last levels {before:?})"
        ));
    }
    let after: Vec<&(Instant, f64)> = w.received.iter().filter(|r| r.0 > onset).collect();
    for i in 0..after.len() {
        let run = &after[i..(i + STOPPED_PACKETS).min(after.len())];
        if run.len() == STOPPED_PACKETS && run.iter().all(|r| r.1 < QUIET_RMS) {
            return Ok(after[i].0.duration_since(onset).as_secs_f64() * 1e3);
        }
    }
    Err("the agent never went silent after the caller started talking".into())
}

/// Max agent RMS per 200 ms, for failure messages.
fn timeline(w: &Wire) -> Vec<u32> {
    w.received
        .chunks(10)
        .map(|c| c.iter().map(|r| r.1).fold(0.0, f64::max) as u32)
        .collect()
}

fn barge_ins_logged(agent: &Agent) -> usize {
    agent.proc.log_text().matches("caller barged in").count()
}

/// Waits for call `id`'s recording path (written when the call thread finishes).
fn recording_of(config: &Path, id: i64) -> PathBuf {
    let mut path = None;
    wait_until(Duration::from_secs(10), || {
        let d = records(config, &["show", &id.to_string()]);
        path = d["recording"].as_str().map(PathBuf::from);
        path.is_some()
    });
    path.unwrap_or_else(|| {
        panic!(
            "call #{id} has no recording in its record: {}",
            records(config, &["show", &id.to_string()])
        )
    })
}

#[test]
fn barge_in_stops_the_agent_within_150_ms_and_its_own_echo_does_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let caller_audio = Arc::new(say(
        dir.path(),
        "喂，不好意思打断一下，我家厨房的水管漏水了。",
    ));
    let mut agent = start_agent(dir.path(), SCRIPT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    // Reference: a silent caller hears the whole opening line.
    let line_done = |w: &Wire| {
        first_line_span(w).is_some_and(|(_, last)| last.elapsed() > Duration::from_millis(1600))
    };
    let reference = call(
        &rt,
        agent.sip_addr(),
        Mode::Silent,
        Duration::from_secs(25),
        line_done,
    );
    let (r0, r1) = first_line_span(&reference).unwrap_or_else(|| {
        panic!(
            "the agent did not greet a silent caller; log:\n{}",
            agent.proc.log_text()
        )
    });
    let ref_ms = r1.duration_since(r0).as_secs_f64() * 1e3;
    assert!(
        ref_ms > 3000.0,
        "opening line too short to test: {ref_ms:.0} ms; timeline {:?}; log:\n{}",
        timeline(&reference),
        agent.proc.log_text()
    );

    // Echo: 120 ms late, −6 dB. Must not cut the line.
    let echo = call(
        &rt,
        agent.sip_addr(),
        Mode::Echo {
            delay: 6,
            gain: 0.5,
        },
        Duration::from_secs(25),
        line_done,
    );
    let (e0, e1) = first_line_span(&echo).expect("the agent greets the echoing caller");
    let echo_ms = e1.duration_since(e0).as_secs_f64() * 1e3;
    let loud = |w: &Wire, from: Instant| {
        let to = from + (r1 - r0);
        w.received
            .iter()
            .filter(|r| r.0 >= from && r.0 <= to && r.1 > SPEECH_RMS)
            .count()
    };
    let (ref_loud, echo_loud) = (loud(&reference, r0), loud(&echo, e0));
    let echoed = echo.sent.iter().filter(|s| s.1 > VOICED_RMS).count();
    let detail = || {
        format!(
            "with echo the opening lasted {echo_ms:.0} ms ({echo_loud} speech packets, \
             {echoed} echoed), without {ref_ms:.0} ms ({ref_loud}); timelines (max RMS per \
             200 ms):\nreference {:?}\necho {:?}\nlog:\n{}",
            timeline(&reference),
            timeline(&echo),
            agent.proc.log_text()
        )
    };
    assert!(
        echoed * 2 >= echo_loud,
        "the peer did not echo: {}",
        detail()
    );
    assert_eq!(
        barge_ins_logged(&agent),
        0,
        "echo caused a barge-in: {}",
        detail()
    );
    assert!(
        (echo_ms - ref_ms).abs() <= 200.0 && echo_loud * 100 >= ref_loud * 95,
        "echo changed the opening: {}",
        detail()
    );

    // Barge-in runs.
    let mut stops = Vec::new();
    let mut first_sent_voiced = 0;
    for run in 0..BARGE_RUNS {
        let audio = caller_audio.clone();
        let talked = move |w: &Wire| {
            w.sent
                .iter()
                .find(|s| s.1 > VOICED_RMS)
                .is_some_and(|s| s.0.elapsed() > Duration::from_millis(1500))
        };
        let w = call(
            &rt,
            agent.sip_addr(),
            Mode::Talk { audio },
            Duration::from_secs(25),
            talked,
        );
        let ms = stop_time_ms(&w)
            .unwrap_or_else(|e| panic!("run {run}: {e}; log:\n{}", agent.proc.log_text()));
        eprintln!("barge-in run {run}: agent silent {ms:.1} ms after the caller's onset");
        if run == 0 {
            first_sent_voiced = w.sent.iter().filter(|s| s.1 > VOICED_RMS).count();
        }
        stops.push(ms);
    }
    let mut sorted = stops.clone();
    sorted.sort_by(f64::total_cmp);
    eprintln!(
        "barge-in stop over {} runs: median {:.1} ms, max {:.1} ms (reference line {ref_ms:.0} ms, with echo {echo_ms:.0} ms)",
        sorted.len(),
        sorted[sorted.len() / 2],
        sorted[sorted.len() - 1]
    );
    assert_eq!(barge_ins_logged(&agent), BARGE_RUNS);
    assert!(
        sorted.iter().all(|&ms| ms <= BUDGET_MS),
        "barge-in stop times {stops:?} ms exceed {BUDGET_MS} ms"
    );

    // Recording of the first barge-in call (#3: reference #1, echo #2).
    let recorded: Vec<String> = agent
        .proc
        .log_text()
        .lines()
        .filter(|l| l.contains("record"))
        .map(str::to_string)
        .collect();
    eprintln!("agent log about recordings:\n{}", recorded.join("\n"));
    let path = recording_of(&agent.config, 3);
    // The record remembers which line the caller cut off, and only that one.
    let detail = records(&agent.config, &["show", "3"]);
    let cut: Vec<&str> = detail["turns"]
        .as_array()
        .expect("turns")
        .iter()
        .filter(|t| t["interrupted"] == true)
        .filter_map(|t| t["text"].as_str())
        .collect();
    assert_eq!(cut.len(), 1, "one interrupted line expected: {detail}");
    assert!(cut[0].contains("晨光物业"), "the opening was cut: {cut:?}");
    let reference_turns = records(&agent.config, &["show", "1"]);
    assert!(
        reference_turns["turns"]
            .as_array()
            .expect("turns")
            .iter()
            .all(|t| t["interrupted"] == false),
        "nothing was interrupted in the silent call: {reference_turns}"
    );
    let mut wav = hound::WavReader::open(&path).expect("recording is a WAV");
    let spec = wav.spec();
    assert_eq!(
        (spec.channels, spec.sample_rate, spec.bits_per_sample),
        (2, 8000, 16)
    );
    let s: Vec<i16> = wav.samples::<i16>().map(|s| s.expect("sample")).collect();
    let caller: Vec<i16> = s.iter().step_by(2).copied().collect();
    let agent_ch: Vec<i16> = s.iter().skip(1).step_by(2).copied().collect();
    assert!(
        caller.len() > 8000 * 2,
        "recording too short: {} samples",
        caller.len()
    );
    // The opening plays from the start; the caller is silent for its first second.
    let first_sec = 0..8000;
    assert!(
        rms(&agent_ch[first_sec.clone()]) > SPEECH_RMS / 2.0,
        "agent channel lacks the opening line"
    );
    assert!(
        rms(&caller[first_sec]) < QUIET_RMS,
        "caller channel not silent at first"
    );
    // The caller's words come later, on the left only while the agent is silent.
    let voiced_caller = caller.chunks(160).filter(|f| rms(f) > VOICED_RMS).count();
    assert!(
        first_sent_voiced > 20 && voiced_caller * 10 >= first_sent_voiced * 8,
        "caller channel lacks the caller's words ({voiced_caller} voiced frames, \
         {first_sent_voiced} voiced packets sent)"
    );
    agent.proc.kill();

    // A non-interruptible line (legal notice) plays through the caller's words.
    let dir2 = tempfile::tempdir().expect("tempdir");
    let mut agent = start_agent(dir2.path(), NOTICE_SCRIPT);
    let audio = caller_audio.clone();
    let w = call(
        &rt,
        agent.sip_addr(),
        Mode::Talk { audio },
        Duration::from_secs(25),
        |w: &Wire| {
            w.sent
                .iter()
                .find(|s| s.1 > VOICED_RMS)
                .is_some_and(|s| s.0.elapsed() > Duration::from_millis(3000))
        },
    );
    let held = match stop_time_ms(&w) {
        Ok(ms) => ms,
        // Never silent while we listened: the notice held.
        Err(e) if e.contains("never went silent") => f64::INFINITY,
        Err(e) => panic!("{e}; log:\n{}", agent.proc.log_text()),
    };
    assert!(
        held > 2500.0,
        "the non-interruptible notice stopped {held:.0} ms after the caller spoke; \
         timeline {:?}; log:\n{}",
        timeline(&w),
        agent.proc.log_text()
    );
    assert_eq!(barge_ins_logged(&agent), 0, "{}", agent.proc.log_text());
    if held.is_finite() {
        eprintln!("non-interruptible notice: went silent {held:.0} ms after the caller spoke");
    } else {
        eprintln!("non-interruptible notice: played on through the caller's words");
    }
    agent.proc.kill();
}

/// A caller who pauses inside a turn, just after words that sound finished: the agent
/// may end the turn early at the pause and start its reply, but when the caller goes
/// on, both parts are one turn. Recorded as one callee line, answered once; never
/// two turns (the first part moving the script on and the rest answering the next
/// question).
#[test]
fn a_pause_after_words_that_sound_finished_does_not_split_the_turn() {
    let dir = tempfile::tempdir().expect("tempdir");
    let first = say(dir.path(), "可以上门修水管吗？");
    let rest = say(dir.path(), "三号楼二单元的厨房漏水了。");
    let mut audio = first.clone();
    audio.extend(silence(0.4));
    audio.extend(&rest);
    let audio = Arc::new(audio);
    let agent = start_agent(dir.path(), SCRIPT);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let talked = Duration::from_secs_f64(audio.len() as f64 / 8000.0);
    // Hang up once the agent has answered and gone quiet again after the caller.
    let answered = move |w: &Wire| {
        let Some(start) = w.sent.iter().find(|s| s.1 > VOICED_RMS).map(|s| s.0) else {
            return false;
        };
        let after = start + talked;
        let replied = w.received.iter().any(|r| r.0 > after && r.1 > SPEECH_RMS);
        replied
            && w.received.len() >= 75
            && w.received[w.received.len() - 75..]
                .iter()
                .all(|r| r.1 < QUIET_RMS)
    };
    call(
        &rt,
        agent.sip_addr(),
        Mode::Answer { audio },
        Duration::from_secs(30),
        answered,
    );
    let list = agent.records(&["list"]);
    let id = list[0]["id"].to_string();
    let mut detail = agent.records(&["show", &id]);
    wait_until(Duration::from_secs(10), || {
        detail = agent.records(&["show", &id]);
        !detail["outcome"].is_null()
    });
    let log = agent.proc.log_text();
    let callee: Vec<String> = detail["turns"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|l| l["speaker"] == "callee")
        .filter_map(|l| l["text"].as_str().map(str::to_string))
        .filter(|t| !t.is_empty())
        .collect();
    let continued = log.contains("turn ended early continues");
    eprintln!("callee lines {callee:?}; the early end was taken back: {continued}");
    assert_eq!(
        callee.len(),
        1,
        "one turn recorded for one utterance with a pause: {callee:?}\nrecord: {detail}\nlog:\n{log}"
    );
    // Both halves are in it (our voice through Whisper: a few characters of each).
    let has_any = |words: &[&str]| words.iter().any(|w| callee[0].contains(w));
    assert!(
        has_any(&["修", "水管", "上门"]) && has_any(&["楼", "单元", "厨房", "漏水"]),
        "the turn holds both parts: {callee:?}\nlog:\n{log}"
    );
}

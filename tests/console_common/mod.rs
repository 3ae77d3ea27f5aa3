//! Shared helpers for the console tests: a console on 127.0.0.1:0 with one operator,
//! a synthetic call publishing transcript lines and a tone, and a tiny HTTP/1.1 client
//! (raw TCP, so the tests see exactly what a browser would get).

#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use tingshuo::console::{
    AuthPolicy, CallAudioFrame, CallControl, CallEnd, CallInfo, ConsoleHub, ConsoleOptions,
    ConsoleServer, HistorySource, OperatorStore, Speaker, TranscriptLine, FRAME_SAMPLES,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::oneshot;

pub const OPERATOR: &str = "alice";
pub const PASSWORD: &str = "correct-horse-7";

pub struct TestConsole {
    pub server: ConsoleServer,
    pub hub: ConsoleHub,
    pub addr: SocketAddr,
    pub dir: tempfile::TempDir,
}

impl TestConsole {
    pub async fn start(policy: AuthPolicy) -> Self {
        Self::start_with(policy, None).await
    }

    /// With another history source and its recordings directory (default: the hub's
    /// in-memory history, recordings in the console's temp dir).
    pub async fn start_with(
        policy: AuthPolicy,
        history: Option<(Arc<dyn HistorySource>, PathBuf)>,
    ) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let operators = dir.path().join("operators.toml");
        OperatorStore::new(operators.clone())
            .add(OPERATOR, PASSWORD)
            .expect("add operator");
        let hub = ConsoleHub::new();
        let opts = ConsoleOptions {
            listen: "127.0.0.1:0".parse().expect("addr"),
            operators,
            audit_log: dir.path().join("console-audit.log"),
            history: history
                .as_ref()
                .map(|h| h.0.clone())
                .unwrap_or_else(|| hub.memory_history()),
            recordings: history
                .map(|h| h.1)
                .unwrap_or_else(|| dir.path().to_path_buf()),
            policy,
        };
        let server = ConsoleServer::start(opts, hub.clone())
            .await
            .expect("start console");
        let addr = server.local_addr();
        Self {
            server,
            hub,
            addr,
            dir,
        }
    }

    pub fn audit_path(&self) -> PathBuf {
        self.dir.path().join("console-audit.log")
    }
}

/// A call that speaks: transcript lines now, and a tone on the caller side every 20 ms
/// until stopped. `tone_on` switches the caller tone (silence otherwise).
pub struct SyntheticCall {
    pub id: String,
    pub control: CallControl,
    pub tone_on: Arc<AtomicBool>,
    /// Publishes a transcript line on the call, as the call layer would.
    pub lines: tokio::sync::mpsc::UnboundedSender<TranscriptLine>,
    /// When the first frame with the tone was published after `tone_on` was set.
    pub tone_started: Arc<std::sync::Mutex<Option<Instant>>>,
    pub stop: Option<oneshot::Sender<CallEnd>>,
    pub task: tokio::task::JoinHandle<()>,
}

pub fn tone_frame(phase: &mut f64, freq: f64, amp: f64) -> [i16; FRAME_SAMPLES] {
    let mut f = [0i16; FRAME_SAMPLES];
    for s in f.iter_mut() {
        *s = (amp * phase.sin()) as i16;
        *phase += 2.0 * std::f64::consts::PI * freq / 8000.0;
    }
    *phase %= 2.0 * std::f64::consts::PI;
    f
}

pub fn start_synthetic_call(hub: &ConsoleHub, id: &str, tone: bool) -> SyntheticCall {
    let (publisher, control) = hub.start_call(CallInfo {
        id: id.to_string(),
        caller: "13912345678".into(),
        script: "燃气安全检查预约".into(),
        started_at: Utc::now(),
    });
    publisher.step("问候 greeting");
    publisher.transcript(TranscriptLine::new(
        Speaker::Agent,
        "您好，这里是燃气公司，想和您约一下上门安检的时间。",
    ));
    publisher.transcript(
        TranscriptLine::new(Speaker::Caller, "可以，下周三下午我在家。")
            .with_intent("agree")
            .with_field("visit_day", "下周三下午"),
    );
    publisher.turn_latency(Duration::from_millis(612));
    publisher.step("确认时间 confirm");
    let tone_on = Arc::new(AtomicBool::new(tone));
    let (stop, mut stopped) = oneshot::channel::<CallEnd>();
    let (lines, mut lines_rx) = tokio::sync::mpsc::unbounded_channel::<TranscriptLine>();
    let on = tone_on.clone();
    let tone_started = Arc::new(std::sync::Mutex::new(None));
    let started = tone_started.clone();
    let task = tokio::spawn(async move {
        let mut tick = tokio::time::interval(Duration::from_millis(20));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let (mut pc, mut pa) = (0.0, 0.0);
        loop {
            tokio::select! {
                end = &mut stopped => {
                    publisher.end(end.unwrap_or_default());
                    return;
                }
                Some(line) = lines_rx.recv() => publisher.transcript(line),
                _ = tick.tick() => {
                    let tone = on.load(Ordering::Relaxed);
                    let (caller, agent) = if tone {
                        (tone_frame(&mut pc, 440.0, 8000.0), tone_frame(&mut pa, 660.0, 3000.0))
                    } else {
                        ([0; FRAME_SAMPLES], [0; FRAME_SAMPLES])
                    };
                    let now = Instant::now();
                    publisher.audio(&CallAudioFrame { caller, agent, captured: now });
                    if tone {
                        started.lock().expect("lock").get_or_insert(now);
                    }
                }
            }
        }
    });
    SyntheticCall {
        id: id.to_string(),
        control,
        tone_on,
        lines,
        tone_started,
        stop: Some(stop),
        task,
    }
}

impl SyntheticCall {
    pub async fn end(mut self, end: CallEnd) {
        if let Some(s) = self.stop.take() {
            let _ = s.send(end);
        }
        let _ = self.task.await;
    }
}

/// A parsed HTTP response.
#[derive(Debug)]
pub struct Resp {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Resp {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn headers_named(&self, name: &str) -> Vec<&str> {
        self.headers
            .iter()
            .filter(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
            .collect()
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.text()))
    }
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let Some(pos) = b.windows(2).position(|w| w == b"\r\n") else {
            return out;
        };
        let size_line = String::from_utf8_lossy(&b[..pos]);
        let size = usize::from_str_radix(size_line.split(';').next().unwrap_or("0").trim(), 16)
            .unwrap_or(0);
        if size == 0 {
            return out;
        }
        let start = pos + 2;
        let end = (start + size).min(b.len());
        out.extend_from_slice(&b[start..end]);
        b = b.get(end + 2..).unwrap_or(&[]);
    }
}

fn request_bytes(
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Vec<u8> {
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    let mut bytes = Vec::new();
    if let Some((ct, b)) = body {
        req.push_str(&format!(
            "Content-Type: {ct}\r\nContent-Length: {}\r\n",
            b.len()
        ));
        req.push_str("\r\n");
        bytes.extend_from_slice(req.as_bytes());
        bytes.extend_from_slice(b);
    } else {
        req.push_str("Content-Length: 0\r\n\r\n");
        bytes.extend_from_slice(req.as_bytes());
    }
    bytes
}

type Head = (u16, Vec<(String, String)>, usize);

fn parse_head(raw: &[u8]) -> Option<Head> {
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = String::from_utf8_lossy(&raw[..end]);
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split(' ').nth(1)?.parse().ok()?;
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    Some((status, headers, end + 4))
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: Option<(&str, &[u8])>,
) -> Resp {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&request_bytes(method, path, headers, body))
        .await
        .expect("write");
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(20), s.read_to_end(&mut raw))
        .await
        .expect("response within 20 s")
        .expect("read");
    let (status, headers, at) = parse_head(&raw).expect("HTTP response head");
    let chunked = headers
        .iter()
        .any(|(k, v)| k.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    let body = if chunked {
        dechunk(&raw[at..])
    } else {
        raw[at..].to_vec()
    };
    Resp {
        status,
        headers,
        body,
    }
}

/// Opens a streaming GET and returns the socket after the response head.
pub async fn open_stream(addr: SocketAddr, path: &str, cookie: &str) -> (u16, TcpStream, Vec<u8>) {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(&request_bytes(
        "GET",
        path,
        &[("Cookie", cookie), ("Accept", "text/event-stream")],
        None,
    ))
    .await
    .expect("write");
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut buf))
            .await
            .expect("head within 10 s")
            .expect("read");
        assert!(n > 0, "stream closed before the head");
        raw.extend_from_slice(&buf[..n]);
        if let Some((status, _, at)) = parse_head(&raw) {
            return (status, s, raw[at..].to_vec());
        }
    }
}

/// Reads from a stream until `needle` appears (or panics after `timeout`).
pub async fn read_until(s: &mut TcpStream, seen: &mut Vec<u8>, needle: &str, timeout: Duration) {
    let deadline = tokio::time::Instant::now() + timeout;
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(seen).contains(needle) {
        let n = tokio::time::timeout_at(deadline, s.read(&mut buf))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{needle:?} not seen within {timeout:?}; got:\n{}",
                    String::from_utf8_lossy(seen)
                )
            })
            .expect("read");
        assert!(n > 0, "stream closed before {needle:?}");
        seen.extend_from_slice(&buf[..n]);
    }
}

/// The value of a cookie set by a response.
pub fn set_cookie(resp: &Resp, name: &str) -> Option<String> {
    resp.headers_named("set-cookie").into_iter().find_map(|c| {
        let (kv, _) = c.split_once(';').unwrap_or((c, ""));
        let (k, v) = kv.split_once('=')?;
        (k.trim() == name).then(|| v.trim().to_string())
    })
}

/// Logs in through the form like a browser; returns the `Cookie` header value and the CSRF token.
/// A POST without a body (operator actions), with these headers (cookie, CSRF).
pub async fn post(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Resp {
    http(addr, "POST", path, headers, None).await
}

pub async fn login(addr: SocketAddr, user: &str, password: &str) -> (String, String) {
    let resp = try_login(addr, user, password).await;
    assert_eq!(resp.status, 303, "login: {}", resp.text());
    assert_eq!(resp.header("location"), Some("/"));
    let token = set_cookie(&resp, "ts_session").expect("session cookie");
    let cookie = format!("ts_session={token}");
    let me = http(addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(me.status, 200);
    let csrf = me.json()["csrf"].as_str().expect("csrf").to_string();
    (cookie, csrf)
}

pub async fn try_login(addr: SocketAddr, user: &str, password: &str) -> Resp {
    let page = http(addr, "GET", "/login", &[], None).await;
    assert_eq!(page.status, 200);
    let login_csrf = set_cookie(&page, "ts_login_csrf").expect("login csrf cookie");
    assert!(page.text().contains(&login_csrf), "form carries the token");
    let form = format!(
        "username={}&password={}&csrf={login_csrf}",
        urlencode(user),
        urlencode(password)
    );
    let cookie = format!("ts_login_csrf={login_csrf}");
    http(
        addr,
        "POST",
        "/login",
        &[("Cookie", &cookie)],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    )
    .await
}

pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

pub mod rtc_client {
    //! A WebRTC client peer built with the same crate, standing in for a browser.
    use std::sync::Arc;

    use tingshuo::console::rtc::build_api;
    use webrtc::peer_connection::sdp::session_description::RTCSessionDescription;
    use webrtc::peer_connection::RTCPeerConnection;
    use webrtc::rtp_transceiver::rtp_codec::RTPCodecType;
    use webrtc::rtp_transceiver::rtp_transceiver_direction::RTCRtpTransceiverDirection;
    use webrtc::rtp_transceiver::RTCRtpTransceiverInit;
    use webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample;
    use webrtc::track::track_local::TrackLocal;

    pub async fn peer(
        mic: Option<Arc<TrackLocalStaticSample>>,
    ) -> (Arc<RTCPeerConnection>, String) {
        let api = build_api(true).expect("api");
        let pc = Arc::new(
            api.new_peer_connection(Default::default())
                .await
                .expect("pc"),
        );
        match mic {
            Some(track) => {
                pc.add_track(track as Arc<dyn TrackLocal + Send + Sync>)
                    .await
                    .expect("mic track");
            }
            None => {
                pc.add_transceiver_from_kind(
                    RTPCodecType::Audio,
                    Some(RTCRtpTransceiverInit {
                        direction: RTCRtpTransceiverDirection::Recvonly,
                        send_encodings: vec![],
                    }),
                )
                .await
                .expect("transceiver");
            }
        }
        let offer = pc.create_offer(None).await.expect("offer");
        let mut gathered = pc.gathering_complete_promise().await;
        pc.set_local_description(offer).await.expect("local");
        let _ = gathered.recv().await;
        let sdp = pc.local_description().await.expect("sdp").sdp;
        (pc, sdp)
    }

    pub async fn accept(pc: &RTCPeerConnection, sdp: String) {
        pc.set_remote_description(RTCSessionDescription::answer(sdp).expect("answer"))
            .await
            .expect("remote");
    }
}

/// An operator's "microphone" for take-over: a PCMU track the test writes to.
pub fn pcmu_mic(
) -> Arc<webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample> {
    use webrtc::api::media_engine::MIME_TYPE_PCMU;
    use webrtc::rtp_transceiver::rtp_codec::RTCRtpCodecCapability;
    Arc::new(
        webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample::new(
            RTCRtpCodecCapability {
                mime_type: MIME_TYPE_PCMU.to_owned(),
                clock_rate: 8000,
                channels: 1,
                ..Default::default()
            },
            "mic".into(),
            "operator".into(),
        ),
    )
}

/// Speaks a `hz` tone into `mic` in 20 ms PCMU samples until the returned flag is
/// cleared; await the handle to stop.
pub fn speak_tone(
    mic: Arc<webrtc::track::track_local::track_local_static_sample::TrackLocalStaticSample>,
    hz: f64,
    amp: f64,
) -> (Arc<AtomicBool>, tokio::task::JoinHandle<()>) {
    let speaking = Arc::new(AtomicBool::new(true));
    let task = {
        let speaking = speaking.clone();
        tokio::spawn(async move {
            let mut ph = 0.0;
            let mut tick = tokio::time::interval(Duration::from_millis(20));
            while speaking.load(Ordering::Relaxed) {
                tick.tick().await;
                let pcm = tone_frame(&mut ph, hz, amp);
                let mut ulaw = [0u8; 160];
                tingshuo::codec::G711::Pcmu.encode(&pcm, &mut ulaw);
                let _ = mic
                    .write_sample(&webrtc::media::Sample {
                        data: bytes::Bytes::copy_from_slice(&ulaw),
                        duration: Duration::from_millis(20),
                        ..Default::default()
                    })
                    .await;
            }
        })
    };
    (speaking, task)
}

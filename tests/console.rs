//! Operator console end to end on 127.0.0.1:0: the auth gate on every endpoint, login,
//! SSE transcript delivery, history with recording, `/metrics` as Prometheus text, and
//! listen-in / take-over over real WebRTC (a `webrtc` client peer in the test).

#[path = "console_common/mod.rs"]
mod common;

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::*;
use tingshuo::console::auth::AuditEntry;
use tingshuo::console::server::ROUTES;
use tingshuo::console::{AuthPolicy, CallEnd, OperatorAction, Speaker, TranscriptLine};
use tokio::io::AsyncReadExt;

fn concrete(path: &str, call: &str) -> String {
    path.replace("{id}", call)
        .replace("{peer}", "0123456789abcdef")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_protected_endpoint_refuses_without_auth() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let call = start_synthetic_call(&tc.hub, "call-auth", true);
    let offer = br#"{"sdp":"v=0"}"#;
    for (method, path, needs_auth) in ROUTES {
        let p = concrete(path, &call.id);
        let body = (*method == "POST").then_some(("application/json", &offer[..]));
        let r = http(tc.addr, method, &p, &[], body).await;
        if *needs_auth {
            assert_eq!(
                r.status,
                401,
                "{method} {p} without a session: {}",
                r.text()
            );
        } else {
            assert_ne!(r.status, 401, "{method} {p} is public");
        }
    }
    // A forged or stale cookie is no session either.
    let r = http(
        tc.addr,
        "GET",
        "/api/calls",
        &[("Cookie", "ts_session=deadbeef")],
        None,
    )
    .await;
    assert_eq!(r.status, 401);
    // The app page sends strangers to the login form.
    let r = http(tc.addr, "GET", "/", &[], None).await;
    assert_eq!(r.status, 303);
    assert_eq!(r.header("location"), Some("/login"));

    // With a session but without the CSRF header, no state changes.
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;
    for (method, path, needs_auth) in ROUTES {
        if *method != "POST" || !needs_auth {
            continue;
        }
        let p = concrete(path, &call.id);
        let r = http(
            tc.addr,
            method,
            &p,
            &[("Cookie", &cookie)],
            Some(("application/json", offer)),
        )
        .await;
        assert_eq!(r.status, 403, "{method} {p} without CSRF: {}", r.text());
        let r = http(
            tc.addr,
            method,
            &p,
            &[("Cookie", &cookie), ("X-CSRF-Token", "0000")],
            Some(("application/json", offer)),
        )
        .await;
        assert_eq!(r.status, 403, "{method} {p} with a wrong CSRF token");
    }
    // With both, a GET works and a POST reaches its handler.
    let r = http(tc.addr, "GET", "/api/calls", &[("Cookie", &cookie)], None).await;
    assert_eq!(r.status, 200);
    assert_eq!(r.json()[0]["id"], "call-auth");
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/call-auth/hangup",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    // Bad input gets a clear refusal, not a crash.
    let auth = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/call-auth/listen",
        &auth,
        Some(("application/json", offer)),
    )
    .await;
    assert_eq!(r.status, 400, "malformed SDP: {}", r.text());
    assert!(
        r.json()["error"].as_str().unwrap_or("").contains("offer"),
        "{}",
        r.text()
    );
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/no-such-call/listen",
        &auth,
        Some(("application/json", offer)),
    )
    .await;
    assert_eq!(r.status, 404);
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/call-auth/listen",
        &auth,
        Some(("application/json", b"{not json")),
    )
    .await;
    assert!(r.status == 400 || r.status == 422, "{}", r.status);
    call.end(CallEnd::default()).await;
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_cookie_logout_and_csrf_on_the_form() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let wrong = try_login(tc.addr, OPERATOR, "not-the-password").await;
    assert_eq!(wrong.status, 303);
    assert_eq!(wrong.header("location"), Some("/login?error=1"));
    assert!(set_cookie(&wrong, "ts_session").is_none());

    // The form without its double-submit cookie is refused.
    let form = format!("username={OPERATOR}&password={PASSWORD}&csrf=abc");
    let r = http(
        tc.addr,
        "POST",
        "/login",
        &[],
        Some(("application/x-www-form-urlencoded", form.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 403);

    let ok = try_login(tc.addr, OPERATOR, PASSWORD).await;
    assert_eq!(ok.status, 303);
    let cookie_line = ok
        .headers_named("set-cookie")
        .into_iter()
        .find(|c| c.starts_with("ts_session="))
        .expect("session cookie")
        .to_string();
    assert!(cookie_line.contains("HttpOnly"), "{cookie_line}");
    assert!(cookie_line.contains("SameSite=Strict"), "{cookie_line}");
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;
    let page = http(tc.addr, "GET", "/", &[("Cookie", &cookie)], None).await;
    assert_eq!(page.status, 200);
    assert!(page.text().contains("坐席控制台"));
    assert!(page.header("content-security-policy").is_some());

    let out = http(
        tc.addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    )
    .await;
    assert_eq!(out.status, 303);
    let r = http(tc.addr, "GET", "/api/me", &[("Cookie", &cookie)], None).await;
    assert_eq!(r.status, 401, "session is gone after logout");

    let audit: Vec<AuditEntry> = std::fs::read_to_string(tc.audit_path())
        .expect("audit log")
        .lines()
        .map(|l| serde_json::from_str(l).expect("audit json"))
        .collect();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["login_failed", "login", "login", "logout"]);
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn login_is_rate_limited_per_ip() {
    let tc = TestConsole::start(AuthPolicy {
        login_attempts: 3,
        login_window: Duration::from_secs(600),
        ..AuthPolicy::default()
    })
    .await;
    for _ in 0..3 {
        assert_eq!(
            try_login(tc.addr, OPERATOR, "wrong-password").await.status,
            303
        );
    }
    let r = try_login(tc.addr, OPERATOR, PASSWORD).await;
    assert_eq!(r.status, 429, "even the right password waits: {}", r.text());
    assert!(r.text().contains("Too many attempts"), "{}", r.text());
    assert!(set_cookie(&r, "ts_session").is_none());
    let retry: u64 = r
        .header("retry-after")
        .expect("Retry-After")
        .parse()
        .expect("secs");
    assert!(retry > 0 && retry <= 600);
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sse_streams_snapshot_and_transcript_lines() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let call = start_synthetic_call(&tc.hub, "call-sse", false);
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;
    let (status, mut s, mut seen) = open_stream(tc.addr, "/api/events", &cookie).await;
    assert_eq!(status, 200);
    read_until(&mut s, &mut seen, "event: snapshot", Duration::from_secs(5)).await;
    read_until(&mut s, &mut seen, "下周三下午", Duration::from_secs(5)).await;

    // A line published now arrives as a `hub` event with its intent and fields.
    let publisher_hub = tc.hub.clone();
    let (p, _c) = publisher_hub.start_call(tingshuo::console::CallInfo {
        id: "call-sse-2".into(),
        caller: "1002".into(),
        script: "回访".into(),
        started_at: chrono::Utc::now(),
    });
    p.transcript(
        TranscriptLine::new(Speaker::Caller, "我的门牌号是三栋二单元。")
            .with_intent("give_address")
            .with_field("address", "三栋二单元"),
    );
    read_until(&mut s, &mut seen, "三栋二单元", Duration::from_secs(5)).await;
    let text = String::from_utf8_lossy(&seen).into_owned();
    assert!(text.contains("\"type\":\"call_started\""), "{text}");
    assert!(text.contains("\"intent\":\"give_address\""), "{text}");
    p.end(CallEnd {
        outcome: "completed".into(),
        ..CallEnd::default()
    });
    read_until(
        &mut s,
        &mut seen,
        "\"type\":\"call_ended\"",
        Duration::from_secs(5),
    )
    .await;

    // After logout the stream ends at the next event.
    let out = http(
        tc.addr,
        "POST",
        "/logout",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    )
    .await;
    assert_eq!(out.status, 303);
    call.lines
        .send(TranscriptLine::new(
            Speaker::Caller,
            "登出后不应再收到这句。",
        ))
        .expect("line");
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut rest))
        .await
        .expect("the stream closes after logout")
        .expect("read");
    assert!(
        !String::from_utf8_lossy(&rest).contains("登出后"),
        "no events after logout"
    );
    call.end(CallEnd::default()).await;
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn history_lists_finished_calls_and_serves_the_recording() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let wav = tc.dir.path().join("rec.wav");
    {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).expect("wav");
        let mut ph = 0.0;
        for _ in 0..50 {
            for s in tone_frame(&mut ph, 440.0, 5000.0) {
                w.write_sample(s).expect("l");
                w.write_sample(0i16).expect("r");
            }
        }
        w.finalize().expect("finalize");
    }
    let call = start_synthetic_call(&tc.hub, "call-hist", false);
    let mut fields = BTreeMap::new();
    fields.insert("visit_day".to_string(), "下周三下午".to_string());
    call.end(CallEnd {
        outcome: "completed".into(),
        fields,
        recording: Some(wav.clone()),
    })
    .await;

    let (cookie, _) = login(tc.addr, OPERATOR, PASSWORD).await;
    let list = http(tc.addr, "GET", "/api/history", &[("Cookie", &cookie)], None).await;
    assert_eq!(list.status, 200);
    let list = list.json();
    assert_eq!(list[0]["id"], "call-hist");
    assert_eq!(list[0]["outcome"], "completed");
    assert_eq!(list[0]["turns"], 1);
    let d = http(
        tc.addr,
        "GET",
        "/api/history/call-hist",
        &[("Cookie", &cookie)],
        None,
    )
    .await
    .json();
    assert_eq!(d["fields"]["visit_day"], "下周三下午");
    assert_eq!(d["turn_latencies_ms"][0], 612.0);
    assert_eq!(d["transcript"].as_array().map(Vec::len), Some(2));
    assert!(
        d.get("recording").is_none(),
        "the file path stays on the server"
    );
    let rec = http(
        tc.addr,
        "GET",
        "/api/history/call-hist/recording",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(rec.status, 200);
    assert_eq!(rec.header("content-type"), Some("audio/wav"));
    assert_eq!(rec.body, std::fs::read(&wav).expect("read wav"));
    let missing = http(
        tc.addr,
        "GET",
        "/api/history/nope",
        &[("Cookie", &cookie)],
        None,
    )
    .await;
    assert_eq!(missing.status, 404);
    tc.server.shutdown().await;
}

/// A finished call in a real records database with its stereo WAV (as the call layer
/// writes them): the history offers playback, the endpoint streams the file with
/// ranges, and refuses paths outside the recordings directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_history_plays_recordings_from_the_recordings_dir_only() {
    use tingshuo::console::history::StoreHistory;
    use tingshuo::store::{Store, TurnLine, TurnWrite};

    let data = tempfile::tempdir().expect("tempdir");
    let db = data.path().join("records.db");
    let recordings = data.path().join("recordings");
    std::fs::create_dir_all(&recordings).expect("recordings dir");
    // Caller on the left, agent on the right, 8 kHz, 1 s.
    let wav = recordings.join("call-1.wav");
    {
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 8000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&wav, spec).expect("wav");
        let (mut a, mut b) = (0.0, 0.0);
        for _ in 0..50 {
            let l = tone_frame(&mut a, 440.0, 5000.0);
            let r = tone_frame(&mut b, 880.0, 3000.0);
            for (l, r) in l.iter().zip(r.iter()) {
                w.write_sample(*l).expect("l");
                w.write_sample(*r).expect("r");
            }
        }
        w.finalize().expect("finalize");
    }
    std::fs::write(data.path().join("secret.wav"), b"RIFF not yours").expect("secret");
    let mut store = Store::open(&db).expect("store");
    let mut ids = Vec::new();
    // recording column: relative inside, absolute inside, missing, outside (absolute,
    // and by `..`), none.
    for recording in [
        Some("call-1.wav".to_string()),
        Some(wav.display().to_string()),
        Some("gone.wav".to_string()),
        Some(data.path().join("secret.wav").display().to_string()),
        Some("../secret.wav".to_string()),
        None,
    ] {
        let id = store
            .start_call(
                "embedded:inbound",
                "inbound",
                Some("sip:1001@127.0.0.1"),
                &BTreeMap::new(),
                "2026-11-25T09:00:00+00:00",
            )
            .expect("start");
        store
            .write_turn(
                id,
                &TurnWrite {
                    at: "2026-11-25T09:00:03+00:00".into(),
                    lines: vec![TurnLine {
                        speaker: "agent".into(),
                        text: "您好，这里是物业服务中心。".into(),
                        ..Default::default()
                    }],
                    ..Default::default()
                },
            )
            .expect("turn");
        store
            .end_call(id, "completed", "2026-11-25T09:00:20+00:00")
            .expect("end");
        // The store API that sets it belongs to the recording work; the column is v2.
        let conn = rusqlite::Connection::open(&db).expect("sqlite");
        conn.execute(
            "UPDATE calls SET recording = ?1 WHERE id = ?2",
            rusqlite::params![recording, id],
        )
        .expect("set recording");
        ids.push(id.to_string());
    }
    drop(store);

    let history: Arc<dyn tingshuo::console::HistorySource> = Arc::new(StoreHistory::new(
        tingshuo::store::StoreTarget::Sqlite(db.clone()),
        tingshuo::console::history::default_recordings_dir(&db),
    ));
    let tc = TestConsole::start_with(AuthPolicy::default(), Some((history, recordings))).await;
    let (cookie, _) = login(tc.addr, OPERATOR, PASSWORD).await;
    let auth = [("Cookie", cookie.as_str())];
    let list = http(tc.addr, "GET", "/api/history", &auth, None)
        .await
        .json();
    let flags: BTreeMap<String, bool> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|c| {
            (
                c["id"].as_str().unwrap_or_default().to_string(),
                c["has_recording"] == true,
            )
        })
        .collect();
    for (i, id) in ids.iter().enumerate() {
        assert_eq!(
            flags.get(id),
            Some(&(i < 5)),
            "has_recording of call {i}: {list}"
        );
    }
    let d = http(
        tc.addr,
        "GET",
        &format!("/api/history/{}", ids[0]),
        &auth,
        None,
    )
    .await
    .json();
    assert_eq!(d["has_recording"], true);
    assert!(d.get("recording").is_none(), "the path stays on the server");

    let file = std::fs::read(&wav).expect("wav bytes");
    let url = |i: usize| format!("/api/history/{}/recording", ids[i]);
    for i in [0, 1] {
        let r = http(tc.addr, "GET", &url(i), &auth, None).await;
        assert_eq!(r.status, 200, "call {i}: {}", r.text());
        assert_eq!(r.header("content-type"), Some("audio/wav"));
        assert_eq!(r.header("accept-ranges"), Some("bytes"));
        assert_eq!(r.body, file);
    }
    // The WAV as the player asks for it: the header first, then the tail.
    let head = http(
        tc.addr,
        "GET",
        &url(0),
        &[auth[0], ("Range", "bytes=0-43")],
        None,
    )
    .await;
    assert_eq!(head.status, 206);
    assert_eq!(
        head.header("content-range"),
        Some(format!("bytes 0-43/{}", file.len()).as_str())
    );
    assert_eq!(head.body, file[..44]);
    let tail = http(
        tc.addr,
        "GET",
        &url(0),
        &[auth[0], ("Range", "bytes=-100")],
        None,
    )
    .await;
    assert_eq!(tail.status, 206);
    assert_eq!(tail.body, file[file.len() - 100..]);
    let beyond = format!("bytes={}-", file.len());
    let r = http(
        tc.addr,
        "GET",
        &url(0),
        &[auth[0], ("Range", &beyond)],
        None,
    )
    .await;
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("content-range"),
        Some(format!("bytes */{}", file.len()).as_str())
    );
    let wav_read = hound::WavReader::new(std::io::Cursor::new(
        http(tc.addr, "GET", &url(0), &auth, None).await.body,
    ))
    .expect("a WAV comes back");
    assert_eq!(wav_read.spec().channels, 2);
    assert_eq!(wav_read.duration(), 8000);

    assert_eq!(http(tc.addr, "GET", &url(2), &auth, None).await.status, 404);
    for i in [3, 4] {
        let r = http(tc.addr, "GET", &url(i), &auth, None).await;
        assert_eq!(r.status, 403, "call {i} points outside: {}", r.text());
        assert!(!r.text().contains("not yours"));
    }
    assert_eq!(http(tc.addr, "GET", &url(5), &auth, None).await.status, 404);
    assert_eq!(http(tc.addr, "GET", &url(0), &[], None).await.status, 401);
    // One audit line per playback, not per range request.
    let audit = std::fs::read_to_string(tc.audit_path()).expect("audit");
    let plays = audit.matches("\"action\":\"recording\"").count();
    assert_eq!(plays, 4, "{audit}");
    tc.server.shutdown().await;
}

/// A strict-enough reader of the Prometheus / OpenMetrics text format: every sample
/// belongs to a declared family, values are numbers, histograms are cumulative and
/// end in `+Inf` equal to `_count`, and the exposition ends with `# EOF`.
fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = BTreeMap::new();
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(
        lines.last(),
        Some(&"# EOF"),
        "exposition must end with # EOF"
    );
    for line in &lines[..lines.len() - 1] {
        if let Some(rest) = line.strip_prefix("# ") {
            let mut parts = rest.splitn(3, ' ');
            let kind = parts.next().expect("comment kind");
            let name = parts.next().expect("metric name");
            assert!(
                matches!(kind, "HELP" | "TYPE" | "UNIT"),
                "unknown comment: {line}"
            );
            if kind == "TYPE" {
                let t = parts.next().expect("type").to_string();
                assert!(
                    [
                        "counter",
                        "gauge",
                        "histogram",
                        "summary",
                        "unknown",
                        "info",
                        "stateset"
                    ]
                    .contains(&t.as_str()),
                    "{line}"
                );
                types.insert(name.to_string(), t);
            }
            continue;
        }
        let (series, value) = line
            .rsplit_once(' ')
            .unwrap_or_else(|| panic!("bad sample: {line}"));
        let v: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("bad value in {line}"));
        let name = series.split('{').next().expect("name");
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad metric name {name}"
        );
        if let Some(labels) = series.split_once('{').map(|(_, l)| l) {
            let labels = labels
                .strip_suffix('}')
                .unwrap_or_else(|| panic!("unclosed labels: {line}"));
            for kv in labels.split(',').filter(|s| !s.is_empty()) {
                let (k, v) = kv
                    .split_once('=')
                    .unwrap_or_else(|| panic!("bad label {kv}"));
                assert!(
                    !k.is_empty() && v.starts_with('"') && v.ends_with('"'),
                    "bad label {kv}"
                );
            }
        }
        let family = types
            .keys()
            .filter(|f| name == f.as_str() || name.starts_with(&format!("{f}_")))
            .max_by_key(|f| f.len())
            .unwrap_or_else(|| panic!("sample {name} has no # TYPE"));
        if types[family] == "counter" {
            assert!(
                name.ends_with("_total") || name.ends_with("_created"),
                "{name}"
            );
        }
        samples.insert(series.to_string(), v);
    }
    for (family, t) in &types {
        if t != "histogram" {
            continue;
        }
        let mut last = 0.0;
        let mut les: Vec<(f64, f64)> = samples
            .iter()
            .filter(|(k, _)| k.starts_with(&format!("{family}_bucket{{")))
            .map(|(k, v)| {
                let le = k
                    .split("le=\"")
                    .nth(1)
                    .and_then(|r| r.split('"').next())
                    .expect("le");
                (
                    if le == "+Inf" {
                        f64::INFINITY
                    } else {
                        le.parse().expect("le number")
                    },
                    *v,
                )
            })
            .collect();
        les.sort_by(|a, b| a.0.total_cmp(&b.0));
        for (_, c) in &les {
            assert!(*c >= last, "{family} buckets not cumulative");
            last = *c;
        }
        assert_eq!(
            les.last().map(|l| l.0),
            Some(f64::INFINITY),
            "{family} lacks +Inf"
        );
        assert_eq!(
            Some(&last),
            samples.get(&format!("{family}_count")),
            "{family} +Inf != count"
        );
    }
    samples
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_health_and_readiness_are_public_and_well_formed() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let call = start_synthetic_call(&tc.hub, "call-metrics", false);
    let m = tc.hub.metrics();
    m.call_answered();
    m.call_answered();
    m.call_failed();
    m.call_shed();
    m.set_answer_rate(2.0 / 3.0);
    m.set_alert_level(tingshuo::call::health::AlertLevel::Red);
    m.set_asr_queue_depth(2);
    m.set_asr_time(Duration::from_millis(180));
    m.set_tts_time(Duration::from_millis(90));
    m.set_registered("127.0.0.1:5060", true);
    m.set_registered("127.0.0.1:5062", false);
    m.set_emergency_mode(true);

    let r = http(tc.addr, "GET", "/metrics", &[], None).await;
    assert_eq!(r.status, 200);
    assert!(r
        .header("content-type")
        .unwrap_or("")
        .contains("openmetrics-text"));
    let s = parse_exposition(&r.text());
    assert_eq!(s["tingshuo_active_calls"], 1.0);
    assert_eq!(s["tingshuo_calls_answered_total"], 2.0);
    assert_eq!(s["tingshuo_calls_failed_total"], 1.0);
    assert_eq!(s["tingshuo_calls_shed_total"], 1.0);
    assert!((s["tingshuo_answer_rate"] - 2.0 / 3.0).abs() < 1e-9);
    assert_eq!(s["tingshuo_alert_level"], 3.0);
    assert_eq!(s["tingshuo_asr_queue_depth"], 2.0);
    assert_eq!(s["tingshuo_asr_seconds"], 0.18);
    assert_eq!(
        s["tingshuo_registration_up{registrar=\"127.0.0.1:5060\"}"],
        1.0
    );
    assert_eq!(
        s["tingshuo_registration_up{registrar=\"127.0.0.1:5062\"}"],
        0.0
    );
    assert_eq!(s["tingshuo_emergency_mode"], 1.0);
    assert_eq!(s["tingshuo_turn_latency_seconds_count"], 1.0);
    assert_eq!(s["tingshuo_turn_latency_seconds_bucket{le=\"0.6\"}"], 0.0);
    assert_eq!(s["tingshuo_turn_latency_seconds_bucket{le=\"0.8\"}"], 1.0);

    assert_eq!(
        http(tc.addr, "GET", "/healthz", &[], None).await.status,
        200
    );
    let r = http(tc.addr, "GET", "/readyz", &[], None).await;
    assert_eq!(r.status, 503, "not ready until the call layer says so");
    tc.hub.set_ready(Ok(()));
    assert_eq!(http(tc.addr, "GET", "/readyz", &[], None).await.status, 200);
    call.end(CallEnd::default()).await;
    tc.server.shutdown().await;
}

/// Energy of a decoded PCMU payload.
fn rms(payload: &[u8]) -> f64 {
    let sum: f64 = payload
        .iter()
        .map(|&b| {
            let s = tingshuo::codec::G711::Pcmu.decode_sample(b) as f64;
            s * s
        })
        .sum();
    (sum / payload.len().max(1) as f64).sqrt()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn listen_in_delivers_the_call_audio_to_several_operators() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let call = start_synthetic_call(&tc.hub, "call-listen", false);
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;

    let mut peers = Vec::new();
    for _ in 0..2 {
        let (pc, offer) = rtc_client::peer(None).await;
        let body = serde_json::json!({ "sdp": offer }).to_string();
        let r = http(
            tc.addr,
            "POST",
            "/api/calls/call-listen/listen",
            &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
            Some(("application/json", body.as_bytes())),
        )
        .await;
        assert_eq!(r.status, 200, "{}", r.text());
        let answer = r.json();
        let sdp = answer["sdp"].as_str().expect("sdp").to_string();
        assert!(sdp.contains("PCMU/8000"), "answer offers PCMU: {sdp}");
        rtc_client::accept(&pc, sdp).await;
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<(Instant, f64)>();
        pc.on_track(Box::new(move |track, _, _| {
            let tx = tx.clone();
            Box::pin(async move {
                tokio::spawn(async move {
                    while let Ok((pkt, _)) = track.read_rtp().await {
                        if tx.send((Instant::now(), rms(&pkt.payload))).is_err() {
                            break;
                        }
                    }
                });
            })
        }));
        peers.push((
            pc,
            rx,
            answer["peer_id"].as_str().expect("peer id").to_string(),
        ));
    }
    assert_eq!(tc.hub.live_calls()[0].listeners, 2);

    // Silence first, until both peers receive packets (connected and flowing).
    for (_, rx, _) in peers.iter_mut() {
        let (_, level) = tokio::time::timeout(Duration::from_secs(15), rx.recv())
            .await
            .expect("audio packets within 15 s")
            .expect("track");
        assert!(level < 50.0, "silence first, got rms {level}");
    }
    // Then the tone: measure from the first frame of tone to its arrival.
    for (_, rx, _) in peers.iter_mut() {
        while rx.try_recv().is_ok() {}
    }
    call.tone_on.store(true, Ordering::Relaxed);
    let mut arrivals = Vec::new();
    for (_, rx, _) in peers.iter_mut() {
        loop {
            let (at, level) = tokio::time::timeout(Duration::from_secs(5), rx.recv())
                .await
                .expect("tone within 5 s")
                .expect("track");
            if level > 1000.0 {
                arrivals.push(at);
                break;
            }
        }
    }
    let published = call
        .tone_started
        .lock()
        .expect("lock")
        .expect("tone published");
    let latencies: Vec<Duration> = arrivals
        .iter()
        .map(|a| a.saturating_duration_since(published))
        .collect();
    // Reported, not asserted (timings are never asserted in tests).
    eprintln!("listen-in: first tone frame published -> RTP at the peers: {latencies:?} (server + SRTP + loopback, before the receiver's jitter buffer)");

    // Closing one peer leaves the other listening.
    let r = http(
        tc.addr,
        "POST",
        &format!("/api/rtc/{}/close", peers[0].2),
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        None,
    )
    .await;
    assert_eq!(r.status, 200);
    assert_eq!(tc.hub.live_calls()[0].listeners, 1);

    let audit = std::fs::read_to_string(tc.audit_path()).expect("audit");
    assert_eq!(audit.matches("\"action\":\"listen\"").count(), 2, "{audit}");
    call.end(CallEnd::default()).await;
    // The call's end closes the remaining peer.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(tc.hub.live_calls().is_empty());
    for (pc, _, _) in peers {
        let _ = pc.close().await;
    }
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn take_over_sends_operator_audio_to_the_call_then_hand_back_and_hang_up() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let mut call = start_synthetic_call(&tc.hub, "call-take", true);
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;

    let mic = pcmu_mic();
    let (pc, offer) = rtc_client::peer(Some(mic.clone())).await;
    let body = serde_json::json!({ "sdp": offer }).to_string();
    let auth = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/call-take/takeover",
        &auth,
        Some(("application/json", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.text());
    rtc_client::accept(&pc, r.json()["sdp"].as_str().expect("sdp").to_string()).await;
    assert_eq!(
        call.control.actions.recv().await,
        Some(OperatorAction::TakeOver {
            operator: OPERATOR.into()
        })
    );
    assert_eq!(
        tc.hub.live_calls()[0].taken_over_by.as_deref(),
        Some(OPERATOR)
    );

    // The "microphone": a 300 Hz tone.
    let (speaking, mic_task) = speak_tone(mic.clone(), 300.0, 9000.0);
    let mut loud = 0;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while loud < 10 {
        let frame = tokio::time::timeout_at(deadline, call.control.operator_audio.recv())
            .await
            .expect("operator audio within 15 s")
            .expect("channel open");
        let energy = (frame.iter().map(|&s| (s as f64).powi(2)).sum::<f64>() / 160.0).sqrt();
        if energy > 3000.0 {
            loud += 1;
        }
    }
    speaking.store(false, Ordering::Relaxed);
    let _ = mic_task.await;

    // A second operator cannot grab the call meanwhile.
    tingshuo::console::OperatorStore::new(tc.dir.path().join("operators.toml"))
        .add("bob", "another-secret")
        .expect("bob");
    let (bob_cookie, bob_csrf) = login(tc.addr, "bob", "another-secret").await;
    let r = http(
        tc.addr,
        "POST",
        "/api/calls/call-take/takeover",
        &[("Cookie", &bob_cookie), ("X-CSRF-Token", &bob_csrf)],
        Some(("application/json", body.as_bytes())),
    )
    .await;
    assert_eq!(r.status, 409, "{}", r.text());

    let r = post(tc.addr, "/api/calls/call-take/handback", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call.control.actions.recv().await,
        Some(OperatorAction::HandBack {
            operator: OPERATOR.into()
        })
    );
    assert_eq!(
        tc.hub.live_calls()[0].listeners,
        0,
        "hand back closes the take-over peer, so the microphone no longer reaches the call"
    );
    assert_eq!(tc.hub.live_calls()[0].taken_over_by, None);
    let r = post(tc.addr, "/api/calls/call-take/hangup", &auth).await;
    assert_eq!(r.status, 200);
    assert_eq!(
        call.control.actions.recv().await,
        Some(OperatorAction::HangUp {
            operator: OPERATOR.into()
        })
    );
    let audit = std::fs::read_to_string(tc.audit_path()).expect("audit");
    for action in ["take_over", "hand_back", "hang_up"] {
        assert!(
            audit.contains(&format!("\"action\":\"{action}\"")),
            "{action} in {audit}"
        );
    }
    let _ = pc.close().await;
    call.end(CallEnd::default()).await;
    tc.server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_open_event_streams() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let (cookie, _) = login(tc.addr, OPERATOR, PASSWORD).await;
    let (status, mut s, mut seen) = open_stream(tc.addr, "/api/events", &cookie).await;
    assert_eq!(status, 200);
    read_until(&mut s, &mut seen, "event: snapshot", Duration::from_secs(5)).await;
    tc.server.shutdown().await;
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), s.read_to_end(&mut rest))
        .await
        .expect("the event stream closes when the console stops")
        .expect("read");
    // A new connection is refused once it stopped.
    assert!(tokio::net::TcpStream::connect(tc.addr).await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_transfers_a_live_call_and_transfers_are_counted() {
    let tc = TestConsole::start(AuthPolicy::default()).await;
    let mut call = start_synthetic_call(&tc.hub, "call-xfer", false);
    let (cookie, csrf) = login(tc.addr, OPERATOR, PASSWORD).await;
    let auth = [("Cookie", cookie.as_str()), ("X-CSRF-Token", csrf.as_str())];
    // A target that is neither an extension nor a SIP URI is refused, saying so.
    let r = post(
        tc.addr,
        "/api/calls/call-xfer/transfer?target=call%20the%20desk",
        &auth,
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(r.text().contains("SIP URI or an extension"), "{}", r.text());
    let r = post(tc.addr, "/api/calls/call-xfer/transfer?target=2001", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call.control.actions.recv().await,
        Some(OperatorAction::Transfer {
            operator: OPERATOR.into(),
            target: Some("2001".into())
        })
    );
    // Without a target: the transfer configured for the call.
    let r = post(tc.addr, "/api/calls/call-xfer/transfer", &auth).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(
        call.control.actions.recv().await,
        Some(OperatorAction::Transfer {
            operator: OPERATOR.into(),
            target: None
        })
    );
    tc.hub.metrics().transfer("connected");
    tc.hub.metrics().transfer("no_answer");
    let r = http(tc.addr, "GET", "/metrics", &[], None).await;
    let text = r.text();
    assert!(
        text.contains("tingshuo_transfers_total{result=\"connected\"} 1")
            && text.contains("tingshuo_transfers_total{result=\"no_answer\"} 1"),
        "{text}"
    );
    let audit = std::fs::read_to_string(tc.audit_path()).expect("audit");
    assert!(audit.contains("\"action\":\"transfer\""), "{audit}");
}

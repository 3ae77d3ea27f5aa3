//! End-to-end media through real peers: baresip calls the agent through Kamailio, the
//! agent answers with an RTP session (src/rtp) and plays a WAV; baresip's recording of
//! what it heard must correlate with that WAV, the agent's recording of the caller must
//! correlate with baresip's source file, and DTMF pressed in baresip arrives in order
//! without duplicates. Correlation (not "non-silent") is checked against a wrong
//! reference too, so a stuck or garbled stream cannot pass.

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tingshuo::codec::G711;
use tingshuo::rtp::{MediaConfig, MediaSession, PortAllocator, FRAME_SAMPLES};
use tingshuo::sip::{self, sdp, CallEvent, Codec, Command, LocalMedia, SipEvent};

/// 100 ms tone segments with pseudo-random frequencies: distinctive at every lag.
fn melody(seed: u64, secs: f32) -> Vec<i16> {
    let mut state = seed;
    let mut out = Vec::new();
    let segs = (secs * 10.0) as usize;
    let mut phase = 0f32;
    for _ in 0..segs {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let hz = 300.0 + ((state >> 33) % 2700) as f32;
        for _ in 0..800 {
            phase += hz / 8000.0 * std::f32::consts::TAU;
            out.push((phase.sin() * 9000.0) as i16);
        }
    }
    out
}

/// Best normalised cross-correlation of `window` (taken at `at` in its recording)
/// against `reference` shifted by up to ±1.5 s (call set-up and buffering delays).
fn best_corr(window: &[i16], at: usize, reference: &[i16]) -> f64 {
    let n = window.len();
    if reference.len() < n || n == 0 {
        return 0.0;
    }
    let w: Vec<f64> = window.iter().map(|s| f64::from(*s)).collect();
    let wn = w.iter().map(|x| x * x).sum::<f64>().sqrt();
    let r: Vec<f64> = reference.iter().map(|s| f64::from(*s)).collect();
    let mut prefix = vec![0f64; r.len() + 1];
    for (i, x) in r.iter().enumerate() {
        prefix[i + 1] = prefix[i] + x * x;
    }
    let mut best = 0f64;
    let lo = at.saturating_sub(12_000);
    let hi = (at + 12_000).min(r.len() - n);
    for lag in lo..=hi {
        let rn = (prefix[lag + n] - prefix[lag]).sqrt();
        if rn < 1.0 || wn < 1.0 {
            continue;
        }
        let dot: f64 = w.iter().zip(&r[lag..lag + n]).map(|(a, b)| a * b).sum();
        best = best.max(dot / (wn * rn));
    }
    best
}

/// The loudest-energy 0.25 s window after `skip` samples (skips leading silence).
fn window_of(rec: &[i16], skip: usize) -> (usize, &[i16]) {
    let n = 2000;
    let mut best = (0usize, 0f64);
    let mut i = skip;
    while i + n <= rec.len() && i < skip + 8000 {
        let e: f64 = rec[i..i + n].iter().map(|s| f64::from(*s).powi(2)).sum();
        if e > best.1 {
            best = (i, e);
        }
        i += 400;
    }
    (best.0, &rec[best.0..(best.0 + n).min(rec.len())])
}

fn read_wav(path: &std::path::Path) -> Vec<i16> {
    let mut r = hound::WavReader::open(path).expect("open wav");
    r.samples::<i16>().map(|s| s.expect("sample")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agent_plays_wav_records_caller_and_gets_dtmf() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let cfg = agent_config(&[kam.addr()]);
    let mut agent = sip::start(&cfg).await.expect("agent starts");
    wait_event(&mut agent, Duration::from_secs(10), "Registered", |e| {
        matches!(e, SipEvent::Registered { .. })
    })
    .await;

    let caller_src = melody(7, 10.0);
    let agent_wav_samples = melody(1234, 8.0);
    let dir = tempfile::tempdir().expect("tmp");
    let agent_wav = dir.path().join("prompt.wav");
    write_wav(&agent_wav, &agent_wav_samples);

    let src = caller_src.clone();
    let phone = Arc::new(blocking(move || Baresip::start("1001", kport, "auto", &src)).await);
    let base = free_port_span(40) & !1;
    let ports = PortAllocator::new(base, base + 38).expect("port range");

    let t0 = Instant::now();
    let p = phone.clone();
    blocking(move || p.ctrl("dial", "bot")).await;
    let ev = wait_event(&mut agent, Duration::from_secs(10), "IncomingCall", |e| {
        matches!(e, SipEvent::Call(CallEvent::IncomingCall { .. }))
    })
    .await;
    let SipEvent::Call(CallEvent::IncomingCall {
        call_id, remote, ..
    }) = ev
    else {
        unreachable!()
    };
    // Negotiate as the answer will, to start the media session with the right codec.
    let probe = LocalMedia::new("127.0.0.1:9".parse().expect("addr"));
    let neg = sdp::negotiate(&remote, &probe).expect("common codec");
    let codec = match neg.codec {
        Codec::Pcmu => G711::Pcmu,
        Codec::Pcma => G711::Pcma,
    };
    let mut mcfg = MediaConfig::new("127.0.0.1".parse().expect("ip"), remote.rtp_addr, codec);
    mcfg.dtmf_payload_type = neg.telephone_event_pt;
    let session = MediaSession::start(&ports, mcfg).expect("media session");
    agent
        .send(Command::Answer {
            call_id: call_id.clone(),
            media: LocalMedia::new(session.local_rtp()),
        })
        .expect("answer");
    wait_event(&mut agent, Duration::from_secs(5), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    eprintln!(
        "call set-up with media session (dial -> 200 OK): {:?}",
        t0.elapsed()
    );
    assert!(
        neg.telephone_event_pt.is_some(),
        "baresip offers telephone-event/8000"
    );

    // Play the WAV file.
    let prompt = read_wav(&agent_wav);
    let playback = session.playback();
    for chunk in prompt.chunks_exact(FRAME_SAMPLES) {
        let mut f = [0i16; FRAME_SAMPLES];
        f.copy_from_slice(chunk);
        playback
            .push_timeout(&f, Duration::from_secs(1))
            .expect("queue has room for 8 s");
    }
    // Record the caller for 5 s while baresip presses digits from 2.5 s on.
    let inbound = session.inbound();
    let recorder = std::thread::spawn(move || {
        let mut rec = Vec::new();
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(f) = inbound.recv_timeout(Duration::from_millis(100)) {
                rec.extend_from_slice(&f.samples);
            }
        }
        rec
    });
    tokio::time::sleep(Duration::from_millis(2500)).await;
    for d in ["1", "2", "3", "#"] {
        let p = phone.clone();
        let d = d.to_string();
        blocking(move || p.ctrl("sndcode", &d)).await;
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let rec = blocking(move || recorder.join().expect("recorder")).await;
    let dtmf = session.dtmf_events();
    let mut digits = String::new();
    let end = Instant::now() + Duration::from_secs(2);
    while Instant::now() < end && digits.len() < 4 {
        if let Ok(e) = dtmf.recv_timeout(Duration::from_millis(100)) {
            digits.push(e.digit);
        }
    }
    while let Ok(e) = dtmf.try_recv() {
        digits.push(e.digit);
    }

    agent
        .send(Command::Hangup {
            call_id: call_id.clone(),
        })
        .expect("hangup");
    wait_event(&mut agent, Duration::from_secs(5), "Ended", |e| {
        matches!(e, SipEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    let report = session.stop();
    eprintln!(
        "media: sent {} rtp, received {}, send lateness max {:?}",
        report.stats.rtp_sent, report.stats.rtp_received, report.send_lateness_max
    );
    assert_eq!(digits, "123#", "DTMF in order, each once");

    // The agent's recording of the caller vs baresip's source.
    assert!(rec.len() > 8000 * 3, "recorded {} samples", rec.len());
    let (at, w) = window_of(&rec, 8000);
    let c_ok = best_corr(w, at, &caller_src);
    let c_wrong = best_corr(w, at, &agent_wav_samples);
    eprintln!("agent recording vs caller source: {c_ok:.3} (vs wrong reference {c_wrong:.3})");
    assert!(
        c_ok > 0.9 && c_wrong < 0.6,
        "agent recording must match baresip's source"
    );

    // baresip's recording of what it heard vs the WAV the agent played.
    let p = phone.clone();
    let heard = blocking(move || {
        let mut found = None;
        wait_until(Duration::from_secs(5), || {
            found = p.dumps().0;
            found.is_some()
        });
        std::thread::sleep(Duration::from_millis(300));
        found
    })
    .await
    .expect("baresip wrote dump-...-dec.wav (sndfile module)");
    let heard = read_wav(&heard);
    assert!(
        heard.len() > 8000 * 3,
        "baresip heard {} samples",
        heard.len()
    );
    let (at, w) = window_of(&heard, 8000);
    let h_ok = best_corr(w, at, &agent_wav_samples);
    let h_wrong = best_corr(w, at, &caller_src);
    eprintln!("baresip recording vs agent WAV: {h_ok:.3} (vs wrong reference {h_wrong:.3})");
    assert!(
        h_ok > 0.9 && h_wrong < 0.6,
        "baresip must hear the agent's WAV"
    );
    agent.shutdown().await;
}

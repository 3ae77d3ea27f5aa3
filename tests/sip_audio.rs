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
use tingshuo::rtp::{MediaConfig, MediaSession, PcmFrame, PortAllocator, FRAME_SAMPLES};
use tingshuo::sip::{sdp, CallEvent, Codec, Command, LocalMedia, SipEvent};

/// 100 ms tone segments with pseudo-random frequencies: distinctive at every lag.
fn melody(seed: u64, secs: f32) -> Vec<i16> {
    melody_at(seed, secs, 8000, 3000)
}

/// [`melody`] at `rate` with frequencies from 300 Hz to `top_hz`.
fn melody_at(seed: u64, secs: f32, rate: u32, top_hz: u64) -> Vec<i16> {
    let mut state = seed;
    let mut out = Vec::new();
    let segs = (secs * 10.0) as usize;
    let mut phase = 0f32;
    for _ in 0..segs {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        let hz = 300.0 + ((state >> 33) % (top_hz - 300)) as f32;
        for _ in 0..rate / 10 {
            phase += hz / rate as f32 * std::f32::consts::TAU;
            out.push((phase.sin() * 9000.0) as i16);
        }
    }
    out
}

/// Per-chunk correlation of `heard` against `reference`: `count` chunks of `n` samples
/// from `skip` on, each searched within ±`search` samples of where the previous one
/// matched (the first within ±`first` of its own position). Tolerates the small time
/// shifts of a peer's jitter buffer that lower a whole-window correlation.
fn chunk_corrs(
    heard: &[i16],
    reference: &[i16],
    skip: usize,
    n: usize,
    count: usize,
    first: usize,
) -> Vec<f64> {
    let mut out = Vec::new();
    let mut expect: Option<isize> = None; // reference index minus heard index
    for k in 0..count {
        let at = skip + k * n;
        if at + n > heard.len() {
            break;
        }
        let w = &heard[at..at + n];
        let (center, span) = match expect {
            Some(d) => ((at as isize + d).max(0) as usize, n / 2),
            None => (at, first),
        };
        let c = best_corr_within(w, center, reference, span);
        // Where it matched, for the next chunk.
        let lo = center.saturating_sub(span);
        let hi = (center + span).min(reference.len().saturating_sub(n));
        let mut best = (f64::MIN, lo);
        for lag in (lo..=hi).step_by(1) {
            let r = &reference[lag..lag + n];
            let dot: f64 = w
                .iter()
                .zip(r)
                .map(|(a, b)| f64::from(*a) * f64::from(*b))
                .sum();
            let rn: f64 = r.iter().map(|x| f64::from(*x).powi(2)).sum::<f64>().sqrt();
            let v = dot / rn.max(1.0);
            if v > best.0 {
                best = (v, lag);
            }
        }
        expect = Some(best.1 as isize - at as isize);
        out.push(c);
    }
    out
}

/// Share of chunk correlations above 0.9.
fn good_share(chunks: &[f64]) -> f64 {
    chunks.iter().filter(|c| **c > 0.9).count() as f64 / chunks.len().max(1) as f64
}

/// Share of `x`'s energy above 4 kHz (16 kHz audio), from a plain DFT of 512-sample
/// blocks: what a G.711 path (8 kHz sampling) cannot carry.
fn share_above_4k(x: &[i16]) -> f64 {
    let n = 512;
    let (mut high, mut all) = (0f64, 0f64);
    for block in x.chunks_exact(n).step_by(4).take(40) {
        for k in 1..n / 2 {
            let (mut re, mut im) = (0f64, 0f64);
            for (i, s) in block.iter().enumerate() {
                let a = std::f64::consts::TAU * (k * i) as f64 / n as f64;
                re += f64::from(*s) * a.cos();
                im -= f64::from(*s) * a.sin();
            }
            let p = re * re + im * im;
            all += p;
            if k * 16_000 / n >= 4000 {
                high += p;
            }
        }
    }
    high / all.max(1.0)
}

/// Best normalised cross-correlation of `window` (taken at `at` in its recording)
/// against `reference` shifted by up to ±1.5 s (call set-up and buffering delays).
fn best_corr(window: &[i16], at: usize, reference: &[i16]) -> f64 {
    best_corr_within(window, at, reference, 12_000)
}

/// [`best_corr`] with lags up to ±`max_lag` samples.
fn best_corr_within(window: &[i16], at: usize, reference: &[i16], max_lag: usize) -> f64 {
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
    let lo = at.saturating_sub(max_lag);
    let hi = (at + max_lag).min(r.len() - n);
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
    window_of_len(rec, skip, 2000, 8000)
}

/// [`window_of`] with a window of `n` samples searched over `span` samples.
fn window_of_len(rec: &[i16], skip: usize, n: usize, span: usize) -> (usize, &[i16]) {
    let mut best = (0usize, 0f64);
    let mut i = skip;
    while i + n <= rec.len() && i < skip + span {
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
    let mut agent = registered_ua(&kam).await;

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
    let codec = neg.codec;
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
    let heard = blocking(move || p.heard_dump())
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

/// An HD-voice phone (baresip with its g722 module, G.722 offered first) calls the agent
/// through Kamailio: the agent answers G.722, and 16 kHz audio with content up to 7 kHz
/// goes both ways (correlation against the right and a wrong reference, and the share
/// of energy above 4 kHz that G.711 could not carry).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn g722_call_carries_wideband_audio_both_ways() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;

    let caller_src = melody_at(7, 10.0, 16_000, 7000);
    let agent_says = melody_at(1234, 8.0, 16_000, 7000);
    let src = caller_src.clone();
    let phone = Arc::new(
        blocking(move || Baresip::start_with("1001", kport, "auto", &src, &G722_PHONE)).await,
    );
    let base = free_port_span(40) & !1;
    let ports = PortAllocator::new(base, base + 38).expect("port range");

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
    let offered: Vec<_> = remote.payloads.iter().map(|p| (p.pt, p.codec)).collect();
    let probe = LocalMedia::new("127.0.0.1:9".parse().expect("addr"));
    let neg = sdp::negotiate(&remote, &probe).expect("common codec");
    assert_eq!(
        (neg.codec, neg.pt),
        (Codec::G722, 9),
        "baresip's offer {offered:?} includes G.722 and the agent takes it"
    );
    let mut mcfg = MediaConfig::new("127.0.0.1".parse().expect("ip"), remote.rtp_addr, neg.codec);
    mcfg.dtmf_payload_type = neg.telephone_event_pt;
    let session = MediaSession::start(&ports, mcfg).expect("media session");
    assert_eq!(session.audio_rate(), 16_000);
    agent
        .send(Command::Answer {
            call_id: call_id.clone(),
            media: LocalMedia::new(session.local_rtp()),
        })
        .expect("answer");
    let answered = wait_event(&mut agent, Duration::from_secs(5), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = answered else {
        unreachable!()
    };
    assert_eq!(negotiated.codec, Codec::G722, "the UA answered G.722");

    let playback = session.playback();
    for chunk in agent_says.chunks_exact(320) {
        let f = PcmFrame::from_samples(chunk).expect("320 samples");
        playback
            .push_timeout(&f, Duration::from_secs(1))
            .expect("queue has room for 8 s");
    }
    let inbound = session.inbound();
    let recorder = std::thread::spawn(move || {
        let mut rec = Vec::new();
        let mut narrow = 0;
        let end = Instant::now() + Duration::from_secs(5);
        while Instant::now() < end {
            if let Ok(f) = inbound.recv_timeout(Duration::from_millis(100)) {
                if !f.samples.is_wideband() {
                    narrow += 1;
                }
                rec.extend_from_slice(&f.samples);
            }
        }
        (rec, narrow)
    });
    let (rec, narrow_frames) = blocking(move || recorder.join().expect("recorder")).await;
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
    let per_packet =
        report.stats.rtp_bytes_received as f64 / report.stats.rtp_received.max(1) as f64;
    eprintln!(
        "G.722 media: sent {} rtp, received {} ({per_packet:.0} bytes each), send lateness max {:?}",
        report.stats.rtp_sent, report.stats.rtp_received, report.send_lateness_max
    );
    assert_eq!(narrow_frames, 0, "every inbound frame is 16 kHz");
    assert_eq!(
        per_packet.round() as u32,
        172,
        "12-byte header + 160 bytes of G.722"
    );

    // The agent heard baresip's 16 kHz source, its upper band included.
    assert!(rec.len() > 16_000 * 3, "recorded {} samples", rec.len());
    let chunks = chunk_corrs(&rec, &caller_src, 16_000, 1600, 20, 24_000);
    eprintln!("agent heard, per 100 ms chunk: {chunks:.3?}");
    let (at, w) = window_of_len(&rec, 16_000, 4000, 16_000);
    let c_ok = best_corr_within(w, at, &caller_src, 24_000);
    let c_wrong = best_corr_within(w, at, &agent_says, 24_000);
    let (hi_rec, hi_src) = (share_above_4k(&rec[16_000..]), share_above_4k(&caller_src));
    eprintln!(
        "agent heard baresip: correlation {c_ok:.3} (wrong reference {c_wrong:.3}); energy above 4 kHz {:.0} % (source {:.0} %)",
        hi_rec * 100.0,
        hi_src * 100.0
    );
    // ADPCM needs a few ms to adapt after each abrupt tone change, so a chunk over a
    // change correlates less: judge the chunks, not one window over several changes.
    assert!(
        good_share(&chunks) >= 0.8 && c_wrong < 0.6,
        "agent must hear baresip's source: chunks {chunks:.3?}, wrong reference {c_wrong:.3}"
    );
    assert!(
        hi_src > 0.3 && hi_rec > 0.5 * hi_src,
        "the upper band arrived"
    );

    // baresip heard the agent's 16 kHz melody.
    let p = phone.clone();
    let heard = blocking(move || p.heard_dump())
        .await
        .expect("baresip wrote dump-...-dec.wav (sndfile module)");
    let rate = hound::WavReader::open(&heard)
        .expect("dump")
        .spec()
        .sample_rate;
    let heard = read_wav(&heard);
    assert_eq!(rate, 16_000, "baresip decoded 16 kHz audio");
    assert!(
        heard.len() > 16_000 * 3,
        "baresip heard {} samples",
        heard.len()
    );
    let chunks = chunk_corrs(&heard, &agent_says, 16_000, 1600, 20, 24_000);
    eprintln!("baresip heard, per 100 ms chunk: {chunks:.3?}");
    let (at, w) = window_of_len(&heard, 16_000, 4000, 16_000);
    let h_ok = best_corr_within(w, at, &agent_says, 24_000);
    let h_wrong = best_corr_within(w, at, &caller_src, 24_000);
    let hi_heard = share_above_4k(&heard[16_000..]);
    eprintln!(
        "baresip heard the agent: correlation {h_ok:.3} (wrong reference {h_wrong:.3}); energy above 4 kHz {:.0} %",
        hi_heard * 100.0
    );
    assert!(
        good_share(&chunks) >= 0.8 && h_wrong < 0.6,
        "baresip must hear the agent's melody: chunks {chunks:.3?}, wrong reference {h_wrong:.3}"
    );
    assert!(
        hi_heard > 0.5 * share_above_4k(&agent_says),
        "the upper band arrived"
    );
    agent.shutdown().await;
}

/// The same phone limited to G.711 (no g722 module): the agent falls back to PCMU.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn phone_without_g722_falls_back_to_g711() {
    let kam = blocking(Kamailio::start).await;
    let kport = kam.port;
    let mut agent = registered_ua(&kam).await;
    let src = melody(3, 3.0);
    let phone = Arc::new(blocking(move || Baresip::start("1001", kport, "auto", &src)).await);
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
    assert!(remote.payloads.iter().all(|p| p.codec != Some(Codec::G722)));
    // Answer with the same local media as a G.722 call (G.722 first in our list).
    let (_rtp, rtp_addr) = media_socket();
    agent
        .send(Command::Answer {
            call_id: call_id.clone(),
            media: LocalMedia::new(rtp_addr),
        })
        .expect("answer");
    let answered = wait_event(&mut agent, Duration::from_secs(5), "Answered", |e| {
        matches!(e, SipEvent::Call(CallEvent::Answered { .. }))
    })
    .await;
    let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = answered else {
        unreachable!()
    };
    assert_eq!(
        (negotiated.codec, negotiated.pt),
        (Codec::Pcmu, 0),
        "first G.711 law of baresip's offer"
    );
    agent.send(Command::Hangup { call_id }).expect("hangup");
    wait_event(&mut agent, Duration::from_secs(5), "Ended", |e| {
        matches!(e, SipEvent::Call(CallEvent::Ended { .. }))
    })
    .await;
    agent.shutdown().await;
}

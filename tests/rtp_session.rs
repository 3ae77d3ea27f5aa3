//! Two media sessions on loopback: audio both ways (symmetric RTP), DTMF, barge-in flush,
//! STUN/garbage on the RTP port, RTCP. Prints the measured send jitter; asserts no timing.

#[path = "support/entropy.rs"]
mod entropy;

use std::net::{IpAddr, Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tingshuo::codec::G711;
use tingshuo::rtp::session::{MediaConfig, MediaSession, PortAllocator};
use tingshuo::rtp::{RtpError, FRAME_SAMPLES};

const LO: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// A linear chirp 300 → 3000 Hz: correlates with itself at exactly one lag.
/// These tests measure real-time behaviour (pacing, jitter depth, what the peer hears
/// within a window after a flush): run them one at a time so one test's CPU load does
/// not move another's timing windows on a 2-core machine.
static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}

fn chirp(seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * 8000.0) as usize;
    let (f0, f1) = (300.0, 3000.0);
    (0..n)
        .map(|i| {
            let t = i as f64 / 8000.0;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds));
            (amplitude * phase.sin()) as i16
        })
        .collect()
}

fn tone(seconds: f64, hz: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * 8000.0) as usize;
    (0..n)
        .map(|i| (amplitude * (2.0 * std::f64::consts::PI * hz * i as f64 / 8000.0).sin()) as i16)
        .collect()
}

fn queue_all(session: &MediaSession, pcm: &[i16]) {
    let q = session.playback();
    for chunk in pcm.chunks(FRAME_SAMPLES) {
        let mut f = [0i16; FRAME_SAMPLES];
        f[..chunk.len()].copy_from_slice(chunk);
        q.push_timeout(&f, Duration::from_secs(2))
            .expect("playback queue accepts the frame");
    }
}

/// Best normalised cross-correlation of `sent` within `heard[from..from + span + sent.len()]`.
fn best_correlation_in(sent: &[i16], heard: &[i16], from: usize, span: usize) -> (f64, usize) {
    let energy = |s: &[i16]| s.iter().map(|&x| (x as f64).powi(2)).sum::<f64>();
    let es = energy(sent);
    let mut best = (0.0, 0);
    let last = (from + span).min(heard.len().saturating_sub(sent.len()));
    for lag in from..=last {
        let w = &heard[lag..lag + sent.len()];
        let dot: f64 = sent.iter().zip(w).map(|(&a, &b)| a as f64 * b as f64).sum();
        let eh = energy(w);
        if eh > 0.0 {
            let c = dot / (es * eh).sqrt();
            if c > best.0 {
                best = (c, lag);
            }
        }
    }
    best
}

/// Fraction of 200 ms chunks of `sent` found in order in `heard` with correlation > 0.9,
/// and the whole-signal correlation at the first chunk's lag (for the report). Chunks
/// tolerate the time shifts a loaded CI machine causes (a stalled thread makes the
/// jitter buffer conceal and re-align).
fn match_audio(sent: &[i16], heard: &[i16]) -> (f64, usize, f64) {
    let chunk = 1600;
    let n = sent.len() / chunk;
    let (mut good, mut start, mut span) = (0, 0, 4000);
    let mut first_lag = None;
    for i in 0..n {
        let part = &sent[i * chunk..(i + 1) * chunk];
        let (c, at) = best_correlation_in(part, heard, start, span);
        if c > 0.9 {
            good += 1;
            first_lag.get_or_insert(at.saturating_sub(i * chunk));
            start = at + chunk / 2;
            span = chunk;
        } else {
            span += chunk;
        }
    }
    let lag = first_lag.unwrap_or(0);
    let whole = best_correlation_in(sent, heard, lag, 0).0;
    (whole, lag, good as f64 / n as f64)
}

fn config(remote: Option<SocketAddr>) -> MediaConfig {
    let mut c = MediaConfig::new(LO, remote, G711::Pcma);
    c.dtmf_payload_type = Some(101);
    c.rtcp_interval = Duration::from_millis(500);
    c.tap_outbound = true;
    c
}

#[test]
fn two_sessions_exchange_audio_and_measure_send_jitter() {
    let _serial = serial();
    let ports: Arc<PortAllocator> = PortAllocator::new(47300, 47319).unwrap();
    // B does not know A's address (as when answering without usable SDP): it learns it
    // from A's packets (symmetric RTP).
    let b = MediaSession::start(&ports, config(None)).unwrap();
    let a = MediaSession::start(&ports, config(Some(b.local_rtp()))).unwrap();
    assert_eq!(a.local_rtp().port() % 2, 0);

    // Collect both directions concurrently (each inbound channel holds only 1 s).
    let collector = |s: &MediaSession| {
        let rx = s.inbound();
        std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_millis(3600);
            let mut frames = Vec::new();
            while let Some(left) = end.checked_duration_since(Instant::now()) {
                if let Ok(f) = rx.recv_timeout(left) {
                    frames.push(f);
                }
            }
            frames
        })
    };
    let a_rx = collector(&a);
    let b_rx = collector(&b);

    let a_says = chirp(3.0, 12000.0);
    let b_says = tone(2.0, 700.0, 9000.0);
    queue_all(&a, &a_says);
    // Hostile/odd traffic on B's RTP port: STUN, garbage, and valid RTP from a stranger.
    let stranger = UdpSocket::bind((LO, 0)).unwrap();
    let mut stun = vec![0x00, 0x01, 0x00, 0x00, 0x21, 0x12, 0xA4, 0x42];
    stun.extend_from_slice(&[9; 12]);
    std::thread::sleep(Duration::from_millis(200));
    stranger.send_to(&stun, b.local_rtp()).unwrap();
    stranger
        .send_to(b"\x16\xfe\xfd garbage", b.local_rtp())
        .unwrap();
    stranger
        .send_to(
            &[0x80, 8, 0, 1, 0, 0, 0, 0, 0, 0, 0, 5, 0xD5, 0xD5],
            b.local_rtp(),
        )
        .unwrap();
    // B answers once it has heard A.
    queue_all(&b, &b_says);

    let b_frames = b_rx.join().unwrap();
    let a_frames = a_rx.join().unwrap();
    let (sa, sb) = (a.stats(), b.stats());
    let local_a = a.local_rtp();
    let ra = a.stop();
    let rb = b.stop();
    assert_eq!(ports.in_use(), 0, "ports returned");

    let heard_by_b: Vec<i16> = b_frames.iter().flat_map(|f| f.samples).collect();
    let (corr_b, lag_b, chunks_b) = match_audio(&a_says, &heard_by_b);
    assert!(
        chunks_b >= 0.8,
        "B heard A's chirp: {:.0}% of 200 ms chunks match (whole-signal correlation {corr_b:.3})",
        chunks_b * 100.0
    );

    let heard_by_a: Vec<i16> = a_frames.iter().flat_map(|f| f.samples).collect();
    let (corr_a, _, chunks_a) = match_audio(&b_says[..8000], &heard_by_a);
    assert!(
        chunks_a >= 0.8,
        "A heard B's tone: {:.0}% of chunks match (correlation {corr_a:.3})",
        chunks_a * 100.0
    );

    assert_eq!(sb.stun_dropped, 1, "{sb:?}");
    assert_eq!(sb.garbage_dropped, 1, "{sb:?}");
    assert_eq!(sb.foreign_dropped, 1, "{sb:?}");
    assert_eq!(
        sb.remote,
        Some(local_a),
        "B latched onto A's source address"
    );
    assert_eq!(sb.jitter.lost, 0);
    assert!(
        sb.jitter.received >= 150,
        "all of A's packets arrived: {sb:?}"
    );
    assert!(sb.rtcp_received >= 2, "{sb:?}");
    assert!(
        sa.rtt.is_some(),
        "A computed a round-trip time from B's reports: {sa:?}"
    );
    eprintln!(
        "A→B chirp correlation {corr_b:.4} at lag {lag_b} samples ({} ms end-to-end incl. \
         jitter buffer); B→A tone correlation {corr_a:.4}",
        lag_b / 8
    );
    for (name, r) in [("A", &ra), ("B", &rb)] {
        eprintln!(
            "{name}: {} ticks, send lateness p50 {:?} p99 {:?} max {:?}; processing per 20 ms \
             frame mean {:?} max {:?}; rx jitter {:.3} ms; rtt {:?}",
            r.ticks,
            r.send_lateness_p50,
            r.send_lateness_p99,
            r.send_lateness_max,
            r.tick_mean,
            r.tick_max,
            r.stats.jitter.jitter_ms,
            r.stats.rtt,
        );
    }
}

#[test]
fn dtmf_digits_arrive_once_and_in_order() {
    let _serial = serial();
    let ports = PortAllocator::new(47320, 47329).unwrap();
    let b = MediaSession::start(&ports, config(None)).unwrap();
    let a = MediaSession::start(&ports, config(Some(b.local_rtp()))).unwrap();
    for d in "19#*0A".chars() {
        a.send_dtmf(d, Duration::from_millis(60)).unwrap();
    }
    assert!(matches!(
        a.send_dtmf('x', Duration::from_millis(60)),
        Err(RtpError::InvalidDigit('x'))
    ));
    let mut no_events = config(None);
    no_events.dtmf_payload_type = None;
    let c = MediaSession::start(&ports, no_events).unwrap();
    assert!(matches!(
        c.send_dtmf('1', Duration::from_millis(60)),
        Err(RtpError::DtmfNotNegotiated)
    ));
    drop(c);
    let rx = b.dtmf_events();
    let mut got = String::new();
    let end = Instant::now() + Duration::from_secs(3);
    while got.len() < 6 && Instant::now() < end {
        if let Ok(ev) = rx.recv_timeout(Duration::from_millis(100)) {
            got.push(ev.digit);
        }
    }
    // Wait for trailing repeated end packets to be sure none is reported twice.
    std::thread::sleep(Duration::from_millis(200));
    got.extend(rx.try_iter().map(|e| e.digit));
    assert_eq!(got, "19#*0A");
    assert_eq!(a.stats().dtmf_sent, 6);
    assert_eq!(b.stats().dtmf_received, 6);
    assert_eq!(
        b.stats().jitter.lost,
        0,
        "event packets count in the sequence space"
    );
}

#[test]
fn flush_silences_the_very_next_packet() {
    let _serial = serial();
    let ports = PortAllocator::new(47330, 47339).unwrap();
    let b = MediaSession::start(&ports, config(None)).unwrap();
    let a = MediaSession::start(&ports, config(Some(b.local_rtp()))).unwrap();
    let tap = a.outbound_tap().unwrap();
    let b_in = b.inbound();
    let b_collector = std::thread::spawn(move || {
        let mut v = Vec::new();
        while let Ok(f) = b_in.recv_timeout(Duration::from_millis(300)) {
            v.push(f);
            if v.len() >= 200 {
                break;
            }
        }
        v
    });
    let tap_collector = std::thread::spawn(move || {
        let mut v = Vec::new();
        while let Ok(f) = tap.recv_timeout(Duration::from_millis(300)) {
            v.push(f);
            if v.len() >= 200 {
                break;
            }
        }
        v
    });
    queue_all(&a, &tone(4.0, 500.0, 10000.0));
    std::thread::sleep(Duration::from_millis(600));
    let flushed_at = Instant::now();
    a.playback().flush();
    // Something new queued after the flush (the agent's reply to the barge-in) does play.
    let reply = tone(0.2, 900.0, 8000.0);
    // Long enough for B to drain its jitter buffer and play silence before the reply
    // even when the machine is loaded (see the checks on B below).
    std::thread::sleep(Duration::from_millis(1000));
    let replied_at = Instant::now();
    queue_all(&a, &reply);
    std::thread::sleep(Duration::from_millis(500));

    let sent = tap_collector.join().unwrap();
    let before = sent
        .iter()
        .filter(|f| f.at < flushed_at && f.speech)
        .count();
    assert!(
        before >= 20,
        "the long line was playing before the flush ({before} frames)"
    );
    let between: Vec<_> = sent
        .iter()
        .filter(|f| f.at > flushed_at && f.at < replied_at)
        .collect();
    assert!(!between.is_empty());
    assert!(
        between.iter().all(|f| !f.speech),
        "every packet after the flush is silence"
    );
    let after = sent
        .iter()
        .filter(|f| f.at > replied_at && f.speech)
        .count();
    assert_eq!(after, 10, "the 200 ms reply queued after the flush is sent");
    assert!(a.stats().flushed_frames > 100);
    // What B plays is judged by cause, not by a fixed delay: B's playout lags A's
    // sending by its jitter buffer and by scheduling, which on a loaded machine is
    // anything from 40 ms to hundreds. Before the reply was queued (`replied_at`),
    // every loud frame B plays must be one A sent before the flush (a couple more for
    // concealment of a late packet), and B must then play silence.
    let b_frames = b_collector.join().unwrap();
    let loud = |f: &&tingshuo::rtp::session::InboundFrame| f.samples.iter().any(|&s| s.abs() >= 50);
    let pre_reply: Vec<_> = b_frames.iter().filter(|f| f.at < replied_at).collect();
    let loud_at_b = pre_reply.iter().filter(|f| loud(f)).count();
    let timeline: Vec<(u128, i16)> = pre_reply
        .iter()
        .filter(|f| f.at > flushed_at)
        .map(|f| {
            (
                f.at.duration_since(flushed_at).as_millis(),
                f.samples.iter().map(|s| s.abs()).max().unwrap_or(0),
            )
        })
        .collect();
    assert!(
        loud_at_b <= before + 2,
        "the peer hears silence after the flush: it played {loud_at_b} loud frames, A sent \
         {before} before the flush; after the flush (ms, peak): {timeline:?}"
    );
    let last_loud = pre_reply.iter().rposition(loud).map_or(0, |i| i + 1);
    let silent_tail = pre_reply.len() - last_loud;
    assert!(
        silent_tail >= 8,
        "the peer then plays silence until the reply ({silent_tail} silent frames); after the \
         flush (ms, peak): {timeline:?}"
    );
    let heard_before = b_frames
        .iter()
        .filter(|f| f.at < flushed_at && f.samples.iter().any(|&s| s.abs() > 5000))
        .count();
    assert!(heard_before > 0, "the peer heard the line before the flush");
}

#[test]
fn hold_pauses_sending_and_keeps_the_queue() {
    let _serial = serial();
    let ports = PortAllocator::new(47340, 47349).unwrap();
    let b = MediaSession::start(&ports, config(None)).unwrap();
    let a = MediaSession::start(&ports, config(Some(b.local_rtp()))).unwrap();
    queue_all(&a, &tone(2.0, 500.0, 10000.0));
    std::thread::sleep(Duration::from_millis(300));
    a.set_sending(false);
    std::thread::sleep(Duration::from_millis(100));
    let (sent, queued) = (a.stats().rtp_sent, a.playback().len());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(a.stats().rtp_sent, sent, "nothing sent while on hold");
    assert_eq!(a.playback().len(), queued, "the line waits in the queue");
    assert!(
        b.stats().frames_delivered > 25,
        "B's pipeline clock keeps ticking"
    );
    a.set_sending(true);
    std::thread::sleep(Duration::from_millis(300));
    let resumed = a.stats();
    assert!(resumed.rtp_sent >= sent + 10, "{resumed:?}");
    assert!(a.playback().len() < queued);
}

/// SRTP between two sessions through a relay that records the wire and injects a replayed
/// and a tampered packet: audio arrives intact, the wire payload looks random, the bad
/// packets are dropped and counted, and the call goes on.
#[test]
fn srtp_sessions_exchange_audio_and_drop_replayed_and_tampered_packets() {
    let _serial = serial();
    use tingshuo::rtp::srtp::{CryptoAttr, SrtpKeys, Suite};
    let ports: Arc<PortAllocator> = PortAllocator::new(47340, 47359).unwrap();
    let ka = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let kb = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let relay = UdpSocket::bind((LO, 0)).unwrap();
    relay
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let relay_addr = relay.local_addr().unwrap();
    let mut cb = config(Some(relay_addr));
    cb.srtp = Some(SrtpKeys {
        local: kb.clone(),
        remote: ka.clone(),
    });
    let b = MediaSession::start(&ports, cb).unwrap();
    let mut ca = config(Some(relay_addr));
    ca.srtp = Some(SrtpKeys {
        local: ka,
        remote: kb,
    });
    let a = MediaSession::start(&ports, ca).unwrap();
    let (a_addr, b_addr) = (a.local_rtp(), b.local_rtp());
    let relay_thread = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_millis(3800);
        let mut wire_payload = Vec::new();
        let mut buf = [0u8; 2048];
        let mut forwarded = 0u32;
        while Instant::now() < end {
            let Ok((n, from)) = relay.recv_from(&mut buf) else {
                continue;
            };
            let to = if from == a_addr { b_addr } else { a_addr };
            relay.send_to(&buf[..n], to).unwrap();
            if from == a_addr && n > 12 {
                wire_payload.extend_from_slice(&buf[12..n]);
                forwarded += 1;
                if forwarded == 20 {
                    // Replay this packet, then a tampered copy of the next one.
                    relay.send_to(&buf[..n], b_addr).unwrap();
                }
                if forwarded == 30 {
                    let mut bad = buf[..n].to_vec();
                    bad[2] = bad[2].wrapping_add(0x40); // a sequence number never seen
                    bad[20] ^= 0x5A;
                    relay.send_to(&bad, b_addr).unwrap();
                }
            }
        }
        wire_payload
    });
    let rx = b.inbound();
    let collector = std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_millis(3600);
        let mut frames = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(f) = rx.recv_timeout(left) {
                frames.push(f);
            }
        }
        frames
    });
    let a_says = chirp(3.0, 12000.0);
    queue_all(&a, &a_says);
    let b_frames = collector.join().unwrap();
    let wire = relay_thread.join().unwrap();
    let sb = b.stats();
    a.stop();
    b.stop();

    let heard: Vec<i16> = b_frames.iter().flat_map(|f| f.samples).collect();
    let (corr, _, chunks) = match_audio(&a_says, &heard);
    assert!(
        chunks >= 0.8,
        "B heard A's chirp through SRTP: {:.0}% of chunks match (correlation {corr:.3})",
        chunks * 100.0
    );
    assert_eq!(sb.srtp.replayed, 1, "{:?}", sb.srtp);
    assert_eq!(sb.srtp.auth_failed, 1, "{:?}", sb.srtp);
    // The relay forwards RTP only (RTCP goes to its port + 1, where nobody listens);
    // SRTCP is covered by the unit tests in src/rtp/srtp.rs.
    let h = entropy::entropy_bits_per_byte(&wire);
    eprintln!(
        "SRTP wire payload entropy {h:.3} bits/byte over {} bytes; drops {:?}",
        wire.len(),
        sb.srtp
    );
    assert!(h >= 7.5, "SRTP payload must look random: {h:.3} bits/byte");
}

/// A chirp at 16 kHz reaching up to 7 kHz (beyond G.711's 4 kHz band).
fn chirp16(seconds: f64, amplitude: f64) -> Vec<i16> {
    let n = (seconds * 16_000.0) as usize;
    let (f0, f1) = (300.0, 7000.0);
    (0..n)
        .map(|i| {
            let t = i as f64 / 16_000.0;
            let phase = 2.0 * std::f64::consts::PI * (f0 * t + (f1 - f0) * t * t / (2.0 * seconds));
            (amplitude * phase.sin()) as i16
        })
        .collect()
}

fn queue_all16(session: &MediaSession, pcm: &[i16]) {
    let q = session.playback();
    for chunk in pcm.chunks_exact(320) {
        let f = tingshuo::rtp::PcmFrame::from_samples(chunk).expect("320 samples");
        q.push_timeout(&f, Duration::from_secs(2))
            .expect("playback queue accepts the frame");
    }
}

fn collect_for(
    s: &MediaSession,
    ms: u64,
) -> std::thread::JoinHandle<Vec<tingshuo::rtp::session::InboundFrame>> {
    let rx = s.inbound();
    std::thread::spawn(move || {
        let end = Instant::now() + Duration::from_millis(ms);
        let mut frames = Vec::new();
        while let Some(left) = end.checked_duration_since(Instant::now()) {
            if let Ok(f) = rx.recv_timeout(left) {
                frames.push(f);
            }
        }
        frames
    })
}

/// G.722 on the wire: payload type 9, 160 bytes per 20 ms, timestamps advancing by 160
/// (RFC 3551: the RTP clock is 8 kHz though the audio is 16 kHz); a G.722 peer session
/// hears the 16 kHz chirp, 7 kHz top included.
#[test]
fn g722_sessions_carry_wideband_audio_with_the_8k_rtp_clock() {
    let _serial = serial();
    let ports: Arc<PortAllocator> = PortAllocator::new(47360, 47379).unwrap();
    // What goes on the wire, seen by a raw socket.
    let raw = UdpSocket::bind((LO, 0)).unwrap();
    raw.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut cfg = MediaConfig::new(
        LO,
        Some(raw.local_addr().unwrap()),
        tingshuo::codec::AudioCodec::G722,
    );
    cfg.tap_outbound = true;
    let wire = MediaSession::start(&ports, cfg).unwrap();
    assert_eq!(wire.audio_rate(), 16_000);
    queue_all16(&wire, &chirp16(0.2, 9000.0));
    let mut last_ts: Option<u32> = None;
    let mut buf = [0u8; 2048];
    for _ in 0..8 {
        let (n, _) = raw.recv_from(&mut buf).expect("an RTP packet");
        assert_eq!(buf[1] & 0x7f, 9, "payload type 9");
        assert_eq!(n, 12 + 160, "a 20 ms G.722 frame is 160 bytes");
        let ts = u32::from_be_bytes([buf[4], buf[5], buf[6], buf[7]]);
        if let Some(prev) = last_ts {
            assert_eq!(ts.wrapping_sub(prev), 160, "timestamp step");
        }
        last_ts = Some(ts);
    }
    let sent = wire
        .outbound_tap()
        .unwrap()
        .recv_timeout(Duration::from_secs(1))
        .unwrap();
    assert!(
        sent.samples.is_wideband(),
        "the tap shows the 16 kHz frame sent"
    );
    wire.stop();

    let b = MediaSession::start(
        &ports,
        MediaConfig::new(LO, None, tingshuo::codec::AudioCodec::G722),
    )
    .unwrap();
    let a = MediaSession::start(
        &ports,
        MediaConfig::new(LO, Some(b.local_rtp()), tingshuo::codec::AudioCodec::G722),
    )
    .unwrap();
    let b_rx = collect_for(&b, 3400);
    let says = chirp16(3.0, 9000.0);
    queue_all16(&a, &says);
    let frames = b_rx.join().unwrap();
    let st = b.stats();
    a.stop();
    b.stop();
    assert!(
        frames.iter().all(|f| f.samples.is_wideband()),
        "every frame is 16 kHz"
    );
    let heard: Vec<i16> = frames.iter().flat_map(|f| f.samples).collect();
    let (corr, lag, chunks) = match_audio(&says, &heard);
    eprintln!(
        "G.722 loopback: {:.0}% of 100 ms chunks match, whole-signal correlation {corr:.3} at lag {lag}, {} packets, {} bytes",
        chunks * 100.0,
        st.rtp_received,
        st.rtp_bytes_received
    );
    assert!(
        chunks >= 0.8,
        "B heard A's 300-7000 Hz chirp: {:.0}% of chunks",
        chunks * 100.0
    );
    // The last second of the chirp is all above 5 kHz: G.711 could not carry it.
    let top = &says[says.len() - 16_000..says.len() - 12_800];
    let (c, _) = best_correlation_in(top, &heard, 0, heard.len());
    assert!(
        c > 0.9,
        "the chirp above 5 kHz arrived (correlation {c:.3})"
    );
}

/// The transfer relay pushes one leg's frames into the other leg's playback queue;
/// when the legs negotiated different codecs the media thread converts the rate before
/// encoding: 8 kHz audio into a G.722 leg and 16 kHz audio into a G.711 leg both arrive.
#[test]
fn playback_frames_at_the_other_rate_are_transcoded() {
    let _serial = serial();
    let ports: Arc<PortAllocator> = PortAllocator::new(47380, 47399).unwrap();
    use tingshuo::codec::AudioCodec;
    // 8 kHz chirp → G.722 leg → a G.722 listener hears it (at 16 kHz).
    let wide_rx =
        MediaSession::start(&ports, MediaConfig::new(LO, None, AudioCodec::G722)).unwrap();
    let wide_tx = MediaSession::start(
        &ports,
        MediaConfig::new(LO, Some(wide_rx.local_rtp()), AudioCodec::G722),
    )
    .unwrap();
    // 16 kHz chirp → PCMA leg → an A-law listener hears it (at 8 kHz).
    let narrow_rx = MediaSession::start(&ports, MediaConfig::new(LO, None, G711::Pcma)).unwrap();
    let narrow_tx = MediaSession::start(
        &ports,
        MediaConfig::new(LO, Some(narrow_rx.local_rtp()), G711::Pcma),
    )
    .unwrap();
    let heard_wide = collect_for(&wide_rx, 2600);
    let heard_narrow = collect_for(&narrow_rx, 2600);
    let narrow_chirp = chirp(2.0, 9000.0);
    queue_all(&wide_tx, &narrow_chirp);
    // The same 300-3000 Hz chirp made at 16 kHz.
    let wide_chirp: Vec<i16> = {
        let n = 32_000usize;
        (0..n)
            .map(|i| {
                let t = i as f64 / 16_000.0;
                let phase = 2.0 * std::f64::consts::PI * (300.0 * t + 2700.0 * t * t / 4.0);
                (9000.0 * phase.sin()) as i16
            })
            .collect()
    };
    queue_all16(&narrow_tx, &wide_chirp);
    let wide = heard_wide.join().unwrap();
    let narrow = heard_narrow.join().unwrap();
    for s in [wide_rx, wide_tx, narrow_rx, narrow_tx] {
        s.stop();
    }
    assert!(wide.iter().all(|f| f.samples.is_wideband()));
    assert!(narrow.iter().all(|f| !f.samples.is_wideband()));
    let heard: Vec<i16> = wide.iter().flat_map(|f| f.samples).collect();
    let (c16, _, chunks16) = match_audio(&wide_chirp, &heard);
    let heard: Vec<i16> = narrow.iter().flat_map(|f| f.samples).collect();
    let (c8, _, chunks8) = match_audio(&narrow_chirp, &heard);
    eprintln!(
        "8 kHz frames over G.722: {:.0}% chunks (corr {c16:.3}); 16 kHz frames over PCMA: {:.0}% chunks (corr {c8:.3})",
        chunks16 * 100.0,
        chunks8 * 100.0
    );
    assert!(
        chunks16 >= 0.8,
        "8 kHz audio through a G.722 leg: {:.0}%",
        chunks16 * 100.0
    );
    assert!(
        chunks8 >= 0.8,
        "16 kHz audio through a PCMA leg: {:.0}%",
        chunks8 * 100.0
    );
}

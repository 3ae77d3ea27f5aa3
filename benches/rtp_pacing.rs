//! RTP media benchmark (`cargo bench --bench rtp_pacing`; `RTP_BENCH_SECS`, default 60).
//!
//! 1. CPU cost of one 20 ms frame on the media path, measured in a tight loop:
//!    parse + jitter-buffer push (G.711 decode) + pop, and G.711 encode + RTP build;
//!    then the same for G.722 (16 kHz, 320 samples ↔ 160 bytes), and G.722 encode +
//!    decode alone.
//! 2. A real call on loopback between two media sessions for `RTP_BENCH_SECS`: send
//!    lateness against the ideal 20 ms grid (p50/p99/max), inter-arrival jitter seen by
//!    the receiver, per-tick processing time, loss.

use std::hint::black_box;
use std::net::{IpAddr, Ipv4Addr};
use std::time::{Duration, Instant};
use tingshuo::codec::G711;
use tingshuo::rtp::session::{MediaConfig, MediaSession, PortAllocator};
use tingshuo::rtp::{JitterBuffer, JitterConfig, RtpHeader, RtpPacket, RtpStream, FRAME_SAMPLES};

fn cpu_per_frame() {
    let frames = 200_000u32;
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let mut stream = RtpStream::new(1, 0, 0);
    let pcm: Vec<i16> = (0..FRAME_SAMPLES)
        .map(|i| ((i as f32 * 0.3).sin() * 8000.0) as i16)
        .collect();
    let mut buf = [0u8; 512];
    let t0 = Instant::now();
    let start = Instant::now();
    for n in 0..frames {
        let at = t0 + Duration::from_millis(20 * n as u64);
        // Send side: encode and build.
        let h: RtpHeader = stream.audio_header(8, n as u64, true);
        let len = h
            .write_with(&mut buf, |p| G711::Pcma.encode(&pcm, p))
            .expect("fits");
        // Receive side: parse, buffer (decode), play out.
        let pkt = RtpPacket::parse(&buf[..len]).expect("valid");
        jb.push(&pkt, at);
        black_box(jb.pop_frame(at + Duration::from_millis(1)));
    }
    let per = start.elapsed() / frames;
    println!(
        "cpu per 20 ms frame (encode+build+parse+buffer+decode+pop): {:.2} µs = {:.5} ms ({} frames)",
        per.as_nanos() as f64 / 1000.0,
        per.as_secs_f64() * 1000.0,
        frames
    );
    let st = jb.stats();
    assert_eq!(st.lost, 0);
}

fn cpu_per_frame_g722() {
    use tingshuo::codec::g722::{G722Decoder, G722Encoder};
    let frames = 50_000u32;
    let pcm: Vec<i16> = (0..320)
        .map(|i| ((i as f32 * 0.15).sin() * 8000.0) as i16)
        .collect();
    // Codec alone: encode + decode one 20 ms frame.
    let (mut enc, mut dec) = (G722Encoder::new(), G722Decoder::new());
    let mut bytes = [0u8; 160];
    let mut out = [0i16; 320];
    let start = Instant::now();
    for _ in 0..frames {
        black_box(enc.encode(black_box(&pcm), &mut bytes));
        black_box(dec.decode(black_box(&bytes), &mut out));
    }
    let codec = start.elapsed() / frames;
    // The media path: encode + build + parse + buffer + decode at playout + pop.
    let mut jb = JitterBuffer::new(JitterConfig::default());
    jb.set_audio_rate(16_000);
    let mut stream = RtpStream::new(1, 0, 0);
    let mut buf = [0u8; 512];
    let t0 = Instant::now();
    let start = Instant::now();
    for n in 0..frames {
        let at = t0 + Duration::from_millis(20 * n as u64);
        let h: RtpHeader = stream.audio_header(9, n as u64, true);
        let len = h
            .write_with(&mut buf, |p| enc.encode(&pcm, p))
            .expect("fits");
        let pkt = RtpPacket::parse(&buf[..len]).expect("valid");
        jb.push(&pkt, at);
        black_box(jb.pop_frame(at + Duration::from_millis(1)));
    }
    let path = start.elapsed() / frames;
    println!(
        "G.722 per 20 ms frame: encode+decode {:.2} µs; media path (encode+build+parse+buffer+decode+pop) {:.2} µs ({} frames)",
        codec.as_nanos() as f64 / 1000.0,
        path.as_nanos() as f64 / 1000.0,
        frames
    );
    assert_eq!(jb.stats().lost, 0);
}

fn call(seconds: u64) {
    let ports = PortAllocator::new(47400, 47419).expect("port range");
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let b = MediaSession::start(&ports, MediaConfig::new(lo, None, G711::Pcmu)).expect("B");
    let a = MediaSession::start(
        &ports,
        MediaConfig::new(lo, Some(b.local_rtp()), G711::Pcmu),
    )
    .expect("A");
    // A feeder keeps A's playback queue topped up with a tone, like the TTS feeder would.
    let q = a.playback();
    let end = Instant::now() + Duration::from_secs(seconds);
    let feeder = std::thread::spawn(move || {
        let mut n = 0u64;
        while Instant::now() < end {
            let mut f = [0i16; FRAME_SAMPLES];
            for (i, s) in f.iter_mut().enumerate() {
                let t = (n * FRAME_SAMPLES as u64 + i as u64) as f64 / 8000.0;
                *s = (8000.0 * (2.0 * std::f64::consts::PI * 440.0 * t).sin()) as i16;
            }
            if q.push_timeout(&f, Duration::from_millis(100)).is_ok() {
                n += 1;
            }
        }
    });
    let rx = b.inbound();
    let mut audio = 0u64;
    while Instant::now() < end {
        if let Ok(f) = rx.recv_timeout(Duration::from_millis(100)) {
            audio += (f.kind == tingshuo::rtp::FrameKind::Audio) as u64;
        }
    }
    let _ = feeder.join();
    let rb_stats = b.stats();
    let ra = a.stop();
    let rb = b.stop();
    println!(
        "{seconds} s call on loopback (real-time scheduling: {}): A sent {} packets ({} speech), send lateness p50 {:?} p99 {:?} max {:?}, \
         ticks skipped {}; processing per tick mean {:?} max {:?}",
        ra.realtime,
        ra.stats.rtp_sent,
        ra.stats.speech_frames_sent,
        ra.send_lateness_p50,
        ra.send_lateness_p99,
        ra.send_lateness_max,
        ra.stats.ticks_skipped,
        ra.tick_mean,
        ra.tick_max,
    );
    println!(
        "B received {} packets, played {} audio frames, lost {}, late {}, concealed {}, \
         inter-arrival jitter (RFC 3550) {:.3} ms; B's own send lateness p99 {:?}",
        rb_stats.jitter.received,
        audio,
        rb_stats.jitter.lost,
        rb_stats.jitter.late,
        rb_stats.jitter.concealed,
        rb_stats.jitter.jitter_ms,
        rb.send_lateness_p99,
    );
}

/// Resident memory of this process in KiB (Linux), for the per-call memory estimate.
fn rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn memory_per_session() {
    let ports = PortAllocator::new(47500, 47599).expect("port range");
    let lo = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let n = 40;
    let before = rss_kib();
    let sessions: Vec<_> = (0..n)
        .map(|_| {
            MediaSession::start(&ports, MediaConfig::new(lo, None, G711::Pcmu)).expect("session")
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    let after = rss_kib();
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "memory: {n} idle media sessions add {} KiB RSS = {} KiB per session (default queues)",
            a.saturating_sub(b),
            a.saturating_sub(b) / n
        );
    }
    drop(sessions);
}

fn main() {
    // `cargo bench` passes `--bench`; ignore arguments.
    let seconds = std::env::var("RTP_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(60);
    cpu_per_frame();
    cpu_per_frame_g722();
    memory_per_session();
    call(seconds);
}

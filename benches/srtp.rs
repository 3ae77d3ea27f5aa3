//! Per-packet cost of SRTP at the media edge: protect + unprotect of a 20 ms PCMU packet
//! (12-byte header, 160 bytes of payload) with AES_CM_128_HMAC_SHA1_80, against the plain
//! path (the copies a plain session does anyway). Prints µs per packet and the share of a
//! 20 ms frame budget; the turn-latency difference of an SRTP call is at most the sum of
//! one protect and one unprotect per 20 ms frame on the reply's first packet.
//!
//! `cargo bench --bench srtp`

use std::time::Instant;

use tingshuo::rtp::srtp::{CryptoAttr, SrtpEdge, SrtpKeys, Suite};

fn packet(seq: u16) -> [u8; 172] {
    let mut p = [0x55u8; 172];
    p[0] = 0x80;
    p[1] = 0;
    p[2..4].copy_from_slice(&seq.to_be_bytes());
    p[4..8].copy_from_slice(&(u32::from(seq) * 160).to_be_bytes());
    p[8..12].copy_from_slice(&0x0102_0304u32.to_be_bytes());
    p
}

fn main() {
    let a = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let b = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
    let mut tx = SrtpEdge::new(&SrtpKeys {
        local: a.clone(),
        remote: b.clone(),
    })
    .expect("context");
    let mut rx = SrtpEdge::new(&SrtpKeys {
        local: b,
        remote: a,
    })
    .expect("context");
    let n: u32 = 50_000;
    let mut buf = [0u8; 2048];
    let mut plain_sink = 0u64;
    let t0 = Instant::now();
    for i in 0..n {
        let p = packet(i as u16);
        buf[..p.len()].copy_from_slice(&p);
        plain_sink += u64::from(buf[(i as usize) % 172]);
    }
    let plain = t0.elapsed() / n;
    let mut protect = std::time::Duration::ZERO;
    let mut unprotect = std::time::Duration::ZERO;
    for i in 0..n {
        let p = packet(i as u16);
        buf[..p.len()].copy_from_slice(&p);
        let t = Instant::now();
        let len = tx.protect_rtp(&mut buf, p.len()).expect("protect");
        protect += t.elapsed();
        let t = Instant::now();
        let back = rx.unprotect_rtp(&mut buf, len).expect("unprotect");
        unprotect += t.elapsed();
        assert_eq!(back, p.len());
    }
    let (protect, unprotect) = (protect / n, unprotect / n);
    println!("SRTP per 20 ms packet over {n} packets (AES_CM_128_HMAC_SHA1_80, 172-byte RTP):");
    println!("  plain copy        {:>8.2} µs", plain.as_secs_f64() * 1e6);
    println!(
        "  protect (send)    {:>8.2} µs",
        protect.as_secs_f64() * 1e6
    );
    println!(
        "  unprotect (recv)  {:>8.2} µs",
        unprotect.as_secs_f64() * 1e6
    );
    let both = (protect + unprotect).as_secs_f64() * 1e3;
    println!(
        "  both directions   {both:.4} ms per 20 ms frame ({:.3}% of the frame); turn latency \
         with SRTP vs plain RTP differs by about this much per turn (budget: 5 ms)",
        both / 20.0 * 100.0
    );
    std::hint::black_box(plain_sink);
}

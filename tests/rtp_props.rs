//! Property tests (stable, run in CI): hostile bytes never panic the RTP/RTCP/DTMF parsers
//! or the jitter buffer, and any reordering within the buffer's depth plays in order.

use proptest::prelude::*;
use std::time::{Duration, Instant};
use tingshuo::codec::G711;
use tingshuo::rtp::rtcp;
use tingshuo::rtp::{
    classify, Depth, DtmfReceiver, FrameKind, JitterBuffer, JitterConfig, PacketKind, RtpHeader,
    RtpPacket, FRAME_SAMPLES,
};

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic_parsers(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let kind = classify(&bytes);
        if let Ok(p) = RtpPacket::parse(&bytes) {
            // Accessors stay in bounds on anything the parser accepted.
            let _ = (p.marker(), p.payload_type(), p.sequence(), p.timestamp(), p.ssrc());
            let _ = p.csrcs().count();
            let _ = p.extension();
            prop_assert!(p.payload().len() <= bytes.len());
            prop_assert!(kind == PacketKind::Rtp || kind == PacketKind::Rtcp);
        }
        for pkt in rtcp::parse_compound(&bytes) {
            if let Ok(rtcp::RtcpPacket::SenderReport { reports, .. } | rtcp::RtcpPacket::ReceiverReport { reports, .. }) = pkt {
                let _ = reports.count();
            }
        }
        let mut d = DtmfReceiver::new();
        let _ = d.on_packet(0, &bytes);
    }

    #[test]
    fn random_packets_never_panic_the_jitter_buffer(
        ops in proptest::collection::vec(
            (any::<bool>(), any::<u16>(), any::<u32>(), 0u32..3, prop_oneof![Just(0u8), Just(8), Just(9), Just(101), any::<u8>()],
             proptest::collection::vec(any::<u8>(), 0..400), 0u64..50, any::<bool>()),
            1..200),
    ) {
        let mut jb = JitterBuffer::new(JitterConfig::default());
        let t0 = Instant::now();
        let mut t = t0;
        for (pop, seq, ts, ssrc, pt, payload, dt, marker) in ops {
            t += Duration::from_millis(dt);
            if pop {
                let f = jb.pop_frame(t);
                // 20 ms: 160 samples at 8 kHz (G.711) or 320 at 16 kHz (G.722, PT 9).
                let want = if f.samples.is_wideband() { 2 * FRAME_SAMPLES } else { FRAME_SAMPLES };
                prop_assert_eq!(f.samples.len(), want);
            } else {
                jb.push_parts(pt & 0x7F, seq, ts, ssrc, marker, &payload, t);
            }
            let _ = jb.report_block();
        }
        let st = jb.stats();
        prop_assert!(st.jitter_ms.is_finite());
    }

    #[test]
    fn reordering_within_depth_plays_in_order(
        swaps in proptest::collection::vec(0usize..59, 0..30),
        seq0 in any::<u16>(),
        ts0 in any::<u32>(),
    ) {
        // 60 packets; adjacent swaps delay a packet by at most one period per swap position.
        let mut order: Vec<u32> = (0..60).collect();
        for s in swaps {
            order.swap(s, s + 1);
        }
        let mut jb = JitterBuffer::new(JitterConfig { depth: Depth::Fixed(Duration::from_millis(60)), capacity_frames: 50 });
        let t0 = Instant::now();
        let mut played = Vec::new();
        for (k, &i) in order.iter().enumerate() {
            let at = t0 + Duration::from_millis(k as u64 * 20);
            // Each frame carries its index as the µ-law code of every sample.
            let code = 0x80 + i as u8;
            let h = RtpHeader { marker: false, payload_type: 0, sequence: seq0.wrapping_add(i as u16), timestamp: ts0.wrapping_add(i * 160), ssrc: 5 };
            let mut buf = [0u8; 12 + FRAME_SAMPLES];
            let n = h.write(&[code; FRAME_SAMPLES], &mut buf).unwrap();
            jb.push(&RtpPacket::parse(&buf[..n]).unwrap(), at);
            let f = jb.pop_frame(at + Duration::from_millis(1));
            if f.kind == FrameKind::Audio {
                played.push(f.samples[0]);
            }
        }
        // Played frames are strictly increasing in index (never out of order, never twice).
        let index_of = |v: i16| (0..60u8).find(|&i| G711::Pcmu.decode_sample(0x80 + i) == v);
        let idx: Vec<_> = played.iter().map(|&v| index_of(v).unwrap()).collect();
        prop_assert!(idx.windows(2).all(|w| w[0] < w[1]), "{:?}", idx);
        prop_assert_eq!(jb.stats().duplicates, 0);
        prop_assert_eq!(jb.stats().lost, 0);
    }
}

//! RTP/RTCP/STUN classification and parsing, RFC 4733 events, and the jitter buffer fed
//! with whatever parses: nothing may panic, and a parsed packet rebuilds to the same fields.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};
use tingshuo::rtp::{
    classify, rtcp, DtmfReceiver, JitterBuffer, JitterConfig, RtpHeader, RtpPacket,
};

fuzz_target!(|data: &[u8]| {
    let _ = classify(data);
    for pkt in rtcp::parse_compound(data) {
        if let Ok(
            rtcp::RtcpPacket::SenderReport { reports, .. }
            | rtcp::RtcpPacket::ReceiverReport { reports, .. },
        ) = pkt
        {
            let _ = reports.count();
        }
    }
    let mut dtmf = DtmfReceiver::new();
    let _ = dtmf.on_packet(0, data);

    // Treat the input as a sequence of datagrams split on a 0xFF 0x00 marker pair, pushed
    // 7 ms apart with a pop every 20 ms.
    let mut jb = JitterBuffer::new(JitterConfig::default());
    let t0 = Instant::now();
    let mut t = t0;
    let mut next_pop = t0;
    for chunk in data.split(|&b| b == 0xFE) {
        t += Duration::from_millis(7);
        while next_pop <= t {
            let _ = jb.pop_frame(next_pop);
            next_pop += Duration::from_millis(20);
        }
        if let Ok(p) = RtpPacket::parse(chunk) {
            let _ = (p.csrcs().count(), p.extension(), p.padding());
            jb.push(&p, t);
            let _ = dtmf.on_packet(p.timestamp(), p.payload());
            let h = RtpHeader {
                marker: p.marker(),
                payload_type: p.payload_type(),
                sequence: p.sequence(),
                timestamp: p.timestamp(),
                ssrc: p.ssrc(),
            };
            let mut buf = [0u8; 2048];
            if let Ok(n) = h.write(p.payload(), &mut buf) {
                let q = RtpPacket::parse(&buf[..n]).expect("a packet we built parses");
                assert_eq!(q.payload(), p.payload());
                assert_eq!(
                    (q.sequence(), q.timestamp(), q.ssrc()),
                    (p.sequence(), p.timestamp(), p.ssrc())
                );
            }
        }
        let _ = jb.report_block();
    }
    let _ = jb.stats();
});

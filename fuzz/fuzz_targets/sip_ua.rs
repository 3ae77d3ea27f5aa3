//! The whole UA core fed hostile datagrams (split on a 0xff byte) with clock ticks.
#![no_main]

use std::time::{Duration, Instant};

use libfuzzer_sys::fuzz_target;
use tingshuo::sip::ua::{UaConfig, UserAgent};
use tingshuo::sip::Transport;

fuzz_target!(|data: &[u8]| {
    let mut cfg = UaConfig::direct(std::net::SocketAddr::from(([127, 0, 0, 1], 5090)));
    cfg.registrars = vec![std::net::SocketAddr::from(([127, 0, 0, 1], 5060))];
    cfg.password = Some("passbot".into());
    let mut ua = UserAgent::new(cfg);
    let now = Instant::now();
    ua.start(now);
    let src = std::net::SocketAddr::from(([127, 0, 0, 1], 5071));
    for (i, part) in data.split(|b| *b == 0xff).enumerate() {
        let t = now + Duration::from_millis(i as u64 * 700);
        ua.on_message(part, src, Transport::Udp, t);
        ua.on_tick(t);
    }
    ua.on_tick(now + Duration::from_secs(120));
});

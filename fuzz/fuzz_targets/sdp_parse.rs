//! SDP parsing, negotiation and answer building.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tingshuo::sip::sdp::{self, LocalMedia};

fuzz_target!(|data: &[u8]| {
    if let Ok(remote) = sdp::parse(data) {
        let local = LocalMedia::new(std::net::SocketAddr::from(([127, 0, 0, 1], 40000)));
        if let Ok(n) = sdp::negotiate(&remote, &local) {
            let answer = sdp::build_answer(&n, &local, 1);
            assert!(
                sdp::parse(answer.as_bytes()).is_ok(),
                "our own answer must parse"
            );
        }
    }
});

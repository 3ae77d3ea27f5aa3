//! SIP parsing: the tolerant pre-pass, rsip, TCP framing and re-serialisation.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tingshuo::sip::msg;

fuzz_target!(|data: &[u8]| {
    let _ = msg::stream_frame_len(data);
    if let Ok(raw) = msg::split_raw(data) {
        let _ = msg::bad_request_for(&raw, "fuzz");
    }
    if let Ok(m) = msg::parse(data) {
        let bytes = msg::to_bytes(&m);
        let _ = msg::parse(&bytes);
    }
});

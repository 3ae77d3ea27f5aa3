//! SDES key exchange in SDP (RFC 4568): reading `RTP/SAVP` + `a=crypto` from an offer or
//! answer, adding ours to the SDP the core builds, and the `[media] srtp` policy.
//!
//! Kept apart from [`super::sdp`] (codecs) so the codec negotiation is unchanged: this
//! module only looks at the first audio section's profile and crypto lines.

use super::Transport;
use crate::config::SrtpPolicy;
use crate::rtp::srtp::{self, CryptoAttr, SrtpKeys, Suite};

/// What an SDP body says about SRTP.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SdesOffer {
    /// The audio `m=` line's profile is `RTP/SAVP` (or `RTP/SAVPF`).
    pub savp: bool,
    /// Values of the audio section's `a=crypto:` attributes.
    pub crypto: Vec<String>,
}

/// Reads the first audio section's profile and crypto lines.
pub fn parse(body: &[u8]) -> SdesOffer {
    let text = String::from_utf8_lossy(body);
    let mut out = SdesOffer::default();
    let mut in_audio = false;
    let mut seen_audio = false;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if let Some(m) = line.strip_prefix("m=") {
            in_audio = !seen_audio && m.starts_with("audio ");
            if in_audio {
                seen_audio = true;
                let proto = m.split_whitespace().nth(2).unwrap_or("");
                out.savp = proto.eq_ignore_ascii_case("RTP/SAVP")
                    || proto.eq_ignore_ascii_case("RTP/SAVPF");
            }
        } else if in_audio {
            if let Some(v) = line.strip_prefix("a=crypto:") {
                out.crypto.push(v.trim().to_string());
            }
        }
    }
    out
}

/// Whether this agent offers SRTP on a call placed over `transport`.
pub fn offers(policy: SrtpPolicy, transport: Transport) -> bool {
    match policy {
        SrtpPolicy::Off => false,
        SrtpPolicy::Forced => true,
        SrtpPolicy::Optional | SrtpPolicy::Required => transport.is_secure(),
    }
}

/// Decides the answer to an offer received over `transport`: `Ok(Some)` keys for an
/// SRTP call, `Ok(None)` for plain RTP, `Err(reason)` for a 488.
pub fn answer(
    policy: SrtpPolicy,
    transport: Transport,
    offer: &SdesOffer,
) -> Result<Option<SrtpKeys>, String> {
    let secure = transport.is_secure() || policy == SrtpPolicy::Forced;
    let wants_srtp = offer.savp || !offer.crypto.is_empty();
    if !wants_srtp {
        return match policy {
            SrtpPolicy::Required => Err(
                "SRTP required ([media] srtp = \"required\"): offer RTP/SAVP with a=crypto (SDES) over TLS"
                    .to_string(),
            ),
            _ => Ok(None),
        };
    }
    if policy == SrtpPolicy::Off {
        return if offer.savp {
            Err("SRTP offered but this agent has [media] srtp = \"off\"; offer RTP/AVP".to_string())
        } else {
            // Crypto lines on an RTP/AVP offer are optional (best-effort SRTP): ignore them.
            Ok(None)
        };
    }
    if !secure {
        return if offer.savp {
            Err("SRTP keys offered over unencrypted signalling (they would be visible on the wire): use SIP over TLS".to_string())
        } else {
            Ok(None)
        };
    }
    match srtp::answer(&offer.crypto) {
        Some((local, remote)) => Ok(Some(SrtpKeys { local, remote })),
        None if offer.savp => Err(format!(
            "no supported a=crypto suite offered (we support {} and {})",
            Suite::AesCm128HmacSha1_80.name(),
            Suite::AesCm128HmacSha1_32.name()
        )),
        None => Ok(None),
    }
}

/// Keys of a call we placed, from the answer to our offer (`ours` is what we offered).
pub fn keys_from_answer(ours: &CryptoAttr, answer: &SdesOffer) -> Option<SrtpKeys> {
    answer
        .crypto
        .iter()
        .filter_map(|v| CryptoAttr::parse(v).ok())
        .find(|c| c.tag == ours.tag && c.suite == ours.suite)
        .map(|remote| SrtpKeys {
            local: ours.clone(),
            remote,
        })
}

/// Turns an SDP body built by [`super::sdp`] into an SRTP one: `RTP/SAVP` profile on the
/// audio line and our `a=crypto` right after it.
pub fn secure_sdp(sdp: &str, crypto: &CryptoAttr) -> String {
    let mut out = String::with_capacity(sdp.len() + 80);
    let mut done = false;
    for line in sdp.split_inclusive('\n') {
        if !done && line.starts_with("m=audio ") {
            out.push_str(&line.replacen(" RTP/AVP ", " RTP/SAVP ", 1));
            out.push_str("a=crypto:");
            out.push_str(&crypto.to_sdp_value());
            out.push_str("\r\n");
            done = true;
        } else {
            out.push_str(line);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAIN: &str = "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 4000 RTP/AVP 0 101\r\na=rtpmap:101 telephone-event/8000\r\n";

    fn savp_offer() -> String {
        secure_sdp(PLAIN, &CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80))
    }

    #[test]
    fn secure_sdp_round_trips_through_parse() {
        let c = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        let s = secure_sdp(PLAIN, &c);
        assert!(
            s.contains("m=audio 4000 RTP/SAVP 0 101\r\na=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:"),
            "{s}"
        );
        let o = parse(s.as_bytes());
        assert!(o.savp);
        assert_eq!(o.crypto, vec![c.to_sdp_value()]);
        assert_eq!(parse(PLAIN.as_bytes()), SdesOffer::default());
    }

    #[test]
    fn required_agent_refuses_plain_offers_with_a_reason() {
        let plain = parse(PLAIN.as_bytes());
        let err = answer(SrtpPolicy::Required, Transport::Tls, &plain).unwrap_err();
        assert!(err.contains("SRTP required"), "{err}");
        assert_eq!(
            answer(SrtpPolicy::Optional, Transport::Tls, &plain),
            Ok(None)
        );
        assert_eq!(answer(SrtpPolicy::Off, Transport::Udp, &plain), Ok(None));
    }

    #[test]
    fn srtp_is_answered_on_tls_and_refused_over_plain_signalling_unless_forced() {
        let offer = parse(savp_offer().as_bytes());
        let keys = answer(SrtpPolicy::Optional, Transport::Tls, &offer)
            .unwrap()
            .expect("keys");
        assert_eq!(keys.remote.to_sdp_value(), offer.crypto[0]);
        let err = answer(SrtpPolicy::Optional, Transport::Udp, &offer).unwrap_err();
        assert!(err.contains("TLS"), "{err}");
        assert!(answer(SrtpPolicy::Forced, Transport::Udp, &offer)
            .unwrap()
            .is_some());
        assert!(answer(SrtpPolicy::Off, Transport::Tls, &offer).is_err());
        let bad = SdesOffer {
            savp: true,
            crypto: vec!["1 AES_256_CM_HMAC_SHA1_80 inline:x".into()],
        };
        assert!(answer(SrtpPolicy::Required, Transport::Tls, &bad)
            .unwrap_err()
            .contains("no supported"));
    }

    #[test]
    fn offers_only_on_tls_unless_forced_and_keys_come_from_the_matching_answer_line() {
        assert!(offers(SrtpPolicy::Optional, Transport::Tls));
        assert!(!offers(SrtpPolicy::Required, Transport::Udp));
        assert!(offers(SrtpPolicy::Forced, Transport::Udp));
        assert!(!offers(SrtpPolicy::Off, Transport::Tls));
        let ours = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        let theirs = CryptoAttr::generate(1, Suite::AesCm128HmacSha1_80);
        let ans = parse(secure_sdp(PLAIN, &theirs).as_bytes());
        let keys = keys_from_answer(&ours, &ans).unwrap();
        assert_eq!(keys.remote, theirs);
        assert!(keys_from_answer(&ours, &SdesOffer::default()).is_none());
    }
}

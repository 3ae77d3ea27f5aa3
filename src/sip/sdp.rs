//! SDP offer/answer (RFC 3264) for one audio stream: G.722, PCMU, PCMA and telephone-event.
//!
//! G.722 (wideband, 16 kHz audio) is chosen whenever both sides have it, wherever the
//! offer lists it; otherwise the first G.711 law of the offer. Our offers list G.722
//! first, then PCMU and PCMA.
//!
//! Peers send static payload types without `a=rtpmap`, offer several telephone-event
//! rates and signal hold with `sendonly`/`inactive` or the old `c=0.0.0.0` form; all of
//! that is handled here. The parser is deliberately forgiving (unknown lines ignored)
//! but never panics.

use std::fmt::Write as _;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

/// An audio codec we can carry (the media layer's codec: one type end to end).
pub use crate::codec::AudioCodec as Codec;

/// The codec an `a=rtpmap` names. G.722 is `G722/8000` (RFC 3551's clock-rate quirk:
/// the audio is 16 kHz, the RTP clock 8 kHz); a peer writing the audio rate instead
/// (`G722/16000`, seen in the wild) means the same codec.
fn codec_from_name(name: &str, rate: u32) -> Option<Codec> {
    if name.eq_ignore_ascii_case("G722") && (rate == 8000 || rate == 16000) {
        return Some(Codec::G722);
    }
    if rate != 8000 {
        return None;
    }
    if name.eq_ignore_ascii_case("PCMU") {
        Some(Codec::Pcmu)
    } else if name.eq_ignore_ascii_case("PCMA") {
        Some(Codec::Pcma)
    } else {
        None
    }
}

/// Media direction attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    SendRecv,
    SendOnly,
    RecvOnly,
    Inactive,
}

impl Direction {
    fn attr(self) -> &'static str {
        match self {
            Direction::SendRecv => "sendrecv",
            Direction::SendOnly => "sendonly",
            Direction::RecvOnly => "recvonly",
            Direction::Inactive => "inactive",
        }
    }

    /// The direction we answer with (RFC 3264 §6.1).
    fn answer(self) -> Self {
        match self {
            Direction::SendOnly => Direction::RecvOnly,
            Direction::RecvOnly => Direction::SendOnly,
            d => d,
        }
    }
}

/// What our side offers or answers with: the caller supplies address and codecs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalMedia {
    /// Local RTP address (RTCP is on port + 1).
    pub rtp_addr: SocketAddr,
    /// Codecs in preference order.
    pub codecs: Vec<Codec>,
    /// RFC 4733 payload type we offer for telephone-event (None: no DTMF events).
    pub telephone_event_pt: Option<u8>,
}

impl LocalMedia {
    pub fn new(rtp_addr: SocketAddr) -> Self {
        Self {
            rtp_addr,
            codecs: vec![Codec::G722, Codec::Pcmu, Codec::Pcma],
            telephone_event_pt: Some(101),
        }
    }
}

/// The parsed remote audio description.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteMedia {
    /// Remote RTP address (`None` when the port is 0: stream refused).
    pub rtp_addr: Option<SocketAddr>,
    /// Offered payload types in order, with what we understood of each.
    pub payloads: Vec<Payload>,
    pub direction: Direction,
    pub ptime_ms: u32,
    /// True for the RFC 2543 hold form `c=IN IP4 0.0.0.0`.
    pub zero_connection: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub pt: u8,
    pub codec: Option<Codec>,
    /// telephone-event clock rate, when this payload is RFC 4733 events.
    pub telephone_event_rate: Option<u32>,
}

impl RemoteMedia {
    /// The far end put us on hold (it will not send, or sends nothing at all).
    pub fn is_hold(&self) -> bool {
        self.zero_connection || matches!(self.direction, Direction::SendOnly | Direction::Inactive)
    }

    /// Payload type of telephone-event/8000, if offered.
    pub fn telephone_event_pt(&self) -> Option<u8> {
        self.payloads
            .iter()
            .find(|p| p.telephone_event_rate == Some(8000))
            .map(|p| p.pt)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SdpError {
    #[error("SDP body is not UTF-8")]
    NotUtf8,
    #[error("SDP has no audio media line")]
    NoAudio,
    #[error("SDP line {0:?} is malformed")]
    BadLine(String),
    #[error("no codec in common (offered payload types {0:?}; we support G722, PCMU and PCMA)")]
    NoCommonCodec(Vec<u8>),
}

/// Parses the first `m=audio` section of an SDP body.
pub fn parse(body: &[u8]) -> Result<RemoteMedia, SdpError> {
    let text = std::str::from_utf8(body).map_err(|_| SdpError::NotUtf8)?;
    let mut session_conn: Option<IpAddr> = None;
    let mut media_conn: Option<IpAddr> = None;
    let mut session_dir = Direction::SendRecv;
    let mut media_dir: Option<Direction> = None;
    let mut in_audio = false;
    let mut seen_audio = false;
    let mut port: u16 = 0;
    let mut payloads: Vec<Payload> = Vec::new();
    let mut ptime = 20;
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        let Some((k, v)) = line.split_once('=') else {
            continue;
        };
        match k {
            "m" => {
                if seen_audio {
                    in_audio = false;
                    continue;
                }
                let mut it = v.split_whitespace();
                if it.next() != Some("audio") {
                    in_audio = false;
                    continue;
                }
                in_audio = true;
                seen_audio = true;
                let p = it.next().ok_or_else(|| SdpError::BadLine(line.into()))?;
                let p = p.split('/').next().unwrap_or(p);
                port = p.parse().map_err(|_| SdpError::BadLine(line.into()))?;
                let _proto = it.next();
                for fmt in it {
                    if let Ok(pt) = fmt.parse::<u8>() {
                        if pt > 127 {
                            continue;
                        }
                        let codec = Codec::from_payload_type(pt);
                        payloads.push(Payload {
                            pt,
                            codec,
                            telephone_event_rate: None,
                        });
                    }
                }
            }
            "c" => {
                let addr = v
                    .split_whitespace()
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok());
                // An address we cannot read would leave the call silent: refuse it
                // (host names are refused too; the core does no DNS).
                if addr.is_none() && (in_audio || !seen_audio) {
                    return Err(SdpError::BadLine(line.into()));
                }
                if in_audio {
                    media_conn = addr;
                } else if !seen_audio {
                    session_conn = addr;
                }
            }
            "a" => {
                let (name, val) = v.split_once(':').unwrap_or((v, ""));
                let dir = match name {
                    "sendrecv" => Some(Direction::SendRecv),
                    "sendonly" => Some(Direction::SendOnly),
                    "recvonly" => Some(Direction::RecvOnly),
                    "inactive" => Some(Direction::Inactive),
                    _ => None,
                };
                if let Some(d) = dir {
                    if in_audio {
                        media_dir = Some(d);
                    } else if !seen_audio {
                        session_dir = d;
                    }
                    continue;
                }
                if !in_audio {
                    continue;
                }
                match name {
                    "rtpmap" => {
                        let mut it = val.split_whitespace();
                        let pt = it.next().and_then(|p| p.parse::<u8>().ok());
                        let enc = it.next().unwrap_or("");
                        let mut parts = enc.split('/');
                        let ename = parts.next().unwrap_or("");
                        let rate = parts.next().and_then(|r| r.parse::<u32>().ok());
                        if let (Some(pt), Some(rate)) = (pt, rate) {
                            if let Some(p) = payloads.iter_mut().find(|p| p.pt == pt) {
                                if ename.eq_ignore_ascii_case("telephone-event") {
                                    p.telephone_event_rate = Some(rate);
                                    p.codec = None;
                                } else {
                                    p.codec = codec_from_name(ename, rate);
                                }
                            }
                        }
                    }
                    "ptime" => {
                        if let Ok(p) = val.trim().parse::<u32>() {
                            if (10..=200).contains(&p) {
                                ptime = p;
                            }
                        }
                    }
                    _ => {}
                }
            }
            _ => {}
        }
    }
    if !seen_audio {
        return Err(SdpError::NoAudio);
    }
    let conn = media_conn.or(session_conn);
    let zero_connection = conn.is_some_and(|a| a.is_unspecified());
    let rtp_addr = match (conn, port) {
        (Some(ip), p) if p != 0 => Some(SocketAddr::new(ip, p)),
        _ => None,
    };
    Ok(RemoteMedia {
        rtp_addr,
        payloads,
        direction: media_dir.unwrap_or(session_dir),
        ptime_ms: ptime,
        zero_connection,
    })
}

/// The outcome of answering an offer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Negotiated {
    pub codec: Codec,
    /// Payload type the codec uses on the wire (static, so equals `codec.payload_type()`).
    pub pt: u8,
    /// Remote telephone-event/8000 payload type when both sides do RFC 4733.
    pub telephone_event_pt: Option<u8>,
    pub remote: RemoteMedia,
    /// Our direction in the answer.
    pub direction: Direction,
}

/// Picks the codec to answer with: a wideband codec both sides have (G.722: the
/// recogniser hears 16 kHz audio), else the first offered codec we support (RFC 3264
/// §6.1 lets the answerer choose any offered format; it keeps the offer's order).
pub fn negotiate(remote: &RemoteMedia, local: &LocalMedia) -> Result<Negotiated, SdpError> {
    let common = |wideband: bool| {
        remote.payloads.iter().find_map(|p| {
            p.codec
                .filter(|c| local.codecs.contains(c) && (c.sample_rate() > 8000) == wideband)
                .map(|c| (c, p.pt))
        })
    };
    let chosen = common(true)
        .or_else(|| common(false))
        .ok_or_else(|| SdpError::NoCommonCodec(remote.payloads.iter().map(|p| p.pt).collect()))?;
    let direction = if remote.zero_connection {
        Direction::Inactive
    } else {
        remote.direction.answer()
    };
    Ok(Negotiated {
        codec: chosen.0,
        pt: chosen.1,
        telephone_event_pt: local.telephone_event_pt.and(remote.telephone_event_pt()),
        remote: remote.clone(),
        direction,
    })
}

fn session_header(out: &mut String, ip: IpAddr, version: u64) {
    let fam = if ip.is_ipv4() { "IP4" } else { "IP6" };
    let _ = write!(
        out,
        "v=0\r\no=tingshuo {version} {version} IN {fam} {ip}\r\ns=tingshuo\r\nc=IN {fam} {ip}\r\nt=0 0\r\n"
    );
}

/// Our offer: every local codec, then telephone-event/8000.
pub fn build_offer(local: &LocalMedia, version: u64, direction: Direction) -> String {
    let mut out = String::new();
    session_header(&mut out, local.rtp_addr.ip(), version);
    let mut pts: Vec<String> = local
        .codecs
        .iter()
        .map(|c| c.payload_type().to_string())
        .collect();
    if let Some(te) = local.telephone_event_pt {
        pts.push(te.to_string());
    }
    let _ = write!(
        out,
        "m=audio {} RTP/AVP {}\r\n",
        local.rtp_addr.port(),
        pts.join(" ")
    );
    for c in &local.codecs {
        let _ = write!(
            out,
            "a=rtpmap:{} {}/8000\r\n",
            c.payload_type(),
            c.encoding_name()
        );
    }
    if let Some(te) = local.telephone_event_pt {
        let _ = write!(
            out,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", direction.attr());
    out
}

/// Our answer to a negotiated offer: the chosen codec plus telephone-event if agreed.
pub fn build_answer(neg: &Negotiated, local: &LocalMedia, version: u64) -> String {
    let mut out = String::new();
    session_header(&mut out, local.rtp_addr.ip(), version);
    let mut pts = vec![neg.pt.to_string()];
    if let Some(te) = neg.telephone_event_pt {
        pts.push(te.to_string());
    }
    let _ = write!(
        out,
        "m=audio {} RTP/AVP {}\r\na=rtpmap:{} {}/8000\r\n",
        local.rtp_addr.port(),
        pts.join(" "),
        neg.pt,
        neg.codec.encoding_name()
    );
    if let Some(te) = neg.telephone_event_pt {
        let _ = write!(
            out,
            "a=rtpmap:{te} telephone-event/8000\r\na=fmtp:{te} 0-16\r\n"
        );
    }
    let _ = write!(out, "a=ptime:20\r\na={}\r\n", neg.direction.attr());
    out
}

/// Unspecified IPv4, used in tests and for "no media yet" placeholders.
pub const UNSPECIFIED: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);

#[cfg(test)]
mod tests {
    use super::*;

    const BARESIP: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50710 RTP/AVP 0 8 101 102\r\na=rtpmap:101 telephone-event/48000\r\na=rtpmap:102 telephone-event/8000\r\na=sendrecv\r\n";

    fn local() -> LocalMedia {
        LocalMedia::new("127.0.0.1:40000".parse().expect("addr"))
    }

    #[test]
    fn static_payloads_without_rtpmap_and_8k_events() {
        let r = parse(BARESIP.as_bytes()).expect("parses");
        assert_eq!(r.rtp_addr, Some("127.0.0.1:50710".parse().expect("addr")));
        assert_eq!(r.ptime_ms, 20);
        assert_eq!(r.telephone_event_pt(), Some(102));
        let n = negotiate(&r, &local()).expect("common codec");
        assert_eq!(n.codec, Codec::Pcmu);
        assert_eq!(n.telephone_event_pt, Some(102));
        let ans = build_answer(&n, &local(), 1);
        assert!(ans.contains("m=audio 40000 RTP/AVP 0 102\r\n"), "{ans}");
        let back = parse(ans.as_bytes()).expect("own answer parses");
        assert_eq!(back.payloads[0].codec, Some(Codec::Pcmu));
    }

    #[test]
    fn first_common_codec_in_offer_order() {
        let sdp = BARESIP.replace("RTP/AVP 0 8", "RTP/AVP 8 0");
        let n = negotiate(&parse(sdp.as_bytes()).expect("parses"), &local()).expect("ok");
        assert_eq!(n.codec, Codec::Pcma);
        let mut only_pcmu = local();
        only_pcmu.codecs = vec![Codec::Pcmu];
        let n = negotiate(&parse(sdp.as_bytes()).expect("parses"), &only_pcmu).expect("ok");
        assert_eq!(n.codec, Codec::Pcmu);
    }

    #[test]
    fn no_common_codec_is_an_error() {
        // G.729 and iLBC only: nothing we carry (the SIP layer answers 488).
        let sdp = "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 18 97\r\na=rtpmap:18 G729/8000\r\na=rtpmap:97 iLBC/8000\r\n";
        let err = negotiate(&parse(sdp.as_bytes()).expect("parses"), &local())
            .expect_err("no common codec");
        assert_eq!(err, SdpError::NoCommonCodec(vec![18, 97]));
        assert_eq!(parse(b"v=0\r\n"), Err(SdpError::NoAudio));
        // A dynamic payload type named G722 at a clock we do not know is not G.722.
        let odd =
            "v=0\r\nc=IN IP4 1.2.3.4\r\nm=audio 4000 RTP/AVP 96\r\na=rtpmap:96 G722/32000\r\n";
        assert!(negotiate(&parse(odd.as_bytes()).expect("parses"), &local()).is_err());
    }

    /// baresip with its g722 module loaded: G.722 listed after G.711.
    const BARESIP_G722: &str = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio 50710 RTP/AVP 0 8 9 101\r\na=rtpmap:0 PCMU/8000\r\na=rtpmap:8 PCMA/8000\r\na=rtpmap:9 G722/8000\r\na=rtpmap:101 telephone-event/8000\r\na=sendrecv\r\n";

    #[test]
    fn g722_is_preferred_wherever_the_offer_lists_it() {
        let r = parse(BARESIP_G722.as_bytes()).expect("parses");
        assert_eq!(r.payloads[2].codec, Some(Codec::G722));
        let n = negotiate(&r, &local()).expect("common codec");
        assert_eq!((n.codec, n.pt), (Codec::G722, 9));
        assert_eq!(n.telephone_event_pt, Some(101));
        let ans = build_answer(&n, &local(), 1);
        assert!(ans.contains("m=audio 40000 RTP/AVP 9 101\r\n"), "{ans}");
        // RFC 3551: the RTP clock of G.722 is 8000 although the audio is 16 kHz.
        assert!(ans.contains("a=rtpmap:9 G722/8000\r\n"), "{ans}");
        let back = parse(ans.as_bytes()).expect("own answer parses");
        assert_eq!(back.payloads[0].codec, Some(Codec::G722));
        // Static payload type 9 without an rtpmap is G.722 too; so is a peer that
        // wrote the audio rate.
        for offer in [
            BARESIP.replace("RTP/AVP 0 8 101 102", "RTP/AVP 8 9 101 102"),
            BARESIP_G722.replace("G722/8000", "G722/16000"),
        ] {
            let n = negotiate(&parse(offer.as_bytes()).expect("parses"), &local()).expect("ok");
            assert_eq!(n.codec, Codec::G722, "{offer}");
        }
    }

    #[test]
    fn falls_back_to_g711_without_g722_on_either_side() {
        // The peer does not offer G.722: the first G.711 law of its offer.
        let n = negotiate(&parse(BARESIP.as_bytes()).expect("parses"), &local()).expect("ok");
        assert_eq!((n.codec, n.pt), (Codec::Pcmu, 0));
        // We do not offer it (G.711-only configuration): the peer's G.722 is ignored.
        let mut narrow = local();
        narrow.codecs = vec![Codec::Pcmu, Codec::Pcma];
        let offer = BARESIP_G722.replace("RTP/AVP 0 8 9 101", "RTP/AVP 9 8 0 101");
        let n = negotiate(&parse(offer.as_bytes()).expect("parses"), &narrow).expect("ok");
        assert_eq!((n.codec, n.pt), (Codec::Pcma, 8));
        let ans = build_answer(&n, &narrow, 1);
        assert!(
            ans.contains("RTP/AVP 8 101\r\n") && !ans.contains("G722"),
            "{ans}"
        );
    }

    #[test]
    fn unreadable_connection_address_is_an_error() {
        for c in ["c=IN IP4 999.1.2.3", "c=IN IP4", "c=IN IP4 pbx.example.com"] {
            let offer = BARESIP.replace("c=IN IP4 127.0.0.1", c);
            assert!(
                matches!(parse(offer.as_bytes()), Err(SdpError::BadLine(l)) if l == c),
                "{c}"
            );
        }
    }

    #[test]
    fn hold_forms() {
        let send_only = BARESIP.replace("a=sendrecv", "a=sendonly");
        let r = parse(send_only.as_bytes()).expect("parses");
        assert!(r.is_hold());
        assert_eq!(
            negotiate(&r, &local()).expect("ok").direction,
            Direction::RecvOnly
        );
        let zero = BARESIP.replace("c=IN IP4 127.0.0.1", "c=IN IP4 0.0.0.0");
        let r = parse(zero.as_bytes()).expect("parses");
        assert!(r.is_hold());
        assert_eq!(
            negotiate(&r, &local()).expect("ok").direction,
            Direction::Inactive
        );
        let r = parse(BARESIP.as_bytes()).expect("parses");
        assert!(!r.is_hold());
    }

    #[test]
    fn offer_lists_codecs_and_events() {
        let o = build_offer(&local(), 5, Direction::SendRecv);
        let r = parse(o.as_bytes()).expect("own offer parses");
        // G.722 first (wideband preferred), then G.711 and events as before.
        assert_eq!(
            r.payloads.iter().map(|p| p.pt).collect::<Vec<_>>(),
            vec![9, 0, 8, 101]
        );
        assert_eq!(
            r.payloads.iter().map(|p| p.codec).collect::<Vec<_>>(),
            vec![
                Some(Codec::G722),
                Some(Codec::Pcmu),
                Some(Codec::Pcma),
                None
            ]
        );
        assert!(o.contains("a=rtpmap:9 G722/8000\r\n"), "{o}");
        assert_eq!(r.telephone_event_pt(), Some(101));
        assert_eq!(r.rtp_addr, Some("127.0.0.1:40000".parse().expect("addr")));
    }
}

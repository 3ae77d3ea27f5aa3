//! RTP media: packet parsing, jitter buffer, 20 ms pacing, RFC 4733 DTMF and basic RTCP.

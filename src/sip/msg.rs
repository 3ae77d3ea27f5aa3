//! SIP message parsing and building on `rsip` types.
//!
//! Real peers send compact header names (`v`, `f`, `i`, ...), folded lines, bare `\n`
//! line ends and trailing garbage after `Content-Length`. rsip alone rejects or mis-reads
//! several of these, so every datagram first goes through a tolerant pre-pass
//! ([`split_raw`]) that normalises the head, then rsip parses the canonical text.
//! The pre-pass result also lets us answer a request rsip rejected with a 400, since
//! that only needs Via/From/To/Call-ID/CSeq copied back.

use std::fmt::Write as _;
use std::net::SocketAddr;

use rsip::message::HasHeaders;
use rsip::{Header, Headers, Method, Request, Response, SipMessage, StatusCode, Uri, Version};

/// Largest message we accept; bigger ones are hostile or broken.
pub const MAX_MESSAGE: usize = 64 * 1024;

/// Why a datagram was not a usable SIP message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("message is empty or only whitespace (keepalive)")]
    Empty,
    #[error("message is larger than {MAX_MESSAGE} bytes")]
    TooLarge,
    #[error("no blank line ends the header section")]
    NoHeaderEnd,
    #[error("header section is not UTF-8")]
    NotUtf8,
    #[error("start line {0:?} is neither a request nor a status line")]
    BadStartLine(String),
    #[error("header line {0:?} has no colon")]
    BadHeaderLine(String),
    #[error("Content-Length {0:?} is not a number")]
    BadContentLength(String),
    #[error("body is shorter than Content-Length ({have} < {want})")]
    TruncatedBody { have: usize, want: usize },
    #[error("mandatory header {0} is missing or malformed")]
    MissingHeader(&'static str),
    #[error("header {name} is malformed: {why}")]
    BadHeader { name: String, why: &'static str },
    #[error("rsip rejected the message: {0}")]
    Rsip(String),
}

/// A message after the tolerant pre-pass: start line, headers with long names, body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawMessage {
    pub start_line: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl RawMessage {
    /// First value of header `name` (case-insensitive, long form).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// True when the start line looks like a request (`METHOD uri SIP/2.0`).
    pub fn is_request(&self) -> bool {
        let method = self.start_line.split(' ').next().unwrap_or("");
        let version = self.start_line.rsplit(' ').next().unwrap_or("");
        !method.is_empty()
            && method.bytes().all(|b| b.is_ascii_alphabetic())
            && version.eq_ignore_ascii_case("SIP/2.0")
    }
}

/// Expands RFC 3261 §7.3.3 compact names (and a few extension ones) to long names.
pub fn long_header_name(name: &str) -> &str {
    if name.len() != 1 {
        return name;
    }
    match name.as_bytes()[0].to_ascii_lowercase() {
        b'i' => "Call-ID",
        b'm' => "Contact",
        b'e' => "Content-Encoding",
        b'l' => "Content-Length",
        b'c' => "Content-Type",
        b'f' => "From",
        b's' => "Subject",
        b'k' => "Supported",
        b't' => "To",
        b'v' => "Via",
        b'o' => "Event",
        b'r' => "Refer-To",
        b'u' => "Allow-Events",
        b'x' => "Session-Expires",
        b'b' => "Referred-By",
        _ => name,
    }
}

fn find_subslice(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// Where the header section ends: (offset of the blank line, offset of the body).
fn header_end(bytes: &[u8]) -> Option<(usize, usize)> {
    let crlf = find_subslice(bytes, b"\r\n\r\n").map(|i| (i, i + 4));
    let lf = find_subslice(bytes, b"\n\n").map(|i| (i, i + 2));
    match (crlf, lf) {
        (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
        (a, b) => a.or(b),
    }
}

/// For stream transports: the length of the first complete message in `buf`, if any.
///
/// TCP carries messages back to back; `Content-Length` (mandatory there) frames them.
/// Leading CRLF keepalives are counted as part of the frame so the caller drops them.
pub fn stream_frame_len(buf: &[u8]) -> Result<Option<usize>, ParseError> {
    let skip = buf
        .iter()
        .take_while(|b| **b == b'\r' || **b == b'\n')
        .count();
    let rest = &buf[skip..];
    if rest.is_empty() {
        return Ok(if skip > 0 { Some(skip) } else { None });
    }
    let Some((head_end, body_start)) = header_end(rest) else {
        if rest.len() > MAX_MESSAGE {
            return Err(ParseError::TooLarge);
        }
        return Ok(None);
    };
    let head = std::str::from_utf8(&rest[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut len = 0usize;
    for line in head.lines() {
        if let Some((n, v)) = line.split_once(':') {
            if long_header_name(n.trim()).eq_ignore_ascii_case("Content-Length") {
                len = v
                    .trim()
                    .parse()
                    .map_err(|_| ParseError::BadContentLength(v.trim().to_string()))?;
            }
        }
    }
    if len > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let total = skip + body_start + len;
    Ok((buf.len() >= total).then_some(total))
}

/// The tolerant pre-pass: unfolds lines, expands compact names, applies Content-Length.
pub fn split_raw(bytes: &[u8]) -> Result<RawMessage, ParseError> {
    if bytes.len() > MAX_MESSAGE {
        return Err(ParseError::TooLarge);
    }
    let start = bytes
        .iter()
        .position(|b| !b.is_ascii_whitespace())
        .ok_or(ParseError::Empty)?;
    let bytes = &bytes[start..];
    let (head_end, body_start) = header_end(bytes).ok_or(ParseError::NoHeaderEnd)?;
    let head = std::str::from_utf8(&bytes[..head_end]).map_err(|_| ParseError::NotUtf8)?;
    let mut lines: Vec<String> = Vec::new();
    for line in head.split('\n') {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.starts_with([' ', '\t']) {
            let n = lines.len();
            match lines.last_mut() {
                // Folded continuation (RFC 3261 §7.3.1): join with one space.
                Some(prev) if n > 1 => {
                    prev.push(' ');
                    prev.push_str(line.trim());
                }
                _ => return Err(ParseError::BadHeaderLine(line.to_string())),
            }
        } else {
            lines.push(line.to_string());
        }
    }
    let mut iter = lines.into_iter();
    let start_line = iter.next().unwrap_or_default().trim().to_string();
    if start_line.is_empty() || start_line.chars().any(|c| c.is_control()) {
        return Err(ParseError::BadStartLine(start_line));
    }
    let mut headers = Vec::new();
    for line in iter {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| ParseError::BadHeaderLine(line.clone()))?;
        let name = name.trim();
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            return Err(ParseError::BadHeaderLine(line.clone()));
        }
        if value.chars().any(|c| c.is_control() && c != '\t') {
            return Err(ParseError::BadHeader {
                name: long_header_name(name).to_string(),
                why: "it contains a control character (NUL, ESC, ...)",
            });
        }
        headers.push((long_header_name(name).to_string(), value.trim().to_string()));
    }
    let available = &bytes[body_start..];
    let body = match headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("Content-Length"))
    {
        Some((_, v)) => {
            let want: usize = v
                .parse()
                .map_err(|_| ParseError::BadContentLength(v.clone()))?;
            if available.len() < want {
                return Err(ParseError::TruncatedBody {
                    have: available.len(),
                    want,
                });
            }
            available[..want].to_vec()
        }
        None => available.to_vec(),
    };
    Ok(RawMessage {
        start_line,
        headers,
        body,
    })
}

/// Parses one datagram (or one framed stream message) into an rsip message.
///
/// Never panics: rsip runs behind `catch_unwind` as a last line of defence, because a
/// hostile datagram must not take the agent down even if a parser dependency has a bug.
pub fn parse(bytes: &[u8]) -> Result<SipMessage, ParseError> {
    let raw = split_raw(bytes)?;
    parse_raw(&raw)
}

/// Second stage of [`parse`]: canonical text → rsip, then mandatory-header checks.
pub fn parse_raw(raw: &RawMessage) -> Result<SipMessage, ParseError> {
    let mut canon = String::with_capacity(512 + raw.body.len());
    canon.push_str(&raw.start_line);
    canon.push_str("\r\n");
    for (n, v) in &raw.headers {
        if n.eq_ignore_ascii_case("Content-Length") {
            continue;
        }
        let _ = write!(canon, "{n}: {v}\r\n");
    }
    let _ = write!(canon, "Content-Length: {}\r\n\r\n", raw.body.len());
    let mut bytes = canon.into_bytes();
    bytes.extend_from_slice(&raw.body);
    let parsed = std::panic::catch_unwind(|| SipMessage::try_from(bytes.as_slice()))
        .map_err(|_| ParseError::Rsip("parser panicked".into()))?
        .map_err(|e| ParseError::Rsip(e.to_string()))?;
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        let v = header_value(parsed.headers(), name);
        if v.is_none_or(|v| v.is_empty()) {
            return Err(ParseError::MissingHeader(match name {
                "Via" => "Via",
                "From" => "From",
                "To" => "To",
                "Call-ID" => "Call-ID",
                _ => "CSeq",
            }));
        }
    }
    if cseq(parsed.headers()).is_none() {
        return Err(ParseError::MissingHeader("CSeq"));
    }
    check_headers(raw)?;
    Ok(parsed)
}

/// Checks rsip leaves to the application: each Via is `SIP/2.0/<transport> host[:port]`
/// (a response could not be routed otherwise), and address headers have closed quotes
/// and angle brackets (RFC 4475 §3.1.2: unterminated quoted strings and the like).
fn check_headers(raw: &RawMessage) -> Result<(), ParseError> {
    let bad = |name: &str, why| ParseError::BadHeader {
        name: name.to_string(),
        why,
    };
    for (n, v) in &raw.headers {
        if n.eq_ignore_ascii_case("Via") {
            for via in split_list(v) {
                // RFC 3261 allows whitespace around the slashes of the protocol.
                let via: Vec<&str> = via.split('/').map(str::trim).collect();
                let via = via.join("/");
                let mut it = via.split_whitespace();
                let proto = it.next().unwrap_or("");
                let parts: Vec<&str> = proto.split('/').collect();
                if parts.len() != 3
                    || !parts[0].eq_ignore_ascii_case("SIP")
                    || parts[1] != "2.0"
                    || parts[2].is_empty()
                {
                    return Err(bad("Via", "the protocol is not SIP/2.0/<transport>"));
                }
                let host = it.next().unwrap_or("").split(';').next().unwrap_or("");
                if host.is_empty() || uri_host_port(&format!("sip:{host}")).is_none() {
                    return Err(bad("Via", "it has no sent-by host[:port]"));
                }
            }
        }
        let addr = ["From", "To", "Contact", "Route", "Record-Route"]
            .into_iter()
            .find(|a| n.eq_ignore_ascii_case(a));
        if let Some(name) = addr {
            let (mut quoted, mut escaped, mut angle) = (false, false, 0i32);
            for c in v.chars() {
                match c {
                    _ if escaped => escaped = false,
                    '\\' if quoted => escaped = true,
                    '"' => quoted = !quoted,
                    '<' if !quoted => angle += 1,
                    '>' if !quoted => angle -= 1,
                    _ => {}
                }
            }
            if quoted {
                return Err(bad(name, "a quoted string is not terminated"));
            }
            if angle != 0 {
                return Err(bad(name, "its angle brackets do not match"));
            }
        }
    }
    Ok(())
}

/// Methods RFC 3261 and its common extensions define. Anything else gets 501.
const KNOWN_METHODS: &[&str] = &[
    "INVITE",
    "ACK",
    "BYE",
    "CANCEL",
    "OPTIONS",
    "REGISTER",
    "INFO",
    "PRACK",
    "SUBSCRIBE",
    "NOTIFY",
    "UPDATE",
    "MESSAGE",
    "REFER",
    "PUBLISH",
];

/// Request-line and CSeq problems answered before full parsing, as (status, reason):
/// a SIP version other than 2.0 (505), a Request-URI scheme other than sip/sips/tel
/// (416), an unknown method (501), a CSeq method that differs from the request's (400).
pub fn request_line_problem(raw: &RawMessage) -> Option<(u16, String)> {
    let mut it = raw.start_line.split_whitespace();
    let (method, uri, version) = (it.next()?, it.next()?, it.next()?);
    if it.next().is_some() || !method.bytes().all(|b| b.is_ascii_alphabetic()) {
        return None;
    }
    let major = version.get(..4)?;
    if !major.eq_ignore_ascii_case("SIP/") {
        return None;
    }
    if !version.eq_ignore_ascii_case("SIP/2.0") {
        return Some((
            505,
            format!("Version Not Supported: {version}; use SIP/2.0"),
        ));
    }
    let scheme = uri.split(':').next().unwrap_or("").to_ascii_lowercase();
    // Only a well-formed scheme (RFC 3986 §3.1) is "unsupported"; anything else is a
    // malformed URI, left to the parser's 400.
    let well_formed = scheme.starts_with(|c: char| c.is_ascii_alphabetic())
        && scheme
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
        && uri.contains(':');
    if well_formed && !matches!(scheme.as_str(), "sip" | "sips" | "tel") {
        return Some((416, format!("Unsupported URI Scheme: {scheme}")));
    }
    if !KNOWN_METHODS.contains(&method) {
        return Some((501, format!("Not Implemented: method {method}")));
    }
    let cseq_method = raw
        .header("CSeq")
        .and_then(|v| v.split_whitespace().nth(1))
        .unwrap_or(method);
    if cseq_method != method {
        return Some((
            400,
            format!("Bad Request: CSeq method {cseq_method} differs from request method {method}"),
        ));
    }
    None
}

/// The pre-pass again, forgiving everything it can, to answer a request it rejected:
/// the head is read as lossy UTF-8 up to the blank line (or the whole datagram), and
/// only well-formed `Name: value` lines are kept. Unfolded lines and bodies are lost,
/// which does not matter for an error response.
pub fn salvage(bytes: &[u8]) -> Option<RawMessage> {
    let bytes = &bytes[bytes.iter().position(|b| !b.is_ascii_whitespace())?..];
    let bytes = &bytes[..bytes.len().min(MAX_MESSAGE)];
    let head = header_end(bytes).map(|(h, _)| &bytes[..h]).unwrap_or(bytes);
    let head = String::from_utf8_lossy(head);
    let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let start_line = lines.next()?.trim().to_string();
    let headers = lines
        .filter_map(|l| {
            let (n, v) = l.split_once(':')?;
            let n = n.trim();
            (!n.is_empty()
                && n.bytes().all(|b| b.is_ascii_graphic())
                && !v.chars().any(|c| c.is_control() && c != '\t'))
            .then(|| (long_header_name(n).to_string(), v.trim().to_string()))
        })
        .collect();
    Some(RawMessage {
        start_line,
        headers,
        body: Vec::new(),
    })
}

/// Builds a 400 for a request rsip could not parse, when enough of it survived the pre-pass.
pub fn bad_request_for(raw: &RawMessage, reason: &str) -> Option<Vec<u8>> {
    error_response_for(raw, 400, &format!("Bad Request: {reason}"))
}

/// Builds an error response (`code`, reason phrase `phrase`, which names the problem,
/// also given in a Warning) from the raw headers of a request that cannot be processed.
/// Only a Via is needed to send it back: whatever of From/To/Call-ID/CSeq survived is
/// copied (a request missing one of them still learns why it failed). No response to
/// an ACK, nor to anything that is not a request.
pub fn error_response_for(raw: &RawMessage, code: u16, phrase: &str) -> Option<Vec<u8>> {
    let mut words = raw.start_line.split_whitespace();
    let method = words.next().unwrap_or("");
    let version = words.last().unwrap_or("");
    let looks_like_request = !method.is_empty()
        && method.bytes().all(|b| b.is_ascii_alphabetic())
        && version
            .get(..4)
            .is_some_and(|v| v.eq_ignore_ascii_case("SIP/"));
    if !looks_like_request || method.eq_ignore_ascii_case("ACK") || raw.header("Via").is_none() {
        return None;
    }
    let phrase: String = phrase
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .take(120)
        .collect();
    let mut out = String::new();
    let _ = write!(out, "SIP/2.0 {code} {phrase}\r\n");
    for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
        for (n, v) in &raw.headers {
            if n.eq_ignore_ascii_case(name) {
                let _ = write!(out, "{name}: {v}\r\n");
            }
        }
    }
    let _ = write!(
        out,
        "Warning: 399 tingshuo \"{}\"\r\n",
        phrase.replace('"', "'")
    );
    out.push_str("Content-Length: 0\r\n\r\n");
    Some(out.into_bytes())
}

// ---------------------------------------------------------------------------
// Header access helpers (work on any rsip message; names are case-insensitive).

/// Splits a `Name: value` rendering of an rsip header.
fn name_value(h: &Header) -> (String, String) {
    let s = h.to_string();
    match s.split_once(':') {
        Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
        None => (s, String::new()),
    }
}

/// All values of header `name`, in order (one per header line).
pub fn header_values(headers: &Headers, name: &str) -> Vec<String> {
    headers
        .iter()
        .map(name_value)
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
        .collect()
}

/// First value of header `name`.
pub fn header_value(headers: &Headers, name: &str) -> Option<String> {
    headers
        .iter()
        .map(name_value)
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v)
}

/// Splits a comma-separated header value, honouring quotes and `<...>`.
pub fn split_list(value: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let (mut quoted, mut angle) = (false, false);
    for c in value.chars() {
        match c {
            '"' => quoted = !quoted,
            '<' if !quoted => angle = true,
            '>' if !quoted => angle = false,
            ',' if !quoted && !angle => {
                if !cur.trim().is_empty() {
                    out.push(cur.trim().to_string());
                }
                cur.clear();
                continue;
            }
            _ => {}
        }
        cur.push(c);
    }
    if !cur.trim().is_empty() {
        out.push(cur.trim().to_string());
    }
    out
}

/// All comma-separated entries of every `name` header, in order.
pub fn header_list(headers: &Headers, name: &str) -> Vec<String> {
    header_values(headers, name)
        .iter()
        .flat_map(|v| split_list(v))
        .collect()
}

/// `CSeq` number and method.
pub fn cseq(headers: &Headers) -> Option<(u32, String)> {
    let v = header_value(headers, "CSeq")?;
    let mut it = v.split_whitespace();
    let n = it.next()?.parse().ok()?;
    let m = it.next()?.to_ascii_uppercase();
    Some((n, m))
}

pub fn call_id(headers: &Headers) -> Option<String> {
    header_value(headers, "Call-ID").filter(|v| !v.is_empty())
}

/// A `;name=value` parameter of a header value, outside `<...>` (e.g. a tag).
pub fn param(value: &str, name: &str) -> Option<String> {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).find_map(|p| {
        let (n, v) = p.split_once('=').unwrap_or((p, ""));
        n.trim()
            .eq_ignore_ascii_case(name)
            .then(|| v.trim().to_string())
    })
}

/// True when a `;flag` parameter (valued or not) is present outside `<...>`.
pub fn has_param(value: &str, name: &str) -> bool {
    let after = match value.rfind('>') {
        Some(i) => &value[i + 1..],
        None => value,
    };
    after.split(';').skip(1).any(|p| {
        p.split('=')
            .next()
            .unwrap_or("")
            .trim()
            .eq_ignore_ascii_case(name)
    })
}

pub fn from_tag(headers: &Headers) -> Option<String> {
    header_value(headers, "From")
        .and_then(|v| param(&v, "tag"))
        .filter(|t| !t.is_empty())
}

pub fn to_tag(headers: &Headers) -> Option<String> {
    header_value(headers, "To")
        .and_then(|v| param(&v, "tag"))
        .filter(|t| !t.is_empty())
}

/// The URI inside a name-addr (`"x" <sip:a@b>;tag=1` → `sip:a@b`) or addr-spec.
pub fn addr_uri(value: &str) -> String {
    if let (Some(a), Some(b)) = (value.find('<'), value.rfind('>')) {
        if a < b {
            return value[a + 1..b].trim().to_string();
        }
    }
    value.split(';').next().unwrap_or("").trim().to_string()
}

/// The user part of a SIP URI (`sip:bot@h` → `bot`).
pub fn uri_user(uri: &str) -> Option<String> {
    let rest = uri.split_once(':').map(|(_, r)| r).unwrap_or(uri);
    let (user, _) = rest.split_once('@')?;
    let user = user.split(':').next().unwrap_or(user);
    (!user.is_empty()).then(|| user.to_string())
}

/// The port a URI without one means (RFC 3261 §19.1.2): 5061 for `sips:` and
/// `;transport=tls`, 5060 otherwise.
fn default_port(uri: &str) -> u16 {
    let lower = uri.trim().to_ascii_lowercase();
    if lower.starts_with("sips:") || lower.contains(";transport=tls") {
        5061
    } else {
        5060
    }
}

/// `host:port` of a SIP URI (default port 5060, or 5061 for `sips:` and
/// `;transport=tls`), without parameters or user.
pub fn uri_host_port(uri: &str) -> Option<(String, u16)> {
    let default = default_port(uri);
    let rest = uri.split_once(':').map(|(_, r)| r)?;
    let rest = rest.rsplit_once('@').map(|(_, h)| h).unwrap_or(rest);
    let hp = rest.split([';', '?']).next().unwrap_or("");
    if let Some(v6) = hp.strip_prefix('[') {
        let (h, after) = v6.split_once(']')?;
        let port = match after.strip_prefix(':') {
            Some(p) => p.parse().ok()?,
            None => default,
        };
        return Some((h.to_string(), port));
    }
    match hp.split_once(':') {
        Some((h, p)) => Some((h.to_string(), p.parse().ok()?)),
        None if !hp.is_empty() => Some((hp.to_string(), default)),
        None => None,
    }
}

/// Resolves a URI's host:port to a socket address (IP literals only; no DNS in the core).
pub fn uri_socket_addr(uri: &str) -> Option<SocketAddr> {
    let (h, p) = uri_host_port(uri)?;
    let ip: std::net::IpAddr = h.parse().ok()?;
    Some(SocketAddr::new(ip, p))
}

/// The top Via value of a message.
pub fn top_via(headers: &Headers) -> Option<String> {
    header_list(headers, "Via").into_iter().next()
}

/// Branch parameter of the top Via.
pub fn top_branch(headers: &Headers) -> Option<String> {
    top_via(headers)
        .and_then(|v| param(&v, "branch"))
        .filter(|b| !b.is_empty())
}

/// Where to send responses to a request (RFC 3261 §18.2.2 with RFC 3581 rport):
/// the packet's source when `rport` is present, otherwise `received`/sent-by.
pub fn response_dest(headers: &Headers, source: SocketAddr) -> SocketAddr {
    let Some(via) = top_via(headers) else {
        return source;
    };
    if has_param(&via, "rport") {
        return source;
    }
    let sent_by = via.split_whitespace().nth(1).unwrap_or("");
    let sent_by = sent_by.split(';').next().unwrap_or("");
    let tls = via
        .split_whitespace()
        .next()
        .is_some_and(|p| p.to_ascii_uppercase().ends_with("/TLS"));
    let scheme = if tls { "sips" } else { "sip" };
    let port = uri_host_port(&format!("{scheme}:{sent_by}"))
        .map(|(_, p)| p)
        .unwrap_or(5060);
    let ip = param(&via, "received")
        .and_then(|r| r.parse().ok())
        .unwrap_or(source.ip());
    SocketAddr::new(ip, port)
}

/// Adds `received`/`rport` to the top Via of an incoming request (RFC 3581) so the
/// responses we echo back tell the peer what we saw.
pub fn stamp_via(req: &mut Request, source: SocketAddr) {
    let mut done = false;
    for h in req.headers.iter_mut() {
        if done {
            break;
        }
        let (n, v) = name_value(h);
        if !n.eq_ignore_ascii_case("Via") {
            continue;
        }
        let mut vias = split_list(&v);
        if let Some(top) = vias.first_mut() {
            let mut params: Vec<String> = top.split(';').map(|s| s.to_string()).collect();
            let mut has_received = false;
            for p in params.iter_mut().skip(1) {
                let key = p
                    .split('=')
                    .next()
                    .unwrap_or("")
                    .trim()
                    .to_ascii_lowercase();
                if key == "rport" {
                    *p = format!("rport={}", source.port());
                } else if key == "received" {
                    *p = format!("received={}", source.ip());
                    has_received = true;
                }
            }
            if !has_received {
                params.push(format!("received={}", source.ip()));
            }
            *top = params.join(";");
        }
        *h = Header::Other("Via".into(), vias.join(", "));
        done = true;
    }
}

// ---------------------------------------------------------------------------
// Builders

/// A fresh random token for tags, branches and Call-IDs.
pub fn token(len: usize) -> String {
    use rand::Rng;
    const ALPHA: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
    let mut rng = rand::rng();
    (0..len)
        .map(|_| ALPHA[rng.random_range(0..ALPHA.len())] as char)
        .collect()
}

/// A new RFC 3261 branch (magic cookie prefix).
pub fn new_branch() -> String {
    format!("z9hG4bK{}", token(16))
}

pub fn hdr(name: &str, value: impl Into<String>) -> Header {
    Header::Other(name.to_string(), value.into())
}

/// Serialises with an exact Content-Length (rsip does not add it).
pub fn to_bytes(msg: &SipMessage) -> Vec<u8> {
    let mut msg = msg.clone();
    let len = msg.body().len();
    msg.headers_mut()
        .retain(|h| !name_value(h).0.eq_ignore_ascii_case("Content-Length"));
    msg.headers_mut()
        .push(hdr("Content-Length", len.to_string()));
    msg.to_string().into_bytes()
}

/// Builds a request with the given headers and body.
pub fn request(method: Method, uri: &str, headers: Vec<Header>, body: Vec<u8>) -> Option<Request> {
    let uri = Uri::try_from(uri).ok()?;
    Some(Request {
        method,
        uri,
        version: Version::V2,
        headers: headers.into(),
        body,
    })
}

/// A response to `req` copying Via/From/To/Call-ID/CSeq (RFC 3261 §8.2.6), adding a
/// To tag when given and the request had none.
pub fn response_to(req: &Request, code: u16, to_tag: Option<&str>) -> Response {
    let mut headers: Vec<Header> = Vec::new();
    for name in ["Via", "Record-Route", "From", "To", "Call-ID", "CSeq"] {
        // Record-Route is copied only in dialog-creating 1xx/2xx.
        if name == "Record-Route" && !(100 < code && code < 300) {
            continue;
        }
        for v in header_values(&req.headers, name) {
            let v = if name == "To" && !v.to_ascii_lowercase().contains(";tag=") {
                match to_tag {
                    Some(t) if code > 100 => format!("{v};tag={t}"),
                    _ => v,
                }
            } else {
                v
            };
            headers.push(hdr(name, v));
        }
    }
    Response {
        status_code: StatusCode::from(code),
        version: Version::V2,
        headers: headers.into(),
        body: Vec::new(),
    }
}

/// The reason phrase we send for our status codes.
pub fn reason(code: u16) -> &'static str {
    match code {
        100 => "Trying",
        180 => "Ringing",
        183 => "Session Progress",
        200 => "OK",
        400 => "Bad Request",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        415 => "Unsupported Media Type",
        416 => "Unsupported URI Scheme",
        480 => "Temporarily Unavailable",
        482 => "Loop Detected",
        481 => "Call/Transaction Does Not Exist",
        486 => "Busy Here",
        487 => "Request Terminated",
        488 => "Not Acceptable Here",
        491 => "Request Pending",
        500 => "Server Internal Error",
        501 => "Not Implemented",
        505 => "Version Not Supported",
        513 => "Message Too Large",
        503 => "Service Unavailable",
        603 => "Decline",
        _ => "Unknown",
    }
}

/// Status code of a response.
pub fn status(resp: &Response) -> u16 {
    resp.status_code.code()
}

#[cfg(test)]
mod tests {
    use super::*;

    const INVITE: &str = "INVITE sip:bot@127.0.0.1:5090 SIP/2.0\r\n\
v: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKabc;rport\r\n\
f: \"Alice\" <sip:1001@127.0.0.1>;tag=aa\r\n\
t: <sip:bot@127.0.0.1>\r\n\
i: call-1@x\r\n\
CSEQ: 7 INVITE\r\n\
m: <sip:1001@127.0.0.1:5071>\r\n\
Max-Forwards: 70\r\n\
c: application/sdp\r\n\
l: 4\r\n\r\nv=0\ntrailing";

    #[test]
    fn compact_and_case_insensitive_headers_parse() {
        let msg = parse(INVITE.as_bytes()).expect("parses");
        let SipMessage::Request(req) = msg else {
            panic!("request expected")
        };
        assert_eq!(req.method, Method::Invite);
        assert_eq!(call_id(&req.headers).as_deref(), Some("call-1@x"));
        assert_eq!(cseq(&req.headers), Some((7, "INVITE".into())));
        assert_eq!(from_tag(&req.headers).as_deref(), Some("aa"));
        assert_eq!(to_tag(&req.headers), None);
        assert_eq!(top_branch(&req.headers).as_deref(), Some("z9hG4bKabc"));
        assert_eq!(req.body, b"v=0\n");
    }

    #[test]
    fn folded_lines_and_bare_lf() {
        let text = "OPTIONS sip:x@127.0.0.1 SIP/2.0\nVia: SIP/2.0/UDP 1.2.3.4:5060\n ;branch=z9hG4bK1\nFrom: <sip:a@b>;tag=1\nTo: <sip:x@127.0.0.1>\nCall-ID: c\nCSeq: 1 OPTIONS\n\n";
        let msg = parse(text.as_bytes()).expect("parses");
        assert_eq!(top_branch(msg.headers()).as_deref(), Some("z9hG4bK1"));
    }

    #[test]
    fn truncated_body_and_missing_headers_are_errors() {
        let short = INVITE.replace("l: 4", "l: 400");
        assert!(matches!(
            parse(short.as_bytes()),
            Err(ParseError::TruncatedBody { .. })
        ));
        let no_callid = INVITE.replace("i: call-1@x\r\n", "");
        assert_eq!(
            parse(no_callid.as_bytes()),
            Err(ParseError::MissingHeader("Call-ID"))
        );
        assert_eq!(parse(b"\r\n\r\n"), Err(ParseError::Empty));
        assert_eq!(parse(b"garbage"), Err(ParseError::NoHeaderEnd));
    }

    #[test]
    fn bad_request_is_built_from_the_raw_headers() {
        let text = "INVITE not a uri at all SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKq\r\nFrom: <sip:a@b>;tag=1\r\nTo: <sip:c@d>\r\nCall-ID: q\r\nCSeq: 1 INVITE\r\n\r\n";
        let raw = split_raw(text.as_bytes()).expect("pre-pass ok");
        let resp = bad_request_for(&raw, "bad uri").expect("answerable");
        let resp = String::from_utf8(resp).expect("utf8");
        assert!(resp.starts_with("SIP/2.0 400"));
        assert!(resp.contains("Call-ID: q"));
    }

    #[test]
    fn structural_header_errors_name_the_header() {
        let bad = |from: &str, to: &str| parse(INVITE.replace(from, to).as_bytes());
        let name = |r: Result<SipMessage, ParseError>| match r {
            Err(ParseError::BadHeader { name, .. }) => name,
            other => panic!("expected BadHeader, got {other:?}"),
        };
        assert_eq!(name(bad("\"Alice\"", "\"Alice")), "From");
        assert_eq!(
            name(bad("t: <sip:bot@127.0.0.1>", "t: <sip:bot@127.0.0.1")),
            "To"
        );
        assert_eq!(
            name(bad("SIP/2.0/UDP 127.0.0.1:5071", "SIP/2.0/UDP ")),
            "Via"
        );
        assert_eq!(name(bad("SIP/2.0/UDP 127", "HTTP/1.1/UDP 127")), "Via");
        assert_eq!(
            name(bad("Max-Forwards: 70", "Max-Forwards: 7\u{0}0")),
            "Max-Forwards"
        );
        // Whitespace around the slashes and an escaped quote are legal.
        assert!(bad("SIP/2.0/UDP", "SIP / 2.0 /UDP").is_ok());
        assert!(bad("\"Alice\"", "\"Al\\\"ice\"").is_ok());
    }

    #[test]
    fn request_line_problems_get_their_own_codes() {
        let code = |line: &str, cseq: &str| {
            let text = format!(
                "{line}\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bKq\r\nCSeq: {cseq}\r\n\r\n"
            );
            request_line_problem(&split_raw(text.as_bytes()).expect("pre-pass")).map(|p| p.0)
        };
        assert_eq!(code("OPTIONS sip:a@b SIP/7.0", "1 OPTIONS"), Some(505));
        assert_eq!(code("OPTIONS urn:x:y SIP/2.0", "1 OPTIONS"), Some(416));
        assert_eq!(code("OPTIONS :::: SIP/2.0", "1 OPTIONS"), None);
        assert_eq!(code("FROB sip:a@b SIP/2.0", "1 FROB"), Some(501));
        assert_eq!(code("OPTIONS sip:a@b SIP/2.0", "1 INVITE"), Some(400));
        assert_eq!(code("OPTIONS sip:a@b SIP/2.0", "1 OPTIONS"), None);
        assert_eq!(code("SUBSCRIBE tel:+861234 SIP/2.0", "1 SUBSCRIBE"), None);
    }

    #[test]
    fn salvaged_requests_are_answered_with_the_problem_named() {
        let mut bytes = INVITE.replace("\"Alice\"", "\"Ren\u{1}e\"").into_bytes();
        let p = bytes.iter().position(|b| *b == 1).expect("marker");
        bytes[p] = 0xE9;
        let err = split_raw(&bytes).expect_err("not UTF-8");
        let raw = salvage(&bytes).expect("salvaged");
        let resp =
            error_response_for(&raw, 400, &format!("Bad Request: {err}")).expect("answerable");
        let resp = String::from_utf8(resp).expect("utf8");
        assert!(
            resp.starts_with("SIP/2.0 400 Bad Request: header section is not UTF-8"),
            "{resp}"
        );
        assert!(
            resp.contains("Call-ID: call-1@x") && resp.contains("Via: SIP/2.0/UDP 127.0.0.1:5071")
        );
        // A multi-byte character where the version should be must not panic.
        let odd =
            salvage("OPTIONS sip:a@b SIP長/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n".as_bytes())
                .expect("raw");
        assert!(error_response_for(&odd, 400, "x").is_none());
        let odd = salvage("OPTIONS sip:a@b 長\r\nVia: SIP/2.0/UDP 1.2.3.4\r\n\r\n".as_bytes())
            .expect("raw");
        assert!(
            request_line_problem(&odd).is_none() && error_response_for(&odd, 400, "x").is_none()
        );
        // No Via, nowhere to answer; never answer an ACK.
        let no_via = INVITE.replace(
            "v: SIP/2.0/UDP 127.0.0.1:5071;branch=z9hG4bKabc;rport\r\n",
            "",
        );
        assert!(error_response_for(&salvage(no_via.as_bytes()).expect("raw"), 400, "x").is_none());
        let ack = INVITE.replace("INVITE sip", "ACK sip");
        assert!(error_response_for(&salvage(ack.as_bytes()).expect("raw"), 400, "x").is_none());
    }

    #[test]
    fn rport_and_received_choose_the_response_destination() {
        let src: SocketAddr = "10.0.0.9:40000".parse().expect("addr");
        let msg = parse(INVITE.as_bytes()).expect("parses");
        assert_eq!(response_dest(msg.headers(), src), src);
        let no_rport = INVITE.replace(";rport", "");
        let msg = parse(no_rport.as_bytes()).expect("parses");
        assert_eq!(
            response_dest(msg.headers(), src),
            "10.0.0.9:5071"
                .parse::<std::net::SocketAddr>()
                .expect("addr")
        );
        let SipMessage::Request(mut req) = parse(INVITE.as_bytes()).expect("parses") else {
            panic!()
        };
        stamp_via(&mut req, src);
        let via = top_via(&req.headers).expect("via");
        assert_eq!(param(&via, "rport").as_deref(), Some("40000"));
        assert_eq!(param(&via, "received").as_deref(), Some("10.0.0.9"));
    }

    #[test]
    fn response_round_trips() {
        let SipMessage::Request(req) = parse(INVITE.as_bytes()).expect("parses") else {
            panic!()
        };
        let resp = response_to(&req, 180, Some("tt"));
        let bytes = to_bytes(&resp.into());
        let back = parse(&bytes).expect("own output parses");
        assert_eq!(to_tag(back.headers()).as_deref(), Some("tt"));
        assert!(matches!(back, SipMessage::Response(r) if r.status_code.code() == 180));
    }

    #[test]
    fn stream_framing() {
        let one = INVITE.replace("trailing", "");
        let mut two = format!("\r\n\r\n{one}{one}").into_bytes();
        let first = stream_frame_len(&two).expect("ok").expect("complete");
        assert_eq!(first, 4 + one.len());
        two.drain(..first);
        assert_eq!(stream_frame_len(&two), Ok(Some(one.len())));
        assert_eq!(stream_frame_len(&two[..10]), Ok(None));
    }

    #[test]
    fn uri_helpers() {
        assert_eq!(uri_user("sip:bot@127.0.0.1:5090").as_deref(), Some("bot"));
        assert_eq!(
            uri_host_port("sip:bot@127.0.0.1:5090;transport=udp"),
            Some(("127.0.0.1".into(), 5090))
        );
        assert_eq!(
            uri_host_port("sip:127.0.0.1"),
            Some(("127.0.0.1".into(), 5060))
        );
        // TLS without a port means 5061 (RFC 3261 §19.1.2).
        assert_eq!(
            uri_host_port("sips:2001@10.0.0.5"),
            Some(("10.0.0.5".into(), 5061))
        );
        assert_eq!(
            uri_host_port("sip:2001@pbx.example;transport=TLS"),
            Some(("pbx.example".into(), 5061))
        );
        assert_eq!(uri_host_port("sips:[::1]"), Some(("::1".into(), 5061)));
        let mut h = Headers::default();
        h.push(rsip::Header::Other(
            "Via".into(),
            "SIP/2.0/TLS 10.0.0.9;branch=z9hG4bK1".into(),
        ));
        assert_eq!(
            response_dest(&h, "10.0.0.9:40000".parse().expect("addr")),
            "10.0.0.9:5061".parse::<SocketAddr>().expect("addr")
        );
        assert_eq!(
            addr_uri("\"A, B\" <sip:a@b;lr>;tag=x"),
            "sip:a@b;lr".to_string()
        );
        assert_eq!(
            split_list("<sip:a;lr>, <sip:b;lr>"),
            vec!["<sip:a;lr>".to_string(), "<sip:b;lr>".to_string()]
        );
    }
}

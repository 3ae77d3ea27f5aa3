//! HTTP digest authentication for SIP (RFC 2617 / RFC 3261 §22), MD5 with `qop=auth`.
//!
//! Client side: registrars challenge REGISTER with 401 (`WWW-Authenticate`, answered in
//! `Authorization`) and proxies challenge INVITE with 407 (`Proxy-Authenticate`,
//! answered in `Proxy-Authorization`). The nonce count must grow for every reuse of a
//! nonce, so a [`DigestState`] remembers the last challenge per realm.
//!
//! Server side ([`DigestServer`]): the optional challenge of inbound INVITEs. Nonces are
//! stateless (issue time + a keyed SHA-256 MAC under a per-process random secret), so a
//! flood of unauthenticated INVITEs costs no memory; only nonces that carried a valid
//! response are remembered, with their last nonce count, to refuse replays.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use md5::{Digest as _, Md5};
use sha2::Sha256;

/// One parsed challenge.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Challenge {
    pub realm: String,
    pub nonce: String,
    pub opaque: Option<String>,
    pub algorithm: Option<String>,
    /// True when the server offered `qop=auth`.
    pub qop_auth: bool,
    pub stale: bool,
}

/// Parses `Digest realm="x", nonce="y", qop="auth,auth-int"`.
pub fn parse_challenge(value: &str) -> Option<Challenge> {
    let value = value.trim();
    let (scheme, rest) = value.split_once(char::is_whitespace)?;
    if !scheme.eq_ignore_ascii_case("Digest") {
        return None;
    }
    let params = parse_params(rest);
    let get = |k: &str| {
        params
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(k))
            .map(|(_, v)| v.clone())
    };
    let algorithm = get("algorithm");
    if let Some(a) = &algorithm {
        if !a.eq_ignore_ascii_case("MD5") {
            return None;
        }
    }
    Some(Challenge {
        realm: get("realm")?,
        nonce: get("nonce")?,
        opaque: get("opaque"),
        algorithm,
        qop_auth: get("qop")
            .map(|q| q.split(',').any(|t| t.trim().eq_ignore_ascii_case("auth")))
            .unwrap_or(false),
        stale: get("stale")
            .map(|s| s.eq_ignore_ascii_case("true"))
            .unwrap_or(false),
    })
}

/// Splits `a="x, y", b=z` into pairs, honouring quotes.
fn parse_params(s: &str) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut chars = s.chars().peekable();
    loop {
        while matches!(chars.peek(), Some(c) if c.is_whitespace() || *c == ',') {
            chars.next();
        }
        let mut name = String::new();
        while let Some(&c) = chars.peek() {
            if c == '=' || c == ',' {
                break;
            }
            name.push(c);
            chars.next();
        }
        if name.trim().is_empty() {
            break;
        }
        let mut value = String::new();
        if chars.peek() == Some(&'=') {
            chars.next();
            while matches!(chars.peek(), Some(c) if c.is_whitespace()) {
                chars.next();
            }
            if chars.peek() == Some(&'"') {
                chars.next();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            if let Some(n) = chars.next() {
                                value.push(n)
                            }
                        }
                        '"' => break,
                        _ => value.push(c),
                    }
                }
            } else {
                while let Some(&c) = chars.peek() {
                    if c == ',' {
                        break;
                    }
                    value.push(c);
                    chars.next();
                }
            }
        }
        out.push((name.trim().to_string(), value.trim().to_string()));
    }
    out
}

fn md5_hex(s: &str) -> String {
    hex::encode(Md5::digest(s.as_bytes()))
}

/// How long an issued nonce stays valid; older ones get a fresh challenge with `stale=true`.
pub const NONCE_LIFETIME: Duration = Duration::from_secs(300);

/// What the UAS checks inbound INVITEs against (`[sip.inbound_auth]`).
#[derive(Clone, PartialEq, Eq)]
pub struct ServerCredentials {
    pub realm: String,
    pub username: String,
    pub password: String,
}

impl std::fmt::Debug for ServerCredentials {
    /// Never prints the password (configs are logged at debug level).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ServerCredentials")
            .field("realm", &self.realm)
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .finish()
    }
}

/// The outcome of checking a request's `Authorization` headers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Valid credentials for our realm and user.
    Accepted,
    /// No usable credentials for our realm (none, an unknown or forged nonce, a replayed
    /// nonce count, or a correct response on an expired nonce when `stale`): answer 401
    /// with a fresh challenge.
    Challenge { stale: bool, why: &'static str },
    /// Credentials for our realm that are wrong (user, password, algorithm): answer 403.
    Forbidden(&'static str),
    /// Credentials for our realm missing a field the digest needs: answer 400.
    Malformed(&'static str),
}

/// Server-side digest: issues stateless nonces and verifies responses (RFC 2617, MD5,
/// `qop=auth`; RFC 2069 responses without qop are accepted too).
pub struct DigestServer {
    creds: ServerCredentials,
    /// Keys the nonce MAC; new per process, so nonces do not survive a restart.
    secret: [u8; 32],
    /// Time origin of the timestamps in nonces.
    epoch: Instant,
    lifetime: Duration,
    /// Nonces that authenticated a request → (highest nonce count, issue time).
    seen: HashMap<String, (u32, Instant)>,
}

impl std::fmt::Debug for DigestServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DigestServer")
            .field("creds", &self.creds)
            .field("seen", &self.seen.len())
            .finish_non_exhaustive()
    }
}

/// Length of the hex timestamp at the start of a nonce.
const TS_HEX: usize = 16;

impl DigestServer {
    pub fn new(creds: ServerCredentials, epoch: Instant) -> Self {
        Self {
            creds,
            secret: rand::random(),
            epoch,
            lifetime: NONCE_LIFETIME,
            seen: HashMap::new(),
        }
    }

    pub fn realm(&self) -> &str {
        &self.creds.realm
    }

    /// HMAC-SHA256 (RFC 2104) of the timestamp, truncated to 128 bits.
    fn mac(&self, ts: &str) -> String {
        // A 32-byte key is always a valid HMAC key; the fallback is unreachable.
        let Ok(mut mac) = Hmac::<Sha256>::new_from_slice(&self.secret) else {
            return String::new();
        };
        mac.update(ts.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }

    /// A new nonce: hex seconds since `epoch`, then the MAC over them.
    pub fn nonce(&self, now: Instant) -> String {
        let ts = format!(
            "{:0width$x}",
            now.saturating_duration_since(self.epoch).as_secs(),
            width = TS_HEX
        );
        let mac = self.mac(&ts);
        format!("{ts}{mac}")
    }

    /// The `WWW-Authenticate` value of a 401.
    pub fn challenge(&self, now: Instant, stale: bool) -> String {
        let mut v = format!(
            "Digest realm=\"{}\", nonce=\"{}\", qop=\"auth\", algorithm=MD5",
            self.creds.realm.replace(['"', '\\'], ""),
            self.nonce(now)
        );
        if stale {
            v.push_str(", stale=true");
        }
        v
    }

    /// Issue instant of `nonce` if we issued it (MAC matches), else `None`.
    fn nonce_issued(&self, nonce: &str) -> Option<Instant> {
        if nonce.len() != TS_HEX + 32 || !nonce.is_ascii() {
            return None;
        }
        let (ts, mac) = nonce.split_at(TS_HEX);
        if !ct_eq(mac.as_bytes(), self.mac(ts).as_bytes()) {
            return None;
        }
        let secs = u64::from_str_radix(ts, 16).ok()?;
        self.epoch.checked_add(Duration::from_secs(secs))
    }

    /// Checks the `Authorization` header values of a `method` request at `now`.
    pub fn verify(&mut self, method: &str, authorization: &[String], now: Instant) -> Verdict {
        // Only credentials for our realm count (others may be meant for a proxy).
        let Some(params) = authorization.iter().find_map(|v| {
            let (scheme, rest) = v.trim().split_once(char::is_whitespace)?;
            if !scheme.eq_ignore_ascii_case("Digest") {
                return None;
            }
            let p = parse_params(rest);
            let realm = p
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("realm"))
                .map(|(_, v)| v.as_str());
            (realm == Some(self.creds.realm.as_str())).then_some(p)
        }) else {
            return Verdict::Challenge {
                stale: false,
                why: "no credentials for our realm",
            };
        };
        let get = |k: &str| {
            params
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(k))
                .map(|(_, v)| v.as_str())
        };
        if get("username") != Some(self.creds.username.as_str()) {
            return Verdict::Forbidden("unknown user name");
        }
        if get("algorithm").is_some_and(|a| !a.eq_ignore_ascii_case("MD5")) {
            return Verdict::Forbidden("unsupported digest algorithm (only MD5)");
        }
        let (Some(nonce), Some(uri), Some(response)) = (get("nonce"), get("uri"), get("response"))
        else {
            return Verdict::Malformed("Authorization lacks nonce, uri or response");
        };
        let Some(issued) = self.nonce_issued(nonce) else {
            return Verdict::Challenge {
                stale: false,
                why: "nonce not issued by us (forged or from before a restart)",
            };
        };
        let ha1 = md5_hex(&format!(
            "{}:{}:{}",
            self.creds.username, self.creds.realm, self.creds.password
        ));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let (expected, nc) = match get("qop") {
            Some(q) if q.eq_ignore_ascii_case("auth") => {
                let (Some(nc), Some(cnonce)) = (get("nc"), get("cnonce")) else {
                    return Verdict::Malformed("qop=auth without nc or cnonce");
                };
                let Ok(count) = u32::from_str_radix(nc, 16) else {
                    return Verdict::Malformed("nc is not a hex number");
                };
                (
                    md5_hex(&format!("{ha1}:{nonce}:{nc}:{cnonce}:auth:{ha2}")),
                    Some(count),
                )
            }
            Some(_) => return Verdict::Forbidden("unsupported qop (only auth)"),
            None => (md5_hex(&format!("{ha1}:{nonce}:{ha2}")), None),
        };
        if !ct_eq(
            expected.as_bytes(),
            response.to_ascii_lowercase().as_bytes(),
        ) {
            return Verdict::Forbidden("wrong digest response (password)");
        }
        if now.saturating_duration_since(issued) > self.lifetime {
            return Verdict::Challenge {
                stale: true,
                why: "nonce expired",
            };
        }
        if let Some(count) = nc {
            let last = self.seen.get(nonce).map(|(n, _)| *n).unwrap_or(0);
            if count <= last {
                return Verdict::Challenge {
                    stale: false,
                    why: "nonce count not above the last one (replay)",
                };
            }
            self.seen.insert(nonce.to_string(), (count, issued));
        }
        Verdict::Accepted
    }

    /// Forgets the nonce counts of expired nonces (they can no longer be accepted).
    pub fn prune(&mut self, now: Instant) {
        let lifetime = self.lifetime;
        self.seen
            .retain(|_, (_, issued)| now.saturating_duration_since(*issued) <= lifetime);
    }
}

/// The `username` of the first Digest credentials, for log lines (never the response).
pub fn credentials_username(authorization: &[String]) -> Option<String> {
    authorization.iter().find_map(|v| {
        let (scheme, rest) = v.trim().split_once(char::is_whitespace)?;
        if !scheme.eq_ignore_ascii_case("Digest") {
            return None;
        }
        parse_params(rest)
            .into_iter()
            .find(|(n, _)| n.eq_ignore_ascii_case("username"))
            .map(|(_, v)| v)
    })
}

/// Comparison whose time does not depend on where the inputs differ.
fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Credentials plus the nonce-count bookkeeping for the last challenge seen.
#[derive(Debug, Clone)]
pub struct DigestState {
    pub user: String,
    pub password: String,
    last: Option<(Challenge, u32)>,
}

impl DigestState {
    pub fn new(user: &str, password: &str) -> Self {
        Self {
            user: user.to_string(),
            password: password.to_string(),
            last: None,
        }
    }

    /// Records a new challenge (nonce count restarts at 1 for a new nonce).
    pub fn challenge(&mut self, c: Challenge) {
        self.last = Some((c, 0));
    }

    /// True when a challenge is held and can answer requests.
    pub fn has_challenge(&self) -> bool {
        self.last.is_some()
    }

    /// The `Authorization`/`Proxy-Authorization` value for `method` on `uri`,
    /// using the next nonce count; `cnonce` is random per call.
    pub fn authorize(&mut self, method: &str, uri: &str) -> Option<String> {
        let cnonce = super::msg::token(16);
        self.authorize_with(method, uri, &cnonce)
    }

    /// As [`authorize`](Self::authorize) with a given cnonce (tests use fixed ones).
    pub fn authorize_with(&mut self, method: &str, uri: &str, cnonce: &str) -> Option<String> {
        let (c, nc) = self.last.as_mut()?;
        *nc += 1;
        let ha1 = md5_hex(&format!("{}:{}:{}", self.user, c.realm, self.password));
        let ha2 = md5_hex(&format!("{method}:{uri}"));
        let mut v = format!(
            "Digest username=\"{}\", realm=\"{}\", nonce=\"{}\", uri=\"{}\"",
            self.user, c.realm, c.nonce, uri
        );
        if c.qop_auth {
            let nc = format!("{:08x}", nc);
            let resp = md5_hex(&format!("{ha1}:{}:{nc}:{cnonce}:auth:{ha2}", c.nonce));
            v.push_str(&format!(
                ", response=\"{resp}\", qop=auth, nc={nc}, cnonce=\"{cnonce}\""
            ));
        } else {
            let resp = md5_hex(&format!("{ha1}:{}:{ha2}", c.nonce));
            v.push_str(&format!(", response=\"{resp}\""));
        }
        v.push_str(", algorithm=MD5");
        if let Some(o) = &c.opaque {
            v.push_str(&format!(", opaque=\"{o}\""));
        }
        Some(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc2617_example_response() {
        // The worked example of RFC 2617 §3.5 (HTTP, but the arithmetic is the same).
        let c = parse_challenge(
            "Digest realm=\"testrealm@host.com\", qop=\"auth,auth-int\", nonce=\"dcd98b7102dd2f0e8b11d0f600bfb0c093\", opaque=\"5ccc069c403ebaf9f0171e9517f40e41\"",
        )
        .expect("challenge parses");
        assert!(c.qop_auth);
        let mut d = DigestState::new("Mufasa", "Circle Of Life");
        d.challenge(c);
        let v = d
            .authorize_with("GET", "/dir/index.html", "0a4f113b")
            .expect("authorizes");
        assert!(
            v.contains("response=\"6629fae49393a05397450978507c4ef1\""),
            "{v}"
        );
        assert!(v.contains("nc=00000001"));
        let v2 = d
            .authorize_with("GET", "/dir/index.html", "0a4f113b")
            .expect("authorizes");
        assert!(v2.contains("nc=00000002"), "nonce count grows: {v2}");
    }

    fn server(epoch: Instant) -> DigestServer {
        DigestServer::new(
            ServerCredentials {
                realm: "r".into(),
                username: "u".into(),
                password: "p".into(),
            },
            epoch,
        )
    }

    #[test]
    fn server_nonces_do_not_survive_a_restart_and_seen_counts_are_pruned() {
        let now = Instant::now();
        let mut before = server(now);
        let mut after = server(now);
        let ch = parse_challenge(&before.challenge(now, false)).expect("parses");
        assert_eq!(ch.nonce.len(), TS_HEX + 32);
        let mut d = DigestState::new("u", "p");
        d.challenge(ch);
        let authz = vec![d.authorize("INVITE", "sip:bot@h").expect("authorizes")];
        assert_eq!(
            credentials_username(&authz).as_deref(),
            Some("u"),
            "user name for logs"
        );
        // Another process (new secret) did not issue this nonce.
        assert!(matches!(
            after.verify("INVITE", &authz, now),
            Verdict::Challenge { stale: false, .. }
        ));
        assert_eq!(before.verify("INVITE", &authz, now), Verdict::Accepted);
        // The method is part of the digest.
        assert!(matches!(
            before.verify("BYE", &authz, now),
            Verdict::Forbidden(_)
        ));
        assert_eq!(before.seen.len(), 1);
        before.prune(now + NONCE_LIFETIME);
        assert_eq!(
            before.seen.len(),
            1,
            "kept while the nonce may still be used"
        );
        before.prune(now + NONCE_LIFETIME + Duration::from_secs(1));
        assert!(before.seen.is_empty());
    }

    #[test]
    fn challenge_without_qop_and_bad_ones() {
        let c = parse_challenge("Digest realm=\"r\",nonce=\"n\"").expect("parses");
        assert!(!c.qop_auth);
        let mut d = DigestState::new("bot", "passbot");
        d.challenge(c);
        let v = d
            .authorize("REGISTER", "sip:127.0.0.1")
            .expect("authorizes");
        let ha1 = md5_hex("bot:r:passbot");
        let ha2 = md5_hex("REGISTER:sip:127.0.0.1");
        assert!(v.contains(&md5_hex(&format!("{ha1}:n:{ha2}"))));
        assert!(parse_challenge("Basic realm=\"x\"").is_none());
        assert!(parse_challenge("Digest realm=\"x\"").is_none());
        assert!(parse_challenge("Digest realm=\"x\", nonce=\"y\", algorithm=SHA-256").is_none());
        assert!(parse_challenge("").is_none());
    }
}

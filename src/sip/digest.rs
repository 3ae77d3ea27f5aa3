//! HTTP digest authentication for SIP (RFC 2617 / RFC 3261 §22), MD5 with `qop=auth`.
//!
//! Registrars challenge REGISTER with 401 (`WWW-Authenticate`, answered in
//! `Authorization`) and proxies challenge INVITE with 407 (`Proxy-Authenticate`,
//! answered in `Proxy-Authorization`). The nonce count must grow for every reuse of a
//! nonce, so a [`DigestState`] remembers the last challenge per realm.

use md5::{Digest as _, Md5};

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

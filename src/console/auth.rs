//! Operator authentication: Argon2 password hashes in `operators.toml`, server-side
//! sessions behind an HttpOnly SameSite=Strict cookie, a CSRF token per session, a
//! per-IP login rate limit and an append-only audit log.
//!
//! The config file format is a fixed contract, so operator accounts live in their own
//! file next to it (see [`operators_path`]). Session tokens are stored only as SHA-256
//! digests, so a memory dump or a log line never yields a usable cookie.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::io::Write;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::config::{Config, DATA_ENV};

/// Name of the operators file.
pub const OPERATORS_FILE: &str = "operators.toml";
/// Name of the audit log (JSON lines, append-only), next to the operators file.
pub const AUDIT_FILE: &str = "console-audit.log";
/// Environment variable read by `add-operator` instead of prompting.
pub const PASSWORD_ENV: &str = "TINGSHUO_OPERATOR_PASSWORD";
/// Shortest operator password accepted.
pub const MIN_PASSWORD_LEN: usize = 8;

#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    #[error("operators file {path} cannot be read: {error}. Create an account with `tingshuo console add-operator NAME`.")]
    Read {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("operators file {path} is not valid: {message}. It is written by `tingshuo console add-operator`; fix or delete the broken entry and add the operator again.")]
    Parse { path: PathBuf, message: String },
    #[error("cannot write {path}: {error}. Check that its directory exists and is writable.")]
    Write {
        path: PathBuf,
        error: std::io::Error,
    },
    #[error("operator name {0:?} is not allowed: use 1-32 letters, digits, '.', '_' or '-'")]
    BadName(String),
    #[error("the password is shorter than {MIN_PASSWORD_LEN} characters; choose a longer one")]
    ShortPassword,
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// One account in `operators.toml`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OperatorEntry {
    /// PHC string of an Argon2id hash.
    pub password_hash: String,
    /// When the account was written (RFC 3339).
    #[serde(default)]
    pub created: String,
}

#[derive(Debug, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct OperatorsFile {
    #[serde(default)]
    operators: BTreeMap<String, OperatorEntry>,
}

/// Where operator accounts live: next to the config file when there is one, else in
/// `$TINGSHUO_DATA`, else in `~/.local/share/tingshuo`.
pub fn operators_path(cfg: &Config) -> PathBuf {
    data_dir(cfg).join(OPERATORS_FILE)
}

/// Directory holding the operators file and the audit log.
pub fn data_dir(cfg: &Config) -> PathBuf {
    if let Some(dir) = cfg.source.as_deref().and_then(Path::parent) {
        return if dir.as_os_str().is_empty() {
            PathBuf::from(".")
        } else {
            dir.to_path_buf()
        };
    }
    match std::env::var_os(DATA_ENV) {
        Some(d) if !d.is_empty() => PathBuf::from(d),
        _ => PathBuf::from(std::env::var_os("HOME").unwrap_or_else(|| "/tmp".into()))
            .join(".local")
            .join("share")
            .join("tingshuo"),
    }
}

fn valid_name(name: &str) -> bool {
    (1..=32).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// Argon2id (the crate's default parameters: 19 MiB, 2 passes) with a random salt.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| AuthError::Hash(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| AuthError::Hash(e.to_string()))
}

/// Checks a password against a PHC hash; a malformed hash never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc)
        .map(|h| {
            Argon2::default()
                .verify_password(password.as_bytes(), &h)
                .is_ok()
        })
        .unwrap_or(false)
}

/// A hash of a password nobody knows, verified for unknown user names so that the
/// response time does not reveal which names exist.
fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| {
        let mut pw = [0u8; 24];
        rand::rng().fill_bytes(&mut pw);
        hash_password(&hex::encode(pw)).unwrap_or_default()
    })
}

/// The operator accounts file.
pub struct OperatorStore {
    path: PathBuf,
}

impl OperatorStore {
    pub fn new(path: PathBuf) -> Self {
        Self { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn load(&self) -> Result<OperatorsFile, AuthError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => toml::from_str(&text).map_err(|e| AuthError::Parse {
                path: self.path.clone(),
                message: e.to_string().trim_end().to_string(),
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(OperatorsFile::default()),
            Err(error) => Err(AuthError::Read {
                path: self.path.clone(),
                error,
            }),
        }
    }

    /// Names of all operators.
    pub fn names(&self) -> Result<Vec<String>, AuthError> {
        Ok(self.load()?.operators.into_keys().collect())
    }

    /// Adds or replaces an account. Returns `true` when it replaced one.
    pub fn add(&self, name: &str, password: &str) -> Result<bool, AuthError> {
        if !valid_name(name) {
            return Err(AuthError::BadName(name.to_string()));
        }
        if password.chars().count() < MIN_PASSWORD_LEN {
            return Err(AuthError::ShortPassword);
        }
        let mut file = self.load()?;
        let entry = OperatorEntry {
            password_hash: hash_password(password)?,
            created: chrono::Utc::now().to_rfc3339(),
        };
        let replaced = file.operators.insert(name.to_string(), entry).is_some();
        let body = toml::to_string(&file).map_err(|e| AuthError::Hash(e.to_string()))?;
        let text = format!(
            "# tingshuo operator accounts, written by `tingshuo console add-operator`.\n\
             # Argon2id hashes only; never put a plain password here.\n{body}"
        );
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| AuthError::Write {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        // Write a sibling then rename, so a crash never leaves a half-written file.
        let tmp = self.path.with_extension("toml.tmp");
        write_private(&tmp, text.as_bytes()).map_err(|error| AuthError::Write {
            path: tmp.clone(),
            error,
        })?;
        std::fs::rename(&tmp, &self.path).map_err(|error| AuthError::Write {
            path: self.path.clone(),
            error,
        })?;
        Ok(replaced)
    }

    /// Checks credentials (CPU-heavy: call from a blocking thread). Unknown names cost
    /// the same time as wrong passwords.
    pub fn verify(&self, name: &str, password: &str) -> Result<bool, AuthError> {
        let file = self.load()?;
        match file.operators.get(name) {
            Some(entry) => Ok(verify_password(password, &entry.password_hash)),
            None => {
                let _ = verify_password(password, decoy_hash());
                Ok(false)
            }
        }
    }
}

fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// 32 random bytes as hex (CSPRNG: `rand`'s thread RNG is ChaCha seeded by the OS).
pub fn random_token() -> String {
    let mut b = [0u8; 32];
    rand::rng().fill_bytes(&mut b);
    hex::encode(b)
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Compares without an early exit, so timing does not leak how much matched.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// A logged-in operator.
#[derive(Debug, Clone)]
pub struct Session {
    pub operator: String,
    pub csrf: String,
    expires: Instant,
}

/// Server-side sessions keyed by the digest of the cookie token; idle sessions expire.
pub struct SessionStore {
    sessions: Mutex<HashMap<[u8; 32], Session>>,
    idle: Duration,
}

impl SessionStore {
    pub fn new(idle: Duration) -> Self {
        Self {
            sessions: Mutex::new(HashMap::new()),
            idle,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<[u8; 32], Session>> {
        self.sessions.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Opens a session; returns the cookie token (only the client keeps it).
    pub fn create(&self, operator: &str, now: Instant) -> (String, Session) {
        let token = random_token();
        let session = Session {
            operator: operator.to_string(),
            csrf: random_token(),
            expires: now + self.idle,
        };
        let mut map = self.lock();
        map.retain(|_, s| s.expires > now);
        map.insert(digest(&token), session.clone());
        (token, session)
    }

    /// The session for a cookie token, extending its idle expiry.
    pub fn get(&self, token: &str, now: Instant) -> Option<Session> {
        let key = digest(token);
        let mut map = self.lock();
        match map.get_mut(&key) {
            Some(s) if s.expires > now => {
                s.expires = now + self.idle;
                Some(s.clone())
            }
            Some(_) => {
                map.remove(&key);
                None
            }
            None => None,
        }
    }

    pub fn remove(&self, token: &str) {
        self.lock().remove(&digest(token));
    }
}

/// Per-IP login attempts in a sliding window (sans-IO: the caller passes the time).
pub struct LoginRateLimiter {
    max_attempts: usize,
    window: Duration,
    attempts: Mutex<HashMap<IpAddr, VecDeque<Instant>>>,
}

impl LoginRateLimiter {
    pub fn new(max_attempts: usize, window: Duration) -> Self {
        Self {
            max_attempts: max_attempts.max(1),
            window,
            attempts: Mutex::new(HashMap::new()),
        }
    }

    /// Counts an attempt; `Err(retry_after)` when the IP is over its budget.
    pub fn check(&self, ip: IpAddr, now: Instant) -> Result<(), Duration> {
        let mut map = self.attempts.lock().unwrap_or_else(|e| e.into_inner());
        if map.len() > 10_000 {
            let window = self.window;
            map.retain(|_, q| q.back().is_some_and(|t| now.duration_since(*t) < window));
        }
        let q = map.entry(ip).or_default();
        while q
            .front()
            .is_some_and(|t| now.saturating_duration_since(*t) >= self.window)
        {
            q.pop_front();
        }
        if q.len() >= self.max_attempts {
            let oldest = q.front().copied().unwrap_or(now);
            return Err(self
                .window
                .saturating_sub(now.saturating_duration_since(oldest)));
        }
        q.push_back(now);
        Ok(())
    }

    /// A successful login forgets the IP's failures.
    pub fn reset(&self, ip: IpAddr) {
        self.attempts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&ip);
    }
}

/// One audit record.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct AuditEntry {
    pub at: String,
    pub operator: String,
    /// login, login_failed, logout, listen, take_over, hand_back, hang_up, recording.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub call_id: Option<String>,
    pub ip: String,
}

/// Append-only JSON-lines audit log; each entry is flushed and synced before the
/// action it records is carried out.
pub struct AuditLog {
    path: PathBuf,
    file: Mutex<std::fs::File>,
}

impl AuditLog {
    pub fn open(path: PathBuf) -> Result<Self, AuthError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|error| AuthError::Write {
                path: dir.to_path_buf(),
                error,
            })?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|error| AuthError::Write {
                path: path.clone(),
                error,
            })?;
        Ok(Self {
            path,
            file: Mutex::new(file),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn record(
        &self,
        operator: &str,
        action: &str,
        call_id: Option<&str>,
        ip: IpAddr,
    ) -> Result<(), AuthError> {
        let entry = AuditEntry {
            at: chrono::Utc::now().to_rfc3339(),
            operator: operator.to_string(),
            action: action.to_string(),
            call_id: call_id.map(str::to_string),
            ip: ip.to_string(),
        };
        let mut line = serde_json::to_string(&entry).map_err(|e| AuthError::Hash(e.to_string()))?;
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())
            .and_then(|_| f.sync_data())
            .map_err(|error| AuthError::Write {
                path: self.path.clone(),
                error,
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let h = hash_password("正确的密码-123").expect("hash");
        assert!(h.starts_with("$argon2id$"), "{h}");
        assert!(verify_password("正确的密码-123", &h));
        assert!(!verify_password("wrong password", &h));
        assert!(!verify_password("x", "not a phc string"));
    }

    #[test]
    fn operator_file_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let store = OperatorStore::new(dir.path().join("sub").join(OPERATORS_FILE));
        assert!(!store.verify("alice", "whatever1").expect("empty store"));
        assert!(!store.add("alice", "hunter2-long").expect("add"));
        assert!(store.add("alice", "hunter3-long").expect("replace"));
        store.add("bob.w", "another-pass").expect("add bob");
        assert_eq!(store.names().expect("names"), ["alice", "bob.w"]);
        assert!(store.verify("alice", "hunter3-long").expect("verify"));
        assert!(!store.verify("alice", "hunter2-long").expect("old password"));
        assert!(!store.verify("carol", "hunter3-long").expect("unknown"));
        let text = std::fs::read_to_string(store.path()).expect("read");
        assert!(!text.contains("hunter3"), "plain password written: {text}");
        assert!(matches!(
            store.add("bad name", "long-enough"),
            Err(AuthError::BadName(_))
        ));
        assert!(matches!(
            store.add("ok", "short"),
            Err(AuthError::ShortPassword)
        ));
    }

    #[test]
    fn broken_operators_file_names_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(OPERATORS_FILE);
        std::fs::write(&path, "[operators.alice]\npasword_hash = 1\n").expect("write");
        let err = OperatorStore::new(path)
            .verify("alice", "x")
            .expect_err("broken file");
        assert!(err.to_string().contains(OPERATORS_FILE), "{err}");
    }

    #[test]
    fn sessions_expire_when_idle_and_are_keyed_by_digest() {
        let store = SessionStore::new(Duration::from_secs(60));
        let t0 = Instant::now();
        let (token, s) = store.create("alice", t0);
        assert_eq!(s.csrf.len(), 64);
        assert_ne!(s.csrf, token);
        let got = store
            .get(&token, t0 + Duration::from_secs(50))
            .expect("live");
        assert_eq!(got.operator, "alice");
        // Use extended it: 50 + 50 s is still within 60 s of the last use.
        assert!(store.get(&token, t0 + Duration::from_secs(100)).is_some());
        assert!(store.get(&token, t0 + Duration::from_secs(200)).is_none());
        assert!(store.get("forged", t0).is_none());
        let (token2, _) = store.create("bob", t0);
        store.remove(&token2);
        assert!(store.get(&token2, t0).is_none());
    }

    #[test]
    fn csrf_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }

    #[test]
    fn rate_limit_per_ip_sliding_window() {
        let rl = LoginRateLimiter::new(3, Duration::from_secs(60));
        let a: IpAddr = "127.0.0.1".parse().expect("ip");
        let b: IpAddr = "127.0.0.2".parse().expect("ip");
        let t0 = Instant::now();
        for i in 0..3 {
            rl.check(a, t0 + Duration::from_secs(i))
                .expect("within budget");
        }
        let retry = rl
            .check(a, t0 + Duration::from_secs(10))
            .expect_err("over budget");
        assert_eq!(retry, Duration::from_secs(50));
        rl.check(b, t0 + Duration::from_secs(10))
            .expect("other ip unaffected");
        rl.check(a, t0 + Duration::from_secs(61))
            .expect("window slid");
        rl.reset(a);
        for _ in 0..3 {
            rl.check(a, t0 + Duration::from_secs(62))
                .expect("after reset");
        }
    }

    #[test]
    fn audit_log_appends_json_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join(AUDIT_FILE);
        let ip: IpAddr = "127.0.0.1".parse().expect("ip");
        {
            let log = AuditLog::open(path.clone()).expect("open");
            log.record("alice", "listen", Some("c1"), ip)
                .expect("write");
        }
        let log = AuditLog::open(path.clone()).expect("reopen");
        log.record("alice", "hang_up", Some("c1"), ip)
            .expect("write");
        let entries: Vec<AuditEntry> = std::fs::read_to_string(&path)
            .expect("read")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json line"))
            .collect();
        assert_eq!(entries.len(), 2);
        assert_eq!(entries[0].action, "listen");
        assert_eq!(entries[1].action, "hang_up");
        assert_eq!(entries[1].call_id.as_deref(), Some("c1"));
    }
}

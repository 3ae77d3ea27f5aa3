//! The HTTP side: axum routes, the auth gate, pages, SSE and WebRTC signalling.
//!
//! Public: `/healthz`, `/readyz`, `/metrics` (scraped by monitoring, like any real
//! deployment), the login page and the stylesheet. Everything else needs a session
//! cookie, and every POST also needs the session's CSRF token in `X-CSRF-Token`
//! (the login form carries a double-submit token instead, as it has no session yet).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, FromRequestParts, Path, Query, State};
use axum::http::header::{self, HeaderMap, HeaderValue};
use axum::http::request::Parts;
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Json, Router};
use futures_util::stream::{self, Stream, StreamExt};
use serde::Deserialize;
use tokio::sync::broadcast::error::RecvError;

use super::auth::{
    constant_time_eq, random_token, AuditLog, LoginRateLimiter, OperatorStore, SessionStore,
};
use super::history::HistorySource;
use super::hub::{ConsoleHub, HubError, HubEvent, OperatorAction};
use super::metrics::CONTENT_TYPE as METRICS_CONTENT_TYPE;
use super::rtc::{PeerRole, RtcError, RtcManager};

/// Session cookie name.
pub const SESSION_COOKIE: &str = "ts_session";
/// Double-submit cookie of the login form.
pub const LOGIN_CSRF_COOKIE: &str = "ts_login_csrf";
/// Header carrying the session's CSRF token on state-changing requests.
pub const CSRF_HEADER: &str = "x-csrf-token";

const LOGIN_HTML: &str = include_str!("assets/login.html");
const APP_HTML: &str = include_str!("assets/app.html");
const APP_JS: &str = include_str!("assets/app.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// Tunables of the auth gate.
#[derive(Debug, Clone)]
pub struct AuthPolicy {
    /// Idle time after which a session expires.
    pub session_idle: Duration,
    /// Login attempts allowed per IP per window.
    pub login_attempts: usize,
    pub login_window: Duration,
}

impl Default for AuthPolicy {
    fn default() -> Self {
        Self {
            session_idle: Duration::from_secs(8 * 3600),
            login_attempts: 5,
            login_window: Duration::from_secs(60),
        }
    }
}

pub(crate) struct AppState {
    pub hub: ConsoleHub,
    pub history: Arc<dyn HistorySource>,
    /// Recordings are served from this directory only.
    pub recordings: std::path::PathBuf,
    pub operators: OperatorStore,
    pub sessions: SessionStore,
    pub limiter: LoginRateLimiter,
    pub audit: AuditLog,
    pub rtc: Arc<RtcManager>,
    /// Turns true when the server stops, so endless SSE streams end and shutdown can finish.
    pub stopping: tokio::sync::watch::Receiver<bool>,
}

type St = Arc<AppState>;

pub(crate) fn router(state: St) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .route("/login", get(login_page).post(login))
        .route("/logout", post(logout))
        .route("/static/style.css", get(style))
        .route("/static/app.js", get(app_js))
        .route("/", get(app_page))
        .route("/api/me", get(me))
        .route("/api/calls", get(calls))
        .route("/api/events", get(events))
        .route("/api/history", get(history_list))
        .route("/api/elsewhere", get(elsewhere))
        .route("/api/history/{id}", get(history_detail))
        .route("/api/history/{id}/recording", get(recording))
        .route("/api/calls/{id}/listen", post(listen))
        .route("/api/calls/{id}/takeover", post(take_over))
        .route("/api/calls/{id}/handback", post(hand_back))
        .route("/api/calls/{id}/hangup", post(hang_up))
        .route("/api/calls/{id}/transfer", post(transfer))
        .route("/api/rtc/{peer}/close", post(close_peer))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

async fn security_headers(mut res: Response) -> Response {
    let h = res.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; media-src 'self' blob:; img-src 'self' data:; frame-ancestors 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(serde_json::json!({ "error": message.into() }))).into_response()
}

/// A request with a valid session.
pub(crate) struct Operator {
    pub name: String,
    pub csrf: String,
    pub ip: std::net::IpAddr,
    /// The cookie token (to re-check the session on long-lived streams).
    pub token: String,
}

impl FromRequestParts<St> for Operator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let ip = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip())
            .unwrap_or(std::net::IpAddr::from([0, 0, 0, 0]));
        let token = cookie(&parts.headers, SESSION_COOKIE).unwrap_or("");
        let session = state
            .sessions
            .get(token, Instant::now())
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "log in first (POST /login)"))?;
        Ok(Operator {
            name: session.operator,
            csrf: session.csrf,
            ip,
            token: token.to_string(),
        })
    }
}

/// A session plus a matching CSRF header: required for every state change.
pub(crate) struct CsrfOperator(Operator);

impl FromRequestParts<St> for CsrfOperator {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &St) -> Result<Self, Response> {
        let op = Operator::from_request_parts(parts, state).await?;
        let sent = parts
            .headers
            .get(CSRF_HEADER)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        if !constant_time_eq(sent.as_bytes(), op.csrf.as_bytes()) {
            return Err(error(
                StatusCode::FORBIDDEN,
                "missing or wrong X-CSRF-Token header (reload the page)",
            ));
        }
        Ok(CsrfOperator(op))
    }
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(st): State<St>) -> Response {
    match st.hub.readiness() {
        Ok(()) => (StatusCode::OK, "ready\n").into_response(),
        Err(why) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {why}\n"),
        )
            .into_response(),
    }
}

async fn metrics(State(st): State<St>) -> Response {
    (
        [(header::CONTENT_TYPE, METRICS_CONTENT_TYPE)],
        st.hub.metrics().render(),
    )
        .into_response()
}

async fn style() -> Response {
    (
        [(header::CONTENT_TYPE, "text/css; charset=utf-8")],
        STYLE_CSS,
    )
        .into_response()
}

async fn app_js(_op: Operator) -> Response {
    (
        [(header::CONTENT_TYPE, "text/javascript; charset=utf-8")],
        APP_JS,
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginQuery {
    error: Option<String>,
}

fn escape_html(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

async fn login_page(Query(q): Query<LoginQuery>) -> Response {
    let message = match q.error.as_deref() {
        Some(_) => "用户名或密码错误 · Wrong name or password",
        None => "",
    };
    login_form(StatusCode::OK, message)
}

/// The login form with a fresh double-submit token.
fn login_form(status: StatusCode, message: &str) -> Response {
    let token = random_token();
    let html = LOGIN_HTML
        .replace("{{CSRF}}", &token)
        .replace("{{ERROR}}", &escape_html(message));
    (
        status,
        [(
            header::SET_COOKIE,
            format!("{LOGIN_CSRF_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/login"),
        )],
        Html(html),
    )
        .into_response()
}

#[derive(Deserialize)]
struct LoginForm {
    username: String,
    password: String,
    csrf: String,
}

async fn login(
    State(st): State<St>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let ip = peer.ip();
    if let Err(retry) = st.limiter.check(ip, Instant::now()) {
        let _ = st
            .audit
            .record(&form.username, "login_rate_limited", None, ip);
        let mut page = login_form(
            StatusCode::TOO_MANY_REQUESTS,
            &format!(
                "尝试次数过多，请 {} 秒后再试 · Too many attempts, try again in {} s",
                retry.as_secs().max(1),
                retry.as_secs().max(1)
            ),
        );
        if let Ok(v) = HeaderValue::from_str(&retry.as_secs().max(1).to_string()) {
            page.headers_mut().insert(header::RETRY_AFTER, v);
        }
        return page;
    }
    let cookie_token = cookie(&headers, LOGIN_CSRF_COOKIE).unwrap_or("");
    if cookie_token.is_empty() || !constant_time_eq(cookie_token.as_bytes(), form.csrf.as_bytes()) {
        return error(
            StatusCode::FORBIDDEN,
            "login form token missing or stale: open /login again",
        );
    }
    let store = OperatorStore::new(st.operators.path().to_path_buf());
    let (name, password) = (form.username.clone(), form.password);
    let ok = tokio::task::spawn_blocking(move || store.verify(&name, &password)).await;
    match ok {
        Ok(Ok(true)) => {
            st.limiter.reset(ip);
            let (token, _) = st.sessions.create(&form.username, Instant::now());
            let _ = st.audit.record(&form.username, "login", None, ip);
            (
                StatusCode::SEE_OTHER,
                [
                    (
                        header::SET_COOKIE,
                        format!("{SESSION_COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/"),
                    ),
                    (header::LOCATION, "/".to_string()),
                ],
            )
                .into_response()
        }
        Ok(Ok(false)) => {
            let _ = st.audit.record(&form.username, "login_failed", None, ip);
            (
                StatusCode::SEE_OTHER,
                [(header::LOCATION, "/login?error=1")],
            )
                .into_response()
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "operator login failed");
            error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
        }
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn logout(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    headers: HeaderMap,
) -> Response {
    if let Some(t) = cookie(&headers, SESSION_COOKIE) {
        st.sessions.remove(t);
    }
    let _ = st.audit.record(&op.name, "logout", None, op.ip);
    (
        StatusCode::SEE_OTHER,
        [
            (
                header::SET_COOKIE,
                format!("{SESSION_COOKIE}=; HttpOnly; SameSite=Strict; Path=/; Max-Age=0"),
            ),
            (header::LOCATION, "/login".to_string()),
        ],
    )
        .into_response()
}

async fn app_page(State(st): State<St>, headers: HeaderMap) -> Response {
    let logged_in = cookie(&headers, SESSION_COOKIE)
        .and_then(|t| st.sessions.get(t, Instant::now()))
        .is_some();
    if logged_in {
        Html(APP_HTML).into_response()
    } else {
        Redirect::to("/login").into_response()
    }
}

async fn me(op: Operator) -> Response {
    Json(serde_json::json!({ "operator": op.name, "csrf": op.csrf })).into_response()
}

async fn calls(State(st): State<St>, _op: Operator) -> Response {
    Json(st.hub.live_calls()).into_response()
}

fn snapshot_event(hub: &ConsoleHub) -> Event {
    Event::default()
        .event("snapshot")
        .json_data(hub.live_calls())
        .unwrap_or_else(|_| Event::default().event("snapshot").data("[]"))
}

/// Live events: a `snapshot` of all live calls first (and again after a lag), then
/// one `hub` event per change. The stream ends at the first event after the session
/// has ended (logout or expiry).
async fn events(
    State(st): State<St>,
    op: Operator,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let rx = st.hub.subscribe_events();
    let first = snapshot_event(&st.hub);
    let stopping = st.stopping.clone();
    let rest = stream::unfold(
        (rx, st, op.token, stopping),
        |(mut rx, st, token, mut stopping)| async move {
            let got = tokio::select! {
                got = rx.recv() => got,
                _ = stopping.wait_for(|s| *s) => return None,
            };
            let ev = match got {
                Ok(ev) => hub_event(&ev),
                Err(RecvError::Lagged(_)) => snapshot_event(&st.hub),
                Err(RecvError::Closed) => return None,
            };
            st.sessions.get(&token, Instant::now())?;
            Some((Ok(ev), (rx, st, token, stopping)))
        },
    );
    Sse::new(stream::once(async move { Ok(first) }).chain(rest)).keep_alive(KeepAlive::default())
}

fn hub_event(ev: &HubEvent) -> Event {
    Event::default()
        .event("hub")
        .json_data(ev)
        .unwrap_or_else(|_| Event::default().event("hub").data("{}"))
}

#[derive(Deserialize)]
struct HistoryQuery {
    limit: Option<usize>,
}

async fn history_list(
    State(st): State<St>,
    _op: Operator,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let limit = q.limit.unwrap_or(200).min(5000);
    let h = st.history.clone();
    match tokio::task::spawn_blocking(move || h.list(limit)).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// Calls in progress on the other agents sharing this agent's store, with links to
/// their consoles (listening in happens on the agent that carries the call).
async fn elsewhere(State(st): State<St>, _op: Operator) -> Response {
    let h = st.history.clone();
    match tokio::task::spawn_blocking(move || h.elsewhere()).await {
        Ok(Ok(list)) => Json(list).into_response(),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

async fn history_detail(State(st): State<St>, _op: Operator, Path(id): Path<String>) -> Response {
    let h = st.history.clone();
    match tokio::task::spawn_blocking(move || h.detail(&id)).await {
        Ok(Ok(Some(d))) => Json(d).into_response(),
        Ok(Ok(None)) => error(StatusCode::NOT_FOUND, "no such call in history"),
        Ok(Err(e)) => error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    }
}

/// A byte range of a file, both ends inclusive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ByteRange {
    pub start: u64,
    pub end: u64,
}

/// Parses a `Range` header for a file of `len` bytes (RFC 9110 §14.1.2): `Ok(None)`
/// means serve the whole file (no header, another unit, or several ranges, which a
/// server may ignore), `Err(())` an unsatisfiable range (416).
pub(crate) fn parse_range(header: Option<&str>, len: u64) -> Result<Option<ByteRange>, ()> {
    let Some(spec) = header.and_then(|h| h.trim().strip_prefix("bytes=")) else {
        return Ok(None);
    };
    if spec.contains(',') {
        return Ok(None);
    }
    let Some((a, b)) = spec.trim().split_once('-') else {
        return Ok(None);
    };
    let (a, b) = (a.trim(), b.trim());
    let range = if a.is_empty() {
        // Suffix: the last `b` bytes.
        let n: u64 = b.parse().map_err(|_| ())?;
        if n == 0 || len == 0 {
            return Err(());
        }
        ByteRange {
            start: len.saturating_sub(n),
            end: len - 1,
        }
    } else {
        let start: u64 = a.parse().map_err(|_| ())?;
        let end = if b.is_empty() {
            len.saturating_sub(1)
        } else {
            b.parse::<u64>().map_err(|_| ())?.min(len.saturating_sub(1))
        };
        if start >= len || end < start {
            return Err(());
        }
        ByteRange { start, end }
    };
    Ok(Some(range))
}

/// Streams `len` bytes of `file` from its current position in 64 KiB chunks.
fn file_body(file: tokio::fs::File, len: u64) -> axum::body::Body {
    use tokio::io::AsyncReadExt;
    let chunks = stream::unfold((file, len), |(mut file, left)| async move {
        if left == 0 {
            return None;
        }
        let mut buf = vec![0u8; left.min(64 * 1024) as usize];
        match file.read(&mut buf).await {
            Ok(0) => None,
            Ok(n) => {
                buf.truncate(n);
                Some((
                    Ok::<_, std::io::Error>(bytes::Bytes::from(buf)),
                    (file, left - n as u64),
                ))
            }
            Err(e) => Some((Err(e), (file, 0))),
        }
    });
    axum::body::Body::from_stream(chunks)
}

/// The call's WAV, streamed, with single-range support so the browser's player can
/// seek. Only files inside the recordings directory are served.
async fn recording(
    State(st): State<St>,
    op: Operator,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    use super::history::{confine, RecordingError};
    use tokio::io::AsyncSeekExt;
    let h = st.history.clone();
    let lookup = id.clone();
    let stored = match tokio::task::spawn_blocking(move || h.recording(&lookup)).await {
        Ok(Ok(Some(p))) => p,
        Ok(Ok(None)) => return error(StatusCode::NOT_FOUND, "this call has no recording"),
        Ok(Err(e)) => return error(StatusCode::SERVICE_UNAVAILABLE, e.to_string()),
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let dir = st.recordings.clone();
    let path = match tokio::task::spawn_blocking(move || confine(&dir, &stored)).await {
        Ok(Ok(p)) => p,
        Ok(Err(e @ RecordingError::Missing(_))) => {
            tracing::warn!(call = %id, error = %e, "recording unavailable");
            return error(StatusCode::NOT_FOUND, "the recording file is missing");
        }
        Ok(Err(e @ RecordingError::Outside { .. })) => {
            tracing::warn!(call = %id, error = %e, "recording refused");
            return error(
                StatusCode::FORBIDDEN,
                "the recording lies outside the recordings directory",
            );
        }
        Err(e) => return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()),
    };
    let opened = async {
        let file = tokio::fs::File::open(&path).await?;
        let len = file.metadata().await?.len();
        Ok::<_, std::io::Error>((file, len))
    };
    let (mut file, len) = match opened.await {
        Ok(f) => f,
        Err(e) => {
            tracing::warn!(path = %path.display(), error = %e, "recording unreadable");
            return error(StatusCode::NOT_FOUND, "the recording file is missing");
        }
    };
    let range = headers.get(header::RANGE).and_then(|v| v.to_str().ok());
    let range = match parse_range(range, len) {
        Ok(r) => r,
        Err(()) => {
            return (
                StatusCode::RANGE_NOT_SATISFIABLE,
                [(header::CONTENT_RANGE, format!("bytes */{len}"))],
            )
                .into_response()
        }
    };
    // A player fetches many ranges of one recording: audit the first request only.
    if range.is_none_or(|r| r.start == 0) {
        if let Some(r) = audit_refusal(&st, &op, "recording", &id) {
            return r;
        }
    }
    let mut res = match range {
        Some(r) => {
            if let Err(e) = file.seek(std::io::SeekFrom::Start(r.start)).await {
                return error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string());
            }
            let n = r.end - r.start + 1;
            let mut res = (StatusCode::PARTIAL_CONTENT, file_body(file, n)).into_response();
            if let Ok(v) = HeaderValue::from_str(&format!("bytes {}-{}/{len}", r.start, r.end)) {
                res.headers_mut().insert(header::CONTENT_RANGE, v);
            }
            res.headers_mut().insert(header::CONTENT_LENGTH, n.into());
            res
        }
        None => {
            let mut res = (StatusCode::OK, file_body(file, len)).into_response();
            res.headers_mut().insert(header::CONTENT_LENGTH, len.into());
            res
        }
    };
    let h = res.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("audio/wav"));
    h.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    res
}

#[derive(Deserialize)]
struct OfferBody {
    sdp: String,
}

fn hub_error(e: HubError) -> Response {
    let status = match e {
        HubError::NoSuchCall(_) => StatusCode::NOT_FOUND,
        HubError::AlreadyTakenOver { .. } | HubError::NotTakenOver(_) => StatusCode::CONFLICT,
        HubError::CallBusy(_) => StatusCode::SERVICE_UNAVAILABLE,
    };
    error(status, e.to_string())
}

fn rtc_error(e: RtcError) -> Response {
    let status = match e {
        RtcError::NoSuchCall(_) => StatusCode::NOT_FOUND,
        RtcError::BadOffer(_) => StatusCode::BAD_REQUEST,
        RtcError::TooManyPeers(_) => StatusCode::TOO_MANY_REQUESTS,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    };
    error(status, e.to_string())
}

/// Records the action; `Some(response)` refuses it, since an action that cannot be
/// audited is not carried out.
fn audit_refusal(st: &AppState, op: &Operator, action: &str, call: &str) -> Option<Response> {
    st.audit
        .record(&op.name, action, Some(call), op.ip)
        .err()
        .map(|e| error(StatusCode::INTERNAL_SERVER_ERROR, e.to_string()))
}

async fn listen(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(id): Path<String>,
    Json(body): Json<OfferBody>,
) -> Response {
    if !st.hub.is_active(&id) {
        return error(StatusCode::NOT_FOUND, "call is not active");
    }
    if let Some(r) = audit_refusal(&st, &op, "listen", &id) {
        return r;
    }
    match st
        .rtc
        .answer(&id, &op.name, body.sdp, PeerRole::Listen)
        .await
    {
        Ok(a) => {
            let _ = st.hub.send_action(
                &id,
                OperatorAction::Listen {
                    operator: op.name.clone(),
                },
            );
            Json(a).into_response()
        }
        Err(e) => rtc_error(e),
    }
}

async fn take_over(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(id): Path<String>,
    Json(body): Json<OfferBody>,
) -> Response {
    if let Some(r) = audit_refusal(&st, &op, "take_over", &id) {
        return r;
    }
    let take = OperatorAction::TakeOver {
        operator: op.name.clone(),
    };
    if let Err(e) = st.hub.send_action(&id, take) {
        return hub_error(e);
    }
    match st
        .rtc
        .answer(&id, &op.name, body.sdp, PeerRole::TakeOver)
        .await
    {
        Ok(a) => Json(a).into_response(),
        Err(e) => {
            // The microphone path failed: give the call back to the agent.
            let _ = st.hub.send_action(
                &id,
                OperatorAction::HandBack {
                    operator: op.name.clone(),
                },
            );
            rtc_error(e)
        }
    }
}

async fn hand_back(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = audit_refusal(&st, &op, "hand_back", &id) {
        return r;
    }
    match st.hub.send_action(
        &id,
        OperatorAction::HandBack {
            operator: op.name.clone(),
        },
    ) {
        Ok(()) => {
            st.rtc.close_take_over(&id, &op.name).await;
            Json(serde_json::json!({ "ok": true })).into_response()
        }
        Err(e) => hub_error(e),
    }
}

async fn hang_up(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(id): Path<String>,
) -> Response {
    if let Some(r) = audit_refusal(&st, &op, "hang_up", &id) {
        return r;
    }
    match st.hub.send_action(
        &id,
        OperatorAction::HangUp {
            operator: op.name.clone(),
        },
    ) {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => hub_error(e),
    }
}

#[derive(Debug, serde::Deserialize)]
struct TransferQuery {
    /// An extension or SIP URI; absent: the transfer configured for the call.
    target: Option<String>,
}

/// Hands a live call to a person (the same path as a caller's 转人工).
async fn transfer(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(id): Path<String>,
    axum::extract::Query(q): axum::extract::Query<TransferQuery>,
) -> Response {
    if let Some(r) = audit_refusal(&st, &op, "transfer", &id) {
        return r;
    }
    let target = q
        .target
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty());
    if let Some(t) = &target {
        if !crate::config::is_transfer_target(t) {
            return error(
                StatusCode::BAD_REQUEST,
                "target is not a SIP URI or an extension (e.g. 2001 or sip:2001@10.0.0.5)",
            );
        }
    }
    match st.hub.send_action(
        &id,
        OperatorAction::Transfer {
            operator: op.name.clone(),
            target,
        },
    ) {
        Ok(()) => Json(serde_json::json!({ "ok": true })).into_response(),
        Err(e) => hub_error(e),
    }
}

async fn close_peer(
    State(st): State<St>,
    CsrfOperator(op): CsrfOperator,
    Path(peer): Path<String>,
) -> Response {
    match st.rtc.peer_owner(&peer) {
        Some((owner, _)) if owner == op.name => {
            st.rtc.close(&peer).await;
            Json(serde_json::json!({ "ok": true })).into_response()
        }
        Some(_) => error(
            StatusCode::FORBIDDEN,
            "that listen-in belongs to another operator",
        ),
        None => error(StatusCode::NOT_FOUND, "no such listen-in"),
    }
}

/// Every route and whether it needs a session (for tests and docs).
pub const ROUTES: &[(&str, &str, bool)] = &[
    ("GET", "/healthz", false),
    ("GET", "/readyz", false),
    ("GET", "/metrics", false),
    ("GET", "/login", false),
    ("POST", "/login", false),
    ("GET", "/static/style.css", false),
    ("POST", "/logout", true),
    ("GET", "/static/app.js", true),
    ("GET", "/api/me", true),
    ("GET", "/api/calls", true),
    ("GET", "/api/events", true),
    ("GET", "/api/history", true),
    ("GET", "/api/elsewhere", true),
    ("GET", "/api/history/{id}", true),
    ("GET", "/api/history/{id}/recording", true),
    ("POST", "/api/calls/{id}/listen", true),
    ("POST", "/api/calls/{id}/takeover", true),
    ("POST", "/api/calls/{id}/handback", true),
    ("POST", "/api/calls/{id}/hangup", true),
    ("POST", "/api/calls/{id}/transfer", true),
    ("POST", "/api/rtc/{peer}/close", true),
];

#[cfg(test)]
mod tests {
    use super::*;

    fn r(start: u64, end: u64) -> Result<Option<ByteRange>, ()> {
        Ok(Some(ByteRange { start, end }))
    }

    #[test]
    fn byte_ranges() {
        assert_eq!(parse_range(None, 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-"), 100), r(0, 99));
        assert_eq!(parse_range(Some("bytes=0-43"), 100), r(0, 43));
        assert_eq!(parse_range(Some("bytes=90-200"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-10"), 100), r(90, 99));
        assert_eq!(parse_range(Some("bytes=-500"), 100), r(0, 99));
        assert_eq!(parse_range(Some("bytes=100-"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=50-40"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=-0"), 100), Err(()));
        assert_eq!(parse_range(Some("bytes=x-1"), 100), Err(()));
        // Other units and multiple ranges: the whole file.
        assert_eq!(parse_range(Some("items=0-1"), 100), Ok(None));
        assert_eq!(parse_range(Some("bytes=0-1,5-6"), 100), Ok(None));
    }
}

//! Operator console: live call view, listen-in over WebRTC, take-over and call history.
//!
//! One axum server inside the agent's process (on `console.listen`). The call layer
//! talks to it only through [`ConsoleHub`]: per call it gets a [`CallPublisher`] for
//! events and audio and a [`CallControl`] for operator actions and operator audio.
//! Finished calls come from a [`HistorySource`] (the record store, or the hub's own
//! [`MemoryHistory`]).
//!
//! Operator accounts are in `operators.toml` next to the config file (or in
//! `$TINGSHUO_DATA`), written by `tingshuo console add-operator`; the audit log
//! `console-audit.log` lies beside it.

pub mod auth;
pub mod history;
pub mod hub;
pub mod metrics;
pub mod rtc;
pub mod server;

use std::io::{BufRead, IsTerminal};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use tokio::sync::oneshot;

pub use auth::{operators_path, OperatorStore};
pub use history::{CallDetail, CallSummary, HistoryError, HistorySource, MemoryHistory};
pub use hub::{
    CallAudioFrame, CallControl, CallEnd, CallInfo, CallPublisher, ConsoleHub, Frame, HubEvent,
    OperatorAction, Speaker, TranscriptLine, FRAME_SAMPLES,
};
pub use metrics::ConsoleMetrics;
pub use server::AuthPolicy;

use crate::config::Config;

#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    #[error("the console cannot listen on {addr}: {error}. Another program may use that port; set [console] listen in the config to a free address.")]
    Bind {
        addr: SocketAddr,
        error: std::io::Error,
    },
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    #[error(transparent)]
    Rtc(#[from] rtc::RtcError),
    #[error("reading the password failed: {0}. Set {env} for non-interactive use.", env = auth::PASSWORD_ENV)]
    Prompt(std::io::Error),
    #[error("the two passwords differ; run the command again")]
    Mismatch,
}

/// Where the console listens and keeps its files.
pub struct ConsoleOptions {
    pub listen: SocketAddr,
    /// The operators file (see [`operators_path`]).
    pub operators: PathBuf,
    /// The audit log (JSON lines, append-only).
    pub audit_log: PathBuf,
    pub history: Arc<dyn HistorySource>,
    /// The only directory recordings are served from (see [`history::confine`]).
    pub recordings: PathBuf,
    pub policy: AuthPolicy,
}

impl ConsoleOptions {
    /// Options from the config; history defaults to the hub's in-memory calls.
    pub fn from_config(cfg: &Config, hub: &ConsoleHub) -> Self {
        let dir = auth::data_dir(cfg);
        Self {
            listen: cfg.console.listen,
            operators: dir.join(auth::OPERATORS_FILE),
            audit_log: dir.join(auth::AUDIT_FILE),
            history: hub.memory_history(),
            recordings: history::default_recordings_dir(&cfg.store_path()),
            policy: AuthPolicy::default(),
        }
    }
}

/// A running console; dropping it keeps serving until [`ConsoleServer::shutdown`].
pub struct ConsoleServer {
    addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl ConsoleServer {
    /// Binds and starts serving on the current tokio runtime.
    pub async fn start(opts: ConsoleOptions, hub: ConsoleHub) -> Result<Self, ConsoleError> {
        let listener = tokio::net::TcpListener::bind(opts.listen)
            .await
            .map_err(|error| ConsoleError::Bind {
                addr: opts.listen,
                error,
            })?;
        let addr = listener.local_addr().map_err(|error| ConsoleError::Bind {
            addr: opts.listen,
            error,
        })?;
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let state = Arc::new(server::AppState {
            stopping,
            rtc: rtc::RtcManager::new(hub.clone(), addr.ip().is_loopback())?,
            hub,
            history: opts.history,
            recordings: opts.recordings,
            operators: OperatorStore::new(opts.operators),
            sessions: auth::SessionStore::new(opts.policy.session_idle),
            limiter: auth::LoginRateLimiter::new(
                opts.policy.login_attempts,
                opts.policy.login_window,
            ),
            audit: auth::AuditLog::open(opts.audit_log)?,
        });
        let app = server::router(state);
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let stopped = async move {
                let _ = stopped.await;
                let _ = stopping_tx.send(true);
            };
            let served = axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .with_graceful_shutdown(stopped)
            .await;
            if let Err(e) = served {
                tracing::error!(error = %e, "console server stopped");
            }
        });
        tracing::info!(%addr, "operator console listening");
        Ok(Self {
            addr,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for open requests (SSE streams end with it).
    pub async fn shutdown(mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        let _ = tokio::time::timeout(std::time::Duration::from_secs(5), &mut self.task).await;
        self.task.abort();
    }
}

/// `tingshuo console add-operator NAME`: prompts for the password twice (or reads
/// `TINGSHUO_OPERATOR_PASSWORD`) and writes the Argon2 hash. Returns a message for the user.
pub fn add_operator(cfg: &Config, name: &str) -> Result<String, ConsoleError> {
    let store = OperatorStore::new(operators_path(cfg));
    let password = match std::env::var(auth::PASSWORD_ENV) {
        Ok(p) if !p.is_empty() => p,
        _ if std::io::stdin().is_terminal() => {
            let first = rpassword::prompt_password(format!("Password for operator {name}: "))
                .map_err(ConsoleError::Prompt)?;
            let again = rpassword::prompt_password("Repeat the password: ")
                .map_err(ConsoleError::Prompt)?;
            if first != again {
                return Err(ConsoleError::Mismatch);
            }
            first
        }
        _ => {
            // Piped stdin: one line is the password.
            let mut line = String::new();
            std::io::stdin()
                .lock()
                .read_line(&mut line)
                .map_err(ConsoleError::Prompt)?;
            line.trim_end_matches(['\r', '\n']).to_string()
        }
    };
    let replaced = store.add(name, &password)?;
    Ok(format!(
        "{} operator {name} in {}",
        if replaced { "updated" } else { "added" },
        store.path().display()
    ))
}

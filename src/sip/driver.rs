//! Thin tokio driver: UDP and TCP sockets on `sip.listen` and a timer, feeding the
//! sans-IO [`UserAgent`]. Tokio is used for network I/O only; all SIP logic is in the core.
//!
//! Public API for the call layer: [`start`] (from `tingshuo::config::Config`) returns a
//! [`SipHandle`] with a channel of [`SipEvent`]s and a command sender.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::msg;
use super::ua::{Cidr, UaConfig, UserAgent};
use super::{Action, Command, SipEvent, Transport};
use crate::config::Config;

/// How long shutdown waits for the un-REGISTER and BYEs to be answered.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

#[derive(Debug, thiserror::Error)]
pub enum SipError {
    #[error("cannot bind SIP {transport} socket on {addr}: {source}. Is another process using it? Change sip.listen.")]
    Bind {
        transport: &'static str,
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("registrar {registrar:?} in sip.registrars does not resolve: {reason}. Use host:port of a reachable registrar.")]
    Resolve { registrar: String, reason: String },
    #[error("sip.allowed_sources entry {0:?} is not an address or CIDR network. Write e.g. \"127.0.0.0/8\" or \"10.1.2.3\".")]
    BadSource(String),
    #[error("[sip.inbound_auth] is present but its username or password cannot be resolved (is the environment variable named by sip.inbound_auth.password_env set?). Set username and password_env or password, or remove the table to accept INVITEs without a challenge.")]
    InboundAuth,
    #[error("the SIP agent task has stopped; start it again")]
    Stopped,
}

/// A running SIP agent.
pub struct SipHandle {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    commands: mpsc::UnboundedSender<Command>,
    events: mpsc::UnboundedReceiver<SipEvent>,
    task: JoinHandle<()>,
}

impl SipHandle {
    /// A sender for commands (clone it freely).
    pub fn commands(&self) -> mpsc::UnboundedSender<Command> {
        self.commands.clone()
    }

    pub fn send(&self, cmd: Command) -> Result<(), SipError> {
        self.commands.send(cmd).map_err(|_| SipError::Stopped)
    }

    /// The next event; `None` once the agent stopped.
    pub async fn next_event(&mut self) -> Option<SipEvent> {
        self.events.recv().await
    }

    /// Splits into the command sender, the event receiver and the task.
    pub fn into_parts(
        self,
    ) -> (
        mpsc::UnboundedSender<Command>,
        mpsc::UnboundedReceiver<SipEvent>,
        JoinHandle<()>,
    ) {
        (self.commands, self.events, self.task)
    }

    /// Hangs up calls, un-registers and stops; returns the remaining events.
    pub async fn shutdown(mut self) -> Vec<SipEvent> {
        let _ = self.commands.send(Command::Shutdown);
        let mut rest = Vec::new();
        while let Some(e) = self.events.recv().await {
            rest.push(e);
        }
        let _ = self.task.await;
        rest
    }
}

/// Builds the core's settings from the agent config (resolving registrar names).
pub async fn ua_config(config: &Config) -> Result<UaConfig, SipError> {
    let sip = &config.sip;
    let mut cfg = UaConfig::direct(sip.listen);
    cfg.user = sip.user.clone();
    cfg.password = config.sip_password();
    cfg.register_expires = sip.register_expires;
    cfg.max_calls = sip.max_calls;
    cfg.retry_after = sip.retry_after_secs;
    // Fail closed: a configured challenge never silently turns into none.
    cfg.inbound_auth = config.inbound_auth();
    if sip.inbound_auth.is_some() && cfg.inbound_auth.is_none() {
        return Err(SipError::InboundAuth);
    }
    cfg.allowed_sources = sip
        .allowed_sources
        .iter()
        .map(|s| Cidr::parse(s).ok_or_else(|| SipError::BadSource(s.clone())))
        .collect::<Result<_, _>>()?;
    for r in &sip.registrars {
        let target = r.trim().trim_start_matches("sip:");
        let addr = tokio::net::lookup_host(target)
            .await
            .map_err(|e| SipError::Resolve {
                registrar: r.clone(),
                reason: e.to_string(),
            })?
            .find(|a| a.is_ipv4() == sip.listen.is_ipv4())
            .ok_or_else(|| SipError::Resolve {
                registrar: r.clone(),
                reason: "no address of the listen address' family".into(),
            })?;
        cfg.registrars.push(addr);
    }
    Ok(cfg)
}

/// Starts the agent from the configuration file's `[sip]` section.
pub async fn start(config: &Config) -> Result<SipHandle, SipError> {
    start_with(ua_config(config).await?).await
}

type TcpWriters = Arc<Mutex<HashMap<SocketAddr, mpsc::UnboundedSender<Vec<u8>>>>>;

/// Starts the agent with explicit core settings (`cfg.local` port 0 picks a free port).
pub async fn start_with(mut cfg: UaConfig) -> Result<SipHandle, SipError> {
    // With port 0 the kernel picks a free UDP port, but the same TCP port may be taken
    // (seen about once in 60 calls during a soak): then pick again.
    let attempts = if cfg.local.port() == 0 { 20 } else { 1 };
    let mut attempt = 0;
    let (udp, tcp, local) = loop {
        attempt += 1;
        let udp = UdpSocket::bind(cfg.local)
            .await
            .map_err(|source| SipError::Bind {
                transport: "UDP",
                addr: cfg.local,
                source,
            })?;
        let local = udp.local_addr().map_err(|source| SipError::Bind {
            transport: "UDP",
            addr: cfg.local,
            source,
        })?;
        match TcpListener::bind(local).await {
            Ok(tcp) => break (udp, tcp, local),
            Err(_) if attempt < attempts => continue,
            Err(source) => {
                return Err(SipError::Bind {
                    transport: "TCP",
                    addr: local,
                    source,
                })
            }
        }
    };
    cfg.local = local;
    let (cmd_tx, cmd_rx) = mpsc::unbounded_channel();
    let (ev_tx, ev_rx) = mpsc::unbounded_channel();
    let (in_tx, in_rx) = mpsc::unbounded_channel::<(Vec<u8>, SocketAddr)>();
    let writers: TcpWriters = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(accept_loop(tcp, in_tx.clone(), writers.clone()));
    let core = UserAgent::new(cfg);
    tracing::info!(%local, "SIP agent listening (UDP and TCP)");
    let task = tokio::spawn(run(core, udp, cmd_rx, ev_tx, in_rx, in_tx, writers));
    Ok(SipHandle {
        local_addr: local,
        commands: cmd_tx,
        events: ev_rx,
        task,
    })
}

async fn run(
    mut core: UserAgent,
    udp: UdpSocket,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ev_tx: mpsc::UnboundedSender<SipEvent>,
    mut in_rx: mpsc::UnboundedReceiver<(Vec<u8>, SocketAddr)>,
    in_tx: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    writers: TcpWriters,
) {
    let mut buf = vec![0u8; msg::MAX_MESSAGE];
    let actions = core.start(Instant::now());
    perform(actions, &udp, &ev_tx, &in_tx, &writers).await;
    let mut stop_by: Option<Instant> = None;
    loop {
        let wake = core
            .next_deadline()
            .unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
        let wake = stop_by.map_or(wake, |s| wake.min(s));
        let actions = tokio::select! {
            r = udp.recv_from(&mut buf) => match r {
                Ok((n, src)) => core.on_message(&buf[..n], src, Transport::Udp, Instant::now()),
                Err(e) => {
                    tracing::debug!(error = %e, "UDP receive error (ICMP from a dead peer?)");
                    Vec::new()
                }
            },
            Some((bytes, src)) = in_rx.recv() => core.on_message(&bytes, src, Transport::Tcp, Instant::now()),
            cmd = cmd_rx.recv(), if stop_by.is_none() => {
                let cmd = cmd.unwrap_or(Command::Shutdown);
                if cmd == Command::Shutdown {
                    stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                core.command(cmd, Instant::now())
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => core.on_tick(Instant::now()),
        };
        perform(actions, &udp, &ev_tx, &in_tx, &writers).await;
        if let Some(s) = stop_by {
            if core.is_shutdown_complete() || Instant::now() >= s {
                tracing::info!("SIP agent stopped");
                break;
            }
        }
    }
}

async fn perform(
    actions: Vec<Action>,
    udp: &UdpSocket,
    ev_tx: &mpsc::UnboundedSender<SipEvent>,
    in_tx: &mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    writers: &TcpWriters,
) {
    for a in actions {
        match a {
            Action::Send {
                bytes,
                dest,
                transport: Transport::Udp,
            } => {
                if let Err(e) = udp.send_to(&bytes, dest).await {
                    tracing::warn!(%dest, error = %e, "UDP send failed");
                }
            }
            Action::Send {
                bytes,
                dest,
                transport: Transport::Tcp,
            } => send_tcp(bytes, dest, in_tx, writers),
            Action::SetTimer { .. } => {}
            Action::Event(e) => {
                let _ = ev_tx.send(e);
            }
        }
    }
}

fn send_tcp(
    bytes: Vec<u8>,
    dest: SocketAddr,
    in_tx: &mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    writers: &TcpWriters,
) {
    let existing = writers.lock().ok().and_then(|w| w.get(&dest).cloned());
    if let Some(w) = existing {
        if w.send(bytes).is_ok() {
            return;
        }
        return;
    }
    let in_tx = in_tx.clone();
    let writers = writers.clone();
    tokio::spawn(async move {
        match TcpStream::connect(dest).await {
            Ok(stream) => {
                let w = connection(stream, dest, in_tx, writers);
                let _ = w.send(bytes);
            }
            Err(e) => tracing::warn!(%dest, error = %e, "TCP connect failed"),
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    in_tx: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    writers: TcpWriters,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                connection(stream, peer, in_tx.clone(), writers.clone());
            }
            Err(e) => {
                tracing::warn!(error = %e, "TCP accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        if in_tx.is_closed() {
            break;
        }
    }
}

/// Runs one TCP connection: frames incoming messages by Content-Length, writes queued ones.
fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    in_tx: mpsc::UnboundedSender<(Vec<u8>, SocketAddr)>,
    writers: TcpWriters,
) -> mpsc::UnboundedSender<Vec<u8>> {
    let (mut rd, mut wr) = stream.into_split();
    let (w_tx, mut w_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if let Ok(mut w) = writers.lock() {
        w.insert(peer, w_tx.clone());
    }
    tokio::spawn(async move {
        while let Some(b) = w_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
    });
    tokio::spawn(async move {
        let mut buf: Vec<u8> = Vec::with_capacity(8192);
        let mut chunk = vec![0u8; 8192];
        'conn: loop {
            let n = match rd.read(&mut chunk).await {
                Ok(0) | Err(_) => break,
                Ok(n) => n,
            };
            buf.extend_from_slice(&chunk[..n]);
            loop {
                match msg::stream_frame_len(&buf) {
                    Ok(Some(len)) => {
                        let frame: Vec<u8> = buf.drain(..len).collect();
                        if frame.iter().any(|b| !b.is_ascii_whitespace())
                            && in_tx.send((frame, peer)).is_err()
                        {
                            break 'conn;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::warn!(%peer, error = %e, "bad SIP framing on TCP; closing connection");
                        break 'conn;
                    }
                }
            }
        }
        if let Ok(mut w) = writers.lock() {
            w.remove(&peer);
        }
    });
    w_tx
}

//! Thin tokio driver: UDP and TCP sockets on `sip.listen` and a timer, feeding the
//! sans-IO [`UserAgent`]. Tokio is used for network I/O only; all SIP logic is in the core.
//!
//! Public API for the call layer: [`start`] (from `tingshuo::config::Config`) returns a
//! [`SipHandle`] with a channel of [`SipEvent`]s and a command sender.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream, UdpSocket};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::msg;
use super::tls::{self, TlsContext, TlsError};
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
    #[error(transparent)]
    Tls(#[from] TlsError),
}

/// How long a TLS handshake may take before the connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// A running SIP agent.
pub struct SipHandle {
    /// The address actually bound (useful with port 0).
    pub local_addr: SocketAddr,
    /// The TLS listener's address, when `sip.tls_listen` is set.
    pub tls_addr: Option<SocketAddr>,
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
    Ok(ua_config_with_names(config).await?.0)
}

/// Splits a `sip.registrars` entry into `host:port` and the transport it asks for
/// (`sips:` and `;transport=tls` mean TLS, default port 5061).
pub fn registrar_target(entry: &str) -> (String, Transport) {
    let transport = Transport::of_uri(entry);
    let t = entry.trim();
    let t = t
        .strip_prefix("sips:")
        .or_else(|| t.strip_prefix("sip:"))
        .unwrap_or(t);
    let host_port = t.split(';').next().unwrap_or(t).to_string();
    let has_port = host_port
        .rsplit_once(':')
        .is_some_and(|(h, p)| !h.ends_with(':') && p.parse::<u16>().is_ok())
        && !host_port.ends_with(']');
    if has_port {
        (host_port, transport)
    } else {
        let port = if transport == Transport::Tls {
            5061
        } else {
            5060
        };
        (format!("{host_port}:{port}"), transport)
    }
}

/// [`ua_config`] plus the host names of TLS registrars (verified against their certificates).
async fn ua_config_with_names(
    config: &Config,
) -> Result<(UaConfig, HashMap<SocketAddr, String>), SipError> {
    let sip = &config.sip;
    let mut names = HashMap::new();
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
    cfg.tls_local = sip.tls_listen;
    cfg.srtp = config.media.srtp;
    cfg.codecs = config.media.codec_list();
    if let Some(first) = sip.registrars.first() {
        cfg.registrar_transport = registrar_target(first).1;
    }
    for r in &sip.registrars {
        let (target, _) = registrar_target(r);
        let target = target.as_str();
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
        if let Some((host, _)) = target.rsplit_once(':') {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            if host.parse::<std::net::IpAddr>().is_err() {
                names.insert(addr, host.to_string());
            }
        }
    }
    Ok((cfg, names))
}

/// Starts the agent from the configuration file's `[sip]` section.
pub async fn start(config: &Config) -> Result<SipHandle, SipError> {
    let (cfg, names) = ua_config_with_names(config).await?;
    let wants_tls = cfg.tls_local.is_some() || cfg.registrar_transport == Transport::Tls;
    let tls = if wants_tls {
        let named = cfg.tls_local.unwrap_or(cfg.local);
        let mut ctx = TlsContext::from_config(&config.sip.tls, named)?;
        ctx.names = names;
        Some(ctx)
    } else {
        None
    };
    start_with_tls(cfg, tls).await
}

type Inbound = (Vec<u8>, SocketAddr, Transport);
/// Open stream connections by transport and peer address (and RFC 5923 aliases).
type TcpWriters = Arc<Mutex<HashMap<(Transport, SocketAddr), mpsc::UnboundedSender<Vec<u8>>>>>;

/// Starts the agent with explicit core settings (`cfg.local` port 0 picks a free port).
pub async fn start_with(cfg: UaConfig) -> Result<SipHandle, SipError> {
    start_with_tls(cfg, None).await
}

/// Like [`start_with`], with TLS: a listener on `cfg.tls_local` (port 0 picks one) and
/// outgoing TLS connections.
pub async fn start_with_tls(
    mut cfg: UaConfig,
    tls: Option<TlsContext>,
) -> Result<SipHandle, SipError> {
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
    let (in_tx, in_rx) = mpsc::unbounded_channel::<Inbound>();
    let writers: TcpWriters = Arc::new(Mutex::new(HashMap::new()));
    tokio::spawn(accept_loop(tcp, in_tx.clone(), writers.clone(), None));
    let mut tls_addr = None;
    if let Some(addr) = cfg.tls_local {
        let Some(ctx) = tls.clone() else {
            return Err(SipError::Tls(TlsError::Config(
                "a TLS listen address needs a TLS context".into(),
            )));
        };
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| SipError::Bind {
                transport: "TLS",
                addr,
                source,
            })?;
        let bound = listener.local_addr().map_err(|source| SipError::Bind {
            transport: "TLS",
            addr,
            source,
        })?;
        cfg.tls_local = Some(bound);
        tls_addr = Some(bound);
        tokio::spawn(accept_loop(
            listener,
            in_tx.clone(),
            writers.clone(),
            Some(ctx),
        ));
        tracing::info!(%bound, "SIP agent listening (TLS)");
    }
    let core = UserAgent::new(cfg);
    tracing::info!(%local, "SIP agent listening (UDP and TCP)");
    let task = tokio::spawn(run(core, udp, cmd_rx, ev_tx, in_rx, in_tx, writers, tls));
    Ok(SipHandle {
        tls_addr,
        local_addr: local,
        commands: cmd_tx,
        events: ev_rx,
        task,
    })
}

#[allow(clippy::too_many_arguments)]
async fn run(
    mut core: UserAgent,
    udp: UdpSocket,
    mut cmd_rx: mpsc::UnboundedReceiver<Command>,
    ev_tx: mpsc::UnboundedSender<SipEvent>,
    mut in_rx: mpsc::UnboundedReceiver<Inbound>,
    in_tx: mpsc::UnboundedSender<Inbound>,
    writers: TcpWriters,
    tls: Option<TlsContext>,
) {
    let mut buf = vec![0u8; msg::MAX_MESSAGE];
    let out = Out {
        udp: &udp,
        ev_tx: &ev_tx,
        in_tx: &in_tx,
        writers: &writers,
        tls: tls.as_ref(),
    };
    let actions = core.start(Instant::now());
    perform(actions, &out).await;
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
            Some((bytes, src, tr)) = in_rx.recv() => core.on_message(&bytes, src, tr, Instant::now()),
            cmd = cmd_rx.recv(), if stop_by.is_none() => {
                let cmd = cmd.unwrap_or(Command::Shutdown);
                if cmd == Command::Shutdown {
                    stop_by = Some(Instant::now() + SHUTDOWN_GRACE);
                }
                core.command(cmd, Instant::now())
            },
            _ = tokio::time::sleep_until(tokio::time::Instant::from_std(wake)) => core.on_tick(Instant::now()),
        };
        perform(actions, &out).await;
        if let Some(s) = stop_by {
            if core.is_shutdown_complete() || Instant::now() >= s {
                tracing::info!("SIP agent stopped");
                break;
            }
        }
    }
}

/// What [`perform`] sends through.
struct Out<'a> {
    udp: &'a UdpSocket,
    ev_tx: &'a mpsc::UnboundedSender<SipEvent>,
    in_tx: &'a mpsc::UnboundedSender<Inbound>,
    writers: &'a TcpWriters,
    tls: Option<&'a TlsContext>,
}

async fn perform(actions: Vec<Action>, out: &Out<'_>) {
    let Out {
        udp,
        ev_tx,
        in_tx,
        writers,
        tls,
    } = *out;
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
            Action::Send {
                bytes,
                dest,
                transport: Transport::Tls,
            } => send_tls(bytes, dest, in_tx, writers, tls),
            Action::SetTimer { .. } => {}
            Action::Event(e) => {
                let _ = ev_tx.send(e);
            }
        }
    }
}

/// Sends over an open TLS connection to `dest` (or one `dest` aliased, RFC 5923), else
/// opens one. Messages sent while the handshake runs are queued, not lost.
fn send_tls(
    bytes: Vec<u8>,
    dest: SocketAddr,
    in_tx: &mpsc::UnboundedSender<Inbound>,
    writers: &TcpWriters,
    tls: Option<&TlsContext>,
) {
    let key = (Transport::Tls, dest);
    let existing = writers.lock().ok().and_then(|w| w.get(&key).cloned());
    let bytes = match existing {
        // A send error gives the message back: the connection just closed, open a new one.
        Some(w) => match w.send(bytes) {
            Ok(()) => return,
            Err(e) => e.0,
        },
        None => bytes,
    };
    send_tls_new(bytes, dest, in_tx, writers, tls)
}

fn send_tls_new(
    bytes: Vec<u8>,
    dest: SocketAddr,
    in_tx: &mpsc::UnboundedSender<Inbound>,
    writers: &TcpWriters,
    tls: Option<&TlsContext>,
) {
    let Some(tls) = tls.cloned() else {
        tracing::warn!(%dest, "cannot send SIP over TLS: no TLS context (set sip.tls_listen or use a sips: registrar)");
        return;
    };
    let (w_tx, w_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    let _ = w_tx.send(bytes);
    if let Ok(mut w) = writers.lock() {
        w.insert((Transport::Tls, dest), w_tx);
    }
    let in_tx = in_tx.clone();
    let writers = writers.clone();
    tokio::spawn(async move {
        let name = tls.server_name(dest);
        let connected = tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, async {
            let tcp = TcpStream::connect(dest).await?;
            tls.connector.connect(name, tcp).await
        })
        .await;
        match connected {
            Ok(Ok(stream)) => {
                tracing::debug!(%dest, "SIP TLS connection established");
                run_connection(stream, dest, Transport::Tls, w_rx, in_tx, writers);
            }
            Ok(Err(e)) => {
                tracing::warn!(peer = %dest, reason = %e, "SIP TLS connection to peer failed (certificate untrusted or expired, or handshake refused); message dropped");
                if let Ok(mut w) = writers.lock() {
                    w.remove(&(Transport::Tls, dest));
                }
            }
            Err(_) => {
                tracing::warn!(peer = %dest, "SIP TLS handshake with peer timed out; message dropped");
                if let Ok(mut w) = writers.lock() {
                    w.remove(&(Transport::Tls, dest));
                }
            }
        }
    });
}

fn send_tcp(
    bytes: Vec<u8>,
    dest: SocketAddr,
    in_tx: &mpsc::UnboundedSender<Inbound>,
    writers: &TcpWriters,
) {
    let existing = writers
        .lock()
        .ok()
        .and_then(|w| w.get(&(Transport::Tcp, dest)).cloned());
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
                let w = connection(stream, dest, Transport::Tcp, in_tx, writers);
                let _ = w.send(bytes);
            }
            Err(e) => tracing::warn!(%dest, error = %e, "TCP connect failed"),
        }
    });
}

async fn accept_loop(
    listener: TcpListener,
    in_tx: mpsc::UnboundedSender<Inbound>,
    writers: TcpWriters,
    tls: Option<TlsContext>,
) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => match &tls {
                None => {
                    connection(stream, peer, Transport::Tcp, in_tx.clone(), writers.clone());
                }
                Some(ctx) => {
                    let acceptor = ctx.acceptor.clone();
                    let (in_tx, writers) = (in_tx.clone(), writers.clone());
                    tokio::spawn(async move {
                        match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                            .await
                        {
                            Ok(Ok(s)) => {
                                connection(s, peer, Transport::Tls, in_tx, writers);
                            }
                            Ok(Err(e)) => {
                                tracing::warn!(%peer, reason = %e, "SIP TLS handshake from peer failed; connection closed")
                            }
                            Err(_) => {
                                tracing::warn!(%peer, "SIP TLS handshake from peer timed out; connection closed")
                            }
                        }
                    });
                }
            },
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

/// Registers a stream connection under `peer` and runs it (see [`run_connection`]).
fn connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    in_tx: mpsc::UnboundedSender<Inbound>,
    writers: TcpWriters,
) -> mpsc::UnboundedSender<Vec<u8>>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (w_tx, w_rx) = mpsc::unbounded_channel::<Vec<u8>>();
    if let Ok(mut w) = writers.lock() {
        w.insert((transport, peer), w_tx.clone());
    }
    run_connection(stream, peer, transport, w_rx, in_tx, writers);
    w_tx
}

/// Runs one TCP or TLS connection: frames incoming messages by Content-Length, writes
/// queued ones. On TLS, a request whose top Via carries `alias` (RFC 5923) makes the
/// connection also the way to its sent-by address.
fn run_connection<S>(
    stream: S,
    peer: SocketAddr,
    transport: Transport,
    mut w_rx: mpsc::UnboundedReceiver<Vec<u8>>,
    in_tx: mpsc::UnboundedSender<Inbound>,
    writers: TcpWriters,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(stream);
    let own = writers
        .lock()
        .ok()
        .and_then(|w| w.get(&(transport, peer)).cloned());
    tokio::spawn(async move {
        while let Some(b) = w_rx.recv().await {
            if wr.write_all(&b).await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
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
                        if transport == Transport::Tls {
                            if let (Some(alias), Some(own)) = (tls::via_alias(&frame), &own) {
                                if alias != peer {
                                    if let Ok(mut w) = writers.lock() {
                                        w.entry((transport, alias)).or_insert_with(|| own.clone());
                                    }
                                }
                            }
                        }
                        if frame.iter().any(|b| !b.is_ascii_whitespace())
                            && in_tx.send((frame, peer, transport)).is_err()
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
            w.remove(&(transport, peer));
            // Drop aliases that pointed at this connection.
            if let Some(own) = &own {
                w.retain(|_, tx| !tx.same_channel(own));
            }
        }
    });
}

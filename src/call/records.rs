//! Call records written from call threads without blocking them: one writer thread
//! owns the store and applies writes in order. Each turn is one transaction, so a
//! crash loses at most the turn in progress.
//!
//! A shared database can go away for a while (a PostgreSQL restart or fail-over):
//! the writer then keeps the writes in memory, in order and bounded, tries to
//! reconnect every second, and writes them when the database is back. Calls go on
//! meanwhile; only new calls get no record (their id comes from the database).
//! [`StoreStatus`] says what state the writer is in, for `/readyz` and `/metrics`.
//! The writer also keeps this agent's heartbeat and closes the calls of agents
//! that stopped beating (see `store::agents`).

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};

use crate::store::{Store, StoreError, StoreTarget, TurnWrite};

use super::CallError;

/// Writes kept while the database is unreachable; beyond this, new writes are
/// dropped (loudly, and counted). 20 000 writes is hours of turns for a full agent.
const MAX_BACKLOG: usize = 20_000;
/// How often the agent says it is alive, and how often an unreachable database is retried.
const HEARTBEAT: Duration = Duration::from_secs(2);
const RETRY: Duration = Duration::from_secs(1);
/// An agent silent this long is dead: its open calls are closed by the survivors.
/// Several heartbeats, so a slow moment is not a death.
pub const AGENT_DEAD_SECS: u32 = 15;
const REAP_EVERY: Duration = Duration::from_secs(5);

/// A write queued for the store; kept (and retried) while the database is away.
enum Write {
    Start {
        script: String,
        direction: String,
        peer: Option<String>,
        vars: BTreeMap<String, String>,
        started_at: String,
        reply: Sender<Result<i64, String>>,
    },
    Turn {
        call_id: i64,
        turn: Box<TurnWrite>,
    },
    End {
        call_id: i64,
        outcome: String,
        ended_at: String,
    },
    Recording {
        call_id: i64,
        path: String,
    },
    Interrupted {
        call_id: i64,
        text: String,
    },
    /// Any other write, in order with the rest (emergency mode, recovery). It may
    /// run again after a failed attempt, so it must be repeatable.
    Apply(Box<RepeatableWrite>),
}

/// A write [`RecordWriter::apply`] queues; it may run more than once.
type RepeatableWrite = dyn FnMut(&mut Store) -> Result<(), StoreError> + Send;

impl Write {
    fn kind(&self) -> &'static str {
        match self {
            Write::Start { .. } => "call start",
            Write::Turn { .. } => "turn",
            Write::End { .. } => "call end",
            Write::Recording { .. } => "recording path",
            Write::Interrupted { .. } => "interruption",
            Write::Apply(_) => "other",
        }
    }
}

/// What the record writer is doing, shared with the console.
#[derive(Debug, Default)]
pub struct StoreStatus {
    unreachable: AtomicBool,
    backlog: AtomicUsize,
    dropped: AtomicU64,
    last_error: std::sync::Mutex<String>,
}

impl StoreStatus {
    /// `Err(why)` while the database cannot be reached.
    pub fn readiness(&self) -> Result<(), String> {
        if self.unreachable.load(Ordering::Relaxed) {
            let why = self
                .last_error
                .lock()
                .map(|e| e.clone())
                .unwrap_or_default();
            Err(format!(
                "records database unreachable ({} writes kept in memory): {why}",
                self.backlog()
            ))
        } else {
            Ok(())
        }
    }
    /// Writes waiting for the database.
    pub fn backlog(&self) -> usize {
        self.backlog.load(Ordering::Relaxed)
    }
    /// Writes lost because the backlog was full.
    pub fn dropped(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }
}

/// Handle to the record writer thread; cheap to clone.
#[derive(Clone)]
pub struct RecordWriter {
    tx: Sender<Write>,
    status: Arc<StoreStatus>,
}

/// Who is writing: the agent's name in a shared store and its console's URL.
#[derive(Debug, Clone, Default)]
pub struct WriterIdentity {
    pub agent: Option<String>,
    pub console: Option<String>,
}

impl RecordWriter {
    /// Opens (or creates) the database and starts the writer thread.
    pub fn open(target: &StoreTarget, who: WriterIdentity) -> Result<Self, CallError> {
        let mut store = Store::connect(target)?;
        if let Some(name) = &who.agent {
            store.set_agent(name);
        }
        let (tx, rx) = crossbeam_channel::unbounded();
        let status = Arc::new(StoreStatus::default());
        let st = status.clone();
        std::thread::Builder::new()
            .name("record-writer".into())
            .spawn(move || Writer::new(store, who.console, st).run(rx))
            .map_err(|e| CallError::Thread(e.to_string()))?;
        Ok(Self { tx, status })
    }

    /// The writer's state (reachable, backlog), for readiness and metrics.
    pub fn status(&self) -> Arc<StoreStatus> {
        self.status.clone()
    }

    /// Creates the call's record and returns its id (waits for the writer: call set-up only).
    pub fn start_call(
        &self,
        script: &str,
        direction: &str,
        peer: Option<&str>,
        vars: &BTreeMap<String, String>,
        started_at: &str,
    ) -> Result<i64, CallError> {
        let (reply, rx) = crossbeam_channel::bounded(1);
        self.tx
            .send(Write::Start {
                script: script.to_string(),
                direction: direction.to_string(),
                peer: peer.map(str::to_string),
                vars: vars.clone(),
                started_at: started_at.to_string(),
                reply,
            })
            .map_err(|_| CallError::Thread("the record writer has stopped".into()))?;
        rx.recv()
            .map_err(|_| CallError::Thread("the record writer has stopped".into()))?
            .map_err(CallError::Record)
    }

    fn send(&self, w: Write, what: &str) {
        if self.tx.send(w).is_err() {
            tracing::error!("record writer stopped; {what} was not recorded");
        }
    }

    /// Queues one turn.
    pub fn write_turn(&self, call_id: i64, turn: TurnWrite) {
        let turn = Box::new(turn);
        self.send(Write::Turn { call_id, turn }, "a turn");
    }

    /// Queues the end of a call.
    pub fn end_call(&self, call_id: i64, outcome: &str, ended_at: &str) {
        let (outcome, ended_at) = (outcome.to_string(), ended_at.to_string());
        self.send(
            Write::End {
                call_id,
                outcome,
                ended_at,
            },
            "the call's end",
        );
    }

    /// Queues marking the agent's latest line `text` as cut off by the caller.
    pub fn mark_interrupted(&self, call_id: i64, text: &str) {
        let text = text.to_string();
        self.send(Write::Interrupted { call_id, text }, "an interruption");
    }

    /// Queues the path of the call's finished WAV recording.
    pub fn set_recording(&self, call_id: i64, path: &std::path::Path) {
        let path = path.display().to_string();
        self.send(Write::Recording { call_id, path }, "the recording path");
    }

    /// Queues `f` to run on the writer thread, in order with the other writes. `f`
    /// runs again if the database was unreachable, so it must be repeatable; other
    /// errors are logged with `what`.
    pub fn apply(
        &self,
        what: &'static str,
        mut f: impl FnMut(&mut Store) -> Result<(), StoreError> + Send + 'static,
    ) {
        let f = move |s: &mut Store| {
            f(s).map_err(|e| {
                if !e.is_unreachable() {
                    tracing::error!(error = %e, "{what} failed");
                }
                e
            })
        };
        self.send(Write::Apply(Box::new(f)), what);
    }
}

/// The writer thread's state.
struct Writer {
    store: Store,
    console: Option<String>,
    status: Arc<StoreStatus>,
    backlog: VecDeque<Write>,
    /// Since when the database has been unreachable.
    down_since: Option<Instant>,
    next_retry: Instant,
    next_beat: Instant,
    next_reap: Instant,
}

/// How one write went.
enum Applied {
    Done,
    /// The database is away: keep the write and retry later.
    Unreachable(StoreError),
}

impl Writer {
    fn new(store: Store, console: Option<String>, status: Arc<StoreStatus>) -> Self {
        let now = Instant::now();
        Self {
            store,
            console,
            status,
            backlog: VecDeque::new(),
            down_since: None,
            next_retry: now,
            next_beat: now,
            next_reap: now,
        }
    }

    fn run(mut self, rx: Receiver<Write>) {
        loop {
            let wait = if self.down_since.is_some() {
                RETRY
            } else {
                HEARTBEAT
            };
            match rx.recv_timeout(wait) {
                Ok(w) => self.accept(w),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    // The agent is stopping: one last try for what is kept.
                    self.flush();
                    if !self.backlog.is_empty() {
                        tracing::error!(
                            writes = self.backlog.len(),
                            "the agent stops with writes the records database never took"
                        );
                    }
                    return;
                }
            }
            while let Ok(w) = rx.try_recv() {
                self.accept(w);
            }
            let now = Instant::now();
            if self.down_since.is_some() && now >= self.next_retry {
                self.next_retry = now + RETRY;
                self.try_reconnect();
            }
            self.flush();
            self.housekeeping(now);
        }
    }

    /// Queues a write; a new call's record cannot wait for the database, so while
    /// it is away the call gets no record at once instead of a stuck set-up.
    fn accept(&mut self, w: Write) {
        if let (Some(_), Write::Start { reply, .. }) = (self.down_since, &w) {
            let _ = reply.send(Err(self.status.readiness().err().unwrap_or_default()));
            return;
        }
        if self.backlog.len() >= MAX_BACKLOG {
            self.status.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::error!(
                kept = self.backlog.len(),
                "records database unreachable and the backlog is full: a write is LOST"
            );
            return;
        }
        if self.down_since.is_some() {
            tracing::warn!(
                write = w.kind(),
                kept = self.backlog.len() + 1,
                "a write is kept until the records database returns"
            );
        }
        self.backlog.push_back(w);
        self.status
            .backlog
            .store(self.backlog.len(), Ordering::Relaxed);
    }

    /// Applies kept writes in order until one finds the database away.
    fn flush(&mut self) {
        if self.down_since.is_some() {
            return;
        }
        while let Some(w) = self.backlog.front_mut() {
            match apply(&mut self.store, w) {
                Applied::Done => {
                    self.backlog.pop_front();
                }
                Applied::Unreachable(e) => {
                    self.went_down(e);
                    break;
                }
            }
        }
        self.status
            .backlog
            .store(self.backlog.len(), Ordering::Relaxed);
    }

    fn went_down(&mut self, e: StoreError) {
        if self.down_since.is_none() {
            tracing::error!(
                error = %e,
                kept = self.backlog.len(),
                "RECORDS DATABASE UNREACHABLE: calls go on, their writes are kept in memory and written when it returns"
            );
            self.down_since = Some(Instant::now());
            self.next_retry = Instant::now() + RETRY;
        }
        if let Ok(mut last) = self.status.last_error.lock() {
            *last = e.to_string();
        }
        self.status.unreachable.store(true, Ordering::Relaxed);
        // New calls waiting for their record id are answered now, not after the outage.
        let mut kept = VecDeque::with_capacity(self.backlog.len());
        for w in self.backlog.drain(..) {
            match w {
                Write::Start { reply, .. } => {
                    let _ = reply.send(Err(format!("records database unreachable: {e}")));
                }
                w => kept.push_back(w),
            }
        }
        self.backlog = kept;
    }

    fn try_reconnect(&mut self) {
        let back = self.store.reconnect().and_then(|_| self.store.ping());
        match back {
            Ok(()) => {
                let down = self.down_since.take().map(|t| t.elapsed());
                self.status.unreachable.store(false, Ordering::Relaxed);
                tracing::warn!(
                    after_ms = down.map(|d| d.as_millis() as u64),
                    kept = self.backlog.len(),
                    "records database reachable again: writing the kept writes"
                );
            }
            Err(e) => {
                if let Ok(mut last) = self.status.last_error.lock() {
                    *last = e.to_string();
                }
            }
        }
    }

    /// Heartbeat, and closing the calls of agents that stopped beating.
    fn housekeeping(&mut self, now: Instant) {
        if self.down_since.is_some() || self.store.agent().is_none() {
            return;
        }
        if now >= self.next_beat {
            self.next_beat = now + HEARTBEAT;
            if let Err(e) = self.store.heartbeat(self.console.as_deref()) {
                self.on_error(e, "the agent's heartbeat");
            }
        }
        if now >= self.next_reap {
            self.next_reap = now + REAP_EVERY;
            let at = chrono::Local::now().fixed_offset().to_rfc3339();
            match self.store.close_calls_of_dead_agents(&at, AGENT_DEAD_SECS) {
                Ok(ids) if !ids.is_empty() => tracing::warn!(
                    calls = ?ids,
                    "calls of an agent that stopped (no heartbeat for {AGENT_DEAD_SECS} s) closed as `interrupted`, with their turns"
                ),
                Ok(_) => {}
                Err(e) => self.on_error(e, "closing a dead agent's calls"),
            }
        }
    }

    fn on_error(&mut self, e: StoreError, what: &str) {
        if e.is_unreachable() {
            self.went_down(e);
        } else {
            tracing::error!(error = %e, "{what} failed");
        }
    }
}

/// Applies one write; only an unreachable database keeps it.
fn apply(store: &mut Store, w: &mut Write) -> Applied {
    let r = match w {
        Write::Start {
            script,
            direction,
            peer,
            vars,
            started_at,
            reply,
        } => match store.start_call(script, direction, peer.as_deref(), vars, started_at) {
            Ok(id) => {
                let _ = reply.send(Ok(id));
                Ok(())
            }
            Err(e) if e.is_unreachable() => Err(e),
            Err(e) => {
                let _ = reply.send(Err(e.to_string()));
                Ok(())
            }
        },
        Write::Turn { call_id, turn } => store
            .write_turn(*call_id, turn)
            .map(|_| ())
            .inspect_err(|e| log_unless_unreachable(e, *call_id, "writing a turn")),
        Write::End {
            call_id,
            outcome,
            ended_at,
        } => store
            .end_call(*call_id, outcome, ended_at)
            .inspect_err(|e| log_unless_unreachable(e, *call_id, "closing a call record")),
        Write::Interrupted { call_id, text } => match store.mark_line_interrupted(*call_id, text) {
            Ok(true) => Ok(()),
            Ok(false) => {
                tracing::warn!(call_id = *call_id, line = %text, "interrupted line not found in the record");
                Ok(())
            }
            Err(e) => {
                log_unless_unreachable(&e, *call_id, "recording an interruption");
                Err(e)
            }
        },
        Write::Recording { call_id, path } => store
            .set_recording(*call_id, path)
            .inspect_err(|e| log_unless_unreachable(e, *call_id, "saving the recording path")),
        Write::Apply(f) => f(store),
    };
    match r {
        Err(e) if e.is_unreachable() => Applied::Unreachable(e),
        // Any other failure was logged where it happened; retrying cannot help.
        _ => Applied::Done,
    }
}

fn log_unless_unreachable(e: &StoreError, call_id: i64, what: &str) {
    if !e.is_unreachable() {
        tracing::error!(call_id, error = %e, "{what} failed");
    }
}

//! Call records written from call threads without blocking them: one writer thread
//! owns the SQLite store and applies writes in order. Each turn is one transaction,
//! so a crash loses at most the turn in progress.

use std::collections::BTreeMap;
use std::path::Path;

use crossbeam_channel::{Receiver, Sender};

use crate::store::{Store, TurnWrite};

use super::CallError;

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
    /// Any other write, in order with the rest (emergency mode, recovery).
    Apply(Box<dyn FnOnce(&mut Store) + Send>),
}

/// Handle to the record writer thread; cheap to clone.
#[derive(Clone)]
pub struct RecordWriter {
    tx: Sender<Write>,
}

impl RecordWriter {
    /// Opens (or creates) the database and starts the writer thread.
    pub fn open(path: &Path) -> Result<Self, CallError> {
        let store = Store::open(path)?;
        let (tx, rx) = crossbeam_channel::unbounded();
        std::thread::Builder::new()
            .name("record-writer".into())
            .spawn(move || writer_loop(store, rx))
            .map_err(|e| CallError::Thread(e.to_string()))?;
        Ok(Self { tx })
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

    /// Queues one turn.
    pub fn write_turn(&self, call_id: i64, turn: TurnWrite) {
        if self
            .tx
            .send(Write::Turn {
                call_id,
                turn: Box::new(turn),
            })
            .is_err()
        {
            tracing::error!(call_id, "record writer stopped; a turn was not recorded");
        }
    }

    /// Queues the end of a call.
    pub fn end_call(&self, call_id: i64, outcome: &str, ended_at: &str) {
        if self
            .tx
            .send(Write::End {
                call_id,
                outcome: outcome.to_string(),
                ended_at: ended_at.to_string(),
            })
            .is_err()
        {
            tracing::error!(
                call_id,
                "record writer stopped; the call's end was not recorded"
            );
        }
    }
}

impl RecordWriter {
    /// Queues marking the agent's latest line `text` as cut off by the caller.
    pub fn mark_interrupted(&self, call_id: i64, text: &str) {
        let w = Write::Interrupted {
            call_id,
            text: text.to_string(),
        };
        if self.tx.send(w).is_err() {
            tracing::error!(
                call_id,
                "record writer stopped; an interruption was not recorded"
            );
        }
    }

    /// Queues the path of the call's finished WAV recording.
    pub fn set_recording(&self, call_id: i64, path: &std::path::Path) {
        let w = Write::Recording {
            call_id,
            path: path.display().to_string(),
        };
        if self.tx.send(w).is_err() {
            tracing::error!(
                call_id,
                "record writer stopped; the recording path was not saved"
            );
        }
    }

    /// Queues `f` to run on the writer thread, in order with the other writes.
    pub fn apply(&self, f: impl FnOnce(&mut Store) + Send + 'static) {
        if self.tx.send(Write::Apply(Box::new(f))).is_err() {
            tracing::error!("record writer stopped; a write was not recorded");
        }
    }
}

fn writer_loop(mut store: Store, rx: Receiver<Write>) {
    for w in rx {
        match w {
            Write::Start {
                script,
                direction,
                peer,
                vars,
                started_at,
                reply,
            } => {
                let r = store
                    .start_call(&script, &direction, peer.as_deref(), &vars, &started_at)
                    .map_err(|e| e.to_string());
                let _ = reply.send(r);
            }
            Write::Turn { call_id, turn } => {
                if let Err(e) = store.write_turn(call_id, &turn) {
                    tracing::error!(call_id, error = %e, "writing a turn failed");
                }
            }
            Write::End {
                call_id,
                outcome,
                ended_at,
            } => {
                if let Err(e) = store.end_call(call_id, &outcome, &ended_at) {
                    tracing::error!(call_id, error = %e, "closing a call record failed");
                }
            }
            Write::Interrupted { call_id, text } => match store
                .mark_line_interrupted(call_id, &text)
            {
                Ok(true) => {}
                Ok(false) => {
                    tracing::warn!(call_id, line = %text, "interrupted line not found in the record")
                }
                Err(e) => tracing::error!(call_id, error = %e, "recording an interruption failed"),
            },
            Write::Recording { call_id, path } => {
                if let Err(e) = store.set_recording(call_id, &path) {
                    tracing::error!(call_id, error = %e, "saving the recording path failed");
                }
            }
            Write::Apply(f) => f(&mut store),
        }
    }
}

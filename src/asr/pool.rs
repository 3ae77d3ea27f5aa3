//! The shared recognition pool: worker threads (not tokio tasks: whisper.cpp blocks
//! for hundreds of milliseconds) behind one bounded crossbeam queue, serving every
//! call. Each worker owns a Whisper state; the model weights are shared.
//!
//! Submitting never blocks the caller: a full queue is an error the call handles
//! (ask the caller to repeat) instead of a stall on the audio path. Every result
//! reports its queue wait separately from its inference time, so load shows up as
//! queueing and not as "slow ASR". Speculative jobs (started at a tentative end)
//! are cancelled through their token when the caller resumes speaking.
//!
//! CPU threads are handed out as tokens ([`Cores`]): a job that finds the pool idle
//! takes `lone_threads` of them and decodes faster; otherwise a job takes one. A
//! worker waits for a free token rather than start more whisper threads than there
//! are tokens, because whisper.cpp's threads spin on barriers and an oversubscribed
//! multi-threaded decode is an order of magnitude slower.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Instant;

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::engine::{AsrConfig, Recognizer, Rejection, Transcript, WhisperModel};
use super::AsrError;
use crate::vad::SileroModel;

/// One clip to recognise.
#[derive(Debug, Clone)]
pub struct AsrJob {
    /// Caller's id, echoed in the outcome (e.g. call id × turn number).
    pub id: u64,
    /// 16 kHz mono f32 audio.
    pub samples: Vec<f32>,
    /// Per-script hot words for the prompt (may be empty).
    pub hot_words: Arc<[String]>,
    /// The script's terms: near-homophones of them in the transcript are written
    /// as the terms (may be empty).
    pub terms: Arc<[super::correct::Term]>,
}

/// What comes back for every submitted job, cancelled ones included.
#[derive(Debug)]
pub struct AsrOutcome {
    pub id: u64,
    pub result: Result<Transcript, AsrError>,
    /// Time between submit and a worker taking the job.
    pub queue_ms: f64,
    /// Time the worker spent on it.
    pub infer_ms: f64,
    /// Which worker ran it.
    pub worker: usize,
}

impl AsrOutcome {
    /// True if the job was cancelled before or during decoding.
    pub fn cancelled(&self) -> bool {
        matches!(&self.result, Ok(t) if t.rejected == Some(Rejection::Cancelled))
    }
}

/// Cancels a submitted job (a speculative result superseded by `SpeechResumed`).
#[derive(Debug, Clone)]
pub struct CancelToken(Arc<AtomicBool>);

impl CancelToken {
    pub fn cancel(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
    pub fn is_cancelled(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }
}

/// A submitted job: its cancel token and the channel its outcome arrives on.
#[derive(Debug)]
pub struct JobHandle {
    pub id: u64,
    pub token: CancelToken,
    pub outcome: Receiver<AsrOutcome>,
}

impl JobHandle {
    pub fn cancel(&self) {
        self.token.cancel();
    }

    /// Blocks until the outcome arrives (not for the audio path: use `outcome` in a select).
    pub fn wait(&self) -> Result<AsrOutcome, AsrError> {
        self.outcome.recv().map_err(|_| AsrError::PoolClosed)
    }
}

struct Envelope {
    job: AsrJob,
    cancel: Arc<AtomicBool>,
    submitted: Instant,
    reply: Sender<AsrOutcome>,
}

/// CPU-thread tokens shared by a pool's workers.
#[derive(Debug)]
pub struct Cores {
    free: Mutex<usize>,
    freed: Condvar,
    total: usize,
}

impl Cores {
    pub fn new(total: usize) -> Self {
        let total = total.max(1);
        Self {
            free: Mutex::new(total),
            freed: Condvar::new(),
            total,
        }
    }

    /// Takes threads for one job: all of `lone` when every token is free and
    /// `queued` is false (the job is alone), else `shared`; fewer if fewer are free,
    /// but at least one (waiting for it). Give them back with [`Self::release`].
    pub fn acquire(&self, lone: usize, shared: usize, queued: bool) -> usize {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free == 0 {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        let want = if *free == self.total && !queued {
            lone
        } else {
            shared
        };
        let n = want.clamp(1, *free);
        *free -= n;
        n
    }

    pub fn release(&self, n: usize) {
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        *free = (*free + n).min(self.total);
        self.freed.notify_all();
    }

    /// Tokens not held by a decode right now.
    pub fn free(&self) -> usize {
        *self.free.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The worker pool. Dropping it lets queued jobs finish, then joins the workers.
pub struct AsrPool {
    tx: Option<Sender<Envelope>>,
    rx: Receiver<Envelope>,
    workers: Vec<JoinHandle<()>>,
    cfg: AsrConfig,
}

impl AsrPool {
    /// Starts `cfg.workers` workers on `model`, each with its own Whisper state and
    /// (if `gate` is given) its own Silero state for the voice gate.
    pub fn new(
        model: &WhisperModel,
        gate: Option<&SileroModel>,
        cfg: AsrConfig,
    ) -> Result<Self, AsrError> {
        let (tx, rx) = crossbeam_channel::bounded::<Envelope>(cfg.queue_capacity.max(1));
        let shared = cfg.threads_per_worker.max(1);
        let cores = Arc::new(Cores::new(
            cfg.lone_threads.max(cfg.workers.max(1) * shared),
        ));
        let mut workers = Vec::new();
        for w in 0..cfg.workers.max(1) {
            let rec = Recognizer::new(model, cfg.clone(), gate)?;
            let worker = Worker {
                id: w,
                rec,
                model: model.clone(),
                gate: gate.cloned(),
                cfg: cfg.clone(),
                cores: Arc::clone(&cores),
                lone: cfg.lone_threads.max(1),
                shared,
            };
            let rx = rx.clone();
            let handle = std::thread::Builder::new()
                .name(format!("asr-{w}"))
                .spawn(move || worker.run(rx))
                .map_err(|e| AsrError::Whisper(format!("cannot start ASR worker thread: {e}")))?;
            workers.push(handle);
        }
        Ok(Self {
            tx: Some(tx),
            rx,
            workers,
            cfg,
        })
    }

    pub fn config(&self) -> &AsrConfig {
        &self.cfg
    }

    /// Jobs waiting for a worker.
    pub fn queued(&self) -> usize {
        self.rx.len()
    }

    /// Queues a job; its outcome arrives on the returned handle. Never blocks.
    pub fn submit(&self, job: AsrJob) -> Result<JobHandle, AsrError> {
        let (reply, outcome) = crossbeam_channel::bounded(1);
        let id = job.id;
        let token = self.submit_with(job, reply)?;
        Ok(JobHandle { id, token, outcome })
    }

    /// Queues a job whose outcome goes to `reply` (e.g. one channel per call).
    pub fn submit_with(
        &self,
        job: AsrJob,
        reply: Sender<AsrOutcome>,
    ) -> Result<CancelToken, AsrError> {
        let tx = self.tx.as_ref().ok_or(AsrError::PoolClosed)?;
        let cancel = Arc::new(AtomicBool::new(false));
        let env = Envelope {
            job,
            cancel: Arc::clone(&cancel),
            submitted: Instant::now(),
            reply,
        };
        match tx.try_send(env) {
            Ok(()) => Ok(CancelToken(cancel)),
            Err(TrySendError::Full(_)) => Err(AsrError::QueueFull {
                capacity: self.cfg.queue_capacity,
            }),
            Err(TrySendError::Disconnected(_)) => Err(AsrError::PoolClosed),
        }
    }
}

impl Drop for AsrPool {
    fn drop(&mut self) {
        self.tx.take();
        for w in self.workers.drain(..) {
            let _ = w.join();
        }
    }
}

/// Environment variable for resilience tests: `N` makes every job after the first `N`
/// in the process crash (panic) the worker that takes it, as a worker killed mid-call
/// would; `N:K` crashes only the `K` jobs after the first `N`.
pub const FAULT_CRASH_AFTER_ENV: &str = "TINGSHUO_FAULT_ASR_CRASH_AFTER";

/// Parses [`FAULT_CRASH_AFTER_ENV`]: (jobs before the first crash, crashes or unlimited).
fn parse_fault(v: &str) -> Option<(u64, Option<u64>)> {
    let (after, count) = match v.trim().split_once(':') {
        Some((a, k)) => (a, Some(k.trim().parse().ok()?)),
        None => (v.trim(), None),
    };
    Some((after.trim().parse().ok()?, count))
}

/// True when the fault-injection variable says this job's worker must crash.
fn injected_crash() -> bool {
    use std::sync::atomic::AtomicU64;
    use std::sync::OnceLock;
    static FAULT: OnceLock<Option<(u64, Option<u64>)>> = OnceLock::new();
    static JOBS: AtomicU64 = AtomicU64::new(0);
    let Some((after, count)) = *FAULT.get_or_init(|| {
        std::env::var(FAULT_CRASH_AFTER_ENV)
            .ok()
            .and_then(|v| parse_fault(&v))
    }) else {
        return false;
    };
    let n = JOBS.fetch_add(1, Ordering::Relaxed);
    n >= after && count.is_none_or(|k| n < after + k)
}

/// Gives a job's CPU threads back even when the decode panics.
struct CoreGuard<'a> {
    cores: &'a Cores,
    n: usize,
}

impl Drop for CoreGuard<'_> {
    fn drop(&mut self) {
        self.cores.release(self.n);
    }
}

/// One worker thread: its recogniser and what it needs to rebuild it.
struct Worker {
    id: usize,
    rec: Recognizer,
    model: WhisperModel,
    gate: Option<SileroModel>,
    cfg: AsrConfig,
    cores: Arc<Cores>,
    lone: usize,
    shared: usize,
}

impl Worker {
    /// Serves jobs until the pool closes. A job that panics (a whisper.cpp fault or
    /// the fault-injection variable) is answered with [`AsrError::WorkerCrashed`], so
    /// its call switches to the emergency script at once, and the worker carries on
    /// with a fresh Whisper state: a crash costs one clip, never the pool.
    fn run(mut self, rx: Receiver<Envelope>) {
        while let Ok(env) = rx.recv() {
            let reply = env.reply.clone();
            let (id, submitted) = (env.job.id, env.submitted);
            let job = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                self.serve(env, !rx.is_empty())
            }));
            let Err(panic) = job else { continue };
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "unknown panic".into());
            tracing::error!(worker = self.id, %message, "ASR worker crashed; restarting it");
            let _ = reply.send(AsrOutcome {
                id,
                result: Err(AsrError::WorkerCrashed {
                    worker: self.id,
                    message,
                }),
                queue_ms: 0.0,
                infer_ms: submitted.elapsed().as_secs_f64() * 1e3,
                worker: self.id,
            });
            match Recognizer::new(&self.model, self.cfg.clone(), self.gate.as_ref()) {
                Ok(rec) => self.rec = rec,
                Err(e) => {
                    tracing::error!(worker = self.id, error = %e, "cannot restart the ASR worker; it stops");
                    return;
                }
            }
        }
    }

    fn serve(&mut self, env: Envelope, queued: bool) {
        if injected_crash() {
            tracing::error!(
                worker = self.id,
                "{FAULT_CRASH_AFTER_ENV}: crashing this ASR worker"
            );
            panic!(
                "ASR worker {} crashed on purpose ({FAULT_CRASH_AFTER_ENV})",
                self.id
            );
        }
        // Waiting for a core counts as queueing: the job has not started decoding.
        let threads = self.cores.acquire(self.lone, self.shared, queued);
        let _cores = CoreGuard {
            cores: &self.cores,
            n: threads,
        };
        let started = Instant::now();
        let queue_ms = started.duration_since(env.submitted).as_secs_f64() * 1e3;
        let result = self
            .rec
            .transcribe_on(
                &env.job.samples,
                &env.job.hot_words,
                Some(&env.cancel),
                threads,
            )
            .map(|mut t| {
                t.apply_terms(&env.job.terms);
                t
            });
        let infer_ms = started.elapsed().as_secs_f64() * 1e3;
        // The submitter may have gone away (call ended): nothing to do then.
        let _ = env.reply.send(AsrOutcome {
            id: env.job.id,
            result,
            queue_ms,
            infer_ms,
            worker: self.id,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::Cores;
    use std::sync::Arc;
    use std::time::Duration;

    #[test]
    fn a_lone_job_takes_every_core_and_a_busy_pool_one() {
        let c = Cores::new(2);
        assert_eq!(c.acquire(2, 1, false), 2, "idle pool, nothing queued");
        c.release(2);
        assert_eq!(c.acquire(2, 1, true), 1, "another job is waiting");
        assert_eq!(c.acquire(2, 1, false), 1, "one core is already busy");
        assert_eq!(c.free(), 0);
        c.release(1);
        c.release(1);
        assert_eq!(c.free(), 2);
    }

    #[test]
    fn a_job_waits_for_a_core_instead_of_oversubscribing() {
        let c = Arc::new(Cores::new(2));
        assert_eq!(c.acquire(2, 1, false), 2);
        let c2 = Arc::clone(&c);
        let (tx, rx) = crossbeam_channel::bounded(1);
        let t = std::thread::spawn(move || {
            let n = c2.acquire(2, 1, false);
            let _ = tx.send(n);
        });
        assert!(
            rx.recv_timeout(Duration::from_millis(100)).is_err(),
            "no core is free: the second job must wait"
        );
        c.release(2);
        let n = rx.recv_timeout(Duration::from_secs(5)).expect("woken");
        assert_eq!(n, 2, "the pool was idle again when it woke");
        t.join().expect("joined");
        c.release(n);
        assert_eq!(c.free(), 2);
    }

    #[test]
    fn fault_injection_settings_parse() {
        use super::parse_fault;
        assert_eq!(parse_fault("3"), Some((3, None)));
        assert_eq!(parse_fault(" 1:2 "), Some((1, Some(2))));
        assert_eq!(parse_fault("x"), None);
        assert_eq!(parse_fault("1:"), None);
    }

    #[test]
    fn release_never_exceeds_the_total() {
        let c = Cores::new(1);
        c.release(3);
        assert_eq!(c.free(), 1);
        assert_eq!(c.acquire(4, 1, false), 1);
    }
}

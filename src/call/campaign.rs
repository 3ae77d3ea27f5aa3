//! `tingshuo campaign callees.csv`: call every row of a CSV.
//!
//! The CSV has a `target` column (SIP URI, extension or number) and one column
//! per script variable. Rows are dialled with a concurrency limit
//! (`[agent.campaign] concurrency`), never two at once to the same target;
//! busy, unanswered and failed calls are retried after the configured delays up
//! to `max_attempts`. Rows whose target is on the do-not-call list (config, a
//! file, or callees who asked during an earlier call) are recorded as skipped.
//!
//! Rows live in the store, keyed by the CSV's path and line: re-running the
//! same file resumes it, finished rows are not dialled again. The callback
//! scheduler runs alongside, so callbacks that fall due during a campaign are
//! dialled too.
//!
//! Several agents may run the same campaign on one shared store (`[store] url`):
//! each row is claimed before it is dialled ([`Store::claim_campaign_row`]: one
//! agent wins, with a lease it renews while it lives), each agent takes in what
//! the others did every couple of seconds, and the do-not-call list is re-read
//! with it. A row whose agent died mid-call is taken over when its lease lapses:
//! dialled again if the callee never answered, finished as `interrupted` if they did.
//!
//! The decisions (which row next, retry or give up) are the sans-IO [`Planner`];
//! [`run`] is the edge that dials through the agent and writes the store.

use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, FixedOffset};

use crate::config::Config;
use crate::store::{CampaignRow, RowStatus, Store, StoreError};

use super::agent::{self, Finished};
use super::callbacks::{dial_target, Scheduler};
use super::CallError;

/// Outcome recorded for rows skipped because of the do-not-call list.
pub const SKIPPED_DNC: &str = "do_not_call_list";

/// Why a campaign could not run.
#[derive(Debug, thiserror::Error)]
pub enum CampaignError {
    #[error("cannot read the campaign file {path}: {source}. Check the path.")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}, line {line}: {problem}. {fix}")]
    Csv {
        path: PathBuf,
        line: u64,
        problem: String,
        fix: String,
    },
    #[error("do-not-call file {path}: {source}. Check agent.campaign.do_not_call_file.")]
    DoNotCall {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Call(#[from] CallError),
}

/// One callee from the CSV.
#[derive(Debug, Clone, PartialEq)]
pub struct Callee {
    /// Line in the file (the header is line 1).
    pub line: u64,
    pub target: String,
    pub vars: BTreeMap<String, String>,
}

/// Reads and checks a campaign CSV.
pub fn read_callees(path: &Path) -> Result<Vec<Callee>, CampaignError> {
    let bytes = std::fs::read(path).map_err(|source| CampaignError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    parse_callees(&bytes, path)
}

/// Parses campaign CSV text; `path` only names the file in errors.
pub fn parse_callees(bytes: &[u8], path: &Path) -> Result<Vec<Callee>, CampaignError> {
    let bad = |line: u64, problem: String, fix: &str| CampaignError::Csv {
        path: path.to_path_buf(),
        line,
        problem,
        fix: fix.to_string(),
    };
    let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .from_reader(bytes);
    let csv_error = |e: csv::Error| {
        let line = e.position().map_or(1, |p| p.line());
        match e.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => bad(
                line,
                format!("{len} fields where the header has {expected_len}"),
                "Give every row one value per column (quote values that contain commas, e.g. \"Room 3, Block B\").",
            ),
            csv::ErrorKind::Utf8 { .. } => bad(
                line,
                "the text is not UTF-8".into(),
                "Save the file as UTF-8 (CSV UTF-8 in spreadsheet programs).",
            ),
            _ => bad(line, e.to_string(), "Fix the CSV syntax on that line."),
        }
    };
    let headers = reader.headers().map_err(csv_error)?.clone();
    let names: Vec<String> = headers.iter().map(str::to_string).collect();
    let mut seen = HashSet::new();
    for (i, name) in names.iter().enumerate() {
        if name.is_empty() {
            return Err(bad(
                1,
                format!("column {} of the header has no name", i + 1),
                "The first line names the columns: `target` and one per script variable, e.g. `target,name`.",
            ));
        }
        if !seen.insert(name.as_str()) {
            return Err(bad(
                1,
                format!("the header names column {name:?} twice"),
                "Give each column a distinct name.",
            ));
        }
    }
    let Some(target_col) = names.iter().position(|n| n == "target") else {
        return Err(bad(
            1,
            format!("the header ({}) has no `target` column", names.join(",")),
            "The first line names the columns: `target` (whom to call) and one per script variable, e.g. `target,name`.",
        ));
    };
    let mut callees = Vec::new();
    for record in reader.records() {
        let record = record.map_err(csv_error)?;
        let line = record.position().map_or(0, |p| p.line());
        let target = record.get(target_col).unwrap_or("").to_string();
        if target.is_empty() || target.contains(char::is_whitespace) {
            return Err(bad(
                line,
                format!("the target {target:?} is empty or contains spaces"),
                "Give a SIP URI, extension or number (e.g. 1001 or sip:1001@pbx.example), or delete the row.",
            ));
        }
        let vars = names
            .iter()
            .zip(record.iter())
            .enumerate()
            .filter(|(i, _)| *i != target_col)
            .map(|(_, (k, v))| (k.clone(), v.to_string()))
            .collect();
        callees.push(Callee { line, target, vars });
    }
    if callees.is_empty() {
        return Err(bad(
            1,
            "there are no callee rows under the header".into(),
            "Add one row per callee under the header line.",
        ));
    }
    Ok(callees)
}

/// The form of a target used to match the do-not-call list: the user part of a
/// SIP URI (or the host when there is none), without spaces, dashes and brackets.
pub fn normalize_target(target: &str) -> String {
    let t = dial_target(target, true).unwrap_or_else(|| target.trim().to_string());
    let t = t
        .strip_prefix("sip:")
        .or_else(|| t.strip_prefix("sips:"))
        .unwrap_or(&t);
    t.chars()
        .filter(|c| !matches!(c, ' ' | '-' | '(' | ')'))
        .collect::<String>()
        .to_lowercase()
}

/// Parses a do-not-call file: one number a line, `#` starts a comment.
pub fn parse_do_not_call(text: &str) -> Vec<String> {
    text.lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .filter(|l| !l.is_empty())
        .map(normalize_target)
        .collect()
}

/// Joins the CSV with what the store knows of an earlier run of the same file.
/// A stored row is kept when its line still holds the same callee; an edited
/// line starts afresh.
pub fn merge_rows(callees: &[Callee], stored: &[CampaignRow]) -> Vec<CampaignRow> {
    let stored: HashMap<u64, &CampaignRow> = stored.iter().map(|r| (r.line, r)).collect();
    callees
        .iter()
        .map(|c| match stored.get(&c.line) {
            Some(r) if r.target == c.target && r.vars == c.vars => (*r).clone(),
            _ => CampaignRow {
                line: c.line,
                target: c.target.clone(),
                vars: c.vars.clone(),
                status: RowStatus::Pending,
                attempts: 0,
                outcome: None,
                last_call_id: None,
                next_at: None,
            },
        })
        .collect()
}

/// How rows are retried.
#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    /// Wait before retry n (1-based) is `delays[n - 1]`; the last entry repeats.
    pub delays: Vec<chrono::Duration>,
}

impl RetryPolicy {
    pub fn from_config(config: &Config) -> Self {
        let c = &config.agent.campaign;
        Self {
            max_attempts: c.max_attempts.max(1),
            delays: c
                .retry_delays_s
                .iter()
                .map(|s| chrono::Duration::seconds((*s).min(i64::MAX as u64) as i64))
                .collect(),
        }
    }

    fn delay_after(&self, attempts: u32) -> chrono::Duration {
        let i = (attempts.max(1) - 1) as usize;
        self.delays
            .get(i)
            .or(self.delays.last())
            .copied()
            .unwrap_or_else(chrono::Duration::zero)
    }
}

/// Outcomes of unanswered calls that are worth another try.
fn retryable(outcome: &str) -> bool {
    matches!(outcome, "busy" | "no_answer" | "failed")
}

/// What the planner wants done with a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    /// Dial row `i` now.
    Dial(usize),
    /// Row `i` was skipped (do-not-call): save it.
    Skip(usize),
}

/// The sans-IO campaign: which rows to dial when, and what their calls mean.
#[derive(Debug)]
pub struct Planner {
    rows: Vec<CampaignRow>,
    in_flight: BTreeSet<usize>,
    /// Rows another agent was found holding ([`Planner::not_claimed`]): passed over
    /// until the next [`Planner::sync`], so that this agent's call slots go to rows
    /// it can dial instead of the same failed claims every tick.
    held_elsewhere: BTreeSet<usize>,
    concurrency: usize,
    policy: RetryPolicy,
    do_not_call: HashSet<String>,
}

impl Planner {
    pub fn new(
        rows: Vec<CampaignRow>,
        concurrency: usize,
        policy: RetryPolicy,
        do_not_call: HashSet<String>,
    ) -> Self {
        Self {
            rows,
            in_flight: BTreeSet::new(),
            held_elsewhere: BTreeSet::new(),
            concurrency: concurrency.max(1),
            policy,
            do_not_call,
        }
    }

    pub fn rows(&self) -> &[CampaignRow] {
        &self.rows
    }

    pub fn row(&self, i: usize) -> &CampaignRow {
        &self.rows[i]
    }

    /// Rows whose calls are in progress.
    pub fn in_flight(&self) -> usize {
        self.in_flight.len()
    }

    /// Targets in a call now.
    pub fn busy_targets(&self) -> HashSet<String> {
        self.in_flight
            .iter()
            .map(|i| self.rows[*i].target.clone())
            .collect()
    }

    /// Every row finished or skipped, and no call in progress.
    pub fn is_done(&self) -> bool {
        self.in_flight.is_empty() && self.rows.iter().all(|r| r.status != RowStatus::Pending)
    }

    /// Rows waiting for their retry time.
    pub fn waiting(&self) -> usize {
        self.rows
            .iter()
            .enumerate()
            .filter(|(i, r)| {
                r.status == RowStatus::Pending && r.attempts > 0 && !self.in_flight.contains(i)
            })
            .count()
    }

    /// Marks the pending rows whose target is on the do-not-call list as skipped;
    /// returns them.
    pub fn skip_do_not_call(&mut self) -> Vec<usize> {
        let mut skipped = Vec::new();
        for (i, r) in self.rows.iter_mut().enumerate() {
            if r.status == RowStatus::Pending
                && !self.in_flight.contains(&i)
                && self.do_not_call.contains(&normalize_target(&r.target))
            {
                r.status = RowStatus::Skipped;
                r.outcome = Some(SKIPPED_DNC.to_string());
                r.next_at = None;
                skipped.push(i);
            }
        }
        skipped
    }

    /// The rows to act on at `now`. `busy`: targets in other calls (callbacks);
    /// `other_calls`: those calls, which count against the concurrency limit.
    /// Rows returned as [`Step::Dial`] are in flight until [`Planner::finished`].
    pub fn next(
        &mut self,
        now: DateTime<FixedOffset>,
        busy: &HashSet<String>,
        other_calls: usize,
    ) -> Vec<Step> {
        let mut steps: Vec<Step> = self
            .skip_do_not_call()
            .into_iter()
            .map(Step::Skip)
            .collect();
        let mut targets = self.busy_targets();
        targets.extend(busy.iter().cloned());
        for i in 0..self.rows.len() {
            if self.rows[i].status != RowStatus::Pending
                || self.in_flight.contains(&i)
                || self.held_elsewhere.contains(&i)
            {
                continue;
            }
            if self.in_flight.len() + other_calls >= self.concurrency {
                continue;
            }
            let due = self.rows[i]
                .next_at
                .as_deref()
                .and_then(|t| DateTime::parse_from_rfc3339(t).ok())
                .is_none_or(|t| t <= now);
            if !due || targets.contains(&self.rows[i].target) {
                continue;
            }
            targets.insert(self.rows[i].target.clone());
            self.in_flight.insert(i);
            let r = &mut self.rows[i];
            r.attempts += 1;
            r.next_at = None;
            steps.push(Step::Dial(i));
        }
        steps
    }

    /// Takes in what other agents sharing the store did to rows that are not in a
    /// call here: a row finished elsewhere is finished here too, a row dialled
    /// elsewhere keeps its attempt count. Rows are matched by line and callee.
    /// Rows held elsewhere may be tried again (their agent may have died since).
    pub fn sync(&mut self, stored: &[CampaignRow]) {
        self.held_elsewhere.clear();
        let by_line: HashMap<u64, &CampaignRow> = stored.iter().map(|r| (r.line, r)).collect();
        for (i, r) in self.rows.iter_mut().enumerate() {
            if self.in_flight.contains(&i) {
                continue;
            }
            if let Some(s) = by_line.get(&r.line) {
                if s.target == r.target && s.vars == r.vars {
                    *r = (*s).clone();
                }
            }
        }
    }

    /// Row `i` came back from [`Planner::next`] but another agent holds it: it
    /// is not in flight here, it stands as the store has it (`stored`), and
    /// [`Planner::next`] passes it over until the next [`Planner::sync`].
    pub fn not_claimed(&mut self, i: usize, stored: Option<&CampaignRow>) {
        self.in_flight.remove(&i);
        self.held_elsewhere.insert(i);
        match stored {
            Some(s) => self.rows[i] = s.clone(),
            None => self.rows[i].attempts = self.rows[i].attempts.saturating_sub(1),
        }
    }

    /// Numbers another agent (or an operator) added to the do-not-call list.
    pub fn add_do_not_call(&mut self, numbers: impl IntoIterator<Item = String>) {
        self.do_not_call
            .extend(numbers.into_iter().map(|n| normalize_target(&n)));
    }

    /// The call for row `i` has a record.
    pub fn placed(&mut self, i: usize, record_id: Option<i64>) {
        if record_id.is_some() {
            self.rows[i].last_call_id = record_id;
        }
    }

    /// Row `i`'s call ended (`answered` when the dialogue ran). Decides whether
    /// the row is finished or tried again later.
    pub fn finished(
        &mut self,
        i: usize,
        answered: bool,
        outcome: &str,
        now: DateTime<FixedOffset>,
    ) -> &CampaignRow {
        self.in_flight.remove(&i);
        let policy = &self.policy;
        let r = &mut self.rows[i];
        r.outcome = Some(outcome.to_string());
        if !answered && retryable(outcome) && r.attempts < policy.max_attempts {
            r.status = RowStatus::Pending;
            r.next_at = Some((now + policy.delay_after(r.attempts)).to_rfc3339());
        } else {
            r.status = RowStatus::Done;
            r.next_at = None;
        }
        if outcome == "do_not_call" {
            self.do_not_call.insert(normalize_target(&r.target));
        }
        r
    }
}

/// The end of a campaign run: every row and the totals.
#[derive(Debug, Clone)]
pub struct Summary {
    pub source: String,
    pub rows: Vec<CampaignRow>,
}

impl Summary {
    /// Final outcome label of a row.
    fn label(r: &CampaignRow) -> String {
        match r.status {
            RowStatus::Skipped => "skipped (do-not-call)".to_string(),
            RowStatus::Done => r.outcome.clone().unwrap_or_else(|| "done".into()),
            RowStatus::Pending => match &r.outcome {
                Some(o) => format!("pending (last: {o})"),
                None => "pending".to_string(),
            },
        }
    }

    /// Rows per final outcome label.
    pub fn totals(&self) -> BTreeMap<String, usize> {
        let mut t = BTreeMap::new();
        for r in &self.rows {
            *t.entry(Self::label(r)).or_insert(0) += 1;
        }
        t
    }
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let width =
            |it: &mut dyn Iterator<Item = usize>, min: usize| it.max().unwrap_or(0).max(min);
        let tw = width(&mut self.rows.iter().map(|r| r.target.chars().count()), 6);
        writeln!(f, "campaign {}", self.source)?;
        writeln!(
            f,
            "{:>5}  {:<tw$}  {:>8}  outcome",
            "line", "target", "attempts"
        )?;
        for r in &self.rows {
            writeln!(
                f,
                "{:>5}  {:<tw$}  {:>8}  {}",
                r.line,
                r.target,
                r.attempts,
                Self::label(r)
            )?;
        }
        let attempts: u32 = self.rows.iter().map(|r| r.attempts).sum();
        writeln!(
            f,
            "totals: {} rows, {} calls placed",
            self.rows.len(),
            attempts
        )?;
        for (label, n) in self.totals() {
            writeln!(f, "  {label}: {n}")?;
        }
        Ok(())
    }
}

fn now_local() -> DateTime<FixedOffset> {
    chrono::Local::now().fixed_offset()
}

/// Everything that forbids a call: config list, config file, and the store.
fn load_do_not_call(config: &Config, store: &Store) -> Result<HashSet<String>, CampaignError> {
    let mut set: HashSet<String> = config
        .agent
        .campaign
        .do_not_call
        .iter()
        .map(|t| normalize_target(t))
        .collect();
    if let Some(path) = &config.agent.campaign.do_not_call_file {
        let text = std::fs::read_to_string(path).map_err(|source| CampaignError::DoNotCall {
            path: path.clone(),
            source,
        })?;
        set.extend(parse_do_not_call(&text));
    }
    set.extend(store.do_not_call_list()?);
    Ok(set)
}

/// Progress on the terminal (a bar when stderr is one, lines otherwise).
struct Progress {
    bar: indicatif::ProgressBar,
}

impl Progress {
    fn new(planner: &Planner) -> Self {
        let bar = indicatif::ProgressBar::new(planner.rows().len() as u64);
        if let Ok(style) =
            indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} rows finished  {msg}")
        {
            bar.set_style(style);
        }
        let p = Self { bar };
        p.update(planner);
        p
    }

    fn update(&self, planner: &Planner) {
        let finished = planner
            .rows()
            .iter()
            .filter(|r| r.status != RowStatus::Pending)
            .count();
        self.bar.set_position(finished as u64);
        self.bar.set_message(format!(
            "{} in call, {} waiting to retry",
            planner.in_flight(),
            planner.waiting()
        ));
    }

    fn line(&self, text: String) {
        if self.bar.is_hidden() {
            eprintln!("{text}");
        } else {
            self.bar.println(text);
        }
    }
}

/// Runs the campaign in `csv` to its end (or Ctrl-C) and returns its summary.
pub async fn run(config: Config, csv: &Path) -> Result<Summary, CampaignError> {
    let callees = read_callees(csv)?;
    check_variables(&config, &callees, csv)?;
    let source = std::fs::canonicalize(csv)
        .unwrap_or_else(|_| csv.to_path_buf())
        .display()
        .to_string();
    let mut store = Store::connect(&config.store_target())?;
    let me = config.agent_name();
    let campaign = store.open_campaign(&source, &now_local().to_rfc3339())?;
    let stored = store.campaign_rows(campaign)?;
    let rows = merge_rows(&callees, &stored);
    // Only new or edited rows are written: another agent running the same
    // campaign may have moved the others on since they were read.
    for r in rows.iter().filter(|r| !stored.contains(r)) {
        store.save_campaign_row(campaign, r)?;
    }
    let dnc = load_do_not_call(&config, &store)?;
    let mut planner = Planner::new(
        rows,
        config.agent.campaign.concurrency,
        RetryPolicy::from_config(&config),
        dnc,
    );
    // Skipped rows need no agent: a campaign of only those loads no models.
    for i in planner.skip_do_not_call() {
        let r = planner.row(i);
        eprintln!("line {}: {} skipped (do-not-call list)", r.line, r.target);
        store.save_campaign_row(campaign, r)?;
    }
    if planner.is_done() {
        eprintln!("campaign {source}: every row is finished");
        return Ok(Summary {
            source,
            rows: planner.rows().to_vec(),
        });
    }

    // The agent checks the script against `[agent.vars]` at start-up; the CSV's
    // columns fill the same placeholders per call, so blank defaults stand in for
    // them there (and for inbound calls answered meanwhile).
    let mut agent_config = config.clone();
    for key in callees.iter().flat_map(|c| c.vars.keys()) {
        agent_config.agent.vars.entry(key.clone()).or_default();
    }
    let mut agent = agent::start_agent(&agent_config).await?;
    agent.close_calls_of_previous_run();
    let mut callbacks = Scheduler::open(&config)?;
    let progress = Progress::new(&planner);
    let mut calls: HashMap<String, usize> = HashMap::new();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let mut next_poll = tokio::time::Instant::now();
    let mut next_sync = tokio::time::Instant::now();
    let shutdown = agent::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            ev = agent.events.recv() => {
                let Some(ev) = ev else { break };
                let Some(ended) = agent.handle(ev) else { continue };
                if callbacks.on_finished(&ended) {
                    continue;
                }
                if let Some(i) = calls.remove(&ended.call_id) {
                    on_row_end(&mut planner, &mut store, campaign, i, &ended, &progress);
                    release(&mut store, campaign, planner.row(i).line, &me);
                }
            }
            _ = tick.tick() => {
                let now = now_local();
                if tokio::time::Instant::now() >= next_sync {
                    next_sync = tokio::time::Instant::now() + SYNC_EVERY;
                    share_state(&mut store, campaign, &me, &mut planner);
                }
                let busy: HashSet<String> = callbacks.busy_targets().map(str::to_string).collect();
                for step in planner.next(now, &busy, callbacks.in_flight()) {
                    match step {
                        Step::Skip(i) => {
                            let r = planner.row(i).clone();
                            progress.line(format!("line {}: {} skipped (do-not-call list)", r.line, r.target));
                            save(&mut store, campaign, &r);
                        }
                        Step::Dial(i) => {
                            match claim(&mut store, campaign, &me, &mut planner, i) {
                                Claim::Dial => {}
                                Claim::Taken => continue,
                                Claim::AnsweredBeforeDeath(record_id) => {
                                    let ended = Finished { call_id: String::new(), record_id: Some(record_id), answered: true, outcome: crate::store::INTERRUPTED.into() };
                                    on_row_end(&mut planner, &mut store, campaign, i, &ended, &progress);
                                    release(&mut store, campaign, planner.row(i).line, &me);
                                    continue;
                                }
                            }
                            let r = planner.row(i).clone();
                            let mut vars = config.agent.vars.clone();
                            vars.extend(r.vars.clone());
                            match agent.place(&r.target, vars, None) {
                                Ok((call_id, record_id)) => {
                                    planner.placed(i, record_id);
                                    calls.insert(call_id, i);
                                    progress.line(format!("line {}: dialling {} (attempt {})", r.line, r.target, r.attempts));
                                }
                                Err(e) => {
                                    tracing::error!(target = %r.target, error = %e, "cannot place a campaign call");
                                    let ended = Finished { call_id: String::new(), record_id: None, answered: false, outcome: "failed".into() };
                                    on_row_end(&mut planner, &mut store, campaign, i, &ended, &progress);
                                    release(&mut store, campaign, r.line, &me);
                                    continue;
                                }
                            }
                            save(&mut store, campaign, planner.row(i));
                        }
                    }
                }
                if tokio::time::Instant::now() >= next_poll {
                    next_poll = tokio::time::Instant::now() + callbacks.poll_interval();
                    let mut busy = planner.busy_targets();
                    busy.extend(callbacks.busy_targets().map(str::to_string));
                    let free = config
                        .agent
                        .campaign
                        .concurrency
                        .saturating_sub(planner.in_flight() + callbacks.in_flight());
                    callbacks.poll(&mut agent, &busy, free);
                }
                progress.update(&planner);
                if planner.is_done() && callbacks.in_flight() == 0 {
                    break;
                }
            }
            _ = &mut shutdown => {
                progress.line("interrupted: rows not finished stay pending; run the campaign again to resume".into());
                break;
            }
        }
    }
    progress.bar.finish_and_clear();
    agent.stop().await;
    Ok(Summary {
        source,
        rows: planner.rows().to_vec(),
    })
}

/// Fails early, naming the column to add, when the script has a placeholder that
/// neither the CSV nor `[agent.vars]` fills (every call would fail otherwise).
/// All rows have the same columns, so the first row stands for all.
fn check_variables(config: &Config, callees: &[Callee], csv: &Path) -> Result<(), CampaignError> {
    let script = agent::load_script(config)?;
    let Some(first) = callees.first() else {
        return Ok(());
    };
    let mut vars = config.agent.vars.clone();
    vars.extend(first.vars.clone());
    match script.with_vars(&vars) {
        Err(crate::dialogue::DialogueError::MissingVars { names, .. }) => Err(CampaignError::Csv {
            path: csv.to_path_buf(),
            line: 1,
            problem: format!(
                "the script {} needs {} but the header has no such column",
                script.source,
                names
                    .iter()
                    .map(|n| format!("{{{{{n}}}}}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            fix: format!(
                "Add the column(s) {} to the CSV, or set them under [agent.vars] in the config.",
                names.join(", ")
            ),
        }),
        Err(e) => Err(CallError::from(e).into()),
        Ok(_) => Ok(()),
    }
}

/// How often an agent takes in the other agents' progress and renews its claims;
/// a claim lapses [`CLAIM_LEASE_SECS`] after its agent last renewed it.
const SYNC_EVERY: Duration = Duration::from_secs(2);
const CLAIM_LEASE_SECS: u32 = 20;

/// What claiming a row before dialling it found.
enum Claim {
    /// Ours: dial it.
    Dial,
    /// Another agent has it (or dialled it since we looked).
    Taken,
    /// Ours, but its last attempt is a call whose agent died after the callee
    /// answered (the call was closed `interrupted` with its opening line at least):
    /// not dialled again, the callee has been reached.
    AnsweredBeforeDeath(i64),
}

fn claim(store: &mut Store, campaign: i64, me: &str, planner: &mut Planner, i: usize) -> Claim {
    let r = planner.row(i).clone();
    let seen = r.attempts.saturating_sub(1);
    let won = match store.claim_campaign_row(campaign, r.line, seen, me, CLAIM_LEASE_SECS) {
        Ok(won) => won,
        Err(e) => {
            tracing::error!(line = r.line, error = %e, "cannot claim a campaign row; not dialling it now");
            false
        }
    };
    if !won {
        let stored = store.campaign_rows(campaign).ok();
        let s = stored
            .as_ref()
            .and_then(|rows| rows.iter().find(|s| s.line == r.line));
        planner.not_claimed(i, s);
        return Claim::Taken;
    }
    // A previous attempt that never finished (its `outcome` was not written
    // after the call was placed) belongs to an agent that died mid-call. A live
    // agent closes that call `interrupted` once the dead one has been silent for
    // 15 s, which can come after its claim lapsed (20 s after its last renewal):
    // a call still open counts as cut too, or an answered callee would be
    // dialled again.
    if let Some(last) = r.last_call_id.filter(|_| seen > 0) {
        if let Ok(d) = store.show(last) {
            let cut = d.call.outcome.as_deref() == Some(crate::store::INTERRUPTED)
                || d.call.ended_at.is_none();
            // The opening line is written when the callee answers.
            let answered = !d.turns.is_empty();
            if cut && answered {
                // Not dialled now: the attempt `next` counted did not happen.
                planner.not_claimed(i, None);
                return Claim::AnsweredBeforeDeath(last);
            }
        }
    }
    Claim::Dial
}

/// Renews this agent's claims and takes in the other agents' progress and
/// do-not-call additions.
fn share_state(store: &mut Store, campaign: i64, me: &str, planner: &mut Planner) {
    if let Err(e) = store.renew_campaign_claims(me, CLAIM_LEASE_SECS) {
        tracing::error!(error = %e, "cannot renew this agent's campaign claims");
    }
    match store.campaign_rows(campaign) {
        Ok(rows) => planner.sync(&rows),
        Err(e) => tracing::error!(error = %e, "cannot read the campaign's rows"),
    }
    match store.do_not_call_list() {
        Ok(list) => planner.add_do_not_call(list),
        Err(e) => tracing::error!(error = %e, "cannot read the do-not-call list"),
    }
}

fn release(store: &mut Store, campaign: i64, line: u64, me: &str) {
    if let Err(e) = store.release_campaign_row(campaign, line, me) {
        tracing::warn!(line, error = %e, "cannot release a campaign row (its lease will lapse)");
    }
}

fn save(store: &mut Store, campaign: i64, row: &CampaignRow) {
    if let Err(e) = store.save_campaign_row(campaign, row) {
        tracing::error!(line = row.line, error = %e, "cannot save a campaign row");
    }
}

fn on_row_end(
    planner: &mut Planner,
    store: &mut Store,
    campaign: i64,
    i: usize,
    ended: &Finished,
    progress: &Progress,
) {
    let r = planner
        .finished(i, ended.answered, &ended.outcome, now_local())
        .clone();
    let what = match r.status {
        RowStatus::Pending => format!(
            "{}; retry at {}",
            ended.outcome,
            r.next_at.as_deref().unwrap_or("?")
        ),
        _ => ended.outcome.clone(),
    };
    progress.line(format!(
        "line {}: {} attempt {}: {what}",
        r.line, r.target, r.attempts
    ));
    save(store, campaign, &r);
    if ended.outcome == "do_not_call" {
        let at = now_local().to_rfc3339();
        if let Err(e) = store.add_do_not_call(&normalize_target(&r.target), "callee asked", &at) {
            tracing::error!(error = %e, "cannot add to the do-not-call list");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(s).unwrap()
    }

    fn parse(text: &str) -> Result<Vec<Callee>, CampaignError> {
        parse_callees(text.as_bytes(), Path::new("callees.csv"))
    }

    fn planner(csv: &str, concurrency: usize, dnc: &[&str]) -> Planner {
        let rows = merge_rows(&parse(csv).unwrap(), &[]);
        Planner::new(
            rows,
            concurrency,
            RetryPolicy {
                max_attempts: 3,
                delays: vec![chrono::Duration::seconds(10), chrono::Duration::seconds(60)],
            },
            dnc.iter().map(|d| normalize_target(d)).collect(),
        )
    }

    #[test]
    fn csv_columns_become_script_variables() {
        let c = parse("\u{feff}target, name ,product\n1001,王芳,宽带\n\"sip:1002@pbx\", 李雷 ,\"电视, 宽带\"\n").unwrap();
        assert_eq!(c.len(), 2);
        assert_eq!(c[0].line, 2);
        assert_eq!(c[1].target, "sip:1002@pbx");
        assert_eq!(c[1].vars["name"], "李雷");
        assert_eq!(c[1].vars["product"], "电视, 宽带");
        assert!(!c[0].vars.contains_key("target"));
    }

    #[test]
    fn bad_csv_names_the_line_and_the_fix() {
        let msg = |text: &str| parse(text).unwrap_err().to_string();
        let m = msg("phone,name\n1001,王芳\n");
        assert!(
            m.contains("line 1") && m.contains("`target`") && m.contains("target,name"),
            "{m}"
        );
        let m = msg("target,name\n1001,王芳\n1002,李雷,多余\n");
        assert!(
            m.contains("line 3") && m.contains("3 fields") && m.contains("quote"),
            "{m}"
        );
        let m = msg("target,name\n1001,王芳\n,李雷\n");
        assert!(m.contains("line 3") && m.contains("empty"), "{m}");
        let m = msg("target,name,name\n1001,a,b\n");
        assert!(m.contains("twice"), "{m}");
        let m = msg("target,name\n");
        assert!(m.contains("no callee rows"), "{m}");
        let err = parse_callees(b"target\n10\xff01\n", Path::new("x.csv")).unwrap_err();
        assert!(err.to_string().contains("UTF-8"), "{err}");
    }

    #[test]
    fn targets_match_the_do_not_call_list_in_any_spelling() {
        assert_eq!(normalize_target("sip:1005@127.0.0.1:5060"), "1005");
        assert_eq!(normalize_target("138-0013 8000"), "13800138000");
        assert_eq!(
            parse_do_not_call("# blocked\n1005\n\n sip:1003@pbx  # asked twice\n"),
            vec!["1005", "1003"]
        );
        let mut p = planner("target\n1001\nsip:1005@pbx\n", 5, &["1005"]);
        let steps = p.next(t("2026-11-25T10:00:00+08:00"), &HashSet::new(), 0);
        assert_eq!(steps, vec![Step::Skip(1), Step::Dial(0)]);
        assert_eq!(p.row(1).status, RowStatus::Skipped);
        assert_eq!(p.row(1).attempts, 0);
    }

    #[test]
    fn concurrency_and_one_call_per_target() {
        let mut p = planner("target\n1001\n1001\n1002\n1003\n", 2, &[]);
        let now = t("2026-11-25T10:00:00+08:00");
        // Row 1 has the same target as row 0, which is in a call.
        assert_eq!(
            p.next(now, &HashSet::new(), 0),
            vec![Step::Dial(0), Step::Dial(2)]
        );
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![]);
        p.finished(0, true, "completed", now);
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![Step::Dial(1)]);
        p.finished(1, true, "completed", now);
        // A callback to 1003 is in progress and takes a slot.
        let busy = HashSet::from(["1003".to_string()]);
        assert_eq!(p.next(now, &busy, 1), vec![]);
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![Step::Dial(3)]);
    }

    #[test]
    fn busy_and_no_answer_retry_with_back_off_then_give_up() {
        let mut p = planner("target\n1002\n1004\n", 5, &[]);
        let t0 = t("2026-11-25T10:00:00+08:00");
        assert_eq!(p.next(t0, &HashSet::new(), 0).len(), 2);
        let r = p.finished(0, false, "busy", t0).clone();
        assert_eq!(r.status, RowStatus::Pending);
        assert_eq!(r.next_at.as_deref(), Some("2026-11-25T10:00:10+08:00"));
        // Not found is final: retrying would not help.
        assert_eq!(
            p.finished(1, false, "not_found", t0).status,
            RowStatus::Done
        );
        assert_eq!(
            p.next(t("2026-11-25T10:00:09+08:00"), &HashSet::new(), 0),
            vec![]
        );
        let t1 = t("2026-11-25T10:00:10+08:00");
        assert_eq!(p.next(t1, &HashSet::new(), 0), vec![Step::Dial(0)]);
        let r = p.finished(0, false, "no_answer", t1).clone();
        assert_eq!(r.attempts, 2);
        assert_eq!(r.next_at.as_deref(), Some("2026-11-25T10:01:10+08:00"));
        let t2 = t("2026-11-25T10:01:10+08:00");
        assert_eq!(p.next(t2, &HashSet::new(), 0), vec![Step::Dial(0)]);
        let r = p.finished(0, false, "busy", t2).clone();
        assert_eq!((r.status, r.attempts), (RowStatus::Done, 3));
        assert_eq!(r.outcome.as_deref(), Some("busy"));
        assert!(p.is_done());
    }

    #[test]
    fn an_answered_call_is_final_and_do_not_call_requests_stick() {
        let mut p = planner("target,name\n1001,甲\n1001,乙\n", 5, &[]);
        let now = t("2026-11-25T10:00:00+08:00");
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![Step::Dial(0)]);
        let r = p.finished(0, true, "do_not_call", now).clone();
        assert_eq!(r.status, RowStatus::Done);
        // The same person on another row is not called again.
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![Step::Skip(1)]);
        assert!(p.is_done());
    }

    #[test]
    fn a_rerun_resumes_finished_rows_and_restarts_edited_ones() {
        let callees = parse("target,name\n1001,甲\n1002,乙\n1003,丙\n").unwrap();
        let mut stored = merge_rows(&callees, &[]);
        stored[0].status = RowStatus::Done;
        stored[0].attempts = 1;
        stored[0].outcome = Some("completed".into());
        stored[1].attempts = 2;
        stored[1].outcome = Some("busy".into());
        stored[1].next_at = Some("2026-11-25T10:05:00+08:00".into());
        stored[2].status = RowStatus::Done;
        let edited = parse("target,name\n1001,甲\n1002,乙\n1003,丁\n").unwrap();
        let merged = merge_rows(&edited, &stored);
        assert_eq!(merged[0], stored[0]);
        assert_eq!(merged[1], stored[1]);
        assert_eq!(merged[2].status, RowStatus::Pending);
        assert_eq!(merged[2].vars["name"], "丁");
    }

    #[test]
    fn rows_another_agent_holds_do_not_take_this_agents_call_slots() {
        // Another agent is in calls on rows 0 and 1: this one dials rows 2 and 3
        // meanwhile, instead of failing to claim rows 0 and 1 every tick.
        let mut p = planner("target\n1001\n1002\n1003\n1004\n", 2, &[]);
        let now = t("2026-11-25T10:00:00+08:00");
        assert_eq!(
            p.next(now, &HashSet::new(), 0),
            vec![Step::Dial(0), Step::Dial(1)]
        );
        let mut elsewhere = p.rows().to_vec();
        for i in [0, 1] {
            p.not_claimed(i, Some(&elsewhere[i]));
        }
        assert_eq!(
            p.next(now, &HashSet::new(), 0),
            vec![Step::Dial(2), Step::Dial(3)]
        );
        p.finished(2, false, "not_found", now);
        p.finished(3, false, "not_found", now);
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![], "held until a sync");
        // After a sync they are tried again (their agent may have died); one
        // finished there meanwhile.
        elsewhere[1].status = RowStatus::Done;
        elsewhere[2] = p.row(2).clone();
        elsewhere[3] = p.row(3).clone();
        p.sync(&elsewhere);
        assert_eq!(p.next(now, &HashSet::new(), 0), vec![Step::Dial(0)]);
    }

    #[test]
    fn a_row_answered_on_a_dead_agent_is_not_dialled_again_before_its_call_is_closed() {
        use crate::store::{TurnLine, TurnWrite};
        let mut store = Store::in_memory().unwrap();
        let campaign = store.open_campaign("/tmp/rows.csv", "t0").unwrap();
        let rows = merge_rows(&parse("target,name\n1001,王芳\n").unwrap(), &[]);
        store.save_campaign_row(campaign, &rows[0]).unwrap();
        let policy = RetryPolicy {
            max_attempts: 1,
            delays: vec![],
        };
        let now = t("2026-11-25T10:00:00+08:00");
        // Agent a claims and dials the row, the callee answers (the opening line
        // is written), and a dies with the call open.
        let mut a = Planner::new(rows.clone(), 2, policy.clone(), HashSet::new());
        assert_eq!(a.next(now, &HashSet::new(), 0), vec![Step::Dial(0)]);
        assert!(matches!(
            claim(&mut store, campaign, "a", &mut a, 0),
            Claim::Dial
        ));
        store.set_agent("a");
        let call = store
            .start_call("s.md", "outbound", Some("1001"), &rows[0].vars, "t1")
            .unwrap();
        let opening = TurnWrite {
            at: "t1".into(),
            lines: vec![TurnLine {
                speaker: "agent".into(),
                text: "王芳您好".into(),
                ..TurnLine::default()
            }],
            ..TurnWrite::default()
        };
        store.write_turn(call, &opening).unwrap();
        a.placed(0, Some(call));
        store.save_campaign_row(campaign, a.row(0)).unwrap();
        // Agent b: a's claim holds.
        let stored = store.campaign_rows(campaign).unwrap();
        let mut b = Planner::new(stored, 2, policy, HashSet::new());
        assert_eq!(b.next(now, &HashSet::new(), 0), vec![Step::Dial(0)]);
        assert!(matches!(
            claim(&mut store, campaign, "b", &mut b, 0),
            Claim::Taken
        ));
        // a's claim lapses (its last renewal made it end now) before any live agent
        // closed its call: the callee was reached, the row is not dialled again.
        assert!(store.claim_campaign_row(campaign, 2, 1, "a", 0).unwrap());
        std::thread::sleep(Duration::from_millis(20));
        b.sync(&store.campaign_rows(campaign).unwrap());
        assert_eq!(b.next(now, &HashSet::new(), 0), vec![Step::Dial(0)]);
        match claim(&mut store, campaign, "b", &mut b, 0) {
            Claim::AnsweredBeforeDeath(id) => assert_eq!(id, call),
            Claim::Dial => panic!("the answered row was to be dialled again"),
            Claim::Taken => panic!("a's lapsed claim still held the row"),
        }
        assert_eq!(b.row(0).attempts, 1, "no attempt counted");
        assert!(store.show(call).unwrap().call.ended_at.is_none());
    }

    #[test]
    fn the_summary_lists_rows_and_totals() {
        let mut p = planner("target\n1001\n1002\n1005\n", 5, &["1005"]);
        let now = t("2026-11-25T10:00:00+08:00");
        p.next(now, &HashSet::new(), 0);
        p.finished(0, true, "completed", now);
        p.finished(1, false, "not_found", now);
        let s = Summary {
            source: "callees.csv".into(),
            rows: p.rows().to_vec(),
        };
        let text = s.to_string();
        assert!(
            text.contains("1001") && text.contains("completed"),
            "{text}"
        );
        assert!(text.contains("skipped (do-not-call)"), "{text}");
        assert!(text.contains("totals: 3 rows, 2 calls placed"), "{text}");
        assert_eq!(s.totals()["not_found"], 1);
    }
}

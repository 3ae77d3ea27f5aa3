//! Conversation evaluation: scripted caller turns with the expectations a careful
//! human agent would meet, run through [`Conversation`] in text mode.
//!
//! A `.conv` file names its script and holds conversations:
//!
//! ```text
//! script: water-purifier-hotline.md        (relative to the file, or embedded:inbound)
//! vars: 姓名=王芳, 尾号=1234               (optional, for every conversation below)
//!
//! == fault first, then every field | inbound_flow
//! > 净水器漏水了                            (the caller)
//! ? says ~ 编号|型号                        (the agent's reply contains one of these)
//! ? not-says ~ 没法                         (… contains none of these)
//! ? faq 3                                   (… answers Q&A entry 3, 1-based)
//! ? no-faq                                  (… gives no Q&A answer and no "I don't know")
//! ? holding                                 (… says it cannot answer and notes the question)
//! ? transfer                                (… hands over to a person, or books a person's callback)
//! = outcome completed                       (at the end; `open` = the call goes on)
//! = field ~ QS2024A0567                     (some recorded field holds this value)
//! = no-field ~ 502                          (no field holds this any more)
//! = dnc no                                  (do-not-call recorded or not)
//! = callback ~ 2026-12-08T10:00             (the callback time)
//! ```
//!
//! The clock is fixed (Monday 2026-12-07 10:00 +08:00) so relative times are stable.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use chrono::{DateTime, FixedOffset};

use super::engine::{Action, Conversation, Outcome, TurnResult};
use super::script::Script;
use super::DialogueError;

/// The `.conv` files of `dir`, sorted by name.
pub fn conv_files(dir: &Path) -> Result<Vec<PathBuf>, EvalError> {
    let read = |source| EvalError::Read {
        path: dir.display().to_string(),
        source,
    };
    let mut files = Vec::new();
    for e in std::fs::read_dir(dir).map_err(read)? {
        let p = e.map_err(read)?.path();
        if p.extension().is_some_and(|x| x == "conv") {
            files.push(p);
        }
    }
    files.sort();
    Ok(files)
}

/// The evaluation clock: Monday 2026-12-07 10:00 in China.
pub fn eval_now() -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339("2026-12-07T10:00:00+08:00").expect("valid constant time")
}

#[derive(Debug, Clone, PartialEq)]
enum TurnCheck {
    Says(Vec<String>),
    NotSays(Vec<String>),
    Faq(usize),
    NoFaq,
    Holding,
    Transfer,
}

#[derive(Debug, Clone, PartialEq)]
enum EndCheck {
    Outcome(Option<Outcome>),
    Field(String),
    NoField(String),
    Dnc(bool),
    Callback(String),
}

#[derive(Debug, Clone)]
struct Turn {
    caller: String,
    checks: Vec<(usize, TurnCheck)>,
}

/// One evaluated conversation.
#[derive(Debug, Clone)]
pub struct Case {
    pub name: String,
    pub kind: String,
    pub line: usize,
    vars: BTreeMap<String, String>,
    turns: Vec<Turn>,
    end: Vec<(usize, EndCheck)>,
}

/// A parsed `.conv` file.
#[derive(Debug, Clone)]
pub struct Suite {
    pub path: PathBuf,
    pub script: Script,
    pub cases: Vec<Case>,
}

/// The result of one conversation.
#[derive(Debug, Clone)]
pub struct CaseResult {
    pub name: String,
    pub kind: String,
    pub passed: bool,
    /// What went wrong, one line per failed check.
    pub failures: Vec<String>,
    /// The transcript, for reading failures.
    pub transcript: Vec<String>,
}

/// Errors in a `.conv` file.
#[derive(Debug, thiserror::Error)]
pub enum EvalError {
    #[error("{path}, line {line}: {what}")]
    Syntax {
        path: String,
        line: usize,
        what: String,
    },
    #[error("{0}")]
    Dialogue(#[from] DialogueError),
    #[error("cannot read {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
}

fn alternatives(s: &str) -> Vec<String> {
    s.split('|')
        .map(|x| x.trim().to_string())
        .filter(|x| !x.is_empty())
        .collect()
}

fn after_tilde(s: &str) -> Option<&str> {
    s.split_once('~').map(|(_, v)| v.trim())
}

fn parse_vars(s: &str) -> BTreeMap<String, String> {
    s.split([',', '，'])
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect()
}

impl Suite {
    /// Loads a `.conv` file and the script it names.
    pub fn load(path: &Path) -> Result<Self, EvalError> {
        let text = std::fs::read_to_string(path).map_err(|source| EvalError::Read {
            path: path.display().to_string(),
            source,
        })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        Self::parse(&text, path, dir)
    }

    fn parse(text: &str, path: &Path, dir: &Path) -> Result<Self, EvalError> {
        let err = |line: usize, what: &str| EvalError::Syntax {
            path: path.display().to_string(),
            line,
            what: what.to_string(),
        };
        let mut script: Option<Script> = None;
        let mut vars = BTreeMap::new();
        let mut cases: Vec<Case> = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let l = raw.trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            if let Some(s) = l.strip_prefix("script:") {
                let s = s.trim();
                script = Some(match s {
                    "embedded:inbound" => Script::parse(super::demo::INBOUND, "embedded:inbound")?,
                    "embedded:outbound" => {
                        Script::parse(super::demo::OUTBOUND, "embedded:outbound")?
                    }
                    _ => Script::load(&dir.join(s))?,
                });
            } else if let Some(v) = l.strip_prefix("vars:") {
                if let Some(c) = cases.last_mut() {
                    c.vars.extend(parse_vars(v));
                } else {
                    vars.extend(parse_vars(v));
                }
            } else if let Some(h) = l.strip_prefix("==") {
                let (name, kind) = h
                    .split_once('|')
                    .ok_or_else(|| err(n, "a conversation header is \"== name | kind\""))?;
                cases.push(Case {
                    name: name.trim().to_string(),
                    kind: kind.trim().to_string(),
                    line: n,
                    vars: vars.clone(),
                    turns: Vec::new(),
                    end: Vec::new(),
                });
            } else if let Some(u) = l.strip_prefix('>') {
                let c = cases
                    .last_mut()
                    .ok_or_else(|| err(n, "a caller line before any \"== name | kind\""))?;
                c.turns.push(Turn {
                    caller: u.trim().to_string(),
                    checks: Vec::new(),
                });
            } else if let Some(q) = l.strip_prefix('?') {
                let q = q.trim();
                let check = if q.starts_with("not-says") {
                    TurnCheck::NotSays(alternatives(
                        after_tilde(q).ok_or_else(|| err(n, "not-says ~ TEXT"))?,
                    ))
                } else if q.starts_with("says") {
                    TurnCheck::Says(alternatives(
                        after_tilde(q).ok_or_else(|| err(n, "says ~ TEXT"))?,
                    ))
                } else if q == "no-faq" {
                    TurnCheck::NoFaq
                } else if q == "holding" {
                    TurnCheck::Holding
                } else if q == "transfer" {
                    TurnCheck::Transfer
                } else if let Some(k) = q.strip_prefix("faq") {
                    TurnCheck::Faq(
                        k.trim()
                            .parse()
                            .map_err(|_| err(n, "faq N (1-based Q&A entry)"))?,
                    )
                } else {
                    return Err(err(n, &format!("unknown turn check \"{q}\"")));
                };
                let t = cases
                    .last_mut()
                    .and_then(|c| c.turns.last_mut())
                    .ok_or_else(|| err(n, "a turn check before any caller line"))?;
                t.checks.push((n, check));
            } else if let Some(e) = l.strip_prefix('=') {
                let e = e.trim();
                let check = if let Some(o) = e.strip_prefix("outcome") {
                    let o = o.trim();
                    if o == "open" {
                        EndCheck::Outcome(None)
                    } else {
                        EndCheck::Outcome(Some(
                            Outcome::parse(o).ok_or_else(|| err(n, "unknown outcome"))?,
                        ))
                    }
                } else if e.starts_with("no-field") {
                    EndCheck::NoField(
                        after_tilde(e)
                            .ok_or_else(|| err(n, "no-field ~ VALUE"))?
                            .to_string(),
                    )
                } else if e.starts_with("field") {
                    EndCheck::Field(
                        after_tilde(e)
                            .ok_or_else(|| err(n, "field ~ VALUE"))?
                            .to_string(),
                    )
                } else if let Some(d) = e.strip_prefix("dnc") {
                    EndCheck::Dnc(d.trim() == "yes")
                } else if e.starts_with("callback") {
                    EndCheck::Callback(
                        after_tilde(e)
                            .ok_or_else(|| err(n, "callback ~ TIME"))?
                            .to_string(),
                    )
                } else {
                    return Err(err(n, &format!("unknown end check \"{e}\"")));
                };
                cases
                    .last_mut()
                    .ok_or_else(|| err(n, "an end check before any conversation"))?
                    .end
                    .push((n, check));
            } else {
                return Err(err(n, "expected script:, vars:, ==, >, ? or ="));
            }
        }
        let script = script.ok_or_else(|| err(1, "no \"script:\" line"))?;
        Ok(Self {
            path: path.to_path_buf(),
            script,
            cases,
        })
    }

    /// Runs every conversation.
    pub fn run(&self) -> Result<Vec<CaseResult>, EvalError> {
        self.cases.iter().map(|c| self.run_case(c)).collect()
    }

    /// Every caller utterance of the file, in order.
    pub fn caller_turns(&self) -> impl Iterator<Item = &str> {
        self.cases
            .iter()
            .flat_map(|c| c.turns.iter().map(|t| t.caller.as_str()))
    }

    /// Runs every conversation without checking it and returns how long each caller
    /// turn took the engine, in microseconds (the turn-handling bench).
    pub fn turn_times_us(&self) -> Result<Vec<f64>, EvalError> {
        let mut times = Vec::new();
        for case in &self.cases {
            let now = eval_now();
            let mut conv = Conversation::new(&self.script, &case.vars, now)?;
            conv.opening(now);
            for (ti, turn) in case.turns.iter().enumerate() {
                if conv.is_ended() && !conv.listens_after_goodbye() {
                    break;
                }
                let t = now + chrono::Duration::seconds(20 * (ti as i64 + 1));
                let t0 = std::time::Instant::now();
                let r = conv.on_utterance(&turn.caller, 0.9, t);
                times.push(t0.elapsed().as_secs_f64() * 1e6);
                std::hint::black_box(r);
            }
        }
        Ok(times)
    }

    fn run_case(&self, case: &Case) -> Result<CaseResult, EvalError> {
        let now = eval_now();
        let mut conv = Conversation::new(&self.script, &case.vars, now)?;
        let mut transcript = Vec::new();
        let mut failures = Vec::new();
        let open = conv.opening(now);
        for l in open.lines() {
            transcript.push(format!("agent: {l}"));
        }
        for (ti, turn) in case.turns.iter().enumerate() {
            let t = now + chrono::Duration::seconds(20 * (ti as i64 + 1));
            transcript.push(format!("caller: {}", turn.caller));
            // After the goodbye of a completed call the caller may still say one
            // thing before hanging up, as on the phone.
            if conv.is_ended() && !conv.listens_after_goodbye() {
                failures.push(format!(
                    "the call had already ended before \"{}\"",
                    turn.caller
                ));
                break;
            }
            let r = conv.on_utterance(&turn.caller, 0.9, t);
            for l in r.lines() {
                transcript.push(format!("agent: {l}"));
            }
            for (line, check) in &turn.checks {
                if let Some(why) = check_turn(check, &r, &self.script) {
                    failures.push(format!("line {line}: {why}"));
                }
            }
        }
        let fields = conv.fields().clone();
        let values: Vec<String> = fields.values().map(|v| squash(v)).collect();
        // The corrections log keeps old values on purpose (the audit trail).
        let current: Vec<String> = fields
            .iter()
            .filter(|(k, _)| k.as_str() != "corrections")
            .map(|(_, v)| squash(v))
            .collect();
        for (line, check) in &case.end {
            let why = match check {
                EndCheck::Outcome(o) => {
                    let got = conv.outcome();
                    (got != *o).then(|| {
                        format!(
                            "outcome {} expected, got {}",
                            o.map(|x| x.as_str()).unwrap_or("open"),
                            got.map(|x| x.as_str()).unwrap_or("open")
                        )
                    })
                }
                EndCheck::Field(v) => (!values.iter().any(|f| f.contains(&squash(v))))
                    .then(|| format!("no field holds \"{v}\" (fields: {fields:?})")),
                EndCheck::NoField(v) => current
                    .iter()
                    .any(|f| contains_value(f, &squash(v)))
                    .then(|| format!("a field still holds \"{v}\" (fields: {fields:?})")),
                EndCheck::Dnc(want) => {
                    let got = fields.contains_key("do_not_call");
                    (got != *want).then(|| format!("do-not-call {want} expected, got {got}"))
                }
                EndCheck::Callback(v) => {
                    let got = conv.callback_at().map(|t| t.to_rfc3339());
                    (!got.as_deref().is_some_and(|g| g.contains(v.as_str())))
                        .then(|| format!("callback at {v} expected, got {got:?}"))
                }
            };
            if let Some(w) = why {
                failures.push(format!("line {line}: {w}"));
            }
        }
        Ok(CaseResult {
            name: case.name.clone(),
            kind: case.kind.clone(),
            passed: failures.is_empty(),
            failures,
            transcript,
        })
    }
}

/// Field values compared without spaces or case.
fn squash(s: &str) -> String {
    s.chars()
        .filter(|c| !c.is_whitespace())
        .flat_map(char::to_uppercase)
        .collect()
}

/// `needle` appears in `hay` as a value, not as part of a longer number
/// ("502" is in "502室" but not in "1502").
fn contains_value(hay: &str, needle: &str) -> bool {
    let digits = needle.chars().all(|c| c.is_ascii_digit());
    hay.match_indices(needle).any(|(i, m)| {
        if !digits {
            return true;
        }
        let before = hay[..i].chars().next_back();
        let after = hay[i + m.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit()) && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

fn check_turn(check: &TurnCheck, r: &TurnResult, script: &Script) -> Option<String> {
    let said: String = r.lines().collect::<Vec<_>>().join("");
    let noted_open = r
        .actions
        .iter()
        .any(|a| matches!(a, Action::RecordField { key, .. } if key == "open_questions"));
    match check {
        TurnCheck::Says(alts) => (!alts.iter().any(|a| said.contains(a.as_str())))
            .then(|| format!("expected the reply to contain {alts:?}; it said \"{said}\"")),
        TurnCheck::NotSays(alts) => alts
            .iter()
            .find(|a| said.contains(a.as_str()))
            .map(|a| format!("the reply must not contain \"{a}\"; it said \"{said}\"")),
        TurnCheck::Faq(n) => {
            let want = script
                .kb
                .get(n.saturating_sub(1))
                .map(|e| e.answer.as_str());
            match (r.kb, want) {
                (Some((i, _)), _) if i + 1 == *n => None,
                (_, None) => Some(format!("the script has no Q&A entry {n}")),
                (got, Some(_)) => Some(format!(
                    "expected Q&A entry {n}, got {:?}; it said \"{said}\"",
                    got.map(|(i, _)| i + 1)
                )),
            }
        }
        TurnCheck::NoFaq => (r.kb.is_some() || noted_open).then(|| {
            format!("a statement got a Q&A answer or \"I don't know\"; it said \"{said}\"")
        }),
        TurnCheck::Holding => (!noted_open || r.kb.is_some())
            .then(|| format!("expected an honest \"I don't know\"; it said \"{said}\"")),
        TurnCheck::Transfer => (!r.actions.iter().any(|a| {
            matches!(
                a,
                Action::Transfer { .. }
                    | Action::ScheduleCallback {
                        by_person: true,
                        ..
                    }
            )
        }))
        .then(|| format!("expected a transfer to a person; it said \"{said}\"")),
    }
}

/// Per-kind tally of results.
pub fn by_kind(results: &[CaseResult]) -> BTreeMap<String, (usize, usize)> {
    let mut m: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for r in results {
        let e = m.entry(r.kind.clone()).or_default();
        e.1 += 1;
        if r.passed {
            e.0 += 1;
        }
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_runs_a_small_suite() {
        let text = "script: embedded:inbound\n== asks billing | faq\n> 我想查一下这个月的账单怎么查\n? faq 3\n= outcome open\n";
        let s = Suite::parse(text, Path::new("t.conv"), Path::new(".")).unwrap();
        assert_eq!(s.cases.len(), 1);
        let r = s.run().unwrap();
        assert!(r[0].passed, "{:?}", r[0].failures);
    }

    #[test]
    fn syntax_errors_name_the_line() {
        let text = "script: embedded:inbound\n> hello\n";
        let e = Suite::parse(text, Path::new("t.conv"), Path::new(".")).unwrap_err();
        assert!(e.to_string().contains("line 2"), "{e}");
    }

    #[test]
    fn numbers_match_whole() {
        assert!(contains_value("古墩路8号502室", "502"));
        assert!(!contains_value("1502", "502"));
    }
}

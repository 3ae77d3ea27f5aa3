//! Command-line drivers: `check-script`, `chat` (text mode), `simulate` and
//! `records`. Thin edges around the pure engine and the store.

use std::collections::BTreeMap;
use std::io::{BufRead, Write};
use std::path::Path;
use std::time::Instant;

use chrono::{DateTime, FixedOffset, Local};
use serde_json::json;

use super::engine::{Action, Conversation, TurnResult};
use super::script::Script;
use super::sim::{run_simulation, SimReport};
use super::DialogueError;
use crate::store::{Store, StoreTarget, TurnLine, TurnTiming, TurnWrite};

fn now() -> DateTime<FixedOffset> {
    Local::now().fixed_offset()
}

/// RFC 3339 with milliseconds: readable in `records list`, precise enough.
fn stamp(t: DateTime<FixedOffset>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, false)
}

/// Loads a script: a file path, or `embedded:inbound` / `embedded:outbound`.
pub fn load_script(path: &Path) -> Result<Script, DialogueError> {
    match path.to_str() {
        Some("embedded:inbound") => super::demo::default_script(),
        Some("embedded:outbound") => super::demo::outbound_script(),
        _ => Script::load(path),
    }
}

/// `check-script`: prints the structure and warnings; returns the warning count.
pub fn check_script(path: &Path, out: &mut dyn Write) -> Result<usize, DialogueError> {
    let script = load_script(path)?;
    write!(out, "{script}")?;
    Ok(script.warnings.len())
}

fn turn_lines(r: &TurnResult) -> Vec<TurnLine> {
    r.actions
        .iter()
        .filter_map(|a| match a {
            Action::Say {
                text,
                step,
                interruptible,
                ..
            } => Some(TurnLine {
                speaker: "agent".into(),
                text: text.clone(),
                asr_confidence: None,
                step: step.clone(),
                intent: None,
                interruptible: *interruptible,
                interrupted: false,
            }),
            _ => None,
        })
        .collect()
}

fn turn_fields(r: &TurnResult) -> (Vec<(String, String)>, Option<String>) {
    let mut fields = Vec::new();
    let mut cb = None;
    for a in &r.actions {
        match a {
            Action::RecordField { key, value } => fields.push((key.clone(), value.clone())),
            Action::ScheduleCallback { at, .. } => cb = Some(at.to_rfc3339()),
            _ => {}
        }
    }
    (fields, cb)
}

fn print_turn(
    out: &mut dyn Write,
    r: &TurnResult,
    turn: usize,
    json_mode: bool,
) -> std::io::Result<()> {
    for a in &r.actions {
        if let Action::Say {
            text,
            step,
            interruptible,
            fixed,
        } = a
        {
            if json_mode {
                let v = json!({"turn": turn, "step": step, "text": text, "interruptible": interruptible, "fixed": fixed, "intent": r.intent.as_str()});
                writeln!(out, "{v}")?;
            } else {
                writeln!(out, "{text}")?;
            }
        }
    }
    out.flush()
}

/// `chat`: one callee utterance per stdin line (empty = silence), each turn
/// committed to the records database before its reply is printed.
pub fn chat(
    script_path: &Path,
    vars: &[(String, String)],
    json_mode: bool,
    store_path: &Path,
    input: &mut dyn BufRead,
    out: &mut dyn Write,
) -> Result<(), DialogueError> {
    let script = load_script(script_path)?;
    let vars: BTreeMap<String, String> = vars.iter().cloned().collect();
    let start = now();
    let mut conv = Conversation::new(&script, &vars, start)?;
    let mut store = Store::open(store_path)?;
    let call_id = store.start_call(&script.source, "text", None, &vars, &stamp(start))?;

    let first = conv.opening(start);
    let (fields, cb) = turn_fields(&first);
    store.write_turn(
        call_id,
        &TurnWrite {
            at: stamp(start),
            lines: turn_lines(&first),
            fields,
            callback_due: cb,
            timing: TurnTiming::default(),
            steps: conv.step_path().to_vec(),
        },
    )?;
    print_turn(out, &first, 0, json_mode)?;

    let mut turn = 0usize;
    let mut line = String::new();
    while !conv.is_ended() {
        line.clear();
        if input.read_line(&mut line)? == 0 {
            conv.on_hangup(now());
            break;
        }
        turn += 1;
        let heard = line.trim_end_matches(['\n', '\r']).trim().to_string();
        let t0 = now();
        let started = Instant::now();
        let r = if heard.is_empty() {
            conv.on_silence(t0)
        } else {
            conv.on_utterance(&heard, 1.0, t0)
        };
        let chosen = t0.timestamp_millis() + started.elapsed().as_millis() as i64;
        let mut lines = Vec::new();
        lines.push(TurnLine {
            speaker: "callee".into(),
            text: heard.clone(),
            asr_confidence: if heard.is_empty() { None } else { Some(1.0) },
            step: None,
            intent: Some(r.intent.as_str().into()),
            interruptible: true,
            interrupted: false,
        });
        lines.extend(turn_lines(&r));
        let (fields, cb) = turn_fields(&r);
        store.write_turn(
            call_id,
            &TurnWrite {
                at: stamp(t0),
                lines,
                fields,
                callback_due: cb,
                timing: TurnTiming {
                    // Text mode: the line arriving is the end of speech; there
                    // is no endpointer or ASR, so those stay empty.
                    t_speech_end: Some(t0.timestamp_millis()),
                    t_endpoint: None,
                    t_asr_done: None,
                    t_reply_chosen: Some(chosen),
                    t_first_reply_rtp: None,
                },
                steps: conv.step_path().to_vec(),
            },
        )?;
        print_turn(out, &r, turn, json_mode)?;
    }
    let summary = conv.summary();
    let outcome = summary.outcome.map(|o| o.as_str()).unwrap_or("failed");
    store.end_call(call_id, outcome, &stamp(now()))?;
    if json_mode {
        let v = json!({"call_id": call_id, "outcome": outcome, "fields": summary.fields, "callback_at": summary.callback_at, "steps": summary.steps});
        writeln!(out, "{v}")?;
    } else {
        writeln!(out, "--- call record #{call_id} ---")?;
        writeln!(out, "outcome: {outcome}")?;
        if let Some(cb) = &summary.callback_at {
            writeln!(out, "callback_at: {cb}")?;
        }
        for (k, v) in &summary.fields {
            writeln!(out, "field {k}: {v}")?;
        }
        writeln!(out, "steps: {}", summary.steps.join(" → "))?;
    }
    out.flush()?;
    Ok(())
}

/// `simulate`: runs seeded persona calls and prints per-call and overall results.
pub fn simulate(
    script_path: &Path,
    calls: usize,
    seed: u64,
    json_mode: bool,
    out: &mut dyn Write,
) -> Result<SimReport, DialogueError> {
    let script = load_script(script_path)?;
    let report = run_simulation(&script, calls, seed)?;
    if json_mode {
        for c in &report.calls {
            writeln!(out, "{}", serde_json::to_string(c)?)?;
        }
        writeln!(
            out,
            "{}",
            json!({"script": script.source, "calls": report.calls.len(), "reached": report.reached, "success_rate": report.rate(), "kb_questions": report.kb_questions, "kb_correct": report.kb_correct, "max_turn_us": report.max_turn_us, "p99_turn_us": report.percentile_us(99.0), "mean_turn_us": report.mean_turn_us()})
        )?;
    } else {
        for c in &report.calls {
            writeln!(
                out,
                "call {:>4}  persona {:<12} expected {:<18} reached {:<18} {}{}",
                c.index,
                c.persona,
                c.expected.as_str(),
                c.reached.map(|o| o.as_str()).unwrap_or("none"),
                if c.ok { "ok" } else { "MISS" },
                if c.ok {
                    String::new()
                } else {
                    format!("  ({})", c.note)
                }
            )?;
        }
        writeln!(
            out,
            "{}: {}/{} calls reached the expected outcome ({:.1} %); KB answers correct {}/{}; turn handling mean {:.0} µs, p50 {} µs, p99 {} µs, max {} µs",
            script.source,
            report.reached,
            report.calls.len(),
            report.rate() * 100.0,
            report.kb_correct,
            report.kb_questions,
            report.mean_turn_us(),
            report.percentile_us(50.0),
            report.percentile_us(99.0),
            report.max_turn_us
        )?;
    }
    Ok(report)
}

/// `records list`.
pub fn records_list(
    store: &StoreTarget,
    json_mode: bool,
    out: &mut dyn Write,
) -> Result<(), DialogueError> {
    let target = store;
    let store = Store::connect(target)?;
    let rows = store.list(50)?;
    if json_mode {
        writeln!(out, "{}", serde_json::to_string(&rows)?)?;
    } else if rows.is_empty() {
        writeln!(out, "no calls recorded in {}", target.display())?;
    } else {
        for r in rows {
            writeln!(
                out,
                "#{:<5} {}  {:<18} {:>3} lines  {}{}",
                r.id,
                r.started_at,
                r.outcome.as_deref().unwrap_or("(in progress)"),
                r.turns,
                r.script,
                r.callback_at
                    .map(|c| format!("  callback {c}"))
                    .unwrap_or_default()
            )?;
        }
    }
    Ok(())
}

/// `records show ID`.
pub fn records_show(
    store: &StoreTarget,
    id: &str,
    json_mode: bool,
    out: &mut dyn Write,
) -> Result<(), DialogueError> {
    let store = Store::connect(store)?;
    let n: i64 = id
        .trim_start_matches('#')
        .parse()
        .map_err(|_| crate::store::StoreError::NotFound(id.to_string()))?;
    let d = store.show(n)?;
    if json_mode {
        writeln!(out, "{}", serde_json::to_string(&d)?)?;
        return Ok(());
    }
    writeln!(
        out,
        "call #{} · {} · {}",
        d.call.id, d.call.script, d.call.started_at
    )?;
    writeln!(
        out,
        "outcome: {}",
        d.call.outcome.as_deref().unwrap_or("(in progress)")
    )?;
    if let Some(cb) = &d.call.callback_at {
        writeln!(out, "callback: {cb}")?;
    }
    writeln!(out, "steps: {}", d.steps.join(" → "))?;
    if let Some(r) = &d.recording {
        writeln!(out, "recording: {r}")?;
    }
    for (k, v) in &d.fields {
        writeln!(out, "field {k}: {v}")?;
    }
    for t in &d.turns {
        let who = if t.line.speaker == "agent" {
            "agent "
        } else {
            "callee"
        };
        let extra = match (&t.line.step, &t.line.intent) {
            (Some(s), _) if t.line.speaker == "agent" => format!(" [step {s}]"),
            (_, Some(i)) => format!(" [{i}]"),
            _ => String::new(),
        };
        let text = if t.line.text.is_empty() {
            "(silence)"
        } else {
            t.line.text.as_str()
        };
        writeln!(out, "{:>3} {who}{extra}: {text}", t.seq)?;
    }
    Ok(())
}

//! Crash safety: a `tingshuo chat` session killed with SIGKILL mid-call leaves
//! every completed turn in the records database (WAL mode, one transaction per
//! turn, committed before the reply is printed).

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};

use tingshuo::store::Store;

#[test]
fn kill_9_during_chat_keeps_completed_turns() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .args(["chat", "--script", "embedded:outbound", "--json"])
        .env("TINGSHUO_DATA", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tingshuo chat");
    let mut stdin = child.stdin.take().unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let utterances = ["方便你说", "好的", "装宽带要收钱吗", "我们家有老人在家"];
    let mut line = String::new();
    // The opening (turn 0), then each utterance's reply.
    let wait_turn = |out: &mut BufReader<_>, line: &mut String, turn: u64| loop {
        line.clear();
        assert!(out.read_line(line).unwrap() > 0, "chat ended early");
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        if v["turn"].as_u64() == Some(turn) {
            break;
        }
    };
    wait_turn(&mut out, &mut line, 0);
    for (i, u) in utterances.iter().enumerate() {
        writeln!(stdin, "{u}").unwrap();
        stdin.flush().unwrap();
        wait_turn(&mut out, &mut line, i as u64 + 1);
    }
    // SIGKILL: no destructor, no flush, no end-of-call record.
    child.kill().unwrap();
    child.wait().unwrap();

    let store = Store::open(&dir.path().join("records.db")).unwrap();
    let calls = store.list(10).unwrap();
    assert_eq!(calls.len(), 1);
    assert_eq!(calls[0].outcome, None, "the call never ended");
    let d = store.show(calls[0].id).unwrap();
    let heard: Vec<&str> = d
        .turns
        .iter()
        .filter(|t| t.line.speaker == "callee")
        .map(|t| t.line.text.as_str())
        .collect();
    assert_eq!(heard, utterances, "every completed turn is in the database");
    assert!(d.turns.iter().filter(|t| t.line.speaker == "agent").count() > utterances.len());
    assert!(d.fields.contains_key("special_need"));
    assert!(d.turns.iter().any(|t| t.timing.t_reply_chosen.is_some()));
}

#[test]
fn chat_json_final_record_line() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .args(["chat", "--script", "embedded:outbound", "--json"])
        .env("TINGSHUO_DATA", dir.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn tingshuo chat");
    {
        let mut stdin = child.stdin.take().unwrap();
        writeln!(stdin, "我在开会").unwrap();
        writeln!(stdin, "明天下午三点").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let last: serde_json::Value = serde_json::from_str(text.lines().last().unwrap()).unwrap();
    assert_eq!(last["outcome"], "callback_scheduled");
    assert!(last["callback_at"].as_str().is_some());
    assert!(last["fields"].is_object());
    assert_eq!(last["steps"][0], "opening");
    // records list / show read it back.
    let show = Command::new(env!("CARGO_BIN_EXE_tingshuo"))
        .args(["records", "show", &last["call_id"].to_string(), "--json"])
        .env("TINGSHUO_DATA", dir.path())
        .output()
        .unwrap();
    assert!(
        show.status.success(),
        "{}",
        String::from_utf8_lossy(&show.stderr)
    );
    let d: serde_json::Value = serde_json::from_slice(&show.stdout).unwrap();
    assert_eq!(d["outcome"], "callback_scheduled");
    assert_eq!(d["callbacks"][0]["status"], "pending");
}

//! `tingshuo campaign`, black box, over real SIP: six callees through Kamailio
//! against three baresip phones, one that answers, one whose user rejects every
//! call (486 Busy Here) and one that never answers, plus an unregistered
//! extension and one on the do-not-call list. The summary and the store must show
//! the right outcomes and retries, and a second run must resume (dial nothing).

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use support::*;
use tingshuo::store::{RowStatus, Store};

fn write_config(dir: &Path, kam: &Kamailio) -> PathBuf {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/campaign-script.md");
    let config = AgentSetup::new(dir)
        .registrar(kam)
        .rtp_ports(40)
        .toml(&format!(
            "[agent]\nscript = \"{}\"\nring_timeout_s = 3\n\
[agent.campaign]\nconcurrency = 3\nmax_attempts = 2\nretry_delays_s = [2]\ndo_not_call = [\"1009\"]\ndo_not_call_file = \"dnc.txt\"\n",
            script.display()
        ))
        .write()
        .path;
    std::fs::write(
        dir.join("dnc.txt"),
        "# opted out by phone\nsip:1005@127.0.0.1\n",
    )
    .expect("write do-not-call file");
    config
}

/// Runs `tingshuo campaign` to its end; returns (stdout, stderr).
fn run_campaign(csv: &Path, config: &Path, limit: Duration) -> (String, String) {
    let dir = csv.parent().expect("csv dir");
    let n = std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let out_path = dir.join(format!("out-{n}.txt"));
    let err_path = dir.join(format!("err-{n}.txt"));
    let mut child = tingshuo()
        .arg("campaign")
        .arg(csv)
        .arg("--config")
        .arg(config)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("start tingshuo campaign");
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break Some(s);
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let stdout = std::fs::read_to_string(&out_path).unwrap_or_default();
    let stderr = std::fs::read_to_string(&err_path).unwrap_or_default();
    match status {
        None => panic!(
            "the campaign did not finish within {limit:?}; stdout:\n{stdout}\nstderr:\n{stderr}"
        ),
        Some(s) => assert!(
            s.success(),
            "the campaign failed ({s}); stdout:\n{stdout}\nstderr:\n{stderr}"
        ),
    }
    eprintln!(
        "campaign took {:.1} s\n{stdout}\n{stderr}",
        start.elapsed().as_secs_f64()
    );
    (stdout, stderr)
}

/// Rejects every call ringing on `phone` (its user presses "decline": 486).
fn rejecter(phone: Arc<Baresip>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            let calls = phone.ctrl("listcalls", "");
            if calls.contains("sip:") {
                phone.ctrl("hangup", "");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

#[test]
fn a_campaign_dials_retries_skips_and_resumes() {
    let dir = tempfile::tempdir().expect("tempdir");
    let kam = Kamailio::start();
    // The answering phone plays 4 s of silence, then hangs up (its file ends).
    let answers = Baresip::start("1001", kam.port, "auto", &vec![0; 32_000]);
    let busy = Arc::new(Baresip::start(
        "1002",
        kam.port,
        "manual",
        &tone(5.0, 300.0),
    ));
    let _silent = Baresip::start("1003", kam.port, "manual", &tone(5.0, 300.0));
    let stop = Arc::new(AtomicBool::new(false));
    let reject = rejecter(busy.clone(), stop.clone());

    let config = write_config(dir.path(), &kam);
    let csv = dir.path().join("callees.csv");
    std::fs::write(
        &csv,
        "target,name\n1001,王芳\n1002,李雷\n1003,韩梅梅\n1005,赵六\n1001,周七\n1004,吴八\n",
    )
    .expect("write csv");

    let (stdout, stderr) = run_campaign(&csv, &config, Duration::from_secs(240));
    stop.store(true, Ordering::Relaxed);
    let _ = reject.join();
    let context = format!(
        "stdout:\n{stdout}\nstderr:\n{stderr}\nbaresip 1001:\n{}",
        answers.proc.log_text()
    );

    let mut s = Store::open(&dir.path().join("records.db")).expect("open records");
    let source = std::fs::canonicalize(&csv).expect("csv path");
    let campaign = s
        .open_campaign(&source.display().to_string(), "now")
        .expect("campaign");
    let rows = s.campaign_rows(campaign).expect("rows");
    assert_eq!(rows.len(), 6, "{context}");
    let by_line = |line: u64| {
        rows.iter()
            .find(|r| r.line == line)
            .unwrap_or_else(|| panic!("row for line {line}; {context}"))
    };
    let unanswered = ["busy", "no_answer", "failed", "not_found", "declined"];
    for line in [2, 6] {
        let r = by_line(line);
        assert_eq!(r.status, RowStatus::Done, "line {line}: {r:?}\n{context}");
        assert_eq!(
            r.attempts, 1,
            "answered at once, line {line}: {r:?}\n{context}"
        );
        let o = r.outcome.as_deref().unwrap_or("");
        assert!(
            !o.is_empty() && !unanswered.contains(&o),
            "line {line} was answered and the dialogue ran: {r:?}\n{context}"
        );
    }
    let r = by_line(3);
    assert_eq!(
        (r.status, r.attempts, r.outcome.as_deref()),
        (RowStatus::Done, 2, Some("busy")),
        "busy twice, then given up: {r:?}\n{context}"
    );
    let r = by_line(4);
    assert_eq!(
        (r.status, r.attempts, r.outcome.as_deref()),
        (RowStatus::Done, 2, Some("no_answer")),
        "no answer twice, then given up: {r:?}\n{context}"
    );
    let r = by_line(5);
    assert_eq!(
        (r.status, r.attempts),
        (RowStatus::Skipped, 0),
        "1005 is on the do-not-call list: {r:?}\n{context}"
    );
    let r = by_line(7);
    assert_eq!(
        (r.status, r.attempts, r.outcome.as_deref()),
        (RowStatus::Done, 1, Some("not_found")),
        "an unregistered extension is not retried: {r:?}\n{context}"
    );

    // Each placed call has a record with the row's variables; none for 1005.
    let calls = s.list(100).expect("list calls");
    let count = |peer: &str| {
        calls
            .iter()
            .filter(|c| c.peer.as_deref() == Some(peer))
            .count()
    };
    assert_eq!(
        (
            count("1001"),
            count("1002"),
            count("1003"),
            count("1004"),
            count("1005")
        ),
        (2, 2, 2, 1, 0),
        "calls placed per target: {calls:#?}\n{context}"
    );
    let answered = by_line(6).last_call_id.expect("row 6 links its call");
    let detail = s.show(answered).expect("call record");
    assert_eq!(detail.vars["name"], "周七", "{detail:?}");
    assert_eq!(detail.call.direction, "outbound");
    assert!(
        detail
            .turns
            .iter()
            .any(|t| t.line.speaker == "agent" && t.line.text.contains("周七")),
        "the opening line used the row's name: {detail:#?}"
    );
    // Retries wait for the configured delay (2 s) after the previous attempt ended.
    let mut starts: Vec<chrono::DateTime<chrono::FixedOffset>> = calls
        .iter()
        .filter(|c| c.peer.as_deref() == Some("1002"))
        .map(|c| chrono::DateTime::parse_from_rfc3339(&c.started_at).expect("started_at"))
        .collect();
    starts.sort();
    let gap = starts[1] - starts[0];
    assert!(
        gap >= chrono::Duration::milliseconds(1900),
        "busy retry came {gap} after the first attempt"
    );

    // The summary table: one line per row, then totals.
    for needle in [
        "1002",
        "busy",
        "no_answer",
        "skipped (do-not-call)",
        "not_found",
        "totals: 6 rows, 7 calls placed",
    ] {
        assert!(
            stdout.contains(needle),
            "summary lacks {needle:?}:\n{context}"
        );
    }

    // Running the same file again resumes it: everything is finished, nothing is dialled.
    let (again, again_err) = run_campaign(&csv, &config, Duration::from_secs(120));
    assert!(
        again_err.contains("every row is finished")
            && again.contains("totals: 6 rows, 7 calls placed"),
        "second run:\n{again}\n{again_err}"
    );
    assert_eq!(s.list(100).expect("list").len(), calls.len(), "no new call");
    // Said by the first run (which dialled), not by this one: no models were loaded.
    // (This was a 30 s bound on the run's wall time; a loaded machine can take that
    // for a run that loads nothing.)
    assert!(
        stderr.contains("loading speech models"),
        "the first run loaded the models:\n{stderr}"
    );
    assert!(
        !again_err.contains("loading speech models"),
        "a finished campaign loads no models:\n{again_err}"
    );
}

#[test]
fn a_bad_csv_is_refused_with_the_line_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/campaign-script.md");
    let config = dir.path().join("t.toml");
    std::fs::write(
        &config,
        format!(
            "[agent]\nscript = \"{}\"\n[store]\npath = \"{}\"\n",
            script.display(),
            dir.path().join("records.db").display()
        ),
    )
    .expect("write config");
    let refuse = |name: &str, csv: &str| -> String {
        let path = dir.path().join(name);
        std::fs::write(&path, csv).expect("write csv");
        let out = tingshuo()
            .arg("campaign")
            .arg(&path)
            .arg("--config")
            .arg(&config)
            .output()
            .expect("run tingshuo campaign");
        assert!(!out.status.success(), "{name} must be refused");
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let e = refuse("ragged.csv", "target,name\n1001,王芳\n1002,李雷,多余\n");
    assert!(
        e.contains("ragged.csv, line 3") && e.contains("quote"),
        "{e}"
    );
    let e = refuse("nocol.csv", "phone,name\n1001,王芳\n");
    assert!(e.contains("line 1") && e.contains("`target`"), "{e}");
    let e = refuse("novar.csv", "target,city\n1001,杭州\n");
    assert!(e.contains("{{name}}") && e.contains("[agent.vars]"), "{e}");
}

//! Optional digest challenge on inbound INVITEs, black box: `tingshuo serve` in direct
//! mode with `[sip.inbound_auth]` (password from an environment variable), driven by
//! SIPp. An INVITE without credentials gets 401 with a Digest challenge; SIPp answering
//! the challenge with the right password gets its call answered and hangs up cleanly;
//! the wrong password gets 403 (no new challenge). Only the authenticated call leaves a
//! record, and the password never appears in the agent's log.

mod resilience_support;
mod support;

use std::path::Path;
use std::time::Duration;

use resilience_support::*;
use support::*;

const USER: &str = "pbx";
const PASSWORD_ENV: &str = "TINGSHUO_TEST_INBOUND_PASSWORD";
const PASSWORD: &str = "Inb0und-s3cret";

/// Runs one SIPp call of `scenario` (tests/data/sipp/) and returns (success, messages).
fn sipp(dir: &Path, agent_sip: u16, scenario: &str, password: Option<&str>) -> (bool, String) {
    let scenario_path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data/sipp")
        .join(scenario);
    let msgs = dir.join(format!("{scenario}.msgs.log"));
    let mut cmd = support::sipp(format!("127.0.0.1:{agent_sip}"), dir);
    cmd.arg("-sf")
        .arg(&scenario_path)
        .args(["-s", "bot", "-m", "1", "-l", "1"])
        .args(["-timeout", "15s", "-timeout_error"])
        .args(["-trace_msg", "-message_file"])
        .arg(&msgs);
    if let Some(pw) = password {
        cmd.args(["-au", USER, "-ap", pw]);
    }
    let out = cmd.output().expect("sipp runs");
    let text = std::fs::read_to_string(&msgs).unwrap_or_default();
    if !out.status.success() {
        eprintln!(
            "sipp {scenario} exit {:?}\nstdout: {}\nstderr: {}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    (out.status.success(), text)
}

#[test]
fn inbound_invites_are_challenged_and_only_the_right_password_gets_through() {
    require("sipp", "sip-tester");
    let dir = tempfile::tempdir().expect("tempdir");
    let agent = start_agent_with(
        dir.path(),
        None,
        &format!(
            "[sip.inbound_auth]\nrealm = \"hotline\"\nusername = \"{USER}\"\npassword_env = \"{PASSWORD_ENV}\"\n"
        ),
        "",
        &[(PASSWORD_ENV, PASSWORD)],
    );

    // 1. No credentials: 401 with a Digest challenge, and nothing else.
    let (ok, msgs) = sipp(dir.path(), agent.sip_port, "inbound_auth_none.xml", None);
    assert!(
        ok,
        "no credentials → 401 (ACKed):\n{msgs}\nagent log:\n{}",
        agent.proc.log_text()
    );
    assert!(msgs.contains("SIP/2.0 401"), "{msgs}");
    let challenge = msgs
        .lines()
        .find(|l| l.starts_with("WWW-Authenticate:"))
        .unwrap_or_else(|| panic!("the 401 carries WWW-Authenticate:\n{msgs}"));
    for part in [
        "Digest",
        "realm=\"hotline\"",
        "nonce=\"",
        "qop=\"auth\"",
        "algorithm=MD5",
    ] {
        assert!(challenge.contains(part), "{part} in {challenge}");
    }
    assert!(
        !msgs.contains("SIP/2.0 180"),
        "no ringing without credentials"
    );

    // 2. The right password: challenged, answered, hung up by the caller.
    let (ok, msgs) = sipp(
        dir.path(),
        agent.sip_port,
        "inbound_auth_call.xml",
        Some(PASSWORD),
    );
    assert!(
        ok,
        "right credentials → call answered and ended:\n{msgs}\nagent log:\n{}",
        agent.proc.log_text()
    );
    let authorization = msgs
        .lines()
        .find(|l| l.starts_with("Authorization: Digest"))
        .unwrap_or_else(|| panic!("SIPp answered the challenge:\n{msgs}"));
    assert!(
        authorization.contains("qop=auth") && authorization.contains("nc="),
        "the qop=auth path was used: {authorization}"
    );
    assert!(msgs.contains("SIP/2.0 200"), "{msgs}");

    // 3. The wrong password: 403, not another challenge.
    let (ok, msgs) = sipp(
        dir.path(),
        agent.sip_port,
        "inbound_auth_refused.xml",
        Some("not-the-password"),
    );
    assert!(
        ok,
        "wrong password → 403:\n{msgs}\nagent log:\n{}",
        agent.proc.log_text()
    );
    assert!(msgs.contains("SIP/2.0 403"), "{msgs}");
    assert_eq!(msgs.matches("SIP/2.0 401").count(), 1, "one challenge only");

    // Only the authenticated call became a call with a record, and it ended.
    let ended = wait_until(Duration::from_secs(10), || {
        tingshuo::store::Store::open(&agent.db)
            .and_then(|s| s.list(10))
            .map(|l| l.len() == 1 && l[0].ended_at.is_some())
            .unwrap_or(false)
    });
    let log = agent.proc.log_text();
    assert!(ended, "exactly one call recorded and ended; log:\n{log}");
    assert!(log.contains("INVITE authenticated"), "{log}");
    assert!(
        log.contains("INVITE failed authentication") && log.contains("pbx"),
        "the refusal is logged with the user name: {log}"
    );
    assert!(
        !log.contains(PASSWORD) && !log.contains("response="),
        "neither the password nor the digest response is logged: {log}"
    );
}

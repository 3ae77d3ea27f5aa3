//! The CLI contract: subcommand names and flags other tools call, and the errors a
//! user sees for a broken config.

use std::process::Command;

fn tingshuo() -> Command {
    Command::new(env!("CARGO_BIN_EXE_tingshuo"))
}

fn run(args: &[&str]) -> (bool, String, String) {
    let out = tingshuo().args(args).output().expect("run tingshuo");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn help_lists_the_contract() {
    let (ok, stdout, _) = run(&["--help"]);
    assert!(ok);
    for cmd in [
        "models",
        "serve",
        "dial",
        "campaign",
        "say",
        "transcribe",
        "check-script",
        "chat",
        "simulate",
        "records",
        "talk",
    ] {
        assert!(stdout.contains(cmd), "--help lacks {cmd}:\n{stdout}");
    }
}

#[test]
fn subcommand_flags_are_accepted_by_the_parser() {
    // Each invocation must get past argument parsing (exit code 2 is clap's usage error).
    for args in [
        vec!["dial", "--help"],
        vec!["say", "--help"],
        vec!["simulate", "--help"],
        vec!["chat", "--help"],
        vec!["records", "show", "--help"],
        vec!["models", "fetch", "--help"],
    ] {
        let out = tingshuo().args(&args).output().expect("run");
        assert!(out.status.success(), "{args:?} rejected");
    }
    let help = String::from_utf8_lossy(
        &tingshuo()
            .args(["dial", "--help"])
            .output()
            .expect("run")
            .stdout,
    )
    .into_owned();
    assert!(
        help.contains("--var") && help.contains("--config"),
        "{help}"
    );
    let help = String::from_utf8_lossy(
        &tingshuo()
            .args(["say", "--help"])
            .output()
            .expect("run")
            .stdout,
    )
    .into_owned();
    assert!(help.contains("--rate") && help.contains("-o"), "{help}");
}

#[test]
fn say_rejects_an_unsupported_rate() {
    let (ok, _, stderr) = run(&["say", "你好", "-o", "/tmp/x.wav", "--rate", "44100"]);
    assert!(!ok);
    assert!(stderr.contains("8000, 16000, 24000"), "{stderr}");
}

#[test]
fn broken_config_names_the_key_and_the_fix() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.toml");
    std::fs::write(
        &path,
        "[sip]\nlisten = \"127.0.0.1:5090\"\nregistars = [\"x:5060\"]\n",
    )
    .expect("write");
    let (ok, _, stderr) = run(&["serve", "--config", path.to_str().expect("utf8 path")]);
    assert!(!ok, "a broken config must fail");
    assert!(stderr.contains("bad.toml"), "names the file: {stderr}");
    assert!(stderr.contains("registars"), "names the key: {stderr}");
    assert!(
        stderr.contains("sip-config/tingshuo.toml"),
        "points to the fix: {stderr}"
    );
}

#[test]
fn missing_config_file_says_what_to_do() {
    let (ok, _, stderr) = run(&["serve", "--config", "/nonexistent/tingshuo.toml"]);
    assert!(!ok);
    assert!(stderr.contains("/nonexistent/tingshuo.toml"), "{stderr}");
    assert!(stderr.contains("--config"), "{stderr}");
}

#[test]
fn wrong_value_type_is_reported() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("t.toml");
    std::fs::write(&path, "[sip]\nmax_calls = \"many\"\n").expect("write");
    let (ok, _, stderr) = run(&["serve", "--config", path.to_str().expect("utf8 path")]);
    assert!(!ok);
    assert!(stderr.contains("max_calls"), "{stderr}");
}

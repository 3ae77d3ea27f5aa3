//! `[agent.scripts_by_user]`: an inbound call to a mapped user part runs that
//! user's script, any other call the default one. Black box: `tingshuo serve` in
//! direct mode, SIPp's built-in UAC as the caller, the record's script as proof.

mod support;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use support::*;

/// A short inbound script of our own for the mapped extension.
const HOTLINE: &str = "# 青禾物业 · 报修热线（测试）

## 电话接听方

### 角色
青禾物业报修专员小周。

### 核心任务（一句话）
登记业主的报修内容。

### 分步流程和话术（最重要）

1. 登记问题
    - 「请说一下需要维修的地方。」

### 开场白
「您好，这里是青禾物业报修热线，我是小周。」

### 结束条件与结束语

结束条件：
- 问题已经登记

结束语：
- 「好的，维修师傅会尽快联系您，再见。」
";

/// One SIPp call to `user` at the agent: INVITE, 2.5 s of call, BYE.
fn sipp_call(agent_port: u16, user: &str, dir: &Path) -> std::process::Child {
    sipp(format!("127.0.0.1:{agent_port}"), dir)
        .args(["-sn", "uac", "-s", user, "-m", "1", "-d", "2500"])
        .args(["-timeout", "30s"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("sipp runs")
}

#[test]
fn a_call_to_a_mapped_user_runs_that_users_script() {
    let dir = tempfile::tempdir().expect("tempdir");
    let script: PathBuf = dir.path().join("hotline.md");
    std::fs::write(&script, HOTLINE).expect("write script");
    let agent = AgentSetup::new(dir.path())
        .toml(&format!(
            "[agent.scripts_by_user]\n\"4001\" = \"{}\"\n",
            script.display()
        ))
        .start();
    let (sip_port, config) = (agent.sip_port, agent.config.clone());

    let callers = [
        sipp_call(sip_port, "4001", dir.path()),
        sipp_call(sip_port, "bot", dir.path()),
    ];
    for mut c in callers {
        let status = c.wait().expect("sipp exits");
        assert!(
            status.success(),
            "sipp call failed ({status}); agent log:\n{}",
            agent.log_text()
        );
    }
    let both_ended = wait_until(Duration::from_secs(60), || {
        let list = records(&config, &["list"]);
        list.as_array()
            .is_some_and(|calls| calls.len() == 2 && calls.iter().all(|c| !c["ended_at"].is_null()))
    });
    let list = records(&config, &["list"]);
    assert!(
        both_ended,
        "two finished calls expected: {list}\nagent log:\n{}",
        agent.log_text()
    );
    let scripts: Vec<String> = list
        .as_array()
        .expect("array")
        .iter()
        .map(|c| c["script"].as_str().unwrap_or_default().to_string())
        .collect();
    let mapped = script.display().to_string();
    assert_eq!(
        scripts.iter().filter(|s| **s == mapped).count(),
        1,
        "one call ran the mapped script {mapped}: {scripts:?}"
    );
    assert_eq!(
        scripts.iter().filter(|s| **s != mapped).count(),
        1,
        "the other call ran the default script: {scripts:?}"
    );
    // The mapped call's opening is the hotline's own.
    let id = list
        .as_array()
        .and_then(|a| a.iter().find(|c| c["script"] == mapped.as_str()))
        .map(|c| c["id"].to_string())
        .expect("mapped call");
    let detail = records(&config, &["show", &id]).to_string();
    assert!(
        detail.contains("青禾物业报修热线"),
        "the hotline's opening was said: {detail}"
    );
}

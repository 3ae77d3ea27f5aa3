//! SIPp load: 200 calls, 10 at a time (INVITE/ACK/BYE with SDP) against the agent in
//! direct mode. All must complete, without retransmission storms or growing memory.

mod support;

use std::time::Duration;

use support::*;
use tingshuo::sip::{self, CallEvent, Command, LocalMedia, SipEvent};

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|v| v.parse().ok()))
        })
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_200_calls_10_concurrent_all_complete() {
    run_sipp("u1", 200, 10).await;
}

/// The same scenario over TCP (Content-Length framing, responses on the connection).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_over_tcp_all_complete() {
    run_sipp("t1", 200, 10).await;
}

async fn run_sipp(transport: &'static str, calls: u32, concurrent: u32) {
    require("sipp", "sip-tester");
    let _ = tracing_subscriber::fmt()
        .with_env_filter("tingshuo=warn")
        .with_test_writer()
        .try_init();
    let mut cfg = agent_config(&[]);
    cfg.sip.max_calls = 20;
    let agent = sip::start(&cfg).await.expect("agent starts");
    let target = agent.local_addr;
    let (cmds, mut events, task) = agent.into_parts();
    // The "call layer": answer every call at once with a media address.
    let (_m, media) = media_socket();
    let answerer = tokio::spawn(async move {
        let (mut answered, mut ended) = (0u32, 0u32);
        let mut rss = Vec::new();
        while let Some(e) = events.recv().await {
            match e {
                SipEvent::Call(CallEvent::IncomingCall { call_id, .. }) => {
                    let _ = cmds.send(Command::Answer {
                        call_id,
                        media: LocalMedia::new(media),
                    });
                }
                SipEvent::Call(CallEvent::Answered { .. }) => answered += 1,
                SipEvent::Call(CallEvent::Ended { .. }) => {
                    ended += 1;
                    if ended % 50 == 0 {
                        rss.push(rss_kib());
                    }
                    if ended == calls {
                        break;
                    }
                }
                _ => {}
            }
        }
        (answered, ended, rss, cmds)
    });
    let dir = tempfile::tempdir().expect("tmp");
    let d = dir.path().to_path_buf();
    let out = blocking(move || {
        sipp(target, &d)
            .args(["-sn", "uac"])
            .args(["-t", transport, "-s", "bot"])
            .args(["-m", &calls.to_string(), "-l", &concurrent.to_string()])
            .args(["-r", "100", "-d", "200"])
            .args(["-timeout", "60s", "-timeout_error", "-trace_stat", "-stf"])
            .arg(d.join("stat.csv"))
            .args(["-trace_err", "-error_file"])
            .arg(d.join("err.log"))
            .output()
            .expect("sipp runs")
    })
    .await;
    let stat = std::fs::read_to_string(dir.path().join("stat.csv")).unwrap_or_default();
    let errors = std::fs::read_to_string(dir.path().join("err.log")).unwrap_or_default();
    let last = stat.lines().last().unwrap_or("").to_string();
    let header: Vec<&str> = stat.lines().next().unwrap_or("").split(';').collect();
    let vals: Vec<&str> = last.split(';').collect();
    let field = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .and_then(|i| vals.get(i))
            .map(|v| v.to_string())
            .unwrap_or_default()
    };
    eprintln!(
        "sipp ({transport}): exit {:?}, SuccessfulCall(C)={}, FailedCall(C)={}, Retransmissions(C)={}",
        out.status.code(),
        field("SuccessfulCall(C)"),
        field("FailedCall(C)"),
        field("Retransmissions(C)")
    );
    assert!(
        out.status.success(),
        "sipp reported failed calls (exit {:?});\nstdout tail: {}\nerrors: {errors}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout)
            .chars()
            .rev()
            .take(3000)
            .collect::<String>()
            .chars()
            .rev()
            .collect::<String>()
    );
    assert_eq!(field("SuccessfulCall(C)"), calls.to_string());
    let retrans: u64 = field("Retransmissions(C)").parse().unwrap_or(0);
    assert!(
        retrans < 20,
        "retransmission storm: {retrans} retransmissions for 200 calls"
    );
    let (answered, ended, rss, cmds) = tokio::time::timeout(Duration::from_secs(20), answerer)
        .await
        .expect("agent saw every call end")
        .expect("answerer task");
    assert_eq!((answered, ended), (calls, calls));
    eprintln!("test-process RSS (KiB) after 50/100/150/200 calls: {rss:?}");
    if let (Some(first), Some(last)) = (rss.first(), rss.last()) {
        assert!(
            *last < first + 8 * 1024,
            "RSS grew by more than 8 MiB over 150 calls: {rss:?}"
        );
    }
    let _ = cmds.send(Command::Shutdown);
    let _ = task.await;
}

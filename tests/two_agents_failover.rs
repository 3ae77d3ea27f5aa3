//! Two agents behind Kamailio's dispatcher (issue 17; sip-config/kamailio-agents.cfg),
//! black box: two `tingshuo serve` register as `bot`, Kamailio routes calls for `bot`
//! to one live agent (round-robin, OPTIONS probing every second), and a phone (the
//! project's own SIP stack, registered as 1001) calls `bot`.
//!
//! (a) Calls are spread over both agents, each call reaching exactly one of them.
//! (b) One agent is SIGKILLed (the one round-robin would pick next, so the first call
//!     after the kill does meet the dead agent); calls placed every second from then
//!     on must all be answered by the survivor, the first one well within 30 s.
//! (c) Prints how long Kamailio's probing took to mark the dead agent inactive.
//! (d) The agents share one PostgreSQL store: the call the dead agent was carrying
//!     when it was killed is closed `interrupted`, with its turns, by the survivor.
//! (e) The dead agent's config still dials out through the same Kamailio.

mod support;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use support::dispatcher::{Dispatcher, AGENT_SET, PROBE_ONLY_SET};
use support::postgres::{PgCluster, PG_PASSWORD};
use support::*;
use tingshuo::sip::{self, CallEvent, Command, LocalMedia, SipEvent, SipHandle};
use tingshuo::store::{Store, StoreTarget, INTERRUPTED};

/// Where both agents keep their call records: one PostgreSQL database.
fn shared_store(pg: &PgCluster) -> impl Fn(AgentSetup) -> AgentSetup {
    let url = pg.url();
    move |setup| setup.store_url(&url, PG_PASSWORD)
}

fn store_of(pg: &PgCluster) -> Store {
    Store::connect(&StoreTarget::Postgres(format!(
        "postgres://postgres:{PG_PASSWORD}@127.0.0.1:{}/tingshuo",
        pg.port
    )))
    .expect("connect to the shared store")
}

/// Calls placed one after the other before the kill.
const CALLS_BEFORE: usize = 4;
/// Calls placed after the kill, one a second.
const CALLS_AFTER: usize = 6;

/// Which agent (index) answered: the one whose RTP port range holds the answer's
/// media address.
fn answered_by(agents: &[Agent], negotiated: &sip::Negotiated) -> usize {
    let rtp = negotiated
        .remote
        .rtp_addr
        .expect("the agent's answer has an RTP address");
    agents
        .iter()
        .position(|a| (a.rtp_min..=a.rtp_max).contains(&rtp.port()))
        .unwrap_or_else(|| panic!("answer from {rtp}: no agent has that RTP port"))
}

/// The phone dials `bot` through Kamailio; returns the Call-ID.
fn dial_bot(phone: &SipHandle, media: SocketAddr) -> String {
    let call_id = sip::new_call_id();
    phone
        .send(Command::PlaceCall {
            call_id: call_id.clone(),
            target: "bot".into(),
            media: LocalMedia::new(media),
            ring_timeout: Duration::from_secs(20),
        })
        .expect("place call");
    call_id
}

/// How many calls reached an agent: distinct Call-IDs of its log's "incoming call"
/// lines (each call logs it twice, once inside the call's span).
fn incoming_calls(agent: &Agent) -> usize {
    let log = strip_ansi(&agent.log_text());
    let ids: std::collections::HashSet<&str> = log
        .lines()
        .filter(|l| l.contains("incoming call"))
        .filter_map(|l| l.split("call_id=").nth(1))
        .filter_map(|rest| rest.split(|c: char| c == '}' || c.is_whitespace()).next())
        .collect();
    ids.len()
}

/// One call placed after the kill.
struct Attempt {
    call_id: String,
    placed: Duration,
    answered: Option<(Duration, usize)>,
    ended: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reach_a_live_agent_after_the_other_is_killed() {
    let t0 = Instant::now();
    let kam = blocking(Dispatcher::start).await;
    let pg = blocking(PgCluster::start).await;
    let with_store = shared_store(&pg);
    let setup = with_store(AgentSetup::temp()).registrar_behind_dispatcher(&kam.kam);
    let setup_b = with_store(AgentSetup::temp()).registrar_behind_dispatcher(&kam.kam);
    // Model loading dominates start-up: both agents load theirs at the same time.
    let agents: Vec<Agent> = blocking(move || {
        let b = std::thread::spawn(move || setup_b.start());
        let a = setup.start();
        vec![a, b.join().expect("agent B starts")]
    })
    .await;
    let addrs: Vec<SocketAddr> = agents.iter().map(Agent::sip_addr).collect();
    let k = std::sync::Arc::new(kam);
    {
        let k = k.clone();
        blocking(move || k.set_agents(&addrs)).await;
    }
    eprintln!(
        "two agents ready behind the dispatcher after {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let mut phone = registered_ua_as(&k.kam, "1001").await;
    let (_media_sock, media) = media_socket();

    // (a) One call after the other: round-robin alternates, each call reaches one agent.
    let mut per_agent = [0usize; 2];
    let mut last = 0;
    for i in 0..CALLS_BEFORE {
        let call = dial_bot(&phone, media);
        let placed = Instant::now();
        let ev = wait_event(&mut phone, Duration::from_secs(20), "Answered", |e| {
            matches!(e, SipEvent::Call(CallEvent::Answered { call_id, .. }) if *call_id == call)
                || matches!(e, SipEvent::Call(CallEvent::Ended { call_id, .. }) if *call_id == call)
        })
        .await;
        let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = ev else {
            panic!(
                "call {i} to bot was not answered: {ev:?}\nKamailio log:\n{}",
                k.log_text()
            );
        };
        last = answered_by(&agents, &negotiated);
        per_agent[last] += 1;
        eprintln!(
            "call {i}: answered by agent {} in {:.0} ms",
            ["A", "B"][last],
            placed.elapsed().as_secs_f64() * 1000.0
        );
        phone
            .send(Command::Hangup {
                call_id: call.clone(),
            })
            .expect("hang up");
        call_ended(&mut phone, &call, Duration::from_secs(10)).await;
    }
    eprintln!(
        "before the kill: agent A took {} calls, agent B {}",
        per_agent[0], per_agent[1]
    );
    assert!(
        per_agent.iter().all(|&n| n > 0),
        "calls are spread over both agents: {per_agent:?}"
    );
    // No parallel forking: every call reached exactly one agent.
    let reached: Vec<usize> = agents.iter().map(incoming_calls).collect();
    assert_eq!(
        reached.iter().sum::<usize>(),
        CALLS_BEFORE,
        "INVITEs that reached the agents (A, B): {reached:?}"
    );

    // (b) Kill the agent round-robin picks next, while it carries a call: one call
    // to it stays up, one to the survivor is hung up, so the victim is next again.
    let victim = 1 - last;
    let survivor = last;
    let mut carried = String::new();
    for (to, keep) in [(victim, true), (survivor, false)] {
        let call = dial_bot(&phone, media);
        let ev = wait_event(&mut phone, Duration::from_secs(20), "Answered", |e| {
            matches!(e, SipEvent::Call(CallEvent::Answered { call_id, .. }) if *call_id == call)
                || matches!(e, SipEvent::Call(CallEvent::Ended { call_id, .. }) if *call_id == call)
        })
        .await;
        let SipEvent::Call(CallEvent::Answered { negotiated, .. }) = ev else {
            panic!("call to bot was not answered: {ev:?}");
        };
        assert_eq!(answered_by(&agents, &negotiated), to, "round-robin order");
        if keep {
            carried = call;
        } else {
            phone
                .send(Command::Hangup {
                    call_id: call.clone(),
                })
                .expect("hang up");
            call_ended(&mut phone, &call, Duration::from_secs(10)).await;
        }
    }
    // The carried call has its record and its opening line in the shared store.
    let victim_agent = format!(":{}", agents[victim].sip_port);
    let pg = std::sync::Arc::new(pg);
    let open_call = {
        let pg = pg.clone();
        let victim_agent = victim_agent.clone();
        blocking(move || {
            let mut found = None;
            wait_until(Duration::from_secs(20), || {
                found = store_of(&pg).list(20).ok().and_then(|calls| {
                    calls.into_iter().find(|c| {
                        c.ended_at.is_none()
                            && c.turns > 0
                            && c.agent
                                .as_deref()
                                .is_some_and(|a| a.ends_with(&victim_agent))
                    })
                });
                found.is_some()
            });
            found.map(|c| c.id)
        })
        .await
        .expect("the victim's call in progress is in the shared store")
    };
    let mut agents = agents;
    let victim_addr = agents[victim].sip_addr();
    let watcher = {
        let k = k.clone();
        std::thread::spawn(move || watch_states(&k, victim_addr, Duration::from_secs(30)))
    };
    let killed = Instant::now();
    agents[victim].proc.child.kill().expect("SIGKILL the agent");
    let _ = agents[victim].proc.child.wait();
    eprintln!(
        "SIGKILLed agent {} ({victim_addr}); calling bot every second",
        ["A", "B"][victim]
    );
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut next_dial = killed;
    let deadline = killed + Duration::from_secs(40);
    while attempts.len() < CALLS_AFTER || attempts.iter().any(|a| !a.ended) {
        if attempts.len() < CALLS_AFTER && Instant::now() >= next_dial {
            attempts.push(Attempt {
                call_id: dial_bot(&phone, media),
                placed: killed.elapsed(),
                answered: None,
                ended: false,
            });
            next_dial += Duration::from_secs(1);
        }
        assert!(
            Instant::now() < deadline,
            "calls after the kill did not all end within 40 s; Kamailio log:\n{}",
            k.log_text()
        );
        let wake = if attempts.len() < CALLS_AFTER {
            next_dial.min(deadline)
        } else {
            deadline
        };
        let Ok(ev) = tokio::time::timeout_at(wake.into(), phone.next_event()).await else {
            continue;
        };
        let ev = ev.expect("the phone's SIP stack runs");
        match ev {
            SipEvent::Call(CallEvent::Answered {
                call_id,
                negotiated,
                ..
            }) => {
                let by = answered_by(&agents, &negotiated);
                if let Some(a) = attempts.iter_mut().find(|a| a.call_id == call_id) {
                    a.answered = Some((killed.elapsed(), by));
                }
                phone.send(Command::Hangup { call_id }).expect("hang up");
            }
            SipEvent::Call(CallEvent::Ended { call_id, reason }) => {
                if let Some(a) = attempts.iter_mut().find(|a| a.call_id == call_id) {
                    a.ended = true;
                    if a.answered.is_none() {
                        eprintln!(
                            "call placed at +{:.1} s failed: {reason:?}",
                            a.placed.as_secs_f64()
                        );
                    }
                }
            }
            _ => {}
        }
    }
    for (i, a) in attempts.iter().enumerate() {
        match a.answered {
            Some((at, by)) => eprintln!(
                "after the kill, call {i} placed at +{:.1} s: answered by agent {} at +{:.2} s (set-up {:.2} s)",
                a.placed.as_secs_f64(),
                ["A", "B"][by],
                at.as_secs_f64(),
                (at - a.placed).as_secs_f64()
            ),
            None => eprintln!(
                "after the kill, call {i} placed at +{:.1} s: NOT answered",
                a.placed.as_secs_f64()
            ),
        }
    }
    // The call placed at the kill met the dead agent first (round-robin's next pick):
    // the time until it is answered is the switch-over a caller lives through.
    let switchover = attempts[0].answered.map(|(at, _)| at).unwrap_or_else(|| {
        panic!(
            "the call placed at the kill was not answered; Kamailio log:\n{}",
            k.log_text()
        )
    });
    let first = attempts
        .iter()
        .filter_map(|a| a.answered.map(|(at, _)| at))
        .min()
        .unwrap_or(switchover);
    let slowest = attempts
        .iter()
        .filter_map(|a| a.answered.map(|(at, _)| at - a.placed))
        .max()
        .unwrap_or_default();
    eprintln!(
        "switchover: the call placed at the SIGKILL was answered by the survivor {:.2} s after it; \
         the first answer by the survivor came {:.2} s after it; slowest set-up after the kill {:.2} s",
        switchover.as_secs_f64(),
        first.as_secs_f64(),
        slowest.as_secs_f64()
    );
    let lost: Vec<usize> = (0..attempts.len())
        .filter(|&i| attempts[i].answered.map(|(_, by)| by) != Some(survivor))
        .collect();
    assert!(
        lost.is_empty(),
        "calls after the kill not answered by the survivor: {lost:?}\nKamailio log:\n{}",
        k.log_text()
    );
    assert!(
        switchover < Duration::from_secs(30) && slowest < Duration::from_secs(30),
        "switchover {switchover:?}, slowest set-up {slowest:?}"
    );
    assert_eq!(
        incoming_calls(&agents[survivor]),
        per_agent[survivor] + 1 + CALLS_AFTER,
        "every call after the kill reached the survivor once"
    );

    // (c) How long the dead agent stayed in rotation.
    let states = watcher.join().expect("state watcher");
    let fmt = |d: Option<Duration>| {
        d.map_or("never (within 30 s)".to_string(), |d| {
            format!("{:.2} s", d.as_secs_f64())
        })
    };
    let log = k.log_text();
    let retried = log.matches("retrying INVITE").count();
    eprintln!(
        "Kamailio: probing alone (set {PROBE_ONLY_SET}) saw the first failed probe after {} and marked the dead agent inactive after {}; \
         in the calls' set {AGENT_SET} it was inactive after {} (a call's timeout in failure_route or the probes, whichever came first); \
         {retried} INVITE(s) were re-sent to the survivor from failure_route",
        fmt(states.probe_trying.map(|t| t - killed)),
        fmt(states.probe_inactive.map(|t| t - killed)),
        fmt(states.agent_set_inactive.map(|t| t - killed)),
    );
    let probe_down = states
        .probe_inactive
        .map(|t| t - killed)
        .expect("Kamailio's probes marked the dead agent inactive within 30 s");
    assert!(
        probe_down < Duration::from_secs(30),
        "probing took {probe_down:?}"
    );
    assert!(
        log.contains(&format!(
            "dispatcher: agent {} down",
            support::dispatcher::agent_uri(victim_addr)
        )),
        "the dst-down event route logged the dead agent"
    );

    // (d) The survivor closes the dead agent's call, keeping its turns.
    let closed = {
        let pg = pg.clone();
        blocking(move || {
            let mut detail = None;
            wait_until(Duration::from_secs(60), || {
                detail = store_of(&pg)
                    .show(open_call)
                    .ok()
                    .filter(|d| d.call.ended_at.is_some());
                detail.is_some()
            });
            detail
        })
        .await
        .expect("the survivor closed the dead agent's call within 60 s")
    };
    eprintln!(
        "the dead agent's call #{open_call} was closed `{}` by the survivor {:.1} s after the kill, with {} turn line(s)",
        closed.call.outcome.as_deref().unwrap_or("?"),
        killed.elapsed().as_secs_f64(),
        closed.turns.len()
    );
    assert_eq!(closed.call.outcome.as_deref(), Some(INTERRUPTED));
    assert!(!closed.turns.is_empty(), "its turns are kept");
    let _ = phone.send(Command::Hangup { call_id: carried });

    // (e) The agents still dial out through this Kamailio (what their registration as
    // `bot` is for): `tingshuo dial 1001` on the dead agent's config (its ports are
    // free now) rings the phone.
    let v = &agents[victim];
    let outbound = AgentConfig {
        path: v.config.clone(),
        db: v.db.clone(),
        sip_port: v.sip_port,
        console_port: v.console_port,
        rtp_min: v.rtp_min,
        rtp_max: v.rtp_max,
    };
    let mut dialler =
        blocking(move || outbound.dial_env("1001", &[("TINGSHUO_DB_PASSWORD", PG_PASSWORD)])).await;
    let ev = wait_event(
        &mut phone,
        Duration::from_secs(60),
        "the agent's call",
        |e| matches!(e, SipEvent::Call(CallEvent::IncomingCall { .. })),
    )
    .await;
    let SipEvent::Call(CallEvent::IncomingCall { call_id, from, .. }) = ev else {
        unreachable!()
    };
    assert!(from.contains("sip:bot@"), "the agent calls as bot: {from}");
    phone
        .send(Command::Answer {
            call_id: call_id.clone(),
            media: LocalMedia::new(media),
        })
        .expect("answer");
    answered(&mut phone, Duration::from_secs(10)).await;
    phone
        .send(Command::Hangup {
            call_id: call_id.clone(),
        })
        .expect("hang up");
    call_ended(&mut phone, &call_id, Duration::from_secs(10)).await;
    let exited = blocking(move || {
        let done = wait_until(Duration::from_secs(20), || {
            matches!(dialler.child.try_wait(), Ok(Some(_)))
        });
        (done, dialler)
    })
    .await;
    assert!(
        exited.0,
        "tingshuo dial ended after the call; log:\n{}",
        exited.1.log_text()
    );
    eprintln!("an agent's outbound call to 1001 through the same Kamailio was answered");

    phone.shutdown().await;
    eprintln!("test wall time {:.1} s", t0.elapsed().as_secs_f64());
}

/// When the dead agent's states changed (instants; None: not within the watch).
struct StateTimes {
    /// First failed probe in the probe-only set (`TP`).
    probe_trying: Option<Instant>,
    /// Inactive in the probe-only set: the probes alone took it out.
    probe_inactive: Option<Instant>,
    /// Inactive in the set calls use.
    agent_set_inactive: Option<Instant>,
}

/// Polls `kamcmd dispatcher.list` every 50 ms for `agent`'s state in both sets
/// until it is inactive in both, or `limit` passes.
fn watch_states(k: &Dispatcher, agent: SocketAddr, limit: Duration) -> StateTimes {
    let mut t = StateTimes {
        probe_trying: None,
        probe_inactive: None,
        agent_set_inactive: None,
    };
    let end = Instant::now() + limit;
    while Instant::now() < end && (t.probe_inactive.is_none() || t.agent_set_inactive.is_none()) {
        let now = Instant::now();
        if let Some(d) = k.state(PROBE_ONLY_SET, agent) {
            if d.flags.starts_with('T') || d.flags.starts_with('I') {
                t.probe_trying.get_or_insert(now);
            }
            if d.flags.starts_with('I') {
                t.probe_inactive.get_or_insert(now);
            }
        }
        if let Some(d) = k.state(AGENT_SET, agent) {
            if !d.is_active() {
                t.agent_set_inactive.get_or_insert(now);
            }
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    t
}

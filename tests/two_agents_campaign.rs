//! Two agents run one campaign on a shared PostgreSQL store, and one of them is
//! SIGKILLed mid-call (issue 17 acceptance), black box: two `tingshuo campaign
//! rows.csv` processes (each its own config and ports, both registered as `bot` on
//! the Kamailio test registrar, both on one PostgreSQL 15 database on loopback) are
//! started at the same time on the same CSV of 20 rows. 16 rows call extensions
//! nobody registered (404, `not_found`, final with `max_attempts = 1`); 4 rows call
//! baresip phones that answer and stay on the line, silent, so the agent's dialogue
//! runs until its silence timeouts close the call (about half a minute).
//!
//! Both agents must dial while the other one is in calls (every row dialled within
//! seconds of both being up). Once every row has been dialled, the agent carrying
//! the most calls, all of them answered, is killed with SIGKILL. The survivor must
//! go on alone: close the dead agent's calls as `interrupted` with their turns (no
//! heartbeat for 15 s), take over its rows when their 20 s claims lapse (finishing
//! them as `interrupted`, without dialling the callees again: they were reached),
//! finish the campaign and exit by itself. The store must then show every row
//! finished, every target dialled exactly once, no call left open, and no claim
//! left behind.
//!
//! A missing PostgreSQL, Kamailio or baresip makes the test fail with what to
//! install, never skip.

mod support;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::postgres::{PgCluster, PG_BIN, PG_PASSWORD};
use support::*;

/// Extensions registered by no phone: the registrar answers 404.
const UNREGISTERED: std::ops::RangeInclusive<u32> = 2001..=2016;
/// Phones that answer at once and stay on the line.
const PHONES: [&str; 4] = ["1001", "1002", "1003", "1004"];
/// Agent start-up (speech models, line synthesis: two agents at once on a loaded
/// 2-core machine) plus dialling every row: the wait for the moment to kill.
const KILL_LIMIT: Duration = Duration::from_secs(480);
/// From the kill to the survivor's exit: 20 s claims, its own calls (half a minute
/// of silence each), with a wide margin.
const FINISH_LIMIT: Duration = Duration::from_secs(240);

/// The campaign's 20 rows: 8 unregistered, 2 phones, 8 unregistered, 2 phones.
/// Agents dial rows in order, so the phone calls are spread over both.
fn csv_text() -> String {
    let unreg: Vec<String> = UNREGISTERED.map(|n| n.to_string()).collect();
    let mut targets: Vec<&str> = Vec::new();
    targets.extend(unreg[..8].iter().map(String::as_str));
    targets.extend(&PHONES[..2]);
    targets.extend(unreg[8..].iter().map(String::as_str));
    targets.extend(&PHONES[2..]);
    let mut text = String::from("target,name\n");
    for (i, t) in targets.iter().enumerate() {
        text.push_str(&format!("{t},客户{}\n", i + 1));
    }
    text
}

/// One agent's config in `dir`: the shared store, the test registrar, the campaign
/// script, three calls at a time (a slot stays free beside the phone calls for
/// taking over the dead agent's rows), one attempt per row.
fn campaign_config(dir: &Path, kam: &Kamailio, pg: &PgCluster) -> AgentConfig {
    std::fs::create_dir_all(dir).expect("agent dir");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/campaign-script.md");
    AgentSetup::new(dir)
        .registrar(kam)
        .store_url(&pg.url(), PG_PASSWORD)
        .toml(&format!(
            "[agent]\nscript = \"{}\"\nring_timeout_s = 10\n\
[agent.campaign]\nconcurrency = 3\nmax_attempts = 1\n",
            script.display()
        ))
        .write()
}

/// Starts `tingshuo campaign CSV --config CONFIG`; stdout and stderr go to
/// `campaign.log` beside the config (printed when the test fails).
fn start_campaign(csv: &Path, config: &AgentConfig) -> Proc {
    let log = config.path.with_file_name("campaign.log");
    let logf = std::fs::File::create(&log).expect("campaign log");
    let child = tingshuo()
        .arg("campaign")
        .arg(csv)
        .arg("--config")
        .arg(&config.path)
        .env("RUST_LOG", "info")
        .env("TINGSHUO_DB_PASSWORD", PG_PASSWORD)
        .stdin(Stdio::null())
        .stdout(logf.try_clone().expect("campaign log"))
        .stderr(logf)
        .spawn()
        .expect("start tingshuo campaign");
    Proc { child, log }
}

/// Runs one SQL statement on the shared database; rows of tab-separated fields, or
/// None when it fails (before the agents created the schema, for one).
fn query(pg: &PgCluster, sql: &str) -> Option<Vec<Vec<String>>> {
    let out = Command::new(Path::new(PG_BIN).join("psql"))
        .env("PGPASSWORD", PG_PASSWORD)
        .args(["-X", "-q", "-At", "-F", "\t", "-v", "ON_ERROR_STOP=1"])
        .args(["-h", "127.0.0.1", "-p", &pg.port.to_string()])
        .args(["-U", "postgres", "-d", "tingshuo", "-c", sql])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    Some(
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.is_empty())
            .map(|l| l.split('\t').map(str::to_string).collect())
            .collect(),
    )
}

/// As [`query`], failing the test with the error when the statement fails.
fn must_query(pg: &PgCluster, sql: &str) -> Vec<Vec<String>> {
    query(pg, sql).unwrap_or_else(|| {
        // Once more through the support helper, which fails with psql's message.
        let out = pg.psql("tingshuo", sql);
        panic!("query failed, then gave {out:?}: {sql}")
    })
}

/// A call still open in the store.
#[derive(Debug, Clone)]
struct OpenCall {
    id: i64,
    agent: String,
    /// Whom it calls (for the failure messages).
    #[allow(dead_code)]
    peer: String,
    /// Turn lines written so far (the opening line once the callee answered).
    turns: i64,
}

/// The calls open now, and how many rows have been dialled, from one snapshot
/// (a single statement).
fn open_calls(pg: &PgCluster) -> Option<(Vec<OpenCall>, i64)> {
    let rows = query(
        pg,
        "SELECT -1, '', '', 0, (SELECT count(*) FROM campaign_rows WHERE attempts > 0)
         UNION ALL
         SELECT c.id, COALESCE(c.agent, ''), COALESCE(c.peer, ''),
                (SELECT count(*) FROM turns t WHERE t.call_id = c.id), 0
         FROM calls c WHERE c.ended_at IS NULL",
    )?;
    let mut dialled = 0;
    let mut open = Vec::new();
    for r in rows {
        let id: i64 = r[0].parse().ok()?;
        if id < 0 {
            dialled = r[4].parse().ok()?;
        } else {
            open.push(OpenCall {
                id,
                agent: r[1].clone(),
                peer: r[2].clone(),
                turns: r[3].parse().ok()?,
            });
        }
    }
    Some((open, dialled))
}

/// The agent to kill once every row has been dialled: of those whose open calls
/// have all been answered (the opening line is in the store), the one carrying the
/// most calls, then the newest (the survivor keeps a free call slot: at most 4 phone
/// calls over 2 agents of 3 slots). None while there is no such agent.
fn pick_victim(open: &[OpenCall]) -> Option<String> {
    let mut agents: BTreeMap<&str, (usize, i64, bool)> = BTreeMap::new();
    for c in open {
        let e = agents.entry(c.agent.as_str()).or_insert((0, 0, true));
        e.0 += 1;
        e.1 = e.1.max(c.id);
        e.2 &= c.turns > 0;
    }
    agents
        .into_iter()
        .filter(|(_, (_, _, answered))| *answered)
        .max_by_key(|(_, (n, newest, _))| (*n, *newest))
        .map(|(name, _)| name.to_string())
}

fn ids_sql(ids: &BTreeSet<i64>) -> String {
    ids.iter().map(i64::to_string).collect::<Vec<_>>().join(",")
}

#[test]
fn the_survivor_finishes_a_shared_campaign_after_the_other_agent_is_killed() {
    let t0 = Instant::now();
    let pg = PgCluster::start();
    let kam = Kamailio::start();
    let dir = tempfile::tempdir().expect("tempdir");
    // The phones answer and send silence for two minutes: the agent's dialogue
    // closes the call after its silence timeouts; a dead agent's call stays up.
    let phones: Vec<Baresip> = PHONES
        .iter()
        .map(|p| Baresip::start(p, kam.port, "auto", &silence(120.0)))
        .collect();
    let csv = dir.path().join("rows.csv");
    std::fs::write(&csv, csv_text()).expect("write the csv");
    let configs = [
        campaign_config(&dir.path().join("a"), &kam, &pg),
        campaign_config(&dir.path().join("b"), &kam, &pg),
    ];
    // Agents are named HOST:SIP_PORT in the store.
    let suffixes: Vec<String> = configs.iter().map(|c| format!(":{}", c.sip_port)).collect();
    let index_of = |agent: &str| suffixes.iter().position(|s| agent.ends_with(s.as_str()));
    eprintln!(
        "set-up took {:.1} s; starting both campaigns",
        t0.elapsed().as_secs_f64()
    );

    let started = Instant::now();
    let mut procs: Vec<Proc> = configs.iter().map(|c| start_campaign(&csv, c)).collect();

    // Wait until every row has been dialled and one agent carries only answered calls.
    let mut both_up = None;
    let mut all_dialled = None;
    let (victim, victim_name) = loop {
        assert!(
            started.elapsed() < KILL_LIMIT,
            "within {KILL_LIMIT:?}, no moment where every row was dialled and an agent \
             carried answered calls only; open calls: {:?}",
            open_calls(&pg)
        );
        for (i, p) in procs.iter_mut().enumerate() {
            if let Ok(Some(status)) = p.child.try_wait() {
                panic!(
                    "campaign {} exited ({status}) before any agent was killed: every row \
                     finished with one agent alone? open calls: {:?}",
                    ["a", "b"][i],
                    open_calls(&pg)
                );
            }
        }
        if both_up.is_none()
            && query(&pg, "SELECT count(*) FROM agents").is_some_and(|r| r[0][0] == "2")
        {
            both_up = Some(Instant::now());
        }
        if let Some((open, 20)) = open_calls(&pg) {
            all_dialled.get_or_insert_with(Instant::now);
            // Only with the other agent up: it is to carry on.
            if let Some(name) = pick_victim(&open).filter(|_| both_up.is_some()) {
                let i = index_of(&name)
                    .unwrap_or_else(|| panic!("call of an unknown agent {name}: {open:?}"));
                break (i, name);
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let survivor = 1 - victim;
    let label = |i: usize| ["a", "b"][i];
    // Both agents dial while the other is in calls: one whose call slots went to the
    // rows the other one carries (failed claims, every tick) would leave the rest
    // waiting until those calls ended, half a minute of silence timeouts here.
    // (Started together, the agents are up within seconds of each other; one up
    // later than that finds fewer rows left, and the bound holds all the more.)
    let both_up = both_up.unwrap_or_else(Instant::now);
    let dialling = all_dialled
        .expect("every row dialled")
        .saturating_duration_since(both_up);
    assert!(
        dialling < Duration::from_secs(25),
        "every row was dialled {dialling:?} after both agents were up: rows waited \
         for calls to end while an agent had free call slots"
    );
    procs[victim].child.kill().expect("SIGKILL the agent");
    let killed = Instant::now();
    let _ = procs[victim].child.wait();
    eprintln!(
        "killed agent {} ({victim_name}) {:.1} s after the start",
        label(victim),
        started.elapsed().as_secs_f64()
    );

    // What the dead agent left: its open calls (all answered, by the choice above)
    // and the rows it had claimed. It cannot change anything any more.
    let (open_at_kill, _) = open_calls(&pg).expect("read the open calls");
    let victim_calls: Vec<OpenCall> = open_at_kill
        .iter()
        .filter(|c| c.agent == victim_name)
        .cloned()
        .collect();
    assert!(
        !victim_calls.is_empty() && victim_calls.iter().all(|c| c.turns > 0),
        "the killed agent carried answered calls: {open_at_kill:?}"
    );
    let victim_ids: BTreeSet<i64> = victim_calls.iter().map(|c| c.id).collect();
    let victim_rows: BTreeSet<i64> = must_query(
        &pg,
        &format!("SELECT line FROM campaign_rows WHERE claimed_by = '{victim_name}'"),
    )
    .iter()
    .map(|r| r[0].parse().expect("line"))
    .collect();
    eprintln!("the dead agent's open calls: {victim_calls:?}; its claimed rows: {victim_rows:?}");
    // Every row had been dialled, so the only rows it held were those of its calls.
    assert_eq!(
        victim_rows.len(),
        victim_calls.len(),
        "the dead agent held the rows of its calls, and no other"
    );

    // The survivor closes the dead agent's calls, takes over its rows and finishes.
    let mut closed_after = None;
    let mut taken_after = None;
    let exit = loop {
        if let Ok(Some(status)) = procs[survivor].child.try_wait() {
            break status;
        }
        assert!(
            killed.elapsed() < FINISH_LIMIT,
            "the survivor did not finish the campaign within {FINISH_LIMIT:?} of the kill \
             (dead agent's calls closed after {closed_after:?}, its rows taken over after {taken_after:?})"
        );
        if closed_after.is_none() {
            let open = query(
                &pg,
                &format!(
                    "SELECT count(*) FROM calls WHERE id IN ({}) AND ended_at IS NULL",
                    ids_sql(&victim_ids)
                ),
            );
            if open.is_some_and(|r| r[0][0] == "0") {
                closed_after = Some(killed.elapsed());
            }
        }
        if taken_after.is_none() {
            let lines = victim_rows
                .iter()
                .map(i64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let pending = query(
                &pg,
                &format!("SELECT count(*) FROM campaign_rows WHERE line IN ({lines}) AND status = 'pending'"),
            );
            if pending.is_some_and(|r| r[0][0] == "0") {
                taken_after = Some(killed.elapsed());
            }
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let total = started.elapsed();
    let survivor_log = procs[survivor].log_text();
    assert!(
        exit.success(),
        "the survivor's campaign failed ({exit}):\n{survivor_log}"
    );

    // The store after the campaign.
    let rows = must_query(
        &pg,
        "SELECT line, target, status, attempts, COALESCE(outcome, ''), COALESCE(claimed_by, ''),
                COALESCE(last_call_id, -1)
         FROM campaign_rows ORDER BY line",
    );
    let calls = must_query(
        &pg,
        "SELECT c.id, COALESCE(c.peer, ''), COALESCE(c.agent, ''), COALESCE(c.outcome, ''),
                c.ended_at IS NULL, (SELECT count(*) FROM turns t WHERE t.call_id = c.id)
         FROM calls c ORDER BY c.id",
    );
    let context = format!(
        "rows (line, target, status, attempts, outcome, claimed_by, last_call_id):\n{rows:#?}\n\
         calls (id, peer, agent, outcome, open, turns):\n{calls:#?}"
    );
    let closed_after = closed_after.unwrap_or_else(|| {
        panic!("the dead agent's calls {victim_ids:?} were never closed\n{context}")
    });
    let taken_after = taken_after.unwrap_or_else(|| {
        panic!("the dead agent's rows {victim_rows:?} were never finished\n{context}")
    });
    let mut per_agent: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        let who = index_of(&c[2]).map_or("?", label);
        *per_agent.entry(who).or_default() += 1;
    }
    println!(
        "two agents, one campaign of 20 rows: killed agent {} {:.1} s after the start; \
         kill -> its {} call(s) closed `interrupted` by the survivor: {:.1} s; \
         kill -> its {} row(s) taken over: {:.1} s; campaign time (start -> survivor's exit): {:.1} s; \
         both agents up -> every row dialled: {:.1} s; calls placed per agent: {per_agent:?}",
        label(victim),
        (killed - started).as_secs_f64(),
        victim_ids.len(),
        closed_after.as_secs_f64(),
        victim_rows.len(),
        taken_after.as_secs_f64(),
        total.as_secs_f64(),
        dialling.as_secs_f64(),
    );

    // Every row finished, each once, and no claim left behind.
    assert_eq!(rows.len(), 20, "{context}");
    for r in &rows {
        let line: i64 = r[0].parse().expect("line");
        assert_eq!(
            (r[2].as_str(), r[3].as_str(), r[5].as_str()),
            ("done", "1", ""),
            "line {line}: finished after one attempt, unclaimed\n{context}"
        );
        let unregistered = UNREGISTERED.contains(&r[1].parse().unwrap_or(0));
        if unregistered {
            assert_eq!(r[4], "not_found", "line {line}\n{context}");
        }
        if victim_rows.contains(&line) {
            // Answered before the kill (see pick_victim), so reached: finished as
            // `interrupted` with the dead agent's call, not dialled again.
            assert_eq!(r[4], "interrupted", "line {line}\n{context}");
            let call: i64 = r[6].parse().expect("last_call_id");
            assert!(
                victim_ids.contains(&call),
                "line {line} keeps the dead agent's call\n{context}"
            );
        }
    }
    // Each target dialled exactly once: the dead agent left only answered calls
    // (pick_victim), and an answered row is never dialled again; it could not start
    // another call either, since every row had been dialled before the kill (an
    // unanswered call cut by the kill would have been dialled again by the survivor).
    assert_eq!(calls.len(), 20, "20 calls placed\n{context}");
    let mut per_peer: BTreeMap<&str, usize> = BTreeMap::new();
    for c in &calls {
        *per_peer.entry(c[1].as_str()).or_default() += 1;
    }
    let expected: BTreeMap<&str, usize> = rows.iter().map(|r| (r[1].as_str(), 1)).collect();
    assert_eq!(per_peer, expected, "each target dialled once\n{context}");
    assert!(
        calls.iter().all(|c| c[4] == "f"),
        "no call is left open\n{context}"
    );
    // The dead agent's calls: closed `interrupted` by the survivor, turns kept.
    for v in &victim_calls {
        let c = calls
            .iter()
            .find(|c| c[0] == v.id.to_string())
            .expect("the dead agent's call");
        let turns: i64 = c[5].parse().expect("turns");
        assert!(
            c[3] == "interrupted" && turns >= v.turns,
            "call {} closed `interrupted` with its {} turn line(s) at least\n{context}",
            v.id,
            v.turns
        );
    }
    assert!(
        closed_after < Duration::from_secs(40) && taken_after < Duration::from_secs(45),
        "the survivor closed the dead agent's calls {closed_after:?} and took over its rows \
         {taken_after:?} after the kill (heartbeat silence 15 s, claims 20 s)\n{context}"
    );
    assert!(
        strip_ansi(&survivor_log).contains("calls of an agent that stopped"),
        "the survivor closed the dead agent's calls:\n{survivor_log}"
    );
    // The survivor says what the whole campaign did (every agent's rows).
    assert!(
        survivor_log.contains("totals: 20 rows, 20 calls placed"),
        "the survivor's summary:\n{survivor_log}"
    );
    assert!(
        survivor_log.contains("interrupted"),
        "the summary names the interrupted rows:\n{survivor_log}"
    );
    drop(phones);
}

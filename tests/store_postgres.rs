//! PostgreSQL test cluster (issue 17): the private cluster the two-backend store
//! tests run against starts as a non-root user, takes password logins on loopback,
//! and keeps its data across a stop and start (the "database blip" of the issue).

mod support;

use support::postgres::PgCluster;

#[test]
fn private_cluster_starts_stops_and_keeps_data() {
    let mut pg = PgCluster::start();
    assert_eq!(
        pg.psql("tingshuo", "SHOW server_version_num").get(..2),
        Some("15")
    );
    pg.psql(
        "tingshuo",
        "CREATE TABLE t (id INT PRIMARY KEY, note TEXT); INSERT INTO t VALUES (1, '回拨')",
    );
    pg.stop();
    let port = pg.port;
    let refused = std::process::Command::new(format!("{}/pg_isready", support::postgres::PG_BIN))
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .status()
        .expect("run pg_isready");
    assert!(
        !refused.success(),
        "a stopped cluster still accepted connections"
    );
    pg.resume();
    assert_eq!(pg.port, port);
    assert_eq!(
        pg.psql("tingshuo", "SELECT note FROM t WHERE id = 1"),
        "回拨"
    );
}

/// Fills the claim query's parameters for psql (the Rust backend binds them).
fn bind(sql: &str, agent: &str, lease_s: u32, until: &str) -> String {
    sql.replace("$1", &format!("'{agent}'"))
        .replace("$2", &lease_s.to_string())
        .replace("$3", &format!("'{until}'"))
}

fn migrated() -> PgCluster {
    let pg = PgCluster::start();
    for (i, m) in tingshuo::store::pg_schema::PG_MIGRATIONS.iter().enumerate() {
        pg.psql(
            "tingshuo",
            &format!(
                "BEGIN; {m}; DELETE FROM schema_version; INSERT INTO schema_version VALUES ({}); COMMIT;",
                i + 1
            ),
        );
    }
    pg
}

#[test]
fn migrations_build_every_table_from_an_empty_database() {
    let pg = migrated();
    assert_eq!(
        pg.psql("tingshuo", "SELECT version FROM schema_version"),
        tingshuo::store::pg_schema::PG_MIGRATIONS.len().to_string()
    );
    let tables = pg.psql(
        "tingshuo",
        "SELECT string_agg(table_name, ',' ORDER BY table_name) FROM information_schema.tables WHERE table_schema = 'public'",
    );
    assert_eq!(
        tables,
        "callbacks,calls,campaign_rows,campaigns,do_not_call,fields,person_callbacks,schema_version,transfers,turns"
    );
    // Migrations are idempotent DDL: a second agent starting on the same database is harmless.
    pg.psql("tingshuo", tingshuo::store::pg_schema::PG_MIGRATIONS[0]);
    // The operator line the SQLite schema admits since version 3 is admitted here too.
    pg.psql(
        "tingshuo",
        "INSERT INTO calls (script, started_at) VALUES ('测试', '2026-01-01T00:00:00Z'); \
         INSERT INTO turns (call_id, seq, at, speaker, text) VALUES (1, 1, '2026-01-01T00:00:01Z', 'operator', '您好')",
    );
}

#[test]
fn two_agents_claim_each_campaign_row_exactly_once() {
    use tingshuo::store::pg_schema::CLAIM_CAMPAIGN_ROW;
    let pg = std::sync::Arc::new(migrated());
    pg.psql(
        "tingshuo",
        "INSERT INTO campaigns (source, created_at) VALUES ('名单.csv', 'now'); \
         INSERT INTO campaign_rows (campaign_id, line, target) \
         SELECT 1, g, '1380000' || lpad(g::text, 4, '0') FROM generate_series(1, 20) g",
    );
    let agents: Vec<_> = ["agent-a", "agent-b"]
        .into_iter()
        .map(|agent| {
            let pg = pg.clone();
            std::thread::spawn(move || {
                let mut lines = Vec::new();
                loop {
                    let got = pg.psql("tingshuo", &bind(CLAIM_CAMPAIGN_ROW, agent, 60, ""));
                    if got.is_empty() {
                        return lines;
                    }
                    let line: i64 = got
                        .split('|')
                        .nth(1)
                        .and_then(|l| l.parse().ok())
                        .expect("line");
                    lines.push(line);
                }
            })
        })
        .collect();
    let mut all: Vec<i64> = agents
        .into_iter()
        .flat_map(|h| h.join().expect("agent thread"))
        .collect();
    all.sort_unstable();
    assert_eq!(
        all,
        (1..=20).collect::<Vec<_>>(),
        "every row claimed exactly once"
    );
    let by_agent = pg.psql(
        "tingshuo",
        "SELECT count(*) FROM campaign_rows WHERE claimed_by IS NULL OR lease_until IS NULL",
    );
    assert_eq!(by_agent, "0");
}

#[test]
fn a_dead_agents_lease_expires_and_the_other_takes_the_callback() {
    use tingshuo::store::pg_schema::CLAIM_CALLBACK;
    let pg = migrated();
    pg.psql(
        "tingshuo",
        "INSERT INTO calls (script, started_at) VALUES ('回访', '2026-01-01T00:00:00Z'); \
         INSERT INTO callbacks (call_id, due_at, created_at, target) VALUES (1, '2026-01-01T00:10:00Z', 'x', '1001')",
    );
    let until = "2026-01-01T01:00:00Z";
    assert_eq!(
        pg.psql("tingshuo", &bind(CLAIM_CALLBACK, "agent-a", 2, until)),
        "1|1001"
    );
    // agent-a "dies" holding the claim: agent-b cannot take it while the lease lives.
    assert_eq!(
        pg.psql("tingshuo", &bind(CLAIM_CALLBACK, "agent-b", 2, until)),
        ""
    );
    let taken = support::wait_until(std::time::Duration::from_secs(20), || {
        pg.psql("tingshuo", &bind(CLAIM_CALLBACK, "agent-b", 60, until)) == "1|1001"
    });
    assert!(taken, "agent-b never took over the expired claim");
    assert_eq!(
        pg.psql("tingshuo", "SELECT claimed_by FROM callbacks WHERE id = 1"),
        "agent-b"
    );
    // A callback due after `until` is never claimed early.
    assert_eq!(
        pg.psql(
            "tingshuo",
            &bind(CLAIM_CALLBACK, "agent-a", 60, "2026-01-01T00:00:00Z")
        ),
        ""
    );
}

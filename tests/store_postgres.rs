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

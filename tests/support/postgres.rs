//! A private PostgreSQL 15 cluster for integration tests (issue 17).
//!
//! Each test gets its own data directory and free port on loopback, so tests run in
//! parallel and never touch a system database. The tests run as root and `postgres`
//! refuses to run as root, so the server programs run as the `postgres` system user
//! (created by the `postgresql-15` package) through `runuser`. Host connections need a
//! password (scram-sha-256), as a deployed agent's `[store] url` would. A missing
//! PostgreSQL makes the test FAIL with what to install, never skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// Where the apt package `postgresql-15` puts the server programs.
pub const PG_BIN: &str = "/usr/lib/postgresql/15/bin";
/// Password of the test cluster's superuser `postgres`.
pub const PG_PASSWORD: &str = "tingshuo-test";

/// A running private cluster; stopped (immediately) and deleted on drop.
pub struct PgCluster {
    pub port: u16,
    dir: PathBuf,
    running: bool,
}

fn pg_program(name: &str) -> PathBuf {
    let p = Path::new(PG_BIN).join(name);
    assert!(
        p.is_file(),
        "{} is missing but this test needs PostgreSQL 15. Install it with \
         `apt-get install -y postgresql-15` (bash .ci/up does) and run the test again.",
        p.display()
    );
    p
}

/// Runs a PostgreSQL program as the `postgres` user and returns its output.
fn as_postgres(program: &str, args: &[&str]) -> Output {
    let exe = pg_program(program);
    super::require("runuser", "util-linux");
    let out = Command::new("runuser")
        .args(["-u", "postgres", "--"])
        .arg(&exe)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {} as user postgres: {e}", exe.display()));
    out
}

fn check(what: &str, out: &Output) {
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

impl PgCluster {
    /// Creates a cluster in a fresh temp dir, starts it on a free loopback port and
    /// creates the database `tingshuo`.
    pub fn start() -> Self {
        pg_program("initdb");
        let dir = std::env::temp_dir().join(format!(
            "tingshuo-pg-{}-{}",
            std::process::id(),
            super::free_port()
        ));
        std::fs::create_dir_all(&dir).expect("create the PostgreSQL temp dir");
        let pwfile = dir.join("pw");
        std::fs::write(&pwfile, PG_PASSWORD).expect("write the password file");
        let st = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()
            .expect("run chown");
        assert!(
            st.success(),
            "cannot give {} to user postgres",
            dir.display()
        );
        let data = dir.join("data");
        let (data_s, pw_s) = (data.display().to_string(), pwfile.display().to_string());
        let out = as_postgres(
            "initdb",
            &[
                "-D",
                &data_s,
                "-U",
                "postgres",
                "--auth=scram-sha-256",
                "--pwfile",
                &pw_s,
                "-E",
                "UTF8",
                "--locale=C",
                "--no-sync",
            ],
        );
        check("initdb", &out);
        let mut c = PgCluster {
            port: super::free_port(),
            dir,
            running: false,
        };
        c.resume();
        c.psql("postgres", "CREATE DATABASE tingshuo");
        c
    }

    /// `[store] url` for the database `tingshuo` (password comes from the environment).
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/tingshuo", self.port)
    }

    fn data(&self) -> String {
        self.dir.join("data").display().to_string()
    }

    /// Starts (or restarts) the server on the same port and data, waiting until it
    /// accepts connections.
    pub fn resume(&mut self) {
        let opts = format!(
            "-p {} -h 127.0.0.1 -k {} -c fsync=off -c max_connections=50",
            self.port,
            self.dir.display()
        );
        let log = self.dir.join("server.log").display().to_string();
        let out = as_postgres(
            "pg_ctl",
            &[
                "-D",
                &self.data(),
                "-l",
                &log,
                "-o",
                &opts,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
        check("pg_ctl start", &out);
        self.running = true;
        let port = self.port.to_string();
        let ready = super::wait_until(Duration::from_secs(60), || {
            Command::new(pg_program("pg_isready"))
                .args(["-h", "127.0.0.1", "-p", &port])
                .output()
                .map(|o| o.status.success())
                .unwrap_or(false)
        });
        assert!(
            ready,
            "PostgreSQL on port {} did not become ready (log: {log})",
            self.port
        );
    }

    /// Stops the server at once (like a crash of the database machine); `resume`
    /// brings it back with its data.
    pub fn stop(&mut self) {
        if self.running {
            let out = as_postgres(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
            check("pg_ctl stop", &out);
            self.running = false;
        }
    }

    /// Runs SQL with psql over TCP (password auth) and returns its unaligned output.
    pub fn psql(&self, db: &str, sql: &str) -> String {
        let out = Command::new(pg_program("psql"))
            .env("PGPASSWORD", PG_PASSWORD)
            .args(["-X", "-q", "-At", "-v", "ON_ERROR_STOP=1"])
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "postgres",
            ])
            .args(["-d", db, "-c", sql])
            .output()
            .expect("run psql");
        check(&format!("psql `{sql}`"), &out);
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        if self.running {
            let _ = as_postgres(
                "pg_ctl",
                &["-D", &self.data(), "-m", "immediate", "-w", "stop"],
            );
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

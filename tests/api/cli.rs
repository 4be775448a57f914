//! The real `confab` binary: schema, migrate, serve with its start log, the
//! generated JWT secret, and graceful shutdown on SIGTERM.

use std::{
    io::{BufRead, BufReader},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use crate::support::{TestDb, postgres_base_url, with_database};

pub fn confab() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_confab"));
    cmd.env_remove("DATABASE_URL")
        .env_remove("JWT_SECRET")
        .env_remove("BIND_ADDR")
        .env("RUST_LOG", "info")
        .env("NO_COLOR", "1")
        .env("BCRYPT_COST", "4");
    cmd
}

#[test]
fn schema_command_prints_the_served_sdl() {
    let out = confab().arg("schema").output().unwrap();
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        confab::graphql::sdl()
    );
}

#[tokio::test]
async fn migrate_status_down_and_up() {
    let db = TestDb::new().await;
    let run = |args: &[&str]| {
        let out = confab()
            .args(args)
            .env("DATABASE_URL", &db.url)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    run(&["migrate", "up"]);
    let status = run(&["migrate", "status"]);
    assert!(
        status.lines().count() >= 4 && status.lines().all(|l| l.starts_with("Applied")),
        "{status}"
    );
    run(&["migrate", "down", "--all"]);
    let status = run(&["migrate", "status"]);
    assert!(status.lines().all(|l| l.starts_with("Pending")), "{status}");
    run(&["migrate", "up"]);
}

/// Starts `confab serve`, waits for the log line that says it listens, and
/// returns the child with everything it logged until then.
pub fn serve(db_url: &str, data_dir: &std::path::Path) -> (std::process::Child, String) {
    serve_with(db_url, data_dir, &[])
}

/// `serve` with more environment.
pub fn serve_with(
    db_url: &str,
    data_dir: &std::path::Path,
    env: &[(&str, &str)],
) -> (std::process::Child, String) {
    let mut child = confab()
        .envs(env.iter().copied())
        .arg("serve")
        .env("DATABASE_URL", db_url)
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("CONFAB_DATA_DIR", data_dir)
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut log = String::new();
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            log.push_str(&line);
            log.push('\n');
            if line.contains("listening") {
                let _ = tx.send(log.clone());
            }
        }
        let _ = tx.send(log);
    });
    let log = rx
        .recv_timeout(Duration::from_secs(30))
        .expect("server start log");
    (child, log)
}

#[tokio::test]
async fn serve_logs_the_database_keeps_a_secret_and_stops_on_sigterm() {
    let db = TestDb::new().await;
    // On PostgreSQL, a password in the URL (trust auth ignores it) must never reach the log.
    let url = match postgres_base_url() {
        Some(_) => db.url.replacen(
            "postgres://postgres@",
            "postgres://postgres:hunter2-not-real@",
            1,
        ),
        None => db.url.clone(),
    };
    let data = tempfile::tempdir().unwrap();
    let (mut child, log) = serve(&url, data.path());
    assert!(log.contains("backend="), "{log}");
    assert!(log.contains("migration=m2026"), "{log}");
    assert!(log.contains("database="), "{log}");
    assert!(!log.contains("hunter2"), "password in the log: {log}");
    assert!(log.contains("JWT_SECRET not set"), "{log}");
    // SQLite keeps the generated key in the data directory; PostgreSQL in the
    // database, where every instance of the deployment finds it.
    let secret = data.path().join("jwt_secret");
    if postgres_base_url().is_some() {
        assert!(log.contains("kept in the database"), "{log}");
        assert!(!secret.exists());
    } else {
        let meta = std::fs::metadata(&secret).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        }
        assert!(meta.len() >= 32);
    }

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert!(status.success(), "exit after SIGTERM: {status}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "server still running 15 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // A restart keeps the same secret.
    let before = std::fs::read(&secret).ok();
    let (mut child, _) = serve(&url, data.path());
    assert_eq!(std::fs::read(&secret).ok(), before);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ = with_database;
}

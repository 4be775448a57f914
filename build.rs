//! Embeds the offline GraphiQL playground (served at `GET /`).
//!
//! The pinned GraphiQL, React and ReactDOM UMD bundles come from npm via
//! `web/package-lock.json` into `web/node_modules` (never committed). When they
//! are missing, and `npm` is on `PATH`, and `CONFAB_SKIP_NPM` is not set, this
//! script runs `npm ci --prefix web` once per lock file. If the four files
//! exist afterwards they are copied into `OUT_DIR` and the `graphiql_bundled`
//! cfg is set, so `src/graphiql.rs` embeds them; otherwise the server still
//! builds and `GET /` serves a page explaining how to get the playground.
//!
//! Only std is used: no build-dependencies.

#![allow(
    clippy::print_stdout,
    reason = "cargo reads build-script directives from stdout"
)]

use std::env;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// (path under `web/node_modules`, file name in `OUT_DIR`).
const ASSETS: [(&str, &str); 4] = [
    ("react/umd/react.production.min.js", "react.js"),
    ("react-dom/umd/react-dom.production.min.js", "react-dom.js"),
    ("graphiql/graphiql.min.js", "graphiql.js"),
    ("graphiql/graphiql.min.css", "graphiql.css"),
];

/// `npm ci` gets this long before it is killed (a hung registry must not hang the build).
const NPM_TIMEOUT: Duration = Duration::from_secs(600);

/// Remembers, in `OUT_DIR`, the lock file an `npm ci` already failed for, so an
/// offline machine does not retry (and wait on the network) on every build.
const NPM_FAILED_MARKER: &str = "npm-ci-failed.package-lock.json";

fn main() {
    println!("cargo:rustc-check-cfg=cfg(graphiql_bundled)");
    println!("cargo:rerun-if-changed=build.rs");
    println!("cargo:rerun-if-changed=web/package-lock.json");
    println!("cargo:rerun-if-env-changed=CONFAB_SKIP_NPM");
    for (src, _) in ASSETS {
        println!("cargo:rerun-if-changed=web/node_modules/{src}");
    }

    let Some(manifest_dir) = env::var_os("CARGO_MANIFEST_DIR").map(PathBuf::from) else {
        println!("cargo:warning=CARGO_MANIFEST_DIR is not set; GraphiQL will show a fallback page");
        return;
    };
    let Some(out_dir) = env::var_os("OUT_DIR").map(PathBuf::from) else {
        println!("cargo:warning=OUT_DIR is not set; GraphiQL will show a fallback page");
        return;
    };
    let web = manifest_dir.join("web");
    let node_modules = web.join("node_modules");

    if missing_assets(&node_modules).is_empty() {
        // Assets are present: a stale failure marker is meaningless now.
        let _ = fs::remove_file(out_dir.join(NPM_FAILED_MARKER));
    } else {
        maybe_npm_ci(&web, &out_dir);
    }

    let missing = missing_assets(&node_modules);
    if !missing.is_empty() {
        println!(
            "cargo:warning=GraphiQL assets not found ({}); GET / will show a fallback page. \
             Fix: `npm ci --prefix web`, then rebuild. The API at POST /graphql works regardless.",
            missing.join(", ")
        );
        return;
    }

    for (src, dst) in ASSETS {
        let from = node_modules.join(src);
        let to = out_dir.join(dst);
        if let Err(err) = copy_asset(&from, &to) {
            println!(
                "cargo:warning=could not copy {} to OUT_DIR ({err}); GET / will show a fallback page",
                from.display()
            );
            return;
        }
    }
    println!("cargo:rustc-cfg=graphiql_bundled");
}

fn missing_assets(node_modules: &Path) -> Vec<&'static str> {
    ASSETS
        .iter()
        .filter(|(src, _)| !node_modules.join(src).is_file())
        .map(|(src, _)| *src)
        .collect()
}

/// Runs `npm ci --prefix web` when allowed and worthwhile. Never fails the build.
fn maybe_npm_ci(web: &Path, out_dir: &Path) {
    if env::var_os("CONFAB_SKIP_NPM").is_some() {
        println!("cargo:warning=CONFAB_SKIP_NPM is set: not running `npm ci --prefix web`");
        return;
    }
    let lock = match fs::read(web.join("package-lock.json")) {
        Ok(lock) => lock,
        Err(err) => {
            println!("cargo:warning=cannot read web/package-lock.json ({err}): not running npm");
            return;
        }
    };
    let marker = out_dir.join(NPM_FAILED_MARKER);
    if fs::read(&marker).is_ok_and(|failed_for| failed_for == lock) {
        println!(
            "cargo:warning=`npm ci --prefix web` already failed for this web/package-lock.json; \
             not retrying (run it by hand, then rebuild)"
        );
        return;
    }

    let npm = if cfg!(windows) { "npm.cmd" } else { "npm" };
    let npm_found = Command::new(npm)
        .arg("--version")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success());
    if !npm_found {
        println!("cargo:warning=npm is not on PATH: cannot fetch the GraphiQL assets");
        return;
    }

    let Some(prefix) = web.to_str() else {
        println!("cargo:warning=path of web/ is not UTF-8: not running npm");
        return;
    };
    let child = Command::new(npm)
        .args([
            "ci",
            "--prefix",
            prefix,
            "--no-audit",
            "--no-fund",
            "--prefer-offline",
        ])
        .stdin(Stdio::null())
        // Keep npm's chatter off our stdout, which cargo parses for directives.
        .stdout(Stdio::from(std::io::stderr()))
        .stderr(Stdio::inherit())
        .spawn();
    let outcome = match child {
        Ok(child) => wait_with_timeout(child, NPM_TIMEOUT),
        Err(err) => Err(format!("could not start npm: {err}")),
    };
    if let Err(reason) = outcome {
        println!("cargo:warning=`npm ci --prefix web` failed: {reason}");
        let _ = fs::write(&marker, &lock);
    }
}

fn wait_with_timeout(mut child: Child, timeout: Duration) -> Result<(), String> {
    let started = Instant::now();
    loop {
        match child.try_wait() {
            Ok(Some(status)) if status.success() => return Ok(()),
            Ok(Some(status)) => return Err(format!("npm exited with {status}")),
            Ok(None) if started.elapsed() >= timeout => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!("npm timed out after {}s", timeout.as_secs()));
            }
            Ok(None) => thread::sleep(Duration::from_millis(200)),
            Err(err) => return Err(format!("waiting for npm: {err}")),
        }
    }
}

/// Copies one asset, dropping a trailing `//# sourceMappingURL=` line from
/// JavaScript: the maps are not served, and browsers' dev tools would otherwise
/// request them and log 404s.
fn copy_asset(from: &Path, to: &Path) -> std::io::Result<()> {
    let mut bytes = fs::read(from)?;
    if from.extension().is_some_and(|ext| ext == "js") {
        let trimmed_len = bytes
            .iter()
            .rposition(|&b| b != b'\n' && b != b'\r')
            .map_or(0, |i| i + 1);
        let line_start = bytes[..trimmed_len]
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        if bytes[line_start..trimmed_len].starts_with(b"//# sourceMappingURL=") {
            bytes.truncate(line_start);
        }
    }
    // Rewrite only on change, so the crate is not recompiled needlessly.
    if fs::read(to).is_ok_and(|old| old == bytes) {
        return Ok(());
    }
    fs::write(to, bytes)
}

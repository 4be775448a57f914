//! One validated configuration, built from the CLI flags (with env fallbacks)
//! or, in tests, directly.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

#[derive(Clone, Debug)]
pub struct Config {
    pub database_url: String,
    pub bind_addr: SocketAddr,
    /// None: generate one and keep it in `data_dir`.
    pub jwt_secret: Option<String>,
    pub data_dir: PathBuf,
    pub bcrypt_cost: u32,
    pub access_token_ttl: Duration,
    pub refresh_token_ttl: Duration,
    pub body_limit: usize,
    /// Development mode: field suggestions in validation errors.
    pub dev_mode: bool,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// Failed sign-ins per login name allowed in `login_window`.
    pub login_max_failures: u32,
    pub login_window: Duration,
    /// Open WebSockets at once; upgrades beyond it are refused with 503.
    pub max_ws_connections: usize,
}

pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
pub const DEFAULT_DATA_DIR: &str = "./data";

impl Config {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            bind_addr: SocketAddr::from(([127, 0, 0, 1], 8080)),
            jwt_secret: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            bcrypt_cost: 12,
            access_token_ttl: Duration::from_secs(15 * 60),
            refresh_token_ttl: Duration::from_secs(30 * 24 * 3600),
            body_limit: 64 * 1024,
            dev_mode: false,
            ws_init_timeout: Duration::from_secs(3),
            login_max_failures: 10,
            login_window: Duration::from_secs(15 * 60),
            max_ws_connections: 10_000,
        }
    }

    /// The embedded default: a SQLite file in the data directory.
    pub fn default_database_url(data_dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("confab.db").display())
    }
}

//! Command-line flags, each with an environment fallback.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use clap::{Args, Parser, Subcommand};

use crate::config::{
    Config, DEFAULT_ACCESS_TOKEN_TTL_SECS, DEFAULT_BCRYPT_COST, DEFAULT_BIND_ADDR,
    DEFAULT_DATA_DIR, DEFAULT_REFRESH_TOKEN_TTL_DAYS, Limits, LogFormat,
};

#[derive(Debug, Parser)]
#[command(
    name = "confab",
    version,
    about = "Confab: a GraphQL chat and social API server"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Option<Command>,
    #[command(flatten)]
    pub opts: Opts,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve,
    /// Apply or roll back database migrations.
    Migrate {
        #[command(subcommand)]
        action: MigrateAction,
    },
    /// Print the GraphQL schema (SDL).
    Schema,
    /// Administrative tasks.
    Admin {
        #[command(subcommand)]
        action: AdminAction,
    },
}

#[derive(Debug, Subcommand)]
pub enum MigrateAction {
    /// Apply every pending migration.
    Up,
    /// Roll back the last migration, or `--steps N` of them, or `--all`.
    Down {
        #[arg(long, default_value_t = 1)]
        steps: u32,
        #[arg(long)]
        all: bool,
    },
    /// List migrations and whether each is applied.
    Status,
}

#[derive(Debug, Subcommand)]
pub enum AdminAction {
    /// Give a user the verified badge (isOfficial).
    Verify { username: String },
    /// Take a user's verified badge away.
    Unverify { username: String },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Switch {
    On,
    Off,
}

#[derive(Debug, Args)]
pub struct Opts {
    /// Database URL: sqlite://… or postgres://… (default: an SQLite file in the data directory).
    #[arg(long, env = "DATABASE_URL", global = true)]
    pub database_url: Option<String>,
    /// Address to listen on.
    #[arg(long, env = "BIND_ADDR", default_value_t = DEFAULT_BIND_ADDR, global = true)]
    pub bind_addr: SocketAddr,
    /// Secret for signing access tokens (default: generated once and kept in the data directory).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, global = true)]
    pub jwt_secret: Option<String>,
    /// Directory for the embedded database and the generated JWT secret.
    #[arg(long, env = "CONFAB_DATA_DIR", default_value = DEFAULT_DATA_DIR, global = true)]
    pub data_dir: PathBuf,
    /// bcrypt cost factor (4–31).
    #[arg(long, env = "BCRYPT_COST", default_value_t = DEFAULT_BCRYPT_COST, value_parser = clap::value_parser!(u32).range(4..=31), global = true)]
    pub bcrypt_cost: u32,
    /// Access token lifetime in seconds.
    #[arg(
        long,
        env = "ACCESS_TOKEN_TTL_SECS",
        default_value_t = DEFAULT_ACCESS_TOKEN_TTL_SECS,
        global = true
    )]
    pub access_token_ttl_secs: u64,
    /// Refresh token lifetime in days.
    #[arg(
        long,
        env = "REFRESH_TOKEN_TTL_DAYS",
        default_value_t = DEFAULT_REFRESH_TOKEN_TTL_DAYS,
        global = true
    )]
    pub refresh_token_ttl_days: u64,
    /// Largest accepted request body in bytes.
    #[arg(long, env = "BODY_LIMIT_BYTES", default_value_t = Limits::default().body_bytes, global = true)]
    pub body_limit: usize,
    /// Development mode: field suggestions in validation errors.
    #[arg(long, env = "CONFAB_DEV", global = true)]
    pub dev: bool,
    /// Introspection and GraphiQL: off makes `__schema`/`__type` validation errors and `GET /` a 404.
    #[arg(long, env = "CONFAB_INTROSPECTION", default_value_t = true, action = clap::ArgAction::Set, global = true)]
    pub introspection: bool,
    /// Rate limits and socket caps: `off` only for load tests on a trusted network.
    #[arg(long, env = "CONFAB_RATE_LIMITS", value_enum, default_value_t = Switch::On, global = true)]
    pub rate_limits: Switch,
    /// Identical subscriptions share each event's render: `off` renders per subscriber (comparisons).
    #[arg(long, env = "CONFAB_SHARED_RENDERS", value_enum, default_value_t = Switch::On, global = true)]
    pub shared_renders: Switch,
    /// Reverse proxies (CIDR, comma-separated) whose X-Forwarded-For names the client.
    #[arg(
        long,
        env = "CONFAB_TRUSTED_PROXIES",
        value_delimiter = ',',
        global = true
    )]
    pub trusted_proxies: Vec<ipnet::IpNet>,
    /// Log line format: text (coloured only on a terminal) or json.
    #[arg(long, env = "CONFAB_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
}

impl Opts {
    pub fn into_config(self) -> Config {
        let database_url = self
            .database_url
            .filter(|url| !url.is_empty())
            .unwrap_or_else(|| Config::default_database_url(&self.data_dir));
        let mut config = Config::new(database_url);
        config.bind_addr = self.bind_addr;
        config.jwt_secret = self.jwt_secret.filter(|s| !s.is_empty());
        config.data_dir = self.data_dir;
        config.bcrypt_cost = self.bcrypt_cost;
        config.access_token_ttl = Duration::from_secs(self.access_token_ttl_secs.max(1));
        config.refresh_token_ttl =
            Duration::from_secs(self.refresh_token_ttl_days.max(1) * 24 * 3600);
        config.limits.body_bytes = self.body_limit;
        config.dev_mode = self.dev;
        config.log_format = self.log_format;
        config.introspection = self.introspection;
        config.rate_limits = self.rate_limits == Switch::On;
        config.shared_renders = self.shared_renders == Switch::On;
        config.trusted_proxies = self.trusted_proxies;
        config
    }
}

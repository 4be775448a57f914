//! One validated configuration, built from the CLI flags (with env fallbacks)
//! or, in tests, directly. Every default lives here; `cli` shows these values.

use std::{
    net::{Ipv4Addr, SocketAddr, SocketAddrV4},
    path::PathBuf,
    time::Duration,
};

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
    /// Development mode: field suggestions in validation errors.
    pub dev_mode: bool,
    /// Introspection and GraphiQL (on by default; off for production if wanted).
    pub introspection: bool,
    /// Request rate limits and socket caps; off only for load tests on a trusted network.
    pub rate_limits: bool,
    /// Identical subscriptions share each event's render (`graphql::shared`);
    /// off renders every event per subscriber (for comparison).
    pub shared_renders: bool,
    /// Reverse proxies whose `X-Forwarded-For` names the client (rate limits, socket caps).
    pub trusted_proxies: Vec<ipnet::IpNet>,
    pub log_format: LogFormat,
    pub limits: Limits,
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable; coloured only when stderr is a terminal.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

/// What one client may ask of the server, in one place. The API's own
/// numbers (page sizes, text lengths) are fixed by SEMANTICS and live next to
/// the rule they belong to (`service::page`, `service`), not here.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Nesting depth of a GraphQL document (GraphiQL's introspection query needs 13).
    pub max_depth: usize,
    /// Complexity, with connection fields costed by their page size.
    pub max_complexity: usize,
    /// Aliases per document, aliased `__typename` included.
    pub max_aliases: usize,
    /// Selections with every fragment spread expanded. GraphiQL's full
    /// introspection query has 240; validating this many takes milliseconds,
    /// where a 1 KB document of doubling fragments has millions.
    pub max_expanded_selections: usize,
    pub max_directives_per_field: usize,
    /// Largest request body (413 above).
    pub body_bytes: usize,
    /// An HTTP request that takes longer is answered 408 (WebSockets are not limited).
    pub request_timeout: Duration,
    /// A request's headers must arrive within this, and an idle keep-alive
    /// connection waits at most this for its next request (slowloris).
    pub header_read_timeout: Duration,
    /// Open WebSockets at once; upgrades beyond it are refused with 503.
    pub ws_connections: usize,
    /// How long a WebSocket may take to send `connection_init`.
    pub ws_init_timeout: Duration,
    /// How long a socket acknowledged without a signed-in viewer stays open.
    pub ws_anonymous_ttl: Duration,
    /// How often an idle WebSocket is pinged.
    pub ws_keep_alive: Duration,
    /// Largest WebSocket message (and frame).
    pub ws_message_bytes: usize,
    pub ws_subscriptions_per_socket: usize,
    /// Messages waiting for one socket, all its subscriptions together.
    pub ws_outbox: usize,
    /// Sign-in attempts (`login`) per client IP per minute.
    pub sign_ins_per_ip_per_minute: u32,
    /// Registrations per client IP per hour.
    pub registrations_per_ip_per_hour: u32,
    /// Messages a user may send per second, and in a burst.
    pub sends_per_user_per_second: u32,
    pub send_burst: u32,
    /// Open WebSockets per signed-in user, and per client IP (anonymous ones included).
    pub sockets_per_user: usize,
    pub sockets_per_ip: usize,
    /// Failed sign-ins per login name allowed in `login_window`.
    pub login_max_failures: u32,
    pub login_window: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_depth: 15,
            max_complexity: 20_000,
            max_aliases: 30,
            max_expanded_selections: 5_000,
            max_directives_per_field: 5,
            body_bytes: 64 * 1024,
            request_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            ws_connections: 10_000,
            ws_init_timeout: Duration::from_secs(3),
            ws_anonymous_ttl: Duration::from_secs(10),
            ws_keep_alive: Duration::from_secs(20),
            ws_message_bytes: 64 * 1024,
            ws_subscriptions_per_socket: 100,
            ws_outbox: 64,
            sign_ins_per_ip_per_minute: 30,
            registrations_per_ip_per_hour: 10,
            sends_per_user_per_second: 10,
            send_burst: 30,
            sockets_per_user: 20,
            sockets_per_ip: 100,
            login_max_failures: 10,
            login_window: Duration::from_secs(15 * 60),
        }
    }
}

pub const DEFAULT_BIND_ADDR: SocketAddr =
    SocketAddr::V4(SocketAddrV4::new(Ipv4Addr::LOCALHOST, 8080));
pub const DEFAULT_DATA_DIR: &str = "./data";
pub const DEFAULT_BCRYPT_COST: u32 = 12;
pub const DEFAULT_ACCESS_TOKEN_TTL_SECS: u64 = 15 * 60;
pub const DEFAULT_REFRESH_TOKEN_TTL_DAYS: u64 = 30;

impl Config {
    /// Defaults for everything but the database.
    pub fn new(database_url: impl Into<String>) -> Self {
        Self {
            database_url: database_url.into(),
            bind_addr: DEFAULT_BIND_ADDR,
            jwt_secret: None,
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            bcrypt_cost: DEFAULT_BCRYPT_COST,
            access_token_ttl: Duration::from_secs(DEFAULT_ACCESS_TOKEN_TTL_SECS),
            refresh_token_ttl: Duration::from_secs(DEFAULT_REFRESH_TOKEN_TTL_DAYS * 24 * 3600),
            dev_mode: false,
            introspection: true,
            shared_renders: true,
            rate_limits: true,
            trusted_proxies: Vec::new(),
            log_format: LogFormat::Text,
            limits: Limits::default(),
        }
    }

    /// The embedded default: a SQLite file in the data directory.
    pub fn default_database_url(data_dir: &std::path::Path) -> String {
        format!("sqlite://{}?mode=rwc", data_dir.join("confab.db").display())
    }
}

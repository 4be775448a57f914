//! The test harness: an app per test on its own database, driven through the
//! router (HTTP) and a real socket (WebSocket).
//!
//! Database per test: a temporary SQLite file by default; with
//! `TEST_DATABASE_URL=postgres://…`, a database cloned from a template that is
//! migrated once per test run.

use std::{net::SocketAddr, sync::atomic::Ordering, time::Duration};

use axum::{
    body::Body,
    http::{HeaderMap, Request, StatusCode, header},
};
use confab::{App, Config};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tokio::sync::{OnceCell, oneshot};
use tower::ServiceExt;

/// A fresh database URL for one test, and what keeps it alive.
pub struct TestDb {
    pub url: String,
    _dir: Option<tempfile::TempDir>,
}

pub fn postgres_base_url() -> Option<String> {
    std::env::var("TEST_DATABASE_URL")
        .ok()
        .filter(|u| u.starts_with("postgres"))
}

pub fn is_postgres() -> bool {
    postgres_base_url().is_some()
}

/// `base` with its database name replaced.
pub fn with_database(base: &str, name: &str) -> String {
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, Some(q)),
        None => (base, None),
    };
    let prefix = match head.rfind('/') {
        Some(i) if i > "postgres://".len() => &head[..i],
        _ => head,
    };
    match query {
        Some(q) => format!("{prefix}/{name}?{q}"),
        None => format!("{prefix}/{name}"),
    }
}

static TEMPLATE_READY: OnceCell<()> = OnceCell::const_new();

/// Names are per checkout, so test runs of two checkouts on one server never
/// drop each other's databases.
fn checkout_tag() -> String {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    env!("CARGO_MANIFEST_DIR").hash(&mut h);
    format!("{:08x}", h.finish() as u32)
}

fn template_name() -> String {
    format!("confab_tpl_{}", checkout_tag())
}

fn test_db_prefix() -> String {
    format!("confab_t_{}_", checkout_tag())
}

async fn admin_exec(base: &str, sql: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(base)
        .await
        .expect("connect to TEST_DATABASE_URL");
    conn.execute_unprepared(sql)
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"));
    conn.close().await.expect("close admin connection");
}

/// Once per run: drop what earlier runs left, then migrate a fresh template.
async fn prepare_template(base: &str) {
    use sea_orm::ConnectionTrait;
    let conn = sea_orm::Database::connect(base)
        .await
        .expect("connect to TEST_DATABASE_URL");
    let rows = conn
        .query_all_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            format!(
                "SELECT datname FROM pg_database WHERE datname LIKE '{}%' OR datname = '{}'",
                test_db_prefix(),
                template_name()
            ),
        ))
        .await
        .expect("list test databases");
    for row in rows {
        let name: String = row.try_get("", "datname").expect("datname");
        conn.execute_unprepared(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
            .await
            .expect("drop old test database");
    }
    conn.execute_unprepared(&format!("CREATE DATABASE \"{}\"", template_name()))
        .await
        .expect("create template");
    conn.close().await.expect("close");
    let template = sea_orm::Database::connect(with_database(base, &template_name()))
        .await
        .expect("connect template");
    confab::db::migrate(&template)
        .await
        .expect("migrate template");
    template.close().await.expect("close template");
}

impl TestDb {
    pub async fn new() -> Self {
        match postgres_base_url() {
            Some(base) => {
                TEMPLATE_READY.get_or_init(|| prepare_template(&base)).await;
                let name = format!("{}{}", test_db_prefix(), uuid::Uuid::now_v7().simple());
                admin_exec(
                    &base,
                    &format!(
                        "CREATE DATABASE \"{name}\" TEMPLATE \"{}\"",
                        template_name()
                    ),
                )
                .await;
                Self {
                    url: with_database(&base, &name),
                    _dir: None,
                }
            }
            None => {
                let dir = tempfile::tempdir().expect("temp dir");
                let url = format!("sqlite://{}?mode=rwc", dir.path().join("test.db").display());
                Self {
                    url,
                    _dir: Some(dir),
                }
            }
        }
    }
}

pub fn test_config(db_url: &str, data_dir: &std::path::Path) -> Config {
    let mut config = Config::new(db_url);
    config.bcrypt_cost = 4;
    // A fresh random key per app: no key lives in the repository.
    config.jwt_secret = Some(confab::auth::token::random_secret());
    config.data_dir = data_dir.to_path_buf();
    config.limits.ws_init_timeout = Duration::from_millis(1500);
    // Tests drive the router without a connection: every request shares one
    // client address, and tests send in bursts. The rate-limit tests set
    // their own numbers.
    config.limits.sign_ins_per_ip_per_minute = 100_000;
    config.limits.registrations_per_ip_per_hour = 100_000;
    config.limits.sends_per_user_per_second = 100_000;
    config.limits.send_burst = 100_000;
    config.limits.sockets_per_ip = 10_000;
    config
}

pub struct TestApp {
    pub app: App,
    pub addr: SocketAddr,
    pub db: TestDb,
    stop: Option<oneshot::Sender<()>>,
    _data_dir: tempfile::TempDir,
}

#[derive(Clone, Debug)]
pub struct TestUser {
    pub id: String,
    pub username: String,
    pub token: String,
    pub refresh: String,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    pub async fn spawn_with(tweak: impl FnOnce(&mut Config)) -> Self {
        let db = TestDb::new().await;
        Self::start(db, tweak).await
    }

    async fn start(db: TestDb, tweak: impl FnOnce(&mut Config)) -> Self {
        let data_dir = tempfile::tempdir().expect("data dir");
        let mut config = test_config(&db.url, data_dir.path());
        tweak(&mut config);
        let app = App::build(config).await.expect("build app");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (stop, stopped) = oneshot::channel::<()>();
        let server = app.clone();
        tokio::spawn(async move {
            let _ = server
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await;
        });
        Self {
            app,
            addr,
            db,
            stop: Some(stop),
            _data_dir: data_dir,
        }
    }

    /// A second server instance on the same database (PostgreSQL: another broker).
    pub async fn peer(&self) -> Self {
        let db = TestDb {
            url: self.db.url.clone(),
            _dir: None,
        };
        // Instances of one deployment share the signing key.
        let secret = self.app.state.config.jwt_secret.clone();
        Self::start(db, |c| c.jwt_secret = secret).await
    }

    /// Sends a raw HTTP request through the router.
    pub async fn request(&self, request: Request<Body>) -> (StatusCode, HeaderMap, Vec<u8>) {
        let response = self
            .app
            .router()
            .oneshot(request)
            .await
            .expect("router never fails");
        let status = response.status();
        let headers = response.headers().clone();
        let body = response
            .into_body()
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .to_vec();
        (status, headers, body)
    }

    /// POSTs a GraphQL request; checks that every error carries a code.
    pub async fn gql_raw(
        &self,
        token: Option<&str>,
        query: &str,
        variables: Value,
    ) -> (StatusCode, Value) {
        let mut builder = Request::post("/graphql")
            .header(header::CONTENT_TYPE, "application/json")
            .header(header::ACCEPT, "application/json");
        if let Some(token) = token {
            builder = builder.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = json!({ "query": query, "variables": variables }).to_string();
        let (status, _, body) = self
            .request(builder.body(Body::from(body)).expect("request"))
            .await;
        let value: Value = serde_json::from_slice(&body).expect("JSON response");
        assert_every_error_has_code(&value);
        self.assert_no_uncoded_errors();
        (status, value)
    }

    pub async fn gql(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        self.gql_raw(token, query, variables).await.1
    }

    /// The data of a request that must succeed.
    pub async fn ok(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let value = self.gql(token, query, variables).await;
        assert!(value.get("errors").is_none(), "unexpected errors: {value}");
        value["data"].clone()
    }

    pub async fn register(&self, username: &str) -> TestUser {
        let data = self
            .ok(
                None,
                "mutation($i: RegisterInput!) { register(input: $i) { accessToken refreshToken user { id username } } }",
                json!({ "i": { "username": username, "email": format!("{username}@example.com"), "password": "correct horse" } }),
            )
            .await;
        let payload = &data["register"];
        TestUser {
            id: payload["user"]["id"].as_str().expect("id").to_owned(),
            username: username.to_owned(),
            token: payload["accessToken"].as_str().expect("token").to_owned(),
            refresh: payload["refreshToken"]
                .as_str()
                .expect("refresh")
                .to_owned(),
        }
    }

    /// Sends the server its stop signal (as SIGTERM would): it stops
    /// accepting, tells live sockets to close, lets requests in flight finish.
    pub fn stop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }

    /// A resolver error that reached a response without a code is a bug the
    /// server papers over as INTERNAL_SERVER_ERROR (and logs): fail on it.
    pub fn assert_no_uncoded_errors(&self) {
        let uncoded = self.app.state.uncoded_errors.load(Ordering::Relaxed);
        assert_eq!(
            uncoded, 0,
            "{uncoded} field error(s) left a resolver without extensions.code (see the log)"
        );
    }

    pub fn ws_url(&self) -> String {
        format!("ws://{}/graphql/ws", self.addr)
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        // Subscriptions and WebSocket requests answer outside `gql_raw`.
        if !std::thread::panicking() {
            self.assert_no_uncoded_errors();
        }
        self.app.begin_shutdown();
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

/// Every error in every response carries `extensions.code`.
pub fn assert_every_error_has_code(value: &Value) {
    if let Some(errors) = value.get("errors").and_then(Value::as_array) {
        for err in errors {
            assert!(
                err["extensions"]["code"].is_string(),
                "error without extensions.code: {err}"
            );
        }
    }
}

/// The code of the first error.
pub fn error_code(value: &Value) -> &str {
    value["errors"][0]["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error in {value}"))
}

/// Waits for `fut` at most `secs` seconds.
pub async fn within<T>(secs: u64, fut: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), fut)
        .await
        .expect("timed out")
}

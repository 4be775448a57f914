//! The project's benchmark: speed targets measured in process, and load
//! scenarios to point at a running deployment (never timed assertions in tests).
//!
//! Speed targets (a server of its own, in process):
//!
//! 1. History paging: a page deep in a long room history costs what the first
//!    page costs (keyset, never OFFSET).
//! 2. Login: a wrong password and an unknown user take about the same time
//!    (medians within a factor of 2).
//!
//! cargo run --release --features bench --example bench -- [DATABASE_URL] [ROWS]
//!
//! Without a URL it uses a temporary SQLite file. It creates its own rows in
//! the database it is given: point it at a scratch database.
//!
//! Load scenarios (traffic to the given URL only; see `load` below and the
//! README's Benchmark section):
//!
//! cargo run --release --features bench --example bench -- history|send|fanout|idle --url http://127.0.0.1:8080 [options]

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

use std::time::{Duration, Instant};

use axum::{
    body::Body,
    http::{Request, header},
};
use confab::{
    App, Config,
    graphql::id::{ListKind, encode_cursor},
};
use http_body_util::BodyExt;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use serde_json::{Value, json};
use tower::ServiceExt;

async fn gql(app: &App, token: Option<&str>, query: &str, variables: Value) -> Value {
    let mut req = Request::post("/graphql").header(header::CONTENT_TYPE, "application/json");
    if let Some(token) = token {
        req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
    }
    let body = json!({ "query": query, "variables": variables }).to_string();
    let res = app
        .router()
        .oneshot(req.body(Body::from(body)).unwrap())
        .await
        .unwrap();
    serde_json::from_slice(&res.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

async fn time<F: std::future::Future<Output = Value>>(
    runs: usize,
    mut f: impl FnMut() -> F,
) -> Duration {
    let mut samples = Vec::with_capacity(runs);
    for _ in 0..runs {
        let started = Instant::now();
        let value = f().await;
        assert!(value.get("errors").is_none(), "{value}");
        samples.push(started.elapsed());
    }
    median(samples)
}

#[tokio::main]
async fn main() {
    let mut args = std::env::args().skip(1).peekable();
    if let Some(scenario) = args.peek().and_then(|a| load::Scenario::from_name(a)) {
        args.next();
        load::run(scenario, args.collect()).await;
        return;
    }
    speed_targets(args).await;
}

async fn speed_targets(mut args: impl Iterator<Item = String>) {
    let dir = tempfile::tempdir().unwrap();
    let url = args
        .next()
        .filter(|url| !url.is_empty())
        .unwrap_or_else(|| {
            format!(
                "sqlite://{}?mode=rwc",
                dir.path().join("bench.db").display()
            )
        });
    let rows: u64 = args.next().map_or(200_000, |n| n.parse().unwrap());
    let mut config = Config::new(&url);
    config.data_dir = dir.path().to_path_buf();
    config.jwt_secret = Some(confab::auth::token::random_secret());
    let app = App::build(config).await.unwrap();
    let db = &app.state.db;
    let backend = db.get_database_backend();

    let name = format!(
        "bench_{}",
        uuid::Uuid::now_v7().simple().to_string().get(20..).unwrap()
    );
    let reg = gql(
        &app,
        None,
        "mutation($i: RegisterInput!) { register(input: $i) { accessToken user { id } } }",
        json!({ "i": { "username": name, "email": format!("{name}@example.com"), "password": "bench password" } }),
    )
    .await;
    let token = reg["data"]["register"]["accessToken"]
        .as_str()
        .unwrap()
        .to_owned();
    let room = gql(
        &app,
        Some(&token),
        "mutation { createRoom(input: { name: \"bench\" }) { id } }",
        json!({}),
    )
    .await;
    let room_gid = room["data"]["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let (_, room_id) = confab::graphql::id::decode_any(&room_gid).unwrap();
    let user = confab::service::users::find_by_username(db, &name)
        .await
        .unwrap()
        .unwrap();

    // Seed the history in SQL, one statement.
    let started = Instant::now();
    let seed = match backend {
        DbBackend::Postgres => Statement::from_sql_and_values(
            backend,
            "INSERT INTO messages (id, room_id, sender_id, content, created_at) \
             SELECT gen_random_uuid(), $1, $2, 'message ' || g, now() - make_interval(secs => g / 1000.0) \
             FROM generate_series(1, $3::bigint) g",
            [room_id.into(), user.id.into(), (rows as i64).into()],
        ),
        _ => Statement::from_sql_and_values(
            backend,
            "WITH RECURSIVE g(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM g WHERE n < ?3) \
             INSERT INTO messages (id, room_id, sender_id, content, created_at) \
             SELECT randomblob(16), ?1, ?2, 'message ' || n, \
             strftime('%Y-%m-%dT%H:%M:%f+00:00', 'now', '-' || (n / 1000.0) || ' seconds') FROM g",
            [room_id.into(), user.id.into(), (rows as i64).into()],
        ),
    };
    db.execute_raw(seed).await.unwrap();
    if backend == DbBackend::Postgres {
        db.execute_unprepared("ANALYZE messages").await.unwrap();
    }
    println!(
        "backend {backend:?}: seeded {rows} messages in one room in {:.1?}",
        started.elapsed()
    );

    // A row half way into the history, for a cursor deep in it.
    let deep = db
        .query_one_raw(Statement::from_sql_and_values(
            backend,
            "SELECT id, created_at FROM messages WHERE room_id = $1 ORDER BY created_at, id LIMIT 1 OFFSET $2"
                .replace('$', if backend == DbBackend::Postgres { "$" } else { "?" })
                .as_str(),
            [room_id.into(), ((rows / 2) as i64).into()],
        ))
        .await
        .unwrap()
        .unwrap();
    let deep_id: uuid::Uuid = deep.try_get("", "id").unwrap();
    let deep_at: chrono::DateTime<chrono::Utc> = deep.try_get("", "created_at").unwrap();
    let cursor = encode_cursor(ListKind::Messages, &deep_at, deep_id);

    let page = "query($r: ID!, $before: String) { room(id: $r) { messages(last: 50, before: $before) { edges { cursor node { id content } } pageInfo { hasPreviousPage } } } }";
    let runs = 30;
    let first = time(runs, || {
        gql(&app, Some(&token), page, json!({ "r": room_gid }))
    })
    .await;
    let middle = time(runs, || {
        gql(
            &app,
            Some(&token),
            page,
            json!({ "r": room_gid, "before": cursor }),
        )
    })
    .await;
    println!(
        "history page of 50: newest {first:.2?}, {} rows deep {middle:.2?} (median of {runs}; ratio {:.2})",
        rows / 2,
        middle.as_secs_f64() / first.as_secs_f64()
    );

    let login = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
    let attempt = |who: String| {
        let app = app.clone();
        async move {
            let v = gql(
                &app,
                None,
                login,
                json!({ "i": { "login": who, "password": "not the password" } }),
            )
            .await;
            // Failures are the point here; keep the limiter out of the measurement.
            app.state.login_limiter.record_success(&who);
            json!({ "data": v["data"] })
        }
    };
    let wrong = time(9, || attempt(name.clone())).await;
    let unknown = time(9, || attempt("no_such_user_bench".into())).await;
    println!(
        "login failure (bcrypt cost {}): wrong password {wrong:.1?}, unknown user {unknown:.1?} (median of 9; ratio {:.2})",
        app.state.config.bcrypt_cost,
        wrong.as_secs_f64() / unknown.as_secs_f64()
    );
}

/// Load scenarios against a running server, over real sockets: HTTP closed
/// loops, WebSocket fan-out and idle subscriptions. Every loop is bounded in
/// count and time, and all traffic goes to `--url`.
mod load {
    use std::{
        net::SocketAddr,
        sync::{
            Arc,
            atomic::{AtomicU64, Ordering},
        },
        time::{Duration, Instant},
    };

    use axum::body::Bytes;
    use clap::Parser;
    use futures_util::{SinkExt, StreamExt, stream};
    use http_body_util::{BodyExt, Full};
    use hyper::{Request, client::conn::http1::SendRequest, header};
    use hyper_util::rt::TokioIo;
    use serde_json::{Value, json};
    use tokio::{net::TcpStream, sync::watch, task::JoinSet};
    use tokio_tungstenite::{
        MaybeTlsStream, WebSocketStream,
        tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
    };

    type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

    const HISTORY: &str = "query($r: ID!) { room(id: $r) { messages(last: 50) { edges { node { content sender { username } } } } } }";
    const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }";
    const MESSAGE_ADDED: &str = "subscription($r: ID!) { messageAdded(roomId: $r) { content } }";
    /// The most deliveries fanout records (4 bytes each).
    const MAX_DELIVERIES: u64 = 10_000_000;
    /// The most sockets fanout and idle open.
    const MAX_SOCKETS: usize = 20_000;
    /// How long one connect, handshake or setup request may take.
    const STEP_TIMEOUT: Duration = Duration::from_secs(30);

    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    pub enum Scenario {
        History,
        Send,
        Fanout,
        Idle,
    }

    impl Scenario {
        pub fn from_name(name: &str) -> Option<Self> {
            match name {
                "history" => Some(Self::History),
                "send" => Some(Self::Send),
                "fanout" => Some(Self::Fanout),
                "idle" => Some(Self::Idle),
                _ => None,
            }
        }

        fn name(self) -> &'static str {
            match self {
                Self::History => "history",
                Self::Send => "send",
                Self::Fanout => "fanout",
                Self::Idle => "idle",
            }
        }
    }

    /// Load scenarios against a running Confab server.
    #[derive(Parser, Debug)]
    #[command(name = "bench history|send|fanout|idle")]
    struct Options {
        /// The server's base URL; GraphQL is <url>/graphql, subscriptions <url>/graphql/ws.
        #[arg(long, default_value = "http://127.0.0.1:8080")]
        url: String,
        /// Connections of the HTTP closed loops (history, send), each with one request in flight.
        #[arg(long, default_value_t = 32)]
        connections: usize,
        /// Seconds a closed loop runs; fanout: seconds of sending.
        #[arg(long, default_value_t = 10)]
        duration: u64,
        /// Requests a closed loop sends at most, over all connections.
        #[arg(long, default_value_t = 1_000_000)]
        max_requests: u64,
        /// Users registered for the run; connections and sockets take them in turn.
        #[arg(long, default_value_t = 4)]
        users: usize,
        /// Messages sent into the bench room before history reads it.
        #[arg(long, default_value_t = 60)]
        seed: usize,
        /// WebSocket subscribers (fanout) or idle subscriptions (idle), one socket each.
        #[arg(long, default_value_t = 200)]
        subscribers: usize,
        /// Messages per second the fanout sender sends.
        #[arg(long, default_value_t = 20)]
        rate: u64,
        /// Seconds fanout waits after its last send for deliveries still on their way.
        #[arg(long, default_value_t = 10)]
        drain: u64,
        /// The server's process id (same machine): idle reports its RSS per socket.
        #[arg(long)]
        server_pid: Option<u32>,
    }

    pub async fn run(scenario: Scenario, args: Vec<String>) {
        let options =
            Options::parse_from(std::iter::once(format!("bench {}", scenario.name())).chain(args));
        assert!(options.connections >= 1 && options.users >= 1 && options.rate >= 1);
        assert!(
            options.subscribers <= MAX_SOCKETS,
            "at most {MAX_SOCKETS} subscribers"
        );
        let target = Arc::new(Target::parse(&options.url).await);
        println!(
            "{}: {} (GraphQL {}{}, WebSocket {})",
            scenario.name(),
            target.addr,
            target.host,
            target.path,
            target.ws_url
        );
        let seed = if scenario == Scenario::History {
            options.seed
        } else {
            0
        };
        let bench = Bench::setup(target, options.users, seed).await;
        match scenario {
            Scenario::History => {
                let room = bench.room.clone();
                let result = closed_loop(
                    &bench,
                    &options,
                    "history",
                    move |_, _| json!({ "query": HISTORY, "variables": { "r": room } }),
                )
                .await;
                result.print("history");
            }
            Scenario::Send => {
                let room = bench.room.clone();
                let result = closed_loop(&bench, &options, "send", move |conn, i| {
                    json!({ "query": SEND, "variables": { "i": { "roomId": room, "content": format!("load {conn} {i}") } } })
                })
                .await;
                result.print("send");
            }
            Scenario::Fanout => fanout(&bench, &options).await,
            Scenario::Idle => idle(&bench, &options).await,
        }
    }

    /// Where the server is.
    struct Target {
        addr: SocketAddr,
        host: String,
        path: String,
        ws_url: String,
    }

    impl Target {
        async fn parse(url: &str) -> Self {
            let rest = url
                .strip_prefix("http://")
                .expect("--url must start with http:// (for TLS, put a local proxy in front)");
            let (authority, path) = rest.find('/').map_or((rest, ""), |i| rest.split_at(i));
            let base = path.trim_end_matches('/');
            let base = base.strip_suffix("/graphql").unwrap_or(base);
            let lookup = if authority.contains(':') {
                authority.to_owned()
            } else {
                format!("{authority}:80")
            };
            let addr = tokio::net::lookup_host(&lookup)
                .await
                .unwrap_or_else(|e| panic!("cannot resolve {lookup}: {e}"))
                .next()
                .unwrap_or_else(|| panic!("{lookup} has no address"));
            Self {
                addr,
                host: authority.to_owned(),
                path: format!("{base}/graphql"),
                ws_url: format!("ws://{authority}{base}/graphql/ws"),
            }
        }
    }

    /// One HTTP/1.1 keep-alive connection: one request at a time.
    struct Http {
        sender: SendRequest<Full<Bytes>>,
        target: Arc<Target>,
    }

    impl Http {
        async fn connect(target: &Arc<Target>) -> Self {
            let connect = async {
                let tcp = TcpStream::connect(target.addr).await?;
                tcp.set_nodelay(true)?;
                let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
                    .await
                    .map_err(std::io::Error::other)?;
                tokio::spawn(async move {
                    let _ = connection.await;
                });
                Ok::<_, std::io::Error>(sender)
            };
            let sender = tokio::time::timeout(STEP_TIMEOUT, connect)
                .await
                .expect("connect timed out")
                .unwrap_or_else(|e| panic!("cannot connect to {}: {e}", target.addr));
            Self {
                sender,
                target: target.clone(),
            }
        }

        /// The body of a 200 answer, or what went wrong; an empty token sends none.
        async fn post(&mut self, token: &str, body: Bytes) -> Result<Bytes, String> {
            self.sender.ready().await.map_err(|e| e.to_string())?;
            let mut request = Request::post(&self.target.path)
                .header(header::HOST, &self.target.host)
                .header(header::CONTENT_TYPE, "application/json");
            if !token.is_empty() {
                request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let request = request.body(Full::new(body)).map_err(|e| e.to_string())?;
            let response = self
                .sender
                .send_request(request)
                .await
                .map_err(|e| e.to_string())?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            if status != hyper::StatusCode::OK {
                return Err(format!(
                    "HTTP {status}: {}",
                    String::from_utf8_lossy(&bytes)
                ));
            }
            Ok(bytes)
        }

        /// The data of a setup request that must succeed.
        async fn ok(&mut self, token: &str, query: &str, variables: Value) -> Value {
            let body = json!({ "query": query, "variables": variables }).to_string();
            let answer = tokio::time::timeout(STEP_TIMEOUT, self.post(token, body.into()))
                .await
                .expect("setup request timed out")
                .unwrap_or_else(|e| panic!("setup request failed: {e}"));
            let value: Value = serde_json::from_slice(&answer).expect("JSON answer");
            assert!(
                value.get("errors").is_none(),
                "setup request failed: {value}"
            );
            value["data"].clone()
        }
    }

    /// A GraphQL answer that carries errors (no full parse on the hot loop).
    fn has_errors(body: &[u8]) -> bool {
        body.windows(8).any(|w| w == b"\"errors\"")
    }

    /// Users of the run and the room they share.
    struct Bench {
        target: Arc<Target>,
        tokens: Vec<String>,
        room: String,
    }

    impl Bench {
        /// Registers `users` users, one creates a room the others join, and it gets `seed` messages.
        async fn setup(target: Arc<Target>, users: usize, seed: usize) -> Self {
            let started = Instant::now();
            let tag = format!("{:08x}", rand::random::<u32>());
            let mut http = Http::connect(&target).await;
            let mut tokens = Vec::with_capacity(users);
            for i in 0..users {
                let name = format!("bench_{tag}_{i}");
                let data = http
                    .ok(
                        "",
                        "mutation($i: RegisterInput!) { register(input: $i) { accessToken } }",
                        json!({ "i": { "username": name, "email": format!("{name}@example.com"), "password": "bench password" } }),
                    )
                    .await;
                tokens.push(
                    data["register"]["accessToken"]
                        .as_str()
                        .expect("token")
                        .to_owned(),
                );
            }
            let data = http
                .ok(
                    &tokens[0],
                    "mutation($i: CreateRoomInput!) { createRoom(input: $i) { id } }",
                    json!({ "i": { "name": format!("bench {tag}") } }),
                )
                .await;
            let room = data["createRoom"]["id"]
                .as_str()
                .expect("room id")
                .to_owned();
            for token in &tokens[1..] {
                http.ok(
                    token,
                    "mutation($r: ID!) { joinRoom(roomId: $r) { id } }",
                    json!({ "r": room }),
                )
                .await;
            }
            for i in 0..seed {
                let token = &tokens[i % tokens.len()];
                http.ok(
                    token,
                    SEND,
                    json!({ "i": { "roomId": room, "content": format!("seed {i}") } }),
                )
                .await;
            }
            println!(
                "setup: {users} users, room {room}, {seed} messages seeded, in {:.1?}",
                started.elapsed()
            );
            Self {
                target,
                tokens,
                room,
            }
        }

        fn token(&self, i: usize) -> &str {
            &self.tokens[i % self.tokens.len()]
        }
    }

    /// Sorted samples in microseconds.
    struct Latencies(Vec<u32>);

    impl Latencies {
        fn new(mut samples: Vec<u32>) -> Self {
            samples.sort_unstable();
            Self(samples)
        }

        fn at(&self, q: f64) -> String {
            if self.0.is_empty() {
                return "-".into();
            }
            let i = ((self.0.len() - 1) as f64 * q).round() as usize;
            let us = self.0[i];
            if us >= 10_000 {
                format!("{:.0} ms", f64::from(us) / 1000.0)
            } else {
                format!("{:.2} ms", f64::from(us) / 1000.0)
            }
        }
    }

    fn micros(elapsed: Duration) -> u32 {
        u32::try_from(elapsed.as_micros()).unwrap_or(u32::MAX)
    }

    /// Prints a table: a header row and one row of values.
    fn table(header: &[&str], row: &[String]) {
        let widths: Vec<usize> = header
            .iter()
            .zip(row)
            .map(|(h, v)| h.len().max(v.len()))
            .collect();
        let line = |cells: Vec<String>| {
            let cells: Vec<String> = cells
                .iter()
                .zip(&widths)
                .map(|(c, w)| format!("{c:>w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(header.iter().map(|h| (*h).to_owned()).collect());
        println!(
            "|{}|",
            widths
                .iter()
                .map(|w| format!("{}:", "-".repeat(w + 1)))
                .collect::<Vec<_>>()
                .join("|")
        );
        line(row.to_vec());
    }

    struct LoopResult {
        connections: usize,
        elapsed: Duration,
        ok: u64,
        errors: u64,
        first_error: Option<String>,
        latencies: Latencies,
    }

    impl LoopResult {
        fn print(&self, name: &str) {
            let secs = self.elapsed.as_secs_f64();
            println!();
            table(
                &[
                    "scenario",
                    "connections",
                    "seconds",
                    "ok",
                    "errors",
                    "req/s",
                    "p50",
                    "p90",
                    "p99",
                    "max",
                ],
                &[
                    name.to_owned(),
                    self.connections.to_string(),
                    format!("{secs:.1}"),
                    self.ok.to_string(),
                    self.errors.to_string(),
                    format!("{:.0}", self.ok as f64 / secs),
                    self.latencies.at(0.5),
                    self.latencies.at(0.9),
                    self.latencies.at(0.99),
                    self.latencies.at(1.0),
                ],
            );
            if let Some(err) = &self.first_error {
                println!("first error: {err}");
            }
        }
    }

    /// `connections` connections, each sending `body(connection, i)` as soon
    /// as its last answer came, until `duration` or `max_requests`.
    async fn closed_loop(
        bench: &Bench,
        options: &Options,
        name: &'static str,
        body: impl Fn(usize, u64) -> Value + Send + Sync + 'static,
    ) -> LoopResult {
        let body = Arc::new(body);
        let issued = Arc::new(AtomicU64::new(0));
        let ok = Arc::new(AtomicU64::new(0));
        let errors = Arc::new(AtomicU64::new(0));
        let mut connections = Vec::with_capacity(options.connections);
        for _ in 0..options.connections {
            connections.push(Http::connect(&bench.target).await);
        }
        let started = Instant::now();
        let deadline = started + Duration::from_secs(options.duration);
        let mut tasks = JoinSet::new();
        for (conn, mut http) in connections.into_iter().enumerate() {
            let token = bench.token(conn).to_owned();
            let (body, issued, ok, errors) =
                (body.clone(), issued.clone(), ok.clone(), errors.clone());
            let max = options.max_requests;
            tasks.spawn(async move {
                let mut samples = Vec::new();
                let mut first_error = None;
                loop {
                    let i = issued.fetch_add(1, Ordering::Relaxed);
                    if i >= max || Instant::now() >= deadline {
                        break;
                    }
                    let request = Bytes::from(body(conn, i).to_string());
                    let sent = Instant::now();
                    let answer = tokio::time::timeout_at(
                        deadline.max(sent).into(),
                        http.post(&token, request),
                    )
                    .await;
                    match answer {
                        Err(_) => break, // the run ended with this request in flight
                        Ok(Ok(bytes)) if !has_errors(&bytes) => {
                            samples.push(micros(sent.elapsed()));
                            ok.fetch_add(1, Ordering::Relaxed);
                        }
                        Ok(Ok(bytes)) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert_with(|| {
                                String::from_utf8_lossy(&bytes).into_owned()
                            });
                        }
                        Ok(Err(err)) => {
                            errors.fetch_add(1, Ordering::Relaxed);
                            first_error.get_or_insert(err);
                            break; // the connection is gone
                        }
                    }
                }
                (samples, first_error)
            });
        }
        let progress = {
            let (ok, errors) = (ok.clone(), errors.clone());
            tokio::spawn(async move {
                let mut last = 0;
                let mut tick = tokio::time::interval(Duration::from_secs(1));
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let now = ok.load(Ordering::Relaxed);
                    println!(
                        "[{name}] {:>4.0}s  ok {now:>8}  errors {:>5}  {:>6} req/s",
                        started.elapsed().as_secs_f64(),
                        errors.load(Ordering::Relaxed),
                        now - last
                    );
                    last = now;
                }
            })
        };
        let mut samples = Vec::new();
        let mut first_error = None;
        while let Some(done) = tasks.join_next().await {
            let (mut s, e) = done.expect("load task");
            samples.append(&mut s);
            if first_error.is_none() {
                first_error = e;
            }
        }
        let elapsed = started.elapsed();
        progress.abort();
        LoopResult {
            connections: options.connections,
            elapsed,
            ok: ok.load(Ordering::Relaxed),
            errors: errors.load(Ordering::Relaxed),
            first_error,
            latencies: Latencies::new(samples),
        }
    }

    /// A graphql-transport-ws socket, initialised with `token`, subscribed to `room`'s messageAdded.
    async fn subscribe(target: &Target, token: &str, room: &str) -> Ws {
        let steps = async {
            let mut request = target.ws_url.as_str().into_client_request()?;
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("graphql-transport-ws"),
            );
            let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
            let init = json!({ "type": "connection_init", "payload": { "authorization": format!("Bearer {token}") } });
            ws.send(Message::text(init.to_string())).await?;
            loop {
                match ws.next().await {
                    Some(Ok(Message::Text(text))) if text.contains("connection_ack") => break,
                    Some(Ok(Message::Text(_) | Message::Ping(_) | Message::Pong(_))) => {}
                    other => {
                        return Err(tokio_tungstenite::tungstenite::Error::Io(
                            std::io::Error::other(format!("no connection_ack: {other:?}")),
                        ));
                    }
                }
            }
            let subscribe = json!({ "id": "1", "type": "subscribe", "payload": { "query": MESSAGE_ADDED, "variables": { "r": room } } });
            ws.send(Message::text(subscribe.to_string())).await?;
            Ok(ws)
        };
        tokio::time::timeout(STEP_TIMEOUT, steps)
            .await
            .expect("WebSocket setup timed out")
            .unwrap_or_else(|e| panic!("WebSocket setup failed: {e}"))
    }

    /// The `messageAdded.content` of a `next` frame; answers the server's pings.
    async fn content(ws: &mut Ws, message: Message) -> Option<String> {
        let Message::Text(text) = message else {
            return None;
        };
        let value: Value = serde_json::from_str(text.as_str()).ok()?;
        match value["type"].as_str() {
            Some("next") => value["payload"]["data"]["messageAdded"]["content"]
                .as_str()
                .map(str::to_owned),
            Some("ping") => {
                let _ = ws.send(Message::text(r#"{"type":"pong"}"#)).await;
                None
            }
            Some("error" | "complete") => {
                println!("subscription ended: {value}");
                None
            }
            _ => None,
        }
    }

    /// What one subscriber saw.
    #[derive(Default)]
    struct SubscriberState {
        /// The highest sync marker received (0: none yet).
        marker: AtomicU64,
        /// Fan-out messages received.
        delivered: AtomicU64,
    }

    /// Opens `count` subscribed sockets, 64 handshakes at a time, with a progress line.
    async fn open_subscribers(bench: &Bench, count: usize, name: &str) -> Vec<Ws> {
        let opened = AtomicU64::new(0);
        let started = Instant::now();
        let mut sockets = Vec::with_capacity(count);
        let mut next_report = Duration::from_secs(1);
        let mut handshakes = stream::iter(0..count)
            .map(|i| {
                let opened = &opened;
                async move {
                    let ws = subscribe(&bench.target, bench.token(i), &bench.room).await;
                    opened.fetch_add(1, Ordering::Relaxed);
                    ws
                }
            })
            .buffer_unordered(64);
        while let Some(ws) = handshakes.next().await {
            sockets.push(ws);
            if started.elapsed() >= next_report {
                println!("[{name}] opening sockets: {}/{count}", sockets.len());
                next_report += Duration::from_secs(1);
            }
        }
        println!(
            "[{name}] {count} sockets subscribed in {:.1?}",
            started.elapsed()
        );
        sockets
    }

    /// Sends markers until every subscriber has one (all live), at most 40 tries.
    async fn sync(bench: &Bench, http: &mut Http, states: &[Arc<SubscriberState>], name: &str) {
        for marker in 1..=40u64 {
            http.ok(
                bench.token(0),
                SEND,
                json!({ "i": { "roomId": bench.room, "content": format!("sync {marker}") } }),
            )
            .await;
            let waited = Instant::now();
            while waited.elapsed() < Duration::from_secs(2) {
                let live = states
                    .iter()
                    .filter(|s| s.marker.load(Ordering::Relaxed) >= marker)
                    .count();
                if live == states.len() {
                    println!("[{name}] all {live} subscriptions live");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            let live = states
                .iter()
                .filter(|s| s.marker.load(Ordering::Relaxed) >= marker)
                .count();
            println!(
                "[{name}] waiting for subscriptions: {live}/{} live",
                states.len()
            );
        }
        panic!("subscriptions never all went live");
    }

    /// Reads a subscriber's socket until `stop`: marks sync markers, times fan-out messages.
    async fn read_subscriber(
        mut ws: Ws,
        state: Arc<SubscriberState>,
        sent_at: Arc<Vec<AtomicU64>>,
        origin: Instant,
        mut stop: watch::Receiver<bool>,
    ) -> Vec<u32> {
        let mut latencies = Vec::new();
        loop {
            tokio::select! {
                _ = stop.changed() => break,
                frame = ws.next() => {
                    let Some(Ok(message)) = frame else { break };
                    let received = micros(origin.elapsed());
                    let Some(content) = content(&mut ws, message).await else { continue };
                    if let Some(marker) = content.strip_prefix("sync ") {
                        let marker = marker.parse().unwrap_or(0);
                        state.marker.fetch_max(marker, Ordering::Relaxed);
                    } else if let Some(seq) = content.strip_prefix("fan ") {
                        let sent = seq
                            .parse::<usize>()
                            .ok()
                            .and_then(|seq| sent_at.get(seq))
                            .map(|at| at.load(Ordering::Relaxed));
                        if let Some(sent) = sent.filter(|&s| s > 0) {
                            latencies.push(received.saturating_sub(sent as u32));
                            state.delivered.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }
        }
        let _ = ws.close(None).await;
        latencies
    }

    /// N subscribers on one room; a sender at `rate` messages/s for `duration`
    /// seconds; send→frame latency and deliveries.
    async fn fanout(bench: &Bench, options: &Options) {
        let messages = options.rate * options.duration;
        let expected = messages * options.subscribers as u64;
        assert!(
            expected <= MAX_DELIVERIES,
            "subscribers × rate × duration is at most {MAX_DELIVERIES}"
        );
        let sockets = open_subscribers(bench, options.subscribers, "fanout").await;
        // Microseconds from `origin` at which message `seq` was sent (0: not yet).
        let origin = Instant::now() - Duration::from_micros(1);
        let sent_at: Arc<Vec<AtomicU64>> =
            Arc::new((0..messages).map(|_| AtomicU64::new(0)).collect());
        let (stop_tx, stop) = watch::channel(false);
        let mut states = Vec::with_capacity(sockets.len());
        let mut readers = JoinSet::new();
        for ws in sockets {
            let state = Arc::new(SubscriberState::default());
            states.push(state.clone());
            readers.spawn(read_subscriber(
                ws,
                state,
                sent_at.clone(),
                origin,
                stop.clone(),
            ));
        }
        let mut http = Http::connect(&bench.target).await;
        sync(bench, &mut http, &states, "fanout").await;

        // The sender: a few connections so one slow answer does not hold the rate back.
        let senders: Vec<_> = {
            let mut v = Vec::new();
            for _ in 0..4 {
                v.push(Arc::new(tokio::sync::Mutex::new(
                    Http::connect(&bench.target).await,
                )));
            }
            v
        };
        let send_errors = Arc::new(AtomicU64::new(0));
        let started = Instant::now();
        let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / options.rate as f64));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut sends = JoinSet::new();
        let delivered = || -> u64 {
            states
                .iter()
                .map(|s| s.delivered.load(Ordering::Relaxed))
                .sum()
        };
        let mut next_report = Duration::from_secs(1);
        for seq in 0..messages {
            tick.tick().await;
            let sender = senders[seq as usize % senders.len()].clone();
            let (sent_at, errors) = (sent_at.clone(), send_errors.clone());
            let token = bench.token(seq as usize).to_owned();
            let body = json!({ "query": SEND, "variables": { "i": { "roomId": bench.room, "content": format!("fan {seq}") } } })
                .to_string();
            sends.spawn(async move {
                let mut http = sender.lock().await;
                sent_at[seq as usize].store(u64::from(micros(origin.elapsed())), Ordering::Relaxed);
                match tokio::time::timeout(STEP_TIMEOUT, http.post(&token, body.into())).await {
                    Ok(Ok(bytes)) if !has_errors(&bytes) => {}
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            });
            if started.elapsed() >= next_report {
                println!(
                    "[fanout] {:>4.0}s  sent {}/{messages}  delivered {}/{}",
                    started.elapsed().as_secs_f64(),
                    seq + 1,
                    delivered(),
                    (seq + 1) * options.subscribers as u64
                );
                next_report += Duration::from_secs(1);
            }
        }
        while sends.join_next().await.is_some() {}
        let sending = started.elapsed();
        let drain_until = Instant::now() + Duration::from_secs(options.drain);
        while delivered() < expected && Instant::now() < drain_until {
            tokio::time::sleep(Duration::from_millis(100)).await;
            if started.elapsed() >= next_report {
                println!(
                    "[fanout] {:>4.0}s  draining  delivered {}/{expected}",
                    started.elapsed().as_secs_f64(),
                    delivered()
                );
                next_report += Duration::from_secs(1);
            }
        }
        let got = delivered();
        let _ = stop_tx.send(true);
        let mut samples = Vec::with_capacity(got as usize);
        while let Some(done) = readers.join_next().await {
            samples.append(&mut done.expect("subscriber task"));
        }
        let latencies = Latencies::new(samples);
        println!();
        table(
            &[
                "scenario",
                "subscribers",
                "msg/s",
                "seconds",
                "sent",
                "send errors",
                "delivered",
                "expected",
                "delivered %",
                "p50",
                "p99",
                "max",
            ],
            &[
                "fanout".into(),
                options.subscribers.to_string(),
                options.rate.to_string(),
                format!("{:.1}", sending.as_secs_f64()),
                messages.to_string(),
                send_errors.load(Ordering::Relaxed).to_string(),
                got.to_string(),
                expected.to_string(),
                format!("{:.2}", 100.0 * got as f64 / expected.max(1) as f64),
                latencies.at(0.5),
                latencies.at(0.99),
                latencies.at(1.0),
            ],
        );
    }

    /// The resident set of process `pid`, in KiB (Linux /proc).
    fn rss_kib(pid: u32) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
            .unwrap_or_else(|e| panic!("cannot read /proc/{pid}/status: {e}"));
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS in /proc/PID/status")
    }

    /// N sockets, each with one idle messageAdded subscription; server RSS per socket.
    async fn idle(bench: &Bench, options: &Options) {
        let before = options.server_pid.map(rss_kib);
        let sockets = open_subscribers(bench, options.subscribers, "idle").await;
        let (stop_tx, stop) = watch::channel(false);
        let sent_at = Arc::new(Vec::new());
        let origin = Instant::now();
        let mut states = Vec::with_capacity(sockets.len());
        let mut readers = JoinSet::new();
        for ws in sockets {
            let state = Arc::new(SubscriberState::default());
            states.push(state.clone());
            readers.spawn(read_subscriber(
                ws,
                state,
                sent_at.clone(),
                origin,
                stop.clone(),
            ));
        }
        let mut http = Http::connect(&bench.target).await;
        sync(bench, &mut http, &states, "idle").await;
        // Hold them idle a while (bounded by --duration) before reading the RSS.
        let hold = Duration::from_secs(options.duration.min(60));
        println!(
            "[idle] holding {} idle subscriptions for {hold:?}",
            states.len()
        );
        tokio::time::sleep(hold).await;
        let after = options.server_pid.map(rss_kib);
        let _ = stop_tx.send(true);
        while readers.join_next().await.is_some() {}
        let n = options.subscribers.max(1) as f64;
        let kib = |v: Option<u64>| v.map_or("-".to_owned(), |v| format!("{v} KiB"));
        let per = match (before, after) {
            (Some(b), Some(a)) => format!("{:.1} KiB", (a as f64 - b as f64) / n),
            _ => "- (give --server-pid)".to_owned(),
        };
        println!();
        table(
            &[
                "scenario",
                "sockets",
                "subscriptions live",
                "server RSS before",
                "server RSS after",
                "RSS per socket",
            ],
            &[
                "idle".into(),
                options.subscribers.to_string(),
                states.len().to_string(),
                kib(before),
                kib(after),
                per,
            ],
        );
    }
}

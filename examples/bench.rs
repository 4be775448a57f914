//! Benchmarks for the speed targets (never timed assertions in tests):
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
    let mut args = std::env::args().skip(1);
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

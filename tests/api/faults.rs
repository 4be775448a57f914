//! Issue 9, faults: a panicking request handler, and the database going
//! away under a live server and coming back.

use std::{
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use async_graphql::{
    Schema, ServerResult, Value as GqlValue,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};
use axum::{
    body::{Body, Bytes},
    http::{Request, StatusCode, header},
};
use confab::{
    App,
    graphql::{Endpoint, Mutation, Query, Subscription, node::NodeInterface},
};
use futures_util::StreamExt;
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::{
    net::{TcpListener, TcpSocket, TcpStream},
    task::JoinHandle,
};
use tokio_tungstenite::tungstenite::Message;

use crate::{
    support::{TestApp, TestDb, TestUser, assert_every_error_has_code, postgres_base_url, within},
    ws::{self, Socket},
};

// ---------------------------------------------------------------------------
// A panic in a request handler
// ---------------------------------------------------------------------------

/// Makes any field aliased `boom` panic: a resolver bug reached through the
/// real schema, handler and connection loop, without adding anything to
/// the served API (the test swaps the app's endpoint for one whose schema
/// carries this extension).
struct PanicOnBoom;

impl ExtensionFactory for PanicOnBoom {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(PanicOnBoom)
    }
}

#[async_graphql::async_trait::async_trait]
impl Extension for PanicOnBoom {
    async fn resolve(
        &self,
        ctx: &ExtensionContext<'_>,
        info: ResolveInfo<'_>,
        next: NextResolve<'_>,
    ) -> ServerResult<Option<GqlValue>> {
        assert!(
            info.alias != Some("boom"),
            "resolver bug planted by the test"
        );
        next.run(ctx, info).await
    }
}

/// Log lines written while a test runs on its own thread.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn post(query: &str) -> Request<Full<Bytes>> {
    Request::post("/graphql")
        .header(header::HOST, "confab.test")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Full::new(Bytes::from(
            json!({ "query": query }).to_string(),
        )))
        .unwrap()
}

/// A real served app whose schema panics in any field aliased `boom`: its
/// address, what stops it, and its task.
async fn serve_with_panics(
    db: &TestDb,
    data: &std::path::Path,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    JoinHandle<std::io::Result<()>>,
) {
    let mut app = App::build(crate::support::test_config(&db.url, data))
        .await
        .unwrap();
    let schema = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .register_output_type::<NodeInterface>()
    .data(app.state.clone())
    .extension(PanicOnBoom)
    .finish();
    app.endpoint = Endpoint::with_schema(schema, app.state.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.clone().serve(listener, async move {
        let _ = stopped.await;
    }));
    (addr, stop, server)
}

/// A resolver that panics gets a 500 with a coded GraphQL-shaped body,
/// logged, and the same keep-alive connection then serves the next request
/// (without CatchPanicLayer the connection dies with the panic and the
/// client reads no response at all).
#[tokio::test] // current-thread: the server's tasks log to this thread's subscriber
async fn a_panicking_resolver_is_a_coded_500_and_the_connection_lives_on() {
    let log = Captured::default();
    let writer = log.clone();
    let _logging = tracing::subscriber::set_default(
        tracing_subscriber::fmt()
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .finish(),
    );
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (addr, stop, server) = serve_with_panics(&db, data.path()).await;

    let tcp = TcpStream::connect(addr).await.unwrap();
    let (mut client, connection) =
        hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tcp))
            .await
            .unwrap();
    let connection = tokio::spawn(connection);

    let response = within(10, client.send_request(post("{ boom: me { id } }")))
        .await
        .expect("an answer, not a dropped connection");
    assert_eq!(response.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(
        response.headers()[header::CONTENT_TYPE],
        "application/json; charset=utf-8"
    );
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(
        body,
        json!({ "errors": [{ "message": "Internal server error",
                             "extensions": { "code": "INTERNAL_SERVER_ERROR" } }] })
    );
    let logged = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert!(
        logged.contains("request handler panicked")
            && logged.contains("resolver bug planted by the test"),
        "the panic is logged: {logged}"
    );

    // The same connection, and the server, go on serving.
    client.ready().await.expect("connection still open");
    let response = within(10, client.send_request(post("{ __typename }")))
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    assert_eq!(body, json!({ "data": { "__typename": "Query" } }));

    drop(client);
    let _ = connection.await;
    let _ = stop.send(());
    within(10, server).await.unwrap().unwrap();
}

/// An operation that panics over a WebSocket gets a coded `error` for its id
/// (its task would otherwise die silently: no `error`, no `complete`, the id
/// taken for good); the socket stays open and the id can be used again.
#[tokio::test]
async fn a_panicking_operation_over_a_websocket_ends_with_a_coded_error() {
    use tokio_tungstenite::{
        connect_async,
        tungstenite::{client::IntoClientRequest, http::HeaderValue},
    };
    let db = TestDb::new().await;
    let data = tempfile::tempdir().unwrap();
    let (addr, stop, server) = serve_with_panics(&db, data.path()).await;
    let mut request = format!("ws://{addr}/graphql/ws")
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    let (mut socket, _) = connect_async(request).await.unwrap();
    ws::send(&mut socket, json!({ "type": "connection_init" })).await;
    assert_eq!(ws::next_json(&mut socket).await["type"], "connection_ack");
    let subscribe =
        |query: &str| json!({ "id": "1", "type": "subscribe", "payload": { "query": query } });
    ws::send(&mut socket, subscribe("{ boom: me { id } }")).await;
    let error = ws::next_json(&mut socket).await;
    assert_eq!(error["type"], "error", "{error}");
    assert_eq!(error["id"], "1");
    assert_eq!(
        error["payload"][0]["extensions"]["code"], "INTERNAL_SERVER_ERROR",
        "{error}"
    );
    // The id is free again and the socket serves on.
    ws::send(&mut socket, subscribe("{ __typename }")).await;
    let next = ws::next_json(&mut socket).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(next["payload"]["data"]["__typename"], "Query");
    assert_eq!(ws::next_json(&mut socket).await["type"], "complete");
    drop(socket);
    let _ = stop.send(());
    within(10, server).await.unwrap().unwrap();
}

// ---------------------------------------------------------------------------
// The database goes away and comes back (PostgreSQL)
// ---------------------------------------------------------------------------

/// A TCP proxy on loopback between a server and PostgreSQL that a test can
/// cut (every proxied connection dropped, new ones refused: the port is
/// closed) and restore (the same port listens again). At most
/// `MAX_CONNECTIONS` proxied at once.
struct DbProxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    accept: Option<JoinHandle<()>>,
    connections: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl DbProxy {
    const MAX_CONNECTIONS: usize = 64;

    async fn start(upstream: SocketAddr) -> Self {
        let mut proxy = Self {
            addr: "127.0.0.1:0".parse().unwrap(),
            upstream,
            accept: None,
            connections: Arc::default(),
        };
        proxy.listen();
        proxy
    }

    /// Listens on `self.addr` (a fresh port the first time).
    fn listen(&mut self) {
        let socket = TcpSocket::new_v4().unwrap();
        socket.set_reuseaddr(true).unwrap();
        socket.bind(self.addr).unwrap();
        let listener = socket.listen(64).unwrap();
        self.addr = listener.local_addr().unwrap();
        let (upstream, connections) = (self.upstream, self.connections.clone());
        self.accept = Some(tokio::spawn(async move {
            while let Ok((mut client, _)) = listener.accept().await {
                let mut live = connections.lock().unwrap();
                live.retain(|c: &JoinHandle<()>| !c.is_finished());
                if live.len() >= Self::MAX_CONNECTIONS {
                    continue;
                }
                live.push(tokio::spawn(async move {
                    if let Ok(mut server) = TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                }));
            }
        }));
    }

    /// The database is gone: open connections drop, new ones are refused.
    async fn cut(&mut self) {
        if let Some(accept) = self.accept.take() {
            accept.abort();
            let _ = accept.await;
        }
        let live = std::mem::take(&mut *self.connections.lock().unwrap());
        for connection in live {
            connection.abort();
            let _ = connection.await;
        }
    }

    /// The database is back, on the same address.
    fn restore(&mut self) {
        self.listen();
    }
}

/// `url` (postgres://[user@]host[:port]/db?…) through `proxy` instead.
fn through(url: &str, proxy: SocketAddr) -> String {
    let (scheme, rest) = url.split_once("://").unwrap();
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    let user = authority
        .rsplit_once('@')
        .map_or(String::new(), |(u, _)| format!("{u}@"));
    format!("{scheme}://{user}{proxy}{path}")
}

/// Where TEST_DATABASE_URL's server listens (TCP only).
async fn upstream_of(url: &str) -> Option<SocketAddr> {
    let rest = url.split_once("://")?.1;
    let authority = rest.split('/').next()?;
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let host = if host.contains(':') {
        host.to_owned()
    } else {
        format!("{host}:5432")
    };
    tokio::net::lookup_host(host).await.ok()?.next()
}

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { content } }";

/// One send: Ok(()) when answered with the message, Err(code) otherwise.
async fn try_send(app: &TestApp, user: &TestUser, room: &str, content: &str) -> Result<(), String> {
    let (_, v) = app
        .gql_raw(
            Some(&user.token),
            SEND,
            json!({ "i": { "roomId": room, "content": content } }),
        )
        .await;
    if v["data"]["sendMessage"]["content"] == content {
        Ok(())
    } else {
        Err(v["errors"][0]["extensions"]["code"]
            .as_str()
            .unwrap_or("(none)")
            .to_owned())
    }
}

async fn readyz(app: &TestApp) -> StatusCode {
    app.request(Request::get("/readyz").body(Body::empty()).unwrap())
        .await
        .0
}

/// The next message content on a `messageAdded` subscription with id "s",
/// or None if nothing comes within `ms`. Anything but `next` fails the test.
async fn next_content(socket: &mut Socket, ms: u64) -> Option<String> {
    let deadline = tokio::time::Instant::now() + Duration::from_millis(ms);
    loop {
        let text = match tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?
        {
            Some(Ok(Message::Text(text))) => text,
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
            other => panic!("subscription socket ended: {other:?}"),
        };
        let v: Value = serde_json::from_str(text.as_str()).unwrap();
        match v["type"].as_str() {
            Some("ping" | "pong" | "ka") => continue,
            Some("next") => {
                assert_every_error_has_code(&v["payload"]);
                return Some(
                    v["payload"]["data"]["messageAdded"]["content"]
                        .as_str()
                        .unwrap_or_else(|| panic!("not a message: {v}"))
                        .to_owned(),
                );
            }
            _ => panic!("the subscription ended or failed: {v}"),
        }
    }
}

/// While the database is unreachable: /readyz is 503, requests fail within
/// a few seconds with a coded error, and nothing hangs. Once it is back the
/// server serves again without a restart, every acknowledged send is
/// stored once, and a live subscriber gets every stored message once (its
/// LISTEN connection reconnects and the room's reader re-reads).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_database_goes_away_and_comes_back() {
    let Some(base) = postgres_base_url() else {
        eprintln!(
            "skipped: on SQLite the database is a file inside the process; it cannot go \
             away apart from the server (set TEST_DATABASE_URL for PostgreSQL)"
        );
        return;
    };
    let Some(upstream) = upstream_of(&base).await else {
        eprintln!("skipped: TEST_DATABASE_URL names no TCP address to proxy");
        return;
    };
    let mut proxy = DbProxy::start(upstream).await;
    let proxy_addr = proxy.addr;
    let app = TestApp::spawn_with(|c| c.database_url = through(&c.database_url, proxy_addr)).await;
    let alice = app.register("alice").await;
    let room = app
        .ok(
            Some(&alice.token),
            "mutation { createRoom(input: { name: \"ops\" }) { id } }",
            json!({}),
        )
        .await["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    // A live subscriber, on a socket that does not go through the proxy.
    let mut socket = ws::init(
        &app,
        "graphql-transport-ws",
        json!({ "authorization": format!("Bearer {}", alice.token) }),
    )
    .await;
    ws::send(
        &mut socket,
        json!({ "id": "s", "type": "subscribe", "payload": {
            "query": "subscription($r: ID!) { messageAdded(roomId: $r) { content } }",
            "variables": { "r": room } } }),
    )
    .await;
    let mut received = Vec::new();
    for k in 0.. {
        assert!(k < 50, "the subscription never went live");
        try_send(&app, &alice, &room, &format!("sync-{k}"))
            .await
            .unwrap();
        if let Some(content) = next_content(&mut socket, 500).await {
            received.push(content);
            break;
        }
    }

    let mut acked = Vec::new();
    for k in 0..10 {
        let content = format!("m-before-{k}");
        try_send(&app, &alice, &room, &content).await.unwrap();
        acked.push(content);
    }
    // Sends in flight when the database goes: their outcome is whatever
    // they answer (a send that commits and then loses its answer is
    // allowed, one answered and not stored is not).
    let in_flight: Vec<_> = (0..4)
        .map(|k| {
            let (app_state, token, room) = (app.app.clone(), alice.token.clone(), room.clone());
            tokio::spawn(async move {
                let content = format!("m-cut-{k}");
                let request = Request::post("/graphql")
                    .header(header::CONTENT_TYPE, "application/json")
                    .header(header::AUTHORIZATION, format!("Bearer {token}"))
                    .body(Body::from(
                        json!({ "query": SEND, "variables": { "i": { "roomId": room, "content": content } } })
                            .to_string(),
                    ))
                    .unwrap();
                let response = tower::ServiceExt::oneshot(app_state.router(), request)
                    .await
                    .unwrap();
                let body = response.into_body().collect().await.unwrap().to_bytes();
                let v: Value = serde_json::from_slice(&body).unwrap();
                assert_every_error_has_code(&v);
                (v["data"]["sendMessage"]["content"] == content.as_str()).then_some(content)
            })
        })
        .collect();

    proxy.cut().await;
    let cut_at = Instant::now();

    // While down: /readyz says so, and requests fail fast with a code.
    let started = Instant::now();
    assert_eq!(
        within(10, readyz(&app)).await,
        StatusCode::SERVICE_UNAVAILABLE
    );
    let readyz_took = started.elapsed();
    let attempts: Vec<_> = (0..6)
        .map(|k| {
            let (app, alice, room) = (&app, &alice, &room);
            async move {
                let started = Instant::now();
                let outcome = try_send(app, alice, room, &format!("m-down-{k}")).await;
                (outcome, started.elapsed())
            }
        })
        .collect();
    let outcomes = within(20, futures_util::future::join_all(attempts)).await;
    let slowest = outcomes.iter().map(|(_, t)| *t).max().unwrap();
    for (outcome, took) in &outcomes {
        let code = outcome
            .as_ref()
            .expect_err("a send succeeded with no database");
        assert_eq!(code, "INTERNAL_SERVER_ERROR", "took {took:?}");
    }
    assert!(
        slowest < confab::db::PG_ACQUIRE_TIMEOUT + Duration::from_secs(2),
        "a request waited {slowest:?} for a database that is gone"
    );
    for flight in in_flight {
        if let Some(content) = within(20, flight).await.unwrap() {
            acked.push(content);
        }
    }

    proxy.restore();
    let restored_at = Instant::now();
    within(30, async {
        while readyz(&app).await != StatusCode::OK {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await;
    let ready_after = restored_at.elapsed();
    let mut first_send_after = None;
    for k in 0..10 {
        let content = format!("m-after-{k}");
        within(30, async {
            loop {
                match try_send(&app, &alice, &room, &content).await {
                    Ok(()) => break,
                    Err(code) => assert_eq!(code, "INTERNAL_SERVER_ERROR"),
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
        .await;
        first_send_after.get_or_insert_with(|| restored_at.elapsed());
        acked.push(content);
    }
    try_send(&app, &alice, &room, "end").await.unwrap();
    let live_started = Instant::now();
    loop {
        let content = next_content(&mut socket, 30_000)
            .await
            .expect("the subscriber stalled after the outage");
        if content == "end" {
            break;
        }
        received.push(content);
    }
    eprintln!(
        "database outage: readyz 503 in {readyz_took:?}; slowest failing send {slowest:?}; \
         outage {:?}; ready {ready_after:?} after restore; first send {:?} after restore; \
         subscriber caught up {:?} after the end marker was sent",
        restored_at - cut_at,
        first_send_after.unwrap(),
        live_started.elapsed(),
    );

    // What the database holds, read around the proxy.
    use entity::message;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let direct = sea_orm::Database::connect(&app.db.url).await.unwrap();
    let room_id = confab::graphql::id::decode_any(&room).unwrap().1;
    let stored: Vec<String> = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .all(&direct)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .filter(|c| c.starts_with("m-"))
        .collect();
    direct.close().await.unwrap();
    let live: Vec<String> = received
        .into_iter()
        .filter(|c| c.starts_with("m-"))
        .collect();
    let stored_set: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "a send was stored twice");
    for content in &acked {
        assert!(
            stored_set.contains(content),
            "acknowledged, not stored: {content}"
        );
    }
    assert!(
        !stored.iter().any(|c| c.starts_with("m-down")),
        "a send that failed was stored"
    );
    let live_set: std::collections::HashSet<&String> = live.iter().collect();
    assert_eq!(
        live_set.len(),
        live.len(),
        "the subscriber got a message twice"
    );
    assert_eq!(
        live_set, stored_set,
        "the subscriber missed or invented messages"
    );
    assert_eq!(readyz(&app).await, StatusCode::OK);
}

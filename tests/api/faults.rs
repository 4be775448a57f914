//! Issue 9, faults: a panicking request handler.

use std::sync::{Arc, Mutex};

use async_graphql::{
    Schema, ServerResult, Value as GqlValue,
    extensions::{Extension, ExtensionContext, ExtensionFactory, NextResolve, ResolveInfo},
};
use axum::{
    body::Bytes,
    http::{Request, StatusCode, header},
};
use confab::{
    App,
    graphql::{Endpoint, Mutation, Query, Subscription, node::NodeInterface},
};
use http_body_util::{BodyExt, Full};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

use crate::support::{TestDb, within};

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
    let mut app = App::build(crate::support::test_config(&db.url, data.path()))
        .await
        .unwrap();
    app.endpoint = Endpoint {
        schema: Schema::build(
            Query::default(),
            Mutation::default(),
            Subscription::default(),
        )
        .register_output_type::<NodeInterface>()
        .data(app.state.clone())
        .extension(PanicOnBoom)
        .finish(),
        state: app.state.clone(),
    };
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.clone().serve(listener, async move {
        let _ = stopped.await;
    }));

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

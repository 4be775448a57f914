//! The WebSocket endpoint's connection protocol, on both subprotocols, over a real socket.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::{
    MaybeTlsStream, WebSocketStream, connect_async,
    tungstenite::{Message, client::IntoClientRequest, http::HeaderValue},
};

use crate::support::{TestApp, within};

pub type Socket = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

pub async fn connect(app: &TestApp, protocol: &str, authorization: Option<&str>) -> Socket {
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_str(protocol).unwrap(),
    );
    if let Some(auth) = authorization {
        request
            .headers_mut()
            .insert("Authorization", HeaderValue::from_str(auth).unwrap());
    }
    let (socket, response) = connect_async(request).await.expect("WebSocket handshake");
    assert_eq!(response.headers()["sec-websocket-protocol"], protocol);
    socket
}

pub async fn send(socket: &mut Socket, value: Value) {
    socket.send(Message::text(value.to_string())).await.unwrap();
}

/// The next JSON message, skipping keep-alives.
pub async fn next_json(socket: &mut Socket) -> Value {
    within(10, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Text(text))) => {
                    let v: Value = serde_json::from_str(text.as_str()).unwrap();
                    if v["type"] == "ka" || v["type"] == "ping" {
                        continue;
                    }
                    return v;
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                other => panic!("expected a text message, got {other:?}"),
            }
        }
    })
    .await
}

/// Waits for the server to close; returns the close code and reason.
pub async fn close_code(socket: &mut Socket) -> (u16, String) {
    within(10, async {
        loop {
            match socket.next().await {
                Some(Ok(Message::Close(Some(frame)))) => {
                    return (u16::from(frame.code), frame.reason.to_string());
                }
                Some(Ok(Message::Close(None))) | None => return (1005, String::new()),
                Some(Ok(_)) => continue,
                Some(Err(e)) => panic!("socket error before close: {e}"),
            }
        }
    })
    .await
}

/// Connects and completes connection_init with `payload`.
pub async fn init(app: &TestApp, protocol: &str, payload: Value) -> Socket {
    let mut socket = connect(app, protocol, None).await;
    send(
        &mut socket,
        json!({ "type": "connection_init", "payload": payload }),
    )
    .await;
    let ack = next_json(&mut socket).await;
    assert_eq!(ack["type"], "connection_ack", "{ack}");
    socket
}

pub fn subscribe_type(protocol: &str) -> &'static str {
    if protocol == "graphql-ws" {
        "start"
    } else {
        "subscribe"
    }
}

pub const PROTOCOLS: [&str; 2] = ["graphql-transport-ws", "graphql-ws"];

#[tokio::test]
async fn init_authenticates_from_the_payload_in_any_case_or_the_header() {
    let app = TestApp::spawn().await;
    let user = app.register("wsuser").await;
    for protocol in PROTOCOLS {
        for key in ["authorization", "Authorization", "AUTHORIZATION"] {
            let mut socket = init(
                &app,
                protocol,
                json!({ key: format!("Bearer {}", user.token) }),
            )
            .await;
            let ty = subscribe_type(protocol);
            send(
                &mut socket,
                json!({ "id": "1", "type": ty, "payload": { "query": "{ me { username } }" } }),
            )
            .await;
            let msg = next_json(&mut socket).await;
            assert_eq!(
                msg["payload"]["data"]["me"]["username"], "wsuser",
                "{protocol} {key}: {msg}"
            );
        }
        // The upgrade request's header works too.
        let mut socket = connect(&app, protocol, Some(&format!("Bearer {}", user.token))).await;
        send(&mut socket, json!({ "type": "connection_init" })).await;
        assert_eq!(next_json(&mut socket).await["type"], "connection_ack");
        send(&mut socket, json!({ "id": "h", "type": subscribe_type(protocol), "payload": { "query": "{ me { username } }" } })).await;
        assert_eq!(
            next_json(&mut socket).await["payload"]["data"]["me"]["username"],
            "wsuser"
        );
    }
}

#[tokio::test]
async fn a_bad_token_closes_4403() {
    let app = TestApp::spawn().await;
    for protocol in PROTOCOLS {
        let mut socket = connect(&app, protocol, None).await;
        send(
            &mut socket,
            json!({ "type": "connection_init", "payload": { "authorization": "Bearer nope" } }),
        )
        .await;
        assert_eq!(close_code(&mut socket).await.0, 4403, "{protocol}");
        let mut socket = connect(&app, protocol, Some("Bearer nope")).await;
        send(&mut socket, json!({ "type": "connection_init" })).await;
        assert_eq!(close_code(&mut socket).await.0, 4403, "{protocol} header");
    }
}

#[tokio::test]
async fn protocol_violations_close_with_their_codes() {
    let app = TestApp::spawn().await;
    for protocol in PROTOCOLS {
        // No connection_init in time.
        let mut socket = connect(&app, protocol, None).await;
        let started = std::time::Instant::now();
        assert_eq!(close_code(&mut socket).await.0, 4408, "{protocol}");
        assert!(started.elapsed() >= Duration::from_millis(1000));
        // Subscribe before the ack.
        let mut socket = connect(&app, protocol, None).await;
        send(&mut socket, json!({ "id": "1", "type": subscribe_type(protocol), "payload": { "query": "{ __typename }" } })).await;
        assert_eq!(close_code(&mut socket).await.0, 4401, "{protocol}");
        // A second connection_init.
        let mut socket = init(&app, protocol, json!({})).await;
        send(&mut socket, json!({ "type": "connection_init" })).await;
        assert_eq!(close_code(&mut socket).await.0, 4429, "{protocol}");
        // Garbage.
        let mut socket = init(&app, protocol, json!({})).await;
        socket.send(Message::text("{not json")).await.unwrap();
        assert_eq!(close_code(&mut socket).await.0, 4400, "{protocol}");
        let mut socket = init(&app, protocol, json!({})).await;
        send(&mut socket, json!({ "type": "no-such-type" })).await;
        assert_eq!(close_code(&mut socket).await.0, 4400, "{protocol}");
    }
}

#[tokio::test]
async fn ping_is_answered_with_pong() {
    let app = TestApp::spawn().await;
    let mut socket = init(&app, "graphql-transport-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "type": "ping", "payload": { "n": 1 } }),
    )
    .await;
    let pong = next_json(&mut socket).await;
    assert_eq!(pong, json!({ "type": "pong", "payload": { "n": 1 } }));
}

#[tokio::test]
async fn queries_run_over_the_socket_and_complete() {
    let app = TestApp::spawn().await;
    let mut socket = init(&app, "graphql-transport-ws", json!({})).await;
    send(
        &mut socket,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ __typename }" } }),
    )
    .await;
    let next = next_json(&mut socket).await;
    assert_eq!(
        next,
        json!({ "id": "q", "type": "next", "payload": { "data": { "__typename": "Query" } } })
    );
    assert_eq!(
        next_json(&mut socket).await,
        json!({ "id": "q", "type": "complete" })
    );
    // A validation failure is an `error` for that id, and the socket stays open.
    send(
        &mut socket,
        json!({ "id": "bad", "type": "subscribe", "payload": { "query": "{ nope }" } }),
    )
    .await;
    let err = next_json(&mut socket).await;
    assert_eq!(err["type"], "error");
    assert_eq!(err["id"], "bad");
    assert!(err["payload"][0]["extensions"]["code"].is_string(), "{err}");
    send(
        &mut socket,
        json!({ "id": "again", "type": "subscribe", "payload": { "query": "{ __typename }" } }),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "next");
}

#[tokio::test]
async fn unknown_subprotocols_are_refused() {
    let app = TestApp::spawn().await;
    let mut request = app.ws_url().into_client_request().unwrap();
    request
        .headers_mut()
        .insert("Sec-WebSocket-Protocol", HeaderValue::from_static("mqtt"));
    assert!(connect_async(request).await.is_err());
}

#[tokio::test]
async fn websocket_connections_are_capped() {
    let app = TestApp::spawn_with(|c| c.limits.ws_connections = 1).await;
    let first = init(&app, "graphql-transport-ws", json!({})).await;
    let mut request = app.ws_url().into_client_request().unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        HeaderValue::from_static("graphql-transport-ws"),
    );
    match connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 503)
        }
        other => panic!("expected 503, got {other:?}"),
    }
    // Closing the first frees its place.
    drop(first);
    within(10, async {
        loop {
            let mut request = app.ws_url().into_client_request().unwrap();
            request.headers_mut().insert(
                "Sec-WebSocket-Protocol",
                HeaderValue::from_static("graphql-transport-ws"),
            );
            if connect_async(request).await.is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

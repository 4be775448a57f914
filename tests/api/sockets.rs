//! A socket lives no longer than its access token or its session
//! (SEMANTICS "Subscriptions"): expiry, in-band renewal, logout, refresh
//! token reuse, anonymous sockets.

use std::time::Duration;

use serde_json::{Value, json};

use crate::{
    support::{TestApp, TestUser, is_postgres},
    ws::{close_code, init, next_json, send},
};

const TRANSPORT: &str = "graphql-transport-ws";

fn bearer(token: &str) -> Value {
    json!({ "authorization": format!("Bearer {token}") })
}

/// The socket still answers, as `user`: `me` over it.
async fn assert_answers_as(socket: &mut crate::ws::Socket, user: &TestUser) {
    let id = uuid::Uuid::now_v7().to_string();
    send(
        socket,
        json!({ "id": id, "type": "subscribe", "payload": { "query": "{ me { username } }" } }),
    )
    .await;
    let next = next_json(socket).await;
    assert_eq!(next["type"], "next", "{next}");
    assert_eq!(
        next["payload"]["data"]["me"]["username"],
        user.username.as_str()
    );
    assert_eq!(next_json(socket).await["type"], "complete");
}

async fn login(app: &TestApp, user: &TestUser) -> (String, String) {
    let data = app
        .ok(
            None,
            "mutation($l: String!) { login(input: { login: $l, password: \"correct horse\" }) { accessToken refreshToken } }",
            json!({ "l": user.username }),
        )
        .await;
    let login = &data["login"];
    (
        login["accessToken"].as_str().unwrap().to_owned(),
        login["refreshToken"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn a_socket_closes_4403_when_its_token_expires() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = Duration::from_secs(2)).await;
    let alice = app.register("alice").await;
    let mut socket = init(&app, TRANSPORT, bearer(&alice.token)).await;
    assert_answers_as(&mut socket, &alice).await;
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, 4403, "{reason}");
}

#[tokio::test]
async fn a_ping_with_a_newer_token_of_the_same_user_moves_the_expiry() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = Duration::from_secs(4)).await;
    let alice = app.register("alice").await;
    let started = tokio::time::Instant::now();
    let mut socket = init(&app, TRANSPORT, bearer(&alice.token)).await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let (fresh, _) = login(&app, &alice).await;
    send(
        &mut socket,
        json!({ "type": "ping", "payload": bearer(&fresh) }),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    // Past the first token's expiry (at most 4 s after the start), before the new one's.
    tokio::time::sleep_until(started + Duration::from_millis(4500)).await;
    assert_answers_as(&mut socket, &alice).await;
    let (code, _) = close_code(&mut socket).await;
    assert_eq!(code, 4403, "the new token expires too");
}

#[tokio::test]
async fn a_ping_with_another_users_or_a_bad_token_closes_4403() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    for payload in [
        bearer(&bob.token),
        bearer("not-a-token"),
        json!({ "authorization": 7 }),
    ] {
        let mut socket = init(&app, TRANSPORT, bearer(&alice.token)).await;
        send(&mut socket, json!({ "type": "ping", "payload": payload })).await;
        assert_eq!(close_code(&mut socket).await.0, 4403, "{payload}");
    }
}

#[tokio::test]
async fn logout_closes_that_sessions_sockets_on_every_instance() {
    let one = TestApp::spawn().await;
    let two = if is_postgres() {
        Some(one.peer().await)
    } else {
        None
    };
    let other = two.as_ref().unwrap_or(&one);
    let alice = one.register("alice").await;
    let (second_token, _) = login(&one, &alice).await;
    let mut first_session = init(other, TRANSPORT, bearer(&alice.token)).await;
    let mut second_session = init(other, TRANSPORT, bearer(&second_token)).await;
    assert_answers_as(&mut first_session, &alice).await;
    one.ok(
        None,
        "mutation($t: String!) { logout(refreshToken: $t) }",
        json!({ "t": alice.refresh }),
    )
    .await;
    let (code, reason) = close_code(&mut first_session).await;
    assert_eq!(code, 4403, "{reason}");
    // The other session's socket is not touched.
    assert_answers_as(&mut second_session, &alice).await;
}

#[tokio::test]
async fn a_reused_refresh_token_closes_its_familys_sockets() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let mut socket = init(&app, TRANSPORT, bearer(&alice.token)).await;
    const REFRESH: &str =
        "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken } }";
    app.ok(None, REFRESH, json!({ "t": alice.refresh })).await;
    // The spent token again: somebody holds a copy, the whole login ends.
    let reused = app.gql(None, REFRESH, json!({ "t": alice.refresh })).await;
    assert_eq!(crate::support::error_code(&reused), "UNAUTHENTICATED");
    assert_eq!(close_code(&mut socket).await.0, 4403);
}

#[tokio::test]
async fn an_anonymous_socket_closes_4403_after_its_time() {
    let app = TestApp::spawn_with(|c| c.limits.ws_anonymous_ttl = Duration::from_secs(1)).await;
    let mut socket = init(&app, TRANSPORT, json!({})).await;
    send(&mut socket, json!({ "type": "ping" })).await;
    assert_eq!(next_json(&mut socket).await["type"], "pong");
    let (code, reason) = close_code(&mut socket).await;
    assert_eq!(code, 4403, "{reason}");
}

//! `GET /metrics`: the Prometheus series move by exactly what the API did.

use std::collections::HashMap;

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::json;

use crate::{
    chat::{create_room, send},
    support::{TestApp, within},
    ws::{init, next_json, send as ws_send},
};

/// Every sample of a scrape, by its name with labels.
pub struct Scrape(HashMap<String, f64>);

impl Scrape {
    pub async fn take(app: &TestApp) -> Self {
        let (status, headers, body) = app
            .request(Request::get("/metrics").body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, StatusCode::OK);
        let content_type = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(
            content_type.starts_with("text/plain; version=0.0.4"),
            "{content_type}"
        );
        let text = String::from_utf8(body).unwrap();
        let mut samples = HashMap::new();
        for line in text
            .lines()
            .filter(|l| !l.starts_with('#') && !l.is_empty())
        {
            let (series, value) = line.rsplit_once(' ').unwrap();
            samples.insert(series.to_owned(), value.parse().unwrap());
        }
        Self(samples)
    }

    pub fn get(&self, series: &str) -> f64 {
        *self
            .0
            .get(series)
            .unwrap_or_else(|| panic!("no series {series} in {:?}", self.0.keys()))
    }

    /// How much each of `series` moved since `before`.
    pub fn moved(&self, before: &Self, series: &str) -> f64 {
        self.get(series) - before.get(series)
    }
}

fn requests(operation: &str, outcome: &str) -> String {
    format!("confab_graphql_requests_total{{operation=\"{operation}\",outcome=\"{outcome}\"}}")
}

fn latency_count(operation: &str) -> String {
    format!("confab_graphql_request_duration_seconds_count{{operation=\"{operation}\"}}")
}

const OPEN: &str = "confab_websockets_open";
const LIVE: &str = "confab_subscriptions_live";
const DELIVERED: &str = "confab_subscription_events_delivered_total";

/// Scrapes until `series` reads `value` (the server notices a closed socket on its own time).
async fn wait_for(app: &TestApp, series: &str, value: f64) {
    within(10, async {
        loop {
            if Scrape::take(app).await.get(series) == value {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn metrics_count_requests_sockets_subscriptions_and_events() {
    let app = TestApp::spawn().await;
    let alice = app.register("metrics_alice").await;
    let room = create_room(&app, &alice, "metered").await;
    let before = Scrape::take(&app).await;

    // Over HTTP: a query that succeeds, one that fails validation, a mutation that fails.
    app.ok(Some(&alice.token), "{ me { username } }", json!({}))
        .await;
    app.gql(Some(&alice.token), "{ noSuchField }", json!({}))
        .await;
    let failed = app
        .gql(
            Some(&alice.token),
            "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id } }",
            json!({ "i": { "roomId": room, "content": "" } }),
        )
        .await;
    assert!(failed["errors"].is_array(), "{failed}");
    let after_http = Scrape::take(&app).await;
    assert_eq!(after_http.moved(&before, &requests("query", "ok")), 1.0);
    assert_eq!(
        after_http.moved(&before, &requests("query", "rejected")),
        1.0
    );
    assert_eq!(
        after_http.moved(&before, &requests("mutation", "error")),
        1.0
    );
    assert_eq!(after_http.moved(&before, &requests("mutation", "ok")), 0.0);
    assert_eq!(after_http.moved(&before, &latency_count("query")), 2.0);
    assert_eq!(after_http.moved(&before, &latency_count("mutation")), 1.0);

    // A socket: a query over it answers with one `next` that is no subscription event.
    let mut socket = init(
        &app,
        "graphql-transport-ws",
        json!({ "authorization": format!("Bearer {}", alice.token) }),
    )
    .await;
    assert_eq!(Scrape::take(&app).await.get(OPEN), 1.0);
    ws_send(
        &mut socket,
        json!({ "id": "q", "type": "subscribe", "payload": { "query": "{ me { username } }" } }),
    )
    .await;
    assert_eq!(next_json(&mut socket).await["type"], "next");
    assert_eq!(next_json(&mut socket).await["type"], "complete");

    // A subscription: markers until it is live, then one message more.
    ws_send(
        &mut socket,
        json!({ "id": "s", "type": "subscribe", "payload": {
            "query": "subscription($r: ID!) { messageAdded(roomId: $r) { content } }",
            "variables": { "r": room },
        } }),
    )
    .await;
    let mut sent = 0.0;
    let mut frames = 0.0;
    let mut live = false;
    for attempt in 0..40 {
        let marker = format!("marker-{attempt}");
        send(&app, &alice, &room, &marker).await;
        sent += 1.0;
        while let Ok(msg) = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            next_json(&mut socket),
        )
        .await
        {
            assert_eq!(msg["type"], "next", "{msg}");
            frames += 1.0;
            if msg["payload"]["data"]["messageAdded"]["content"] == marker.as_str() {
                live = true;
                break;
            }
        }
        if live {
            break;
        }
    }
    assert!(live, "the subscription never went live");
    send(&app, &alice, &room, "one more").await;
    sent += 1.0;
    let msg = next_json(&mut socket).await;
    assert_eq!(
        msg["payload"]["data"]["messageAdded"]["content"],
        "one more"
    );
    frames += 1.0;

    let during = Scrape::take(&app).await;
    assert_eq!(during.get(OPEN), 1.0);
    assert_eq!(during.get(LIVE), 1.0);
    assert_eq!(during.moved(&after_http, DELIVERED), frames);
    assert_eq!(during.moved(&after_http, &requests("mutation", "ok")), sent);
    assert_eq!(during.moved(&after_http, &latency_count("mutation")), sent);
    assert_eq!(during.moved(&after_http, &requests("query", "ok")), 1.0);
    assert_eq!(
        during.moved(&after_http, &requests("subscription", "ok")),
        1.0
    );
    assert_eq!(
        during.moved(&after_http, &requests("subscription", "error"))
            + during.moved(&after_http, &requests("subscription", "rejected")),
        0.0
    );

    // Pool series are read at scrape time.
    let size = during.get("confab_db_pool_connections");
    assert!(size >= 1.0);
    assert_eq!(
        during.get("confab_db_pool_connections_in_use")
            + during.get("confab_db_pool_connections_idle"),
        size
    );
    assert!(during.get("confab_db_pool_connections_max") >= size);

    // Completing the subscription ends it; closing the socket closes it.
    ws_send(&mut socket, json!({ "id": "s", "type": "complete" })).await;
    wait_for(&app, LIVE, 0.0).await;
    socket.close(None).await.unwrap();
    wait_for(&app, OPEN, 0.0).await;
    let after = Scrape::take(&app).await;
    assert_eq!(after.moved(&during, DELIVERED), 0.0);
    assert_eq!(
        after.moved(&during, &requests("subscription", "ok")),
        0.0,
        "a subscription is counted once"
    );

    // A subscription refused by its resolver (not a member) is an error, and is not left live.
    let bob = app.register("metrics_bob").await;
    let mut socket = init(
        &app,
        "graphql-transport-ws",
        json!({ "authorization": format!("Bearer {}", bob.token) }),
    )
    .await;
    ws_send(
        &mut socket,
        json!({ "id": "f", "type": "subscribe", "payload": {
            "query": "subscription($r: ID!) { messageAdded(roomId: $r) { content } }",
            "variables": { "r": room },
        } }),
    )
    .await;
    let refused = next_json(&mut socket).await;
    assert_eq!(refused["type"], "error", "{refused}");
    wait_for(&app, LIVE, 0.0).await;
    let refused_at = Scrape::take(&app).await;
    assert_eq!(
        refused_at.moved(&after, &requests("subscription", "error")),
        1.0
    );
    assert_eq!(
        refused_at.moved(&after, &requests("subscription", "ok")),
        0.0
    );
    assert_eq!(refused_at.moved(&after, DELIVERED), 0.0);
    assert_eq!(refused_at.get(OPEN), 1.0);
}

#[tokio::test]
async fn each_app_counts_on_its_own_registry() {
    let one = TestApp::spawn().await;
    let two = TestApp::spawn().await;
    let before = Scrape::take(&two).await;
    one.ok(None, "{ __typename }", json!({})).await;
    let after = Scrape::take(&two).await;
    assert_eq!(after.moved(&before, &requests("query", "ok")), 0.0);
    assert_eq!(Scrape::take(&one).await.get(&requests("query", "ok")), 1.0);
}

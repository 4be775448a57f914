//! messageAdded and directMessageAdded over real WebSockets, on both subprotocols.
//!
//! A subscription has no "started" acknowledgement, so tests first `sync`:
//! send a marker message until every subscriber has received one. After that
//! every subscriber is live and has drained everything before the marker.

use std::time::Duration;

use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::{
    chat::{create_room, join, send, send_dm},
    support::{TestApp, TestUser, is_postgres, within},
    ws::{PROTOCOLS, Socket, init, next_json, send as ws_send, subscribe_type},
};

const MESSAGE_ADDED: &str =
    "subscription($r: ID!) { messageAdded(roomId: $r) { id content sender { username } } }";
const DM_ADDED: &str =
    "subscription { directMessageAdded { id content sender { username } receiver { username } } }";

struct Sub {
    socket: Socket,
    id: String,
    protocol: &'static str,
    field: &'static str,
}

async fn socket_for(app: &TestApp, user: Option<&TestUser>, protocol: &'static str) -> Socket {
    let payload = match user {
        Some(user) => json!({ "authorization": format!("Bearer {}", user.token) }),
        None => json!({}),
    };
    init(app, protocol, payload).await
}

async fn start(socket: &mut Socket, protocol: &str, id: &str, query: &str, variables: Value) {
    let payload = json!({ "query": query, "variables": variables });
    ws_send(
        socket,
        json!({ "id": id, "type": subscribe_type(protocol), "payload": payload }),
    )
    .await;
}

async fn room_sub(app: &TestApp, user: &TestUser, protocol: &'static str, room: &str) -> Sub {
    let mut socket = socket_for(app, Some(user), protocol).await;
    start(
        &mut socket,
        protocol,
        "room",
        MESSAGE_ADDED,
        json!({ "r": room }),
    )
    .await;
    Sub {
        socket,
        id: "room".into(),
        protocol,
        field: "messageAdded",
    }
}

async fn dm_sub(app: &TestApp, user: &TestUser, protocol: &'static str) -> Sub {
    let mut socket = socket_for(app, Some(user), protocol).await;
    start(&mut socket, protocol, "dm", DM_ADDED, json!({})).await;
    Sub {
        socket,
        id: "dm".into(),
        protocol,
        field: "directMessageAdded",
    }
}

impl Sub {
    /// The next message, or None if nothing arrives within `ms`.
    async fn next_within(&mut self, ms: u64) -> Option<Value> {
        tokio::time::timeout(Duration::from_millis(ms), next_json(&mut self.socket))
            .await
            .ok()
    }

    /// The next delivered item (its `messageAdded`/`directMessageAdded` object).
    fn item(&self, msg: &Value) -> Value {
        let data_type = if self.protocol == "graphql-ws" {
            "data"
        } else {
            "next"
        };
        assert_eq!(msg["type"], data_type, "{}: {msg}", self.protocol);
        assert_eq!(msg["id"], self.id.as_str());
        msg["payload"]["data"][self.field].clone()
    }

    async fn next_item(&mut self) -> Value {
        let msg = next_json(&mut self.socket).await;
        self.item(&msg)
    }

    async fn next_content(&mut self) -> String {
        self.next_item().await["content"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// Reads until `marker` arrives; false if it does not within 500 ms of the last message.
    async fn saw(&mut self, marker: &str) -> bool {
        while let Some(msg) = self.next_within(500).await {
            if self.item(&msg)["content"] == marker {
                return true;
            }
        }
        false
    }

    /// Reads contents until `marker`, which is not included.
    async fn contents_until(&mut self, marker: &str) -> Vec<String> {
        let mut out = Vec::new();
        loop {
            let content = self.next_content().await;
            if content == marker {
                return out;
            }
            out.push(content);
        }
    }

    async fn expect_complete(&mut self) {
        let msg = next_json(&mut self.socket).await;
        assert_eq!(
            msg,
            json!({ "type": "complete", "id": self.id }),
            "{}",
            self.protocol
        );
    }

    async fn expect_silence(&mut self) {
        if let Some(msg) = self.next_within(300).await {
            panic!("{}: expected nothing, got {msg}", self.protocol);
        }
    }
}

/// The error code of an `error` message for `id` (both protocols' payload shapes).
fn error_message_code(msg: &Value, id: &str) -> String {
    assert_eq!(msg["type"], "error", "{msg}");
    assert_eq!(msg["id"], id);
    let payload = &msg["payload"];
    let err = if payload.is_array() {
        &payload[0]
    } else {
        payload
    };
    err["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {msg}"))
        .to_owned()
}

/// Sends markers (with `send_marker`) until every subscriber has one: all
/// are live and drained.
async fn sync_with<F: std::future::Future<Output = ()>>(
    subs: &mut [&mut Sub],
    mut send_marker: impl FnMut(String) -> F,
) {
    for _ in 0..40 {
        let marker = format!("sync-{}", uuid::Uuid::now_v7());
        send_marker(marker.clone()).await;
        let mut all = true;
        for sub in subs.iter_mut() {
            all &= sub.saw(&marker).await;
        }
        if all {
            return;
        }
    }
    panic!("subscriptions never went live");
}

async fn sync_room(app: &TestApp, sender: &TestUser, room: &str, subs: &mut [&mut Sub]) {
    sync_with(subs, |marker| async move {
        send(app, sender, room, &marker).await;
    })
    .await;
}

async fn sync_dm(app: &TestApp, from: &TestUser, to: &TestUser, subs: &mut [&mut Sub]) {
    sync_with(subs, |marker| async move {
        send_dm(app, from, to, &marker).await;
    })
    .await;
}

#[tokio::test]
async fn each_message_reaches_every_subscriber_once_in_commit_order() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    send(&app, &alice, &r, "history").await;
    let mut subs = vec![
        room_sub(&app, &bob, PROTOCOLS[0], &r).await,
        room_sub(&app, &alice, PROTOCOLS[1], &r).await,
        room_sub(&app, &bob, PROTOCOLS[1], &r).await,
    ];
    sync_room(&app, &alice, &r, &mut subs.iter_mut().collect::<Vec<_>>()).await;

    // Sequential sends from both members: exactly these, in this order.
    let mut sent = Vec::new();
    for n in 0..10 {
        let who = if n % 2 == 0 { &alice } else { &bob };
        let content = format!("seq-{n}");
        send(&app, who, &r, &content).await;
        sent.push(content);
    }
    send(&app, &alice, &r, "end-1").await;
    for sub in &mut subs {
        assert_eq!(
            within(10, sub.contents_until("end-1")).await,
            sent,
            "{}",
            sub.protocol
        );
    }

    // Concurrent sends: every subscriber gets each exactly once, and all of
    // them in one order (the commit order, whatever created_at says).
    let contents: Vec<String> = (0..20).map(|n| format!("par-{n}")).collect();
    join_all(contents.iter().enumerate().map(|(n, c)| {
        let who = if n % 2 == 0 { &alice } else { &bob };
        send(&app, who, &r, c)
    }))
    .await;
    send(&app, &alice, &r, "end-2").await;
    let mut orders = Vec::new();
    for sub in &mut subs {
        let got = within(10, sub.contents_until("end-2")).await;
        let mut sorted = got.clone();
        sorted.sort();
        let mut expected = contents.clone();
        expected.sort();
        assert_eq!(sorted, expected, "{}: each exactly once", sub.protocol);
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "subscribers disagree on the order: {orders:?}"
    );

    // The payload is a full Message.
    send(&app, &bob, &r, "full").await;
    for sub in &mut subs {
        let item = sub.next_item().await;
        assert_eq!(item["content"], "full");
        assert_eq!(item["sender"]["username"], "bob");
        assert!(item["id"].is_string());
    }
}

#[tokio::test]
async fn message_added_needs_a_member_and_answers_with_an_error_for_that_id() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    let nothing =
        confab::graphql::id::encode(confab::graphql::id::NodeType::Room, uuid::Uuid::now_v7()).0;
    for protocol in PROTOCOLS {
        let mut socket = socket_for(&app, Some(&carol), protocol).await;
        start(&mut socket, protocol, "a", MESSAGE_ADDED, json!({ "r": r })).await;
        assert_eq!(
            error_message_code(&next_json(&mut socket).await, "a"),
            "FORBIDDEN",
            "{protocol}"
        );
        start(
            &mut socket,
            protocol,
            "b",
            MESSAGE_ADDED,
            json!({ "r": "junk" }),
        )
        .await;
        assert_eq!(
            error_message_code(&next_json(&mut socket).await, "b"),
            "BAD_USER_INPUT",
            "{protocol}"
        );
        start(
            &mut socket,
            protocol,
            "c",
            MESSAGE_ADDED,
            json!({ "r": nothing }),
        )
        .await;
        assert_eq!(
            error_message_code(&next_json(&mut socket).await, "c"),
            "NOT_FOUND",
            "{protocol}"
        );

        let mut anonymous = socket_for(&app, None, protocol).await;
        start(
            &mut anonymous,
            protocol,
            "x",
            MESSAGE_ADDED,
            json!({ "r": r }),
        )
        .await;
        assert_eq!(
            error_message_code(&next_json(&mut anonymous).await, "x"),
            "UNAUTHENTICATED",
            "{protocol}"
        );
        start(&mut anonymous, protocol, "y", DM_ADDED, json!({})).await;
        assert_eq!(
            error_message_code(&next_json(&mut anonymous).await, "y"),
            "UNAUTHENTICATED",
            "{protocol}"
        );

        // The socket stays open: once a member, the same id works.
        join(&app, &carol, &r).await;
        start(&mut socket, protocol, "a", MESSAGE_ADDED, json!({ "r": r })).await;
        let mut sub = Sub {
            socket,
            id: "a".into(),
            protocol,
            field: "messageAdded",
        };
        sync_room(&app, &alice, &r, &mut [&mut sub]).await;
        send(&app, &alice, &r, "welcome").await;
        assert_eq!(sub.next_content().await, "welcome");
        app.ok(
            Some(&carol.token),
            "mutation($r: ID!) { leaveRoom(roomId: $r) { id } }",
            json!({ "r": r }),
        )
        .await;
    }
}

#[tokio::test]
async fn leaving_a_room_completes_the_leavers_subscriptions() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let mut control = room_sub(&app, &alice, PROTOCOLS[0], &r).await;
    let mut leaver: Vec<Sub> = Vec::new();
    for protocol in PROTOCOLS {
        leaver.push(room_sub(&app, &bob, protocol, &r).await);
    }
    let mut all: Vec<&mut Sub> = leaver.iter_mut().collect();
    all.push(&mut control);
    sync_room(&app, &alice, &r, &mut all).await;

    let (_, room_uuid) = confab::graphql::id::decode_any(&r).unwrap();
    let (_, bob_uuid) = confab::graphql::id::decode_any(&bob.id).unwrap();
    let feeds = app.app.state.broker.hub().room_feeds().clone();
    let ended = || feeds.until_ended(room_uuid, Some(bob_uuid), Duration::ZERO);
    assert!(!ended().await, "the leaver's feeds are live before leaving");
    app.ok(
        Some(&bob.token),
        "mutation($r: ID!) { leaveRoom(roomId: $r) { id } }",
        json!({ "r": r }),
    )
    .await;
    // Ended before leaveRoom answered, not merely soon after.
    assert!(
        ended().await,
        "leaveRoom returned while the leaver's feeds were live"
    );
    for sub in &mut leaver {
        sub.expect_complete().await;
    }
    send(&app, &alice, &r, "after").await;
    assert_eq!(control.next_content().await, "after");
    for sub in &mut leaver {
        sub.expect_silence().await;
    }
    // Rejoining and subscribing again works on the same socket.
    join(&app, &bob, &r).await;
    let sub = &mut leaver[0];
    start(
        &mut sub.socket,
        sub.protocol,
        "room",
        MESSAGE_ADDED,
        json!({ "r": r }),
    )
    .await;
    sync_room(&app, &alice, &r, &mut [sub]).await;
}

#[tokio::test]
async fn deleting_a_room_completes_every_members_subscriptions() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let mut a = room_sub(&app, &alice, PROTOCOLS[0], &r).await;
    let mut b = room_sub(&app, &bob, PROTOCOLS[1], &r).await;
    sync_room(&app, &alice, &r, &mut [&mut a, &mut b]).await;
    app.ok(
        Some(&alice.token),
        "mutation($r: ID!) { deleteRoom(id: $r) }",
        json!({ "r": r }),
    )
    .await;
    let (_, room_uuid) = confab::graphql::id::decode_any(&r).unwrap();
    let feeds = app.app.state.broker.hub().room_feeds();
    assert!(feeds.until_ended(room_uuid, None, Duration::ZERO).await);
    a.expect_complete().await;
    b.expect_complete().await;
}

#[tokio::test]
async fn direct_messages_reach_both_parties_and_nobody_else() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut a = dm_sub(&app, &alice, PROTOCOLS[0]).await;
    let mut b = dm_sub(&app, &bob, PROTOCOLS[1]).await;
    let mut c = dm_sub(&app, &carol, PROTOCOLS[0]).await;
    sync_dm(&app, &carol, &alice, &mut [&mut c]).await;
    sync_dm(&app, &alice, &bob, &mut [&mut a, &mut b]).await;

    send_dm(&app, &alice, &bob, "hello").await;
    for sub in [&mut a, &mut b] {
        let item = sub.next_item().await;
        assert_eq!(item["content"], "hello");
        assert_eq!(item["sender"]["username"], "alice");
        assert_eq!(item["receiver"]["username"], "bob");
    }
    send_dm(&app, &carol, &bob, "from carol").await;
    assert_eq!(b.next_content().await, "from carol");
    assert_eq!(c.next_content().await, "from carol");
    // What alice and carol get next proves they got nothing in between.
    send_dm(&app, &bob, &alice, "to alice").await;
    assert_eq!(
        a.next_content().await,
        "to alice",
        "carol's message to bob is not alice's"
    );
    assert_eq!(b.next_content().await, "to alice");
    send_dm(&app, &carol, &alice, "to alice from carol").await;
    assert_eq!(
        c.next_content().await,
        "to alice from carol",
        "alice and bob's messages are not carol's"
    );
    assert_eq!(a.next_content().await, "to alice from carol");
}

#[tokio::test]
async fn a_subscriber_that_stops_reading_delays_nobody_and_catches_up() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let mut fast = room_sub(&app, &alice, PROTOCOLS[0], &r).await;
    let mut slow = room_sub(&app, &bob, PROTOCOLS[1], &r).await;
    sync_room(&app, &alice, &r, &mut [&mut fast, &mut slow]).await;

    // `slow` reads nothing from here on, while ~1 MB of messages go out.
    const N: usize = 250;
    let expected: Vec<String> = (0..N)
        .map(|n| format!("{n:04}{}", "x".repeat(3996)))
        .collect();
    let reader = tokio::spawn(async move {
        let mut got = Vec::new();
        while got.len() < N {
            got.push(fast.next_content().await);
        }
        got
    });
    for content in &expected {
        within(5, send(&app, &alice, &r, content)).await;
    }
    let got = within(30, reader).await.unwrap();
    assert_eq!(
        got, expected,
        "the fast subscriber got everything, in order"
    );

    // The slow one catches up with no gap and no duplicate.
    send(&app, &alice, &r, "end").await;
    let caught_up = within(30, slow.contents_until("end")).await;
    assert_eq!(caught_up.len(), expected.len());
    assert!(
        caught_up == expected,
        "the slow subscriber caught up in order"
    );
}

#[tokio::test]
async fn two_instances_on_one_postgres_database_deliver_to_each_other() {
    if !is_postgres() {
        eprintln!("skipped: two instances need PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    let one = TestApp::spawn().await;
    let two = one.peer().await;
    let alice = one.register("alice").await;
    let bob = one.register("bob").await;
    let r = create_room(&one, &alice, "Room").await;
    join(&one, &bob, &r).await;

    // Subscribed on instance two, sent through instance one.
    let mut on_two = room_sub(&two, &bob, PROTOCOLS[0], &r).await;
    let mut legacy_on_two = room_sub(&two, &alice, PROTOCOLS[1], &r).await;
    let mut on_one = room_sub(&one, &bob, PROTOCOLS[1], &r).await;
    sync_room(
        &one,
        &alice,
        &r,
        &mut [&mut on_two, &mut legacy_on_two, &mut on_one],
    )
    .await;
    let started = std::time::Instant::now();
    send(&one, &alice, &r, "across").await;
    assert_eq!(on_two.next_content().await, "across");
    eprintln!("cross-instance delivery took {:?}", started.elapsed());
    assert_eq!(legacy_on_two.next_content().await, "across");
    assert_eq!(on_one.next_content().await, "across");
    send(&two, &bob, &r, "back").await;
    for sub in [&mut on_two, &mut legacy_on_two, &mut on_one] {
        assert_eq!(sub.next_content().await, "back");
    }

    // Concurrent sends through both instances: one order everywhere.
    let contents: Vec<String> = (0..20).map(|n| format!("mix-{n}")).collect();
    join_all(contents.iter().enumerate().map(|(n, c)| {
        let (app, who) = if n % 2 == 0 {
            (&one, &alice)
        } else {
            (&two, &bob)
        };
        send(app, who, &r, c)
    }))
    .await;
    send(&one, &alice, &r, "mix-end").await;
    let mut orders = Vec::new();
    for sub in [&mut on_two, &mut legacy_on_two, &mut on_one] {
        let got = within(10, sub.contents_until("mix-end")).await;
        assert_eq!(got.len(), contents.len(), "{got:?}");
        orders.push(got);
    }
    assert!(
        orders.windows(2).all(|w| w[0] == w[1]),
        "instances disagree on the order: {orders:?}"
    );

    // Direct messages too.
    let mut dm_two = dm_sub(&two, &bob, PROTOCOLS[0]).await;
    sync_dm(&one, &alice, &bob, &mut [&mut dm_two]).await;
    send_dm(&one, &alice, &bob, "dm across").await;
    assert_eq!(dm_two.next_content().await, "dm across");

    // Leaving through instance one ends the subscription on instance two.
    one.ok(
        Some(&bob.token),
        "mutation($r: ID!) { leaveRoom(roomId: $r) { id } }",
        json!({ "r": r }),
    )
    .await;
    on_two.expect_complete().await;
    on_one.expect_complete().await;
    send(&one, &alice, &r, "after").await;
    assert_eq!(legacy_on_two.next_content().await, "after");
    on_two.expect_silence().await;
}

#[tokio::test]
async fn a_dropped_listen_connection_reconnects_and_catches_up() {
    if !is_postgres() {
        eprintln!("skipped: LISTEN/NOTIFY needs PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let mut sub = room_sub(&app, &alice, PROTOCOLS[0], &r).await;
    sync_room(&app, &alice, &r, &mut [&mut sub]).await;

    // Cut this instance's LISTEN connection from the server side.
    let killed = app
        .app
        .state
        .db
        .query_one_raw(sea_orm::Statement::from_string(
            sea_orm::DbBackend::Postgres,
            "SELECT count(pg_terminate_backend(pid)) AS n FROM pg_stat_activity \
             WHERE datname = current_database() AND query LIKE 'LISTEN%'",
        ))
        .await
        .unwrap()
        .unwrap()
        .try_get::<i64>("", "n")
        .unwrap();
    assert_eq!(killed, 1);
    // Sent right away (likely before the new LISTEN) and later: both arrive, once, in order.
    send(&app, &alice, &r, "during").await;
    assert_eq!(sub.next_content().await, "during");
    send(&app, &alice, &r, "after").await;
    assert_eq!(sub.next_content().await, "after");
    sub.expect_silence().await;
}

/// Pages forward with `after: endCursor` through the connection at `path`
/// of `query` (its `$after` set here, `variables` the rest) until `end` is
/// in it, while others send: every message once, in order.
async fn page_forward_until(
    app: &TestApp,
    user: &TestUser,
    query: &str,
    variables: Value,
    path: &[&str],
    end: &str,
) -> Vec<String> {
    let mut seen = Vec::new();
    let mut variables = variables;
    for _ in 0..20_000 {
        let v = app.ok(Some(&user.token), query, variables.clone()).await;
        let conn = path.iter().fold(&v, |v, key| &v[*key]);
        for edge in conn["edges"].as_array().unwrap() {
            seen.push(edge["node"]["content"].as_str().unwrap().to_owned());
        }
        if seen.last().is_some_and(|c| c == end) {
            return seen;
        }
        // An empty page has no endCursor: stay where the last page ended.
        if let Some(cursor) = conn["pageInfo"]["endCursor"].as_str() {
            variables["after"] = json!(cursor);
        }
        if conn["pageInfo"]["hasNextPage"] == false {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }
    panic!("`{end}` never reached the list");
}

/// Eight members send 250 messages each at once (through both instances on
/// PostgreSQL). A client paging forward with `after: endCursor` and a live
/// subscriber (on the other instance on PostgreSQL) both get all 2,000, each
/// once, in one order: the commit order, which is the history's order.
#[tokio::test]
async fn concurrent_senders_reach_pager_and_subscriber_in_one_order() {
    const SENDERS: usize = 8;
    const EACH: usize = 250;
    let one = TestApp::spawn().await;
    let two = if is_postgres() {
        Some(one.peer().await)
    } else {
        None
    };
    let other = two.as_ref().unwrap_or(&one);
    let alice = one.register("alice").await;
    let r = create_room(&one, &alice, "Busy").await;
    let mut senders = Vec::new();
    for n in 0..SENDERS {
        let user = one.register(&format!("sender{n}")).await;
        join(&one, &user, &r).await;
        senders.push(user);
    }
    let mut sub = room_sub(other, &alice, PROTOCOLS[0], &r).await;
    sync_room(&one, &alice, &r, &mut [&mut sub]).await;

    let room = r.as_str();
    let sending = join_all(senders.iter().enumerate().map(|(n, user)| {
        let app = if n % 2 == 0 { &one } else { other };
        async move {
            for k in 0..EACH {
                send(app, user, room, &format!("s{n}-{k}")).await;
            }
        }
    }));
    const PAGE: &str = "query($id: ID!, $after: String) { room(id: $id) {
        messages(first: 100, after: $after) { edges { node { content } } pageInfo { hasNextPage endCursor } } } }";
    let paging = page_forward_until(
        other,
        &alice,
        PAGE,
        json!({ "id": r }),
        &["room", "messages"],
        "end",
    );
    let listening = sub.contents_until("end");
    let ((), paged, live) = within(300, async {
        let (sent, paged, live) = tokio::join!(
            async {
                sending.await;
                send(&one, &alice, &r, "end").await;
            },
            paging,
            listening
        );
        (sent, paged, live)
    })
    .await;

    // Only the senders' messages ("s<n>-<k>"), not the sync markers.
    let is_sent = |c: &&String| {
        c.strip_prefix('s')
            .is_some_and(|rest| rest.starts_with(|ch: char| ch.is_ascii_digit()))
    };
    let paged: Vec<String> = paged.iter().filter(is_sent).cloned().collect();
    let live: Vec<String> = live.iter().filter(is_sent).cloned().collect();
    assert_eq!(
        paged.len(),
        SENDERS * EACH,
        "the pager missed or repeated messages"
    );
    let unique: std::collections::HashSet<&String> = paged.iter().collect();
    assert_eq!(
        unique.len(),
        SENDERS * EACH,
        "the pager saw a message twice"
    );
    assert!(
        live == paged,
        "the subscriber's order differs from the history's"
    );
    // Each sender's own messages keep their order.
    for n in 0..SENDERS {
        let mine: Vec<usize> = paged
            .iter()
            .filter_map(|c| c.strip_prefix(&format!("s{n}-"))?.parse().ok())
            .collect();
        assert_eq!(mine, (0..EACH).collect::<Vec<_>>());
    }
}

/// Two users send each other 150 direct messages each, at once. A client
/// paging the thread forward and both parties' live feeds (on another
/// instance on PostgreSQL) get all 300 once, in one order.
#[tokio::test]
async fn concurrent_direct_messages_reach_pager_and_feeds_in_one_order() {
    const EACH: usize = 150;
    const THREAD: &str = "query($u: ID!, $after: String) { directMessages(withUserId: $u, first: 100, after: $after) {
        edges { node { content } } pageInfo { hasNextPage endCursor } } }";
    let one = TestApp::spawn().await;
    let two = if is_postgres() {
        Some(one.peer().await)
    } else {
        None
    };
    let other = two.as_ref().unwrap_or(&one);
    let alice = one.register("alice").await;
    let bob = one.register("bob").await;
    let mut alice_feed = dm_sub(other, &alice, PROTOCOLS[0]).await;
    let mut bob_feed = dm_sub(other, &bob, PROTOCOLS[1]).await;
    sync_dm(&one, &alice, &bob, &mut [&mut alice_feed, &mut bob_feed]).await;

    let sending = join_all([(&one, &alice, &bob, "a"), (other, &bob, &alice, "b")].map(
        |(app, from, to, tag)| async move {
            for k in 0..EACH {
                send_dm(app, from, to, &format!("{tag}{k}")).await;
            }
        },
    ));
    let paging = page_forward_until(
        other,
        &bob,
        THREAD,
        json!({ "u": alice.id }),
        &["directMessages"],
        "end",
    );
    let (_, paged, alice_live, bob_live) = within(300, async {
        tokio::join!(
            async {
                sending.await;
                send_dm(&one, &alice, &bob, "end").await;
            },
            paging,
            alice_feed.contents_until("end"),
            bob_feed.contents_until("end"),
        )
    })
    .await;
    let sent = |c: &&String| {
        (c.starts_with('a') || c.starts_with('b')) && c[1..].chars().all(|ch| ch.is_ascii_digit())
    };
    let paged: Vec<String> = paged.iter().filter(sent).cloned().collect();
    assert_eq!(
        paged.len(),
        2 * EACH,
        "the pager missed or repeated messages"
    );
    let unique: std::collections::HashSet<&String> = paged.iter().collect();
    assert_eq!(unique.len(), 2 * EACH);
    for live in [alice_live, bob_live] {
        let live: Vec<String> = live.iter().filter(sent).cloned().collect();
        assert!(
            live == paged,
            "a party's feed differs from the thread's order"
        );
    }
}

/// POSTs a GraphQL request over a fresh TCP connection; None when the
/// connection fails or is cut before a whole answer arrives.
async fn post_raw(addr: &str, token: &str, body: &Value) -> Option<Value> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let body = body.to_string();
    let request = format!(
        "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nAuthorization: Bearer {token}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    let mut tcp = tokio::net::TcpStream::connect(addr).await.ok()?;
    tcp.write_all(request.as_bytes()).await.ok()?;
    let mut answer = String::new();
    tcp.read_to_string(&mut answer).await.ok()?;
    let (head, json) = answer.split_once("\r\n\r\n")?;
    head.starts_with("HTTP/1.1 200").then_some(())?;
    serde_json::from_str(json).ok()
}

/// An instance killed with SIGKILL while it takes sends: every send it
/// answered is stored once, and the surviving instance's subscriber gets
/// every stored message once (the ones whose wake-up died with the killed
/// instance too, at the next position announced).
#[tokio::test]
async fn a_killed_instance_loses_no_answered_send() {
    if !is_postgres() {
        eprintln!("skipped: two instances need PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    // Both instances sign with the key kept in the database.
    let survivor = TestApp::spawn_with(|c| c.jwt_secret = None).await;
    let alice = survivor.register("alice").await;
    let r = create_room(&survivor, &alice, "Room").await;
    let mut sub = room_sub(&survivor, &alice, PROTOCOLS[0], &r).await;
    sync_room(&survivor, &alice, &r, &mut [&mut sub]).await;

    let data = tempfile::tempdir().unwrap();
    // Rate limits off: one user sends as fast as eight loops can.
    let off = [("CONFAB_RATE_LIMITS", "off")];
    let (mut doomed, log) = crate::cli::serve_with(&survivor.db.url, data.path(), &off);
    let addr = log
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split('/').next())
        .expect("listening address")
        .to_owned();
    const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { content } }";
    let answered = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let senders: Vec<_> = (0..8)
        .map(|w| {
            let (addr, token, room, answered) =
                (addr.clone(), alice.token.clone(), r.clone(), answered.clone());
            tokio::spawn(async move {
                for k in 0..200 {
                    let content = format!("k{w}-{k}");
                    let body = json!({ "query": SEND, "variables": { "i": { "roomId": room, "content": content } } });
                    match post_raw(&addr, &token, &body).await {
                        Some(v) if v["data"]["sendMessage"]["content"] == content.as_str() => {
                            answered.lock().unwrap().push(content);
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    // Kill it once it has answered some, while the rest are in flight.
    within(60, async {
        while answered.lock().unwrap().len() < 40 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    doomed.kill().unwrap();
    doomed.wait().unwrap();
    for sender in senders {
        let _ = sender.await;
    }
    send(&survivor, &alice, &r, "end").await;
    let live: Vec<String> = within(30, sub.contents_until("end"))
        .await
        .into_iter()
        .filter(|c| c.starts_with('k'))
        .collect();

    use entity::message;
    use sea_orm::{ColumnTrait, EntityTrait, QueryFilter};
    let room_id = confab::graphql::id::decode_any(&r).unwrap().1;
    let stored: Vec<String> = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .all(&survivor.app.state.db)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.content)
        .filter(|c| c.starts_with('k'))
        .collect();
    let stored_set: std::collections::HashSet<&String> = stored.iter().collect();
    assert_eq!(stored_set.len(), stored.len(), "a send was stored twice");
    let answered = answered.lock().unwrap().clone();
    assert!(answered.len() >= 40);
    for content in &answered {
        assert!(
            stored_set.contains(content),
            "answered but not stored: {content}"
        );
    }
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
}

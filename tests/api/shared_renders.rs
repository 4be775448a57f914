//! Identical subscriptions share each event's render (`graphql::shared`):
//! what one viewer's render shows never reaches another viewer, and with
//! sharing on or off every subscriber gets the same answers.

use serde_json::{Value, json};

use crate::{
    chat::{create_room, join, send},
    metrics::Scrape,
    support::{TestApp, TestUser, within},
    ws::{Socket, init, next_json, send as ws_send},
};

/// The same document for everyone: its reactions and typing depend on the
/// viewer only through "is the viewer among these users".
const EVENTS: &str = "subscription($r: ID!) { roomEvents(roomId: $r) { kind message { content sender { username } reactions { emoji count viewerHasReacted } } typing { username } } }";
const MESSAGES: &str = "subscription($r: ID!) { messageAdded(roomId: $r) { content sender { username } reactions { emoji count viewerHasReacted } } }";
/// The sender's email is shown to the sender only.
const WITH_EMAIL: &str =
    "subscription($r: ID!) { messageAdded(roomId: $r) { content sender { username email } } }";
const ADD: &str = "mutation($m: ID!) { addReaction(messageId: $m, emoji: \"👍\") { messageId } }";
const TYPING: &str = "mutation($r: ID!) { setTyping(roomId: $r, typing: true) }";
const SHARED: &str = "confab_subscription_events_shared_total";
const DELIVERED: &str = "confab_subscription_events_delivered_total";

struct Sub {
    who: &'static str,
    socket: Socket,
}

impl Sub {
    async fn open(
        app: &TestApp,
        user: &TestUser,
        who: &'static str,
        doc: &str,
        room: &str,
    ) -> Self {
        let auth = json!({ "authorization": format!("Bearer {}", user.token) });
        let mut socket = init(app, "graphql-transport-ws", auth).await;
        let subscribe = json!({ "type": "subscribe", "id": "s", "payload": { "query": doc, "variables": { "r": room } } });
        ws_send(&mut socket, subscribe).await;
        Self { who, socket }
    }

    /// Items up to and including the first that `done` accepts.
    async fn until(&mut self, done: impl Fn(&Value) -> bool) -> Vec<Value> {
        let mut items = Vec::new();
        loop {
            let msg = next_json(&mut self.socket).await;
            assert_eq!(msg["type"], "next", "{}: {msg}", self.who);
            assert!(msg["payload"].get("errors").is_none(), "{msg}");
            let data = msg["payload"]["data"].as_object().unwrap();
            let item = data.values().next().unwrap().clone();
            let stop = done(&item);
            items.push(item);
            if stop {
                return items;
            }
        }
    }
}

/// The message text an item carries (under any alias).
fn content(item: &Value) -> &str {
    item["message"]["content"]
        .as_str()
        .or(item["content"].as_str())
        .or_else(|| item.as_object()?.values().find_map(Value::as_str))
        .unwrap_or("")
}

/// Waits until every subscription is live (a marker reaches them all).
async fn sync(app: &TestApp, sender: &TestUser, room: &str, subs: &mut [Sub]) {
    within(30, async {
        for round in 0.. {
            let marker = format!("sync-{round}");
            send(app, sender, room, &marker).await;
            let mut all = true;
            for sub in subs.iter_mut() {
                let seen = tokio::time::timeout(
                    std::time::Duration::from_millis(500),
                    sub.until(|i| content(i) == marker),
                )
                .await;
                all &= seen.is_ok();
            }
            if all {
                return;
            }
        }
    })
    .await;
}

/// The reactions a subscriber was shown on the message of a REACTIONS_CHANGED.
fn reactions(item: &Value) -> Value {
    assert_eq!(item["kind"], "REACTIONS_CHANGED", "{item}");
    item["message"]["reactions"].clone()
}

fn thumbs(count: i64, mine: bool) -> Value {
    json!([{ "emoji": "👍", "count": count, "viewerHasReacted": mine }])
}

fn names(item: &Value) -> Vec<String> {
    let mut names: Vec<String> = item["typing"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

/// Alice, Bob and Carol hold the same roomEvents subscription; Alice posts,
/// Carol then Bob react, Carol then Bob start typing. Returns how many
/// deliveries were shared, and how many were delivered, meanwhile.
async fn three_viewers(shared_renders: bool) -> (f64, f64) {
    let app = TestApp::spawn_with(|c| c.shared_renders = shared_renders).await;
    let [alice, bob, carol] = [
        app.register("sr_alice").await,
        app.register("sr_bob").await,
        app.register("sr_carol").await,
    ];
    let room = create_room(&app, &alice, "shared").await;
    join(&app, &bob, &room).await;
    join(&app, &carol, &room).await;
    let mut subs = vec![
        Sub::open(&app, &alice, "alice", EVENTS, &room).await,
        Sub::open(&app, &bob, "bob", EVENTS, &room).await,
        Sub::open(&app, &carol, "carol", EVENTS, &room).await,
    ];
    sync(&app, &carol, &room, &mut subs).await;
    let before = Scrape::take(&app).await;

    let hello = send(&app, &alice, &room, "hello").await;
    let hello = hello["id"].as_str().unwrap().to_owned();
    for sub in &mut subs {
        let item = sub.until(|i| content(i) == "hello").await.pop().unwrap();
        assert_eq!(item["message"]["sender"]["username"], "sr_alice");
        assert_eq!(item["message"]["reactions"], json!([]));
    }

    // viewerHasReacted is each viewer's own. (Carol, who subscribed last,
    // reacts first: a render kept by an outsider must not reach her.)
    for (reactor, expected) in [
        (&carol, [("alice", false), ("bob", false), ("carol", true)]),
        (&bob, [("alice", false), ("bob", true), ("carol", true)]),
    ] {
        app.ok(Some(&reactor.token), ADD, json!({ "m": hello }))
            .await;
        let count = if reactor.username == "sr_carol" { 1 } else { 2 };
        for (sub, (who, mine)) in subs.iter_mut().zip(expected) {
            assert_eq!(sub.who, who);
            let item = sub
                .until(|i| i["kind"] == "REACTIONS_CHANGED")
                .await
                .pop()
                .unwrap();
            assert_eq!(reactions(&item), thumbs(count, mine), "{who}");
        }
    }

    // The typing list leaves the viewer out.
    app.ok(Some(&carol.token), TYPING, json!({ "r": room }))
        .await;
    for sub in subs.iter_mut().filter(|s| s.who != "carol") {
        let item = sub
            .until(|i| i["kind"] == "TYPING_CHANGED")
            .await
            .pop()
            .unwrap();
        assert_eq!(names(&item), ["sr_carol"], "{}", sub.who);
    }
    app.ok(Some(&bob.token), TYPING, json!({ "r": room })).await;
    for sub in subs.iter_mut().filter(|s| s.who != "bob") {
        let item = sub
            .until(|i| i["kind"] == "TYPING_CHANGED")
            .await
            .pop()
            .unwrap();
        let expected: &[&str] = match sub.who {
            "carol" => &["sr_bob"],
            _ => &["sr_bob", "sr_carol"],
        };
        assert_eq!(names(&item), expected, "{}", sub.who);
    }
    let after = Scrape::take(&app).await;
    (
        after.moved(&before, SHARED),
        after.moved(&before, DELIVERED),
    )
}

#[tokio::test]
async fn shared_renders_keep_every_viewers_own_answers() {
    // 3 MESSAGE_ADDED + 6 REACTIONS_CHANGED + 4 TYPING_CHANGED.
    let (shared, delivered) = three_viewers(true).await;
    assert_eq!(delivered, 13.0);
    // At most: 2 of the message's 3; of the first reaction's and the first
    // typing change's, the one of the two outsiders who did not render it;
    // none of the second ones, where only Alice is outside.
    assert!(
        (1.0..=4.0).contains(&shared),
        "{shared} of {delivered} shared"
    );
    let (shared, delivered) = three_viewers(false).await;
    assert_eq!((shared, delivered), (0.0, 13.0));
}

#[tokio::test]
async fn a_render_that_uses_the_viewer_is_never_shared() {
    let app = TestApp::spawn().await;
    let alice = app.register("sr_writer").await;
    let bob = app.register("sr_reader").await;
    let room = create_room(&app, &alice, "private fields").await;
    join(&app, &bob, &room).await;
    let mut subs = vec![
        Sub::open(&app, &alice, "alice", WITH_EMAIL, &room).await,
        Sub::open(&app, &bob, "bob", WITH_EMAIL, &room).await,
    ];
    sync(&app, &alice, &room, &mut subs).await;
    let before = Scrape::take(&app).await;
    for n in 0..3 {
        send(&app, &alice, &room, &format!("note {n}")).await;
    }
    for sub in &mut subs {
        for item in sub.until(|i| content(i) == "note 2").await {
            let email = &item["sender"]["email"];
            match sub.who {
                "alice" => assert_eq!(email, "sr_writer@example.com", "{item}"),
                _ => assert_eq!(email, &Value::Null, "{item}"),
            }
        }
    }
    let after = Scrape::take(&app).await;
    assert_eq!(after.moved(&before, DELIVERED), 6.0);
    assert_eq!(after.moved(&before, SHARED), 0.0);
}

#[tokio::test]
async fn a_room_of_identical_subscriptions_renders_each_event_once() {
    let app = TestApp::spawn().await;
    let owner = app.register("sr_owner").await;
    let room = create_room(&app, &owner, "busy").await;
    let mut subs = Vec::new();
    for i in 0..8 {
        let user = app.register(&format!("sr_member{i}")).await;
        join(&app, &user, &room).await;
        subs.push(Sub::open(&app, &user, "member", MESSAGES, &room).await);
    }
    sync(&app, &owner, &room, &mut subs).await;
    let before = Scrape::take(&app).await;
    for n in 0..5 {
        send(&app, &owner, &room, &format!("m{n}")).await;
    }
    for sub in &mut subs {
        let items = sub.until(|i| content(i) == "m4").await;
        let got: Vec<&str> = items.iter().map(content).collect();
        assert_eq!(got, ["m0", "m1", "m2", "m3", "m4"]);
        for item in &items {
            assert_eq!(item["sender"]["username"], "sr_owner");
            assert_eq!(item["reactions"], json!([]));
        }
    }
    let after = Scrape::take(&app).await;
    assert_eq!(after.moved(&before, DELIVERED), 40.0);
    // Each message is rendered by at least one subscriber; the rest share it
    // (two may render at once on two worker threads).
    let shared = after.moved(&before, SHARED);
    assert!(shared >= 40.0 - 2.0 * 5.0, "{shared} of 40 shared");
}

/// Bytes of renders kept across all groups, waited for (a group goes when
/// its last subscription's task ends).
async fn kept_becomes(app: &TestApp, expected: usize) {
    within(30, async {
        while app.app.endpoint.shared_render_bytes() != expected {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test]
async fn distinct_documents_or_huge_renders_keep_nothing() {
    let app = TestApp::spawn_with(|c| c.limits.sockets_per_user = 100).await;
    let owner = app.register("sr_host").await;
    let guest = app.register("sr_guest").await;
    let room = create_room(&app, &owner, "hostile").await;
    join(&app, &guest, &room).await;
    // Twenty distinct documents (one alias each): twenty groups of one.
    let mut subs = Vec::new();
    for i in 0..20 {
        let doc =
            format!("subscription($r: ID!) {{ a{i}: messageAdded(roomId: $r) {{ content }} }}");
        subs.push(Sub::open(&app, &guest, "lone", &doc, &room).await);
    }
    // Two identical subscriptions whose big renders are over 64 KiB: ten
    // aliases of a 4,000-emoji content (16 KB of UTF-8 each).
    let aliases: Vec<String> = (0..10).map(|i| format!("c{i}: content")).collect();
    let huge = format!(
        "subscription($r: ID!) {{ messageAdded(roomId: $r) {{ {} }} }}",
        aliases.join(" ")
    );
    subs.push(Sub::open(&app, &guest, "huge", &huge, &room).await);
    subs.push(Sub::open(&app, &owner, "huge", &huge, &room).await);
    // Two identical small ones: the one group that may keep a render.
    subs.push(Sub::open(&app, &guest, "pair", MESSAGES, &room).await);
    subs.push(Sub::open(&app, &owner, "pair", MESSAGES, &room).await);
    sync(&app, &owner, &room, &mut subs).await;
    for n in 0..10 {
        // 4,000 characters of 4 bytes: each huge render is ~160 KB.
        let text = format!("{n}{}", "👍".repeat(3999));
        send(&app, &owner, &room, &text).await;
        for sub in &mut subs {
            let items = sub.until(|i| content(i) == text).await;
            assert!(!items.is_empty());
        }
    }
    // The lone groups keep nothing and the huge renders are not kept: what
    // is kept is the pair's one render (16 KB; it has one other subscriber)
    // and the huge pair's small render of the last sync message. Unbounded,
    // the lone groups alone would keep 20 × 16 KB, the huge pair 160 KB.
    let kept = app.app.endpoint.shared_render_bytes();
    assert!((16_000..40_000).contains(&kept), "{kept} bytes kept");
    drop(subs);
    kept_becomes(&app, 0).await;
}

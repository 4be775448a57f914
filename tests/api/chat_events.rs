//! Issue 10, "Chat that people expect": edits, deletes, replies, reactions,
//! read receipts, typing, and the resumable event streams (`Room.events`,
//! `roomEvents`, `directEvents`), over HTTP and real WebSockets, on both
//! databases.
//!
//! Written from `contract.graphql` and SEMANTICS.md alone ("Chat", "Chat:
//! edits, deletes, replies, reactions, receipts, typing, events",
//! "Subscriptions", "Identity and errors", "Connections"), not from the
//! implementation.
//!
//! Readings of the text where it leaves a choice:
//! - Acting on a *room* (setTyping, markRoomRead, Room.events/readReceipts,
//!   roomEvents) as a non-member: rooms are public ("anyone signed in sees
//!   them"), so the non-member can read the room but may not do this:
//!   `FORBIDDEN` ("Chat": "Only members read `messages`, …, send,
//!   `markRoomRead` or subscribe: others get `FORBIDDEN`"; and the chat-events
//!   rule "whoever can read it but may not do this gets `FORBIDDEN`").
//!   Acting on a *message* of a room one is not a member of (edit, delete,
//!   react): the message cannot be read, so `NOT_FOUND`.
//! - A reaction to a deleted message is `BAD_USER_INPUT`, like an edit of one
//!   and a reply to one.
//! - Without `after`, `roomEvents`/`directEvents` deliver live events; tests
//!   that need a known start subscribe with `after`, the others first sync on
//!   a marker message (as subscriptions.rs does) and skip what came before.

use std::time::Duration;

use confab::graphql::id::{NodeType, encode};
use futures_util::{StreamExt, future::join_all};
use serde_json::{Value, json};
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::Message as WsMessage;

use crate::{
    chat::{create_room, join},
    support::{TestApp, TestUser, error_code, is_postgres, within},
    ws::{PROTOCOLS, Socket, init, send as ws_send, subscribe_type},
};

// ---------------------------------------------------------------- queries

const MSG: &str = "id content createdAt editedAt deletedAt sender { username } replyTo { id content } reactions { emoji count viewerHasReacted }";
const DM: &str = "id content createdAt editedAt deletedAt sender { username } receiver { username } replyTo { id content } reactions { emoji count viewerHasReacted }";
const EVENT: &str = "cursor kind at room { id } actor { username } message { id content deletedAt reactions { emoji count } } receipt { user { username } message { id } readAt } typing { username }";
const DEVENT: &str = "cursor kind at peer { username } actor { username } directMessage { id content deletedAt reactions { emoji count } } typing";

fn q(template: &str) -> String {
    template
        .replace("%MSG%", MSG)
        .replace("%DM%", DM)
        .replace("%EVENT%", EVENT)
        .replace("%DEVENT%", DEVENT)
}

const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { %MSG% } }";
const SEND_DM: &str =
    "mutation($i: SendDirectMessageInput!) { sendDirectMessage(input: $i) { %DM% } }";
const EDIT: &str = "mutation($i: EditMessageInput!) { editMessage(input: $i) { %MSG% } }";
const EDIT_DM: &str = "mutation($i: EditMessageInput!) { editDirectMessage(input: $i) { %DM% } }";
const DELETE: &str = "mutation($id: ID!) { deleteMessage(id: $id) { %MSG% } }";
const DELETE_DM: &str = "mutation($id: ID!) { deleteDirectMessage(id: $id) { %DM% } }";
const NODE_MSG: &str = "query($id: ID!) { node(id: $id) { ... on Message { %MSG% } } }";
const NODE_DM: &str = "query($id: ID!) { node(id: $id) { ... on DirectMessage { %DM% } } }";
const MESSAGES: &str =
    "query($r: ID!) { room(id: $r) { messages(first: 100) { edges { cursor node { %MSG% } } } } }";
const THREAD: &str =
    "query($u: ID!) { directMessages(withUserId: $u, first: 100) { edges { node { %DM% } } } }";
const ADD: &str = "mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) { messageId reactions { emoji count viewerHasReacted } } }";
const REMOVE: &str = "mutation($m: ID!, $e: String!) { removeReaction(messageId: $m, emoji: $e) { messageId reactions { emoji count viewerHasReacted } } }";
const MARK: &str =
    "mutation($r: ID!, $u: ID) { markRoomRead(roomId: $r, upTo: $u) { id unreadCount } }";
const MARK_DM: &str =
    "mutation($u: ID!) { markConversationRead(withUserId: $u) { peer { username } unreadCount } }";
const RECEIPTS: &str = "query($r: ID!, $first: Int, $after: String) { room(id: $r) {
    readReceipts(first: $first, after: $after) {
        edges { cursor node { user { username } message { id } readAt } }
        pageInfo { hasNextPage endCursor } } } }";
const TYPING: &str = "query($r: ID!) { room(id: $r) { typing { username } } }";
const SET_TYPING: &str =
    "mutation($r: ID, $u: ID, $t: Boolean!) { setTyping(roomId: $r, withUserId: $u, typing: $t) }";
const EVENTS: &str = "query($r: ID!, $first: Int, $after: String) { room(id: $r) {
    events(first: $first, after: $after) { edges { cursor node { %EVENT% } } pageInfo { hasNextPage endCursor } } } }";
const ROOM_EVENTS: &str =
    "subscription($r: ID!, $a: String) { roomEvents(roomId: $r, after: $a) { %EVENT% } }";
const DIRECT_EVENTS: &str = "subscription($a: String) { directEvents(after: $a) { %DEVENT% } }";
const MESSAGE_ADDED: &str = "subscription($r: ID!) { messageAdded(roomId: $r) { id content } }";

/// Twenty-one different single-code-point emoji.
const EMOJI: [&str; 21] = [
    "😀", "😁", "😂", "🤣", "😃", "😄", "😅", "😆", "😉", "😊", "😋", "😎", "😍", "😘", "🥰", "😗",
    "😙", "😚", "🙂", "🤗", "🤩",
];

// ---------------------------------------------------------------- HTTP helpers

fn tok(user: Option<&TestUser>) -> Option<&str> {
    user.map(|u| u.token.as_str())
}

/// `data.<name>` of a response that must have no errors.
fn field(v: &Value, name: &str) -> Value {
    assert!(v.get("errors").is_none(), "unexpected errors: {v}");
    v["data"][name].clone()
}

fn sid(v: &Value) -> String {
    v["id"]
        .as_str()
        .unwrap_or_else(|| panic!("no id in {v}"))
        .to_owned()
}

/// A well-formed id of nothing.
fn nothing(kind: NodeType) -> String {
    encode(kind, uuid::Uuid::now_v7()).0
}

fn reaction(emoji: &str, count: i64, mine: bool) -> Value {
    json!({ "emoji": emoji, "count": count, "viewerHasReacted": mine })
}

async fn post_raw(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    content: &str,
    reply_to: Option<&str>,
) -> Value {
    app.gql(
        Some(&user.token),
        &q(SEND),
        json!({ "i": { "roomId": room, "content": content, "replyToId": reply_to } }),
    )
    .await
}

async fn post(app: &TestApp, user: &TestUser, room: &str, content: &str) -> Value {
    field(
        &post_raw(app, user, room, content, None).await,
        "sendMessage",
    )
}

async fn dm_raw(
    app: &TestApp,
    from: &TestUser,
    to: &TestUser,
    content: &str,
    reply_to: Option<&str>,
) -> Value {
    app.gql(
        Some(&from.token),
        &q(SEND_DM),
        json!({ "i": { "toUserId": to.id, "content": content, "replyToId": reply_to } }),
    )
    .await
}

async fn dm(app: &TestApp, from: &TestUser, to: &TestUser, content: &str) -> Value {
    field(
        &dm_raw(app, from, to, content, None).await,
        "sendDirectMessage",
    )
}

async fn edit(app: &TestApp, user: Option<&TestUser>, id: &str, content: &str) -> Value {
    app.gql(
        tok(user),
        &q(EDIT),
        json!({ "i": { "id": id, "content": content } }),
    )
    .await
}

async fn edit_dm(app: &TestApp, user: Option<&TestUser>, id: &str, content: &str) -> Value {
    app.gql(
        tok(user),
        &q(EDIT_DM),
        json!({ "i": { "id": id, "content": content } }),
    )
    .await
}

async fn delete(app: &TestApp, user: Option<&TestUser>, id: &str) -> Value {
    app.gql(tok(user), &q(DELETE), json!({ "id": id })).await
}

async fn delete_dm(app: &TestApp, user: Option<&TestUser>, id: &str) -> Value {
    app.gql(tok(user), &q(DELETE_DM), json!({ "id": id })).await
}

async fn add(app: &TestApp, user: Option<&TestUser>, id: &str, emoji: &str) -> Value {
    app.gql(tok(user), ADD, json!({ "m": id, "e": emoji }))
        .await
}

async fn remove(app: &TestApp, user: Option<&TestUser>, id: &str, emoji: &str) -> Value {
    app.gql(tok(user), REMOVE, json!({ "m": id, "e": emoji }))
        .await
}

/// A room message as `user` sees it through `node`.
async fn message(app: &TestApp, user: &TestUser, id: &str) -> Value {
    app.ok(Some(&user.token), &q(NODE_MSG), json!({ "id": id }))
        .await["node"]
        .clone()
}

async fn direct(app: &TestApp, user: &TestUser, id: &str) -> Value {
    app.ok(Some(&user.token), &q(NODE_DM), json!({ "id": id }))
        .await["node"]
        .clone()
}

async fn history(app: &TestApp, user: &TestUser, room: &str) -> Vec<Value> {
    app.ok(Some(&user.token), &q(MESSAGES), json!({ "r": room }))
        .await["room"]["messages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn thread(app: &TestApp, user: &TestUser, peer: &TestUser) -> Vec<Value> {
    app.ok(Some(&user.token), &q(THREAD), json!({ "u": peer.id }))
        .await["directMessages"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

async fn mark(app: &TestApp, user: &TestUser, room: &str, up_to: Option<&str>) -> Value {
    app.gql(Some(&user.token), MARK, json!({ "r": room, "u": up_to }))
        .await
}

async fn unread(app: &TestApp, user: &TestUser, room: &str) -> i64 {
    app.ok(
        Some(&user.token),
        "query($r: ID!) { room(id: $r) { unreadCount } }",
        json!({ "r": room }),
    )
    .await["room"]["unreadCount"]
        .as_i64()
        .unwrap()
}

/// The viewer's unread count in the thread with `peer` (0 without a thread).
async fn dm_unread(app: &TestApp, user: &TestUser, peer: &TestUser) -> i64 {
    let v = app
        .ok(
            Some(&user.token),
            "{ conversations(first: 100) { edges { node { peer { username } unreadCount } } } }",
            json!({}),
        )
        .await;
    v["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["node"]["peer"]["username"] == peer.username.as_str())
        .map_or(0, |e| e["node"]["unreadCount"].as_i64().unwrap())
}

async fn receipts(app: &TestApp, user: &TestUser, room: &str) -> Vec<Value> {
    app.ok(
        Some(&user.token),
        RECEIPTS,
        json!({ "r": room, "first": 100 }),
    )
    .await["room"]["readReceipts"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect()
}

/// (username, message id or null) of each receipt, in order.
fn receipt_summary(receipts: &[Value]) -> Vec<(String, Value)> {
    receipts
        .iter()
        .map(|r| {
            (
                r["user"]["username"].as_str().unwrap().to_owned(),
                r["message"]["id"].clone(),
            )
        })
        .collect()
}

fn names(users: &Value) -> Vec<String> {
    let mut out: Vec<String> = users
        .as_array()
        .unwrap_or_else(|| panic!("not a list: {users}"))
        .iter()
        .map(|u| u["username"].as_str().unwrap().to_owned())
        .collect();
    out.sort();
    out
}

/// Room.typing as `user` sees it, sorted.
async fn typing_in(app: &TestApp, user: &TestUser, room: &str) -> Vec<String> {
    names(
        &app.ok(Some(&user.token), TYPING, json!({ "r": room }))
            .await["room"]["typing"],
    )
}

/// Polls Room.typing until it is `expected` (sorted), for at most `secs`.
async fn eventually_typing(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    expected: &[&str],
    secs: u64,
) {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        let now = typing_in(app, user, room).await;
        if now == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "Room.typing for {} stayed {now:?}, expected {expected:?}",
            user.username
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn set_typing(
    app: &TestApp,
    user: Option<&TestUser>,
    room: Option<&str>,
    with: Option<&str>,
    typing: bool,
) -> Value {
    app.gql(
        tok(user),
        SET_TYPING,
        json!({ "r": room, "u": with, "t": typing }),
    )
    .await
}

async fn update_room(app: &TestApp, user: &TestUser, room: &str, name: &str) {
    app.ok(
        Some(&user.token),
        "mutation($i: UpdateRoomInput!) { updateRoom(input: $i) { id } }",
        json!({ "i": { "id": room, "name": name } }),
    )
    .await;
}

async fn leave(app: &TestApp, user: &TestUser, room: &str) {
    app.ok(
        Some(&user.token),
        "mutation($r: ID!) { leaveRoom(roomId: $r) { id } }",
        json!({ "r": room }),
    )
    .await;
}

async fn events_raw(
    app: &TestApp,
    user: Option<&TestUser>,
    room: &str,
    first: Option<i64>,
    after: Option<&str>,
) -> Value {
    app.gql(
        tok(user),
        &q(EVENTS),
        json!({ "r": room, "first": first, "after": after }),
    )
    .await
}

/// Every stored event of the room after `after` (none: from the start), oldest first.
async fn all_events(app: &TestApp, user: &TestUser, room: &str, after: Option<&str>) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after = after.map(str::to_owned);
    loop {
        let v = field(
            &events_raw(app, Some(user), room, Some(100), after.as_deref()).await,
            "room",
        );
        let conn = &v["events"];
        for edge in conn["edges"].as_array().unwrap() {
            out.push(edge["node"].clone());
        }
        if conn["pageInfo"]["hasNextPage"] != true {
            return out;
        }
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
}

async fn latest_cursor(app: &TestApp, user: &TestUser, room: &str) -> String {
    let events = all_events(app, user, room, None).await;
    cursor(
        events
            .last()
            .expect("a room has at least its creator's MEMBER_JOINED"),
    )
}

fn cursor(event: &Value) -> String {
    event["cursor"]
        .as_str()
        .unwrap_or_else(|| panic!("no cursor in {event}"))
        .to_owned()
}

fn kinds(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["kind"].as_str().unwrap().to_owned())
        .collect()
}

fn cursors(events: &[Value]) -> Vec<String> {
    events.iter().map(cursor).collect()
}

fn actors(events: &[Value]) -> Vec<String> {
    events
        .iter()
        .map(|e| e["actor"]["username"].as_str().unwrap().to_owned())
        .collect()
}

// ---------------------------------------------------------------- WebSocket helpers

/// The next JSON message within `ms`, skipping keep-alives; None on timeout.
async fn read_json(socket: &mut Socket, ms: u64) -> Option<Value> {
    let deadline = Instant::now() + Duration::from_millis(ms);
    loop {
        let next = tokio::time::timeout_at(deadline, socket.next())
            .await
            .ok()?;
        match next {
            Some(Ok(WsMessage::Text(text))) => {
                let v: Value = serde_json::from_str(text.as_str()).unwrap();
                if v["type"] == "ka" || v["type"] == "ping" || v["type"] == "pong" {
                    continue;
                }
                return Some(v);
            }
            Some(Ok(WsMessage::Ping(_) | WsMessage::Pong(_))) => continue,
            other => panic!("expected a text message, got {other:?}"),
        }
    }
}

async fn open(app: &TestApp, user: Option<&TestUser>, protocol: &'static str) -> Socket {
    let payload = match user {
        Some(user) => json!({ "authorization": format!("Bearer {}", user.token) }),
        None => json!({}),
    };
    init(app, protocol, payload).await
}

async fn start(socket: &mut Socket, protocol: &str, id: &str, query: &str, variables: Value) {
    ws_send(
        socket,
        json!({ "id": id, "type": subscribe_type(protocol), "payload": { "query": query, "variables": variables } }),
    )
    .await;
}

/// The error code the server answers subscription `id` with (an `error`
/// message, or a result carrying errors followed by `complete`).
async fn sub_error(socket: &mut Socket, id: &str) -> String {
    let msg = read_json(socket, 10_000)
        .await
        .unwrap_or_else(|| panic!("no answer for subscription {id}"));
    assert_eq!(msg["id"], id, "{msg}");
    let err = match msg["type"].as_str() {
        Some("error") => {
            if msg["payload"].is_array() {
                msg["payload"][0].clone()
            } else {
                msg["payload"].clone()
            }
        }
        Some("next" | "data") => {
            let err = msg["payload"]["errors"][0].clone();
            assert!(err.is_object(), "expected an error for {id}, got {msg}");
            let done = read_json(socket, 5_000).await;
            assert_eq!(
                done,
                Some(json!({ "type": "complete", "id": id })),
                "an errored subscription completes"
            );
            err
        }
        _ => panic!("expected an error for {id}, got {msg}"),
    };
    err["extensions"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no code in {msg}"))
        .to_owned()
}

/// One subscription on its own socket.
struct Feed {
    socket: Socket,
    id: String,
    protocol: &'static str,
    /// "roomEvents", "directEvents" or "messageAdded".
    field: &'static str,
}

async fn room_feed(
    app: &TestApp,
    user: &TestUser,
    room: &str,
    after: Option<&str>,
    protocol: &'static str,
) -> Feed {
    let mut socket = open(app, Some(user), protocol).await;
    start(
        &mut socket,
        protocol,
        "ev",
        &q(ROOM_EVENTS),
        json!({ "r": room, "a": after }),
    )
    .await;
    Feed {
        socket,
        id: "ev".into(),
        protocol,
        field: "roomEvents",
    }
}

async fn direct_feed(
    app: &TestApp,
    user: &TestUser,
    after: Option<&str>,
    protocol: &'static str,
) -> Feed {
    let mut socket = open(app, Some(user), protocol).await;
    start(
        &mut socket,
        protocol,
        "dev",
        &q(DIRECT_EVENTS),
        json!({ "a": after }),
    )
    .await;
    Feed {
        socket,
        id: "dev".into(),
        protocol,
        field: "directEvents",
    }
}

async fn message_feed(app: &TestApp, user: &TestUser, room: &str) -> Feed {
    let protocol = PROTOCOLS[0];
    let mut socket = open(app, Some(user), protocol).await;
    start(
        &mut socket,
        protocol,
        "ma",
        MESSAGE_ADDED,
        json!({ "r": room }),
    )
    .await;
    Feed {
        socket,
        id: "ma".into(),
        protocol,
        field: "messageAdded",
    }
}

impl Feed {
    async fn raw(&mut self, ms: u64) -> Option<Value> {
        read_json(&mut self.socket, ms).await
    }

    /// The delivered item of a data message.
    fn item(&self, msg: &Value) -> Value {
        let data_type = if self.protocol == "graphql-ws" {
            "data"
        } else {
            "next"
        };
        assert_eq!(
            msg["type"], data_type,
            "{} ({}): {msg}",
            self.field, self.protocol
        );
        assert_eq!(msg["id"], self.id.as_str(), "{msg}");
        assert!(
            msg["payload"].get("errors").is_none(),
            "{}: errors in {msg}",
            self.field
        );
        msg["payload"]["data"][self.field].clone()
    }

    async fn next_any(&mut self, secs: u64) -> Value {
        let msg = self
            .raw(secs * 1000)
            .await
            .unwrap_or_else(|| panic!("{}: nothing within {secs} s", self.field));
        self.item(&msg)
    }

    /// The next stored event (TYPING_CHANGED, never stored, skipped).
    async fn next_stored(&mut self) -> Value {
        loop {
            let ev = self.next_any(10).await;
            if ev["kind"] != "TYPING_CHANGED" {
                return ev;
            }
        }
    }

    async fn take_stored(&mut self, n: usize) -> Vec<Value> {
        let mut out = Vec::with_capacity(n);
        while out.len() < n {
            out.push(self.next_stored().await);
        }
        out
    }

    fn message_field(&self) -> &'static str {
        if self.field == "directEvents" {
            "directMessage"
        } else {
            "message"
        }
    }

    /// The content of a new message this item announces, if it is one.
    fn added_content<'a>(&self, item: &'a Value) -> Option<&'a str> {
        if self.field == "messageAdded" {
            return item["content"].as_str();
        }
        if item["kind"] == "MESSAGE_ADDED" || item["kind"] == "DIRECT_MESSAGE_ADDED" {
            return item[self.message_field()]["content"].as_str();
        }
        None
    }

    /// Stored events up to and including the one announcing a new message `content`.
    async fn until_added(&mut self, content: &str) -> Vec<Value> {
        within(60, async {
            let mut out = Vec::new();
            loop {
                let ev = self.next_stored().await;
                let done = self.added_content(&ev) == Some(content);
                out.push(ev);
                if done {
                    return out;
                }
            }
        })
        .await
    }

    /// Reads until a new message `content` arrives; None if nothing comes for `idle_ms`.
    async fn saw_added(&mut self, content: &str, idle_ms: u64) -> Option<Value> {
        while let Some(msg) = self.raw(idle_ms).await {
            let item = self.item(&msg);
            if self.added_content(&item) == Some(content) {
                return Some(item);
            }
        }
        None
    }

    async fn expect_complete(&mut self) {
        let msg = self.raw(10_000).await;
        assert_eq!(
            msg,
            Some(json!({ "type": "complete", "id": self.id })),
            "{} ({})",
            self.field,
            self.protocol
        );
    }

    /// No stored event (and nothing else but typing) for `ms`.
    async fn expect_no_stored(&mut self, ms: u64) {
        let deadline = Instant::now() + Duration::from_millis(ms);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return;
            }
            match self.raw(left.as_millis() as u64 + 1).await {
                None => return,
                Some(msg) => {
                    let item = self.item(&msg);
                    assert_eq!(
                        item["kind"], "TYPING_CHANGED",
                        "{}: expected nothing more, got {msg}",
                        self.field
                    );
                }
            }
        }
    }

    /// Reads until a room TYPING_CHANGED whose set (sorted) is `expected`.
    async fn wait_typing(&mut self, expected: &[&str], secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(msg) = self.raw(left.as_millis() as u64 + 1).await else {
                panic!(
                    "no TYPING_CHANGED with {expected:?} within {secs} s; typing sets seen: {seen:?}"
                );
            };
            let ev = self.item(&msg);
            if ev["kind"] == "TYPING_CHANGED" {
                let set = names(&ev["typing"]);
                if set == expected {
                    return ev;
                }
                seen.push(set);
            }
        }
    }

    /// Reads until a direct TYPING_CHANGED from `peer` saying `typing`.
    async fn wait_dm_typing(&mut self, peer: &str, typing: bool, secs: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(secs);
        let mut seen = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let Some(msg) = self.raw(left.as_millis() as u64 + 1).await else {
                panic!("no TYPING_CHANGED {peer}={typing} within {secs} s; seen: {seen:?}");
            };
            let ev = self.item(&msg);
            if ev["kind"] == "TYPING_CHANGED" {
                if ev["peer"]["username"] == peer && ev["typing"] == typing {
                    return ev;
                }
                seen.push(ev);
            }
        }
    }
}

/// Sends markers until every feed has one: all are live and drained.
/// Returns the marker event each feed got.
async fn sync_with<F: std::future::Future<Output = ()>>(
    feeds: &mut [&mut Feed],
    mut send_marker: impl FnMut(String) -> F,
) -> Vec<Value> {
    for _ in 0..40 {
        let marker = format!("sync-{}", uuid::Uuid::now_v7());
        send_marker(marker.clone()).await;
        let mut got = Vec::new();
        for feed in feeds.iter_mut() {
            match feed.saw_added(&marker, 500).await {
                Some(ev) => got.push(ev),
                None => break,
            }
        }
        if got.len() == feeds.len() {
            return got;
        }
    }
    panic!("the subscriptions never went live");
}

async fn sync_room(
    app: &TestApp,
    sender: &TestUser,
    room: &str,
    feeds: &mut [&mut Feed],
) -> Vec<Value> {
    sync_with(feeds, |marker| async move {
        post(app, sender, room, &marker).await;
    })
    .await
}

async fn sync_dm(
    app: &TestApp,
    from: &TestUser,
    to: &TestUser,
    feeds: &mut [&mut Feed],
) -> Vec<Value> {
    sync_with(feeds, |marker| async move {
        dm(app, from, to, &marker).await;
    })
    .await
}

// ---------------------------------------------------------------- edits

#[tokio::test]
async fn only_the_sender_edits_a_message_and_an_edit_sets_edited_at() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let m = post(&app, &alice, &r, "first").await;
    let id = sid(&m);
    assert_eq!(m["editedAt"], Value::Null, "never edited");
    assert_eq!(m["deletedAt"], Value::Null);
    assert_eq!(m["replyTo"], Value::Null);
    assert_eq!(m["reactions"], json!([]));

    let v = edit(&app, Some(&bob), &id, "mine now").await;
    assert_eq!(
        error_code(&v),
        "FORBIDDEN",
        "another member reads it but may not edit"
    );
    let v = edit(&app, Some(&carol), &id, "x").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a non-member cannot read it");
    let v = edit(&app, None, &id, "x").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let b = post(&app, &bob, &r, "bob's").await;
    let v = edit(&app, Some(&alice), &sid(&b), "x").await;
    assert_eq!(
        error_code(&v),
        "FORBIDDEN",
        "the room's creator may delete others' messages, not edit them"
    );
    for bad in [
        String::new(),
        "  \n\t".into(),
        "x".repeat(4001),
        "nul\0byte".into(),
    ] {
        let v = edit(&app, Some(&alice), &id, &bad).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "content {bad:?}");
    }
    let d = sid(&dm(&app, &alice, &bob, "a direct message").await);
    for (bad, why) in [
        (d.as_str(), "a DirectMessage id"),
        (r.as_str(), "a Room id"),
        ("garbage!", "garbage"),
    ] {
        let v = edit(&app, Some(&alice), bad, "x").await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{why}");
    }
    let v = edit(&app, Some(&alice), &nothing(NodeType::Message), "x").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a well-formed id of nothing");
    let now = message(&app, &bob, &id).await;
    assert_eq!(now["content"], "first", "nothing refused changed it");
    assert_eq!(now["editedAt"], Value::Null);

    let text = "  <i>second</i> & 'more'  ";
    let edited = field(&edit(&app, Some(&alice), &id, text).await, "editMessage");
    assert_eq!(edited["id"], id.as_str());
    assert_eq!(edited["content"], text, "stored exactly as sent");
    assert_eq!(edited["createdAt"], m["createdAt"], "createdAt stays");
    assert_eq!(edited["deletedAt"], Value::Null);
    assert_eq!(edited["sender"]["username"], "alice");
    let edited_at = edited["editedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("editedAt set: {edited}"))
        .to_owned();
    assert!(edited_at.ends_with('Z'));
    assert!(edited_at.as_str() >= m["createdAt"].as_str().unwrap());
    // Other members see the edit in the history.
    let seen = history(&app, &bob, &r).await;
    assert_eq!(seen[0]["id"], id.as_str());
    assert_eq!(seen[0]["content"], text);
    assert_eq!(seen[0]["editedAt"], edited_at.as_str());
    assert_eq!(
        seen[1]["editedAt"],
        Value::Null,
        "bob's message was not edited"
    );

    // The longest content allowed; editedAt moves on, never back.
    let long = "é".repeat(4000);
    let again = field(&edit(&app, Some(&alice), &id, &long).await, "editMessage");
    assert_eq!(again["content"], long.as_str());
    assert!(again["editedAt"].as_str().unwrap() >= edited_at.as_str());

    // A sender who left cannot read, so not edit, their message any more.
    leave(&app, &bob, &r).await;
    let v = edit(&app, Some(&bob), &sid(&b), "x").await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    assert_eq!(message(&app, &alice, &sid(&b)).await["content"], "bob's");
}

// ---------------------------------------------------------------- deletes

#[tokio::test]
async fn a_delete_leaves_a_tombstone_and_the_rooms_creator_may_moderate() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    join(&app, &carol, &r).await;
    let m = post(&app, &bob, &r, "bob's").await;
    let mid = sid(&m);
    field(&add(&app, Some(&alice), &mid, "👍").await, "addReaction");
    let reply = field(
        &post_raw(&app, &carol, &r, "an answer", Some(&mid)).await,
        "sendMessage",
    );
    assert_eq!(reply["replyTo"], json!({ "id": mid, "content": "bob's" }));

    let v = delete(&app, Some(&carol), &mid).await;
    assert_eq!(
        error_code(&v),
        "FORBIDDEN",
        "a member who is neither the sender nor the room's creator"
    );
    let v = delete(&app, Some(&dave), &mid).await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a non-member cannot read it");
    let v = delete(&app, None, &mid).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let d = sid(&dm(&app, &bob, &alice, "dm").await);
    let v = delete(&app, Some(&bob), &d).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "a DirectMessage id");
    let v = delete(&app, Some(&bob), "garbage!").await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = delete(&app, Some(&bob), &nothing(NodeType::Message)).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let still = message(&app, &bob, &mid).await;
    assert_eq!(still["content"], "bob's");
    assert_eq!(still["deletedAt"], Value::Null);
    assert_eq!(still["reactions"], json!([reaction("👍", 1, false)]));

    // The creator moderates.
    let before = all_events(&app, &alice, &r, None).await.len();
    let tomb = field(&delete(&app, Some(&alice), &mid).await, "deleteMessage");
    assert_eq!(tomb["id"], mid.as_str());
    assert_eq!(tomb["content"], "", "a tombstone has empty content");
    assert_eq!(tomb["reactions"], json!([]), "and no reactions");
    assert_eq!(tomb["sender"]["username"], "bob");
    assert_eq!(tomb["createdAt"], m["createdAt"]);
    let deleted_at = tomb["deletedAt"]
        .as_str()
        .unwrap_or_else(|| panic!("deletedAt set: {tomb}"))
        .to_owned();
    assert!(deleted_at.as_str() >= m["createdAt"].as_str().unwrap());
    let events = all_events(&app, &alice, &r, None).await;
    assert_eq!(events.len(), before + 1, "a delete appends one event");
    let last = events.last().unwrap();
    assert_eq!(last["kind"], "MESSAGE_DELETED");
    assert_eq!(last["actor"]["username"], "alice", "the moderator did it");
    assert_eq!(last["message"]["id"], mid.as_str());
    assert_eq!(last["message"]["content"], "");

    // Deleting again returns the same tombstone and appends nothing.
    let again = field(&delete(&app, Some(&alice), &mid).await, "deleteMessage");
    assert_eq!(again, tomb, "the same tombstone, the same deletedAt");
    let again = field(&delete(&app, Some(&bob), &mid).await, "deleteMessage");
    assert_eq!(again, tomb, "the sender gets the same tombstone");
    assert_eq!(
        all_events(&app, &alice, &r, None).await.len(),
        before + 1,
        "deleting twice appends nothing"
    );

    // The tombstone stays in history; the reply no longer shows it.
    let seen = history(&app, &carol, &r).await;
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0], tomb);
    assert_eq!(seen[1]["id"], reply["id"]);
    assert_eq!(
        seen[1]["replyTo"],
        Value::Null,
        "a reply to a deleted message"
    );
    assert_eq!(
        message(&app, &bob, &sid(&reply)).await["replyTo"],
        Value::Null
    );
    assert_eq!(message(&app, &carol, &mid).await, tomb);

    // A tombstone is final.
    let v = edit(&app, Some(&bob), &mid, "resurrected").await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "a deleted message cannot be edited"
    );
    let v = add(&app, Some(&carol), &mid, "🎉").await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "no reactions on deleted messages"
    );
    let v = post_raw(&app, &carol, &r, "late answer", Some(&mid)).await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "no replies to deleted messages"
    );
    let v = mark(&app, &carol, &r, Some(&mid)).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "upTo a deleted message");
    assert_eq!(message(&app, &bob, &mid).await, tomb);

    // Senders delete their own messages; only the room's creator others'.
    let c = sid(&post(&app, &carol, &r, "carol's").await);
    let v = delete(&app, Some(&bob), &c).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let own = field(&delete(&app, Some(&carol), &c).await, "deleteMessage");
    assert!(own["deletedAt"].is_string());
    assert_eq!(own["content"], "");
    // The creator's power is over her own room only.
    let r2 = create_room(&app, &bob, "Bob's room").await;
    join(&app, &alice, &r2).await;
    join(&app, &carol, &r2).await;
    let x = sid(&post(&app, &carol, &r2, "in bob's room").await);
    let v = delete(&app, Some(&alice), &x).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let moderated = field(&delete(&app, Some(&bob), &x).await, "deleteMessage");
    assert!(moderated["deletedAt"].is_string());
}

#[tokio::test]
async fn deleted_messages_never_count_as_unread() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let a1 = sid(&post(&app, &alice, &r, "a1").await);
    let a2 = sid(&post(&app, &alice, &r, "a2").await);
    post(&app, &alice, &r, "a3").await;
    assert_eq!(unread(&app, &bob, &r).await, 3);
    field(&delete(&app, Some(&alice), &a2).await, "deleteMessage");
    assert_eq!(unread(&app, &bob, &r).await, 2, "a deleted unread message");
    field(&delete(&app, Some(&alice), &a2).await, "deleteMessage");
    assert_eq!(unread(&app, &bob, &r).await, 2, "deleting twice");
    let v = field(&mark(&app, &bob, &r, None).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 0);
    field(&delete(&app, Some(&alice), &a1).await, "deleteMessage");
    assert_eq!(unread(&app, &bob, &r).await, 0, "a deleted read message");
    let a4 = sid(&post(&app, &alice, &r, "a4").await);
    assert_eq!(unread(&app, &bob, &r).await, 1);
    field(&delete(&app, Some(&alice), &a4).await, "deleteMessage");
    assert_eq!(unread(&app, &bob, &r).await, 0);
    post(&app, &alice, &r, "a5").await;
    assert_eq!(unread(&app, &bob, &r).await, 1);
    join(&app, &carol, &r).await;
    assert_eq!(unread(&app, &carol, &r).await, 0);
    let a6 = sid(&post(&app, &alice, &r, "a6").await);
    assert_eq!(unread(&app, &carol, &r).await, 1);
    assert_eq!(unread(&app, &bob, &r).await, 2);
    field(&delete(&app, Some(&alice), &a6).await, "deleteMessage");
    assert_eq!(unread(&app, &carol, &r).await, 0);
    assert_eq!(unread(&app, &bob, &r).await, 1);
    // The creator deletes a member's message: her own count drops.
    let b1 = sid(&post(&app, &bob, &r, "b1").await);
    assert_eq!(unread(&app, &alice, &r).await, 1, "bob's message");
    field(&delete(&app, Some(&alice), &b1).await, "deleteMessage");
    assert_eq!(unread(&app, &alice, &r).await, 0);
    assert_eq!(unread(&app, &carol, &r).await, 0);
    let mine = app
        .ok(
            Some(&bob.token),
            "{ myRooms { edges { node { id unreadCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["myRooms"]["edges"],
        json!([{ "node": { "id": r, "unreadCount": 1 } }])
    );

    // Threads too.
    let d1 = sid(&dm(&app, &alice, &bob, "d1").await);
    let d2 = sid(&dm(&app, &alice, &bob, "d2").await);
    dm(&app, &alice, &bob, "d3").await;
    assert_eq!(dm_unread(&app, &bob, &alice).await, 3);
    field(
        &delete_dm(&app, Some(&alice), &d2).await,
        "deleteDirectMessage",
    );
    assert_eq!(dm_unread(&app, &bob, &alice).await, 2);
    let v = app
        .ok(Some(&bob.token), MARK_DM, json!({ "u": alice.id }))
        .await;
    assert_eq!(v["markConversationRead"]["unreadCount"], 0);
    field(
        &delete_dm(&app, Some(&alice), &d1).await,
        "deleteDirectMessage",
    );
    assert_eq!(dm_unread(&app, &bob, &alice).await, 0);
    let d4 = sid(&dm(&app, &alice, &bob, "d4").await);
    assert_eq!(dm_unread(&app, &bob, &alice).await, 1);
    field(
        &delete_dm(&app, Some(&alice), &d4).await,
        "deleteDirectMessage",
    );
    assert_eq!(dm_unread(&app, &bob, &alice).await, 0);
}

// ---------------------------------------------------------------- replies

#[tokio::test]
async fn a_reply_answers_a_live_message_of_the_same_room() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r1 = create_room(&app, &alice, "One").await;
    let r2 = create_room(&app, &alice, "Two").await;
    join(&app, &bob, &r1).await;
    join(&app, &bob, &r2).await;
    let m1 = sid(&post(&app, &alice, &r1, "question").await);
    let x = sid(&post(&app, &alice, &r2, "elsewhere").await);
    let d = sid(&dm(&app, &alice, &bob, "direct").await);
    let gone = sid(&post(&app, &alice, &r1, "gone").await);
    field(&delete(&app, Some(&alice), &gone).await, "deleteMessage");

    let reply = field(
        &post_raw(&app, &bob, &r1, "answer", Some(&m1)).await,
        "sendMessage",
    );
    assert_eq!(reply["replyTo"], json!({ "id": m1, "content": "question" }));
    let again = field(
        &post_raw(
            &app,
            &alice,
            &r1,
            "answer to the answer",
            Some(&sid(&reply)),
        )
        .await,
        "sendMessage",
    );
    assert_eq!(again["replyTo"]["id"], reply["id"]);
    assert_eq!(again["replyTo"]["content"], "answer");

    let nobody = nothing(NodeType::Message);
    for (bad, why) in [
        (
            x.as_str(),
            "a message of another room (one the sender can read)",
        ),
        (gone.as_str(), "a deleted message"),
        (nobody.as_str(), "a well-formed id of nothing"),
        (d.as_str(), "a DirectMessage id"),
        (r1.as_str(), "a Room id"),
        ("garbage!", "garbage"),
    ] {
        let v = post_raw(&app, &bob, &r1, "nope", Some(bad)).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "replyToId: {why}");
    }
    // Nothing was stored by the refused sends.
    let seen = history(&app, &bob, &r1).await;
    let contents: Vec<&str> = seen
        .iter()
        .map(|m| m["content"].as_str().unwrap())
        .collect();
    assert_eq!(contents, ["question", "", "answer", "answer to the answer"]);
    assert_eq!(seen[0]["replyTo"], Value::Null);
    assert_eq!(
        seen[2]["replyTo"],
        json!({ "id": m1, "content": "question" })
    );
    // An edit of the parent shows through replyTo.
    field(
        &edit(&app, Some(&alice), &m1, "question, edited").await,
        "editMessage",
    );
    assert_eq!(
        message(&app, &bob, &sid(&reply)).await["replyTo"],
        json!({ "id": m1, "content": "question, edited" })
    );
}

#[tokio::test]
async fn direct_messages_edit_delete_and_reply_within_their_thread_only() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let d1 = dm(&app, &alice, &bob, "hi").await;
    let d1id = sid(&d1);
    assert_eq!(d1["editedAt"], Value::Null);
    assert_eq!(d1["deletedAt"], Value::Null);
    assert_eq!(d1["reactions"], json!([]));
    let d2 = field(
        &dm_raw(&app, &bob, &alice, "hello", Some(&d1id)).await,
        "sendDirectMessage",
    );
    assert_eq!(d2["replyTo"], json!({ "id": d1id, "content": "hi" }));
    let c1 = sid(&dm(&app, &carol, &alice, "psst").await);
    let r = create_room(&app, &alice, "Room").await;
    let m = sid(&post(&app, &alice, &r, "in a room").await);
    let nobody = nothing(NodeType::DirectMessage);
    for (bad, why) in [
        (
            c1.as_str(),
            "a message of another thread (one alice can read)",
        ),
        (m.as_str(), "a room Message id"),
        (nobody.as_str(), "a well-formed id of nothing"),
        ("garbage!", "garbage"),
    ] {
        let v = dm_raw(&app, &alice, &bob, "nope", Some(bad)).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "replyToId: {why}");
    }

    // Edits: the sender only.
    let v = edit_dm(&app, Some(&bob), &d1id, "x").await;
    assert_eq!(error_code(&v), "FORBIDDEN", "the receiver");
    let v = edit_dm(&app, Some(&carol), &d1id, "x").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a third user");
    let v = edit_dm(&app, None, &d1id, "x").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    for bad in [String::new(), " \t".into(), "x".repeat(4001)] {
        let v = edit_dm(&app, Some(&alice), &d1id, &bad).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "content {bad:?}");
    }
    let v = edit_dm(&app, Some(&alice), &m, "x").await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "a room Message id");
    let v = edit(&app, Some(&alice), &d1id, "x").await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "editMessage with a DirectMessage id"
    );
    let v = edit_dm(&app, Some(&alice), &nobody, "x").await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let edited = field(
        &edit_dm(&app, Some(&alice), &d1id, "hi there").await,
        "editDirectMessage",
    );
    assert_eq!(edited["content"], "hi there");
    assert_eq!(edited["createdAt"], d1["createdAt"]);
    assert!(edited["editedAt"].is_string(), "{edited}");
    let seen = thread(&app, &bob, &alice).await;
    assert_eq!(seen[0]["content"], "hi there");
    assert_eq!(seen[0]["editedAt"], edited["editedAt"]);
    assert_eq!(
        seen[1]["replyTo"],
        json!({ "id": d1id, "content": "hi there" })
    );

    // Deletes: the sender only.
    field(&add(&app, Some(&bob), &d1id, "👍").await, "addReaction");
    let v = delete_dm(&app, Some(&bob), &d1id).await;
    assert_eq!(error_code(&v), "FORBIDDEN", "the receiver");
    let v = delete_dm(&app, Some(&carol), &d1id).await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a third user");
    let v = delete_dm(&app, None, &d1id).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = delete(&app, Some(&alice), &d1id).await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "deleteMessage with a DirectMessage id"
    );
    let v = delete_dm(&app, Some(&alice), &m).await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "deleteDirectMessage with a Message id"
    );
    let tomb = field(
        &delete_dm(&app, Some(&alice), &d1id).await,
        "deleteDirectMessage",
    );
    assert_eq!(tomb["id"], d1id.as_str());
    assert_eq!(tomb["content"], "");
    assert_eq!(tomb["reactions"], json!([]));
    assert!(tomb["deletedAt"].is_string(), "{tomb}");
    let again = field(
        &delete_dm(&app, Some(&alice), &d1id).await,
        "deleteDirectMessage",
    );
    assert_eq!(again, tomb, "deleting again: the same tombstone");
    let seen = thread(&app, &bob, &alice).await;
    assert_eq!(seen.len(), 2, "the tombstone stays in the thread");
    assert_eq!(seen[0], tomb);
    assert_eq!(
        seen[1]["replyTo"],
        Value::Null,
        "a reply to a deleted message"
    );
    assert_eq!(
        direct(&app, &alice, &sid(&d2)).await["replyTo"],
        Value::Null
    );
    let v = edit_dm(&app, Some(&alice), &d1id, "back").await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "a deleted message cannot be edited"
    );
    let v = dm_raw(&app, &bob, &alice, "late", Some(&d1id)).await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "no replies to deleted messages"
    );
    let v = add(&app, Some(&bob), &d1id, "🎉").await;
    assert_eq!(
        error_code(&v),
        "BAD_USER_INPUT",
        "no reactions on deleted messages"
    );
    // A third user learns nothing.
    let v = app
        .ok(Some(&carol.token), &q(NODE_DM), json!({ "id": d1id }))
        .await;
    assert_eq!(v["node"], Value::Null);
}

// ---------------------------------------------------------------- reactions

#[tokio::test]
async fn emoji_are_one_to_32_bytes_without_whitespace_or_control_characters() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let m = sid(&post(&app, &alice, &r, "react to me").await);
    let thumbs8 = "👍".repeat(8);
    assert_eq!(thumbs8.len(), 32);
    let good = [
        "👍",
        "👨\u{200D}👩\u{200D}👧",
        "❤\u{FE0F}",
        "🇫🇷",
        thumbs8.as_str(),
    ];
    for e in good {
        let p = field(&add(&app, Some(&alice), &m, e).await, "addReaction");
        assert_eq!(p["messageId"], m.as_str(), "{e:?}");
    }
    let too_long = format!("{thumbs8}x");
    assert_eq!(too_long.len(), 33);
    let bad = [
        String::new(),
        " ".into(),
        "a b".into(),
        "\u{7}".into(),
        "👍\n".into(),
        "\t👍".into(),
        "👍\u{A0}".into(),
        "\u{2003}".into(),
        "\u{85}".into(),
        "\u{9F}👍".into(),
        "👍\u{0}".into(),
        "x".repeat(33),
        too_long,
    ];
    for e in &bad {
        let v = add(&app, Some(&alice), &m, e).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "emoji {e:?}");
    }
    let now = message(&app, &alice, &m).await;
    let expected: Vec<Value> = good.iter().map(|e| reaction(e, 1, true)).collect();
    assert_eq!(
        now["reactions"],
        Value::Array(expected),
        "ties (all 1) earliest first; nothing refused was stored"
    );
}

#[tokio::test]
async fn reactions_group_by_emoji_most_used_first_ties_by_earliest_still_present() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let r = create_room(&app, &alice, "Room").await;
    for u in [&bob, &carol, &dave] {
        join(&app, u, &r).await;
    }
    let m = sid(&post(&app, &alice, &r, "react").await);
    let heart = "❤\u{FE0F}";

    let p = field(&add(&app, Some(&bob), &m, "🎉").await, "addReaction");
    assert_eq!(
        p,
        json!({ "messageId": m, "reactions": [reaction("🎉", 1, true)] })
    );
    field(&add(&app, Some(&carol), &m, "👍").await, "addReaction");
    field(&add(&app, Some(&dave), &m, "👍").await, "addReaction");
    field(&add(&app, Some(&alice), &m, heart).await, "addReaction");
    let p = field(&add(&app, Some(&alice), &m, "🎉").await, "addReaction");
    // 🎉 2 (first at t1), 👍 2 (first at t2), ❤️ 1.
    assert_eq!(
        p["reactions"],
        json!([
            reaction("🎉", 2, true),
            reaction("👍", 2, false),
            reaction(heart, 1, true)
        ])
    );
    for (viewer, expected) in [
        (
            &bob,
            json!([
                reaction("🎉", 2, true),
                reaction("👍", 2, false),
                reaction(heart, 1, false)
            ]),
        ),
        (
            &carol,
            json!([
                reaction("🎉", 2, false),
                reaction("👍", 2, true),
                reaction(heart, 1, false)
            ]),
        ),
    ] {
        assert_eq!(
            message(&app, viewer, &m).await["reactions"],
            expected,
            "as {} sees it",
            viewer.username
        );
    }
    // Bob takes his 🎉 back: 🎉's earliest reaction still present is
    // alice's, later than alice's ❤️.
    let p = field(&remove(&app, Some(&bob), &m, "🎉").await, "removeReaction");
    assert_eq!(p["messageId"], m.as_str());
    assert_eq!(
        p["reactions"],
        json!([
            reaction("👍", 2, false),
            reaction(heart, 1, false),
            reaction("🎉", 1, false)
        ])
    );
    // And adds it again: 🎉 and 👍 tie at 2; 👍's earliest (carol's) is
    // before 🎉's earliest still present (alice's).
    let p = field(&add(&app, Some(&bob), &m, "🎉").await, "addReaction");
    let settled = json!([
        reaction("👍", 2, false),
        reaction("🎉", 2, true),
        reaction(heart, 1, false)
    ]);
    assert_eq!(p["reactions"], settled);
    // Adding one already there, removing one that is not: nothing changes.
    let p = field(&add(&app, Some(&bob), &m, "🎉").await, "addReaction");
    assert_eq!(p["reactions"], settled, "adding again changes nothing");
    let p = field(&remove(&app, Some(&bob), &m, "🔥").await, "removeReaction");
    assert_eq!(
        p["reactions"], settled,
        "removing what is not there changes nothing"
    );
    let p = field(
        &remove(&app, Some(&dave), &m, heart).await,
        "removeReaction",
    );
    assert_eq!(
        p["reactions"],
        json!([
            reaction("👍", 2, true),
            reaction("🎉", 2, false),
            reaction(heart, 1, false)
        ])
    );
    let seen = history(&app, &bob, &r).await;
    assert_eq!(seen[0]["reactions"], settled, "the history shows them too");

    // Carol leaves 👍 and comes back: 👍's earliest still present is now
    // dave's, still before 🎉's earliest (alice's).
    let p = field(
        &remove(&app, Some(&carol), &m, "👍").await,
        "removeReaction",
    );
    assert_eq!(
        p["reactions"],
        json!([
            reaction("🎉", 2, false),
            reaction("👍", 1, false),
            reaction(heart, 1, false)
        ])
    );
    let p = field(&add(&app, Some(&carol), &m, "👍").await, "addReaction");
    assert_eq!(
        p["reactions"],
        json!([
            reaction("👍", 2, true),
            reaction("🎉", 2, false),
            reaction(heart, 1, false)
        ])
    );
    // Everyone's gone from ❤️: it disappears.
    let p = field(
        &remove(&app, Some(&alice), &m, heart).await,
        "removeReaction",
    );
    assert_eq!(
        p["reactions"],
        json!([reaction("👍", 2, false), reaction("🎉", 2, true)])
    );
}

#[tokio::test]
async fn at_most_twenty_different_emoji_per_user_per_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let m = sid(&post(&app, &alice, &r, "many").await);
    let m2 = sid(&post(&app, &alice, &r, "another").await);
    for e in &EMOJI[..20] {
        field(&add(&app, Some(&alice), &m, e).await, "addReaction");
    }
    let v = add(&app, Some(&alice), &m, EMOJI[20]).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "a 21st emoji");
    let p = field(&add(&app, Some(&alice), &m, EMOJI[0]).await, "addReaction");
    assert_eq!(
        p["reactions"].as_array().unwrap().len(),
        20,
        "one already there is no new one"
    );
    // The limit is per user and per message.
    let p = field(&add(&app, Some(&bob), &m, EMOJI[20]).await, "addReaction");
    assert_eq!(p["reactions"].as_array().unwrap().len(), 21);
    field(
        &add(&app, Some(&alice), &m2, EMOJI[20]).await,
        "addReaction",
    );
    // Making room: remove one, then a new one fits and the old one no longer.
    field(
        &remove(&app, Some(&alice), &m, EMOJI[0]).await,
        "removeReaction",
    );
    let p = field(&add(&app, Some(&alice), &m, EMOJI[20]).await, "addReaction");
    let reactions = p["reactions"].as_array().unwrap();
    assert_eq!(reactions.len(), 20, "{p}");
    assert_eq!(
        reactions[0],
        reaction(EMOJI[20], 2, true),
        "the most used first"
    );
    let v = add(&app, Some(&alice), &m, EMOJI[0]).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let now = message(&app, &alice, &m).await;
    let mine = now["reactions"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r["viewerHasReacted"] == true)
        .count();
    assert_eq!(mine, 20, "{now}");
}

#[tokio::test]
async fn only_members_and_the_two_parties_react() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let m = sid(&post(&app, &alice, &r, "members only").await);

    let v = add(&app, Some(&carol), &m, "👍").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a non-member cannot read it");
    let v = remove(&app, Some(&carol), &m, "👍").await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = add(&app, None, &m, "👍").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = remove(&app, None, &m, "👍").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    for (bad, why) in [
        ("garbage!", "garbage"),
        (r.as_str(), "a Room id"),
        (alice.id.as_str(), "a User id"),
    ] {
        let v = add(&app, Some(&bob), bad, "👍").await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{why}");
    }
    for kind in [NodeType::Message, NodeType::DirectMessage] {
        let v = add(&app, Some(&bob), &nothing(kind), "👍").await;
        assert_eq!(error_code(&v), "NOT_FOUND", "{kind:?} of nothing");
    }
    let p = field(&add(&app, Some(&bob), &m, "👍").await, "addReaction");
    assert_eq!(
        p,
        json!({ "messageId": m, "reactions": [reaction("👍", 1, true)] })
    );
    join(&app, &carol, &r).await;
    let p = field(&add(&app, Some(&carol), &m, "👍").await, "addReaction");
    assert_eq!(p["reactions"], json!([reaction("👍", 2, true)]));
    leave(&app, &carol, &r).await;
    let v = remove(&app, Some(&carol), &m, "👍").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a former member");

    // Direct messages: the two parties only.
    let d = sid(&dm(&app, &alice, &bob, "just us").await);
    let p = field(&add(&app, Some(&bob), &d, "👍").await, "addReaction");
    assert_eq!(
        p,
        json!({ "messageId": d, "reactions": [reaction("👍", 1, true)] }),
        "messageId is the DirectMessage id given"
    );
    let p = field(&add(&app, Some(&alice), &d, "👍").await, "addReaction");
    assert_eq!(p["reactions"], json!([reaction("👍", 2, true)]));
    let v = add(&app, Some(&carol), &d, "👍").await;
    assert_eq!(error_code(&v), "NOT_FOUND", "a third user");
    let v = remove(&app, Some(&carol), &d, "👍").await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = add(&app, None, &d, "👍").await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let p = field(&remove(&app, Some(&bob), &d, "👍").await, "removeReaction");
    assert_eq!(p["reactions"], json!([reaction("👍", 1, false)]));
    assert_eq!(
        thread(&app, &alice, &bob).await[0]["reactions"],
        json!([reaction("👍", 1, true)])
    );
}

// ---------------------------------------------------------------- receipts

#[tokio::test]
async fn receipts_move_forward_only_and_list_members_most_recently_moved_first() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let eve = app.register("eve").await;
    let r = create_room(&app, &alice, "Room").await;
    let other = create_room(&app, &alice, "Other").await;
    for u in [&bob, &carol, &dave] {
        join(&app, u, &r).await;
    }
    let mut m = Vec::new();
    for n in 1..=5 {
        m.push(sid(&post(&app, &alice, &r, &format!("m{n}")).await));
    }
    assert_eq!(
        receipts(&app, &bob, &r).await,
        Vec::<Value>::new(),
        "nobody marked yet"
    );

    let v = field(&mark(&app, &bob, &r, Some(&m[1])).await, "markRoomRead");
    assert_eq!(v, json!({ "id": r, "unreadCount": 3 }));
    let v = field(&mark(&app, &carol, &r, Some(&m[3])).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 1);
    let list = receipts(&app, &dave, &r).await;
    assert_eq!(
        receipt_summary(&list),
        [("carol".into(), json!(m[3])), ("bob".into(), json!(m[1]))],
        "the most recently moved first; members who never marked are absent"
    );
    let bob_read_at = list[1]["readAt"].as_str().unwrap().to_owned();
    assert!(list[0]["readAt"].as_str().unwrap() >= bob_read_at.as_str());

    // Never back.
    let v = field(&mark(&app, &bob, &r, Some(&m[0])).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 3, "a receipt never moves back");
    let list = receipts(&app, &dave, &r).await;
    assert_eq!(
        receipt_summary(&list),
        [("carol".into(), json!(m[3])), ("bob".into(), json!(m[1]))]
    );
    assert_eq!(
        list[1]["readAt"],
        bob_read_at.as_str(),
        "not moved, not touched"
    );
    let v = field(&mark(&app, &bob, &r, Some(&m[1])).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 3);

    // Forward again: bob is now the most recently moved.
    let v = field(&mark(&app, &bob, &r, Some(&m[2])).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 2);
    let list = receipts(&app, &alice, &r).await;
    assert_eq!(
        receipt_summary(&list),
        [("bob".into(), json!(m[2])), ("carol".into(), json!(m[3]))]
    );
    let bob_read_at = list[0]["readAt"].as_str().unwrap().to_owned();

    // A send does not move the sender's own receipt.
    let b1 = sid(&post(&app, &bob, &r, "b1").await);
    let list = receipts(&app, &alice, &r).await;
    assert_eq!(list[0]["user"]["username"], "bob");
    assert_eq!(list[0]["message"]["id"], m[2].as_str());
    assert_eq!(list[0]["readAt"], bob_read_at.as_str());
    assert_eq!(unread(&app, &bob, &r).await, 2, "m4 and m5; b1 is his own");
    assert_eq!(unread(&app, &alice, &r).await, 1, "bob's b1");
    assert_eq!(unread(&app, &carol, &r).await, 2, "m5 and b1");

    // Without upTo: the newest message now.
    let v = field(&mark(&app, &bob, &r, None).await, "markRoomRead");
    assert_eq!(v["unreadCount"], 0);
    assert_eq!(
        receipt_summary(&receipts(&app, &alice, &r).await),
        [("bob".into(), json!(b1)), ("carol".into(), json!(m[3]))]
    );

    // Paging.
    let page = app
        .ok(Some(&alice.token), RECEIPTS, json!({ "r": r, "first": 1 }))
        .await;
    let conn = &page["room"]["readReceipts"];
    assert_eq!(conn["edges"].as_array().unwrap().len(), 1);
    assert_eq!(conn["edges"][0]["node"]["user"]["username"], "bob");
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
    let next = app
        .ok(
            Some(&alice.token),
            RECEIPTS,
            json!({ "r": r, "first": 1, "after": conn["pageInfo"]["endCursor"] }),
        )
        .await;
    let conn = &next["room"]["readReceipts"];
    assert_eq!(conn["edges"][0]["node"]["user"]["username"], "carol");
    assert_eq!(conn["pageInfo"]["hasNextPage"], false);

    // upTo must be a live message of this room.
    let x = sid(&post(&app, &alice, &other, "other room").await);
    let d = sid(&dm(&app, &alice, &bob, "dm").await);
    let nobody = nothing(NodeType::Message);
    for (bad, why) in [
        (x.as_str(), "a message of another room"),
        (d.as_str(), "a DirectMessage id"),
        (nobody.as_str(), "a well-formed id of nothing"),
        (r.as_str(), "a Room id"),
        ("garbage!", "garbage"),
    ] {
        let v = mark(&app, &carol, &r, Some(bad)).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "upTo: {why}");
    }
    assert_eq!(
        receipt_summary(&receipts(&app, &alice, &r).await)[1],
        ("carol".into(), json!(m[3])),
        "nothing refused moved it"
    );

    // The message read is deleted: the receipt stays, pointing at nothing.
    field(&delete(&app, Some(&alice), &b1).await, "deleteMessage");
    assert_eq!(
        receipt_summary(&receipts(&app, &alice, &r).await),
        [("bob".into(), Value::Null), ("carol".into(), json!(m[3]))]
    );
    assert_eq!(unread(&app, &bob, &r).await, 0);
    post(&app, &alice, &r, "m6").await;
    assert_eq!(unread(&app, &bob, &r).await, 1);

    // Current members only.
    leave(&app, &carol, &r).await;
    assert_eq!(
        receipt_summary(&receipts(&app, &alice, &r).await),
        [("bob".into(), Value::Null)]
    );

    // Members only.
    let v = app.gql(Some(&eve.token), RECEIPTS, json!({ "r": r })).await;
    assert_eq!(error_code(&v), "FORBIDDEN", "a non-member");
    let v = app.gql(None, RECEIPTS, json!({ "r": r })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = mark(&app, &eve, &r, None).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app.gql(None, MARK, json!({ "r": r, "u": null })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
}

#[tokio::test]
async fn reading_a_thread_reaches_both_parties_and_the_readers_devices() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let mut a = direct_feed(&app, &alice, None, PROTOCOLS[0]).await;
    let mut b1 = direct_feed(&app, &bob, None, PROTOCOLS[0]).await;
    let mut b2 = direct_feed(&app, &bob, None, PROTOCOLS[1]).await;
    let mut c = direct_feed(&app, &carol, None, PROTOCOLS[0]).await;
    sync_dm(&app, &alice, &bob, &mut [&mut a, &mut b1, &mut b2]).await;
    sync_dm(&app, &dave, &carol, &mut [&mut c]).await;

    let m1 = sid(&dm(&app, &alice, &bob, "one").await);
    let m2 = sid(&dm(&app, &alice, &bob, "two").await);
    // (Bob's unread count also holds alice's sync markers.)
    assert!(dm_unread(&app, &bob, &alice).await >= 2);
    let v = app
        .ok(Some(&bob.token), MARK_DM, json!({ "u": alice.id }))
        .await;
    assert_eq!(
        v["markConversationRead"],
        json!({ "peer": { "username": "alice" }, "unreadCount": 0 })
    );

    let seen_a = within(20, a.take_stored(3)).await;
    assert_eq!(
        kinds(&seen_a),
        [
            "DIRECT_MESSAGE_ADDED",
            "DIRECT_MESSAGE_ADDED",
            "CONVERSATION_READ"
        ]
    );
    assert_eq!(seen_a[0]["directMessage"]["id"], m1.as_str());
    assert_eq!(seen_a[0]["actor"]["username"], "alice");
    assert_eq!(seen_a[0]["peer"]["username"], "bob");
    let read = &seen_a[2];
    assert_eq!(read["actor"]["username"], "bob", "bob read");
    assert_eq!(
        read["peer"]["username"], "bob",
        "the other party of alice's thread"
    );
    assert_eq!(read["directMessage"]["id"], m2.as_str(), "up to the newest");
    assert!(read["cursor"].is_string());
    let mut device_cursors = Vec::new();
    for feed in [&mut b1, &mut b2] {
        let seen = within(20, feed.take_stored(3)).await;
        assert_eq!(
            kinds(&seen),
            [
                "DIRECT_MESSAGE_ADDED",
                "DIRECT_MESSAGE_ADDED",
                "CONVERSATION_READ"
            ],
            "{}",
            feed.protocol
        );
        assert_eq!(seen[2]["actor"]["username"], "bob");
        assert_eq!(seen[2]["peer"]["username"], "alice");
        assert_eq!(seen[2]["directMessage"]["id"], m2.as_str());
        device_cursors.push(cursors(&seen));
    }
    assert_eq!(
        device_cursors[0], device_cursors[1],
        "bob's devices stay in step"
    );

    // Reading again with nothing new moves nothing, so announces nothing.
    app.ok(Some(&bob.token), MARK_DM, json!({ "u": alice.id }))
        .await;
    dm(&app, &alice, &bob, "end").await;
    for feed in [&mut a, &mut b1, &mut b2] {
        let next = feed.next_stored().await;
        assert_eq!(next["kind"], "DIRECT_MESSAGE_ADDED", "{next}");
        assert_eq!(next["directMessage"]["content"], "end");
    }
    // Carol heard nothing of alice and bob's thread.
    dm(&app, &alice, &carol, "to carol").await;
    let next = c.next_stored().await;
    assert_eq!(next["directMessage"]["content"], "to carol", "{next}");
    c.expect_no_stored(300).await;
}

// ---------------------------------------------------------------- Room.events

#[tokio::test]
async fn room_events_record_each_change_once_in_commit_order() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let dave = app.register("dave").await;
    let r = create_room(&app, &alice, "Room").await;
    let first = all_events(&app, &alice, &r, None).await;
    assert_eq!(
        kinds(&first),
        ["MEMBER_JOINED"],
        "the creator's join is the first event"
    );
    assert_eq!(first[0]["actor"]["username"], "alice");
    assert_eq!(first[0]["room"]["id"], r.as_str());
    assert_eq!(first[0]["message"], Value::Null);
    assert_eq!(first[0]["typing"], Value::Null);

    join(&app, &bob, &r).await; // MEMBER_JOINED
    join(&app, &bob, &r).await; // nothing
    let m1 = sid(&post(&app, &alice, &r, "m1").await); // MESSAGE_ADDED
    field(
        &edit(&app, Some(&alice), &m1, "m1 edited").await,
        "editMessage",
    ); // MESSAGE_EDITED
    field(&add(&app, Some(&bob), &m1, "👍").await, "addReaction"); // REACTIONS_CHANGED
    field(&add(&app, Some(&bob), &m1, "👍").await, "addReaction"); // nothing
    field(&remove(&app, Some(&bob), &m1, "🎉").await, "removeReaction"); // nothing
    field(&mark(&app, &bob, &r, Some(&m1)).await, "markRoomRead"); // READ_RECEIPT_MOVED
    field(&mark(&app, &bob, &r, Some(&m1)).await, "markRoomRead"); // nothing
    let m2 = sid(&post_raw(&app, &alice, &r, "m2", Some(&m1)).await["data"]["sendMessage"]); // MESSAGE_ADDED
    field(&mark(&app, &bob, &r, Some(&m1)).await, "markRoomRead"); // back: nothing

    let so_far = all_events(&app, &bob, &r, None).await;
    assert_eq!(
        kinds(&so_far),
        [
            "MEMBER_JOINED",
            "MEMBER_JOINED",
            "MESSAGE_ADDED",
            "MESSAGE_EDITED",
            "REACTIONS_CHANGED",
            "READ_RECEIPT_MOVED",
            "MESSAGE_ADDED",
        ]
    );
    assert_eq!(
        actors(&so_far),
        ["alice", "bob", "alice", "alice", "bob", "bob", "alice"]
    );
    let receipt = &so_far[5]["receipt"];
    assert_eq!(receipt["user"]["username"], "bob");
    assert_eq!(receipt["message"]["id"], m1.as_str());
    assert!(receipt["readAt"].is_string());
    for n in [2, 3, 4] {
        assert_eq!(so_far[n]["message"]["id"], m1.as_str(), "event {n}");
        assert_eq!(
            so_far[n]["message"]["content"], "m1 edited",
            "the message as it is now"
        );
        assert_eq!(
            so_far[n]["message"]["reactions"],
            json!([{ "emoji": "👍", "count": 1 }]),
            "event {n}: the message as it is now, with its reactions"
        );
    }
    assert_eq!(so_far[6]["message"]["id"], m2.as_str());
    assert!(
        so_far
            .iter()
            .all(|e| e["room"]["id"] == r.as_str() && e["at"].is_string())
    );

    update_room(&app, &alice, &r, "Renamed").await; // ROOM_UPDATED
    field(&remove(&app, Some(&bob), &m1, "👍").await, "removeReaction"); // REACTIONS_CHANGED
    field(&add(&app, Some(&bob), &m1, "🎉").await, "addReaction"); // REACTIONS_CHANGED
    // Deleting a message with a reaction, a reply and a receipt on it appends
    // only MESSAGE_DELETED.
    field(&delete(&app, Some(&alice), &m1).await, "deleteMessage"); // MESSAGE_DELETED
    field(&delete(&app, Some(&alice), &m1).await, "deleteMessage"); // nothing
    field(&mark(&app, &bob, &r, None).await, "markRoomRead"); // READ_RECEIPT_MOVED (to m2)
    leave(&app, &bob, &r).await; // MEMBER_LEFT

    let all = all_events(&app, &alice, &r, None).await;
    assert_eq!(
        kinds(&all),
        [
            "MEMBER_JOINED",
            "MEMBER_JOINED",
            "MESSAGE_ADDED",
            "MESSAGE_EDITED",
            "REACTIONS_CHANGED",
            "READ_RECEIPT_MOVED",
            "MESSAGE_ADDED",
            "ROOM_UPDATED",
            "REACTIONS_CHANGED",
            "REACTIONS_CHANGED",
            "MESSAGE_DELETED",
            "READ_RECEIPT_MOVED",
            "MEMBER_LEFT",
        ]
    );
    assert_eq!(
        actors(&all),
        [
            "alice", "bob", "alice", "alice", "bob", "bob", "alice", "alice", "bob", "bob",
            "alice", "bob", "bob"
        ]
    );
    assert_eq!(cursors(&all[..7]), cursors(&so_far), "cursors are stable");
    for n in [2, 3, 4, 8, 9, 10] {
        let msg = &all[n]["message"];
        assert_eq!(msg["id"], m1.as_str(), "event {n}");
        assert_eq!(
            msg["content"], "",
            "event {n}: the message as it is now (deleted)"
        );
        assert!(msg["deletedAt"].is_string(), "event {n}");
    }
    assert_eq!(all[6]["message"]["id"], m2.as_str());
    assert_eq!(all[7]["message"], Value::Null);
    let unique: std::collections::HashSet<String> = cursors(&all).into_iter().collect();
    assert_eq!(unique.len(), all.len(), "one cursor per event");

    // Paging: first/after walk the same list; the end is empty.
    let mut paged = Vec::new();
    let mut after: Option<String> = None;
    for (size, more) in [(5, true), (5, true), (3, false)] {
        let v = field(
            &events_raw(&app, Some(&alice), &r, Some(5), after.as_deref()).await,
            "room",
        );
        let conn = &v["events"];
        let edges = conn["edges"].as_array().unwrap();
        assert_eq!(edges.len(), size);
        assert_eq!(conn["pageInfo"]["hasNextPage"], more);
        paged.extend(edges.iter().map(|e| e["node"].clone()));
        after = Some(conn["pageInfo"]["endCursor"].as_str().unwrap().to_owned());
    }
    assert_eq!(cursors(&paged), cursors(&all));
    let tail = field(
        &events_raw(&app, Some(&alice), &r, None, after.as_deref()).await,
        "room",
    );
    assert_eq!(tail["events"]["edges"], json!([]));
    assert_eq!(tail["events"]["pageInfo"]["hasNextPage"], false);
    // An event's own cursor resumes right after it.
    let rest = all_events(&app, &alice, &r, Some(&cursor(&all[6]))).await;
    assert_eq!(cursors(&rest), cursors(&all[7..]));

    // A new member reads the whole history of events; a former one none.
    join(&app, &dave, &r).await;
    let seen = all_events(&app, &dave, &r, None).await;
    assert_eq!(seen.len(), all.len() + 1);
    assert_eq!(seen[0]["actor"]["username"], "alice");
    assert_eq!(seen.last().unwrap()["kind"], "MEMBER_JOINED");
    assert_eq!(seen.last().unwrap()["actor"]["username"], "dave");
    let v = events_raw(&app, Some(&bob), &r, None, None).await;
    assert_eq!(error_code(&v), "FORBIDDEN", "a former member");
}

#[tokio::test]
async fn room_events_are_for_members_and_take_only_their_own_cursors() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    let r2 = create_room(&app, &alice, "Other").await;
    join(&app, &bob, &r).await;
    for n in 0..23 {
        post(&app, &alice, &r, &format!("m{n}")).await;
    }
    post(&app, &alice, &r2, "x").await;
    field(
        &set_typing(&app, Some(&alice), Some(&r), None, true).await,
        "setTyping",
    );

    // Non-members: FORBIDDEN for messages, readReceipts, events; typing empty.
    let v = events_raw(&app, Some(&carol), &r, None, None).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(Some(&carol.token), RECEIPTS, json!({ "r": r }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(Some(&carol.token), &q(MESSAGES), json!({ "r": r }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    eventually_typing(&app, &bob, &r, &["alice"], 5).await;
    assert_eq!(
        typing_in(&app, &carol, &r).await,
        Vec::<String>::new(),
        "Room.typing is empty for non-members"
    );
    let v = events_raw(&app, None, &r, None, None).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");

    // Default page 20, at most 100.
    let v = field(&events_raw(&app, Some(&bob), &r, None, None).await, "room");
    assert_eq!(v["events"]["edges"].as_array().unwrap().len(), 20);
    assert_eq!(v["events"]["pageInfo"]["hasNextPage"], true);
    for bad in [101, -1] {
        let v = events_raw(&app, Some(&bob), &r, Some(bad), None).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "first: {bad}");
    }
    // Cursors: malformed, another room's, another list's.
    let other_room = latest_cursor(&app, &alice, &r2).await;
    let messages_cursor = app
        .ok(Some(&bob.token), &q(MESSAGES), json!({ "r": r }))
        .await["room"]["messages"]["edges"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    for (bad, why) in [
        ("garbage!", "malformed"),
        (other_room.as_str(), "another room's event cursor"),
        (messages_cursor.as_str(), "a Room.messages cursor"),
    ] {
        let v = events_raw(&app, Some(&bob), &r, Some(5), Some(bad)).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{why}");
    }
    // Typing is never stored.
    let all = all_events(&app, &bob, &r, None).await;
    assert_eq!(all.len(), 2 + 23);
    assert!(
        all.iter()
            .all(|e| e["kind"] != "TYPING_CHANGED" && e["cursor"].is_string())
    );
}

// ---------------------------------------------------------------- roomEvents

#[tokio::test]
async fn a_resumed_room_stream_replays_exactly_the_missed_events_then_goes_live() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;

    // Bob is live, records cursors, then drops off.
    let mut feed = room_feed(&app, &bob, &r, None, PROTOCOLS[0]).await;
    sync_room(&app, &alice, &r, &mut [&mut feed]).await;
    post(&app, &alice, &r, "before").await;
    let seen = feed.next_stored().await;
    assert_eq!(seen["kind"], "MESSAGE_ADDED");
    assert_eq!(seen["message"]["content"], "before");
    assert_eq!(seen["actor"]["username"], "alice");
    assert_eq!(seen["room"]["id"], r.as_str());
    let last = cursor(&seen);
    let stored = all_events(&app, &bob, &r, None).await;
    assert_eq!(
        cursor(stored.last().unwrap()),
        last,
        "the live event's cursor is the stored one's"
    );
    drop(feed);

    // 50 events of every stored kind while bob is away.
    let round = [
        "MEMBER_JOINED",
        "MESSAGE_ADDED",
        "MESSAGE_EDITED",
        "REACTIONS_CHANGED",
        "READ_RECEIPT_MOVED",
        "ROOM_UPDATED",
        "MESSAGE_DELETED",
        "MEMBER_LEFT",
    ];
    let mut expected: Vec<&str> = Vec::new();
    for k in 0..6 {
        join(&app, &carol, &r).await;
        let m = sid(&post(&app, &alice, &r, &format!("m{k}")).await);
        field(
            &edit(&app, Some(&alice), &m, &format!("m{k} edited")).await,
            "editMessage",
        );
        field(&add(&app, Some(&carol), &m, "👍").await, "addReaction");
        field(&mark(&app, &carol, &r, Some(&m)).await, "markRoomRead");
        update_room(&app, &alice, &r, &format!("Room {k}")).await;
        field(&delete(&app, Some(&alice), &m).await, "deleteMessage");
        leave(&app, &carol, &r).await;
        expected.extend(round);
    }
    let tail = sid(&post(&app, &alice, &r, "tail").await);
    field(&add(&app, Some(&bob), &tail, "🎉").await, "addReaction");
    expected.extend(["MESSAGE_ADDED", "REACTIONS_CHANGED"]);
    assert_eq!(expected.len(), 50);
    let missed = all_events(&app, &bob, &r, Some(&last)).await;
    assert_eq!(kinds(&missed), expected, "Room.events after the cursor");

    // Resumed (on the legacy protocol this time): exactly those 50, in order.
    let mut feed = room_feed(&app, &bob, &r, Some(&last), PROTOCOLS[1]).await;
    let replayed = within(30, feed.take_stored(50)).await;
    assert_eq!(kinds(&replayed), expected);
    assert_eq!(cursors(&replayed), cursors(&missed));
    assert_eq!(actors(&replayed), actors(&missed));
    assert_eq!(replayed[0]["actor"]["username"], "carol");
    // Carol has left since: her receipt "as it is now" is gone (readReceipts
    // lists current members only), so the event may carry none.
    let receipt = &replayed[4]["receipt"];
    assert!(
        receipt.is_null() || receipt["user"]["username"] == "carol",
        "{receipt}"
    );
    assert_eq!(
        replayed[1]["message"]["content"], "",
        "m0 as it is now: deleted"
    );
    assert!(replayed[1]["message"]["deletedAt"].is_string());
    assert_eq!(replayed[48]["message"]["content"], "tail");
    for n in [48, 49] {
        assert_eq!(
            replayed[n]["message"]["reactions"],
            json!([{ "emoji": "🎉", "count": 1 }]),
            "replayed event {n}: tail as it is now, with bob's reaction"
        );
    }
    assert!(replayed.iter().all(|e| e["room"]["id"] == r.as_str()));
    // ... then live, with no repeat.
    post(&app, &alice, &r, "live").await;
    let live = feed.next_stored().await;
    assert_eq!(live["kind"], "MESSAGE_ADDED");
    assert_eq!(live["message"]["content"], "live");
    let after = all_events(&app, &bob, &r, Some(&cursor(missed.last().unwrap()))).await;
    assert_eq!(cursors(&after), [cursor(&live)]);
    feed.expect_no_stored(500).await;

    // Resuming from the middle gives the rest, with the same cursors.
    let mut again = room_feed(&app, &bob, &r, Some(&cursor(&missed[24])), PROTOCOLS[0]).await;
    let rest = within(30, again.take_stored(26)).await;
    let mut expected_cursors = cursors(&missed[25..]);
    expected_cursors.push(cursor(&live));
    assert_eq!(cursors(&rest), expected_cursors);
    again.expect_no_stored(300).await;
}

#[tokio::test]
async fn resuming_while_others_send_leaves_no_gap_and_no_repeat() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    join(&app, &carol, &r).await;
    let start_at = latest_cursor(&app, &bob, &r).await;

    let (app_ref, room) = (&app, r.as_str());
    let sending = async {
        join_all(
            [(&alice, "a"), (&carol, "c")].map(|(user, tag)| async move {
                for k in 0..40 {
                    let m = sid(&post(app_ref, user, room, &format!("{tag}{k}")).await);
                    if k % 4 == 0 {
                        field(&add(app_ref, Some(user), &m, "👍").await, "addReaction");
                    }
                }
            }),
        )
        .await;
        post(app_ref, &alice, room, "end").await;
    };
    let subscribing = async {
        tokio::time::sleep(Duration::from_millis(30)).await;
        let early = room_feed(app_ref, &bob, room, Some(&start_at), PROTOCOLS[0]).await;
        tokio::time::sleep(Duration::from_millis(150)).await;
        let late = room_feed(app_ref, &bob, room, Some(&start_at), PROTOCOLS[1]).await;
        (early, late)
    };
    let ((), (mut early, mut late)) =
        within(60, async { tokio::join!(sending, subscribing) }).await;
    let stored = all_events(&app, &bob, &r, Some(&start_at)).await;
    assert_eq!(stored.len(), 80 + 20 + 1);
    for feed in [&mut early, &mut late] {
        let got = feed.until_added("end").await;
        assert_eq!(
            cursors(&got),
            cursors(&stored),
            "{}: every stored event once, in order, across the replay/live seam",
            feed.protocol
        );
        feed.expect_no_stored(300).await;
    }
}

/// Without `after`, a room stream starts at the room's head: what was stored
/// before never comes first, the first event is one sent after.
#[tokio::test]
async fn a_room_stream_without_a_cursor_starts_at_the_head() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    post(&app, &alice, &r, "old").await;
    let mut feed = room_feed(&app, &bob, &r, None, PROTOCOLS[0]).await;
    // Until the feed is attached a marker may come before its start: send
    // another until one arrives.
    let first = within(20, async {
        loop {
            post(&app, &alice, &r, "marker").await;
            if let Some(msg) = feed.raw(300).await {
                break feed.item(&msg);
            }
        }
    })
    .await;
    assert_eq!(first["kind"], "MESSAGE_ADDED", "{first}");
    assert_eq!(first["message"]["content"], "marker", "{first}");
}

#[tokio::test]
async fn a_leavers_room_stream_ends_with_their_own_member_left() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    for protocol in PROTOCOLS {
        let r = create_room(&app, &alice, &format!("Room {protocol}")).await;
        join(&app, &bob, &r).await;
        let m = sid(&post(&app, &alice, &r, "hello").await);
        let c0 = latest_cursor(&app, &bob, &r).await;
        let mut stays = room_feed(&app, &alice, &r, Some(&c0), PROTOCOLS[0]).await;
        let mut leaver = room_feed(&app, &bob, &r, Some(&c0), protocol).await;

        // Someone else leaving ends nothing.
        join(&app, &carol, &r).await;
        leave(&app, &carol, &r).await;
        let seen = within(20, leaver.take_stored(2)).await;
        assert_eq!(kinds(&seen), ["MEMBER_JOINED", "MEMBER_LEFT"]);
        assert_eq!(actors(&seen), ["carol", "carol"]);

        leave(&app, &bob, &r).await;
        let last = leaver.next_stored().await;
        assert_eq!(last["kind"], "MEMBER_LEFT", "{protocol}: {last}");
        assert_eq!(last["actor"]["username"], "bob");
        leaver.expect_complete().await;
        post(&app, &alice, &r, "after").await;
        assert!(
            leaver.raw(500).await.is_none(),
            "{protocol}: nothing after complete"
        );
        let seen = within(20, stays.take_stored(4)).await;
        assert_eq!(
            kinds(&seen),
            [
                "MEMBER_JOINED",
                "MEMBER_LEFT",
                "MEMBER_LEFT",
                "MESSAGE_ADDED"
            ]
        );
        assert_eq!(actors(&seen), ["carol", "carol", "bob", "alice"]);
        assert_eq!(cursor(&seen[2]), cursor(&last));

        // Old cursors resume nothing; reading events neither.
        let socket = &mut leaver.socket;
        let own = cursor(&last);
        for (id, after) in [
            ("old", Some(c0.as_str())),
            ("own", Some(own.as_str())),
            ("none", None),
        ] {
            start(
                socket,
                protocol,
                id,
                &q(ROOM_EVENTS),
                json!({ "r": r, "a": after }),
            )
            .await;
            assert_eq!(sub_error(socket, id).await, "FORBIDDEN", "{protocol} {id}");
        }
        let v = events_raw(&app, Some(&bob), &r, None, Some(&c0)).await;
        assert_eq!(error_code(&v), "FORBIDDEN");
        // A stranger learns nothing through node either.
        let v = app
            .ok(Some(&bob.token), &q(NODE_MSG), json!({ "id": m }))
            .await;
        assert_eq!(v["node"], Value::Null);
    }
}

/// One member leaving on several requests at once: one leave, so one
/// MEMBER_LEFT (the others find the membership gone under the room's lock
/// and change nothing).
#[tokio::test]
async fn concurrent_leaves_of_one_member_record_one_member_left() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    join_all((0..4).map(|_| leave(&app, &bob, &r))).await;
    let events = all_events(&app, &alice, &r, None).await;
    assert_eq!(
        kinds(&events),
        ["MEMBER_JOINED", "MEMBER_JOINED", "MEMBER_LEFT"]
    );
    assert_eq!(actors(&events), ["alice", "bob", "bob"]);
}

/// A message deleted on several requests at once: one tombstone, one
/// MESSAGE_DELETED (the others find it deleted under the room's lock).
#[tokio::test]
async fn concurrent_deletes_of_one_message_record_one_message_deleted() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let m = sid(&post(&app, &alice, &r, "bye").await);
    for v in join_all((0..4).map(|_| delete(&app, Some(&alice), &m))).await {
        assert_eq!(field(&v, "deleteMessage")["content"], "", "{v}");
    }
    let events = all_events(&app, &alice, &r, None).await;
    assert_eq!(
        kinds(&events),
        ["MEMBER_JOINED", "MESSAGE_ADDED", "MESSAGE_DELETED"]
    );
}

#[tokio::test]
async fn room_event_subscriptions_check_membership_and_cursors() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    let r2 = create_room(&app, &alice, "Other").await;
    post(&app, &alice, &r, "m").await;
    let other_room = latest_cursor(&app, &alice, &r2).await;
    let messages_cursor = app
        .ok(Some(&alice.token), &q(MESSAGES), json!({ "r": r }))
        .await["room"]["messages"]["edges"][0]["cursor"]
        .as_str()
        .unwrap()
        .to_owned();
    let sub = q(ROOM_EVENTS);
    for protocol in PROTOCOLS {
        let mut socket = open(&app, Some(&alice), protocol).await;
        for (id, room, after, code) in [
            ("malformed", r.as_str(), Some("garbage!"), "BAD_USER_INPUT"),
            (
                "foreign",
                r.as_str(),
                Some(other_room.as_str()),
                "BAD_USER_INPUT",
            ),
            (
                "list",
                r.as_str(),
                Some(messages_cursor.as_str()),
                "BAD_USER_INPUT",
            ),
            ("junk-room", "junk", None, "BAD_USER_INPUT"),
        ] {
            start(
                &mut socket,
                protocol,
                id,
                &sub,
                json!({ "r": room, "a": after }),
            )
            .await;
            assert_eq!(sub_error(&mut socket, id).await, code, "{protocol} {id}");
        }
        let nobody = nothing(NodeType::Room);
        start(
            &mut socket,
            protocol,
            "nothing",
            &sub,
            json!({ "r": nobody }),
        )
        .await;
        assert_eq!(
            sub_error(&mut socket, "nothing").await,
            "NOT_FOUND",
            "{protocol}"
        );

        let mut socket = open(&app, Some(&carol), protocol).await;
        start(&mut socket, protocol, "x", &sub, json!({ "r": r })).await;
        assert_eq!(
            sub_error(&mut socket, "x").await,
            "FORBIDDEN",
            "{protocol}: a non-member"
        );
        let mut anonymous = open(&app, None, protocol).await;
        start(&mut anonymous, protocol, "y", &sub, json!({ "r": r })).await;
        assert_eq!(
            sub_error(&mut anonymous, "y").await,
            "UNAUTHENTICATED",
            "{protocol}"
        );
        start(&mut anonymous, protocol, "z", &q(DIRECT_EVENTS), json!({})).await;
        assert_eq!(
            sub_error(&mut anonymous, "z").await,
            "UNAUTHENTICATED",
            "{protocol}"
        );
    }
}

#[tokio::test]
async fn message_added_keeps_working_beside_room_events() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;
    let c0 = latest_cursor(&app, &bob, &r).await;
    let mut added = message_feed(&app, &bob, &r).await;
    let mut events = room_feed(&app, &bob, &r, Some(&c0), PROTOCOLS[0]).await;
    sync_room(&app, &alice, &r, &mut [&mut added]).await;
    let markers = all_events(&app, &bob, &r, Some(&c0)).await.len();
    within(20, events.take_stored(markers)).await;

    let one = sid(&post(&app, &alice, &r, "one").await);
    let item = added.next_any(10).await;
    assert_eq!(item, json!({ "id": one, "content": "one" }));
    field(
        &edit(&app, Some(&alice), &one, "one, edited").await,
        "editMessage",
    );
    field(&add(&app, Some(&bob), &one, "👍").await, "addReaction");
    field(&delete(&app, Some(&alice), &one).await, "deleteMessage");
    let two = sid(&post(&app, &alice, &r, "two").await);
    let item = added.next_any(10).await;
    assert_eq!(
        item,
        json!({ "id": two, "content": "two" }),
        "edits, reactions and deletes are not new messages"
    );
    let seen = within(20, events.take_stored(5)).await;
    assert_eq!(
        kinds(&seen),
        [
            "MESSAGE_ADDED",
            "MESSAGE_EDITED",
            "REACTIONS_CHANGED",
            "MESSAGE_DELETED",
            "MESSAGE_ADDED"
        ]
    );
    let ids: Vec<Value> = seen.iter().map(|e| e["message"]["id"].clone()).collect();
    assert_eq!(
        ids,
        [json!(one), json!(one), json!(one), json!(one), json!(two)]
    );
    assert!(added.raw(300).await.is_none());
}

// ---------------------------------------------------------------- directEvents

#[tokio::test]
async fn a_resumed_direct_stream_replays_exactly_the_missed_events_then_goes_live() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut feed = direct_feed(&app, &alice, None, PROTOCOLS[0]).await;
    let marker = sync_dm(&app, &bob, &alice, &mut [&mut feed]).await;
    let last = cursor(&marker[0]);
    assert_eq!(marker[0]["peer"]["username"], "bob");
    assert_eq!(marker[0]["actor"]["username"], "bob");
    drop(feed);

    let b1 = sid(&dm(&app, &bob, &alice, "b1").await); // ADDED (bob)
    app.ok(Some(&alice.token), MARK_DM, json!({ "u": bob.id }))
        .await; // READ (alice)
    let a1 = sid(&dm(&app, &alice, &bob, "a1").await); // ADDED (alice)
    app.ok(Some(&bob.token), MARK_DM, json!({ "u": alice.id }))
        .await; // READ (bob)
    field(
        &edit_dm(&app, Some(&alice), &a1, "a1 edited").await,
        "editDirectMessage",
    ); // EDITED
    field(&add(&app, Some(&bob), &a1, "👍").await, "addReaction"); // REACTIONS (bob)
    field(&add(&app, Some(&bob), &a1, "👍").await, "addReaction"); // nothing
    field(&add(&app, Some(&alice), &b1, "🎉").await, "addReaction"); // REACTIONS (alice)
    field(&remove(&app, Some(&bob), &a1, "🔥").await, "removeReaction"); // nothing
    let c1 = sid(&dm(&app, &carol, &alice, "c1").await); // ADDED (carol)
    dm(&app, &bob, &carol, "not alice's").await; // nothing for alice
    field(
        &delete_dm(&app, Some(&alice), &a1).await,
        "deleteDirectMessage",
    ); // DELETED
    field(
        &delete_dm(&app, Some(&alice), &a1).await,
        "deleteDirectMessage",
    ); // nothing
    let expected = [
        ("DIRECT_MESSAGE_ADDED", "bob", "bob", &b1),
        ("CONVERSATION_READ", "bob", "alice", &b1),
        ("DIRECT_MESSAGE_ADDED", "bob", "alice", &a1),
        ("CONVERSATION_READ", "bob", "bob", &a1),
        ("DIRECT_MESSAGE_EDITED", "bob", "alice", &a1),
        ("REACTIONS_CHANGED", "bob", "bob", &a1),
        ("REACTIONS_CHANGED", "bob", "alice", &b1),
        ("DIRECT_MESSAGE_ADDED", "carol", "carol", &c1),
        ("DIRECT_MESSAGE_DELETED", "bob", "alice", &a1),
    ];

    let mut feed = direct_feed(&app, &alice, Some(&last), PROTOCOLS[1]).await;
    let replayed = within(20, feed.take_stored(expected.len())).await;
    let got: Vec<(String, String, String, String)> = replayed
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap().to_owned(),
                e["peer"]["username"].as_str().unwrap().to_owned(),
                e["actor"]["username"].as_str().unwrap().to_owned(),
                e["directMessage"]["id"].as_str().unwrap_or("-").to_owned(),
            )
        })
        .collect();
    let want: Vec<(String, String, String, String)> = expected
        .iter()
        .map(|(k, p, a, m)| (k.to_string(), p.to_string(), a.to_string(), m.to_string()))
        .collect();
    assert_eq!(got, want);
    assert!(
        replayed
            .iter()
            .all(|e| e["cursor"].is_string() && e["typing"].is_null())
    );
    assert_eq!(
        replayed[0]["directMessage"]["reactions"],
        json!([{ "emoji": "🎉", "count": 1 }]),
        "as it is now"
    );
    assert_eq!(
        replayed[2]["directMessage"]["content"], "",
        "a1 as it is now: deleted"
    );
    // ... then live, no repeat.
    dm(&app, &bob, &alice, "live").await;
    let live = feed.next_stored().await;
    assert_eq!(live["kind"], "DIRECT_MESSAGE_ADDED");
    assert_eq!(live["directMessage"]["content"], "live");
    feed.expect_no_stored(500).await;

    // From the middle: the rest with the same cursors.
    let mut again = direct_feed(&app, &alice, Some(&cursor(&replayed[3])), PROTOCOLS[0]).await;
    let rest = within(20, again.take_stored(6)).await;
    let mut want = cursors(&replayed[4..]);
    want.push(cursor(&live));
    assert_eq!(cursors(&rest), want);
    again.expect_no_stored(300).await;
}

#[tokio::test]
async fn direct_event_subscriptions_check_cursors() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let room_cursor = latest_cursor(&app, &alice, &r).await;
    for protocol in PROTOCOLS {
        let mut socket = open(&app, Some(&alice), protocol).await;
        for (id, after) in [("malformed", "garbage!"), ("room", room_cursor.as_str())] {
            start(
                &mut socket,
                protocol,
                id,
                &q(DIRECT_EVENTS),
                json!({ "a": after }),
            )
            .await;
            assert_eq!(
                sub_error(&mut socket, id).await,
                "BAD_USER_INPUT",
                "{protocol} {id}"
            );
        }
    }
}

// ---------------------------------------------------------------- typing

#[tokio::test]
async fn typing_shows_to_other_members_and_ends_with_false_or_a_send() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let dave = app.register("dave").await;
    let r = create_room(&app, &bob, "Room").await;
    join(&app, &alice, &r).await;
    join(&app, &carol, &r).await;
    let mut bobs = room_feed(&app, &bob, &r, None, PROTOCOLS[0]).await;
    let mut alices = room_feed(&app, &alice, &r, None, PROTOCOLS[1]).await;
    sync_room(&app, &bob, &r, &mut [&mut bobs, &mut alices]).await;

    field(
        &set_typing(&app, Some(&alice), Some(&r), None, true).await,
        "setTyping",
    );
    let ev = bobs.wait_typing(&["alice"], 5).await;
    assert_eq!(ev["cursor"], Value::Null, "typing has no cursor");
    assert_eq!(ev["actor"]["username"], "alice");
    assert_eq!(ev["room"]["id"], r.as_str());
    assert_eq!(ev["message"], Value::Null);
    eventually_typing(&app, &bob, &r, &["alice"], 5).await;
    assert_eq!(
        typing_in(&app, &alice, &r).await,
        Vec::<String>::new(),
        "the viewer left out"
    );
    assert_eq!(
        typing_in(&app, &dave, &r).await,
        Vec::<String>::new(),
        "a non-member sees nobody"
    );

    field(
        &set_typing(&app, Some(&carol), Some(&r), None, true).await,
        "setTyping",
    );
    bobs.wait_typing(&["alice", "carol"], 5).await;
    alices.wait_typing(&["carol"], 5).await;
    eventually_typing(&app, &bob, &r, &["alice", "carol"], 5).await;
    eventually_typing(&app, &alice, &r, &["carol"], 5).await;

    field(
        &set_typing(&app, Some(&alice), Some(&r), None, false).await,
        "setTyping",
    );
    bobs.wait_typing(&["carol"], 5).await;
    eventually_typing(&app, &bob, &r, &["carol"], 5).await;

    // A send by the typer ends it.
    post(&app, &carol, &r, "done").await;
    bobs.wait_typing(&[], 5).await;
    eventually_typing(&app, &bob, &r, &[], 5).await;
    eventually_typing(&app, &alice, &r, &[], 5).await;

    // Never stored.
    let all = all_events(&app, &bob, &r, None).await;
    assert!(all.iter().all(|e| e["kind"] != "TYPING_CHANGED"));
}

#[tokio::test]
async fn typing_holds_ten_seconds_after_the_last_true_then_expires_for_others() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &bob, "Room").await;
    join(&app, &alice, &r).await;
    let mut bobs = room_feed(&app, &bob, &r, None, PROTOCOLS[0]).await;
    sync_room(&app, &bob, &r, &mut [&mut bobs]).await;

    field(
        &set_typing(&app, Some(&alice), Some(&r), None, true).await,
        "setTyping",
    );
    bobs.wait_typing(&["alice"], 3).await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    // Repeated: holds 10 s from here.
    let repeated = Instant::now();
    field(
        &set_typing(&app, Some(&alice), Some(&r), None, true).await,
        "setTyping",
    );
    // Until 8.5 s after the repeat (past the 12 s by which an expiry of the
    // first `true` would have shown), alice stays typing.
    let hold_until = repeated + Duration::from_millis(8_500);
    loop {
        let left = hold_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        if let Some(msg) = bobs.raw(left.as_millis() as u64 + 1).await {
            let ev = bobs.item(&msg);
            if ev["kind"] == "TYPING_CHANGED" {
                assert_eq!(
                    names(&ev["typing"]),
                    ["alice"],
                    "expired {:?} after a repeated true",
                    repeated.elapsed()
                );
            }
        }
    }
    assert_eq!(typing_in(&app, &bob, &r).await, ["alice"]);
    // Then it expires: others see it within 12 s of the last true.
    let left = (repeated + Duration::from_millis(12_300)).saturating_duration_since(Instant::now());
    let ev = bobs.wait_typing(&[], left.as_secs() + 1).await;
    let took = repeated.elapsed();
    assert!(
        took <= Duration::from_millis(12_300),
        "expiry seen after {took:?}"
    );
    assert_eq!(ev["cursor"], Value::Null);
    eventually_typing(&app, &bob, &r, &[], 1).await;
}

#[tokio::test]
async fn typing_changes_reach_others_at_most_once_a_second_and_the_last_state_always() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &bob, "Room").await;
    join(&app, &alice, &r).await;
    let mut bobs = room_feed(&app, &bob, &r, None, PROTOCOLS[0]).await;
    sync_room(&app, &bob, &r, &mut [&mut bobs]).await;

    // Nine changes at once, ending typing.
    let began = Instant::now();
    for n in 0..9 {
        field(
            &set_typing(&app, Some(&alice), Some(&r), None, n % 2 == 0).await,
            "setTyping",
        );
    }
    let ended = Instant::now();
    let mut seen: Vec<(Duration, Vec<String>)> = Vec::new();
    let watch_until = ended + Duration::from_secs(3);
    loop {
        let left = watch_until.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break;
        }
        match bobs.raw(left.as_millis() as u64 + 1).await {
            None => break,
            Some(msg) => {
                let ev = bobs.item(&msg);
                if ev["kind"] == "TYPING_CHANGED" {
                    seen.push((began.elapsed(), names(&ev["typing"])));
                }
            }
        }
    }
    let burst = ended - began;
    let allowed = 1 + (burst + Duration::from_secs(3)).as_secs() as usize;
    assert!(
        !seen.is_empty() && seen.len() <= allowed,
        "{} changes reached bob ({seen:?}) for a burst of {burst:?}",
        seen.len()
    );
    let (at, last) = seen.last().unwrap();
    assert_eq!(
        last,
        &["alice"],
        "the last state always reaches others: {seen:?}"
    );
    assert!(
        *at <= burst + Duration::from_millis(2_300),
        "the last state came {at:?} after the burst began ({burst:?} long)"
    );

    // And the end of it too, within 2 s.
    let stopped = Instant::now();
    field(
        &set_typing(&app, Some(&alice), Some(&r), None, false).await,
        "setTyping",
    );
    bobs.wait_typing(&[], 3).await;
    assert!(stopped.elapsed() <= Duration::from_millis(2_300));
}

#[tokio::test]
async fn set_typing_needs_exactly_one_target_and_a_member_or_party() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    join(&app, &bob, &r).await;

    let v = set_typing(&app, Some(&bob), Some(&r), Some(&alice.id), true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "both targets");
    let v = set_typing(&app, Some(&bob), None, None, true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "no target");
    let v = set_typing(&app, None, Some(&r), None, true).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = set_typing(&app, None, None, Some(&alice.id), true).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    // A non-member sees the (public) room but may not type in it.
    let v = set_typing(&app, Some(&carol), Some(&r), None, true).await;
    assert_eq!(error_code(&v), "FORBIDDEN", "a non-member");
    let v = set_typing(&app, Some(&bob), Some(&nothing(NodeType::Room)), None, true).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = set_typing(&app, Some(&bob), Some("garbage!"), None, true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = set_typing(&app, Some(&bob), Some(&alice.id), None, true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "a User id as roomId");
    let v = set_typing(&app, Some(&bob), None, Some(&r), true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "a Room id as withUserId");
    let v = set_typing(&app, Some(&bob), None, Some(&nothing(NodeType::User)), true).await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = set_typing(&app, Some(&bob), None, Some(&bob.id), true).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "no thread with oneself");
    // None of that put anyone in the room's typing.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(typing_in(&app, &alice, &r).await, Vec::<String>::new());
    assert_eq!(typing_in(&app, &bob, &r).await, Vec::<String>::new());
}

#[tokio::test]
async fn direct_typing_reaches_the_peer_only_and_ends_with_a_send() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let mut bobs = direct_feed(&app, &bob, None, PROTOCOLS[0]).await;
    let mut carols = direct_feed(&app, &carol, None, PROTOCOLS[1]).await;
    sync_dm(&app, &alice, &bob, &mut [&mut bobs]).await;
    sync_dm(&app, &alice, &carol, &mut [&mut carols]).await;

    field(
        &set_typing(&app, Some(&alice), None, Some(&bob.id), true).await,
        "setTyping",
    );
    let ev = bobs.wait_dm_typing("alice", true, 5).await;
    assert_eq!(ev["cursor"], Value::Null);
    assert_eq!(ev["actor"]["username"], "alice");
    assert_eq!(ev["directMessage"], Value::Null);
    // A send ends it.
    dm(&app, &alice, &bob, "typed").await;
    bobs.wait_dm_typing("alice", false, 5).await;
    // So does false.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    field(
        &set_typing(&app, Some(&alice), None, Some(&bob.id), true).await,
        "setTyping",
    );
    bobs.wait_dm_typing("alice", true, 5).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    field(
        &set_typing(&app, Some(&alice), None, Some(&bob.id), false).await,
        "setTyping",
    );
    bobs.wait_dm_typing("alice", false, 5).await;

    // Carol heard none of it (typing included).
    dm(&app, &alice, &carol, "carol-end").await;
    let msg = carols.raw(10_000).await.expect("carol's marker");
    let first = carols.item(&msg);
    assert_eq!(first["kind"], "DIRECT_MESSAGE_ADDED", "{first}");
    assert_eq!(first["directMessage"]["content"], "carol-end");
    assert!(
        carols.raw(300).await.is_none(),
        "nothing of alice and bob's thread reaches carol"
    );
}

// ---------------------------------------------------------------- two instances (PostgreSQL)

#[tokio::test]
async fn two_instances_deliver_one_identical_order_of_events() {
    if !is_postgres() {
        eprintln!("skipped: two instances need PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    const ROUNDS: usize = 12;
    let one = TestApp::spawn().await;
    let two = one.peer().await;
    let alice = one.register("alice").await;
    let bob = one.register("bob").await;
    let carol = one.register("carol").await;
    let r = create_room(&one, &alice, "Busy").await;
    join(&one, &bob, &r).await;
    join(&two, &carol, &r).await;
    let c0 = latest_cursor(&one, &alice, &r).await;
    let mut on_one = room_feed(&one, &alice, &r, Some(&c0), PROTOCOLS[0]).await;
    let mut on_two = room_feed(&two, &bob, &r, Some(&c0), PROTOCOLS[1]).await;

    let room = r.as_str();
    let (one_ref, two_ref) = (&one, &two);
    let acting = join_all([&alice, &bob, &carol].into_iter().enumerate().map(
        |(n, user)| async move {
            for k in 0..ROUNDS {
                let app = if (n + k) % 2 == 0 { one_ref } else { two_ref };
                let other = if (n + k) % 2 == 0 { two_ref } else { one_ref };
                let m = sid(&post(app, user, room, &format!("u{n}-{k}")).await);
                field(
                    &edit(other, Some(user), &m, &format!("u{n}-{k}!")).await,
                    "editMessage",
                );
                field(&add(app, Some(user), &m, EMOJI[n]).await, "addReaction");
                if k % 2 == 0 {
                    field(&delete(other, Some(user), &m).await, "deleteMessage");
                }
            }
        },
    ));
    // A third subscriber resumes from the start while all this goes on.
    let late = async {
        tokio::time::sleep(Duration::from_millis(200)).await;
        room_feed(two_ref, &carol, room, Some(&c0), PROTOCOLS[0]).await
    };
    let (_, mut resumed) = within(120, async { tokio::join!(acting, late) }).await;
    post(&one, &alice, &r, "end").await;

    let a = on_one.until_added("end").await;
    let b = on_two.until_added("end").await;
    let c = resumed.until_added("end").await;
    let per_user = ROUNDS * 3 + ROUNDS / 2;
    assert_eq!(a.len(), 3 * per_user + 1, "{:?}", kinds(&a));
    assert_eq!(
        cursors(&a),
        cursors(&b),
        "the two instances' subscribers disagree"
    );
    assert_eq!(kinds(&a), kinds(&b));
    assert_eq!(cursors(&c), cursors(&a), "the resumed subscriber disagrees");
    let stored = all_events(&two, &bob, &r, Some(&c0)).await;
    assert_eq!(
        cursors(&stored),
        cursors(&a),
        "the stored order differs from the live one"
    );
    let unique: std::collections::HashSet<String> = cursors(&a).into_iter().collect();
    assert_eq!(unique.len(), a.len(), "each event once");
    // Each member's own changes keep their order: ADDED, EDITED, REACTIONS(, DELETED).
    for (n, user) in ["alice", "bob", "carol"].iter().enumerate() {
        let mine: Vec<String> = a
            .iter()
            .filter(|e| e["actor"]["username"] == *user && e["message"]["content"] != "end")
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        let mut want = Vec::new();
        for k in 0..ROUNDS {
            want.extend(["MESSAGE_ADDED", "MESSAGE_EDITED", "REACTIONS_CHANGED"]);
            if k % 2 == 0 {
                want.push("MESSAGE_DELETED");
            }
        }
        assert_eq!(mine, want, "user {n}");
    }
    for feed in [&mut on_one, &mut on_two, &mut resumed] {
        feed.expect_no_stored(300).await;
    }
}

#[tokio::test]
async fn typing_and_receipts_cross_instances() {
    if !is_postgres() {
        eprintln!("skipped: two instances need PostgreSQL (set TEST_DATABASE_URL)");
        return;
    }
    let one = TestApp::spawn().await;
    let two = one.peer().await;
    let alice = one.register("alice").await;
    let bob = one.register("bob").await;
    let r = create_room(&one, &bob, "Room").await;
    join(&one, &alice, &r).await;
    let mut bobs = room_feed(&two, &bob, &r, None, PROTOCOLS[0]).await;
    sync_room(&one, &bob, &r, &mut [&mut bobs]).await;

    field(
        &set_typing(&one, Some(&alice), Some(&r), None, true).await,
        "setTyping",
    );
    bobs.wait_typing(&["alice"], 5).await;
    eventually_typing(&two, &bob, &r, &["alice"], 5).await;
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    field(
        &set_typing(&one, Some(&alice), Some(&r), None, false).await,
        "setTyping",
    );
    bobs.wait_typing(&[], 5).await;
    eventually_typing(&two, &bob, &r, &[], 5).await;

    // Direct typing across instances too.
    let mut dms = direct_feed(&two, &bob, None, PROTOCOLS[1]).await;
    sync_dm(&one, &alice, &bob, &mut [&mut dms]).await;
    field(
        &set_typing(&one, Some(&alice), None, Some(&bob.id), true).await,
        "setTyping",
    );
    dms.wait_dm_typing("alice", true, 5).await;

    // A receipt moved on one instance reaches the subscriber on the other.
    let m = sid(&post(&one, &bob, &r, "read me").await);
    field(&mark(&one, &alice, &r, Some(&m)).await, "markRoomRead");
    let got = within(20, async {
        loop {
            let ev = bobs.next_stored().await;
            if ev["kind"] == "READ_RECEIPT_MOVED" {
                return ev;
            }
        }
    })
    .await;
    assert_eq!(got["receipt"]["user"]["username"], "alice");
    assert_eq!(got["receipt"]["message"]["id"], m.as_str());
    assert_eq!(
        receipt_summary(&receipts(&two, &bob, &r).await),
        [("alice".into(), json!(m))]
    );
}

//! Rooms, members, messages, direct messages, conversations and unread counts, over HTTP.

use confab::graphql::id::{NodeType, encode};
use futures_util::future::join_all;
use serde_json::{Value, json};

use crate::support::{TestApp, TestUser, error_code};

pub const CREATE_ROOM: &str = "mutation($i: CreateRoomInput!) { createRoom(input: $i) { id name description viewerIsMember membersCount } }";
pub const SEND: &str = "mutation($i: SendMessageInput!) { sendMessage(input: $i) { id content clientMessageId createdAt sender { username } room { id } } }";
pub const SEND_DM: &str = "mutation($i: SendDirectMessageInput!) { sendDirectMessage(input: $i) { id content clientMessageId sender { username } receiver { username } } }";
const MESSAGES: &str = "query($id: ID!, $first: Int, $after: String, $last: Int, $before: String) {
    room(id: $id) { messages(first: $first, after: $after, last: $last, before: $before) {
        edges { cursor node { id content } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } } }";
const ROOM: &str = "query($id: ID!) { room(id: $id) { id name description membersCount viewerIsMember unreadCount createdBy { username } } }";

pub async fn create_room(app: &TestApp, user: &TestUser, name: &str) -> String {
    let data = app
        .ok(
            Some(&user.token),
            CREATE_ROOM,
            json!({ "i": { "name": name } }),
        )
        .await;
    data["createRoom"]["id"].as_str().unwrap().to_owned()
}

pub async fn join(app: &TestApp, user: &TestUser, room: &str) {
    app.ok(
        Some(&user.token),
        "mutation($r: ID!) { joinRoom(roomId: $r) { id } }",
        json!({ "r": room }),
    )
    .await;
}

pub async fn send(app: &TestApp, user: &TestUser, room: &str, content: &str) -> Value {
    let data = app
        .ok(
            Some(&user.token),
            SEND,
            json!({ "i": { "roomId": room, "content": content } }),
        )
        .await;
    data["sendMessage"].clone()
}

pub async fn send_dm(app: &TestApp, from: &TestUser, to: &TestUser, content: &str) -> Value {
    let data = app
        .ok(
            Some(&from.token),
            SEND_DM,
            json!({ "i": { "toUserId": to.id, "content": content } }),
        )
        .await;
    data["sendDirectMessage"].clone()
}

async fn room(app: &TestApp, user: Option<&TestUser>, id: &str) -> Value {
    app.ok(user.map(|u| u.token.as_str()), ROOM, json!({ "id": id }))
        .await["room"]
        .clone()
}

async fn unread(app: &TestApp, user: &TestUser, id: &str) -> i64 {
    room(app, Some(user), id).await["unreadCount"]
        .as_i64()
        .unwrap()
}

fn contents(connection: &Value) -> Vec<String> {
    connection["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"]["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn rooms_are_public_and_only_members_read_or_write_messages() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let created = app
        .ok(
            Some(&alice.token),
            CREATE_ROOM,
            json!({ "i": { "name": "  General  ", "description": "talk" } }),
        )
        .await;
    let r = created["createRoom"]["id"].as_str().unwrap().to_owned();
    assert_eq!(created["createRoom"]["name"], "General", "stored trimmed");
    assert_eq!(
        created["createRoom"]["viewerIsMember"], true,
        "the creator is a member"
    );
    assert_eq!(created["createRoom"]["membersCount"], 1);
    send(&app, &alice, &r, "before bob").await;

    // Anonymous callers read rooms and room metadata.
    let anon = room(&app, None, &r).await;
    assert_eq!(anon["name"], "General");
    assert_eq!(anon["createdBy"]["username"], alice.username.as_str());
    assert_eq!(anon["viewerIsMember"], false);
    assert_eq!(anon["unreadCount"], 0);
    let listed = app
        .ok(None, "{ rooms { edges { node { id name } } } }", json!({}))
        .await;
    assert_eq!(listed["rooms"]["edges"][0]["node"]["id"], r.as_str());
    // ... but nothing that needs a viewer.
    let v = app.gql(None, MESSAGES, json!({ "id": r })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = app
        .gql(None, CREATE_ROOM, json!({ "i": { "name": "x" } }))
        .await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = app
        .gql(None, "{ myRooms { edges { node { id } } } }", json!({}))
        .await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = app
        .gql(
            None,
            "mutation($r: ID!) { joinRoom(roomId: $r) { id } }",
            json!({ "r": r }),
        )
        .await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");

    // A non-member: FORBIDDEN for messages, members, send, markRoomRead.
    let v = app
        .gql(Some(&bob.token), MESSAGES, json!({ "id": r }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(
            Some(&bob.token),
            "query($id: ID!) { room(id: $id) { members { edges { joinedAt } } } }",
            json!({ "id": r }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(
            Some(&bob.token),
            SEND,
            json!({ "i": { "roomId": r, "content": "hi" } }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(
            Some(&bob.token),
            "mutation($r: ID!) { markRoomRead(roomId: $r) { id } }",
            json!({ "r": r }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");

    // Joining is idempotent; members read the history from before they joined.
    join(&app, &bob, &r).await;
    join(&app, &bob, &r).await;
    let seen = room(&app, Some(&bob), &r).await;
    assert_eq!(seen["membersCount"], 2);
    assert_eq!(seen["viewerIsMember"], true);
    let data = app.ok(Some(&bob.token), MESSAGES, json!({ "id": r })).await;
    assert_eq!(contents(&data["room"]["messages"]), ["before bob"]);
    let members = app
        .ok(
            Some(&bob.token),
            "query($id: ID!) { room(id: $id) { members { edges { joinedAt node { username } } pageInfo { hasNextPage } } } }",
            json!({ "id": r }),
        )
        .await;
    let edges = members["room"]["members"]["edges"].as_array().unwrap();
    let names: Vec<&str> = edges
        .iter()
        .map(|e| e["node"]["username"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["alice", "bob"], "earliest joined first");
    assert!(
        edges
            .iter()
            .all(|e| e["joinedAt"].as_str().unwrap().ends_with('Z'))
    );

    // Leaving ends access.
    let left = app
        .ok(
            Some(&bob.token),
            "mutation($r: ID!) { leaveRoom(roomId: $r) { viewerIsMember membersCount } }",
            json!({ "r": r }),
        )
        .await;
    assert_eq!(
        left["leaveRoom"],
        json!({ "viewerIsMember": false, "membersCount": 1 })
    );
    let v = app
        .gql(Some(&bob.token), MESSAGES, json!({ "id": r }))
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");

    // Ids: a well-formed id of nothing is null/NOT_FOUND, garbage or the wrong type BAD_USER_INPUT.
    let nothing = encode(NodeType::Room, uuid::Uuid::now_v7()).0;
    assert_eq!(room(&app, None, &nothing).await, Value::Null);
    let v = app
        .gql(
            Some(&bob.token),
            "mutation($r: ID!) { joinRoom(roomId: $r) { id } }",
            json!({ "r": nothing }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = app.gql(None, ROOM, json!({ "id": alice.id })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = app.gql(None, ROOM, json!({ "id": "garbage!" })).await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
}

#[tokio::test]
async fn room_names_and_descriptions_are_validated() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for input in [
        json!({ "name": "   " }),
        json!({ "name": "" }),
        json!({ "name": "x".repeat(101) }),
        json!({ "name": "ok", "description": "d".repeat(1001) }),
    ] {
        let v = app
            .gql(Some(&alice.token), CREATE_ROOM, json!({ "i": input }))
            .await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{input}");
    }
    let v = app
        .ok(
            Some(&alice.token),
            CREATE_ROOM,
            json!({ "i": { "name": "é".repeat(100), "description": "d".repeat(1000) } }),
        )
        .await;
    assert_eq!(
        v["createRoom"]["name"].as_str().unwrap().chars().count(),
        100
    );
}

#[tokio::test]
async fn only_the_creator_updates_or_deletes_a_room() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = app
        .ok(
            Some(&alice.token),
            CREATE_ROOM,
            json!({ "i": { "name": "Room", "description": "about" } }),
        )
        .await["createRoom"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    join(&app, &bob, &r).await;
    const UPDATE: &str = "mutation($i: UpdateRoomInput!) { updateRoom(input: $i) { name description updatedAt createdAt } }";
    let v = app
        .gql(
            Some(&bob.token),
            UPDATE,
            json!({ "i": { "id": r, "name": "Mine" } }),
        )
        .await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app
        .gql(None, UPDATE, json!({ "i": { "id": r, "name": "Mine" } }))
        .await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    // Omitted fields stay; an explicit null clears the description.
    let v = app
        .ok(
            Some(&alice.token),
            UPDATE,
            json!({ "i": { "id": r, "name": " Renamed " } }),
        )
        .await;
    assert_eq!(v["updateRoom"]["name"], "Renamed");
    assert_eq!(v["updateRoom"]["description"], "about");
    assert!(v["updateRoom"]["updatedAt"].as_str() >= v["updateRoom"]["createdAt"].as_str());
    let v = app
        .ok(
            Some(&alice.token),
            UPDATE,
            json!({ "i": { "id": r, "description": null } }),
        )
        .await;
    assert_eq!(v["updateRoom"]["name"], "Renamed");
    assert_eq!(v["updateRoom"]["description"], Value::Null);
    for bad in [
        json!({ "id": r, "name": null }),
        json!({ "id": r, "name": "" }),
        json!({ "id": r, "description": "d".repeat(1001) }),
    ] {
        let v = app
            .gql(Some(&alice.token), UPDATE, json!({ "i": bad }))
            .await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{bad}");
    }
    let nothing = encode(NodeType::Room, uuid::Uuid::now_v7()).0;
    let v = app
        .gql(
            Some(&alice.token),
            UPDATE,
            json!({ "i": { "id": nothing, "name": "x" } }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");

    // Delete: creator only; messages and memberships go too.
    let m = send(&app, &bob, &r, "hello").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    const DELETE: &str = "mutation($id: ID!) { deleteRoom(id: $id) }";
    let v = app.gql(Some(&bob.token), DELETE, json!({ "id": r })).await;
    assert_eq!(error_code(&v), "FORBIDDEN");
    let v = app.ok(Some(&alice.token), DELETE, json!({ "id": r })).await;
    assert_eq!(v["deleteRoom"], r.as_str());
    assert_eq!(room(&app, Some(&alice), &r).await, Value::Null);
    let node = app
        .ok(
            Some(&bob.token),
            "query($id: ID!) { node(id: $id) { id } }",
            json!({ "id": m }),
        )
        .await;
    assert_eq!(node["node"], Value::Null);
    let mine = app
        .ok(
            Some(&bob.token),
            "{ myRooms { edges { node { id } } } }",
            json!({}),
        )
        .await;
    assert_eq!(mine["myRooms"]["edges"], json!([]));
    let v = app
        .gql(Some(&alice.token), DELETE, json!({ "id": r }))
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
}

#[tokio::test]
async fn message_content_and_client_ids_are_validated_and_stored_exactly() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    for content in [
        String::new(),
        "   \n\t".into(),
        "x".repeat(4001),
        "nul\0byte".into(),
    ] {
        let v = app
            .gql(
                Some(&alice.token),
                SEND,
                json!({ "i": { "roomId": r, "content": content } }),
            )
            .await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{content:?}");
    }
    let v = app
        .gql(
            Some(&alice.token),
            SEND,
            json!({ "i": { "roomId": r, "content": "x", "clientMessageId": "c".repeat(65) } }),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let long = "é".repeat(4000);
    assert_eq!(
        send(&app, &alice, &r, &long).await["content"],
        long.as_str()
    );
    let html = "  <b>bold</b> & 'quotes' \"too\"  ";
    let sent = send(&app, &alice, &r, html).await;
    assert_eq!(sent["content"], html, "stored exactly as sent");
    assert_eq!(sent["sender"]["username"], "alice");
    assert_eq!(sent["room"]["id"], r.as_str());
}

#[tokio::test]
async fn a_retried_send_returns_the_first_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    let input = json!({ "i": { "roomId": r, "content": "once", "clientMessageId": "c-1" } });
    let first = app.ok(Some(&alice.token), SEND, input.clone()).await["sendMessage"].clone();
    let again = app.ok(Some(&alice.token), SEND, input).await["sendMessage"].clone();
    assert_eq!(first, again);
    assert_eq!(first["clientMessageId"], "c-1");
    // Another sender may use the same clientMessageId.
    join(&app, &bob, &r).await;
    let other = app
        .ok(
            Some(&bob.token),
            SEND,
            json!({ "i": { "roomId": r, "content": "mine", "clientMessageId": "c-1" } }),
        )
        .await;
    assert_ne!(other["sendMessage"]["id"], first["id"]);
    let data = app
        .ok(Some(&alice.token), MESSAGES, json!({ "id": r }))
        .await;
    assert_eq!(contents(&data["room"]["messages"]), ["once", "mine"]);
}

#[tokio::test]
async fn concurrent_duplicate_sends_store_exactly_one_message() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    let input = json!({ "i": { "roomId": r, "content": "racy", "clientMessageId": "same" } });
    let results = join_all((0..8).map(|_| app.ok(Some(&alice.token), SEND, input.clone()))).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|d| d["sendMessage"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1, "every caller gets the one message");
    let data = app
        .ok(Some(&alice.token), MESSAGES, json!({ "id": r }))
        .await;
    assert_eq!(contents(&data["room"]["messages"]), ["racy"]);

    let input = json!({ "i": { "toUserId": bob.id, "content": "dm", "clientMessageId": "same" } });
    let results =
        join_all((0..8).map(|_| app.ok(Some(&alice.token), SEND_DM, input.clone()))).await;
    let ids: std::collections::HashSet<String> = results
        .iter()
        .map(|d| d["sendDirectMessage"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids.len(), 1);
    let thread = app
        .ok(
            Some(&bob.token),
            "query($u: ID!) { directMessages(withUserId: $u) { edges { node { content } } } }",
            json!({ "u": alice.id }),
        )
        .await;
    assert_eq!(contents(&thread["directMessages"]), ["dm"]);
}

#[tokio::test]
async fn unread_counts_follow_read_marks_and_joins() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r = create_room(&app, &alice, "Room").await;
    send(&app, &alice, &r, "1").await;
    send(&app, &alice, &r, "2").await;
    join(&app, &bob, &r).await;
    assert_eq!(
        unread(&app, &bob, &r).await,
        0,
        "a new member has read what came before"
    );
    for n in 3..6 {
        send(&app, &alice, &r, &n.to_string()).await;
    }
    assert_eq!(unread(&app, &bob, &r).await, 3);
    assert_eq!(
        unread(&app, &alice, &r).await,
        0,
        "one's own messages are never unread"
    );
    assert_eq!(unread(&app, &carol, &r).await, 0, "0 for non-members");
    send(&app, &bob, &r, "reply").await;
    assert_eq!(unread(&app, &alice, &r).await, 1);
    let v = app
        .ok(
            Some(&bob.token),
            "mutation($r: ID!) { markRoomRead(roomId: $r) { unreadCount } }",
            json!({ "r": r }),
        )
        .await;
    assert_eq!(v["markRoomRead"]["unreadCount"], 0);
    send(&app, &alice, &r, "later").await;
    assert_eq!(unread(&app, &bob, &r).await, 1);
    // Counts for many rooms in one request.
    let r2 = create_room(&app, &bob, "Second").await;
    join(&app, &alice, &r2).await;
    send(&app, &bob, &r2, "x").await;
    send(&app, &bob, &r2, "y").await;
    let mine = app
        .ok(
            Some(&alice.token),
            "{ myRooms { edges { node { name unreadCount membersCount } } } }",
            json!({}),
        )
        .await;
    assert_eq!(
        mine["myRooms"]["edges"],
        json!([
            { "node": { "name": "Second", "unreadCount": 2, "membersCount": 2 } },
            { "node": { "name": "Room", "unreadCount": 1, "membersCount": 2 } },
        ])
    );
}

#[tokio::test]
async fn my_rooms_are_ordered_by_latest_activity() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r1 = create_room(&app, &alice, "one").await;
    let r2 = create_room(&app, &alice, "two").await;
    let r3 = create_room(&app, &alice, "three").await;
    const MINE: &str = "query($after: String) { myRooms(first: 2, after: $after) {
        edges { node { name } } pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    let names = |v: &Value| -> Vec<String> {
        v["myRooms"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let v = app.ok(Some(&alice.token), MINE, json!({})).await;
    assert_eq!(names(&v), ["three", "two"], "joined most recently first");
    send(&app, &alice, &r1, "bump").await;
    let v = app.ok(Some(&alice.token), MINE, json!({})).await;
    assert_eq!(names(&v), ["one", "three"]);
    assert_eq!(v["myRooms"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .ok(
            Some(&alice.token),
            MINE,
            json!({ "after": v["myRooms"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(names(&next), ["two"]);
    assert_eq!(next["myRooms"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(next["myRooms"]["pageInfo"]["hasPreviousPage"], true);
    send(&app, &alice, &r2, "bump").await;
    let v = app.ok(Some(&alice.token), MINE, json!({})).await;
    assert_eq!(names(&v), ["two", "one"]);
    let _ = r3;
}

/// Rows sharing one created_at, inserted directly with ids in reverse order:
/// history follows the room's stream positions (commit order), so nothing is
/// skipped or repeated in either direction, whatever the ids and times say.
#[tokio::test]
async fn paging_over_messages_sharing_a_timestamp_skips_and_repeats_nothing() {
    use sea_orm::{ActiveModelTrait, Set};
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let room_id = match confab::graphql::id::decode_any(&r).unwrap() {
        (NodeType::Room, id) => id,
        other => panic!("{other:?}"),
    };
    let alice_id = confab::graphql::id::decode_any(&alice.id).unwrap().1;
    let at = confab::service::now();
    let mut expected: Vec<(uuid::Uuid, String)> = Vec::new();
    // Inserted in the reverse of their id order.
    let ids: Vec<uuid::Uuid> = (0..7).map(|_| uuid::Uuid::now_v7()).rev().collect();
    for (n, id) in ids.into_iter().enumerate() {
        let content = format!("m{n}");
        entity::message::ActiveModel {
            id: Set(id),
            room_id: Set(room_id),
            sender_id: Set(alice_id),
            content: Set(content.clone()),
            client_message_id: Set(None),
            created_at: Set(at),
            // Position 1 is the creator's join.
            seq: Set(n as i64 + 2),
            edited_at: Set(None),
            deleted_at: Set(None),
            reply_to_id: Set(None),
        }
        .insert(&app.app.state.db)
        .await
        .unwrap();
        expected.push((id, content));
    }
    let expected: Vec<String> = expected.into_iter().map(|(_, c)| c).collect();
    // The stream's head moves past them, as a send would have moved it.
    {
        use sea_orm::{ColumnTrait, EntityTrait, QueryFilter, sea_query::Expr};
        entity::room::Entity::update_many()
            .col_expr(entity::room::Column::LastSeq, Expr::value(8_i64))
            .filter(entity::room::Column::Id.eq(room_id))
            .exec(&app.app.state.db)
            .await
            .unwrap();
    }

    // Forward, two at a time.
    let mut seen = Vec::new();
    let mut after = Value::Null;
    let mut pages = 0;
    loop {
        let v = app
            .ok(
                Some(&alice.token),
                MESSAGES,
                json!({ "id": r, "first": 2, "after": after }),
            )
            .await;
        let conn = &v["room"]["messages"];
        assert_eq!(conn["pageInfo"]["hasPreviousPage"], pages > 0);
        seen.extend(contents(conn));
        pages += 1;
        if conn["pageInfo"]["hasNextPage"] == false {
            break;
        }
        after = conn["pageInfo"]["endCursor"].clone();
    }
    assert_eq!(seen, expected);
    assert_eq!(pages, 4);

    // Backward from the newest, two at a time.
    let mut back: Vec<String> = Vec::new();
    let mut before = Value::Null;
    pages = 0;
    loop {
        let v = app
            .ok(
                Some(&alice.token),
                MESSAGES,
                json!({ "id": r, "last": 2, "before": before }),
            )
            .await;
        let conn = &v["room"]["messages"];
        assert_eq!(conn["pageInfo"]["hasNextPage"], pages > 0);
        let mut page = contents(conn);
        page.extend(back);
        back = page;
        pages += 1;
        if conn["pageInfo"]["hasPreviousPage"] == false {
            break;
        }
        before = conn["pageInfo"]["startCursor"].clone();
    }
    assert_eq!(back, expected);
    assert_eq!(pages, 4);

    // After the end: nothing new, but there is a page before.
    let all = app
        .ok(
            Some(&alice.token),
            MESSAGES,
            json!({ "id": r, "last": 100 }),
        )
        .await;
    let end = all["room"]["messages"]["pageInfo"]["endCursor"].clone();
    assert_eq!(
        all["room"]["messages"]["pageInfo"]["hasPreviousPage"],
        false
    );
    let v = app
        .ok(
            Some(&alice.token),
            MESSAGES,
            json!({ "id": r, "first": 5, "after": end }),
        )
        .await;
    assert_eq!(v["room"]["messages"]["edges"], json!([]));
    assert_eq!(v["room"]["messages"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(v["room"]["messages"]["pageInfo"]["hasNextPage"], false);
    // A new message is what `after: endCursor` catches up on.
    send(&app, &alice, &r, "new").await;
    let v = app
        .ok(
            Some(&alice.token),
            MESSAGES,
            json!({ "id": r, "after": end }),
        )
        .await;
    assert_eq!(contents(&v["room"]["messages"]), ["new"]);
}

#[tokio::test]
async fn bad_paging_arguments_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    let rooms = app
        .ok(None, "{ rooms { pageInfo { endCursor } } }", json!({}))
        .await;
    let rooms_cursor = rooms["rooms"]["pageInfo"]["endCursor"].clone();
    for vars in [
        json!({ "id": r, "first": 1, "last": 1 }),
        json!({ "id": r, "first": -1 }),
        json!({ "id": r, "last": -1 }),
        json!({ "id": r, "first": 101 }),
        json!({ "id": r, "after": "not-a-cursor" }),
        json!({ "id": r, "before": "bm9wZQ" }),
        json!({ "id": r, "after": rooms_cursor }),
    ] {
        let v = app.gql(Some(&alice.token), MESSAGES, vars.clone()).await;
        assert_eq!(error_code(&v), "BAD_USER_INPUT", "{vars}");
    }
    let v = app
        .gql(
            None,
            "{ rooms(first: 101) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = app
        .gql(
            Some(&alice.token),
            "{ conversations(first: -5) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
}

#[tokio::test]
async fn rooms_are_listed_newest_first_twenty_by_default() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    for n in 0..23 {
        create_room(&app, &alice, &format!("r{n:02}")).await;
    }
    const ROOMS: &str = "query($first: Int, $after: String, $last: Int, $before: String) {
        rooms(first: $first, after: $after, last: $last, before: $before) {
        edges { node { name } } pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";
    let names = |v: &Value| -> Vec<String> {
        v["rooms"]["edges"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["node"]["name"].as_str().unwrap().to_owned())
            .collect()
    };
    let v = app.ok(None, ROOMS, json!({})).await;
    let first = names(&v);
    assert_eq!(first.len(), 20);
    assert_eq!(first[0], "r22");
    assert_eq!(v["rooms"]["pageInfo"]["hasNextPage"], true);
    let rest = app
        .ok(
            None,
            ROOMS,
            json!({ "after": v["rooms"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(names(&rest), ["r02", "r01", "r00"]);
    let back = app
        .ok(
            None,
            ROOMS,
            json!({ "last": 2, "before": rest["rooms"]["pageInfo"]["startCursor"] }),
        )
        .await;
    assert_eq!(names(&back), ["r04", "r03"]);
    assert_eq!(back["rooms"]["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(back["rooms"]["pageInfo"]["hasNextPage"], true);
}

#[tokio::test]
async fn direct_messages_between_two_users_only() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    const THREAD: &str =
        "query($u: ID!, $first: Int, $after: String, $last: Int, $before: String) {
        directMessages(withUserId: $u, first: $first, after: $after, last: $last, before: $before) {
        edges { node { id content sender { username } receiver { username } } }
        pageInfo { hasNextPage hasPreviousPage startCursor endCursor } } }";

    let v = app
        .gql(
            Some(&alice.token),
            SEND_DM,
            json!({ "i": { "toUserId": alice.id, "content": "me" } }),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "not to oneself");
    let nobody = encode(NodeType::User, uuid::Uuid::now_v7()).0;
    let v = app
        .gql(
            Some(&alice.token),
            SEND_DM,
            json!({ "i": { "toUserId": nobody, "content": "x" } }),
        )
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");
    let v = app
        .gql(
            Some(&alice.token),
            SEND_DM,
            json!({ "i": { "toUserId": "junk", "content": "x" } }),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = app
        .gql(
            Some(&alice.token),
            SEND_DM,
            json!({ "i": { "toUserId": bob.id, "content": " " } }),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = app
        .gql(
            None,
            SEND_DM,
            json!({ "i": { "toUserId": bob.id, "content": "x" } }),
        )
        .await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    let v = app.gql(None, THREAD, json!({ "u": bob.id })).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");

    let first = send_dm(&app, &alice, &bob, "hi bob").await;
    assert_eq!(first["sender"]["username"], "alice");
    assert_eq!(first["receiver"]["username"], "bob");
    send_dm(&app, &bob, &alice, "hi alice").await;
    send_dm(&app, &alice, &bob, "how are you").await;
    send_dm(&app, &carol, &bob, "psst").await;

    let expected = ["hi bob", "hi alice", "how are you"];
    for (viewer, peer) in [(&alice, &bob), (&bob, &alice)] {
        let v = app
            .ok(Some(&viewer.token), THREAD, json!({ "u": peer.id }))
            .await;
        assert_eq!(
            contents(&v["directMessages"]),
            expected,
            "oldest first, both directions"
        );
    }
    let v = app
        .ok(
            Some(&alice.token),
            THREAD,
            json!({ "u": bob.id, "last": 2 }),
        )
        .await;
    assert_eq!(contents(&v["directMessages"]), ["hi alice", "how are you"]);
    assert_eq!(v["directMessages"]["pageInfo"]["hasPreviousPage"], true);
    let older = app
        .ok(Some(&alice.token), THREAD, json!({ "u": bob.id, "last": 2, "before": v["directMessages"]["pageInfo"]["startCursor"] }))
        .await;
    assert_eq!(contents(&older["directMessages"]), ["hi bob"]);
    assert_eq!(
        older["directMessages"]["pageInfo"]["hasPreviousPage"],
        false
    );
    // Carol's thread with alice is empty: she never sees alice and bob's.
    let v = app
        .ok(Some(&carol.token), THREAD, json!({ "u": alice.id }))
        .await;
    assert_eq!(v["directMessages"]["edges"], json!([]));
    let v = app
        .gql(Some(&carol.token), THREAD, json!({ "u": carol.id }))
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT");
    let v = app
        .gql(Some(&carol.token), THREAD, json!({ "u": nobody }))
        .await;
    assert_eq!(error_code(&v), "NOT_FOUND");

    // node(id) only for the two parties.
    const NODE: &str = "query($id: ID!) { node(id: $id) { id ... on DirectMessage { content } } }";
    let id = first["id"].clone();
    for party in [&alice, &bob] {
        let v = app.ok(Some(&party.token), NODE, json!({ "id": id })).await;
        assert_eq!(v["node"]["content"], "hi bob");
    }
    assert_eq!(
        app.ok(Some(&carol.token), NODE, json!({ "id": id })).await["node"],
        Value::Null
    );
    assert_eq!(
        app.ok(None, NODE, json!({ "id": id })).await["node"],
        Value::Null
    );
}

#[tokio::test]
async fn conversations_list_threads_most_recent_first_with_unread_counts() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    const CONVERSATIONS: &str =
        "query($first: Int, $after: String) { conversations(first: $first, after: $after) {
        edges { cursor node { peer { username } lastMessage { content } unreadCount } }
        pageInfo { hasNextPage hasPreviousPage endCursor } } }";
    const MARK: &str = "mutation($u: ID!) { markConversationRead(withUserId: $u) { peer { username } unreadCount } }";

    let v = app
        .ok(Some(&bob.token), MARK, json!({ "u": alice.id }))
        .await;
    assert_eq!(v["markConversationRead"], Value::Null, "no thread yet");

    send_dm(&app, &alice, &bob, "a1").await;
    send_dm(&app, &alice, &bob, "a2").await;
    send_dm(&app, &carol, &bob, "c1").await;
    send_dm(&app, &bob, &alice, "b1").await;

    let v = app.ok(Some(&bob.token), CONVERSATIONS, json!({})).await;
    let nodes: Vec<Value> = v["conversations"]["edges"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["node"].clone())
        .collect();
    assert_eq!(
        nodes,
        [
            json!({ "peer": { "username": "alice" }, "lastMessage": { "content": "b1" }, "unreadCount": 2 }),
            json!({ "peer": { "username": "carol" }, "lastMessage": { "content": "c1" }, "unreadCount": 1 }),
        ]
    );
    let v = app.ok(Some(&alice.token), CONVERSATIONS, json!({})).await;
    assert_eq!(
        v["conversations"]["edges"][0]["node"]["unreadCount"], 1,
        "bob's reply"
    );

    // Paging.
    let page = app
        .ok(Some(&bob.token), CONVERSATIONS, json!({ "first": 1 }))
        .await;
    assert_eq!(page["conversations"]["pageInfo"]["hasNextPage"], true);
    let next = app
        .ok(
            Some(&bob.token),
            CONVERSATIONS,
            json!({ "first": 1, "after": page["conversations"]["pageInfo"]["endCursor"] }),
        )
        .await;
    assert_eq!(
        next["conversations"]["edges"][0]["node"]["peer"]["username"],
        "carol"
    );
    assert_eq!(next["conversations"]["pageInfo"]["hasNextPage"], false);
    assert_eq!(next["conversations"]["pageInfo"]["hasPreviousPage"], true);

    let v = app
        .ok(Some(&bob.token), MARK, json!({ "u": alice.id }))
        .await;
    assert_eq!(
        v["markConversationRead"],
        json!({ "peer": { "username": "alice" }, "unreadCount": 0 })
    );
    send_dm(&app, &alice, &bob, "a3").await;
    let v = app.ok(Some(&bob.token), CONVERSATIONS, json!({})).await;
    assert_eq!(v["conversations"]["edges"][0]["node"]["unreadCount"], 1);
    let v = app.gql(None, CONVERSATIONS, json!({})).await;
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
}

#[tokio::test]
async fn node_resolves_rooms_and_messages_for_members_only() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "Room").await;
    let m = send(&app, &alice, &r, "secret-ish").await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    const NODE: &str = "query($id: ID!) { node(id: $id) { __typename id ... on Room { name } ... on Message { content } } }";
    let v = app.ok(None, NODE, json!({ "id": r })).await;
    assert_eq!(
        v["node"],
        json!({ "__typename": "Room", "id": r, "name": "Room" })
    );
    let v = app.ok(Some(&alice.token), NODE, json!({ "id": m })).await;
    assert_eq!(v["node"]["content"], "secret-ish");
    assert_eq!(
        app.ok(Some(&bob.token), NODE, json!({ "id": m })).await["node"],
        Value::Null
    );
    assert_eq!(
        app.ok(None, NODE, json!({ "id": m })).await["node"],
        Value::Null
    );
    join(&app, &bob, &r).await;
    assert_eq!(
        app.ok(Some(&bob.token), NODE, json!({ "id": m })).await["node"]["content"],
        "secret-ish"
    );
    let nothing = encode(NodeType::Message, uuid::Uuid::now_v7()).0;
    assert_eq!(
        app.ok(Some(&bob.token), NODE, json!({ "id": nothing }))
            .await["node"],
        Value::Null
    );
}

/// `before` alone pages backwards from it with the default size, like `last`.
#[tokio::test]
async fn before_without_last_pages_back_from_the_cursor() {
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let r = create_room(&app, &alice, "Room").await;
    for n in 0..25 {
        send(&app, &alice, &r, &format!("m{n:02}")).await;
    }
    let newest = app
        .ok(Some(&alice.token), MESSAGES, json!({ "id": r, "last": 1 }))
        .await;
    let cursor = newest["room"]["messages"]["pageInfo"]["startCursor"].clone();
    let page = app
        .ok(
            Some(&alice.token),
            MESSAGES,
            json!({ "id": r, "before": cursor }),
        )
        .await;
    let conn = &page["room"]["messages"];
    let expected: Vec<String> = (4..24).map(|n| format!("m{n:02}")).collect();
    assert_eq!(
        contents(conn),
        expected,
        "the 20 before the newest, oldest first"
    );
    assert_eq!(conn["pageInfo"]["hasPreviousPage"], true);
    assert_eq!(conn["pageInfo"]["hasNextPage"], true);
}

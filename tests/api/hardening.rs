//! Issue 9 (hardening): hostile documents and inputs, the login limiter,
//! token claims. Each test failed before its fix.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::{TestApp, error_code};

const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken } }";
const USER: &str = "query($u: String!) { user(username: $u) { username } }";

/// `query { ...F0 }` with F0 … F(levels-2) each spreading the next twice:
/// 2^(levels-1) `__typename`s once expanded, in under 1 KB.
fn fragment_bomb(levels: usize) -> String {
    let mut doc = String::from("query { ...F0 }");
    for i in 0..levels - 1 {
        let next = i + 1;
        doc.push_str(&format!(
            " fragment F{i} on Query {{ ...F{next} ...F{next} }}"
        ));
    }
    doc.push_str(&format!(
        " fragment F{} on Query {{ __typename }}",
        levels - 1
    ));
    doc
}

fn has_no_data(res: &Value) -> bool {
    res.get("data").is_none_or(Value::is_null)
}

#[tokio::test]
async fn fragment_explosion_is_refused_before_validation() {
    let app = TestApp::spawn().await;
    let bomb = fragment_bomb(24);
    assert!(bomb.len() < 1024, "{} bytes", bomb.len());
    let res = app.gql(None, &bomb, json!({})).await;
    assert_eq!(error_code(&res), "GRAPHQL_VALIDATION_FAILED", "{res}");
    assert!(has_no_data(&res), "{res}");
    // The server is free right after.
    let data = app.ok(None, "{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "Query");
    // A small document of the same shape still runs.
    let data = app.ok(None, &fragment_bomb(4), json!({})).await;
    assert_eq!(data["__typename"], "Query");
}

#[tokio::test]
async fn fragment_cycles_are_validation_errors() {
    let app = TestApp::spawn().await;
    let cycle =
        "query { ...A } fragment A on Query { __typename ...B } fragment B on Query { ...A }";
    let res = app.gql(None, cycle, json!({})).await;
    assert_eq!(error_code(&res), "GRAPHQL_VALIDATION_FAILED", "{res}");
    app.ok(None, "{ __typename }", json!({})).await;
}

#[tokio::test]
async fn graphiql_full_introspection_query_fits_the_bound() {
    let app = TestApp::spawn().await;
    let data = app
        .ok(None, crate::unit::GRAPHIQL_INTROSPECTION, json!({}))
        .await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn one_auth_mutation_per_document() {
    let app = TestApp::spawn().await;
    app.register("rita").await;
    let creds = json!({ "i": { "login": "rita", "password": "correct horse" } });
    let docs = [
        "mutation($i: LoginInput!) { a: login(input: $i) { accessToken } b: login(input: $i) { accessToken } }",
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } ...F } fragment F on Mutation { again: login(input: $i) { accessToken } }",
        "mutation($i: LoginInput!) { login(input: $i) { accessToken } ... on Mutation { r: refreshSession(refreshToken: \"x\") { accessToken } } }",
        "mutation($i: LoginInput!) { ...F ...F } fragment F on Mutation { login(input: $i) { accessToken } }",
    ];
    for doc in docs {
        let res = app.gql(None, doc, creds.clone()).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{doc}: {res}");
        assert!(has_no_data(&res), "{doc}: {res}");
    }
    // One is fine.
    app.ok(None, LOGIN, creds.clone()).await;
}

#[tokio::test]
async fn two_registrations_in_one_document_create_nobody() {
    let app = TestApp::spawn().await;
    let doc = r#"mutation {
        a: register(input: { username: "twin_a", email: "a@example.com", password: "correct horse" }) { accessToken }
        b: register(input: { username: "twin_b", email: "b@example.com", password: "correct horse" }) { accessToken }
    }"#;
    let res = app.gql(None, doc, json!({})).await;
    assert_eq!(error_code(&res), "BAD_USER_INPUT", "{res}");
    assert!(has_no_data(&res), "{res}");
    for name in ["twin_a", "twin_b"] {
        let data = app.ok(None, USER, json!({ "u": name })).await;
        assert!(data["user"].is_null(), "{name}: {data}");
    }
}

/// Every way a NUL reaches a string argument: variables and literals.
#[tokio::test]
async fn nul_in_any_string_argument_is_bad_user_input() {
    let app = TestApp::spawn().await;
    app.register("rita").await;
    let search = "query($q: String!, $a: String) { searchUsers(query: $q, after: $a) { edges { node { username } } } }";
    let nul_key_cursor = confab::graphql::id::encode_cursor(
        confab::graphql::id::ListKind::Search,
        &"ri\0ta".to_owned(),
        uuid::Uuid::now_v7(),
    );
    let cases: Vec<(&str, Value)> = vec![
        (
            LOGIN,
            json!({ "i": { "login": "ri\u{0}ta", "password": "correct horse" } }),
        ),
        (
            LOGIN,
            json!({ "i": { "login": "rita", "password": "correct\u{0}horse" } }),
        ),
        (
            r#"mutation { login(input: { login: "ri\u0000ta", password: "x" }) { accessToken } }"#,
            json!({}),
        ),
        (USER, json!({ "u": "ri\u{0}ta" })),
        (
            r#"{ user(username: "ri\u0000ta") { username } }"#,
            json!({}),
        ),
        (search, json!({ "q": "ri\u{0}" })),
        (search, json!({ "q": "ri", "a": "abc\u{0}def" })),
        // A cursor whose decoded sort key holds the NUL.
        (search, json!({ "q": "ri", "a": nul_key_cursor })),
        (
            r#"{ searchUsers(query: "ri\u0000") { edges { cursor } } }"#,
            json!({}),
        ),
        (
            r#"{ searchUsers(query: "ri", after: "x\u0000") { edges { cursor } } }"#,
            json!({}),
        ),
        // Anywhere in the variables, used or not.
        (USER, json!({ "u": "rita", "unused": ["\u{0}"] })),
    ];
    for (doc, vars) in cases {
        let res = app.gql(None, doc, vars.clone()).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{doc} {vars}: {res}");
    }
    // Without the NUL, the same requests answer.
    let data = app.ok(None, USER, json!({ "u": "rita" })).await;
    assert_eq!(data["user"]["username"], "rita");
    let data = app.ok(None, search, json!({ "q": "ri" })).await;
    assert_eq!(data["searchUsers"]["edges"][0]["node"]["username"], "rita");
}

/// Control (Cc) and format (Cf) characters other than U+200D.
const INVISIBLE: [&str; 5] = [
    "a\u{1}b",         // control
    "\u{202E}gnp.exe", // right-to-left override
    "ri\u{200B}ta",    // zero-width space
    "\u{FEFF}rita",    // byte order mark / zero-width no-break space
    "rita\u{2066}",    // left-to-right isolate
];

#[tokio::test]
async fn display_names_refuse_control_and_format_characters() {
    let app = TestApp::spawn().await;
    let register = "mutation($i: RegisterInput!) { register(input: $i) { user { displayName } } }";
    let update =
        "mutation($n: String) { updateProfile(input: { displayName: $n }) { displayName } }";
    let user = app.register("rita").await;
    for (i, name) in INVISIBLE.iter().enumerate() {
        let vars = json!({ "i": { "username": format!("user_{i}"), "email": format!("u{i}@example.com"), "password": "correct horse", "displayName": name } });
        let res = app.gql(None, register, vars).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{name:?}: {res}");
        let res = app
            .gql(Some(&user.token), update, json!({ "n": name }))
            .await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{name:?}: {res}");
    }
    let data = app.ok(None, USER, json!({ "u": "user_0" })).await;
    assert!(data["user"].is_null(), "{data}");
    // The emoji joiner is fine.
    let coder = "Rita 👩\u{200D}💻";
    let vars = json!({ "i": { "username": "coder", "email": "c@example.com", "password": "correct horse", "displayName": coder } });
    let data = app.ok(None, register, vars).await;
    assert_eq!(data["register"]["user"]["displayName"], coder);
    let data = app
        .ok(Some(&user.token), update, json!({ "n": coder }))
        .await;
    assert_eq!(data["updateProfile"]["displayName"], coder);
}

#[tokio::test]
async fn room_names_refuse_control_and_format_characters() {
    let app = TestApp::spawn().await;
    let user = app.register("rita").await;
    let create = "mutation($n: String!) { createRoom(input: { name: $n }) { id name } }";
    let update =
        "mutation($id: ID!, $n: String) { updateRoom(input: { id: $id, name: $n }) { name } }";
    let coder = "👩\u{200D}💻 corner";
    let data = app
        .ok(Some(&user.token), create, json!({ "n": coder }))
        .await;
    assert_eq!(data["createRoom"]["name"], coder);
    let room = data["createRoom"]["id"].clone();
    for name in INVISIBLE {
        let res = app
            .gql(Some(&user.token), create, json!({ "n": name }))
            .await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{name:?}: {res}");
        let res = app
            .gql(Some(&user.token), update, json!({ "id": room, "n": name }))
            .await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{name:?}: {res}");
    }
    let data = app
        .ok(
            Some(&user.token),
            update,
            json!({ "id": room, "n": "Coders" }),
        )
        .await;
    assert_eq!(data["updateRoom"]["name"], "Coders");
}

async fn login_attempt(app: &TestApp, login: &str, password: &str) -> Value {
    app.gql(
        None,
        LOGIN,
        json!({ "i": { "login": login, "password": password } }),
    )
    .await
}

#[tokio::test]
async fn concurrent_wrong_logins_reach_bcrypt_at_most_the_limit() {
    let app = TestApp::spawn().await; // 10 failures per login per window
    app.register("rita").await;
    let answers = futures_util::future::join_all(
        (0..40).map(|_| login_attempt(&app, "rita", "wrong password")),
    )
    .await;
    let codes: Vec<&str> = answers.iter().map(error_code).collect();
    let unauthenticated = codes.iter().filter(|c| **c == "UNAUTHENTICATED").count();
    let limited = codes.iter().filter(|c| **c == "RATE_LIMITED").count();
    assert_eq!((unauthenticated, limited), (10, 30), "{codes:?}");
    for res in answers.iter().filter(|r| error_code(r) == "RATE_LIMITED") {
        let wait = res["errors"][0]["extensions"]["retryAfter"].as_u64();
        assert!(wait.is_some_and(|s| (1..=15 * 60).contains(&s)), "{res}");
    }
}

#[tokio::test]
async fn login_limit_ends_with_its_window() {
    let app = TestApp::spawn_with(|c| {
        c.limits.login_max_failures = 2;
        c.limits.login_window = std::time::Duration::from_secs(3);
    })
    .await;
    app.register("rita").await;
    for _ in 0..2 {
        let res = login_attempt(&app, "rita", "wrong password").await;
        assert_eq!(error_code(&res), "UNAUTHENTICATED", "{res}");
    }
    let res = login_attempt(&app, "rita", "correct horse").await;
    assert_eq!(error_code(&res), "RATE_LIMITED", "{res}");
    let wait = res["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfter in {res}"));
    assert!((1..=3).contains(&wait), "{res}");
    // Once the advertised wait has passed, the window is over.
    tokio::time::sleep(std::time::Duration::from_millis(wait * 1000 + 100)).await;
    let res = login_attempt(&app, "rita", "correct horse").await;
    assert!(res.get("errors").is_none(), "{res}");
}

#[tokio::test]
async fn a_successful_login_resets_the_count() {
    let app = TestApp::spawn_with(|c| c.limits.login_max_failures = 3).await;
    app.register("rita").await;
    for _ in 0..2 {
        let res = login_attempt(&app, "rita", "wrong password").await;
        assert_eq!(error_code(&res), "UNAUTHENTICATED", "{res}");
    }
    let res = login_attempt(&app, "rita", "correct horse").await;
    assert!(res.get("errors").is_none(), "{res}");
    for _ in 0..3 {
        let res = login_attempt(&app, "rita", "wrong password").await;
        assert_eq!(error_code(&res), "UNAUTHENTICATED", "{res}");
    }
    let res = login_attempt(&app, "rita", "wrong password").await;
    assert_eq!(error_code(&res), "RATE_LIMITED", "{res}");
}

#[tokio::test]
async fn spaces_and_case_do_not_give_a_login_fresh_attempts() {
    let app = TestApp::spawn_with(|c| c.limits.login_max_failures = 3).await;
    app.register("rita").await;
    for login in [" rita", "RITA ", "\trita"] {
        let res = login_attempt(&app, login, "wrong password").await;
        assert_eq!(error_code(&res), "UNAUTHENTICATED", "{login:?}: {res}");
    }
    let res = login_attempt(&app, "rita", "correct horse").await;
    assert_eq!(error_code(&res), "RATE_LIMITED", "{res}");
}

/// An access token signed with the app's own key, with the claims given.
fn mint(app: &TestApp, claims: Value) -> String {
    let secret = app.app.state.config.jwt_secret.clone().unwrap();
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
    )
    .unwrap()
}

#[tokio::test]
async fn access_tokens_need_our_issuer_and_audience_and_a_past_issue_time() {
    let app = TestApp::spawn().await;
    let user = app.register("rita").await;
    let (_, id) = confab::graphql::id::decode_any(&user.id).unwrap();
    let now = chrono::Utc::now().timestamp();
    let claims = |patch: Value| {
        let mut claims = json!({
            "sub": id, "sid": uuid::Uuid::now_v7(), "iat": now, "exp": now + 600, "typ": "access",
            "iss": "confab", "aud": "confab-api",
        });
        for (k, v) in patch.as_object().unwrap() {
            if v.is_null() {
                claims.as_object_mut().unwrap().remove(k);
            } else {
                claims[k] = v.clone();
            }
        }
        claims
    };
    let me = "{ me { username } }";
    // The minting is right: these pass (30 s of clock skew are tolerated).
    for ok in [json!({}), json!({ "iat": now + 10, "nbf": now + 10 })] {
        let data = app.ok(Some(&mint(&app, claims(ok))), me, json!({})).await;
        assert_eq!(data["me"]["username"], "rita");
    }
    for bad in [
        json!({ "iat": now + 3600 }),
        json!({ "nbf": now + 3600 }),
        json!({ "iss": "someone-else" }),
        json!({ "aud": "another-api" }),
        json!({ "iss": null }),
        json!({ "aud": null }),
    ] {
        let token = mint(&app, claims(bad.clone()));
        let (status, res) = app.gql_raw(Some(&token), me, json!({})).await;
        assert_eq!(status, 401, "{bad}: {res}");
        assert_eq!(error_code(&res), "UNAUTHENTICATED", "{bad}: {res}");
    }
}

#[tokio::test]
async fn a_short_jwt_secret_is_refused_at_start() {
    let db = crate::support::TestDb::new().await;
    let dir = tempfile::tempdir().unwrap();
    let mut config = crate::support::test_config(&db.url, dir.path());
    config.jwt_secret = Some("0123456789".into());
    let err = confab::App::build(config)
        .await
        .err()
        .expect("a 10-byte secret");
    assert!(err.to_string().contains("at least 32 bytes"), "{err}");
    // 32 bytes is enough.
    let mut config = crate::support::test_config(&db.url, dir.path());
    config.jwt_secret = Some("x".repeat(32));
    assert!(confab::App::build(config).await.is_ok());
}

#[tokio::test]
async fn introspection_and_graphiql_can_be_switched_off() {
    let app = TestApp::spawn_with(|c| c.introspection = false).await;
    let v = app
        .gql(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    assert!(v.get("data").is_none_or(Value::is_null), "{v}");
    assert_eq!(error_code(&v), "GRAPHQL_VALIDATION_FAILED");
    let v = app
        .gql(None, "{ __type(name: \"User\") { name } }", json!({}))
        .await;
    assert_eq!(error_code(&v), "GRAPHQL_VALIDATION_FAILED");
    // Ordinary queries still run.
    let data = app.ok(None, "{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "Query");
    let page = axum::http::Request::get("/")
        .body(axum::body::Body::empty())
        .unwrap();
    let (status, _, _) = app.request(page).await;
    assert_eq!(status, axum::http::StatusCode::NOT_FOUND);

    // On by default.
    let app = TestApp::spawn().await;
    app.ok(None, "{ __schema { queryType { name } } }", json!({}))
        .await;
    let page = axum::http::Request::get("/")
        .body(axum::body::Body::empty())
        .unwrap();
    assert_eq!(app.request(page).await.0, axum::http::StatusCode::OK);
}

#[tokio::test]
async fn an_oversized_websocket_message_closes_1009() {
    use futures_util::SinkExt;
    let app = TestApp::spawn().await;
    for size in [70 * 1024, 200 * 1024] {
        let mut socket = crate::ws::init(&app, "graphql-transport-ws", json!({})).await;
        let query = format!("{{ __typename }} #{}", "x".repeat(size));
        let message = json!({ "id": "big", "type": "subscribe", "payload": { "query": query } });
        // The server may close while the frame is still being written.
        let _ = socket
            .send(tokio_tungstenite::tungstenite::Message::text(
                message.to_string(),
            ))
            .await;
        let (code, reason) = crate::ws::close_code(&mut socket).await;
        assert_eq!(code, 1009, "{size} bytes: {reason}");
    }
}

/// A clientMessageId is the sender's key within one room or one thread: the
/// same id in another room, or to another user, is another message.
#[tokio::test]
async fn client_message_ids_are_per_room_and_per_thread() {
    use crate::chat::{SEND, SEND_DM, create_room};
    let app = TestApp::spawn().await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let carol = app.register("carol").await;
    let r1 = create_room(&app, &alice, "one").await;
    let r2 = create_room(&app, &alice, "two").await;
    let send = |room: &str, content: &str| json!({ "i": { "roomId": room, "content": content, "clientMessageId": "same" } });
    let first = app.ok(Some(&alice.token), SEND, send(&r1, "in one")).await;
    let other = app.ok(Some(&alice.token), SEND, send(&r2, "in two")).await;
    assert_ne!(first["sendMessage"]["id"], other["sendMessage"]["id"]);
    assert_eq!(other["sendMessage"]["content"], "in two");
    assert_eq!(other["sendMessage"]["room"]["id"], r2.as_str());
    // A retry in the first room is still the first message.
    let retry = app.ok(Some(&alice.token), SEND, send(&r1, "again")).await;
    assert_eq!(retry["sendMessage"]["id"], first["sendMessage"]["id"]);

    let dm = |to: &str, content: &str| json!({ "i": { "toUserId": to, "content": content, "clientMessageId": "same" } });
    let to_bob = app
        .ok(Some(&alice.token), SEND_DM, dm(&bob.id, "hi bob"))
        .await;
    let to_carol = app
        .ok(Some(&alice.token), SEND_DM, dm(&carol.id, "hi carol"))
        .await;
    assert_ne!(
        to_bob["sendDirectMessage"]["id"],
        to_carol["sendDirectMessage"]["id"]
    );
    assert_eq!(
        to_carol["sendDirectMessage"]["receiver"]["username"],
        "carol"
    );
}

/// Without JWT_SECRET, each deployment makes its own key (never one built
/// in): a token of one is refused by another. Instances on one PostgreSQL
/// database share the key kept there, so a token works on each of them.
#[tokio::test]
async fn generated_signing_keys_differ_per_deployment_and_are_shared_on_postgres() {
    const ME: &str = "{ me { username } }";
    let one = TestApp::spawn_with(|c| c.jwt_secret = None).await;
    let elsewhere = TestApp::spawn_with(|c| c.jwt_secret = None).await;
    let alice = one.register("alice").await;
    assert_eq!(
        one.ok(Some(&alice.token), ME, json!({})).await["me"]["username"],
        "alice"
    );
    let (status, v) = elsewhere.gql_raw(Some(&alice.token), ME, json!({})).await;
    assert_eq!(status, axum::http::StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&v), "UNAUTHENTICATED");
    if crate::support::is_postgres() {
        // A second instance on the same database, no JWT_SECRET either.
        let two = one.peer().await;
        assert!(two.app.state.config.jwt_secret.is_none());
        assert_eq!(
            two.ok(Some(&alice.token), ME, json!({})).await["me"]["username"],
            "alice"
        );
    }
}

/// Slowloris: a client that sends its request headers a byte at a time, or
/// holds a keep-alive connection idle, is cut off after the header-read
/// timeout (10 s by default; 1 s here), and others are served meanwhile.
#[tokio::test]
async fn a_client_dribbling_its_headers_is_cut_off() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = TestApp::spawn_with(|c| c.limits.header_read_timeout = Duration::from_secs(1)).await;
    let mut slow = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let started = tokio::time::Instant::now();
    let mut closed = false;
    // Bounded: at most 20 bytes, one every 250 ms.
    for byte in b"X-Dribble: aaaaaaaaa".iter() {
        if slow.write_all(&[*byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut buf = [0u8; 256];
        let read = tokio::time::timeout(Duration::from_millis(250), slow.read(&mut buf)).await;
        if let Ok(Ok(0) | Err(_)) = read {
            closed = true;
            break;
        }
    }
    assert!(
        closed,
        "still open {:?} after the first byte",
        started.elapsed()
    );

    // An idle keep-alive connection is closed too.
    let mut idle = tokio::net::TcpStream::connect(app.addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut buf = vec![0u8; 1024];
    let n = idle.read(&mut buf).await.unwrap();
    assert!(String::from_utf8_lossy(&buf[..n]).starts_with("HTTP/1.1 200"));
    let end = tokio::time::timeout(Duration::from_secs(5), idle.read(&mut buf)).await;
    assert!(
        matches!(end, Ok(Ok(0) | Err(_))),
        "idle keep-alive connection not closed"
    );

    // Others are served all along.
    let data = app.ok(None, "{ __typename }", json!({})).await;
    assert_eq!(data["__typename"], "Query");
}

/// Graceful shutdown: a request in flight when the stop signal comes is
/// answered, and live sockets are closed with 1001 (going away).
#[tokio::test]
async fn shutdown_finishes_requests_in_flight_and_closes_sockets_1001() {
    // A costly hash keeps the registration in flight while the stop comes.
    let mut app = TestApp::spawn_with(|c| c.bcrypt_cost = 11).await;
    let mut socket = crate::ws::init(&app, "graphql-transport-ws", json!({})).await;
    let addr = app.addr;
    let in_flight = tokio::spawn(async move {
        let body = json!({ "query": "mutation { register(input: { username: \"late\", email: \"late@example.com\", password: \"correct horse\" }) { user { username } } }" }).to_string();
        let request = format!(
            "POST /graphql HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            body.len()
        );
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
        tcp.write_all(request.as_bytes()).await.unwrap();
        let mut answer = String::new();
        tcp.read_to_string(&mut answer).await.unwrap();
        answer
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    app.stop();
    let (code, _) = crate::ws::close_code(&mut socket).await;
    assert_eq!(code, 1001);
    let answer = crate::support::within(30, in_flight).await.unwrap();
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("\"username\":\"late\""), "{answer}");
}

/// The code and `retryAfter` of a refused request's first error.
fn rate_limited(v: &Value) -> u64 {
    assert_eq!(error_code(v), "RATE_LIMITED", "{v}");
    v["errors"][0]["extensions"]["retryAfter"]
        .as_u64()
        .unwrap_or_else(|| panic!("no retryAfter in {v}"))
}

#[tokio::test]
async fn sign_ins_and_registrations_are_limited_per_address() {
    let app = TestApp::spawn_with(|c| {
        c.limits.sign_ins_per_ip_per_minute = 3;
        c.limits.registrations_per_ip_per_hour = 2;
    })
    .await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    let third = app
        .gql(
            None,
            "mutation { register(input: { username: \"carol\", email: \"c@example.com\", password: \"correct horse\" }) { user { id } } }",
            json!({}),
        )
        .await;
    assert!(rate_limited(&third) >= 1);
    const LOGIN: &str = "mutation($l: String!, $p: String!) { login(input: { login: $l, password: $p }) { accessToken } }";
    // Spread over several accounts: the address's budget is what runs out.
    for login in ["alice", "bob", "nobody"] {
        let v = app
            .gql(None, LOGIN, json!({ "l": login, "p": "wrong password" }))
            .await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED");
    }
    let v = app
        .gql(
            None,
            LOGIN,
            json!({ "l": alice.username, "p": "correct horse" }),
        )
        .await;
    assert!(rate_limited(&v) >= 1);
}

#[tokio::test]
async fn sends_are_limited_per_user() {
    use crate::chat::{SEND, create_room, join};
    let app = TestApp::spawn_with(|c| {
        c.limits.sends_per_user_per_second = 1;
        c.limits.send_burst = 3;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "busy").await;
    join(&app, &bob, &r).await;
    let send = |n: usize| json!({ "i": { "roomId": r, "content": format!("m{n}") } });
    for n in 0..3 {
        app.ok(Some(&alice.token), SEND, send(n)).await;
    }
    let refused = app.gql(Some(&alice.token), SEND, send(3)).await;
    assert!(rate_limited(&refused) >= 1);
    // Another user is not held back by alice's burst.
    app.ok(Some(&bob.token), SEND, send(4)).await;
}

#[tokio::test]
async fn reactions_edits_and_typing_share_the_send_budget() {
    use crate::chat::{SEND, create_room, join};
    let app = TestApp::spawn_with(|c| {
        c.limits.sends_per_user_per_second = 1;
        c.limits.send_burst = 3;
    })
    .await;
    let alice = app.register("alice").await;
    let bob = app.register("bob").await;
    let r = create_room(&app, &alice, "busy").await;
    join(&app, &bob, &r).await;
    let sent = app
        .ok(
            Some(&bob.token),
            SEND,
            json!({ "i": { "roomId": r, "content": "hi" } }),
        )
        .await;
    let m = sent["sendMessage"]["id"].as_str().unwrap().to_owned();
    const REACT: &str =
        "mutation($m: ID!, $e: String!) { addReaction(messageId: $m, emoji: $e) { messageId } }";
    const TYPE: &str = "mutation($r: ID!) { setTyping(roomId: $r, typing: true) }";
    const EDIT: &str =
        "mutation($m: ID!) { editMessage(input: { id: $m, content: \"x\" }) { id } }";
    for e in ["a", "b", "c"] {
        app.ok(Some(&alice.token), REACT, json!({ "m": m, "e": e }))
            .await;
    }
    for (doc, vars) in [
        (REACT, json!({ "m": m, "e": "d" })),
        (TYPE, json!({ "r": r })),
    ] {
        let refused = app.gql(Some(&alice.token), doc, vars).await;
        assert!(rate_limited(&refused) >= 1, "{refused}");
    }
    // Bob spent one of his three on the send: two edits pass, the third is refused.
    for _ in 0..2 {
        app.ok(Some(&bob.token), EDIT, json!({ "m": m })).await;
    }
    let refused = app.gql(Some(&bob.token), EDIT, json!({ "m": m })).await;
    assert!(rate_limited(&refused) >= 1, "{refused}");
    // Nothing refused was stored: three reactions, one edit's worth of content.
    let reactions = app
        .ok(
            Some(&alice.token),
            "query($m: ID!) { node(id: $m) { ... on Message { content reactions { emoji } } } }",
            json!({ "m": m }),
        )
        .await;
    assert_eq!(reactions["node"]["reactions"].as_array().unwrap().len(), 3);
}

#[tokio::test]
async fn sockets_are_capped_per_address_and_per_user() {
    let app = TestApp::spawn_with(|c| {
        c.limits.sockets_per_ip = 2;
        c.limits.sockets_per_user = 1;
    })
    .await;
    let alice = app.register("alice").await;
    let auth = json!({ "authorization": format!("Bearer {}", alice.token) });
    let mut first = crate::ws::init(&app, "graphql-transport-ws", auth.clone()).await;
    // The same user again: the socket is closed with 1008 (policy).
    let mut second = crate::ws::connect(&app, "graphql-transport-ws", None).await;
    crate::ws::send(
        &mut second,
        json!({ "type": "connection_init", "payload": auth }),
    )
    .await;
    assert_eq!(crate::ws::close_code(&mut second).await.0, 1008);
    // The address holds two sockets; a third upgrade is refused with 429.
    let _anonymous = crate::ws::init(&app, "graphql-transport-ws", json!({})).await;
    let mut request =
        tokio_tungstenite::tungstenite::client::IntoClientRequest::into_client_request(
            app.ws_url(),
        )
        .unwrap();
    request.headers_mut().insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert!(response.headers().contains_key("retry-after"));
        }
        other => panic!("expected 429, got {other:?}"),
    }
    // The first socket still works.
    crate::ws::send(&mut first, json!({ "type": "ping" })).await;
    assert_eq!(crate::ws::next_json(&mut first).await["type"], "pong");
}

#[tokio::test]
async fn rate_limits_off_switches_every_limit_off() {
    let app = TestApp::spawn_with(|c| {
        c.rate_limits = false;
        c.limits.registrations_per_ip_per_hour = 1;
        c.limits.sockets_per_user = 1;
        c.limits.login_max_failures = 1;
    })
    .await;
    let alice = app.register("alice").await;
    app.register("bob").await;
    const LOGIN: &str = "mutation($p: String!) { login(input: { login: \"alice\", password: $p }) { accessToken } }";
    for _ in 0..3 {
        let v = app.gql(None, LOGIN, json!({ "p": "wrong password" })).await;
        assert_eq!(error_code(&v), "UNAUTHENTICATED");
    }
    let auth = json!({ "authorization": format!("Bearer {}", alice.token) });
    let _one = crate::ws::init(&app, "graphql-transport-ws", auth.clone()).await;
    let mut two = crate::ws::init(&app, "graphql-transport-ws", auth).await;
    crate::ws::send(&mut two, json!({ "type": "ping" })).await;
    assert_eq!(crate::ws::next_json(&mut two).await["type"], "pong");
}

/// An integer argument beyond GraphQL's 32-bit Int, as a literal or through a
/// variable, is bad input (not a validation error), and so is a negative count.
#[tokio::test]
async fn page_sizes_beyond_int_are_bad_user_input() {
    let app = TestApp::spawn().await;
    let v = app
        .gql(
            None,
            "{ rooms(first: 2147483648) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    let v = app
        .gql(
            None,
            "query($n: Int) { rooms(first: $n) { edges { cursor } } }",
            json!({ "n": 99999999999_i64 }),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    let v = app
        .gql(
            None,
            "{ rooms(first: -2147483649) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    // The largest Int is a page size that is merely too big.
    let v = app
        .gql(
            None,
            "{ rooms(first: 2147483647) { edges { cursor } } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&v), "BAD_USER_INPUT", "{v}");
    app.ok(None, "{ rooms(first: 5) { edges { cursor } } }", json!({}))
        .await;
}

/// Opens a socket whose upgrade carries `X-Forwarded-For: forwarded`; the HTTP status if refused.
async fn upgrade_from(app: &TestApp, forwarded: &str) -> Result<crate::ws::Socket, u16> {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = app.ws_url().into_client_request().unwrap();
    let headers = request.headers_mut();
    headers.insert(
        "Sec-WebSocket-Protocol",
        "graphql-transport-ws".parse().unwrap(),
    );
    headers.insert("X-Forwarded-For", forwarded.parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Ok((socket, _)) => Ok(socket),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            Err(response.status().as_u16())
        }
        Err(other) => panic!("{other}"),
    }
}

/// Behind a trusted proxy the client is the address the proxy names; from
/// anyone else `X-Forwarded-For` is ignored (it would let a client pick its
/// own bucket).
#[tokio::test]
async fn x_forwarded_for_counts_only_from_trusted_proxies() {
    let trusting = TestApp::spawn_with(|c| {
        c.trusted_proxies = vec!["127.0.0.1/32".parse().unwrap()];
        c.limits.sockets_per_ip = 1;
    })
    .await;
    let _a = upgrade_from(&trusting, "203.0.113.7").await.unwrap();
    let _b = upgrade_from(&trusting, "203.0.113.8").await.unwrap();
    assert_eq!(
        upgrade_from(&trusting, "203.0.113.7").await.err(),
        Some(429)
    );
    // A forged entry before the proxy's own is the client's word: ignored.
    assert_eq!(
        upgrade_from(&trusting, "198.51.100.1, 203.0.113.8")
            .await
            .err(),
        Some(429)
    );

    let plain = TestApp::spawn_with(|c| c.limits.sockets_per_ip = 1).await;
    let _c = upgrade_from(&plain, "203.0.113.7").await.unwrap();
    assert_eq!(upgrade_from(&plain, "203.0.113.9").await.err(), Some(429));
}

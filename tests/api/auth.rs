//! SEMANTICS "Auth" and profiles, through HTTP.

use serde_json::json;

use crate::support::{TestApp, error_code};

const REGISTER: &str = "mutation($i: RegisterInput!) { register(input: $i) { accessToken accessTokenExpiresAt refreshToken refreshTokenExpiresAt user { id username email displayName } } }";
const LOGIN: &str = "mutation($i: LoginInput!) { login(input: $i) { accessToken refreshToken user { id username email } } }";
const REFRESH: &str = "mutation($t: String!) { refreshSession(refreshToken: $t) { accessToken refreshToken user { username } } }";
const ME: &str = "{ me { id username email } }";

fn reg(username: &str, email: &str, password: &str) -> serde_json::Value {
    json!({ "i": { "username": username, "email": email, "password": password } })
}

#[tokio::test]
async fn register_returns_a_working_session() {
    let app = TestApp::spawn().await;
    let data = app
        .ok(
            None,
            REGISTER,
            reg("Alice_1", "alice@example.com", "password12"),
        )
        .await;
    let payload = &data["register"];
    assert_eq!(payload["user"]["username"], "Alice_1");
    assert_eq!(
        payload["user"]["email"], "alice@example.com",
        "own email in own sign-in payload"
    );
    let expires = payload["accessTokenExpiresAt"].as_str().unwrap();
    assert!(
        expires.ends_with('Z') && expires.len() == "2026-11-23T10:00:00.123456Z".len(),
        "{expires}"
    );
    assert!(
        payload["refreshToken"].as_str().unwrap().len() >= 43,
        "256-bit refresh token"
    );
    let token = payload["accessToken"].as_str().unwrap();
    let me = app.ok(Some(token), ME, json!({})).await;
    assert_eq!(me["me"]["username"], "Alice_1");
    assert_eq!(me["me"]["email"], "alice@example.com");
    assert_eq!(me["me"]["id"], payload["user"]["id"]);
}

#[tokio::test]
async fn register_validates_every_field() {
    let app = TestApp::spawn().await;
    let cases = [
        reg("ab", "a@example.com", "password12"),
        reg(&"a".repeat(33), "a@example.com", "password12"),
        reg("bad name", "a@example.com", "password12"),
        reg("bad-name", "a@example.com", "password12"),
        reg("goodname", "not-an-email", "password12"),
        reg("goodname", "a@b", "password12"),
        reg("goodname", "a@example.com", "short"),
        reg("goodname", "a@example.com", &"x".repeat(73)),
        // 72 bytes counted in bytes, not characters: 25 three-byte characters = 75 bytes.
        reg("goodname", "a@example.com", &"€".repeat(25)),
    ];
    for vars in cases {
        let res = app.gql(None, REGISTER, vars.clone()).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{vars}: {res}");
    }
    // Exactly 72 bytes is fine.
    app.ok(
        None,
        REGISTER,
        reg("goodname", "a@example.com", &"x".repeat(72)),
    )
    .await;
    let me = app
        .gql(
            None,
            "{ user(username: \"goodname\") { username } }",
            json!({}),
        )
        .await;
    assert_eq!(me["data"]["user"]["username"], "goodname");
}

#[tokio::test]
async fn usernames_and_emails_are_unique_in_any_case() {
    let app = TestApp::spawn().await;
    app.ok(None, REGISTER, reg("Bob", "Bob@Example.com", "password12"))
        .await;
    let res = app
        .gql(
            None,
            REGISTER,
            reg("bOB", "other@example.com", "password12"),
        )
        .await;
    assert_eq!(error_code(&res), "CONFLICT");
    let res = app
        .gql(
            None,
            REGISTER,
            reg("robert", "bob@EXAMPLE.com", "password12"),
        )
        .await;
    assert_eq!(error_code(&res), "CONFLICT");
    assert!(res["data"].is_null());
}

#[tokio::test]
async fn login_by_username_or_email_in_any_case() {
    let app = TestApp::spawn().await;
    app.ok(
        None,
        REGISTER,
        reg("Carol", "Carol@Example.com", "password12"),
    )
    .await;
    for login in [
        "Carol",
        "carol",
        "CAROL",
        "carol@example.com",
        "CAROL@EXAMPLE.COM",
    ] {
        let data = app
            .ok(
                None,
                LOGIN,
                json!({ "i": { "login": login, "password": "password12" } }),
            )
            .await;
        assert_eq!(data["login"]["user"]["username"], "Carol", "{login}");
    }
}

#[tokio::test]
async fn wrong_password_and_unknown_user_fail_alike() {
    let app = TestApp::spawn().await;
    app.register("dave").await;
    let wrong = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "login": "dave", "password": "wrong password" } }),
        )
        .await;
    let unknown = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "login": "nobody", "password": "wrong password" } }),
        )
        .await;
    let too_long = app
        .gql(
            None,
            LOGIN,
            json!({ "i": { "login": "dave", "password": "x".repeat(100) } }),
        )
        .await;
    assert_eq!(error_code(&wrong), "UNAUTHENTICATED");
    assert_eq!(
        wrong["errors"][0]["message"],
        unknown["errors"][0]["message"]
    );
    assert_eq!(wrong["errors"], unknown["errors"]);
    assert_eq!(error_code(&too_long), "UNAUTHENTICATED");
}

#[tokio::test]
async fn bad_tokens_are_unauthenticated_never_anonymous() {
    let app = TestApp::spawn().await;
    let user = app.register("erin").await;
    // A valid token works; a tampered one does not, not even for public fields.
    app.ok(Some(&user.token), ME, json!({})).await;
    let mut tampered = user.token.clone();
    tampered.pop();
    tampered.push(if user.token.ends_with('A') { 'B' } else { 'A' });
    for token in [tampered.as_str(), "garbage", ""] {
        let (status, res) = app
            .gql_raw(
                Some(token),
                "{ user(username: \"erin\") { username } }",
                json!({}),
            )
            .await;
        assert_eq!(status, 401, "{token}: {res}");
        assert_eq!(error_code(&res), "UNAUTHENTICATED");
    }
    // Anonymous: me is null; fields needing a viewer say UNAUTHENTICATED.
    let me = app.ok(None, ME, json!({})).await;
    assert!(me["me"].is_null());
    let res = app
        .gql(
            None,
            "mutation { updateProfile(input: { displayName: \"x\" }) { id } }",
            json!({}),
        )
        .await;
    assert_eq!(error_code(&res), "UNAUTHENTICATED");
}

#[tokio::test]
async fn expired_access_token_is_unauthenticated() {
    let app = TestApp::spawn_with(|c| c.access_token_ttl = std::time::Duration::from_secs(1)).await;
    let user = app.register("frank").await;
    // The token's exp is whole seconds after issue; wait until it has passed.
    tokio::time::sleep(std::time::Duration::from_millis(2100)).await;
    let (status, res) = app.gql_raw(Some(&user.token), ME, json!({})).await;
    assert_eq!(status, 401);
    assert_eq!(error_code(&res), "UNAUTHENTICATED");
}

#[tokio::test]
async fn refresh_rotates_and_reuse_revokes_the_family() {
    let app = TestApp::spawn().await;
    let user = app.register("grace").await;
    let first = app.ok(None, REFRESH, json!({ "t": user.refresh })).await;
    let second_refresh = first["refreshSession"]["refreshToken"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_ne!(second_refresh, user.refresh);
    assert_eq!(first["refreshSession"]["user"]["username"], "grace");
    let token = first["refreshSession"]["accessToken"].as_str().unwrap();
    app.ok(Some(token), ME, json!({})).await;

    // The spent token again: refused, and the whole family with it.
    let reuse = app.gql(None, REFRESH, json!({ "t": user.refresh })).await;
    assert_eq!(error_code(&reuse), "UNAUTHENTICATED");
    let descendant = app.gql(None, REFRESH, json!({ "t": second_refresh })).await;
    assert_eq!(
        error_code(&descendant),
        "UNAUTHENTICATED",
        "descendant revoked by reuse"
    );

    // Another login's family is untouched.
    let login = app
        .ok(
            None,
            LOGIN,
            json!({ "i": { "login": "grace", "password": "correct horse" } }),
        )
        .await;
    let other = login["login"]["refreshToken"].as_str().unwrap();
    app.ok(None, REFRESH, json!({ "t": other })).await;
}

#[tokio::test]
async fn concurrent_refreshes_with_one_token_exactly_one_wins() {
    let app = TestApp::spawn().await;
    let user = app.register("heidi").await;
    let attempts = (0..6).map(|_| app.gql(None, REFRESH, json!({ "t": user.refresh })));
    let results = futures_util::future::join_all(attempts).await;
    let wins = results.iter().filter(|r| r.get("errors").is_none()).count();
    assert_eq!(wins, 1, "{results:?}");
    for r in results.iter().filter(|r| r.get("errors").is_some()) {
        assert_eq!(error_code(r), "UNAUTHENTICATED");
    }
}

#[tokio::test]
async fn unknown_and_logged_out_refresh_tokens_are_refused() {
    let app = TestApp::spawn().await;
    let user = app.register("ivan").await;
    let res = app.gql(None, REFRESH, json!({ "t": "not-a-token" })).await;
    assert_eq!(error_code(&res), "UNAUTHENTICATED");
    let out = app
        .ok(
            None,
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": user.refresh }),
        )
        .await;
    assert_eq!(out["logout"], true);
    let res = app.gql(None, REFRESH, json!({ "t": user.refresh })).await;
    assert_eq!(error_code(&res), "UNAUTHENTICATED");
    let again = app
        .gql(
            None,
            "mutation($t: String!) { logout(refreshToken: $t) }",
            json!({ "t": user.refresh }),
        )
        .await;
    assert_eq!(error_code(&again), "UNAUTHENTICATED");
}

#[tokio::test]
async fn expired_refresh_token_is_refused() {
    let app =
        TestApp::spawn_with(|c| c.refresh_token_ttl = std::time::Duration::from_millis(300)).await;
    let user = app.register("judy").await;
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    let res = app.gql(None, REFRESH, json!({ "t": user.refresh })).await;
    assert_eq!(error_code(&res), "UNAUTHENTICATED");
}

const UPDATE: &str = "mutation($i: UpdateProfileInput!) { updateProfile(input: $i) { displayName avatarUrl isPrivate identityKey email updatedAt } }";

#[tokio::test]
async fn update_profile_leaves_omitted_fields_and_clears_nulls() {
    let app = TestApp::spawn().await;
    let user = app.register("kim").await;
    let t = Some(user.token.as_str());
    let data = app
        .ok(t, UPDATE, json!({ "i": { "displayName": "Kim", "avatarUrl": "https://img.example/k.png", "identityKey": "AAECAw==" } }))
        .await;
    assert_eq!(data["updateProfile"]["displayName"], "Kim");
    assert_eq!(data["updateProfile"]["identityKey"], "AAECAw==");
    assert_eq!(data["updateProfile"]["email"], "kim@example.com");
    // Omitted: unchanged. Explicit null: cleared.
    let data = app
        .ok(t, UPDATE, json!({ "i": { "avatarUrl": null } }))
        .await;
    assert_eq!(data["updateProfile"]["displayName"], "Kim");
    assert!(data["updateProfile"]["avatarUrl"].is_null());
    assert_eq!(data["updateProfile"]["identityKey"], "AAECAw==");
    let data = app
        .ok(
            t,
            UPDATE,
            json!({ "i": { "isPrivate": true, "identityKey": null } }),
        )
        .await;
    assert_eq!(data["updateProfile"]["isPrivate"], true);
    assert!(data["updateProfile"]["identityKey"].is_null());
    assert_eq!(data["updateProfile"]["displayName"], "Kim");
}

#[tokio::test]
async fn update_profile_rejects_bad_values_and_keeps_the_row() {
    let app = TestApp::spawn().await;
    let user = app.register("lee").await;
    let t = Some(user.token.as_str());
    app.ok(t, UPDATE, json!({ "i": { "displayName": "Lee" } }))
        .await;
    let too_big = base64_of(1025);
    let cases = [
        json!({ "i": { "identityKey": "not base64!" } }),
        json!({ "i": { "identityKey": too_big } }),
        json!({ "i": { "isPrivate": null } }),
        json!({ "i": { "avatarUrl": "javascript:alert(1)" } }),
        json!({ "i": { "displayName": "x".repeat(101) } }),
    ];
    for vars in cases {
        let res = app.gql(t, UPDATE, vars.clone()).await;
        assert_eq!(error_code(&res), "BAD_USER_INPUT", "{vars}");
    }
    app.ok(
        t,
        UPDATE,
        json!({ "i": { "identityKey": base64_of(1024) } }),
    )
    .await;
    let me = app
        .ok(t, "{ me { displayName isPrivate } }", json!({}))
        .await;
    assert_eq!(me["me"]["displayName"], "Lee");
    assert_eq!(me["me"]["isPrivate"], false);
}

fn base64_of(n: usize) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(vec![7u8; n])
}

#[tokio::test]
async fn email_is_visible_only_to_its_owner() {
    let app = TestApp::spawn().await;
    let mia = app.register("mia").await;
    let ned = app.register("ned").await;
    let q = "{ user(username: \"mia\") { username email isOfficial isPrivate } }";
    let own = app.ok(Some(&mia.token), q, json!({})).await;
    assert_eq!(own["user"]["email"], "mia@example.com");
    let other = app.ok(Some(&ned.token), q, json!({})).await;
    assert!(other["user"]["email"].is_null());
    let anon = app.ok(None, q, json!({})).await;
    assert!(anon["user"]["email"].is_null());
    assert_eq!(anon["user"]["isOfficial"], false);
    let missing = app
        .ok(None, "{ user(username: \"nobody\") { id } }", json!({}))
        .await;
    assert!(missing["user"].is_null());
}

#[tokio::test]
async fn node_resolves_users_and_rejects_bad_ids() {
    let app = TestApp::spawn().await;
    let user = app.register("olga").await;
    let q = "query($id: ID!) { node(id: $id) { __typename id ... on User { username } } }";
    let data = app.ok(None, q, json!({ "id": user.id })).await;
    assert_eq!(data["node"]["__typename"], "User");
    assert_eq!(data["node"]["username"], "olga");
    let res = app.gql(None, q, json!({ "id": "garbage!" })).await;
    assert_eq!(error_code(&res), "BAD_USER_INPUT");
    // A well-formed id of nothing: null.
    use base64::Engine;
    let nothing = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .encode(format!("User:{}", uuid::Uuid::now_v7().simple()));
    let data = app.ok(None, q, json!({ "id": nothing })).await;
    assert!(data["node"].is_null());
}

#[tokio::test]
async fn admin_verify_sets_the_badge() {
    let app = TestApp::spawn().await;
    app.register("pat").await;
    let user = confab::service::users::set_official(&app.app.state.db, "PAT", true)
        .await
        .unwrap();
    assert!(user.is_official);
    let data = app
        .ok(
            None,
            "{ user(username: \"pat\") { isOfficial } }",
            json!({}),
        )
        .await;
    assert_eq!(data["user"]["isOfficial"], true);
    confab::service::users::set_official(&app.app.state.db, "pat", false)
        .await
        .unwrap();
    let data = app
        .ok(
            None,
            "{ user(username: \"pat\") { isOfficial } }",
            json!({}),
        )
        .await;
    assert_eq!(data["user"]["isOfficial"], false);
    // isOfficial is not in UpdateProfileInput: a client cannot set it.
    let res = app
        .gql(
            None,
            "mutation { updateProfile(input: { isOfficial: true }) { id } }",
            json!({}),
        )
        .await;
    assert!(res["errors"].is_array());
}

#[tokio::test]
async fn two_instances_on_one_database_share_accounts_and_signing_keys() {
    let one = TestApp::spawn().await;
    let two = one.peer().await;
    assert_eq!(one.db.url, two.db.url);
    let user = one.register("quinn").await;
    let me = two.ok(Some(&user.token), ME, json!({})).await;
    assert_eq!(me["me"]["username"], user.username);
    let refreshed = two.ok(None, REFRESH, json!({ "t": user.refresh })).await;
    assert_eq!(refreshed["refreshSession"]["user"]["username"], "quinn");
    // On PostgreSQL each instance also runs its own LISTEN broker.
    assert_eq!(
        crate::support::is_postgres(),
        one.db.url.starts_with("postgres")
    );
}

#[tokio::test]
async fn repeated_failed_logins_are_rate_limited_per_login() {
    let app = TestApp::spawn_with(|c| c.limits.login_max_failures = 3).await;
    app.register("rita").await;
    let attempt = |login: &'static str, password: &'static str| {
        app.gql(
            None,
            LOGIN,
            json!({ "i": { "login": login, "password": password } }),
        )
    };
    for _ in 0..3 {
        assert_eq!(
            error_code(&attempt("rita", "wrong password").await),
            "UNAUTHENTICATED"
        );
        assert_eq!(
            error_code(&attempt("ghost", "wrong password").await),
            "UNAUTHENTICATED"
        );
    }
    // Limited now, even with the right password, and alike for the unknown name.
    assert_eq!(
        error_code(&attempt("RITA", "correct horse").await),
        "RATE_LIMITED"
    );
    assert_eq!(
        error_code(&attempt("ghost", "wrong password").await),
        "RATE_LIMITED"
    );
    // Other logins are not affected.
    app.register("sam").await;
    let ok = attempt("sam", "correct horse").await;
    assert!(ok.get("errors").is_none(), "{ok}");
}

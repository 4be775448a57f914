//! Small pure pieces, tested directly.

use confab::service::page::{DEFAULT_PAGE_SIZE, Page};

#[test]
fn page_counts_are_checked() {
    assert!(Page::<i64>::new(Some(1), Some(1), None, None).is_err());
    assert!(Page::<i64>::new(Some(-1), None, None, None).is_err());
    assert!(Page::<i64>::new(None, Some(101), None, None).is_err());
    let page = Page::<i64>::new(None, None, None, None).unwrap();
    assert_eq!(page.limit, DEFAULT_PAGE_SIZE);
    assert!(!page.backward);
}

#[test]
fn page_flags_in_both_directions() {
    let page = Page::<i64> {
        limit: 2,
        after: None,
        before: None,
        backward: false,
    };
    let s = page.finish(vec![1, 2, 3]);
    assert_eq!(
        (s.items, s.has_next_page, s.has_previous_page),
        (vec![1, 2], true, false)
    );
    let page = Page::<i64> {
        limit: 2,
        after: None,
        before: None,
        backward: true,
    };
    let s = page.finish(vec![3, 2, 1]);
    assert_eq!(
        (s.items, s.has_next_page, s.has_previous_page),
        (vec![2, 3], false, true)
    );
}

#[test]
fn cursors_refuse_other_lists_and_garbage() {
    use confab::graphql::id::{ListKind, decode_cursor, encode_cursor};
    let now = chrono::Utc::now();
    let id = uuid::Uuid::now_v7();
    let c = encode_cursor(ListKind::Messages, &now, id);
    let back = decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Messages, &c).unwrap();
    assert_eq!(back.id, id);
    assert_eq!(back.key.timestamp_micros(), now.timestamp_micros());
    assert!(decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Rooms, &c).is_err());
    assert!(decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Messages, "garbage").is_err());
    let d = encode_cursor(ListKind::Nearby, &1234.5_f64, id);
    assert_eq!(
        decode_cursor::<f64>(ListKind::Nearby, &d).unwrap().key,
        1234.5
    );
}

/// GraphiQL 3's introspection query with every option on (graphql-js 16.15
/// `getIntrospectionQuery`, as web/node_modules renders it).
pub const GRAPHIQL_INTROSPECTION: &str = "query IntrospectionQuery{__schema{description queryType{name kind}mutationType{name kind}subscriptionType{name kind}types{...FullType}directives{name description isRepeatable locations args(includeDeprecated:true){...InputValue}}}}fragment FullType on __Type{kind name description specifiedByURL isOneOf fields(includeDeprecated:true){name description args(includeDeprecated:true){...InputValue}type{...TypeRef}isDeprecated deprecationReason}inputFields(includeDeprecated:true){...InputValue}interfaces{...TypeRef}enumValues(includeDeprecated:true){name description isDeprecated deprecationReason}possibleTypes{...TypeRef}}fragment InputValue on __InputValue{name description type{...TypeRef}defaultValue isDeprecated deprecationReason}fragment TypeRef on __Type{kind name ofType{name kind ofType{name kind ofType{name kind ofType{name kind ofType{name kind ofType{name kind ofType{name kind ofType{name kind ofType{name kind}}}}}}}}}}";

#[test]
fn expanded_size_counts_spreads_as_their_fragments() {
    use async_graphql::parser::parse_query;
    use confab::graphql::limits::expanded_size;
    let size = |doc: &str| expanded_size(&parse_query(doc).unwrap());
    assert_eq!(size("{ a b { c } }"), 3);
    // A spread counts itself plus its fragment, each time it is spread.
    assert_eq!(
        size("{ ...F ...F } fragment F on Query { a b }"),
        2 * (1 + 2)
    );
    // Doubling fragments: 2^40 selections, counted without expanding them.
    let mut bomb = String::from("{ ...F0 }");
    for i in 0..40 {
        bomb.push_str(&format!(
            " fragment F{i} on Query {{ ...F{} ...F{} }}",
            i + 1,
            i + 1
        ));
    }
    bomb.push_str(" fragment F40 on Query { a }");
    assert!(size(&bomb) > 1 << 40);
    // Cycles end (validation refuses them afterwards).
    assert_eq!(
        size("{ ...A } fragment A on Query { a ...B } fragment B on Query { ...A }"),
        1 + 1 + 1 + 1
    );
    let introspection = size(GRAPHIQL_INTROSPECTION);
    assert!(
        introspection * 10 < confab::config::Limits::default().max_expanded_selections,
        "introspection is {introspection} selections"
    );
}

#[test]
fn invisible_characters_are_refused_but_the_emoji_joiner_is_not() {
    use confab::service::text::reject_invisible;
    for bad in [
        "\u{0}",
        "\u{1}",
        "\u{7F}",
        "\u{9F}",
        "\u{AD}",
        "\u{200B}",
        "\u{200E}",
        "\u{202E}",
        "\u{2066}",
        "\u{FEFF}",
        "\u{E0001}",
    ] {
        assert!(
            reject_invisible("name", &format!("a{bad}b")).is_err(),
            "{bad:?}"
        );
    }
    for good in ["Rita", "Zoë", "李雷", "👩\u{200D}💻", "👍🏽", "a b"] {
        assert!(reject_invisible("name", good).is_ok(), "{good:?}");
    }
}

#[test]
fn login_limiter_never_tracks_more_than_its_cap() {
    use confab::auth::LoginLimiter;
    let limiter = LoginLimiter::new(2, std::time::Duration::from_secs(60)).with_max_keys(4);
    limiter.reserve("rita").unwrap();
    limiter.reserve("rita").unwrap();
    assert!(limiter.reserve("rita").is_err());
    for i in 0..3 {
        limiter.reserve(&format!("user{i}")).unwrap();
    }
    assert_eq!(limiter.tracked(), 4);
    assert!(
        limiter.reserve(" Rita").is_err(),
        "still limited at the cap"
    );
    // Past the cap the oldest window gives way; the map does not grow.
    for i in 3..50 {
        limiter.reserve(&format!("user{i}")).unwrap();
        assert!(limiter.tracked() <= 4);
    }
    // A 60 KB login is one fixed-size key like any other.
    limiter.reserve(&"x".repeat(60 * 1024)).unwrap();
    assert_eq!(limiter.tracked(), 4);
}

#[test]
fn login_limiter_drops_expired_windows_first() {
    use confab::auth::LoginLimiter;
    let limiter = LoginLimiter::new(1, std::time::Duration::from_millis(20)).with_max_keys(3);
    for name in ["a", "b", "c"] {
        limiter.reserve(name).unwrap();
    }
    std::thread::sleep(std::time::Duration::from_millis(40));
    limiter.reserve("d").unwrap();
    assert_eq!(limiter.tracked(), 1, "the three expired windows went");
    // And an expired window no longer limits.
    limiter.reserve("a").unwrap();
}

/// Making room drops expired windows only: a live one (a login at its
/// limit) stays, and stays limited. (cargo-mutants: `<` → `==` in the
/// retain went unnoticed.)
#[test]
fn login_limiter_keeps_live_windows_when_it_makes_room() {
    use confab::auth::LoginLimiter;
    let window = std::time::Duration::from_secs(1);
    let limiter = LoginLimiter::new(1, window).with_max_keys(3);
    limiter.reserve("a").unwrap();
    limiter.reserve("b").unwrap();
    std::thread::sleep(window + std::time::Duration::from_millis(100));
    limiter.reserve("carol").unwrap();
    assert!(limiter.reserve("carol").is_err());
    assert_eq!(limiter.tracked(), 3);
    limiter.reserve("dave").unwrap();
    assert_eq!(limiter.tracked(), 2, "a and b went, carol and dave stay");
    assert!(limiter.reserve("carol").is_err(), "carol is still limited");
}

/// While the map has room nothing is scanned or dropped: expired windows
/// wait until a new key needs their place (a scan of up to 100,000 keys
/// per new login would hold the lock that every sign-in takes). (cargo-mutants:
/// `<` → `>` in the room check went unnoticed.)
#[test]
fn login_limiter_scans_only_when_full() {
    use confab::auth::LoginLimiter;
    let limiter = LoginLimiter::new(1, std::time::Duration::from_millis(20)).with_max_keys(10);
    limiter.reserve("a").unwrap();
    limiter.reserve("b").unwrap();
    std::thread::sleep(std::time::Duration::from_millis(40));
    limiter.reserve("c").unwrap();
    assert_eq!(limiter.tracked(), 3);
}

/// The clock skew tolerated for `iat` and `nbf` is 30 s, that one included:
/// a token issued exactly 30 s ahead passes, a minute ahead does not.
/// (cargo-mutants: `>` → `>=` on either claim went unnoticed.)
#[test]
fn access_tokens_from_up_to_30_seconds_ahead_pass() {
    use confab::auth::token::{FUTURE_LEEWAY_SECS, Keys};
    let secret = confab::auth::token::random_secret();
    let ttl = std::time::Duration::from_secs(600);
    let keys = Keys::new(secret.as_bytes(), ttl, ttl).unwrap();
    let mint = |ahead_iat: i64, ahead_nbf: Option<i64>| {
        let now = chrono::Utc::now().timestamp();
        let mut claims = serde_json::json!({
            "sub": uuid::Uuid::now_v7(), "sid": uuid::Uuid::now_v7(), "iat": now + ahead_iat,
            "exp": now + 600, "typ": "access", "iss": "confab", "aud": "confab-api",
        });
        if let Some(nbf) = ahead_nbf {
            claims["nbf"] = (now + nbf).into();
        }
        jsonwebtoken::encode(
            &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
            &claims,
            &jsonwebtoken::EncodingKey::from_secret(secret.as_bytes()),
        )
        .unwrap()
    };
    // Verified within the second it was made, or later: never refused.
    assert!(keys.verify_access(&mint(FUTURE_LEEWAY_SECS, None)).is_ok());
    assert!(
        keys.verify_access(&mint(0, Some(FUTURE_LEEWAY_SECS)))
            .is_ok()
    );
    assert!(keys.verify_access(&mint(60, None)).is_err());
    assert!(keys.verify_access(&mint(0, Some(60))).is_err());
}

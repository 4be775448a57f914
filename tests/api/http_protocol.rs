//! GraphQL over HTTP: media types, status codes, methods, limits, pages.

use axum::{
    body::Body,
    http::{Request, StatusCode, header},
};
use serde_json::{Value, json};

use crate::support::{TestApp, assert_every_error_has_code, error_code};

fn post(body: &str, content_type: &str, accept: Option<&str>) -> Request<Body> {
    let mut b = Request::post("/graphql").header(header::CONTENT_TYPE, content_type);
    if let Some(accept) = accept {
        b = b.header(header::ACCEPT, accept);
    }
    b.body(Body::from(body.to_owned())).unwrap()
}

fn get(query_string: &str, accept: Option<&str>) -> Request<Body> {
    let mut b = Request::get(format!("/graphql?{query_string}"));
    if let Some(accept) = accept {
        b = b.header(header::ACCEPT, accept);
    }
    b.body(Body::empty()).unwrap()
}

fn enc(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn json_body(body: &[u8]) -> Value {
    let v: Value = serde_json::from_slice(body).expect("JSON body");
    assert_every_error_has_code(&v);
    v
}

#[tokio::test]
async fn media_types_follow_the_accept_header() {
    let app = TestApp::spawn().await;
    let q = r#"{"query":"{ __typename }"}"#;
    for (accept, expected) in [
        (None, "application/json"),
        (Some("*/*"), "application/json"),
        (Some("application/json"), "application/json"),
        (
            Some("application/graphql-response+json"),
            "application/graphql-response+json",
        ),
        (
            Some("application/graphql-response+json, application/json;q=0.9"),
            "application/graphql-response+json",
        ),
    ] {
        let (status, headers, body) = app.request(post(q, "application/json", accept)).await;
        assert_eq!(status, 200, "{accept:?}");
        let ct = headers[header::CONTENT_TYPE].to_str().unwrap();
        assert!(ct.starts_with(expected), "{accept:?} -> {ct}");
        assert_eq!(json_body(&body)["data"]["__typename"], "Query");
    }
    let (status, _, _) = app
        .request(post(q, "application/json", Some("text/html")))
        .await;
    assert_eq!(status, StatusCode::NOT_ACCEPTABLE);
}

#[tokio::test]
async fn parse_and_validation_errors_are_400_with_the_graphql_media_type() {
    let app = TestApp::spawn().await;
    for (doc, code) in [
        ("{", "GRAPHQL_PARSE_FAILED"),
        ("{ nope }", "GRAPHQL_VALIDATION_FAILED"),
    ] {
        let body = json!({ "query": doc }).to_string();
        let (status, _, bytes) = app
            .request(post(
                &body,
                "application/json",
                Some("application/graphql-response+json"),
            ))
            .await;
        assert_eq!(status, 400, "{doc}");
        let v = json_body(&bytes);
        assert!(v.get("data").is_none() || v["data"].is_null());
        assert_eq!(error_code(&v), code);
        // The legacy media type answers 200 with the same errors.
        let (status, _, bytes) = app
            .request(post(&body, "application/json", Some("application/json")))
            .await;
        assert_eq!(status, 200);
        assert_eq!(error_code(&json_body(&bytes)), code);
    }
}

#[tokio::test]
async fn malformed_requests_are_400() {
    let app = TestApp::spawn().await;
    for body in [
        "not json",
        "{}",
        r#"{"query": 1}"#,
        r#"{"query": "{ __typename }", "variables": "nope"}"#,
        r#"{"query": "{ __typename }", "extensions": []}"#,
        "[]",
    ] {
        let (status, _, bytes) = app.request(post(body, "application/json", None)).await;
        assert_eq!(status, 400, "{body}");
        json_body(&bytes);
    }
    // Nulls where objects may be are fine.
    let ok = r#"{"query": "{ __typename }", "variables": null, "operationName": null, "extensions": null}"#;
    let (status, _, _) = app.request(post(ok, "application/json", None)).await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn only_json_bodies_are_accepted() {
    let app = TestApp::spawn().await;
    let q = r#"{"query":"{ __typename }"}"#;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "multipart/form-data; boundary=x",
        "application/json; charset=latin1",
    ] {
        let (status, _, _) = app.request(post(q, ct, None)).await;
        assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{ct}");
    }
    let (status, _, _) = app
        .request(post(q, "application/json; charset=utf-8", None))
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn bodies_over_the_limit_are_413() {
    let app = TestApp::spawn().await;
    let padding = " ".repeat(70 * 1024);
    let body = format!(r#"{{"query":"{{ __typename {padding} }}"}}"#);
    let (status, _, bytes) = app.request(post(&body, "application/json", None)).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    json_body(&bytes);
}

#[tokio::test]
async fn get_runs_queries_and_refuses_mutations() {
    let app = TestApp::spawn().await;
    let (status, _, body) = app
        .request(get(&format!("query={}", enc("{ __typename }")), None))
        .await;
    assert_eq!(status, 200);
    assert_eq!(json_body(&body)["data"]["__typename"], "Query");
    let mutation = "mutation { logout(refreshToken: \"x\") }";
    let (status, headers, body) = app
        .request(get(&format!("query={}", enc(mutation)), None))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(headers[header::ALLOW], "POST");
    json_body(&body);
    // The operation chosen by name decides.
    let doc = "query A { __typename } mutation B { logout(refreshToken: \"x\") }";
    let (status, _, _) = app
        .request(get(&format!("query={}&operationName=B", enc(doc)), None))
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    let (status, _, body) = app
        .request(get(&format!("query={}&operationName=A", enc(doc)), None))
        .await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let (status, _, _) = app
        .request(get(
            &format!("query={}&variables={}", enc("{ __typename }"), enc("[1]")),
            None,
        ))
        .await;
    assert_eq!(status, 400);
}

#[tokio::test]
async fn alias_depth_and_directive_limits_hold() {
    let app = TestApp::spawn().await;
    let aliases: String = (0..31).map(|i| format!("a{i}: __typename ")).collect();
    let res = app.gql(None, &format!("{{ {aliases} }}"), json!({})).await;
    assert!(
        res["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("aliases"),
        "{res}"
    );
    let ok: String = (0..30).map(|i| format!("a{i}: __typename ")).collect();
    app.ok(None, &format!("{{ {ok} }}"), json!({})).await;
    // Aliases hidden in fragments count too.
    let frag = format!("query {{ ...F }} fragment F on Query {{ {aliases} }}");
    let res = app.gql(None, &frag, json!({})).await;
    assert!(res["errors"].is_array());

    // Depth 16: one past the limit.
    let deep = format!(
        "{{ __schema {{ types {{ fields {{ type {}name{} }} }} }} }}",
        "ofType { ".repeat(12),
        " }".repeat(12)
    );
    let res = app.gql(None, &deep, json!({})).await;
    assert!(
        res["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("nested too deep"),
        "{res}"
    );

    let directives = "{ __typename @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) @include(if: true) }";
    let res = app.gql(None, directives, json!({})).await;
    assert!(res["errors"].is_array(), "{res}");
}

#[tokio::test]
async fn introspection_works_for_graphiql() {
    let app = TestApp::spawn().await;
    // The shape GraphiQL sends (depth about 13).
    let q = "query IntrospectionQuery { __schema { queryType { name } mutationType { name } subscriptionType { name } types { ...FullType } directives { name description locations args { ...InputValue } } } } fragment FullType on __Type { kind name description fields(includeDeprecated: true) { name description args { ...InputValue } type { ...TypeRef } isDeprecated deprecationReason } inputFields { ...InputValue } interfaces { ...TypeRef } enumValues(includeDeprecated: true) { name description isDeprecated deprecationReason } possibleTypes { ...TypeRef } } fragment InputValue on __InputValue { name description type { ...TypeRef } defaultValue } fragment TypeRef on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } } }";
    let data = app.ok(None, q, json!({})).await;
    assert_eq!(data["__schema"]["queryType"]["name"], "Query");
}

#[tokio::test]
async fn suggestions_are_off_outside_development() {
    let app = TestApp::spawn().await;
    let res = app
        .gql(None, "{ usr(username: \"x\") { id } }", json!({}))
        .await;
    let msg = res["errors"][0]["message"].as_str().unwrap();
    assert!(!msg.contains("Did you mean"), "{msg}");
    let dev = TestApp::spawn_with(|c| c.dev_mode = true).await;
    let res = dev
        .gql(None, "{ usr(username: \"x\") { id } }", json!({}))
        .await;
    assert!(
        res["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("Did you mean"),
        "{res}"
    );
}

#[tokio::test]
async fn graphiql_health_and_readiness() {
    let app = TestApp::spawn().await;
    let (status, headers, body) = app
        .request(Request::get("/").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
    assert!(
        headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    let page = String::from_utf8(body).unwrap();
    assert!(
        !page.contains("unpkg.com") && !page.contains("cdn."),
        "GraphiQL must not load from a CDN"
    );
    assert!(page.contains("/graphql"));
    // Unknown names (and paths) are not assets.
    for name in ["", "..%2FCargo.toml", "graphiql.min.js"] {
        let uri = format!("/graphiql/{name}");
        let (status, _, _) = app
            .request(Request::get(uri.as_str()).body(Body::empty()).unwrap())
            .await;
        assert_eq!(status, 404, "{name}");
    }
    if !page.contains("/graphiql/graphiql.js") {
        // Built without the npm bundle: the page says how to get it.
        assert!(page.contains("npm ci --prefix web") && page.contains("POST /graphql"));
    }
    // When the page loads bundled assets, every one of them is served from here.
    for asset in ["react.js", "react-dom.js", "graphiql.js", "graphiql.css"] {
        if page.contains(&format!("/graphiql/{asset}")) {
            let uri = format!("/graphiql/{asset}");
            let (status, headers, body) = app
                .request(Request::get(uri.as_str()).body(Body::empty()).unwrap())
                .await;
            assert_eq!(status, 200, "{asset}");
            assert!(
                headers[header::CONTENT_TYPE]
                    .to_str()
                    .unwrap()
                    .starts_with("text/")
            );
            assert!(body.len() > 1000, "{asset}");
            assert!(
                !String::from_utf8_lossy(&body).contains("sourceMappingURL"),
                "{asset}"
            );
        }
    }
    let (status, _, _) = app
        .request(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
    let (status, _, _) = app
        .request(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
}

#[tokio::test]
async fn readyz_is_503_when_the_database_is_gone() {
    let app = TestApp::spawn().await;
    // Closing marks the pool closed at once, then waits for connections in use
    // (on PostgreSQL the LISTEN connection never returns): don't wait for that.
    let _ = tokio::time::timeout(
        std::time::Duration::from_millis(200),
        app.app.state.db.close_by_ref(),
    )
    .await;
    let (status, _, _) = app
        .request(Request::get("/readyz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    let (status, _, _) = app
        .request(Request::get("/healthz").body(Body::empty()).unwrap())
        .await;
    assert_eq!(status, 200);
}

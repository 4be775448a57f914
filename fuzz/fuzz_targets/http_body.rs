//! The HTTP request parsers: a POST body (`RequestBody` from JSON, as
//! `graphql_post` reads it) and a GET query string (`body_from_params`),
//! then the document limits on the request they make. Never a panic; what
//! parses keeps the query, a non-empty operation name and every variable.
#![no_main]

use std::collections::HashMap;

use confab::{config::Limits, graphql::RequestBody, graphql::limits, http::body_from_params};
use libfuzzer_sys::fuzz_target;

fn request_of(body: RequestBody) {
    let query = body.query.clone();
    let name = body.operation_name.clone().filter(|n| !n.is_empty());
    let variables: Vec<String> = body
        .variables
        .as_ref()
        .map(|v| v.keys().cloned().collect())
        .unwrap_or_default();
    let mut request = body.into_request();
    assert_eq!(request.query, query);
    assert_eq!(request.operation_name, name);
    for key in &variables {
        assert!(
            request.variables.contains_key(key.as_str()),
            "variable {key:?} lost"
        );
    }
    // What `Endpoint::refuse` runs before anything else; a refusal is a coded error.
    if let Err(err) = limits::check(&mut request, &Limits::default(), true) {
        assert!(err.extensions.is_some_and(|e| e.get("code").is_some()));
    }
    let _ = request.parsed_query();
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        if let Ok(body) = serde_json::from_slice::<RequestBody>(rest) {
            request_of(body);
        }
    } else {
        // A query string, already split and decoded: name=value pairs on lines.
        let Ok(text) = std::str::from_utf8(rest) else {
            return;
        };
        let params: HashMap<String, String> = text
            .lines()
            .filter_map(|line| line.split_once('='))
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let had_query = params.get("query").cloned();
        match body_from_params(params) {
            Ok(body) => {
                assert_eq!(Some(&body.query), had_query.as_ref());
                request_of(body);
            }
            Err(message) => assert!(!message.is_empty()),
        }
    }
});

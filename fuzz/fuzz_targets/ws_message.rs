//! A WebSocket client message as the socket loop reads it: the envelope
//! (`type`, `id`, `payload`: the same shape as `ws::ClientMessage`, which is
//! private to src/ws.rs), then a `subscribe`/`start` payload as
//! `RequestBody`, the request it makes, and the document limits on it.
//! Never a panic; what parses keeps its query and operation name.
#![no_main]

use confab::{config::Limits, graphql::RequestBody, graphql::limits};
use libfuzzer_sys::fuzz_target;
use serde::Deserialize;
use serde_json::Value as Json;

/// Mirrors `ws::ClientMessage`.
#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Json>,
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(msg) = serde_json::from_str::<ClientMessage>(text) else {
        return;
    };
    if !matches!(msg.kind.as_str(), "subscribe" | "start") || msg.id.is_none() {
        return;
    }
    let Some(payload) = msg.payload else {
        return;
    };
    let query = payload.get("query").cloned();
    let Ok(body) = serde_json::from_value::<RequestBody>(payload) else {
        return;
    };
    assert_eq!(query, Some(Json::String(body.query.clone())));
    let name = body.operation_name.clone().filter(|n| !n.is_empty());
    let mut request = body.into_request();
    assert_eq!(request.operation_name, name);
    if let Err(err) = limits::check(&mut request, &Limits::default(), true) {
        assert!(err.extensions.is_some_and(|e| e.get("code").is_some()));
    }
    let _ = confab::graphql::operation_of(&mut request);
});

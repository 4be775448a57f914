//! GraphQL over WebSocket: graphql-transport-ws (current) and graphql-ws
//! (legacy Apollo subscriptions-transport-ws) on one endpoint.
//!
//! Written here rather than taken from async-graphql-axum, whose handler
//! deviates from graphql-transport-ws: it closes 1002 on a rejected init, has
//! no init timeout, closes 1011 on a subscribe before the ack, silently
//! replaces a duplicate id, and can send close reasons longer than a close
//! frame holds.
//!
//! One loop per socket reads frames and writes everything the socket sends;
//! each subscription runs in its own task and hands its messages to the loop
//! through a bounded channel, so a slow client only ever slows itself.

use std::{collections::HashMap, time::Duration};

use async_graphql::Response;
use axum::{
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue},
    response::IntoResponse,
};
use futures_util::StreamExt;
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::{sync::mpsc, task::AbortHandle};

use crate::{
    app::App,
    auth::Viewer,
    error::AppError,
    graphql::{self, context::RequestViewer, loaders::Loaders},
    http::{viewer_from_authorization, viewer_from_headers},
};

pub const MAX_SUBSCRIPTIONS_PER_SOCKET: usize = 100;
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
const KEEP_ALIVE: Duration = Duration::from_secs(20);
/// Messages waiting for the socket, all subscriptions together.
const OUTBOX: usize = 64;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// graphql-transport-ws
    Transport,
    /// graphql-ws (subscriptions-transport-ws)
    Legacy,
}

impl Protocol {
    fn name(self) -> &'static str {
        match self {
            Self::Transport => "graphql-transport-ws",
            Self::Legacy => "graphql-ws",
        }
    }
    fn data(self) -> &'static str {
        match self {
            Self::Transport => "next",
            Self::Legacy => "data",
        }
    }
}

pub async fn upgrade(
    State(app): State<App>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    // The client's first offered protocol we speak; none offered means the current one.
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let protocol = if offered.is_empty() {
        Some(Protocol::Transport)
    } else {
        offered.iter().find_map(|p| match p.as_str() {
            "graphql-transport-ws" => Some(Protocol::Transport),
            "graphql-ws" => Some(Protocol::Legacy),
            _ => None,
        })
    };
    let Some(protocol) = protocol else {
        return (
            axum::http::StatusCode::BAD_REQUEST,
            "unsupported WebSocket subprotocol: use graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    // Each open socket holds a permit: past the cap, refuse before upgrading.
    let Ok(permit) = app.state.ws_connections.clone().try_acquire_owned() else {
        return (
            axum::http::StatusCode::SERVICE_UNAVAILABLE,
            "too many open WebSocket connections; try again later",
        )
            .into_response();
    };
    // A token on the upgrade request counts as if sent in connection_init.
    let header_auth = viewer_from_headers(&app, &headers);
    let mut ws = ws
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES);
    if !offered.is_empty() {
        ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    }
    ws.on_upgrade(move |socket| async move {
        Connection::new(app, protocol, socket, header_auth)
            .run()
            .await;
        drop(permit);
    })
}

/// What subscription tasks hand to the socket loop.
enum Outgoing {
    /// A result for subscription `id` (of `generation`): `next`, or `error` if it failed before starting.
    Result {
        id: String,
        generation: u64,
        response: Box<Response>,
        first: bool,
    },
    /// Subscription `id` ended by itself.
    Done { id: String, generation: u64 },
}

#[derive(Deserialize)]
struct ClientMessage {
    #[serde(rename = "type")]
    kind: String,
    id: Option<String>,
    payload: Option<Json>,
}

enum Close {
    Code(u16, &'static str),
    Owned(u16, String),
}

struct Connection {
    app: App,
    protocol: Protocol,
    socket: WebSocket,
    header_auth: Result<Option<Viewer>, AppError>,
    /// Some once connection_init was accepted.
    viewer: Option<Option<Viewer>>,
    active: HashMap<String, (u64, AbortHandle)>,
    generation: u64,
    tx: mpsc::Sender<Outgoing>,
    rx: mpsc::Receiver<Outgoing>,
}

impl Connection {
    fn new(
        app: App,
        protocol: Protocol,
        socket: WebSocket,
        header_auth: Result<Option<Viewer>, AppError>,
    ) -> Self {
        let (tx, rx) = mpsc::channel(OUTBOX);
        Self {
            app,
            protocol,
            socket,
            header_auth,
            viewer: None,
            active: HashMap::new(),
            generation: 0,
            tx,
            rx,
        }
    }

    async fn run(mut self) {
        let close = self.serve().await;
        for (_, (_, handle)) in self.active.drain() {
            handle.abort();
        }
        if let Some(close) = close {
            let (code, reason) = match close {
                Close::Code(code, reason) => (code, reason.to_owned()),
                Close::Owned(code, reason) => (code, reason),
            };
            let frame = CloseFrame {
                code,
                reason: truncate_reason(&reason).into(),
            };
            let _ = self.socket.send(Message::Close(Some(frame))).await;
        }
    }

    /// Runs the socket until it ends; returns the close to send, if any.
    async fn serve(&mut self) -> Option<Close> {
        let init_deadline = tokio::time::sleep(self.app.state.config.ws_init_timeout);
        tokio::pin!(init_deadline);
        let mut keep_alive =
            tokio::time::interval_at(tokio::time::Instant::now() + KEEP_ALIVE, KEEP_ALIVE);
        let mut shutdown = self.app.state.shutdown.clone();
        loop {
            tokio::select! {
                () = &mut init_deadline, if self.viewer.is_none() => {
                    return Some(Close::Code(4408, "Connection initialisation timeout"));
                }
                _ = shutdown.changed() => {
                    return Some(Close::Code(1001, "server shutting down"));
                }
                _ = keep_alive.tick(), if self.viewer.is_some() => {
                    let ping = match self.protocol {
                        Protocol::Transport => json!({"type": "ping"}),
                        Protocol::Legacy => json!({"type": "ka"}),
                    };
                    if self.send(ping).await.is_err() {
                        return None;
                    }
                }
                Some(out) = self.rx.recv() => {
                    if self.deliver(out).await.is_err() {
                        return None;
                    }
                }
                frame = self.socket.recv() => {
                    let text = match frame {
                        None | Some(Err(_)) => return None,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => {
                            return Some(Close::Code(4400, "Binary messages are not supported"));
                        }
                    };
                    match self.handle(text.as_str()).await {
                        Ok(()) => {}
                        Err(close) => return close,
                    }
                }
            }
        }
    }

    async fn send(&mut self, message: Json) -> Result<(), axum::Error> {
        self.socket
            .send(Message::Text(message.to_string().into()))
            .await
    }

    /// Handles one client message. Err carries how the socket ends.
    async fn handle(&mut self, text: &str) -> Result<(), Option<Close>> {
        let Ok(msg) = serde_json::from_str::<ClientMessage>(text) else {
            return Err(Some(Close::Code(4400, "Invalid message received")));
        };
        let io = |_| None;
        match (self.protocol, msg.kind.as_str()) {
            (_, "connection_init") => {
                if self.viewer.is_some() {
                    return Err(Some(Close::Code(4429, "Too many initialisation requests")));
                }
                let viewer = match self.authenticate(msg.payload.as_ref()) {
                    Ok(viewer) => viewer,
                    Err(_) => return Err(Some(Close::Code(4403, "Forbidden"))),
                };
                self.viewer = Some(viewer);
                self.send(json!({"type": "connection_ack"}))
                    .await
                    .map_err(io)?;
            }
            (Protocol::Transport, "ping") => {
                let mut pong = json!({"type": "pong"});
                if let Some(payload) = msg.payload {
                    pong["payload"] = payload;
                }
                self.send(pong).await.map_err(io)?;
            }
            (Protocol::Transport, "pong") => {}
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => {
                let Some(id) = msg.id.filter(|id| !id.is_empty()) else {
                    return Err(Some(Close::Code(
                        4400,
                        "Invalid message received: missing id",
                    )));
                };
                let Some(viewer) = self.viewer else {
                    return Err(Some(Close::Code(4401, "Unauthorized")));
                };
                let Some(request) = msg.payload.and_then(parse_request) else {
                    return Err(Some(Close::Code(
                        4400,
                        "Invalid message received: bad subscribe payload",
                    )));
                };
                if self.active.contains_key(&id) {
                    return Err(Some(Close::Owned(
                        4409,
                        format!("Subscriber for {id} already exists"),
                    )));
                }
                if self.active.len() >= MAX_SUBSCRIPTIONS_PER_SOCKET {
                    let error = json!([{
                        "message": format!("at most {MAX_SUBSCRIPTIONS_PER_SOCKET} subscriptions per connection"),
                        "extensions": {"code": "RATE_LIMITED"},
                    }]);
                    self.send(
                        json!({"type": "error", "id": id, "payload": self.error_payload(error)}),
                    )
                    .await
                    .map_err(io)?;
                    return Ok(());
                }
                self.start(id, viewer, request);
            }
            (Protocol::Transport, "complete") | (Protocol::Legacy, "stop") => {
                let Some(id) = msg.id else {
                    return Err(Some(Close::Code(
                        4400,
                        "Invalid message received: missing id",
                    )));
                };
                if let Some((_, handle)) = self.active.remove(&id) {
                    handle.abort();
                    if self.protocol == Protocol::Legacy {
                        self.send(json!({"type": "complete", "id": id}))
                            .await
                            .map_err(io)?;
                    }
                }
            }
            (Protocol::Legacy, "connection_terminate") => {
                return Err(Some(Close::Code(1000, "Normal closure")));
            }
            _ => {
                return Err(Some(Close::Code(
                    4400,
                    "Invalid message received: unknown type",
                )));
            }
        }
        Ok(())
    }

    /// The viewer from the init payload's `authorization` (any case), else from the upgrade header.
    fn authenticate(&self, payload: Option<&Json>) -> Result<Option<Viewer>, AppError> {
        let from_payload = payload.and_then(Json::as_object).and_then(|map| {
            map.iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
                .map(|(_, v)| v)
        });
        match from_payload {
            Some(Json::String(value)) => viewer_from_authorization(&self.app, value),
            Some(Json::Null) | None => match &self.header_auth {
                Ok(viewer) => Ok(*viewer),
                Err(_) => Err(AppError::Unauthenticated("invalid token".into())),
            },
            Some(_) => Err(AppError::Unauthenticated(
                "authorization must be a string".into(),
            )),
        }
    }

    fn error_payload(&self, errors: Json) -> Json {
        match self.protocol {
            Protocol::Transport => errors,
            // The legacy protocol sends one error object.
            Protocol::Legacy => errors.get(0).cloned().unwrap_or(errors),
        }
    }

    fn start(&mut self, id: String, viewer: Option<Viewer>, request: async_graphql::Request) {
        self.generation += 1;
        let generation = self.generation;
        let request = request
            .data(RequestViewer(viewer))
            .data(Loaders::new(&self.app.state.db, viewer));
        let schema = self.app.schema.clone();
        let tx = self.tx.clone();
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            let mut stream = schema.execute_stream(request);
            let mut first = true;
            while let Some(response) = stream.next().await {
                let out = Outgoing::Result {
                    id: task_id.clone(),
                    generation,
                    response: Box::new(response),
                    first,
                };
                first = false;
                // Waits while the socket is behind: only this client slows down.
                if tx.send(out).await.is_err() {
                    return;
                }
            }
            let _ = tx
                .send(Outgoing::Done {
                    id: task_id,
                    generation,
                })
                .await;
        });
        self.active.insert(id, (generation, handle.abort_handle()));
    }

    async fn deliver(&mut self, out: Outgoing) -> Result<(), axum::Error> {
        match out {
            Outgoing::Result {
                id,
                generation,
                mut response,
                first,
            } => {
                if self.active.get(&id).map(|(g, _)| *g) != Some(generation) {
                    return Ok(()); // completed by the client meanwhile
                }
                let failed = first
                    && matches!(response.data, async_graphql::Value::Null)
                    && !response.errors.is_empty();
                graphql::ensure_codes(&mut response, false);
                if failed {
                    // Validation or authorization failed before the stream began.
                    if let Some((_, handle)) = self.active.remove(&id) {
                        handle.abort();
                    }
                    let errors = serde_json::to_value(&response.errors).unwrap_or(Json::Null);
                    let payload = self.error_payload(errors);
                    return self
                        .send(json!({"type": "error", "id": id, "payload": payload}))
                        .await;
                }
                let payload = serde_json::to_value(&response).unwrap_or(Json::Null);
                self.send(json!({"type": self.protocol.data(), "id": id, "payload": payload}))
                    .await
            }
            Outgoing::Done { id, generation } => {
                if self.active.get(&id).map(|(g, _)| *g) != Some(generation) {
                    return Ok(());
                }
                self.active.remove(&id);
                self.send(json!({"type": "complete", "id": id})).await
            }
        }
    }
}

fn parse_request(payload: Json) -> Option<async_graphql::Request> {
    #[derive(Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct Payload {
        query: String,
        #[serde(default)]
        operation_name: Option<String>,
        #[serde(default)]
        variables: Option<serde_json::Map<String, Json>>,
    }
    let payload: Payload = serde_json::from_value(payload).ok()?;
    let mut request = async_graphql::Request::new(payload.query);
    if let Some(name) = payload.operation_name {
        request = request.operation_name(name);
    }
    if let Some(vars) = payload.variables {
        request = request.variables(async_graphql::Variables::from_json(Json::Object(vars)));
    }
    Some(request)
}

/// A close frame's reason holds at most 123 bytes; cut on a character boundary.
fn truncate_reason(reason: &str) -> String {
    if reason.len() <= 123 {
        return reason.to_owned();
    }
    let mut end = 123;
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

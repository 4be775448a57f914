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

use std::{borrow::Cow, collections::HashMap, pin::Pin, time::Duration};

use axum::{
    extract::{
        State,
        ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade},
    },
    http::{HeaderMap, HeaderValue, StatusCode},
    response::IntoResponse,
};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::Deserialize;
use serde_json::{Value as Json, json};
use tokio::{
    sync::mpsc,
    task::AbortHandle,
    time::{Instant, Sleep},
};

use crate::{
    auth::{
        self, Viewer,
        rate::{ClientIp, SocketPermit},
    },
    error::{AppError, AppResult, ErrorCode},
    graphql::{Caller, Endpoint, Payload, RequestBody, operation_of},
    metrics::Operation,
    realtime::{Event, Topic, TopicReceiver},
    service::sessions,
};

/// Frames written before one flush when several are ready at once.
const WRITE_BATCH: usize = 64;

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
    /// The client's first offered protocol we speak; none offered means the current one.
    fn choose(offered: &[String]) -> Option<Self> {
        if offered.is_empty() {
            return Some(Self::Transport);
        }
        offered.iter().find_map(|p| match p.as_str() {
            "graphql-transport-ws" => Some(Self::Transport),
            "graphql-ws" => Some(Self::Legacy),
            _ => None,
        })
    }
}

pub async fn upgrade(
    State(endpoint): State<Endpoint>,
    ip: Option<axum::Extension<ClientIp>>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> axum::response::Response {
    let ip = ip.map(|axum::Extension(ip)| ip).unwrap_or_default();
    let offered: Vec<String> = ws
        .requested_protocols()
        .filter_map(|v| v.to_str().ok())
        .map(str::to_owned)
        .collect();
    let Some(protocol) = Protocol::choose(&offered) else {
        return (
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket subprotocol: use graphql-transport-ws or graphql-ws",
        )
            .into_response();
    };
    // Each open socket holds a permit: past the cap, refuse before upgrading.
    let Ok(permit) = endpoint.state.ws_connections.clone().try_acquire_owned() else {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            "too many open WebSocket connections; try again later",
        )
            .into_response();
    };
    // Each address holds a bounded share of the sockets (anonymous ones included).
    let Some(share) = endpoint.state.rate_limits.open_socket(ip) else {
        return (
            StatusCode::TOO_MANY_REQUESTS,
            [(axum::http::header::RETRY_AFTER, "10")],
            "too many open WebSocket connections from this address",
        )
            .into_response();
    };
    // A token on the upgrade request counts as if sent in connection_init.
    let header_auth = auth::viewer_from_headers(&endpoint.state.keys, &headers);
    // Twice our limit at the frame level, so that a message over our limit
    // is read and answered with close 1009 (the protocol's "too big")
    // instead of a reset from deep in the WebSocket library.
    let max_message = endpoint
        .state
        .config
        .limits
        .ws_message_bytes
        .saturating_mul(2);
    let mut ws = ws
        .read_buffer_size(4096)
        .write_buffer_size(4096)
        .max_write_buffer_size(256 * 1024)
        .max_message_size(max_message)
        .max_frame_size(max_message);
    if !offered.is_empty() {
        ws.set_selected_protocol(HeaderValue::from_static(protocol.name()));
    }
    ws.on_upgrade(move |socket| async move {
        let _open = endpoint.state.metrics.websocket_opened();
        Connection::new(endpoint, protocol, socket, header_auth, ip, share)
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
        payload: Payload,
        first: bool,
        /// A subscription's event (not a query's or mutation's one answer).
        event: bool,
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

/// How the server ends a socket: the close frame's code and reason.
struct Close {
    code: u16,
    reason: Cow<'static, str>,
}

impl Close {
    fn new(code: u16, reason: impl Into<Cow<'static, str>>) -> Self {
        Self {
            code,
            reason: reason.into(),
        }
    }
}

/// What a handled client message leads to: go on, close with a frame, or
/// stop (the socket failed; nothing more can be sent).
type Step = Result<(), Option<Close>>;

/// The socket failed while sending: end without a close frame.
fn gone(_: axum::Error) -> Option<Close> {
    None
}

/// Where the socket stands in the protocol.
#[derive(Clone, Copy)]
enum Init {
    /// Waiting for `connection_init`.
    Pending,
    /// `connection_ack` sent; subscriptions act for this viewer (None: anonymous).
    Acked(Option<Viewer>),
}

struct Connection {
    endpoint: Endpoint,
    protocol: Protocol,
    socket: WebSocket,
    header_auth: AppResult<Option<Viewer>>,
    init: Init,
    /// When the socket must close: no `connection_init` by then; the
    /// viewer's token expires; an anonymous socket's time is up.
    deadline: Pin<Box<Sleep>>,
    /// The viewer's sign-in session: its end closes the socket.
    session: Option<TopicReceiver>,
    ip: ClientIp,
    /// This socket's place in the per-address and per-user counts.
    share: SocketPermit,
    active: HashMap<String, (u64, AbortHandle)>,
    generation: u64,
    tx: mpsc::Sender<Outgoing>,
    rx: mpsc::Receiver<Outgoing>,
}

impl Connection {
    fn new(
        endpoint: Endpoint,
        protocol: Protocol,
        socket: WebSocket,
        header_auth: AppResult<Option<Viewer>>,
        ip: ClientIp,
        share: SocketPermit,
    ) -> Self {
        let limits = &endpoint.state.config.limits;
        let (tx, rx) = mpsc::channel(limits.ws_outbox);
        let deadline = Box::pin(tokio::time::sleep(limits.ws_init_timeout));
        Self {
            endpoint,
            protocol,
            socket,
            header_auth,
            init: Init::Pending,
            deadline,
            session: None,
            ip,
            share,
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
            let frame = CloseFrame {
                code: close.code,
                reason: truncate_reason(&close.reason).into(),
            };
            let _ = self.socket.send(Message::Close(Some(frame))).await;
        }
    }

    /// Runs the socket until it ends; returns the close to send, if any.
    async fn serve(&mut self) -> Option<Close> {
        let period = self.endpoint.state.config.limits.ws_keep_alive;
        let mut keep_alive = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut shutdown = self.endpoint.state.shutdown.clone();
        loop {
            let acked = matches!(self.init, Init::Acked(_));
            tokio::select! {
                () = self.deadline.as_mut() => {
                    return Some(match self.init {
                        Init::Pending => Close::new(4408, "Connection initialisation timeout"),
                        Init::Acked(Some(_)) => Close::new(4403, "Forbidden: the access token expired"),
                        Init::Acked(None) => Close::new(4403, "Forbidden: sign in to stay connected"),
                    });
                }
                ended = session_ended(&mut self.session) => {
                    if ended || !self.session_live().await {
                        return Some(Close::new(4403, "Forbidden: the session ended"));
                    }
                }
                _ = shutdown.changed() => {
                    return Some(Close::new(1001, "server shutting down"));
                }
                _ = keep_alive.tick(), if acked => {
                    let ping = match self.protocol {
                        Protocol::Transport => json!({"type": "ping"}),
                        Protocol::Legacy => json!({"type": "ka"}),
                    };
                    if self.send(ping).await.is_err() {
                        return None;
                    }
                }
                Some(out) = self.rx.recv() => {
                    // What else is ready goes out in the same write: one
                    // flush (one syscall) for a burst, not one per frame.
                    let mut next = Some(out);
                    let mut batch = 0;
                    while let Some(out) = next {
                        if self.deliver(out).await.is_err() {
                            return None;
                        }
                        batch += 1;
                        next = (batch < WRITE_BATCH).then(|| self.rx.try_recv().ok()).flatten();
                    }
                    if self.socket.flush().await.is_err() {
                        return None;
                    }
                }
                frame = self.socket.recv() => {
                    let text = match frame {
                        Some(Err(err)) => {
                            return too_big(err).then(|| Close::new(1009, "Message too big"));
                        }
                        None => return None,
                        Some(Ok(Message::Text(text))) => text,
                        Some(Ok(Message::Binary(bytes))) if bytes.len() > self.max_message() => {
                            return Some(Close::new(1009, "Message too big"));
                        }
                        Some(Ok(Message::Close(_))) => return None,
                        Some(Ok(Message::Ping(_) | Message::Pong(_))) => continue,
                        Some(Ok(Message::Binary(_))) => {
                            return Some(Close::new(4400, "Binary messages are not supported"));
                        }
                    };
                    if text.len() > self.max_message() {
                        return Some(Close::new(1009, "Message too big"));
                    }
                    if let Err(close) = self.handle(text.as_str()).await {
                        return close;
                    }
                }
            }
        }
    }

    fn max_message(&self) -> usize {
        self.endpoint.state.config.limits.ws_message_bytes
    }

    async fn send(&mut self, message: Json) -> Result<(), axum::Error> {
        self.send_text(message.to_string()).await
    }

    async fn send_text(&mut self, text: String) -> Result<(), axum::Error> {
        self.socket.send(Message::Text(text.into())).await
    }

    /// Queues a frame without flushing (the caller flushes).
    async fn feed_text(&mut self, text: String) -> Result<(), axum::Error> {
        self.socket.feed(Message::Text(text.into())).await
    }

    /// Handles one client message.
    async fn handle(&mut self, text: &str) -> Step {
        let Ok(msg) = serde_json::from_str::<ClientMessage>(text) else {
            return Err(Some(Close::new(4400, "Invalid message received")));
        };
        match (self.protocol, msg.kind.as_str()) {
            (_, "connection_init") => self.on_init(msg.payload.as_ref()).await,
            (Protocol::Transport, "ping") => {
                if let Some(auth) = authorization(msg.payload.as_ref()) {
                    self.renew(auth)?;
                }
                let mut pong = json!({"type": "pong"});
                if let Some(payload) = msg.payload {
                    pong["payload"] = payload;
                }
                self.send(pong).await.map_err(gone)
            }
            (Protocol::Transport, "pong") => Ok(()),
            (Protocol::Transport, "subscribe") | (Protocol::Legacy, "start") => {
                self.on_subscribe(msg.id, msg.payload).await
            }
            (Protocol::Transport, "complete") | (Protocol::Legacy, "stop") => {
                self.on_complete(msg.id).await
            }
            (Protocol::Legacy, "connection_terminate") => {
                Err(Some(Close::new(1000, "Normal closure")))
            }
            _ => Err(Some(Close::new(
                4400,
                "Invalid message received: unknown type",
            ))),
        }
    }

    async fn on_init(&mut self, payload: Option<&Json>) -> Step {
        if let Init::Acked(_) = self.init {
            return Err(Some(Close::new(4429, "Too many initialisation requests")));
        }
        let Ok(viewer) = self.authenticate(payload) else {
            return Err(Some(Close::new(4403, "Forbidden")));
        };
        self.acked(viewer)?;
        self.send(json!({"type": "connection_ack"}))
            .await
            .map_err(gone)
    }

    async fn on_subscribe(&mut self, id: Option<String>, payload: Option<Json>) -> Step {
        let Some(id) = id.filter(|id| !id.is_empty()) else {
            return Err(Some(Close::new(
                4400,
                "Invalid message received: missing id",
            )));
        };
        let Init::Acked(viewer) = self.init else {
            return Err(Some(Close::new(4401, "Unauthorized")));
        };
        // Nothing runs on a token that has expired, even before the timer fires.
        if viewer.is_some_and(|v| v.expires_at <= chrono::Utc::now()) {
            return Err(Some(Close::new(
                4403,
                "Forbidden: the access token expired",
            )));
        }
        let body = payload.and_then(|p| serde_json::from_value::<RequestBody>(p).ok());
        let Some(body) = body else {
            return Err(Some(Close::new(
                4400,
                "Invalid message received: bad subscribe payload",
            )));
        };
        if self.active.contains_key(&id) {
            return Err(Some(Close::new(
                4409,
                format!("Subscriber for {id} already exists"),
            )));
        }
        let max = self
            .endpoint
            .state
            .config
            .limits
            .ws_subscriptions_per_socket;
        if self.active.len() >= max {
            let error = json!([{
                "message": format!("at most {max} subscriptions per connection"),
                "extensions": {"code": ErrorCode::RateLimited.as_str()},
            }]);
            let payload = self.error_payload(error);
            return self
                .send(json!({"type": "error", "id": id, "payload": payload}))
                .await
                .map_err(gone);
        }
        self.start(id, viewer, body.into_request());
        Ok(())
    }

    async fn on_complete(&mut self, id: Option<String>) -> Step {
        let Some(id) = id else {
            return Err(Some(Close::new(
                4400,
                "Invalid message received: missing id",
            )));
        };
        if let Some((_, handle)) = self.active.remove(&id) {
            handle.abort();
            if self.protocol == Protocol::Legacy {
                return self
                    .send(json!({"type": "complete", "id": id}))
                    .await
                    .map_err(gone);
            }
        }
        Ok(())
    }

    /// The socket is acknowledged for `viewer`: it lives until the viewer's
    /// token expires and follows the viewer's session; an anonymous socket
    /// gets `ws_anonymous_ttl`.
    fn acked(&mut self, viewer: Option<Viewer>) -> Step {
        if let Some(viewer) = viewer {
            let limits = &self.endpoint.state.rate_limits;
            if !limits.sign_in_socket(&mut self.share, viewer.user_id) {
                return Err(Some(Close::new(
                    1008,
                    "too many open sockets for this user",
                )));
            }
        }
        self.init = Init::Acked(viewer);
        let until = match viewer {
            Some(viewer) => {
                let left = (viewer.expires_at - chrono::Utc::now())
                    .to_std()
                    .unwrap_or(Duration::ZERO);
                let hub = self.endpoint.state.broker.hub();
                self.session = Some(hub.subscribe(Topic::Session(viewer.session_id)));
                Instant::now() + left
            }
            None => Instant::now() + self.endpoint.state.config.limits.ws_anonymous_ttl,
        };
        self.deadline.as_mut().reset(until);
        Ok(())
    }

    /// In-band renewal (a `ping` whose payload carries `authorization`): a
    /// newer token of the same user moves the socket's expiry to its own;
    /// a bad token, or another user's, closes the socket.
    fn renew(&mut self, authorization: &Json) -> Step {
        let forbidden = || Some(Close::new(4403, "Forbidden"));
        let Json::String(value) = authorization else {
            return Err(forbidden());
        };
        let fresh = auth::viewer_from_authorization(&self.endpoint.state.keys, value)
            .map_err(|_| forbidden())?;
        match self.init {
            Init::Acked(Some(current)) if current.user_id == fresh.user_id => {
                self.acked(Some(fresh))
            }
            _ => Err(forbidden()),
        }
    }

    /// After the broker may have lost events: whether the viewer's session
    /// still stands (asked of the database).
    fn session_live(&self) -> impl std::future::Future<Output = bool> + Send + 'static {
        let db = self.endpoint.state.db.clone();
        let init = self.init;
        async move {
            let Init::Acked(Some(viewer)) = init else {
                return true;
            };
            match sessions::is_live(&db, viewer.session_id).await {
                Ok(live) => live,
                Err(err) => {
                    tracing::warn!(error = %err.report(), "could not check a socket's session");
                    true
                }
            }
        }
    }

    /// The viewer from the init payload's `authorization` (any case), else from the upgrade header.
    fn authenticate(&self, payload: Option<&Json>) -> AppResult<Option<Viewer>> {
        match authorization(payload) {
            Some(Json::String(value)) => {
                auth::viewer_from_authorization(&self.endpoint.state.keys, value).map(Some)
            }
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

    fn start(&mut self, id: String, viewer: Option<Viewer>, mut request: async_graphql::Request) {
        self.generation += 1;
        let generation = self.generation;
        let event = operation_of(&mut request) == Operation::Subscription;
        // Counted live until the task ends, however it ends (aborted included).
        let live = event.then(|| self.endpoint.state.metrics.subscription_started());
        let caller = Caller {
            viewer,
            ip: self.ip,
        };
        let mut stream = self.endpoint.execute_stream(request, caller);
        let tx = self.tx.clone();
        let task_id = id.clone();
        let handle = tokio::spawn(async move {
            let _live = live;
            let mut first = true;
            loop {
                // A panic in a resolver (a bug) ends this operation with a
                // coded error, then `complete`: never a silently dead id.
                let next = std::panic::AssertUnwindSafe(stream.next()).catch_unwind();
                let (payload, panicked) = match next.await {
                    Ok(Some(payload)) => (payload, false),
                    Ok(None) => break,
                    Err(_) => {
                        tracing::error!(id = %task_id, "an operation over a WebSocket panicked");
                        let error = crate::graphql::error::server_error(
                            "internal server error",
                            crate::error::ErrorCode::InternalServerError,
                        );
                        let response = async_graphql::Response::from_errors(vec![error]);
                        (Payload::Response(Box::new(response)), true)
                    }
                };
                let out = Outgoing::Result {
                    id: task_id.clone(),
                    generation,
                    payload,
                    first,
                    event,
                };
                first = false;
                // Waits while the socket is behind: only this client slows down.
                if tx.send(out).await.is_err() || panicked {
                    break;
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
                payload,
                first,
                event,
            } => {
                if self.active.get(&id).map(|(g, _)| *g) != Some(generation) {
                    return Ok(()); // completed by the client meanwhile
                }
                let serialised;
                let body: &str = match &payload {
                    Payload::Shared(shared) => shared,
                    Payload::Response(response) => {
                        let failed = first
                            && matches!(response.data, async_graphql::Value::Null)
                            && !response.errors.is_empty();
                        if failed {
                            // Validation or authorization failed before the stream began.
                            if let Some((_, handle)) = self.active.remove(&id) {
                                handle.abort();
                            }
                            let errors =
                                serde_json::to_value(&response.errors).unwrap_or(Json::Null);
                            let payload = self.error_payload(errors);
                            return self
                                .send(json!({"type": "error", "id": id, "payload": payload}))
                                .await;
                        }
                        serialised = serde_json::to_string(&**response)
                            .unwrap_or_else(|_| "null".to_owned());
                        &serialised
                    }
                };
                self.feed_text(frame(self.protocol.data(), &id, body))
                    .await?;
                if event {
                    let shared = matches!(payload, Payload::Shared(_));
                    self.endpoint.state.metrics.event_delivered(shared);
                }
                Ok(())
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

/// `{"type":kind,"id":id,"payload":payload}`, written straight from the
/// payload's JSON text (shared by every subscriber of a group).
fn frame(kind: &str, id: &str, payload: &str) -> String {
    let id = Json::from(id).to_string();
    let mut text = String::with_capacity(payload.len() + id.len() + 32);
    text.push_str(r#"{"type":""#);
    text.push_str(kind);
    text.push_str(r#"","id":"#);
    text.push_str(&id);
    text.push_str(r#","payload":"#);
    text.push_str(payload);
    text.push('}');
    text
}

/// Whether a read failed on a frame or message over the size cap.
fn too_big(err: axum::Error) -> bool {
    matches!(
        err.into_inner().downcast_ref::<tungstenite::Error>(),
        Some(tungstenite::Error::Capacity(_))
    )
}

/// The `authorization` entry (any case) of a message payload.
fn authorization(payload: Option<&Json>) -> Option<&Json> {
    payload.and_then(Json::as_object).and_then(|map| {
        map.iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
            .map(|(_, v)| v)
    })
}

/// Resolves when the session's events say it ended (true) or may have been
/// missed (false: ask the database); never without a session.
async fn session_ended(session: &mut Option<TopicReceiver>) -> bool {
    let Some(events) = session else {
        return std::future::pending().await;
    };
    loop {
        match events.recv().await {
            Some(Event::SessionEnded { .. }) => return true,
            Some(Event::Resync) => return false,
            Some(
                Event::RoomStream { .. }
                | Event::RoomDeleted { .. }
                | Event::UserStream { .. }
                | Event::Typing { .. },
            ) => {}
            None => return std::future::pending().await,
        }
    }
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

//! The GraphQL schema: per-domain roots merged into Query, Mutation and
//! Subscription, and the `Endpoint` both transports execute through.

pub mod connection;
pub mod context;
pub mod direct;
pub mod error;
pub mod events;
pub mod id;
pub mod limits;
pub mod loaders;
pub mod node;
pub mod room;
pub mod scalars;
pub mod shared;
pub mod social;
pub mod user;

use std::{sync::Arc, time::Instant};

use async_graphql::{
    MergedObject, MergedSubscription, Request, Response, SDLExportOptions, Schema,
    parser::types::{DocumentOperations, ExecutableDocument, OperationType},
};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use crate::{
    auth::{Viewer, rate::ClientIp},
    config::Limits,
    error::ErrorCode,
    metrics::{Metrics, Operation, Outcome},
    state::AppState,
};

pub use context::ContextExt;
pub use shared::Payload;

#[derive(MergedObject, Default)]
pub struct Query(
    node::NodeQuery,
    user::UserQuery,
    room::RoomQuery,
    direct::DirectQuery,
    social::SocialQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    user::AuthMutation,
    user::ProfileMutation,
    room::RoomMutation,
    direct::DirectMutation,
    events::EventMutation,
    social::SocialMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(
    room::RoomSubscription,
    direct::DirectSubscription,
    events::EventSubscription,
);

pub type ConfabSchema = Schema<Query, Mutation, Subscription>;

/// Builds the schema. `state` is `None` only for printing the SDL.
fn build(
    state: Option<AppState>,
    limits: &Limits,
    dev_mode: bool,
    introspection: bool,
) -> ConfabSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .register_output_type::<node::NodeInterface>()
    .limit_depth(limits.max_depth)
    .limit_complexity(limits.max_complexity)
    .limit_directives(limits.max_directives_per_field);
    if !dev_mode {
        builder = builder.disable_suggestions();
    }
    if !introspection {
        builder = builder.disable_introspection();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL exactly as served: what `confab schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    build(None, &Limits::default(), false, true)
        .sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}

/// Who sends a request: the signed-in viewer (if any) and the client's address.
#[derive(Clone, Copy, Debug, Default)]
pub struct Caller {
    pub viewer: Option<Viewer>,
    pub ip: ClientIp,
}

/// The schema and the state it runs on: what the HTTP and WebSocket layers
/// execute requests through, so both attach the viewer and the request's
/// DataLoaders the same way and every error they send carries a code.
#[derive(Clone)]
pub struct Endpoint {
    pub schema: ConfabSchema,
    pub state: AppState,
    /// Identical subscriptions, whose events are rendered once for all.
    groups: Arc<shared::Groups>,
}

impl Endpoint {
    pub fn new(state: AppState) -> Self {
        let schema = build(
            Some(state.clone()),
            &state.config.limits,
            state.config.dev_mode,
            state.config.introspection,
        );
        Self::with_schema(schema, state)
    }

    /// An endpoint serving another build of the schema (tests).
    pub fn with_schema(schema: ConfabSchema, state: AppState) -> Self {
        Self {
            schema,
            state,
            groups: Arc::default(),
        }
    }

    fn prepare(&self, request: Request, caller: Caller) -> Request {
        request
            .data(context::RequestViewer(caller.viewer))
            .data(caller.ip)
            .data(loaders::Loaders::new(&self.state.db, caller.viewer))
    }

    /// Executes a query or mutation.
    pub async fn execute(&self, mut request: Request, caller: Caller) -> Response {
        let started = Instant::now();
        if let Some(refused) = self.refuse(&mut request) {
            self.state
                .metrics
                .graphql_request(Operation::Unknown, Outcome::Rejected, None);
            return refused;
        }
        let operation = operation_of(&mut request);
        let mut response = self.schema.execute(self.prepare(request, caller)).await;
        error::finish(&self.state, &mut response);
        Tally::new(&self.state.metrics, operation, started).record(&response);
        response
    }

    /// Executes any operation as a stream of responses (a subscription's
    /// events). A subscription's events may come rendered once for every
    /// identical subscription (`shared`).
    pub fn execute_stream(
        &self,
        mut request: Request,
        caller: Caller,
    ) -> impl Stream<Item = Payload> + Send + 'static {
        let state = self.state.clone();
        let started = Instant::now();
        let operation = operation_of(&mut request);
        let mut tally = Tally::new(&self.state.metrics, operation, started);
        let sharing = (operation == Operation::Subscription && self.state.config.shared_renders)
            .then(|| self.groups.join(&request, caller.viewer.map(|v| v.user_id)));
        let stream = match self.refuse(&mut request) {
            None => {
                let mut request = self.prepare(request, caller);
                if let Some(sharing) = &sharing {
                    request = request.data(sharing.clone());
                }
                self.schema.execute_stream(request).left_stream()
            }
            Some(failed) => futures_util::stream::iter([failed]).right_stream(),
        };
        stream.map(move |mut response| {
            error::finish(&state, &mut response);
            tally.record(&response);
            Payload::of(response, sharing.as_deref())
        })
    }

    /// How many bytes of shared renders the groups keep now.
    pub fn shared_render_bytes(&self) -> usize {
        self.groups.kept_bytes()
    }
}

impl Endpoint {
    /// Parses the document once, before execution (which reuses it), and
    /// checks our document limits on it. The answer to a request refused
    /// before async-graphql sees it; a document that is not GraphQL is
    /// `GRAPHQL_PARSE_FAILED`.
    fn refuse(&self, request: &mut Request) -> Option<Response> {
        let config = &self.state.config;
        let refused = match limits::check(request, &config.limits, config.introspection) {
            Err(err) => err,
            Ok(()) => {
                let err = request.parsed_query().err()?;
                error::server_error(err.message, ErrorCode::GraphqlParseFailed)
            }
        };
        Some(Response::from_errors(vec![refused]))
    }
}

/// Counts one operation in the metrics, once: at its first response (a
/// query's or mutation's only one, with its latency), or, for a subscription
/// that ends or is stopped before it sent anything, when it is dropped.
struct Tally {
    metrics: Option<Arc<Metrics>>,
    operation: Operation,
    started: Instant,
}

impl Tally {
    fn new(metrics: &Arc<Metrics>, operation: Operation, started: Instant) -> Self {
        Self {
            metrics: Some(metrics.clone()),
            operation,
            started,
        }
    }

    fn record(&mut self, response: &Response) {
        let Some(metrics) = self.metrics.take() else {
            return;
        };
        let outcome = if error::request_failed(response) {
            Outcome::Rejected
        } else if response.errors.is_empty() {
            Outcome::Ok
        } else {
            Outcome::Error
        };
        let elapsed = matches!(self.operation, Operation::Query | Operation::Mutation)
            .then(|| self.started.elapsed());
        metrics.graphql_request(self.operation, outcome, elapsed);
    }
}

impl Drop for Tally {
    fn drop(&mut self) {
        if let Some(metrics) = self.metrics.take()
            && self.operation == Operation::Subscription
        {
            metrics.graphql_request(self.operation, Outcome::Ok, None);
        }
    }
}

/// The kind of operation a request runs (`Unknown` if it does not parse or
/// names no operation the document holds).
pub fn operation_of(request: &mut Request) -> Operation {
    let name = request.operation_name.clone();
    match request
        .parsed_query()
        .ok()
        .and_then(|doc| operation_type(doc, name.as_deref()))
    {
        Some(OperationType::Query) => Operation::Query,
        Some(OperationType::Mutation) => Operation::Mutation,
        Some(OperationType::Subscription) => Operation::Subscription,
        None => Operation::Unknown,
    }
}

/// The type of the operation a request would run; None when it names none the document has.
pub fn operation_type(doc: &ExecutableDocument, name: Option<&str>) -> Option<OperationType> {
    match (name, &doc.operations) {
        (Some(name), ops) => ops
            .iter()
            .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
            .map(|(_, op)| op.node.ty),
        (None, DocumentOperations::Single(op)) => Some(op.node.ty),
        (None, ops) => {
            let mut iter = ops.iter();
            match (iter.next(), iter.next()) {
                (Some((_, op)), None) => Some(op.node.ty),
                _ => None,
            }
        }
    }
}

/// A GraphQL request as JSON carries it (the POST body, a WebSocket
/// `subscribe` payload): a string query; objects, or null, for variables and
/// extensions.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RequestBody {
    pub query: String,
    #[serde(default)]
    pub operation_name: Option<String>,
    #[serde(default)]
    pub variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    pub extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl RequestBody {
    pub fn into_request(self) -> Request {
        let mut request = Request::new(self.query);
        if let Some(name) = self.operation_name.filter(|n| !n.is_empty()) {
            request = request.operation_name(name);
        }
        if let Some(vars) = self.variables {
            request = request.variables(async_graphql::Variables::from_json(
                serde_json::Value::Object(vars),
            ));
        }
        for (k, v) in self.extensions.unwrap_or_default() {
            if let Ok(v) = async_graphql::Value::from_json(v) {
                request.extensions.insert(k, v);
            }
        }
        request
    }
}

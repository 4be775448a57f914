//! The GraphQL schema: per-domain roots merged into Query, Mutation and
//! Subscription, and the `Endpoint` both transports execute through.

pub mod connection;
pub mod context;
pub mod direct;
pub mod error;
pub mod id;
pub mod limits;
pub mod loaders;
pub mod node;
pub mod room;
pub mod scalars;
pub mod social;
pub mod user;

use async_graphql::{
    MergedObject, MergedSubscription, Request, Response, SDLExportOptions, Schema,
};
use futures_util::{Stream, StreamExt};
use serde::Deserialize;

use crate::{auth::Viewer, config::Limits, error::ErrorCode, state::AppState};

pub use context::ContextExt;

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
    social::SocialMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(room::RoomSubscription, direct::DirectSubscription);

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

/// The schema and the state it runs on: what the HTTP and WebSocket layers
/// execute requests through, so both attach the viewer and the request's
/// DataLoaders the same way and every error they send carries a code.
#[derive(Clone)]
pub struct Endpoint {
    pub schema: ConfabSchema,
    pub state: AppState,
}

impl Endpoint {
    pub fn new(state: AppState) -> Self {
        let schema = build(
            Some(state.clone()),
            &state.config.limits,
            state.config.dev_mode,
            state.config.introspection,
        );
        Self { schema, state }
    }

    fn prepare(&self, request: Request, viewer: Option<Viewer>) -> Request {
        request
            .data(context::RequestViewer(viewer))
            .data(loaders::Loaders::new(&self.state.db, viewer))
    }

    /// Executes a query or mutation.
    pub async fn execute(&self, mut request: Request, viewer: Option<Viewer>) -> Response {
        if let Some(refused) = self.refuse(&mut request) {
            return refused;
        }
        let mut response = self.schema.execute(self.prepare(request, viewer)).await;
        error::finish(&self.state, &mut response);
        response
    }

    /// Executes any operation as a stream of responses (a subscription's events).
    pub fn execute_stream(
        &self,
        mut request: Request,
        viewer: Option<Viewer>,
    ) -> impl Stream<Item = Response> + Send + 'static {
        let state = self.state.clone();
        let stream = match self.refuse(&mut request) {
            None => self
                .schema
                .execute_stream(self.prepare(request, viewer))
                .left_stream(),
            Some(failed) => futures_util::stream::iter([failed]).right_stream(),
        };
        stream.map(move |mut response| {
            error::finish(&state, &mut response);
            response
        })
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

//! HTTP: GraphQL over HTTP (POST and GET), the WebSocket endpoint, GraphiQL,
//! health. The GraphQL-over-HTTP rules async-graphql-axum leaves out live here:
//! content negotiation, status codes, 405 for mutations over GET, 415 for
//! non-JSON bodies, the body limit.

use std::collections::HashMap;

use async_graphql::{Response, parser::types::OperationType};
use axum::{
    Router,
    body::{Body, Bytes},
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse},
    routing::get,
};
use serde::Deserialize;

use crate::{
    app::App,
    auth::{self, Viewer},
    error::AppError,
    graphql::{self, context::RequestViewer, loaders::Loaders},
};

pub fn router(app: App) -> Router {
    Router::new()
        .route("/", get(graphiql_page))
        .route("/graphiql/{name}", get(graphiql_asset))
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(crate::ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(app)
}

async fn graphiql_page() -> impl IntoResponse {
    Html(crate::graphiql::page())
}

async fn graphiql_asset(Path(name): Path<String>) -> axum::response::Response {
    match crate::graphiql::asset(&name) {
        Some((content_type, bytes)) => (
            [
                (header::CONTENT_TYPE, content_type),
                (header::CACHE_CONTROL, "public, max-age=86400"),
            ],
            bytes,
        )
            .into_response(),
        None => StatusCode::NOT_FOUND.into_response(),
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(app): State<App>) -> (StatusCode, &'static str) {
    if crate::db::ready(&app.state.db).await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or migrations pending",
        )
    }
}

/// The media type of the response, from the request's Accept.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum MediaType {
    Json,
    GraphqlResponseJson,
}

impl MediaType {
    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Self::Json => "application/json; charset=utf-8",
            Self::GraphqlResponseJson => "application/graphql-response+json; charset=utf-8",
        })
    }
}

/// Picks the best type the client accepts; none given means application/json.
fn negotiate(headers: &HeaderMap) -> Option<MediaType> {
    let Some(accept) = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok()) else {
        return Some(MediaType::Json);
    };
    if accept.trim().is_empty() {
        return Some(MediaType::Json);
    }
    let mut best: Option<(f32, MediaType)> = None;
    for part in accept.split(',') {
        let mut params = part.split(';');
        let range = params.next().unwrap_or("").trim().to_ascii_lowercase();
        let q = params
            .filter_map(|p| p.trim().strip_prefix("q="))
            .find_map(|q| q.trim().parse::<f32>().ok())
            .unwrap_or(1.0);
        let kind = match range.as_str() {
            "application/graphql-response+json" => MediaType::GraphqlResponseJson,
            "application/json" | "application/*" | "*/*" => MediaType::Json,
            _ => continue,
        };
        if q > 0.0 && best.is_none_or(|(bq, _)| q > bq) {
            best = Some((q, kind));
        }
    }
    best.map(|(_, kind)| kind)
}

/// A response to a request that never reached GraphQL execution.
fn request_error(
    status: StatusCode,
    media: MediaType,
    message: &str,
    code: &str,
) -> axum::response::Response {
    let body =
        serde_json::json!({ "errors": [{ "message": message, "extensions": { "code": code } }] });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    response
}

/// The viewer from `Authorization: Bearer …`. No header: anonymous. A bad or
/// expired token is an error, never silently anonymous.
pub fn viewer_from_headers(app: &App, headers: &HeaderMap) -> Result<Option<Viewer>, AppError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthenticated("malformed Authorization header".into()))?;
    viewer_from_authorization(app, value)
}

pub fn viewer_from_authorization(app: &App, value: &str) -> Result<Option<Viewer>, AppError> {
    let token = auth::bearer(value)
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            AppError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
        })?;
    let user_id = app.state.keys.verify_access(token)?;
    Ok(Some(Viewer { user_id }))
}

/// The JSON body of a GraphQL POST, strictly typed: a string query, objects
/// (or null) for variables and extensions.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct GraphqlBody {
    query: String,
    #[serde(default)]
    operation_name: Option<String>,
    #[serde(default)]
    variables: Option<serde_json::Map<String, serde_json::Value>>,
    #[serde(default)]
    extensions: Option<serde_json::Map<String, serde_json::Value>>,
}

impl GraphqlBody {
    fn into_request(self) -> async_graphql::Request {
        let mut request = async_graphql::Request::new(self.query);
        if let Some(name) = self.operation_name {
            request = request.operation_name(name);
        }
        if let Some(vars) = self.variables {
            request = request.variables(async_graphql::Variables::from_json(
                serde_json::Value::Object(vars),
            ));
        }
        if let Some(ext) = self.extensions {
            for (k, v) in ext {
                if let Ok(v) = async_graphql::Value::from_json(v) {
                    request.extensions.insert(k, v);
                }
            }
        }
        request
    }
}

fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let mut parts = value.split(';');
    let essence = parts.next().unwrap_or("").trim();
    if !essence.eq_ignore_ascii_case("application/json") {
        return false;
    }
    // Only UTF-8 is JSON's encoding.
    parts.all(|p| match p.trim().split_once('=') {
        Some((k, v)) if k.trim().eq_ignore_ascii_case("charset") => {
            v.trim().trim_matches('"').eq_ignore_ascii_case("utf-8")
        }
        _ => true,
    })
}

async fn graphql_post(
    State(app): State<App>,
    headers: HeaderMap,
    body: Body,
) -> axum::response::Response {
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "not acceptable: ask for application/json or application/graphql-response+json",
            "BAD_USER_INPUT",
        );
    };
    if !is_json_content_type(&headers) {
        // Also what stops cross-site "simple" form posts.
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "Content-Type must be application/json",
            "BAD_USER_INPUT",
        );
    }
    let bytes: Bytes = match axum::body::to_bytes(body, app.state.config.body_limit).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return request_error(
                StatusCode::PAYLOAD_TOO_LARGE,
                media,
                &format!(
                    "request body larger than {} bytes",
                    app.state.config.body_limit
                ),
                "BAD_USER_INPUT",
            );
        }
    };
    let body: GraphqlBody = match serde_json::from_slice(&bytes) {
        Ok(body) => body,
        Err(err) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &format!("malformed GraphQL request: {err}"),
                "BAD_USER_INPUT",
            );
        }
    };
    execute(&app, &headers, media, body.into_request()).await
}

async fn graphql_get(
    State(app): State<App>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> axum::response::Response {
    let Some(media) = negotiate(&headers) else {
        return request_error(
            StatusCode::NOT_ACCEPTABLE,
            MediaType::Json,
            "not acceptable: ask for application/json or application/graphql-response+json",
            "BAD_USER_INPUT",
        );
    };
    let Some(query) = params.get("query") else {
        return request_error(
            StatusCode::BAD_REQUEST,
            media,
            "missing `query` parameter",
            "BAD_USER_INPUT",
        );
    };
    let parse_object =
        |name: &str| -> Result<Option<serde_json::Map<String, serde_json::Value>>, String> {
            match params.get(name) {
                None => Ok(None),
                Some(raw) => match serde_json::from_str::<serde_json::Value>(raw) {
                    Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
                    Ok(serde_json::Value::Null) => Ok(None),
                    _ => Err(format!("`{name}` must be a JSON object")),
                },
            }
        };
    let (variables, extensions) = match (parse_object("variables"), parse_object("extensions")) {
        (Ok(v), Ok(e)) => (v, e),
        (Err(msg), _) | (_, Err(msg)) => {
            return request_error(StatusCode::BAD_REQUEST, media, &msg, "BAD_USER_INPUT");
        }
    };
    let operation_name = params
        .get("operationName")
        .filter(|s| !s.is_empty())
        .cloned();
    // Only queries over GET: a GET must not change anything.
    if let Ok(doc) = async_graphql::parser::parse_query(query) {
        let op_type = match (&operation_name, &doc.operations) {
            (Some(name), ops) => ops
                .iter()
                .find(|(n, _)| n.is_some_and(|n| n.as_str() == name))
                .map(|(_, op)| op.node.ty),
            (None, async_graphql::parser::types::DocumentOperations::Single(op)) => {
                Some(op.node.ty)
            }
            (None, ops) => {
                let mut iter = ops.iter();
                match (iter.next(), iter.next()) {
                    (Some((_, op)), None) => Some(op.node.ty),
                    _ => None,
                }
            }
        };
        if op_type.is_some_and(|t| t != OperationType::Query) {
            let mut response = request_error(
                StatusCode::METHOD_NOT_ALLOWED,
                media,
                "only queries may be sent with GET; use POST",
                "BAD_USER_INPUT",
            );
            response
                .headers_mut()
                .insert(header::ALLOW, HeaderValue::from_static("POST"));
            return response;
        }
    }
    let body = GraphqlBody {
        query: query.clone(),
        operation_name,
        variables,
        extensions,
    };
    execute(&app, &headers, media, body.into_request()).await
}

async fn execute(
    app: &App,
    headers: &HeaderMap,
    media: MediaType,
    request: async_graphql::Request,
) -> axum::response::Response {
    let viewer = match viewer_from_headers(app, headers) {
        Ok(viewer) => viewer,
        Err(err) => {
            let mut response = request_error(
                StatusCode::UNAUTHORIZED,
                media,
                &err.to_string(),
                err.code(),
            );
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return response;
        }
    };
    let query_text = request.query.clone();
    let request = request
        .data(RequestViewer(viewer))
        .data(Loaders::new(&app.state.db, viewer));
    let mut response: Response = app.schema.execute(request).await;
    let request_failed = matches!(response.data, async_graphql::Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty());
    let parse_failed = request_failed && async_graphql::parser::parse_query(&query_text).is_err();
    graphql::ensure_codes(&mut response, parse_failed);
    // application/json answers 200 whatever happened (the legacy rule); the
    // newer media type says a request that never executed is a 400.
    let status = if media == MediaType::GraphqlResponseJson && request_failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = match serde_json::to_vec(&response) {
        Ok(body) => body,
        Err(_) => {
            return request_error(
                StatusCode::INTERNAL_SERVER_ERROR,
                media,
                "internal server error",
                "INTERNAL_SERVER_ERROR",
            );
        }
    };
    let mut out = (status, body).into_response();
    out.headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    out.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    out
}

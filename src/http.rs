//! HTTP: GraphQL over HTTP (POST and GET), the WebSocket endpoint, GraphiQL,
//! health. The GraphQL-over-HTTP rules async-graphql-axum leaves out live here:
//! content negotiation, status codes, 405 for mutations over GET, 415 for
//! non-JSON bodies, the body limit.

use std::collections::HashMap;

use async_graphql::{Response, parser::types::OperationType};
use axum::{
    Extension, Router,
    body::Body,
    extract::{Path, Query, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{Html, IntoResponse},
    routing::get,
};

use crate::{
    auth::{self, rate::ClientIp},
    error::ErrorCode,
    graphql::{Caller, Endpoint, RequestBody, error::request_failed, operation_type},
    metrics,
};

type HttpResponse = axum::response::Response;

/// Everything the server answers over HTTP, on `endpoint`.
pub fn router(endpoint: Endpoint) -> Router {
    let timeout = endpoint.state.config.limits.request_timeout;
    let mut router = Router::new();
    // GraphiQL goes with introspection: without it the playground cannot work.
    if endpoint.state.config.introspection {
        router = router
            .route("/", get(graphiql_page))
            .route("/graphiql/{name}", get(graphiql_asset));
    }
    router
        .route("/graphql", get(graphql_get).post(graphql_post))
        .route("/graphql/ws", get(crate::ws::upgrade))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_page))
        .with_state(endpoint)
        // Innermost, so the timeout and the trace layer see the 500 it makes.
        .layer(tower_http::catch_panic::CatchPanicLayer::custom(
            panic_response,
        ))
        .layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .layer(tower_http::trace::TraceLayer::new_for_http())
}

/// The answer to a request whose handler panicked (a bug): a 500 with a
/// GraphQL-shaped, coded body instead of a connection dropped mid-request
/// (hyper's connection task would otherwise die with the panic). The panic
/// is logged here; its message stays out of the response.
fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> HttpResponse {
    let message = panic
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| panic.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("(no message)");
    tracing::error!(panic = message, "request handler panicked");
    request_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        MediaType::Json,
        "Internal server error",
        ErrorCode::InternalServerError,
    )
}

async fn graphiql_page() -> impl IntoResponse {
    Html(crate::graphiql::page())
}

async fn graphiql_asset(Path(name): Path<String>) -> HttpResponse {
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

async fn readyz(State(endpoint): State<Endpoint>) -> (StatusCode, &'static str) {
    if crate::db::ready(&endpoint.state.db).await {
        (StatusCode::OK, "ready")
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "database unreachable or migrations pending",
        )
    }
}

/// Every series in the Prometheus text format, read now.
async fn metrics_page(State(endpoint): State<Endpoint>) -> HttpResponse {
    match endpoint.state.metrics.render() {
        Ok(body) => ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], body).into_response(),
        Err(_) => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
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

/// The answer to a client that accepts no type we send.
fn not_acceptable() -> HttpResponse {
    request_error(
        StatusCode::NOT_ACCEPTABLE,
        MediaType::Json,
        "not acceptable: ask for application/json or application/graphql-response+json",
        ErrorCode::BadUserInput,
    )
}

/// A response to a request that never reached GraphQL execution.
fn request_error(
    status: StatusCode,
    media: MediaType,
    message: &str,
    code: ErrorCode,
) -> HttpResponse {
    let body = serde_json::json!({
        "errors": [{ "message": message, "extensions": { "code": code.as_str() } }]
    });
    let mut response = (status, body.to_string()).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    response
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
    State(endpoint): State<Endpoint>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    body: Body,
) -> HttpResponse {
    let ip = ip.map(|Extension(ip)| ip).unwrap_or_default();
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    if !is_json_content_type(&headers) {
        // Also what stops cross-site "simple" form posts.
        return request_error(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            media,
            "Content-Type must be application/json",
            ErrorCode::BadUserInput,
        );
    }
    let limit = endpoint.state.config.limits.body_bytes;
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return request_error(
            StatusCode::PAYLOAD_TOO_LARGE,
            media,
            &format!("request body larger than {limit} bytes"),
            ErrorCode::BadUserInput,
        );
    };
    match serde_json::from_slice::<RequestBody>(&bytes) {
        Ok(body) => execute(&endpoint, ip, &headers, media, body.into_request()).await,
        Err(err) => request_error(
            StatusCode::BAD_REQUEST,
            media,
            &format!("malformed GraphQL request: {err}"),
            ErrorCode::BadUserInput,
        ),
    }
}

async fn graphql_get(
    State(endpoint): State<Endpoint>,
    ip: Option<Extension<ClientIp>>,
    headers: HeaderMap,
    Query(params): Query<HashMap<String, String>>,
) -> HttpResponse {
    let ip = ip.map(|Extension(ip)| ip).unwrap_or_default();
    let Some(media) = negotiate(&headers) else {
        return not_acceptable();
    };
    let body = match body_from_params(params) {
        Ok(body) => body,
        Err(message) => {
            return request_error(
                StatusCode::BAD_REQUEST,
                media,
                &message,
                ErrorCode::BadUserInput,
            );
        }
    };
    let mut request = body.into_request();
    // Only queries over GET: a GET must not change anything. (A document
    // that does not parse is answered by `execute`.)
    let operation = request.operation_name.clone();
    if let Ok(doc) = request.parsed_query()
        && operation_type(doc, operation.as_deref()).is_some_and(|t| t != OperationType::Query)
    {
        let mut response = request_error(
            StatusCode::METHOD_NOT_ALLOWED,
            media,
            "only queries may be sent with GET; use POST",
            ErrorCode::BadUserInput,
        );
        response
            .headers_mut()
            .insert(header::ALLOW, HeaderValue::from_static("POST"));
        return response;
    }
    execute(&endpoint, ip, &headers, media, request).await
}

/// The request a GET carries in its query string; variables and extensions
/// are JSON objects. (Public for the fuzz targets.)
pub fn body_from_params(mut params: HashMap<String, String>) -> Result<RequestBody, String> {
    let query = params
        .remove("query")
        .ok_or_else(|| "missing `query` parameter".to_owned())?;
    let mut object = |name: &str| match params.remove(name) {
        None => Ok(None),
        Some(raw) => match serde_json::from_str::<serde_json::Value>(&raw) {
            Ok(serde_json::Value::Object(map)) => Ok(Some(map)),
            Ok(serde_json::Value::Null) => Ok(None),
            _ => Err(format!("`{name}` must be a JSON object")),
        },
    };
    let variables = object("variables")?;
    let extensions = object("extensions")?;
    Ok(RequestBody {
        query,
        operation_name: params.remove("operationName"),
        variables,
        extensions,
    })
}

async fn execute(
    endpoint: &Endpoint,
    ip: ClientIp,
    headers: &HeaderMap,
    media: MediaType,
    request: async_graphql::Request,
) -> HttpResponse {
    let viewer = match auth::viewer_from_headers(&endpoint.state.keys, headers) {
        Ok(viewer) => viewer,
        Err(err) => {
            let mut response =
                request_error(StatusCode::UNAUTHORIZED, media, err.message(), err.code());
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer error=\"invalid_token\""),
            );
            return response;
        }
    };
    let response = endpoint.execute(request, Caller { viewer, ip }).await;
    respond(media, &response)
}

/// Serialises a GraphQL response once. application/json answers 200
/// whatever happened (the legacy rule); the newer media type says a request
/// that never executed is a 400. Such a request has no `data` entry at all.
fn respond(media: MediaType, response: &Response) -> HttpResponse {
    let failed = request_failed(response);
    let status = if media == MediaType::GraphqlResponseJson && failed {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let body = if failed {
        serde_json::to_string(&serde_json::json!({ "errors": response.errors }))
    } else {
        serde_json::to_string(response)
    };
    let Ok(body) = body else {
        return request_error(
            StatusCode::INTERNAL_SERVER_ERROR,
            media,
            "internal server error",
            ErrorCode::InternalServerError,
        );
    };
    let mut out = (status, body).into_response();
    out.headers_mut()
        .insert(header::CONTENT_TYPE, media.header());
    out.headers_mut()
        .insert(header::VARY, HeaderValue::from_static("Accept"));
    out
}

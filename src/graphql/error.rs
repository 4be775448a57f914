//! `AppError` as a GraphQL error, and the check that every error in a
//! response carries a code.
//!
//! Resolvers return `async_graphql::Result` and use `?` on service results:
//! the conversions below are the only way an `AppError` becomes a GraphQL
//! error (it has no `Display`, so async-graphql's blanket conversion, which
//! would drop the code, does not apply).

use std::sync::atomic::Ordering;

use async_graphql::{ErrorExtensionValues, ErrorExtensions, Response, ServerError, Value};

use crate::{
    error::{AppError, ErrorCode},
    graphql::loaders::LoadError,
    state::AppState,
};

/// A GraphQL error with `extensions.code`.
pub fn coded(message: impl Into<String>, code: ErrorCode) -> async_graphql::Error {
    async_graphql::Error::new(message).extend_with(|_, ext| ext.set("code", code.as_str()))
}

/// A request-level error (no path) with `extensions.code`.
pub fn server_error(message: impl Into<String>, code: ErrorCode) -> ServerError {
    let mut err = ServerError::new(message, None);
    set_code(&mut err, code);
    err
}

fn set_code(err: &mut ServerError, code: ErrorCode) {
    err.extensions
        .get_or_insert_with(ErrorExtensionValues::default)
        .set("code", code.as_str());
}

impl From<AppError> for async_graphql::Error {
    fn from(err: AppError) -> Self {
        (&err).into()
    }
}

impl From<&AppError> for async_graphql::Error {
    fn from(err: &AppError) -> Self {
        if let AppError::Internal(_) = err {
            tracing::error!(error = %err.report(), "internal error");
        }
        let error = coded(err.message(), err.code());
        match err.retry_after() {
            Some(seconds) => error.extend_with(|_, ext| ext.set("retryAfter", seconds)),
            None => error,
        }
    }
}

/// What a DataLoader hands back.
impl From<LoadError> for async_graphql::Error {
    fn from(err: LoadError) -> Self {
        err.0.as_ref().into()
    }
}

/// True when the request never executed: no data, and only errors without a path.
pub fn request_failed(response: &Response) -> bool {
    matches!(response.data, Value::Null)
        && !response.errors.is_empty()
        && response.errors.iter().all(|e| e.path.is_empty())
}

/// Codes the errors async-graphql itself makes for a document that fails to
/// validate (and names no operation it holds). Every field error already has
/// its code; one without is a bug in a resolver: logged, counted in
/// `AppState::uncoded_errors` (the test harness fails on it), and shown as
/// an internal error.
pub fn finish(state: &AppState, response: &mut Response) {
    let request_error = request_failed(response);
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if has_code {
            continue;
        }
        if request_error {
            set_code(err, ErrorCode::GraphqlValidationFailed);
        } else {
            tracing::error!(message = %err.message, path = ?err.path, "BUG: a field error without extensions.code");
            state.uncoded_errors.fetch_add(1, Ordering::Relaxed);
            set_code(err, ErrorCode::InternalServerError);
        }
    }
}

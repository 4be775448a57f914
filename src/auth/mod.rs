//! Passwords, tokens, and who is asking.

pub mod limiter;
pub mod password;
pub mod rate;
pub mod token;

pub use limiter::LoginLimiter;
pub use password::Passwords;
pub use token::{AccessClaims, Keys};

use uuid::Uuid;

use crate::error::{AppError, AppResult};

/// The signed-in user a request acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
    /// The sign-in session (refresh-token family) of the token.
    pub session_id: Uuid,
    /// When the token stops being valid: a WebSocket closes then.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Reads `Bearer <token>` out of an Authorization value (scheme in any case).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// The viewer from `Authorization: Bearer …`. No header: anonymous. A bad or
/// expired token is an error, never silently anonymous.
pub fn viewer_from_headers(
    keys: &Keys,
    headers: &axum::http::HeaderMap,
) -> AppResult<Option<Viewer>> {
    let Some(value) = headers.get(axum::http::header::AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value
        .to_str()
        .map_err(|_| AppError::Unauthenticated("malformed Authorization header".into()))?;
    viewer_from_authorization(keys, value).map(Some)
}

/// The viewer an Authorization value (`Bearer <token>`) speaks for.
pub fn viewer_from_authorization(keys: &Keys, value: &str) -> AppResult<Viewer> {
    let token = bearer(value).filter(|t| !t.is_empty()).ok_or_else(|| {
        AppError::Unauthenticated("expected `Authorization: Bearer <token>`".into())
    })?;
    let access = keys.verify_access(token)?;
    Ok(Viewer {
        user_id: access.user_id,
        session_id: access.session_id,
        expires_at: access.expires_at,
    })
}

//! Passwords, tokens, and who is asking.

pub mod limiter;
pub mod password;
pub mod token;

pub use limiter::LoginLimiter;
pub use password::Passwords;
pub use token::{AccessClaims, Keys};

use uuid::Uuid;

/// The signed-in user a request acts for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Viewer {
    pub user_id: Uuid,
}

/// Reads `Bearer <token>` out of an Authorization value (scheme in any case).
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

//! Access tokens (HS256 JWT) and refresh tokens (256 random bits, stored as SHA-256).

use std::time::Duration;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::error::{AppError, AppResult};

#[derive(Debug, Serialize, Deserialize)]
pub struct AccessClaims {
    pub sub: Uuid,
    /// The sign-in session (refresh-token family) the token belongs to: what
    /// `logout` and reuse detection end, live sockets included.
    pub sid: Uuid,
    pub iat: i64,
    pub exp: i64,
    /// Not set by us; checked when present.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    pub iss: String,
    pub aud: String,
    /// Token kind, so a token minted for something else never passes as an access token.
    pub typ: String,
}

const ACCESS: &str = "access";

/// What a valid access token says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Access {
    pub user_id: Uuid,
    pub session_id: Uuid,
    pub expires_at: DateTime<Utc>,
}
/// Who signs access tokens, and for what: a token signed with the same key
/// for another purpose (or another service sharing the secret) is refused.
pub const ISSUER: &str = "confab";
pub const AUDIENCE: &str = "confab-api";
/// Clock skew tolerated between instances for `iat` and `nbf`: a token
/// issued more than 30 s in the future was not issued by a sane clock.
/// (`exp` has no leeway.)
pub const FUTURE_LEEWAY_SECS: i64 = 30;
/// HS256 with a shorter key is guessable offline from one token.
pub const MIN_SECRET_BYTES: usize = 32;

/// A configured signing secret below `MIN_SECRET_BYTES`.
#[derive(Debug, thiserror::Error)]
#[error("JWT_SECRET must be at least {MIN_SECRET_BYTES} bytes (it has {0})")]
pub struct WeakSecret(pub usize);

#[derive(Clone)]
pub struct Keys {
    encoding: EncodingKey,
    decoding: DecodingKey,
    pub access_ttl: Duration,
    pub refresh_ttl: Duration,
}

impl Keys {
    pub fn new(
        secret: &[u8],
        access_ttl: Duration,
        refresh_ttl: Duration,
    ) -> Result<Self, WeakSecret> {
        if secret.len() < MIN_SECRET_BYTES {
            return Err(WeakSecret(secret.len()));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            access_ttl,
            refresh_ttl,
        })
    }

    pub fn issue_access(
        &self,
        user_id: Uuid,
        session_id: Uuid,
        now: DateTime<Utc>,
    ) -> AppResult<(String, DateTime<Utc>)> {
        let expires_at = now + self.access_ttl;
        let claims = AccessClaims {
            sub: user_id,
            sid: session_id,
            iat: now.timestamp(),
            exp: expires_at.timestamp(),
            nbf: None,
            iss: ISSUER.into(),
            aud: AUDIENCE.into(),
            typ: ACCESS.into(),
        };
        let token = jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(AppError::internal)?;
        Ok((token, expires_at))
    }

    /// Who an access token speaks for, in which session, until when; any
    /// flaw is `UNAUTHENTICATED`.
    pub fn verify_access(&self, token: &str) -> AppResult<Access> {
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 0;
        validation.set_required_spec_claims(&["exp", "sub", "iss", "aud"]);
        validation.set_issuer(&[ISSUER]);
        validation.set_audience(&[AUDIENCE]);
        let data = jsonwebtoken::decode::<AccessClaims>(token, &self.decoding, &validation)
            .map_err(|_| AppError::Unauthenticated("invalid or expired access token".into()))?;
        let latest = Utc::now().timestamp() + FUTURE_LEEWAY_SECS;
        let from_the_future =
            data.claims.iat > latest || data.claims.nbf.is_some_and(|nbf| nbf > latest);
        if data.claims.typ != ACCESS || from_the_future {
            return Err(AppError::Unauthenticated(
                "invalid or expired access token".into(),
            ));
        }
        let expires_at = DateTime::from_timestamp(data.claims.exp, 0)
            .ok_or_else(|| AppError::Unauthenticated("invalid or expired access token".into()))?;
        Ok(Access {
            user_id: data.claims.sub,
            session_id: data.claims.sid,
            expires_at,
        })
    }
}

/// A fresh refresh token: what the client gets, and the hash that is stored.
pub fn new_refresh_token() -> (String, Vec<u8>) {
    let mut raw = [0u8; 32];
    rand::rng().fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    let hash = hash_refresh_token(&token);
    (token, hash)
}

pub fn hash_refresh_token(token: &str) -> Vec<u8> {
    Sha256::digest(token.as_bytes()).to_vec()
}

/// A random secret for signing, when none is configured.
pub fn random_secret() -> String {
    let mut raw = [0u8; 48];
    rand::rng().fill_bytes(&mut raw);
    URL_SAFE_NO_PAD.encode(raw)
}

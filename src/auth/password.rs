//! bcrypt off the async runtime, with a bound on how many hashes run at once.

use std::sync::Arc;

use tokio::sync::Semaphore;

use crate::error::{AppError, AppResult};

/// bcrypt reads at most 72 bytes and the crate silently drops the rest;
/// longer passwords are refused instead.
pub const MAX_PASSWORD_BYTES: usize = 72;
pub const MIN_PASSWORD_BYTES: usize = 8;

#[derive(Clone)]
pub struct Passwords {
    cost: u32,
    /// Verified against when the login names nobody, so both failures cost the same.
    dummy_hash: Arc<str>,
    permits: Arc<Semaphore>,
}

impl Passwords {
    pub async fn new(cost: u32) -> AppResult<Self> {
        let dummy_hash =
            tokio::task::spawn_blocking(move || bcrypt::hash("confab-dummy-password", cost))
                .await?
                .map_err(AppError::internal)?;
        let workers = std::thread::available_parallelism().map_or(2, |n| n.get());
        Ok(Self {
            cost,
            dummy_hash: dummy_hash.into(),
            permits: Arc::new(Semaphore::new(workers * 2)),
        })
    }

    pub fn validate(password: &str) -> AppResult<()> {
        let len = password.len();
        if len < MIN_PASSWORD_BYTES {
            return Err(AppError::bad_input(format!(
                "password must be at least {MIN_PASSWORD_BYTES} bytes"
            )));
        }
        if len > MAX_PASSWORD_BYTES {
            return Err(AppError::bad_input(format!(
                "password must be at most {MAX_PASSWORD_BYTES} bytes"
            )));
        }
        Ok(())
    }

    pub async fn hash(&self, password: &str) -> AppResult<String> {
        Self::validate(password)?;
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let password = password.to_owned();
        let cost = self.cost;
        tokio::task::spawn_blocking(move || bcrypt::hash(password, cost))
            .await?
            .map_err(AppError::internal)
    }

    /// Checks `password` against `hash`, or against the dummy hash when there
    /// is no user, so that "no such user" and "wrong password" take the same time.
    pub async fn verify(&self, password: &str, hash: Option<&str>) -> AppResult<bool> {
        let known = hash.is_some();
        let hash = hash.map_or_else(|| self.dummy_hash.to_string(), str::to_owned);
        // Over-long input never matches; still spend the time of a check.
        let password = if password.len() > MAX_PASSWORD_BYTES {
            String::new()
        } else {
            password.to_owned()
        };
        let _permit = self.permits.acquire().await.map_err(AppError::internal)?;
        let ok = tokio::task::spawn_blocking(move || bcrypt::verify(password, &hash))
            .await?
            .unwrap_or(false);
        Ok(known && ok)
    }
}

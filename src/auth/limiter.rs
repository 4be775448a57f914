//! Failed sign-ins per login name: after too many in a window, further
//! attempts are `RATE_LIMITED` until the window passes. Keyed by the login as
//! typed (normalised), so an unknown name and a wrong password are limited
//! alike and tell an attacker nothing. Per instance, bounded in memory.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use crate::error::{AppError, AppResult};

#[derive(Clone)]
pub struct LoginLimiter {
    inner: Arc<Mutex<HashMap<String, (Instant, u32)>>>,
    max_failures: u32,
    window: Duration,
    max_keys: usize,
}

impl LoginLimiter {
    pub fn new(max_failures: u32, window: Duration) -> Self {
        Self {
            inner: Arc::default(),
            max_failures,
            window,
            max_keys: 100_000,
        }
    }

    fn key(login: &str) -> String {
        login.trim().to_lowercase()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<String, (Instant, u32)>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn check(&self, login: &str) -> AppResult<()> {
        let map = self.map();
        match map.get(&Self::key(login)) {
            Some((since, failures))
                if *failures >= self.max_failures && since.elapsed() < self.window =>
            {
                Err(AppError::RateLimited(
                    "too many failed sign-ins for this login; try again later".into(),
                ))
            }
            _ => Ok(()),
        }
    }

    pub fn record_failure(&self, login: &str) {
        let mut map = self.map();
        if map.len() >= self.max_keys {
            let window = self.window;
            map.retain(|_, (since, _)| since.elapsed() < window);
            if map.len() >= self.max_keys {
                return; // still full of live entries: fail open rather than grow
            }
        }
        let entry = map.entry(Self::key(login)).or_insert((Instant::now(), 0));
        if entry.0.elapsed() >= self.window {
            *entry = (Instant::now(), 0);
        }
        entry.1 += 1;
    }

    pub fn record_success(&self, login: &str) {
        self.map().remove(&Self::key(login));
    }
}

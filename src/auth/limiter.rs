//! Sign-in attempts per login name: after too many failures in a window,
//! further attempts are `RATE_LIMITED` (with the seconds to wait) until the
//! window passes. Keyed by the login as typed (trimmed, lowercased), so an
//! unknown name and a wrong password are limited alike and tell an attacker
//! nothing. Per instance, bounded in memory.
//!
//! An attempt is counted before its password is checked (`reserve`), in the
//! same lock as the check, so concurrent guesses cannot all pass a check
//! that none of them has recorded yet; a success clears the count. Keys are
//! SHA-256 digests, 32 bytes whatever the login's length, and the map never
//! holds more than `max_keys` of them: expired windows go first, then the
//! oldest.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use sha2::{Digest, Sha256};

use crate::error::{AppError, AppResult};

/// Logins tracked at most (about 60 bytes each).
pub const DEFAULT_MAX_KEYS: usize = 100_000;

type Key = [u8; 32];

struct Window {
    since: Instant,
    /// Attempts in this window that did not (yet) succeed.
    attempts: u32,
}

#[derive(Clone)]
pub struct LoginLimiter {
    inner: Arc<Mutex<HashMap<Key, Window>>>,
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
            max_keys: DEFAULT_MAX_KEYS,
        }
    }

    /// The same limiter tracking at most `max_keys` logins.
    pub fn with_max_keys(mut self, max_keys: usize) -> Self {
        self.max_keys = max_keys.max(1);
        self
    }

    fn key(login: &str) -> Key {
        Sha256::digest(login.trim().to_lowercase().as_bytes()).into()
    }

    fn map(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Window>> {
        self.inner
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Counts an attempt for `login`, or refuses it when the window already
    /// holds `max_failures` of them. Call before verifying the password; a
    /// failed or interrupted attempt stays counted.
    pub fn reserve(&self, login: &str) -> AppResult<()> {
        let key = Self::key(login);
        let now = Instant::now();
        let mut map = self.map();
        if !map.contains_key(&key) {
            self.make_room(&mut map, now);
        }
        let entry = map.entry(key).or_insert(Window {
            since: now,
            attempts: 0,
        });
        if now.duration_since(entry.since) >= self.window {
            *entry = Window {
                since: now,
                attempts: 0,
            };
        }
        if entry.attempts >= self.max_failures {
            let wait = (entry.since + self.window).saturating_duration_since(now);
            let secs = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            return Err(AppError::RateLimited {
                message: "too many failed sign-ins for this login; try again later".into(),
                retry_after: secs.max(1),
            });
        }
        entry.attempts += 1;
        Ok(())
    }

    /// Makes room for one more key: drops expired windows, then the oldest.
    fn make_room(&self, map: &mut HashMap<Key, Window>, now: Instant) {
        if map.len() < self.max_keys {
            return;
        }
        let window = self.window;
        map.retain(|_, w| now.duration_since(w.since) < window);
        while map.len() >= self.max_keys {
            let Some(oldest) = map.iter().min_by_key(|(_, w)| w.since).map(|(k, _)| *k) else {
                break;
            };
            map.remove(&oldest);
        }
    }

    /// A successful sign-in clears the login's count.
    pub fn record_success(&self, login: &str) {
        self.map().remove(&Self::key(login));
    }

    /// How many logins are tracked now.
    pub fn tracked(&self) -> usize {
        self.map().len()
    }
}

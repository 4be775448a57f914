//! Who is typing where, on this instance: a mirror of every typing change
//! any instance announced (the broker brings them all), never stored.
//!
//! A `true` holds for `TYPING_TTL` unless repeated; `false` ends it. Each
//! instance expires entries by its own clock from when the change reached
//! it, so instances agree within the broker's delivery time.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;
use uuid::Uuid;

/// How long a `typing: true` holds without a repeat (SEMANTICS: 10 s).
pub const TYPING_TTL: Duration = Duration::from_secs(10);
/// At most this many (place, user) entries are held; beyond it, new ones
/// are dropped until old ones expire (a typing indicator is best effort).
const MAX_ENTRIES: usize = 100_000;

/// Where someone types: a room, or a direct thread (to the other party).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TypingPlace {
    Room(Uuid),
    /// The thread with `to`, as `to` sees it.
    Direct {
        to: Uuid,
    },
}

#[derive(Clone, Default)]
pub struct TypingBoard {
    places: Arc<Mutex<Places>>,
}

#[derive(Default)]
struct Places {
    by_place: HashMap<TypingPlace, HashMap<Uuid, Instant>>,
    entries: usize,
}

impl Places {
    fn prune(&mut self, now: Instant) {
        let mut removed = 0;
        self.by_place.retain(|_, users| {
            let before = users.len();
            users.retain(|_, until| *until > now);
            removed += before - users.len();
            !users.is_empty()
        });
        self.entries -= removed;
    }
}

impl TypingBoard {
    fn places(&self) -> MutexGuard<'_, Places> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.places
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Records a change; true if it changed who is typing at `place`
    /// (a repeated `true` only extends the entry).
    pub fn apply(&self, place: TypingPlace, user: Uuid, typing: bool) -> bool {
        let now = Instant::now();
        let mut places = self.places();
        if typing {
            if places.entries >= MAX_ENTRIES {
                places.prune(now);
            }
            let full = places.entries >= MAX_ENTRIES;
            let users = places.by_place.entry(place).or_default();
            let was = users.get(&user).is_some_and(|until| *until > now);
            if !users.contains_key(&user) {
                if full {
                    return false;
                }
                places.entries += 1;
            }
            places
                .by_place
                .entry(place)
                .or_default()
                .insert(user, now + TYPING_TTL);
            !was
        } else {
            let Some(users) = places.by_place.get_mut(&place) else {
                return false;
            };
            let Some(until) = users.remove(&user) else {
                return false;
            };
            if users.is_empty() {
                places.by_place.remove(&place);
            }
            places.entries -= 1;
            until > now
        }
    }

    /// Who is typing at `place` now, in id order.
    pub fn typing(&self, place: TypingPlace) -> Vec<Uuid> {
        let now = Instant::now();
        let places = self.places();
        let mut users: Vec<Uuid> = places
            .by_place
            .get(&place)
            .map(|users| {
                users
                    .iter()
                    .filter(|(_, until)| **until > now)
                    .map(|(user, _)| *user)
                    .collect()
            })
            .unwrap_or_default();
        users.sort_unstable();
        users
    }

    pub fn is_typing(&self, place: TypingPlace, user: Uuid) -> bool {
        let now = Instant::now();
        self.places()
            .by_place
            .get(&place)
            .and_then(|users| users.get(&user))
            .is_some_and(|until| *until > now)
    }

    /// When the next entry at `place` that is still live expires.
    pub fn next_expiry(&self, place: TypingPlace) -> Option<Instant> {
        let now = Instant::now();
        self.places()
            .by_place
            .get(&place)?
            .values()
            .filter(|until| **until > now)
            .min()
            .copied()
    }
}

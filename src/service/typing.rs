//! Typing indicators: announced to every instance, never stored, and
//! throttled at the source: at most one change per user per place per
//! second goes out, and the last one always does (deferred to the end of
//! that second when it came too soon).

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use tokio::time::Instant;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic, TypingPlace},
};

/// At most one change per user per place per this.
pub const TYPING_INTERVAL: Duration = Duration::from_secs(1);
/// Throttle entries kept; older than a few intervals are dropped first.
const MAX_TRACKED: usize = 100_000;

#[derive(Clone)]
pub struct Typing {
    broker: Arc<dyn Broker>,
    slots: Arc<Mutex<HashMap<(TypingPlace, Uuid), Slot>>>,
}

struct Slot {
    /// When the last change went out.
    sent_at: Instant,
    /// A change that came too soon, to go out at `sent_at + TYPING_INTERVAL`
    /// (a task is waiting for it while this is Some).
    pending: Option<bool>,
}

fn topic(place: TypingPlace) -> Topic {
    match place {
        TypingPlace::Room(room_id) => Topic::Room(room_id),
        TypingPlace::Direct { to } => Topic::User(to),
    }
}

impl Typing {
    pub fn new(broker: Arc<dyn Broker>) -> Self {
        Self {
            broker,
            slots: Arc::default(),
        }
    }

    fn slots(&self) -> MutexGuard<'_, HashMap<(TypingPlace, Uuid), Slot>> {
        self.slots
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn publish(&self, place: TypingPlace, user_id: Uuid, typing: bool) {
        let event = Event::Typing {
            place,
            user_id,
            typing,
        };
        self.broker.publish(topic(place), event);
    }

    /// The caller checked that `user` may be at `place`.
    pub fn set(&self, place: TypingPlace, user: Uuid, typing: bool) -> AppResult<()> {
        let now = Instant::now();
        let mut slots = self.slots();
        if slots.len() >= MAX_TRACKED {
            slots.retain(|_, s| s.pending.is_some() || now - s.sent_at < 4 * TYPING_INTERVAL);
            if slots.len() >= MAX_TRACKED {
                return Err(AppError::RateLimited {
                    message: "too many typing changes right now".into(),
                    retry_after: TYPING_INTERVAL.as_secs(),
                });
            }
        }
        match slots.get_mut(&(place, user)) {
            Some(slot) if now - slot.sent_at < TYPING_INTERVAL => {
                let scheduled = slot.pending.replace(typing).is_some();
                if !scheduled {
                    let at = slot.sent_at + TYPING_INTERVAL;
                    let this = self.clone();
                    tokio::spawn(async move {
                        tokio::time::sleep_until(at).await;
                        this.send_pending(place, user);
                    });
                }
            }
            _ => {
                slots.insert(
                    (place, user),
                    Slot {
                        sent_at: now,
                        pending: None,
                    },
                );
                drop(slots);
                self.publish(place, user, typing);
            }
        }
        Ok(())
    }

    fn send_pending(&self, place: TypingPlace, user: Uuid) {
        let pending = {
            let mut slots = self.slots();
            let Some(slot) = slots.get_mut(&(place, user)) else {
                return;
            };
            slot.sent_at = Instant::now();
            slot.pending.take()
        };
        if let Some(typing) = pending {
            self.publish(place, user, typing);
        }
    }

    /// A send ends its sender's typing there: announced only if they are
    /// typing (every instance's board knows), so a send costs nothing more.
    pub fn stop_on_send(&self, place: TypingPlace, user: Uuid) {
        let typing_now = self.broker.hub().typing().is_typing(place, user);
        let pending_true = self
            .slots()
            .get(&(place, user))
            .is_some_and(|s| s.pending == Some(true));
        if typing_now || pending_true {
            // Not throttled: the send itself is the change others see.
            if let Some(slot) = self.slots().get_mut(&(place, user)) {
                slot.pending = None;
                slot.sent_at = Instant::now();
            }
            self.publish(place, user, false);
        }
    }
}

//! Live events between a committed write and the subscriptions it concerns.
//!
//! Events are wake-ups carrying positions and ids, never payloads: a reader
//! re-reads the database from its last position, so one that lagged catches
//! up with no gap and no duplicate. Every buffer is bounded. Events are routed per topic
//! (a room, a user), so a delivery costs only the subscribers it concerns.

mod hub;
mod memory;
mod postgres;
mod typing;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

pub use hub::{Hub, RoomFeedGuard, RoomFeeds, TopicReceiver};
pub use memory::MemoryBroker;
pub use postgres::PgBroker;
pub use typing::{TYPING_TTL, TypingBoard, TypingPlace};

/// Who an event concerns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Topic {
    Room(Uuid),
    User(Uuid),
    /// A sign-in session (refresh-token family): its live sockets.
    Session(Uuid),
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Event {
    /// The room's stream has committed every position up to `seq` (positions
    /// are committed in order, so none before it is still missing).
    RoomStream { room_id: Uuid, seq: i64 },
    /// The room is gone, and with it its stream.
    RoomDeleted { room_id: Uuid },
    /// The user's stream of direct messages has committed every position up to `seq`.
    UserStream { user_id: Uuid, seq: i64 },
    /// The sign-in session ended (logout, or a reused refresh token revoked
    /// its family): its sockets close.
    SessionEnded { session_id: Uuid },
    /// Someone started (`true`) or stopped typing at `place`: not stored;
    /// every instance's `TypingBoard` follows these.
    Typing {
        place: TypingPlace,
        user_id: Uuid,
        typing: bool,
    },
    /// Events may have been missed (the broker reconnected, a receiver lagged): re-read.
    Resync,
}

pub trait Broker: Send + Sync + 'static {
    /// Announces a committed write: call after the commit. Wake-ups say
    /// "committed through position N", so their order does not matter, and
    /// one that is lost (a full queue, a crash right after the commit) is
    /// made up by the next one or by the readers' periodic head check: this
    /// never fails and never waits.
    fn publish(&self, topic: Topic, event: Event);
    /// This instance's subscribers.
    fn hub(&self) -> &Hub;
    fn subscribe(&self, topic: Topic) -> TopicReceiver {
        self.hub().subscribe(topic)
    }
}

//! This instance's subscribers, one bounded broadcast channel per topic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::{Notify, broadcast};
use uuid::Uuid;

use super::{Event, Topic, TypingBoard};

/// Per-topic buffer. Events are wake-ups, so a receiver that falls behind
/// loses nothing but redundant wake-ups: it re-reads the database anyway.
const TOPIC_CAPACITY: usize = 64;

#[derive(Clone, Default)]
pub struct Hub {
    topics: Arc<Mutex<HashMap<Topic, broadcast::Sender<Event>>>>,
    /// Live room feeds on this instance, per (room, member).
    room_feeds: RoomFeeds,
    /// Who is typing where, from every instance's announcements.
    typing: TypingBoard,
}

impl Hub {
    fn topics(&self) -> MutexGuard<'_, HashMap<Topic, broadcast::Sender<Event>>> {
        // A panic while holding this lock leaves a map that is still consistent.
        self.topics
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    pub fn subscribe(&self, topic: Topic) -> TopicReceiver {
        let receiver = self
            .topics()
            .entry(topic)
            .or_insert_with(|| broadcast::channel(TOPIC_CAPACITY).0)
            .subscribe();
        TopicReceiver {
            hub: self.clone(),
            topic,
            receiver,
        }
    }

    /// Hands `event` to this instance's subscribers of `topic`. Never blocks.
    pub fn dispatch(&self, topic: Topic, event: Event) {
        if let Event::Typing {
            place,
            user_id,
            typing,
        } = event
        {
            // Every instance keeps the whole board, subscribers here or not.
            self.typing.apply(place, user_id, typing);
        }
        let mut topics = self.topics();
        if let Some(sender) = topics.get(&topic)
            && sender.send(event).is_err()
        {
            topics.remove(&topic);
        }
    }

    /// Wakes every subscriber (after the broker may have missed events).
    pub fn dispatch_all(&self, event: Event) {
        for sender in self.topics().values() {
            let _ = sender.send(event.clone());
        }
    }

    pub fn topic_count(&self) -> usize {
        self.topics().len()
    }

    pub fn typing(&self) -> &TypingBoard {
        &self.typing
    }

    pub fn room_feeds(&self) -> &RoomFeeds {
        &self.room_feeds
    }
}

/// Counts this instance's live feeds per (room, member), so that leaving or
/// deleting a room can wait until the feeds it ends have ended: their
/// `complete` is then on its way before the mutation answers.
#[derive(Clone, Default)]
pub struct RoomFeeds {
    live: Arc<Mutex<HashMap<(Uuid, Uuid), usize>>>,
    ended: Arc<Notify>,
}

impl RoomFeeds {
    fn live(&self) -> MutexGuard<'_, HashMap<(Uuid, Uuid), usize>> {
        self.live
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Registers a feed of `room_id` for `user_id`, until the guard drops.
    pub fn register(&self, room_id: Uuid, user_id: Uuid) -> RoomFeedGuard {
        *self.live().entry((room_id, user_id)).or_insert(0) += 1;
        RoomFeedGuard {
            feeds: self.clone(),
            key: (room_id, user_id),
        }
    }

    fn any_live(&self, room_id: Uuid, user_id: Option<Uuid>) -> bool {
        let live = self.live();
        match user_id {
            Some(user) => live.contains_key(&(room_id, user)),
            None => live.keys().any(|(room, _)| *room == room_id),
        }
    }

    /// Waits until no feed of `room_id` (for `user_id`, or for anyone) is
    /// live here, at most `limit`. False if some still were.
    pub async fn until_ended(
        &self,
        room_id: Uuid,
        user_id: Option<Uuid>,
        limit: std::time::Duration,
    ) -> bool {
        let wait = async {
            loop {
                let ended = self.ended.notified();
                tokio::pin!(ended);
                ended.as_mut().enable();
                if !self.any_live(room_id, user_id) {
                    return;
                }
                ended.await;
            }
        };
        tokio::time::timeout(limit, wait).await.is_ok()
    }
}

pub struct RoomFeedGuard {
    feeds: RoomFeeds,
    key: (Uuid, Uuid),
}

impl Drop for RoomFeedGuard {
    fn drop(&mut self) {
        {
            let mut live = self.feeds.live();
            if let Some(count) = live.get_mut(&self.key) {
                *count -= 1;
                if *count == 0 {
                    live.remove(&self.key);
                }
            }
        }
        self.feeds.ended.notify_waiters();
    }
}

/// A subscription to one topic; the topic's channel goes when its last receiver does.
pub struct TopicReceiver {
    hub: Hub,
    topic: Topic,
    receiver: broadcast::Receiver<Event>,
}

impl TopicReceiver {
    /// The next event; `Resync` stands in for any that were dropped while lagging.
    /// None when the hub is gone.
    pub async fn recv(&mut self) -> Option<Event> {
        match self.receiver.recv().await {
            Ok(event) => Some(event),
            Err(broadcast::error::RecvError::Lagged(_)) => Some(Event::Resync),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

impl Drop for TopicReceiver {
    fn drop(&mut self) {
        let mut topics = self.hub.topics();
        if let Some(sender) = topics.get(&self.topic) {
            // This receiver still counts until it is dropped, after this function.
            if sender.receiver_count() <= 1 {
                topics.remove(&self.topic);
            }
        }
    }
}

//! This instance's subscribers, one bounded broadcast channel per topic.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, MutexGuard},
};

use tokio::sync::broadcast;

use super::{Event, Topic};

/// Per-topic buffer. Events are wake-ups, so a receiver that falls behind
/// loses nothing but redundant wake-ups: it re-reads the database anyway.
const TOPIC_CAPACITY: usize = 64;

#[derive(Clone, Default)]
pub struct Hub {
    topics: Arc<Mutex<HashMap<Topic, broadcast::Sender<Event>>>>,
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

//! One process: events go straight to this instance's hub.

use super::{Broker, Event, Hub, Topic};

#[derive(Default)]
pub struct MemoryBroker {
    hub: Hub,
}

impl Broker for MemoryBroker {
    fn publish(&self, topic: Topic, event: Event) {
        self.hub.dispatch(topic, event);
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

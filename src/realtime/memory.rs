//! One process: events go straight to this instance's hub.

use async_trait::async_trait;

use super::{Broker, Event, Hub, Topic};
use crate::error::AppResult;

#[derive(Default)]
pub struct MemoryBroker {
    hub: Hub,
}

#[async_trait]
impl Broker for MemoryBroker {
    async fn publish(&self, topic: Topic, event: Event) -> AppResult<()> {
        self.hub.dispatch(topic, event);
        Ok(())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

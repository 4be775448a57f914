//! One process: events go straight to this instance's hub.

use async_trait::async_trait;
use sea_orm::DatabaseTransaction;

use super::{Broker, Event, Hub, Topic};
use crate::error::AppResult;

#[derive(Default)]
pub struct MemoryBroker {
    hub: Hub,
}

#[async_trait]
impl Broker for MemoryBroker {
    /// SQLite runs with one pooled connection (see `db::connect`), which the
    /// transaction holds until it ends: transactions, and so these dispatches,
    /// happen in commit order, and a woken subscriber's read waits for the
    /// commit (and finds nothing if it rolled back).
    async fn publish_in(
        &self,
        _txn: &DatabaseTransaction,
        topic: Topic,
        event: Event,
    ) -> AppResult<()> {
        self.hub.dispatch(topic, event);
        Ok(())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

//! Many instances on one PostgreSQL database: NOTIFY after commit, and one
//! LISTEN connection per instance feeding its hub. Our own notifications come
//! back through LISTEN too, so publishing never dispatches locally.

use async_trait::async_trait;
use sea_orm::sqlx::{
    self,
    postgres::{PgListener, PgPool},
};
use serde::{Deserialize, Serialize};
use tokio::task::JoinHandle;

use super::{Broker, Event, Hub, Topic};
use crate::error::{AppError, AppResult};

const CHANNEL: &str = "confab_events";

#[derive(Serialize, Deserialize)]
struct Envelope {
    topic: Topic,
    event: Event,
}

pub struct PgBroker {
    pool: PgPool,
    hub: Hub,
    listener: JoinHandle<()>,
}

impl PgBroker {
    /// Starts listening before returning, so nothing committed after this is missed.
    pub async fn start(pool: PgPool) -> AppResult<Self> {
        let hub = Hub::default();
        let mut listener = PgListener::connect_with(&pool)
            .await
            .map_err(AppError::internal)?;
        listener.listen(CHANNEL).await.map_err(AppError::internal)?;
        let task_hub = hub.clone();
        let listener = tokio::spawn(async move { listen(listener, task_hub).await });
        Ok(Self {
            pool,
            hub,
            listener,
        })
    }
}

async fn listen(mut listener: PgListener, hub: Hub) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Envelope>(notification.payload()) {
                    Ok(envelope) => hub.dispatch(envelope.topic, envelope.event),
                    Err(err) => tracing::warn!(%err, "ignoring malformed notification"),
                }
            }
            Ok(None) => {
                // The connection dropped; the next try_recv reconnects and
                // re-LISTENs. Whatever was sent meanwhile is lost: wake everyone
                // to re-read from where they are.
                tracing::warn!("LISTEN connection lost; reconnecting");
                hub.dispatch_all(Event::Resync);
            }
            Err(err) => {
                tracing::error!(%err, "LISTEN failed; retrying in 1 s");
                tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                hub.dispatch_all(Event::Resync);
            }
        }
    }
}

impl Drop for PgBroker {
    fn drop(&mut self) {
        self.listener.abort();
    }
}

#[async_trait]
impl Broker for PgBroker {
    async fn publish(&self, topic: Topic, event: Event) -> AppResult<()> {
        let payload =
            serde_json::to_string(&Envelope { topic, event }).map_err(AppError::internal)?;
        sqlx::query("SELECT pg_notify($1, $2)")
            .bind(CHANNEL)
            .bind(payload)
            .execute(&self.pool)
            .await
            .map_err(AppError::internal)?;
        Ok(())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

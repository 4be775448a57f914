//! Many instances on one PostgreSQL database: NOTIFY inside the writing
//! transaction (delivered at commit, in commit order), and one LISTEN
//! connection per instance feeding its hub. Our own notifications come back
//! through LISTEN too, so publishing never dispatches locally.

use std::time::Duration;

use async_trait::async_trait;
use sea_orm::sqlx::{
    self,
    postgres::{PgListener, PgPool},
};
use sea_orm::{ConnectionTrait, DatabaseTransaction, DbBackend, Statement};
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
    hub: Hub,
    listener: JoinHandle<()>,
}

impl PgBroker {
    /// Starts listening before returning, so nothing committed after this is missed.
    pub async fn start(pool: PgPool) -> AppResult<Self> {
        let hub = Hub::default();
        let listener = connect(&pool).await.map_err(AppError::internal)?;
        let task_hub = hub.clone();
        let listener = tokio::spawn(async move { listen(pool, listener, task_hub).await });
        Ok(Self { hub, listener })
    }
}

async fn connect(pool: &PgPool) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// A fresh LISTEN connection, retried with backoff until it works.
async fn reconnect(pool: &PgPool) -> PgListener {
    let mut delay = Duration::from_millis(100);
    loop {
        match connect(pool).await {
            Ok(listener) => return listener,
            Err(err) => {
                tracing::error!(%err, retry_in = ?delay, "LISTEN reconnect failed");
                tokio::time::sleep(delay).await;
                delay = (delay * 2).min(Duration::from_secs(5));
            }
        }
    }
}

async fn listen(pool: PgPool, mut listener: PgListener, hub: Hub) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Envelope>(notification.payload()) {
                    Ok(envelope) => hub.dispatch(envelope.topic, envelope.event),
                    Err(err) => tracing::warn!(%err, "ignoring malformed notification"),
                }
            }
            Ok(None) | Err(_) => {
                // The connection dropped and whatever was sent meanwhile is
                // lost. LISTEN again first, then wake every subscriber to
                // re-read from where it is: anything committed before the new
                // LISTEN is in that re-read, anything after is notified.
                tracing::warn!("LISTEN connection lost; reconnecting");
                listener = reconnect(&pool).await;
                tracing::info!("LISTEN connection restored; subscribers re-read");
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
    /// NOTIFY in the transaction: PostgreSQL delivers it only if the
    /// transaction commits, and notifications of different transactions in
    /// the order they committed — to every instance listening.
    async fn publish_in(
        &self,
        txn: &DatabaseTransaction,
        topic: Topic,
        event: Event,
    ) -> AppResult<()> {
        let payload =
            serde_json::to_string(&Envelope { topic, event }).map_err(AppError::internal)?;
        txn.execute_raw(Statement::from_sql_and_values(
            DbBackend::Postgres,
            "SELECT pg_notify($1, $2)",
            [CHANNEL.into(), payload.into()],
        ))
        .await?;
        Ok(())
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

//! Many instances on one PostgreSQL database: one LISTEN connection per
//! instance feeds its hub, and one notifier per instance sends the wake-ups.
//! Publishing dispatches to this instance's hub at once (its subscribers
//! do not wait for a round trip through the database); each notification
//! names the instance that sent it, and the LISTEN echo of our own is
//! skipped.
//!
//! Why a notifier, after the commit, and not NOTIFY inside the writing
//! transaction: PostgreSQL takes a database-wide lock for a notifying
//! transaction's commit and holds it through the commit's WAL flush, so every
//! notifying write of the whole database commits one at a time. Wake-ups say
//! "committed through position N" (their order does not matter), so the
//! writes commit without NOTIFY, in parallel, and the notifier sends what
//! queued up meanwhile in one small transaction that does not wait for its
//! flush (`synchronous_commit = off`: losing a wake-up in a crash is made up
//! by the readers' periodic head check).

use std::time::Duration;

use sea_orm::sqlx::{
    self, Connection,
    postgres::{PgConnection, PgListener, PgPool},
};
use serde::{Deserialize, Serialize};
use tokio::{sync::mpsc, task::JoinHandle};
use uuid::Uuid;

use super::{Broker, Event, Hub, Topic};
use crate::error::{AppError, AppResult};

const CHANNEL: &str = "confab_events";
/// Wake-ups waiting for the notifier; beyond this they are dropped (and made
/// up by the readers' head checks) rather than slowing writers down.
const QUEUE: usize = 4096;
/// Wake-ups sent in one NOTIFY transaction at most.
const BATCH: usize = 256;

#[derive(Serialize, Deserialize)]
struct Envelope {
    topic: Topic,
    event: Event,
}

/// One NOTIFY payload: the sending instance and its wake-ups.
#[derive(Deserialize)]
struct Notification {
    origin: Uuid,
    events: Vec<Envelope>,
}

pub struct PgBroker {
    hub: Hub,
    queue: mpsc::Sender<Envelope>,
    listener: JoinHandle<()>,
    notifier: JoinHandle<()>,
}

impl PgBroker {
    /// Starts listening before returning, so nothing committed after this is missed.
    pub async fn start(pool: PgPool) -> AppResult<Self> {
        let hub = Hub::default();
        // This instance, as its notifications name it.
        let origin = Uuid::now_v7();
        let listener = connect(&pool).await.map_err(AppError::internal)?;
        let task_hub = hub.clone();
        let listen_pool = pool.clone();
        let listener =
            tokio::spawn(async move { listen(listen_pool, listener, task_hub, origin).await });
        let (queue, pending) = mpsc::channel(QUEUE);
        let notifier = tokio::spawn(notify(pool, pending, origin));
        Ok(Self {
            hub,
            queue,
            listener,
            notifier,
        })
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

async fn listen(pool: PgPool, mut listener: PgListener, hub: Hub, origin: Uuid) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                match serde_json::from_str::<Notification>(notification.payload()) {
                    // Ours: dispatched here when it was published.
                    Ok(notification) if notification.origin == origin => {}
                    Ok(notification) => {
                        for envelope in notification.events {
                            hub.dispatch(envelope.topic, envelope.event);
                        }
                    }
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

/// The notifier's own connection, whose commits do not wait for their flush.
async fn notifier_connection(pool: &PgPool) -> Result<PgConnection, sqlx::Error> {
    let mut conn = PgConnection::connect_with(&pool.connect_options()).await?;
    sqlx::query("SET synchronous_commit TO off")
        .execute(&mut conn)
        .await?;
    Ok(conn)
}

/// A NOTIFY payload holds less than 8,000 bytes: `Notification`s under that,
/// `{"origin":"…","events":[…]}`.
fn payloads(origin: Uuid, batch: &[Envelope]) -> Vec<String> {
    const MAX: usize = 7_000;
    let head = format!("{{\"origin\":\"{origin}\",\"events\":[");
    let mut out = Vec::new();
    let mut current = head.clone();
    for envelope in batch {
        let Ok(one) = serde_json::to_string(envelope) else {
            continue;
        };
        if current.len() > head.len() && current.len() + one.len() + 3 > MAX {
            current.push_str("]}");
            out.push(std::mem::replace(&mut current, head.clone()));
        }
        if current.len() > head.len() {
            current.push(',');
        }
        current.push_str(&one);
    }
    if current.len() > head.len() {
        current.push_str("]}");
        out.push(current);
    }
    out
}

/// Sends queued wake-ups: what has queued up at once goes in one transaction.
async fn notify(pool: PgPool, mut pending: mpsc::Receiver<Envelope>, origin: Uuid) {
    let mut conn: Option<PgConnection> = None;
    let mut batch = Vec::with_capacity(BATCH);
    let mut delay = Duration::from_millis(100);
    while pending.recv_many(&mut batch, BATCH).await > 0 {
        let payloads = payloads(origin, &batch);
        batch.clear();
        loop {
            let live = match conn.as_mut() {
                Some(live) => live,
                None => match notifier_connection(&pool).await {
                    Ok(fresh) => conn.insert(fresh),
                    Err(err) => {
                        tracing::error!(%err, retry_in = ?delay, "notifier cannot connect");
                        tokio::time::sleep(delay).await;
                        delay = (delay * 2).min(Duration::from_secs(5));
                        continue;
                    }
                },
            };
            let sent = sqlx::query("SELECT pg_notify($1, p) FROM unnest($2::text[]) AS p")
                .bind(CHANNEL)
                .bind(&payloads)
                .execute(live)
                .await;
            match sent {
                Ok(_) => {
                    delay = Duration::from_millis(100);
                    break;
                }
                Err(err) => {
                    // Dropped; readers' head checks make it up. Reconnect for the next.
                    tracing::error!(%err, "NOTIFY failed; wake-ups dropped");
                    conn = None;
                    break;
                }
            }
        }
    }
}

impl Drop for PgBroker {
    fn drop(&mut self) {
        self.listener.abort();
        self.notifier.abort();
    }
}

impl Broker for PgBroker {
    fn publish(&self, topic: Topic, event: Event) {
        self.hub.dispatch(topic, event.clone());
        if self.queue.try_send(Envelope { topic, event }).is_err() {
            tracing::warn!("wake-up queue full; readers catch up on their next head check");
        }
    }

    fn hub(&self) -> &Hub {
        &self.hub
    }
}

//! The live feed of a user's direct messages: gap-free, exactly once, in
//! commit order. (Rooms have streams with positions: `room_stream`.)
//!
//! A feed subscribes to its broker topic before it reads anything. A send
//! announces its row from inside its transaction (PostgreSQL: NOTIFY, which
//! is delivered at commit and in commit order to every instance; SQLite: one
//! connection, so transactions are already serial), so events carry the ids
//! of new rows in commit order, and the feed reads and delivers exactly those,
//! in that order: every subscriber on every instance sees one order.
//!
//! Every feed classifies every kind of event itself (`Source::classify`, an
//! exhaustive match): a new kind does not compile until each feed decides.
//! A resync (after the feed lagged or the LISTEN connection dropped) makes
//! the feed re-read its window. created_at order is not commit
//! order (a send stamped later can commit first), so a re-read looks back
//! `LOOKBACK` from the newest row seen; ids already delivered are skipped in
//! both paths, so nothing is delivered twice. Every buffer is bounded.

use std::{
    collections::{BTreeSet, VecDeque},
    future::Future,
};

use chrono::{DateTime, TimeDelta, Utc};
use entity::direct_message;
use futures_util::{FutureExt, Stream};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    error::AppResult,
    realtime::{Broker, Event, Topic, TopicReceiver},
    service::{direct, now},
};

/// How late (after its created_at) a row may commit and still be delivered.
/// Sends take their timestamp inside their transaction, so this only has to
/// cover one insert and its commit.
pub const LOOKBACK: TimeDelta = TimeDelta::seconds(10);
/// Rows per read.
const READ_BATCH: u64 = 100;
/// Delivered ids remembered (those inside the window); the oldest go first beyond this.
const MAX_SEEN: usize = 10_000;
/// Wake-ups folded into one re-read.
const MAX_COALESCE: usize = 64;

/// The position of a feed: the newest created_at seen and the ids seen within the window.
#[derive(Debug)]
pub struct Lookback {
    newest: DateTime<Utc>,
    seen: BTreeSet<(DateTime<Utc>, Uuid)>,
}

impl Lookback {
    pub fn new(start: DateTime<Utc>) -> Self {
        Self {
            newest: start,
            seen: BTreeSet::new(),
        }
    }

    /// Where the next re-read starts.
    pub fn since(&self) -> DateTime<Utc> {
        self.newest - LOOKBACK
    }

    /// True the first time a row is offered, false for a row already seen.
    pub fn accept(&mut self, at: DateTime<Utc>, id: Uuid) -> bool {
        if at < self.since() || !self.seen.insert((at, id)) {
            return false;
        }
        self.newest = self.newest.max(at);
        true
    }

    /// Forgets ids that fell out of the window (and the oldest beyond MAX_SEEN).
    pub fn prune(&mut self) {
        let keep = self.seen.split_off(&(self.since(), Uuid::nil()));
        self.seen = keep;
        while self.seen.len() > MAX_SEEN {
            self.seen.pop_first();
        }
    }
}

/// What a feed reads and who may keep reading it.
pub trait Source: Send + Sync + 'static {
    type Row: Send + 'static;
    fn key(row: &Self::Row) -> (DateTime<Utc>, Uuid);
    /// Rows stamped at or after `since`, after `after` (exclusive), oldest first.
    fn read(
        &self,
        db: &DatabaseConnection,
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
    ) -> impl Future<Output = AppResult<Vec<Self::Row>>> + Send;
    /// Checked after every read: false ends the feed before it delivers what it read.
    fn allowed(&self, db: &DatabaseConnection) -> impl Future<Output = AppResult<bool>> + Send;
    /// What an event means to this feed. Match every kind, with no catch-all.
    fn classify(&self, event: &Event) -> Effect;
    /// The feed's rows among `ids`, in any order.
    fn read_ids(
        &self,
        db: &DatabaseConnection,
        ids: &[Uuid],
    ) -> impl Future<Output = AppResult<Vec<Self::Row>>> + Send;
}

/// What an event means to one feed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Effect {
    /// One of this feed's rows committed: read and deliver it.
    Deliver(Uuid),
    /// The subscriber lost access: the feed ends at once.
    End,
    /// Events may have been missed: re-read the window.
    Reread,
    /// Nothing for this feed.
    Ignore,
}

pub struct DirectMessages {
    pub viewer: Uuid,
}

impl Source for DirectMessages {
    type Row = direct_message::Model;

    fn key(row: &direct_message::Model) -> (DateTime<Utc>, Uuid) {
        (row.created_at, row.id)
    }

    async fn read(
        &self,
        db: &DatabaseConnection,
        since: DateTime<Utc>,
        after: Option<(DateTime<Utc>, Uuid)>,
    ) -> AppResult<Vec<direct_message::Model>> {
        direct::messages_since(db, self.viewer, since, after, READ_BATCH).await
    }

    async fn allowed(&self, _db: &DatabaseConnection) -> AppResult<bool> {
        Ok(true)
    }

    fn classify(&self, event: &Event) -> Effect {
        match *event {
            Event::DirectMessage { message_id } => Effect::Deliver(message_id),
            Event::RoomStream { .. } | Event::RoomDeleted { .. } => Effect::Ignore,
            Event::Resync => Effect::Reread,
        }
    }

    async fn read_ids(
        &self,
        db: &DatabaseConnection,
        ids: &[Uuid],
    ) -> AppResult<Vec<direct_message::Model>> {
        direct::messages_by_ids(db, self.viewer, ids).await
    }
}

/// What the events taken in one wake-up ask the feed to read.
struct Wake {
    reread: bool,
    announced: Vec<Uuid>,
}

impl Wake {
    /// Folds in one event's effect; true when the feed must end.
    fn take(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Deliver(id) => self.announced.push(id),
            Effect::Reread => self.reread = true,
            Effect::Ignore => {}
            Effect::End => return true,
        }
        false
    }
}

pub struct Feed<S: Source> {
    db: DatabaseConnection,
    source: S,
    events: TopicReceiver,
    position: Lookback,
    /// Read but not yet handed out: at most one batch.
    pending: VecDeque<S::Row>,
    /// Where an unfinished re-read continues (the last batch was full).
    scan: Option<(DateTime<Utc>, Uuid)>,
}

/// New direct messages sent to or by `viewer`.
pub async fn direct_messages(
    db: DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
) -> AppResult<Feed<DirectMessages>> {
    let events = broker.subscribe(Topic::User(viewer));
    Feed::start(db, DirectMessages { viewer }, events).await
}

impl<S: Source> Feed<S> {
    /// `events` is already subscribed: what commits from here on wakes the feed.
    async fn start(db: DatabaseConnection, source: S, events: TopicReceiver) -> AppResult<Self> {
        let position = Lookback::new(now());
        let mut feed = Self {
            db,
            source,
            events,
            position,
            pending: VecDeque::new(),
            scan: None,
        };
        // What is committed now is history, not news: remember it as seen.
        loop {
            feed.read_batch().await?;
            feed.pending.clear();
            if feed.scan.is_none() {
                return Ok(feed);
            }
        }
    }

    /// Reads one batch of the window (from where the last full batch
    /// stopped) and keeps the rows not seen yet.
    async fn read_batch(&mut self) -> AppResult<()> {
        let rows = self
            .source
            .read(&self.db, self.position.since(), self.scan)
            .await?;
        let full = rows.len() as u64 >= READ_BATCH;
        let mut last = None;
        for row in rows {
            let (at, id) = S::key(&row);
            last = Some((at, id));
            if self.position.accept(at, id) {
                self.pending.push_back(row);
            }
        }
        if full {
            self.scan = last;
        } else {
            self.scan = None;
            self.position.prune();
        }
        Ok(())
    }

    /// The next new row; None when the feed ends (access lost, broker gone, database failing).
    ///
    /// Events arrive in commit order (they are published inside the writing
    /// transaction), and the rows they announce are delivered in that order,
    /// so every subscriber sees one order: the commit order. A resync makes
    /// the feed re-read its window instead, which delivers what it missed in
    /// created_at order.
    pub async fn next(&mut self) -> Option<S::Row> {
        loop {
            if let Some(row) = self.pending.pop_front() {
                return Some(row);
            }
            let mut wake = Wake {
                reread: self.scan.is_some(),
                announced: Vec::new(),
            };
            if !wake.reread {
                let event = self.events.recv().await?;
                if wake.take(self.source.classify(&event)) {
                    return None;
                }
                // Take what else is queued, in order, into this one read.
                for _ in 0..MAX_COALESCE {
                    match self.events.recv().now_or_never() {
                        Some(Some(event)) => {
                            if wake.take(self.source.classify(&event)) {
                                return None;
                            }
                        }
                        Some(None) => return None,
                        None => break,
                    }
                }
                if !wake.reread && wake.announced.is_empty() {
                    continue;
                }
            }
            match self.read(&wake).await {
                Ok(true) => {}
                Ok(false) => return None,
                Err(err) => {
                    tracing::error!(error = %err.report(), "live feed read failed; ending the subscription");
                    return None;
                }
            }
        }
    }

    /// Reads what woke the feed, then asks whether the subscriber may still
    /// see it: a row that committed after access ended is never delivered.
    async fn read(&mut self, wake: &Wake) -> AppResult<bool> {
        if wake.reread {
            self.read_batch().await?;
        } else {
            self.read_announced(&wake.announced).await?;
        }
        self.source.allowed(&self.db).await
    }

    /// Reads the announced rows and keeps those not seen yet, in announcement order.
    async fn read_announced(&mut self, ids: &[Uuid]) -> AppResult<()> {
        let mut rows: std::collections::HashMap<Uuid, S::Row> = self
            .source
            .read_ids(&self.db, ids)
            .await?
            .into_iter()
            .map(|row| (S::key(&row).1, row))
            .collect();
        for id in ids {
            if let Some(row) = rows.remove(id) {
                let (at, id) = S::key(&row);
                if self.position.accept(at, id) {
                    self.pending.push_back(row);
                }
            }
        }
        self.position.prune();
        Ok(())
    }

    pub fn into_stream(self) -> impl Stream<Item = S::Row> + Send + 'static
    where
        S::Row: Send,
    {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|row| (row, feed))
        })
    }
}

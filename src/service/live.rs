//! Following streams live: the wake-ups a stream reader acts on, and the
//! live feed of a user's direct messages. (Rooms: `room_stream`.)
//!
//! A stream's positions are committed in order and announced after their
//! commits, so a wake-up saying "through position N" means every position up
//! to N is readable: a reader reads exactly the positions after its own,
//! through N. Wake-ups may come late, twice or out of order; nothing is read
//! twice, nothing skipped, and there is no time window.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use entity::direct_message;
use futures_util::{FutureExt, Stream};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    metrics::Metrics,
    realtime::{Broker, Event, Topic, TopicReceiver},
    service::direct,
};

/// Positions read per query.
const READ_BATCH: u64 = 100;
/// Wake-ups folded into one read.
const MAX_COALESCE: usize = 64;
/// How often a room's reader (one per live room per instance) with no
/// wake-up reads on itself: a wake-up lost between a commit and its
/// notification (a full queue, an instance that died right after
/// committing) is made up within this.
pub const ROOM_CHECK: Duration = Duration::from_secs(5);
/// The same for a direct-message feed, which is one per subscriber: longer.
const DIRECT_CHECK: Duration = Duration::from_secs(30);

/// What the wake-ups taken at once ask a stream reader to do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Wake {
    /// Read through this position.
    Through(i64),
    /// Wake-ups may have been lost: read to the end of what is committed.
    Resync,
    /// The stream is gone.
    Ended,
    /// Nothing for this reader.
    Nothing,
    /// No wake-up for a while: read whatever committed since, if anything.
    Check,
}

impl Wake {
    fn merge(self, next: Self) -> Self {
        match (self, next) {
            (Self::Ended, _) | (_, Self::Ended) => Self::Ended,
            (Self::Resync, _) | (_, Self::Resync) => Self::Resync,
            (Self::Through(a), Self::Through(b)) => Self::Through(a.max(b)),
            (Self::Through(a), Self::Nothing) | (Self::Nothing, Self::Through(a)) => {
                Self::Through(a)
            }
            (Self::Check, other) | (other, Self::Check) => other.merge(Self::Resync),
            (Self::Nothing, Self::Nothing) => Self::Nothing,
        }
    }
}

/// Waits for the next wake-up and folds in whatever else is queued already,
/// each event classified by `classify` (an exhaustive match at each caller).
/// After `check` without one: `Wake::Check`. None when the broker is gone.
pub async fn next_wake(
    events: &mut TopicReceiver,
    check: Duration,
    classify: impl Fn(&Event) -> Wake,
) -> Option<Wake> {
    let first = match tokio::time::timeout(check, events.recv()).await {
        Ok(event) => event?,
        Err(_) => return Some(Wake::Check),
    };
    let mut wake = classify(&first);
    for _ in 0..MAX_COALESCE {
        match events.recv().now_or_never() {
            Some(Some(event)) => wake = wake.merge(classify(&event)),
            Some(None) | None => break,
        }
    }
    Some(wake)
}

/// New direct messages sent to or by one user, in their stream's order.
pub struct DirectFeed {
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    events: TopicReceiver,
    viewer: Uuid,
    /// The last position of the viewer's stream this feed has seen.
    position: i64,
    /// Read, not yet handed out: at most one batch.
    pending: VecDeque<direct_message::Model>,
    /// Where the feed must read through before waiting again.
    until: Option<Wake>,
}

/// New direct messages sent to or by `viewer`: what commits from now on.
pub async fn direct_messages(
    db: DatabaseConnection,
    broker: &dyn Broker,
    metrics: Arc<Metrics>,
    viewer: Uuid,
) -> AppResult<DirectFeed> {
    // Wake-ups first, then the head: whatever commits after the head is read is announced.
    let events = broker.subscribe(Topic::User(viewer));
    let position = direct::head(&db, viewer)
        .await?
        .ok_or_else(|| AppError::not_found("user not found"))?;
    Ok(DirectFeed {
        db,
        metrics,
        events,
        viewer,
        position,
        pending: VecDeque::new(),
        until: None,
    })
}

/// What an event means to `viewer`'s feed.
fn classify(viewer: Uuid, event: &Event) -> Wake {
    match *event {
        Event::UserStream { user_id, seq } if user_id == viewer => Wake::Through(seq),
        Event::UserStream { .. }
        | Event::RoomStream { .. }
        | Event::RoomDeleted { .. }
        | Event::SessionEnded { .. } => Wake::Nothing,
        Event::Resync => Wake::Resync,
    }
}

impl DirectFeed {
    /// The next message; None when the feed ends (broker gone, database failing).
    pub async fn next(&mut self) -> Option<direct_message::Model> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            // A full batch's continuation is the same wake-up, not a new resync.
            let continuing = self.until.is_some();
            let wake = match self.until.take() {
                Some(wake) => wake,
                None => {
                    let viewer = self.viewer;
                    next_wake(&mut self.events, DIRECT_CHECK, |e| classify(viewer, e)).await?
                }
            };
            let until = match wake {
                Wake::Nothing => continue,
                Wake::Through(seq) if seq <= self.position => continue,
                Wake::Through(seq) => Some(seq),
                Wake::Resync => {
                    if !continuing {
                        self.metrics.feed_resync();
                    }
                    None
                }
                // Reads to the end, which is nothing if nothing was missed.
                Wake::Check => None,
                Wake::Ended => return None,
            };
            // Boxed: the read's future would otherwise set the size of every
            // idle subscription's state.
            let read = Box::pin(direct::stream_after(
                &self.db,
                self.viewer,
                self.position,
                until,
                READ_BATCH,
            ));
            match read.await {
                Ok(rows) => {
                    let full = rows.len() as u64 >= READ_BATCH;
                    for row in rows {
                        self.position = self.position.max(position_of(&row, self.viewer));
                        self.pending.push_back(row);
                    }
                    // A full batch: the rest comes on the next call, before any wait.
                    if full {
                        self.until = Some(wake);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err.report(), "direct-message feed read failed; ending the subscription");
                    return None;
                }
            }
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = direct_message::Model> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|row| (row, feed))
        })
    }
}

/// The message's position in `user`'s stream.
fn position_of(message: &direct_message::Model, user: Uuid) -> i64 {
    if message.sender_id == user {
        message.sender_seq
    } else {
        message.receiver_seq
    }
}

//! Following streams live: the wake-ups a stream reader acts on, and the
//! live feed of a user's direct threads. (Rooms: `room_stream`.)
//!
//! A stream's positions are committed in order and announced after their
//! commits, so a wake-up saying "through position N" means every position up
//! to N is readable: a reader reads exactly the positions after its own,
//! through N. Wake-ups may come late, twice or out of order; nothing is read
//! twice, nothing skipped, and there is no time window.

use std::{collections::VecDeque, sync::Arc, time::Duration};

use chrono::{DateTime, Utc};
use entity::{direct_event::DirectEventKind, direct_message};
use futures_util::{FutureExt, Stream};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    metrics::Metrics,
    realtime::{Broker, Event, Topic, TopicReceiver, TypingBoard, TypingPlace},
    service::{direct, now},
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

/// What a user's direct feed hands out.
#[derive(Clone, Debug)]
pub enum DirectFeedItem {
    /// A position of the user's stream, with its message as it is now.
    Stored(Arc<direct::StreamEntry>),
    /// The peer started or stopped typing to the user (not stored).
    Typing {
        peer: Uuid,
        typing: bool,
        at: DateTime<Utc>,
    },
}

/// Everything that happens in one user's direct threads, in their stream's
/// order, and their peers' typing.
pub struct DirectFeed {
    db: DatabaseConnection,
    metrics: Arc<Metrics>,
    events: TopicReceiver,
    board: TypingBoard,
    viewer: Uuid,
    /// The last position of the viewer's stream this feed has seen.
    position: i64,
    /// Read, not yet handed out: at most one batch.
    pending: VecDeque<DirectFeedItem>,
    /// Where the feed must read through before waiting again.
    until: Option<Wake>,
    /// The peers last reported typing, in id order.
    typing: Vec<Uuid>,
}

/// The viewer's direct events after `after` (a position of their stream;
/// None: from now on), then live. Box this future in a resolver, as
/// `room_feed`'s.
pub async fn direct_feed(
    db: DatabaseConnection,
    broker: &dyn Broker,
    metrics: Arc<Metrics>,
    viewer: Uuid,
    after: Option<i64>,
) -> AppResult<DirectFeed> {
    // Wake-ups first, then the head: whatever commits after the head is read is announced.
    let events = broker.subscribe(Topic::User(viewer));
    let head = direct::head(&db, viewer)
        .await?
        .ok_or_else(|| AppError::not_found("user not found"))?;
    if after.is_some_and(|after| after > head) {
        return Err(AppError::bad_input("a cursor of no event of yours"));
    }
    let position = after.unwrap_or(head);
    Ok(DirectFeed {
        db,
        metrics,
        events,
        board: broker.hub().typing().clone(),
        viewer,
        position,
        pending: VecDeque::new(),
        // Resuming: the stored positions after the cursor come first.
        until: (position < head).then_some(Wake::Through(head)),
        typing: Vec::new(),
    })
}

/// What an event means to `viewer`'s feed.
fn classify(viewer: Uuid, event: &Event) -> Wake {
    match *event {
        Event::UserStream { user_id, seq } if user_id == viewer => Wake::Through(seq),
        // The board has it already: the typing check after every wake-up reads it.
        Event::UserStream { .. }
        | Event::RoomStream { .. }
        | Event::RoomDeleted { .. }
        | Event::Typing { .. }
        | Event::SessionEnded { .. } => Wake::Nothing,
        Event::Resync => Wake::Resync,
    }
}

impl DirectFeed {
    fn place(&self) -> TypingPlace {
        TypingPlace::Direct { to: self.viewer }
    }

    /// The next wake-up, or `Wake::Nothing` when a typing entry expires first.
    async fn wake(&mut self) -> Option<Wake> {
        let viewer = self.viewer;
        let expiry = self.board.next_expiry(self.place());
        let wake = next_wake(&mut self.events, DIRECT_CHECK, |e| classify(viewer, e));
        match expiry {
            Some(at) => tokio::select! {
                wake = wake => wake,
                () = tokio::time::sleep_until(at) => Some(Wake::Nothing),
            },
            None => wake.await,
        }
    }

    /// Queues a typing item for each peer whose state changed.
    fn check_typing(&mut self) {
        let now_typing = self.board.typing(self.place());
        if now_typing == self.typing {
            return;
        }
        let at = now();
        for peer in now_typing.iter().filter(|p| !self.typing.contains(p)) {
            self.pending.push_back(DirectFeedItem::Typing {
                peer: *peer,
                typing: true,
                at,
            });
        }
        for peer in self.typing.iter().filter(|p| !now_typing.contains(p)) {
            self.pending.push_back(DirectFeedItem::Typing {
                peer: *peer,
                typing: false,
                at,
            });
        }
        self.typing = now_typing;
    }

    /// The next item; None when the feed ends (broker gone, database failing).
    pub async fn next(&mut self) -> Option<DirectFeedItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            // A full batch's continuation is the same wake-up, not a new resync.
            let continuing = self.until.is_some();
            let wake = match self.until.take() {
                Some(wake) => wake,
                None => {
                    let wake = self.wake().await?;
                    self.check_typing();
                    wake
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
            let read = Box::pin(direct::events_after(
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
                        self.position = self.position.max(row.0.seq);
                        self.pending
                            .push_back(DirectFeedItem::Stored(Arc::new(row)));
                    }
                    // A full batch: the rest comes on the next call, before any wait.
                    if full {
                        self.until = Some(wake);
                    }
                }
                Err(err) => {
                    tracing::error!(error = %err.report(), "direct feed read failed; ending the subscription");
                    return None;
                }
            }
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = DirectFeedItem> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|item| (item, feed))
        })
    }

    /// Only the new messages (`directMessageAdded`).
    pub fn into_messages(self) -> impl Stream<Item = direct_message::Model> + Send + 'static {
        use futures_util::StreamExt;
        self.into_stream().filter_map(|item| async move {
            match item {
                DirectFeedItem::Stored(entry) if entry.0.kind == DirectEventKind::MessageAdded => {
                    entry.1.clone()
                }
                DirectFeedItem::Stored(_) | DirectFeedItem::Typing { .. } => None,
            }
        })
    }
}

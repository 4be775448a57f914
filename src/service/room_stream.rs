//! Live rooms: each room's stream read once per instance and shared by every
//! local subscriber.
//!
//! The first subscriber of a room on this instance starts a reader task for
//! it. The task follows the broker's wake-ups (`Event::RoomStream { seq }`:
//! every position up to `seq` is committed), reads exactly the positions it
//! has not read yet, with their messages and senders, in one pass, and
//! broadcasts them as one shared batch. A subscriber only walks the batches:
//! no query per subscriber per event. Whether it may still see the room is
//! answered by the stream itself: it was a member when it subscribed, and
//! its own leave is a position of the stream, after which it ends.
//!
//! Buffers are bounded: a subscriber that lags behind the broadcast buffer
//! reads what it missed from the database, from its own position, once.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use entity::{message, room_event::RoomEventKind, user};
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::{sync::broadcast, task::AbortHandle};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    metrics::Metrics,
    realtime::{Broker, Event, RoomFeedGuard, Topic, TopicReceiver},
    service::{
        live::{ROOM_CHECK, Wake, next_wake},
        rooms, users,
    },
};

/// Positions read per query.
const READ_BATCH: u64 = 256;
/// Batches a room's broadcast holds for subscribers that are behind.
const STREAM_BUFFER: usize = 256;
/// How long the reader waits before trying a failed read again, at most.
const MAX_RETRY_DELAY: Duration = Duration::from_secs(5);

/// A message as every subscriber of its room shares it: read once, with its sender.
#[derive(Clone, Debug)]
pub struct LiveMessage {
    pub message: Arc<message::Model>,
    /// None only if the sender's account is gone.
    pub sender: Option<Arc<user::Model>>,
}

/// One position of a room's stream.
#[derive(Debug)]
pub struct StreamItem {
    pub seq: i64,
    pub kind: RoomEventKind,
    pub user_id: Option<Uuid>,
    /// The message at this position (kind `Message`).
    pub message: Option<LiveMessage>,
}

/// What the reader broadcasts: consecutive positions, or the end of the stream.
#[derive(Debug)]
enum Batch {
    Items(Vec<StreamItem>),
    /// The room is gone.
    Ended,
}

/// The live rooms of this instance.
#[derive(Clone)]
pub struct LiveRooms {
    rooms: Arc<Mutex<HashMap<Uuid, Arc<RoomStream>>>>,
    metrics: Arc<Metrics>,
}

/// One live room: where its reader is, and the channel of its batches.
struct RoomStream {
    /// The position through which every batch has been sent, under one lock
    /// with the sender, so a new subscriber starts exactly after it.
    sent: Mutex<(i64, broadcast::Sender<Arc<Batch>>)>,
    reader: Mutex<Option<AbortHandle>>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic while holding these locks leaves state that is still consistent.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl RoomStream {
    fn subscribe(&self) -> (broadcast::Receiver<Arc<Batch>>, i64) {
        let sent = lock(&self.sent);
        (sent.1.subscribe(), sent.0)
    }

    fn publish(&self, through: i64, batch: Batch) {
        let mut sent = lock(&self.sent);
        sent.0 = through;
        // No receiver left: the last subscriber is detaching this stream.
        let _ = sent.1.send(Arc::new(batch));
    }

    fn position(&self) -> i64 {
        lock(&self.sent).0
    }

    fn receivers(&self) -> usize {
        lock(&self.sent).1.receiver_count()
    }
}

impl LiveRooms {
    pub fn new(metrics: Arc<Metrics>) -> Self {
        Self {
            rooms: Arc::default(),
            metrics,
        }
    }

    fn map(&self) -> MutexGuard<'_, HashMap<Uuid, Arc<RoomStream>>> {
        lock(&self.rooms)
    }

    /// Live rooms on this instance (one reader each).
    pub fn len(&self) -> usize {
        self.map().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map().is_empty()
    }

    /// A receiver of the room's batches and the position it starts after;
    /// starts the room's reader if this is its first subscriber here.
    async fn attach(
        &self,
        db: &DatabaseConnection,
        broker: &dyn Broker,
        room_id: Uuid,
    ) -> AppResult<(Arc<RoomStream>, broadcast::Receiver<Arc<Batch>>, i64)> {
        if let Some(stream) = self.map().get(&room_id).cloned() {
            let (rx, position) = stream.subscribe();
            return Ok((stream, rx, position));
        }
        // Wake-ups first, then the head: whatever commits after the head is read is announced.
        let events = broker.subscribe(Topic::Room(room_id));
        let head = rooms::head(db, room_id)
            .await?
            .ok_or_else(|| AppError::not_found("room not found"))?;
        let mut map = self.map();
        if let Some(stream) = map.get(&room_id).cloned() {
            // Another first subscriber started it meanwhile.
            let (rx, position) = stream.subscribe();
            return Ok((stream, rx, position));
        }
        let stream = Arc::new(RoomStream {
            sent: Mutex::new((head, broadcast::channel(STREAM_BUFFER).0)),
            reader: Mutex::new(None),
        });
        map.insert(room_id, stream.clone());
        let (rx, position) = stream.subscribe();
        let reader = Reader {
            db: db.clone(),
            room_id,
            stream: stream.clone(),
            rooms: self.clone(),
        };
        let task = tokio::spawn(reader.run(events));
        *lock(&stream.reader) = Some(task.abort_handle());
        Ok((stream, rx, position))
    }

    /// Called by a subscriber that has dropped its receiver: the room's
    /// reader stops with its last subscriber.
    fn detach(&self, room_id: Uuid, stream: &Arc<RoomStream>) {
        let mut map = self.map();
        if stream.receivers() > 0 {
            return;
        }
        if map.get(&room_id).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            map.remove(&room_id);
        }
        if let Some(reader) = lock(&stream.reader).take() {
            reader.abort();
        }
    }

    /// The reader of a room that has ended leaves the map.
    fn forget(&self, room_id: Uuid, stream: &Arc<RoomStream>) {
        let mut map = self.map();
        if map.get(&room_id).is_some_and(|s| Arc::ptr_eq(s, stream)) {
            map.remove(&room_id);
        }
    }
}

/// The one task per live room that reads its stream.
struct Reader {
    db: DatabaseConnection,
    room_id: Uuid,
    stream: Arc<RoomStream>,
    rooms: LiveRooms,
}

impl Reader {
    /// What an event means to this room's reader.
    fn classify(&self, event: &Event) -> Wake {
        match *event {
            Event::RoomStream { room_id, seq } if room_id == self.room_id => Wake::Through(seq),
            Event::RoomDeleted { room_id } if room_id == self.room_id => Wake::Ended,
            Event::RoomStream { .. }
            | Event::RoomDeleted { .. }
            | Event::UserStream { .. }
            | Event::SessionEnded { .. } => Wake::Nothing,
            Event::Resync => Wake::Resync,
        }
    }

    async fn run(self, mut events: TopicReceiver) {
        while let Some(wake) = next_wake(&mut events, ROOM_CHECK, |e| self.classify(e)).await {
            match wake {
                Wake::Nothing => {}
                Wake::Through(seq) if seq <= self.stream.position() => {}
                Wake::Through(seq) => self.read(Some(seq)).await,
                Wake::Resync => {
                    self.rooms.metrics.feed_resync();
                    self.read(None).await;
                }
                // Reads to the end, which is nothing if nothing was missed.
                Wake::Check => self.read(None).await,
                Wake::Ended => {
                    self.stream.publish(self.stream.position(), Batch::Ended);
                    break;
                }
            }
        }
        self.rooms.forget(self.room_id, &self.stream);
    }

    /// Reads and broadcasts every position after the last one sent, through
    /// `until` (or to the end). A failing database is retried with backoff:
    /// nothing is skipped, subscribers only wait.
    async fn read(&self, until: Option<i64>) {
        let mut delay = Duration::from_millis(100);
        loop {
            let after = self.stream.position();
            if until.is_some_and(|until| after >= until) {
                return;
            }
            match read_items(&self.db, self.room_id, after, until).await {
                Ok(items) if items.is_empty() => return,
                Ok(items) => {
                    let full = items.len() as u64 >= READ_BATCH;
                    let through = items.last().map_or(after, |i| i.seq);
                    self.stream.publish(through, Batch::Items(items));
                    delay = Duration::from_millis(100);
                    if !full && until.is_none() {
                        return;
                    }
                }
                Err(err) => {
                    tracing::error!(room_id = %self.room_id, error = %err.report(), retry_in = ?delay, "reading a room stream failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(MAX_RETRY_DELAY);
                }
            }
        }
    }
}

/// Positions after `after` (through `until`), with their messages and senders.
async fn read_items(
    db: &DatabaseConnection,
    room_id: Uuid,
    after: i64,
    until: Option<i64>,
) -> AppResult<Vec<StreamItem>> {
    let entries = rooms::events_after(db, room_id, after, until, READ_BATCH).await?;
    let senders: Vec<Uuid> = entries
        .iter()
        .filter_map(|(_, m)| m.as_ref().map(|m| m.sender_id))
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let senders: HashMap<Uuid, Arc<user::Model>> = if senders.is_empty() {
        HashMap::new()
    } else {
        users::find_many(db, &senders)
            .await?
            .into_iter()
            .map(|u| (u.id, Arc::new(u)))
            .collect()
    };
    Ok(entries
        .into_iter()
        .map(|(event, message)| StreamItem {
            seq: event.seq,
            kind: event.kind,
            user_id: event.user_id,
            message: message.map(|m| LiveMessage {
                sender: senders.get(&m.sender_id).cloned(),
                message: Arc::new(m),
            }),
        })
        .collect())
}

/// New messages in a room, for one member: FORBIDDEN for others, NOT_FOUND
/// for no room. Ends at the member's leave or the room's deletion.
pub struct RoomFeed {
    db: DatabaseConnection,
    rooms: LiveRooms,
    room_id: Uuid,
    viewer: Uuid,
    stream: Arc<RoomStream>,
    /// Some until the feed is dropped (then detached).
    rx: Option<broadcast::Receiver<Arc<Batch>>>,
    /// The last position this feed has seen.
    position: i64,
    /// Messages taken from a batch, not yet handed out (at most one batch).
    pending: VecDeque<LiveMessage>,
    /// After lagging: the position to read up to from the database.
    behind_until: i64,
    /// Counts this feed as live until it ends (`rooms::leave` and `rooms::delete` wait for that).
    _live: RoomFeedGuard,
}

pub async fn room_messages(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    live: &LiveRooms,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<RoomFeed> {
    let (stream, rx, position) = live.attach(db, broker, room_id).await?;
    let feed = RoomFeed {
        db: db.clone(),
        rooms: live.clone(),
        room_id,
        viewer,
        stream,
        rx: Some(rx),
        position,
        pending: VecDeque::new(),
        behind_until: position,
        _live: broker.hub().room_feeds().register(room_id, viewer),
    };
    // After attaching: a leave that commits from here on is in the stream.
    rooms::require_member(db, room_id, viewer).await?;
    Ok(feed)
}

impl RoomFeed {
    /// The next message; None when the feed ends.
    pub async fn next(&mut self) -> Option<LiveMessage> {
        loop {
            if let Some(message) = self.pending.pop_front() {
                return Some(message);
            }
            let ended = if self.behind_until > self.position {
                // Boxed: this rare read's future would otherwise set the size
                // of every idle subscription's state.
                Box::pin(self.catch_up()).await
            } else {
                match self.rx.as_mut()?.recv().await {
                    Ok(batch) => match batch.as_ref() {
                        Batch::Items(items) => self.take(items),
                        Batch::Ended => true,
                    },
                    Err(broadcast::error::RecvError::Lagged(skipped)) => {
                        self.rooms.metrics.feed_lagged(skipped);
                        // Fell behind the broadcast: read from the database up
                        // to where the reader is now, then go on from there.
                        self.behind_until = self.stream.position();
                        false
                    }
                    Err(broadcast::error::RecvError::Closed) => true,
                }
            };
            if ended {
                self.pending.clear();
                return None;
            }
        }
    }

    /// Takes the positions after this feed's own; true when the feed ends there.
    fn take(&mut self, items: &[StreamItem]) -> bool {
        for item in items {
            if item.seq <= self.position {
                continue;
            }
            self.position = item.seq;
            match item.kind {
                RoomEventKind::Message => self.pending.extend(item.message.clone()),
                RoomEventKind::MemberLeft if item.user_id == Some(self.viewer) => return true,
                RoomEventKind::MemberLeft
                | RoomEventKind::MemberJoined
                | RoomEventKind::RoomUpdated => {}
            }
        }
        false
    }

    /// One read of what this feed missed while behind. True when the feed ends.
    async fn catch_up(&mut self) -> bool {
        let until = Some(self.behind_until);
        match read_items(&self.db, self.room_id, self.position, until).await {
            Ok(items) if items.is_empty() => {
                self.behind_until = self.position;
                false
            }
            Ok(items) => self.take(&items),
            Err(err) => {
                tracing::error!(error = %err.report(), "live feed catch-up failed; ending the subscription");
                true
            }
        }
    }

    pub fn into_stream(self) -> impl Stream<Item = LiveMessage> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|message| (message, feed))
        })
    }
}

impl Drop for RoomFeed {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.rooms.detach(self.room_id, &self.stream);
    }
}

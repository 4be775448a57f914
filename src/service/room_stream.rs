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
//! A subscriber that resumes from a cursor reads the stored positions after
//! it the same way, then goes on with the broadcast: no gap, no repeat.
//!
//! Each position is read with everything a subscriber may show of it (the
//! message as it is then, its sender, reactions and the message it answers,
//! the actor, the receipt), so edits, reactions and receipts on a busy room
//! cost one read per instance, not one per subscriber. Who is typing (never
//! stored) comes from the instance's `TypingBoard`; the reader broadcasts
//! the room's set whenever it changes, expiries included.

use std::{
    collections::{HashMap, HashSet, VecDeque},
    sync::{Arc, Mutex, MutexGuard},
    time::Duration,
};

use chrono::{DateTime, Utc};
use entity::{message, room, room_event::RoomEventKind, room_member, user};
use futures_util::Stream;
use sea_orm::DatabaseConnection;
use tokio::{sync::broadcast, task::AbortHandle};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    metrics::Metrics,
    realtime::{Broker, Event, RoomFeedGuard, Topic, TopicReceiver, TypingBoard, TypingPlace},
    service::{
        live::{ROOM_CHECK, Wake, next_wake},
        now,
        reactions::{self, ReactionGroup},
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
    /// Its reactions and the message it answers, when read with it (a
    /// stream position); None: the resolvers load them.
    pub extras: Option<Arc<MessageExtras>>,
}

#[derive(Debug, Default)]
pub struct MessageExtras {
    pub reactions: Vec<ReactionGroup>,
    /// The message it answers (None: none, or gone).
    pub reply_to: Option<Arc<message::Model>>,
}

/// A read receipt as it was when its position was read.
#[derive(Clone, Debug)]
pub struct LiveReceipt {
    pub member: Arc<room_member::Model>,
    /// Whose it is (None only if their account is gone).
    pub user: Option<Arc<user::Model>>,
    /// The newest message it covers (None: none, or gone).
    pub message: Option<Arc<message::Model>>,
}

/// One position of a room's stream, with what a subscriber may show of it.
#[derive(Debug)]
pub struct StreamItem {
    pub room_id: Uuid,
    pub seq: i64,
    pub kind: RoomEventKind,
    pub user_id: Option<Uuid>,
    pub at: DateTime<Utc>,
    /// Who did it (None only if their account is gone).
    pub actor: Option<Arc<user::Model>>,
    /// The room as it was when this position was read.
    pub room: Option<Arc<room::Model>>,
    /// The message this position concerns, as it is now.
    pub message: Option<LiveMessage>,
    /// READ_RECEIPT_MOVED: the receipt as it is now.
    pub receipt: Option<LiveReceipt>,
}

/// Who is typing in a room after a change (not stored, no position).
#[derive(Debug)]
pub struct TypingChange {
    pub room_id: Uuid,
    /// Whose start, stop or expiry it was.
    pub actor: Arc<user::Model>,
    /// Everyone typing now, in id order.
    pub typing: Vec<Arc<user::Model>>,
    pub at: DateTime<Utc>,
}

/// What a room feed hands out.
#[derive(Clone, Debug)]
pub enum RoomFeedItem {
    Stored(Arc<StreamItem>),
    Typing(Arc<TypingChange>),
}

/// What the reader broadcasts: consecutive positions, a typing change, or
/// the end of the stream.
#[derive(Debug)]
enum Batch {
    Items(Vec<Arc<StreamItem>>),
    Typing(Arc<TypingChange>),
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
            board: broker.hub().typing().clone(),
            typing: Vec::new(),
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
    board: TypingBoard,
    /// The typing set last broadcast.
    typing: Vec<Uuid>,
}

impl Reader {
    /// What an event means to this room's reader.
    fn classify(&self, event: &Event) -> Wake {
        match *event {
            Event::RoomStream { room_id, seq } if room_id == self.room_id => Wake::Through(seq),
            Event::RoomDeleted { room_id } if room_id == self.room_id => Wake::Ended,
            // The board has it already: the typing check after every wake-up reads it.
            Event::RoomStream { .. }
            | Event::RoomDeleted { .. }
            | Event::UserStream { .. }
            | Event::Typing { .. }
            | Event::SessionEnded { .. } => Wake::Nothing,
            Event::Resync => Wake::Resync,
        }
    }

    /// The next wake-up, or `Wake::Nothing` when a typing entry expires first.
    async fn next(&self, events: &mut TopicReceiver) -> Option<Wake> {
        let expiry = self.board.next_expiry(TypingPlace::Room(self.room_id));
        let wake = next_wake(events, ROOM_CHECK, |e| self.classify(e));
        match expiry {
            Some(at) => tokio::select! {
                wake = wake => wake,
                () = tokio::time::sleep_until(at) => Some(Wake::Nothing),
            },
            None => wake.await,
        }
    }

    async fn run(mut self, mut events: TopicReceiver) {
        while let Some(wake) = self.next(&mut events).await {
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
            self.check_typing().await;
        }
        self.rooms.forget(self.room_id, &self.stream);
    }

    /// Broadcasts the room's typing set if it changed since the last one.
    async fn check_typing(&mut self) {
        let now_typing = self.board.typing(TypingPlace::Room(self.room_id));
        if now_typing == self.typing {
            return;
        }
        let actor = now_typing
            .iter()
            .find(|u| !self.typing.contains(u))
            .or_else(|| self.typing.iter().find(|u| !now_typing.contains(u)))
            .copied();
        let mut ids = now_typing.clone();
        ids.extend(actor);
        let found = match users::find_many(&self.db, &ids).await {
            Ok(found) => found,
            Err(err) => {
                // Best effort: the next change or expiry tries again.
                tracing::warn!(room_id = %self.room_id, error = %err.report(), "reading typing users failed");
                return;
            }
        };
        let by_id: HashMap<Uuid, Arc<user::Model>> =
            found.into_iter().map(|u| (u.id, Arc::new(u))).collect();
        self.typing = now_typing;
        let Some(actor) = actor.and_then(|a| by_id.get(&a).cloned()) else {
            return;
        };
        let change = TypingChange {
            room_id: self.room_id,
            actor,
            typing: self
                .typing
                .iter()
                .filter_map(|u| by_id.get(u).cloned())
                .collect(),
            at: now(),
        };
        let position = self.stream.position();
        self.stream
            .publish(position, Batch::Typing(Arc::new(change)));
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
            match read_items(&self.db, self.room_id, after, until, READ_BATCH).await {
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

/// Positions after `after` (through `until`), at most `limit`, each with
/// what a subscriber may show of it: a fixed number of queries per call.
async fn read_items(
    db: &DatabaseConnection,
    room_id: Uuid,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> AppResult<Vec<Arc<StreamItem>>> {
    let entries = rooms::events_after(db, room_id, after, until, limit).await?;
    if entries.is_empty() {
        return Ok(Vec::new());
    }
    let message_ids: Vec<Uuid> = entries
        .iter()
        .filter_map(|(_, m)| m.as_ref().map(|m| m.id))
        .collect();
    let readers: Vec<Uuid> = entries
        .iter()
        .filter(|(e, _)| e.kind == RoomEventKind::ReceiptMoved)
        .filter_map(|(e, _)| e.user_id)
        .collect();
    let people = distinct(
        entries
            .iter()
            .flat_map(|(e, m)| e.user_id.into_iter().chain(m.as_ref().map(|m| m.sender_id))),
    );
    // Independent reads, at once (a pool on PostgreSQL; SQLite takes them in turn).
    let (room, reactions, receipts, people) = tokio::try_join!(
        rooms::find(db, room_id),
        reactions::of_messages(db, &message_ids),
        rooms::members_among(db, room_id, &readers),
        users::find_many(db, &people),
    )?;
    let room = room.map(Arc::new);
    let receipts: HashMap<Uuid, room_member::Model> =
        receipts.into_iter().map(|m| (m.user_id, m)).collect();
    let people: HashMap<Uuid, Arc<user::Model>> =
        people.into_iter().map(|u| (u.id, Arc::new(u))).collect();
    // Messages named by replies and receipts.
    let others = distinct(
        entries
            .iter()
            .filter_map(|(_, m)| m.as_ref().and_then(|m| m.reply_to_id))
            .chain(receipts.values().filter_map(|m| m.receipt_message_id)),
    );
    let others: HashMap<Uuid, Arc<message::Model>> = rooms::find_messages(db, &others)
        .await?
        .into_iter()
        .map(|m| (m.id, Arc::new(m)))
        .collect();
    Ok(entries
        .into_iter()
        .map(|(event, message)| {
            let message = message.map(|m| LiveMessage {
                sender: people.get(&m.sender_id).cloned(),
                extras: Some(Arc::new(MessageExtras {
                    reactions: reactions.get(&m.id).cloned().unwrap_or_default(),
                    reply_to: m.reply_to_id.and_then(|id| others.get(&id).cloned()),
                })),
                message: Arc::new(m),
            });
            let receipt =
                match event.kind {
                    RoomEventKind::ReceiptMoved => event
                        .user_id
                        .and_then(|u| receipts.get(&u))
                        .map(|member| LiveReceipt {
                            user: people.get(&member.user_id).cloned(),
                            message: member
                                .receipt_message_id
                                .and_then(|id| others.get(&id).cloned()),
                            member: Arc::new(member.clone()),
                        }),
                    RoomEventKind::Message
                    | RoomEventKind::MessageEdited
                    | RoomEventKind::MessageDeleted
                    | RoomEventKind::ReactionsChanged
                    | RoomEventKind::MemberJoined
                    | RoomEventKind::MemberLeft
                    | RoomEventKind::RoomUpdated => None,
                };
            Arc::new(StreamItem {
                room_id,
                seq: event.seq,
                kind: event.kind,
                user_id: event.user_id,
                at: event.created_at,
                actor: event.user_id.and_then(|u| people.get(&u).cloned()),
                room: room.clone(),
                message,
                receipt,
            })
        })
        .collect())
}

/// Each id once.
fn distinct(ids: impl Iterator<Item = Uuid>) -> Vec<Uuid> {
    ids.collect::<HashSet<_>>().into_iter().collect()
}

/// The room's stored events after position `after`, oldest first, at most
/// `limit` (Room.events). The caller checked membership.
pub async fn stored_events(
    db: &DatabaseConnection,
    room_id: Uuid,
    after: i64,
    limit: u64,
) -> AppResult<Vec<Arc<StreamItem>>> {
    read_items(db, room_id, after, None, limit).await
}

/// A room's events, for one member: FORBIDDEN for others, NOT_FOUND for no
/// room. Ends after the member's own leave (handed out last) or at the
/// room's deletion.
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
    /// Where the room's reader was when this feed subscribed: a leave of the
    /// viewer's at or before it is history (they are a member again since).
    live_from: i64,
    /// Taken from a batch, not yet handed out (at most one batch).
    pending: VecDeque<RoomFeedItem>,
    /// The feed ends once `pending` is handed out.
    ending: bool,
    /// Behind (lagging, or resuming from a cursor): the position to read up
    /// to from the database.
    behind_until: i64,
    /// Counts this feed as live until it ends (`rooms::leave` and `rooms::delete` wait for that).
    _live: RoomFeedGuard,
}

/// The room's events after `after` (a position of its stream; None: from
/// now on), then live. Subscription resolvers box this future: its reads
/// would otherwise stay inline in the subscription's state (some 2 KB) for
/// as long as the subscription lives.
pub async fn room_feed(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    live: &LiveRooms,
    viewer: Uuid,
    room_id: Uuid,
    after: Option<i64>,
) -> AppResult<RoomFeed> {
    let (stream, rx, position) = live.attach(db, broker, room_id).await?;
    let feed = RoomFeed {
        db: db.clone(),
        rooms: live.clone(),
        room_id,
        viewer,
        stream,
        rx: Some(rx),
        position: after.unwrap_or(position),
        live_from: position,
        pending: VecDeque::new(),
        ending: false,
        behind_until: position,
        _live: broker.hub().room_feeds().register(room_id, viewer),
    };
    // After attaching: a leave that commits from here on is in the stream.
    let room = rooms::require_member(db, room_id, viewer).await?;
    if after.is_some_and(|after| after > room.last_seq) {
        return Err(AppError::bad_input("a cursor of no event of this room"));
    }
    Ok(feed)
}

impl RoomFeed {
    /// The next item; None when the feed ends.
    pub async fn next(&mut self) -> Option<RoomFeedItem> {
        loop {
            if let Some(item) = self.pending.pop_front() {
                return Some(item);
            }
            if self.ending {
                return None;
            }
            let ended = if self.behind_until > self.position {
                // Boxed: this rare read's future would otherwise set the size
                // of every idle subscription's state.
                Box::pin(self.catch_up()).await
            } else {
                match self.rx.as_mut()?.recv().await {
                    Ok(batch) => match batch.as_ref() {
                        Batch::Items(items) => self.take(items),
                        Batch::Typing(change) => {
                            self.pending.push_back(RoomFeedItem::Typing(change.clone()));
                            false
                        }
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
                self.ending = true;
            }
        }
    }

    /// Takes the positions after this feed's own; true when the feed ends
    /// there (the viewer's own leave, which is still handed out).
    fn take(&mut self, items: &[Arc<StreamItem>]) -> bool {
        for item in items {
            if item.seq <= self.position {
                continue;
            }
            self.position = item.seq;
            self.pending.push_back(RoomFeedItem::Stored(item.clone()));
            match item.kind {
                RoomEventKind::MemberLeft
                    if item.user_id == Some(self.viewer) && item.seq > self.live_from =>
                {
                    return true;
                }
                RoomEventKind::Message
                | RoomEventKind::MessageEdited
                | RoomEventKind::MessageDeleted
                | RoomEventKind::ReactionsChanged
                | RoomEventKind::MemberJoined
                | RoomEventKind::MemberLeft
                | RoomEventKind::RoomUpdated
                | RoomEventKind::ReceiptMoved => {}
            }
        }
        false
    }

    /// One read of what this feed missed while behind. True when the feed ends.
    async fn catch_up(&mut self) -> bool {
        let until = Some(self.behind_until);
        match read_items(&self.db, self.room_id, self.position, until, READ_BATCH).await {
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

    pub fn into_stream(self) -> impl Stream<Item = RoomFeedItem> + Send + 'static {
        futures_util::stream::unfold(self, |mut feed| async move {
            feed.next().await.map(|item| (item, feed))
        })
    }

    /// Only the new messages (`messageAdded`).
    pub fn into_messages(self) -> impl Stream<Item = LiveMessage> + Send + 'static {
        use futures_util::StreamExt;
        self.into_stream().filter_map(|item| async move {
            match item {
                RoomFeedItem::Stored(item) if item.kind == RoomEventKind::Message => {
                    item.message.clone()
                }
                RoomFeedItem::Stored(_) | RoomFeedItem::Typing(_) => None,
            }
        })
    }
}

impl Drop for RoomFeed {
    fn drop(&mut self) {
        drop(self.rx.take());
        self.rooms.detach(self.room_id, &self.stream);
    }
}

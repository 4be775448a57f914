//! What happens in rooms and threads: reactions, read receipts, typing, and
//! the event streams (`Room.events`, `roomEvents`, `directEvents`).

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, Object, SimpleObject, Subscription};
use entity::{direct_event::DirectEventKind as StoredDirectKind, room_event, room_member};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::{
    error::AppError,
    graphql::{
        ContextExt,
        direct::DirectMessage,
        id::{self, ListKind, NodeType, decode_cursor, encode_cursor},
        room::{Message, Room},
        scalars::DateTime,
        shared::{Identity, Part, Shareable, Shared},
        user::User,
    },
    realtime::TypingPlace,
    service::{
        live::{self, DirectFeedItem},
        reactions::{self, Reactable, ReactionGroup},
        room_stream::{self, LiveReceipt, RoomFeedItem, StreamItem},
        rooms, users,
    },
};

/// One emoji on a message.
#[derive(SimpleObject)]
pub struct Reaction {
    emoji: String,
    count: i32,
    /// Whether the viewer is one of those who reacted with this emoji.
    viewer_has_reacted: bool,
}

/// The groups as the viewer sees them (in the groups' order), who is told
/// by `viewer_among` whether they are among a group's users.
pub fn reactions_for(
    groups: &[ReactionGroup],
    viewer_among: impl Fn(&[Uuid]) -> bool,
) -> Vec<Reaction> {
    groups
        .iter()
        .map(|g| Reaction {
            emoji: g.emoji.clone(),
            count: i32::try_from(g.users.len()).unwrap_or(i32::MAX),
            viewer_has_reacted: viewer_among(&g.users),
        })
        .collect()
}

/// A message's reactions through the request's DataLoader.
pub async fn load_reactions(
    ctx: &Context<'_>,
    message_id: Uuid,
) -> async_graphql::Result<Vec<Reaction>> {
    let groups = ctx.loaders().reactions().load_one(message_id).await?;
    Ok(groups.map_or_else(Vec::new, |g| {
        reactions_for(&g, |users| ctx.viewer_among(users))
    }))
}

#[derive(SimpleObject)]
pub struct ReactionsPayload {
    /// The Message or DirectMessage reacted to.
    message_id: ID,
    reactions: Vec<Reaction>,
}

/// A member's read position in a room.
pub struct ReadReceipt {
    member: Arc<room_member::Model>,
    /// Whose it is, when read with it.
    user: Option<Arc<entity::user::Model>>,
    /// The message it covers, when read with it.
    message: Option<Option<Arc<entity::message::Model>>>,
}

impl ReadReceipt {
    pub fn new(member: room_member::Model) -> Self {
        Self {
            member: Arc::new(member),
            user: None,
            message: None,
        }
    }

    fn live(receipt: &LiveReceipt) -> Self {
        Self {
            member: receipt.member.clone(),
            user: receipt.user.clone(),
            message: Some(receipt.message.clone()),
        }
    }
}

#[Object]
impl ReadReceipt {
    async fn user(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        match &self.user {
            Some(user) => Ok(User::from_arc(user.clone())),
            None => User::load_required(ctx, self.member.user_id).await,
        }
    }

    /// The newest message the user has read; null if it was deleted or nothing is read yet.
    async fn message(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Message>> {
        let found = match &self.message {
            Some(known) => known.clone(),
            None => match self.member.receipt_message_id {
                Some(id) => ctx.loaders().messages().load_one(id).await?,
                None => None,
            },
        };
        Ok(found
            .filter(|m| m.deleted_at.is_none())
            .map(Message::from_arc))
    }

    async fn read_at(&self) -> DateTime {
        self.member
            .receipt_at
            .unwrap_or(self.member.last_read_at)
            .into()
    }
}

crate::connection!(ReadReceiptConnection, ReadReceiptEdge, ReadReceipt);

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "RoomEventKind")]
pub enum RoomEventKindValue {
    MessageAdded,
    MessageEdited,
    MessageDeleted,
    ReactionsChanged,
    MemberJoined,
    MemberLeft,
    RoomUpdated,
    ReadReceiptMoved,
    /// Not stored: live only, never replayed, no cursor.
    TypingChanged,
}

impl From<room_event::RoomEventKind> for RoomEventKindValue {
    fn from(kind: room_event::RoomEventKind) -> Self {
        use room_event::RoomEventKind as K;
        match kind {
            K::Message => Self::MessageAdded,
            K::MessageEdited => Self::MessageEdited,
            K::MessageDeleted => Self::MessageDeleted,
            K::ReactionsChanged => Self::ReactionsChanged,
            K::MemberJoined => Self::MemberJoined,
            K::MemberLeft => Self::MemberLeft,
            K::RoomUpdated => Self::RoomUpdated,
            K::ReceiptMoved => Self::ReadReceiptMoved,
        }
    }
}

/// Something that happened in a room.
pub struct RoomEvent(pub RoomFeedItem);

impl RoomEvent {
    fn stored(&self) -> Option<&StreamItem> {
        match &self.0 {
            RoomFeedItem::Stored(item) => Some(item),
            RoomFeedItem::Typing(_) => None,
        }
    }

    fn room_id(&self) -> Uuid {
        match &self.0 {
            RoomFeedItem::Stored(item) => item.room_id,
            RoomFeedItem::Typing(change) => change.room_id,
        }
    }
}

/// An event renders from the item every subscriber of the room receives.
impl Shareable for RoomEvent {
    fn identity(&self) -> Option<Identity> {
        let part: Part = match &self.0 {
            RoomFeedItem::Stored(item) => item.clone(),
            RoomFeedItem::Typing(change) => change.clone(),
        };
        Some(Identity::new(vec![Some(part)]))
    }
}

pub fn room_event_cursor(item: &StreamItem) -> String {
    encode_cursor(ListKind::RoomEvents, &item.seq, item.room_id)
}

#[Object]
impl RoomEvent {
    /// Where to resume after this event (Room.events / roomEvents `after`); null for TYPING_CHANGED.
    async fn cursor(&self) -> Option<String> {
        self.stored().map(room_event_cursor)
    }

    async fn kind(&self) -> RoomEventKindValue {
        match &self.0 {
            RoomFeedItem::Stored(item) => item.kind.into(),
            RoomFeedItem::Typing(_) => RoomEventKindValue::TypingChanged,
        }
    }

    async fn room(&self, ctx: &Context<'_>) -> async_graphql::Result<Room> {
        if let Some(room) = self.stored().and_then(|i| i.room.clone()) {
            return Ok(Room::from_arc(room));
        }
        Ok(Room::load(ctx, self.room_id())
            .await?
            .ok_or_else(|| AppError::not_found("room not found"))?)
    }

    /// Who did it.
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        match &self.0 {
            RoomFeedItem::Stored(item) => match (&item.actor, item.user_id) {
                (Some(actor), _) => Ok(User::from_arc(actor.clone())),
                (None, Some(id)) => User::load_required(ctx, id).await,
                (None, None) => Err(AppError::not_found("user not found").into()),
            },
            RoomFeedItem::Typing(change) => Ok(User::from_arc(change.actor.clone())),
        }
    }

    async fn at(&self) -> DateTime {
        match &self.0 {
            RoomFeedItem::Stored(item) => item.at.into(),
            RoomFeedItem::Typing(change) => change.at.into(),
        }
    }

    /// MESSAGE_* and REACTIONS_CHANGED: the message as it is now.
    async fn message(&self) -> Option<Message> {
        self.stored()?.message.clone().map(Message::live)
    }

    /// READ_RECEIPT_MOVED: the receipt as it is now.
    async fn receipt(&self) -> Option<ReadReceipt> {
        self.stored()?.receipt.as_ref().map(ReadReceipt::live)
    }

    /// TYPING_CHANGED: everyone typing now (the whole set, the viewer left out).
    async fn typing(&self, ctx: &Context<'_>) -> Option<Vec<User>> {
        let RoomFeedItem::Typing(change) = &self.0 else {
            return None;
        };
        let ids: Vec<Uuid> = change.typing.iter().map(|u| u.id).collect();
        let viewer = match ctx.viewer_among(&ids) {
            true => ctx.viewer().map(|v| v.user_id),
            false => None,
        };
        Some(
            change
                .typing
                .iter()
                .filter(|u| Some(u.id) != viewer)
                .map(|u| User::from_arc(u.clone()))
                .collect(),
        )
    }
}

crate::connection!(RoomEventConnection, RoomEventEdge, RoomEvent);

/// A room-event cursor for `room_id`: a malformed one, or one of another room, is BAD_USER_INPUT.
pub fn decode_room_event_cursor(cursor: &str, room_id: Uuid) -> Result<i64, AppError> {
    let cursor = decode_cursor::<i64>(ListKind::RoomEvents, cursor)?;
    if cursor.id != room_id || cursor.key < 0 {
        return Err(AppError::bad_input("a cursor of another room"));
    }
    Ok(cursor.key)
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
#[graphql(name = "DirectEventKind")]
pub enum DirectEventKindValue {
    DirectMessageAdded,
    DirectMessageEdited,
    DirectMessageDeleted,
    ReactionsChanged,
    /// The peer read the thread up to `directMessage`.
    ConversationRead,
    /// Not stored: live only, never replayed, no cursor.
    TypingChanged,
}

impl From<StoredDirectKind> for DirectEventKindValue {
    fn from(kind: StoredDirectKind) -> Self {
        match kind {
            StoredDirectKind::MessageAdded => Self::DirectMessageAdded,
            StoredDirectKind::MessageEdited => Self::DirectMessageEdited,
            StoredDirectKind::MessageDeleted => Self::DirectMessageDeleted,
            StoredDirectKind::ReactionsChanged => Self::ReactionsChanged,
            StoredDirectKind::ConversationRead => Self::ConversationRead,
        }
    }
}

/// Something that happened in one of the viewer's direct threads.
pub struct DirectEvent(DirectFeedItem);

#[Object]
impl DirectEvent {
    /// Where to resume after this event (directEvents `after`); null for TYPING_CHANGED.
    async fn cursor(&self) -> Option<String> {
        match &self.0 {
            DirectFeedItem::Stored(entry) => Some(encode_cursor(
                ListKind::DirectEvents,
                &entry.0.seq,
                entry.0.user_id,
            )),
            DirectFeedItem::Typing { .. } => None,
        }
    }

    async fn kind(&self) -> DirectEventKindValue {
        match &self.0 {
            DirectFeedItem::Stored(entry) => entry.0.kind.into(),
            DirectFeedItem::Typing { .. } => DirectEventKindValue::TypingChanged,
        }
    }

    /// The other party of the thread.
    async fn peer(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let peer = match &self.0 {
            DirectFeedItem::Stored(entry) => entry.0.peer_id,
            DirectFeedItem::Typing { peer, .. } => *peer,
        };
        User::load_required(ctx, peer).await
    }

    /// Who did it (the viewer or the peer).
    async fn actor(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        let actor = match &self.0 {
            DirectFeedItem::Stored(entry) => entry.0.actor_id,
            DirectFeedItem::Typing { peer, .. } => *peer,
        };
        User::load_required(ctx, actor).await
    }

    async fn at(&self) -> DateTime {
        match &self.0 {
            DirectFeedItem::Stored(entry) => entry.0.created_at.into(),
            DirectFeedItem::Typing { at, .. } => (*at).into(),
        }
    }

    /// DIRECT_MESSAGE_*, REACTIONS_CHANGED and CONVERSATION_READ: the message as it is now.
    async fn direct_message(&self) -> Option<DirectMessage> {
        match &self.0 {
            DirectFeedItem::Stored(entry) => entry.1.clone().map(DirectMessage::new),
            DirectFeedItem::Typing { .. } => None,
        }
    }

    /// TYPING_CHANGED: whether the peer is typing now.
    async fn typing(&self) -> Option<bool> {
        match &self.0 {
            DirectFeedItem::Stored(_) => None,
            DirectFeedItem::Typing { typing, .. } => Some(*typing),
        }
    }
}

/// The message a reaction names: a Message or a DirectMessage id.
fn reactable(id: &ID) -> Result<Reactable, AppError> {
    match id::decode_any(id)? {
        (NodeType::Message, uuid) => Ok(Reactable::Room(uuid)),
        (NodeType::DirectMessage, uuid) => Ok(Reactable::Direct(uuid)),
        _ => Err(AppError::bad_input(
            "expected the id of a Message or a DirectMessage",
        )),
    }
}

#[derive(Default)]
pub struct EventMutation;

#[Object]
impl EventMutation {
    /// messageId: a Message or DirectMessage id. Adding a reaction one already has changes nothing.
    async fn add_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        emoji: String,
    ) -> async_graphql::Result<ReactionsPayload> {
        react(ctx, message_id, &emoji, true).await
    }

    async fn remove_reaction(
        &self,
        ctx: &Context<'_>,
        message_id: ID,
        emoji: String,
    ) -> async_graphql::Result<ReactionsPayload> {
        react(ctx, message_id, &emoji, false).await
    }

    /// Exactly one of roomId and withUserId. `typing: true` holds for 10 s unless repeated; false, or a send, ends it.
    async fn set_typing(
        &self,
        ctx: &Context<'_>,
        room_id: Option<ID>,
        with_user_id: Option<ID>,
        typing: bool,
    ) -> async_graphql::Result<bool> {
        let viewer = ctx.require_viewer()?;
        let state = ctx.state();
        // Each call reads the database; only one change a second goes out.
        state.rate_limits.send(viewer.user_id)?;
        let place = match (room_id, with_user_id) {
            (Some(room_id), None) => {
                let room_id = id::decode(&room_id, NodeType::Room)?;
                rooms::require_member(&state.db, room_id, viewer.user_id).await?;
                TypingPlace::Room(room_id)
            }
            (None, Some(peer)) => {
                let peer = id::decode(&peer, NodeType::User)?;
                if peer == viewer.user_id {
                    return Err(AppError::bad_input("a thread is with another user").into());
                }
                if users::find(&state.db, peer).await?.is_none() {
                    return Err(AppError::not_found("user not found").into());
                }
                TypingPlace::Direct { to: peer }
            }
            _ => {
                return Err(
                    AppError::bad_input("pass exactly one of roomId and withUserId").into(),
                );
            }
        };
        state.typing.set(place, viewer.user_id, typing)?;
        Ok(true)
    }
}

async fn react(
    ctx: &Context<'_>,
    message_id: ID,
    emoji: &str,
    add: bool,
) -> async_graphql::Result<ReactionsPayload> {
    let viewer = ctx.require_viewer()?;
    let state = ctx.state();
    state.rate_limits.send(viewer.user_id)?;
    let target = reactable(&message_id)?;
    let broker = state.broker.as_ref();
    let groups = reactions::change(&state.db, broker, viewer.user_id, target, emoji, add).await?;
    Ok(ReactionsPayload {
        message_id,
        reactions: reactions_for(&groups, |users| users.contains(&viewer.user_id)),
    })
}

#[derive(Default)]
pub struct EventSubscription;

#[Subscription]
impl EventSubscription {
    /// Everything that happens in a room, for its members. With `after`, first the stored events since that cursor, then live, with no gap and no repeat.
    async fn room_events(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = Shared<RoomEvent>> + use<>> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&room_id, NodeType::Room)?;
        let after = after
            .map(|c| decode_room_event_cursor(&c, room_id))
            .transpose()?;
        let state = ctx.state();
        let feed = Box::pin(room_stream::room_feed(
            &state.db,
            state.broker.as_ref(),
            &state.live_rooms,
            viewer.user_id,
            room_id,
            after,
        ))
        .await?;
        let me = viewer.user_id;
        Ok(feed.into_stream().filter_map(move |item| async move {
            match &item {
                // One's own typing is not news to oneself.
                RoomFeedItem::Typing(change) if change.actor.id == me => None,
                RoomFeedItem::Typing(_) | RoomFeedItem::Stored(_) => Some(Shared(RoomEvent(item))),
            }
        }))
    }

    /// Everything that happens in the viewer's direct threads. `after` as for roomEvents.
    async fn direct_events(
        &self,
        ctx: &Context<'_>,
        after: Option<String>,
    ) -> async_graphql::Result<impl Stream<Item = DirectEvent> + use<>> {
        let viewer = ctx.require_viewer()?;
        let after = match after {
            Some(cursor) => {
                let cursor = decode_cursor::<i64>(ListKind::DirectEvents, &cursor)?;
                if cursor.id != viewer.user_id || cursor.key < 0 {
                    return Err(AppError::bad_input("a cursor of another user's events").into());
                }
                Some(cursor.key)
            }
            None => None,
        };
        let state = ctx.state();
        let feed = Box::pin(live::direct_feed(
            state.db.clone(),
            state.broker.as_ref(),
            state.metrics.clone(),
            viewer.user_id,
            after,
        ))
        .await?;
        Ok(feed.into_stream().map(DirectEvent))
    }
}

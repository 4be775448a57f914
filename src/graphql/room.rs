//! Rooms, their members and messages, and `messageAdded`.

use std::{collections::HashMap, sync::Arc};

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, Subscription};
use entity::{message, room, room_member, user};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    connection,
    error::AppError,
    graphql::{
        ContextExt,
        connection::PageArgs,
        events::{
            self, Reaction, ReadReceipt, ReadReceiptConnection, ReadReceiptEdge, RoomEvent,
            RoomEventConnection, RoomEventEdge,
        },
        id::{self, ListKind, NodeType, encode_cursor},
        scalars::DateTime,
        shared::{Identity, Part, Shareable, Shared},
        user::User,
    },
    realtime::TypingPlace,
    service::{
        page::{Page, Slice},
        room_stream::{self, LiveMessage, MessageExtras, RoomFeedItem},
        rooms::{self, NewMessage, RoomChanges},
    },
};

#[derive(Clone)]
pub struct Room(pub Arc<room::Model>, ViewerMembership);

/// The request viewer's membership of a room, when it was read with the room.
#[derive(Clone)]
enum ViewerMembership {
    /// Not read yet: the memberships DataLoader answers (batched across rooms).
    Unknown,
    Known(Option<Arc<room_member::Model>>),
}

impl Room {
    pub fn new(model: room::Model) -> Self {
        Self::from_arc(Arc::new(model))
    }

    pub fn from_arc(model: Arc<room::Model>) -> Self {
        Self(model, ViewerMembership::Unknown)
    }

    /// A room through the request's DataLoader (many rooms in one query).
    pub async fn load(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        Ok(ctx
            .loaders()
            .rooms()
            .load_one(id)
            .await?
            .map(Self::from_arc))
    }

    /// One room asked for by id at the root, with the viewer's membership:
    /// two primary-key reads now instead of two DataLoader rounds (each a
    /// spawned task and a timer) later on the history page's hot path.
    async fn load_with_membership(
        ctx: &Context<'_>,
        id: Uuid,
    ) -> async_graphql::Result<Option<Self>> {
        let (room, membership) = match ctx.viewer() {
            Some(viewer) => {
                match rooms::find_with_membership(ctx.db(), id, viewer.user_id).await? {
                    Some((room, membership)) => (room, membership.map(Arc::new)),
                    None => return Ok(None),
                }
            }
            None => match rooms::find(ctx.db(), id).await? {
                Some(room) => (room, None),
                None => return Ok(None),
            },
        };
        Ok(Some(Self(
            Arc::new(room),
            ViewerMembership::Known(membership),
        )))
    }

    async fn viewer_membership(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<Arc<room_member::Model>>> {
        Ok(match &self.1 {
            ViewerMembership::Known(membership) => membership.clone(),
            ViewerMembership::Unknown => ctx.loaders().memberships().load_one(self.0.id).await?,
        })
    }

    /// The viewer, who must be a member: UNAUTHENTICATED, else FORBIDDEN.
    async fn require_member(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let viewer = ctx.require_viewer()?;
        rooms::check_reader(self.viewer_membership(ctx).await?.as_deref())?;
        Ok(viewer)
    }
}

fn count(n: i64) -> i32 {
    i32::try_from(n).unwrap_or(i32::MAX)
}

#[Object]
impl Room {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::Room, self.0.id)
    }

    async fn name(&self) -> &str {
        &self.0.name
    }

    async fn description(&self) -> Option<&str> {
        self.0.description.as_deref()
    }

    async fn created_by(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.created_by).await
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }

    async fn members_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let n = ctx.loaders().member_counts().load_one(self.0.id).await?;
        Ok(count(n.unwrap_or(0)))
    }

    async fn viewer_is_member(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(self.viewer_membership(ctx).await?.is_some())
    }

    /// Messages in this room the viewer has not read; 0 for non-members.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let n = ctx.loaders().room_unread().load_one(self.0.id).await?;
        Ok(count(n.unwrap_or(0)))
    }

    /// Earliest joined first. Members only.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<RoomMemberConnection> {
        let args = PageArgs::new(first, after, last, before);
        let page = args.page(ListKind::Members)?;
        self.require_member(ctx).await?;
        let slice = rooms::members(ctx.db(), self.0.id, &page).await?;
        let users = ctx
            .loaders()
            .users()
            .load_many(slice.items.iter().map(|m| m.user_id))
            .await?;
        // A member whose account is gone since the page was read is left out.
        let slice = slice.filter_map(|m| Some((users.get(&m.user_id)?.clone(), m)));
        Ok(RoomMemberConnection::new(slice, |(user, m)| {
            RoomMemberEdge {
                cursor: encode_cursor(ListKind::Members, &m.joined_at, m.user_id),
                joined_at: m.joined_at.into(),
                node: User::from_arc(user),
            }
        }))
    }

    /// Oldest first: `last`/`before` page back through history, `first`/`after` catch up. Members only.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
        let args = PageArgs::new(first, after, last, before);
        let page = args.page(ListKind::Messages)?;
        self.require_member(ctx).await?;
        // The page with its senders in one statement, not a DataLoader round later.
        let slice = rooms::messages_with_senders(ctx.db(), self.0.id, &page).await?;
        let mut senders: HashMap<Uuid, Arc<entity::user::Model>> = HashMap::new();
        Ok(MessageConnection::new(slice, |(m, sender)| MessageEdge {
            cursor: encode_cursor(ListKind::Messages, &m.seq, m.id),
            node: Message::live(LiveMessage {
                // One Arc per sender, however many of the page's messages are theirs.
                sender: sender.map(|u| senders.entry(u.id).or_insert_with(|| Arc::new(u)).clone()),
                message: Arc::new(m),
                extras: None,
            }),
        }))
    }

    /// Members' read positions, the most recently moved first. Members only.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn read_receipts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ReadReceiptConnection> {
        let page = PageArgs::forward(first, after).page(ListKind::ReadReceipts)?;
        self.require_member(ctx).await?;
        let slice = rooms::read_receipts(ctx.db(), self.0.id, &page).await?;
        Ok(ReadReceiptConnection::new(slice, |m| ReadReceiptEdge {
            cursor: encode_cursor(
                ListKind::ReadReceipts,
                &m.receipt_at.unwrap_or(m.last_read_at),
                m.user_id,
            ),
            node: ReadReceipt::new(m),
        }))
    }

    /// Members typing now, the viewer left out. Members only (empty for others).
    async fn typing(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<User>> {
        let Some(viewer) = ctx.viewer() else {
            return Ok(Vec::new());
        };
        if self.viewer_membership(ctx).await?.is_none() {
            return Ok(Vec::new());
        }
        let board = ctx.state().broker.hub().typing();
        let ids: Vec<Uuid> = board
            .typing(TypingPlace::Room(self.0.id))
            .into_iter()
            .filter(|u| *u != viewer.user_id)
            .collect();
        let found = ctx.loaders().users().load_many(ids.iter().copied()).await?;
        Ok(ids
            .iter()
            .filter_map(|id| found.get(id).cloned())
            .map(User::from_arc)
            .collect())
    }

    /// The room's stored events after `after` (an event cursor; none: from the start), oldest first. Members only.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn events(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<RoomEventConnection> {
        let after = after
            .map(|c| events::decode_room_event_cursor(&c, self.0.id))
            .transpose()?;
        let page = Page::<i64>::new(first, None, None, None)?;
        self.require_member(ctx).await?;
        let mut items =
            room_stream::stored_events(ctx.db(), self.0.id, after.unwrap_or(0), page.limit + 1)
                .await?;
        let has_next_page = items.len() as u64 > page.limit;
        items.truncate(usize::try_from(page.limit).unwrap_or(usize::MAX));
        let slice = Slice {
            items,
            has_next_page,
            has_previous_page: after.is_some_and(|a| a > 0),
        };
        Ok(RoomEventConnection::new(slice, |item| RoomEventEdge {
            cursor: events::room_event_cursor(&item),
            node: RoomEvent(RoomFeedItem::Stored(item)),
        }))
    }
}

connection!(RoomMemberConnection, RoomMemberEdge, User, { joined_at: DateTime });
connection!(RoomConnection, RoomEdge, Room);
connection!(MessageConnection, MessageEdge, Message);

#[derive(Clone)]
pub struct Message {
    pub model: Arc<message::Model>,
    /// The sender, when the caller has it already (a live room's shared read).
    sender: Option<Arc<user::Model>>,
    /// Reactions and the message answered, when read with it.
    extras: Option<Arc<MessageExtras>>,
}

impl Message {
    pub fn new(model: message::Model) -> Self {
        Self::from_arc(Arc::new(model))
    }

    pub fn from_arc(model: Arc<message::Model>) -> Self {
        Self {
            model,
            sender: None,
            extras: None,
        }
    }

    pub fn live(live: LiveMessage) -> Self {
        Self {
            model: live.message,
            sender: live.sender,
            extras: live.extras,
        }
    }

    /// A message, for a member of its room only.
    pub async fn load_visible(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        if ctx.viewer().is_none() {
            return Ok(None);
        }
        let Some(message) = ctx.loaders().messages().load_one(id).await? else {
            return Ok(None);
        };
        let membership = ctx
            .loaders()
            .memberships()
            .load_one(message.room_id)
            .await?;
        Ok(rooms::check_reader(membership.as_deref())
            .is_ok()
            .then(|| Self::from_arc(message)))
    }
}

/// A live message renders from its model, sender and extras alone (what the
/// room reader shares among subscribers); without extras its reactions come
/// through the viewer's DataLoaders, so it is not shared.
impl Shareable for Message {
    fn identity(&self) -> Option<Identity> {
        let extras = self.extras.clone()?;
        Some(Identity::new(vec![
            Some(self.model.clone() as Part),
            self.sender.clone().map(|s| s as Part),
            Some(extras as Part),
        ]))
    }
}

#[Object]
impl Message {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::Message, self.model.id)
    }

    async fn room(&self, ctx: &Context<'_>) -> async_graphql::Result<Room> {
        Ok(Room::load(ctx, self.model.room_id)
            .await?
            .ok_or_else(|| AppError::not_found("room not found"))?)
    }

    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        match &self.sender {
            Some(sender) => Ok(User::from_arc(sender.clone())),
            None => User::load_required(ctx, self.model.sender_id).await,
        }
    }

    async fn content(&self) -> &str {
        &self.model.content
    }

    /// The sender's own id for this send, echoed back; used to make retries idempotent.
    async fn client_message_id(&self) -> Option<&str> {
        self.model.client_message_id.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }

    /// When the sender last edited the content; null if never edited.
    async fn edited_at(&self) -> Option<DateTime> {
        self.model.edited_at.map(Into::into)
    }

    /// When the message was deleted; it then stays in history with empty content and no reactions.
    async fn deleted_at(&self) -> Option<DateTime> {
        self.model.deleted_at.map(Into::into)
    }

    /// The message this one answers (same room); null if none or if that message was deleted.
    async fn reply_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<Message>> {
        let Some(id) = self.model.reply_to_id else {
            return Ok(None);
        };
        let found = match &self.extras {
            Some(extras) => extras.reply_to.clone(),
            None => ctx.loaders().messages().load_one(id).await?,
        };
        Ok(found
            .filter(|m| m.deleted_at.is_none() && m.room_id == self.model.room_id)
            .map(Self::from_arc))
    }

    /// Reactions by emoji, the most used first (ties: the earliest first).
    async fn reactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Reaction>> {
        match &self.extras {
            Some(extras) => Ok(events::reactions_for(&extras.reactions, |users| {
                ctx.viewer_among(users)
            })),
            None => events::load_reactions(ctx, self.model.id).await,
        }
    }
}

#[derive(InputObject)]
pub struct EditMessageInput {
    /// A Message id (editMessage) or a DirectMessage id (editDirectMessage).
    pub id: ID,
    pub content: String,
}

#[derive(InputObject)]
pub struct CreateRoomInput {
    name: String,
    description: Option<String>,
}

#[derive(InputObject)]
pub struct UpdateRoomInput {
    id: ID,
    name: MaybeUndefined<String>,
    description: MaybeUndefined<String>,
}

#[derive(InputObject)]
pub struct SendMessageInput {
    room_id: ID,
    content: String,
    client_message_id: Option<String>,
    /// A message of the same room that this one answers.
    reply_to_id: Option<ID>,
}

#[derive(Default)]
pub struct RoomQuery;

#[Object]
impl RoomQuery {
    async fn room(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Room>> {
        let id = id::decode(&id, NodeType::Room)?;
        Room::load_with_membership(ctx, id).await
    }

    /// Every room, newest first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn rooms(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<RoomConnection> {
        let args = PageArgs::new(first, after, last, before);
        let page = args.page(ListKind::Rooms)?;
        let slice = rooms::list(ctx.db(), &page).await?;
        Ok(RoomConnection::new(slice, |r| RoomEdge {
            cursor: encode_cursor(ListKind::Rooms, &r.created_at, r.id),
            node: Room::new(r),
        }))
    }

    /// The viewer's rooms, most recent activity first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn my_rooms(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<RoomConnection> {
        let viewer = ctx.require_viewer()?;
        let page = PageArgs::forward(first, after).page(ListKind::MyRooms)?;
        let slice = rooms::list_mine(ctx.db(), viewer.user_id, &page).await?;
        let found = ctx
            .loaders()
            .rooms()
            .load_many(slice.items.iter().map(|(id, _)| *id))
            .await?;
        // A room deleted since the list was read is left out.
        let slice = slice.filter_map(|(id, activity)| Some((found.get(&id)?.clone(), activity)));
        Ok(RoomConnection::new(slice, |(room, activity)| RoomEdge {
            cursor: encode_cursor(ListKind::MyRooms, &activity, room.id),
            node: Room::from_arc(room),
        }))
    }
}

#[derive(Default)]
pub struct RoomMutation;

#[Object]
impl RoomMutation {
    async fn create_room(
        &self,
        ctx: &Context<'_>,
        input: CreateRoomInput,
    ) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer()?;
        let room = rooms::create(ctx.db(), viewer.user_id, &input.name, input.description).await?;
        Ok(Room::new(room))
    }

    /// Creator only; fields left out stay as they are.
    async fn update_room(
        &self,
        ctx: &Context<'_>,
        input: UpdateRoomInput,
    ) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&input.id, NodeType::Room)?;
        let name = match input.name {
            MaybeUndefined::Null => return Err(AppError::bad_input("name cannot be null").into()),
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Value(name) => Some(name),
        };
        let changes = RoomChanges {
            name,
            description: input.description.into(),
        };
        let state = ctx.state();
        let broker = state.broker.as_ref();
        let room = rooms::update(&state.db, broker, viewer.user_id, room_id, changes).await?;
        Ok(Room::new(room))
    }

    /// Creator only: removes the room, its messages and memberships; ends its subscriptions.
    async fn delete_room(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&id, NodeType::Room)?;
        let state = ctx.state();
        rooms::delete(&state.db, state.broker.as_ref(), viewer.user_id, room_id).await?;
        Ok(id::encode(NodeType::Room, room_id))
    }

    async fn join_room(&self, ctx: &Context<'_>, room_id: ID) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&room_id, NodeType::Room)?;
        let state = ctx.state();
        let room = rooms::join(&state.db, state.broker.as_ref(), viewer.user_id, room_id).await?;
        Ok(Room::new(room))
    }

    /// Ends the leaver's live subscriptions to the room.
    async fn leave_room(&self, ctx: &Context<'_>, room_id: ID) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&room_id, NodeType::Room)?;
        let state = ctx.state();
        let room = rooms::leave(&state.db, state.broker.as_ref(), viewer.user_id, room_id).await?;
        Ok(Room::new(room))
    }

    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<Message> {
        let viewer = ctx.require_viewer()?;
        ctx.state().rate_limits.send(viewer.user_id)?;
        let room_id = id::decode(&input.room_id, NodeType::Room)?;
        let reply_to = input
            .reply_to_id
            .map(|id| id::decode(&id, NodeType::Message))
            .transpose()?;
        let new = NewMessage {
            room_id,
            content: input.content,
            client_message_id: input.client_message_id,
            reply_to,
        };
        let state = ctx.state();
        let message = rooms::send(&state.db, state.broker.as_ref(), viewer.user_id, new).await?;
        state
            .typing
            .stop_on_send(TypingPlace::Room(room_id), viewer.user_id);
        Ok(Message::new(message))
    }

    /// Marks read up to `upTo` (a message of the room; none: everything now). A receipt never moves back.
    async fn mark_room_read(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
        up_to: Option<ID>,
    ) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&room_id, NodeType::Room)?;
        let up_to = up_to
            .map(|id| id::decode(&id, NodeType::Message))
            .transpose()?;
        let state = ctx.state();
        let broker = state.broker.as_ref();
        let room = rooms::mark_read(&state.db, broker, viewer.user_id, room_id, up_to).await?;
        Ok(Room::new(room))
    }

    /// The sender only.
    async fn edit_message(
        &self,
        ctx: &Context<'_>,
        input: EditMessageInput,
    ) -> async_graphql::Result<Message> {
        let viewer = ctx.require_viewer()?;
        let state = ctx.state();
        state.rate_limits.send(viewer.user_id)?;
        let id = id::decode(&input.id, NodeType::Message)?;
        let broker = state.broker.as_ref();
        let message = rooms::edit(&state.db, broker, viewer.user_id, id, input.content).await?;
        Ok(Message::new(message))
    }

    /// Returns the tombstone (deletedAt set, content empty).
    async fn delete_message(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Message> {
        let viewer = ctx.require_viewer()?;
        let id = id::decode(&id, NodeType::Message)?;
        let state = ctx.state();
        let broker = state.broker.as_ref();
        let message = rooms::delete_message(&state.db, broker, viewer.user_id, id).await?;
        Ok(Message::new(message))
    }
}

#[derive(Default)]
pub struct RoomSubscription;

#[Subscription]
impl RoomSubscription {
    /// New messages in a room the viewer is a member of.
    async fn message_added(
        &self,
        ctx: &Context<'_>,
        room_id: ID,
    ) -> async_graphql::Result<impl Stream<Item = Shared<Message>> + use<>> {
        let viewer = ctx.require_viewer()?;
        let room_id = id::decode(&room_id, NodeType::Room)?;
        let state = ctx.state();
        let feed = Box::pin(room_stream::room_feed(
            &state.db,
            state.broker.as_ref(),
            &state.live_rooms,
            viewer.user_id,
            room_id,
            None,
        ))
        .await?;
        Ok(feed.into_messages().map(|m| Shared(Message::live(m))))
    }
}

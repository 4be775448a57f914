//! Rooms, their members and messages.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, ResultExt, SimpleObject};
use chrono::Utc;
use entity::{message, room};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    connection,
    error::{AppError, AppResult},
    graphql::{
        ContextExt, PageInfo,
        id::{self, ListKind, NodeType, decode_cursor, encode_cursor},
        loaders::gql_err,
        scalars::DateTime,
        user::User,
    },
    service::{
        live,
        page::Page,
        rooms::{self, NewMessage, RoomChanges},
    },
};

/// Relay arguments with cursors of `list`.
pub fn page_args(
    list: ListKind,
    first: Option<i32>,
    after: Option<String>,
    last: Option<i32>,
    before: Option<String>,
) -> AppResult<Page<chrono::DateTime<Utc>>> {
    let after = after
        .as_deref()
        .map(|c| decode_cursor(list, c))
        .transpose()?;
    let before = before
        .as_deref()
        .map(|c| decode_cursor(list, c))
        .transpose()?;
    Page::new(first, last, after, before)
}

#[derive(Clone)]
pub struct Room(pub Arc<room::Model>);

impl Room {
    pub fn new(model: room::Model) -> Self {
        Self(Arc::new(model))
    }

    pub async fn load(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        Ok(ctx
            .loaders()
            .rooms
            .load_one(id)
            .await
            .map_err(gql_err)?
            .map(Self))
    }

    /// The viewer, who must be a member: UNAUTHENTICATED, else FORBIDDEN.
    async fn require_member(&self, ctx: &Context<'_>) -> async_graphql::Result<Viewer> {
        let viewer = ctx.require_viewer().extend()?;
        if ctx
            .loaders()
            .memberships
            .load_one(self.0.id)
            .await
            .map_err(gql_err)?
            .is_none()
        {
            return Err(AppError::Forbidden(
                "only members of this room may do that".into(),
            ))
            .extend();
        }
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
        Ok(count(
            ctx.loaders()
                .member_counts
                .load_one(self.0.id)
                .await
                .map_err(gql_err)?
                .unwrap_or(0),
        ))
    }

    async fn viewer_is_member(&self, ctx: &Context<'_>) -> async_graphql::Result<bool> {
        Ok(ctx
            .loaders()
            .memberships
            .load_one(self.0.id)
            .await
            .map_err(gql_err)?
            .is_some())
    }

    /// Messages in this room the viewer has not read; 0 for non-members.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        Ok(count(
            ctx.loaders()
                .room_unread
                .load_one(self.0.id)
                .await
                .map_err(gql_err)?
                .unwrap_or(0),
        ))
    }

    /// Earliest joined first. Members only.
    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn members(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<RoomMemberConnection> {
        let page = page_args(ListKind::Members, first, after, last, before).extend()?;
        self.require_member(ctx).await?;
        let slice = rooms::members(ctx.db(), self.0.id, &page).await.extend()?;
        let users = ctx
            .loaders()
            .users
            .load_many(slice.items.iter().map(|m| m.user_id))
            .await
            .map_err(gql_err)?;
        let edges: Vec<RoomMemberEdge> = slice
            .items
            .iter()
            .filter_map(|m| {
                Some(RoomMemberEdge {
                    cursor: encode_cursor(ListKind::Members, &m.joined_at, m.user_id),
                    joined_at: m.joined_at.into(),
                    node: User::from_arc(users.get(&m.user_id)?.clone()),
                })
            })
            .collect();
        let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
        Ok(RoomMemberConnection {
            edges,
            page_info: PageInfo::new(slice.has_next_page, slice.has_previous_page, &cursors),
        })
    }

    /// Oldest first: `last`/`before` page back through history, `first`/`after` catch up. Members only.
    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn messages(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<MessageConnection> {
        let page = page_args(ListKind::Messages, first, after, last, before).extend()?;
        self.require_member(ctx).await?;
        let slice = rooms::messages(ctx.db(), self.0.id, &page).await.extend()?;
        Ok(MessageConnection::new(slice, |m| {
            (
                encode_cursor(ListKind::Messages, &m.created_at, m.id),
                Message::new(m),
            )
        }))
    }
}

#[derive(SimpleObject)]
pub struct RoomMemberEdge {
    pub cursor: String,
    pub joined_at: DateTime,
    pub node: User,
}

#[derive(SimpleObject)]
pub struct RoomMemberConnection {
    pub edges: Vec<RoomMemberEdge>,
    pub page_info: PageInfo,
}

connection!(RoomConnection, RoomEdge, Room);
connection!(MessageConnection, MessageEdge, Message);

#[derive(Clone)]
pub struct Message(pub Arc<message::Model>);

impl Message {
    pub fn new(model: message::Model) -> Self {
        Self(Arc::new(model))
    }

    /// A message, for a member of its room only.
    pub async fn load_visible(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        if ctx.viewer().is_none() {
            return Ok(None);
        }
        let Some(message) = ctx.loaders().messages.load_one(id).await.map_err(gql_err)? else {
            return Ok(None);
        };
        let member = ctx
            .loaders()
            .memberships
            .load_one(message.room_id)
            .await
            .map_err(gql_err)?;
        Ok(member.map(|_| Self(message)))
    }
}

#[Object]
impl Message {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::Message, self.0.id)
    }

    async fn room(&self, ctx: &Context<'_>) -> async_graphql::Result<Room> {
        Room::load(ctx, self.0.room_id)
            .await?
            .ok_or_else(|| AppError::NotFound("room not found".into()))
            .extend()
    }

    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.sender_id).await
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    /// The sender's own id for this send, echoed back; used to make retries idempotent.
    async fn client_message_id(&self) -> Option<&str> {
        self.0.client_message_id.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
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
}

#[derive(Default)]
pub struct RoomQuery;

#[Object]
impl RoomQuery {
    async fn room(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<Option<Room>> {
        let id = id::decode(&id, NodeType::Room).extend()?;
        Room::load(ctx, id).await
    }

    /// Every room, newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn rooms(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<RoomConnection> {
        let page = page_args(ListKind::Rooms, first, after, last, before).extend()?;
        let slice = rooms::list(ctx.db(), &page).await.extend()?;
        Ok(RoomConnection::new(slice, |r| {
            (
                encode_cursor(ListKind::Rooms, &r.created_at, r.id),
                Room::new(r),
            )
        }))
    }

    /// The viewer's rooms, most recent activity first.
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn my_rooms(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<RoomConnection> {
        let viewer = ctx.require_viewer().extend()?;
        let page = page_args(ListKind::MyRooms, first, after, None, None).extend()?;
        let slice = rooms::list_mine(ctx.db(), viewer.user_id, &page)
            .await
            .extend()?;
        let found = ctx
            .loaders()
            .rooms
            .load_many(slice.items.iter().map(|(id, _)| *id))
            .await
            .map_err(gql_err)?;
        // A room deleted since the list was read is left out.
        let slice = slice.map(|(id, activity)| found.get(&id).map(|r| (Room(r.clone()), activity)));
        let slice = crate::service::page::Slice {
            items: slice.items.into_iter().flatten().collect(),
            has_next_page: slice.has_next_page,
            has_previous_page: slice.has_previous_page,
        };
        Ok(RoomConnection::new(slice, |(room, activity)| {
            (encode_cursor(ListKind::MyRooms, &activity, room.0.id), room)
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
        let viewer = ctx.require_viewer().extend()?;
        let room = rooms::create(ctx.db(), viewer.user_id, &input.name, input.description)
            .await
            .extend()?;
        Ok(Room::new(room))
    }

    /// Creator only; fields left out stay as they are.
    async fn update_room(
        &self,
        ctx: &Context<'_>,
        input: UpdateRoomInput,
    ) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&input.id, NodeType::Room).extend()?;
        let name = match input.name {
            MaybeUndefined::Null => {
                return Err(AppError::bad_input("name cannot be null")).extend();
            }
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Value(name) => Some(name),
        };
        let description = match input.description {
            MaybeUndefined::Undefined => None,
            MaybeUndefined::Null => Some(None),
            MaybeUndefined::Value(d) => Some(Some(d)),
        };
        let room = rooms::update(
            ctx.db(),
            viewer.user_id,
            room_id,
            RoomChanges { name, description },
        )
        .await
        .extend()?;
        Ok(Room::new(room))
    }

    /// Creator only: removes the room, its messages and memberships; ends its subscriptions.
    async fn delete_room(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&id, NodeType::Room).extend()?;
        rooms::delete(ctx.db(), viewer.user_id, room_id)
            .await
            .extend()?;
        live::end_room_feeds(ctx.state().broker.as_ref(), room_id, None).await;
        Ok(id::encode(NodeType::Room, room_id))
    }

    async fn join_room(&self, ctx: &Context<'_>, room_id: ID) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&room_id, NodeType::Room).extend()?;
        Ok(Room::new(
            rooms::join(ctx.db(), viewer.user_id, room_id)
                .await
                .extend()?,
        ))
    }

    /// Ends the leaver's live subscriptions to the room.
    async fn leave_room(&self, ctx: &Context<'_>, room_id: ID) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&room_id, NodeType::Room).extend()?;
        let (room, was_member) = rooms::leave(ctx.db(), viewer.user_id, room_id)
            .await
            .extend()?;
        if was_member {
            live::end_room_feeds(ctx.state().broker.as_ref(), room_id, Some(viewer.user_id)).await;
        }
        Ok(Room::new(room))
    }

    async fn send_message(
        &self,
        ctx: &Context<'_>,
        input: SendMessageInput,
    ) -> async_graphql::Result<Message> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&input.room_id, NodeType::Room).extend()?;
        let new = NewMessage {
            room_id,
            content: input.content,
            client_message_id: input.client_message_id,
        };
        let broker = ctx.state().broker.as_ref();
        let (message, _) = rooms::send(ctx.db(), broker, viewer.user_id, new)
            .await
            .extend()?;
        Ok(Message::new(message))
    }

    /// Marks everything in the room up to now read. Members only.
    async fn mark_room_read(&self, ctx: &Context<'_>, room_id: ID) -> async_graphql::Result<Room> {
        let viewer = ctx.require_viewer().extend()?;
        let room_id = id::decode(&room_id, NodeType::Room).extend()?;
        Ok(Room::new(
            rooms::mark_read(ctx.db(), viewer.user_id, room_id)
                .await
                .extend()?,
        ))
    }
}

//! Direct messages, conversations, and `directMessageAdded`.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, Object, Subscription};
use entity::{conversation, direct_message};
use futures_util::{Stream, StreamExt};
use uuid::Uuid;

use crate::{
    connection,
    error::AppError,
    graphql::{
        ContextExt,
        connection::PageArgs,
        events::{self, Reaction},
        id::{self, ListKind, NodeType, encode_cursor},
        room::EditMessageInput,
        scalars::DateTime,
        user::User,
    },
    realtime::TypingPlace,
    service::{
        direct::{self, NewDirectMessage},
        live,
    },
};

#[derive(Clone)]
pub struct DirectMessage(pub Arc<direct_message::Model>);

impl DirectMessage {
    pub fn new(model: direct_message::Model) -> Self {
        Self(Arc::new(model))
    }

    /// A direct message, for its two parties only.
    pub async fn load_visible(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        let Some(viewer) = ctx.viewer() else {
            return Ok(None);
        };
        let found = ctx.loaders().direct_messages().load_one(id).await?;
        Ok(found
            .filter(|m| m.sender_id == viewer.user_id || m.receiver_id == viewer.user_id)
            .map(Self))
    }
}

#[Object]
impl DirectMessage {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::DirectMessage, self.0.id)
    }

    async fn sender(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.sender_id).await
    }

    async fn receiver(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.receiver_id).await
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    async fn client_message_id(&self) -> Option<&str> {
        self.0.client_message_id.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn edited_at(&self) -> Option<DateTime> {
        self.0.edited_at.map(Into::into)
    }

    async fn deleted_at(&self) -> Option<DateTime> {
        self.0.deleted_at.map(Into::into)
    }

    /// The message this one answers (same thread); null if none or if that message was deleted.
    async fn reply_to(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<DirectMessage>> {
        let Some(id) = self.0.reply_to_id else {
            return Ok(None);
        };
        let found = ctx.loaders().direct_messages().load_one(id).await?;
        let parties = |m: &direct_message::Model| {
            let mut p = [m.sender_id, m.receiver_id];
            p.sort();
            p
        };
        Ok(found
            .filter(|m| m.deleted_at.is_none() && parties(m) == parties(&self.0))
            .map(DirectMessage))
    }

    async fn reactions(&self, ctx: &Context<'_>) -> async_graphql::Result<Vec<Reaction>> {
        events::load_reactions(ctx, self.0.id).await
    }
}

/// A one-to-one thread between the viewer and one other user.
pub struct Conversation(conversation::Model);

#[Object]
impl Conversation {
    async fn peer(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.peer_id).await
    }

    async fn last_message(&self, ctx: &Context<'_>) -> async_graphql::Result<DirectMessage> {
        let found = ctx
            .loaders()
            .direct_messages()
            .load_one(self.0.last_message_id)
            .await?;
        Ok(found
            .map(DirectMessage)
            .ok_or_else(|| AppError::not_found("message not found"))?)
    }

    /// Messages from the peer the viewer has not read.
    async fn unread_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        let n = ctx
            .loaders()
            .conversation_unread()
            .load_one(self.0.peer_id)
            .await?;
        Ok(i32::try_from(n.unwrap_or(0)).unwrap_or(i32::MAX))
    }
}

connection!(DirectMessageConnection, DirectMessageEdge, DirectMessage);
connection!(ConversationConnection, ConversationEdge, Conversation);

#[derive(InputObject)]
pub struct SendDirectMessageInput {
    to_user_id: ID,
    content: String,
    client_message_id: Option<String>,
    /// A message of the same thread that this one answers.
    reply_to_id: Option<ID>,
}

#[derive(Default)]
pub struct DirectQuery;

#[Object]
impl DirectQuery {
    /// The thread between the viewer and one user, oldest first (like Room.messages).
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn direct_messages(
        &self,
        ctx: &Context<'_>,
        with_user_id: ID,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<DirectMessageConnection> {
        let viewer = ctx.require_viewer()?;
        let peer = id::decode(&with_user_id, NodeType::User)?;
        let args = PageArgs::new(first, after, last, before);
        let page = args.page(ListKind::DirectMessages)?;
        let slice = direct::thread_messages(ctx.db(), viewer.user_id, peer, &page).await?;
        Ok(DirectMessageConnection::new(slice, |m| DirectMessageEdge {
            cursor: encode_cursor(ListKind::DirectMessages, &m.thread_seq, m.id),
            node: DirectMessage::new(m),
        }))
    }

    /// The viewer's threads, most recent message first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn conversations(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<ConversationConnection> {
        let viewer = ctx.require_viewer()?;
        let page = PageArgs::forward(first, after).page(ListKind::Conversations)?;
        let slice = direct::conversations(ctx.db(), viewer.user_id, &page).await?;
        Ok(ConversationConnection::new(slice, |c| ConversationEdge {
            cursor: encode_cursor(ListKind::Conversations, &c.last_message_at, c.peer_id),
            node: Conversation(c),
        }))
    }
}

#[derive(Default)]
pub struct DirectMutation;

#[Object]
impl DirectMutation {
    async fn send_direct_message(
        &self,
        ctx: &Context<'_>,
        input: SendDirectMessageInput,
    ) -> async_graphql::Result<DirectMessage> {
        let viewer = ctx.require_viewer()?;
        ctx.state().rate_limits.send(viewer.user_id)?;
        let to = id::decode(&input.to_user_id, NodeType::User)?;
        let reply_to = input
            .reply_to_id
            .map(|id| id::decode(&id, NodeType::DirectMessage))
            .transpose()?;
        let new = NewDirectMessage {
            to,
            content: input.content,
            client_message_id: input.client_message_id,
            reply_to,
        };
        let state = ctx.state();
        let message = direct::send(&state.db, state.broker.as_ref(), viewer.user_id, new).await?;
        state
            .typing
            .stop_on_send(TypingPlace::Direct { to }, viewer.user_id);
        Ok(DirectMessage::new(message))
    }

    /// The sender only.
    async fn edit_direct_message(
        &self,
        ctx: &Context<'_>,
        input: EditMessageInput,
    ) -> async_graphql::Result<DirectMessage> {
        let viewer = ctx.require_viewer()?;
        let state = ctx.state();
        state.rate_limits.send(viewer.user_id)?;
        let id = id::decode(&input.id, NodeType::DirectMessage)?;
        let broker = state.broker.as_ref();
        let message = direct::edit(&state.db, broker, viewer.user_id, id, input.content).await?;
        Ok(DirectMessage::new(message))
    }

    /// The sender only. Returns the tombstone.
    async fn delete_direct_message(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<DirectMessage> {
        let viewer = ctx.require_viewer()?;
        let id = id::decode(&id, NodeType::DirectMessage)?;
        let state = ctx.state();
        let message = direct::delete(&state.db, state.broker.as_ref(), viewer.user_id, id).await?;
        Ok(DirectMessage::new(message))
    }

    /// Marks the thread read up to now; null when there is no thread.
    async fn mark_conversation_read(
        &self,
        ctx: &Context<'_>,
        with_user_id: ID,
    ) -> async_graphql::Result<Option<Conversation>> {
        let viewer = ctx.require_viewer()?;
        let peer = id::decode(&with_user_id, NodeType::User)?;
        let state = ctx.state();
        let broker = state.broker.as_ref();
        let conversation = direct::mark_read(&state.db, broker, viewer.user_id, peer).await?;
        Ok(conversation.map(Conversation))
    }
}

#[derive(Default)]
pub struct DirectSubscription;

#[Subscription]
impl DirectSubscription {
    /// New direct messages sent to or by the viewer (every device stays in step).
    async fn direct_message_added(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<impl Stream<Item = DirectMessage> + use<>> {
        let viewer = ctx.require_viewer()?;
        let state = ctx.state();
        let feed = Box::pin(live::direct_feed(
            state.db.clone(),
            state.broker.as_ref(),
            state.metrics.clone(),
            viewer.user_id,
            None,
        ))
        .await?;
        Ok(feed.into_messages().map(DirectMessage::new))
    }
}

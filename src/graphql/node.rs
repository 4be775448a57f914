//! Relay Global Object Identification: the `Node` interface and `node(id:)`.

use async_graphql::{Context, ID, Interface, Object};

use crate::graphql::{
    direct::DirectMessage,
    id::{self, NodeType},
    room::{Message, Room},
    social::Post,
    user::User,
};

/// Relay Global Object Identification.
#[derive(Interface)]
#[graphql(name = "Node", field(name = "id", ty = "ID"))]
pub enum NodeInterface {
    User(User),
    Room(Room),
    Message(Message),
    DirectMessage(DirectMessage),
    Post(Post),
}

#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    // Null when nothing has the id or the viewer may not see it.
    async fn node(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<NodeInterface>> {
        let (kind, uuid) = id::decode_any(&id)?;
        Ok(match kind {
            NodeType::User => User::load(ctx, uuid).await?.map(NodeInterface::User),
            NodeType::Room => Room::load(ctx, uuid).await?.map(NodeInterface::Room),
            NodeType::Message => Message::load_visible(ctx, uuid)
                .await?
                .map(NodeInterface::Message),
            NodeType::DirectMessage => DirectMessage::load_visible(ctx, uuid)
                .await?
                .map(NodeInterface::DirectMessage),
            NodeType::Post => Post::load_visible(ctx, uuid)
                .await?
                .map(NodeInterface::Post),
        })
    }
}

use sea_orm::entity::prelude::*;

/// One position of a user's stream of direct-message events: what happened
/// at `seq` in one of their threads, in commit order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "direct_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub kind: DirectEventKind,
    pub message_id: Option<Uuid>,
    /// Who did it: the stream's user or the peer.
    pub actor_id: Uuid,
    /// The other party of the thread.
    pub peer_id: Uuid,
    pub created_at: DateTimeUtc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum DirectEventKind {
    #[sea_orm(string_value = "message_added")]
    MessageAdded,
    #[sea_orm(string_value = "message_edited")]
    MessageEdited,
    #[sea_orm(string_value = "message_deleted")]
    MessageDeleted,
    #[sea_orm(string_value = "reactions_changed")]
    ReactionsChanged,
    #[sea_orm(string_value = "conversation_read")]
    ConversationRead,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

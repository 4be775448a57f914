use sea_orm::entity::prelude::*;

/// One position of a room's stream: what happened at `seq` (a message, a
/// join, a leave, a room update), in commit order.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub seq: i64,
    pub kind: RoomEventKind,
    pub message_id: Option<Uuid>,
    pub user_id: Option<Uuid>,
    pub created_at: DateTimeUtc,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, EnumIter, DeriveActiveEnum)]
#[sea_orm(rs_type = "String", db_type = "String(StringLen::N(32))")]
pub enum RoomEventKind {
    #[sea_orm(string_value = "message")]
    Message,
    #[sea_orm(string_value = "member_joined")]
    MemberJoined,
    #[sea_orm(string_value = "member_left")]
    MemberLeft,
    #[sea_orm(string_value = "room_updated")]
    RoomUpdated,
    #[sea_orm(string_value = "message_edited")]
    MessageEdited,
    #[sea_orm(string_value = "message_deleted")]
    MessageDeleted,
    #[sea_orm(string_value = "reactions_changed")]
    ReactionsChanged,
    #[sea_orm(string_value = "receipt_moved")]
    ReceiptMoved,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

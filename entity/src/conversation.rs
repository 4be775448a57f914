use sea_orm::entity::prelude::*;

/// One end of a direct-message thread: the user's view of their thread with `peer_id`.
#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "conversations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub peer_id: Uuid,
    pub last_message_id: Uuid,
    pub last_message_at: DateTimeUtc,
    pub last_read_at: DateTimeUtc,
    /// Everything up to this position of the user's own stream is read.
    pub last_read_seq: i64,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

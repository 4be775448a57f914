use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "room_members")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub room_id: Uuid,
    #[sea_orm(primary_key, auto_increment = false)]
    pub user_id: Uuid,
    pub joined_at: DateTimeUtc,
    pub last_read_at: DateTimeUtc,
    /// Everything up to this position of the room's stream is read.
    pub last_read_seq: i64,
    /// When the member last moved their read receipt; None if they never marked.
    pub receipt_at: Option<DateTimeUtc>,
    /// The newest message the receipt covers.
    pub receipt_message_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

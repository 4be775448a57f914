use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "messages")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub room_id: Uuid,
    pub sender_id: Uuid,
    pub content: String,
    pub client_message_id: Option<String>,
    pub created_at: DateTimeUtc,
    /// Position in the room's stream: commit order.
    pub seq: i64,
    /// When the sender last edited the content.
    pub edited_at: Option<DateTimeUtc>,
    /// When it was deleted: a tombstone (empty content) from then on.
    pub deleted_at: Option<DateTimeUtc>,
    /// The message of the same room (thread) this one answers.
    pub reply_to_id: Option<Uuid>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

use sea_orm::entity::prelude::*;

/// On PostgreSQL the table also has a generated `location geography` column,
/// derived from latitude/longitude; it is only ever read in SQL, so it is not mapped here.
#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "posts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub author_id: Uuid,
    pub content: String,
    pub duration_ms: Option<i64>,
    pub is_beacon: bool,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}

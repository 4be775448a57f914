//! Schema migrations for both backends (SQLite and PostgreSQL + PostGIS).
//!
//! Portable tables come from the sea-query builder; what differs between the
//! backends (expression indexes, PostGIS) is plain SQL chosen per backend.
//! A landed migration is never edited, only followed by a new one.

pub use sea_orm_migration::prelude::*;

mod m20261123_000001_create_users;
mod m20261123_000002_create_rooms;
mod m20261123_000003_create_direct_messages;
mod m20261123_000004_create_follows_and_posts;
mod m20261201_000001_room_streams;
mod m20261201_000002_user_streams;
mod m20261201_000003_client_ids_per_thread;
mod m20261201_000004_create_server_secrets;
mod m20261202_000001_chat_events;

pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261123_000001_create_users::Migration),
            Box::new(m20261123_000002_create_rooms::Migration),
            Box::new(m20261123_000003_create_direct_messages::Migration),
            Box::new(m20261123_000004_create_follows_and_posts::Migration),
            Box::new(m20261201_000001_room_streams::Migration),
            Box::new(m20261201_000002_user_streams::Migration),
            Box::new(m20261201_000003_client_ids_per_thread::Migration),
            Box::new(m20261201_000004_create_server_secrets::Migration),
            Box::new(m20261202_000001_chat_events::Migration),
        ]
    }
}

/// Runs each statement in order on the migration's connection.
async fn exec_all(manager: &SchemaManager<'_>, statements: &[&str]) -> Result<(), DbErr> {
    let conn = manager.get_connection();
    for sql in statements {
        conn.execute_unprepared(sql).await?;
    }
    Ok(())
}

fn is_postgres(manager: &SchemaManager<'_>) -> bool {
    manager.get_database_backend() == sea_orm::DbBackend::Postgres
}

/// A `created_at`-style column: UTC timestamp, not null.
fn timestamp(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .timestamp_with_time_zone()
        .not_null()
        .to_owned()
}

fn uuid_col(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col).uuid().not_null().to_owned()
}

//! Chat events: edits, deletes (tombstones), replies, reactions, read
//! receipts, and a stored stream of events per user for direct threads.
//!
//! A room's stream (`room_events`, migration m20261201_000001) gains the new
//! kinds; each user's direct-message stream (`users.dm_seq`) gets a table of
//! its own, `direct_events`, filled from the existing messages: each message
//! is a `message_added` event at its position in both parties' streams.
//! Reactions are one table for both kinds of message (ids are UUIDs, unique
//! across both); a room's go with the room (`rooms::delete`), a direct
//! message's stay with its tombstone only until the delete removes them.

use sea_orm_migration::prelude::*;

use crate::{exec_all, is_postgres, timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261202_000001_chat_events"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    EditedAt,
    DeletedAt,
    ReplyToId,
}

#[derive(DeriveIden)]
enum DirectMessages {
    Table,
    Id,
    EditedAt,
    DeletedAt,
    ReplyToId,
}

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    RoomId,
    UserId,
    ReceiptAt,
    ReceiptMessageId,
}

#[derive(DeriveIden)]
enum RoomEvents {
    Table,
    RoomId,
    Seq,
    Kind,
    MessageId,
    UserId,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Reactions {
    Table,
    MessageId,
    UserId,
    Emoji,
    CreatedAt,
}

#[derive(DeriveIden)]
enum DirectEvents {
    Table,
    UserId,
    Seq,
    Kind,
    MessageId,
    ActorId,
    PeerId,
    CreatedAt,
}

const OLD_KINDS: &str = "'message', 'member_joined', 'member_left', 'room_updated'";
const NEW_KINDS: &str = "'message', 'member_joined', 'member_left', 'room_updated', \
     'message_edited', 'message_deleted', 'reactions_changed', 'receipt_moved'";

/// The nullable columns this migration adds, each (table, column, is a timestamp).
fn added_columns() -> [(DynIden, DynIden, bool); 8] {
    [
        (
            Messages::Table.into_iden(),
            Messages::EditedAt.into_iden(),
            true,
        ),
        (
            Messages::Table.into_iden(),
            Messages::DeletedAt.into_iden(),
            true,
        ),
        (
            Messages::Table.into_iden(),
            Messages::ReplyToId.into_iden(),
            false,
        ),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::EditedAt.into_iden(),
            true,
        ),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::DeletedAt.into_iden(),
            true,
        ),
        (
            DirectMessages::Table.into_iden(),
            DirectMessages::ReplyToId.into_iden(),
            false,
        ),
        (
            RoomMembers::Table.into_iden(),
            RoomMembers::ReceiptAt.into_iden(),
            true,
        ),
        (
            RoomMembers::Table.into_iden(),
            RoomMembers::ReceiptMessageId.into_iden(),
            false,
        ),
    ]
}

/// `room_events` as migration m20261201_000001 made it, with `kinds` allowed.
fn room_events(table: impl IntoIden, kinds: &str) -> TableCreateStatement {
    Table::create()
        .table(table)
        .col(uuid_col(RoomEvents::RoomId))
        .col(ColumnDef::new(RoomEvents::Seq).big_integer().not_null())
        .col(ColumnDef::new(RoomEvents::Kind).string_len(32).not_null())
        .col(ColumnDef::new(RoomEvents::MessageId).uuid().null())
        .col(ColumnDef::new(RoomEvents::UserId).uuid().null())
        .col(timestamp(RoomEvents::CreatedAt))
        .primary_key(Index::create().col(RoomEvents::RoomId).col(RoomEvents::Seq))
        .check(Expr::cust(format!("kind IN ({kinds})")))
        .foreign_key(
            ForeignKey::create()
                .name("room_events_room_id_fkey")
                .from(RoomEvents::Table, RoomEvents::RoomId)
                .to(Rooms::Table, Rooms::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .foreign_key(
            ForeignKey::create()
                .name("room_events_message_id_fkey")
                .from(RoomEvents::Table, RoomEvents::MessageId)
                .to(Messages::Table, Messages::Id)
                .on_delete(ForeignKeyAction::Cascade),
        )
        .to_owned()
}

/// Swaps the kinds `room_events` allows. PostgreSQL alters the constraint;
/// SQLite cannot, so the table is rebuilt and its rows copied.
async fn allow_kinds(manager: &SchemaManager<'_>, kinds: &str) -> Result<(), DbErr> {
    if is_postgres(manager) {
        let drop_checks = "DO $$ DECLARE c text; BEGIN FOR c IN SELECT conname FROM pg_constraint \
             WHERE conrelid = 'room_events'::regclass AND contype = 'c' LOOP \
             EXECUTE format('ALTER TABLE room_events DROP CONSTRAINT %I', c); END LOOP; END $$";
        let add = format!(
            "ALTER TABLE room_events ADD CONSTRAINT room_events_kind_check CHECK (kind IN ({kinds}))"
        );
        return exec_all(manager, &[drop_checks, &add]).await;
    }
    manager
        .create_table(room_events(Alias::new("room_events_rebuilt"), kinds))
        .await?;
    exec_all(
        manager,
        &[
            "INSERT INTO room_events_rebuilt (room_id, seq, kind, message_id, user_id, created_at) \
             SELECT room_id, seq, kind, message_id, user_id, created_at FROM room_events",
            "DROP TABLE room_events",
            "ALTER TABLE room_events_rebuilt RENAME TO room_events",
        ],
    )
    .await
}

/// A tombstone's content is empty: both message tables' `length(content) >= 1`
/// check becomes `… OR deleted_at IS NOT NULL` (`relaxed`), or back.
/// PostgreSQL replaces the constraint. SQLite cannot alter a CHECK, and
/// rebuilding `messages` would cascade into every table that references
/// it; loosening a CHECK changes nothing stored, so its schema text is
/// edited in place, as SQLite documents for exactly this kind of change
/// ("Making Other Kinds Of Table Schema Changes", sqlite.org/lang_altertable.html).
async fn tombstones_allowed(manager: &SchemaManager<'_>, relaxed: bool) -> Result<(), DbErr> {
    const STRICT: &str = "length(content) >= 1";
    const RELAXED: &str = "(length(content) >= 1 OR deleted_at IS NOT NULL)";
    let (from, to) = if relaxed {
        (STRICT, RELAXED)
    } else {
        (RELAXED, STRICT)
    };
    if is_postgres(manager) {
        for table in ["messages", "direct_messages"] {
            let drop = format!(
                "DO $$ DECLARE c text; BEGIN FOR c IN SELECT conname FROM pg_constraint \
                 WHERE conrelid = '{table}'::regclass AND contype = 'c' \
                 AND pg_get_constraintdef(oid) LIKE '%length(content)%' LOOP \
                 EXECUTE format('ALTER TABLE {table} DROP CONSTRAINT %I', c); END LOOP; END $$"
            );
            let add =
                format!("ALTER TABLE {table} ADD CONSTRAINT {table}_content_check CHECK ({to})");
            exec_all(manager, &[&drop, &add]).await?;
        }
        return Ok(());
    }
    let conn = manager.get_connection();
    let version = conn
        .query_one_raw(sea_orm_migration::sea_orm::Statement::from_string(
            manager.get_database_backend(),
            "PRAGMA schema_version",
        ))
        .await?
        .map(|row| row.try_get_by_index::<i64>(0))
        .transpose()?
        .unwrap_or(0);
    let edit = format!(
        "UPDATE sqlite_master SET sql = replace(sql, '{from}', '{to}') \
         WHERE type = 'table' AND name IN ('messages', 'direct_messages')"
    );
    let bump = format!("PRAGMA schema_version = {}", version + 1);
    exec_all(
        manager,
        &[
            "PRAGMA writable_schema = ON",
            &edit,
            &bump,
            "PRAGMA writable_schema = OFF",
        ],
    )
    .await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        for (table, column, is_time) in added_columns() {
            let mut def = ColumnDef::new(column);
            if is_time {
                def.timestamp_with_time_zone();
            } else {
                def.uuid();
            }
            manager
                .alter_table(
                    Table::alter()
                        .table(table)
                        .add_column(def.null().to_owned())
                        .to_owned(),
                )
                .await?;
        }
        allow_kinds(manager, NEW_KINDS).await?;
        tombstones_allowed(manager, true).await?;
        // Room.readReceipts: the room's receipts, most recently moved first.
        manager
            .create_index(
                Index::create()
                    .name("room_members_receipt_idx")
                    .table(RoomMembers::Table)
                    .col(RoomMembers::RoomId)
                    .col(RoomMembers::ReceiptAt)
                    .col(RoomMembers::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(Reactions::Table)
                    .col(uuid_col(Reactions::MessageId))
                    .col(uuid_col(Reactions::UserId))
                    .col(ColumnDef::new(Reactions::Emoji).string_len(64).not_null())
                    .col(timestamp(Reactions::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Reactions::MessageId)
                            .col(Reactions::UserId)
                            .col(Reactions::Emoji),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("reactions_user_id_fkey")
                            .from(Reactions::Table, Reactions::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(DirectEvents::Table)
                    .col(uuid_col(DirectEvents::UserId))
                    .col(ColumnDef::new(DirectEvents::Seq).big_integer().not_null())
                    .col(ColumnDef::new(DirectEvents::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(DirectEvents::MessageId).uuid().null())
                    .col(uuid_col(DirectEvents::ActorId))
                    .col(uuid_col(DirectEvents::PeerId))
                    .col(timestamp(DirectEvents::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(DirectEvents::UserId)
                            .col(DirectEvents::Seq),
                    )
                    .check(Expr::cust(
                        "kind IN ('message_added', 'message_edited', 'message_deleted', \
                         'reactions_changed', 'conversation_read')",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("direct_events_user_id_fkey")
                            .from(DirectEvents::Table, DirectEvents::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("direct_events_message_id_fkey")
                            .from(DirectEvents::Table, DirectEvents::MessageId)
                            .to(DirectMessages::Table, DirectMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        exec_all(
            manager,
            &[
                "INSERT INTO direct_events (user_id, seq, kind, message_id, actor_id, peer_id, created_at) \
                 SELECT sender_id, sender_seq, 'message_added', id, sender_id, receiver_id, created_at \
                 FROM direct_messages",
                "INSERT INTO direct_events (user_id, seq, kind, message_id, actor_id, peer_id, created_at) \
                 SELECT receiver_id, receiver_seq, 'message_added', id, sender_id, sender_id, created_at \
                 FROM direct_messages",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(DirectEvents::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Reactions::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("room_members_receipt_idx")
                    .table(RoomMembers::Table)
                    .to_owned(),
            )
            .await?;
        exec_all(
            manager,
            &[
                "DELETE FROM room_events WHERE kind IN ('message_edited', 'message_deleted', \
               'reactions_changed', 'receipt_moved')",
            ],
        )
        .await?;
        allow_kinds(manager, OLD_KINDS).await?;
        // Deleted messages have no content to go back to.
        exec_all(
            manager,
            &[
                "DELETE FROM messages WHERE deleted_at IS NOT NULL",
                "DELETE FROM direct_messages WHERE deleted_at IS NOT NULL",
            ],
        )
        .await?;
        tombstones_allowed(manager, false).await?;
        for (table, column, _) in added_columns() {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

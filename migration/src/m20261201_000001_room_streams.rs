//! Commit order as data: every room gets a stream, a sequence number per room
//! assigned under the room's row lock inside the writing transaction, so its
//! order is the commit order. Messages carry their position; room events
//! (messages, joins, leaves, room updates) are the stream itself; read marks
//! become positions. Existing messages are numbered in their current order
//! (created_at, id), and read marks carried over to the matching position.

use sea_orm_migration::prelude::*;

use crate::{exec_all, timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000001_room_streams"
    }
}

#[derive(DeriveIden)]
enum Rooms {
    Table,
    Id,
    LastSeq,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    RoomId,
    Seq,
}

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    LastReadSeq,
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

fn position(col: impl IntoIden) -> ColumnDef {
    ColumnDef::new(col)
        .big_integer()
        .not_null()
        .default(0)
        .to_owned()
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .alter_table(
                Table::alter()
                    .table(Rooms::Table)
                    .add_column(position(Rooms::LastSeq))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(Messages::Table)
                    .add_column(position(Messages::Seq))
                    .to_owned(),
            )
            .await?;
        manager
            .alter_table(
                Table::alter()
                    .table(RoomMembers::Table)
                    .add_column(position(RoomMembers::LastReadSeq))
                    .to_owned(),
            )
            .await?;
        exec_all(
            manager,
            &[
                "UPDATE messages SET seq = numbered.n FROM (SELECT id, row_number() OVER \
                 (PARTITION BY room_id ORDER BY created_at, id) AS n FROM messages) AS numbered \
                 WHERE messages.id = numbered.id",
                "UPDATE rooms SET last_seq = COALESCE((SELECT MAX(m.seq) FROM messages m \
                 WHERE m.room_id = rooms.id), 0)",
                "UPDATE room_members SET last_read_seq = COALESCE((SELECT MAX(m.seq) FROM \
                 messages m WHERE m.room_id = room_members.room_id AND m.created_at <= \
                 room_members.last_read_at), 0)",
            ],
        )
        .await?;
        // History, catch-up and unread counts read by position.
        manager
            .create_index(
                Index::create()
                    .name("messages_room_seq_idx")
                    .table(Messages::Table)
                    .col(Messages::RoomId)
                    .col(Messages::Seq)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_table(
                Table::create()
                    .table(RoomEvents::Table)
                    .col(uuid_col(RoomEvents::RoomId))
                    .col(ColumnDef::new(RoomEvents::Seq).big_integer().not_null())
                    .col(ColumnDef::new(RoomEvents::Kind).string_len(32).not_null())
                    .col(ColumnDef::new(RoomEvents::MessageId).uuid().null())
                    .col(ColumnDef::new(RoomEvents::UserId).uuid().null())
                    .col(timestamp(RoomEvents::CreatedAt))
                    .primary_key(Index::create().col(RoomEvents::RoomId).col(RoomEvents::Seq))
                    .check(Expr::cust(
                        "kind IN ('message', 'member_joined', 'member_left', 'room_updated')",
                    ))
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
                    .to_owned(),
            )
            .await?;
        exec_all(
            manager,
            &[
                "INSERT INTO room_events (room_id, seq, kind, message_id, user_id, created_at) \
               SELECT room_id, seq, 'message', id, sender_id, created_at FROM messages",
            ],
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RoomEvents::Table).to_owned())
            .await?;
        manager
            .drop_index(
                Index::drop()
                    .name("messages_room_seq_idx")
                    .table(Messages::Table)
                    .to_owned(),
            )
            .await?;
        for (table, column) in [
            (Messages::Table.into_iden(), Messages::Seq.into_iden()),
            (
                RoomMembers::Table.into_iden(),
                RoomMembers::LastReadSeq.into_iden(),
            ),
            (Rooms::Table.into_iden(), Rooms::LastSeq.into_iden()),
        ] {
            manager
                .alter_table(Table::alter().table(table).drop_column(column).to_owned())
                .await?;
        }
        Ok(())
    }
}

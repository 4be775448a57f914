use sea_orm_migration::prelude::*;

use crate::{exec_all, timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000003_create_direct_messages"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum DirectMessages {
    Table,
    Id,
    SenderId,
    ReceiverId,
    Content,
    ClientMessageId,
    CreatedAt,
}

/// One row per (viewer, peer) thread end: what `conversations` lists, and the
/// viewer's read mark. Written in the send's transaction, per pair, so it never
/// serialises unrelated senders.
#[derive(DeriveIden)]
enum Conversations {
    Table,
    UserId,
    PeerId,
    LastMessageId,
    LastMessageAt,
    LastReadAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(DirectMessages::Table)
                    .col(uuid_col(DirectMessages::Id).primary_key())
                    .col(uuid_col(DirectMessages::SenderId))
                    .col(uuid_col(DirectMessages::ReceiverId))
                    .col(ColumnDef::new(DirectMessages::Content).text().not_null())
                    .col(
                        ColumnDef::new(DirectMessages::ClientMessageId)
                            .string_len(64)
                            .null(),
                    )
                    .col(timestamp(DirectMessages::CreatedAt))
                    .check(Expr::cust("length(content) >= 1"))
                    .check(Expr::cust("sender_id <> receiver_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("direct_messages_sender_id_fkey")
                            .from(DirectMessages::Table, DirectMessages::SenderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("direct_messages_receiver_id_fkey")
                            .from(DirectMessages::Table, DirectMessages::ReceiverId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("direct_messages_sender_client_message_id_key")
                    .table(DirectMessages::Table)
                    .col(DirectMessages::SenderId)
                    .col(DirectMessages::ClientMessageId)
                    .unique()
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("direct_messages_receiver_id_idx")
                    .table(DirectMessages::Table)
                    .col(DirectMessages::ReceiverId)
                    .to_owned(),
            )
            .await?;
        // Both directions of a thread in one index range. The query side uses
        // the very same expressions (see service::direct).
        let thread_index = if crate::is_postgres(manager) {
            "CREATE INDEX direct_messages_thread_idx ON direct_messages \
             (LEAST(sender_id, receiver_id), GREATEST(sender_id, receiver_id), created_at DESC, id DESC)"
        } else {
            "CREATE INDEX direct_messages_thread_idx ON direct_messages \
             (min(sender_id, receiver_id), max(sender_id, receiver_id), created_at DESC, id DESC)"
        };
        exec_all(manager, &[thread_index]).await?;

        manager
            .create_table(
                Table::create()
                    .table(Conversations::Table)
                    .col(uuid_col(Conversations::UserId))
                    .col(uuid_col(Conversations::PeerId))
                    .col(uuid_col(Conversations::LastMessageId))
                    .col(timestamp(Conversations::LastMessageAt))
                    .col(timestamp(Conversations::LastReadAt))
                    .primary_key(
                        Index::create()
                            .col(Conversations::UserId)
                            .col(Conversations::PeerId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("conversations_user_id_fkey")
                            .from(Conversations::Table, Conversations::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("conversations_peer_id_fkey")
                            .from(Conversations::Table, Conversations::PeerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("conversations_last_message_id_fkey")
                            .from(Conversations::Table, Conversations::LastMessageId)
                            .to(DirectMessages::Table, DirectMessages::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("conversations_user_last_message_idx")
                    .table(Conversations::Table)
                    .col(Conversations::UserId)
                    .col((Conversations::LastMessageAt, IndexOrder::Desc))
                    .col((Conversations::PeerId, IndexOrder::Desc))
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Conversations::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(DirectMessages::Table).to_owned())
            .await
    }
}

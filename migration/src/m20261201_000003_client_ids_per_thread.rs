//! A client's message id is unique per room (and per direct thread), not per
//! sender: the same clientMessageId sent to another room is another message.

use sea_orm_migration::prelude::*;

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261201_000003_client_ids_per_thread"
    }
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    RoomId,
    SenderId,
    ClientMessageId,
}

#[derive(DeriveIden)]
enum DirectMessages {
    Table,
    SenderId,
    ReceiverId,
    ClientMessageId,
}

async fn replace(
    manager: &SchemaManager<'_>,
    drop: (&str, DynIden),
    create: IndexCreateStatement,
) -> Result<(), DbErr> {
    manager
        .drop_index(Index::drop().name(drop.0).table(drop.1).to_owned())
        .await?;
    manager.create_index(create).await
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(
            manager,
            (
                "messages_sender_client_message_id_key",
                Messages::Table.into_iden(),
            ),
            Index::create()
                .name("messages_room_sender_client_message_id_key")
                .table(Messages::Table)
                .col(Messages::RoomId)
                .col(Messages::SenderId)
                .col(Messages::ClientMessageId)
                .unique()
                .to_owned(),
        )
        .await?;
        replace(
            manager,
            (
                "direct_messages_sender_client_message_id_key",
                DirectMessages::Table.into_iden(),
            ),
            Index::create()
                .name("direct_messages_thread_client_message_id_key")
                .table(DirectMessages::Table)
                .col(DirectMessages::SenderId)
                .col(DirectMessages::ReceiverId)
                .col(DirectMessages::ClientMessageId)
                .unique()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        replace(
            manager,
            (
                "messages_room_sender_client_message_id_key",
                Messages::Table.into_iden(),
            ),
            Index::create()
                .name("messages_sender_client_message_id_key")
                .table(Messages::Table)
                .col(Messages::SenderId)
                .col(Messages::ClientMessageId)
                .unique()
                .to_owned(),
        )
        .await?;
        replace(
            manager,
            (
                "direct_messages_thread_client_message_id_key",
                DirectMessages::Table.into_iden(),
            ),
            Index::create()
                .name("direct_messages_sender_client_message_id_key")
                .table(DirectMessages::Table)
                .col(DirectMessages::SenderId)
                .col(DirectMessages::ClientMessageId)
                .unique()
                .to_owned(),
        )
        .await
    }
}

use sea_orm_migration::prelude::*;

use crate::{timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000002_create_rooms"
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
    Name,
    Description,
    CreatedBy,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RoomMembers {
    Table,
    RoomId,
    UserId,
    JoinedAt,
    LastReadAt,
}

#[derive(DeriveIden)]
enum Messages {
    Table,
    Id,
    RoomId,
    SenderId,
    Content,
    ClientMessageId,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Rooms::Table)
                    .col(uuid_col(Rooms::Id).primary_key())
                    .col(ColumnDef::new(Rooms::Name).string_len(100).not_null())
                    .col(ColumnDef::new(Rooms::Description).text().null())
                    .col(uuid_col(Rooms::CreatedBy))
                    .col(timestamp(Rooms::CreatedAt))
                    .col(timestamp(Rooms::UpdatedAt))
                    .check(Expr::cust("length(name) BETWEEN 1 AND 100"))
                    .check(Expr::cust(
                        "description IS NULL OR length(description) <= 1000",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("rooms_created_by_fkey")
                            .from(Rooms::Table, Rooms::CreatedBy)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // `rooms` lists newest first; `createdBy` lookups by creator.
        manager
            .create_index(
                Index::create()
                    .name("rooms_created_at_id_idx")
                    .table(Rooms::Table)
                    .col((Rooms::CreatedAt, IndexOrder::Desc))
                    .col((Rooms::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("rooms_created_by_idx")
                    .table(Rooms::Table)
                    .col(Rooms::CreatedBy)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(RoomMembers::Table)
                    .col(uuid_col(RoomMembers::RoomId))
                    .col(uuid_col(RoomMembers::UserId))
                    .col(timestamp(RoomMembers::JoinedAt))
                    .col(timestamp(RoomMembers::LastReadAt))
                    .primary_key(
                        Index::create()
                            .col(RoomMembers::RoomId)
                            .col(RoomMembers::UserId),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("room_members_room_id_fkey")
                            .from(RoomMembers::Table, RoomMembers::RoomId)
                            .to(Rooms::Table, Rooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("room_members_user_id_fkey")
                            .from(RoomMembers::Table, RoomMembers::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // `myRooms` (by user) and `members` (by room, oldest member first).
        manager
            .create_index(
                Index::create()
                    .name("room_members_user_id_idx")
                    .table(RoomMembers::Table)
                    .col(RoomMembers::UserId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("room_members_room_joined_idx")
                    .table(RoomMembers::Table)
                    .col(RoomMembers::RoomId)
                    .col(RoomMembers::JoinedAt)
                    .col(RoomMembers::UserId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Messages::Table)
                    .col(uuid_col(Messages::Id).primary_key())
                    .col(uuid_col(Messages::RoomId))
                    .col(uuid_col(Messages::SenderId))
                    .col(ColumnDef::new(Messages::Content).text().not_null())
                    .col(
                        ColumnDef::new(Messages::ClientMessageId)
                            .string_len(64)
                            .null(),
                    )
                    .col(timestamp(Messages::CreatedAt))
                    .check(Expr::cust("length(content) >= 1"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("messages_room_id_fkey")
                            .from(Messages::Table, Messages::RoomId)
                            .to(Rooms::Table, Rooms::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("messages_sender_id_fkey")
                            .from(Messages::Table, Messages::SenderId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("messages_room_created_id_idx")
                    .table(Messages::Table)
                    .col(Messages::RoomId)
                    .col((Messages::CreatedAt, IndexOrder::Desc))
                    .col((Messages::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        // Idempotent retries: one row per (sender, clientMessageId); NULLs never collide.
        manager
            .create_index(
                Index::create()
                    .name("messages_sender_client_message_id_key")
                    .table(Messages::Table)
                    .col(Messages::SenderId)
                    .col(Messages::ClientMessageId)
                    .unique()
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Messages::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(RoomMembers::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Rooms::Table).to_owned())
            .await
    }
}

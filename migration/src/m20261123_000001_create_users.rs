use sea_orm_migration::prelude::*;

use crate::{exec_all, timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000001_create_users"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
    Username,
    DisplayName,
    AvatarUrl,
    Email,
    PasswordHash,
    IsPrivate,
    IsOfficial,
    IdentityKey,
    CreatedAt,
    UpdatedAt,
}

#[derive(DeriveIden)]
enum RefreshTokens {
    Table,
    Id,
    UserId,
    TokenHash,
    FamilyId,
    ExpiresAt,
    CreatedAt,
    SpentAt,
    RevokedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Users::Table)
                    .col(uuid_col(Users::Id).primary_key())
                    .col(ColumnDef::new(Users::Username).string_len(32).not_null())
                    .col(ColumnDef::new(Users::DisplayName).string_len(100).null())
                    .col(ColumnDef::new(Users::AvatarUrl).string_len(2048).null())
                    .col(ColumnDef::new(Users::Email).string_len(254).not_null())
                    .col(
                        ColumnDef::new(Users::PasswordHash)
                            .string_len(60)
                            .not_null(),
                    )
                    .col(
                        ColumnDef::new(Users::IsPrivate)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(
                        ColumnDef::new(Users::IsOfficial)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(Users::IdentityKey).text().null())
                    .col(timestamp(Users::CreatedAt))
                    .col(timestamp(Users::UpdatedAt))
                    .check(Expr::cust("length(username) BETWEEN 3 AND 32"))
                    .to_owned(),
            )
            .await?;
        // Case-insensitive uniqueness, and the prefix search of `searchUsers`.
        exec_all(
            manager,
            &[
                "CREATE UNIQUE INDEX users_username_lower_key ON users (lower(username))",
                "CREATE UNIQUE INDEX users_email_lower_key ON users (lower(email))",
            ],
        )
        .await?;
        if crate::is_postgres(manager) {
            // text_pattern_ops lets `lower(x) LIKE 'abc%'` use the index whatever the collation.
            exec_all(
                manager,
                &[
                    "CREATE INDEX users_username_prefix_idx ON users (lower(username) text_pattern_ops)",
                    "CREATE INDEX users_display_name_prefix_idx ON users (lower(display_name) text_pattern_ops)",
                ],
            )
            .await?;
        } else {
            exec_all(
                manager,
                &["CREATE INDEX users_display_name_lower_idx ON users (lower(display_name))"],
            )
            .await?;
        }

        manager
            .create_table(
                Table::create()
                    .table(RefreshTokens::Table)
                    .col(uuid_col(RefreshTokens::Id).primary_key())
                    .col(uuid_col(RefreshTokens::UserId))
                    .col(
                        ColumnDef::new(RefreshTokens::TokenHash)
                            .binary_len(32)
                            .not_null()
                            .unique_key(),
                    )
                    .col(uuid_col(RefreshTokens::FamilyId))
                    .col(timestamp(RefreshTokens::ExpiresAt))
                    .col(timestamp(RefreshTokens::CreatedAt))
                    .col(
                        ColumnDef::new(RefreshTokens::SpentAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .col(
                        ColumnDef::new(RefreshTokens::RevokedAt)
                            .timestamp_with_time_zone()
                            .null(),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("refresh_tokens_user_id_fkey")
                            .from(RefreshTokens::Table, RefreshTokens::UserId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_family_id_idx")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::FamilyId)
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("refresh_tokens_user_id_idx")
                    .table(RefreshTokens::Table)
                    .col(RefreshTokens::UserId)
                    .to_owned(),
            )
            .await
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(RefreshTokens::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Users::Table).to_owned())
            .await
    }
}

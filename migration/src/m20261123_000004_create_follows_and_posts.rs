use sea_orm_migration::prelude::*;

use crate::{exec_all, timestamp, uuid_col};

pub struct Migration;

impl MigrationName for Migration {
    fn name(&self) -> &str {
        "m20261123_000004_create_follows_and_posts"
    }
}

#[derive(DeriveIden)]
enum Users {
    Table,
    Id,
}

#[derive(DeriveIden)]
enum Follows {
    Table,
    FollowerId,
    FollowingId,
    Status,
    CreatedAt,
}

#[derive(DeriveIden)]
enum Posts {
    Table,
    Id,
    AuthorId,
    Content,
    DurationMs,
    IsBeacon,
    Latitude,
    Longitude,
    CreatedAt,
}

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .create_table(
                Table::create()
                    .table(Follows::Table)
                    .col(uuid_col(Follows::FollowerId))
                    .col(uuid_col(Follows::FollowingId))
                    .col(ColumnDef::new(Follows::Status).string_len(16).not_null())
                    .col(timestamp(Follows::CreatedAt))
                    .primary_key(
                        Index::create()
                            .col(Follows::FollowerId)
                            .col(Follows::FollowingId),
                    )
                    .check(Expr::cust("status IN ('pending', 'accepted')"))
                    .check(Expr::cust("follower_id <> following_id"))
                    .foreign_key(
                        ForeignKey::create()
                            .name("follows_follower_id_fkey")
                            .from(Follows::Table, Follows::FollowerId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .foreign_key(
                        ForeignKey::create()
                            .name("follows_following_id_fkey")
                            .from(Follows::Table, Follows::FollowingId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        // Followers of a user (and pending requests), in follow order.
        manager
            .create_index(
                Index::create()
                    .name("follows_following_status_idx")
                    .table(Follows::Table)
                    .col(Follows::FollowingId)
                    .col(Follows::Status)
                    .col(Follows::CreatedAt)
                    .col(Follows::FollowerId)
                    .to_owned(),
            )
            .await?;
        // Whom a user follows, in follow order (the primary key leads with follower_id too,
        // but cannot order by created_at).
        manager
            .create_index(
                Index::create()
                    .name("follows_follower_status_idx")
                    .table(Follows::Table)
                    .col(Follows::FollowerId)
                    .col(Follows::Status)
                    .col(Follows::CreatedAt)
                    .col(Follows::FollowingId)
                    .to_owned(),
            )
            .await?;

        manager
            .create_table(
                Table::create()
                    .table(Posts::Table)
                    .col(uuid_col(Posts::Id).primary_key())
                    .col(uuid_col(Posts::AuthorId))
                    .col(ColumnDef::new(Posts::Content).text().not_null())
                    .col(ColumnDef::new(Posts::DurationMs).big_integer().null())
                    .col(
                        ColumnDef::new(Posts::IsBeacon)
                            .boolean()
                            .not_null()
                            .default(false),
                    )
                    .col(ColumnDef::new(Posts::Latitude).double().null())
                    .col(ColumnDef::new(Posts::Longitude).double().null())
                    .col(timestamp(Posts::CreatedAt))
                    .check(Expr::cust("length(content) >= 1"))
                    .check(Expr::cust("duration_ms IS NULL OR duration_ms >= 0"))
                    .check(Expr::cust(
                        "latitude IS NULL OR latitude BETWEEN -90 AND 90",
                    ))
                    .check(Expr::cust(
                        "longitude IS NULL OR longitude BETWEEN -180 AND 180",
                    ))
                    .check(Expr::cust(
                        "(is_beacon AND latitude IS NOT NULL AND longitude IS NOT NULL) \
                         OR (NOT is_beacon AND latitude IS NULL AND longitude IS NULL)",
                    ))
                    .foreign_key(
                        ForeignKey::create()
                            .name("posts_author_id_fkey")
                            .from(Posts::Table, Posts::AuthorId)
                            .to(Users::Table, Users::Id)
                            .on_delete(ForeignKeyAction::Cascade),
                    )
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("posts_author_created_id_idx")
                    .table(Posts::Table)
                    .col(Posts::AuthorId)
                    .col((Posts::CreatedAt, IndexOrder::Desc))
                    .col((Posts::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;
        manager
            .create_index(
                Index::create()
                    .name("posts_created_id_idx")
                    .table(Posts::Table)
                    .col((Posts::CreatedAt, IndexOrder::Desc))
                    .col((Posts::Id, IndexOrder::Desc))
                    .to_owned(),
            )
            .await?;

        if crate::is_postgres(manager) {
            // The geography point follows latitude/longitude by construction
            // (a stored generated column), so the two can never disagree.
            exec_all(
                manager,
                &[
                    "CREATE EXTENSION IF NOT EXISTS postgis",
                    "ALTER TABLE posts ADD COLUMN location geography(Point, 4326) \
                     GENERATED ALWAYS AS (CASE WHEN latitude IS NOT NULL AND longitude IS NOT NULL \
                     THEN ST_SetSRID(ST_MakePoint(longitude, latitude), 4326)::geography END) STORED",
                    "CREATE INDEX posts_location_gist_idx ON posts USING GIST (location)",
                ],
            )
            .await
        } else {
            // Bounding-box prefilter for nearby beacons; the exact distance is computed after.
            exec_all(
                manager,
                &["CREATE INDEX posts_beacon_lat_lon_idx ON posts (latitude, longitude) WHERE is_beacon"],
            )
            .await
        }
    }

    async fn down(&self, manager: &SchemaManager) -> Result<(), DbErr> {
        manager
            .drop_table(Table::drop().table(Posts::Table).to_owned())
            .await?;
        manager
            .drop_table(Table::drop().table(Follows::Table).to_owned())
            .await
        // The postgis extension stays: other databases objects may use it, and
        // dropping an extension is an operator's decision, not a migration's.
    }
}

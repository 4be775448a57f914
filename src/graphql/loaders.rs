//! DataLoaders: one batched query per kind of row per request, never N+1.
//! They batch only (no cache), so a long-lived subscription never serves stale rows.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{follow::FollowStatus, user};
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{
    auth::Viewer,
    error::AppError,
    service::follows::{self, Side},
};

pub type LoadError = Arc<AppError>;

pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub followers_count: DataLoader<FollowCountLoader>,
    pub following_count: DataLoader<FollowCountLoader>,
    pub viewer_follow_status: DataLoader<FollowStatusLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, viewer: Option<Viewer>) -> Self {
        let count = |side| {
            DataLoader::new(
                FollowCountLoader {
                    db: db.clone(),
                    side,
                },
                tokio::spawn,
            )
        };
        Self {
            users: DataLoader::new(UserLoader { db: db.clone() }, tokio::spawn),
            followers_count: count(Side::Followers),
            following_count: count(Side::Following),
            viewer_follow_status: DataLoader::new(
                FollowStatusLoader {
                    db: db.clone(),
                    viewer: viewer.map(|v| v.user_id),
                },
                tokio::spawn,
            ),
        }
    }
}

/// Accepted followers (or followees) per user: one GROUP BY per batch.
pub struct FollowCountLoader {
    db: DatabaseConnection,
    side: Side,
}

impl Loader<Uuid> for FollowCountLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        follows::counts(&self.db, keys, self.side)
            .await
            .map_err(Arc::new)
    }
}

/// The request viewer's follow of each user in the batch.
pub struct FollowStatusLoader {
    db: DatabaseConnection,
    viewer: Option<Uuid>,
}

impl Loader<Uuid> for FollowStatusLoader {
    type Value = FollowStatus;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        match self.viewer {
            Some(viewer) => follows::statuses(&self.db, viewer, keys)
                .await
                .map_err(Arc::new),
            None => Ok(HashMap::new()),
        }
    }
}

pub struct UserLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for UserLoader {
    type Value = Arc<user::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let rows = user::Entity::find()
            .filter(user::Column::Id.is_in(keys.iter().copied()))
            .all(&self.db)
            .await
            .map_err(|e| Arc::new(AppError::from(e)))?;
        Ok(rows.into_iter().map(|u| (u.id, Arc::new(u))).collect())
    }
}

/// Turns a loader error into a coded GraphQL error.
pub fn gql_err(err: LoadError) -> async_graphql::Error {
    use async_graphql::ErrorExtensions;
    err.extend()
}

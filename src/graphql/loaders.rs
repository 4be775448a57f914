//! DataLoaders: one batched query per kind of row per request, never N+1.
//! They batch only (no cache), so a long-lived subscription never serves stale rows.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use entity::user;
use sea_orm::{ColumnTrait, DatabaseConnection, EntityTrait, QueryFilter};
use uuid::Uuid;

use crate::{auth::Viewer, error::AppError};

pub type LoadError = Arc<AppError>;

pub struct Loaders {
    pub users: DataLoader<UserLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, _viewer: Option<Viewer>) -> Self {
        Self {
            users: DataLoader::new(UserLoader { db: db.clone() }, tokio::spawn),
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

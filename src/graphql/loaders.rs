//! DataLoaders: one batched query per kind of row per request, never N+1.
//! The queries themselves live in `service`.
//! They batch only (no cache), so a long-lived subscription never serves stale rows.

use std::{collections::HashMap, sync::Arc};

use async_graphql::dataloader::{DataLoader, Loader};
use entity::{direct_message, follow::FollowStatus, message, room, room_member, user};
use sea_orm::DatabaseConnection;
use uuid::Uuid;

use crate::{
    auth::Viewer,
    error::AppError,
    service::{
        direct,
        follows::{self, Side},
        rooms, users,
    },
};

/// A failed batch, shared by every key in it.
#[derive(Clone)]
pub struct LoadError(pub Arc<AppError>);

impl From<AppError> for LoadError {
    fn from(err: AppError) -> Self {
        Self(Arc::new(err))
    }
}

pub struct Loaders {
    pub users: DataLoader<UserLoader>,
    pub rooms: DataLoader<RoomLoader>,
    pub messages: DataLoader<MessageLoader>,
    pub direct_messages: DataLoader<DirectMessageLoader>,
    pub member_counts: DataLoader<MemberCountLoader>,
    pub memberships: DataLoader<MembershipLoader>,
    pub room_unread: DataLoader<RoomUnreadLoader>,
    pub conversation_unread: DataLoader<ConversationUnreadLoader>,
    pub followers_count: DataLoader<FollowCountLoader>,
    pub following_count: DataLoader<FollowCountLoader>,
    pub viewer_follow_status: DataLoader<FollowStatusLoader>,
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, viewer: Option<Viewer>) -> Self {
        let db = || db.clone();
        Self {
            users: DataLoader::new(UserLoader { db: db() }, tokio::spawn),
            rooms: DataLoader::new(RoomLoader { db: db() }, tokio::spawn),
            messages: DataLoader::new(MessageLoader { db: db() }, tokio::spawn),
            direct_messages: DataLoader::new(DirectMessageLoader { db: db() }, tokio::spawn),
            member_counts: DataLoader::new(MemberCountLoader { db: db() }, tokio::spawn),
            memberships: DataLoader::new(MembershipLoader { db: db(), viewer }, tokio::spawn),
            room_unread: DataLoader::new(RoomUnreadLoader { db: db(), viewer }, tokio::spawn),
            conversation_unread: DataLoader::new(
                ConversationUnreadLoader { db: db(), viewer },
                tokio::spawn,
            ),
            followers_count: DataLoader::new(
                FollowCountLoader {
                    db: db(),
                    side: Side::Followers,
                },
                tokio::spawn,
            ),
            following_count: DataLoader::new(
                FollowCountLoader {
                    db: db(),
                    side: Side::Following,
                },
                tokio::spawn,
            ),
            viewer_follow_status: DataLoader::new(
                FollowStatusLoader {
                    db: db(),
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
            .map_err(LoadError::from)
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
                .map_err(LoadError::from),
            None => Ok(HashMap::new()),
        }
    }
}

/// Batches one viewer-independent lookup by id.
macro_rules! by_id_loader {
    ($name:ident, $value:ty, $find:path, $key:ident) => {
        pub struct $name {
            db: DatabaseConnection,
        }

        impl Loader<Uuid> for $name {
            type Value = Arc<$value>;
            type Error = LoadError;

            async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
                let rows = $find(&self.db, keys).await.map_err(LoadError::from)?;
                Ok(rows.into_iter().map(|r| (r.$key, Arc::new(r))).collect())
            }
        }
    };
}

by_id_loader!(UserLoader, user::Model, users::find_many, id);
by_id_loader!(RoomLoader, room::Model, rooms::find_many, id);
by_id_loader!(MessageLoader, message::Model, rooms::find_messages, id);
by_id_loader!(
    DirectMessageLoader,
    direct_message::Model,
    direct::find_many,
    id
);

/// Members per room, counted in SQL.
pub struct MemberCountLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for MemberCountLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        rooms::member_counts(&self.db, keys)
            .await
            .map_err(LoadError::from)
    }
}

/// The request viewer's membership per room; none for anonymous requests.
pub struct MembershipLoader {
    db: DatabaseConnection,
    viewer: Option<Viewer>,
}

impl Loader<Uuid> for MembershipLoader {
    type Value = Arc<room_member::Model>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        let rows = rooms::memberships(&self.db, viewer.user_id, keys)
            .await
            .map_err(LoadError::from)?;
        Ok(rows.into_iter().map(|m| (m.room_id, Arc::new(m))).collect())
    }
}

/// The request viewer's unread messages per room (absent: none, or not a member).
pub struct RoomUnreadLoader {
    db: DatabaseConnection,
    viewer: Option<Viewer>,
}

impl Loader<Uuid> for RoomUnreadLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        rooms::unread_counts(&self.db, viewer.user_id, keys)
            .await
            .map_err(LoadError::from)
    }
}

/// The request viewer's unread direct messages per peer.
pub struct ConversationUnreadLoader {
    db: DatabaseConnection,
    viewer: Option<Viewer>,
}

impl Loader<Uuid> for ConversationUnreadLoader {
    type Value = i64;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, i64>, Self::Error> {
        let Some(viewer) = self.viewer else {
            return Ok(HashMap::new());
        };
        direct::unread_counts(&self.db, viewer.user_id, keys)
            .await
            .map_err(LoadError::from)
    }
}

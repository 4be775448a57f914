//! DataLoaders: one batched query per kind of row per request, never N+1.
//! The queries themselves live in `service`.
//! They batch only (no cache), so a long-lived subscription never serves stale rows.

use std::{
    collections::HashMap,
    sync::{Arc, OnceLock},
};

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
        reactions::{self, ReactionGroup},
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

/// The request's DataLoaders, each made on first use: a subscription that
/// never needs one (a live room hands out messages with their senders) keeps
/// none while it idles.
pub struct Loaders {
    db: DatabaseConnection,
    viewer: Option<Viewer>,
    users: OnceLock<DataLoader<UserLoader>>,
    rooms: OnceLock<DataLoader<RoomLoader>>,
    messages: OnceLock<DataLoader<MessageLoader>>,
    direct_messages: OnceLock<DataLoader<DirectMessageLoader>>,
    member_counts: OnceLock<DataLoader<MemberCountLoader>>,
    memberships: OnceLock<DataLoader<MembershipLoader>>,
    room_unread: OnceLock<DataLoader<RoomUnreadLoader>>,
    conversation_unread: OnceLock<DataLoader<ConversationUnreadLoader>>,
    reactions: OnceLock<DataLoader<ReactionsLoader>>,
    followers_count: OnceLock<DataLoader<FollowCountLoader>>,
    following_count: OnceLock<DataLoader<FollowCountLoader>>,
    viewer_follow_status: OnceLock<DataLoader<FollowStatusLoader>>,
}

/// The loader in `cell`, made by `make` the first time.
fn loader<T: Loader<Uuid>>(
    cell: &OnceLock<DataLoader<T>>,
    make: impl FnOnce() -> T,
) -> &DataLoader<T> {
    cell.get_or_init(|| DataLoader::new(make(), tokio::spawn))
}

impl Loaders {
    pub fn new(db: &DatabaseConnection, viewer: Option<Viewer>) -> Self {
        Self {
            db: db.clone(),
            viewer,
            users: OnceLock::new(),
            rooms: OnceLock::new(),
            messages: OnceLock::new(),
            direct_messages: OnceLock::new(),
            member_counts: OnceLock::new(),
            memberships: OnceLock::new(),
            room_unread: OnceLock::new(),
            conversation_unread: OnceLock::new(),
            reactions: OnceLock::new(),
            followers_count: OnceLock::new(),
            following_count: OnceLock::new(),
            viewer_follow_status: OnceLock::new(),
        }
    }

    pub fn users(&self) -> &DataLoader<UserLoader> {
        loader(&self.users, || {
            let db = self.db.clone();
            UserLoader { db }
        })
    }

    pub fn rooms(&self) -> &DataLoader<RoomLoader> {
        loader(&self.rooms, || {
            let db = self.db.clone();
            RoomLoader { db }
        })
    }

    pub fn messages(&self) -> &DataLoader<MessageLoader> {
        loader(&self.messages, || {
            let db = self.db.clone();
            MessageLoader { db }
        })
    }

    pub fn direct_messages(&self) -> &DataLoader<DirectMessageLoader> {
        loader(&self.direct_messages, || {
            let db = self.db.clone();
            DirectMessageLoader { db }
        })
    }

    pub fn member_counts(&self) -> &DataLoader<MemberCountLoader> {
        loader(&self.member_counts, || {
            let db = self.db.clone();
            MemberCountLoader { db }
        })
    }

    pub fn memberships(&self) -> &DataLoader<MembershipLoader> {
        loader(&self.memberships, || {
            let db = self.db.clone();
            let viewer = self.viewer;
            MembershipLoader { db, viewer }
        })
    }

    pub fn room_unread(&self) -> &DataLoader<RoomUnreadLoader> {
        loader(&self.room_unread, || {
            let db = self.db.clone();
            let viewer = self.viewer;
            RoomUnreadLoader { db, viewer }
        })
    }

    pub fn conversation_unread(&self) -> &DataLoader<ConversationUnreadLoader> {
        loader(&self.conversation_unread, || {
            let db = self.db.clone();
            let viewer = self.viewer;
            ConversationUnreadLoader { db, viewer }
        })
    }

    pub fn reactions(&self) -> &DataLoader<ReactionsLoader> {
        loader(&self.reactions, || {
            let db = self.db.clone();
            ReactionsLoader { db }
        })
    }

    pub fn followers_count(&self) -> &DataLoader<FollowCountLoader> {
        loader(&self.followers_count, || {
            let db = self.db.clone();
            FollowCountLoader {
                db,
                side: Side::Followers,
            }
        })
    }

    pub fn following_count(&self) -> &DataLoader<FollowCountLoader> {
        loader(&self.following_count, || {
            let db = self.db.clone();
            FollowCountLoader {
                db,
                side: Side::Following,
            }
        })
    }

    pub fn viewer_follow_status(&self) -> &DataLoader<FollowStatusLoader> {
        loader(&self.viewer_follow_status, || {
            let db = self.db.clone();
            let viewer = self.viewer;
            FollowStatusLoader {
                db,
                viewer: viewer.map(|v| v.user_id),
            }
        })
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

/// Reactions per message (either kind), grouped by emoji.
pub struct ReactionsLoader {
    db: DatabaseConnection,
}

impl Loader<Uuid> for ReactionsLoader {
    type Value = Arc<Vec<ReactionGroup>>;
    type Error = LoadError;

    async fn load(&self, keys: &[Uuid]) -> Result<HashMap<Uuid, Self::Value>, Self::Error> {
        let groups = reactions::of_messages(&self.db, keys)
            .await
            .map_err(LoadError::from)?;
        Ok(groups
            .into_iter()
            .map(|(id, g)| (id, Arc::new(g)))
            .collect())
    }
}

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

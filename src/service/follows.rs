//! Follows on the locked-account model: public targets are followed at once,
//! private ones after they accept.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    follow::{self, FollowStatus},
    user,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect, Set,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    service::{
        now,
        page::{Page, Slice, SortOrder},
        visibility,
    },
};

/// A user going public accepts every request waiting on them.
pub async fn accept_all_pending(txn: &impl ConnectionTrait, user_id: Uuid) -> AppResult<()> {
    follow::Entity::update_many()
        .col_expr(follow::Column::Status, Expr::value(FollowStatus::Accepted))
        .filter(follow::Column::FollowingId.eq(user_id))
        .filter(follow::Column::Status.eq(FollowStatus::Pending))
        .exec(txn)
        .await?;
    Ok(())
}

async fn existing_user(db: &impl ConnectionTrait, id: Uuid) -> AppResult<user::Model> {
    user::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(|| AppError::NotFound("user not found".into()))
}

/// Follows `target`: ACCEPTED at once when the target is public, PENDING
/// when private. Following again changes nothing. Returns the target.
pub async fn follow(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    target: Uuid,
) -> AppResult<user::Model> {
    let user = existing_user(db, target).await?;
    if target == viewer {
        return Err(AppError::bad_input("you cannot follow yourself"));
    }
    let status = if user.is_private {
        FollowStatus::Pending
    } else {
        FollowStatus::Accepted
    };
    let row = follow::ActiveModel {
        follower_id: Set(viewer),
        following_id: Set(target),
        status: Set(status),
        created_at: Set(now()),
    };
    // A follow that already exists (or a concurrent one) stays as it is.
    follow::Entity::insert(row)
        .on_conflict(
            OnConflict::columns([follow::Column::FollowerId, follow::Column::FollowingId])
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(db)
        .await?;
    Ok(user)
}

/// Ends a follow, or withdraws a pending request. Returns the target.
pub async fn unfollow(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    target: Uuid,
) -> AppResult<user::Model> {
    let user = existing_user(db, target).await?;
    follow::Entity::delete_by_id((viewer, target))
        .exec(db)
        .await?;
    Ok(user)
}

/// Accepts `requester`'s pending request (accepting an accepted follow
/// changes nothing). Returns the requester.
pub async fn accept(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    requester: Uuid,
) -> AppResult<user::Model> {
    let user = existing_user(db, requester).await?;
    if follow::Entity::find_by_id((requester, viewer))
        .one(db)
        .await?
        .is_none()
    {
        return Err(AppError::NotFound(
            "no follow request from that user".into(),
        ));
    }
    follow::Entity::update_many()
        .col_expr(follow::Column::Status, Expr::value(FollowStatus::Accepted))
        .filter(follow::Column::FollowerId.eq(requester))
        .filter(follow::Column::FollowingId.eq(viewer))
        .exec(db)
        .await?;
    Ok(user)
}

/// Rejects (deletes) `requester`'s pending request. Returns the requester.
pub async fn reject(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    requester: Uuid,
) -> AppResult<user::Model> {
    let user = existing_user(db, requester).await?;
    let deleted = follow::Entity::delete_many()
        .filter(follow::Column::FollowerId.eq(requester))
        .filter(follow::Column::FollowingId.eq(viewer))
        .filter(follow::Column::Status.eq(FollowStatus::Pending))
        .exec(db)
        .await?;
    if deleted.rows_affected == 0 {
        return Err(AppError::NotFound(
            "no pending follow request from that user".into(),
        ));
    }
    Ok(user)
}

/// Which side of a follow a list is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Users following the owner.
    Followers,
    /// Users the owner follows.
    Following,
}

impl Side {
    /// (the column holding the owner, the column holding the listed user)
    fn columns(self) -> (follow::Column, follow::Column) {
        match self {
            Self::Followers => (follow::Column::FollowingId, follow::Column::FollowerId),
            Self::Following => (follow::Column::FollowerId, follow::Column::FollowingId),
        }
    }
}

/// One page of follow rows with their users, keyed by (follows.created_at, user id).
async fn list(
    db: &impl ConnectionTrait,
    owner: Uuid,
    side: Side,
    status: FollowStatus,
    page: &Page<DateTime<Utc>>,
    order: SortOrder,
) -> AppResult<Slice<(DateTime<Utc>, user::Model)>> {
    let (owner_col, other_col) = side.columns();
    let select = follow::Entity::find()
        .filter(owner_col.eq(owner))
        .filter(follow::Column::Status.eq(status));
    let rows = page
        .apply(
            select,
            Expr::col((follow::Entity, follow::Column::CreatedAt)),
            Expr::col((follow::Entity, other_col)),
            order,
        )
        .all(db)
        .await?;
    let slice = page.finish(rows);
    let other = |f: &follow::Model| {
        if side == Side::Followers {
            f.follower_id
        } else {
            f.following_id
        }
    };
    let ids: Vec<Uuid> = slice.items.iter().map(other).collect();
    let mut users: HashMap<Uuid, user::Model> = user::Entity::find()
        .filter(user::Column::Id.is_in(ids))
        .all(db)
        .await?
        .into_iter()
        .map(|u| (u.id, u))
        .collect();
    // Rows whose user vanished between the two reads are dropped.
    let items = slice
        .items
        .iter()
        .filter_map(|f| Some((f.created_at, users.remove(&other(f))?)))
        .collect();
    Ok(Slice {
        items,
        has_next_page: slice.has_next_page,
        has_previous_page: slice.has_previous_page,
    })
}

/// A user's accepted followers or followees, newest follow first; empty
/// where the viewer may not see them.
pub async fn connections(
    db: &impl ConnectionTrait,
    viewer: Option<Uuid>,
    owner: &user::Model,
    side: Side,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<(DateTime<Utc>, user::Model)>> {
    if !visibility::can_see(db, viewer, owner).await? {
        return Ok(page.finish(Vec::new()));
    }
    list(
        db,
        owner.id,
        side,
        FollowStatus::Accepted,
        page,
        SortOrder::Desc,
    )
    .await
}

/// Pending requests to the viewer, oldest first.
pub async fn requests(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<(DateTime<Utc>, user::Model)>> {
    list(
        db,
        viewer,
        Side::Followers,
        FollowStatus::Pending,
        page,
        SortOrder::Asc,
    )
    .await
}

/// Accepted follow counts for a batch of users, one GROUP BY query.
pub async fn counts(
    db: &impl ConnectionTrait,
    users: &[Uuid],
    side: Side,
) -> AppResult<HashMap<Uuid, i64>> {
    let (owner_col, _) = side.columns();
    let rows: Vec<(Uuid, i64)> = follow::Entity::find()
        .select_only()
        .column(owner_col)
        .column_as(Expr::col(owner_col).count(), "n")
        .filter(owner_col.is_in(users.iter().copied()))
        .filter(follow::Column::Status.eq(FollowStatus::Accepted))
        .group_by(owner_col)
        .into_tuple()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// The viewer's follow status towards each of `users` that they follow or asked to.
pub async fn statuses(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    users: &[Uuid],
) -> AppResult<HashMap<Uuid, FollowStatus>> {
    let rows = follow::Entity::find()
        .filter(follow::Column::FollowerId.eq(viewer))
        .filter(follow::Column::FollowingId.is_in(users.iter().copied()))
        .all(db)
        .await?;
    Ok(rows
        .into_iter()
        .map(|f| (f.following_id, f.status))
        .collect())
}

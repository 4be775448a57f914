//! The one visibility rule: a user's posts, followers and following are
//! visible to everyone when the user is public, and otherwise only to the
//! user themself and their accepted followers. Every path that can reach that
//! content (User.posts, feed, explore, nearbyBeacons, node, followers,
//! following) asks here: `can_see` for an owner already in hand, and
//! `visible_owner` as the same rule in SQL for list queries.

use entity::{
    follow::{self, FollowStatus},
    user,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter,
    sea_query::{Condition, Expr, ExprTrait, Query, SelectStatement},
};
use uuid::Uuid;

use crate::error::AppResult;

/// Ids of the users `viewer` follows with an accepted follow
/// (served by follows_follower_status_idx).
pub fn accepted_followees(viewer: Uuid) -> SelectStatement {
    Query::select()
        .column((follow::Entity, follow::Column::FollowingId))
        .from(follow::Entity)
        .and_where(Expr::col((follow::Entity, follow::Column::FollowerId)).eq(viewer))
        .and_where(Expr::col((follow::Entity, follow::Column::Status)).eq(FollowStatus::Accepted))
        .to_owned()
}

/// `owner` (an expression holding a user id) is a public user: a
/// correlated EXISTS, so PostgreSQL probes users_pkey per candidate row (or
/// turns it into a semi-join) instead of hashing every public user.
pub fn public_owner(owner: Expr) -> Expr {
    Expr::exists(
        Query::select()
            .expr(Expr::val(1))
            .from(user::Entity)
            .and_where(Expr::col((user::Entity, user::Column::Id)).eq(owner))
            .and_where(Expr::col((user::Entity, user::Column::IsPrivate)).eq(false))
            .to_owned(),
    )
}

/// The rule in SQL: rows whose owner (`owner`, a user id) lets `viewer` see
/// their content — public owners, the viewer themself, and owners the viewer
/// follows with an accepted follow.
pub fn visible_owner(owner: Expr, viewer: Option<Uuid>) -> Condition {
    let cond = Condition::any().add(public_owner(owner.clone()));
    match viewer {
        Some(v) => cond
            .add(owner.clone().eq(v))
            .add(owner.in_subquery(accepted_followees(v))),
        None => cond,
    }
}

/// The rule for an owner already loaded.
pub async fn can_see(
    db: &impl ConnectionTrait,
    viewer: Option<Uuid>,
    owner: &user::Model,
) -> AppResult<bool> {
    if !owner.is_private || viewer == Some(owner.id) {
        return Ok(true);
    }
    let Some(viewer) = viewer else {
        return Ok(false);
    };
    let follow = follow::Entity::find_by_id((viewer, owner.id))
        .filter(follow::Column::Status.eq(FollowStatus::Accepted))
        .one(db)
        .await?;
    Ok(follow.is_some())
}

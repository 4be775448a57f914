//! Follows on the locked-account model: public targets are followed at once,
//! private ones after they accept.

use entity::follow::{self, FollowStatus};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::error::AppResult;

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

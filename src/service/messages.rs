//! What every message follows, in a room or in a direct thread: who may
//! edit it, and how an edit and a tombstone are written. The callers hold
//! the stream's lock (a room's row, or both parties' rows) while they write.

use chrono::{DateTime, Utc};
use entity::{direct_message, message, reaction};
use sea_orm::{ColumnTrait, DatabaseTransaction, EntityTrait, QueryFilter, sea_query::Expr};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    service::{now, validate_content},
};

/// A table of messages: its columns for the rules here.
pub trait StoredMessage: EntityTrait {
    const ID: Self::Column;
    const CONTENT: Self::Column;
    const EDITED_AT: Self::Column;
    const DELETED_AT: Self::Column;
    fn deleted_at(model: &Self::Model) -> Option<DateTime<Utc>>;
}

impl StoredMessage for message::Entity {
    const ID: Self::Column = message::Column::Id;
    const CONTENT: Self::Column = message::Column::Content;
    const EDITED_AT: Self::Column = message::Column::EditedAt;
    const DELETED_AT: Self::Column = message::Column::DeletedAt;
    fn deleted_at(model: &message::Model) -> Option<DateTime<Utc>> {
        model.deleted_at
    }
}

impl StoredMessage for direct_message::Entity {
    const ID: Self::Column = direct_message::Column::Id;
    const CONTENT: Self::Column = direct_message::Column::Content;
    const EDITED_AT: Self::Column = direct_message::Column::EditedAt;
    const DELETED_AT: Self::Column = direct_message::Column::DeletedAt;
    fn deleted_at(model: &direct_message::Model) -> Option<DateTime<Utc>> {
        model.deleted_at
    }
}

/// An edit by `viewer` of a message they can read: the sender only (FORBIDDEN),
/// not a deleted message, the content rules of a send (BAD_USER_INPUT).
pub fn check_edit(
    sender: Uuid,
    viewer: Uuid,
    deleted_at: Option<DateTime<Utc>>,
    content: &str,
) -> AppResult<()> {
    if sender != viewer {
        return Err(AppError::forbidden("only the sender may edit a message"));
    }
    if deleted_at.is_some() {
        return Err(AppError::bad_input("a deleted message cannot be edited"));
    }
    validate_content(content)
}

/// Re-reads a message under its stream's lock, for a change that needs it
/// not deleted (BAD_USER_INPUT if it was meanwhile).
pub async fn for_change<E: StoredMessage>(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> AppResult<E::Model> {
    let message = E::find()
        .filter(E::ID.eq(id))
        .one(txn)
        .await?
        .ok_or_else(|| AppError::not_found("message not found"))?;
    if E::deleted_at(&message).is_some() {
        return Err(AppError::bad_input("the message is deleted"));
    }
    Ok(message)
}

/// Writes new content; returns the edit's time.
pub async fn write_edit<E: StoredMessage>(
    txn: &DatabaseTransaction,
    id: Uuid,
    content: &str,
) -> AppResult<DateTime<Utc>> {
    let edited_at = now();
    E::update_many()
        .col_expr(E::CONTENT, Expr::value(content))
        .col_expr(E::EDITED_AT, Expr::value(edited_at))
        .filter(E::ID.eq(id))
        .exec(txn)
        .await?;
    Ok(edited_at)
}

/// Makes the message a tombstone: empty content, no reactions. Returns the
/// deletion's time.
pub async fn write_tombstone<E: StoredMessage>(
    txn: &DatabaseTransaction,
    id: Uuid,
) -> AppResult<DateTime<Utc>> {
    let deleted_at = now();
    E::update_many()
        .col_expr(E::CONTENT, Expr::value(""))
        .col_expr(E::DELETED_AT, Expr::value(deleted_at))
        .filter(E::ID.eq(id))
        .exec(txn)
        .await?;
    reaction::Entity::delete_many()
        .filter(reaction::Column::MessageId.eq(id))
        .exec(txn)
        .await?;
    Ok(deleted_at)
}

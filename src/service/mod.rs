//! Business rules and queries, one file per domain. Nothing here knows GraphQL.

pub mod direct;
pub mod follows;
pub mod geo;
pub mod live;
pub mod messages;
pub mod page;
pub mod posts;
pub mod reactions;
pub mod room_stream;
pub mod rooms;
pub mod sessions;
pub mod text;
pub mod typing;
pub mod users;
pub mod visibility;

use std::collections::HashMap;

use chrono::{DateTime, SubsecRound, Utc};
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseTransaction, EntityTrait, IntoActiveModel,
    ModelTrait, QueryFilter, TryInsertResult,
    sea_query::{Expr, ExprTrait, Query},
};

use crate::error::{AppError, AppResult};

/// The current time at the precision both databases keep (microseconds), so
/// a timestamp reads back exactly as it was written.
pub fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(6)
}

/// Time-ordered ids (UUID v7) keep the primary-key indexes compact.
pub fn new_id() -> uuid::Uuid {
    uuid::Uuid::now_v7()
}

/// Text limits, counted in characters (Unicode scalar values).
pub fn char_len(s: &str) -> usize {
    s.chars().count()
}

/// Content rules shared by messages, direct messages and posts: 1–4,000
/// characters after trimming, no NUL (PostgreSQL text cannot hold it).
pub fn validate_content(content: &str) -> AppResult<()> {
    if content.contains('\0') {
        return Err(AppError::bad_input(
            "content must not contain NUL characters",
        ));
    }
    let len = char_len(content.trim());
    if len == 0 {
        return Err(AppError::bad_input("content must not be empty"));
    }
    if len > 4000 {
        return Err(AppError::bad_input(
            "content must be at most 4000 characters",
        ));
    }
    Ok(())
}

/// The rows of `E` whose `id` column is among `ids`, in any order (a
/// DataLoader batch, a page's senders).
pub async fn find_by_ids<E: EntityTrait>(
    db: &impl ConnectionTrait,
    id: E::Column,
    ids: &[uuid::Uuid],
) -> AppResult<Vec<E::Model>> {
    if ids.is_empty() {
        return Ok(Vec::new());
    }
    Ok(E::find()
        .filter(Expr::col(id).is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// A client's own id for a send (SEMANTICS: at most 64 characters).
pub const MAX_CLIENT_MESSAGE_ID: usize = 64;

pub fn validate_client_message_id(id: Option<&str>) -> AppResult<()> {
    match id {
        Some(id) if id.is_empty() || id.contains('\0') || char_len(id) > MAX_CLIENT_MESSAGE_ID => {
            Err(AppError::bad_input(format!(
                "clientMessageId must be 1–{MAX_CLIENT_MESSAGE_ID} characters"
            )))
        }
        _ => Ok(()),
    }
}

/// Inserts a sent message unless its sender already stored one with the
/// same clientMessageId in the same room or thread (`retry` names the
/// columns of that key): None when this call stored it, else the first
/// message, which the caller returns after rolling back. ON CONFLICT DO NOTHING rather than a failing insert: a
/// failed statement aborts a PostgreSQL transaction, and a concurrent
/// duplicate waits for the first to commit, then reads it here.
pub async fn insert_unless_retry<E, A>(
    txn: &DatabaseTransaction,
    model: E::Model,
    retry: [E::Column; 3],
) -> AppResult<Option<E::Model>>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<A> + Clone,
    A: ActiveModelTrait<Entity = E> + Send,
{
    let inserted = E::insert(model.clone().into_active_model())
        .on_conflict_do_nothing_on(retry)
        .exec_without_returning(txn)
        .await?;
    if matches!(inserted, TryInsertResult::Inserted(n) if n > 0) {
        return Ok(None);
    }
    let mut first = E::find();
    for column in retry {
        first = first.filter(Expr::col(column).eq(model.get(column)));
    }
    let first = first.one(txn).await?.ok_or_else(|| {
        AppError::internal(std::io::Error::other("conflicting message not found"))
    })?;
    Ok(Some(first))
}

/// Unread messages per key (a room, a peer) for one reader, counted in SQL
/// from the reader's read marks: `marks` holds a row per (owner, key) with the
/// mark; `unread` joins the `messages` that row has not read.
pub struct UnreadCount<M: EntityTrait, E: EntityTrait> {
    pub marks: M,
    pub owner: M::Column,
    pub key: M::Column,
    pub messages: E,
    pub message_id: E::Column,
    pub unread: Expr,
}

pub async fn count_unread<M: EntityTrait, E: EntityTrait>(
    db: &impl ConnectionTrait,
    q: UnreadCount<M, E>,
    owner: uuid::Uuid,
    keys: &[uuid::Uuid],
) -> AppResult<HashMap<uuid::Uuid, i64>> {
    let stmt = Query::select()
        .expr_as(Expr::col((q.marks, q.key)), "k")
        .expr_as(Expr::col((q.messages, q.message_id)).count(), "n")
        .from(q.marks)
        .left_join(q.messages, q.unread)
        .and_where(Expr::col((q.marks, q.owner)).eq(owner))
        .and_where(Expr::col((q.marks, q.key)).is_in(keys.iter().copied()))
        .group_by_col((q.marks, q.key))
        .to_owned();
    let mut out = HashMap::new();
    for row in db.query_all(&stmt).await? {
        out.insert(
            row.try_get::<uuid::Uuid>("", "k")?,
            row.try_get::<i64>("", "n")?,
        );
    }
    Ok(out)
}

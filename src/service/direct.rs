//! Direct messages between two users, and each user's list of threads.
//!
//! A thread is read through the expression index of migration
//! m20261123_000003: LEAST/GREATEST on PostgreSQL, min/max on SQLite. The
//! queries here use the very same expressions, or the index is not used.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{conversation, direct_message};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic},
    service::{
        UnreadCount, count_unread, insert_unless_retry, new_id, now,
        page::{Page, Slice, SortOrder},
        stamped_since, users, validate_client_message_id, validate_content,
    },
};

/// The thread of `a` and `b`, in the index's own expressions.
fn thread(backend: DbBackend, a: Uuid, b: Uuid) -> Condition {
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let (least, greatest) = match backend {
        DbBackend::Postgres => (
            "LEAST(sender_id, receiver_id)",
            "GREATEST(sender_id, receiver_id)",
        ),
        _ => ("min(sender_id, receiver_id)", "max(sender_id, receiver_id)"),
    };
    Condition::all()
        .add(Expr::cust(least).eq(lo))
        .add(Expr::cust(greatest).eq(hi))
}

pub struct NewDirectMessage {
    pub to: Uuid,
    pub content: String,
    pub client_message_id: Option<String>,
}

/// To any other user. Both ends of the thread (`conversations`) move and
/// both parties are told in the same transaction. A retry with the same
/// clientMessageId stores and announces nothing and returns the first message.
pub async fn send(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    input: NewDirectMessage,
) -> AppResult<direct_message::Model> {
    if input.to == viewer {
        return Err(AppError::bad_input(
            "you cannot send a direct message to yourself",
        ));
    }
    validate_content(&input.content)?;
    validate_client_message_id(input.client_message_id.as_deref())?;
    let txn = db.begin().await?;
    if users::find(&txn, input.to).await?.is_none() {
        return Err(AppError::not_found("user not found"));
    }
    let model = direct_message::Model {
        id: new_id(),
        sender_id: viewer,
        receiver_id: input.to,
        content: input.content,
        client_message_id: input.client_message_id,
        created_at: now(),
    };
    let retry = [
        direct_message::Column::SenderId,
        direct_message::Column::ClientMessageId,
    ];
    if let Some(first) =
        insert_unless_retry::<direct_message::Entity, _>(&txn, model.clone(), retry).await?
    {
        txn.rollback().await?;
        return Ok(first);
    }
    move_thread_ends(&txn, &model).await?;
    for user in [model.sender_id, model.receiver_id] {
        let event = Event::DirectMessage {
            message_id: model.id,
        };
        broker.publish_in(&txn, Topic::User(user), event).await?;
    }
    txn.commit().await?;
    Ok(model)
}

/// Points both ends of the thread (one `conversations` row per party) at `message`.
async fn move_thread_ends(
    txn: &DatabaseTransaction,
    message: &direct_message::Model,
) -> AppResult<()> {
    let (sender, receiver) = (message.sender_id, message.receiver_id);
    // Both rows in one order for every sender, so two opposite sends cannot deadlock.
    let mut ends = [(sender, receiver), (receiver, sender)];
    ends.sort();
    for (user_id, peer_id) in ends {
        // A thread's first message: the sender has read it, the receiver nothing yet.
        let last_read_at = if user_id == sender {
            message.created_at
        } else {
            DateTime::<Utc>::UNIX_EPOCH
        };
        let row = conversation::ActiveModel {
            user_id: Set(user_id),
            peer_id: Set(peer_id),
            last_message_id: Set(message.id),
            last_message_at: Set(message.created_at),
            last_read_at: Set(last_read_at),
        };
        // Only ever forward: a concurrent send stamped later may have committed first.
        let upsert =
            OnConflict::columns([conversation::Column::UserId, conversation::Column::PeerId])
                .update_columns([
                    conversation::Column::LastMessageId,
                    conversation::Column::LastMessageAt,
                ])
                .action_and_where(
                    Expr::col((conversation::Entity, conversation::Column::LastMessageAt))
                        .lte(Expr::cust("excluded.last_message_at")),
                )
                .to_owned();
        conversation::Entity::insert(row)
            .on_conflict(upsert)
            .exec_without_returning(txn)
            .await?;
    }
    Ok(())
}

/// The thread of the viewer and `peer`, oldest first.
pub async fn thread_messages(
    db: &DatabaseConnection,
    viewer: Uuid,
    peer: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<direct_message::Model>> {
    if peer == viewer {
        return Err(AppError::bad_input(
            "a thread is between you and another user",
        ));
    }
    if users::find(db, peer).await?.is_none() {
        return Err(AppError::not_found("user not found"));
    }
    let select = page.apply(
        direct_message::Entity::find().filter(thread(db.get_database_backend(), viewer, peer)),
        Expr::col((direct_message::Entity, direct_message::Column::CreatedAt)),
        Expr::col((direct_message::Entity, direct_message::Column::Id)),
        SortOrder::Asc,
    );
    Ok(page.finish(select.all(db).await?))
}

/// The viewer's threads, most recent message first.
pub async fn conversations(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<conversation::Model>> {
    let select = page.apply(
        conversation::Entity::find().filter(conversation::Column::UserId.eq(viewer)),
        Expr::col((conversation::Entity, conversation::Column::LastMessageAt)),
        Expr::col((conversation::Entity, conversation::Column::PeerId)),
        SortOrder::Desc,
    );
    Ok(page.finish(select.all(db).await?))
}

/// Marks the thread read up to now; None when there is no thread.
pub async fn mark_read(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    peer: Uuid,
) -> AppResult<Option<conversation::Model>> {
    if peer != viewer && users::find(db, peer).await?.is_none() {
        return Err(AppError::not_found("user not found"));
    }
    conversation::Entity::update_many()
        .col_expr(conversation::Column::LastReadAt, Expr::value(now()))
        .filter(conversation::Column::UserId.eq(viewer))
        .filter(conversation::Column::PeerId.eq(peer))
        .exec(db)
        .await?;
    Ok(conversation::Entity::find_by_id((viewer, peer))
        .one(db)
        .await?)
}

pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<direct_message::Model>> {
    Ok(direct_message::Entity::find()
        .filter(direct_message::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

/// The direct messages to or from `viewer` among `ids`.
pub async fn messages_by_ids(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    ids: &[Uuid],
) -> AppResult<Vec<direct_message::Model>> {
    Ok(direct_message::Entity::find()
        .filter(direct_message::Column::Id.is_in(ids.iter().copied()))
        .filter(
            Condition::any()
                .add(direct_message::Column::SenderId.eq(viewer))
                .add(direct_message::Column::ReceiverId.eq(viewer)),
        )
        .all(db)
        .await?)
}

/// Direct messages to or from `viewer` stamped at or after `since`, oldest
/// first, after the keyset position `after` (exclusive), at most `limit`.
pub async fn messages_since(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    since: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> AppResult<Vec<direct_message::Model>> {
    let select = direct_message::Entity::find().filter(
        Condition::any()
            .add(direct_message::Column::SenderId.eq(viewer))
            .add(direct_message::Column::ReceiverId.eq(viewer)),
    );
    let select = stamped_since(
        select,
        Expr::col((direct_message::Entity, direct_message::Column::CreatedAt)),
        Expr::col((direct_message::Entity, direct_message::Column::Id)),
        since,
        after,
        limit,
    );
    Ok(select.all(db).await?)
}

/// Unread messages per peer for `viewer`: from the peer, after the viewer's read mark.
pub async fn unread_counts(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    peers: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    let c = |col: conversation::Column| Expr::col((conversation::Entity, col));
    let d = |col: direct_message::Column| Expr::col((direct_message::Entity, col));
    count_unread(
        db,
        UnreadCount {
            marks: conversation::Entity,
            owner: conversation::Column::UserId,
            key: conversation::Column::PeerId,
            messages: direct_message::Entity,
            message_id: direct_message::Column::Id,
            unread: d(direct_message::Column::SenderId)
                .eq(c(conversation::Column::PeerId))
                .and(d(direct_message::Column::ReceiverId).eq(c(conversation::Column::UserId)))
                .and(d(direct_message::Column::CreatedAt).gt(c(conversation::Column::LastReadAt))),
        },
        viewer,
        peers,
    )
    .await
}

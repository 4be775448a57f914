//! Direct messages between two users, and each user's list of threads.
//!
//! Each user has a stream of the direct messages they send or receive
//! (`users.dm_seq` is its head). A send takes the next position of both
//! parties' streams under their row locks, in id order so two opposite sends
//! cannot deadlock, so positions commit in order; after the commit it
//! announces both. `thread_seq`, the lower-id party's position, orders a
//! thread (both locks are held for every send of a thread).
//!
//! A thread is read through the expression index of migration
//! m20261201_000002: LEAST/GREATEST on PostgreSQL, min/max on SQLite. The
//! queries here use the very same expressions, or the index is not used.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{conversation, direct_message, user};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict, Order, Query},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic},
    service::{
        UnreadCount, count_unread, insert_unless_retry, new_id, now,
        page::{Page, Slice, SortOrder},
        users, validate_client_message_id, validate_content,
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
    let (sender_seq, receiver_seq) = next_positions(&txn, viewer, input.to).await?;
    let model = direct_message::Model {
        id: new_id(),
        sender_id: viewer,
        receiver_id: input.to,
        content: input.content,
        client_message_id: input.client_message_id,
        created_at: now(),
        sender_seq,
        receiver_seq,
        thread_seq: if viewer < input.to {
            sender_seq
        } else {
            receiver_seq
        },
    };
    let retry = [
        direct_message::Column::SenderId,
        direct_message::Column::ReceiverId,
        direct_message::Column::ClientMessageId,
    ];
    if let Some(first) =
        insert_unless_retry::<direct_message::Entity, _>(&txn, model.clone(), retry).await?
    {
        txn.rollback().await?;
        return Ok(first);
    }
    move_thread_ends(&txn, &model).await?;
    txn.commit().await?;
    for (user_id, seq) in [(viewer, sender_seq), (input.to, receiver_seq)] {
        broker.publish(Topic::User(user_id), Event::UserStream { user_id, seq });
    }
    Ok(model)
}

/// The next positions of the sender's and the receiver's streams. Each
/// UPDATE locks its user's row until the transaction ends; the rows are
/// taken in id order. NOT_FOUND when the receiver does not exist.
async fn next_positions(
    txn: &DatabaseTransaction,
    sender: Uuid,
    receiver: Uuid,
) -> AppResult<(i64, i64)> {
    let (first, second) = if sender < receiver {
        (sender, receiver)
    } else {
        (receiver, sender)
    };
    let mut positions = HashMap::new();
    for user_id in [first, second] {
        let bump = Query::update()
            .table(user::Entity)
            .value(user::Column::DmSeq, Expr::col(user::Column::DmSeq).add(1))
            .and_where(Expr::col(user::Column::Id).eq(user_id))
            .returning_col(user::Column::DmSeq)
            .to_owned();
        let Some(row) = txn.query_one(&bump).await? else {
            return Err(AppError::not_found("user not found"));
        };
        positions.insert(user_id, row.try_get::<i64>("", "dm_seq")?);
    }
    Ok((positions[&sender], positions[&receiver]))
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
        let (last_read_at, last_read_seq) = if user_id == sender {
            (message.created_at, message.sender_seq)
        } else {
            (DateTime::<Utc>::UNIX_EPOCH, 0)
        };
        let row = conversation::ActiveModel {
            user_id: Set(user_id),
            peer_id: Set(peer_id),
            last_message_id: Set(message.id),
            last_message_at: Set(message.created_at),
            last_read_at: Set(last_read_at),
            last_read_seq: Set(last_read_seq),
        };
        // The parties' row locks serialise a thread's sends: this one is the newest.
        let upsert =
            OnConflict::columns([conversation::Column::UserId, conversation::Column::PeerId])
                .update_columns([
                    conversation::Column::LastMessageId,
                    conversation::Column::LastMessageAt,
                ])
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
    page: &Page<i64>,
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
        Expr::col((direct_message::Entity, direct_message::Column::ThreadSeq)),
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
    // Up to the newest position of the viewer's stream committed now.
    let head = users::find(db, viewer).await?.map_or(0, |u| u.dm_seq);
    conversation::Entity::update_many()
        .col_expr(conversation::Column::LastReadAt, Expr::value(now()))
        .col_expr(conversation::Column::LastReadSeq, Expr::value(head))
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
    super::find_by_ids::<direct_message::Entity>(db, direct_message::Column::Id, ids).await
}

/// The user's stream after position `after`, through `until` when given:
/// the direct messages they sent or received there, in order, at most `limit`.
pub async fn stream_after(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> AppResult<Vec<direct_message::Model>> {
    let side = |user: direct_message::Column, seq: direct_message::Column| {
        let mut cond = Condition::all()
            .add(Expr::col(user).eq(user_id))
            .add(Expr::col(seq).gt(after));
        if let Some(until) = until {
            cond = cond.add(Expr::col(seq).lte(until));
        }
        cond
    };
    let position: Expr = Expr::case(
        Expr::col(direct_message::Column::SenderId).eq(user_id),
        Expr::col(direct_message::Column::SenderSeq),
    )
    .finally(Expr::col(direct_message::Column::ReceiverSeq))
    .into();
    Ok(direct_message::Entity::find()
        .filter(
            Condition::any()
                .add(side(
                    direct_message::Column::SenderId,
                    direct_message::Column::SenderSeq,
                ))
                .add(side(
                    direct_message::Column::ReceiverId,
                    direct_message::Column::ReceiverSeq,
                )),
        )
        .order_by(position, Order::Asc)
        .limit(limit)
        .all(db)
        .await?)
}

/// The newest position of the user's stream; None when there is no such user.
pub async fn head(db: &impl ConnectionTrait, user_id: Uuid) -> AppResult<Option<i64>> {
    Ok(users::find(db, user_id).await?.map(|u| u.dm_seq))
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
                .and(
                    d(direct_message::Column::ReceiverSeq).gt(c(conversation::Column::LastReadSeq)),
                ),
        },
        viewer,
        peers,
    )
    .await
}

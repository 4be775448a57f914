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
use entity::{
    conversation,
    direct_event::{self, DirectEventKind},
    direct_message, user,
};
use sea_orm::{
    ColumnTrait, Condition, ConnectionTrait, DatabaseConnection, DatabaseTransaction, DbBackend,
    EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set, TransactionTrait,
    sea_query::{Expr, ExprTrait, OnConflict, Query},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic},
    service::{
        UnreadCount, count_unread, insert_unless_retry, messages, new_id, now,
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
    /// A message of the same thread, not deleted, that this one answers.
    pub reply_to: Option<Uuid>,
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
    if let Some(id) = input.reply_to {
        let target = direct_message::Entity::find_by_id(id).one(&txn).await?;
        let in_thread = target.is_some_and(|m| {
            m.deleted_at.is_none()
                && ((m.sender_id, m.receiver_id) == (viewer, input.to)
                    || (m.sender_id, m.receiver_id) == (input.to, viewer))
        });
        if !in_thread {
            return Err(AppError::bad_input(
                "`replyToId` must be a message of this thread that is not deleted",
            ));
        }
    }
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
        edited_at: None,
        deleted_at: None,
        reply_to_id: input.reply_to,
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
    let positions = (sender_seq, receiver_seq);
    let kind = DirectEventKind::MessageAdded;
    append(&txn, &model, kind, Some(model.id), viewer, positions).await?;
    txn.commit().await?;
    announce(broker, &model, positions);
    Ok(model)
}

/// Appends what happened to both parties' streams, at their positions
/// (sender's, receiver's) from `next_positions`.
pub(super) async fn append(
    txn: &DatabaseTransaction,
    message: &direct_message::Model,
    kind: DirectEventKind,
    message_id: Option<Uuid>,
    actor: Uuid,
    (sender_seq, receiver_seq): (i64, i64),
) -> AppResult<()> {
    let (sender, receiver) = (message.sender_id, message.receiver_id);
    let now = now();
    let row = |user_id: Uuid, seq: i64, peer_id: Uuid| direct_event::ActiveModel {
        user_id: Set(user_id),
        seq: Set(seq),
        kind: Set(kind),
        message_id: Set(message_id),
        actor_id: Set(actor),
        peer_id: Set(peer_id),
        created_at: Set(now),
    };
    direct_event::Entity::insert_many([
        row(sender, sender_seq, receiver),
        row(receiver, receiver_seq, sender),
    ])
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Wakes both parties' readers, on every instance.
pub(super) fn announce(
    broker: &dyn Broker,
    message: &direct_message::Model,
    (sender_seq, receiver_seq): (i64, i64),
) {
    for (user_id, seq) in [
        (message.sender_id, sender_seq),
        (message.receiver_id, receiver_seq),
    ] {
        broker.publish(Topic::User(user_id), Event::UserStream { user_id, seq });
    }
}

/// A direct message for one of its two parties: NOT_FOUND for anyone else.
pub async fn message_for_party(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    id: Uuid,
) -> AppResult<direct_message::Model> {
    direct_message::Entity::find_by_id(id)
        .one(db)
        .await?
        .filter(|m| m.sender_id == viewer || m.receiver_id == viewer)
        .ok_or_else(|| AppError::not_found("message not found"))
}

/// The sender only; same content rules as a send; not a deleted message.
pub async fn edit(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    id: Uuid,
    content: String,
) -> AppResult<direct_message::Model> {
    let message = message_for_party(db, viewer, id).await?;
    messages::check_edit(message.sender_id, viewer, message.deleted_at, &content)?;
    let txn = db.begin().await?;
    let positions = next_positions(&txn, message.sender_id, message.receiver_id).await?;
    let mut message = messages::for_change::<direct_message::Entity>(&txn, id).await?;
    let edited_at = messages::write_edit::<direct_message::Entity>(&txn, id, &content).await?;
    let kind = DirectEventKind::MessageEdited;
    append(&txn, &message, kind, Some(id), viewer, positions).await?;
    txn.commit().await?;
    announce(broker, &message, positions);
    message.content = content;
    message.edited_at = Some(edited_at);
    Ok(message)
}

/// The sender only. Leaves a tombstone (empty content, no reactions);
/// deleting again returns it and changes nothing.
pub async fn delete(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    id: Uuid,
) -> AppResult<direct_message::Model> {
    let message = message_for_party(db, viewer, id).await?;
    if message.deleted_at.is_some() {
        return Ok(message);
    }
    if message.sender_id != viewer {
        return Err(AppError::forbidden("only the sender may delete a message"));
    }
    let txn = db.begin().await?;
    let positions = next_positions(&txn, message.sender_id, message.receiver_id).await?;
    let mut message = match messages::for_change::<direct_message::Entity>(&txn, id).await {
        Ok(message) => message,
        Err(AppError::BadUserInput(_)) => {
            // Deleted meanwhile: the same tombstone.
            txn.rollback().await?;
            return message_for_party(db, viewer, id).await;
        }
        Err(err) => return Err(err),
    };
    let deleted_at = messages::write_tombstone::<direct_message::Entity>(&txn, id).await?;
    let kind = DirectEventKind::MessageDeleted;
    append(&txn, &message, kind, Some(id), viewer, positions).await?;
    txn.commit().await?;
    announce(broker, &message, positions);
    message.content = String::new();
    message.deleted_at = Some(deleted_at);
    Ok(message)
}

/// The next positions of the sender's and the receiver's streams. Each
/// UPDATE locks its user's row until the transaction ends; the rows are
/// taken in id order. NOT_FOUND when the receiver does not exist.
pub(super) async fn next_positions(
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

/// Marks the thread read through its newest message; None when there is
/// no thread. When that moves the viewer's mark, both parties' streams get
/// CONVERSATION_READ (the reader's other devices stay in step); otherwise
/// nothing changes.
pub async fn mark_read(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    peer: Uuid,
) -> AppResult<Option<conversation::Model>> {
    if peer != viewer && users::find(db, peer).await?.is_none() {
        return Err(AppError::not_found("user not found"));
    }
    let Some(found) = conversation::Entity::find_by_id((viewer, peer))
        .one(db)
        .await?
    else {
        return Ok(None);
    };
    let txn = db.begin().await?;
    // Both locks, as a send of this thread takes them: its newest message is settled.
    let (viewer_seq, peer_seq) = next_positions(&txn, viewer, peer).await?;
    let Some(mut conversation) = conversation::Entity::find_by_id((viewer, peer))
        .one(&txn)
        .await?
    else {
        txn.rollback().await?;
        return Ok(Some(found));
    };
    let newest = direct_message::Entity::find_by_id(conversation.last_message_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::internal(std::io::Error::other("thread end not found")))?;
    let newest_position = if newest.sender_id == viewer {
        newest.sender_seq
    } else {
        newest.receiver_seq
    };
    if newest_position <= conversation.last_read_seq {
        txn.rollback().await?;
        return Ok(Some(conversation));
    }
    let now = now();
    conversation::Entity::update_many()
        .col_expr(conversation::Column::LastReadAt, Expr::value(now))
        .col_expr(conversation::Column::LastReadSeq, Expr::value(viewer_seq))
        .filter(conversation::Column::UserId.eq(viewer))
        .filter(conversation::Column::PeerId.eq(peer))
        .exec(&txn)
        .await?;
    // The event's parties in the message's terms (sender's, receiver's positions).
    let (thread, positions) = if newest.sender_id == viewer {
        (&newest, (viewer_seq, peer_seq))
    } else {
        (&newest, (peer_seq, viewer_seq))
    };
    let kind = DirectEventKind::ConversationRead;
    append(&txn, thread, kind, Some(newest.id), viewer, positions).await?;
    txn.commit().await?;
    announce(broker, thread, positions);
    conversation.last_read_at = now;
    conversation.last_read_seq = viewer_seq;
    Ok(Some(conversation))
}

pub async fn find_many(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<direct_message::Model>> {
    super::find_by_ids::<direct_message::Entity>(db, direct_message::Column::Id, ids).await
}

/// One position of a user's direct stream, with its message if it names one.
pub type StreamEntry = (direct_event::Model, Option<direct_message::Model>);

/// The user's stream after position `after`, through `until` when given, in
/// order, at most `limit` entries.
pub async fn events_after(
    db: &impl ConnectionTrait,
    user_id: Uuid,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> AppResult<Vec<StreamEntry>> {
    let mut select = direct_event::Entity::find()
        .filter(direct_event::Column::UserId.eq(user_id))
        .filter(direct_event::Column::Seq.gt(after));
    if let Some(until) = until {
        select = select.filter(direct_event::Column::Seq.lte(until));
    }
    let events = select
        .order_by_asc(direct_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = events.iter().filter_map(|e| e.message_id).collect();
    let messages: HashMap<Uuid, direct_message::Model> = find_many(db, &ids)
        .await?
        .into_iter()
        .map(|m| (m.id, m))
        .collect();
    Ok(events
        .into_iter()
        .map(|e| {
            let message = e.message_id.and_then(|id| messages.get(&id).cloned());
            (e, message)
        })
        .collect())
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
                )
                .and(d(direct_message::Column::DeletedAt).is_null()),
        },
        viewer,
        peers,
    )
    .await
}

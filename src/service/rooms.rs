//! Rooms, memberships and room messages.
//!
//! Rooms are public; reading or writing a room's messages and members needs
//! membership. A room's latest activity is derived from the messages index
//! (MAX(created_at) per room), never kept in a row every send would update.
//!
//! Every room has a stream: positions 1, 2, 3… handed out by `next_seq`,
//! which locks the room's row until the transaction ends, so positions are
//! committed in order: the stream's order is the commit order. Everything
//! stored in a room (a message, a join, a leave, an update) takes the next
//! position and is appended to `room_events`; history, catch-up, unread
//! counts and live feeds all read by position.

use std::collections::HashMap;

use std::time::Duration;

use chrono::{DateTime, Utc};
use entity::{
    message, reaction, room,
    room_event::{self, RoomEventKind},
    room_member, user,
};
use sea_orm::{
    ActiveEnum, ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection,
    DatabaseTransaction, DbBackend, EntityTrait, JoinType, QueryFilter, QueryOrder, QuerySelect,
    Set, SqlErr, Statement, TransactionTrait,
    sea_query::{Expr, ExprTrait, IntoCondition, Query},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic},
    service::{
        UnreadCount, char_len, count_unread, find_by_ids, insert_unless_retry, messages, new_id,
        now,
        page::{Page, Slice, SortOrder},
        validate_client_message_id, validate_content,
    },
};

/// How long leaving or deleting a room waits for the live feeds it ends.
const END_FEEDS_WAIT: Duration = Duration::from_secs(2);

/// What `updateRoom` changes: `None` leaves a field as it is; `Some(None)` clears the description.
#[derive(Default)]
pub struct RoomChanges {
    pub name: Option<String>,
    pub description: Option<Option<String>>,
}

/// A room name: 1–100 characters after trimming; stored trimmed.
fn clean_name(name: &str) -> AppResult<String> {
    let name = name.trim();
    crate::service::text::reject_invisible("room name", name)?;
    if name.contains('\0') || name.is_empty() || char_len(name) > 100 {
        return Err(AppError::bad_input("room name must be 1–100 characters"));
    }
    Ok(name.to_owned())
}

fn validate_description(description: &str) -> AppResult<()> {
    if description.contains('\0') || char_len(description) > 1000 {
        return Err(AppError::bad_input(
            "room description must be at most 1000 characters",
        ));
    }
    Ok(())
}

pub async fn find(db: &impl ConnectionTrait, room_id: Uuid) -> AppResult<Option<room::Model>> {
    Ok(room::Entity::find_by_id(room_id).one(db).await?)
}

async fn require_room(db: &impl ConnectionTrait, room_id: Uuid) -> AppResult<room::Model> {
    find(db, room_id)
        .await?
        .ok_or_else(|| AppError::not_found("room not found"))
}

/// The one rule for reading a room's messages and members, sending to it,
/// marking it read and following it live: its members may, nobody else.
/// Every path asks this, with the membership it found (resolvers through
/// their DataLoader).
pub fn check_reader(membership: Option<&room_member::Model>) -> AppResult<()> {
    match membership {
        Some(_) => Ok(()),
        None => Err(AppError::forbidden("only members of this room may do that")),
    }
}

pub async fn membership(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<room_member::Model>> {
    Ok(room_member::Entity::find_by_id((room_id, user_id))
        .one(db)
        .await?)
}

/// A room with `user_id`'s membership of it (None: not a member), in one statement.
pub async fn find_with_membership(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    user_id: Uuid,
) -> AppResult<Option<(room::Model, Option<room_member::Model>)>> {
    let membership = room::Entity::belongs_to(room_member::Entity)
        .from(room::Column::Id)
        .to(room_member::Column::RoomId)
        .on_condition(move |_, member| {
            Expr::col((member, room_member::Column::UserId))
                .eq(user_id)
                .into_condition()
        })
        .into();
    Ok(room::Entity::find_by_id(room_id)
        .join(JoinType::LeftJoin, membership)
        .select_also(room_member::Entity)
        .one(db)
        .await?)
}

/// The room, if `user_id` is one of its members: NOT_FOUND for no room, FORBIDDEN for a non-member.
pub async fn require_member(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    user_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_room(db, room_id).await?;
    check_reader(membership(db, room_id, user_id).await?.as_ref())?;
    Ok(room)
}

/// Takes the room's next stream position. The UPDATE locks the room's row
/// until the transaction ends, so positions are handed out, and committed,
/// in order. NOT_FOUND when the room is gone.
async fn next_seq(txn: &DatabaseTransaction, room_id: Uuid) -> AppResult<i64> {
    let bump = Query::update()
        .table(room::Entity)
        .value(
            room::Column::LastSeq,
            Expr::col(room::Column::LastSeq).add(1),
        )
        .and_where(Expr::col(room::Column::Id).eq(room_id))
        .returning_col(room::Column::LastSeq)
        .to_owned();
    let row = txn
        .query_one(&bump)
        .await?
        .ok_or_else(|| AppError::not_found("room not found"))?;
    Ok(row.try_get::<i64>("", "last_seq")?)
}

/// `next_seq` for a sender, who must be a member: the membership test rides
/// in the same statement (one round trip fewer on the hot path of a send),
/// and the row lock it takes holds off a concurrent leave until the commit.
pub(super) async fn next_seq_as_member(
    txn: &DatabaseTransaction,
    room_id: Uuid,
    user_id: Uuid,
) -> AppResult<i64> {
    let member = Query::select()
        .expr(Expr::val(1))
        .from(room_member::Entity)
        .and_where(Expr::col((room_member::Entity, room_member::Column::RoomId)).eq(room_id))
        .and_where(Expr::col((room_member::Entity, room_member::Column::UserId)).eq(user_id))
        .to_owned();
    let bump = Query::update()
        .table(room::Entity)
        .value(
            room::Column::LastSeq,
            Expr::col(room::Column::LastSeq).add(1),
        )
        .and_where(Expr::col(room::Column::Id).eq(room_id))
        .and_where(Expr::exists(member))
        .returning_col(room::Column::LastSeq)
        .to_owned();
    match txn.query_one(&bump).await? {
        Some(row) => Ok(row.try_get::<i64>("", "last_seq")?),
        // No row: no such room, or not a member (the error path may read again).
        None => {
            require_member(txn, room_id, user_id).await?;
            Err(AppError::forbidden("only members of this room may do that"))
        }
    }
}

/// Appends what happened at `seq` to the room's stream (the caller announces
/// it with `announce` once committed).
pub(super) async fn append(
    txn: &DatabaseTransaction,
    room_id: Uuid,
    seq: i64,
    kind: RoomEventKind,
    message_id: Option<Uuid>,
    user_id: Option<Uuid>,
) -> AppResult<()> {
    room_event::Entity::insert(room_event::ActiveModel {
        room_id: Set(room_id),
        seq: Set(seq),
        kind: Set(kind),
        message_id: Set(message_id),
        user_id: Set(user_id),
        created_at: Set(now()),
    })
    .exec_without_returning(txn)
    .await?;
    Ok(())
}

/// Wakes the room's readers, on every instance: committed through `seq`.
pub(super) fn announce(broker: &dyn Broker, room_id: Uuid, seq: i64) {
    broker.publish(Topic::Room(room_id), Event::RoomStream { room_id, seq });
}

pub async fn create(
    db: &DatabaseConnection,
    creator: Uuid,
    name: &str,
    description: Option<String>,
) -> AppResult<room::Model> {
    let name = clean_name(name)?;
    if let Some(d) = &description {
        validate_description(d)?;
    }
    let now = now();
    let txn = db.begin().await?;
    // The creator's join is the stream's first position.
    let room = room::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        description: Set(description),
        created_by: Set(creator),
        created_at: Set(now),
        updated_at: Set(now),
        last_seq: Set(1),
    }
    .insert(&txn)
    .await?;
    room_member::ActiveModel {
        room_id: Set(room.id),
        user_id: Set(creator),
        joined_at: Set(now),
        last_read_at: Set(now),
        last_read_seq: Set(1),
        receipt_at: Set(None),
        receipt_message_id: Set(None),
    }
    .insert(&txn)
    .await?;
    room_event::Entity::insert(room_event::ActiveModel {
        room_id: Set(room.id),
        seq: Set(1),
        kind: Set(RoomEventKind::MemberJoined),
        message_id: Set(None),
        user_id: Set(Some(creator)),
        created_at: Set(now),
    })
    .exec_without_returning(&txn)
    .await?;
    txn.commit().await?;
    Ok(room)
}

/// Creator only; a position of the room's stream.
pub async fn update(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    room_id: Uuid,
    changes: RoomChanges,
) -> AppResult<room::Model> {
    let name = changes.name.as_deref().map(clean_name).transpose()?;
    if let Some(Some(d)) = &changes.description {
        validate_description(d)?;
    }
    let txn = db.begin().await?;
    let room = require_room(&txn, room_id).await?;
    if room.created_by != viewer {
        return Err(AppError::forbidden("only the room's creator may change it"));
    }
    let mut model: room::ActiveModel = room.into();
    if let Some(name) = name {
        model.name = Set(name);
    }
    if let Some(description) = changes.description {
        model.description = Set(description);
    }
    model.updated_at = Set(now());
    let seq = next_seq(&txn, room_id).await?;
    let mut room = model.update(&txn).await?;
    room.last_seq = seq;
    let kind = RoomEventKind::RoomUpdated;
    append(&txn, room_id, seq, kind, None, Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, room_id, seq);
    Ok(room)
}

/// Creator only. Messages and memberships go with the room (ON DELETE
/// CASCADE); every live feed of the room ends (see `end_feeds`).
pub async fn delete(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<()> {
    let txn = db.begin().await?;
    let room = require_room(&txn, room_id).await?;
    if room.created_by != viewer {
        return Err(AppError::forbidden("only the room's creator may delete it"));
    }
    // Reactions name their message without a foreign key (either kind of
    // message): they go here, the room's messages by ON DELETE CASCADE.
    reaction::Entity::delete_many()
        .filter(
            reaction::Column::MessageId.in_subquery(
                Query::select()
                    .column(message::Column::Id)
                    .from(message::Entity)
                    .and_where(Expr::col(message::Column::RoomId).eq(room_id))
                    .to_owned(),
            ),
        )
        .exec(&txn)
        .await?;
    room::Entity::delete_by_id(room_id).exec(&txn).await?;
    txn.commit().await?;
    broker.publish(Topic::Room(room_id), Event::RoomDeleted { room_id });
    end_feeds(broker, room_id, None).await;
    Ok(())
}

/// Waits until this instance's live feeds of `room_id` (for `user_id`, or
/// for everyone) have ended, so their `complete` is on its way before the
/// mutation answers. Feeds on other instances end as the event reaches them;
/// none delivers a message sent after the leave, which comes before it in the
/// room's stream.
async fn end_feeds(broker: &dyn Broker, room_id: Uuid, user_id: Option<Uuid>) {
    let feeds = broker.hub().room_feeds();
    if !feeds.until_ended(room_id, user_id, END_FEEDS_WAIT).await {
        tracing::warn!(%room_id, "room feeds still live after leave/delete; they end on their next wake-up");
    }
}

/// Idempotent: joining again keeps the first joinedAt and read mark. A new
/// member has read everything that came before (their own join included).
pub async fn join(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_room(db, room_id).await?;
    if membership(db, room_id, viewer).await?.is_some() {
        return Ok(room);
    }
    let txn = db.begin().await?;
    let seq = next_seq(&txn, room_id).await?;
    let now = now();
    let joined = room_member::Entity::insert(room_member::ActiveModel {
        room_id: Set(room_id),
        user_id: Set(viewer),
        joined_at: Set(now),
        last_read_at: Set(now),
        last_read_seq: Set(seq),
        receipt_at: Set(None),
        receipt_message_id: Set(None),
    })
    .on_conflict_do_nothing_on([room_member::Column::RoomId, room_member::Column::UserId])
    .exec_without_returning(&txn)
    .await?;
    if !matches!(joined, sea_orm::TryInsertResult::Inserted(n) if n > 0) {
        // A concurrent join of the same user came first.
        txn.rollback().await?;
        return Ok(room);
    }
    let kind = RoomEventKind::MemberJoined;
    append(&txn, room_id, seq, kind, None, Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, room_id, seq);
    Ok(room::Model {
        last_seq: seq,
        ..room
    })
}

/// Idempotent. The leave is a position of the room's stream: it ends the
/// leaver's live feeds there (see `end_feeds`).
pub async fn leave(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_room(db, room_id).await?;
    if membership(db, room_id, viewer).await?.is_none() {
        return Ok(room);
    }
    let txn = db.begin().await?;
    let seq = next_seq(&txn, room_id).await?;
    let left = room_member::Entity::delete_by_id((room_id, viewer))
        .exec(&txn)
        .await?
        .rows_affected
        > 0;
    if !left {
        txn.rollback().await?;
        return Ok(room);
    }
    let kind = RoomEventKind::MemberLeft;
    append(&txn, room_id, seq, kind, None, Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, room_id, seq);
    end_feeds(broker, room_id, Some(viewer)).await;
    Ok(room::Model {
        last_seq: seq,
        ..room
    })
}

/// Moves the viewer's read receipt to `up_to` (a message of the room that
/// is not deleted; None: the newest message now) when that is later than
/// where it is, or when they never marked: a position of the room's stream.
/// A receipt never moves back; what would is a no-op. Members only.
pub async fn mark_read(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    room_id: Uuid,
    up_to: Option<Uuid>,
) -> AppResult<room::Model> {
    let room = require_member(db, room_id, viewer).await?;
    let txn = db.begin().await?;
    let seq = next_seq_as_member(&txn, room_id, viewer).await?;
    let target = match up_to {
        Some(id) => {
            let message = live_message_of_room(&txn, room_id, id, "upTo").await?;
            Some((message.seq, message.id))
        }
        None => {
            message::Entity::find()
                .select_only()
                .column(message::Column::Seq)
                .column(message::Column::Id)
                .filter(message::Column::RoomId.eq(room_id))
                .order_by_desc(message::Column::Seq)
                .into_tuple::<(i64, Uuid)>()
                .one(&txn)
                .await?
        }
    };
    let member = membership(&txn, room_id, viewer)
        .await?
        .ok_or_else(|| AppError::forbidden("only members of this room may do that"))?;
    let target_seq = target.map_or(0, |(s, _)| s);
    let moves = member.receipt_at.is_none() || target_seq > member.last_read_seq;
    if !moves {
        txn.rollback().await?;
        return Ok(room);
    }
    let now = now();
    room_member::Entity::update_many()
        .col_expr(room_member::Column::LastReadAt, Expr::value(now))
        .col_expr(
            room_member::Column::LastReadSeq,
            Expr::value(std::cmp::max(target_seq, member.last_read_seq)),
        )
        .col_expr(room_member::Column::ReceiptAt, Expr::value(now))
        .col_expr(
            room_member::Column::ReceiptMessageId,
            Expr::value(target.map(|(_, id)| id)),
        )
        .filter(room_member::Column::RoomId.eq(room_id))
        .filter(room_member::Column::UserId.eq(viewer))
        .exec(&txn)
        .await?;
    append(
        &txn,
        room_id,
        seq,
        RoomEventKind::ReceiptMoved,
        None,
        Some(viewer),
    )
    .await?;
    txn.commit().await?;
    announce(broker, room_id, seq);
    Ok(room::Model {
        last_seq: seq,
        ..room
    })
}

/// Members' receipts, the most recently moved first.
pub async fn read_receipts(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<room_member::Model>> {
    let select = page.apply(
        room_member::Entity::find()
            .filter(room_member::Column::RoomId.eq(room_id))
            .filter(room_member::Column::ReceiptAt.is_not_null()),
        Expr::col((room_member::Entity, room_member::Column::ReceiptAt)),
        Expr::col((room_member::Entity, room_member::Column::UserId)),
        SortOrder::Desc,
    );
    Ok(page.finish(select.all(db).await?))
}

/// `id` as a message of `room_id` that is not deleted, read in the
/// transaction that holds the room's lock: anything else is BAD_USER_INPUT
/// (`field` names the argument).
async fn live_message_of_room(
    txn: &DatabaseTransaction,
    room_id: Uuid,
    id: Uuid,
    field: &str,
) -> AppResult<message::Model> {
    message::Entity::find_by_id(id)
        .one(txn)
        .await?
        .filter(|m| m.room_id == room_id && m.deleted_at.is_none())
        .ok_or_else(|| {
            AppError::bad_input(format!(
                "`{field}` must be a message of this room that is not deleted"
            ))
        })
}

/// A room message for a viewer who may read it: NOT_FOUND for no message
/// and for one the viewer cannot read (SEMANTICS: they learn nothing).
pub async fn readable_message(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    id: Uuid,
) -> AppResult<message::Model> {
    let not_found = || AppError::not_found("message not found");
    let message = message::Entity::find_by_id(id)
        .one(db)
        .await?
        .ok_or_else(not_found)?;
    if check_reader(membership(db, message.room_id, viewer).await?.as_ref()).is_err() {
        return Err(not_found());
    }
    Ok(message)
}

/// The sender only; same content rules as a send; not a deleted message.
pub async fn edit(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    id: Uuid,
    content: String,
) -> AppResult<message::Model> {
    let message = readable_message(db, viewer, id).await?;
    messages::check_edit(message.sender_id, viewer, message.deleted_at, &content)?;
    let txn = db.begin().await?;
    let seq = next_seq_as_member(&txn, message.room_id, viewer).await?;
    let mut message = messages::for_change::<message::Entity>(&txn, id).await?;
    let edited_at = messages::write_edit::<message::Entity>(&txn, id, &content).await?;
    let kind = RoomEventKind::MessageEdited;
    append(&txn, message.room_id, seq, kind, Some(id), Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, message.room_id, seq);
    message.content = content;
    message.edited_at = Some(edited_at);
    Ok(message)
}

/// The sender, or the room's creator. Leaves a tombstone (empty content,
/// no reactions); deleting again returns it and changes nothing.
pub async fn delete_message(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    id: Uuid,
) -> AppResult<message::Model> {
    let message = readable_message(db, viewer, id).await?;
    if message.deleted_at.is_some() {
        return Ok(message);
    }
    if message.sender_id != viewer {
        let room = require_room(db, message.room_id).await?;
        if room.created_by != viewer {
            return Err(AppError::forbidden(
                "only the sender or the room's creator may delete a message",
            ));
        }
    }
    let txn = db.begin().await?;
    let seq = next_seq_as_member(&txn, message.room_id, viewer).await?;
    let mut message = match messages::for_change::<message::Entity>(&txn, id).await {
        Ok(message) => message,
        Err(AppError::BadUserInput(_)) => {
            // Deleted meanwhile: the same tombstone.
            txn.rollback().await?;
            return readable_message(db, viewer, id).await;
        }
        Err(err) => return Err(err),
    };
    let deleted_at = messages::write_tombstone::<message::Entity>(&txn, id).await?;
    let kind = RoomEventKind::MessageDeleted;
    append(&txn, message.room_id, seq, kind, Some(id), Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, message.room_id, seq);
    message.content = String::new();
    message.deleted_at = Some(deleted_at);
    Ok(message)
}

/// Every room, newest first.
pub async fn list(
    db: &impl ConnectionTrait,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<room::Model>> {
    let select = page.apply(
        room::Entity::find(),
        Expr::col((room::Entity, room::Column::CreatedAt)),
        Expr::col((room::Entity, room::Column::Id)),
        SortOrder::Desc,
    );
    Ok(page.finish(select.all(db).await?))
}

/// The latest activity in the member's room: its newest message, else when they joined.
fn activity() -> Expr {
    Expr::cust(
        "COALESCE((SELECT MAX(m.created_at) FROM messages m WHERE m.room_id = room_members.room_id), \
         room_members.joined_at)",
    )
}

/// The viewer's rooms, most recent activity first: (room id, activity).
pub async fn list_mine(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<(Uuid, DateTime<Utc>)>> {
    let select = room_member::Entity::find()
        .select_only()
        .column(room_member::Column::RoomId)
        .expr_as(activity(), "activity")
        .filter(room_member::Column::UserId.eq(viewer));
    let select = page.apply(
        select,
        activity(),
        Expr::col((room_member::Entity, room_member::Column::RoomId)),
        SortOrder::Desc,
    );
    let rows = select.into_tuple::<(Uuid, DateTime<Utc>)>().all(db).await?;
    Ok(page.finish(rows))
}

/// Members, earliest joined first.
pub async fn members(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<room_member::Model>> {
    let select = page.apply(
        room_member::Entity::find().filter(room_member::Column::RoomId.eq(room_id)),
        Expr::col((room_member::Entity, room_member::Column::JoinedAt)),
        Expr::col((room_member::Entity, room_member::Column::UserId)),
        SortOrder::Asc,
    );
    Ok(page.finish(select.all(db).await?))
}

/// A room's history in stream (commit) order, oldest first: a message that
/// commits after a page was read never sorts before that page's end. Each
/// message comes with its sender (None only if the account is gone), in one
/// statement. The caller checked membership.
pub async fn messages_with_senders(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    page: &Page<i64>,
) -> AppResult<Slice<(message::Model, Option<user::Model>)>> {
    let sender = message::Entity::belongs_to(user::Entity)
        .from(message::Column::SenderId)
        .to(user::Column::Id)
        .into();
    let select = page
        .apply(
            message::Entity::find().filter(message::Column::RoomId.eq(room_id)),
            Expr::col((message::Entity, message::Column::Seq)),
            Expr::col((message::Entity, message::Column::Id)),
            SortOrder::Asc,
        )
        .join(JoinType::LeftJoin, sender)
        .select_also(user::Entity);
    Ok(page.finish(select.all(db).await?))
}

pub struct NewMessage {
    pub room_id: Uuid,
    pub content: String,
    pub client_message_id: Option<String>,
    /// A message of the same room, not deleted, that this one answers.
    pub reply_to: Option<Uuid>,
}

/// Members only. Stores a message at the room's next stream position and
/// announces it in the same transaction. A retry with the same
/// clientMessageId stores and announces nothing and returns the first message.
pub async fn send(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    input: NewMessage,
) -> AppResult<message::Model> {
    validate_content(&input.content)?;
    validate_client_message_id(input.client_message_id.as_deref())?;
    if db.get_database_backend() == DbBackend::Postgres
        && input.reply_to.is_none()
        && let Some(model) = send_in_one_statement(db, viewer, &input).await?
    {
        announce(broker, model.room_id, model.seq);
        return Ok(model);
    }
    let txn = db.begin().await?;
    let seq = next_seq_as_member(&txn, input.room_id, viewer).await?;
    if let Some(id) = input.reply_to {
        live_message_of_room(&txn, input.room_id, id, "replyToId").await?;
    }
    let model = message::Model {
        id: new_id(),
        room_id: input.room_id,
        sender_id: viewer,
        content: input.content,
        client_message_id: input.client_message_id,
        created_at: now(),
        seq,
        edited_at: None,
        deleted_at: None,
        reply_to_id: input.reply_to,
    };
    let retry = [
        message::Column::RoomId,
        message::Column::SenderId,
        message::Column::ClientMessageId,
    ];
    if let Some(first) =
        insert_unless_retry::<message::Entity, _>(&txn, model.clone(), retry).await?
    {
        txn.rollback().await?;
        return Ok(first);
    }
    let kind = RoomEventKind::Message;
    append(&txn, model.room_id, seq, kind, Some(model.id), Some(viewer)).await?;
    txn.commit().await?;
    announce(broker, model.room_id, seq);
    Ok(model)
}

/// PostgreSQL: the common send (no reply) as one statement, so one round
/// trip instead of five: take the room's next position under its row lock
/// if the sender is a member, insert the message and its stream position,
/// commit. The same rules as `send`'s transaction, whose `UPDATE … WHERE
/// EXISTS (member)` this is; the row lock is held to the commit, so stream
/// order is commit order. None: nothing was written (not a member, no such
/// room, or a retried `clientMessageId`, which the unique index refuses with
/// the whole statement), and `send`'s transaction says why or finds the first.
async fn send_in_one_statement(
    db: &DatabaseConnection,
    viewer: Uuid,
    input: &NewMessage,
) -> AppResult<Option<message::Model>> {
    const SQL: &str = r#"
WITH bump AS (
    UPDATE rooms SET last_seq = last_seq + 1
    WHERE id = $1
      AND EXISTS (SELECT 1 FROM room_members WHERE room_id = $1 AND user_id = $2)
    RETURNING last_seq
), msg AS (
    INSERT INTO messages (id, room_id, sender_id, content, client_message_id, created_at, seq)
    SELECT $3, $1, $2, $4, $5, $6, last_seq FROM bump
    RETURNING seq
)
INSERT INTO room_events (room_id, seq, kind, message_id, user_id, created_at)
SELECT $1, seq, $7, $3, $2, $6 FROM msg
RETURNING seq"#;
    let id = new_id();
    let created_at = now();
    let kind: sea_orm::Value = RoomEventKind::Message.into_value().into();
    let values = [
        input.room_id.into(),
        viewer.into(),
        id.into(),
        input.content.clone().into(),
        input.client_message_id.clone().into(),
        created_at.into(),
        kind,
    ];
    let statement = Statement::from_sql_and_values(DbBackend::Postgres, SQL, values);
    let row = match db.query_one_raw(statement).await {
        Ok(row) => row,
        Err(err) if matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
            return Ok(None);
        }
        Err(err) => return Err(err.into()),
    };
    let Some(row) = row else {
        return Ok(None);
    };
    Ok(Some(message::Model {
        id,
        room_id: input.room_id,
        sender_id: viewer,
        content: input.content.clone(),
        client_message_id: input.client_message_id.clone(),
        created_at,
        seq: row.try_get::<i64>("", "seq")?,
        edited_at: None,
        deleted_at: None,
        reply_to_id: None,
    }))
}

/// One position of a room's stream, with its message if it holds one.
pub type StreamEntry = (room_event::Model, Option<message::Model>);

/// The room's stream after position `after`, up to `until` (inclusive) when
/// given, in order, at most `limit` entries.
pub async fn events_after(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    after: i64,
    until: Option<i64>,
    limit: u64,
) -> AppResult<Vec<StreamEntry>> {
    let mut select = room_event::Entity::find()
        .filter(room_event::Column::RoomId.eq(room_id))
        .filter(room_event::Column::Seq.gt(after));
    if let Some(until) = until {
        select = select.filter(room_event::Column::Seq.lte(until));
    }
    let events = select
        .order_by_asc(room_event::Column::Seq)
        .limit(limit)
        .all(db)
        .await?;
    let ids: Vec<Uuid> = events.iter().filter_map(|e| e.message_id).collect();
    let messages: HashMap<Uuid, message::Model> = if ids.is_empty() {
        HashMap::new()
    } else {
        find_messages(db, &ids)
            .await?
            .into_iter()
            .map(|m| (m.id, m))
            .collect()
    };
    Ok(events
        .into_iter()
        .map(|e| {
            // Several positions may name one message (sent, edited, reacted to).
            let message = e.message_id.and_then(|id| messages.get(&id).cloned());
            (e, message)
        })
        .collect())
}

/// The newest position of the room's stream; None when the room is gone.
pub async fn head(db: &impl ConnectionTrait, room_id: Uuid) -> AppResult<Option<i64>> {
    Ok(find(db, room_id).await?.map(|r| r.last_seq))
}

// ---- batched lookups for the DataLoaders ----

pub async fn find_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<room::Model>> {
    find_by_ids::<room::Entity>(db, room::Column::Id, ids).await
}

pub async fn find_messages(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<message::Model>> {
    find_by_ids::<message::Entity>(db, message::Column::Id, ids).await
}

/// The memberships of `users` in one room.
pub async fn members_among(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    users: &[Uuid],
) -> AppResult<Vec<room_member::Model>> {
    if users.is_empty() {
        return Ok(Vec::new());
    }
    Ok(room_member::Entity::find()
        .filter(room_member::Column::RoomId.eq(room_id))
        .filter(room_member::Column::UserId.is_in(users.iter().copied()))
        .all(db)
        .await?)
}

/// The viewer's memberships among `room_ids`.
pub async fn memberships(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    room_ids: &[Uuid],
) -> AppResult<Vec<room_member::Model>> {
    Ok(room_member::Entity::find()
        .filter(room_member::Column::UserId.eq(viewer))
        .filter(room_member::Column::RoomId.is_in(room_ids.iter().copied()))
        .all(db)
        .await?)
}

/// Members per room, counted in SQL.
pub async fn member_counts(
    db: &impl ConnectionTrait,
    room_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    let rows = room_member::Entity::find()
        .select_only()
        .column(room_member::Column::RoomId)
        .expr_as(Expr::col(room_member::Column::UserId).count(), "n")
        .filter(room_member::Column::RoomId.is_in(room_ids.iter().copied()))
        .group_by(room_member::Column::RoomId)
        .into_tuple::<(Uuid, i64)>()
        .all(db)
        .await?;
    Ok(rows.into_iter().collect())
}

/// Unread messages per room for `viewer`: messages from others after their read mark.
pub async fn unread_counts(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    room_ids: &[Uuid],
) -> AppResult<HashMap<Uuid, i64>> {
    let rm = |c: room_member::Column| Expr::col((room_member::Entity, c));
    let m = |c: message::Column| Expr::col((message::Entity, c));
    count_unread(
        db,
        UnreadCount {
            marks: room_member::Entity,
            owner: room_member::Column::UserId,
            key: room_member::Column::RoomId,
            messages: message::Entity,
            message_id: message::Column::Id,
            unread: m(message::Column::RoomId)
                .eq(rm(room_member::Column::RoomId))
                .and(m(message::Column::Seq).gt(rm(room_member::Column::LastReadSeq)))
                .and(m(message::Column::SenderId).ne(rm(room_member::Column::UserId)))
                .and(m(message::Column::DeletedAt).is_null()),
        },
        viewer,
        room_ids,
    )
    .await
}

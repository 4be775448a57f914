//! Rooms, memberships and room messages.
//!
//! Rooms are public; reading or writing a room's messages and members needs
//! membership. A room's latest activity is derived from the messages index
//! (MAX(created_at) per room), never kept in a row every send would update.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{message, room, room_member};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    QueryOrder, QuerySelect, Set, TransactionTrait, TryInsertResult,
    sea_query::{Expr, ExprTrait, Order, Query},
};
use uuid::Uuid;

use crate::realtime::{Broker, Event, Topic};
use crate::{
    error::{AppError, AppResult},
    service::{
        char_len, new_id, now,
        page::{Page, Slice, SortOrder},
        validate_content,
    },
};

pub const MAX_CLIENT_MESSAGE_ID: usize = 64;

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

pub async fn find(db: &impl ConnectionTrait, room_id: Uuid) -> AppResult<Option<room::Model>> {
    Ok(room::Entity::find_by_id(room_id).one(db).await?)
}

async fn require_room(db: &impl ConnectionTrait, room_id: Uuid) -> AppResult<room::Model> {
    find(db, room_id)
        .await?
        .ok_or_else(|| AppError::NotFound("room not found".into()))
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

/// The room, if `user_id` is one of its members: NOT_FOUND for no room, FORBIDDEN for a non-member.
pub async fn require_member(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    user_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_room(db, room_id).await?;
    if membership(db, room_id, user_id).await?.is_none() {
        return Err(AppError::Forbidden(
            "only members of this room may do that".into(),
        ));
    }
    Ok(room)
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
    let room = room::ActiveModel {
        id: Set(new_id()),
        name: Set(name),
        description: Set(description),
        created_by: Set(creator),
        created_at: Set(now),
        updated_at: Set(now),
    }
    .insert(&txn)
    .await?;
    room_member::ActiveModel {
        room_id: Set(room.id),
        user_id: Set(creator),
        joined_at: Set(now),
        last_read_at: Set(now),
    }
    .insert(&txn)
    .await?;
    txn.commit().await?;
    Ok(room)
}

/// Creator only.
pub async fn update(
    db: &DatabaseConnection,
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
        return Err(AppError::Forbidden(
            "only the room's creator may change it".into(),
        ));
    }
    let mut model: room::ActiveModel = room.into();
    if let Some(name) = name {
        model.name = Set(name);
    }
    if let Some(description) = changes.description {
        model.description = Set(description);
    }
    model.updated_at = Set(now());
    let room = model.update(&txn).await?;
    txn.commit().await?;
    Ok(room)
}

/// Creator only. Messages and memberships go with the room (ON DELETE CASCADE).
pub async fn delete(db: &impl ConnectionTrait, viewer: Uuid, room_id: Uuid) -> AppResult<()> {
    let room = require_room(db, room_id).await?;
    if room.created_by != viewer {
        return Err(AppError::Forbidden(
            "only the room's creator may delete it".into(),
        ));
    }
    room::Entity::delete_by_id(room_id).exec(db).await?;
    Ok(())
}

/// Idempotent: joining again keeps the first joinedAt and read mark.
pub async fn join(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_room(db, room_id).await?;
    let now = now();
    // A new member has read everything that came before they joined.
    room_member::Entity::insert(room_member::ActiveModel {
        room_id: Set(room_id),
        user_id: Set(viewer),
        joined_at: Set(now),
        last_read_at: Set(now),
    })
    .on_conflict_do_nothing_on([room_member::Column::RoomId, room_member::Column::UserId])
    .exec_without_returning(db)
    .await?;
    Ok(room)
}

/// Returns whether the viewer was a member.
pub async fn leave(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<(room::Model, bool)> {
    let room = require_room(db, room_id).await?;
    let result = room_member::Entity::delete_by_id((room_id, viewer))
        .exec(db)
        .await?;
    Ok((room, result.rows_affected > 0))
}

pub async fn mark_read(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    room_id: Uuid,
) -> AppResult<room::Model> {
    let room = require_member(db, room_id, viewer).await?;
    room_member::Entity::update_many()
        .col_expr(room_member::Column::LastReadAt, Expr::value(now()))
        .filter(room_member::Column::RoomId.eq(room_id))
        .filter(room_member::Column::UserId.eq(viewer))
        .exec(db)
        .await?;
    Ok(room)
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

/// A room's history, oldest first. The caller checked membership.
pub async fn messages(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<message::Model>> {
    let select = page.apply(
        message::Entity::find().filter(message::Column::RoomId.eq(room_id)),
        Expr::col((message::Entity, message::Column::CreatedAt)),
        Expr::col((message::Entity, message::Column::Id)),
        SortOrder::Asc,
    );
    Ok(page.finish(select.all(db).await?))
}

pub struct NewMessage {
    pub room_id: Uuid,
    pub content: String,
    pub client_message_id: Option<String>,
}

/// Members only. A retry with the same clientMessageId returns the first
/// message; the bool says whether this call stored it.
/// Stores a message and announces it in the same transaction (commit order).
/// A retry with the same clientMessageId returns the first message, stores
/// and announces nothing.
pub async fn send(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    input: NewMessage,
) -> AppResult<(message::Model, bool)> {
    validate_content(&input.content)?;
    validate_client_message_id(input.client_message_id.as_deref())?;
    // The timestamp is taken once the connection is held, so the time from
    // created_at to commit stays short: subscriptions look back a bounded
    // window for rows that commit after later-stamped ones.
    let txn = db.begin().await?;
    require_member(&txn, input.room_id, viewer).await?;
    let model = message::Model {
        id: new_id(),
        room_id: input.room_id,
        sender_id: viewer,
        content: input.content,
        client_message_id: input.client_message_id,
        created_at: now(),
    };
    let active: message::ActiveModel = model.clone().into();
    // ON CONFLICT DO NOTHING: a failed statement would abort a PostgreSQL
    // transaction, and a concurrent duplicate waits for the first to commit.
    let result = message::Entity::insert(active)
        .on_conflict_do_nothing_on([message::Column::SenderId, message::Column::ClientMessageId])
        .exec_without_returning(&txn)
        .await?;
    let stored = matches!(result, TryInsertResult::Inserted(n) if n > 0);
    if stored {
        let event = Event::Message {
            room_id: model.room_id,
            message_id: model.id,
        };
        broker
            .publish_in(&txn, Topic::Room(model.room_id), event)
            .await?;
    }
    txn.commit().await?;
    if stored {
        return Ok((model, true));
    }
    let first = find_by_client_id(db, viewer, model.client_message_id.as_deref()).await?;
    Ok((first, false))
}

async fn find_by_client_id(
    db: &impl ConnectionTrait,
    sender: Uuid,
    client_message_id: Option<&str>,
) -> AppResult<message::Model> {
    let found = message::Entity::find()
        .filter(message::Column::SenderId.eq(sender))
        .filter(message::Column::ClientMessageId.eq(client_message_id))
        .one(db)
        .await?;
    found.ok_or_else(|| AppError::internal(std::io::Error::other("conflicting message not found")))
}

/// The messages of `room_id` among `ids`.
pub async fn messages_by_ids(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    ids: &[Uuid],
) -> AppResult<Vec<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(message::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn find_message(
    db: &impl ConnectionTrait,
    id: Uuid,
) -> AppResult<Option<message::Model>> {
    Ok(message::Entity::find_by_id(id).one(db).await?)
}

/// Messages of a room stamped at or after `since`, oldest first, after the
/// keyset position `after` (exclusive), at most `limit`.
pub async fn messages_since(
    db: &impl ConnectionTrait,
    room_id: Uuid,
    since: DateTime<Utc>,
    after: Option<(DateTime<Utc>, Uuid)>,
    limit: u64,
) -> AppResult<Vec<message::Model>> {
    let key = || Expr::col((message::Entity, message::Column::CreatedAt));
    let id = || Expr::col((message::Entity, message::Column::Id));
    let mut select = message::Entity::find()
        .filter(message::Column::RoomId.eq(room_id))
        .filter(key().gte(since));
    if let Some((at, last)) = after {
        select = select
            .filter(Expr::tuple([key(), id()]).gt(Expr::tuple([Expr::val(at), Expr::val(last)])));
    }
    Ok(select
        .order_by(key(), Order::Asc)
        .order_by(id(), Order::Asc)
        .limit(limit)
        .all(db)
        .await?)
}

// ---- batched lookups for the DataLoaders ----

pub async fn find_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<room::Model>> {
    Ok(room::Entity::find()
        .filter(room::Column::Id.is_in(ids.iter().copied()))
        .all(db)
        .await?)
}

pub async fn find_messages(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<Vec<message::Model>> {
    Ok(message::Entity::find()
        .filter(message::Column::Id.is_in(ids.iter().copied()))
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
    let stmt = Query::select()
        .column((room_member::Entity, room_member::Column::RoomId))
        .expr_as(m(message::Column::Id).count(), "n")
        .from(room_member::Entity)
        .left_join(
            message::Entity,
            m(message::Column::RoomId)
                .eq(rm(room_member::Column::RoomId))
                .and(m(message::Column::CreatedAt).gt(rm(room_member::Column::LastReadAt)))
                .and(m(message::Column::SenderId).ne(rm(room_member::Column::UserId))),
        )
        .and_where(rm(room_member::Column::UserId).eq(viewer))
        .and_where(rm(room_member::Column::RoomId).is_in(room_ids.iter().copied()))
        .group_by_col((room_member::Entity, room_member::Column::RoomId))
        .to_owned();
    super::counts_by(db, &stmt, "room_id").await
}

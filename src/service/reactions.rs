//! Reactions on room messages and direct messages: one per (user, message,
//! emoji), at most `MAX_EMOJI_PER_USER` different emoji per user per
//! message, none on deleted messages. A change is a position of the room's
//! stream (or of both parties' streams): REACTIONS_CHANGED.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use entity::{
    direct_event::DirectEventKind, direct_message, message, reaction, room_event::RoomEventKind,
};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DatabaseConnection, DatabaseTransaction, EntityTrait,
    PaginatorTrait, QueryFilter, Set, TransactionTrait, TryInsertResult,
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    realtime::Broker,
    service::{direct, messages, now, rooms, text::validate_emoji},
};

/// SEMANTICS: at most 20 different emoji per user per message.
pub const MAX_EMOJI_PER_USER: u64 = 20;

/// A message that takes reactions.
#[derive(Clone, Copy, Debug)]
pub enum Reactable {
    Room(Uuid),
    Direct(Uuid),
}

/// One emoji on one message: who reacted with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReactionGroup {
    pub emoji: String,
    pub users: Vec<Uuid>,
    /// The earliest of these reactions still present (orders ties).
    pub first_at: DateTime<Utc>,
}

/// Reactions per message among `ids`, each message's grouped by emoji, the
/// most used first, ties by the earliest reaction still present. One query.
pub async fn of_messages(
    db: &impl ConnectionTrait,
    ids: &[Uuid],
) -> AppResult<HashMap<Uuid, Vec<ReactionGroup>>> {
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let rows = reaction::Entity::find()
        .filter(reaction::Column::MessageId.is_in(ids.iter().copied()))
        .all(db)
        .await?;
    let mut by_message: HashMap<Uuid, HashMap<String, ReactionGroup>> = HashMap::new();
    for row in rows {
        let group = by_message
            .entry(row.message_id)
            .or_default()
            .entry(row.emoji.clone())
            .or_insert_with(|| ReactionGroup {
                emoji: row.emoji,
                users: Vec::new(),
                first_at: row.created_at,
            });
        group.users.push(row.user_id);
        group.first_at = group.first_at.min(row.created_at);
    }
    Ok(by_message
        .into_iter()
        .map(|(id, groups)| {
            let mut groups: Vec<ReactionGroup> = groups.into_values().collect();
            groups.sort_by(|a, b| {
                b.users
                    .len()
                    .cmp(&a.users.len())
                    .then(a.first_at.cmp(&b.first_at))
                    .then_with(|| a.emoji.cmp(&b.emoji))
            });
            (id, groups)
        })
        .collect())
}

/// Adds (`add`) or removes the viewer's `emoji` on a message they may read,
/// and returns the message's reactions as they are then. What changes
/// nothing (the same reaction again, removing one that is not there) takes
/// no position.
pub async fn change(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    viewer: Uuid,
    target: Reactable,
    emoji: &str,
    add: bool,
) -> AppResult<Vec<ReactionGroup>> {
    validate_emoji(emoji)?;
    let id = match target {
        Reactable::Room(id) => {
            let message = rooms::readable_message(db, viewer, id).await?;
            refuse_deleted(message.deleted_at)?;
            let txn = db.begin().await?;
            let seq = rooms::next_seq_as_member(&txn, message.room_id, viewer).await?;
            messages::for_change::<message::Entity>(&txn, id).await?;
            if apply(&txn, id, viewer, emoji, add).await? {
                let kind = RoomEventKind::ReactionsChanged;
                rooms::append(&txn, message.room_id, seq, kind, Some(id), Some(viewer)).await?;
                txn.commit().await?;
                rooms::announce(broker, message.room_id, seq);
            } else {
                txn.rollback().await?;
            }
            id
        }
        Reactable::Direct(id) => {
            let message = direct::message_for_party(db, viewer, id).await?;
            refuse_deleted(message.deleted_at)?;
            let txn = db.begin().await?;
            let positions =
                direct::next_positions(&txn, message.sender_id, message.receiver_id).await?;
            messages::for_change::<direct_message::Entity>(&txn, id).await?;
            if apply(&txn, id, viewer, emoji, add).await? {
                let kind = DirectEventKind::ReactionsChanged;
                direct::append(&txn, &message, kind, Some(id), viewer, positions).await?;
                txn.commit().await?;
                direct::announce(broker, &message, positions);
            } else {
                txn.rollback().await?;
            }
            id
        }
    };
    Ok(of_messages(db, &[id])
        .await?
        .remove(&id)
        .unwrap_or_default())
}

fn refuse_deleted(deleted_at: Option<DateTime<Utc>>) -> AppResult<()> {
    match deleted_at {
        Some(_) => Err(AppError::bad_input("a deleted message takes no reactions")),
        None => Ok(()),
    }
}

/// True when it changed something.
async fn apply(
    txn: &DatabaseTransaction,
    message_id: Uuid,
    user_id: Uuid,
    emoji: &str,
    add: bool,
) -> AppResult<bool> {
    if !add {
        let removed = reaction::Entity::delete_by_id((message_id, user_id, emoji.to_owned()))
            .exec(txn)
            .await?;
        return Ok(removed.rows_affected > 0);
    }
    let mine = reaction::Entity::find()
        .filter(reaction::Column::MessageId.eq(message_id))
        .filter(reaction::Column::UserId.eq(user_id));
    if mine
        .clone()
        .filter(reaction::Column::Emoji.eq(emoji))
        .count(txn)
        .await?
        > 0
    {
        return Ok(false);
    }
    if mine.count(txn).await? >= MAX_EMOJI_PER_USER {
        return Err(AppError::bad_input(format!(
            "at most {MAX_EMOJI_PER_USER} different emoji per message"
        )));
    }
    let inserted = reaction::Entity::insert(reaction::ActiveModel {
        message_id: Set(message_id),
        user_id: Set(user_id),
        emoji: Set(emoji.to_owned()),
        created_at: Set(now()),
    })
    .on_conflict_do_nothing()
    .exec_without_returning(txn)
    .await?;
    Ok(matches!(inserted, TryInsertResult::Inserted(n) if n > 0))
}

//! Sessions: access tokens, and refresh tokens rotated on every use with
//! reuse detection per login family.

use chrono::{DateTime, Utc};
use entity::refresh_token;
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter,
    Set, TransactionTrait, sea_query::Expr,
};
use uuid::Uuid;

use crate::{
    auth::{Keys, token},
    error::{AppError, AppResult},
    realtime::{Broker, Event, Topic},
    service::{new_id, now},
};

pub struct Session {
    pub user_id: Uuid,
    pub access_token: String,
    pub access_token_expires_at: DateTime<Utc>,
    pub refresh_token: String,
    pub refresh_token_expires_at: DateTime<Utc>,
}

fn invalid() -> AppError {
    AppError::Unauthenticated("invalid, expired or revoked refresh token".into())
}

/// Issues an access token and a refresh token in `family` (a new login starts a new family).
pub async fn issue(
    txn: &impl ConnectionTrait,
    keys: &Keys,
    user_id: Uuid,
    family_id: Uuid,
) -> AppResult<Session> {
    let now = now();
    let (access_token, access_token_expires_at) = keys.issue_access(user_id, family_id, now)?;
    let (refresh_token, token_hash) = token::new_refresh_token();
    let refresh_token_expires_at = now + keys.refresh_ttl;
    refresh_token::ActiveModel {
        id: Set(new_id()),
        user_id: Set(user_id),
        token_hash: Set(token_hash),
        family_id: Set(family_id),
        expires_at: Set(refresh_token_expires_at),
        created_at: Set(now),
        spent_at: Set(None),
        revoked_at: Set(None),
    }
    .insert(txn)
    .await?;
    Ok(Session {
        user_id,
        access_token,
        access_token_expires_at,
        refresh_token,
        refresh_token_expires_at,
    })
}

pub async fn start(db: &DatabaseConnection, keys: &Keys, user_id: Uuid) -> AppResult<Session> {
    issue(db, keys, user_id, new_id()).await
}

/// Spends `raw` and returns a new pair in the same family. Of concurrent
/// refreshes with one token exactly one wins: the spend is a conditional
/// UPDATE, and only the caller that changed the row goes on.
pub async fn refresh(
    db: &DatabaseConnection,
    broker: &dyn Broker,
    keys: &Keys,
    raw: &str,
) -> AppResult<Session> {
    let hash = token::hash_refresh_token(raw);
    let now = now();
    let txn = db.begin().await?;
    let spent = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::SpentAt, Expr::value(now))
        .filter(refresh_token::Column::TokenHash.eq(hash.clone()))
        .filter(refresh_token::Column::SpentAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .exec(&txn)
        .await?;
    let row = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(hash))
        .one(&txn)
        .await?;
    let Some(row) = row else {
        return Err(invalid());
    };
    if spent.rows_affected == 1 {
        let session = issue(&txn, keys, row.user_id, row.family_id).await?;
        txn.commit().await?;
        return Ok(session);
    }
    if row.spent_at.is_some() {
        // A spent token came back: somebody holds a copy. End the whole login.
        revoke_family(&txn, row.family_id, now).await?;
        txn.commit().await?;
        end_session(broker, row.family_id);
        tracing::warn!(user_id = %row.user_id, family_id = %row.family_id, "refresh token reuse: family revoked");
    }
    Err(invalid())
}

async fn revoke_family(
    txn: &impl ConnectionTrait,
    family_id: Uuid,
    now: DateTime<Utc>,
) -> AppResult<()> {
    refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::FamilyId.eq(family_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(txn)
        .await?;
    Ok(())
}

/// Tells the session's live sockets, on every instance, that it ended (call
/// after the commit).
fn end_session(broker: &dyn Broker, session_id: Uuid) {
    broker.publish(
        Topic::Session(session_id),
        Event::SessionEnded { session_id },
    );
}

/// Revokes the refresh token given, which ends its session: the session's
/// sockets close. Anything but a live token is `UNAUTHENTICATED`.
pub async fn logout(db: &DatabaseConnection, broker: &dyn Broker, raw: &str) -> AppResult<()> {
    let now = now();
    let txn = db.begin().await?;
    let live = refresh_token::Entity::find()
        .filter(refresh_token::Column::TokenHash.eq(token::hash_refresh_token(raw)))
        .filter(refresh_token::Column::SpentAt.is_null())
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .one(&txn)
        .await?
        .ok_or_else(invalid)?;
    let revoked = refresh_token::Entity::update_many()
        .col_expr(refresh_token::Column::RevokedAt, Expr::value(now))
        .filter(refresh_token::Column::Id.eq(live.id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .exec(&txn)
        .await?;
    if revoked.rows_affected != 1 {
        return Err(invalid());
    }
    txn.commit().await?;
    end_session(broker, live.family_id);
    Ok(())
}

/// Whether the session can still be refreshed (a live socket asks after its
/// broker reconnected, when an end may have gone unheard).
pub async fn is_live(db: &impl ConnectionTrait, session_id: Uuid) -> AppResult<bool> {
    let now = now();
    Ok(refresh_token::Entity::find()
        .filter(refresh_token::Column::FamilyId.eq(session_id))
        .filter(refresh_token::Column::RevokedAt.is_null())
        .filter(refresh_token::Column::SpentAt.is_null())
        .filter(refresh_token::Column::ExpiresAt.gt(now))
        .one(db)
        .await?
        .is_some())
}

//! Business rules and queries, one file per domain. Nothing here knows GraphQL.

pub mod direct;
pub mod follows;
pub mod geo;
pub mod live;
pub mod page;
pub mod posts;
pub mod rooms;
pub mod sessions;
pub mod text;
pub mod users;
pub mod visibility;

use chrono::{DateTime, SubsecRound, Utc};

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
pub fn validate_content(content: &str) -> crate::error::AppResult<()> {
    use crate::error::AppError;
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

/// Runs a `SELECT <key>, COUNT(…) AS n … GROUP BY <key>` and collects it by key.
pub async fn counts_by(
    db: &impl sea_orm::ConnectionTrait,
    stmt: &sea_orm::sea_query::SelectStatement,
    key: &str,
) -> crate::error::AppResult<std::collections::HashMap<uuid::Uuid, i64>> {
    let mut out = std::collections::HashMap::new();
    for row in db.query_all(stmt).await? {
        out.insert(
            row.try_get::<uuid::Uuid>("", key)?,
            row.try_get::<i64>("", "n")?,
        );
    }
    Ok(out)
}

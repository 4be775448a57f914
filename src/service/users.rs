//! Accounts and profiles.

use entity::user;
use sea_orm::{
    ActiveModelTrait, ConnectionTrait, DatabaseConnection, EntityTrait, QueryFilter, Select, Set,
    TransactionTrait,
    sea_query::{Condition, Expr, ExprTrait, Func, LikeExpr},
};
use uuid::Uuid;

use crate::{
    auth::{Keys, LoginLimiter, Passwords},
    error::{AppError, AppResult},
    service::{
        char_len, new_id, now,
        page::{Page, Slice, SortOrder},
        sessions::{self, Session},
    },
};

pub struct Registration {
    pub username: String,
    pub email: String,
    pub password: String,
    pub display_name: Option<String>,
}

/// Profile changes: `None` leaves a field as it is, `Some(None)` clears it.
#[derive(Default)]
pub struct ProfileChanges {
    pub display_name: Option<Option<String>>,
    pub avatar_url: Option<Option<String>>,
    pub is_private: Option<bool>,
    pub identity_key: Option<Option<String>>,
}

pub fn validate_username(username: &str) -> AppResult<()> {
    let ok_len = (3..=32).contains(&username.len());
    let ok_chars = username
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'_');
    if ok_len && ok_chars {
        Ok(())
    } else {
        Err(AppError::bad_input(
            "username must be 3–32 characters of letters, digits and underscores",
        ))
    }
}

pub fn validate_email(email: &str) -> AppResult<()> {
    let bad = || AppError::bad_input("email address is not valid");
    if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(bad());
    }
    let (local, domain) = email.rsplit_once('@').ok_or_else(bad)?;
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if local.is_empty() || local.len() > 64 || local.contains('@') || !domain_ok {
        return Err(bad());
    }
    Ok(())
}

fn validate_display_name(name: &str) -> AppResult<()> {
    crate::service::text::reject_invisible("display name", name)?;
    if name.contains('\0') || name.trim().is_empty() || char_len(name) > 100 {
        return Err(AppError::bad_input("display name must be 1–100 characters"));
    }
    Ok(())
}

fn validate_avatar_url(url: &str) -> AppResult<()> {
    let scheme_ok = url.starts_with("https://") || url.starts_with("http://");
    if !scheme_ok || url.len() > 2048 || url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(AppError::bad_input(
            "avatar URL must be an http(s) URL of at most 2048 characters",
        ));
    }
    Ok(())
}

/// Base64 (standard alphabet, padded) of 1 to 1,024 bytes.
pub fn validate_identity_key(key: &str) -> AppResult<()> {
    use base64::{Engine, engine::general_purpose::STANDARD};
    let bad = || AppError::bad_input("identity key must be base64 of at most 1024 bytes");
    if key.len() > 4 * 1024usize.div_ceil(3) {
        return Err(bad());
    }
    let bytes = STANDARD.decode(key).map_err(|_| bad())?;
    if bytes.is_empty() || bytes.len() > 1024 {
        return Err(bad());
    }
    Ok(())
}

fn lower(col: user::Column) -> Expr {
    Func::lower(Expr::col(col)).into()
}

/// The users among `ids` (a DataLoader batch).
pub async fn find_many(db: &impl ConnectionTrait, ids: &[Uuid]) -> AppResult<Vec<user::Model>> {
    super::find_by_ids::<user::Entity>(db, user::Column::Id, ids).await
}

pub async fn find(db: &impl ConnectionTrait, id: Uuid) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find_by_id(id).one(db).await?)
}

pub async fn find_by_username(
    db: &impl ConnectionTrait,
    username: &str,
) -> AppResult<Option<user::Model>> {
    Ok(user::Entity::find()
        .filter(lower(user::Column::Username).eq(username.to_lowercase()))
        .one(db)
        .await?)
}

/// The user a login names: by username or by email, either in any case.
async fn find_by_login(db: &impl ConnectionTrait, login: &str) -> AppResult<Option<user::Model>> {
    let login = login.trim().to_lowercase();
    let column = if login.contains('@') {
        user::Column::Email
    } else {
        user::Column::Username
    };
    Ok(user::Entity::find()
        .filter(lower(column).eq(login))
        .one(db)
        .await?)
}

/// Creates the account and its first session. The password is hashed before
/// the transaction begins: no connection waits on bcrypt.
pub async fn register(
    db: &DatabaseConnection,
    passwords: &Passwords,
    keys: &Keys,
    input: Registration,
) -> AppResult<(user::Model, Session)> {
    validate_username(&input.username)?;
    let email = input.email.trim().to_owned();
    validate_email(&email)?;
    Passwords::validate(&input.password)?;
    let display_name = input.display_name.filter(|s| !s.trim().is_empty());
    if let Some(name) = &display_name {
        validate_display_name(name)?;
    }
    let password_hash = passwords.hash(&input.password).await?;
    let txn = db.begin().await?;
    if find_by_username(&txn, &input.username).await?.is_some() {
        return Err(AppError::Conflict("that username is taken".into()));
    }
    let email_taken = user::Entity::find()
        .filter(lower(user::Column::Email).eq(email.to_lowercase()))
        .one(&txn)
        .await?
        .is_some();
    if email_taken {
        return Err(AppError::Conflict(
            "that email address is already registered".into(),
        ));
    }
    let now = now();
    let model = user::ActiveModel {
        id: Set(new_id()),
        username: Set(input.username),
        display_name: Set(display_name),
        avatar_url: Set(None),
        email: Set(email),
        password_hash: Set(password_hash),
        is_private: Set(false),
        is_official: Set(false),
        identity_key: Set(None),
        created_at: Set(now),
        updated_at: Set(now),
        dm_seq: Set(0),
    };
    // A concurrent registration of the same name loses on the unique index: CONFLICT.
    let user = model.insert(&txn).await?;
    let session = sessions::issue(&txn, keys, user.id, new_id()).await?;
    txn.commit().await?;
    Ok((user, session))
}

/// The user whose credentials these are. Unknown login and wrong password
/// fail alike, in about the same time, and count alike toward the limit.
pub async fn authenticate(
    db: &DatabaseConnection,
    passwords: &Passwords,
    limiter: &LoginLimiter,
    login: &str,
    password: &str,
) -> AppResult<user::Model> {
    limiter.reserve(login)?;
    let user = find_by_login(db, login).await?;
    let ok = passwords
        .verify(password, user.as_ref().map(|u| u.password_hash.as_str()))
        .await?;
    match user {
        Some(user) if ok => {
            limiter.record_success(login);
            Ok(user)
        }
        _ => Err(AppError::Unauthenticated("wrong login or password".into())),
    }
}

pub async fn update_profile(
    db: &DatabaseConnection,
    user_id: Uuid,
    changes: ProfileChanges,
) -> AppResult<user::Model> {
    if let Some(Some(name)) = &changes.display_name {
        validate_display_name(name)?;
    }
    if let Some(Some(url)) = &changes.avatar_url {
        validate_avatar_url(url)?;
    }
    if let Some(Some(key)) = &changes.identity_key {
        validate_identity_key(key)?;
    }
    let txn = db.begin().await?;
    let current = user::Entity::find_by_id(user_id)
        .one(&txn)
        .await?
        .ok_or_else(|| AppError::Unauthenticated("the signed-in user no longer exists".into()))?;
    let going_public = current.is_private && changes.is_private == Some(false);
    let mut model: user::ActiveModel = current.into();
    if let Some(v) = changes.display_name {
        model.display_name = Set(v);
    }
    if let Some(v) = changes.avatar_url {
        model.avatar_url = Set(v);
    }
    if let Some(v) = changes.is_private {
        model.is_private = Set(v);
    }
    if let Some(v) = changes.identity_key {
        model.identity_key = Set(v);
    }
    model.updated_at = Set(now());
    let updated = model.update(&txn).await?;
    if going_public {
        crate::service::follows::accept_all_pending(&txn, user_id).await?;
    }
    txn.commit().await?;
    Ok(updated)
}

/// Sets or clears the verified badge. Only the admin CLI calls this.
pub async fn set_official(
    db: &DatabaseConnection,
    username: &str,
    official: bool,
) -> AppResult<user::Model> {
    let user = find_by_username(db, username)
        .await?
        .ok_or_else(|| AppError::NotFound(format!("no user named {username}")))?;
    let mut model: user::ActiveModel = user.into();
    model.is_official = Set(official);
    model.updated_at = Set(now());
    Ok(model.update(db).await?)
}

/// `text` as a LIKE prefix pattern, its wildcards (`%`, `_`) and the escape
/// character (`\\`) taken literally.
fn prefix_pattern(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 1);
    for c in text.to_lowercase().chars() {
        if matches!(c, '%' | '_' | '\\') {
            out.push('\\');
        }
        out.push(c);
    }
    out.push('%');
    out
}

/// Users whose username or display name starts with `text` (any case),
/// ordered by (lower(username), id). On PostgreSQL each side of the OR is a
/// range on its text_pattern_ops index (users_username_prefix_idx,
/// users_display_name_prefix_idx), combined by a BitmapOr.
pub fn search_query(text: &str, page: &Page<String>) -> AppResult<Select<user::Entity>> {
    if text.trim().is_empty() {
        return Err(AppError::bad_input("query must not be empty"));
    }
    if char_len(text) > 100 {
        return Err(AppError::bad_input("query must be at most 100 characters"));
    }
    let pattern = prefix_pattern(text);
    let like = |col| Expr::expr(lower(col)).like(LikeExpr::new(pattern.clone()).escape('\\'));
    let select = user::Entity::find().filter(
        Condition::any()
            .add(like(user::Column::Username))
            .add(like(user::Column::DisplayName)),
    );
    Ok(page.apply(
        select,
        lower(user::Column::Username),
        Expr::col((user::Entity, user::Column::Id)),
        SortOrder::Asc,
    ))
}

pub async fn search(
    db: &impl ConnectionTrait,
    text: &str,
    page: &Page<String>,
) -> AppResult<Slice<user::Model>> {
    Ok(page.finish(search_query(text, page)?.all(db).await?))
}

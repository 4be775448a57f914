//! Users, profiles and sessions.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, SimpleObject};
use entity::user;

use crate::{
    error::AppError,
    graphql::{
        ContextExt,
        connection::PageArgs,
        id::{self, NodeType},
        scalars::DateTime,
        social,
    },
    service::{follows::Side, sessions, users},
};

#[derive(Clone)]
pub struct User {
    pub model: Arc<user::Model>,
    /// Shown to the user themself: a sign-in payload, answered before the
    /// request has a viewer, shows the private fields (email).
    shown_to_self: bool,
}

impl User {
    pub fn new(model: user::Model) -> Self {
        Self::from_arc(Arc::new(model))
    }

    pub fn from_arc(model: Arc<user::Model>) -> Self {
        Self {
            model,
            shown_to_self: false,
        }
    }

    /// The user as their own session sees them (sign-in payloads).
    fn shown_to_self(model: Arc<user::Model>) -> Self {
        Self {
            model,
            shown_to_self: true,
        }
    }

    /// Loads a user by id through the request's DataLoader.
    pub async fn load(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Option<Self>> {
        Ok(ctx
            .loaders()
            .users()
            .load_one(id)
            .await?
            .map(Self::from_arc))
    }

    /// A row that must exist (a foreign key points at it).
    pub async fn load_required(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Self> {
        Ok(Self::load(ctx, id)
            .await?
            .ok_or_else(|| AppError::not_found("user not found"))?)
    }
}

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::User, self.model.id)
    }

    async fn username(&self) -> &str {
        &self.model.username
    }

    async fn display_name(&self) -> Option<&str> {
        self.model.display_name.as_deref()
    }

    async fn avatar_url(&self) -> Option<&str> {
        self.model.avatar_url.as_deref()
    }

    /// The user's own address: null for everybody but the user themself.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        (self.shown_to_self || ctx.viewer().map(|v| v.user_id) == Some(self.model.id))
            .then_some(self.model.email.as_str())
    }

    async fn is_private(&self) -> bool {
        self.model.is_private
    }

    async fn is_official(&self) -> bool {
        self.model.is_official
    }

    /// Public identity key for end-to-end encryption (base64), as the user published it.
    async fn identity_key(&self) -> Option<&str> {
        self.model.identity_key.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        self.model.created_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.model.updated_at.into()
    }

    async fn followers_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        social::followers_count(ctx, self.model.id).await
    }

    async fn following_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        social::following_count(ctx, self.model.id).await
    }

    /// The viewer's follow of this user; null when there is none or the viewer is anonymous.
    async fn viewer_follow_status(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<social::FollowStatus>> {
        social::viewer_follow_status(ctx, self.model.id).await
    }

    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::UserConnection> {
        let args = PageArgs::new(first, after, last, before);
        social::user_connections(ctx, &self.model, Side::Followers, args).await
    }

    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn following(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::UserConnection> {
        let args = PageArgs::new(first, after, last, before);
        social::user_connections(ctx, &self.model, Side::Following, args).await
    }

    /// Newest first. Empty where the viewer may not see this user's posts.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, last, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::PostConnection> {
        let args = PageArgs::new(first, after, last, before);
        social::user_posts(ctx, &self.model, args).await
    }
}

#[derive(SimpleObject)]
pub struct AuthPayload {
    access_token: String,
    access_token_expires_at: DateTime,
    refresh_token: String,
    refresh_token_expires_at: DateTime,
    user: User,
}

impl AuthPayload {
    fn new(session: sessions::Session, user: User) -> Self {
        Self {
            access_token: session.access_token,
            access_token_expires_at: session.access_token_expires_at.into(),
            refresh_token: session.refresh_token,
            refresh_token_expires_at: session.refresh_token_expires_at.into(),
            user,
        }
    }
}

#[derive(InputObject)]
pub struct RegisterInput {
    username: String,
    email: String,
    password: String,
    display_name: Option<String>,
}

#[derive(InputObject)]
pub struct LoginInput {
    /// Username or email.
    login: String,
    password: String,
}

/// Fields left out stay as they are; an explicit null clears a nullable field.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    display_name: MaybeUndefined<String>,
    avatar_url: MaybeUndefined<String>,
    is_private: MaybeUndefined<bool>,
    identity_key: MaybeUndefined<String>,
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user; null when anonymous.
    async fn me(&self, ctx: &Context<'_>) -> async_graphql::Result<Option<User>> {
        match ctx.viewer() {
            Some(viewer) => User::load(ctx, viewer.user_id).await,
            None => Ok(None),
        }
    }

    async fn user(
        &self,
        ctx: &Context<'_>,
        username: String,
    ) -> async_graphql::Result<Option<User>> {
        let found = users::find_by_username(ctx.db(), &username).await?;
        Ok(found.map(User::new))
    }
}

#[derive(Default)]
pub struct AuthMutation;

#[Object]
impl AuthMutation {
    async fn register(
        &self,
        ctx: &Context<'_>,
        input: RegisterInput,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.state();
        state.rate_limits.register(ctx.client_ip())?;
        let registration = users::Registration {
            username: input.username,
            email: input.email,
            password: input.password,
            display_name: input.display_name,
        };
        let (user, session) =
            users::register(&state.db, &state.passwords, &state.keys, registration).await?;
        Ok(AuthPayload::new(
            session,
            User::shown_to_self(Arc::new(user)),
        ))
    }

    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.state();
        state.rate_limits.sign_in(ctx.client_ip())?;
        let user = users::authenticate(
            &state.db,
            &state.passwords,
            &state.login_limiter,
            &input.login,
            &input.password,
        )
        .await?;
        let session = sessions::start(&state.db, &state.keys, user.id).await?;
        Ok(AuthPayload::new(
            session,
            User::shown_to_self(Arc::new(user)),
        ))
    }

    /// Rotates the refresh token: the one given is spent.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.state();
        let broker = state.broker.as_ref();
        let session = sessions::refresh(&state.db, broker, &state.keys, &refresh_token).await?;
        let user = User::load_required(ctx, session.user_id).await?;
        Ok(AuthPayload::new(session, User::shown_to_self(user.model)))
    }

    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<bool> {
        let state = ctx.state();
        sessions::logout(&state.db, state.broker.as_ref(), &refresh_token).await?;
        Ok(true)
    }
}

#[derive(Default)]
pub struct ProfileMutation;

#[Object]
impl ProfileMutation {
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        input: UpdateProfileInput,
    ) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer()?;
        let is_private = match input.is_private {
            MaybeUndefined::Null => {
                return Err(AppError::bad_input("isPrivate cannot be null").into());
            }
            other => Option::<Option<bool>>::from(other).flatten(),
        };
        let changes = users::ProfileChanges {
            display_name: input.display_name.into(),
            avatar_url: input.avatar_url.into(),
            is_private,
            identity_key: input.identity_key.into(),
        };
        let user = users::update_profile(ctx.db(), viewer.user_id, changes).await?;
        Ok(User::new(user))
    }
}

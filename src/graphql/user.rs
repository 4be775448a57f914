//! Users, profiles and sessions.

use std::sync::Arc;

use async_graphql::{Context, ID, InputObject, MaybeUndefined, Object, ResultExt, SimpleObject};
use entity::user;
use sea_orm::TransactionTrait;

use crate::{
    error::AppError,
    graphql::{
        ContextExt,
        context::NodeInterface,
        direct::DirectMessage,
        id::{self, NodeType},
        loaders::gql_err,
        room::{Message, Room},
        scalars::DateTime,
        social,
    },
    service::{self, follows::Side, sessions, users},
};

#[derive(Clone)]
pub struct User(pub Arc<user::Model>, bool);

impl User {
    pub fn new(model: user::Model) -> Self {
        Self(Arc::new(model), false)
    }

    pub fn from_arc(model: Arc<user::Model>) -> Self {
        Self(model, false)
    }

    /// The user as their own session sees them (sign-in payloads), before any viewer exists.
    fn as_self(model: user::Model) -> Self {
        Self(Arc::new(model), true)
    }

    /// Loads a user by id through the request's DataLoader.
    pub async fn load(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Option<Self>> {
        Ok(ctx
            .loaders()
            .users
            .load_one(id)
            .await
            .map_err(gql_err)?
            .map(Self::from_arc))
    }

    /// A row that must exist (a foreign key points at it).
    pub async fn load_required(ctx: &Context<'_>, id: uuid::Uuid) -> async_graphql::Result<Self> {
        Self::load(ctx, id)
            .await?
            .ok_or_else(|| AppError::NotFound("user not found".into()))
            .extend()
    }
}

#[Object]
impl User {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::User, self.0.id)
    }

    async fn username(&self) -> &str {
        &self.0.username
    }

    async fn display_name(&self) -> Option<&str> {
        self.0.display_name.as_deref()
    }

    async fn avatar_url(&self) -> Option<&str> {
        self.0.avatar_url.as_deref()
    }

    /// The user's own address: null for everybody but the user themself.
    async fn email(&self, ctx: &Context<'_>) -> Option<&str> {
        (self.1 || ctx.viewer().map(|v| v.user_id) == Some(self.0.id))
            .then_some(self.0.email.as_str())
    }

    async fn is_private(&self) -> bool {
        self.0.is_private
    }

    async fn is_official(&self) -> bool {
        self.0.is_official
    }

    /// Public identity key for end-to-end encryption (base64), as the user published it.
    async fn identity_key(&self) -> Option<&str> {
        self.0.identity_key.as_deref()
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }

    async fn updated_at(&self) -> DateTime {
        self.0.updated_at.into()
    }

    async fn followers_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        social::followers_count(ctx, self.0.id).await
    }

    async fn following_count(&self, ctx: &Context<'_>) -> async_graphql::Result<i32> {
        social::following_count(ctx, self.0.id).await
    }

    /// The viewer's follow of this user; null when there is none or the viewer is anonymous.
    async fn viewer_follow_status(
        &self,
        ctx: &Context<'_>,
    ) -> async_graphql::Result<Option<social::FollowStatus>> {
        social::viewer_follow_status(ctx, self.0.id).await
    }

    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::UserConnection> {
        social::user_connections(ctx, &self.0, Side::Followers, (first, after, last, before)).await
    }

    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn following(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::UserConnection> {
        social::user_connections(ctx, &self.0, Side::Following, (first, after, last, before)).await
    }

    /// Newest first. Empty where the viewer may not see this user's posts.
    #[graphql(complexity = "crate::graphql::page_cost(first, last, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> async_graphql::Result<social::PostConnection> {
        social::user_posts(ctx, &self.0, (first, after, last, before)).await
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

fn change<T>(value: MaybeUndefined<T>) -> Option<Option<T>> {
    match value {
        MaybeUndefined::Undefined => None,
        MaybeUndefined::Null => Some(None),
        MaybeUndefined::Value(v) => Some(Some(v)),
    }
}

#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    async fn node(
        &self,
        ctx: &Context<'_>,
        id: ID,
    ) -> async_graphql::Result<Option<NodeInterface>> {
        let (kind, uuid) = id::decode_any(&id).extend()?;
        Ok(match kind {
            NodeType::User => User::load(ctx, uuid).await?.map(NodeInterface::User),
            NodeType::Room => Room::load(ctx, uuid).await?.map(NodeInterface::Room),
            NodeType::Message => Message::load_visible(ctx, uuid)
                .await?
                .map(NodeInterface::Message),
            NodeType::DirectMessage => DirectMessage::load_visible(ctx, uuid)
                .await?
                .map(NodeInterface::DirectMessage),
            NodeType::Post => social::post_node(ctx, uuid).await?.map(NodeInterface::Post),
        })
    }

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
        Ok(users::find_by_username(ctx.db(), &username)
            .await
            .extend()?
            .map(User::new))
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
        let run = async {
            let txn = state.db.begin().await?;
            let user = users::register(
                &txn,
                &state.passwords,
                users::Registration {
                    username: input.username,
                    email: input.email,
                    password: input.password,
                    display_name: input.display_name,
                },
            )
            .await?;
            let session = sessions::issue(&txn, &state.keys, user.id, service::new_id()).await?;
            txn.commit().await?;
            Ok::<_, AppError>(AuthPayload::new(session, User::as_self(user)))
        };
        run.await.extend()
    }

    async fn login(
        &self,
        ctx: &Context<'_>,
        input: LoginInput,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.state();
        let run = async {
            let user = users::authenticate(
                &state.db,
                &state.passwords,
                &state.login_limiter,
                &input.login,
                &input.password,
            )
            .await?;
            let session = sessions::start(&state.db, &state.keys, user.id).await?;
            Ok::<_, AppError>(AuthPayload::new(session, User::as_self(user)))
        };
        run.await.extend()
    }

    /// Rotates the refresh token: the one given is spent.
    async fn refresh_session(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<AuthPayload> {
        let state = ctx.state();
        let session = sessions::refresh(&state.db, &state.keys, &refresh_token)
            .await
            .extend()?;
        let user = User::load_required(ctx, session.user_id).await?;
        Ok(AuthPayload::new(session, User(user.0, true)))
    }

    async fn logout(
        &self,
        ctx: &Context<'_>,
        refresh_token: String,
    ) -> async_graphql::Result<bool> {
        sessions::logout(ctx.db(), &refresh_token).await.extend()?;
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
        let viewer = ctx.require_viewer().extend()?;
        let is_private = match input.is_private {
            MaybeUndefined::Null => {
                return Err(AppError::bad_input("isPrivate cannot be null")).extend();
            }
            other => change(other).flatten(),
        };
        let changes = users::ProfileChanges {
            display_name: change(input.display_name),
            avatar_url: change(input.avatar_url),
            is_private,
            identity_key: change(input.identity_key),
        };
        let user = users::update_profile(ctx.db(), viewer.user_id, changes)
            .await
            .extend()?;
        Ok(User::new(user))
    }
}

//! Follows, posts, feeds, nearby beacons and user search. Resolvers only
//! parse arguments and call `service::{follows, posts, users}`; every
//! visibility decision is made there.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime as ChronoDateTime, Utc};
use entity::{follow, post, user};
use uuid::Uuid;

use crate::{
    connection,
    graphql::{
        ContextExt,
        connection::PageArgs,
        id::{self, ListKind, NodeType},
        scalars::DateTime,
        user::User,
    },
    service::{
        follows::{self, Side},
        page::Slice,
        posts, users,
    },
};

connection!(UserConnection, UserEdge, User);
connection!(PostConnection, PostEdge, Post);
connection!(
    /// Nearest first.
    NearbyPostConnection,
    NearbyPostEdge,
    Post,
    { distance_meters: f64 }
);

fn follow_edges(
    list: ListKind,
    slice: Slice<(ChronoDateTime<Utc>, user::Model)>,
) -> UserConnection {
    UserConnection::new(slice, |(at, u)| UserEdge {
        cursor: id::encode_cursor(list, &at, u.id),
        node: User::new(u),
    })
}

fn post_edges(list: ListKind, slice: Slice<post::Model>) -> PostConnection {
    PostConnection::new(slice, |p| PostEdge {
        cursor: id::encode_cursor(list, &p.created_at, p.id),
        node: Post::new(p),
    })
}

#[derive(Enum, Copy, Clone, Debug, PartialEq, Eq)]
pub enum FollowStatus {
    Pending,
    Accepted,
}

impl From<follow::FollowStatus> for FollowStatus {
    fn from(s: follow::FollowStatus) -> Self {
        match s {
            follow::FollowStatus::Pending => Self::Pending,
            follow::FollowStatus::Accepted => Self::Accepted,
        }
    }
}

// What `User` (graphql/user.rs) resolves through here.

fn count(n: Option<i64>) -> i32 {
    i32::try_from(n.unwrap_or(0)).unwrap_or(i32::MAX)
}

pub async fn followers_count(ctx: &Context<'_>, user: Uuid) -> async_graphql::Result<i32> {
    Ok(count(ctx.loaders().followers_count().load_one(user).await?))
}

pub async fn following_count(ctx: &Context<'_>, user: Uuid) -> async_graphql::Result<i32> {
    Ok(count(ctx.loaders().following_count().load_one(user).await?))
}

pub async fn viewer_follow_status(
    ctx: &Context<'_>,
    user: Uuid,
) -> async_graphql::Result<Option<FollowStatus>> {
    let status = ctx.loaders().viewer_follow_status().load_one(user).await?;
    Ok(status.map(Into::into))
}

/// `User.followers` / `User.following`: empty where the viewer may not see them.
pub async fn user_connections(
    ctx: &Context<'_>,
    owner: &user::Model,
    side: Side,
    args: PageArgs,
) -> async_graphql::Result<UserConnection> {
    let list = match side {
        Side::Followers => ListKind::Followers,
        Side::Following => ListKind::Following,
    };
    let page = args.page(list)?;
    let viewer = ctx.viewer().map(|v| v.user_id);
    let slice = follows::connections(ctx.db(), viewer, owner, side, &page).await?;
    Ok(follow_edges(list, slice))
}

/// `User.posts`: newest first, empty where the viewer may not see them.
pub async fn user_posts(
    ctx: &Context<'_>,
    author: &user::Model,
    args: PageArgs,
) -> async_graphql::Result<PostConnection> {
    let page = args.page(ListKind::Posts)?;
    let viewer = ctx.viewer().map(|v| v.user_id);
    let slice = posts::by_author(ctx.db(), viewer, author, &page).await?;
    Ok(post_edges(ListKind::Posts, slice))
}

#[derive(Clone)]
pub struct Post(pub Arc<post::Model>);

impl Post {
    pub fn new(model: post::Model) -> Self {
        Self(Arc::new(model))
    }

    /// A post, where the viewer may see it (`node(id:)`).
    pub async fn load_visible(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Self>> {
        let viewer = ctx.viewer().map(|v| v.user_id);
        let post = posts::find_visible(ctx.db(), viewer, id).await?;
        Ok(post.map(Self::new))
    }
}

#[Object]
impl Post {
    pub async fn id(&self) -> ID {
        id::encode(NodeType::Post, self.0.id)
    }

    async fn author(&self, ctx: &Context<'_>) -> async_graphql::Result<User> {
        User::load_required(ctx, self.0.author_id).await
    }

    async fn content(&self) -> &str {
        &self.0.content
    }

    /// Length of the post's video; null for posts without one.
    async fn duration_ms(&self) -> Option<i64> {
        self.0.duration_ms
    }

    async fn is_beacon(&self) -> bool {
        self.0.is_beacon
    }

    /// Where a beacon was posted; null unless isBeacon.
    async fn location(&self) -> Option<GeoPoint> {
        match (self.0.is_beacon, self.0.latitude, self.0.longitude) {
            (true, Some(latitude), Some(longitude)) => Some(GeoPoint {
                latitude,
                longitude,
            }),
            _ => None,
        }
    }

    async fn created_at(&self) -> DateTime {
        self.0.created_at.into()
    }
}

#[derive(SimpleObject)]
pub struct GeoPoint {
    latitude: f64,
    longitude: f64,
}

#[derive(InputObject)]
pub struct GeoPointInput {
    latitude: f64,
    longitude: f64,
}

#[derive(InputObject)]
pub struct CreatePostInput {
    content: String,
    duration_ms: Option<i32>,
    /// Makes the post a beacon at this place.
    beacon: Option<GeoPointInput>,
}

#[derive(Default)]
pub struct SocialQuery;

#[Object]
impl SocialQuery {
    /// Users whose username or display name starts with `query` (case-insensitive).
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn search_users(
        &self,
        ctx: &Context<'_>,
        query: String,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let page = PageArgs::forward(first, after).page::<String>(ListKind::Search)?;
        let slice = users::search(ctx.db(), &query, &page).await?;
        Ok(UserConnection::new(slice, |u| UserEdge {
            cursor: id::encode_cursor(ListKind::Search, &u.username.to_lowercase(), u.id),
            node: User::new(u),
        }))
    }

    /// Pending follow requests to the viewer, oldest first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn follow_requests(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let viewer = ctx.require_viewer()?;
        let page = PageArgs::forward(first, after).page(ListKind::FollowRequests)?;
        let slice = follows::requests(ctx.db(), viewer.user_id, &page).await?;
        Ok(follow_edges(ListKind::FollowRequests, slice))
    }

    /// Posts by the viewer and by users the viewer follows (accepted), newest first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let viewer = ctx.require_viewer()?;
        let page = PageArgs::forward(first, after).page(ListKind::Feed)?;
        let slice = posts::feed(ctx.db(), viewer.user_id, &page).await?;
        Ok(post_edges(ListKind::Feed, slice))
    }

    /// Posts by public users, newest first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn explore(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let page = PageArgs::forward(first, after).page(ListKind::Explore)?;
        let slice = posts::explore(ctx.db(), &page).await?;
        Ok(post_edges(ListKind::Explore, slice))
    }

    /// Beacons within radiusMeters of a point that the viewer may see, nearest first.
    #[graphql(complexity = "crate::graphql::connection::page_cost(first, None, child_complexity)")]
    async fn nearby_beacons(
        &self,
        ctx: &Context<'_>,
        latitude: f64,
        longitude: f64,
        radius_meters: f64,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<NearbyPostConnection> {
        let around = posts::Around::new(latitude, longitude, radius_meters)?;
        let page = PageArgs::forward(first, after).page::<f64>(ListKind::Nearby)?;
        let viewer = ctx.viewer().map(|v| v.user_id);
        let slice = posts::nearby(ctx.db(), viewer, around, &page).await?;
        Ok(NearbyPostConnection::new(slice, |(p, distance)| {
            NearbyPostEdge {
                cursor: id::encode_cursor(ListKind::Nearby, &distance, p.id),
                distance_meters: distance,
                node: Post::new(p),
            }
        }))
    }
}

#[derive(Default)]
pub struct SocialMutation;

#[Object]
impl SocialMutation {
    /// Returns the followed user; its viewerFollowStatus says PENDING or ACCEPTED.
    async fn follow_user(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer()?;
        let target = id::decode(&user_id, NodeType::User)?;
        Ok(User::new(
            follows::follow(ctx.db(), viewer.user_id, target).await?,
        ))
    }

    async fn unfollow_user(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer()?;
        let target = id::decode(&user_id, NodeType::User)?;
        Ok(User::new(
            follows::unfollow(ctx.db(), viewer.user_id, target).await?,
        ))
    }

    async fn accept_follow_request(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer()?;
        let requester = id::decode(&user_id, NodeType::User)?;
        Ok(User::new(
            follows::accept(ctx.db(), viewer.user_id, requester).await?,
        ))
    }

    async fn reject_follow_request(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer()?;
        let requester = id::decode(&user_id, NodeType::User)?;
        Ok(User::new(
            follows::reject(ctx.db(), viewer.user_id, requester).await?,
        ))
    }

    async fn create_post(
        &self,
        ctx: &Context<'_>,
        input: CreatePostInput,
    ) -> async_graphql::Result<Post> {
        let viewer = ctx.require_viewer()?;
        let new = posts::NewPost {
            content: input.content,
            duration_ms: input.duration_ms.map(i64::from),
            beacon: input.beacon.map(|b| (b.latitude, b.longitude)),
        };
        Ok(Post::new(
            posts::create(ctx.db(), viewer.user_id, new).await?,
        ))
    }

    /// Deletes one of the viewer's posts; returns its id.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let viewer = ctx.require_viewer()?;
        let post_id = id::decode(&id, NodeType::Post)?;
        posts::delete(ctx.db(), viewer.user_id, post_id).await?;
        Ok(id::encode(NodeType::Post, post_id))
    }
}

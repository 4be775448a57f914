//! Follows, posts, feeds, nearby beacons and user search. Resolvers only
//! parse arguments and call `service::{follows, posts, users}`; every
//! visibility decision is made there.

use std::sync::Arc;

use async_graphql::{Context, Enum, ID, InputObject, Object, ResultExt, SimpleObject};
use chrono::{DateTime as ChronoDateTime, Utc};
use entity::{follow, post, user};
use uuid::Uuid;

use crate::{
    connection,
    error::AppResult,
    graphql::{
        ContextExt, PageInfo,
        id::{self, CursorKey, ListKind, NodeType},
        loaders::gql_err,
        scalars::DateTime,
        user::User,
    },
    service::{
        follows::{self, Side},
        page::{Page, Slice},
        posts, users,
    },
};

connection!(UserConnection, UserEdge, User);
connection!(PostConnection, PostEdge, Post);

/// Decodes the Relay arguments of `list` into a page.
fn page<K: CursorKey>(
    list: ListKind,
    first: Option<i32>,
    last: Option<i32>,
    after: Option<String>,
    before: Option<String>,
) -> AppResult<Page<K>> {
    let after = after.map(|c| id::decode_cursor(list, &c)).transpose()?;
    let before = before.map(|c| id::decode_cursor(list, &c)).transpose()?;
    Page::new(first, last, after, before)
}

fn follow_edges(
    list: ListKind,
    slice: Slice<(ChronoDateTime<Utc>, user::Model)>,
) -> UserConnection {
    UserConnection::new(slice, |(at, u)| {
        (id::encode_cursor(list, &at, u.id), User::new(u))
    })
}

fn post_edges(list: ListKind, slice: Slice<post::Model>) -> PostConnection {
    PostConnection::new(slice, |p| {
        (id::encode_cursor(list, &p.created_at, p.id), Post::new(p))
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
    Ok(count(
        ctx.loaders()
            .followers_count
            .load_one(user)
            .await
            .map_err(gql_err)?,
    ))
}

pub async fn following_count(ctx: &Context<'_>, user: Uuid) -> async_graphql::Result<i32> {
    Ok(count(
        ctx.loaders()
            .following_count
            .load_one(user)
            .await
            .map_err(gql_err)?,
    ))
}

pub async fn viewer_follow_status(
    ctx: &Context<'_>,
    user: Uuid,
) -> async_graphql::Result<Option<FollowStatus>> {
    let status = ctx
        .loaders()
        .viewer_follow_status
        .load_one(user)
        .await
        .map_err(gql_err)?;
    Ok(status.map(Into::into))
}

/// `User.followers` / `User.following`: empty where the viewer may not see them.
pub async fn user_connections(
    ctx: &Context<'_>,
    owner: &user::Model,
    side: Side,
    args: (Option<i32>, Option<String>, Option<i32>, Option<String>),
) -> async_graphql::Result<UserConnection> {
    let (first, after, last, before) = args;
    let list = match side {
        Side::Followers => ListKind::Followers,
        Side::Following => ListKind::Following,
    };
    let page = page(list, first, last, after, before).extend()?;
    let slice = follows::connections(
        ctx.db(),
        ctx.viewer().map(|v| v.user_id),
        owner,
        side,
        &page,
    )
    .await
    .extend()?;
    Ok(follow_edges(list, slice))
}

/// `User.posts`: newest first, empty where the viewer may not see them.
pub async fn user_posts(
    ctx: &Context<'_>,
    author: &user::Model,
    args: (Option<i32>, Option<String>, Option<i32>, Option<String>),
) -> async_graphql::Result<PostConnection> {
    let (first, after, last, before) = args;
    let page = page(ListKind::Posts, first, last, after, before).extend()?;
    let slice = posts::by_author(ctx.db(), ctx.viewer().map(|v| v.user_id), author, &page)
        .await
        .extend()?;
    Ok(post_edges(ListKind::Posts, slice))
}

/// `node(id:)` for a post: null when missing or hidden from the viewer.
pub async fn post_node(ctx: &Context<'_>, id: Uuid) -> async_graphql::Result<Option<Post>> {
    let post = posts::find_visible(ctx.db(), ctx.viewer().map(|v| v.user_id), id)
        .await
        .extend()?;
    Ok(post.map(Post::new))
}

#[derive(Clone)]
pub struct Post(pub Arc<post::Model>);

impl Post {
    pub fn new(model: post::Model) -> Self {
        Self(Arc::new(model))
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

/// Nearest first.
#[derive(SimpleObject)]
pub struct NearbyPostEdge {
    cursor: String,
    distance_meters: f64,
    node: Post,
}

#[derive(SimpleObject)]
pub struct NearbyPostConnection {
    edges: Vec<NearbyPostEdge>,
    page_info: PageInfo,
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
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn search_users(
        &self,
        ctx: &Context<'_>,
        query: String,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let page = page::<String>(ListKind::Search, first, None, after, None).extend()?;
        let slice = users::search(ctx.db(), &query, &page).await.extend()?;
        Ok(UserConnection::new(slice, |u| {
            (
                id::encode_cursor(ListKind::Search, &u.username.to_lowercase(), u.id),
                User::new(u),
            )
        }))
    }

    /// Pending follow requests to the viewer, oldest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn follow_requests(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<UserConnection> {
        let viewer = ctx.require_viewer().extend()?;
        let page = page(ListKind::FollowRequests, first, None, after, None).extend()?;
        let slice = follows::requests(ctx.db(), viewer.user_id, &page)
            .await
            .extend()?;
        Ok(follow_edges(ListKind::FollowRequests, slice))
    }

    /// Posts by the viewer and by users the viewer follows (accepted), newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn feed(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let viewer = ctx.require_viewer().extend()?;
        let page = page(ListKind::Feed, first, None, after, None).extend()?;
        let slice = posts::feed(ctx.db(), viewer.user_id, &page)
            .await
            .extend()?;
        Ok(post_edges(ListKind::Feed, slice))
    }

    /// Posts by public users, newest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn explore(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<PostConnection> {
        let page = page(ListKind::Explore, first, None, after, None).extend()?;
        let slice = posts::explore(ctx.db(), &page).await.extend()?;
        Ok(post_edges(ListKind::Explore, slice))
    }

    /// Beacons within radiusMeters of a point that the viewer may see, nearest first.
    #[graphql(complexity = "crate::graphql::page_cost(first, None, child_complexity)")]
    async fn nearby_beacons(
        &self,
        ctx: &Context<'_>,
        latitude: f64,
        longitude: f64,
        radius_meters: f64,
        first: Option<i32>,
        after: Option<String>,
    ) -> async_graphql::Result<NearbyPostConnection> {
        let around = posts::Around::new(latitude, longitude, radius_meters).extend()?;
        let page = page::<f64>(ListKind::Nearby, first, None, after, None).extend()?;
        let slice = posts::nearby(ctx.db(), ctx.viewer().map(|v| v.user_id), around, &page)
            .await
            .extend()?;
        let edges: Vec<NearbyPostEdge> = slice
            .items
            .into_iter()
            .map(|(p, distance)| NearbyPostEdge {
                cursor: id::encode_cursor(ListKind::Nearby, &distance, p.id),
                distance_meters: distance,
                node: Post::new(p),
            })
            .collect();
        let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
        Ok(NearbyPostConnection {
            edges,
            page_info: PageInfo::new(slice.has_next_page, slice.has_previous_page, &cursors),
        })
    }
}

#[derive(Default)]
pub struct SocialMutation;

#[Object]
impl SocialMutation {
    /// Returns the followed user; its viewerFollowStatus says PENDING or ACCEPTED.
    async fn follow_user(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer().extend()?;
        let target = id::decode(&user_id, NodeType::User).extend()?;
        Ok(User::new(
            follows::follow(ctx.db(), viewer.user_id, target)
                .await
                .extend()?,
        ))
    }

    async fn unfollow_user(&self, ctx: &Context<'_>, user_id: ID) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer().extend()?;
        let target = id::decode(&user_id, NodeType::User).extend()?;
        Ok(User::new(
            follows::unfollow(ctx.db(), viewer.user_id, target)
                .await
                .extend()?,
        ))
    }

    async fn accept_follow_request(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer().extend()?;
        let requester = id::decode(&user_id, NodeType::User).extend()?;
        Ok(User::new(
            follows::accept(ctx.db(), viewer.user_id, requester)
                .await
                .extend()?,
        ))
    }

    async fn reject_follow_request(
        &self,
        ctx: &Context<'_>,
        user_id: ID,
    ) -> async_graphql::Result<User> {
        let viewer = ctx.require_viewer().extend()?;
        let requester = id::decode(&user_id, NodeType::User).extend()?;
        Ok(User::new(
            follows::reject(ctx.db(), viewer.user_id, requester)
                .await
                .extend()?,
        ))
    }

    async fn create_post(
        &self,
        ctx: &Context<'_>,
        input: CreatePostInput,
    ) -> async_graphql::Result<Post> {
        let viewer = ctx.require_viewer().extend()?;
        let new = posts::NewPost {
            content: input.content,
            duration_ms: input.duration_ms.map(i64::from),
            beacon: input.beacon.map(|b| (b.latitude, b.longitude)),
        };
        Ok(Post::new(
            posts::create(ctx.db(), viewer.user_id, new)
                .await
                .extend()?,
        ))
    }

    /// Deletes one of the viewer's posts; returns its id.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> async_graphql::Result<ID> {
        let viewer = ctx.require_viewer().extend()?;
        let post_id = id::decode(&id, NodeType::Post).extend()?;
        posts::delete(ctx.db(), viewer.user_id, post_id)
            .await
            .extend()?;
        Ok(id::encode(NodeType::Post, post_id))
    }
}

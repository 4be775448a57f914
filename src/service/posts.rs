//! Posts, the feed, explore and nearby beacons. Every list passes through the
//! one visibility rule (`service::visibility`).

use chrono::{DateTime, Utc};
use entity::{post, user};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, EntityTrait, FromQueryResult,
    QueryFilter, QuerySelect, Select, Set,
    sea_query::{Condition, Expr, ExprTrait},
};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    service::{
        geo, new_id, now,
        page::{Page, Slice, SortOrder},
        validate_content, visibility,
    },
};

pub const MAX_NEARBY_RADIUS_M: f64 = 50_000.0;

pub struct NewPost {
    pub content: String,
    pub duration_ms: Option<i64>,
    /// (latitude, longitude) of a beacon.
    pub beacon: Option<(f64, f64)>,
}

fn validate_point(lat: f64, lon: f64) -> AppResult<()> {
    if !(-90.0..=90.0).contains(&lat) || !(-180.0..=180.0).contains(&lon) {
        return Err(AppError::bad_input(
            "latitude must be in [-90, 90] and longitude in [-180, 180]",
        ));
    }
    Ok(())
}

pub async fn create(
    db: &impl ConnectionTrait,
    author: Uuid,
    input: NewPost,
) -> AppResult<post::Model> {
    validate_content(&input.content)?;
    if input.duration_ms.is_some_and(|d| d < 0) {
        return Err(AppError::bad_input("durationMs must not be negative"));
    }
    if let Some((lat, lon)) = input.beacon {
        validate_point(lat, lon)?;
    }
    let model = post::ActiveModel {
        id: Set(new_id()),
        author_id: Set(author),
        content: Set(input.content),
        duration_ms: Set(input.duration_ms),
        is_beacon: Set(input.beacon.is_some()),
        latitude: Set(input.beacon.map(|b| b.0)),
        longitude: Set(input.beacon.map(|b| b.1)),
        created_at: Set(now()),
    };
    Ok(model.insert(db).await?)
}

/// Deletes the viewer's own post. A post the viewer may not even see is
/// `NOT_FOUND`, so deleting does not reveal what exists.
pub async fn delete(db: &impl ConnectionTrait, viewer: Uuid, id: Uuid) -> AppResult<Uuid> {
    let not_found = || AppError::NotFound("post not found".into());
    let post = find_visible(db, Some(viewer), id)
        .await?
        .ok_or_else(not_found)?;
    if post.author_id != viewer {
        return Err(AppError::Forbidden(
            "only the author may delete a post".into(),
        ));
    }
    post::Entity::delete_by_id(id).exec(db).await?;
    Ok(id)
}

/// The post, if it exists and the viewer may see its author's posts.
pub async fn find_visible(
    db: &impl ConnectionTrait,
    viewer: Option<Uuid>,
    id: Uuid,
) -> AppResult<Option<post::Model>> {
    let Some(post) = post::Entity::find_by_id(id).one(db).await? else {
        return Ok(None);
    };
    let Some(author) = user::Entity::find_by_id(post.author_id).one(db).await? else {
        return Ok(None);
    };
    Ok(visibility::can_see(db, viewer, &author)
        .await?
        .then_some(post))
}

fn created_at() -> Expr {
    Expr::col((post::Entity, post::Column::CreatedAt))
}

fn post_id() -> Expr {
    Expr::col((post::Entity, post::Column::Id))
}

fn author_id() -> Expr {
    Expr::col((post::Entity, post::Column::AuthorId))
}

/// An author's posts, newest first; empty where the viewer may not see them.
pub async fn by_author(
    db: &impl ConnectionTrait,
    viewer: Option<Uuid>,
    author: &user::Model,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<post::Model>> {
    if !visibility::can_see(db, viewer, author).await? {
        return Ok(page.finish(Vec::new()));
    }
    let select = post::Entity::find().filter(author_id().eq(author.id));
    let rows = page
        .apply(select, created_at(), post_id(), SortOrder::Desc)
        .all(db)
        .await?;
    Ok(page.finish(rows))
}

/// The feed's one query: the viewer's own posts and those of accepted
/// followees (a subquery, not a loop per followee), newest first on
/// (created_at, id). The author set is the visibility rule's viewer and
/// accepted-followee branches.
pub fn feed_query(viewer: Uuid, page: &Page<DateTime<Utc>>) -> Select<post::Entity> {
    let authors = Condition::any()
        .add(author_id().eq(viewer))
        .add(author_id().in_subquery(visibility::accepted_followees(viewer)));
    page.apply(
        post::Entity::find().filter(authors),
        created_at(),
        post_id(),
        SortOrder::Desc,
    )
}

pub async fn feed(
    db: &impl ConnectionTrait,
    viewer: Uuid,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<post::Model>> {
    Ok(page.finish(feed_query(viewer, page).all(db).await?))
}

/// Posts by public users, newest first: the rule's branch open to everyone.
pub fn explore_query(page: &Page<DateTime<Utc>>) -> Select<post::Entity> {
    let select = post::Entity::find().filter(visibility::public_owner(author_id()));
    page.apply(select, created_at(), post_id(), SortOrder::Desc)
}

pub async fn explore(
    db: &impl ConnectionTrait,
    page: &Page<DateTime<Utc>>,
) -> AppResult<Slice<post::Model>> {
    Ok(page.finish(explore_query(page).all(db).await?))
}

/// Where and how far to look for beacons.
#[derive(Clone, Copy, Debug)]
pub struct Around {
    pub latitude: f64,
    pub longitude: f64,
    pub radius_m: f64,
}

impl Around {
    pub fn new(latitude: f64, longitude: f64, radius_m: f64) -> AppResult<Self> {
        validate_point(latitude, longitude)?;
        if !(radius_m > 0.0 && radius_m <= MAX_NEARBY_RADIUS_M) {
            return Err(AppError::bad_input("radiusMeters must be in (0, 50000]"));
        }
        Ok(Self {
            latitude,
            longitude,
            radius_m,
        })
    }
}

#[derive(FromQueryResult)]
struct NearbyRow {
    id: Uuid,
    author_id: Uuid,
    content: String,
    duration_ms: Option<i64>,
    is_beacon: bool,
    latitude: Option<f64>,
    longitude: Option<f64>,
    created_at: DateTime<Utc>,
    distance: f64,
}

impl NearbyRow {
    fn split(self) -> (post::Model, f64) {
        let post = post::Model {
            id: self.id,
            author_id: self.author_id,
            content: self.content,
            duration_ms: self.duration_ms,
            is_beacon: self.is_beacon,
            latitude: self.latitude,
            longitude: self.longitude,
            created_at: self.created_at,
        };
        (post, self.distance)
    }
}

fn visible_beacons(viewer: Option<Uuid>) -> Select<post::Entity> {
    post::Entity::find()
        .filter(post::Column::IsBeacon.eq(true))
        .filter(visibility::visible_owner(author_id(), viewer))
}

/// PostgreSQL: PostGIS on the generated geography column. ST_DWithin uses
/// posts_location_gist_idx; ST_Distance is the spheroid (WGS84) distance,
/// the sort key and the cursor key.
pub fn nearby_query_postgres(
    viewer: Option<Uuid>,
    around: Around,
    page: &Page<f64>,
) -> Select<post::Entity> {
    let point = "ST_SetSRID(ST_MakePoint($1, $2), 4326)::geography";
    let distance = Expr::cust_with_values(
        format!("ST_Distance(posts.location, {point})"),
        [around.longitude, around.latitude],
    );
    let within = Expr::cust_with_values(
        format!("ST_DWithin(posts.location, {point}, $3)"),
        [around.longitude, around.latitude, around.radius_m],
    );
    let select = visible_beacons(viewer)
        .filter(within)
        .column_as(distance.clone(), "distance");
    page.apply(select, distance, post_id(), SortOrder::Asc)
}

/// Beacons within the radius the viewer may see, nearest first, on (distance, id).
pub async fn nearby(
    db: &impl ConnectionTrait,
    viewer: Option<Uuid>,
    around: Around,
    page: &Page<f64>,
) -> AppResult<Slice<(post::Model, f64)>> {
    if db.get_database_backend() == DbBackend::Postgres {
        let rows = nearby_query_postgres(viewer, around, page)
            .into_model::<NearbyRow>()
            .all(db)
            .await?;
        return Ok(page.finish(rows.into_iter().map(NearbyRow::split).collect()));
    }
    // SQLite: the bounding box narrows the candidates on posts_beacon_lat_lon_idx,
    // then the exact ellipsoidal distance decides.
    let bbox = geo::bounding_box(around.latitude, around.longitude, around.radius_m);
    let mut select =
        visible_beacons(viewer).filter(post::Column::Latitude.between(bbox.min_lat, bbox.max_lat));
    if let Some(ranges) = &bbox.lon_ranges {
        let mut any = Condition::any();
        for (lo, hi) in ranges {
            any = any.add(post::Column::Longitude.between(*lo, *hi));
        }
        select = select.filter(any);
    }
    let mut rows: Vec<(post::Model, f64)> = select
        .all(db)
        .await?
        .into_iter()
        .filter_map(|p| {
            let (lat, lon) = (p.latitude?, p.longitude?);
            let d = geo::distance_m(around.latitude, around.longitude, lat, lon);
            (d <= around.radius_m).then_some((p, d))
        })
        .collect();
    rows.sort_by(|a, b| a.1.total_cmp(&b.1).then(a.0.id.cmp(&b.0.id)));
    if let Some(after) = &page.after {
        rows.retain(|(p, d)| (*d, p.id) > (after.key, after.id));
    }
    rows.truncate(usize::try_from(page.limit + 1).unwrap_or(usize::MAX));
    Ok(page.finish(rows))
}

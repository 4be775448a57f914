//! Shared rendering of subscription events.
//!
//! A busy room's subscribers mostly run the same document with the same
//! variables, and each event reaches all of them as the same shared values
//! (the room reader reads a position once per instance). Rendering the
//! selection over those values and serialising the result is then the same
//! work a thousand times; here it is done once per group of identical
//! subscriptions, and every subscriber of the group sends the same bytes.
//!
//! A render is shared only when nothing in it depends on who asks. Every
//! resolver reaches the viewer, the request's DataLoaders (which act as the
//! viewer) and the client's address through `ContextExt`, and while an event
//! is rendered to be shared those calls are recorded (`Track`):
//! - a render that made none is good for every subscriber of the group;
//! - one that only asked "is the viewer among these users?" and was told no
//!   (`viewerHasReacted`, the typing list without oneself) is good for every
//!   subscriber outside those users;
//! - any other use makes it the viewer's own: it is not kept, and the others
//!   render theirs as before.
//!
//! A render with a field error is not kept either (errors are per response).

use std::{
    any::Any,
    borrow::Cow,
    collections::{HashMap, VecDeque},
    sync::{
        Arc, Mutex, Weak,
        atomic::{AtomicUsize, Ordering},
    },
};

use async_graphql::{
    ContextSelectionSet, OutputType, Positioned, Request, Response, ServerResult, Value,
    parser::types::Field, registry::Registry,
};
use uuid::Uuid;

/// How many recent events each group keeps rendered: enough for subscribers
/// a few events apart, while each render keeps its values alive. A group
/// never keeps more than it has other subscribers (a lone subscription keeps
/// none), so kept renders never outnumber subscriptions, however many
/// distinct documents a client opens.
const KEEP: usize = 16;
/// A render larger than this is sent but not kept.
const MAX_KEPT_BYTES: usize = 64 * 1024;

/// A value an event's render is made of, compared by identity.
pub type Part = Arc<dyn Any + Send + Sync>;

/// What a render is made of: values shared by every subscriber the event
/// reaches, compared by address (and kept alive by the render, so an address
/// cannot be reused while it is looked up).
pub struct Identity(Vec<Option<Part>>);

impl Identity {
    pub fn new(parts: Vec<Option<Part>>) -> Self {
        Self(parts)
    }

    fn same(&self, other: &Self) -> bool {
        self.0.len() == other.0.len()
            && self.0.iter().zip(&other.0).all(|(a, b)| match (a, b) {
                (Some(a), Some(b)) => std::ptr::addr_eq(Arc::as_ptr(a), Arc::as_ptr(b)),
                (None, None) => true,
                _ => false,
            })
    }
}

/// An item a subscription yields that may be rendered once for many.
pub trait Shareable {
    /// The shared values its render is made of; None: render it per subscriber.
    fn identity(&self) -> Option<Identity>;
}

/// A subscription's item, rendered through its group when the request takes
/// part in sharing (else exactly as `T`). Same GraphQL type as `T`.
pub struct Shared<T>(pub T);

impl<T: OutputType + Shareable> OutputType for Shared<T> {
    fn type_name() -> Cow<'static, str> {
        T::type_name()
    }

    fn qualified_type_name() -> String {
        T::qualified_type_name()
    }

    fn introspection_type_name(&self) -> Cow<'static, str> {
        self.0.introspection_type_name()
    }

    fn create_type_info(registry: &mut Registry) -> String {
        T::create_type_info(registry)
    }

    async fn resolve(
        &self,
        ctx: &ContextSelectionSet<'_>,
        field: &Positioned<Field>,
    ) -> ServerResult<Value> {
        let sharing = ctx.data_opt::<Arc<Sharing>>();
        let (Some(sharing), Some(identity)) = (sharing, self.0.identity()) else {
            return self.0.resolve(ctx, field).await;
        };
        if let Some(payload) = sharing.group.find(&identity, sharing.viewer) {
            // The transport sends this payload in place of the response.
            *lock(&sharing.payload) = Some(payload);
            return Ok(Value::Null);
        }
        let errors_before = ctx.query_env.errors.lock().map_or(0, |e| e.len());
        sharing.begin();
        let value = self.0.resolve(ctx, field).await;
        let track = sharing.end();
        let errors_after = ctx.query_env.errors.lock().map_or(1, |e| e.len());
        let others = Arc::strong_count(&sharing.group).saturating_sub(1);
        if let (Ok(value), Some(outside)) = (&value, track.outside())
            && errors_after == errors_before
            && others > 0
        {
            let alias = field.node.response_key().node.as_str();
            if let Some(payload) = payload_of(alias, value) {
                sharing.group.keep(identity, payload, outside, others);
            }
        }
        value
    }
}

/// `{"data":{alias:value}}`: the response a subscription's event makes.
fn payload_of(alias: &str, value: &Value) -> Option<Arc<str>> {
    let alias = serde_json::to_string(alias).ok()?;
    let value = serde_json::to_string(value).ok()?;
    Some(format!(r#"{{"data":{{{alias}:{value}}}}}"#).into())
}

/// What a render used of the viewer (recorded only while rendering to share).
#[derive(Debug, Default)]
enum Track {
    /// Not rendering to share: nothing is recorded.
    #[default]
    Off,
    /// Nothing so far.
    Clean,
    /// Only asked whether the viewer is among these users, and was told no.
    Outside(Vec<Uuid>),
    /// Used the viewer, or something that acts as the viewer.
    Own,
}

impl Track {
    /// The users the render's readers must not be among; None: not shareable.
    fn outside(self) -> Option<Box<[Uuid]>> {
        match self {
            Self::Clean => Some(Box::default()),
            Self::Outside(users) => Some(users.into()),
            Self::Off | Self::Own => None,
        }
    }
}

/// One subscription's part in sharing: its group, what it used of its viewer
/// while rendering, and the shared payload for the transport to send.
pub struct Sharing {
    group: Arc<Group>,
    viewer: Option<Uuid>,
    track: Mutex<Track>,
    payload: Mutex<Option<Arc<str>>>,
}

impl Sharing {
    fn begin(&self) {
        *lock(&self.track) = Track::Clean;
    }

    fn end(&self) -> Track {
        std::mem::take(&mut *lock(&self.track))
    }

    /// The viewer (or something acting as the viewer) was used.
    pub fn used_viewer(&self) {
        let mut track = lock(&self.track);
        if !matches!(*track, Track::Off) {
            *track = Track::Own;
        }
    }

    /// Whether the viewer is among `users`, recorded.
    pub fn viewer_among(&self, users: &[Uuid]) -> bool {
        let among = self.viewer.is_some_and(|v| users.contains(&v));
        let mut track = lock(&self.track);
        match &mut *track {
            Track::Off | Track::Own => {}
            _ if among => *track = Track::Own,
            Track::Clean => *track = Track::Outside(users.to_vec()),
            Track::Outside(outside) => outside.extend_from_slice(users),
        }
        among
    }

    /// The payload to send in place of the last response, if it was shared.
    pub fn take_payload(&self) -> Option<Arc<str>> {
        lock(&self.payload).take()
    }
}

/// The subscriptions that run one document with the same variables.
struct Group {
    renders: Mutex<VecDeque<Render>>,
    /// Bytes of the renders every group keeps (`Groups::kept_bytes`).
    kept: Arc<AtomicUsize>,
}

struct Render {
    identity: Identity,
    payload: Arc<str>,
    /// Subscribers among these users render their own.
    outside: Box<[Uuid]>,
}

impl Group {
    fn find(&self, identity: &Identity, viewer: Option<Uuid>) -> Option<Arc<str>> {
        let renders = lock(&self.renders);
        renders
            .iter()
            .rev()
            .find(|r| r.identity.same(identity))
            .filter(|r| viewer.is_none_or(|v| !r.outside.contains(&v)))
            .map(|r| r.payload.clone())
    }

    /// Keeps a render, the group having `others` subscribers besides the renderer.
    fn keep(&self, identity: Identity, payload: Arc<str>, outside: Box<[Uuid]>, others: usize) {
        let cap = KEEP.min(others);
        if cap == 0 || payload.len() > MAX_KEPT_BYTES {
            return;
        }
        let mut renders = lock(&self.renders);
        if renders.iter().any(|r| r.identity.same(&identity)) {
            return;
        }
        while renders.len() >= cap {
            if let Some(old) = renders.pop_front() {
                self.kept.fetch_sub(old.payload.len(), Ordering::Relaxed);
            }
        }
        self.kept.fetch_add(payload.len(), Ordering::Relaxed);
        renders.push_back(Render {
            identity,
            payload,
            outside,
        });
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let bytes: usize = lock(&self.renders).iter().map(|r| r.payload.len()).sum();
        self.kept.fetch_sub(bytes, Ordering::Relaxed);
    }
}

/// The live groups, by document, operation name and variables.
#[derive(Default)]
pub struct Groups {
    groups: Mutex<GroupMap>,
    kept: Arc<AtomicUsize>,
}

#[derive(Default)]
struct GroupMap {
    by_key: HashMap<String, Weak<Group>>,
    /// Past this many entries, dead ones are swept out first.
    sweep_at: usize,
}

impl Groups {
    /// The sharing of a subscription request run for `viewer`.
    pub fn join(&self, request: &Request, viewer: Option<Uuid>) -> Arc<Sharing> {
        let group = self.group(key_of(request));
        Arc::new(Sharing {
            group,
            viewer,
            track: Mutex::default(),
            payload: Mutex::default(),
        })
    }

    fn group(&self, key: String) -> Arc<Group> {
        let mut map = lock(&self.groups);
        if let Some(group) = map.by_key.get(&key).and_then(Weak::upgrade) {
            return group;
        }
        if map.by_key.len() >= map.sweep_at {
            map.by_key.retain(|_, g| g.strong_count() > 0);
            map.sweep_at = (map.by_key.len() * 2).max(64);
        }
        let group = Arc::new(Group {
            renders: Mutex::default(),
            kept: self.kept.clone(),
        });
        map.by_key.insert(key, Arc::downgrade(&group));
        group
    }

    /// How many bytes of renders all groups keep now.
    pub fn kept_bytes(&self) -> usize {
        self.kept.load(Ordering::Relaxed)
    }
}

/// One string naming the document, the operation and the variables (which
/// serialise in a fixed order), unambiguously.
fn key_of(request: &Request) -> String {
    serde_json::to_string(&(&request.query, &request.operation_name, &request.variables))
        .unwrap_or_default()
}

/// What a subscription's stream yields for the transport: a response, or a
/// payload rendered once for its group.
pub enum Payload {
    Response(Box<Response>),
    Shared(Arc<str>),
}

impl Payload {
    /// The response, with the group's payload in its place when it was shared.
    pub fn of(response: Response, sharing: Option<&Sharing>) -> Self {
        match sharing.and_then(Sharing::take_payload) {
            Some(payload) if response.errors.is_empty() => Self::Shared(payload),
            _ => Self::Response(Box::new(response)),
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

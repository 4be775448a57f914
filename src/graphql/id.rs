//! Opaque global ids ("Type:uuid", base64url) and list cursors.

use async_graphql::ID;
use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{
    error::{AppError, AppResult},
    service::page::Cursor,
};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NodeType {
    User,
    Room,
    Message,
    DirectMessage,
    Post,
}

impl NodeType {
    const ALL: [Self; 5] = [
        Self::User,
        Self::Room,
        Self::Message,
        Self::DirectMessage,
        Self::Post,
    ];

    fn tag(self) -> &'static str {
        match self {
            Self::User => "User",
            Self::Room => "Room",
            Self::Message => "Message",
            Self::DirectMessage => "DirectMessage",
            Self::Post => "Post",
        }
    }
}

pub fn encode(kind: NodeType, id: Uuid) -> ID {
    ID(URL_SAFE_NO_PAD.encode(format!("{}:{}", kind.tag(), id.simple())))
}

/// Any well-formed global id.
pub fn decode_any(id: &str) -> AppResult<(NodeType, Uuid)> {
    let bad = || AppError::bad_input("malformed id");
    let bytes = URL_SAFE_NO_PAD.decode(id.as_bytes()).map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let (tag, uuid) = text.split_once(':').ok_or_else(bad)?;
    let kind = NodeType::ALL
        .into_iter()
        .find(|k| k.tag() == tag)
        .ok_or_else(bad)?;
    let uuid = Uuid::try_parse(uuid).map_err(|_| bad())?;
    Ok((kind, uuid))
}

/// A global id that must be of `kind`: anything else is `BAD_USER_INPUT`.
pub fn decode(id: &ID, kind: NodeType) -> AppResult<Uuid> {
    match decode_any(id)? {
        (k, uuid) if k == kind => Ok(uuid),
        _ => Err(AppError::bad_input(format!(
            "expected the id of a {}",
            kind.tag()
        ))),
    }
}

/// Which list a cursor belongs to, so a cursor from one list is refused by another.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ListKind {
    Rooms,
    MyRooms,
    Members,
    Messages,
    DirectMessages,
    Conversations,
    Followers,
    Following,
    FollowRequests,
    Posts,
    Feed,
    Explore,
    Nearby,
    Search,
    /// Positions in a room's stream; the id is the room's.
    RoomEvents,
    /// Positions in a user's direct stream; the id is the user's.
    DirectEvents,
    ReadReceipts,
}

impl ListKind {
    fn tag(self) -> &'static str {
        match self {
            Self::Rooms => "rooms",
            Self::MyRooms => "my-rooms",
            Self::Members => "members",
            // Positions in the room's stream (an earlier format held timestamps).
            Self::Messages => "history",
            // Positions in the thread (an earlier format held timestamps).
            Self::DirectMessages => "thread",
            Self::Conversations => "conversations",
            Self::Followers => "followers",
            Self::Following => "following",
            Self::FollowRequests => "follow-requests",
            Self::Posts => "posts",
            Self::Feed => "feed",
            Self::Explore => "explore",
            Self::Nearby => "nearby",
            Self::Search => "search",
            Self::RoomEvents => "room-events",
            Self::DirectEvents => "direct-events",
            Self::ReadReceipts => "receipts",
        }
    }
}

/// A sort key a cursor can carry.
pub trait CursorKey: Sized {
    fn to_text(&self) -> String;
    fn from_text(s: &str) -> Option<Self>;
}

impl CursorKey for DateTime<Utc> {
    fn to_text(&self) -> String {
        self.timestamp_micros().to_string()
    }
    fn from_text(s: &str) -> Option<Self> {
        DateTime::from_timestamp_micros(s.parse().ok()?)
    }
}

impl CursorKey for i64 {
    fn to_text(&self) -> String {
        self.to_string()
    }
    fn from_text(s: &str) -> Option<Self> {
        s.parse().ok()
    }
}

impl CursorKey for f64 {
    fn to_text(&self) -> String {
        // Exact round trip of the bits: a distance must compare equal to itself.
        format!("{:016x}", self.to_bits())
    }
    fn from_text(s: &str) -> Option<Self> {
        let v = f64::from_bits(u64::from_str_radix(s, 16).ok()?);
        v.is_finite().then_some(v)
    }
}

impl CursorKey for String {
    fn to_text(&self) -> String {
        URL_SAFE_NO_PAD.encode(self.as_bytes())
    }
    fn from_text(s: &str) -> Option<Self> {
        // A NUL would reach the database (PostgreSQL text cannot hold it).
        String::from_utf8(URL_SAFE_NO_PAD.decode(s).ok()?)
            .ok()
            .filter(|s| !s.contains('\0'))
    }
}

pub fn encode_cursor<K: CursorKey>(list: ListKind, key: &K, id: Uuid) -> String {
    URL_SAFE_NO_PAD.encode(format!("{}|{}|{}", list.tag(), key.to_text(), id.simple()))
}

pub fn decode_cursor<K: CursorKey>(list: ListKind, cursor: &str) -> AppResult<Cursor<K>> {
    let bad = || AppError::bad_input("malformed cursor, or a cursor from another list");
    let bytes = URL_SAFE_NO_PAD
        .decode(cursor.as_bytes())
        .map_err(|_| bad())?;
    let text = std::str::from_utf8(&bytes).map_err(|_| bad())?;
    let mut parts = text.splitn(3, '|');
    let (Some(tag), Some(key), Some(id)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad());
    };
    if tag != list.tag() {
        return Err(bad());
    }
    let key = K::from_text(key).ok_or_else(bad)?;
    let id = Uuid::try_parse(id).map_err(|_| bad())?;
    Ok(Cursor { key, id })
}

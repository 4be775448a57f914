//! Global ids and list cursors: any string decodes to a value or to
//! BAD_USER_INPUT, never a panic; what decodes re-encodes to a string that
//! decodes to the same value; a cursor of one list is refused by every other;
//! and encode → decode is exact for every value the server makes.
#![no_main]

use async_graphql::ID;
use chrono::{DateTime, Utc};
use confab::{
    error::{AppError, AppResult},
    graphql::id::{
        CursorKey, ListKind, NodeType, decode, decode_any, decode_cursor, encode, encode_cursor,
    },
    service::page::Cursor,
};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

const KINDS: [NodeType; 5] = [
    NodeType::User,
    NodeType::Room,
    NodeType::Message,
    NodeType::DirectMessage,
    NodeType::Post,
];

const LISTS: [ListKind; 14] = [
    ListKind::Rooms,
    ListKind::MyRooms,
    ListKind::Members,
    ListKind::Messages,
    ListKind::DirectMessages,
    ListKind::Conversations,
    ListKind::Followers,
    ListKind::Following,
    ListKind::FollowRequests,
    ListKind::Posts,
    ListKind::Feed,
    ListKind::Explore,
    ListKind::Nearby,
    ListKind::Search,
];

fn bad_input<T>(result: &AppResult<T>) -> bool {
    matches!(result, Err(AppError::BadUserInput(_)))
}

/// Keys compare by what they encode to (f64: bit for bit).
fn same<K: CursorKey>(a: &Cursor<K>, b: &Cursor<K>) -> bool {
    a.id == b.id && a.key.to_text() == b.key.to_text()
}

fn check_cursor<K: CursorKey + std::fmt::Debug>(text: &str) {
    let mut matched = None;
    for list in LISTS {
        match decode_cursor::<K>(list, text) {
            Ok(cursor) => {
                assert!(matched.is_none(), "one cursor, two lists: {text:?}");
                matched = Some(list);
                let again = encode_cursor(list, &cursor.key, cursor.id);
                let back = decode_cursor::<K>(list, &again).expect("re-encoded cursor decodes");
                assert!(same(&back, &cursor), "{text:?}: {cursor:?} became {back:?}");
            }
            Err(err) => assert!(bad_input::<()>(&Err(err)), "{text:?}"),
        }
    }
}

fn roundtrip_cursor<K: CursorKey + std::fmt::Debug>(list: ListKind, key: K, id: Uuid) {
    let text = encode_cursor(list, &key, id);
    let back = decode_cursor::<K>(list, &text).unwrap_or_else(|e| panic!("{key:?} {id}: {e:?}"));
    assert!(same(&back, &Cursor { key, id }));
}

fuzz_target!(|data: &[u8]| {
    // Every server-made id and cursor round-trips exactly.
    if data.len() >= 26 {
        let (head, rest) = data.split_at(26);
        let id = Uuid::from_bytes(head[..16].try_into().expect("16 bytes"));
        let kind = KINDS[usize::from(head[16]) % KINDS.len()];
        let encoded = encode(kind, id);
        assert_eq!(decode_any(&encoded).ok(), Some((kind, id)));
        for other in KINDS {
            let decoded = decode(&encoded, other);
            if other == kind {
                assert_eq!(decoded.ok(), Some(id));
            } else {
                assert!(bad_input(&decoded));
            }
        }
        let list = LISTS[usize::from(head[17]) % LISTS.len()];
        let n = i64::from_le_bytes(head[18..26].try_into().expect("8 bytes"));
        roundtrip_cursor(list, n, id);
        let f = f64::from_bits(n as u64);
        if f.is_finite() {
            roundtrip_cursor(list, f, id);
        }
        if let Some(t) = DateTime::<Utc>::from_timestamp_micros(n) {
            roundtrip_cursor(list, t, id);
        }
        if let Ok(s) = std::str::from_utf8(rest) {
            if s.contains('\0') {
                // PostgreSQL text cannot hold a NUL: such a key is refused.
                let text = encode_cursor(list, &s.to_owned(), id);
                assert!(bad_input(&decode_cursor::<String>(list, &text)));
            } else {
                roundtrip_cursor(list, s.to_owned(), id);
            }
        }
    }

    // Any string: decoded or refused as bad input, never a panic.
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    match decode_any(text) {
        Ok((kind, id)) => {
            let again = encode(kind, id);
            assert_eq!(decode_any(&again).ok(), Some((kind, id)), "{text:?}");
            assert_eq!(decode(&ID(text.to_owned()), kind).ok(), Some(id));
        }
        Err(err) => {
            assert!(bad_input::<()>(&Err(err)), "{text:?}");
            for kind in KINDS {
                assert!(bad_input(&decode(&ID(text.to_owned()), kind)));
            }
        }
    }
    check_cursor::<i64>(text);
    check_cursor::<f64>(text);
    check_cursor::<DateTime<Utc>>(text);
    check_cursor::<String>(text);
});

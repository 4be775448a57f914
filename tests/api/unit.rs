//! Small pure pieces, tested directly.

use confab::service::page::{DEFAULT_PAGE_SIZE, Page};

#[test]
fn page_counts_are_checked() {
    assert!(Page::<i64>::new(Some(1), Some(1), None, None).is_err());
    assert!(Page::<i64>::new(Some(-1), None, None, None).is_err());
    assert!(Page::<i64>::new(None, Some(101), None, None).is_err());
    let page = Page::<i64>::new(None, None, None, None).unwrap();
    assert_eq!(page.limit, DEFAULT_PAGE_SIZE);
    assert!(!page.backward);
}

#[test]
fn page_flags_in_both_directions() {
    let page = Page::<i64> {
        limit: 2,
        after: None,
        before: None,
        backward: false,
    };
    let s = page.finish(vec![1, 2, 3]);
    assert_eq!(
        (s.items, s.has_next_page, s.has_previous_page),
        (vec![1, 2], true, false)
    );
    let page = Page::<i64> {
        limit: 2,
        after: None,
        before: None,
        backward: true,
    };
    let s = page.finish(vec![3, 2, 1]);
    assert_eq!(
        (s.items, s.has_next_page, s.has_previous_page),
        (vec![2, 3], false, true)
    );
}

#[test]
fn cursors_refuse_other_lists_and_garbage() {
    use confab::graphql::id::{ListKind, decode_cursor, encode_cursor};
    let now = chrono::Utc::now();
    let id = uuid::Uuid::now_v7();
    let c = encode_cursor(ListKind::Messages, &now, id);
    let back = decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Messages, &c).unwrap();
    assert_eq!(back.id, id);
    assert_eq!(back.key.timestamp_micros(), now.timestamp_micros());
    assert!(decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Rooms, &c).is_err());
    assert!(decode_cursor::<chrono::DateTime<chrono::Utc>>(ListKind::Messages, "garbage").is_err());
    let d = encode_cursor(ListKind::Nearby, &1234.5_f64, id);
    assert_eq!(
        decode_cursor::<f64>(ListKind::Nearby, &d).unwrap().key,
        1234.5
    );
}

//! Property tests (proptest) where a fuzzer is overkill: page arguments
//! against a model of Relay pagination, and the text rules against models
//! written from SEMANTICS.

use confab::{
    error::AppError,
    service::{
        page::{Cursor, DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page, SortOrder},
        text::reject_invisible,
        validate_client_message_id, validate_content,
    },
};
use proptest::{prelude::*, test_runner::TestRunner};
use sea_orm::{
    ConnectionTrait, Database, DatabaseConnection, DbBackend,
    sea_query::{Alias, Expr, Query},
};
use serde_json::json;
use uuid::Uuid;

use crate::support::TestApp;

fn is_bad_input<T: std::fmt::Debug>(result: &Result<T, AppError>) -> bool {
    matches!(result, Err(e) if e.code().as_str() == "BAD_USER_INPUT")
}

// ---------------------------------------------------------------------------
// Page arguments
// ---------------------------------------------------------------------------

/// A row of a list: its sort key (ties allowed) and id (the tie-breaker).
type Row = (i64, Uuid);

#[derive(Clone, Debug)]
struct PageCase {
    rows: Vec<Row>,
    order: SortOrder,
    first: Option<i32>,
    last: Option<i32>,
    after: Option<Row>,
    before: Option<Row>,
}

fn count() -> impl Strategy<Value = Option<i32>> {
    prop_oneof![
        3 => Just(None),
        4 => (0..8i32).prop_map(Some),
        1 => prop_oneof![Just(-1), Just(i32::MIN), Just(99), Just(100), Just(101), Just(i32::MAX)]
            .prop_map(Some),
    ]
}

fn row() -> impl Strategy<Value = Row> {
    // Few keys, so ties (broken by id) are common.
    (0..6i64, any::<u128>()).prop_map(|(k, id)| (k, Uuid::from_u128(id)))
}

/// A cursor: a row of the list, or a position between rows (a deleted row).
fn cursor(rows: Vec<Row>) -> BoxedStrategy<Option<Row>> {
    let existing = if rows.is_empty() {
        Just(None).boxed()
    } else {
        prop::sample::select(rows).prop_map(Some).boxed()
    };
    prop_oneof![2 => Just(None), 2 => existing, 1 => row().prop_map(Some)].boxed()
}

fn page_case() -> impl Strategy<Value = PageCase> {
    (
        prop::collection::vec(row(), 0..14),
        prop_oneof![Just(SortOrder::Asc), Just(SortOrder::Desc)],
        count(),
        count(),
    )
        .prop_flat_map(|(mut rows, order, first, last)| {
            rows.sort();
            rows.dedup_by_key(|r| r.1);
            (cursor(rows.clone()), cursor(rows.clone())).prop_map(move |(after, before)| PageCase {
                rows: rows.clone(),
                order,
                first,
                last,
                after,
                before,
            })
        })
}

/// What Relay's pagination algorithm answers, with this API's rules for the
/// arguments (SEMANTICS): `first` and `last` exclusive, 0..=100, default 20,
/// `before` alone pages backwards; the flag against the paging direction
/// is true when a cursor on that side was given.
#[derive(Debug, PartialEq)]
struct Expected {
    rows: Vec<Row>,
    has_next_page: bool,
    has_previous_page: bool,
}

fn model(case: &PageCase) -> Option<Expected> {
    let size = |n: i32| {
        (0..=MAX_PAGE_SIZE as i32)
            .contains(&n)
            .then_some(n as usize)
    };
    let (n, backward) = match (case.first, case.last) {
        (Some(_), Some(_)) => return None,
        (Some(n), None) => (size(n)?, false),
        (None, Some(n)) => (size(n)?, true),
        (None, None) => (
            DEFAULT_PAGE_SIZE as usize,
            case.before.is_some() && case.after.is_none(),
        ),
    };
    // The list in its order; edges strictly between the cursors.
    let mut list = case.rows.clone();
    if case.order == SortOrder::Desc {
        list.reverse();
    }
    let precedes = |a: &Row, b: &Row| match case.order {
        SortOrder::Asc => a < b,
        SortOrder::Desc => a > b,
    };
    let edges: Vec<Row> = list
        .into_iter()
        .filter(|r| case.after.is_none_or(|a| precedes(&a, r)))
        .filter(|r| case.before.is_none_or(|b| precedes(r, &b)))
        .collect();
    Some(if backward {
        Expected {
            rows: edges[edges.len().saturating_sub(n)..].to_vec(),
            has_next_page: case.before.is_some(),
            has_previous_page: edges.len() > n,
        }
    } else {
        Expected {
            rows: edges.iter().copied().take(n).collect(),
            has_next_page: edges.len() > n,
            has_previous_page: case.after.is_some(),
        }
    })
}

/// The page through the real keyset pipeline: `Page::new`, its SQL
/// conditions and order with the extra row, run by SQLite, then `finish`.
async fn page_via_sql(db: &DatabaseConnection, case: &PageCase) -> Option<Expected> {
    let cursor = |r: Option<Row>| r.map(|(key, id)| Cursor { key, id });
    let page = Page::new(
        case.first,
        case.last,
        cursor(case.after),
        cursor(case.before),
    );
    let page = match page {
        Ok(page) => page,
        Err(err) => {
            assert_eq!(err.code().as_str(), "BAD_USER_INPUT", "{err:?}");
            return None;
        }
    };
    db.execute_unprepared("DELETE FROM list").await.unwrap();
    for (k, id) in &case.rows {
        let insert = Query::insert()
            .into_table(Alias::new("list"))
            .columns([Alias::new("k"), Alias::new("id")])
            .values_panic([(*k).into(), (*id).into()])
            .to_owned();
        db.execute(&insert).await.unwrap();
    }
    let (key, id) = (Expr::col(Alias::new("k")), Expr::col(Alias::new("id")));
    let mut select = Query::select();
    select
        .columns([Alias::new("k"), Alias::new("id")])
        .from(Alias::new("list"));
    for cond in page.conditions(&key, &id, case.order) {
        select.and_where(cond);
    }
    let order = page.sql_order(case.order);
    select
        .order_by_expr(key, order.clone())
        .order_by_expr(id, order)
        .limit(page.limit + 1);
    let rows: Vec<Row> = db
        .query_all(&select)
        .await
        .unwrap()
        .into_iter()
        .map(|r| {
            (
                r.try_get::<i64>("", "k").unwrap(),
                r.try_get::<Uuid>("", "id").unwrap(),
            )
        })
        .collect();
    let slice = page.finish(rows);
    Some(Expected {
        rows: slice.items,
        has_next_page: slice.has_next_page,
        has_previous_page: slice.has_previous_page,
    })
}

#[test]
fn page_arguments_match_relay_pagination() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = rt.block_on(async {
        let db = Database::connect("sqlite::memory:").await.unwrap();
        db.execute_unprepared("CREATE TABLE list (k INTEGER NOT NULL, id BLOB NOT NULL)")
            .await
            .unwrap();
        assert_eq!(db.get_database_backend(), DbBackend::Sqlite);
        db
    });
    let mut runner = TestRunner::new(ProptestConfig::with_cases(400));
    runner
        .run(&page_case(), |case| {
            let got = rt.block_on(page_via_sql(&db, &case));
            prop_assert_eq!(got, model(&case), "{:?}", case);
            Ok(())
        })
        .unwrap();
}

// ---------------------------------------------------------------------------
// Text rules
// ---------------------------------------------------------------------------

/// Unicode White_Space: what trimming removes.
const SPACES: &[char] = &[
    ' ', '\t', '\n', '\r', '\u{b}', '\u{c}', '\u{85}', '\u{a0}', '\u{1680}', '\u{2000}',
    '\u{200a}', '\u{2028}', '\u{2029}', '\u{202f}', '\u{205f}', '\u{3000}',
];
/// Control (Cc) and format (Cf) characters, written out from the Unicode tables.
const INVISIBLE: &[char] = &[
    '\u{1}',
    '\u{8}',
    '\u{1b}',
    '\u{7f}',
    '\u{80}',
    '\u{9f}',
    '\u{ad}',
    '\u{600}',
    '\u{61c}',
    '\u{6dd}',
    '\u{180e}',
    '\u{200b}',
    '\u{200c}',
    '\u{200e}',
    '\u{200f}',
    '\u{202a}',
    '\u{202e}',
    '\u{2060}',
    '\u{2064}',
    '\u{2066}',
    '\u{2069}',
    '\u{feff}',
    '\u{fff9}',
    '\u{fffb}',
    '\u{110bd}',
    '\u{e0001}',
    '\u{e007f}',
];
/// Visible characters, from several scripts and planes, U+200D (the emoji
/// joiner, allowed) among them.
const VISIBLE: &[char] = &[
    'a',
    'Z',
    '0',
    '_',
    '-',
    '.',
    'é',
    'ß',
    'ж',
    'λ',
    '中',
    'ع',
    'א',
    '😀',
    '👩',
    '💻',
    '\u{200d}',
    '\u{fe0f}',
    '\u{301}',
    '\u{10348}',
    '<',
    '&',
];

fn one_of(chars: &'static [char]) -> impl Strategy<Value = char> {
    prop::sample::select(chars)
}

/// Trimming padding around a core that starts and ends visible.
fn padding() -> impl Strategy<Value = String> {
    prop::collection::vec(one_of(SPACES), 0..4).prop_map(|v| v.into_iter().collect())
}

/// A core of visible characters with spaces inside, of about `len` characters.
fn core(len: std::ops::Range<usize>) -> impl Strategy<Value = String> {
    (
        one_of(VISIBLE),
        prop::collection::vec(prop_oneof![9 => one_of(VISIBLE), 1 => Just(' ')], len),
        one_of(VISIBLE),
    )
        .prop_map(|(a, mid, b)| {
            let mut s = String::new();
            s.push(a);
            s.extend(mid);
            s.push(b);
            s
        })
}

/// Core lengths around every boundary: tiny, near 100, near 4,000.
fn any_core() -> impl Strategy<Value = String> {
    prop_oneof![
        core(0..4),
        core(95..101),
        core(3995..4001),
        one_of(VISIBLE).prop_map(String::from),
    ]
}

/// Puts `c` somewhere in the core (not at its ends, so trimming keeps it).
fn insert_inside(core: &str, c: char, at: usize) -> String {
    let chars: Vec<char> = core.chars().collect();
    let at = 1 + at % chars.len().max(1);
    let at = at.min(chars.len());
    chars[..at]
        .iter()
        .chain([c].iter())
        .chain(chars[at..].iter())
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Content: 1–4,000 characters after trimming, no NUL; padding never
    /// counts and never rescues.
    #[test]
    fn content_is_one_to_4000_characters_after_trimming(
        head in padding(), body in any_core(), tail in padding(), nul in any::<Option<usize>>()
    ) {
        let body = match nul {
            Some(at) => insert_inside(&body, '\0', at),
            None => body,
        };
        let content = format!("{head}{body}{tail}");
        let len = body.chars().count();
        let valid = nul.is_none() && (1..=4000).contains(&len);
        let result = validate_content(&content);
        prop_assert_eq!(result.is_ok(), valid, "{} chars, nul {:?}", len, nul);
        prop_assert!(valid || is_bad_input(&result));
    }

    #[test]
    fn only_whitespace_is_empty_content(pad in padding()) {
        prop_assert!(is_bad_input(&validate_content(&pad)));
    }

    /// Names: any Cc or Cf character but U+200D is refused, wherever it stands.
    #[test]
    fn invisible_characters_are_refused_anywhere(
        body in core(0..20), bad in one_of(INVISIBLE), at in any::<usize>(), edge in 0..3u8
    ) {
        let value = match edge {
            0 => format!("{bad}{body}"),
            1 => format!("{body}{bad}"),
            _ => insert_inside(&body, bad, at),
        };
        prop_assert!(is_bad_input(&reject_invisible("name", &value)), "{:?}", value);
    }

    #[test]
    fn visible_text_passes_and_nothing_invisible_does(
        body in core(0..30), s in any::<String>()
    ) {
        prop_assert!(reject_invisible("name", &body).is_ok(), "{:?}", body);
        if reject_invisible("name", &s).is_ok() {
            prop_assert!(!s.chars().any(|c| c.is_control()), "{:?}", s);
            prop_assert!(!s.chars().any(|c| INVISIBLE.contains(&c)), "{:?}", s);
        }
    }

    /// clientMessageId: absent, or 1–64 characters without NUL.
    #[test]
    fn client_message_ids_are_one_to_64_characters(
        id in prop::option::of(prop_oneof![
            prop::collection::vec(one_of(VISIBLE), 0..70).prop_map(|v| v.into_iter().collect::<String>()),
            any::<String>(),
        ])
    ) {
        let valid = id.as_ref().is_none_or(|s| {
            !s.contains('\0') && (1..=64).contains(&s.chars().count())
        });
        let result = validate_client_message_id(id.as_deref());
        prop_assert_eq!(result.is_ok(), valid, "{:?}", id);
        prop_assert!(valid || is_bad_input(&result));
    }
}

/// Room names through the API: 1–100 characters after trimming, no control
/// or format characters but U+200D in what is kept, stored trimmed.
#[test]
fn room_names_through_the_api() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let (app, user) = rt.block_on(async {
        let app = TestApp::spawn().await;
        let user = app.register("namer").await;
        (app, user)
    });
    let name = (
        padding(),
        prop_oneof![core(0..4), core(96..101)],
        padding(),
        prop::option::of((one_of(INVISIBLE), any::<usize>())),
    );
    let mut runner = TestRunner::new(ProptestConfig::with_cases(48));
    runner
        .run(&name, |(head, body, tail, bad)| {
            let body = match bad {
                Some((c, at)) => insert_inside(&body, c, at),
                None => body,
            };
            let name = format!("{head}{body}{tail}");
            let len = body.chars().count();
            let valid = bad.is_none() && (1..=100).contains(&len);
            let v = rt.block_on(app.gql(
                Some(&user.token),
                "mutation($n: String!) { createRoom(input: { name: $n }) { name } }",
                json!({ "n": name }),
            ));
            if valid {
                prop_assert_eq!(&v["data"]["createRoom"]["name"], &json!(body), "{}", v);
            } else {
                prop_assert_eq!(
                    &v["errors"][0]["extensions"]["code"],
                    &json!("BAD_USER_INPUT"),
                    "{}",
                    v
                );
            }
            Ok(())
        })
        .unwrap();
    drop(app);
}

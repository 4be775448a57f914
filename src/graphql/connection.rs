//! Relay connections: one set of page arguments, one way to decode them, one
//! way to build a connection (with or without extra edge fields).

use async_graphql::SimpleObject;

use crate::{
    error::AppResult,
    graphql::id::{CursorKey, ListKind, decode_cursor},
    service::page::{DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, Page},
};

/// Relay Cursor Connections PageInfo.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    pub fn new<'a>(
        has_next_page: bool,
        has_previous_page: bool,
        mut cursors: impl DoubleEndedIterator<Item = &'a String>,
    ) -> Self {
        let start_cursor = cursors.next().cloned();
        let end_cursor = cursors
            .next_back()
            .cloned()
            .or_else(|| start_cursor.clone());
        Self {
            has_next_page,
            has_previous_page,
            start_cursor,
            end_cursor,
        }
    }
}

/// The Relay arguments of a connection field, as the client sent them.
#[derive(Debug, Default)]
pub struct PageArgs {
    pub first: Option<i32>,
    pub after: Option<String>,
    pub last: Option<i32>,
    pub before: Option<String>,
}

impl PageArgs {
    pub fn new(
        first: Option<i32>,
        after: Option<String>,
        last: Option<i32>,
        before: Option<String>,
    ) -> Self {
        Self {
            first,
            after,
            last,
            before,
        }
    }

    /// Forward-only lists take `first`/`after`.
    pub fn forward(first: Option<i32>, after: Option<String>) -> Self {
        Self {
            first,
            after,
            ..Self::default()
        }
    }

    /// The page these arguments ask of `list`; its cursors must be `list`'s.
    pub fn page<K: CursorKey>(self, list: ListKind) -> AppResult<Page<K>> {
        let after = self.after.map(|c| decode_cursor(list, &c)).transpose()?;
        let before = self.before.map(|c| decode_cursor(list, &c)).transpose()?;
        Page::new(self.first, self.last, after, before)
    }
}

/// The cost of a connection field: its page size times what each node asks for.
pub fn page_cost(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let n = first.or(last).map_or(DEFAULT_PAGE_SIZE as usize, |n| {
        usize::try_from(n).unwrap_or(0).min(MAX_PAGE_SIZE as usize)
    });
    n.max(1).saturating_mul(child).saturating_add(1)
}

/// Declares `XxxConnection { edges, pageInfo }` and `XxxEdge { cursor, node }`
/// plus any extra edge fields: `connection!(Conn, Edge, Node, { joined_at: DateTime })`.
/// Attributes before the names (a doc comment) go on the edge type.
#[macro_export]
macro_rules! connection {
    ($(#[$edge_attr:meta])* $conn:ident, $edge:ident, $node:ty $(, { $($field:ident : $ty:ty),* $(,)? })?) => {
        $(#[$edge_attr])*
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
            $($(pub $field: $ty,)*)?
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::connection::PageInfo,
        }

        impl $conn {
            pub fn new<T>(
                slice: $crate::service::page::Slice<T>,
                edge: impl FnMut(T) -> $edge,
            ) -> Self {
                let edges: Vec<$edge> = slice.items.into_iter().map(edge).collect();
                let page_info = $crate::graphql::connection::PageInfo::new(
                    slice.has_next_page,
                    slice.has_previous_page,
                    edges.iter().map(|e| &e.cursor),
                );
                Self { edges, page_info }
            }
        }
    };
}

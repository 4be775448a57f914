//! The GraphQL schema: per-domain roots merged into Query, Mutation and
//! Subscription; context helpers; ids; scalars; DataLoaders; limits.

pub mod context;
pub mod direct;
pub mod id;
pub mod limits;
pub mod loaders;
pub mod room;
pub mod scalars;
pub mod social;
pub mod user;

use async_graphql::{
    MergedObject, MergedSubscription, Response, SDLExportOptions, Schema, SimpleObject, Value,
};

use crate::app::AppState;

pub use context::ContextExt;

#[derive(MergedObject, Default)]
pub struct Query(
    user::UserQuery,
    room::RoomQuery,
    direct::DirectQuery,
    social::SocialQuery,
);

#[derive(MergedObject, Default)]
pub struct Mutation(
    user::AuthMutation,
    user::ProfileMutation,
    room::RoomMutation,
    direct::DirectMutation,
    social::SocialMutation,
);

#[derive(MergedSubscription, Default)]
pub struct Subscription(direct::ChatSubscription);

pub type ConfabSchema = Schema<Query, Mutation, Subscription>;

/// Query depth that still lets GraphiQL's introspection query through.
pub const MAX_DEPTH: usize = 15;
pub const MAX_COMPLEXITY: usize = 20_000;
pub const MAX_ALIASES: usize = 30;
pub const MAX_DIRECTIVES_PER_FIELD: usize = 5;
/// Selections with every fragment spread expanded. GraphiQL's full
/// introspection query has a few hundred; validating this many takes
/// milliseconds, where a 1 KB document of doubling fragments has millions.
pub const MAX_EXPANDED_SELECTIONS: usize = 5_000;

/// Builds the schema. `state` is `None` only for printing the SDL.
pub fn build(state: Option<AppState>, dev_mode: bool) -> ConfabSchema {
    let mut builder = Schema::build(
        Query::default(),
        Mutation::default(),
        Subscription::default(),
    )
    .register_output_type::<context::NodeInterface>()
    .limit_depth(MAX_DEPTH)
    .limit_complexity(MAX_COMPLEXITY)
    .limit_directives(MAX_DIRECTIVES_PER_FIELD)
    .extension(limits::AliasLimit(MAX_ALIASES))
    .extension(limits::DocumentGuard {
        max_selections: MAX_EXPANDED_SELECTIONS,
    });
    if !dev_mode {
        builder = builder.disable_suggestions();
    }
    if let Some(state) = state {
        builder = builder.data(state);
    }
    builder.finish()
}

/// The SDL exactly as served: what `confab schema` prints and `schema.graphql` holds.
pub fn sdl() -> String {
    build(None, false).sdl_with_options(SDLExportOptions::new().sorted_fields().sorted_enum_items())
}

/// The cost of a connection field: its page size times what each node asks for.
pub fn page_cost(first: Option<i32>, last: Option<i32>, child: usize) -> usize {
    let n = first
        .or(last)
        .map_or(crate::service::page::DEFAULT_PAGE_SIZE as usize, |n| {
            usize::try_from(n)
                .unwrap_or(0)
                .min(crate::service::page::MAX_PAGE_SIZE as usize)
        });
    n.max(1).saturating_mul(child).saturating_add(1)
}

/// Relay Cursor Connections PageInfo.
#[derive(SimpleObject, Clone, Debug, Default)]
pub struct PageInfo {
    pub has_next_page: bool,
    pub has_previous_page: bool,
    pub start_cursor: Option<String>,
    pub end_cursor: Option<String>,
}

impl PageInfo {
    pub fn new(has_next_page: bool, has_previous_page: bool, cursors: &[String]) -> Self {
        Self {
            has_next_page,
            has_previous_page,
            start_cursor: cursors.first().cloned(),
            end_cursor: cursors.last().cloned(),
        }
    }
}

/// Declares a `XxxConnection { edges, pageInfo }` and its `XxxEdge { cursor, node }`.
#[macro_export]
macro_rules! connection {
    ($conn:ident, $edge:ident, $node:ty) => {
        #[derive(async_graphql::SimpleObject)]
        pub struct $edge {
            pub cursor: String,
            pub node: $node,
        }

        #[derive(async_graphql::SimpleObject)]
        pub struct $conn {
            pub edges: Vec<$edge>,
            pub page_info: $crate::graphql::PageInfo,
        }

        impl $conn {
            pub fn new<T>(
                slice: $crate::service::page::Slice<T>,
                mut edge: impl FnMut(T) -> (String, $node),
            ) -> Self {
                let edges: Vec<$edge> = slice
                    .items
                    .into_iter()
                    .map(|item| {
                        let (cursor, node) = edge(item);
                        $edge { cursor, node }
                    })
                    .collect();
                let cursors: Vec<String> = edges.iter().map(|e| e.cursor.clone()).collect();
                Self {
                    edges,
                    page_info: $crate::graphql::PageInfo::new(
                        slice.has_next_page,
                        slice.has_previous_page,
                        &cursors,
                    ),
                }
            }
        }
    };
}

/// Gives every error a code: ours carry one; those async-graphql makes
/// itself (parse, validation, argument coercion) get the conventional one.
pub fn ensure_codes(response: &mut Response, parse_failed: bool) {
    let request_error =
        matches!(response.data, Value::Null) && response.errors.iter().all(|e| e.path.is_empty());
    for err in &mut response.errors {
        let has_code = err
            .extensions
            .as_ref()
            .is_some_and(|ext| ext.get("code").is_some());
        if has_code {
            continue;
        }
        let code = if request_error {
            if parse_failed {
                "GRAPHQL_PARSE_FAILED"
            } else {
                "GRAPHQL_VALIDATION_FAILED"
            }
        } else if err.message.starts_with("Invalid value for argument")
            || err.message.starts_with("Failed to parse")
        {
            "BAD_USER_INPUT"
        } else {
            "INTERNAL_SERVER_ERROR"
        };
        err.extensions
            .get_or_insert_with(Default::default)
            .set("code", code);
    }
}

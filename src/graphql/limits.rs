//! Document limits async-graphql does not have, checked by `Endpoint` on the
//! parsed document before async-graphql validates it (plain functions, not
//! an extension: an extension puts every field resolve through its chain).
//!
//! - Aliases per document: async-graphql counts `__typename` as free in
//!   complexity, so a document of a thousand aliased `__typename`s would
//!   otherwise pass every limit.
//! - The expanded size: validation walks every fragment spread inline, so a
//!   1 KB document of doubling fragments would cost minutes of synchronous CPU.
//! - One auth mutation per document, and no NUL in any string argument or
//!   variable (PostgreSQL text cannot hold it; refusing it here answers the
//!   same on both databases, for every field).

use std::{
    collections::{HashMap, HashSet},
    convert::Infallible,
};

use async_graphql::{
    Positioned, Request, ServerError, Value,
    parser::types::{Directive, ExecutableDocument, OperationType, Selection, SelectionSet},
};

use crate::{config::Limits, error::ErrorCode, graphql::error::server_error};

fn count_aliases(set: &SelectionSet) -> usize {
    set.items
        .iter()
        .map(|item| match &item.node {
            Selection::Field(field) => {
                usize::from(field.node.alias.is_some())
                    + count_aliases(&field.node.selection_set.node)
            }
            Selection::InlineFragment(frag) => count_aliases(&frag.node.selection_set.node),
            Selection::FragmentSpread(_) => 0,
        })
        .sum()
}

/// Every alias written in the document, fragments counted once each.
pub fn aliases_in(doc: &ExecutableDocument) -> usize {
    let operations: usize = doc
        .operations
        .iter()
        .map(|(_, op)| count_aliases(&op.node.selection_set.node))
        .sum();
    let fragments: usize = doc
        .fragments
        .values()
        .map(|f| count_aliases(&f.node.selection_set.node))
        .sum();
    operations + fragments
}

/// The auth mutations: each runs a bcrypt check or issues a session, so a
/// document may hold only one of them.
const AUTH_FIELDS: [&str; 3] = ["register", "login", "refreshSession"];

#[derive(Clone, Copy)]
enum Count {
    /// Every selection (field, inline fragment, spread), spreads expanded.
    Selections,
    /// Auth mutation fields at the level counted (the operation's root).
    AuthFields,
}

/// Counts over a selection set with fragment spreads counted as their
/// expansion, memoised per fragment so the count is linear in the document.
/// A spread of a fragment already being expanded (a cycle) counts as itself
/// only; validation rejects the cycle afterwards.
struct Expansion<'a> {
    doc: &'a ExecutableDocument,
    what: Count,
    memo: HashMap<&'a str, usize>,
    active: HashSet<&'a str>,
}

impl<'a> Expansion<'a> {
    fn new(doc: &'a ExecutableDocument, what: Count) -> Self {
        Self {
            doc,
            what,
            memo: HashMap::new(),
            active: HashSet::new(),
        }
    }

    fn overhead(&self) -> usize {
        match self.what {
            Count::Selections => 1,
            Count::AuthFields => 0,
        }
    }

    fn set(&mut self, set: &'a SelectionSet) -> usize {
        let mut total = 0usize;
        for item in &set.items {
            let n = match &item.node {
                Selection::Field(field) => match self.what {
                    Count::Selections => {
                        1usize.saturating_add(self.set(&field.node.selection_set.node))
                    }
                    Count::AuthFields => {
                        usize::from(AUTH_FIELDS.contains(&field.node.name.node.as_str()))
                    }
                },
                Selection::InlineFragment(frag) => self
                    .overhead()
                    .saturating_add(self.set(&frag.node.selection_set.node)),
                Selection::FragmentSpread(spread) => self
                    .overhead()
                    .saturating_add(self.fragment(spread.node.fragment_name.node.as_str())),
            };
            total = total.saturating_add(n);
        }
        total
    }

    fn fragment(&mut self, name: &'a str) -> usize {
        if let Some(&n) = self.memo.get(name) {
            return n;
        }
        // An unknown fragment is a validation error later.
        let Some(def) = self.doc.fragments.get(name) else {
            return 0;
        };
        if !self.active.insert(name) {
            return 0;
        }
        let n = self.set(&def.node.selection_set.node);
        self.active.remove(name);
        self.memo.insert(name, n);
        n
    }
}

/// Selections in the document's operations once every fragment spread is
/// replaced by its fragment: what validation and execution walk.
pub fn expanded_size(doc: &ExecutableDocument) -> usize {
    let mut counter = Expansion::new(doc, Count::Selections);
    doc.operations
        .iter()
        .map(|(_, op)| counter.set(&op.node.selection_set.node))
        .fold(0, usize::saturating_add)
}

/// `register`, `login` and `refreshSession` fields at the root of the
/// document's mutation operations, through fragments, aliases included.
pub fn auth_mutations_in(doc: &ExecutableDocument) -> usize {
    let mut counter = Expansion::new(doc, Count::AuthFields);
    doc.operations
        .iter()
        .filter(|(_, op)| op.node.ty == OperationType::Mutation)
        .map(|(_, op)| counter.set(&op.node.selection_set.node))
        .fold(0, usize::saturating_add)
}

/// A value (or anything in it) the predicate marks.
type Mark<'a> = &'a dyn Fn(&Value) -> bool;

fn const_has(value: &Value, mark: Mark<'_>) -> bool {
    mark(value)
        || match value {
            Value::List(items) => items.iter().any(|v| const_has(v, mark)),
            Value::Object(fields) => fields.values().any(|v| const_has(v, mark)),
            _ => false,
        }
}

/// A NUL in a string, an enum name or an object key.
fn has_nul(value: &Value) -> bool {
    match value {
        Value::String(s) => s.contains('\0'),
        Value::Enum(name) => name.as_str().contains('\0'),
        Value::Object(fields) => fields.keys().any(|k| k.as_str().contains('\0')),
        _ => false,
    }
}

/// An integer outside GraphQL's 32-bit Int. (Every Float argument of the
/// schema has a small range of its own, so an integer this large is bad
/// input wherever it stands.)
fn out_of_int_range(value: &Value) -> bool {
    match value {
        Value::Number(n) => match (n.as_i64(), n.as_u64()) {
            (Some(i), _) => i32::try_from(i).is_err(),
            (None, Some(_)) => true,
            (None, None) => false,
        },
        _ => false,
    }
}

fn literal_has(value: &Positioned<async_graphql_value::Value>, mark: Mark<'_>) -> bool {
    // Variables are checked where they come in; here only literals.
    let literal = value
        .node
        .clone()
        .into_const_with(|_| Ok::<_, Infallible>(Value::Null));
    literal.is_ok_and(|v| const_has(&v, mark))
}

fn directives_have(directives: &[Positioned<Directive>], mark: Mark<'_>) -> bool {
    directives
        .iter()
        .any(|d| d.node.arguments.iter().any(|(_, v)| literal_has(v, mark)))
}

fn set_has(set: &SelectionSet, mark: Mark<'_>) -> bool {
    set.items.iter().any(|item| match &item.node {
        Selection::Field(field) => {
            field
                .node
                .arguments
                .iter()
                .any(|(_, v)| literal_has(v, mark))
                || directives_have(&field.node.directives, mark)
                || set_has(&field.node.selection_set.node, mark)
        }
        Selection::InlineFragment(frag) => {
            directives_have(&frag.node.directives, mark)
                || set_has(&frag.node.selection_set.node, mark)
        }
        Selection::FragmentSpread(spread) => directives_have(&spread.node.directives, mark),
    })
}

/// Whether any literal of the document (each fragment once) has what `mark` marks.
fn document_has(doc: &ExecutableDocument, mark: Mark<'_>) -> bool {
    let operations = doc.operations.iter().any(|(_, op)| {
        let defaults = op.node.variable_definitions.iter().any(|def| {
            def.node
                .default_value
                .as_ref()
                .is_some_and(|v| const_has(&v.node, mark))
                || directives_have(&def.node.directives, mark)
        });
        defaults
            || directives_have(&op.node.directives, mark)
            || set_has(&op.node.selection_set.node, mark)
    });
    operations
        || doc.fragments.values().any(|f| {
            directives_have(&f.node.directives, mark) || set_has(&f.node.selection_set.node, mark)
        })
}

/// A NUL in any string literal of the document.
pub fn document_has_nul(doc: &ExecutableDocument) -> bool {
    document_has(doc, &has_nul)
}

/// Whether the document asks for `__schema` or `__type` anywhere (they exist
/// only on the query root, so anywhere is where they would be answered).
fn selects_introspection(doc: &ExecutableDocument) -> bool {
    fn walk(set: &SelectionSet) -> bool {
        set.items.iter().any(|item| match &item.node {
            Selection::Field(field) => {
                let name = field.node.name.node.as_str();
                name == "__schema" || name == "__type" || walk(&field.node.selection_set.node)
            }
            Selection::InlineFragment(frag) => walk(&frag.node.selection_set.node),
            Selection::FragmentSpread(_) => false,
        })
    }
    doc.operations
        .iter()
        .any(|(_, op)| walk(&op.node.selection_set.node))
        || doc
            .fragments
            .values()
            .any(|f| walk(&f.node.selection_set.node))
}

/// Refuses a request before async-graphql looks at its document: NUL
/// anywhere in the query or variables, then (the document parsed) too many
/// aliases or expanded selections, NUL in a literal, two auth mutations.
/// A document that does not parse is the caller's to answer.
pub fn check(
    request: &mut Request,
    limits: &Limits,
    introspection: bool,
) -> Result<(), ServerError> {
    let nul = || {
        server_error(
            "string arguments and variables must not contain NUL characters",
            ErrorCode::BadUserInput,
        )
    };
    let variables_have = |mark: Mark<'_>| {
        request
            .variables
            .iter()
            .any(|(k, v)| k.as_str().contains('\0') || const_has(v, mark))
    };
    if request.query.contains('\0') || variables_have(&has_nul) {
        return Err(nul());
    }
    let too_large = || {
        server_error(
            "an integer argument must fit in 32 bits (GraphQL's Int)",
            ErrorCode::BadUserInput,
        )
    };
    if variables_have(&out_of_int_range) {
        return Err(too_large());
    }
    let Ok(doc) = request.parsed_query() else {
        return Ok(());
    };
    let aliases = aliases_in(doc);
    if aliases > limits.max_aliases {
        return Err(server_error(
            format!(
                "too many aliases: {aliases} (at most {} per document)",
                limits.max_aliases
            ),
            ErrorCode::GraphqlValidationFailed,
        ));
    }
    let size = expanded_size(doc);
    if size > limits.max_expanded_selections {
        return Err(server_error(
            format!(
                "document too large: {size} selections with fragments expanded (at most {})",
                limits.max_expanded_selections
            ),
            ErrorCode::GraphqlValidationFailed,
        ));
    }
    if document_has_nul(doc) {
        return Err(nul());
    }
    if document_has(doc, &out_of_int_range) {
        return Err(too_large());
    }
    if !introspection && selects_introspection(doc) {
        return Err(server_error(
            "introspection is switched off on this server",
            ErrorCode::GraphqlValidationFailed,
        ));
    }
    if auth_mutations_in(doc) > 1 {
        return Err(server_error(
            "at most one register, login or refreshSession per document",
            ErrorCode::BadUserInput,
        ));
    }
    Ok(())
}

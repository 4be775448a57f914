//! The document-size bound: `expanded_size` (memoised, linear) against a
//! naive expansion with a step budget, on every acyclic document that
//! parses; `check` refuses exactly the documents over the bound, with a
//! coded error, and returns in linear time whatever the document (a
//! fragment bomb must not make it walk the expansion).
#![no_main]

use std::collections::HashSet;

use async_graphql::{
    Request,
    parser::{
        parse_query,
        types::{ExecutableDocument, Selection, SelectionSet},
    },
};
use confab::{config::Limits, graphql::limits};
use libfuzzer_sys::fuzz_target;

/// Past this many selections the naive count stops (and so does the comparison).
const CAP: usize = 20_000;

/// Selections of `set` with every spread written out, counted one by one:
/// the definition of the expanded size. None past `budget`.
fn naive(doc: &ExecutableDocument, set: &SelectionSet, budget: &mut usize) -> Option<usize> {
    let mut total = 0usize;
    for item in &set.items {
        *budget = budget.checked_sub(1)?;
        total += 1;
        total += match &item.node {
            Selection::Field(field) => naive(doc, &field.node.selection_set.node, budget)?,
            Selection::InlineFragment(frag) => naive(doc, &frag.node.selection_set.node, budget)?,
            Selection::FragmentSpread(spread) => {
                match doc.fragments.get(&spread.node.fragment_name.node) {
                    Some(def) => naive(doc, &def.node.selection_set.node, budget)?,
                    None => 0,
                }
            }
        };
    }
    Some(total)
}

/// Whether some fragment spreads itself, directly or through others.
fn has_cycle(doc: &ExecutableDocument) -> bool {
    fn spreads<'a>(set: &'a SelectionSet, out: &mut Vec<&'a str>) {
        for item in &set.items {
            match &item.node {
                Selection::Field(f) => spreads(&f.node.selection_set.node, out),
                Selection::InlineFragment(f) => spreads(&f.node.selection_set.node, out),
                Selection::FragmentSpread(s) => out.push(s.node.fragment_name.node.as_str()),
            }
        }
    }
    fn visit<'a>(
        doc: &'a ExecutableDocument,
        name: &'a str,
        path: &mut HashSet<&'a str>,
        done: &mut HashSet<&'a str>,
    ) -> bool {
        if done.contains(name) {
            return false;
        }
        if !path.insert(name) {
            return true;
        }
        let mut next = Vec::new();
        if let Some(def) = doc.fragments.get(name) {
            spreads(&def.node.selection_set.node, &mut next);
        }
        let cyclic = next.into_iter().any(|n| visit(doc, n, path, done));
        path.remove(name);
        done.insert(name);
        cyclic
    }
    let (mut path, mut done) = (HashSet::new(), HashSet::new());
    doc.fragments
        .keys()
        .any(|name| visit(doc, name.as_str(), &mut path, &mut done))
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(doc) = parse_query(text) else {
        return;
    };
    let size = limits::expanded_size(&doc);
    if !has_cycle(&doc) {
        let mut budget = CAP;
        let model = doc
            .operations
            .iter()
            .map(|(_, op)| naive(&doc, &op.node.selection_set.node, &mut budget))
            .try_fold(0usize, |sum, n| Some(sum + n?));
        match model {
            Some(model) => assert_eq!(size, model, "{text:?}"),
            // The naive walk visited CAP selections and found another.
            None => assert!(size > CAP, "{text:?}: {size} is not over the cap"),
        }
    }
    let mut limits_config = Limits::default();
    // Small bounds, so the fuzzer reaches both sides of each.
    limits_config.max_expanded_selections = 64;
    limits_config.max_aliases = 8;
    let mut request = Request::new(text);
    let refused = limits::check(&mut request, &limits_config, true);
    let aliases = limits::aliases_in(&doc);
    match refused {
        Ok(()) => {
            assert!(size <= 64, "{size} selections passed the bound of 64");
            assert!(aliases <= 8);
        }
        Err(err) => {
            let code = err.extensions.as_ref().and_then(|e| e.get("code")).cloned();
            assert!(code.is_some(), "uncoded refusal: {}", err.message);
            if size > 64 && !text.contains('\0') {
                assert_eq!(
                    code,
                    Some(async_graphql::Value::from("GRAPHQL_VALIDATION_FAILED"))
                );
            }
        }
    }
});

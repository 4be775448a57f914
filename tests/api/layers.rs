//! The module layering of `src/`, read from its `crate::` paths: no module
//! circle, and every import points down the documented order (lib.rs).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top to bottom; a module may import only modules of later layers.
const LAYERS: &[&[&str]] = &[
    &["app", "cli"],
    &["http"],
    &["ws"],
    &["graphql"],
    &["state", "db", "graphiql"],
    &["service"],
    &["realtime", "auth"],
    &["error", "config", "metrics"],
];

/// The top-level modules a source file names through `crate::` (and
/// `$crate::`), including every name in `use crate::{a, b::{c}}` groups.
fn crate_references(source: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for line in source.lines() {
        let code = line.split("//").next().unwrap_or("");
        let mut rest = code;
        while let Some(at) = rest.find("crate::") {
            rest = &rest[at + "crate::".len()..];
            if rest.starts_with('{') {
                // A group may span lines: read it from the source.
                out.extend(group_names(source, line));
                continue;
            }
            let name: String = rest
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name);
            }
        }
    }
    out
}

/// Names at depth 1 of the `use crate::{` group that starts on `line`.
fn group_names(source: &str, line: &str) -> Vec<String> {
    let from = source.find(line).expect("line of source") + line.find("crate::{").expect("group");
    let mut depth = 0usize;
    let mut names = Vec::new();
    let mut expect_name = false;
    let mut current = String::new();
    for c in source[from + "crate::".len()..].chars() {
        match c {
            '{' => {
                depth += 1;
                expect_name = depth == 1;
            }
            '}' => {
                if depth == 1 && !current.is_empty() {
                    names.push(std::mem::take(&mut current));
                }
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => {
                if !current.is_empty() {
                    names.push(std::mem::take(&mut current));
                }
                expect_name = true;
            }
            c if expect_name && (c.is_alphanumeric() || c == '_') => current.push(c),
            c if expect_name && !current.is_empty() && !c.is_whitespace() => {
                names.push(std::mem::take(&mut current));
                expect_name = false;
            }
            _ => {}
        }
    }
    names
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src") {
        let path = entry.expect("entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Module → the other top-level modules it imports.
fn module_graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in files {
        let relative = file.strip_prefix(&src).expect("under src");
        let first = relative.components().next().expect("component");
        let module = first
            .as_os_str()
            .to_string_lossy()
            .trim_end_matches(".rs")
            .to_owned();
        // The crate roots are not layers: lib.rs declares, main.rs uses the library.
        if module == "lib" || module == "main" {
            continue;
        }
        let source = std::fs::read_to_string(&file).expect("read source");
        let refs = crate_references(&source);
        let entry = graph.entry(module.clone()).or_default();
        entry.extend(refs.into_iter().filter(|r| *r != module));
    }
    // Names at the crate root that are not modules (exported macros) are no layer.
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for imports in graph.values_mut() {
        imports.retain(|m| modules.contains(m));
    }
    graph
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == node) {
            let mut cycle = path[at..].to_vec();
            cycle.push(node.to_owned());
            return Some(cycle);
        }
        if done.contains(node) {
            return None;
        }
        path.push(node.to_owned());
        for next in graph.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(node.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph
        .keys()
        .find_map(|node| visit(node, graph, &mut Vec::new(), &mut done))
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("module `{module}` is in no layer: add it to LAYERS and lib.rs"))
}

#[test]
fn no_module_circles_and_imports_point_down() {
    let graph = module_graph();
    assert!(graph.contains_key("graphql") && graph.contains_key("service"));
    if let Some(cycle) = find_cycle(&graph) {
        panic!("module circle: {}", cycle.join(" → "));
    }
    let mut upward = Vec::new();
    for (module, imports) in &graph {
        for import in imports {
            if layer_of(import) <= layer_of(module) {
                upward.push(format!("{module} → {import}"));
            }
        }
    }
    assert!(
        upward.is_empty(),
        "imports against the layer order: {upward:?}"
    );
}

#[test]
fn the_reader_sees_groups_and_paths() {
    let source = "use crate::{\n    a::{b, c},\n    d,\n};\nfn f() { crate::e::g(); $crate::h::i }\n// crate::not_code\n";
    let refs = crate_references(source);
    let expected: BTreeSet<String> = ["a", "d", "e", "h"].map(String::from).into();
    assert_eq!(refs, expected);
    let mut graph = BTreeMap::new();
    graph.insert("x".to_owned(), BTreeSet::from(["y".to_owned()]));
    graph.insert("y".to_owned(), BTreeSet::from(["x".to_owned()]));
    assert!(find_cycle(&graph).is_some(), "a circle must be found");
}

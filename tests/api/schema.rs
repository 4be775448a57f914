//! schema.graphql is exactly the served schema. `UPDATE_SCHEMA=1` rewrites it.

#[test]
fn schema_file_matches_the_served_schema() {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schema.graphql");
    let sdl = confab::graphql::sdl();
    if std::env::var_os("UPDATE_SCHEMA").is_some() {
        std::fs::write(&path, &sdl).unwrap();
        return;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == sdl,
        "schema.graphql is out of date: run `UPDATE_SCHEMA=1 cargo test schema` and review the diff"
    );
}

/// Every type, field, argument, input field and enum value of the public
/// contract (a copy of shared/api/contract.graphql) exists in the served
/// schema: output types as strict or stricter, inputs exactly, and any
/// argument or input field added beyond the contract optional.
#[test]
fn schema_honours_the_contract() {
    use async_graphql::parser::{
        parse_schema,
        types::{BaseType, Type, TypeKind, TypeSystemDefinition},
    };
    use std::collections::HashMap;

    fn types(sdl: &str) -> HashMap<String, TypeKind> {
        parse_schema(sdl)
            .unwrap()
            .definitions
            .into_iter()
            .filter_map(|d| match d {
                TypeSystemDefinition::Type(t) => Some((t.node.name.node.to_string(), t.node.kind)),
                _ => None,
            })
            .collect()
    }
    /// `served` is `wanted` or stricter (output position).
    fn at_least(served: &Type, wanted: &Type) -> bool {
        if !wanted.nullable && served.nullable {
            return false;
        }
        match (&served.base, &wanted.base) {
            (BaseType::Named(a), BaseType::Named(b)) => a == b,
            (BaseType::List(a), BaseType::List(b)) => at_least(a, b),
            _ => false,
        }
    }

    let served = types(&confab::graphql::sdl());
    let contract = types(include_str!("contract.graphql"));
    let mut problems = Vec::new();
    for (name, kind) in &contract {
        let Some(have) = served.get(name) else {
            problems.push(format!("type {name} missing"));
            continue;
        };
        match (kind, have) {
            (TypeKind::Object(_), TypeKind::Object(_))
            | (TypeKind::Interface(_), TypeKind::Interface(_)) => {
                let fields = |k: &TypeKind| match k {
                    TypeKind::Object(o) => o.fields.clone(),
                    TypeKind::Interface(i) => i.fields.clone(),
                    _ => Vec::new(),
                };
                let (want_fields, have_fields) = (fields(kind), fields(have));
                for f in &want_fields {
                    let fname = &f.node.name.node;
                    let Some(hf) = have_fields.iter().find(|h| h.node.name.node == *fname) else {
                        problems.push(format!("{name}.{fname} missing"));
                        continue;
                    };
                    if !at_least(&hf.node.ty.node, &f.node.ty.node) {
                        problems.push(format!(
                            "{name}.{fname}: {} is looser than {}",
                            hf.node.ty.node, f.node.ty.node
                        ));
                    }
                    for a in &f.node.arguments {
                        let aname = &a.node.name.node;
                        match hf
                            .node
                            .arguments
                            .iter()
                            .find(|h| h.node.name.node == *aname)
                        {
                            Some(ha) if ha.node.ty.node == a.node.ty.node => {}
                            Some(ha) => problems.push(format!(
                                "{name}.{fname}({aname}): {} != {}",
                                ha.node.ty.node, a.node.ty.node
                            )),
                            None => problems.push(format!("{name}.{fname}({aname}) missing")),
                        }
                    }
                    for ha in &hf.node.arguments {
                        let extra = !f
                            .node
                            .arguments
                            .iter()
                            .any(|a| a.node.name.node == ha.node.name.node);
                        if extra && !ha.node.ty.node.nullable && ha.node.default_value.is_none() {
                            problems.push(format!(
                                "{name}.{fname}({}) added but required",
                                ha.node.name.node
                            ));
                        }
                    }
                }
            }
            (TypeKind::InputObject(want), TypeKind::InputObject(have)) => {
                for f in &want.fields {
                    let fname = &f.node.name.node;
                    match have.fields.iter().find(|h| h.node.name.node == *fname) {
                        Some(h) if h.node.ty.node == f.node.ty.node => {}
                        Some(h) => problems.push(format!(
                            "{name}.{fname}: {} != {}",
                            h.node.ty.node, f.node.ty.node
                        )),
                        None => problems.push(format!("{name}.{fname} missing")),
                    }
                }
                for h in &have.fields {
                    let extra = !want
                        .fields
                        .iter()
                        .any(|f| f.node.name.node == h.node.name.node);
                    if extra && !h.node.ty.node.nullable && h.node.default_value.is_none() {
                        problems.push(format!("{name}.{} added but required", h.node.name.node));
                    }
                }
            }
            (TypeKind::Enum(want), TypeKind::Enum(have)) => {
                for v in &want.values {
                    if !have
                        .values
                        .iter()
                        .any(|h| h.node.value.node == v.node.value.node)
                    {
                        problems.push(format!("{name}.{} missing", v.node.value.node));
                    }
                }
            }
            (TypeKind::Scalar, TypeKind::Scalar) => {}
            _ => problems.push(format!("{name} is a different kind of type")),
        }
    }
    problems.sort();
    assert!(
        problems.is_empty(),
        "schema breaks the contract:\n{}",
        problems.join("\n")
    );
}

//! The host's top-level modules import one another in one direction, from the CLI down to
//! the transport (`docs/design.md`, "Dependency direction on the host"): no module imports
//! one that, directly or not, imports it back.
//!
//! A module's imports are the top-level modules it names as `crate::name` or in a
//! `crate::{a, b::C}` group, comments left out. A dependency the source never names (a `From` impl used
//! through `.into()`) is not seen: it points down only if the impl lives below.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Top-level module → the top-level modules it names.
type Graph = BTreeMap<String, BTreeSet<String>>;

#[test]
fn host_modules_import_one_another_without_cycles() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = import_graph(&src);
    assert!(
        graph.contains_key("transport") && graph["bindings"].contains("transport"),
        "the graph was not read: {graph:?}"
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "host modules import one another in a cycle: {} (each arrow is a `crate::` \
             import; docs/design.md says which way they should point)",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn a_back_import_is_a_cycle() {
    let graph = Graph::from([
        ("cli".into(), BTreeSet::from(["pubsub".into()])),
        ("pubsub".into(), BTreeSet::from(["transport".into()])),
        ("transport".into(), BTreeSet::from(["sandbox".into()])),
        ("sandbox".into(), BTreeSet::from(["pubsub".into()])),
    ]);
    assert_eq!(
        find_cycle(&graph).unwrap(),
        ["pubsub", "transport", "sandbox", "pubsub"]
    );
    let groups = "use crate::{sandbox::{A, b}, transport};\n// crate::cli\nuse crate::Runtime;";
    assert_eq!(
        named_modules(groups),
        BTreeSet::from(["sandbox".to_string(), "transport".to_string()])
    );
}

/// The import graph of the modules under `src` (`lib.rs`, `main.rs` and the crate's
/// top-level modules), only edges to other top-level modules.
fn import_graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in &files {
        let relative = file.strip_prefix(src).expect("found under src");
        let first = relative.components().next().expect("a file has a name");
        let name = first.as_os_str().to_string_lossy();
        let top = name.strip_suffix(".rs").unwrap_or(&name).to_string();
        let text = std::fs::read_to_string(file).expect("a source file is readable");
        let named = named_modules(&text);
        graph.entry(top).or_default().extend(named);
    }
    let modules: BTreeSet<String> = graph.keys().cloned().collect();
    for (module, imports) in graph.iter_mut() {
        imports.retain(|import| import != module && modules.contains(import));
    }
    graph
}

fn rust_files(dir: &Path, files: &mut Vec<std::path::PathBuf>) {
    let entries = std::fs::read_dir(dir).expect("the source directory is readable");
    for entry in entries {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            rust_files(&path, files);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            files.push(path);
        }
    }
}

/// The module names after `crate::` in `text`, comments (`//` to the end of the line)
/// left out; for a group `crate::{a, b::{C, d}}`, its outermost names (`a`, `b`).
fn named_modules(text: &str) -> BTreeSet<String> {
    let code: String = text
        .lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut named = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let mut depth = 0;
            let mut item_start = true;
            for (i, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => item_start = true,
                    c if c.is_whitespace() => {}
                    _ if item_start => {
                        item_start = false;
                        named.extend(module_name(&group[i..]));
                    }
                    _ => {}
                }
            }
        } else {
            named.extend(module_name(rest));
        }
    }
    named
}

/// The module name `text` starts with: lower case, as modules are named (`Runtime` is a
/// type, not a module).
fn module_name(text: &str) -> Option<String> {
    let end = text
        .find(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'))
        .unwrap_or(text.len());
    let name = &text[..end];
    name.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        .then(|| name.to_string())
}

/// A cycle of `graph`, as the modules along it with the first repeated at the end.
fn find_cycle(graph: &Graph) -> Option<Vec<String>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Mark {
        Visiting,
        Done,
    }
    fn visit(
        module: &str,
        graph: &Graph,
        marks: &mut BTreeMap<String, Mark>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        match marks.get(module) {
            Some(Mark::Done) => return None,
            Some(Mark::Visiting) => {
                let start = path.iter().position(|m| m == module).expect("on the path");
                let mut cycle = path[start..].to_vec();
                cycle.push(module.to_string());
                return Some(cycle);
            }
            None => {}
        }
        marks.insert(module.to_string(), Mark::Visiting);
        path.push(module.to_string());
        for import in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(import, graph, marks, path) {
                return Some(cycle);
            }
        }
        path.pop();
        marks.insert(module.to_string(), Mark::Done);
        None
    }
    let mut marks = BTreeMap::new();
    graph
        .keys()
        .find_map(|module| visit(module, graph, &mut marks, &mut Vec::new()))
}

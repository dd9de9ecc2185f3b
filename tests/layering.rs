//! The layers of ARCHITECTURE.md hold: a top-level module of `src/` uses
//! only modules of lower layers (and of its own layer where that layer
//! allows it), and no two modules use each other, however indirectly.
//! Read from the source: every `crate::MODULE` (also in comments, which
//! link to it) and the first segment of each item of `use crate::{...}`.
//! The same holds one level down: the submodules of one module (those of
//! `operator`, of `backend`...) do not use each other in a cycle either,
//! read from `super::SUB` and `crate::MODULE::SUB`. No cluster, no build of
//! the crate needed.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// A layer, bottom up. `siblings`: its modules may use each other.
struct Layer {
    name: &'static str,
    modules: &'static [&'static str],
    siblings: bool,
}

/// ARCHITECTURE.md's table, bottom up.
const LAYERS: &[Layer] = &[
    Layer {
        name: "contract",
        modules: &["api", "agent"],
        siblings: true,
    },
    Layer {
        name: "building blocks",
        modules: &[
            "lease",
            "kubeconfig",
            "metrics",
            "telemetry",
            "progress",
            "workspace",
        ],
        siblings: true,
    },
    Layer {
        name: "credentials",
        modules: &["credentials"],
        siblings: true,
    },
    Layer {
        name: "in the agent's environment",
        modules: &["codex", "project", "source"],
        siblings: true,
    },
    Layer {
        name: "the seam",
        modules: &["backend"],
        siblings: true,
    },
    Layer {
        name: "runs",
        modules: &["runs"],
        siblings: true,
    },
    Layer {
        name: "MCP",
        modules: &["sessions", "sse", "tools", "gateway"],
        siblings: true,
    },
    Layer {
        name: "commands",
        modules: &["serve", "gateway_kube", "operator", "probe"],
        siblings: false,
    },
    Layer {
        name: "flags",
        modules: &["config"],
        siblings: true,
    },
];

/// Modules whose submodules still use each other in a cycle: untangled one
/// at a time (as `operator`'s were), and then taken off this list.
const SUBMODULE_CYCLES_LEFT: &[&str] = &[];

/// Files of `src/` that are no module of their own.
const ROOTS: &[&str] = &["lib", "main"];

type Graph = BTreeMap<String, BTreeSet<String>>;

fn is_ident(c: char) -> bool {
    c.is_ascii_lowercase() || c == '_'
}

/// The leading `[a-z_]+` of `s`.
fn ident(s: &str) -> &str {
    let end = s.find(|c| !is_ident(c)).unwrap_or(s.len());
    &s[..end]
}

/// The first path segment of each top-level item of a `use crate::{...}`
/// group, `rest` starting right after its `{`.
fn group_heads(rest: &str) -> Vec<String> {
    let mut heads = Vec::new();
    let (mut depth, mut at_item) = (1usize, true);
    for (i, c) in rest.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
            }
            ',' if depth == 1 => at_item = true,
            c if c.is_whitespace() => {}
            _ if at_item && depth == 1 => {
                at_item = false;
                let head = ident(&rest[i..]);
                if !head.is_empty() {
                    heads.push(head.to_owned());
                }
            }
            _ => {}
        }
    }
    heads
}

/// The modules `text` names through `crate::`.
fn references(text: &str) -> BTreeSet<String> {
    references_through(text, "crate::")
}

/// The first segments of the paths `text` names through `prefix` (which
/// ends in `::`): `prefix` followed by a name or by a `{...}` group. A
/// `prefix` that is the tail of a longer path (`x::crate::`) does not count.
fn references_through(text: &str, prefix: &str) -> BTreeSet<String> {
    let mut refs = BTreeSet::new();
    for (at, _) in text.match_indices(prefix) {
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| is_ident(c) || c == ':' || c.is_ascii_digit()) {
            continue;
        }
        let rest = &text[at + prefix.len()..];
        if let Some(group) = rest.strip_prefix('{') {
            refs.extend(group_heads(group));
        } else {
            let head = ident(rest);
            if !head.is_empty() {
                refs.insert(head.to_owned());
            }
        }
    }
    refs
}

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Which top-level module uses which, from the files under `src/`.
fn graph() -> Graph {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let module_of = |p: &Path| {
        let rel = p.strip_prefix(&src).unwrap();
        let first = rel.components().next().unwrap().as_os_str();
        first.to_str().unwrap().trim_end_matches(".rs").to_owned()
    };
    let modules: BTreeSet<String> = files
        .iter()
        .map(|p| module_of(p))
        .filter(|m| !ROOTS.contains(&m.as_str()))
        .collect();
    let mut graph: Graph = modules
        .iter()
        .map(|m| (m.clone(), BTreeSet::new()))
        .collect();
    for file in &files {
        let from = module_of(file);
        if ROOTS.contains(&from.as_str()) {
            continue;
        }
        let text = std::fs::read_to_string(file).unwrap();
        let uses = references(&text)
            .into_iter()
            .filter(|to| *to != from && modules.contains(to));
        graph.get_mut(&from).unwrap().extend(uses);
    }
    graph
}

fn show(graph: &Graph) -> String {
    graph
        .iter()
        .map(|(m, uses)| format!("  {m} -> {uses:?}\n"))
        .collect()
}

/// Every cycle through the graph, each once, as a path back to its start.
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    fn walk(
        graph: &Graph,
        start: &str,
        node: &str,
        path: &mut Vec<String>,
        found: &mut Vec<Vec<String>>,
    ) {
        for next in &graph[node] {
            if next == start {
                let mut cycle = path.clone();
                cycle.push(start.to_owned());
                found.push(cycle);
            // Only cycles whose smallest module is `start`, so each is
            // found once.
            } else if next.as_str() > start && !path.contains(next) {
                path.push(next.clone());
                walk(graph, start, next, path, found);
                path.pop();
            }
        }
    }
    let mut found = Vec::new();
    for start in graph.keys() {
        walk(graph, start, start, &mut vec![start.clone()], &mut found);
    }
    found
}

/// Which submodule of the module in `dir` uses which: one graph per
/// directory of `src/`. A file is part of the submodule whose file names it
/// in a `#[path]` (its tests), else of the submodule its name or directory
/// says. `super::SUB` counts in a submodule's own file and its `#[path]`
/// files (there `super::SUB` is the submodule's import of its sibling),
/// `crate::MODULE::SUB` everywhere below the module.
fn submodule_graphs() -> BTreeMap<String, Graph> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let text: BTreeMap<_, _> = files
        .iter()
        .map(|f| (f.clone(), std::fs::read_to_string(f).unwrap()))
        .collect();
    // Each `#[path]` file, with the file that declares it.
    let mut declared_by = BTreeMap::new();
    for (file, content) in &text {
        for (at, _) in content.match_indices("#[path = \"") {
            let rest = &content[at + "#[path = \"".len()..];
            let name = &rest[..rest.find('"').unwrap()];
            declared_by.insert(file.parent().unwrap().join(name), file.clone());
        }
    }
    let mut dirs: Vec<_> = files.iter().filter_map(|f| f.parent()).collect();
    dirs.sort();
    dirs.dedup();
    let mut graphs = BTreeMap::new();
    for dir in dirs.into_iter().filter(|d| *d != src) {
        let module = dir.strip_prefix(&src).unwrap();
        let path = module
            .components()
            .map(|c| c.as_os_str().to_str().unwrap())
            .collect::<Vec<_>>()
            .join("::");
        // The submodule a file of `dir` (or below it) is part of, and
        // whether it is that submodule's own file or one of its `#[path]`
        // files, where `super::` still means `dir`'s module.
        let owner = |file: &Path| -> Option<(String, bool)> {
            let mut file = file.to_path_buf();
            while let Some(declaring) = declared_by.get(&file) {
                file = declaring.clone();
            }
            let rel = file.strip_prefix(dir).ok()?;
            let mut parts = rel.components();
            let first = parts.next()?.as_os_str().to_str()?.trim_end_matches(".rs");
            let own = parts.next().is_none()
                || rel.file_name().is_some_and(|n| n == "mod.rs") && rel.components().count() == 2;
            (first != "mod").then(|| (first.to_owned(), own))
        };
        let mut graph = Graph::new();
        for (file, content) in &text {
            let Some((from, own)) = owner(file) else {
                continue;
            };
            graph.entry(from.clone()).or_default();
            let mut uses = references_through(content, &format!("crate::{path}::"));
            if own {
                uses.extend(references_through(content, "super::"));
            }
            graph
                .get_mut(&from)
                .unwrap()
                .extend(uses.into_iter().filter(|to| *to != from));
        }
        let submodules: BTreeSet<String> = graph.keys().cloned().collect();
        for uses in graph.values_mut() {
            uses.retain(|to| submodules.contains(to));
        }
        graphs.insert(path, graph);
    }
    graphs
}

#[test]
fn no_module_uses_another_that_uses_it() {
    let graph = graph();
    let cycles = cycles(&graph);
    assert!(
        cycles.is_empty(),
        "import cycles between modules of src/:\n{}\nwho uses whom:\n{}",
        cycles
            .iter()
            .map(|c| format!("  {}\n", c.join(" -> ")))
            .collect::<String>(),
        show(&graph)
    );
}

#[test]
fn no_submodule_uses_a_sibling_that_uses_it() {
    let graphs = submodule_graphs();
    assert!(
        graphs
            .get("operator")
            .is_some_and(|g| g.contains_key("reconcile")),
        "the scanner lost the operator's submodules: {graphs:?}"
    );
    let mut problems = String::new();
    for (module, graph) in &graphs {
        let cycles = cycles(graph);
        if SUBMODULE_CYCLES_LEFT.contains(&module.as_str()) {
            if cycles.is_empty() {
                problems +=
                    &format!("  {module} has none left: take it off SUBMODULE_CYCLES_LEFT\n");
            }
            continue;
        }
        for cycle in cycles {
            problems += &format!("  {module}: {}\n", cycle.join(" -> "));
        }
    }
    assert!(
        problems.is_empty(),
        "import cycles between submodules:\n{problems}\nwho uses whom:\n{}",
        graphs
            .iter()
            .map(|(m, g)| format!("{m}:\n{}", show(g)))
            .collect::<String>()
    );
}

#[test]
fn every_module_uses_only_layers_below_it() {
    let graph = graph();
    let layer_of: BTreeMap<&str, usize> = LAYERS
        .iter()
        .enumerate()
        .flat_map(|(i, l)| l.modules.iter().map(move |m| (*m, i)))
        .collect();
    let mut problems = Vec::new();
    for m in graph.keys() {
        if !layer_of.contains_key(m.as_str()) {
            problems.push(format!(
                "{m} is in no layer: give it one here and in ARCHITECTURE.md"
            ));
        }
    }
    for m in layer_of.keys() {
        if !graph.contains_key(*m) {
            problems.push(format!("the layers name {m}, which src/ does not have"));
        }
    }
    for (from, uses) in &graph {
        let Some(&low) = layer_of.get(from.as_str()) else {
            continue;
        };
        for to in uses {
            let Some(&high) = layer_of.get(to.as_str()) else {
                continue;
            };
            let (a, b) = (&LAYERS[low], &LAYERS[high]);
            if high > low {
                problems.push(format!(
                    "{from} ({}) uses {to}, of a layer above it ({})",
                    a.name, b.name
                ));
            } else if high == low && !a.siblings {
                problems.push(format!(
                    "{from} uses {to}: modules of the layer {} do not use each other",
                    a.name
                ));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "{}\nwho uses whom:\n{}",
        problems.join("\n"),
        show(&graph)
    );
}

#[test]
fn the_scanner_reads_paths_and_groups() {
    let text = "use crate::api::crd::CodexAgent;\n\
                use crate::{\n    backend::{self, Backend},\n    runs, tools::X,\n};\n\
                /// See [`crate::sse`].\n\
                let x = crate::Foo;";
    let want = ["api", "backend", "runs", "sse", "tools"];
    assert_eq!(references(text), want.map(str::to_owned).into());
    let sub = "use super::{desired, settings::Resolved};\n\
               use super::status::get_condition;\n\
               let a = super::live_runs::runs_going(); use super::*;\n\
               use crate::operator::{plan::Plan, shared};\n\
               let b = other::super::x; let c = crate::operator::act::act;";
    assert_eq!(
        references_through(sub, "super::"),
        ["desired", "live_runs", "settings", "status"]
            .map(str::to_owned)
            .into()
    );
    assert_eq!(
        references_through(sub, "crate::operator::"),
        ["act", "plan", "shared"].map(str::to_owned).into()
    );
    let mut g = Graph::new();
    g.insert("a".into(), ["b".into()].into());
    g.insert("b".into(), ["c".into()].into());
    g.insert("c".into(), ["a".into(), "b".into()].into());
    assert_eq!(
        cycles(&g),
        [vec!["a", "b", "c", "a"], vec!["b", "c", "b"]]
            .map(|c| c.into_iter().map(str::to_owned).collect::<Vec<_>>())
    );
}

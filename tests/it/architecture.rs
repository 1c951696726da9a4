//! The layout keeps its promises (README, Architecture): the rooms of `src/` depend on each
//! other in one direction only, and SQL lives in `store/`. Read from the source itself, so a
//! `use` that breaks the rule fails here rather than in a reviewer's head.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            out.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out
}

/// The code of a file without its comments and its `#[cfg(test)] mod tests` block: what the
/// product itself uses.
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).expect("a source file is readable");
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => &text[..],
    };
    text.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level room a file belongs to (`store` for src/store/queue/claim.rs).
fn room(src: &Path, path: &Path) -> String {
    let first = path
        .strip_prefix(src)
        .expect("below src/")
        .components()
        .next()
        .expect("a first component");
    let name = first.as_os_str().to_string_lossy();
    name.trim_end_matches(".rs").to_string()
}

/// room -> the rooms its code names as `crate::<room>`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for path in sources(&src) {
        let from = room(&src, &path);
        if from == "main" || from == "lib" {
            continue;
        }
        let code = code(&path);
        let uses = graph.entry(from.clone()).or_default();
        for (i, _) in code.match_indices("crate::") {
            let to: String = code[i + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !to.is_empty() && to != from {
                uses.insert(to);
            }
        }
    }
    graph
}

/// Whether `to` is reachable from `from` (through at least one edge).
fn reaches(graph: &BTreeMap<String, BTreeSet<String>>, from: &str, to: &str) -> bool {
    let mut seen = BTreeSet::new();
    let mut stack: Vec<&str> = graph
        .get(from)
        .into_iter()
        .flatten()
        .map(|s| s.as_str())
        .collect();
    while let Some(next) = stack.pop() {
        if next == to {
            return true;
        }
        if seen.insert(next) {
            stack.extend(graph.get(next).into_iter().flatten().map(|s| s.as_str()));
        }
    }
    false
}

#[test]
fn the_rooms_of_src_import_each_other_in_one_direction() {
    let graph = graph();
    assert!(
        graph.contains_key("worker") && graph.contains_key("outbound"),
        "{graph:?}"
    );
    let cycles: Vec<&String> = graph.keys().filter(|m| reaches(&graph, m, m)).collect();
    assert!(
        cycles.is_empty(),
        "import cycle through {cycles:?}: {graph:?}"
    );
    // The queue and the rest of the SQL know nothing of who calls them; one callback out
    // knows nothing of the worker that schedules it; the domain types depend on nothing.
    for (low, high) in [
        ("store", "worker"),
        ("store", "outbound"),
        ("store", "api"),
        ("outbound", "worker"),
        ("outbound", "api"),
        ("model", "store"),
        ("model", "outbound"),
    ] {
        assert!(
            !reaches(&graph, low, high),
            "{low} must not use {high}: {graph:?}"
        );
    }
}

#[test]
fn sql_is_written_in_store_only() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let outside: Vec<String> = sources(&src)
        .into_iter()
        .filter(|p| room(&src, p) != "store")
        .filter(|p| {
            let code = code(p);
            [
                "db::query",
                "sqlx::query",
                "query_as(",
                "query_scalar(",
                "QueryBuilder",
            ]
            .iter()
            .any(|s| code.contains(s))
        })
        .map(|p| p.display().to_string())
        .collect();
    assert!(outside.is_empty(), "SQL outside src/store: {outside:?}");
}

#[test]
fn no_source_file_is_over_400_lines_without_saying_why() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let long: Vec<String> = sources(&src)
        .into_iter()
        .filter_map(|p| {
            let text = std::fs::read_to_string(&p).expect("a source file is readable");
            let lines = text.lines().count();
            // The reason, where there is one, stands in the file's opening doc comment.
            let explained = text.lines().take(10).any(|l| l.contains("over 400 lines"));
            (lines > 400 && !explained).then(|| format!("{} ({lines} lines)", p.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "split these, or say at their top why not: {long:?}"
    );
}

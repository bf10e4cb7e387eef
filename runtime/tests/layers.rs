//! The layers of `runtime/src` (see ARCHITECTURE.md): reads every `crate::…` and `super::…`
//! path of the sources (outside comments and `#[cfg(test)]` modules), maps each module to its
//! layer, and fails on an edge the table below does not allow, or on a table with a circle.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

/// Each layer with the module prefixes it holds (the longest prefix wins) and the layers it
/// may import, besides itself. Arrows run down: a layer lists only layers below it.
#[rustfmt::skip]
const LAYERS: &[(&str, &[&str], &[&str])] = &[
    // The crate root re-exports from every layer and holds `__private`, what the macros call.
    ("root", &[""], &[
        "write_behind", "facade", "memo", "registry", "tier", "load", "cache", "shard",
        "policy", "flight", "key", "trace", "removal", "stats", "expiry",
    ]),
    // Beside the memo layer, using caches and memos from above.
    ("write_behind", &["write_behind"], &["memo", "cache"]),
    // The public faces of the Redis and disk tiers: configuration and what `redis(...)` and
    // `disk` expand to.
    ("facade", &["redis", "disk"], &["tier"]),
    // What `#[cached]` uses: the memo, its shapes, warm-up and writers.
    ("memo", &["memo", "warm", "writer"], &["registry", "tier", "load", "cache", "flight", "key", "stats", "expiry"]),
    // The registry and its exposition know memos only through `ErasedMemo`, never a tier.
    ("registry", &["memo::registry", "memo::exposition", "memo::metrics"], &["stats"]),
    // Tiers: the seam (`tier`) and each tier (`tier::redis`); they see the core from above.
    ("tier", &["tier"], &["cache", "flight", "stats"]),
    // The core: nothing in it imports a tier or the memo layer.
    ("load", &["cache::load", "cache::batch"], &["cache", "shard", "flight", "key", "trace", "stats", "expiry"]),
    ("cache", &["cache", "cache::builder"], &["shard", "flight", "policy", "trace", "removal", "stats", "expiry"]),
    ("shard", &["cache::shard"], &["policy", "trace", "removal", "stats", "expiry"]),
    ("policy", &["cache::policy"], &["stats"]),
    // Leaves: flight is a primitive over `cache::sync`, and knows nothing of caches.
    ("flight", &["cache::flight", "cache::sync"], &[]),
    // The key a load is asked for, borrowed, and the owned key it becomes on a miss.
    ("key", &["cache::key"], &[]),
    ("trace", &["cache::trace"], &["removal"]),
    ("removal", &["cache::removal"], &[]),
    ("stats", &["cache::stats"], &[]),
    // Time: expiry, the clocks, and the stopwatch that stands in for `Instant` where std has none.
    ("expiry", &["cache::expiry", "cache::stopwatch"], &[]),
];

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Every source file with its module path (`cache::flight`; `` for `lib.rs`).
fn collect_modules(dir: &Path, prefix: &[String], out: &mut BTreeMap<String, PathBuf>) {
    for entry in fs::read_dir(dir).expect("readable src") {
        let path = entry.expect("dir entry").path();
        let name = path.file_stem().unwrap().to_string_lossy().into_owned();
        if path.is_dir() {
            let mut inner = prefix.to_vec();
            inner.push(name);
            collect_modules(&path, &inner, out);
        } else if path.extension().is_some_and(|ext| ext == "rs") {
            let mut segments = prefix.to_vec();
            if name != "mod" && name != "lib" {
                segments.push(name);
            }
            out.insert(segments.join("::"), path);
        }
    }
}

/// The code of a file without comments and without its `#[cfg(test)]` / `#[cfg(all(test, …))]`
/// modules (tests may use anything).
fn code(text: &str) -> String {
    let mut out = String::new();
    let mut lines = text.lines().peekable();
    while let Some(line) = lines.next() {
        let trimmed = line.trim_start();
        let test_attribute =
            trimmed.starts_with("#[cfg(test)]") || trimmed.starts_with("#[cfg(all(test");
        let test_module = lines
            .peek()
            .is_some_and(|next| next.trim_start().starts_with("mod "));
        if test_attribute && test_module {
            // Skip the module: up to the line that closes it at its indentation.
            let indent = line.len() - trimmed.len();
            let close = format!("{}}}", " ".repeat(indent));
            for inner in lines.by_ref() {
                if inner == close {
                    break;
                }
            }
            continue;
        }
        let line = match line.find("//") {
            Some(at) => &line[..at],
            None => line,
        };
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// The paths starting at `at` (just after `crate::` or `super::`): `a::b::C`, or each item of
/// `a::{b::C, D}`, as segment lists.
fn paths_at(code: &str, at: usize, base: Vec<String>, out: &mut Vec<Vec<String>>) {
    let bytes = code.as_bytes();
    let mut segments = base;
    let mut i = at;
    loop {
        if bytes.get(i) == Some(&b'{') {
            // A group: split at top-level commas.
            let mut depth = 0;
            let mut start = i + 1;
            let mut j = i;
            while j < bytes.len() {
                match bytes[j] {
                    b'{' => depth += 1,
                    b'}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    b',' if depth == 1 => {
                        let item = code[start..j].trim_start();
                        let skip = code[start..j].len() - item.len();
                        paths_at(code, start + skip, segments.clone(), out);
                        start = j + 1;
                    }
                    _ => {}
                }
                j += 1;
            }
            let item = code[start..j].trim_start();
            if !item.is_empty() {
                let skip = code[start..j].len() - item.len();
                paths_at(code, start + skip, segments.clone(), out);
            }
            return;
        }
        let ident_end = code[i..]
            .find(|c: char| !(c.is_alphanumeric() || c == '_'))
            .map_or(code.len(), |n| i + n);
        if ident_end == i {
            break;
        }
        segments.push(code[i..ident_end].to_string());
        i = ident_end;
        if code[i..].starts_with("::") {
            i += 2;
        } else {
            break;
        }
    }
    out.push(segments);
}

/// Every `crate::…` and `super::…` path in `code`, made absolute from module `module`.
fn paths(code: &str, module: &str) -> Vec<Vec<String>> {
    let mut out = Vec::new();
    let own: Vec<String> = module
        .split("::")
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    for (at, _) in code.match_indices("crate::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == '$') {
            continue; // `$crate::`, `mycrate::`
        }
        paths_at(code, at + "crate::".len(), Vec::new(), &mut out);
    }
    for (at, _) in code.match_indices("super::") {
        let before = code[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
            continue;
        }
        // `super` of module `a::b` is `a`, in `a/b.rs` as in `a/b/mod.rs`.
        let parent = own[..own.len().saturating_sub(1)].to_vec();
        paths_at(code, at + "super::".len(), parent, &mut out);
    }
    out
}

/// The root's re-exports (`pub use a::b::{C, D};`), by name, to the module they come from.
fn reexports(lib: &str, modules: &BTreeMap<String, PathBuf>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    let code = code(lib);
    for statement in code.split(';') {
        let statement = statement.trim();
        let Some(rest) = statement.strip_prefix("pub use ") else {
            continue;
        };
        let mut found = Vec::new();
        paths_at(rest, 0, Vec::new(), &mut found);
        for path in found {
            let module = resolve(&path, modules);
            if let Some(name) = path.last() {
                names.insert(name.clone(), module);
            }
        }
    }
    names
}

/// The module a path names or names an item of: its longest prefix that is a module.
fn resolve(path: &[String], modules: &BTreeMap<String, PathBuf>) -> String {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].join("::"))
        .find(|prefix| modules.contains_key(prefix))
        .unwrap_or_default()
}

fn layer_of(module: &str) -> &'static str {
    LAYERS
        .iter()
        .flat_map(|(layer, prefixes, _)| prefixes.iter().map(move |prefix| (*layer, *prefix)))
        .filter(|(_, prefix)| {
            prefix.is_empty() || module == *prefix || module.starts_with(&format!("{prefix}::"))
        })
        .max_by_key(|(_, prefix)| prefix.len())
        .map(|(layer, _)| layer)
        .expect("the root layer matches every module")
}

fn allowed(from: &str) -> &'static [&'static str] {
    LAYERS
        .iter()
        .find(|(layer, _, _)| *layer == from)
        .map(|(_, _, allowed)| *allowed)
        .expect("a layer of the table")
}

/// Every edge between two layers: (from layer, to layer) → the imports that make it.
fn layer_edges() -> BTreeMap<(&'static str, &'static str), BTreeSet<String>> {
    let mut modules = BTreeMap::new();
    collect_modules(&src(), &[], &mut modules);
    let lib = fs::read_to_string(src().join("lib.rs")).expect("lib.rs");
    let reexports = reexports(&lib, &modules);
    let mut edges: BTreeMap<_, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &modules {
        let text = fs::read_to_string(file).expect("readable source");
        for path in paths(&code(&text), module) {
            let mut target = resolve(&path, &modules);
            if target.is_empty() && !module.is_empty() {
                // `crate::Cache`: where the root's re-export comes from.
                if let Some(from) = path.first().and_then(|name| reexports.get(name)) {
                    target = from.clone();
                }
            }
            let (from, to) = (layer_of(module), layer_of(&target));
            if from != to {
                let shown = format!("{module} -> crate::{}", path.join("::"));
                edges.entry((from, to)).or_default().insert(shown);
            }
        }
    }
    edges
}

#[test]
fn every_import_runs_down_the_layer_table() {
    let mut wrong = Vec::new();
    for ((from, to), imports) in layer_edges() {
        if !allowed(from).contains(&to) {
            for import in imports {
                wrong.push(format!("{from} may not import {to}: {import}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "imports against the layer table (runtime/tests/layers.rs, ARCHITECTURE.md):\n{}",
        wrong.join("\n")
    );
}

#[test]
fn the_layer_table_has_no_circle() {
    // Depth-first search over the allowed edges.
    fn visit(layer: &'static str, path: &mut Vec<&'static str>, done: &mut BTreeSet<&'static str>) {
        if let Some(start) = path.iter().position(|l| *l == layer) {
            panic!("a circle in the layer table: {:?}", &path[start..]);
        }
        if !done.insert(layer) {
            return;
        }
        path.push(layer);
        for next in allowed(layer) {
            visit(next, path, done);
        }
        path.pop();
    }
    let mut done = BTreeSet::new();
    for (layer, _, _) in LAYERS {
        visit(layer, &mut Vec::new(), &mut done);
    }
}

#[test]
fn every_module_has_a_layer_and_leaves_import_no_upper_layer() {
    let mut modules = BTreeMap::new();
    collect_modules(&src(), &[], &mut modules);
    for module in modules.keys() {
        let layer = layer_of(module);
        assert!(
            module.is_empty() || layer != "root",
            "module `{module}` is in no layer of the table"
        );
    }
    for leaf in ["flight", "stats", "expiry", "removal"] {
        assert!(allowed(leaf).is_empty(), "{leaf} is a leaf");
    }
    // Nothing in the core imports a tier or the memo layer.
    for core in [
        "load", "cache", "shard", "policy", "flight", "trace", "stats", "expiry",
    ] {
        for above in ["tier", "facade", "memo", "registry", "write_behind"] {
            assert!(
                !allowed(core).contains(&above),
                "{core} may not import {above}"
            );
        }
    }
    assert!(
        !allowed("registry").contains(&"tier"),
        "the registry knows no tier"
    );
}

//! The modules of `shared/src` stack in one direction: leaf types and errors at the bottom, SQL
//! and crypto above them, use-cases above those, wiring at the top. A module that names another
//! (a path outside comments and unit tests) depends on it, and no chain of dependencies may come
//! back to where it started: this test fails with the cycle when one does. The aggregates'
//! folders are read module by module (`accounts` is `accounts/mod.rs`, `accounts::store` is
//! `accounts/store.rs`), so an aggregate's SQL is held below its use-cases too.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// The folders read as one module: every endpoint of `handlers/` is the one module `handlers`.
const WHOLE: [&str; 1] = ["handlers"];

/// The aggregates: folders of use-cases (`mod.rs`, and any module but `store`) over their SQL
/// (`store`).
const AGGREGATES: [&str; 5] = ["accounts", "sessions", "links", "ops", "passkeys"];

/// The wiring at the top, which no use-case and no SQL may name.
const TOP: [&str; 2] = ["handlers", "runtime"];

/// The crate's modules, each as its path from the crate's root (`["accounts", "store"]`) and its
/// file. The root (`lib.rs`, a list of modules) and the binaries in `src/bin`, which use the
/// crate from outside, are left out.
fn modules(dir: &Path, path: &[String], found: &mut Vec<(Vec<String>, std::path::PathBuf)>) {
    for entry in std::fs::read_dir(dir).expect("a source folder lists") {
        let file = entry.expect("an entry").path();
        let name = file.file_stem().and_then(|stem| stem.to_str()).expect("a file name").to_owned();
        if file.is_dir() && !(path.is_empty() && name == "bin") {
            modules(&file, &[path, &[name]].concat(), found);
        } else if file.extension().is_some_and(|extension| extension == "rs") {
            let module = match name.as_str() {
                "mod" => path.to_vec(),
                "lib" if path.is_empty() => continue,
                _ => [path, &[name]].concat(),
            };
            found.push((module, file));
        }
    }
}

/// The node a module counts as: its path, or the folder of [`WHOLE`] it is in.
fn node(module: &[String]) -> String {
    match module.first() {
        Some(first) if WHOLE.contains(&first.as_str()) => first.clone(),
        _ => module.join("::"),
    }
}

/// The paths written in `code`, as their segments: `a::b::c`, with `{...}` groups expanded
/// (`crate::x::{self, y::Z}` is `crate::x::self` and `crate::x::y::Z`).
fn paths(code: &str) -> Vec<Vec<String>> {
    fn is_ident(byte: u8) -> bool {
        byte.is_ascii_alphanumeric() || byte == b'_'
    }
    /// Reads the path starting at `at`, prefixed by `prefix`, into `found`; returns where it ends.
    fn read(bytes: &[u8], mut at: usize, prefix: Vec<String>, found: &mut Vec<Vec<String>>) -> usize {
        let mut segments = prefix;
        loop {
            let start = at;
            while at < bytes.len() && is_ident(bytes[at]) {
                at += 1;
            }
            segments.push(String::from_utf8_lossy(&bytes[start..at]).into_owned());
            if !bytes[at..].starts_with(b"::") {
                break;
            }
            at += 2;
            if bytes.get(at) == Some(&b'{') {
                at += 1;
                loop {
                    while at < bytes.len() && !is_ident(bytes[at]) && bytes[at] != b'}' {
                        at += 1;
                    }
                    if at >= bytes.len() || bytes[at] == b'}' {
                        return at + 1;
                    }
                    at = read(bytes, at, segments.clone(), found);
                    // Past what follows the item (`as _`) up to the next item or the group's end.
                    let mut depth = 0;
                    while at < bytes.len() && !(depth == 0 && matches!(bytes[at], b',' | b'}')) {
                        match bytes[at] {
                            b'{' => depth += 1,
                            b'}' => depth -= 1,
                            _ => {}
                        }
                        at += 1;
                    }
                }
            }
        }
        found.push(segments);
        at
    }
    let bytes = code.as_bytes();
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let starts = (bytes[at].is_ascii_alphabetic() || bytes[at] == b'_')
            && (at == 0 || !(is_ident(bytes[at - 1]) || bytes[at - 1] == b':'));
        at = if starts { read(bytes, at, Vec::new(), &mut found) } else { at + 1 };
    }
    found
}

/// The nodes that `code`, the source of `module`, names among the crate's `known` modules:
/// through `crate::` paths, `super::` and `self::` paths, and paths that start with one of the
/// module's own children (`store::admit_login` in `accounts`). A path names the longest known
/// module it starts with.
fn uses(module: &[String], code: &str, known: &BTreeSet<Vec<String>>) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    for path in paths(code) {
        let (mut base, rest) = match path[0].as_str() {
            "crate" => (Vec::new(), &path[1..]),
            "self" => (module.to_vec(), &path[1..]),
            "super" => (module.to_vec(), &path[..]),
            _ if path.len() > 1 && known.contains(&[module, &path[..1]].concat()) => {
                (module.to_vec(), &path[..])
            }
            _ => continue,
        };
        let mut rest = rest.iter().peekable();
        while rest.peek().is_some_and(|segment| *segment == "super") {
            base.pop();
            rest.next();
        }
        let full: Vec<String> = base.into_iter().chain(rest.cloned()).collect();
        let named =
            (1..=full.len()).rev().map(|length| &full[..length]).find(|prefix| known.contains(*prefix));
        if let Some(named) = named.map(node).filter(|named| *named != node(module)) {
            used.insert(named);
        }
    }
    used
}

/// The code of a source file that counts: no comment lines, and nothing from its unit tests on.
fn code(text: &str) -> String {
    let mut code = String::new();
    for line in text.lines() {
        let line = line.trim_start();
        if line.starts_with("#[cfg(test)]") {
            break; // the unit tests at the end of the file
        }
        if !line.starts_with("//") {
            code.push_str(line);
            code.push('\n');
        }
    }
    code
}

/// Each module's dependencies on the crate's other modules.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let mut found = Vec::new();
    modules(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"), &[], &mut found);
    let known: BTreeSet<Vec<String>> = found.iter().map(|(module, _)| module.clone()).collect();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for (module, file) in &found {
        let text = std::fs::read_to_string(file).expect("a source file");
        graph.entry(node(module)).or_default().extend(uses(module, &code(&text), &known));
    }
    graph
}

/// Whether `module` holds use-cases: an aggregate, or a module of one but its `store`.
fn is_use_case(module: &str) -> bool {
    let mut segments = module.split("::");
    AGGREGATES.contains(&segments.next().unwrap_or_default()) && segments.last() != Some("store")
}

/// Whether `module` is an aggregate's SQL.
fn is_store(module: &str) -> bool {
    AGGREGATES.iter().any(|aggregate| module == format!("{aggregate}::store"))
}

/// A cycle in `graph`, as the modules along it, if there is one.
fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        module: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(start) = path.iter().position(|seen| seen == module) {
            let mut cycle = path[start..].to_vec();
            cycle.push(module.to_owned());
            return Some(cycle);
        }
        if done.contains(module) {
            return None;
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.insert(module.to_owned());
        None
    }
    let mut done = BTreeSet::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

#[test]
fn no_module_of_the_shared_crate_depends_on_itself_through_others() {
    let graph = dependencies();
    assert!(graph.len() > 10, "the modules were found: {:?}", graph.keys());
    if let Some(cycle) = find_cycle(&graph) {
        panic!("import cycle: {}", cycle.join(" -> "));
    }
}

#[test]
fn the_errors_and_the_leaf_types_depend_on_nothing_above_them() {
    let graph = dependencies();
    for (module, allowed) in [("error", &[][..]), ("domain", &["error"][..]), ("issuer", &[][..])] {
        let used: Vec<&String> =
            graph[module].iter().filter(|name| !allowed.contains(&name.as_str())).collect();
        assert!(used.is_empty(), "{module} depends on {used:?}");
    }
}

#[test]
fn an_aggregates_sql_depends_on_no_use_case_and_not_on_the_wiring() {
    let graph = dependencies();
    let stores: Vec<&String> = graph.keys().filter(|module| is_store(module)).collect();
    assert_eq!(stores.len(), AGGREGATES.len(), "every aggregate's store was found: {stores:?}");
    let above: Vec<(&String, &String)> = stores
        .into_iter()
        .flat_map(|store| graph[store].iter().map(move |name| (store, name)))
        .filter(|(_, name)| is_use_case(name) || TOP.contains(&name.as_str()))
        .collect();
    assert!(above.is_empty(), "SQL that depends on a floor above it (module, dependency): {above:?}");
}

#[test]
fn no_use_case_depends_on_the_handlers_or_the_runtime() {
    let graph = dependencies();
    let use_cases: Vec<&String> = graph.keys().filter(|module| is_use_case(module)).collect();
    assert!(use_cases.len() >= AGGREGATES.len(), "the use-cases were found: {use_cases:?}");
    let above: Vec<(&String, &String)> = use_cases
        .into_iter()
        .flat_map(|module| graph[module].iter().map(move |name| (module, name)))
        .filter(|(_, name)| TOP.contains(&name.as_str()))
        .collect();
    assert!(above.is_empty(), "use-cases that depend on the wiring (module, dependency): {above:?}");
}

#[test]
fn the_folders_are_read_module_by_module_and_the_handlers_as_one() {
    let graph = dependencies();

    assert!(graph.contains_key("accounts::store"), "{:?}", graph.keys());
    assert!(graph["accounts"].contains("accounts::store"), "{:?}", graph["accounts"]);
    assert!(graph["accounts::store"].contains("sessions::store"), "{:?}", graph["accounts::store"]);
    assert!(graph["handlers"].contains("accounts"), "{:?}", graph["handlers"]);
    assert!(!graph.keys().any(|module| module.starts_with("handlers::")), "{:?}", graph.keys());
}

#[test]
fn super_self_child_and_grouped_paths_are_read() {
    let module = |path: &str| path.split("::").map(str::to_owned).collect::<Vec<String>>();
    let set = |names: &[&str]| names.iter().map(|name| (*name).to_owned()).collect::<BTreeSet<String>>();
    let known: BTreeSet<Vec<String>> =
        ["a", "a::store", "a::b", "c", "c::store", "d"].into_iter().map(module).collect();
    // A bare `store::` in `a::b` would be a child of `a::b`, which has none: it names nothing.
    let code = "use super::Thing;\nuse crate::{d, c::store::{self, X}};\nlet x = store::f();\n";

    assert_eq!(uses(&module("a::b"), code, &known), set(&["a", "c::store", "d"]));
    assert_eq!(uses(&module("a"), "self::store::f(); b::g();", &known), set(&["a::b", "a::store"]));
    assert_eq!(uses(&module("a::store"), "super::super::c::h();", &known), set(&["c"]));
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
            .into_iter()
            .map(|(module, used)| (module.to_owned(), used.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

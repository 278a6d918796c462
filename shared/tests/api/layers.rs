//! The modules of `shared/src` stack in one direction: leaf types and errors at the bottom, SQL
//! and crypto above them, use-cases above those, wiring at the top. A module that names another
//! (`crate::x` outside comments and unit tests) depends on it, and no chain of dependencies may
//! come back to where it started: this test fails with the cycle when one does.
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// Each module's dependencies on the crate's other modules. `handlers/*` count as the one
/// module `handlers`; the binaries in `src/bin` use the crate from outside and are left out.
fn dependencies() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = Vec::new();
    for (dir, module) in [(src.clone(), None), (src.join("handlers"), Some("handlers"))] {
        for entry in std::fs::read_dir(&dir).expect("src/ lists") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|extension| extension == "rs") {
                let stem = path.file_stem().and_then(|stem| stem.to_str()).expect("a file name").to_owned();
                files.push((module.map_or(stem, str::to_owned), path));
            }
        }
    }
    for (module, path) in files {
        let text = std::fs::read_to_string(&path).expect("a source file");
        let used = graph.entry(module.clone()).or_default();
        for line in text.lines() {
            let code = line.trim_start();
            if code.starts_with("#[cfg(test)]") {
                break; // the unit tests at the end of the file
            }
            if code.starts_with("//") {
                continue;
            }
            for (index, _) in code.match_indices("crate::") {
                let name: String = code[index + "crate::".len()..]
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() && name != module {
                    used.insert(name);
                }
            }
        }
    }
    graph
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
fn a_cycle_is_found_when_there_is_one() {
    let graph: BTreeMap<String, BTreeSet<String>> =
        [("a", vec!["b"]), ("b", vec!["c"]), ("c", vec!["a"]), ("d", vec![])]
            .into_iter()
            .map(|(module, used)| (module.to_owned(), used.into_iter().map(str::to_owned).collect()))
            .collect();
    assert_eq!(find_cycle(&graph), Some(vec!["a".into(), "b".into(), "c".into(), "a".into()]));
}

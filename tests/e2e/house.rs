//! The house rules that keep one list of functions: template.yaml names the functions (with
//! their routes, sizes and the secrets each reads), and everything else derives from it. A new
//! endpoint touches its handler module and its line in `shared::handlers`' `endpoints!`, its
//! binary (`functions/src/bin/<name>.rs` and its `[[bin]]`), template.yaml, openapi.yaml, its
//! tests, its sample event and the docs: never a script, a tool or a template check.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use local_lambda::{FunctionSpec, RouteSpec, Template};

use crate::helpers::REGION;

fn repository() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("the repository")
}

fn functions() -> Vec<FunctionSpec> {
    Template::load(&repository().join("template.yaml"), REGION).expect("template.yaml").functions
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|error| panic!("{}: {error}", path.display()))
}

/// The `[[bin]]` entries of functions/Cargo.toml: (name, whether its test and bench harnesses are
/// off). The manifest's `[[bin]]` tables are plain `key = value` lines.
fn declared_binaries() -> Vec<(String, bool)> {
    let mut declared: Vec<(String, u8)> = Vec::new();
    let mut in_bin = false;
    for line in read(&repository().join("functions/Cargo.toml")).lines().map(str::trim) {
        if line.starts_with('[') {
            in_bin = line == "[[bin]]";
            if in_bin {
                declared.push((String::new(), 0));
            }
        } else if let (true, Some((key, value)), Some(last)) =
            (in_bin, line.split_once('='), declared.last_mut())
        {
            match key.trim() {
                "name" => last.0 = value.trim().trim_matches('"').to_owned(),
                "test" | "bench" if value.trim() == "false" => last.1 += 1,
                _ => {}
            }
        }
    }
    declared.into_iter().map(|(name, off)| (name, off == 2)).collect()
}

#[test]
fn every_function_of_the_template_has_its_binary_and_sample_event_and_nothing_else_does() {
    let root = repository();
    let binaries: BTreeSet<String> = functions().into_iter().map(|function| function.binary).collect();
    assert!(binaries.len() > 10, "the template's functions were read: {binaries:?}");

    let declared = declared_binaries();
    let names: BTreeSet<String> = declared.iter().map(|(name, _)| name.clone()).collect();
    assert_eq!(names, binaries, "functions/Cargo.toml's [[bin]] entries against template.yaml's functions");
    let harnessed: Vec<&String> = declared.iter().filter(|(_, off)| !off).map(|(name, _)| name).collect();
    assert!(
        harnessed.is_empty(),
        "[[bin]] entries without `test = false` and `bench = false`: {harnessed:?}"
    );

    let sources: BTreeSet<String> = std::fs::read_dir(root.join("functions/src/bin"))
        .expect("functions/src/bin")
        .map(|entry| entry.expect("an entry").path())
        .filter_map(|path| path.file_stem().and_then(|stem| stem.to_str()).map(str::to_owned))
        .collect();
    assert_eq!(sources, binaries, "functions/src/bin/*.rs against template.yaml's functions");

    for binary in &binaries {
        let event = root.join("events").join(format!("{binary}.json"));
        assert!(event.is_file(), "{} is missing: every function has a sample event", event.display());
    }
}

/// `METHOD /path` of every operation in openapi.yaml.
fn documented_routes() -> BTreeSet<String> {
    let spec: serde_yaml::Value =
        serde_yaml::from_str(&read(&repository().join("openapi.yaml"))).expect("YAML");
    let paths = spec.get("paths").and_then(serde_yaml::Value::as_mapping).expect("openapi.yaml has paths");
    let mut routes = BTreeSet::new();
    for (path, operations) in paths {
        for (method, _) in operations.as_mapping().into_iter().flatten() {
            let method = method.as_str().expect("a method");
            if ["get", "put", "post", "delete", "patch", "head", "options"].contains(&method) {
                routes.insert(format!("{} {}", method.to_uppercase(), path.as_str().expect("a path")));
            }
        }
    }
    routes
}

#[test]
fn the_templates_routes_are_exactly_the_documented_operations() {
    let routed: BTreeSet<String> =
        functions().iter().flat_map(|function| function.routes.iter().map(RouteSpec::key)).collect();
    assert_eq!(
        routed,
        documented_routes(),
        "template.yaml's HttpApi routes against openapi.yaml's operations"
    );
}

/// The ways a function's name can be typed: its binary (`revoke-session`), its logical id
/// (`RevokeSessionFunction`), and the binary in snake, camel and Pascal case.
fn spellings(function: &FunctionSpec) -> Vec<String> {
    let words: Vec<&str> = function.binary.split('-').collect();
    let capitalised: Vec<String> = words.iter().map(|word| word[..1].to_uppercase() + &word[1..]).collect();
    let mut spellings = vec![
        function.binary.clone(),
        function.logical_id.clone(),
        words.join("_"),
        words[0].to_owned() + &capitalised[1..].concat(),
        capitalised.concat(),
    ];
    spellings.sort();
    spellings.dedup();
    spellings
}

/// The folders a path to a binary, a zip or an event passes through.
const ARTIFACT_FOLDERS: [&str; 6] = ["target/", "lambda/", "events/", "bin/", "debug/", "release/"];

/// The whitespace- or quote-delimited token that ends `head`.
fn last_token(head: &str) -> &str {
    head.rsplit(|c: char| c.is_whitespace() || "\"'(=,{[".contains(c)).next().unwrap_or_default()
}

/// Where `spelling` occurs in `text` as a function's name rather than as part of a word, a route,
/// a table or a type: a logical id anywhere; a name of several words as a whole identifier,
/// unless it names a Rust item (`MailKind::VerifyEmail`, domain code); a one-word name where a
/// tool would use it as a name: a quoted string that does not index a value (`"login"`, `{"login":
/// 512}`, not `body["sessions"]`) or name a table, a path to a binary, zip or event
/// (`target/debug/login`, `events/login.json`), a cargo argument (`-p login`, `--bin=login`), a
/// handler's module (`handlers::login`), or, in a shell script or the Makefile, a bare word of
/// code (`for f in login logout`).
fn occurrences(
    text: &str,
    spelling: &str,
    one_word: bool,
    shell: &[bool],
    tables: &BTreeSet<String>,
) -> Vec<usize> {
    let is_name = |c: char| c.is_ascii_alphanumeric() || c == '_' || c == '-';
    let mut found = Vec::new();
    for (index, _) in text.match_indices(spelling) {
        let (head, tail) = (&text[..index], &text[index + spelling.len()..]);
        let before = head.chars().next_back();
        let after = tail.chars().next();
        if before.is_some_and(is_name) || after.is_some_and(is_name) {
            continue;
        }
        let named = if one_word {
            let quoted = matches!(before, Some('"' | '\'')) && before == after;
            let closed = tail.get(1..).unwrap_or_default();
            let index_key = (head.ends_with("[\"") || head.ends_with("['")) && closed.starts_with(']');
            let path = before == Some('/')
                && ARTIFACT_FOLDERS.iter().any(|folder| last_token(head).contains(folder));
            let argument = ["--bin ", "--bin=", "-p ", "--package ", "--package="]
                .iter()
                .any(|flag| head.ends_with(flag));
            let module = head.ends_with("handlers::");
            let line_start = head.rfind('\n').map_or(0, |at| at + 1);
            let code = head[line_start..].split('#').next().unwrap_or_default();
            let shell_word = shell.get(index).copied().unwrap_or(false)
                && code.len() == head.len() - line_start
                && !code.trim_start().is_empty()
                && matches!(before, Some(' ' | '\t' | '('))
                && matches!(after, None | Some(' ' | '\n' | ';' | ')'))
                && code.matches('"').count() % 2 == 0
                && code.matches('\'').count() % 2 == 0;
            (quoted && !index_key && !tables.contains(spelling)) || path || argument || module || shell_word
        } else {
            !head.ends_with("::") || head.ends_with("handlers::")
        };
        if named {
            found.push(index);
        }
    }
    found
}

/// The tables the migrations create: a function named like one (`sessions`) is not named by
/// a tool that names the table.
fn tables() -> BTreeSet<String> {
    let mut tables = BTreeSet::new();
    for entry in std::fs::read_dir(repository().join("migrations")).expect("migrations/") {
        let text = read(&entry.expect("an entry").path()).to_lowercase();
        for (index, _) in text.match_indices("create table ") {
            let rest = text[index + "create table ".len()..].trim_start_matches("if not exists ");
            tables.insert(rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect());
        }
    }
    tables
}

/// The files of the tools, scripts and template checks, which must derive the list of functions.
fn tool_files() -> Vec<PathBuf> {
    let root = repository();
    let mut files = vec![root.join("Makefile")];
    let mut folders: Vec<PathBuf> = [
        "scripts",
        "tools",
        "tests/template",
        "tests/support",
        "tests/e2e/rehearse",
        "tests/dev-run",
        "dev",
        ".ci",
    ]
    .iter()
    .map(|folder| root.join(folder))
    .collect();
    while let Some(folder) = folders.pop() {
        for entry in
            std::fs::read_dir(&folder).unwrap_or_else(|error| panic!("{}: {error}", folder.display()))
        {
            let path = entry.expect("an entry").path();
            let name = path.file_name().and_then(|name| name.to_str()).unwrap_or_default();
            if path.is_dir() {
                if !["target", "__pycache__"].contains(&name) {
                    folders.push(path);
                }
            } else if !name.ends_with(".md") {
                files.push(path);
            }
        }
    }
    files
}

/// Whether `file` is shell (a script run by bash or sh, or the Makefile's recipes).
fn is_shell(file: &Path, text: &str) -> bool {
    file.ends_with("Makefile")
        || file.extension().is_some_and(|extension| extension == "sh")
        || text.lines().next().is_some_and(|first| first.starts_with("#!") && first.contains("sh"))
}

/// Which bytes of a shell script (or a Makefile) are shell code: not a here-document's body (SQL,
/// Python: its own language, whose names the other rules see) and, in a Makefile, only the
/// recipes (target names are make's).
fn shell_code(text: &str) -> Vec<bool> {
    let makefile = text.lines().any(|line| line.starts_with(".PHONY"));
    let mut mask = Vec::with_capacity(text.len());
    let mut here_document: Option<String> = None;
    for line in text.split_inclusive('\n') {
        let code = match &here_document {
            Some(end) => {
                if line.trim() == end {
                    here_document = None;
                }
                false
            }
            None => {
                if let Some(at) = line.find("<<") {
                    let word = line[at + 2..].trim_start_matches('-').trim_start();
                    let word: String = word
                        .chars()
                        .filter(|c| !"'\"".contains(*c))
                        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                        .collect();
                    if !word.is_empty() {
                        here_document = Some(word);
                    }
                }
                !makefile || line.starts_with('\t')
            }
        };
        mask.extend(std::iter::repeat_n(code, line.len()));
    }
    mask
}

/// The function names typed into `text`, as (spelling, line number).
fn names_in(text: &str, functions: &[FunctionSpec], shell: bool) -> Vec<(String, usize)> {
    let shell = if shell { shell_code(text) } else { Vec::new() };
    // The API's routes, and the web app's pages the mail links open (dev/app stands in for them).
    let pages = std::fs::read_dir(repository().join("dev/app")).expect("dev/app").filter_map(|entry| {
        let path = entry.expect("an entry").path();
        let page = path.file_stem()?.to_str()?.to_owned();
        (path.extension()? == "html").then(|| format!("/{page}"))
    });
    let mut routes: Vec<String> = functions
        .iter()
        .flat_map(|function| function.routes.iter())
        .filter_map(|route| match route {
            RouteSpec::Route { path, .. } => Some(path.clone()),
            RouteSpec::Default => None,
        })
        .chain(pages)
        .collect();
    routes.sort_by_key(|route| std::cmp::Reverse(route.len()));
    // A route or a page is contract, not a name: blanked, unless it is part of a path to an
    // artifact (`target/debug/health`, `events/verify-email.json`).
    let mut text = text.to_owned();
    for route in &routes {
        let mut at = 0;
        while let Some(found) = text[at..].find(route.as_str()).map(|offset| at + offset) {
            let end = found + route.len();
            let extends = text[end..].starts_with(|c: char| c.is_ascii_alphanumeric() || "_-.".contains(c));
            if !extends && !ARTIFACT_FOLDERS.iter().any(|folder| last_token(&text[..found]).contains(folder))
            {
                text.replace_range(found..end, &" ".repeat(route.len()));
            }
            at = end;
        }
    }
    let tables = tables();
    let mut named = Vec::new();
    for function in functions {
        let one_word = !function.binary.contains('-');
        for spelling in spellings(function) {
            let is_identifier = spelling == function.logical_id || !one_word;
            for index in occurrences(&text, &spelling, !is_identifier, &shell, &tables) {
                named.push((spelling.clone(), text[..index].lines().count().max(1)));
            }
        }
    }
    named
}

#[test]
fn no_tool_script_or_template_check_names_a_function() {
    let functions = functions();
    let mut named = Vec::new();
    for file in tool_files() {
        let Ok(text) = std::fs::read_to_string(&file) else { continue };
        for (spelling, line) in names_in(&text, &functions, is_shell(&file, &text)) {
            named.push(format!("{}:{line}: {spelling}", file.display()));
        }
    }
    assert!(
        named.is_empty(),
        "functions named outside template.yaml (derive the list instead):\n{}",
        named.join("\n")
    );
}

#[test]
fn the_name_check_finds_each_spelling_and_spares_routes_and_words() {
    let functions = functions();
    let tables = tables();
    for function in &functions {
        for spelling in spellings(function) {
            let text = format!("let x = call({spelling});\n");
            let expected = usize::from(*spelling == function.logical_id || function.binary.contains('-'));
            assert_eq!(names_in(&text, &functions, false).len(), expected, "{spelling} in {text:?}");
        }
        let binary = &function.binary;
        let module = binary.replace('-', "_");
        // A table's name (`sessions`) in quotes is the table's.
        let quoted = usize::from(!tables.contains(binary));
        for (text, expected) in [
            (format!("for name in (\"{binary}\",):"), quoted),
            (format!("if name == \"{binary}\":"), quoted),
            (format!("SIZES = {{\"{binary}\": 512}}"), quoted),
            (format!("MOVED = [\"a\", \"{binary}\"]"), quoted),
            (format!("ls target/debug/{binary}"), 1),
            (format!("unzip target/lambda/{binary}/bootstrap.zip"), 1),
            (format!("cat events/{binary}.json"), 1),
            (format!("cargo build -p {binary}"), 1),
            (format!("cargo build --bin={binary}"), 1),
            (format!("shared::handlers::{module}::handle"), 1),
            (format!("Ref: {}", function.logical_id), 1),
        ] {
            assert_eq!(names_in(&text, &functions, false).len(), expected, "{text:?}");
        }
        let shell = format!("for f in {binary} other; do\n  echo \"$f\"\ndone\n");
        assert_eq!(names_in(&shell, &functions, true).len(), 1, "{shell:?}");
    }
    let routes: Vec<String> = functions
        .iter()
        .flat_map(|f| f.routes.iter().map(RouteSpec::key))
        .map(|key| format!("curl -X {key}\n"))
        .collect();
    let single = functions.iter().find(|f| !f.binary.contains('-')).expect("a function of one word");
    let prose = format!(
        "{}\n# the {} of the user\nbody[\"{}\"]\necho \"an attempt to {}\"\n",
        routes.concat(),
        single.binary,
        single.binary,
        single.binary
    );
    assert_eq!(names_in(&prose, &functions, true), vec![], "routes, words and indexed fields are not names");
}

#[test]
fn sample_events_hold_only_the_placeholders_the_fixture_fills() {
    let root = repository();
    for function in functions() {
        let path = test_support::samples::sample_event_path(&root, &function.binary);
        let text = read(&path);
        serde_json::from_str::<serde_json::Value>(&text)
            .unwrap_or_else(|error| panic!("{}: {error}", path.display()));
        for (index, _) in text.match_indices("REPLACE_WITH_") {
            let placeholder: String =
                text[index..].chars().take_while(|c| c.is_ascii_uppercase() || *c == '_').collect();
            assert!(
                test_support::samples::PLACEHOLDERS.contains(&placeholder.as_str()),
                "{}: {placeholder} is no placeholder tests/support/src/samples.rs fills",
                path.display()
            );
        }
    }
}

/// A measured figure typed into prose: a time in ms or µs, a rate per second, a ratio, a price.
fn figures_in(text: &str) -> Vec<String> {
    let mut figures = Vec::new();
    let words: Vec<&str> = text.split_whitespace().collect();
    for (index, word) in words.iter().enumerate() {
        let number = word.trim_start_matches(['(', '~', '≈', '*']);
        let digits = number.chars().take_while(|c| c.is_ascii_digit() || *c == '.' || *c == ',').count();
        if digits == 0 || !number.starts_with(|c: char| c.is_ascii_digit()) {
            if word.starts_with('$') && word[1..].starts_with(|c: char| c.is_ascii_digit()) {
                figures.push((*word).to_owned());
            }
            continue;
        }
        let unit = &number[digits..];
        let next =
            words.get(index + 1).copied().unwrap_or_default().trim_end_matches([',', '.', ')', ';', ':']);
        let timed =
            |unit: &str| ["ms", "µs", "us"].contains(&unit.trim_end_matches([',', '.', ')', ';', ':']));
        let ratio = matches!(unit.trim_end_matches([',', '.', ')', ';', ':']), "x" | "×");
        if timed(unit) || ratio || (unit.is_empty() && (timed(next) || next.starts_with("requests/s"))) {
            figures.push(format!("{word} {next}"));
        }
    }
    figures
}

#[test]
fn no_measured_figure_is_typed_into_the_docs_or_the_template() {
    let root = repository();
    let mut files = vec![root.join("README.md"), root.join("template.yaml"), root.join("events/README.md")];
    for folder in ["docs", "tools/emulator", "tools/bench", "dev/app"] {
        for entry in std::fs::read_dir(root.join(folder)).expect("a folder") {
            let path = entry.expect("an entry").path();
            if path.extension().is_some_and(|extension| extension == "md")
                && !path.ends_with("tools/bench/profiles.md")
            {
                files.push(path);
            }
        }
    }
    let mut typed = Vec::new();
    for file in files {
        for (number, line) in read(&file).lines().enumerate() {
            for figure in figures_in(line) {
                typed.push(format!("{}:{}: {figure}", file.display(), number + 1));
            }
        }
    }
    assert!(
        typed.is_empty(),
        "figures belong in BENCHMARKS.md, written by make bench; link to its section instead:\n{}",
        typed.join("\n")
    );
}

#[test]
fn the_figure_check_finds_times_rates_ratios_and_prices_and_spares_settings() {
    for line in [
        "warm p50 15.3 ms here",
        "sign (697 µs)",
        "1,104 requests/s",
        "at most 1.3x",
        "costs $0.54 per million",
    ] {
        assert_eq!(figures_in(line).len(), 1, "{line}");
    }
    for line in
        ["argon2id (9 MiB, t=4, p=1)", "15 minutes by default", "bodies of 16 KiB at most", "section 9"]
    {
        assert_eq!(figures_in(line), Vec::<String>::new(), "{line}");
    }
}

/// Each function's environment variables in template.yaml (its own and `Globals`), by binary.
fn template_variables() -> std::collections::BTreeMap<String, BTreeSet<String>> {
    let template: serde_yaml::Value =
        serde_yaml::from_str(&read(&repository().join("template.yaml"))).expect("YAML");
    let names = |node: Option<&serde_yaml::Value>| -> BTreeSet<String> {
        node.and_then(|n| n.get("Environment"))
            .and_then(|e| e.get("Variables"))
            .and_then(serde_yaml::Value::as_mapping)
            .into_iter()
            .flatten()
            .filter_map(|(name, _)| name.as_str().map(str::to_owned))
            .collect()
    };
    let globals = names(template.get("Globals").and_then(|g| g.get("Function")));
    let mut variables = std::collections::BTreeMap::new();
    for (_, resource) in template["Resources"].as_mapping().expect("Resources") {
        if resource["Type"].as_str() != Some("AWS::Serverless::Function") {
            continue;
        }
        let properties = &resource["Properties"];
        let code_uri = properties["CodeUri"].as_str().expect("a plain CodeUri");
        let binary =
            code_uri.trim_end_matches("/bootstrap.zip").rsplit('/').next().expect("a folder").to_owned();
        variables.insert(binary, globals.union(&names(Some(properties))).cloned().collect());
    }
    variables
}

#[test]
fn each_function_is_given_exactly_what_its_code_needs() {
    let variables = template_variables();
    let registered: BTreeSet<String> =
        shared::handlers::FUNCTIONS.iter().map(|(binary, _, _)| (*binary).to_owned()).collect();
    assert_eq!(
        registered,
        variables.keys().cloned().collect::<BTreeSet<_>>(),
        "shared::handlers::FUNCTIONS against template.yaml's functions"
    );
    let mut wrong = Vec::new();
    for (binary, module, needs) in shared::handlers::FUNCTIONS {
        let source = read(&repository().join(format!("functions/src/bin/{binary}.rs")));
        if !source.contains(&format!("handlers::{module}")) {
            wrong.push(format!("functions/src/bin/{binary}.rs does not run shared::handlers::{module}"));
        }
        let given = &variables[*binary];
        for (variable, needed) in [
            ("DB_SECRET_ARN", needs.database),
            ("JWT_SIGNING_KEY_SECRET_ARN", needs.keys.signs()),
            ("JWT_VERIFICATION_KEYS_SECRET_ARN", needs.keys.verifies()),
            ("MAIL_FROM", needs.mail),
            ("MFA_KEYS_SECRET_ARN", needs.mfa),
        ] {
            if given.contains(variable) != needed {
                let verb = if needed { "needs" } else { "must not be given" };
                wrong.push(format!("{binary} {verb} {variable} (its handler's NEEDS: {needs:?})"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "template.yaml and the code disagree on what functions read:\n{}",
        wrong.join("\n")
    );
}

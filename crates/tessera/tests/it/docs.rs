//! The documentation stays true to the code: every file `ARCHITECTURE.md` names exists, every
//! type it names is defined, every item it names after `::` exists, and every relative link
//! in `README.md` and `docs/` leads to a file.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().unwrap()
}

/// Every file below `dir` that git would track (no build output, no hidden folders).
fn files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.starts_with('.') || name == "target" {
            continue;
        }
        if path.is_dir() {
            files(&path, out);
        } else {
            out.push(path);
        }
    }
}

struct Code {
    /// Paths relative to the repository, with `/`.
    paths: Vec<String>,
    /// Names defined as types, traits, modules, constants or functions.
    definitions: HashSet<String>,
    /// Every identifier that appears in the Rust sources.
    words: HashSet<String>,
}

fn code() -> Code {
    let root = repo();
    let mut all = Vec::new();
    files(&root, &mut all);
    let paths: Vec<String> =
        all.iter().map(|p| p.strip_prefix(&root).unwrap().to_string_lossy().replace('\\', "/")).collect();
    let (mut definitions, mut words) = (HashSet::new(), HashSet::new());
    for path in all.iter().filter(|p| p.extension().is_some_and(|e| e == "rs")) {
        let text = std::fs::read_to_string(path).unwrap();
        let tokens: Vec<&str> =
            text.split(|c: char| !(c.is_alphanumeric() || c == '_')).filter(|t| !t.is_empty()).collect();
        for pair in tokens.windows(2) {
            if matches!(
                pair[0],
                "struct" | "enum" | "trait" | "type" | "mod" | "fn" | "const" | "static" | "macro_rules"
            ) {
                definitions.insert(pair[1].to_owned());
            }
        }
        words.extend(tokens.into_iter().map(str::to_owned));
    }
    Code { paths, definitions, words }
}

fn is_file_like(token: &str) -> bool {
    let exts = [".rs", ".md", ".cedar", ".css", ".json", ".toml", ".lua"];
    !token.contains(' ')
        && !token.contains('{')
        && !token.starts_with('/')
        && !token.contains("://")
        && (exts.iter().any(|e| token.ends_with(e)) || (token.ends_with('/') && token.len() > 1))
}

fn is_identifier(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || c == '_') && !s.starts_with(|c: char| c.is_numeric())
}

#[test]
fn every_file_type_and_item_architecture_md_names_exists() {
    let code = code();
    let text = std::fs::read_to_string(repo().join("ARCHITECTURE.md")).unwrap();
    let mut missing = Vec::new();
    let mut checked = 0;
    for (i, token) in text.split('`').enumerate() {
        if i % 2 == 0 {
            continue; // outside backticks
        }
        if is_file_like(token) {
            // `crates/store/src/users.rs`, `tests/it/`, or a bare `users.rs` in a crate's list.
            let found = code.paths.iter().any(|p| {
                let with_slash = format!("/{p}");
                p == token
                    || with_slash.ends_with(&format!("/{token}"))
                    || (token.ends_with('/') && with_slash.contains(&format!("/{token}")))
            });
            checked += 1;
            if !found {
                missing.push(format!("file {token}"));
            }
            continue;
        }
        // `Type`, `Type::item`, `module::item`, `Type::method()`.
        let path = token.trim_end_matches("()");
        let segments: Vec<&str> = path.split("::").collect();
        if !segments.iter().all(|s| is_identifier(s)) {
            continue;
        }
        let first = segments[0];
        if segments.len() == 1 && !first.starts_with(|c: char| c.is_uppercase()) {
            continue; // a lone lower-case word: a setting, a column, a command
        }
        if segments.len() == 1 && first.chars().all(|c| c.is_uppercase() || c == '_') {
            continue; // an SQL keyword or a constant's value
        }
        checked += 1;
        // A type, trait or variant: named in the code (a type made by a macro, a derive or an
        // enum variant has no `struct` of its own); a lower-case head is a module or a field.
        let known = code.definitions.contains(first) || code.words.contains(first);
        if !known {
            missing.push(format!("type {first} (in `{token}`)"));
        }
        for s in &segments[1..] {
            if !code.words.contains(*s) {
                missing.push(format!("item {s} (in `{token}`)"));
            }
        }
    }
    assert!(checked > 100, "the check found too little to check ({checked}): is ARCHITECTURE.md still there?");
    assert!(missing.is_empty(), "ARCHITECTURE.md names what the code no longer has: {missing:#?}");
}

#[test]
fn every_relative_link_in_the_docs_leads_to_a_file() {
    let root = repo();
    let mut docs = vec![root.join("README.md"), root.join("ARCHITECTURE.md"), root.join("BENCHMARKS.md")];
    let mut under = Vec::new();
    files(&root.join("docs"), &mut under);
    docs.extend(under.into_iter().filter(|p| p.extension().is_some_and(|e| e == "md")));
    let mut broken = Vec::new();
    for doc in &docs {
        let text = std::fs::read_to_string(doc).unwrap();
        for link in text.split("](").skip(1).filter_map(|rest| rest.split(')').next()) {
            let target = link.split('#').next().unwrap_or_default();
            if target.is_empty() || target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            if !doc.parent().unwrap().join(target).exists() {
                broken.push(format!("{}: {link}", doc.strip_prefix(&root).unwrap().display()));
            }
        }
    }
    assert!(docs.len() > 5, "the docs are missing");
    assert!(broken.is_empty(), "links that lead nowhere: {broken:#?}");
}

//! The folders of `governor/src` import only folders below them, in the order that
//! `governor/src/main.rs`'s doc writes down, so that there is no import cycle between
//! folders. Each source file's `crate::` paths (inline or in a grouped `use crate::{…}`) are
//! read as text; comments and unit tests (`tests.rs`, `*_tests.rs`, a `tests/` folder, the
//! `#[cfg(test)] mod tests` at a file's end) are passed over: tests may use any fixture.
//! And every folder's `mod.rs` says in its doc what the folder owns and may import.

use std::{
    fs,
    path::{Path, PathBuf},
};

/// From the ground floor up: a module may import only modules before it.
const ORDER: &[&str] = &[
    "host", "time", "logging", "signing", "policy", "api", "halts", "requests", "kernel",
    "lineage", "rollback", "leases", "simulate", "secrets", "cli", "admin", "daemon", "cmd",
];

fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
        let path = e.expect("directory entry").path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "tests") {
                sources(&path, out);
            }
        } else if path.extension().is_some_and(|x| x == "rs") {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if name != "tests.rs" && !name.ends_with("_tests.rs") {
                out.push(path);
            }
        }
    }
}

/// The code of `text`: comments and a trailing `#[cfg(test)] mod tests` left out.
fn code(text: &str) -> String {
    let text = text
        .find("#[cfg(test)]\nmod tests")
        .map_or(text, |i| &text[..i]);
    text.lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules `code` names through `crate::`.
fn imports(code: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            // `crate::{a, b::{c, d}, e}`: the names at depth 0.
            let (mut depth, mut item) = (0, String::new());
            for ch in group.chars() {
                match ch {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(ch);
            }
            out.push(item);
        } else {
            out.push(
                rest.chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect(),
            );
        }
    }
    out.iter()
        .map(|i| {
            i.trim()
                .split(|c: char| !(c.is_alphanumeric() || c == '_'))
                .next()
                .unwrap_or("")
                .to_owned()
        })
        .filter(|n| !n.is_empty() && n != "self")
        .collect()
}

#[test]
fn the_reader_sees_grouped_nested_and_inline_paths() {
    let found = imports(&code(
        "use crate::{\n    admin::{self, x},\n    kernel::procs, // crate::cmd\n    time,\n};\nlet x = crate::leases::y();",
    ));
    assert_eq!(found, ["admin", "kernel", "time", "leases"]);
}

#[test]
fn every_folder_imports_only_folders_below_it() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let mut wrong = Vec::new();
    for f in &files {
        let rel = f.strip_prefix(&src).unwrap().to_string_lossy().into_owned();
        let top = rel.split('/').next().unwrap().trim_end_matches(".rs");
        if top == "main" {
            continue;
        }
        let Some(me) = ORDER.iter().position(|m| *m == top) else {
            wrong.push(format!("{rel}: `{top}` is not in ORDER; place it there"));
            continue;
        };
        let text = fs::read_to_string(f).expect("read a source file");
        for m in imports(&code(&text)) {
            if m == top {
                continue;
            }
            match ORDER.iter().position(|o| *o == m) {
                Some(i) if i < me => {}
                Some(_) => wrong.push(format!("{rel}: `{top}` imports `{m}`, which lies above it")),
                None => wrong.push(format!("{rel}: imports `{m}`, which is not in ORDER")),
            }
        }
    }
    assert!(files.len() > 100, "found only {} files", files.len());
    assert!(
        wrong.is_empty(),
        "import order broken:\n{}",
        wrong.join("\n")
    );
}

#[test]
fn every_folder_says_what_it_owns_and_may_import() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root");
    let mut silent = Vec::new();
    let mut seen = 0;
    for dir in ["governor/src", "tests/src", "tests/kernel"] {
        let mut files = Vec::new();
        sources(&root.join(dir), &mut files);
        for f in files.iter().filter(|f| f.ends_with("mod.rs")) {
            seen += 1;
            let text = fs::read_to_string(f).expect("read a mod.rs");
            let doc: String = text
                .lines()
                .take_while(|l| l.starts_with("//!"))
                .collect::<Vec<_>>()
                .join("\n");
            if doc.len() < 80 || !doc.contains("import") {
                silent.push(f.strip_prefix(root).unwrap().display().to_string());
            }
        }
    }
    assert!(seen > 20, "found only {seen} mod.rs files");
    assert!(
        silent.is_empty(),
        "these folders' mod.rs do not say (in a `//!` doc naming what they may import) what \
         the folder owns: {silent:#?}"
    );
}

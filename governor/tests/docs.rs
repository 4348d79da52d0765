//! The documentation checked against the code, so that it cannot drift unnoticed:
//! - the hook table of `docs/enforcement.md` names exactly the BPF-LSM hooks governor attaches
//!   (`governor_common::programs::LSM_HOOKS`), and each row's source file attaches its hook;
//! - the class table of `docs/policy.md` names every kernel class, and `governor policy check`
//!   accepts every name in it;
//! - every relative link in `README.md` and `docs/*.md` reaches an existing file, and every
//!   `#anchor` a heading of that file;
//! - the module map of `docs/architecture.md` names every source file of the workspace (a
//!   folder's `mod.rs` and unit-test files aside), and names no file that does not exist;
//! - every workspace path the docs quote in `code` (`governor/src/...`) exists.

use std::{
    collections::BTreeSet,
    fs,
    path::{Path, PathBuf},
    process::Command,
};

use governor_common::{programs::LSM_HOOKS, Class};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("workspace root")
        .to_path_buf()
}

fn read(path: &Path) -> String {
    fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

/// The lines of `text` outside fenced code blocks, with their 1-based numbers.
fn prose(text: &str) -> Vec<(usize, &str)> {
    let mut fenced = false;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            fenced = !fenced;
            continue;
        }
        if !fenced {
            out.push((i + 1, line));
        }
    }
    out
}

/// The table rows (cells, trimmed) of the section of `text` headed exactly `heading`, up to the
/// next heading; the header and separator rows left out.
fn table(text: &str, heading: &str) -> Vec<Vec<String>> {
    let lines = prose(text);
    let start = lines
        .iter()
        .position(|(_, l)| *l == heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    let rows: Vec<Vec<String>> = lines[start + 1..]
        .iter()
        .take_while(|(_, l)| !l.starts_with('#'))
        .filter(|(_, l)| l.starts_with('|'))
        .map(|(_, l)| {
            l.trim()
                .trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect();
    assert!(rows.len() > 2, "no table under {heading:?}");
    rows[2..].to_vec()
}

/// The `code` spans of a cell.
fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s.to_owned())
        .collect()
}

/// What `expected` lacks of `found`, and the reverse, in words; empty when they agree.
fn difference(what: &str, expected: &BTreeSet<String>, found: &BTreeSet<String>) -> String {
    let missing: Vec<_> = expected.difference(found).collect();
    let extra: Vec<_> = found.difference(expected).collect();
    let mut out = String::new();
    if !missing.is_empty() {
        out += &format!("{what} missing: {missing:?}\n");
    }
    if !extra.is_empty() {
        out += &format!("{what} extra (not in the code): {extra:?}\n");
    }
    out
}

#[test]
fn the_hook_table_names_exactly_the_attached_hooks() {
    let doc = read(&root().join("docs/enforcement.md"));
    let rows = table(&doc, "## Hooks");
    let mut named = Vec::new();
    let mut problems = String::new();
    for row in &rows {
        let hook = code_spans(&row[0]).concat();
        let source = code_spans(row.last().expect("a cell")).concat();
        let path = root().join("governor-ebpf/src").join(&source);
        match fs::read_to_string(&path) {
            Ok(text) if text.contains(&format!("#[lsm(hook = \"{hook}\")]")) => {}
            Ok(_) => problems += &format!("`{hook}`: {source} attaches no such hook\n"),
            Err(_) => problems += &format!("`{hook}`: no source file governor-ebpf/src/{source}\n"),
        }
        named.push(hook);
    }
    let found: BTreeSet<String> = named.iter().cloned().collect();
    if found.len() != named.len() {
        problems += &format!("hooks named twice in the table: {named:?}\n");
    }
    let expected: BTreeSet<String> = LSM_HOOKS.iter().map(|h| h.to_string()).collect();
    problems += &difference(
        "docs/enforcement.md's hook table, against LSM_HOOKS:",
        &expected,
        &found,
    );
    assert!(problems.is_empty(), "{problems}");
}

#[test]
fn the_class_table_names_every_class_and_the_policy_accepts_each() {
    let doc = read(&root().join("docs/policy.md"));
    let names: BTreeSet<String> = table(&doc, "## Built-in class tags")
        .iter()
        .flat_map(|row| code_spans(&row[0]))
        .collect();
    let kernel: BTreeSet<String> = Class::ALL.iter().map(|c| c.name().to_owned()).collect();
    let missing: Vec<_> = kernel.difference(&names).collect();
    assert!(
        missing.is_empty(),
        "docs/policy.md's class table lacks the classes {missing:?}"
    );

    let dir = tempfile::tempdir().expect("tempdir");
    let check = |name: &str| {
        let file = dir.path().join(format!("{name}.toml"));
        let text = format!(
            "[policy]\nname = \"docs\"\nowner = \"docs@example.com\"\n\n\
             [[agents]]\nname = \"agent\"\n\n[classes.\"{name}\"]\nblast_radius = \"high\"\n"
        );
        fs::write(&file, text).expect("write policy");
        Command::new(env!("CARGO_BIN_EXE_governor"))
            .args(["policy", "check"])
            .arg(&file)
            .output()
            .expect("run governor policy check")
    };
    // The check tells a class from a non-class, or accepting every name would prove nothing.
    assert!(!check("no-such-class").status.success());
    let refused: Vec<String> = names
        .iter()
        .filter_map(|name| {
            let out = check(name);
            (!out.status.success())
                .then(|| format!("{name}: {}", String::from_utf8_lossy(&out.stderr).trim()))
        })
        .collect();
    assert!(
        refused.is_empty(),
        "docs/policy.md's class table names classes a policy refuses:\n{}",
        refused.join("\n")
    );
}

/// GitHub's anchor for a heading: lowercase; letters, digits, `-` and `_` kept, spaces made
/// `-`, everything else dropped.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .chars()
        .filter_map(|c| match c {
            ' ' => Some('-'),
            '-' | '_' => Some(c),
            c if c.is_alphanumeric() => Some(c.to_ascii_lowercase()),
            _ => None,
        })
        .collect()
}

fn anchors(text: &str) -> BTreeSet<String> {
    prose(text)
        .iter()
        .filter(|(_, l)| l.starts_with('#'))
        .map(|(_, l)| slug(l.trim_start_matches('#')))
        .collect()
}

/// Every `](target)` of `text`'s prose, with its line.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (n, line) in prose(text) {
        let mut rest = line;
        while let Some(i) = rest.find("](") {
            let after = &rest[i + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((n, after[..end].to_owned()));
            rest = &after[end..];
        }
    }
    out
}

#[test]
fn every_relative_link_reaches_a_file_and_a_heading() {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = fs::read_dir(root().join("docs"))
        .expect("docs/")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    let mut broken = Vec::new();
    for file in &files {
        let text = read(file);
        for (line, target) in links(&text) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = target.split_once('#').unwrap_or((&target, ""));
            let dest = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a folder").join(path)
            };
            let at = format!("{}:{line}: ({target})", file.display());
            if !dest.exists() {
                broken.push(format!("{at}: no file {}", dest.display()));
            } else if !anchor.is_empty() && !anchors(&read(&dest)).contains(anchor) {
                broken.push(format!("{at}: no heading #{anchor} in {}", dest.display()));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}

/// Every `.rs` file below `dir`, as paths relative to the workspace root.
fn sources(root: &Path, dir: &str, out: &mut Vec<String>) {
    let Ok(entries) = fs::read_dir(root.join(dir)) else {
        return;
    };
    for e in entries {
        let e = e.expect("directory entry");
        let name = e.file_name().to_string_lossy().into_owned();
        let rel = format!("{dir}/{name}");
        if e.file_type().expect("file type").is_dir() {
            sources(root, &rel, out);
        } else if name.ends_with(".rs") {
            out.push(rel);
        }
    }
}

/// A file the module map need not name: a folder's `mod.rs` (the folder's row stands for
/// it) and unit-test files beside the code they test (`tests.rs`, `*_tests.rs`, a `tests/`
/// folder inside a crate's sources).
fn exempt(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name == "mod.rs"
        || name == "tests.rs"
        || name.ends_with("_tests.rs")
        || path.contains("/tests/")
}

#[test]
fn the_module_map_names_every_source_file_and_only_files_that_exist() {
    let root = root();
    let text = read(&root.join("docs/architecture.md"));
    let rows = table(&text, "## Module map");
    // Each row: the paths it is about (first cell) and everything it names (both cells).
    let rows: Vec<(Vec<String>, Vec<String>)> = rows
        .iter()
        .map(|r| {
            // `governor/src/main.rs`, `cli.rs`: a name that does not start from the
            // workspace root lies beside the first path.
            let spans = code_spans(&r[0]);
            let top = spans
                .first()
                .and_then(|a| a.split('/').next())
                .unwrap_or_default()
                .to_owned();
            let dir = spans
                .first()
                .and_then(|a| a.rsplit_once('/'))
                .map_or(String::new(), |(d, _)| format!("{d}/"));
            let about = spans
                .iter()
                .map(|a| {
                    if a.starts_with(&format!("{top}/")) {
                        a.clone()
                    } else {
                        format!("{dir}{a}")
                    }
                })
                .collect();
            let names = r.iter().flat_map(|c| code_spans(c)).collect();
            (about, names)
        })
        .collect();
    let mut files = Vec::new();
    for dir in [
        "governor/src",
        "governor-common/src",
        "governor-ebpf/src",
        "bench/src",
        "xtask/src",
        "tests/src",
    ] {
        sources(&root, dir, &mut files);
    }
    let mut unnamed = Vec::new();
    for f in files.iter().filter(|f| !exempt(f)) {
        let name = f.rsplit('/').next().unwrap_or(f);
        let named = rows.iter().any(|(about, names)| {
            about.iter().any(|a| f.starts_with(a.as_str()) || a == f)
                && names
                    .iter()
                    .any(|n| n == f || n == name || f.ends_with(&format!("/{n}")))
        });
        if !named {
            unnamed.push(f.clone());
        }
    }
    let mut stale = Vec::new();
    for (about, names) in &rows {
        for n in names
            .iter()
            .filter(|n| n.ends_with(".rs") || n.ends_with('/'))
        {
            let exists = about.iter().any(|a| {
                let base = if a.ends_with('/') {
                    a.clone()
                } else {
                    a.rsplit_once('/')
                        .map_or(String::new(), |(d, _)| format!("{d}/"))
                };
                let n = n.trim_end_matches('/');
                root.join(n).exists()
                    || root.join(format!("{base}{n}")).exists()
                    || files
                        .iter()
                        .any(|f| f.starts_with(&base) && f.ends_with(&format!("/{n}")))
                    || files
                        .iter()
                        .any(|f| f.starts_with(&base) && f.contains(&format!("/{n}/")))
            });
            if !exists {
                stale.push(format!("{about:?}: {n}"));
            }
        }
    }
    assert!(
        unnamed.is_empty() && stale.is_empty(),
        "docs/architecture.md's module map is out of date:\n\
         source files it does not name (add each to its folder's row): {unnamed:#?}\n\
         names it gives that do not exist (moved or removed: change the row): {stale:#?}"
    );
}

#[test]
fn every_workspace_path_the_docs_quote_exists() {
    let root = root();
    let mut pages = vec![root.join("README.md")];
    for e in fs::read_dir(root.join("docs")).expect("docs/") {
        pages.push(e.expect("docs entry").path());
    }
    let tops = [
        "governor/",
        "governor-common/",
        "governor-ebpf/",
        "tests/",
        "bench/",
        "xtask/",
        "policies/",
        "docs/",
    ];
    let mut missing = Vec::new();
    for page in &pages {
        let text = read(page);
        for (n, line) in prose(&text) {
            for span in code_spans(line) {
                // `governor/src/x.rs` or `governor/src/x.rs:42`, never a command line.
                let path = span.split(':').next().unwrap_or(&span);
                if tops.iter().any(|t| path.starts_with(t))
                    && !path.contains(char::is_whitespace)
                    && !path.contains('*')
                    && !root.join(path).exists()
                {
                    missing.push(format!("{}:{n}: {span}", page.display()));
                }
            }
        }
    }
    assert!(
        missing.is_empty(),
        "the docs quote workspace paths that do not exist (moved or removed): {missing:#?}"
    );
}

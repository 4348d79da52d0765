//! What lineage may import, checked: no file of the folder names the commands, the admin
//! API or the daemon (see the folder's doc in `mod.rs`).

use std::path::{Path, PathBuf};

/// Every `.rs` file below `dir`.
fn sources(dir: &Path) -> Vec<PathBuf> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read the lineage folder") {
        let path = entry.expect("a directory entry").path();
        if path.is_dir() {
            files.extend(sources(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    files
}

/// The modules lineage may not name.
const FORBIDDEN: [&str; 3] = ["cmd", "admin", "daemon"];

/// Where `text` names a forbidden module: in a `use crate::...;` statement (any of its
/// path segments), or inline as `crate::<module>`. Comments are passed over.
fn forbidden_uses(text: &str) -> Vec<String> {
    let code: String = text
        .lines()
        .map(|l| l.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = Vec::new();
    for module in FORBIDDEN {
        if code.contains(&format!("crate::{module}")) {
            found.push(format!("crate::{module}"));
        }
    }
    for statement in code.split(';') {
        let Some(start) = statement.find("use crate::") else {
            continue;
        };
        let names = statement[start..].split(|c: char| !(c.is_alphanumeric() || c == '_'));
        for name in names {
            if FORBIDDEN.contains(&name) {
                found.push(
                    statement[start..]
                        .split_whitespace()
                        .collect::<Vec<_>>()
                        .join(" "),
                );
            }
        }
    }
    found
}

#[test]
fn the_check_sees_a_grouped_and_an_inline_import() {
    assert!(!forbidden_uses("use crate::{\n    admin,\n    kernel::procs,\n};").is_empty());
    assert!(!forbidden_uses("let x = crate::cmd::run();").is_empty());
    assert!(forbidden_uses("use crate::{kernel::procs, time};\n// crate::admin").is_empty());
}

#[test]
fn lineage_imports_no_command_admin_or_daemon_module() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("src/lineage");
    let files = sources(&dir);
    assert!(
        files.len() > 20,
        "found only {} files in {}",
        files.len(),
        dir.display()
    );
    let found: Vec<String> = files
        .iter()
        .filter(|f| !f.ends_with("imports_tests.rs"))
        .flat_map(|f| {
            let text = std::fs::read_to_string(f).expect("read a source file");
            forbidden_uses(&text)
                .into_iter()
                .map(move |u| format!("{}: {u}", f.display()))
        })
        .collect();
    assert!(
        found.is_empty(),
        "lineage imports what it may not:\n{}",
        found.join("\n")
    );
}

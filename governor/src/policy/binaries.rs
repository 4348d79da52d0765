//! `[[binaries]]`: executables agents may not run, identified by inode when the policy is
//! compiled, so a hard link or symlink to a listed binary is the same binary.
//!
//! ```toml
//! [[binaries]]
//! path = "/usr/bin/shred"
//! deny = ["exec"]
//! ```

use std::path::PathBuf;

use governor_common::Class;
use toml::Spanned;

use super::{clean_absolute, decisions::Decisions, raw::RawBinary, Validator, CLASS_NAMES};

/// A listed binary and the decisions on it.
#[derive(Debug, Clone)]
pub struct Binary {
    pub path: PathBuf,
    pub decisions: Decisions,
}

/// The class names a `[[binaries]]` entry may use.
const BINARY_CLASSES: &[(&str, &[Class])] = &[("exec", &[Class::Exec])];

impl Validator<'_> {
    pub(super) fn binaries(&mut self, raw: Vec<Spanned<RawBinary>>) -> Vec<Binary> {
        let mut binaries: Vec<Binary> = Vec::new();
        for (i, b) in raw.into_iter().enumerate() {
            let path_at = b.get_ref().path.clone();
            let binary = self.binary(i, b.into_inner());
            if binaries.iter().any(|x| x.path == binary.path) {
                self.problem(
                    &path_at,
                    &format!("binaries[{i}].path"),
                    format!(
                        "`{}` is listed twice; merge the two entries",
                        binary.path.display()
                    ),
                );
            }
            binaries.push(binary);
        }
        binaries
    }

    fn binary(&mut self, i: usize, raw: RawBinary) -> Binary {
        let p = raw.path.get_ref();
        let field = format!("binaries[{i}].path");
        if !clean_absolute(p) {
            self.problem(
                &raw.path,
                &field,
                format!("`{p}` must be an absolute path without `.` or `..` components"),
            );
        } else if p.ends_with('/') {
            self.problem(
                &raw.path,
                &field,
                format!(
                    "`{p}` names a directory; list the executable file itself \
                     (to guard a directory tree, use [[protect]])"
                ),
            );
        }
        let resolve = |n: &str| -> Result<&'static [Class], String> {
            if let Some((_, classes)) = BINARY_CLASSES.iter().find(|(k, _)| *k == n) {
                return Ok(classes);
            }
            let known: Vec<&str> = BINARY_CLASSES.iter().map(|(k, _)| *k).collect();
            Err(if CLASS_NAMES.iter().any(|(k, _)| *k == n) {
                format!(
                    "`{n}` is a file class for [[protect]] paths, not for binaries; \
                     binaries support: {}",
                    known.join(", ")
                )
            } else {
                format!(
                    "unknown class `{n}` for a binary; binaries support: {}",
                    known.join(", ")
                )
            })
        };
        let decisions = self.decisions(
            &format!("binaries[{i}]"),
            ("path", &raw.path),
            raw.deny,
            raw.lease,
            raw.agent,
            &resolve,
        );
        Binary {
            path: PathBuf::from(p),
            decisions,
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::super::{Located, Policy, PolicyError};
    use super::*;

    const GOOD: &str = r#"
[policy]
name = "bins"
owner = "platform@example.com"

[[agents]]
name = "coder"
cgroup = "governor/coder"
allow_fileless_exec = true

[[binaries]]
path = "/usr/bin/shred"
deny = ["exec"]

[[binaries]]
path = "/usr/sbin/mkfs"
deny = ["exec", "exec"]
"#;

    fn problems(text: &str) -> Vec<Located> {
        match Policy::parse(Path::new("p.toml"), text) {
            Err(PolicyError::Invalid(p)) => p,
            other => panic!("expected validation errors, got {other:?}"),
        }
    }

    /// The single problem of `text`, as (line, field, why).
    fn only_problem(text: &str) -> (usize, String, String) {
        let p = problems(text);
        assert_eq!(p.len(), 1, "{p:#?}");
        (p[0].line, p[0].field.clone(), p[0].why.clone())
    }

    #[test]
    fn good_binaries_validate() {
        let p = Policy::parse(Path::new("p.toml"), GOOD).expect("valid");
        assert_eq!(p.binaries.len(), 2);
        assert_eq!(p.binaries[0].path, Path::new("/usr/bin/shred"));
        assert_eq!(p.binaries[0].decisions.deny, vec![Class::Exec]);
        assert_eq!(
            p.binaries[1].decisions.deny,
            vec![Class::Exec],
            "duplicates collapse"
        );
        assert!(p.agents[0].allow_fileless_exec);
        let p = Policy::parse(
            Path::new("p.toml"),
            &GOOD.replace("allow_fileless_exec = true\n", ""),
        )
        .expect("valid");
        assert!(!p.agents[0].allow_fileless_exec, "default is deny");
    }

    #[test]
    fn lease_and_agent_decisions_on_a_binary() {
        let text = GOOD.replacen(
            "deny = [\"exec\"]\n",
            "lease = [\"exec\"]\n\n[[binaries.agent]]\nname = \"coder\"\nallow = [\"exec\"]\n",
            1,
        );
        let p = Policy::parse(Path::new("p.toml"), &text).expect("valid");
        let d = &p.binaries[0].decisions;
        assert_eq!((d.deny.len(), d.lease.clone()), (0, vec![Class::Exec]));
        assert_eq!(d.agents[0].agent, "coder");
        assert_eq!(
            d.agents[0].masks(d.masks()).lease_mask,
            0,
            "allowed for coder"
        );
        let (line, field, why) =
            only_problem(&text.replace("name = \"coder\"\nallow", "name = \"nobody\"\nallow"));
        assert_eq!((line, field.as_str()), (16, "binaries[0].agent[0].name"));
        assert!(why.contains("not an agent"), "{why}");
    }

    #[test]
    fn relative_or_dotted_path() {
        for bad in [
            "usr/bin/shred",
            "/usr/bin/../bin/shred",
            "/usr/./bin/shred",
            "",
        ] {
            let (line, field, why) = only_problem(&GOOD.replace("/usr/bin/shred", bad));
            assert_eq!((line, field.as_str()), (12, "binaries[0].path"), "{bad}");
            assert!(why.contains("absolute path"), "{why}");
        }
    }

    #[test]
    fn directory_path() {
        let (line, field, why) = only_problem(&GOOD.replace("/usr/bin/shred", "/usr/bin/"));
        assert_eq!((line, field.as_str()), (12, "binaries[0].path"));
        assert!(why.contains("names a directory"), "{why}");
    }

    #[test]
    fn duplicate_path() {
        let (line, field, why) = only_problem(&GOOD.replace("/usr/sbin/mkfs", "/usr/bin/shred"));
        assert_eq!((line, field.as_str()), (16, "binaries[1].path"));
        assert!(why.contains("listed twice"), "{why}");
    }

    #[test]
    fn empty_deny() {
        let text = GOOD.replacen("[\"exec\"]", "[]", 1);
        let (line, field, why) = only_problem(&text);
        assert_eq!((line, field.as_str()), (13, "binaries[0].deny"));
        assert!(why.contains("is empty"), "{why}");
    }

    #[test]
    fn unknown_class() {
        let text = GOOD.replacen("[\"exec\"]", "[\"exec\", \"run\"]", 1);
        let (line, field, why) = only_problem(&text);
        assert_eq!((line, field.as_str()), (13, "binaries[0].deny"));
        assert!(
            why.contains("unknown class `run`") && why.contains("exec"),
            "{why}"
        );
    }

    #[test]
    fn file_class_on_a_binary() {
        let text = GOOD.replacen("[\"exec\"]", "[\"delete\"]", 1);
        let (line, field, why) = only_problem(&text);
        assert_eq!((line, field.as_str()), (13, "binaries[0].deny"));
        assert!(why.contains("[[protect]]"), "{why}");
    }

    #[test]
    fn unknown_field_and_wrong_type() {
        let err = Policy::parse(
            Path::new("p.toml"),
            &GOOD.replace("deny = [\"exec\"]", "dney = [\"exec\"]"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("p.toml: ") && err.contains("dney"), "{err}");
        let err = Policy::parse(
            Path::new("p.toml"),
            &GOOD.replace(
                "allow_fileless_exec = true",
                "allow_fileless_exec = \"yes\"",
            ),
        )
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("p.toml: 9:"), "{err}");
    }

    #[test]
    fn every_problem_is_reported() {
        let text = GOOD
            .replace("/usr/bin/shred", "relative")
            .replace("[\"exec\", \"exec\"]", "[\"nuke\"]");
        assert_eq!(problems(&text).len(), 2);
    }
}

//! Paths as the text that goes on a command line or into a policy: the one spelling every
//! kernel test uses, so that a test never builds a path string its own way.

use std::path::Path;

/// `path` as text (lossy for non-UTF-8 bytes, which the tests never make).
pub fn s(path: &Path) -> String {
    path.display().to_string()
}

/// `dir/rel` as text.
pub fn p(dir: &Path, rel: &str) -> String {
    s(&dir.join(rel))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn joins_and_spells() {
        assert_eq!(s(Path::new("/tmp/a b")), "/tmp/a b");
        assert_eq!(p(Path::new("/tmp/x"), "prod/a.txt"), "/tmp/x/prod/a.txt");
    }
}

//! Policy errors that name the file, line, field and what to do.

use std::{fmt, path::PathBuf};

/// A policy that cannot be used, with where and why.
#[derive(Debug, thiserror::Error)]
pub enum PolicyError {
    /// Not a regular file, too large, unreadable (the message names the file).
    #[error("{0}")]
    Read(#[from] crate::host::files::ReadError),
    #[error("{path}: {message}")]
    Syntax { path: PathBuf, message: String },
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("\n"))]
    Invalid(Vec<Located>),
}

/// One validation problem at a position in a policy file.
#[derive(Debug, Clone)]
pub struct Located {
    pub path: PathBuf,
    pub line: usize,
    pub column: usize,
    pub field: String,
    pub why: String,
}

impl fmt::Display for Located {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}: field `{}`: {}",
            self.path.display(),
            self.line,
            self.column,
            self.field,
            self.why
        )
    }
}

/// Maps byte offsets in a source text to 1-based line and column numbers.
pub struct LineIndex<'a> {
    text: &'a str,
}

impl<'a> LineIndex<'a> {
    pub fn new(text: &'a str) -> Self {
        Self { text }
    }

    pub fn position(&self, offset: usize) -> (usize, usize) {
        let before = self.text.get(..offset).unwrap_or(self.text);
        let line = before.matches('\n').count() + 1;
        let column = before
            .rfind('\n')
            .map_or(before.len(), |nl| before.len() - nl - 1)
            + 1;
        (line, column)
    }
}

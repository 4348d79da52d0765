//! Decoding the paths the kernel records in events ([`crate::Event::path`] and
//! [`crate::Event::exe`]): NUL-terminated dentry names from the target upwards, plus
//! `PATH_*` flags saying how the walk ended.

use core::fmt;

use crate::event::{PATH_PRESENT, PATH_TRUNCATED, PATH_UNROOTED};

/// Shown in front of a path whose upper components are missing ([`PATH_TRUNCATED`]).
pub const TRUNCATED_PREFIX: &str = "...";
/// Shown in front of a path relative to the root of a filesystem whose mount point the
/// kernel did not know ([`PATH_UNROOTED`]).
pub const UNROOTED_PREFIX: &str = "(fsroot)";

/// A path as the kernel recorded it, ready to display root first.
///
/// `Display` renders it as `/a/b/c` when the walk reached the root of the mount tree,
/// `.../b/c` when it was truncated, `(fsroot)/b/c` when the mount was unknown, and as the
/// empty string when no path was recorded. Bytes that could be mistaken for structure are
/// escaped as `\xNN`: `/` and `\` inside a name, control characters and invalid UTF-8.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RecordedPath<'a> {
    /// The complete components, each NUL-terminated, target first.
    names: &'a [u8],
    flags: u16,
}

impl<'a> RecordedPath<'a> {
    /// Reads `len` bytes of `field` with `flags`. A `len` beyond the field, or bytes after
    /// the last NUL (a name without its terminator), are not trusted: they are dropped and
    /// the path counts as truncated.
    pub fn new(field: &'a [u8], len: u16, flags: u16) -> Self {
        let mut flags = flags;
        let len = usize::from(len);
        if len > field.len() {
            flags |= PATH_TRUNCATED;
        }
        let used = &field[..len.min(field.len())];
        let complete = used.iter().rposition(|&b| b == 0).map_or(0, |i| i + 1);
        if complete != used.len() {
            flags |= PATH_TRUNCATED;
        }
        Self {
            names: &used[..complete],
            flags,
        }
    }

    /// Did the kernel record a path at all?
    pub fn is_present(&self) -> bool {
        self.flags & PATH_PRESENT != 0
    }

    /// A complete path from `/`.
    pub fn is_absolute(&self) -> bool {
        self.is_present() && self.flags & (PATH_TRUNCATED | PATH_UNROOTED) == 0
    }

    /// Are upper components missing?
    pub fn is_truncated(&self) -> bool {
        self.is_present() && self.flags & PATH_TRUNCATED != 0
    }

    /// Is the path relative to the root of a filesystem of unknown mount point?
    pub fn is_unrooted(&self) -> bool {
        self.is_present() && self.flags & PATH_UNROOTED != 0
    }

    /// The components, root first (raw bytes, no separators).
    pub fn components(&self) -> impl Iterator<Item = &'a [u8]> + use<'a> {
        let names: &'a [u8] = if self.is_present() { self.names } else { &[] };
        // Every name ends in NUL: splitting at the NULs leaves one empty piece after the
        // last, which is first once reversed.
        names.split(|&b| b == 0).rev().skip(1)
    }
}

/// Writes one component with `/`, `\`, control characters and invalid UTF-8 escaped.
fn write_component(f: &mut fmt::Formatter<'_>, name: &[u8]) -> fmt::Result {
    for chunk in name.utf8_chunks() {
        for c in chunk.valid().chars() {
            if c == '/' || c == '\\' || c.is_control() {
                write!(f, "\\x{:02x}", u32::from(c))?;
            } else {
                f.write_fmt(format_args!("{c}"))?;
            }
        }
        for b in chunk.invalid() {
            write!(f, "\\x{b:02x}")?;
        }
    }
    Ok(())
}

impl fmt::Display for RecordedPath<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if !self.is_present() {
            return Ok(());
        }
        if self.is_truncated() {
            f.write_str(TRUNCATED_PREFIX)?;
        } else if self.is_unrooted() {
            f.write_str(UNROOTED_PREFIX)?;
        }
        let mut any = false;
        for name in self.components() {
            f.write_str("/")?;
            write_component(f, name)?;
            any = true;
        }
        if !any && self.is_absolute() {
            f.write_str("/")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::{string::ToString, vec::Vec};

    use super::*;

    fn field(bytes: &[u8]) -> [u8; 32] {
        let mut f = [0u8; 32];
        f[..bytes.len()].copy_from_slice(bytes);
        f
    }

    fn show(bytes: &[u8], flags: u16) -> std::string::String {
        let f = field(bytes);
        RecordedPath::new(&f, bytes.len() as u16, flags).to_string()
    }

    #[test]
    fn a_complete_walk_is_absolute_and_reversed() {
        let f = field(b"c.txt\0prod\0tmp\0");
        let p = RecordedPath::new(&f, 15, PATH_PRESENT);
        assert!(p.is_absolute() && !p.is_truncated() && !p.is_unrooted());
        assert_eq!(p.to_string(), "/tmp/prod/c.txt");
        let names: Vec<&[u8]> = p.components().collect();
        assert_eq!(names, [&b"tmp"[..], b"prod", b"c.txt"]);
    }

    #[test]
    fn the_root_itself_has_no_components() {
        assert_eq!(show(b"", PATH_PRESENT), "/");
        let f = field(b"");
        assert_eq!(
            RecordedPath::new(&f, 0, PATH_PRESENT).components().count(),
            0
        );
    }

    #[test]
    fn no_path_is_empty_even_with_bytes() {
        assert_eq!(show(b"", 0), "");
        assert_eq!(show(b"stale\0", 0), "");
        let f = field(b"stale\0");
        let p = RecordedPath::new(&f, 6, 0);
        assert!(!p.is_present() && !p.is_absolute());
        assert_eq!(p.components().count(), 0);
    }

    #[test]
    fn truncated_and_unrooted_are_marked() {
        assert_eq!(show(b"c\0b\0", PATH_PRESENT | PATH_TRUNCATED), ".../b/c");
        assert_eq!(show(b"", PATH_PRESENT | PATH_TRUNCATED), "...");
        assert_eq!(
            show(b"c\0b\0", PATH_PRESENT | PATH_UNROOTED),
            "(fsroot)/b/c"
        );
        // Both: the missing top matters more.
        assert_eq!(
            show(b"c\0", PATH_PRESENT | PATH_UNROOTED | PATH_TRUNCATED),
            ".../c"
        );
    }

    #[test]
    fn a_name_without_its_nul_is_dropped_as_truncated() {
        let f = field(b"c\0ab");
        let p = RecordedPath::new(&f, 4, PATH_PRESENT);
        assert!(p.is_truncated() && !p.is_absolute());
        assert_eq!(p.to_string(), ".../c");
        assert_eq!(show(b"garbage", PATH_PRESENT), "...");
    }

    #[test]
    fn a_length_beyond_the_field_is_clamped_as_truncated() {
        let f = *b"b\0a\0";
        let p = RecordedPath::new(&f, 600, PATH_PRESENT);
        assert!(p.is_truncated());
        assert_eq!(p.to_string(), ".../a/b");
    }

    #[test]
    fn separators_controls_and_bad_utf8_inside_names_are_escaped() {
        assert_eq!(show(b"a/b\0x\0", PATH_PRESENT), "/x/a\\x2fb");
        assert_eq!(show(b"new\nline\0", PATH_PRESENT), "/new\\x0aline");
        assert_eq!(show(b"back\\slash\0", PATH_PRESENT), "/back\\x5cslash");
        assert_eq!(show(b"\xff\xfe\0ok\0", PATH_PRESENT), "/ok/\\xff\\xfe");
        assert_eq!(show("é\0".as_bytes(), PATH_PRESENT), "/é");
        // An empty name (never written by the kernel) stays visible as an empty component.
        assert_eq!(show(b"a\0\0", PATH_PRESENT), "//a");
    }
}

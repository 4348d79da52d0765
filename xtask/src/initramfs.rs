//! The guest initramfs: an uncompressed newc cpio archive (which the kernel
//! accepts as initrd) holding a static busybox, `/init`, the per-run files
//! and the kernel modules to load.

use std::fs;
use std::path::Path;

use anyhow::{Context, Result};

use crate::modules::Module;

/// Host path of the static busybox (package busybox-static).
pub const BUSYBOX: &str = "/bin/busybox";

/// Minimal writer for the "new ASCII" (070701) cpio format.
struct Cpio {
    out: Vec<u8>,
    next_ino: u32,
}

const S_IFDIR: u32 = 0o040000;
const S_IFREG: u32 = 0o100000;
const S_IFLNK: u32 = 0o120000;
const S_IFCHR: u32 = 0o020000;

impl Cpio {
    fn new() -> Self {
        Self {
            out: Vec::new(),
            next_ino: 1,
        }
    }

    fn pad4(&mut self) {
        while !self.out.len().is_multiple_of(4) {
            self.out.push(0);
        }
    }

    fn entry(&mut self, name: &str, mode: u32, rdev: (u32, u32), data: &[u8]) {
        let ino = self.next_ino;
        self.next_ino += 1;
        let nlink = if mode & S_IFDIR != 0 { 2 } else { 1 };
        let fields = [
            ino,
            mode,
            0, // uid
            0, // gid
            nlink,
            0, // mtime
            data.len() as u32,
            0, // dev major
            0, // dev minor
            rdev.0,
            rdev.1,
            name.len() as u32 + 1,
            0, // check
        ];
        self.out.extend_from_slice(b"070701");
        for f in fields {
            self.out.extend_from_slice(format!("{f:08X}").as_bytes());
        }
        self.out.extend_from_slice(name.as_bytes());
        self.out.push(0);
        self.pad4();
        self.out.extend_from_slice(data);
        self.pad4();
    }

    fn dir(&mut self, name: &str) {
        self.entry(name, S_IFDIR | 0o755, (0, 0), &[]);
    }

    fn file(&mut self, name: &str, perm: u32, data: &[u8]) {
        self.entry(name, S_IFREG | perm, (0, 0), data);
    }

    fn symlink(&mut self, name: &str, target: &str) {
        self.entry(name, S_IFLNK | 0o777, (0, 0), target.as_bytes());
    }

    fn char_dev(&mut self, name: &str, perm: u32, major: u32, minor: u32) {
        self.entry(name, S_IFCHR | perm, (major, minor), &[]);
    }

    fn finish(mut self) -> Vec<u8> {
        self.next_ino = 0;
        self.entry("TRAILER!!!", 0, (0, 0), &[]);
        self.out
    }
}

/// Writes an initramfs to `path` with `/init`, the busybox, `modules` as
/// `/lib/modules/<name>.ko` and each `(name, contents)` of `files` under `/vm/`.
pub fn write(path: &Path, init: &[u8], files: &[(&str, &[u8])], modules: &[Module]) -> Result<()> {
    let busybox = fs::read(BUSYBOX)
        .with_context(|| format!("cannot read {BUSYBOX} (apt-get install busybox-static)"))?;
    let mut c = Cpio::new();
    for d in [
        "bin",
        "dev",
        "proc",
        "sys",
        "newroot",
        "keep",
        "vm",
        "lib",
        "lib/modules",
    ] {
        c.dir(d);
    }
    // The kernel opens /dev/console for init's stdio before /init runs.
    c.char_dev("dev/console", 0o600, 5, 1);
    c.char_dev("dev/null", 0o666, 1, 3);
    c.file("bin/busybox", 0o755, &busybox);
    c.symlink("bin/sh", "busybox");
    c.file("init", 0o755, init);
    for (name, data) in files {
        c.file(&format!("vm/{name}"), 0o644, data);
    }
    for m in modules {
        c.file(&format!("lib/modules/{}.ko", m.name), 0o644, &m.data);
    }
    fs::write(path, c.finish()).with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::Cpio;

    #[test]
    fn newc_layout() {
        let mut c = Cpio::new();
        c.file("ab", 0o644, b"xyz");
        let out = c.finish();
        assert_eq!(&out[..6], b"070701");
        // header 110 + "ab\0" = 113 -> padded to 116, data 3 -> padded to 120.
        assert_eq!(&out[110..113], b"ab\0");
        assert_eq!(&out[116..119], b"xyz");
        assert_eq!(&out[120..126], b"070701");
        assert_eq!(out.len() % 4, 0);
        assert!(out.windows(10).any(|w| w == b"TRAILER!!!"));
    }
}

//! The rollback group's ground: the tree it snapshots (10,000 files in 100 directories, 1 GiB
//! in all, every file's bytes known, so a restore can be checked), and the mounts it needs (a
//! btrfs loop image, the snapshot store bound onto it), each undone when dropped.

use std::{
    fs,
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Command,
};

use anyhow::{bail, Context, Result};

/// Files in the tree, in [`DIRS`] directories of equal count.
pub const FILES: usize = 10_000;
pub const DIRS: usize = 100;
/// Bytes in the tree: 1 GiB, spread evenly over the files.
pub const TOTAL_BYTES: u64 = 1 << 30;
/// `statfs` type of btrfs (`linux/magic.h`).
const BTRFS_MAGIC: u64 = 0x9123_683E;
/// The byte source the files are cut from (longer than a file, so offsets vary).
const PATTERN_LEN: usize = 256 * 1024;

/// Size of file `i`: the even share, plus one byte for the first `TOTAL_BYTES % FILES`.
fn size_of(i: usize) -> usize {
    let share = (TOTAL_BYTES / FILES as u64) as usize;
    share + usize::from((i as u64) < TOTAL_BYTES % FILES as u64)
}

fn pattern() -> Vec<u8> {
    (0..PATTERN_LEN as u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
        .collect()
}

/// File `i`'s bytes: a window of the pattern at an offset of its own.
fn content(pattern: &[u8], i: usize) -> &[u8] {
    let size = size_of(i);
    let off = (i * 4099) % (pattern.len() - size);
    &pattern[off..off + size]
}

fn file_path(tree: &Path, i: usize) -> PathBuf {
    tree.join(format!("d{:03}", i % DIRS))
        .join(format!("f{i:05}"))
}

/// Fills the empty directory `tree` with the benchmark's files.
pub fn fill(tree: &Path) -> Result<()> {
    let pattern = pattern();
    for d in 0..DIRS {
        let dir = tree.join(format!("d{d:03}"));
        fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    for i in 0..FILES {
        let path = file_path(tree, i);
        fs::write(&path, content(&pattern, i))
            .with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(())
}

/// Checks that `tree` holds exactly the benchmark's files: every one there with its size (and
/// nothing else), and every 97th one byte for byte.
pub fn verify(tree: &Path) -> Result<()> {
    let pattern = pattern();
    let mut seen = 0usize;
    let mut bytes = 0u64;
    for d in fs::read_dir(tree).with_context(|| format!("listing {}", tree.display()))? {
        let d = d?.path();
        for f in fs::read_dir(&d).with_context(|| format!("listing {}", d.display()))? {
            let f = f?;
            seen += 1;
            bytes += f.metadata()?.len();
        }
    }
    if seen != FILES || bytes != TOTAL_BYTES {
        bail!(
            "{} holds {seen} files of {bytes} bytes, not {FILES} of {TOTAL_BYTES}",
            tree.display()
        );
    }
    for i in 0..FILES {
        let path = file_path(tree, i);
        let len = fs::symlink_metadata(&path)
            .with_context(|| format!("{} is missing", path.display()))?
            .len();
        if len != size_of(i) as u64 {
            bail!("{} has {len} bytes, not {}", path.display(), size_of(i));
        }
        if i % 97 == 0 && fs::read(&path)? != content(&pattern, i) {
            bail!("{} does not hold its bytes", path.display());
        }
    }
    Ok(())
}

/// How many entries `dir` has (an agent's `rm -rf` must have emptied it).
pub fn entries(dir: &Path) -> Result<usize> {
    Ok(fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .count())
}

/// Removes everything in `dir`, keeping `dir`.
pub fn empty(dir: &Path) -> Result<()> {
    for e in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let p = e?.path();
        if p.is_dir() {
            fs::remove_dir_all(&p)
        } else {
            fs::remove_file(&p)
        }
        .with_context(|| format!("removing {}", p.display()))?;
    }
    Ok(())
}

/// Runs a command that must succeed.
fn run(cmd: &mut Command) -> Result<()> {
    let out = cmd
        .output()
        .with_context(|| format!("cannot start {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

/// A mount this group made; unmounted when dropped.
pub struct Mounted {
    at: PathBuf,
}

impl Mounted {
    /// A fresh btrfs of `mib` MiB on a sparse image `image`, mounted on `at` (created),
    /// checked to be btrfs.
    pub fn btrfs(image: &Path, at: &Path, mib: u64) -> Result<Mounted> {
        fs::create_dir_all(at).with_context(|| format!("creating {}", at.display()))?;
        run(Command::new("truncate")
            .args(["-s", &format!("{mib}M")])
            .arg(image))?;
        run(Command::new("mkfs.btrfs").arg("-q").arg(image))
            .context("mkfs.btrfs (btrfs-progs; `cargo xtask setup` installs it)")?;
        run(Command::new("mount")
            .args(["-o", "loop"])
            .arg(image)
            .arg(at))
        .context("mounting the btrfs image (the guest's loop and btrfs modules)")?;
        let m = Mounted { at: at.to_owned() };
        if fs_magic(at)? != BTRFS_MAGIC {
            bail!("{} is not btrfs after mounting it", at.display());
        }
        Ok(m)
    }

    /// Binds directory `from` on `to` (created if missing).
    pub fn bind(from: &Path, to: &Path) -> Result<Mounted> {
        fs::create_dir_all(to).with_context(|| format!("creating {}", to.display()))?;
        run(Command::new("mount").arg("--bind").arg(from).arg(to))?;
        let m = Mounted { at: to.to_owned() };
        if fs::metadata(to)?.dev() != fs::metadata(from)?.dev() {
            bail!(
                "the bind of {} on {} did not take",
                from.display(),
                to.display()
            );
        }
        Ok(m)
    }
}

impl Drop for Mounted {
    fn drop(&mut self) {
        if let Err(e) = run(Command::new("umount").arg(&self.at)) {
            eprintln!("governor-bench: {e:#}");
        }
    }
}

/// The `f_type` of the filesystem holding `path`.
pub fn fs_magic(path: &Path) -> Result<u64> {
    use std::os::unix::ffi::OsStrExt;
    let c = std::ffi::CString::new(path.as_os_str().as_bytes())?;
    // SAFETY: an all-zero statfs is a valid value for statfs(2) to overwrite.
    let mut st: libc::statfs = unsafe { std::mem::zeroed() };
    // SAFETY: NUL-terminated path, and a statfs we own.
    if unsafe { libc::statfs(c.as_ptr(), &mut st) } != 0 {
        bail!(
            "statfs {}: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
    }
    Ok(st.f_type as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_files_add_up_to_one_gib() {
        let total: u64 = (0..FILES).map(|i| size_of(i) as u64).sum();
        assert_eq!(total, TOTAL_BYTES);
        let p = pattern();
        assert!((0..FILES).all(|i| content(&p, i).len() == size_of(i)));
        assert_ne!(content(&p, 0), content(&p, 1));
    }
}

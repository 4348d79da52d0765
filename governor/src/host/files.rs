//! Reading a file by path, the one way governor does it: the file must be a regular file and
//! no larger than the limit for its kind ([`Limit`]). Whatever path an operator (or a file
//! in a watched directory) names, `/dev/zero`, a FIFO, a directory or a huge file gets a
//! clear error naming the file and what to do, never an endless read or a hang: the file is
//! opened non-blocking (a FIFO without a writer does not wait), checked with `fstat` on the
//! opened descriptor (no race with a rename), and read through a `take` of one byte more
//! than the limit (kernel files such as `/proc`'s report size 0, so the size alone is not
//! trusted).

use std::{
    fs::File,
    io::Read,
    os::unix::fs::{FileTypeExt, OpenOptionsExt},
    path::{Path, PathBuf},
};

/// What a kind of file may be: its name in messages, and its largest size in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    pub what: &'static str,
    pub max: u64,
}

const KIB: u64 = 1024;
const MIB: u64 = 1024 * KIB;

/// A policy file (`governor daemon --policy`, `policy check`, `policy reload`).
pub const POLICY: Limit = Limit {
    what: "policy file",
    max: 8 * MIB,
};
/// A signed lease file (submitted over the admin socket, whose lines are at most 64 KiB).
pub const LEASE: Limit = Limit {
    what: "lease file",
    max: 64 * KIB,
};
/// An operator's secret or public key file.
pub const KEY: Limit = Limit {
    what: "key file",
    max: 16 * KIB,
};
/// One of the daemon's own records in its state directory (lease and request records,
/// halts, registered secret files).
pub const STATE: Limit = Limit {
    what: "state file",
    max: 4 * MIB,
};
/// A kernel interface file (`/proc`, `/sys`, cgroupfs) or a host identity file.
pub const KERNEL: Limit = Limit {
    what: "kernel interface file",
    max: 16 * MIB,
};
/// The kernel's BTF (`/sys/kernel/btf/vmlinux`, or a file given for tests).
pub const BTF: Limit = Limit {
    what: "BTF file",
    max: 256 * MIB,
};

#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error("{path}: cannot read this {what}: {source}")]
    Io {
        path: PathBuf,
        what: &'static str,
        source: std::io::Error,
    },
    #[error(
        "{path}: a {what} must be a regular file, and this is {kind}; give the path of the \
         file itself"
    )]
    NotRegular {
        path: PathBuf,
        what: &'static str,
        kind: &'static str,
    },
    #[error(
        "{path}: larger than {max} bytes, the most governor reads for a {what}; check that \
         this is the right file"
    )]
    TooLarge {
        path: PathBuf,
        what: &'static str,
        max: u64,
    },
    #[error("{path}: this {what} is not UTF-8 text ({source}); check that this is the right file")]
    NotText {
        path: PathBuf,
        what: &'static str,
        source: std::str::Utf8Error,
    },
}

impl ReadError {
    /// The underlying I/O error's kind, if the open or read itself failed (a missing file is
    /// `NotFound`).
    pub fn io_kind(&self) -> Option<std::io::ErrorKind> {
        match self {
            ReadError::Io { source, .. } => Some(source.kind()),
            _ => None,
        }
    }
}

/// What a file type is, in words.
fn kind_of(ft: std::fs::FileType) -> &'static str {
    if ft.is_dir() {
        "a directory"
    } else if ft.is_char_device() {
        "a character device (like /dev/zero)"
    } else if ft.is_block_device() {
        "a block device"
    } else if ft.is_fifo() {
        "a FIFO (named pipe)"
    } else if ft.is_socket() {
        "a socket"
    } else {
        "not a regular file"
    }
}

/// Opens `path` (following symlinks) and checks, on the opened file, that it is a regular
/// file of at most `limit.max` bytes by its size. For callers that read it themselves (a key
/// file whose mode is checked on the same descriptor); they read through [`read_open`].
pub fn open_regular(path: &Path, limit: Limit) -> Result<File, ReadError> {
    let io = |source| ReadError::Io {
        path: path.to_owned(),
        what: limit.what,
        source,
    };
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK | libc::O_NOCTTY | libc::O_CLOEXEC)
        .open(path)
        .map_err(io)?;
    let meta = file.metadata().map_err(io)?;
    if !meta.file_type().is_file() {
        return Err(ReadError::NotRegular {
            path: path.to_owned(),
            what: limit.what,
            kind: kind_of(meta.file_type()),
        });
    }
    if meta.len() > limit.max {
        return Err(too_large(path, limit));
    }
    Ok(file)
}

fn too_large(path: &Path, limit: Limit) -> ReadError {
    ReadError::TooLarge {
        path: path.to_owned(),
        what: limit.what,
        max: limit.max,
    }
}

/// Reads at most `limit.max` bytes of `file` (opened from `path` by [`open_regular`]); more
/// is an error.
pub fn read_open(file: File, path: &Path, limit: Limit) -> Result<Vec<u8>, ReadError> {
    let mut bytes = Vec::new();
    file.take(limit.max.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(|source| ReadError::Io {
            path: path.to_owned(),
            what: limit.what,
            source,
        })?;
    if bytes.len() as u64 > limit.max {
        return Err(too_large(path, limit));
    }
    Ok(bytes)
}

/// The bytes of the regular file at `path`, at most `limit.max` of them.
pub fn read(path: &Path, limit: Limit) -> Result<Vec<u8>, ReadError> {
    read_open(open_regular(path, limit)?, path, limit)
}

/// [`read`] with a limit given in bytes, for a file that is not an operator's input kind.
pub fn read_bounded(path: &Path, max: u64) -> Result<Vec<u8>, ReadError> {
    read(path, Limit { what: "file", max })
}

/// The UTF-8 text of the regular file at `path`, at most `limit.max` bytes of it.
pub fn read_text(path: &Path, limit: Limit) -> Result<String, ReadError> {
    let bytes = read(path, limit)?;
    String::from_utf8(bytes).map_err(|e| ReadError::NotText {
        path: path.to_owned(),
        what: limit.what,
        source: e.utf8_error(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMALL: Limit = Limit {
        what: "test file",
        max: 16,
    };

    fn scratch(name: &str) -> PathBuf {
        crate::host::scratch(&format!("files-{name}"))
    }

    #[test]
    fn regular_files_up_to_the_limit_are_read() {
        let dir = scratch("ok");
        let f = dir.join("f");
        std::fs::write(&f, "0123456789abcdef").expect("write");
        assert_eq!(read_text(&f, SMALL).expect("16 bytes"), "0123456789abcdef");
        // Through a symlink too: the target is what counts.
        std::os::unix::fs::symlink(&f, dir.join("l")).expect("symlink");
        assert_eq!(read(&dir.join("l"), SMALL).expect("via link").len(), 16);
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_file_over_the_limit_is_refused_with_its_name() {
        let dir = scratch("large");
        let f = dir.join("big");
        std::fs::write(&f, "0123456789abcdefX").expect("write");
        let e = read(&f, SMALL).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        let m = e.to_string();
        assert!(
            m.contains("big") && m.contains("16 bytes") && m.contains("test file"),
            "{m}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn dev_zero_is_refused_without_reading() {
        let e = read(Path::new("/dev/zero"), POLICY).unwrap_err();
        let m = e.to_string();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{m}");
        assert!(
            m.contains("/dev/zero") && m.contains("character device") && m.contains("policy file"),
            "{m}"
        );
    }

    #[test]
    fn a_fifo_is_refused_without_waiting_for_a_writer() {
        let dir = scratch("fifo");
        let f = dir.join("pipe");
        nix::unistd::mkfifo(&f, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
        let started = std::time::Instant::now();
        let e = read(&f, LEASE).unwrap_err();
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("FIFO"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_directory_is_refused() {
        let dir = scratch("dir");
        let e = read_text(&dir, KEY).unwrap_err();
        assert!(matches!(e, ReadError::NotRegular { .. }), "{e}");
        assert!(e.to_string().contains("a directory"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn kernel_files_of_size_zero_are_read_up_to_the_limit() {
        // procfs reports size 0: the bound is on what is read.
        let text = read_text(Path::new("/proc/self/status"), KERNEL).expect("status");
        assert!(text.contains("Pid:"), "{text}");
        let e = read(Path::new("/proc/self/status"), SMALL).unwrap_err();
        assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
    }

    /// Every reader of an operator's or the daemon's files goes through here: each refuses
    /// `/dev/zero`, a FIFO without a writer and a directory at once, naming the file.
    #[test]
    fn every_reader_refuses_what_is_not_a_regular_file() {
        use crate::signing::{
            keys::{PublicKeyFile, SecretKey},
            lease::Lease,
        };
        let dir = scratch("readers");
        let fifo = dir.join("pipe");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let started = std::time::Instant::now();
        for bad in [Path::new("/dev/zero"), fifo.as_path(), dir.as_path()] {
            let errors = [
                crate::policy::Policy::load(bad)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string(),
                Lease::read(bad).map(|_| ()).unwrap_err().to_string(),
                SecretKey::load(bad).map(|_| ()).unwrap_err().to_string(),
                PublicKeyFile::load(bad)
                    .map(|_| ())
                    .unwrap_err()
                    .to_string(),
            ];
            for e in errors {
                assert!(
                    e.contains(&bad.display().to_string()) && e.contains("must be a regular file"),
                    "{e}"
                );
            }
        }
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Too large: a sparse file just over each limit is refused before it is read.
        let big = dir.join("big");
        for limit in [POLICY, LEASE, KEY] {
            std::fs::File::create(&big)
                .and_then(|f| f.set_len(limit.max + 1))
                .expect("sparse file");
            let e = read(&big, limit).unwrap_err();
            assert!(matches!(e, ReadError::TooLarge { .. }), "{e}");
        }
        std::fs::File::create(&big)
            .and_then(|f| f.set_len(POLICY.max + 1))
            .expect("sparse file");
        let e = crate::policy::Policy::load(&big)
            .map(|_| ())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("larger than") && e.contains("policy file"),
            "{e}"
        );
        let e = Lease::read(&big).map(|_| ()).unwrap_err().to_string();
        assert!(e.contains("larger than") && e.contains("lease file"), "{e}");
        // The daemon's own stores report such a record and go on.
        let state = dir.join("state");
        let store = crate::leases::store::Store::open(&state).expect("store");
        nix::unistd::mkfifo(
            &store.dir().join("x.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let (records, bad) = store.load().expect("load");
        assert!(records.is_empty() && bad.len() == 1, "{bad:?}");
        assert!(bad[0].to_string().contains("x.json"), "{}", bad[0]);
        std::fs::create_dir_all(state.join("requests")).expect("mkdir");
        nix::unistd::mkfifo(
            &state.join("requests/r-1.json"),
            nix::sys::stat::Mode::from_bits_truncate(0o600),
        )
        .expect("mkfifo");
        let (_, bad) = crate::requests::book::Book::open(&state).expect("book");
        assert!(
            bad.len() == 1 && bad[0].to_string().contains("r-1.json"),
            "{bad:?}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn missing_files_and_bad_text_say_so() {
        let dir = scratch("missing");
        let e = read(&dir.join("nope"), LEASE).unwrap_err();
        assert_eq!(e.io_kind(), Some(std::io::ErrorKind::NotFound));
        assert!(e.to_string().contains("nope"), "{e}");
        std::fs::write(dir.join("bin"), [0xff, 0xfe]).expect("write");
        let e = read_text(&dir.join("bin"), LEASE).unwrap_err();
        assert!(e.to_string().contains("not UTF-8"), "{e}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

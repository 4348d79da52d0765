//! Where the kernel keeps the sequence counters of its dentry tree (`rename_lock`) and mount
//! tree (`mount_lock`): the kernel's per-file write cache (governor-ebpf `write_cache.rs`)
//! trusts a kept answer only while neither has moved. Their addresses come from
//! `/proc/kallsyms` (they are not in BTF); BTF confirms that a `seqlock_t`'s sequence is its
//! first word. Without them the kernel keeps nothing and walks on every write.

use std::path::Path;

use governor_common::TreeSeqs;

use super::btf::Btf;

const KALLSYMS: &str = "/proc/kallsyms";

#[derive(Debug, thiserror::Error)]
pub enum TreeSeqsError {
    #[error("reading {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: crate::host::files::ReadError,
    },
    #[error("{path} has no data symbol `{name}`")]
    Missing { path: String, name: &'static str },
    #[error("{path} lists `{name}` {count} times; governor cannot tell which one is meant")]
    Ambiguous {
        path: String,
        name: &'static str,
        count: usize,
    },
    #[error(
        "{path} shows `{name}` at address 0: kernel addresses are hidden from this process \
         (kernel.kptr_restrict)"
    )]
    Hidden { path: String, name: &'static str },
    #[error(
        "kernel BTF: `seqcount_spinlock.seqcount.sequence` is not a 4-byte word at offset 0 \
         ({0}); governor cannot read the sequence of a seqlock_t"
    )]
    Layout(String),
}

/// The addresses of `rename_lock` and `mount_lock` on the running kernel.
pub fn resolve(btf: &Btf) -> Result<TreeSeqs, TreeSeqsError> {
    check_layout(btf)?;
    let path = Path::new(KALLSYMS);
    let text =
        crate::host::files::read_text(path, crate::host::files::KERNEL).map_err(|source| {
            TreeSeqsError::Read {
                path: KALLSYMS.into(),
                source,
            }
        })?;
    Ok(TreeSeqs {
        rename_lock: address(&text, KALLSYMS, "rename_lock")?,
        mount_lock: address(&text, KALLSYMS, "mount_lock")?,
    })
}

/// `seqlock_t` is `{ seqcount_spinlock_t seqcount; spinlock_t lock; }`: its sequence is the
/// first word of its first member.
fn check_layout(btf: &Btf) -> Result<(), TreeSeqsError> {
    let strukt = "seqcount_spinlock";
    let member = "seqcount.sequence";
    let offset = btf
        .member_offset(strukt, member)
        .map_err(|e| TreeSeqsError::Layout(e.to_string()))?;
    let size = btf
        .member_size(strukt, member)
        .map_err(|e| TreeSeqsError::Layout(e.to_string()))?;
    if (offset, size) != (0, 4) {
        return Err(TreeSeqsError::Layout(format!(
            "offset {offset}, size {size}"
        )));
    }
    Ok(())
}

/// The address of the one core-kernel data symbol `name` in kallsyms `text`.
fn address(text: &str, path: &str, name: &'static str) -> Result<u64, TreeSeqsError> {
    let found: Vec<u64> = text
        .lines()
        .filter_map(|line| {
            let mut fields = line.split_whitespace();
            let (addr, kind, sym) = (fields.next()?, fields.next()?, fields.next()?);
            // A fourth field names a module; the seqlocks are in the core kernel.
            let data = matches!(kind, "d" | "D" | "b" | "B");
            (sym == name && data && fields.next().is_none())
                .then(|| u64::from_str_radix(addr, 16).ok())
                .flatten()
        })
        .collect();
    match found.as_slice() {
        [] => Err(TreeSeqsError::Missing {
            path: path.into(),
            name,
        }),
        [0] => Err(TreeSeqsError::Hidden {
            path: path.into(),
            name,
        }),
        [addr] => Ok(*addr),
        many => Err(TreeSeqsError::Ambiguous {
            path: path.into(),
            name,
            count: many.len(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffffa8e09640 D rename_lock
ffffffffa8e096c0 d mount_lock
ffffffffa8000000 T mount_lock_fn
ffffffffc0001000 d rename_lock\t[some_module]
";

    #[test]
    fn finds_core_data_symbols_only() {
        assert_eq!(
            address(SAMPLE, "k", "rename_lock").expect("rename_lock"),
            0xffff_ffff_a8e0_9640
        );
        assert_eq!(
            address(SAMPLE, "k", "mount_lock").expect("mount_lock"),
            0xffff_ffff_a8e0_96c0
        );
    }

    #[test]
    fn refuses_missing_hidden_and_ambiguous() {
        assert!(matches!(
            address("ffffffff81000000 T rename_lock\n", "k", "rename_lock"),
            Err(TreeSeqsError::Missing { .. })
        ));
        assert!(matches!(
            address("0000000000000000 D rename_lock\n", "k", "rename_lock"),
            Err(TreeSeqsError::Hidden { .. })
        ));
        assert!(matches!(
            address(
                "ffffffff81000000 d mount_lock\nffffffff82000000 d mount_lock\n",
                "k",
                "mount_lock"
            ),
            Err(TreeSeqsError::Ambiguous { count: 2, .. })
        ));
    }
}

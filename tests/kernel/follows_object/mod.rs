//! Protection follows the object, whichever way an agent reaches it: another name (a hard
//! link made before the daemon started, or by the agent itself), a handle whose dentry the
//! cache no longer connects (open_by_handle_at(2) after the caches were dropped), a shared
//! writable mapping of a descriptor a non-agent handed over, the block device beneath the
//! filesystem, a filesystem mounted inside the tree (reached by hooks that get no mount),
//! inode flags, timestamps, and reading. For each: the agent gets EPERM, the target is
//! unchanged, exactly one event is recorded, and a non-agent doing the same succeeds.
//!
//! This file holds the shared policy, checks and probes; `names` has other names, handles,
//! mappings and the block device, `mounts` has mounts inside the tree, inode flags, times and
//! reading.
//!
//! May import the test library (`governor_kernel_tests`); the kernel tests' folders import
//! nothing from each other.

use std::{
    os::unix::fs::MetadataExt,
    path::{Path, PathBuf},
    process::Output,
};

use governor_kernel_tests::paths::s;
use governor_kernel_tests::{
    allow_the_rest, as_host, assert_ok, kernel_module, load_module, require_bpf_lsm, scratch,
    unmount, write, Daemon,
};
use serde_json::Value;

mod mounts;
mod names;

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| format!("(unreadable: {e})"))
}

/// `Daemon::refused`.
fn refused(d: &Daemon, agent: &str, setup: &str, cmd: &[&str], class: &str) -> Value {
    d.refused(agent, setup, cmd, class)
}

fn ok(out: &Output, what: &str) {
    assert_ok(out, what);
}

/// Python: open argv[1] for appending and write one byte.
const APPEND: &str = "import os, sys\n\
     fd = os.open(sys.argv[1], os.O_WRONLY | os.O_APPEND)\n\
     os.write(fd, b'X')\n";

/// Python: set the trusted xattr `trusted.governor` on argv[1].
const SETXATTR: &str = "import os, sys\nos.setxattr(sys.argv[1], 'trusted.governor', b'1')\n";

/// A policy with enforcing agent `agent` protecting each of `trees` against `classes`.
fn policy(agent: &str, trees: &[(&Path, &str)]) -> String {
    let mut s = format!(
        "[policy]\nname = \"test-{agent}\"\nowner = \"kernel-tests@example.com\"\n\n\
         [[agents]]\nname = \"{agent}\"\ncgroup = \"governor-test/{agent}\"\nmode = \"enforce\"\n"
    );
    for (path, classes) in trees {
        let denied: Vec<&str> = classes.split(',').map(str::trim).collect();
        let quoted: Vec<String> = denied.iter().map(|c| format!("{c:?}")).collect();
        s += &format!(
            "\n[[protect]]\npath = \"{}\"\ndeny = [{}]\n",
            path.display(),
            quoted.join(", ")
        );
        let rest = allow_the_rest(&denied);
        if !rest.is_empty() {
            s += &format!("allow = [{rest}]\n");
        }
    }
    s
}

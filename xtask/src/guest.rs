//! Guest-side scripts: `/init` (mounts, modules, the host root over
//! virtiofs, writable tmpfs, exit-code marker, power-off) and the per-run
//! `/vm/run.sh` that runs the command chrooted into the host root.

use std::ffi::OsString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

/// Host directories the guest covers with a fresh writable tmpfs.
pub const TMPFS_DIRS: &[&str] = &["/tmp", "/run", "/var/lib/governor"];

/// virtiofs tag of the host root filesystem.
pub const FS_TAG: &str = "hostroot";

/// Start of the line the guest prints after the command, before the nonce.
const MARKER_START: &str = "@@governor-vm-exit:";

/// What the guest must do for one run.
pub struct GuestPlan {
    /// Random per run, so command output cannot fake the exit marker.
    pub nonce: String,
    /// Module names to `insmod` in order (files in `/lib/modules`).
    pub modules: Vec<String>,
    /// Host paths below a [`TMPFS_DIRS`] entry that must stay visible.
    pub keep: Vec<PathBuf>,
    pub cwd: PathBuf,
    pub env: Vec<(OsString, OsString)>,
    pub argv: Vec<OsString>,
}

/// `'...'` quoting for POSIX sh, byte-exact.
fn quote(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'\'');
    for &b in s {
        if b == b'\'' {
            out.extend_from_slice(b"'\\''");
        } else {
            out.push(b);
        }
    }
    out.push(b'\'');
}

fn quoted(s: &[u8]) -> Vec<u8> {
    let mut v = Vec::new();
    quote(&mut v, s);
    v
}

/// The guest path `/newroot<p>`, quoted.
fn under_root(p: &Path) -> String {
    let mut full = b"/newroot".to_vec();
    full.extend_from_slice(p.as_os_str().as_bytes());
    String::from_utf8_lossy(&quoted(&full)).into_owned()
}

/// The line prefix announcing the exit code for `nonce`.
pub fn marker_prefix(nonce: &str) -> String {
    format!("{MARKER_START}{nonce}:")
}

/// Finds the exit marker in an output line: (offset of the marker, code).
pub fn find_marker(line: &[u8], prefix: &str) -> Option<(usize, i32)> {
    let p = prefix.as_bytes();
    let at = line.windows(p.len()).position(|w| w == p)?;
    let rest = &line[at + p.len()..];
    let end = rest.windows(2).position(|w| w == b"@@")?;
    let code = std::str::from_utf8(&rest[..end]).ok()?.parse().ok()?;
    Some((at, code))
}

const PRELUDE: &str = r#"#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() {
    echo "governor-vm: guest setup failed: $*" >&2
    dmesg 2>/dev/null | tail -n 25 >&2
    sync
    poweroff -f
    exit 1
}
mount -t proc proc /proc || fail "mount /proc"
mount -t sysfs sysfs /sys || fail "mount /sys"
mount -t devtmpfs devtmpfs /dev || fail "mount /dev"
"#;

const MOUNT_ROOT: &str = r#"n=0
until mount -t virtiofs -o ro hostroot /newroot 2>/dev/null; do
    n=$((n + 1))
    [ $n -ge 100 ] && fail "mount -t virtiofs hostroot /newroot"
    usleep 50000
done
R=/newroot
mount -t proc proc $R/proc || fail "mount $R/proc"
mount -t sysfs sysfs $R/sys || fail "mount $R/sys"
mount -t devtmpfs devtmpfs $R/dev || fail "mount $R/dev"
mkdir -p $R/dev/pts $R/dev/shm
mount -t devpts -o newinstance,ptmxmode=0666,mode=0620 devpts $R/dev/pts || fail "mount devpts"
mount -t tmpfs -o mode=1777 tmpfs $R/dev/shm || fail "mount $R/dev/shm"
mount -t securityfs securityfs $R/sys/kernel/security || fail "mount securityfs"
mount -t cgroup2 cgroup2 $R/sys/fs/cgroup || fail "mount cgroup2"
mount -t bpf bpf $R/sys/fs/bpf || fail "mount bpffs"
mount -t tracefs tracefs $R/sys/kernel/tracing 2>/dev/null
mount -t debugfs debugfs $R/sys/kernel/debug 2>/dev/null
"#;

/// The per-run `/init`.
pub fn init_script(plan: &GuestPlan) -> Vec<u8> {
    let mut s = String::from(PRELUDE);
    for m in &plan.modules {
        s += &format!("insmod /lib/modules/{m}.ko || fail \"insmod {m}\"\n");
    }
    s += MOUNT_ROOT;
    // Keep host paths that a tmpfs would hide (e.g. a checkout under /tmp).
    for (i, p) in plan.keep.iter().enumerate() {
        let src = under_root(p);
        s += &format!("mkdir -p /keep/{i} && mount --bind {src} /keep/{i} || fail \"keep {i}\"\n");
    }
    for d in TMPFS_DIRS {
        let mode = if *d == "/tmp" { "1777" } else { "0755" };
        s += &format!("mount -t tmpfs -o mode={mode} tmpfs $R{d} || fail \"tmpfs on {d}\"\n");
    }
    for (i, p) in plan.keep.iter().enumerate() {
        let dst = under_root(p);
        s += &format!("mkdir -p {dst} && mount --bind /keep/{i} {dst} || fail \"rebind {i}\"\n");
    }
    s += "ip link set lo up\nhostname governor-vm\n";
    s += "sh /vm/run.sh\nrc=$?\nsync\n";
    s += &format!("echo \"{}$rc@@\"\n", marker_prefix(&plan.nonce));
    s += "poweroff -f\necho o > /proc/sysrq-trigger\nsleep 10\n";
    s.into_bytes()
}

/// The per-run `/vm/run.sh`: exact argv, clean environment, host cwd.
///
/// It goes through the host's `/usr/bin/env` and `/bin/sh` inside the new root
/// because Debian's busybox prefers its own applets over PATH lookups.
pub fn run_script(plan: &GuestPlan) -> Vec<u8> {
    // Move the host root over `/` before entering it, as switch_root does: a plain chroot
    // would leave the command "chrooted" in the kernel's eyes, and the kernel refuses user
    // namespaces (unshare -U) to chrooted processes.
    let mut s = b"cd /newroot && mount --move . / || { echo 'governor-vm: cannot move the root' >&2; exit 125; }\n\
exec chroot . /usr/bin/env -i"
        .to_vec();
    for (k, v) in &plan.env {
        let mut kv = k.as_bytes().to_vec();
        kv.push(b'=');
        kv.extend_from_slice(v.as_bytes());
        s.push(b' ');
        quote(&mut s, &kv);
    }
    s.extend_from_slice(b" /bin/sh -c ");
    let inner = "cd -- \"$1\" || { echo \"governor-vm: no directory $1\" >&2; exit 125; }; \
                 shift; exec \"$@\"";
    quote(&mut s, inner.as_bytes());
    s.extend_from_slice(b" governor-vm ");
    quote(&mut s, plan.cwd.as_os_str().as_bytes());
    for a in &plan.argv {
        s.push(b' ');
        quote(&mut s, a.as_bytes());
    }
    s.extend_from_slice(b" </dev/null\n");
    s
}

/// `/init` for the KVM probe: print the marker with code 0 and power off.
pub fn probe_init(nonce: &str) -> Vec<u8> {
    let mut s = String::from("#!/bin/busybox sh\n/bin/busybox mount -t proc proc /proc\n");
    s += &format!("/bin/busybox echo \"{}0@@\"\n", marker_prefix(nonce));
    s += "/bin/busybox poweroff -f\n/bin/busybox sleep 10\n";
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting_is_exact() {
        assert_eq!(quoted(b"a b"), b"'a b'");
        assert_eq!(quoted(b"it's"), b"'it'\\''s'");
    }

    #[test]
    fn marker_roundtrip() {
        let p = marker_prefix("abc");
        let line = format!("partial{p}7@@");
        assert_eq!(find_marker(line.as_bytes(), &p), Some((7, 7)));
        assert_eq!(find_marker(b"@@governor-vm-exit:zzz:1@@", &p), None);
    }
}

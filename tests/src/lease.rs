//! Writing entries into the kernel's lease map directly, as the daemon will once a signed
//! lease is verified: the kernel half of leases, tested on its own. A lease's object is an
//! inode ([`inode_key`]: files, directories, binaries) or a `[[network]]` rule
//! ([`net_object`]).

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use aya::maps::{HashMap, Map, MapData};
use governor_common::{maps, net, Class, InodeKey, LeaseEntry, LeaseKey};

/// The live `GOV_LEASES` map of the running daemon.
pub struct LeaseMap {
    map: HashMap<MapData, LeaseKey, LeaseEntry>,
}

/// Nanoseconds on `CLOCK_BOOTTIME`, the clock the kernel checks expiry against.
pub fn boot_ns() -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes into the timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &mut ts) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_BOOTTIME)");
    ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
}

/// The kernel's identity of the inode at `path` (following symlinks).
pub fn inode_key(path: &Path) -> InodeKey {
    let meta = std::fs::metadata(path).unwrap_or_else(|e| panic!("stat {}: {e}", path.display()));
    let dev = meta.dev();
    InodeKey::new(
        InodeKey::kernel_dev(libc::major(dev), libc::minor(dev)),
        meta.ino(),
    )
}

/// The lease object of the `[[network]]` rule `rule_id` (its index in the policy).
pub fn net_object(rule_id: u32) -> InodeKey {
    net::lease_object(rule_id)
}

impl LeaseMap {
    /// Opens the `GOV_LEASES` map the daemon pinned in `pin_dir` (its one generation): the
    /// right map even when other daemons run on the same kernel (the host tier).
    pub fn pinned(pin_dir: &Path) -> LeaseMap {
        let generation = std::fs::read_dir(pin_dir)
            .unwrap_or_else(|e| panic!("read pin dir {}: {e}", pin_dir.display()))
            .filter_map(Result::ok)
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with("gen-"))
            })
            .max()
            .unwrap_or_else(|| panic!("no generation pinned in {}", pin_dir.display()));
        let path = generation.join("maps").join(maps::LEASES);
        let data = MapData::from_pin(&path)
            .unwrap_or_else(|e| panic!("open pinned {}: {e}", path.display()));
        let map = Map::from_map_data(data).expect("lease map type");
        LeaseMap {
            map: HashMap::try_from(map).expect("lease map is a hash map"),
        }
    }

    /// Opens the newest map named `GOV_LEASES` (the running daemon's).
    pub fn open() -> LeaseMap {
        LeaseMap {
            map: crate::daemon_map(maps::LEASES),
        }
    }

    /// Grants `agent_id` the class on `path` (and below) for `ttl` of boot time.
    pub fn grant(&mut self, agent_id: u32, class: Class, path: &Path, ttl: Duration, id: u64) {
        self.grant_on(agent_id, class, inode_key(path), ttl, id);
    }

    /// Grants `agent_id` the class on `object` for `ttl` of boot time (a zero `ttl` writes an
    /// entry that has already expired when the kernel reads it).
    pub fn grant_on(
        &mut self,
        agent_id: u32,
        class: Class,
        object: InodeKey,
        ttl: Duration,
        id: u64,
    ) {
        let key = lease_key(agent_id, class, object);
        let entry = LeaseEntry {
            lease_id: id,
            not_before_boot_ns: 0,
            not_after_boot_ns: boot_ns() + ttl.as_nanos() as u64,
        };
        self.map.insert(key, entry, 0).expect("insert lease");
    }

    /// Removes the lease of `agent_id` on `class` at `path`.
    pub fn revoke(&mut self, agent_id: u32, class: Class, path: &Path) {
        self.revoke_on(agent_id, class, inode_key(path));
    }

    /// Removes the lease of `agent_id` on `class` on `object`.
    pub fn revoke_on(&mut self, agent_id: u32, class: Class, object: InodeKey) {
        let key = lease_key(agent_id, class, object);
        self.map.remove(&key).expect("remove lease");
    }
}

/// The lease map's key for `agent_id` doing `class` to `object`.
fn lease_key(agent_id: u32, class: Class, object: InodeKey) -> LeaseKey {
    LeaseKey {
        agent_id,
        class: class as u32,
        object,
    }
}

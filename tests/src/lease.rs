//! Writing entries into the kernel's lease map directly, as the daemon will once a signed
//! lease is verified: the kernel half of leases, tested on its own.

use std::{os::unix::fs::MetadataExt, path::Path, time::Duration};

use aya::maps::{loaded_maps, HashMap, Map, MapData};
use governor_common::{maps, Class, InodeKey, LeaseEntry, LeaseKey};

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

impl LeaseMap {
    /// Opens the newest map named `GOV_LEASES` (the running daemon's).
    pub fn open() -> LeaseMap {
        let id = loaded_maps()
            .filter_map(Result::ok)
            .filter(|m| m.name_as_str() == Some(maps::LEASES))
            .map(|m| m.id())
            .max()
            .unwrap_or_else(|| panic!("no {} map loaded: is the daemon running?", maps::LEASES));
        let data = MapData::from_id(id).expect("open the lease map by id");
        let map = Map::from_map_data(data).expect("lease map type");
        LeaseMap {
            map: HashMap::try_from(map).expect("lease map is a hash map"),
        }
    }

    /// Grants `agent_id` the class on `path` (and below) for `ttl` of boot time.
    pub fn grant(&mut self, agent_id: u32, class: Class, path: &Path, ttl: Duration, id: u64) {
        let key = lease_key(agent_id, class, path);
        let entry = LeaseEntry {
            lease_id: id,
            not_after_boot_ns: boot_ns() + ttl.as_nanos() as u64,
        };
        self.map.insert(key, entry, 0).expect("insert lease");
    }

    /// Removes the lease of `agent_id` on `class` at `path`.
    pub fn revoke(&mut self, agent_id: u32, class: Class, path: &Path) {
        let key = lease_key(agent_id, class, path);
        self.map.remove(&key).expect("remove lease");
    }
}

/// The lease map's key for `agent_id` doing `class` to the inode at `path`.
fn lease_key(agent_id: u32, class: Class, path: &Path) -> LeaseKey {
    LeaseKey {
        agent_id,
        class: class as u32,
        object: inode_key(path),
    }
}

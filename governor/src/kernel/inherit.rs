//! The generations a starting daemon takes over: what their decision rings still hold (and
//! their process rings), opened from their pins or, for a generation whose pins are out of
//! reach, by the kernel's map ids; and their counters, which say exactly how many decisions
//! each emitted and dropped. The daemon drains them into the lineage before it retires the
//! generations (`lineage::handover`), and reads the counters again once their programs have
//! left the kernel, when the counts are final.

use std::path::{Path, PathBuf};

use aya::maps::{Map, MapData, PerCpuArray, RingBuf};
use governor_common::maps::{self, Counter};

use super::{
    events::read_counter,
    pin::{PinDir, Previous},
};

/// Where a taken-over generation was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In the pin directory.
    Pinned(PathBuf),
    /// Still attached in the kernel, but pinned nowhere this daemon can see (its bpf
    /// filesystem was unmounted while something held it): found by program and map names.
    Orphan,
}

/// One earlier generation's rings and counters.
pub struct Inherited {
    /// Kernel map id of its decision ring (`rings.ring_id`).
    pub id: u32,
    pub generation: Option<u64>,
    /// The policy version its manifest names, if any.
    pub policy: Option<String>,
    pub origin: Origin,
    ring: RingBuf<MapData>,
    procs: Option<RingBuf<MapData>>,
    counters: Option<PerCpuArray<MapData, u64>>,
}

/// What a generation's counters say: decisions put into its ring, and not (ring full).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub emitted: u64,
    pub dropped: u64,
}

fn ring_map(data: MapData) -> Result<RingBuf<MapData>, aya::maps::MapError> {
    RingBuf::try_from(Map::RingBuf(data))
}

fn counters_map(data: MapData) -> Result<PerCpuArray<MapData, u64>, aya::maps::MapError> {
    PerCpuArray::try_from(Map::PerCpuArray(data))
}

impl Inherited {
    /// Opens the rings and counters pinned in generation directory `dir`.
    pub fn from_pins(
        dir: &Path,
        generation: u64,
        policy: Option<String>,
    ) -> Result<Inherited, String> {
        let pin = |name: &str| dir.join("maps").join(name);
        let events = pin(maps::EVENTS);
        let info = aya::maps::MapInfo::from_pin(&events)
            .map_err(|e| format!("{}: {e}", events.display()))?;
        let ring = MapData::from_pin(&events)
            .and_then(ring_map)
            .map_err(|e| format!("{}: {e}", events.display()))?;
        Ok(Inherited {
            id: info.id(),
            generation: Some(generation),
            policy,
            origin: Origin::Pinned(dir.to_path_buf()),
            ring,
            procs: MapData::from_pin(pin(maps::PROCS)).and_then(ring_map).ok(),
            counters: MapData::from_pin(pin(maps::COUNTERS))
                .and_then(counters_map)
                .ok(),
        })
    }

    /// Opens a generation's rings and counters by their kernel map ids.
    pub fn from_ids(
        events: u32,
        counters: Option<u32>,
        procs: Option<u32>,
    ) -> Result<Inherited, String> {
        let ring = MapData::from_id(events)
            .and_then(ring_map)
            .map_err(|e| format!("ring buffer map id {events}: {e}"))?;
        Ok(Inherited {
            id: events,
            generation: None,
            policy: None,
            origin: Origin::Orphan,
            ring,
            procs: procs.and_then(|id| MapData::from_id(id).and_then(ring_map).ok()),
            counters: counters.and_then(|id| MapData::from_id(id).and_then(counters_map).ok()),
        })
    }

    /// Hands every decision record now in the ring to `take`; returns how many.
    pub fn drain(&mut self, mut take: impl FnMut(&[u8])) -> u64 {
        let mut n = 0;
        while let Some(record) = self.ring.next() {
            take(&record);
            n += 1;
        }
        n
    }

    /// Hands every process record now in the process ring to `take`; returns how many.
    pub fn drain_procs(&mut self, mut take: impl FnMut(&[u8])) -> u64 {
        let Some(ring) = self.procs.as_mut() else {
            return 0;
        };
        let mut n = 0;
        while let Some(record) = ring.next() {
            take(&record);
            n += 1;
        }
        n
    }

    /// The generation's counts as of now (final once its programs left the kernel); `None`
    /// if its counters could not be opened.
    pub fn counts(&self) -> Option<Counts> {
        let c = self.counters.as_ref()?;
        Some(Counts {
            emitted: read_counter(c, Counter::EventsEmitted)?,
            dropped: read_counter(c, Counter::EventsDropped)?,
        })
    }
}

/// Opens every generation in `pins` (before this daemon made its own): the manifest's with
/// its policy version, any other (one a daemon left half made) without. A generation whose
/// ring cannot be opened is reported and skipped: it is retired all the same.
pub fn pinned(pins: &PinDir) -> Vec<Inherited> {
    let manifest = match &pins.previous {
        Previous::Governor(m) => Some(m),
        _ => None,
    };
    pins.generations()
        .into_iter()
        .filter_map(|g| {
            let policy = manifest
                .filter(|m| m.generation == g.number)
                .and_then(|m| m.policy.clone());
            match Inherited::from_pins(&g.dir, g.number, policy) {
                Ok(i) => Some(i),
                Err(e) => {
                    tracing::warn!(generation = g.number, error = %e,
                        "lineage: the decision ring of a pinned generation cannot be opened; \
                         what it holds cannot be recorded");
                    None
                }
            }
        })
        .collect()
}

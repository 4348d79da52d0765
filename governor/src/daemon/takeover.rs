//! How a starting daemon takes over from the kernel generations before it, in order, so that
//! there is no gap in enforcement and nothing they recorded is lost:
//! 1. open the rings of every generation pinned in the pin directory (`kernel::inherit`):
//!    from here what they hold is safe whatever happens to their pins;
//! 2. attach and pin this daemon's own generation (both enforce from here);
//! 3. find orphaned generations (attached, pinned nowhere in sight: `kernel::orphans`) and
//!    open their rings by map id;
//! 4. drain every one of those rings into the lineage (`lineage::handover`), committed;
//! 5. retire them: the pinned ones by removing their pins, the orphans by detaching,
//!    unpinning through whatever holds their filesystem, or neutralizing;
//! 6. drain them again (what they emitted until their programs left the kernel), read their
//!    final counts, and count in the lineage whatever of theirs it lacks, in the transaction
//!    that notes this daemon's run.

use std::sync::Arc;

use crate::{
    host::cgroup::CgroupFs,
    kernel::{
        generation::{Filled, GenerationError, Live},
        inherit::{self, Inherited},
        orphans,
        pin::{self, PinDir},
    },
    lineage::{
        boot::BootClock,
        handover::Handover,
        record::{GapRow, RingKey, RingRow},
        runs::Carried,
    },
    policy::Compiled,
};

#[derive(Debug, thiserror::Error)]
pub enum TakeoverError {
    #[error(transparent)]
    Generation(#[from] GenerationError),
    #[error(transparent)]
    Pin(#[from] pin::PinError),
    #[error(
        "the lineage database: {0}; what the earlier generations' rings hold stays pinned \
         for the next daemon"
    )]
    Lineage(#[from] rusqlite::Error),
}

/// What the take-over did.
pub struct TakenOver {
    pub live: Live,
    pub retired: pin::Retired,
    pub orphans: Vec<orphans::Orphan>,
    pub orphans_retired: orphans::Retired,
    /// This daemon's run in the lineage.
    pub run: i64,
    pub carried: Carried,
    pub gap: Option<GapRow>,
}

/// Steps 1 to 6 of the module doc.
pub fn take_over(
    filled: Filled,
    pins: &mut PinDir,
    compiled: &Arc<Compiled>,
    cgroups: &CgroupFs,
    lineage: &mut rusqlite::Connection,
    clock: &BootClock,
) -> Result<TakenOver, TakeoverError> {
    let mut rings: Vec<Inherited> = inherit::pinned(pins);
    let live = filled.go_live(pins, compiled, cgroups)?;
    let found = orphans::find();
    for o in &found {
        let Some(events) = o.events else { continue };
        match Inherited::from_ids(events, o.counters, o.procs) {
            Ok(ring) => rings.push(ring),
            Err(e) => tracing::warn!(error = %e, agents_map = o.agents,
                "lineage: the decision ring of an orphaned generation cannot be opened; \
                 what it holds cannot be recorded"),
        }
    }
    let mut handover = Handover::new(lineage, clock, Arc::clone(compiled), cgroups.root())?;
    handover.drain(&mut rings)?;
    let retired = pins.retire_others()?;
    let orphans_retired = orphans::retire(&found);
    handover.drain(&mut rings)?;
    let own = RingRow {
        generation: Some(live.generation),
        policy_version: Some(compiled.policy_version.clone()),
        ..RingRow::new(RingKey {
            boot_id: clock.boot_id.clone(),
            ring_id: live.ring.id,
        })
    };
    let (run, carried, gap) = handover.finish(&rings, std::process::id(), own)?;
    Ok(TakenOver {
        live,
        retired,
        orphans: found,
        orphans_retired,
        run,
        carried,
        gap,
    })
}

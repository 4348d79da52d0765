//! The daemon's loss counters: every place between the kernel and the database where a
//! decision (or another record) can be lost, as the counts the lineage writer turns into
//! `gaps` rows. Decisions are counted per kernel generation's ring, so that each gap row says
//! whose decisions it counts (`gaps.ring`) and each ring's tallies in `rings` stay exact.

use std::sync::{atomic::Ordering, Arc};

use super::{
    record::{RingKey, RingRow},
    recorder::Refused,
    writer::{self, Count, Polled},
};
use crate::kernel::{events::ReaderStats, procs::ProcStats};

/// What the loss counts need of the kernel's counters: the process records it could not put
/// into its full process ring buffer. A trait, so that lineage need not import the admin API
/// whose status type carries them (`api::status::Counters` implements it).
pub trait KernelCounters {
    fn procs_dropped(&self) -> u64;
}

/// The counts for the lineage writer: per ring, the kernel's drops and the reader's losses,
/// and what the kernel says about the ring (kept in `rings`); the process stream's and the
/// recorders' losses. `kernel` reads the counters of the enforcing generation (for the
/// process records' drops).
pub fn counts<C: KernelCounters>(
    boot_id: String,
    kernel: impl Fn() -> Result<C, String> + Send + 'static,
    reader: Arc<ReaderStats>,
    procs: Arc<ProcStats>,
    refused: Arc<Refused>,
) -> writer::Counts {
    Box::new(move || {
        let key = |ring_id: u32| RingKey {
            boot_id: boot_id.clone(),
            ring_id,
        };
        let mut polled = Polled::default();
        let counts = &mut polled.counts;
        for r in reader.ledger.read() {
            let ring = Some(key(r.id));
            counts.extend([
                Count {
                    source: "kernel-ring",
                    what: "decisions the kernel could not put into its full ring buffer \
                           (enforced, not recorded)",
                    value: r.dropped,
                    ring: ring.clone(),
                },
                Count {
                    source: "queue",
                    what: "decisions the daemon's event queue could not take from the ring \
                           buffer reader (enforced, not recorded)",
                    value: r.overflowed,
                    ring: ring.clone(),
                },
                Count {
                    source: "malformed",
                    what: "ring-buffer records that failed to decode (wrong length, version \
                           or kind)",
                    value: r.malformed,
                    ring: ring.clone(),
                },
            ]);
            polled.rings.push(RingRow {
                generation: Some(r.generation),
                policy_version: Some(r.policy_version),
                emitted: Some(r.emitted),
                kernel_dropped: Some(r.dropped),
                emitted_final: r.closed,
                ..RingRow::new(key(r.id))
            });
        }
        // A failed read: this poll has no kernel count; the next one records the whole
        // growth since the last good read.
        if let Ok(c) = kernel() {
            counts.push(Count {
                source: "kernel-ring",
                what: "process records (agent fork, exec, exit) the kernel could not put \
                       into its full process ring buffer; this count is of records, not \
                       decisions",
                value: c.procs_dropped(),
                ring: None,
            });
        }
        let load = |c: &std::sync::atomic::AtomicU64| c.load(Ordering::Relaxed);
        let by_ring = refused.by_ring();
        let ringed: u64 = by_ring.iter().map(|(_, n)| n).sum();
        const REFUSED: &str = "decisions the lineage writer's queue could not take (the \
                               writer was behind; enforced, not recorded)";
        for (ring, n) in by_ring {
            counts.push(Count {
                source: "queue",
                what: REFUSED,
                value: n,
                ring: Some(ring),
            });
        }
        counts.extend([
            Count {
                source: "queue",
                what: REFUSED,
                value: load(&refused.events).saturating_sub(ringed),
                ring: None,
            },
            Count {
                source: "malformed",
                what: "process records (agent fork, exec, exit) that failed to decode (wrong \
                       length, version or kind); this count is of records, not decisions",
                value: load(&procs.malformed),
                ring: None,
            },
            Count {
                source: "queue",
                what: "other lineage records (processes, leases, lifecycle, halts, policies, \
                       keys) the lineage writer's queue could not take; this count is of \
                       records, not decisions",
                value: load(&refused.other),
                ring: None,
            },
        ]);
        polled
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::{record::EventRow, record::Record, recorder::Recorder};

    /// Kernel counters never read (the kernel is not there).
    struct NoKernel;

    impl KernelCounters for NoKernel {
        fn procs_dropped(&self) -> u64 {
            unreachable!("never read")
        }
    }

    /// Every userspace loss counter feeds a gap row, process records' decode failures too;
    /// a decision the recorder refused is counted against its ring.
    #[test]
    fn counts_cover_every_counter() {
        let reader = Arc::new(ReaderStats::default());
        let procs = Arc::new(ProcStats::default());
        let (rec, _rx, refused) = Recorder::channel(0);
        procs.malformed.store(3, Ordering::Relaxed);
        refused.other.store(5, Ordering::Relaxed);
        let event = |ring| {
            Record::Event(Box::new(EventRow {
                agent: None,
                comm: String::new(),
                path: None,
                ring,
                ..EventRow::sample()
            }))
        };
        assert!(!rec.record(event(7)));
        assert!(!rec.record(event(7)));
        assert!(!rec.record(event(0)));
        let mut counts = counts(
            "b".into(),
            || Err::<NoKernel, _>("no kernel".to_owned()),
            reader,
            procs,
            Arc::clone(&refused),
        );
        let got: Vec<(&str, u64, Option<u32>)> = counts()
            .counts
            .iter()
            .map(|c| (c.source, c.value, c.ring.as_ref().map(|r| r.ring_id)))
            .collect();
        assert_eq!(
            got,
            [
                ("queue", 2, Some(7)),
                ("queue", 1, None),
                ("malformed", 3, None),
                ("queue", 5, None)
            ]
        );
        assert!(counts().counts[2].what.contains("process records"));
    }
}

//! The producers' side of the lineage: a cloneable [`Recorder`] that hands [`Record`]s to the
//! writer without ever waiting. When the writer's queue is full (a stalled disk), the record
//! is not stored and is counted by source kind; the writer turns those counts into `gaps`
//! rows, so nothing is lost silently.

use std::{
    collections::BTreeMap,
    sync::{
        atomic::{AtomicU64, Ordering},
        mpsc::{self, Receiver, SyncSender, TrySendError},
        Arc, Mutex, PoisonError,
    },
};

use super::record::{Record, RingKey};

/// Records the writer's queue could not take, by kind.
#[derive(Debug, Default)]
pub struct Refused {
    /// Kernel decisions (`events`).
    pub events: AtomicU64,
    /// Everything else (processes, leases, lifecycle, halts, policies, keys, gaps).
    pub other: AtomicU64,
    /// Of `events`, those of each kernel ring (taken only when the queue is full).
    by_ring: Mutex<BTreeMap<RingKey, u64>>,
}

impl Refused {
    /// Decisions refused, per kernel ring.
    pub fn by_ring(&self) -> Vec<(RingKey, u64)> {
        let m = self.by_ring.lock().unwrap_or_else(PoisonError::into_inner);
        m.iter().map(|(k, &n)| (k.clone(), n)).collect()
    }
}

#[derive(Debug, Clone)]
pub struct Recorder {
    tx: SyncSender<Record>,
    refused: Arc<Refused>,
}

impl Recorder {
    /// A recorder and the writer's end of its queue, which holds up to `capacity` records.
    pub fn channel(capacity: usize) -> (Recorder, Receiver<Record>, Arc<Refused>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let refused = Arc::new(Refused::default());
        (
            Recorder {
                tx,
                refused: Arc::clone(&refused),
            },
            rx,
            refused,
        )
    }

    /// Queues `record`; never blocks. Returns whether it was queued.
    pub fn record(&self, record: Record) -> bool {
        match self.tx.try_send(record) {
            Ok(()) => true,
            Err(TrySendError::Full(r) | TrySendError::Disconnected(r)) => {
                if let Record::Event(e) = &r {
                    self.refused.events.fetch_add(1, Ordering::Relaxed);
                    if e.ring != 0 {
                        let key = RingKey {
                            boot_id: e.boot_id.clone(),
                            ring_id: e.ring,
                        };
                        let mut m = self
                            .refused
                            .by_ring
                            .lock()
                            .unwrap_or_else(PoisonError::into_inner);
                        *m.entry(key).or_default() += 1;
                    }
                } else {
                    self.refused.other.fetch_add(1, Ordering::Relaxed);
                }
                false
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lineage::record::{KeyRow, Record};

    fn key() -> Record {
        Record::Key(KeyRow {
            key_id: "k".into(),
            operator: "o".into(),
            public_key: "p".into(),
            first_seen_ns: 0,
        })
    }

    #[test]
    fn a_full_queue_counts_instead_of_waiting() {
        let (rec, rx, refused) = Recorder::channel(1);
        assert!(rec.record(key()));
        assert!(!rec.record(key()));
        assert_eq!(refused.other.load(Ordering::Relaxed), 1);
        assert_eq!(refused.events.load(Ordering::Relaxed), 0);
        assert!(rx.try_recv().is_ok());
    }
}

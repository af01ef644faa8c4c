//! How readers get the current snapshot for the price of one shared load.
//!
//! Writers store a new snapshot in an `ArcSwap` and then bump a generation counter. Each thread keeps
//! its own reference to the snapshot it last used, tagged with the generation it was current at; a read
//! compares the shared generation (a read-mostly cache line) with its tag and, while they match, uses its
//! reference without touching any reference count. A writer's bump is seen by every reader's next call,
//! which then takes the new snapshot once.
//!
//! The cost: a thread keeps the last snapshot it read alive until it reads again (or exits), a few
//! snapshots per thread at most.

use std::cell::RefCell;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;

use crate::snapshot::Snapshot;

/// How many flag sets one thread keeps a snapshot of; a thread reading more sets takes turns.
const CACHED_SETS: usize = 4;

struct ThreadCache {
    entries: [Option<(u64, u64, Arc<Snapshot>)>; CACHED_SETS],
    next: usize,
}

thread_local! {
    // Initialised in place: an access checks only that the destructor is registered, not a lazy
    // initialiser.
    static CACHE: RefCell<ThreadCache> =
        const { RefCell::new(ThreadCache { entries: [None, None, None, None], next: 0 }) };
}

/// Work done on a snapshot by [`Published::read`]: any closure, or a type whose `run` is forced inline.
/// (`read` calls the work from two places, its cached and its shared path; a closure called from two
/// places stays an out-of-line call, with its captures passed through memory, which on the evaluation
/// path cost more than the evaluation.)
pub(crate) trait SnapshotRead {
    /// What the work returns.
    type Output;
    /// Does the work.
    fn run(self, snapshot: &Snapshot) -> Self::Output;
}

impl<R, F: FnOnce(&Snapshot) -> R> SnapshotRead for F {
    type Output = R;
    #[inline]
    fn run(self, snapshot: &Snapshot) -> R {
        self(snapshot)
    }
}

/// The snapshot a flag set publishes to its readers.
#[derive(Debug)]
pub(crate) struct Published {
    id: u64,
    current: ArcSwap<Snapshot>,
    generation: AtomicU64,
}

impl Published {
    pub(crate) fn new(snapshot: Snapshot) -> Self {
        static NEXT_ID: AtomicU64 = AtomicU64::new(1);
        Self {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            current: ArcSwap::from_pointee(snapshot),
            generation: AtomicU64::new(0),
        }
    }

    /// Publishes `snapshot`: every read that starts after this returns sees it.
    pub(crate) fn store(&self, snapshot: Snapshot) {
        self.current.store(Arc::new(snapshot));
        // Release pairs with the readers' acquire: seeing the new generation means seeing the new snapshot.
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// The current snapshot, for callers off the hot path.
    pub(crate) fn load_full(&self) -> Arc<Snapshot> {
        self.current.load_full()
    }

    /// Runs `read` on the current snapshot. `read` must not read this flag set again (it is not given a
    /// way to); a nested read would fall back to the slower shared path, not fail.
    #[inline]
    pub(crate) fn read<W: SnapshotRead>(&self, read: W) -> W::Output {
        let generation = self.generation.load(Ordering::Acquire);
        let mut read = Some(read);
        let cached = CACHE.try_with(|cache| {
            let Ok(mut cache) = cache.try_borrow_mut() else { return None };
            let slot = match cache.entries.iter().position(|e| matches!(e, Some((id, _, _)) if *id == self.id)) {
                Some(slot) => slot,
                None => {
                    let slot = cache.next;
                    cache.next = (cache.next + 1) % CACHED_SETS;
                    cache.entries[slot] = None;
                    slot
                }
            };
            let entry = &mut cache.entries[slot];
            if !matches!(entry, Some((_, seen, _)) if *seen == generation) {
                // The generation is read before the snapshot, so a racing writer can only make this
                // snapshot newer than its tag, and the next read refreshes it again: never older.
                *entry = Some((self.id, generation, self.current.load_full()));
            }
            let (_, _, snapshot) = entry.as_ref()?;
            read.take().map(|read| read.run(snapshot))
        });
        match cached {
            Ok(Some(result)) => result,
            // During thread teardown, or when nested: the shared path.
            _ => {
                let snapshot = self.current.load();
                read.take().unwrap_or_else(|| unreachable!("the read ran or it is still here")).run(&snapshot)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn readers_see_a_store_on_their_next_read() {
        let published = Published::new(Snapshot::default());
        assert_eq!(published.read(|s: &Snapshot| s.features.len()), 0);
        let other = Published::new(Snapshot::default());
        let (compiled, _) = Snapshot::compile(
            &crate::snapshot::Definitions {
                features: serde_json::from_str(r#"{"features":[{"name":"a","enabled":true}]}"#).unwrap(),
                ..Default::default()
            },
            &|_: &str| Arc::new(crate::stats::FlagStats::default()),
        );
        published.store(compiled);
        assert_eq!(published.read(|s: &Snapshot| s.features.len()), 1);
        assert_eq!(other.read(|s: &Snapshot| s.features.len()), 0, "sets do not share cache entries");
        // Nested reads take the shared path and still see the snapshot.
        assert_eq!(published.read(|_: &Snapshot| published.read(|s: &Snapshot| s.features.len())), 1);
    }

    #[test]
    fn more_sets_than_cache_slots_take_turns() {
        let sets: Vec<Published> = (0..CACHED_SETS * 2 + 1).map(|_| Published::new(Snapshot::default())).collect();
        for _ in 0..3 {
            for set in &sets {
                assert_eq!(set.read(|s: &Snapshot| s.features.len()), 0);
            }
        }
    }
}

//! Per-thread counter stripes: counting from many threads without sharing a cache line.
//!
//! A [`Striped<T>`] holds one cache-line-aligned `T` per stripe. Each thread leases a stripe index for its
//! lifetime (given back when it exits) and is then the only writer of that stripe in every `Striped`
//! value, so it counts with [`bump`]'s plain load and store instead of a locked read-modify-write, and two
//! threads never write the same cache line. When more threads count at once than there are exclusive
//! stripes, the extra ones share a last stripe and count with atomic adds. Readers sum the stripes.
//!
//! ```
//! use std::sync::atomic::{AtomicU64, Ordering};
//! use infra_stripe::{Striped, bump};
//!
//! #[derive(Debug, Default)]
//! struct Hits { hits: AtomicU64 }
//!
//! let counters: Striped<Hits> = Striped::new();
//! std::thread::scope(|scope| {
//!     for _ in 0..4 {
//!         scope.spawn(|| {
//!             for _ in 0..1000 {
//!                 let slot = counters.local();
//!                 bump(&slot.stripe.hits, 1, slot.exclusive);
//!             }
//!         });
//!     }
//! });
//! let total: u64 = counters.iter().map(|stripe| stripe.hits.load(Ordering::Relaxed)).sum();
//! assert_eq!(total, 4000);
//! ```

use std::cell::Cell;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

/// Stripes owned by one thread each; beyond these, threads share one more stripe.
pub const EXCLUSIVE_STRIPES: usize = 16;
/// The index of the stripe shared by threads beyond the exclusive ones.
const SHARED_STRIPE: usize = EXCLUSIVE_STRIPES;

/// Free exclusive stripe indices, as a bit set.
static FREE_STRIPES: Mutex<u32> = Mutex::new((1 << EXCLUSIVE_STRIPES) - 1);

/// A thread's stripe index, given back when the thread exits.
struct Lease(usize);

fn free_stripes() -> std::sync::MutexGuard<'static, u32> {
    // The bit set is updated in one assignment, so a poisoned lock still holds a consistent value.
    FREE_STRIPES.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Lease {
    fn take() -> Self {
        let mut free = free_stripes();
        if *free == 0 {
            return Lease(SHARED_STRIPE);
        }
        let index = free.trailing_zeros() as usize;
        *free &= !(1 << index);
        Lease(index)
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        // Counts made later in this thread's teardown go to the shared stripe, not to one that another
        // thread may lease next.
        let _ = INDEX.try_with(|cell| cell.set(SHARED_STRIPE));
        if self.0 != SHARED_STRIPE {
            *free_stripes() |= 1 << self.0;
        }
    }
}

/// `INDEX` before the thread has leased a stripe.
const UNLEASED: usize = usize::MAX;

thread_local! {
    /// The leased index, read on every count: a constant-initialized cell costs one load, where a lazily
    /// initialized thread-local checks its state first.
    static INDEX: Cell<usize> = const { Cell::new(UNLEASED) };
    /// Owns the lease, so that it is given back when the thread exits.
    static LEASE: Lease = Lease::take();
}

/// This thread's stripe index, and whether the thread owns it alone.
#[inline]
fn stripe_index() -> (usize, bool) {
    let index = INDEX.with(Cell::get);
    let index = if index == UNLEASED { lease_index() } else { index };
    (index, index != SHARED_STRIPE)
}

#[cold]
fn lease_index() -> usize {
    // During thread teardown the lease may already be gone: count on the shared stripe then.
    let index = LEASE.try_with(|lease| lease.0).unwrap_or(SHARED_STRIPE);
    let _ = INDEX.try_with(|cell| cell.set(index));
    index
}

/// The calling thread's stripe index, `0..=EXCLUSIVE_STRIPES`: distinct for up to
/// [`EXCLUSIVE_STRIPES`] live threads, and [`EXCLUSIVE_STRIPES`] itself for the threads beyond. For a
/// cell array of one's own (`EXCLUSIVE_STRIPES + 1` cells, with another padding than [`Striped`]'s): an
/// index below [`EXCLUSIVE_STRIPES`] is owned by the calling thread alone, so [`bump`] may store plainly.
#[inline]
pub fn thread_index() -> usize {
    stripe_index().0
}

/// Adds `by` to a counter in the calling thread's stripe.
///
/// `exclusive` must be the flag [`Striped::local`] returned with the stripe: when true no other thread
/// writes the counter, so a plain load and store cannot lose a count.
#[inline]
pub fn bump(counter: &AtomicU64, by: u64, exclusive: bool) {
    if exclusive {
        counter.store(counter.load(Ordering::Relaxed).wrapping_add(by), Ordering::Relaxed);
    } else {
        counter.fetch_add(by, Ordering::Relaxed);
    }
}

/// One stripe, alone on its cache line (two lines, against the adjacent-line prefetcher).
#[derive(Debug, Default)]
#[repr(align(128))]
struct Padded<T>(T);

/// The calling thread's stripe of a [`Striped`] value.
#[derive(Debug, Clone, Copy)]
pub struct Local<'a, T> {
    /// The stripe.
    pub stripe: &'a T,
    /// True when only this thread writes the stripe (pass it to [`bump`]).
    pub exclusive: bool,
}

/// One `T` per stripe; see the crate documentation.
#[derive(Debug)]
pub struct Striped<T> {
    /// Inline rather than boxed: counting follows one pointer fewer (the owner is usually on the heap
    /// already), which shows on paths of a few nanoseconds.
    stripes: [Padded<T>; EXCLUSIVE_STRIPES + 1],
}

impl<T: Default> Striped<T> {
    /// Stripes of `T::default()`.
    pub fn new() -> Self {
        Striped { stripes: std::array::from_fn(|_| Padded::default()) }
    }
}

impl<T: Default> Default for Striped<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Striped<T> {
    /// The calling thread's stripe.
    #[inline]
    pub fn local(&self) -> Local<'_, T> {
        // The common case in one test: a thread that holds a lease. Its index is below the number of
        // exclusive stripes, so the index needs no bounds check either, and a caller's `bump` on the
        // returned stripe compiles to the plain load and store.
        let index = INDEX.with(Cell::get);
        if index < EXCLUSIVE_STRIPES {
            return Local { stripe: &self.stripes[index].0, exclusive: true };
        }
        self.local_slowly()
    }

    /// [`Striped::local`] for a thread without a lease yet (it takes one) or beyond the exclusive
    /// stripes (the shared stripe).
    #[inline(never)]
    fn local_slowly(&self) -> Local<'_, T> {
        let (index, exclusive) = stripe_index();
        Local { stripe: &self.stripes[index].0, exclusive }
    }

    /// Every stripe, for summing.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.stripes.iter().map(|padded| &padded.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Default)]
    struct Count(AtomicU64);

    /// The tests lease stripes from one process-wide pool: run them one at a time.
    static SERIAL: Mutex<()> = Mutex::new(());

    fn total(striped: &Striped<Count>) -> u64 {
        striped.iter().map(|count| count.0.load(Ordering::Relaxed)).sum()
    }

    #[test]
    fn more_threads_than_stripes_lose_nothing() {
        let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        let striped: Striped<Count> = Striped::new();
        std::thread::scope(|scope| {
            for _ in 0..(EXCLUSIVE_STRIPES * 2) {
                scope.spawn(|| {
                    for _ in 0..10_000 {
                        let local = striped.local();
                        bump(&local.stripe.0, 1, local.exclusive);
                    }
                });
            }
        });
        assert_eq!(total(&striped), (EXCLUSIVE_STRIPES as u64 * 2) * 10_000);
    }

    #[test]
    fn a_thread_gives_its_stripe_back() {
        let _serial = SERIAL.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        for _ in 0..(EXCLUSIVE_STRIPES * 3) {
            std::thread::spawn(|| assert!(stripe_index().1, "a stripe should be free")).join().unwrap();
        }
    }
}

//! Per-flag evaluation counters, cheap enough for the hot path.
//!
//! Each flag has a row of cache-line-sized stripes. A thread leases one stripe index for its lifetime
//! (returned when it exits) and is then the only writer of that stripe in every flag, so counting is a
//! plain load and store, not a locked read-modify-write, and two threads never share a cache line. When
//! more threads evaluate at once than there are stripes, the extra ones share a last stripe and count
//! with atomic adds. The last evaluation time is a coarse timestamp (`quanta::Clock::recent`, kept fresh
//! by quanta's upkeep thread), written only when it has moved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::flags::lock;

/// Stripes owned by one thread each.
const EXCLUSIVE_STRIPES: usize = 16;
/// The stripe shared by threads beyond those, updated atomically.
const SHARED_STRIPE: usize = EXCLUSIVE_STRIPES;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe {
    yes: AtomicU64,
    no: AtomicU64,
    last_seen: AtomicU64,
}

/// Free exclusive stripe indices, as a bit set.
static FREE_STRIPES: Mutex<u32> = Mutex::new((1 << EXCLUSIVE_STRIPES) - 1);

/// A thread's stripe index, given back when the thread exits.
struct Lease(usize);

impl Lease {
    fn take() -> Self {
        let mut free = lock(&FREE_STRIPES);
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
        if self.0 != SHARED_STRIPE {
            let mut free = lock(&FREE_STRIPES);
            *free |= 1 << self.0;
        }
    }
}

thread_local! {
    static LEASE: Lease = Lease::take();
}

#[inline]
fn stripe_index() -> usize {
    LEASE.try_with(|lease| lease.0).unwrap_or(SHARED_STRIPE)
}

#[inline]
fn bump(counter: &AtomicU64, exclusive: bool) {
    if exclusive {
        // Only this thread writes this stripe: a plain increment cannot lose a count.
        counter.store(counter.load(Ordering::Relaxed) + 1, Ordering::Relaxed);
    } else {
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counters for one flag; they live as long as the flag set, across reloads.
#[derive(Debug, Default)]
pub(crate) struct FlagStats {
    stripes: [Stripe; EXCLUSIVE_STRIPES + 1],
    /// Variant name to count; the counters are shared with the compiled variants, so counting is one add.
    variants: Mutex<BTreeMap<Box<str>, Arc<AtomicU64>>>,
}

impl FlagStats {
    /// Records one evaluation; `now_raw` is a coarse raw clock reading.
    #[inline]
    pub(crate) fn record(&self, enabled: bool, now_raw: u64) {
        let index = stripe_index();
        let stripe = &self.stripes[index];
        bump(if enabled { &stripe.yes } else { &stripe.no }, index != SHARED_STRIPE);
        if stripe.last_seen.load(Ordering::Relaxed) != now_raw {
            stripe.last_seen.store(now_raw, Ordering::Relaxed);
        }
    }

    /// The counter of variant `name`, created on first use.
    pub(crate) fn variant_counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut variants = lock(&self.variants);
        variants.entry(name.into()).or_default().clone()
    }

    /// Sums the stripes: (yes, no, latest raw timestamp, or 0 when never evaluated).
    pub(crate) fn totals(&self) -> (u64, u64, u64) {
        self.stripes.iter().fold((0, 0, 0), |(yes, no, last), stripe| {
            (
                yes + stripe.yes.load(Ordering::Relaxed),
                no + stripe.no.load(Ordering::Relaxed),
                last.max(stripe.last_seen.load(Ordering::Relaxed)),
            )
        })
    }

    /// Variant name to count, for variants counted at least once.
    pub(crate) fn variant_totals(&self) -> BTreeMap<String, u64> {
        let variants = lock(&self.variants);
        variants
            .iter()
            .map(|(name, count)| (name.to_string(), count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

//! Per-flag evaluation counters, cheap enough for the hot path.
//!
//! Yes/no counts are striped over cache-line-sized slots, one chosen per thread, so two threads evaluating
//! the same flag do not fight over one cache line. The last evaluation time is a coarse timestamp
//! (`quanta::Clock::recent`, kept fresh by quanta's upkeep thread), written only when it has moved, so the
//! hot path neither reads a precise clock nor writes a shared line on every call.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

const STRIPES: usize = 8;

#[derive(Debug, Default)]
#[repr(align(64))]
struct Stripe {
    yes: AtomicU64,
    no: AtomicU64,
    last_seen: AtomicU64,
}

/// The stripe this thread writes to: threads are dealt stripes round-robin as they first evaluate.
fn stripe_index() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    thread_local! {
        static INDEX: usize = NEXT.fetch_add(1, Ordering::Relaxed) % STRIPES;
    }
    INDEX.with(|index| *index)
}

/// Counters for one flag; they live as long as the flag set, across reloads.
#[derive(Debug, Default)]
pub(crate) struct FlagStats {
    stripes: [Stripe; STRIPES],
    /// Variant name to count; the counters are shared with the compiled variants, so counting is one add.
    variants: Mutex<BTreeMap<Box<str>, Arc<AtomicU64>>>,
}

impl FlagStats {
    /// Records one evaluation; `now_raw` is a coarse raw clock reading.
    #[inline]
    pub(crate) fn record(&self, enabled: bool, now_raw: u64) {
        let stripe = &self.stripes[stripe_index()];
        if enabled {
            stripe.yes.fetch_add(1, Ordering::Relaxed);
        } else {
            stripe.no.fetch_add(1, Ordering::Relaxed);
        }
        if stripe.last_seen.load(Ordering::Relaxed) != now_raw {
            stripe.last_seen.store(now_raw, Ordering::Relaxed);
        }
    }

    /// The counter of variant `name`, created on first use.
    pub(crate) fn variant_counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut variants = self.variants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
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
        let variants = self.variants.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        variants
            .iter()
            .map(|(name, count)| (name.to_string(), count.load(Ordering::Relaxed)))
            .filter(|(_, count)| *count > 0)
            .collect()
    }
}

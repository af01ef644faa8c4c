//! Per-flag evaluation counters, cheap enough for the hot path.
//!
//! Each flag has a row of per-thread stripes ([`infra_stripe::Striped`]): a thread is the only writer of
//! its stripe, so counting is a plain load and store, and two threads never share a cache line. The last
//! evaluation time is a coarse timestamp (Unix nanoseconds from `coarse_clock`, or from the builder's
//! clock), written only when it has moved.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use infra_stripe::{Striped, bump};

use crate::flags::lock;

#[derive(Debug, Default)]
struct Stripe {
    yes: AtomicU64,
    no: AtomicU64,
    last_seen: AtomicU64,
}

/// Counters for one flag; they live as long as the flag set, across reloads.
#[derive(Debug, Default)]
pub(crate) struct FlagStats {
    stripes: Striped<Stripe>,
    /// Variant name to count; the counters are shared with the compiled variants, so counting is one add.
    variants: Mutex<BTreeMap<Box<str>, Arc<AtomicU64>>>,
}

impl FlagStats {
    /// Records one evaluation; `stamp` is its coarse time (Unix nanoseconds, never 0).
    #[inline]
    pub(crate) fn record(&self, enabled: bool, stamp: u64) {
        let local = self.stripes.local();
        let stripe = local.stripe;
        // Checked before the count is bumped: the load after the bump's store, on the same line, cost
        // more than the check itself.
        if stripe.last_seen.load(Ordering::Relaxed) != stamp {
            stripe.last_seen.store(stamp, Ordering::Relaxed);
        }
        if enabled {
            bump(&stripe.yes, 1, local.exclusive);
        } else {
            bump(&stripe.no, 1, local.exclusive);
        }
    }

    /// The counter of variant `name`, created on first use.
    pub(crate) fn variant_counter(&self, name: &str) -> Arc<AtomicU64> {
        let mut variants = lock(&self.variants);
        variants.entry(name.into()).or_default().clone()
    }

    /// Sums the stripes: (yes, no, latest stamp, or 0 when never evaluated).
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

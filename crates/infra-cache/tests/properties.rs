//! The cache against a plain map, under random operations: it may forget (eviction, expiry) but never
//! invents, never returns a stale value, keeps its bound, and accounts for every entry it let go.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use infra_cache::{Cache, RemovalCause};
use proptest::prelude::*;
use quanta::Clock;

#[derive(Debug, Clone)]
enum Op {
    Insert(u8, u16),
    InsertWithTtl(u8, u16, u8),
    Get(u8),
    /// `get_or_insert_with(key, ..)` loading the value; with `Some(first)`, the loader itself inserts
    /// `first` for the key before returning (an insert landing between a load's lookup and its own).
    Load(u8, u16, Option<u16>),
    Remove(u8),
    Advance(u8),
    Clear,
    Maintain,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => (any::<u8>(), any::<u16>()).prop_map(|(k, v)| Op::Insert(k % 64, v)),
        2 => (any::<u8>(), any::<u16>(), 0u8..20).prop_map(|(k, v, t)| Op::InsertWithTtl(k % 64, v, t)),
        8 => any::<u8>().prop_map(|k| Op::Get(k % 64)),
        4 => (any::<u8>(), any::<u16>(), prop::option::weighted(0.3, any::<u16>()))
            .prop_map(|(k, v, first)| Op::Load(k % 64, v, first)),
        2 => any::<u8>().prop_map(|k| Op::Remove(k % 64)),
        1 => (0u8..10).prop_map(Op::Advance),
        1 => Just(Op::Clear),
        1 => Just(Op::Maintain),
    ]
}

/// What the model knows of a key: its value and when it expires (seconds on the mock clock).
#[derive(Debug, Clone, Copy)]
struct Known {
    value: u16,
    expires: Option<u64>,
}

fn check(ops: Vec<Op>, capacity: u64, shards: usize) -> Result<(), TestCaseError> {
    let (clock, mock) = Clock::mock();
    let inserted = Arc::new(AtomicU64::new(0));
    let let_go = Arc::new(AtomicU64::new(0));
    let counted = Arc::clone(&let_go);
    let cache: Cache<u8, u16> = Cache::builder()
        .max_capacity(capacity)
        .shards(shards)
        .clock(clock)
        .eviction_listener(move |_, _, cause| {
            // Replacements and explicit removals are the caller's doing; count what the cache let go
            // along with them to balance the books below.
            let _ = cause;
            counted.fetch_add(1, Ordering::SeqCst);
        })
        .build()
        .unwrap();
    let mut model: HashMap<u8, Known> = HashMap::new();
    let mut now = 0u64;
    let mut removed_by_caller = 0u64;
    for op in ops {
        match op {
            Op::Insert(key, value) => {
                cache.insert(key, value);
                inserted.fetch_add(1, Ordering::SeqCst);
                model.insert(key, Known { value, expires: None });
            }
            Op::InsertWithTtl(key, value, ttl) => {
                cache.insert_with_ttl(key, value, Duration::from_secs(u64::from(ttl)));
                inserted.fetch_add(1, Ordering::SeqCst);
                if ttl == 0 {
                    model.remove(&key);
                } else {
                    model.insert(key, Known { value, expires: Some(now + u64::from(ttl)) });
                }
            }
            Op::Get(key) => {
                let live = model.get(&key).filter(|known| known.expires.is_none_or(|at| now < at));
                match (cache.get(&key), live) {
                    (Some(got), Some(known)) => prop_assert_eq!(got, known.value, "stale value for {}", key),
                    (Some(got), None) => prop_assert!(false, "key {} returned {} after it was gone", key, got),
                    (None, _) => {}
                }
            }
            Op::Load(key, value, first) => {
                let live = model.get(&key).copied().filter(|known| known.expires.is_none_or(|at| now < at));
                let loaded = std::cell::Cell::new(false);
                let got = cache.get_or_insert_with(key, || {
                    loaded.set(true);
                    if let Some(first) = first {
                        cache.insert(key, first);
                        inserted.fetch_add(1, Ordering::SeqCst);
                    }
                    value
                });
                if loaded.get() {
                    inserted.fetch_add(1, Ordering::SeqCst);
                    prop_assert_eq!(got, value);
                    model.insert(key, Known { value, expires: None });
                } else {
                    prop_assert!(
                        live.is_some_and(|known| known.value == got),
                        "key {} loaded {} from nowhere",
                        key,
                        got
                    );
                }
                // Held now, unless evicted at once (a cache of one entry a shard may turn it away).
                prop_assert!(cache.get(&key).is_none_or(|held| held == got), "key {} holds another value", key);
            }
            Op::Remove(key) => {
                if cache.remove(&key).is_some() {
                    removed_by_caller += 1;
                    let known = model.get(&key).copied();
                    prop_assert!(known.is_some_and(|k| k.expires.is_none_or(|at| now < at)));
                }
                model.remove(&key);
            }
            Op::Advance(seconds) => {
                mock.increment(Duration::from_secs(u64::from(seconds)));
                now += u64::from(seconds);
            }
            Op::Clear => {
                cache.clear();
                model.clear();
            }
            Op::Maintain => cache.run_pending_maintenance(),
        }
        prop_assert!(cache.entry_count() as u64 <= capacity, "{} entries over {}", cache.entry_count(), capacity);
    }
    // Every value ever inserted is either still held or was reported to the listener exactly once.
    let held = cache.entry_count() as u64;
    prop_assert_eq!(inserted.load(Ordering::SeqCst), held + let_go.load(Ordering::SeqCst));
    let stats = cache.stats();
    let removals = stats.removals;
    prop_assert_eq!(
        removals.expired + removals.capacity + removals.explicit + removals.replaced,
        let_go.load(Ordering::SeqCst)
    );
    prop_assert!(removals.explicit >= removed_by_caller);
    let _ = RemovalCause::Explicit;
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn behaves_like_a_forgetful_map(ops in prop::collection::vec(op(), 1..300), capacity in 1u64..40, shards in 1usize..4) {
        check(ops, capacity, shards)?;
    }

    #[test]
    fn without_pressure_it_forgets_nothing_unexpired(ops in prop::collection::vec(op(), 1..300)) {
        // Room for every key: a get may miss only for expired or removed keys.
        let (clock, mock) = Clock::mock();
        let cache: Cache<u8, u16> = Cache::builder().max_capacity(1_000).clock(clock).build().unwrap();
        let mut model: HashMap<u8, Known> = HashMap::new();
        let mut now = 0;
        for op in ops {
            match op {
                Op::Insert(key, value) => { cache.insert(key, value); model.insert(key, Known { value, expires: None }); }
                Op::InsertWithTtl(key, value, ttl) => {
                    cache.insert_with_ttl(key, value, Duration::from_secs(u64::from(ttl)));
                    if ttl == 0 { model.remove(&key); } else { model.insert(key, Known { value, expires: Some(now + u64::from(ttl)) }); }
                }
                Op::Get(key) => {
                    let live = model.get(&key).filter(|known| known.expires.is_none_or(|at| now < at)).map(|known| known.value);
                    prop_assert_eq!(cache.get(&key), live);
                }
                Op::Load(key, value, first) => {
                    let live = model.get(&key).filter(|known| known.expires.is_none_or(|at| now < at)).map(|known| known.value);
                    let got = cache.get_or_insert_with(key, || {
                        if let Some(first) = first { cache.insert(key, first); }
                        value
                    });
                    prop_assert_eq!(got, live.unwrap_or(value));
                    if live.is_none() { model.insert(key, Known { value, expires: None }); }
                    prop_assert_eq!(cache.get(&key), Some(got));
                }
                Op::Remove(key) => {
                    let live = model.remove(&key).filter(|known| known.expires.is_none_or(|at| now < at)).map(|known| known.value);
                    prop_assert_eq!(cache.remove(&key), live);
                }
                Op::Advance(seconds) => { mock.increment(Duration::from_secs(u64::from(seconds))); now += u64::from(seconds); }
                Op::Clear => { cache.clear(); model.clear(); }
                Op::Maintain => cache.run_pending_maintenance(),
            }
        }
    }
}

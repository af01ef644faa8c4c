//! One shard: a hash table of slot indices, the slots, and the eviction policy's queues.
//!
//! Reads take the shard's read lock, find the slot, and record the hit in the slot's own atomic byte
//! (hits since the last aging, and a referenced bit), touching no shared line beyond the lock word. All
//! ordering work happens on the write path, under the write lock:
//!
//! - New entries enter the **window**, a CLOCK queue (a referenced entry at the tail gets a second
//!   chance, unless that would put the newest entry up for admission first).
//! - An entry leaving the window is a **candidate** for the main region. When the shard is over its
//!   weight, the candidate competes with the **probation** queue's victim: the one with the higher
//!   estimated frequency (sketch plus the hits counted in the slot) stays. The candidate's sketch estimate
//!   is the one it got when it arrived, kept in its slot, so judging it reads no sketch line. A losing
//!   candidate that was a ghost when it arrived (recently turned away or evicted) is let in with the
//!   climber's probability.
//! - Main is a segmented LRU approximated by CLOCK: a referenced entry found at probation's tail moves to
//!   **protected**; protected's overflow moves back to probation.
//! - A candidate that beats its victim by exactly one (a narrow win) is let in with the climber's
//!   probability.
//! - The window's share of the weight and the two admission probabilities are set cache-wide by a hill
//!   climber ([`crate::cache`]).
//!
//! Layout: an entry (key, value, hit byte, queue, whether it expires) and its queue links are its
//! [`Slot`], 32 bytes for small keys and values, so hot entries pack two to a cache line and each entry
//! the policy visits costs it one line; the hash, the weight (once an entry weighs more than 1) and the
//! expiry (once an entry expires, in [`Expiration`]s) are in arrays beside the slots.
//!
//! User code (`Hash`, `Eq`, weighers, `Drop` of keys and values, listeners) never runs while a queue or
//! the table is half-updated: hashes are computed before locking, `Eq` runs only in lookups before any
//! change, the table rehashes with stored hashes, and removed entries are handed back to the caller to
//! drop and report after the lock is released.

use std::borrow::Borrow;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use hashbrown::HashTable;

use crate::RemovalCause;
use crate::loader::Flights;
use crate::sketch::FrequencySketch;
use crate::warm::RefreshAhead;

/// "Never expires", as a deadline.
pub(crate) const NEVER: u64 = u64::MAX;
const NIL: u32 = u32::MAX;
/// Hits counted in a slot since it was inserted or last aged, saturating.
const HITS: u8 = 0x0F;
/// Set on every hit, cleared when the policy gives the entry a second chance.
const REFERENCED: u8 = 0x10;
/// A refresh of the entry has been requested (refresh-ahead); cleared when a new value is written.
const REFRESHING: u8 = 0x20;
/// The sketch's estimate of an entry's frequency when it arrived, in [`Entry::arrival`].
const ESTIMATE: u8 = 0x0F;
/// The entry was a ghost when it arrived (recently turned away or evicted), in [`Entry::arrival`].
const ARRIVED_AS_GHOST: u8 = 0x10;
/// The probability (1 in 128) of admitting a hot candidate that does not beat its victim, so that an
/// attacker cannot pin a victim by making it look popular (Caffeine's defence against hash flooding).
const HOT_CANDIDATE: u8 = 6;
/// Share of the main region given to the protected segment, chosen on the ARC traces (docs/cache.md).
const PROTECTED_SHARE: f64 = 0.5;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Region {
    Window = 0,
    Probation = 1,
    Protected = 2,
}

/// A cached key and value, and what a read and the policy need to know of them beside.
#[derive(Debug)]
struct Entry<K, V> {
    key: K,
    value: V,
    /// [`HITS`], [`REFERENCED`] and [`REFRESHING`].
    meta: AtomicU8,
    region: Region,
    /// What the sketch said when the entry arrived: its estimate ([`ESTIMATE`], halved with the sketch)
    /// and [`ARRIVED_AS_GHOST`]. Admission judges the entry by these, not by a second read of the sketch.
    arrival: u8,
    /// The entry expires (by time to live or time to idle): its [`Expiration`] is in use.
    expires: bool,
}

/// An entry and its place in its queue, on half a cache line when the key and value take 16 bytes or less
/// together (two `u64`s, or a `u64` and an `Arc`; the entry's `Region` and `bool` leave `Option` values
/// to spare, so a vacant slot needs no tag of its own). A read finds the value, its hit count and whether
/// it can expire here, and the policy the links, so each entry it visits costs it one line; two entries
/// share a line, so a cache's hot entries take half the lines a 64-byte slot took. What is needed more
/// rarely is in arrays beside the slots: the hash (rehashing, removals, the sketch), the weight (only
/// once an entry weighs more than 1) and the expiry (only once an entry expires).
#[derive(Debug)]
#[repr(align(32))]
struct Slot<K, V> {
    entry: Option<Entry<K, V>>,
    prev: u32,
    next: u32,
}

/// When a slot's entry expires. Kept apart from the slots, and allocated only once some entry expires.
#[derive(Debug)]
struct Expiration {
    /// When the entry expires, in clock nanoseconds (the deadline, or sooner by time to idle).
    expires: AtomicU64,
    /// When the entry's time to live ends, in clock nanoseconds, or [`NEVER`].
    deadline: u64,
}

impl Expiration {
    /// Never expires.
    fn never() -> Self {
        Expiration { expires: AtomicU64::new(NEVER), deadline: NEVER }
    }
}

#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
    weight: u64,
    len: usize,
}

impl Queue {
    const EMPTY: Queue = Queue { head: NIL, tail: NIL, weight: 0, len: 0 };
}

/// An entry taken out of the cache, to be reported and dropped once the lock is released.
#[derive(Debug)]
pub(crate) struct Removed<K, V> {
    pub(crate) key: K,
    pub(crate) value: V,
    pub(crate) cause: RemovalCause,
}

/// Entries removed by one operation: usually none or one, kept inline; more spill to the heap.
#[derive(Debug)]
pub(crate) struct RemovedList<K, V> {
    first: Option<Removed<K, V>>,
    rest: Vec<Removed<K, V>>,
}

impl<K, V> RemovedList<K, V> {
    pub(crate) fn new() -> Self {
        RemovedList { first: None, rest: Vec::new() }
    }

    pub(crate) fn push(&mut self, removed: Removed<K, V>) {
        if self.first.is_none() {
            self.first = Some(removed);
        } else {
            self.rest.push(removed);
        }
    }

    /// Hands each entry to `each`: the first without going through an iterator chain (most lists hold
    /// one entry or none).
    #[inline]
    pub(crate) fn for_each(self, mut each: impl FnMut(Removed<K, V>)) {
        if let Some(first) = self.first {
            each(first);
        }
        if !self.rest.is_empty() {
            self.rest.into_iter().for_each(each);
        }
    }
}

/// What a lookup that missed learned about the key: the shard's insert count when the key was seen
/// absent from it, or [`Absence::UNKNOWN`] when it was present but stale (or not looked up). A load
/// carries it from its first lookup to its insert, which then skips the lookups in between while no
/// insert happened in the shard (on a miss, two of the three probes of the table). A bare count, not
/// an `Option`: the hit path returns it, and a wider result cost each hit instructions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Absence(u64);

impl Absence {
    /// Nothing known: the insert looks the key up. (No shard counts this many inserts.)
    pub(crate) const UNKNOWN: Absence = Absence(u64::MAX);
}

/// The cache-wide settings a shard's write path needs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Tuning {
    /// The window's share of the weight, 0..=1.
    pub(crate) window_share: f64,
    /// The probability of admitting a returning ghost, 0..=1.
    pub(crate) ghost_admission: f64,
    /// The probability of admitting a candidate whose frequency beats its victim's by exactly one, 0..=1.
    pub(crate) narrow_admission: f64,
    /// The current time in clock nanoseconds.
    pub(crate) now: u64,
}

#[derive(Debug)]
pub(crate) struct Shard<K, V> {
    table: HashTable<u32>,
    slots: Vec<Slot<K, V>>,
    /// Each slot's hash, at the slot's index.
    hashes: Vec<u64>,
    /// Each slot's weight, at the slot's index; empty while every entry weighs 1.
    weights: Vec<u32>,
    /// Each slot's [`Expiration`], at the slot's index; empty until an entry that expires arrives.
    expirations: Vec<Expiration>,
    free: Vec<u32>,
    queues: [Queue; 3],
    max_weight: u64,
    weight: u64,
    sketch: FrequencySketch,
    rng: u64,
    /// Where the next expiry sweep resumes, as a slot index.
    sweep_cursor: usize,
    /// Entries that expire (by time to live or time to idle); sweeps are skipped while this is zero.
    expiring: usize,
    /// Inserts since the cache-wide tuning was last consulted.
    pub(crate) inserts_since_tuning: u32,
    /// Inserts so far, of new keys and replacements: a key found absent is still absent while this
    /// count has not moved, so a load that saw it absent skips looking it up again (see [`Absence`]).
    inserts: u64,
    /// (the window share's bits, the window's maximum weight, the protected segment's) as last computed:
    /// the climber moves the share rarely, and the float arithmetic is not redone on every insert.
    bounds: (u64, u64, u64),
    /// Half the table's capacity when it was last reserved for churn (see `insert`).
    table_half: usize,
    /// Entries removed from this shard (or turned away by it), by cause: every removal holds the
    /// shard's write lock, so they are counted here rather than on the thread's stripe of the cache's
    /// counters.
    removals: [u64; 4],
    /// Loads in flight for keys of this shard, under the same lock as the entries: a key is cached, in
    /// flight, or neither, and a load lands (its value inserted, its flight retired) in one step.
    pub(crate) flights: Flights<K, V>,
}

impl<K, V> Shard<K, V> {
    /// A shard holding up to `max_weight` (entries, when every entry weighs 1); `expected_entries` sizes the
    /// frequency sketch.
    pub(crate) fn new(max_weight: u64, expected_entries: usize, seed: u64) -> Self {
        Shard {
            table: HashTable::new(),
            slots: Vec::new(),
            hashes: Vec::new(),
            weights: Vec::new(),
            expirations: Vec::new(),
            free: Vec::new(),
            queues: [Queue::EMPTY; 3],
            max_weight,
            weight: 0,
            sketch: FrequencySketch::new(expected_entries),
            rng: seed | 1,
            sweep_cursor: 0,
            expiring: 0,
            inserts_since_tuning: 0,
            inserts: 0,
            // No share has these bits (a NaN's): the first `maintain` computes the bounds.
            bounds: (u64::MAX, 0, 0),
            table_half: 0,
            removals: [0; 4],
            flights: Flights::default(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.table.len()
    }

    pub(crate) fn weight(&self) -> u64 {
        self.weight
    }

    /// The index of `key`'s slot.
    fn find<Q>(&self, hash: u64, key: &Q) -> Option<u32>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.lookup(hash, key).map(|(index, _)| index)
    }

    /// The index of `key`'s slot, with the slot and its entry as the lookup's comparison found them (the
    /// read path then needs no second bounds check or test of the slot).
    #[inline(always)]
    fn lookup<Q>(&self, hash: u64, key: &Q) -> Option<(u32, Found<'_, K, V>)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let slots = &self.slots;
        let mut found = None;
        let index = *self.table.find(hash, |&index| match slots.get(index as usize) {
            Some(slot) => match &slot.entry {
                Some(entry) if entry.key.borrow() == key => {
                    found = Some((slot, entry));
                    true
                }
                _ => false,
            },
            None => false,
        })?;
        found.map(|found| (index, found))
    }

    /// The read path: finds the entry, checks its expiry, records the hit, clones the value. On a miss,
    /// tells whether the key is absent (and since which insert) or present but stale.
    ///
    /// `expiry` is called only for entries that can expire (most caches have few or none, and a hit
    /// then reads none of what it gives).
    #[inline(always)]
    pub(crate) fn look<'e, Q>(&self, hash: u64, key: &Q, expiry: impl FnOnce() -> Expiry<'e, K>) -> Result<V, Absence>
    where
        K: Borrow<Q> + 'e,
        Q: Eq + ?Sized,
        V: Clone,
    {
        let Some((index, (_, entry))) = self.lookup(hash, key) else {
            return Err(Absence(self.inserts));
        };
        if entry.expires && !self.still_fresh(index, entry, expiry()) {
            return Err(Absence::UNKNOWN);
        }
        touch(&entry.meta);
        Ok(entry.value.clone())
    }

    /// Whether a key seen absent at `absence` still is, without looking it up: no insert since.
    #[inline]
    pub(crate) fn still_absent(&self, absence: Absence) -> bool {
        absence.0 == self.inserts
    }

    /// The read path's check of an entry that can expire: whether it is still fresh; renews its time
    /// to idle and asks for a refresh ahead of its expiry as needed. Out of line: entries without an
    /// expiry (most, in most caches) never come here.
    #[inline(never)]
    fn still_fresh(&self, index: u32, entry: &Entry<K, V>, expiry: Expiry<'_, K>) -> bool {
        let Expiry { now, idle, refresh } = expiry;
        let Some(expiration) = self.expirations.get(index as usize) else { return true };
        let expires = expiration.expires.load(Ordering::Relaxed);
        if now >= expires {
            // Its time is up: a miss. The entry is reclaimed by the next write or sweep.
            return false;
        }
        let deadline = expiration.deadline;
        if let Some(idle) = idle {
            let renewed = now.saturating_add(idle).min(deadline);
            if renewed != expires {
                expiration.expires.store(renewed, Ordering::Relaxed);
            }
        }
        if let Some(refresh) = refresh
            && deadline != NEVER
            && deadline - now.min(deadline) <= refresh.within
        {
            let meta = entry.meta.load(Ordering::Relaxed);
            // Racing readers may both ask; the refresher loads twice at worst.
            if meta & REFRESHING == 0 && refresh.request(&entry.key) {
                entry.meta.store(meta | REFRESHING, Ordering::Relaxed);
            }
        }
        true
    }

    /// Whether the key is present and unexpired, without counting an access.
    pub(crate) fn contains<Q>(&self, hash: u64, key: &Q, now: u64) -> bool
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        self.find(hash, key).is_some_and(|index| now < self.expires_at(index))
    }

    /// Inserts or replaces an entry, then restores the shard's bounds. `expires` is the first expiry
    /// (the deadline, or sooner by time to idle).
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn insert(
        &mut self,
        hash: u64,
        key: K,
        value: V,
        weight: u32,
        deadline: u64,
        expires: u64,
        tuning: Tuning,
        absence: Absence,
        removed: &mut RemovedList<K, V>,
    ) where
        K: Eq,
    {
        let present = if self.still_absent(absence) { None } else { self.find(hash, &key) };
        self.inserts += 1;
        if let Some(index) = present {
            let old_weight = u64::from(self.weight_of(index));
            let Some(entry) = self.slots[index as usize].entry.as_mut() else { return };
            let old_value = std::mem::replace(&mut entry.value, value);
            let expiring = expires != NEVER;
            if std::mem::replace(&mut entry.expires, expiring) != expiring {
                if expiring { self.expiring += 1 } else { self.expiring -= 1 }
            }
            entry.meta.store(entry.meta.load(Ordering::Relaxed) & !REFRESHING, Ordering::Relaxed);
            touch(&entry.meta);
            let region = entry.region as usize;
            let new_weight = u64::from(weight);
            self.set_weight(index, weight);
            self.queues[region].weight = self.queues[region].weight - old_weight + new_weight;
            self.weight = self.weight - old_weight + new_weight;
            if expiring {
                self.set_expiration(index, deadline, expires);
            }
            self.hand_over(removed, key, old_value, RemovalCause::Replaced);
            if u64::from(weight) > self.max_weight {
                self.evict(index, RemovalCause::Capacity, removed);
            }
        } else {
            if u64::from(weight) > self.max_weight {
                // Heavier than the whole shard: it could only be stored by emptying it.
                self.hand_over(removed, key, value, RemovalCause::Capacity);
                return;
            }
            // Weighted shards hold an entry count nobody knew in advance: the sketch follows it. (An
            // unweighted shard briefly holds one entry over its bound here, before eviction.)
            self.sketch.ensure_capacity(self.table.len());
            let arrival = self.sketch.arrive(hash);
            let remembered = arrival.estimate | if arrival.ghost { ARRIVED_AS_GHOST } else { 0 };
            let entry = Entry {
                key,
                value,
                meta: AtomicU8::new(0),
                region: Region::Window,
                arrival: remembered,
                expires: expires != NEVER,
            };
            let index = self.allocate(entry, hash, weight);
            if expires != NEVER {
                self.set_expiration(index, deadline, expires);
                self.expiring += 1;
            }
            let hashes = &self.hashes;
            // Once the shard is full, its table is kept at most half full: a full shard replaces an entry
            // on every insert, and a table near its load limit turns removals into tombstones (a removal
            // inside a run of full buckets cannot empty its bucket) until it must rehash, reading every
            // slot's hash: milliseconds, every few hundred thousand inserts. Half full, a removal nearly
            // always empties its bucket. A shard still filling (or only read) keeps hashbrown's denser
            // table, which reads faster.
            if self.weight >= self.max_weight && self.table.len() >= self.table_half {
                self.table.reserve(self.table.len() + 1, |&i| hashes[i as usize]);
                self.table_half = self.table.capacity() / 2;
            }
            self.table.insert_unique(hash, index, |&i| hashes[i as usize]);
            self.push_front(Region::Window, index);
            self.weight += u64::from(weight);
            if arrival.halved {
                self.age_slots();
            }
            self.inserts_since_tuning += 1;
        }
        self.maintain(tuning, removed);
    }

    /// Removes the entry for `key`, returning it with its expiry; the caller decides the cause and counts
    /// it ([`count_removal`](Self::count_removal)).
    pub(crate) fn remove<Q>(&mut self, hash: u64, key: &Q) -> Option<(K, V, u64)>
    where
        K: Borrow<Q>,
        Q: Eq + ?Sized,
    {
        let index = self.find(hash, key)?;
        let expires = self.expires_at(index);
        let (entry, _) = self.take(index);
        Some((entry.key, entry.value, expires))
    }

    /// Takes every entry out.
    pub(crate) fn drain(&mut self, cause: RemovalCause, removed: &mut RemovedList<K, V>) {
        for index in 0..self.slots.len() as u32 {
            if self.slots[index as usize].entry.is_some() {
                let (entry, _) = self.take(index);
                self.hand_over(removed, entry.key, entry.value, cause);
            }
        }
        self.sketch.clear_ghosts();
        self.slots.clear();
        self.hashes.clear();
        self.weights.clear();
        self.expirations.clear();
        self.free.clear();
        self.sweep_cursor = 0;
    }

    /// Reclaims expired entries, looking at up to `budget` slots from where the last sweep stopped.
    /// Returns the number of slots looked at.
    pub(crate) fn sweep_expired(&mut self, now: u64, budget: usize, removed: &mut RemovedList<K, V>) -> usize {
        if self.expiring == 0 || self.slots.is_empty() {
            return 0;
        }
        let budget = budget.min(self.slots.len());
        for _ in 0..budget {
            if self.sweep_cursor >= self.slots.len() {
                self.sweep_cursor = 0;
            }
            let index = self.sweep_cursor as u32;
            self.sweep_cursor += 1;
            if self.is_expired(index, now) {
                self.evict(index, RemovalCause::Expired, removed);
            }
        }
        budget
    }

    /// Visits every live entry's key and value with its estimated popularity (0..=15), hottest first
    /// within the shard: protected, then probation, then window, each from most recently promoted.
    pub(crate) fn for_each_hot<'a>(&'a self, now: u64, mut visit: impl FnMut(&'a K, &'a V, u8)) {
        for region in [Region::Protected, Region::Probation, Region::Window] {
            let mut index = self.queues[region as usize].head;
            while index != NIL {
                if !self.is_expired(index, now)
                    && let Some(entry) = self.slots[index as usize].entry.as_ref()
                {
                    visit(&entry.key, &entry.value, self.frequency(index));
                }
                index = self.slots[index as usize].next;
            }
        }
    }

    /// Heap bytes held by the shard's own structures (not by keys' and values' own allocations).
    pub(crate) fn heap_bytes(&self) -> usize {
        self.table.capacity() * (size_of::<u32>() + 1)
            + self.slots.capacity() * size_of::<Slot<K, V>>()
            + self.hashes.capacity() * size_of::<u64>()
            + self.weights.capacity() * size_of::<u32>()
            + self.expirations.capacity() * size_of::<Expiration>()
            + self.free.capacity() * 4
            + self.sketch.heap_bytes()
    }

    // ---- the policy ----

    /// Moves overflow out of the window through admission, evicts down to the maximum weight, and keeps
    /// the protected segment within its share.
    fn maintain(&mut self, tuning: Tuning, removed: &mut RemovedList<K, V>) {
        let (window_max, protected_max) = self.bounds(tuning.window_share);

        // Each window entry gets at most one second chance per call.
        let mut chances = self.queues[Region::Window as usize].len;
        while self.queues[Region::Window as usize].weight > window_max {
            let candidate = self.queues[Region::Window as usize].tail;
            if candidate == NIL {
                break;
            }
            if self.is_expired(candidate, tuning.now) {
                self.evict(candidate, RemovalCause::Expired, removed);
                continue;
            }
            // A referenced entry gets a second chance, unless that would put the newest entry up for
            // admission before it could be read even once (a window of one or two entries).
            if chances > 0
                && candidate != self.queues[Region::Window as usize].head
                && self.queues[Region::Window as usize].len > 2
                && self.take_reference(candidate)
            {
                chances -= 1;
                self.move_to_front(Region::Window, candidate);
                continue;
            }
            // Judged before it moves: a candidate turned away leaves from the window's tail, and only
            // one that stays is linked into probation.
            if self.weight <= self.max_weight || self.admit(candidate, tuning, removed) {
                self.move_to_front(Region::Probation, candidate);
            }
        }

        while self.weight > self.max_weight {
            let Some(victim) = self.victim(tuning.now, removed) else { break };
            self.evict(victim, RemovalCause::Capacity, removed);
        }

        // One second chance per call, not one per entry: a sweep through a protected segment of hot,
        // referenced entries visits a cold slot at each step, and demoted entries keep their referenced
        // bit, so probation promotes them back if they are still read (chosen on the ARC traces).
        let mut chances = 1;
        while self.queues[Region::Protected as usize].weight > protected_max {
            let Some(tail) = self.protected_hand(&mut chances) else { break };
            self.move_to_front(Region::Probation, tail);
        }
    }

    /// The window's and the protected segment's maximum weights for a window share.
    fn bounds(&mut self, window_share: f64) -> (u64, u64) {
        if window_share.to_bits() != self.bounds.0 {
            let window_max = ((window_share * self.max_weight as f64).round() as u64).clamp(1, self.max_weight.max(1));
            let protected_max = ((self.max_weight.saturating_sub(window_max)) as f64 * PROTECTED_SHARE) as u64;
            self.bounds = (window_share.to_bits(), window_max, protected_max);
        }
        (self.bounds.1, self.bounds.2)
    }

    /// TinyLFU admission: the candidate (the window's tail) against probation's victim. A candidate that
    /// lost recently (a ghost), or that wins by only one, is let in with the climber's probability for
    /// that case. Returns whether the candidate stays (the loser is evicted; with probation empty, the
    /// candidate stays and evicting is left to the caller).
    fn admit(&mut self, candidate: u32, tuning: Tuning, removed: &mut RemovedList<K, V>) -> bool {
        let Some(victim) = self.probation_victim(tuning.now, removed) else { return true };
        let Some(entry) = self.slots[candidate as usize].entry.as_ref() else { return true };
        let arrival = entry.arrival;
        let candidate_frequency = ((arrival & ESTIMATE) + (entry.meta.load(Ordering::Relaxed) & HITS)).min(15);
        let victim_hash = self.hashes[victim as usize];
        let victim_frequency = self.victim_frequency(victim);
        let mut admitted = candidate_frequency > victim_frequency + 1
            || (candidate_frequency == victim_frequency + 1 && self.next_unit() < tuning.narrow_admission)
            || (candidate_frequency >= HOT_CANDIDATE && self.next_random() & 127 == 0);
        if !admitted && tuning.ghost_admission > 0.0 && arrival & ARRIVED_AS_GHOST != 0 {
            admitted = self.next_unit() < tuning.ghost_admission;
        }
        if admitted {
            self.sketch.push_ghost(victim_hash);
            self.evict(victim, RemovalCause::Capacity, removed);
        } else {
            // Already remembered as a ghost: since it arrived.
            self.sketch.count_push();
            self.evict(candidate, RemovalCause::Capacity, removed);
        }
        admitted
    }

    /// Probation's tail after promoting referenced entries to protected (and reclaiming expired ones).
    /// Forced inline: it runs on every insert into a full shard, and as a call it cost a miss 30
    /// instructions. (`evict`, forced inline too, cost more than it saved.)
    #[inline(always)]
    fn probation_victim(&mut self, now: u64, removed: &mut RemovedList<K, V>) -> Option<u32> {
        loop {
            let tail = self.queues[Region::Probation as usize].tail;
            if tail == NIL {
                return None;
            }
            if self.is_expired(tail, now) {
                self.evict(tail, RemovalCause::Expired, removed);
                continue;
            }
            if self.take_reference(tail) {
                self.move_to_front(Region::Protected, tail);
                continue;
            }
            return Some(tail);
        }
    }

    /// An entry to evict without admission: probation's victim, else protected's, else the window's tail.
    fn victim(&mut self, now: u64, removed: &mut RemovedList<K, V>) -> Option<u32> {
        if let Some(victim) = self.probation_victim(now, removed) {
            return Some(victim);
        }
        let mut chances = self.queues[Region::Protected as usize].len;
        if let Some(tail) = self.protected_hand(&mut chances) {
            return Some(tail);
        }
        let tail = self.queues[Region::Window as usize].tail;
        (tail != NIL).then_some(tail)
    }

    /// Protected's tail after giving referenced entries a second chance, `chances` at most (so that a
    /// fully referenced segment cannot spin).
    fn protected_hand(&mut self, chances: &mut usize) -> Option<u32> {
        loop {
            let tail = self.queues[Region::Protected as usize].tail;
            if tail == NIL {
                return None;
            }
            if *chances > 0 && self.take_reference(tail) {
                *chances -= 1;
                self.move_to_front(Region::Protected, tail);
                continue;
            }
            return Some(tail);
        }
    }

    /// Estimated popularity: the sketch's count from before the entry was cached plus its hits since.
    fn frequency(&self, index: u32) -> u8 {
        let (hash, hits) = self.hash_and_hits(index);
        (self.sketch.frequency(hash) + hits).min(15)
    }

    /// [`frequency`](Self::frequency) for probation's victim, which stays the same from miss to miss
    /// while candidates are turned away: the sketch remembers its count (its hits are on the slot, a line
    /// the policy has just read).
    fn victim_frequency(&mut self, index: u32) -> u8 {
        let (hash, hits) = self.hash_and_hits(index);
        (self.sketch.frequency_remembered(hash) + hits).min(15)
    }

    /// A slot's hash and the hits it counted since it was cached or last aged.
    fn hash_and_hits(&self, index: u32) -> (u64, u8) {
        let hits =
            self.slots[index as usize].entry.as_ref().map_or(0, |entry| entry.meta.load(Ordering::Relaxed) & HITS);
        (self.hashes[index as usize], hits)
    }

    /// Clears the referenced bit, returning whether it was set.
    fn take_reference(&self, index: u32) -> bool {
        let Some(entry) = self.slots[index as usize].entry.as_ref() else { return false };
        let meta = &entry.meta;
        let value = meta.load(Ordering::Relaxed);
        if value & REFERENCED != 0 {
            // A hit racing with this store may lose its increment; the counts are estimates.
            meta.store(value & !REFERENCED, Ordering::Relaxed);
            true
        } else {
            false
        }
    }

    fn is_expired(&self, index: u32, now: u64) -> bool {
        now >= self.expires_at(index)
    }

    /// When a slot's entry expires, or [`NEVER`] (also for a vacant slot).
    fn expires_at(&self, index: u32) -> u64 {
        match (&self.slots[index as usize].entry, self.expirations.get(index as usize)) {
            (Some(entry), Some(expiration)) if entry.expires => expiration.expires.load(Ordering::Relaxed),
            _ => NEVER,
        }
    }

    /// A slot's weight.
    fn weight_of(&self, index: u32) -> u32 {
        self.weights.get(index as usize).map_or(1, |&weight| weight)
    }

    /// Sets a slot's weight, allocating the weights when the first entry that weighs more than 1 arrives.
    fn set_weight(&mut self, index: u32, weight: u32) {
        if self.weights.len() < self.slots.len() {
            if weight == 1 && self.weights.is_empty() {
                return;
            }
            self.weights.resize(self.slots.len(), 1);
        }
        self.weights[index as usize] = weight;
    }

    /// Sets a slot's expiry, allocating the expirations when the first entry that expires arrives.
    fn set_expiration(&mut self, index: u32, deadline: u64, expires: u64) {
        if self.expirations.len() < self.slots.len() {
            self.expirations.resize_with(self.slots.len(), Expiration::never);
        }
        let expiration = &mut self.expirations[index as usize];
        expiration.deadline = deadline;
        *expiration.expires.get_mut() = expires;
    }

    /// Halves every slot's hit count along with the sketch, so both fade at the same pace.
    fn age_slots(&mut self) {
        for entry in self.slots.iter_mut().filter_map(|slot| slot.entry.as_mut()) {
            let value = *entry.meta.get_mut();
            *entry.meta.get_mut() = (value & !HITS) | ((value & HITS) >> 1);
            entry.arrival = (entry.arrival & !ESTIMATE) | ((entry.arrival & ESTIMATE) >> 1);
        }
    }

    /// A uniform draw from [0, 1).
    fn next_unit(&mut self) -> f64 {
        (self.next_random() >> 11) as f64 / (1u64 << 53) as f64
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64: admission jitter needs no quality beyond not being predictable from outside.
        self.rng ^= self.rng << 13;
        self.rng ^= self.rng >> 7;
        self.rng ^= self.rng << 17;
        self.rng
    }

    fn evict(&mut self, index: u32, cause: RemovalCause, removed: &mut RemovedList<K, V>) {
        let hash = self.hashes[index as usize];
        let (entry, hits) = self.take(index);
        // What the slot counted would otherwise be forgotten; the sketch keeps it for a later return.
        if self.sketch.add(hash, hits) {
            self.age_slots();
        }
        self.hand_over(removed, entry.key, entry.value, cause);
    }

    /// Counts a removal and hands the entry over, to be reported and dropped outside the lock.
    #[inline]
    fn hand_over(&mut self, removed: &mut RemovedList<K, V>, key: K, value: V, cause: RemovalCause) {
        self.count_removal(cause);
        removed.push(Removed { key, value, cause });
    }

    /// Counts a removal the caller makes under this shard's lock ([`remove`](Self::remove) counts none).
    #[inline]
    pub(crate) fn count_removal(&mut self, cause: RemovalCause) {
        self.removals[cause as usize] += 1;
    }

    /// Entries this shard has removed, by cause (indexed by [`RemovalCause`]).
    pub(crate) fn removals(&self) -> [u64; 4] {
        self.removals
    }

    /// Unlinks a slot and frees it, returning its entry and hit count.
    fn take(&mut self, index: u32) -> (Entry<K, V>, u8) {
        let hash = self.hashes[index as usize];
        if let Ok(found) = self.table.find_entry(hash, |&i| i == index) {
            found.remove();
        }
        self.unlink(index);
        self.weight -= u64::from(self.weight_of(index));
        let mut entry = self.slots[index as usize].entry.take().expect("a linked slot holds an entry");
        if entry.expires {
            self.expiring -= 1;
        }
        self.free.push(index);
        let hits = *entry.meta.get_mut() & HITS;
        (entry, hits)
    }

    fn allocate(&mut self, entry: Entry<K, V>, hash: u64, weight: u32) -> u32 {
        let slot = Slot { entry: Some(entry), prev: NIL, next: NIL };
        let index = if let Some(index) = self.free.pop() {
            self.slots[index as usize] = slot;
            self.hashes[index as usize] = hash;
            index
        } else {
            self.slots.push(slot);
            self.hashes.push(hash);
            (self.slots.len() - 1) as u32
        };
        self.set_weight(index, weight);
        index
    }

    // ---- intrusive queues ----

    fn push_front(&mut self, region: Region, index: u32) {
        let weight = u64::from(self.weight_of(index));
        let slot = &mut self.slots[index as usize];
        if let Some(entry) = slot.entry.as_mut() {
            entry.region = region;
        }
        let queue = &mut self.queues[region as usize];
        let head = queue.head;
        slot.prev = NIL;
        slot.next = head;
        if head != NIL {
            self.slots[head as usize].prev = index;
        } else {
            queue.tail = index;
        }
        queue.head = index;
        queue.weight += weight;
        queue.len += 1;
    }

    #[inline(always)]
    fn unlink(&mut self, index: u32) {
        let weight = u64::from(self.weight_of(index));
        let slot = &self.slots[index as usize];
        let Some(region) = slot.entry.as_ref().map(|entry| entry.region) else { return };
        let (prev, next) = (slot.prev, slot.next);
        let queue = &mut self.queues[region as usize];
        if prev != NIL {
            self.slots[prev as usize].next = next;
        } else {
            queue.head = next;
        }
        if next != NIL {
            self.slots[next as usize].prev = prev;
        } else {
            queue.tail = prev;
        }
        queue.weight -= weight;
        queue.len -= 1;
    }

    fn move_to_front(&mut self, region: Region, index: u32) {
        self.unlink(index);
        self.push_front(region, index);
    }
}

/// What the read path needs to judge an entry that can expire: the time, the time to idle in nanoseconds,
/// and the refresh-ahead queue (an entry read within its window of its expiry is handed to it once, to be
/// reloaded).
pub(crate) struct Expiry<'e, K> {
    pub(crate) now: u64,
    pub(crate) idle: Option<u64>,
    pub(crate) refresh: Option<&'e RefreshAhead<K>>,
}

/// A live slot and its entry, as a lookup found them.
type Found<'a, K, V> = (&'a Slot<K, V>, &'a Entry<K, V>);

/// Records a hit: one more hit (saturating) and the referenced bit. Writes only when that changes
/// something, so a hot entry read by many threads stays a shared, unwritten cache line.
#[inline]
fn touch(meta: &AtomicU8) {
    let value = meta.load(Ordering::Relaxed);
    // A hot entry (hits saturated, referenced): nothing to write, decided with one test. Any other
    // gains a hit or the referenced bit, so the byte changes.
    if value & (HITS | REFERENCED) == HITS | REFERENCED {
        return;
    }
    let hits = value & HITS;
    let touched = if hits < HITS { (value & !HITS) | (hits + 1) | REFERENCED } else { value | REFERENCED };
    meta.store(touched, Ordering::Relaxed);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sketch::spread;

    /// Keys whose sketch counters do not overlap in a 16-entry sketch, found by search so the test does
    /// not depend on where the hash function puts them.
    fn distinct_keys(count: usize) -> Vec<u64> {
        let mut keys: Vec<u64> = Vec::new();
        for candidate in 1u64.. {
            let hash = spread(candidate);
            let mut sketch = FrequencySketch::new(16);
            for &key in &keys {
                sketch.add(key, 1);
            }
            if sketch.frequency(hash) == 0 {
                keys.push(hash);
                if keys.len() == count {
                    return keys;
                }
            }
        }
        unreachable!("the search runs until it finds enough keys")
    }

    /// A candidate whose estimate beats its victim's by exactly one is admitted with the narrow-admission
    /// probability: never at 0, always at 1.
    #[test]
    fn narrow_wins_follow_the_narrow_admission_knob() {
        let [a, b, c] = distinct_keys(3)[..] else { unreachable!() };
        for (narrow_admission, b_stays) in [(0.0, false), (1.0, true)] {
            let tuning = Tuning { window_share: 0.0, ghost_admission: 0.0, narrow_admission, now: 0 };
            let mut shard: Shard<u64, u64> = Shard::new(2, 16, 1);
            let mut removed = RemovedList::new();
            // A window of one entry: `a` moves on to probation when `b` arrives.
            shard.insert(a, a, 0, 1, NEVER, NEVER, tuning, Absence::UNKNOWN, &mut removed);
            shard.insert(b, b, 0, 1, NEVER, NEVER, tuning, Absence::UNKNOWN, &mut removed);
            // One read: `b` is now estimated at 2 (counted once, read once), `a` at 1.
            assert_eq!(shard.look(b, &b, || Expiry { now: 0, idle: None, refresh: None }).ok(), Some(0));
            // `c` pushes `b` out of the window; the shard is over its bound, so `b` meets victim `a`.
            shard.insert(c, c, 0, 1, NEVER, NEVER, tuning, Absence::UNKNOWN, &mut removed);
            let mut evicted = Vec::new();
            removed.for_each(|removed| evicted.push(removed.key));
            let expected = if b_stays { a } else { b };
            assert_eq!(evicted, [expected], "narrow admission {narrow_admission}");
            assert_eq!(shard.find(b, &b).is_some(), b_stays);
        }
    }

    /// A candidate is judged by what the sketch said when it arrived: one that came back while still a
    /// ghost is let in with the ghost-admission probability (never at 0, always at 1), although its
    /// estimate only narrowly beats its victim's and narrow wins are turned away.
    #[test]
    fn a_candidate_that_arrived_as_a_ghost_follows_the_ghost_admission_knob() {
        let [a, b, c, d] = distinct_keys(4)[..] else { unreachable!() };
        for (ghost_admission, b_stays) in [(0.0, false), (1.0, true)] {
            let tuning = Tuning { window_share: 0.0, ghost_admission, narrow_admission: 0.0, now: 0 };
            let mut shard: Shard<u64, u64> = Shard::new(2, 16, 1);
            let mut evicted = Vec::new();
            let mut insert = |shard: &mut Shard<u64, u64>, key: u64| {
                let mut removed = RemovedList::new();
                shard.insert(key, key, 0, 1, NEVER, NEVER, tuning, Absence::UNKNOWN, &mut removed);
                removed.for_each(|removed| evicted.push(removed.key));
            };
            // `a` moves on to probation while the shard fills; `b` (estimated 1) then loses to it (1).
            insert(&mut shard, a);
            insert(&mut shard, b);
            insert(&mut shard, c);
            // `b` comes back, a ghost now, and `c` loses to `a` as `b` did.
            insert(&mut shard, b);
            // `b` (estimated 2) meets `a` (1): a narrow win, turned away unless its ghost lets it in.
            insert(&mut shard, d);
            let last = if b_stays { a } else { b };
            assert_eq!(evicted, [b, c, last], "ghost admission {ghost_admission}");
            assert_eq!(shard.find(b, &b).is_some(), b_stays);
        }
    }

    /// Weights are kept beside the slots only once an entry weighs more than 1; the shard's weight stays
    /// right across that switch, replacements and removals.
    #[test]
    fn weights_are_kept_once_an_entry_weighs_more_than_one() {
        let tuning = Tuning { window_share: 0.5, ghost_admission: 0.0, narrow_admission: 0.0, now: 0 };
        let mut shard: Shard<u64, u64> = Shard::new(1_000, 16, 1);
        let mut removed = RemovedList::new();
        let mut insert = |shard: &mut Shard<u64, u64>, key: u64, weight: u32| {
            shard.insert(spread(key), key, key, weight, NEVER, NEVER, tuning, Absence::UNKNOWN, &mut removed);
        };
        for key in 1..=5 {
            insert(&mut shard, key, 1);
        }
        assert_eq!(shard.weight(), 5);
        assert!(shard.weights.is_empty(), "every entry weighs 1");
        insert(&mut shard, 6, 10);
        assert_eq!(shard.weight(), 15);
        insert(&mut shard, 2, 4);
        assert_eq!(shard.weight(), 18, "2 replaced at weight 4");
        assert!(shard.remove(spread(6), &6).is_some());
        assert_eq!(shard.weight(), 8);
        insert(&mut shard, 7, 1);
        assert_eq!(shard.weight(), 9);
        let queued: u64 = shard.queues.iter().map(|queue| queue.weight).sum();
        assert_eq!(queued, 9, "the queues' weights add up to the shard's");
    }

    #[test]
    fn small_entries_take_half_a_cache_line() {
        assert_eq!(size_of::<Slot<u64, u64>>(), 32);
        assert_eq!(size_of::<Slot<u64, std::sync::Arc<String>>>(), 32);
        assert_eq!(align_of::<Slot<u64, u64>>(), 32);
        assert_eq!(size_of::<Slot<String, std::sync::Arc<String>>>(), 64);
    }
}

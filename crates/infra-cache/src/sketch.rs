//! The frequency sketch behind admission (how often has a key been asked for lately?), and the ghosts
//! (which keys were turned away or evicted lately?), on the same cache lines.
//!
//! **Counts.** A count-min sketch of 4-bit counters, sixteen to a word, four counters a key (TinyLFU,
//! Einziger, Friedman and Manes, 2017), all four in one 64-byte block, so that counting a key touches one
//! cache line (as Caffeine's sketch does). Counters saturate at 15 and are halved together once the sketch
//! has counted a sample of `SAMPLE_PER_ENTRY` times its capacity, so old popularity fades. The table holds
//! half a block for each entry the cache can hold (48 counters): wider than Caffeine's one word per entry
//! because it is halved less often (every 40 rather than 10 capacities), and a longer memory needs fewer
//! collisions. Both figures were chosen by replaying the ARC traces (docs/cache.md).
//!
//! **Ghosts.** Admission alone is slow to let in a key whose popularity is recent: the sketch has not
//! counted it yet. A key that comes back while it is still remembered as a ghost (it was rejected or
//! evicted within about the last `capacity` such events) may be let in although the sketch ranks it lower;
//! the climber sets how often ([`crate::cache`]). This lifts the policy near the working-set size, where
//! plain W-TinyLFU loses to recency-based policies (the ARC P3 trace at 160,000 entries: 49% without, 54%
//! with). A ghost is a 16-bit fingerprint and a 16-bit stamp, four to a block, in the last two words of
//! the block that holds the key's counters, so that what the policy needs to know about a key is on the
//! one line that counting it touches anyway. A key is counted, asked whether it is a ghost, and written
//! as one in a single visit when it arrives ([`FrequencySketch::arrive`]); the slot keeps the estimate
//! and the answer, and when the key is judged at the window's tail (by when its block has usually left
//! the core's caches) the policy reads them there instead of the block. A key turned away at the tail is
//! then already a ghost, stamped on arrival; a victim evicted in its favour is pushed then. Stamps count
//! removals (pushes, and candidates turned away, [`FrequencySketch::count_push`]), in units of a power
//! of two for large shards; a ghost counts as remembered while fewer than `capacity` removals have
//! happened since its stamp, and a full block gives up its oldest ghost.

/// Words of the table per cache entry: half a block, so 48 counters (three of the four words are
/// counters) and two ghosts.
const WORDS_PER_ENTRY: usize = 4;
/// Words in a block: a 64-byte cache line.
const BLOCK_WORDS: usize = 8;
/// Words of counters in a block; the rest hold ghosts.
const COUNTER_WORDS: usize = 6;
/// Ghosts per block, two to a word.
const GHOST_WAYS: usize = 4;
/// The most stamps a ghost's memory spans: ages up to four times this fit in 16 bits without wrapping.
const MOST_HORIZON_STAMPS: usize = 1 << 14;
/// Additions, as a multiple of the capacity, between two halvings.
const SAMPLE_PER_ENTRY: usize = 40;

/// What [`FrequencySketch::arrive`] found out about a key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Arrival {
    /// The key's estimated frequency, this arrival included, 1..=15.
    pub(crate) estimate: u8,
    /// Whether the key was a ghost when it arrived.
    pub(crate) ghost: bool,
    /// Whether counting it halved the sketch.
    pub(crate) halved: bool,
}

/// Eight words on one cache line.
#[derive(Debug, Clone, Copy, Default)]
#[repr(align(64))]
struct Block([u64; BLOCK_WORDS]);

#[derive(Debug)]
pub(crate) struct FrequencySketch {
    table: Box<[Block]>,
    /// Blocks minus one (a power of two minus one).
    mask: usize,
    /// Additions since the last halving.
    additions: usize,
    sample_size: usize,
    /// The entry count the table was sized for.
    sized_for: usize,
    /// The last key asked for through [`frequency_remembered`](Self::frequency_remembered): its hash,
    /// its block and its estimate, valid until a count in that block changes.
    remembered: Option<(u64, usize, u8)>,
    /// Ghosts pushed so far.
    pushes: u64,
    /// A stamp counts `1 << stamp_shift` pushes.
    stamp_shift: u32,
    /// How many stamps a ghost is remembered for: `capacity` pushes.
    horizon: u16,
}

/// A key's ghost fingerprint: bits of its hash that pick neither the shard, nor the block, nor the
/// table's buckets; never 0 (an empty way).
#[inline]
fn fingerprint(hash: u64) -> u16 {
    ((hash >> 16) as u16).max(1)
}

/// A 64-bit finalizer (SplitMix64's), spreading a hash the caller's hasher may have left weak.
#[inline]
pub(crate) fn spread(hash: u64) -> u64 {
    let mut x = hash.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

impl FrequencySketch {
    /// A sketch for a cache of `entries` entries.
    pub(crate) fn new(entries: usize) -> Self {
        let entries = entries.max(16);
        let blocks = (entries.saturating_mul(WORDS_PER_ENTRY) / BLOCK_WORDS).next_power_of_two().max(1);
        let stamp_shift = (entries / MOST_HORIZON_STAMPS).checked_ilog2().map_or(0, |bits| bits + 1);
        let horizon = u16::try_from(entries.div_ceil(1 << stamp_shift)).unwrap_or(u16::MAX);
        FrequencySketch {
            table: vec![Block::default(); blocks].into_boxed_slice(),
            mask: blocks - 1,
            additions: 0,
            sample_size: entries.saturating_mul(SAMPLE_PER_ENTRY),
            sized_for: entries,
            remembered: None,
            pushes: 0,
            stamp_shift,
            horizon,
        }
    }

    /// Grows the table (forgetting what it counted, and its ghosts) when the cache holds more entries
    /// than it was sized for, which happens with weighted caches whose entry count is not known in
    /// advance.
    #[inline]
    pub(crate) fn ensure_capacity(&mut self, entries: usize) {
        if entries > self.sized_for {
            *self = FrequencySketch::new(entries.saturating_mul(2));
        }
    }

    /// The block of a key's counters, and the selector bits that place its four counters in it. All
    /// four lie in one 64-byte block, so that counting a key touches one cache line (as Caffeine's sketch
    /// does).
    #[inline]
    fn locate(&self, hash: u64) -> (usize, u64) {
        let spread_hash = spread(hash);
        (spread_hash as usize & self.mask, spread_hash >> 32)
    }

    /// Counter `i`'s (word in the block, bit offset): the first three in words `2i` or `2i + 1`, the
    /// fourth in any counter word.
    #[inline(always)]
    fn position(selectors: u64, i: usize) -> (usize, u32) {
        let bits = selectors >> (8 * i);
        let word = if i < 3 { 2 * i + (bits & 1) as usize } else { ((bits & 7) as usize * COUNTER_WORDS) >> 3 };
        (word.min(COUNTER_WORDS - 1), (((bits >> 3) & 15) as u32) * 4)
    }

    /// The estimated frequency of a key, 0..=15.
    #[inline]
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let (block, selectors) = self.locate(hash);
        self.frequency_at(block, selectors)
    }

    /// [`frequency`](Self::frequency) of a key already located.
    #[inline]
    fn frequency_at(&self, block: usize, selectors: u64) -> u8 {
        let Some(Block(words)) = self.table.get(block) else { return 0 };
        let mut least = 15;
        for i in 0..4 {
            let (word, offset) = Self::position(selectors, i);
            least = least.min((words[word] >> offset) & 15);
        }
        least as u8
    }

    /// [`frequency`](Self::frequency), remembering the answer for the next call with the same key. The
    /// eviction policy asks about the same victim miss after miss while it turns candidates away: its
    /// block is then a line the cache does not read again.
    #[inline]
    pub(crate) fn frequency_remembered(&mut self, hash: u64) -> u8 {
        match self.remembered {
            Some((remembered, _, frequency)) if remembered == hash => frequency,
            _ => {
                let (block, selectors) = self.locate(hash);
                let frequency = self.frequency_at(block, selectors);
                self.remembered = Some((hash, block, frequency));
                frequency
            }
        }
    }

    /// Counts `times` accesses to a key; returns true when the sketch has just been halved. Forced
    /// inline: it runs on every insert and eviction, and as a call it cost a miss 25 instructions more.
    #[inline(always)]
    pub(crate) fn add(&mut self, hash: u64, times: u8) -> bool {
        if times == 0 {
            return false;
        }
        let (block, selectors) = self.locate_to_count(hash);
        let Some(Block(words)) = self.table.get_mut(block) else { return false };
        let (added, _) = Self::count_in(words, selectors, times);
        added && self.note_additions(times)
    }

    /// [`locate`](Self::locate) for a key about to be counted: forgets the remembered estimate if it
    /// lives in the same block (the count may change it).
    #[inline(always)]
    fn locate_to_count(&mut self, hash: u64) -> (usize, u64) {
        let (block, selectors) = self.locate(hash);
        if self.remembered.is_some_and(|(_, remembered_block, _)| remembered_block == block) {
            self.remembered = None;
        }
        (block, selectors)
    }

    /// Raises a located key's four counters by `times` (saturating at 15). Returns whether any counter
    /// changed, and the key's estimate after.
    #[inline(always)]
    fn count_in(words: &mut [u64; BLOCK_WORDS], selectors: u64, times: u8) -> (bool, u8) {
        let times = u64::from(times);
        let (mut added, mut estimate) = (0, 15);
        for i in 0..4 {
            let (word, offset) = Self::position(selectors, i);
            let count = (words[word] >> offset) & 15;
            let raised = (count + times).min(15);
            words[word] += (raised - count) << offset;
            added |= raised - count;
            estimate = estimate.min(raised);
        }
        (added != 0, estimate as u8)
    }

    /// Adds `times` to the additions since the last halving, halving when the sample is complete;
    /// returns whether it halved.
    #[inline(always)]
    fn note_additions(&mut self, times: u8) -> bool {
        self.additions += usize::from(times);
        if self.additions >= self.sample_size {
            self.halve();
            return true;
        }
        false
    }

    /// Counts a key's arrival (a miss that brings it into the cache) on its one block: one more access,
    /// the key's estimate after it, whether the key was a ghost, and the key remembered as one from now
    /// on. Doing all of it now, while the block is in the cache anyway, spares the policy a second read
    /// of the block when it later judges the key at the window's tail (by then the line has usually left
    /// the core's caches): the judgement uses what the slot kept of this answer instead.
    #[inline(always)]
    pub(crate) fn arrive(&mut self, hash: u64) -> Arrival {
        let (block, selectors) = self.locate_to_count(hash);
        let (print, now, horizon) = (fingerprint(hash), self.stamp(), self.horizon);
        let Some(Block(words)) = self.table.get_mut(block) else {
            return Arrival { estimate: 0, ghost: false, halved: false };
        };
        let (added, estimate) = Self::count_in(words, selectors, 1);
        let ghost = Self::replace_ghost(words, print, now, horizon);
        let halved = added && self.note_additions(1);
        Arrival { estimate, ghost, halved }
    }

    /// Halves every counter (not the ghosts), so that popularity fades.
    fn halve(&mut self) {
        self.remembered = None;
        for word in self.table.iter_mut().flat_map(|block| block.0[..COUNTER_WORDS].iter_mut()) {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
    }

    /// The current stamp.
    #[inline]
    fn stamp(&self) -> u16 {
        (self.pushes >> self.stamp_shift) as u16
    }

    /// Ghost `way` of a block: (fingerprint, stamp).
    #[inline(always)]
    fn ghost(words: &[u64; BLOCK_WORDS], way: usize) -> (u16, u16) {
        let entry = (words[COUNTER_WORDS + way / 2] >> (32 * (way % 2))) as u32;
        ((entry >> 16) as u16, entry as u16)
    }

    #[inline(always)]
    fn set_ghost(words: &mut [u64; BLOCK_WORDS], way: usize, print: u16, stamp: u16) {
        let shift = 32 * (way % 2);
        let word = &mut words[COUNTER_WORDS + way / 2];
        *word = (*word & !(0xFFFF_FFFF << shift)) | (((u64::from(print) << 16) | u64::from(stamp)) << shift);
    }

    /// Whether the key is a ghost: pushed, and fewer than `capacity` pushes ago. (The policy learns it
    /// from [`arrive`](Self::arrive).)
    #[cfg(test)]
    pub(crate) fn is_ghost(&self, hash: u64) -> bool {
        let Some(Block(words)) = self.table.get(self.locate(hash).0) else { return false };
        let (print, now) = (fingerprint(hash), self.stamp());
        (0..GHOST_WAYS).any(|way| {
            let (ghost, stamp) = Self::ghost(words, way);
            ghost == print && now.wrapping_sub(stamp) < self.horizon
        })
    }

    /// Remembers a key as a ghost, in its own way if it has one, else an empty or forgotten way, else the
    /// oldest.
    #[inline]
    pub(crate) fn push_ghost(&mut self, hash: u64) {
        self.pushes += 1;
        let (block, _) = self.locate(hash);
        let (print, now, horizon) = (fingerprint(hash), self.stamp(), self.horizon);
        let Some(Block(words)) = self.table.get_mut(block) else { return };
        Self::replace_ghost(words, print, now, horizon);
    }

    /// Writes ghost `print` stamped `now` into a block: in its own way if it has one, else the first
    /// empty or forgotten one, else the oldest (the last of equals). Returns whether the key was a ghost
    /// until now. The ways are judged into bit masks first and chosen after, without a branch
    /// per way: this runs on every miss.
    #[inline(always)]
    fn replace_ghost(words: &mut [u64; BLOCK_WORDS], print: u16, now: u16, horizon: u16) -> bool {
        let (mut own, mut free) = (0u32, 0u32);
        let mut stamps = [0u16; GHOST_WAYS];
        for (way, stamp_of_way) in stamps.iter_mut().enumerate() {
            let (ghost, stamp) = Self::ghost(words, way);
            *stamp_of_way = stamp;
            own |= u32::from(ghost == print) << way;
            free |= u32::from(ghost == 0 || now.wrapping_sub(stamp) >= horizon) << way;
        }
        let (way, was_ghost) = if own != 0 {
            let way = own.trailing_zeros() as usize;
            (way, now.wrapping_sub(stamps[way]) < horizon)
        } else if free != 0 {
            (free.trailing_zeros() as usize, false)
        } else {
            let mut oldest = (0, 0);
            for (way, &stamp) in stamps.iter().enumerate() {
                let age = now.wrapping_sub(stamp);
                if age >= oldest.1 {
                    oldest = (way, age);
                }
            }
            (oldest.0, false)
        };
        Self::set_ghost(words, way, print, now);
        was_ghost
    }

    /// Counts a push whose ghost was written earlier (by [`arrive`](Self::arrive)), so that ghosts age by
    /// removals whichever way they were written.
    #[inline]
    pub(crate) fn count_push(&mut self) {
        self.pushes += 1;
    }

    /// Forgets every ghost.
    pub(crate) fn clear_ghosts(&mut self) {
        for block in self.table.iter_mut() {
            block.0[COUNTER_WORDS..].fill(0);
        }
        self.pushes = 0;
    }

    /// Bytes held, for the memory report.
    pub(crate) fn heap_bytes(&self) -> usize {
        size_of_val(&*self.table)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_saturate_and_fade() {
        let mut sketch = FrequencySketch::new(64);
        for _ in 0..20 {
            sketch.add(42, 1);
        }
        assert_eq!(sketch.frequency(42), 15);
        assert!(sketch.frequency(43) <= 1, "an unseen key should read about zero");
        sketch.halve();
        assert_eq!(sketch.frequency(42), 7);
    }

    #[test]
    fn counters_never_touch_the_ghost_words() {
        for selectors in 0..(1u64 << 16) {
            for i in 0..4 {
                let (word, offset) = FrequencySketch::position(selectors.wrapping_mul(0x9E37_79B9), i);
                assert!(word < COUNTER_WORDS && offset <= 60, "{selectors} {i}: {word} {offset}");
            }
        }
        let mut sketch = FrequencySketch::new(64);
        for key in 0..10_000 {
            sketch.add(key, 15);
        }
        sketch.halve();
        assert!(sketch.table.iter().all(|block| block.0[COUNTER_WORDS..] == [0, 0]), "counting wrote no ghost");
    }

    /// Well-mixed hashes, as the cache's hasher gives them.
    fn key(n: u64) -> u64 {
        spread(n ^ 0x5EED)
    }

    #[test]
    fn ghosts_are_the_last_capacity_pushes() {
        let mut sketch = FrequencySketch::new(1_000);
        for n in 1..=3_000 {
            sketch.push_ghost(key(n));
        }
        let remembered: Vec<u64> = (1..=3_000).filter(|&n| sketch.is_ghost(key(n))).collect();
        assert!(remembered.len() >= 900 && remembered.len() <= 1_001, "{}", remembered.len());
        assert!(remembered.iter().all(|&n| n > 2_000), "only the last 1,000 pushes: {:?}", &remembered[..5]);
        // Counting neither forgets nor invents ghosts.
        for n in 0..5_000 {
            sketch.add(key(n), 3);
        }
        assert_eq!((1..=3_000).filter(|&n| sketch.is_ghost(key(n))).count(), remembered.len());
        sketch.clear_ghosts();
        assert!(!sketch.is_ghost(key(3_000)));
        assert_eq!(sketch.frequency(key(10)), 3, "clearing ghosts keeps the counts");
    }

    #[test]
    fn pushing_a_ghost_again_refreshes_it() {
        let mut sketch = FrequencySketch::new(2);
        // A horizon of 16 pushes (the smallest sketch).
        sketch.push_ghost(key(1));
        for n in 2..12 {
            sketch.push_ghost(key(n));
        }
        sketch.push_ghost(key(1));
        for n in 12..24 {
            sketch.push_ghost(key(n));
        }
        assert!(sketch.is_ghost(key(1)), "pushed again 12 pushes ago");
        assert!(!sketch.is_ghost(key(2)), "pushed 22 pushes ago");
    }

    /// An arrival counts the key, says whether it was a ghost, and leaves it one; ghosts age by pushes
    /// (removals), not by arrivals.
    #[test]
    fn arrivals_count_report_and_remember_ghosts() {
        let mut sketch = FrequencySketch::new(2);
        let first = sketch.arrive(key(1));
        assert_eq!((first.estimate, first.ghost), (1, false));
        // Many arrivals later, but no pushes: still remembered.
        for n in 2..40 {
            sketch.arrive(key(n));
        }
        let again = sketch.arrive(key(1));
        assert!(again.ghost, "arrived before, and no removal since");
        assert!(again.estimate >= 2, "counted twice: {}", again.estimate);
        // A horizon of 16 pushes (the smallest sketch) forgets it.
        for _ in 0..16 {
            sketch.count_push();
        }
        assert!(!sketch.arrive(key(1)).ghost, "16 removals since it arrived");
    }

    #[test]
    fn large_shards_count_pushes_in_coarser_stamps() {
        let sketch = FrequencySketch::new(100_000);
        assert_eq!(sketch.stamp_shift, 3);
        assert_eq!(usize::from(sketch.horizon), 100_000usize.div_ceil(8));
        assert_eq!(FrequencySketch::new(16_383).stamp_shift, 0);
        assert_eq!(FrequencySketch::new(16_384).stamp_shift, 1);
    }

    #[test]
    fn halves_after_the_sample() {
        let mut sketch = FrequencySketch::new(16);
        let mut halved = false;
        for key in 0..(16 * SAMPLE_PER_ENTRY as u64) {
            halved |= sketch.add(key, 1);
        }
        assert!(halved);
    }
}

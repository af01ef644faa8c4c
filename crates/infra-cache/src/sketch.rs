//! The frequency sketch behind admission: how often has a key been asked for lately?
//!
//! A count-min sketch of 4-bit counters, sixteen to a word, four counters a key (TinyLFU, Einziger,
//! Friedman and Manes, 2017). Counters saturate at 15 and are halved together once the sketch has counted
//! a sample of `SAMPLE_PER_ENTRY` times its capacity, so old popularity fades. The sketch holds
//! `WORDS_PER_ENTRY` words (64 counters) for each entry the cache can hold: wider than Caffeine's one word
//! per entry because it is halved less often (every 40 rather than 10 capacities), and a longer memory
//! needs fewer collisions. Both figures were chosen by replaying the ARC traces (docs/cache.md).

/// Words of sixteen counters per cache entry.
const WORDS_PER_ENTRY: usize = 4;
/// Words in the block holding one key's counters: a 64-byte cache line.
const BLOCK_WORDS: usize = 8;
/// Additions, as a multiple of the capacity, between two halvings.
const SAMPLE_PER_ENTRY: usize = 40;

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
        FrequencySketch {
            table: vec![Block::default(); blocks].into_boxed_slice(),
            mask: blocks - 1,
            additions: 0,
            sample_size: entries.saturating_mul(SAMPLE_PER_ENTRY),
            sized_for: entries,
            remembered: None,
        }
    }

    /// Grows the table (forgetting what it counted) when the cache holds more entries than it was sized
    /// for, which happens with weighted caches whose entry count is not known in advance.
    /// Returns the new size when it grew.
    #[inline]
    pub(crate) fn ensure_capacity(&mut self, entries: usize) -> Option<usize> {
        if entries > self.sized_for {
            *self = FrequencySketch::new(entries.saturating_mul(2));
            return Some(self.sized_for);
        }
        None
    }

    /// The block of a key's counters, and the selector bits that place its four counters in it. All
    /// four lie in one 64-byte block, so that counting a key touches one cache line (as Caffeine's sketch
    /// does).
    #[inline]
    fn locate(&self, hash: u64) -> (usize, u64) {
        let spread_hash = spread(hash);
        (spread_hash as usize & self.mask, spread_hash >> 32)
    }

    /// Counter `i`'s (word in the block, bit offset): word `2i` or `2i + 1`, so a key's counters never
    /// share a word.
    #[inline(always)]
    fn position(selectors: u64, i: usize) -> (usize, u32) {
        let bits = selectors >> (8 * i);
        ((2 * i + (bits & 1) as usize) & (BLOCK_WORDS - 1), (((bits >> 1) & 15) as u32) * 4)
    }

    /// The estimated frequency of a key, 0..=15.
    #[inline]
    pub(crate) fn frequency(&self, hash: u64) -> u8 {
        let (block, selectors) = self.locate(hash);
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
                let frequency = self.frequency(hash);
                self.remembered = Some((hash, self.locate(hash).0, frequency));
                frequency
            }
        }
    }

    /// Counts `times` accesses to a key; returns true when the sketch has just been halved.
    #[inline]
    pub(crate) fn add(&mut self, hash: u64, times: u8) -> bool {
        if times == 0 {
            return false;
        }
        let (block, selectors) = self.locate(hash);
        if self.remembered.is_some_and(|(_, remembered_block, _)| remembered_block == block) {
            self.remembered = None;
        }
        let Some(Block(words)) = self.table.get_mut(block) else { return false };
        let times = u64::from(times);
        let mut added = 0;
        for i in 0..4 {
            let (word, offset) = Self::position(selectors, i);
            let count = (words[word] >> offset) & 15;
            let raised = (count + times).min(15);
            words[word] += (raised - count) << offset;
            added |= raised - count;
        }
        if added != 0 {
            self.additions += times as usize;
            if self.additions >= self.sample_size {
                self.halve();
                return true;
            }
        }
        false
    }

    /// Halves every counter, so that popularity fades.
    fn halve(&mut self) {
        self.remembered = None;
        for word in self.table.iter_mut().flat_map(|block| block.0.iter_mut()) {
            *word = (*word >> 1) & 0x7777_7777_7777_7777;
        }
        self.additions /= 2;
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
    fn halves_after_the_sample() {
        let mut sketch = FrequencySketch::new(16);
        let mut halved = false;
        for key in 0..(16 * SAMPLE_PER_ENTRY as u64) {
            halved |= sketch.add(key, 1);
        }
        assert!(halved);
    }
}

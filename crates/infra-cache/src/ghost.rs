//! Keys recently turned away or evicted, by fingerprint only.
//!
//! Admission alone is slow to let in a key whose popularity is recent: the sketch has not counted it
//! yet. A key that comes back while it is still remembered here (it was rejected or evicted within the
//! last `capacity` such events) may be let in although the sketch ranks it lower; the climber sets how often ([`crate::cache`]).
//! This lifts the policy near the working-set size, where plain W-TinyLFU loses to recency-based
//! policies (the ARC P3 trace at 160,000 entries: 49% without, 54% with).
//!
//! The memory is a FIFO by sequence number, stored in a set-associative table: each fingerprint goes to
//! one bucket of four slots with the sequence number of its push, and counts as remembered while fewer
//! than `capacity` pushes have happened since. A full bucket gives up its oldest slot. With three slots
//! per remembered key, a bucket rarely fills before its oldest slot has aged out, so this behaves as a FIFO
//! of `capacity` keys while touching one cache line per operation (a queue and a hash map touch three).

/// Slots per bucket: four (fingerprint, sequence) pairs, 32 bytes.
const WAYS: usize = 4;

#[derive(Debug, Clone, Copy, Default)]
#[repr(align(32))]
struct Bucket {
    /// Fingerprints; 0 is an empty slot.
    prints: [u32; WAYS],
    /// The sequence number of each slot's push.
    pushed: [u32; WAYS],
}

#[derive(Debug)]
pub(crate) struct Ghosts {
    buckets: Box<[Bucket]>,
    /// Pushes so far (wrapping).
    sequence: u32,
    capacity: u32,
}

/// The fingerprint kept for a hash: its high half (never 0, which marks an empty slot).
#[inline]
fn fingerprint(hash: u64) -> u32 {
    ((hash >> 32) as u32).max(1)
}

impl Ghosts {
    pub(crate) fn new(capacity: usize) -> Self {
        let capacity = u32::try_from(capacity.max(1)).unwrap_or(u32::MAX / 4);
        // Three slots per remembered key: a bucket rarely fills before its oldest slot has aged out.
        let buckets = (capacity as usize * 3).div_ceil(WAYS).max(1);
        Ghosts { buckets: vec![Bucket::default(); buckets].into_boxed_slice(), sequence: 0, capacity }
    }

    pub(crate) fn set_capacity(&mut self, capacity: usize) {
        *self = Ghosts::new(capacity);
    }

    /// The bucket for a hash, by multiply-shift of a re-spread hash (independent of the fingerprint).
    #[inline]
    fn bucket(&self, hash: u64) -> usize {
        ((u128::from(crate::sketch::spread(hash)) * self.buckets.len() as u128) >> 64) as usize
    }

    /// Whether a slot pushed at `pushed` is still within the last `capacity` pushes.
    #[inline]
    fn remembered(&self, pushed: u32) -> bool {
        self.sequence.wrapping_sub(pushed) < self.capacity
    }

    pub(crate) fn contains(&self, hash: u64) -> bool {
        let print = fingerprint(hash);
        let bucket = &self.buckets[self.bucket(hash)];
        (0..WAYS).any(|way| bucket.prints[way] == print && self.remembered(bucket.pushed[way]))
    }

    pub(crate) fn push(&mut self, hash: u64) {
        let print = fingerprint(hash);
        self.sequence = self.sequence.wrapping_add(1);
        let (sequence, capacity) = (self.sequence, self.capacity);
        let index = self.bucket(hash);
        let bucket = &mut self.buckets[index];
        let age = |way: usize| sequence.wrapping_sub(bucket.pushed[way]);
        // The same key again, else an empty or forgotten slot, else the oldest.
        let way = (0..WAYS)
            .find(|&way| bucket.prints[way] == print)
            .or_else(|| (0..WAYS).find(|&way| bucket.prints[way] == 0 || age(way) >= capacity))
            .unwrap_or_else(|| (0..WAYS).max_by_key(|&way| age(way)).unwrap_or(0));
        bucket.prints[way] = print;
        bucket.pushed[way] = sequence;
    }

    pub(crate) fn clear(&mut self) {
        self.buckets.fill(Bucket::default());
        self.sequence = 0;
    }

    pub(crate) fn heap_bytes(&self) -> usize {
        size_of_val(&*self.buckets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_the_last_capacity_pushes() {
        let mut ghosts = Ghosts::new(100);
        let key = |n: u64| (n << 32) | n;
        for n in 1..=300 {
            ghosts.push(key(n));
        }
        let remembered: Vec<u64> = (1..=300).filter(|&n| ghosts.contains(key(n))).collect();
        // The last 100 pushes, give or take a key lost to a full bucket.
        assert!(remembered.len() >= 95 && remembered.len() <= 101, "{}", remembered.len());
        assert!(remembered.iter().all(|&n| n > 199), "{remembered:?}");
        ghosts.clear();
        assert!(!ghosts.contains(key(300)));
    }

    #[test]
    fn pushing_again_refreshes() {
        let mut ghosts = Ghosts::new(2);
        ghosts.push(1 << 32);
        ghosts.push(2 << 32);
        ghosts.push(1 << 32);
        ghosts.push(3 << 32);
        assert!(ghosts.contains(1 << 32));
        assert!(!ghosts.contains(2 << 32));
    }
}

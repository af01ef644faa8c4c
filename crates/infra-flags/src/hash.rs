//! MurmurHash3 (x86, 32-bit) and Unleash's normalisation of it into buckets.
//!
//! Unleash hashes `"{group_id}:{identifier}"`. Evaluation hashes `"{group_id}:"` once, when the flag set
//! is compiled ([`GroupHash`]), and continues over the identifier in place; [`normalized_hash`] gathers
//! the parts on the stack (or, when long, hashes them in sequence as if concatenated). Neither builds
//! that string on the heap.

/// The seed Unleash uses for rollout percentages.
pub(crate) const ROLLOUT_SEED: u32 = 0;
/// The seed Unleash uses for variant selection.
pub(crate) const VARIANT_SEED: u32 = 86_028_157;

const C1: u32 = 0xcc9e_2d51;
const C2: u32 = 0x1b87_3593;

#[inline]
fn mix_k(mut k: u32) -> u32 {
    k = k.wrapping_mul(C1);
    k = k.rotate_left(15);
    k.wrapping_mul(C2)
}

/// Inputs up to this long are gathered on the stack and hashed in one pass.
const STACK_INPUT: usize = 64;

/// MurmurHash3 x86_32 of the concatenation of `parts`.
#[inline]
pub(crate) fn murmur3_32(parts: &[&[u8]], seed: u32) -> u32 {
    let total: usize = parts.iter().map(|part| part.len()).sum();
    if total <= STACK_INPUT {
        let mut buffer = [0u8; STACK_INPUT];
        let mut at = 0;
        for part in parts {
            buffer[at..at + part.len()].copy_from_slice(part);
            at += part.len();
        }
        murmur3_32_contiguous(&buffer[..total], seed)
    } else {
        murmur3_32_streaming(parts, seed)
    }
}

fn murmur3_32_contiguous(bytes: &[u8], seed: u32) -> u32 {
    let mut h = seed;
    let mut blocks = bytes.chunks_exact(4);
    for block in &mut blocks {
        h = mix_block(h, u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
    }
    let tail = blocks.remainder();
    if !tail.is_empty() {
        let k = tail.iter().enumerate().fold(0u32, |k, (i, byte)| k | u32::from(*byte) << (8 * i));
        h ^= mix_k(k);
    }
    h ^= bytes.len() as u32;
    fmix(h)
}

/// The same hash over parts of any length, without gathering them.
fn murmur3_32_streaming(parts: &[&[u8]], seed: u32) -> u32 {
    let mut h = seed;
    let mut tail = [0u8; 4];
    let mut tail_len = 0usize;
    let mut total = 0usize;
    for part in parts {
        total += part.len();
        let mut bytes = *part;
        // Complete a block begun by the previous part.
        if tail_len > 0 {
            let take = (4 - tail_len).min(bytes.len());
            tail[tail_len..tail_len + take].copy_from_slice(&bytes[..take]);
            tail_len += take;
            bytes = &bytes[take..];
            if tail_len < 4 {
                continue;
            }
            h = mix_block(h, u32::from_le_bytes(tail));
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            h = mix_block(h, u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        let rest = blocks.remainder();
        tail[..rest.len()].copy_from_slice(rest);
        tail_len = rest.len();
    }
    if tail_len > 0 {
        let mut k = 0u32;
        for (i, byte) in tail[..tail_len].iter().enumerate() {
            k |= u32::from(*byte) << (8 * i);
        }
        h ^= mix_k(k);
    }
    // The length is mixed in modulo 2^32, as the reference implementation does.
    h ^= total as u32;
    fmix(h)
}

/// MurmurHash3 x86_32 of `"{group_id}:"` followed by an identifier, with the group part hashed once when
/// the flag set is compiled: an evaluation hashes only the identifier, in place, copying nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GroupHash {
    /// The state after the prefix's whole 4-byte blocks.
    h: u32,
    /// The prefix's last `pending_len` (0..=3) bytes, little-endian, waiting for a block.
    pending: u32,
    pending_len: u32,
    /// The prefix's length in bytes (mixed in modulo 2^32, like the reference).
    len: u32,
}

impl GroupHash {
    /// The state after hashing `"{group_id}:"` with `seed`.
    pub(crate) fn new(group_id: &str, seed: u32) -> Self {
        let mut state = GroupHash { h: seed, pending: 0, pending_len: 0, len: 0 };
        state.absorb(group_id.as_bytes());
        state.absorb(b":");
        state
    }

    fn absorb(&mut self, bytes: &[u8]) {
        for byte in bytes {
            self.pending |= u32::from(*byte) << (8 * self.pending_len);
            self.pending_len += 1;
            if self.pending_len == 4 {
                self.h = mix_block(self.h, self.pending);
                self.pending = 0;
                self.pending_len = 0;
            }
        }
        self.len = self.len.wrapping_add(bytes.len() as u32);
    }

    /// The hash of the prefix followed by `identifier`.
    #[inline]
    pub(crate) fn hash(&self, identifier: &str) -> u32 {
        let mut bytes = identifier.as_bytes();
        let mut h = self.h;
        let mut pending = self.pending;
        let mut pending_len = self.pending_len as usize;
        if pending_len > 0 {
            // Complete the block the prefix began.
            let take = (4 - pending_len).min(bytes.len());
            for (i, byte) in bytes[..take].iter().enumerate() {
                pending |= u32::from(*byte) << (8 * (pending_len + i));
            }
            pending_len += take;
            bytes = &bytes[take..];
            if pending_len == 4 {
                h = mix_block(h, pending);
                pending = 0;
                pending_len = 0;
            }
        }
        let mut blocks = bytes.chunks_exact(4);
        for block in &mut blocks {
            h = mix_block(h, u32::from_le_bytes([block[0], block[1], block[2], block[3]]));
        }
        // What is left: the prefix's pending bytes (when the identifier did not complete them) or the
        // identifier's last 0..=3 bytes, never both.
        let rest = blocks.remainder();
        let k = rest.iter().enumerate().fold(pending, |k, (i, byte)| k | u32::from(*byte) << (8 * i));
        if pending_len > 0 || !rest.is_empty() {
            h ^= mix_k(k);
        }
        h ^= self.len.wrapping_add(identifier.len() as u32);
        fmix(h)
    }

    /// Unleash's bucket of `identifier`: the hash modulo `modulus`, plus one; 0 for a modulus of 0.
    #[inline]
    pub(crate) fn bucket(&self, identifier: &str, modulus: u32) -> u32 {
        if modulus == 0 {
            return 0;
        }
        self.hash(identifier) % modulus + 1
    }
}

#[inline]
fn mix_block(h: u32, k: u32) -> u32 {
    let h = (h ^ mix_k(k)).rotate_left(13);
    h.wrapping_mul(5).wrapping_add(0xe654_6b64)
}

#[inline]
fn fmix(mut h: u32) -> u32 {
    h ^= h >> 16;
    h = h.wrapping_mul(0x85eb_ca6b);
    h ^= h >> 13;
    h = h.wrapping_mul(0xc2b2_ae35);
    h ^ (h >> 16)
}

/// Unleash's bucket for `identifier` within `group_id`: `murmur3("{group_id}:{identifier}") % modulus + 1`,
/// so in `1..=modulus`. A modulus of 0 (no weight to split) gives 0.
pub(crate) fn normalized_hash(group_id: &str, identifier: &str, modulus: u32, seed: u32) -> u32 {
    if modulus == 0 {
        return 0;
    }
    murmur3_32(&[group_id.as_bytes(), b":", identifier.as_bytes()], seed) % modulus + 1
}

/// The percentage bucket (1..=100) of `identifier` in `group_id`, as every Unleash SDK computes it.
///
/// A user is inside a rollout of `p` percent when their bucket is at most `p`, so raising `p` only ever
/// adds users.
///
/// ```
/// let bucket = infra_flags::rollout_bucket("checkout", "user-42");
/// assert!((1..=100).contains(&bucket));
/// ```
pub fn rollout_bucket(group_id: &str, identifier: &str) -> u32 {
    normalized_hash(group_id, identifier, 100, ROLLOUT_SEED)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reference(data: &[u8], seed: u32) -> u32 {
        murmur3::murmur3_32(&mut std::io::Cursor::new(data), seed).unwrap()
    }

    #[test]
    fn matches_the_reference_for_every_split_of_the_input() {
        let data = b"Feature.flexibleRollout.userId.55:1234567890-abcdefghij";
        for seed in [ROLLOUT_SEED, VARIANT_SEED, 42] {
            for len in 0..data.len() {
                let input = &data[..len];
                let expected = reference(input, seed);
                assert_eq!(murmur3_32(&[input], seed), expected, "whole, len {len}");
                assert_eq!(murmur3_32_streaming(&[input], seed), expected, "streaming, len {len}");
                for split in 0..=len {
                    let (a, b) = input.split_at(split);
                    for inner in 0..=b.len() {
                        let (b1, b2) = b.split_at(inner);
                        assert_eq!(murmur3_32(&[a, b1, b2], seed), expected, "split {split}/{inner} of {len}");
                        assert_eq!(
                            murmur3_32_streaming(&[a, b1, b2], seed),
                            expected,
                            "streamed split {split}/{inner}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn group_hashes_match_the_reference_for_every_split() {
        let data = "Feature.flexibleRollout.userId.55:1234567890-abcdefghij";
        for seed in [ROLLOUT_SEED, VARIANT_SEED, 42] {
            for group_len in 0..20 {
                let group = &data[..group_len];
                let state = GroupHash::new(group, seed);
                for id_len in 0..30 {
                    let identifier = &data[20..20 + id_len];
                    let expected = reference(format!("{group}:{identifier}").as_bytes(), seed);
                    assert_eq!(state.hash(identifier), expected, "group {group:?}, identifier {identifier:?}");
                    assert_eq!(state.bucket(identifier, 100), normalized_hash(group, identifier, 100, seed));
                }
            }
        }
        assert_eq!(GroupHash::new("g", 0).bucket("x", 0), 0);
    }

    #[test]
    fn long_inputs_take_the_streaming_path_and_agree() {
        let long: Vec<u8> = (0..1000u32).map(|i| (i * 7 % 251) as u8).collect();
        for len in [STACK_INPUT - 1, STACK_INPUT, STACK_INPUT + 1, 999] {
            let (a, b) = long[..len].split_at(len / 3);
            assert_eq!(murmur3_32(&[a, b], VARIANT_SEED), reference(&long[..len], VARIANT_SEED));
        }
    }

    #[test]
    fn known_vectors() {
        // Published MurmurHash3 x86_32 test vectors.
        assert_eq!(murmur3_32(&[b""], 0), 0);
        assert_eq!(murmur3_32(&[b""], 1), 0x514e_28b7);
        assert_eq!(murmur3_32(&[b"test"], 0), 0xba6b_d213);
        assert_eq!(murmur3_32(&[b"Hello, world!"], 0x9747_b28c), 0x2488_4cba);
    }

    #[test]
    fn buckets_stay_in_range() {
        for i in 0..10_000 {
            let bucket = normalized_hash("group", &i.to_string(), 100, ROLLOUT_SEED);
            assert!((1..=100).contains(&bucket));
        }
        assert_eq!(normalized_hash("group", "x", 0, ROLLOUT_SEED), 0);
    }
}

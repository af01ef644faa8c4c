//! Synthetic key streams for cache benchmarks: Zipf-distributed keys and a scan-polluted mix.

/// SplitMix64: a small, fast, seedable generator; the streams must be the same for every cache compared.
#[derive(Debug, Clone)]
pub struct SplitMix(u64);

impl SplitMix {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        SplitMix(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A uniform draw from [0, 1).
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// Draws ranks 0..n with probability proportional to 1 / (rank + 1)^s, by binary search in the
/// cumulative distribution (exact, and fast enough to pre-generate streams).
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The distribution over `n` ranks with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative = Vec::with_capacity(n);
        for rank in 0..n {
            total += 1.0 / ((rank + 1) as f64).powf(s);
            cumulative.push(total);
        }
        for value in &mut cumulative {
            *value /= total;
        }
        Zipf { cumulative }
    }

    /// One rank.
    pub fn sample(&self, rng: &mut SplitMix) -> u64 {
        let u = rng.next_unit();
        self.cumulative.partition_point(|&c| c < u) as u64
    }
}

/// Spreads ranks over the key space, so that popular keys are not also numerically adjacent.
pub fn scatter(rank: u64) -> u64 {
    rank.wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17)
}

/// `len` keys drawn from Zipf(`s`) over `n` keys.
pub fn zipf_keys(n: usize, s: f64, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(n, s);
    let mut rng = SplitMix::new(seed);
    (0..len).map(|_| scatter(zipf.sample(&mut rng))).collect()
}

/// A Zipf(0.99) stream over `n` keys, with a fifth of the requests replaced by scans: runs of 1,000
/// sequential keys that are never asked for again (a batch job reading through the table). A policy that
/// lets scans flush the popular keys loses most of its hits.
pub fn scan_polluted_keys(n: usize, len: usize, seed: u64) -> Vec<u64> {
    let zipf = Zipf::new(n, 0.99);
    let mut rng = SplitMix::new(seed);
    let mut keys = Vec::with_capacity(len);
    let mut next_scan_key = u64::MAX / 2;
    while keys.len() < len {
        if rng.next_unit() < 0.2 / 1000.0 * 5.0 {
            for _ in 0..1000 {
                keys.push(next_scan_key);
                next_scan_key += 1;
            }
        } else {
            for _ in 0..4 {
                keys.push(scatter(zipf.sample(&mut rng)));
            }
        }
    }
    keys.truncate(len);
    keys
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zipf_favours_low_ranks_as_the_exponent_says() {
        let zipf = Zipf::new(1000, 1.0);
        let mut rng = SplitMix::new(7);
        let mut counts = vec![0u32; 1000];
        for _ in 0..200_000 {
            counts[zipf.sample(&mut rng) as usize] += 1;
        }
        // P(rank 0) / P(rank 1) = 2 for s = 1.
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((1.85..2.15).contains(&ratio), "{ratio}");
    }

    #[test]
    fn scans_take_about_a_fifth() {
        let keys = scan_polluted_keys(10_000, 500_000, 3);
        let scanned = keys.iter().filter(|&&k| (u64::MAX / 2..u64::MAX / 2 + 10_000_000).contains(&k)).count();
        let share = scanned as f64 / keys.len() as f64;
        assert!((0.15..0.25).contains(&share), "{share}");
    }
}

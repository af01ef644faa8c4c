//! Label sets and their fingerprints, bit for bit as Prometheus and Alertmanager compute them.

use std::fmt;

/// FNV-1a 64's offset basis: also the fingerprint of the empty label set.
const FNV_OFFSET: u64 = 14_695_981_039_346_656_037;
/// FNV-1a 64's prime.
const FNV_PRIME: u64 = 1_099_511_628_211;
/// The byte Prometheus writes after every label name and value, so `a="bc"` and `ab="c"` differ.
const SEPARATOR: u8 = 0xFF;

/// An alert's identity: FNV-1a 64 over its labels sorted by name, each name and value followed by 0xFF,
/// exactly as Alertmanager's `/api/v2/alerts` reports it. Identical label sets are the same alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Fingerprint(pub u64);

impl fmt::Display for Fingerprint {
    /// Sixteen lowercase hex digits, as Alertmanager prints it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// A set of labels: names to values, kept sorted by name.
///
/// Stored as one sorted vector of boxed strings: an alert carries a handful of labels, and a vector holds
/// them in a third of the memory a tree map takes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Labels(Vec<(Box<str>, Box<str>)>);

impl Labels {
    /// An empty set.
    pub fn new() -> Self {
        Labels(Vec::new())
    }

    /// This set with `name` set to `value`.
    pub fn with(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.insert(name, value);
        self
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(existing, _)| (**existing).cmp(name))
    }

    /// Sets `name` to `value`. An empty value removes the label, as in Prometheus (an empty label is an
    /// absent one).
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) {
        let (name, value) = (name.into(), value.into());
        match (self.position(&name), value.is_empty()) {
            (Ok(at), true) => {
                self.0.remove(at);
            }
            (Ok(at), false) => self.0[at].1 = value.into_boxed_str(),
            (Err(_), true) => {}
            (Err(at), false) => self.0.insert(at, (name.into_boxed_str(), value.into_boxed_str())),
        }
    }

    /// The value of `name`, or `""` when absent (how matchers see a missing label).
    pub fn get(&self, name: &str) -> &str {
        self.position(name).map_or("", |at| &self.0[at].1)
    }

    /// Whether `name` is set.
    pub fn contains(&self, name: &str) -> bool {
        self.position(name).is_ok()
    }

    /// The labels, sorted by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(name, value)| (&**name, &**value))
    }

    /// Gives back spare capacity (alerts keep their labels for long).
    pub(crate) fn shrink(&mut self) {
        self.0.shrink_to_fit();
    }

    /// How many labels are set.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether no label is set.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The labels of `names` only (for group keys and `equal` comparisons).
    pub fn project<'a>(&self, names: impl IntoIterator<Item = &'a str>) -> Labels {
        let mut projected = Labels::new();
        for name in names {
            if let Ok(at) = self.position(name) {
                let (name, value) = &self.0[at];
                projected.insert(&**name, &**value);
            }
        }
        projected.0.shrink_to_fit();
        projected
    }

    /// The set's fingerprint (see [`Fingerprint`]).
    pub fn fingerprint(&self) -> Fingerprint {
        let mut hash = FNV_OFFSET;
        let mut add = |bytes: &[u8]| {
            for byte in bytes {
                hash ^= u64::from(*byte);
                hash = hash.wrapping_mul(FNV_PRIME);
            }
        };
        for (name, value) in &self.0 {
            add(name.as_bytes());
            add(&[SEPARATOR]);
            add(value.as_bytes());
            add(&[SEPARATOR]);
        }
        Fingerprint(hash)
    }
}

impl<N: Into<String>, V: Into<String>> FromIterator<(N, V)> for Labels {
    fn from_iter<I: IntoIterator<Item = (N, V)>>(iter: I) -> Self {
        let mut labels = Labels::new();
        for (name, value) in iter {
            labels.insert(name, value);
        }
        labels.0.shrink_to_fit();
        labels
    }
}

impl fmt::Display for Labels {
    /// `{a="1", b="2"}`, as Alertmanager prints label sets (and group keys).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("{")?;
        for (i, (name, value)) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            write!(f, "{name}={value:?}")?;
        }
        f.write_str("}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_match_prometheus_reference_values() {
        // Values from prometheus/common's model tests (labelset_test / signature_test).
        assert_eq!(Labels::new().fingerprint(), Fingerprint(14_695_981_039_346_656_037));
        let labels = Labels::new()
            .with("first_name", "electro")
            .with("occupation", "robot")
            .with("manufacturer", "westinghouse");
        assert_eq!(labels.fingerprint(), Fingerprint(5_911_716_720_268_894_962));
        assert_eq!(Labels::new().with("x", "y").fingerprint(), Fingerprint(8_241_431_561_484_471_700));
        let pair = Labels::new().with("a", "bb").with("b", "c");
        assert_eq!(pair.fingerprint(), Fingerprint(3_016_285_359_649_981_711));
        assert_eq!(pair.fingerprint().to_string(), format!("{:016x}", 3_016_285_359_649_981_711u64));
        assert_ne!(Labels::new().with("a", "bc").fingerprint(), Labels::new().with("ab", "c").fingerprint());
    }
}

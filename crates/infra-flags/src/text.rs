//! Comparing the short strings flag rules are made of (names, ids, environments) without calling
//! `memcmp`: at these lengths the call costs more than the comparison.

/// The first and last word of a string of at most 16 bytes, read with two (overlapping) loads. Together
/// with the length they determine the string: the loads cover every byte.
#[inline(always)]
pub(crate) fn edge_words(bytes: &[u8]) -> (u64, u64) {
    let n = bytes.len();
    if n >= 8 {
        let word = |at: usize| {
            let mut word = [0u8; 8];
            word.copy_from_slice(&bytes[at..at + 8]);
            u64::from_le_bytes(word)
        };
        (word(0), word(n - 8))
    } else if n >= 4 {
        let word = |at: usize| {
            let mut word = [0u8; 4];
            word.copy_from_slice(&bytes[at..at + 4]);
            u64::from(u32::from_le_bytes(word))
        };
        (word(0), word(n - 4))
    } else if n > 0 {
        (u64::from(bytes[0]) | u64::from(bytes[n / 2]) << 8 | u64::from(bytes[n - 1]) << 16, 0)
    } else {
        (0, 0)
    }
}

/// Whether `a` and `b` hold the same bytes: inline up to 32 bytes (as two halves, overlapping), then by
/// `memcmp`.
#[inline(always)]
pub(crate) fn same(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    n == b.len()
        && if n <= 16 {
            edge_words(a) == edge_words(b)
        } else if n <= 32 {
            edge_words(&a[..16]) == edge_words(&b[..16]) && edge_words(&a[n - 16..]) == edge_words(&b[n - 16..])
        } else {
            a == b
        }
}

/// A string from a rule (a value of `IN`, a prefix of `STR_STARTS_WITH`, ...), with its edge words
/// computed at load: comparing a context value with it reads the needle's own slot, not its text.
#[derive(Debug, Clone)]
pub(crate) struct Needle {
    /// [`edge_words`] of `text` when it is at most 16 bytes long.
    words: (u64, u64),
    text: Box<str>,
}

/// Needles are equal when their texts are (the words follow from the text).
impl PartialEq for Needle {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for Needle {}

impl Needle {
    pub(crate) fn new(text: &str) -> Self {
        let words = if text.len() <= 16 { edge_words(text.as_bytes()) } else { (0, 0) };
        Needle { words, text: text.into() }
    }

    /// The text.
    pub(crate) fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether `value` is this text.
    #[inline(always)]
    pub(crate) fn equals(&self, value: &[u8]) -> bool {
        let n = self.text.len();
        n == value.len() && if n <= 16 { edge_words(value) == self.words } else { self.equals_long(value) }
    }

    /// [`Needle::equals`] for texts over 16 bytes (rare in rules), out of line: inline, its code and the
    /// `memcmp` call would have every check that compares a needle save and restore registers.
    #[cold]
    #[inline(never)]
    fn equals_long(&self, value: &[u8]) -> bool {
        same(self.text.as_bytes(), value)
    }

    /// Whether the text is at most 16 bytes long, so that its words determine it.
    pub(crate) fn is_short(&self) -> bool {
        self.text.len() <= 16
    }

    /// Whether a value of `len` bytes whose [`edge_words`] are `words` is this text; for short needles
    /// only (a long one's words are not its text's).
    #[inline(always)]
    pub(crate) fn is_short_text(&self, len: usize, words: (u64, u64)) -> bool {
        self.text.len() == len && self.words == words
    }

    /// Whether `value` starts with this text; for short needles only.
    #[inline(always)]
    pub(crate) fn short_prefix_of(&self, value: &[u8]) -> bool {
        let n = self.text.len();
        value.len() >= n && edge_words(&value[..n]) == self.words
    }

    /// Whether `value` ends with this text; for short needles only.
    #[inline(always)]
    pub(crate) fn short_suffix_of(&self, value: &[u8]) -> bool {
        let n = self.text.len();
        value.len() >= n && edge_words(&value[value.len() - n..]) == self.words
    }

    /// Whether `value` starts with this text.
    #[inline(always)]
    pub(crate) fn starts(&self, value: &[u8]) -> bool {
        value.len() >= self.text.len() && self.equals(&value[..self.text.len()])
    }

    /// Whether `value` ends with this text.
    #[inline(always)]
    pub(crate) fn ends(&self, value: &[u8]) -> bool {
        value.len() >= self.text.len() && self.equals(&value[value.len() - self.text.len()..])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equality_agrees_with_the_standard_comparison_at_every_length() {
        let base: Vec<u8> = (0..40u8).map(|i| b'a' + i % 26).collect();
        for len in 0..=base.len() {
            let text = &base[..len];
            let copy = text.to_vec();
            assert!(same(text, &copy));
            for at in 0..len {
                let mut other = text.to_vec();
                other[at] = b'Z';
                assert!(!same(text, &other), "{len} {at}");
            }
        }
    }

    #[test]
    fn needles_agree_with_the_standard_comparisons() {
        let base: String = (0..40u8).map(|i| char::from(b'a' + i % 26)).collect();
        for needle_len in 0..=base.len() {
            let needle = Needle::new(&base[..needle_len]);
            assert_eq!(needle.as_str(), &base[..needle_len]);
            for start in [0, 1, 3] {
                for len in 0..=base.len() - start {
                    let value = &base.as_bytes()[start..start + len];
                    let text = needle.as_str().as_bytes();
                    assert_eq!(needle.equals(value), value == text, "{needle_len} {start} {len}");
                    assert_eq!(needle.starts(value), value.starts_with(text), "{needle_len} {start} {len}");
                    assert_eq!(needle.ends(value), value.ends_with(text), "{needle_len} {start} {len}");
                    if needle.is_short() {
                        assert_eq!(needle.short_prefix_of(value), value.starts_with(text));
                        assert_eq!(needle.short_suffix_of(value), value.ends_with(text));
                        if len <= 16 {
                            assert_eq!(needle.is_short_text(len, edge_words(value)), value == text);
                        }
                    }
                }
            }
        }
    }
}

//! W3C identifiers: 128-bit trace ids, 64-bit span ids, the trace-flags byte, and where new ids come from.

use std::cell::Cell;
use std::fmt;

/// A 128-bit trace id; all zeros is invalid ([`TraceId::INVALID`]).
///
/// Held as two 64-bit halves (high first): a `u128` would force 16-byte alignment on every span
/// context, and an array `[u64; 2]` is copied as one 16-byte block, which stalls when it reads halves
/// written a moment before (the common case: a fresh id copied into the thread's current-span stack).
/// Two named fields are copied and kept in registers as two scalars.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct TraceId {
    high: u64,
    low: u64,
}

/// A 64-bit span id; all zeros is invalid ([`SpanId::INVALID`]).
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub struct SpanId(u64);

impl TraceId {
    /// The all-zero id the specification forbids; marks "no trace".
    pub const INVALID: TraceId = TraceId { high: 0, low: 0 };

    /// The id with these 128 bits.
    pub const fn from_u128(bits: u128) -> Self {
        TraceId { high: (bits >> 64) as u64, low: bits as u64 }
    }

    /// The 128 bits.
    pub const fn to_u128(self) -> u128 {
        ((self.high as u128) << 64) | self.low as u128
    }

    /// The id from its 16 big-endian bytes, as OTLP carries it.
    pub const fn from_bytes(bytes: [u8; 16]) -> Self {
        TraceId::from_u128(u128::from_be_bytes(bytes))
    }

    /// The 16 big-endian bytes, as OTLP carries them.
    pub const fn to_bytes(self) -> [u8; 16] {
        self.to_u128().to_be_bytes()
    }

    /// Whether any bit is set.
    pub const fn is_valid(self) -> bool {
        self.high != 0 || self.low != 0
    }

    /// Parses 32 lowercase hex digits (the `traceparent` form); `None` for anything else, including
    /// all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bits = parse_lower_hex(hex.as_bytes(), 32)?;
        (bits != 0).then_some(TraceId::from_u128(bits))
    }
}

impl SpanId {
    /// The all-zero id the specification forbids; marks "no parent".
    pub const INVALID: SpanId = SpanId(0);

    /// The id with these 64 bits.
    pub const fn from_u64(bits: u64) -> Self {
        SpanId(bits)
    }

    /// The 64 bits.
    pub const fn to_u64(self) -> u64 {
        self.0
    }

    /// The id from its 8 big-endian bytes, as OTLP carries it.
    pub const fn from_bytes(bytes: [u8; 8]) -> Self {
        SpanId(u64::from_be_bytes(bytes))
    }

    /// The 8 big-endian bytes, as OTLP carries them.
    pub const fn to_bytes(self) -> [u8; 8] {
        self.0.to_be_bytes()
    }

    /// Whether any bit is set.
    pub const fn is_valid(self) -> bool {
        self.0 != 0
    }

    /// Parses 16 lowercase hex digits (the `traceparent` form); `None` for anything else, including
    /// all zeros.
    pub fn from_hex(hex: &str) -> Option<Self> {
        let bits = parse_lower_hex(hex.as_bytes(), 16)?;
        (bits != 0).then_some(SpanId(bits as u64))
    }
}

/// Parses exactly `digits` (at most 32) lowercase hex digits.
pub(crate) fn parse_lower_hex(bytes: &[u8], digits: usize) -> Option<u128> {
    if bytes.len() != digits || digits > 32 {
        return None;
    }
    // Eight digits at a time (SWAR): a per-digit loop is one long chain of dependent shifts, and
    // checking byte by byte costs more than the conversion.
    let (head, chunks) = bytes.split_at(digits % 8);
    let mut bits = 0u128;
    for &b in head {
        let nibble = HEX_VALUE[usize::from(b)];
        if nibble > 15 {
            return None;
        }
        bits = (bits << 4) | u128::from(nibble);
    }
    for chunk in chunks.chunks_exact(8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let word = u64::from_be_bytes(word);
        if !eight_lower_hex(word) {
            return None;
        }
        bits = (bits << 32) | u128::from(eight_hex_digits(word));
    }
    Some(bits)
}

/// Whether all eight bytes of a word are lowercase hex digits.
fn eight_lower_hex(word: u64) -> bool {
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const ONES: u64 = 0x0101_0101_0101_0101;
    if word & HIGH != 0 {
        return false;
    }
    // With every byte below 0x80, adding 0x80 - lo sets a byte's high bit exactly when the byte is
    // at least lo, and adding 0x7f - hi when it is above hi; no byte carries into the next.
    let within = |lo: u64, hi: u64| (word + (0x80 - lo) * ONES) & !(word + (0x7f - hi) * ONES) & HIGH;
    within(0x30, 0x39) | within(0x61, 0x66) == HIGH
}

/// The value of eight ASCII lowercase hex digits packed big-endian in a word (already checked).
fn eight_hex_digits(ascii: u64) -> u32 {
    const LOW_NIBBLES: u64 = 0x0f0f_0f0f_0f0f_0f0f;
    const ONES: u64 = 0x0101_0101_0101_0101;
    // '0'..='9' are 0x30..=0x39 (bit 6 clear), 'a'..='f' 0x61..=0x66 (bit 6 set): the low nibble,
    // plus 9 for letters.
    let mut n = (ascii & LOW_NIBBLES) + 9 * ((ascii >> 6) & ONES);
    n = (n | (n >> 4)) & 0x00ff_00ff_00ff_00ff;
    n = (n | (n >> 8)) & 0x0000_ffff_0000_ffff;
    n = (n | (n >> 16)) & 0x0000_0000_ffff_ffff;
    n as u32
}

/// Eight lowercase hex digits of `value`, packed big-endian in a word.
pub(crate) fn eight_hex_ascii(value: u32) -> [u8; 8] {
    let mut n = u64::from(value);
    n = (n | (n << 16)) & 0x0000_ffff_0000_ffff;
    n = (n | (n << 8)) & 0x00ff_00ff_00ff_00ff;
    n = (n | (n << 4)) & 0x0f0f_0f0f_0f0f_0f0f;
    // 1 in each byte whose nibble is 10 or more: those become letters.
    let letters = ((n + 0x0606_0606_0606_0606) >> 4) & 0x0101_0101_0101_0101;
    (n + 0x3030_3030_3030_3030 + letters * (b'a' - b'0' - 10) as u64).to_be_bytes()
}

/// The value of each lowercase hex digit; 0xff for every other byte.
static HEX_VALUE: [u8; 256] = {
    let mut table = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        table[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        table[b'a' as usize + i] = 10 + i as u8;
        i += 1;
    }
    table
};

/// Parses hex digits in either case (B3 allows both); at most 32.
pub(crate) fn parse_any_hex(bytes: &[u8]) -> Option<u128> {
    if bytes.is_empty() || bytes.len() > 32 {
        return None;
    }
    let mut bits = 0u128;
    for &byte in bytes {
        let nibble = (byte as char).to_digit(16)?;
        bits = (bits << 4) | u128::from(nibble);
    }
    Some(bits)
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}{:016x}", self.high, self.low)
    }
}

impl fmt::Debug for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceId({self})")
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SpanId({:016x})", self.0)
    }
}

/// The `trace-flags` byte of `traceparent`.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TraceFlags(u8);

impl TraceFlags {
    /// The caller may have recorded the trace.
    pub const SAMPLED: TraceFlags = TraceFlags(0x01);
    /// Level 2: the right-most 7 bytes of the trace id are random (ours always are).
    pub const RANDOM: TraceFlags = TraceFlags(0x02);
    /// No flag set.
    pub const NONE: TraceFlags = TraceFlags(0);

    /// The flags with these bits.
    pub const fn new(bits: u8) -> Self {
        TraceFlags(bits)
    }

    /// The bits.
    pub const fn bits(self) -> u8 {
        self.0
    }

    /// Whether the sampled bit is set.
    pub const fn is_sampled(self) -> bool {
        self.0 & 0x01 != 0
    }

    /// These flags with the sampled bit set or cleared.
    pub const fn with_sampled(self, sampled: bool) -> Self {
        TraceFlags(if sampled { self.0 | 0x01 } else { self.0 & !0x01 })
    }

    /// Only the bits this version of the specification defines (sampled, random): the others are
    /// reserved and a vendor must send them as zero.
    pub const fn known(self) -> Self {
        TraceFlags(self.0 & 0x03)
    }
}

impl fmt::Debug for TraceFlags {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "TraceFlags({:02x})", self.0)
    }
}

/// Where new trace and span ids come from.
///
/// The default, [`RandomIds`], draws from a per-thread generator seeded from the operating system; a
/// custom generator can make ids reproducible in tests or embed a host number.
pub trait IdGenerator: Send + Sync + fmt::Debug + 'static {
    /// A new trace id; must not be [`TraceId::INVALID`].
    fn new_trace_id(&self) -> TraceId;
    /// A new span id; must not be [`SpanId::INVALID`].
    fn new_span_id(&self) -> SpanId;
}

/// Random ids from a per-thread wyrand generator seeded from the operating system: a multiply and an
/// add per id, no lock, no shared cache line. Trace ids are fully random, so the level-2 `random`
/// flag holds for them.
#[derive(Debug, Clone, Copy, Default)]
pub struct RandomIds;

thread_local! {
    static WYRAND: Cell<u64> = const { Cell::new(0) };
}

/// The next 64 random bits of this thread's generator.
#[inline]
pub(crate) fn random_u64() -> u64 {
    random_words::<1>()[0]
}

/// The next `N` words of this thread's generator (wyrand), drawn in one visit to the thread-local:
/// a root span takes its trace and span ids (three words) at once.
#[inline(always)]
pub(crate) fn random_words<const N: usize>() -> [u64; N] {
    WYRAND.with(|state| {
        let mut s = state.get();
        if s == 0 {
            s = first_seed();
        }
        let mut words = [0; N];
        for word in &mut words {
            s = s.wrapping_add(0xa076_1d64_78bd_642f);
            let t = u128::from(s) * u128::from(s ^ 0xe703_7ed1_a0b4_28db);
            *word = ((t >> 64) as u64) ^ (t as u64);
        }
        state.set(s);
        words
    })
}

/// A thread's first seed, from the operating system's generator. Odd, so that zero (the "not yet
/// seeded" mark) is never a state.
#[cold]
fn first_seed() -> u64 {
    rand::random::<u64>() | 1
}

/// A new trace's ids from this thread's generator: a valid trace id and a valid span id.
#[inline]
pub(crate) fn random_root_ids() -> (TraceId, SpanId) {
    let [high, low, span] = random_words::<3>();
    if (high | low) != 0 && span != 0 {
        return (TraceId { high, low }, SpanId(span));
    }
    // Drawn zeros (about once in 2^64 roots): draw again, out of the hot path, which stays loop-free
    // (a loop there made the compiler keep the id in memory, and read it back with a stalling load; a
    // shared `Option`-returning check, measured, cost 0.3 ns a span too, so the test is written twice).
    random_root_ids_again()
}

#[cold]
fn random_root_ids_again() -> (TraceId, SpanId) {
    loop {
        let [high, low, span] = random_words::<3>();
        if (high | low) != 0 && span != 0 {
            return (TraceId { high, low }, SpanId(span));
        }
    }
}

impl IdGenerator for RandomIds {
    #[inline]
    fn new_trace_id(&self) -> TraceId {
        loop {
            let [high, low] = random_words();
            let id = TraceId { high, low };
            if id.is_valid() {
                return id;
            }
        }
    }

    #[inline]
    fn new_span_id(&self) -> SpanId {
        loop {
            let bits = random_u64();
            if bits != 0 {
                return SpanId(bits);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_round_trips_and_rejects_what_the_specification_forbids() {
        let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(TraceId::from_bytes(trace.to_bytes()), trace);
        assert!(TraceId::from_hex("00000000000000000000000000000000").is_none());
        assert!(TraceId::from_hex("4BF92F3577B34DA6A3CE929D0E0E4736").is_none());
        assert!(TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e473").is_none());
        let span = SpanId::from_hex("00f067aa0ba902b7").unwrap();
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(SpanId::from_hex("0000000000000000").is_none());
        assert!(SpanId::from_hex("00f067aa0ba902bz").is_none());
    }

    #[test]
    fn word_at_a_time_hex_agrees_with_the_standard_library() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..100_000 {
            state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
            let value = (state >> 32) as u32;
            let ascii = eight_hex_ascii(value);
            assert_eq!(std::str::from_utf8(&ascii).unwrap(), format!("{value:08x}"));
            assert_eq!(parse_lower_hex(&ascii, 8), Some(u128::from(value)));
            let wide = format!("{state:016x}{value:08x}{:08x}", !value);
            assert_eq!(parse_lower_hex(wide.as_bytes(), 32), u128::from_str_radix(&wide, 16).ok());
        }
        for bad in [b'/', b':', b'`', b'g', b'A', b'F', 0x80, 0xff, b' '] {
            for at in 0..8 {
                let mut word = *b"01234567";
                word[at] = bad;
                assert_eq!(parse_lower_hex(&word, 8), None, "{word:?}");
            }
        }
        assert_eq!(parse_lower_hex(b"0g000000", 8), None);
        assert_eq!(parse_lower_hex(b"0A000000", 8), None);
        assert_eq!(parse_lower_hex(b"ff", 2), Some(255));
    }

    #[test]
    fn random_ids_differ_and_are_valid() {
        let ids: std::collections::HashSet<u64> = (0..10_000).map(|_| RandomIds.new_span_id().to_u64()).collect();
        assert_eq!(ids.len(), 10_000);
        assert!(RandomIds.new_trace_id().is_valid());
    }
}

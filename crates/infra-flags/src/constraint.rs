//! Constraints compiled once at load, so evaluating one is a field read and a comparison.

use std::cmp::Ordering;
use std::net::IpAddr;

use regex::Regex;

use crate::context::{Context, ContextField};
use crate::definition::ConstraintDefinition;
use crate::error::DefinitionError;
use crate::text::Needle;

/// A compiled constraint.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    field: ContextField,
    test: Test,
    inverted: bool,
}

#[derive(Debug, Clone)]
enum Test {
    /// Set membership; `negate` makes it NOT_IN (which a missing value satisfies).
    In {
        values: Box<[Needle]>,
        negate: bool,
    },
    Str {
        kind: StrKind,
        values: Box<[Needle]>,
        ignore_case: bool,
    },
    Number {
        ordering: Compare,
        value: f64,
    },
    Date {
        ordering: Compare,
        unix_nanos: i128,
    },
    Semver {
        ordering: Compare,
        version: semver::Version,
    },
    Regex(Regex),
    Cidr(Box<[IpNet]>),
    /// An operator no specification defines, or a value that does not parse: false whatever `inverted`
    /// says, as the reference engine does.
    AlwaysFalse,
}

#[derive(Debug, Clone, Copy)]
enum StrKind {
    Contains,
    StartsWith,
    EndsWith,
}

/// Which orderings of (context value, constraint value) satisfy the operator.
#[derive(Debug, Clone, Copy)]
enum Compare {
    Eq,
    Gt,
    Gte,
    Lt,
    Lte,
}

impl Compare {
    #[inline]
    fn holds(self, ordering: Ordering) -> bool {
        match self {
            Compare::Eq => ordering == Ordering::Equal,
            Compare::Gt => ordering == Ordering::Greater,
            Compare::Gte => ordering != Ordering::Less,
            Compare::Lt => ordering == Ordering::Less,
            Compare::Lte => ordering != Ordering::Greater,
        }
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct IpNet {
    address: IpAddr,
    prefix: u8,
}

impl IpNet {
    /// Parses `10.0.0.0/8`, `2001:db8::/32`, or a bare address (a network of one).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let text = text.trim();
        let (address, prefix) = match text.split_once('/') {
            Some((address, prefix)) => (address, Some(prefix)),
            None => (text, None),
        };
        let address: IpAddr = address.parse().map_err(|_| format!("{address:?} is not an IP address"))?;
        let max = if address.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(prefix) => match prefix.parse::<u8>() {
                Ok(prefix) if prefix <= max => prefix,
                _ => return Err(format!("prefix {prefix:?} is not a number from 0 to {max}")),
            },
        };
        Ok(Self { address, prefix })
    }

    pub(crate) fn contains(&self, candidate: IpAddr) -> bool {
        fn masked(bits: u128, prefix: u8, width: u8) -> u128 {
            if prefix == 0 { 0 } else { bits >> (width - prefix) }
        }
        match (self.address, candidate) {
            (IpAddr::V4(net), IpAddr::V4(ip)) => {
                masked(u32::from(net).into(), self.prefix, 32) == masked(u32::from(ip).into(), self.prefix, 32)
            }
            (IpAddr::V6(net), IpAddr::V6(ip)) => {
                masked(u128::from(net), self.prefix, 128) == masked(u128::from(ip), self.prefix, 128)
            }
            _ => false,
        }
    }
}

/// Parses an RFC 3339 timestamp (a space may stand for the `T`) into nanoseconds since the epoch.
pub(crate) fn parse_timestamp(text: &str) -> Option<i128> {
    use time::format_description::well_known::Rfc3339;
    let parse = |t: &str| time::OffsetDateTime::parse(t, &Rfc3339).ok().map(|dt| dt.unix_timestamp_nanos());
    parse(text).or_else(|| {
        let (date, rest) = text.split_at_checked(10)?;
        rest.strip_prefix(' ').and_then(|time| parse(&format!("{date}T{time}")))
    })
}

impl Constraint {
    /// Compiles `definition`, reporting a problem (and compiling to an always-false test) when it is wrong.
    pub(crate) fn compile(flag: &str, definition: &ConstraintDefinition, problems: &mut Vec<DefinitionError>) -> Self {
        let field = ContextField::parse(&definition.context_name);
        let invalid = |problems: &mut Vec<DefinitionError>, value: &str, reason: String| {
            problems.push(DefinitionError::InvalidConstraintValue {
                flag: flag.to_owned(),
                operator: definition.operator.clone(),
                value: value.to_owned(),
                reason,
            });
            Test::AlwaysFalse
        };
        let values = || definition.values.iter().map(|v| Needle::new(v)).collect::<Box<[Needle]>>();
        let single = definition.value.as_deref().or(definition.values.first().map(String::as_str)).unwrap_or("");
        let ordering = |suffix: &str| match suffix {
            "EQ" => Some(Compare::Eq),
            "GT" => Some(Compare::Gt),
            "GTE" => Some(Compare::Gte),
            "LT" => Some(Compare::Lt),
            "LTE" => Some(Compare::Lte),
            _ => None,
        };

        let operator = definition.operator.as_str();
        let test = match operator {
            "IN" => Test::In { values: values(), negate: false },
            "NOT_IN" => Test::In { values: values(), negate: true },
            "STR_CONTAINS" | "STR_STARTS_WITH" | "STR_ENDS_WITH" => {
                let kind = match operator {
                    "STR_CONTAINS" => StrKind::Contains,
                    "STR_STARTS_WITH" => StrKind::StartsWith,
                    _ => StrKind::EndsWith,
                };
                let ignore_case = definition.case_insensitive;
                let values = if ignore_case {
                    definition.values.iter().map(|v| Needle::new(&v.to_lowercase())).collect()
                } else {
                    values()
                };
                Test::Str { kind, values, ignore_case }
            }
            "NUM_EQ" | "NUM_GT" | "NUM_GTE" | "NUM_LT" | "NUM_LTE" => match single.trim().parse::<f64>() {
                Ok(value) if value.is_finite() => {
                    Test::Number { ordering: ordering(&operator[4..]).unwrap_or(Compare::Eq), value }
                }
                _ => invalid(problems, single, "not a finite number".into()),
            },
            "DATE_AFTER" | "DATE_BEFORE" => match parse_timestamp(single) {
                Some(unix_nanos) => Test::Date {
                    ordering: if operator == "DATE_AFTER" { Compare::Gt } else { Compare::Lt },
                    unix_nanos,
                },
                None => invalid(problems, single, "not an RFC 3339 timestamp".into()),
            },
            "SEMVER_EQ" | "SEMVER_GT" | "SEMVER_GTE" | "SEMVER_LT" | "SEMVER_LTE" => {
                match semver::Version::parse(single) {
                    Ok(version) => Test::Semver { ordering: ordering(&operator[7..]).unwrap_or(Compare::Eq), version },
                    Err(err) => invalid(problems, single, err.to_string()),
                }
            }
            "REGEX" => match regex::RegexBuilder::new(single).case_insensitive(definition.case_insensitive).build() {
                Ok(regex) => Test::Regex(regex),
                Err(err) => invalid(problems, single, err.to_string()),
            },
            "IN_CIDR" => {
                let mut networks = Vec::with_capacity(definition.values.len());
                for value in &definition.values {
                    match IpNet::parse(value) {
                        Ok(network) => networks.push(network),
                        // One bad entry is reported and skipped; the others still match.
                        Err(reason) => {
                            invalid(problems, value, reason);
                        }
                    }
                }
                Test::Cidr(networks.into())
            }
            _ => {
                problems.push(DefinitionError::UnknownOperator {
                    flag: flag.to_owned(),
                    operator: definition.operator.clone(),
                });
                Test::AlwaysFalse
            }
        };
        Self { field, test, inverted: definition.inverted }
    }

    /// Whether the constraint holds for `context`; `now` gives the clock's time for date constraints when
    /// the context has none.
    #[inline]
    pub(crate) fn holds(&self, context: &Context, now: &dyn Fn() -> i128) -> bool {
        if matches!(self.test, Test::AlwaysFalse) {
            return false;
        }
        let result = if matches!(self.field, ContextField::UserSegments) {
            self.test_segments(context, now)
        } else {
            self.test_value(self.field.get(context), now)
        };
        result != self.inverted
    }

    /// Multi-valued: `NOT_IN` holds when no segment is listed, every other test when any segment passes.
    #[inline(never)]
    fn test_segments(&self, context: &Context, now: &dyn Fn() -> i128) -> bool {
        match &self.test {
            Test::In { values, negate } => context.segments.iter().any(|segment| contains(values, segment)) != *negate,
            _ => context.segments.iter().any(|segment| self.test_value(Some(segment), now)),
        }
    }

    /// The operator's verdict on one value, before inversion: set and string tests and numbers here,
    /// inline; the rest out of line.
    #[inline]
    fn test_value(&self, value: Option<&str>, now: &dyn Fn() -> i128) -> bool {
        match &self.test {
            Test::AlwaysFalse => false,
            Test::In { values, negate } => match value {
                Some(value) => contains(values, value) != *negate,
                None => *negate,
            },
            Test::Str { kind, values, ignore_case: false } => value.is_some_and(|value| str_test(*kind, values, value)),
            Test::Number { ordering, value: expected } => match value.and_then(parse_number) {
                Some(actual) => ordering.holds(actual.partial_cmp(expected).unwrap_or(Ordering::Less)),
                None => false,
            },
            _ => self.test_value_slowly(value, now),
        }
    }

    /// [`Constraint::test_value`] for the tests it does not do inline.
    #[inline(never)]
    fn test_value_slowly(&self, value: Option<&str>, now: &dyn Fn() -> i128) -> bool {
        match &self.test {
            Test::Str { kind, values, ignore_case: true } => match value {
                None => false,
                // ASCII text compares without case in place; other text is lowercased (Unicode rules).
                Some(value) if value.is_ascii() => ascii_caseless_test(*kind, values, value),
                Some(value) => str_test(*kind, values, &value.to_lowercase()),
            },
            Test::Date { ordering, unix_nanos } => {
                let actual = match (&self.field, value) {
                    (_, Some(text)) => parse_timestamp(text),
                    (ContextField::CurrentTime, None) => Some(now()),
                    (_, None) => None,
                };
                actual.is_some_and(|actual| ordering.holds(actual.cmp(unix_nanos)))
            }
            Test::Semver { ordering, version } => match value.and_then(|v| semver::Version::parse(v).ok()) {
                Some(actual) => ordering.holds(actual.cmp(version)),
                None => false,
            },
            Test::Regex(regex) => value.is_some_and(|v| regex.is_match(v)),
            Test::Cidr(networks) => value
                .and_then(|v| v.trim().parse::<IpAddr>().ok())
                .is_some_and(|ip| networks.iter().any(|network| network.contains(ip))),
            // The tests done inline.
            Test::AlwaysFalse | Test::In { .. } | Test::Str { ignore_case: false, .. } | Test::Number { .. } => {
                self.test_value(value, now)
            }
        }
    }
}

/// Parses a context value as a number: short integers without the general float parser, which costs
/// several times more; everything else as `f64` text.
#[inline]
fn parse_number(text: &str) -> Option<f64> {
    let bytes = text.as_bytes();
    if !bytes.is_empty() && bytes.len() <= 15 && bytes.iter().all(u8::is_ascii_digit) {
        // At most 15 digits: exact in an f64 (and in an i64, whose conversion is one instruction).
        let value = bytes.iter().fold(0i64, |n, digit| n * 10 + i64::from(digit - b'0'));
        return Some(value as f64);
    }
    parse_float(text)
}

/// The general number syntax, out of line: the float parser is large, and inlined it would weigh on
/// every constraint's stack frame.
#[inline(never)]
fn parse_float(text: &str) -> Option<f64> {
    text.trim().parse::<f64>().ok()
}

/// `str_test` for an ASCII `value` against lowercased `values`, without allocating. A value containing a
/// non-ASCII needle cannot match ASCII text, so such needles simply fail.
fn ascii_caseless_test(kind: StrKind, values: &[Needle], value: &str) -> bool {
    let haystack = value.as_bytes();
    values.iter().any(|needle| {
        let needle = needle.as_str().as_bytes();
        let at = |start: usize| {
            haystack.get(start..start + needle.len()).is_some_and(|part| part.eq_ignore_ascii_case(needle))
        };
        match kind {
            StrKind::StartsWith => at(0),
            StrKind::EndsWith => haystack.len() >= needle.len() && at(haystack.len() - needle.len()),
            StrKind::Contains => needle.is_empty() || (0..=haystack.len().saturating_sub(needle.len())).any(at),
        }
    })
}

#[inline]
fn str_test(kind: StrKind, values: &[Needle], value: &str) -> bool {
    values.iter().any(|v| match kind {
        StrKind::Contains => contains_text(value, v.as_str()),
        StrKind::StartsWith => v.starts(value.as_bytes()),
        StrKind::EndsWith => v.ends(value.as_bytes()),
    })
}

/// Substring search, out of line: the searcher is large, and inlined it would weigh on every
/// constraint's stack frame.
#[inline(never)]
fn contains_text(haystack: &str, needle: &str) -> bool {
    haystack.contains(needle)
}

/// Whether `values` lists `value`.
#[inline]
fn contains(values: &[Needle], value: &str) -> bool {
    values.iter().any(|v| v.equals(value.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn constraint(operator: &str, field: &str, values: &[&str], value: Option<&str>) -> (Constraint, usize) {
        let definition = ConstraintDefinition {
            context_name: field.into(),
            operator: operator.into(),
            values: values.iter().map(|v| v.to_string()).collect(),
            value: value.map(Into::into),
            ..Default::default()
        };
        let mut problems = Vec::new();
        (Constraint::compile("f", &definition, &mut problems), problems.len())
    }

    fn never() -> i128 {
        0
    }

    #[test]
    fn numbers_parse_with_and_without_the_fast_path() {
        assert_eq!(parse_number("3"), Some(3.0));
        assert_eq!(parse_number("123456789012345"), Some(123_456_789_012_345.0));
        assert_eq!(parse_number("1234567890123456789"), Some(1_234_567_890_123_456_789.0));
        assert_eq!(parse_number(" 2.5 "), Some(2.5));
        assert_eq!(parse_number("-4"), Some(-4.0));
        assert_eq!(parse_number(""), None);
        assert_eq!(parse_number("x1"), None);
    }

    #[test]
    fn caseless_matching_agrees_with_lowercasing() {
        let kinds = [StrKind::Contains, StrKind::StartsWith, StrKind::EndsWith];
        let needles: Vec<Needle> = ["rates", "", "é", "emea-", "-2", "x"].iter().map(|n| Needle::new(n)).collect();
        for value in ["EMEA-Rates-2", "", "rates", "RATE", "x"] {
            for kind in kinds {
                for needle in &needles {
                    let one = std::slice::from_ref(needle);
                    assert_eq!(
                        ascii_caseless_test(kind, one, value),
                        str_test(kind, one, &value.to_lowercase()),
                        "{kind:?} {needle:?} in {value:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn cidr_matching() {
        let net = IpNet::parse("10.1.0.0/16").unwrap();
        assert!(net.contains("10.1.255.3".parse().unwrap()));
        assert!(!net.contains("10.2.0.1".parse().unwrap()));
        assert!(IpNet::parse("0.0.0.0/0").unwrap().contains("8.8.8.8".parse().unwrap()));
        assert!(IpNet::parse("2001:db8::/32").unwrap().contains("2001:db8::1".parse().unwrap()));
        assert!(!IpNet::parse("2001:db8::/32").unwrap().contains("10.0.0.1".parse().unwrap()));
        assert!(IpNet::parse("10.0.0.0/33").is_err());
        assert!(IpNet::parse("nonsense").is_err());
    }

    #[test]
    fn timestamps_parse_as_rfc3339() {
        assert_eq!(parse_timestamp("1970-01-01T00:00:01Z"), Some(1_000_000_000));
        assert_eq!(parse_timestamp("1970-01-01T01:00:01+01:00"), Some(1_000_000_000));
        assert_eq!(parse_timestamp("1970-01-01 00:00:01.5Z"), Some(1_500_000_000));
        assert_eq!(parse_timestamp("yesterday"), None);
        assert_eq!(parse_timestamp(""), None);
    }

    #[test]
    fn bad_values_are_reported_and_false() {
        for (operator, value) in [("NUM_EQ", "x"), ("DATE_AFTER", "soon"), ("SEMVER_GT", "v1.0.0"), ("REGEX", "(")] {
            let (constraint, problems) = constraint(operator, "userId", &[], Some(value));
            assert_eq!(problems, 1, "{operator}");
            assert!(!constraint.holds(&Context::new().user_id("1"), &never));
        }
        let (unknown, problems) = constraint("NOT_A_VALID_OPERATOR", "userId", &["1"], None);
        assert_eq!(problems, 1);
        assert!(!unknown.holds(&Context::new().user_id("1"), &never));
    }

    #[test]
    fn missing_values() {
        let empty = Context::new();
        assert!(constraint("NOT_IN", "userId", &["1"], None).0.holds(&empty, &never));
        assert!(!constraint("IN", "userId", &["1"], None).0.holds(&empty, &never));
        assert!(!constraint("STR_CONTAINS", "userId", &["1"], None).0.holds(&empty, &never));
        // A date constraint on currentTime uses the clock when the context has no time.
        let (after, _) = constraint("DATE_AFTER", "currentTime", &[], Some("2000-01-01T00:00:00Z"));
        assert!(after.holds(&empty, &|| parse_timestamp("2026-01-01T00:00:00Z").unwrap()));
        assert!(!after.holds(&empty, &|| parse_timestamp("1999-01-01T00:00:00Z").unwrap()));
    }
}

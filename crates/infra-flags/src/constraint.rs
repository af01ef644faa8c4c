//! Constraints compiled once at load, so evaluating one is a field read and a comparison.

use std::cmp::Ordering;
use std::net::IpAddr;

use regex::Regex;

use crate::context::{Context, ContextField};
use crate::definition::ConstraintDefinition;
use crate::error::DefinitionError;
use crate::snapshot::Environment;
use crate::text::{Needle, edge_words};

/// A compiled constraint.
#[derive(Debug, Clone)]
pub(crate) struct Constraint {
    /// The verdict, specialized at load for the common pairs of field and test: a check reads its one
    /// field and runs its one test, with no dispatch on either. A loop over constraints that matched on
    /// the field and the test instead had the compiler read every field of the context up front.
    check: Check,
    field: ContextField,
    test: Test,
    inverted: bool,
}

/// A constraint's verdict on a context, inversion included.
type Check = fn(&Constraint, &Context, &dyn Environment) -> bool;

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
        /// `value` as an integer, when it is one that an `f64` holds exactly: compared with integer
        /// context values without converting them.
        integer: Option<i64>,
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
                    // Below 2^53 an integral f64 and its i64 compare with other such integers alike.
                    let integer =
                        (value.fract() == 0.0 && value.abs() < 9_007_199_254_740_992.0).then_some(value as i64);
                    Test::Number { ordering: ordering(&operator[4..]).unwrap_or(Compare::Eq), value, integer }
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
        let check = specialize(&field, &test);
        Self { check, field, test, inverted: definition.inverted }
    }

    /// Whether the constraint holds for `context`; `env` gives the clock's time for date constraints when
    /// the context has none.
    #[inline(always)]
    pub(crate) fn holds(&self, context: &Context, env: &dyn Environment) -> bool {
        (self.check)(self, context, env)
    }

    /// The verdict for any field and test: what every specialized [`Check`] computes.
    fn holds_generally(&self, context: &Context, env: &dyn Environment) -> bool {
        if matches!(self.test, Test::AlwaysFalse) {
            return false;
        }
        let result = if matches!(self.field, ContextField::UserSegments) {
            self.test_segments(context, env)
        } else {
            self.test_value(self.field.get(context), env)
        };
        result != self.inverted
    }

    /// Multi-valued: `NOT_IN` holds when no segment is listed, every other test when any segment passes.
    #[inline(never)]
    fn test_segments(&self, context: &Context, env: &dyn Environment) -> bool {
        match &self.test {
            Test::In { values, negate } => context.segments.iter().any(|segment| contains(values, segment)) != *negate,
            _ => context.segments.iter().any(|segment| self.test_value(Some(segment), env)),
        }
    }

    /// The operator's verdict on one value, before inversion: set and string tests and numbers here,
    /// inline; the rest out of line.
    #[inline]
    fn test_value(&self, value: Option<&str>, env: &dyn Environment) -> bool {
        match &self.test {
            Test::AlwaysFalse => false,
            Test::In { values, negate } => match value {
                Some(value) => contains(values, value) != *negate,
                None => *negate,
            },
            Test::Str { kind, values, ignore_case: false } => value.is_some_and(|value| str_test(*kind, values, value)),
            Test::Number { ordering, value: expected, .. } => match value.and_then(parse_number) {
                Some(actual) => ordering.holds(actual.partial_cmp(expected).unwrap_or(Ordering::Less)),
                None => false,
            },
            _ => self.test_value_slowly(value, env),
        }
    }

    /// [`Constraint::test_value`] for the tests it does not do inline.
    #[inline(never)]
    fn test_value_slowly(&self, value: Option<&str>, env: &dyn Environment) -> bool {
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
                    (ContextField::CurrentTime, None) => Some(env.now_unix_nanos()),
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
                self.test_value(value, env)
            }
        }
    }
}

/// Reads one context field; a [`Check`] is generic over it, so that reading the field is a load or two.
trait FieldRead {
    fn read<'c>(field: &ContextField, context: &'c Context) -> Option<&'c str>;
}

macro_rules! field_reads {
    ($($reader:ident => $field:ident),* $(,)?) => {$(
        struct $reader;
        impl FieldRead for $reader {
            #[inline(always)]
            fn read<'c>(_: &ContextField, context: &'c Context) -> Option<&'c str> {
                context.$field.as_deref()
            }
        }
    )*};
}

field_reads!(UserIdRead => user_id, SessionIdRead => session_id, RemoteAddressRead => remote_address,
    EnvironmentRead => environment, AppNameRead => app_name, CurrentTimeRead => current_time);

/// A custom property.
struct PropertyRead;

impl FieldRead for PropertyRead {
    #[inline(always)]
    fn read<'c>(field: &ContextField, context: &'c Context) -> Option<&'c str> {
        match field {
            ContextField::Property(name) => context.properties.find(name),
            _ => None,
        }
    }
}

/// The [`Check`] for `test` on `field`.
fn specialize(field: &ContextField, test: &Test) -> Check {
    fn on<F: FieldRead>(test: &Test) -> Check {
        // The set and prefix checks compare words only: for needles of at most 16 bytes (nearly all).
        let short = |values: &[Needle]| values.iter().all(Needle::is_short);
        match test {
            Test::In { negate: false, values } if short(values) => check_in::<F>,
            Test::In { negate: true, values } if short(values) => check_not_in::<F>,
            Test::Str { kind: StrKind::StartsWith, ignore_case: false, values } if short(values) => check_starts::<F>,
            Test::Str { kind: StrKind::EndsWith, ignore_case: false, values } if short(values) => check_ends::<F>,
            Test::Str { kind: StrKind::Contains, ignore_case: false, .. } => check_contains::<F>,
            Test::Number { ordering: Compare::Eq, .. } => check_number::<F, Equal>,
            Test::Number { ordering: Compare::Gt, .. } => check_number::<F, Greater>,
            Test::Number { ordering: Compare::Gte, .. } => check_number::<F, NotLess>,
            Test::Number { ordering: Compare::Lt, .. } => check_number::<F, Less>,
            Test::Number { ordering: Compare::Lte, .. } => check_number::<F, NotGreater>,
            _ => Constraint::holds_generally,
        }
    }
    match field {
        ContextField::UserId => on::<UserIdRead>(test),
        ContextField::SessionId => on::<SessionIdRead>(test),
        ContextField::RemoteAddress => on::<RemoteAddressRead>(test),
        ContextField::Environment => on::<EnvironmentRead>(test),
        ContextField::AppName => on::<AppNameRead>(test),
        ContextField::CurrentTime => on::<CurrentTimeRead>(test),
        ContextField::Property(_) => on::<PropertyRead>(test),
        ContextField::UserSegments => Constraint::holds_generally,
    }
}

// The specialized checks. Each is chosen only for its own test (`specialize`); the fallback to the
// general verdict keeps them total without a panic path.

fn check_in<F: FieldRead>(constraint: &Constraint, context: &Context, env: &dyn Environment) -> bool {
    let Test::In { values, .. } = &constraint.test else { return constraint.holds_generally(context, env) };
    F::read(&constraint.field, context).is_some_and(|value| lists_short(values, value)) != constraint.inverted
}

fn check_not_in<F: FieldRead>(constraint: &Constraint, context: &Context, env: &dyn Environment) -> bool {
    let Test::In { values, .. } = &constraint.test else { return constraint.holds_generally(context, env) };
    F::read(&constraint.field, context).is_none_or(|value| !lists_short(values, value)) != constraint.inverted
}

fn check_starts<F: FieldRead>(constraint: &Constraint, context: &Context, env: &dyn Environment) -> bool {
    let Test::Str { values, .. } = &constraint.test else { return constraint.holds_generally(context, env) };
    F::read(&constraint.field, context)
        .is_some_and(|value| values.iter().any(|needle| needle.short_prefix_of(value.as_bytes())))
        != constraint.inverted
}

fn check_ends<F: FieldRead>(constraint: &Constraint, context: &Context, env: &dyn Environment) -> bool {
    let Test::Str { values, .. } = &constraint.test else { return constraint.holds_generally(context, env) };
    F::read(&constraint.field, context)
        .is_some_and(|value| values.iter().any(|needle| needle.short_suffix_of(value.as_bytes())))
        != constraint.inverted
}

/// Whether `values`, all short needles, list `value`: the value's words are read once.
#[inline(always)]
fn lists_short(values: &[Needle], value: &str) -> bool {
    let value = value.as_bytes();
    if value.len() > 16 {
        return false;
    }
    let words = edge_words(value);
    values.iter().any(|needle| needle.is_short_text(value.len(), words))
}

fn check_contains<F: FieldRead>(constraint: &Constraint, context: &Context, env: &dyn Environment) -> bool {
    let Test::Str { values, .. } = &constraint.test else { return constraint.holds_generally(context, env) };
    F::read(&constraint.field, context)
        .is_some_and(|value| values.iter().any(|needle| contains_text(value, needle.as_str())))
        != constraint.inverted
}

fn check_number<F: FieldRead, C: Comparison>(
    constraint: &Constraint,
    context: &Context,
    env: &dyn Environment,
) -> bool {
    let Test::Number { value: expected, integer, .. } = &constraint.test else {
        return constraint.holds_generally(context, env);
    };
    let holds = match F::read(&constraint.field, context) {
        None => false,
        Some(text) => match (parse_integer(text), integer) {
            (Some(actual), Some(expected)) => C::holds(actual.cmp(expected)),
            (Some(actual), None) => C::holds((actual as f64).partial_cmp(expected).unwrap_or(Ordering::Less)),
            (None, _) => {
                parse_float(text).is_some_and(|actual| C::holds(actual.partial_cmp(expected).unwrap_or(Ordering::Less)))
            }
        },
    };
    holds != constraint.inverted
}

/// A numeric operator as a type, so that each [`check_number`] tests its ordering with one instruction.
trait Comparison {
    fn holds(ordering: Ordering) -> bool;
}

macro_rules! comparisons {
    ($($name:ident: $ordering:ident => $holds:expr),* $(,)?) => {$(
        struct $name;
        impl Comparison for $name {
            #[inline(always)]
            fn holds($ordering: Ordering) -> bool {
                $holds
            }
        }
    )*};
}

comparisons!(
    Equal: ordering => ordering == Ordering::Equal,
    Greater: ordering => ordering == Ordering::Greater,
    NotLess: ordering => ordering != Ordering::Less,
    Less: ordering => ordering == Ordering::Less,
    NotGreater: ordering => ordering != Ordering::Greater,
);

/// Parses a context value as a number: short integers without the general float parser, which costs
/// several times more; everything else as `f64` text.
#[inline]
fn parse_number(text: &str) -> Option<f64> {
    match parse_integer(text) {
        Some(value) => Some(value as f64),
        None => parse_float(text),
    }
}

/// Parses 1 to 15 ASCII digits: exact in an i64 and in an f64 (whose conversion is one instruction).
/// `None` for anything else, which [`parse_float`] reads.
#[inline(always)]
fn parse_integer(text: &str) -> Option<i64> {
    let bytes = text.as_bytes();
    if bytes.is_empty() || bytes.len() > 15 {
        return None;
    }
    // One pass that leaves at the first other byte: the compiler does not vectorize it, which for the
    // few digits of a typical value would cost more than it saves.
    let mut value = 0i64;
    for &byte in bytes {
        let digit = byte.wrapping_sub(b'0');
        if digit > 9 {
            return None;
        }
        value = value * 10 + i64::from(digit);
    }
    Some(value)
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
#[inline(always)]
fn contains(values: &[Needle], value: &str) -> bool {
    for needle in values {
        if needle.equals(value.as_bytes()) {
            return true;
        }
    }
    false
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

    /// An environment whose clock reads `.0`.
    struct At(i128);

    impl Environment for At {
        fn now_unix_nanos(&self) -> i128 {
            self.0
        }
        fn hostname(&self) -> &str {
            "test-host"
        }
    }

    const NEVER: At = At(0);

    #[test]
    fn specialized_checks_agree_with_the_general_verdict() {
        let long = "a-value-longer-than-sixteen-bytes";
        let fields = ["userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime", "tier", "desk"];
        let operators = [
            "IN",
            "NOT_IN",
            "STR_STARTS_WITH",
            "STR_ENDS_WITH",
            "STR_CONTAINS",
            "NUM_EQ",
            "NUM_GT",
            "NUM_GTE",
            "NUM_LT",
            "NUM_LTE",
            "SEMVER_EQ",
            "NOT_A_VALID_OPERATOR",
        ];
        let value_sets: [&[&str]; 10] =
            [&["prod", "3"], &["production"], &[long, "x"], &[""], &[], &["3"], &["2.5"], &["-1"], &["12"], &["1e20"]];
        let values =
            ["prod", "production", "preprod", "3", "12", "x", "", long, "a-value", "2.5", "-1", "007", "1e1", "1e20"];
        let mut contexts = vec![Context::new()];
        for value in values {
            let mut context = Context::new();
            for field in fields {
                context.set_field(field, value);
            }
            contexts.push(context);
        }
        // Many properties: the lookup takes its other path.
        let mut crowded = contexts[3].clone();
        for i in 0..12 {
            crowded.properties.insert(format!("p{i}"), "1");
        }
        contexts.push(crowded);
        let mut checked = 0;
        for field in fields {
            for operator in operators {
                for set in value_sets {
                    for inverted in [false, true] {
                        let definition = ConstraintDefinition {
                            context_name: field.into(),
                            operator: operator.into(),
                            values: set.iter().map(|v| v.to_string()).collect(),
                            value: set.first().map(|v| v.to_string()),
                            inverted,
                            ..Default::default()
                        };
                        let constraint = Constraint::compile("f", &definition, &mut Vec::new());
                        for context in &contexts {
                            assert_eq!(
                                constraint.holds(context, &NEVER),
                                constraint.holds_generally(context, &NEVER),
                                "{field} {operator} {set:?} inverted={inverted} on {context:?}"
                            );
                            checked += 1;
                        }
                    }
                }
            }
        }
        assert!(checked > 10_000);
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
            assert!(!constraint.holds(&Context::new().user_id("1"), &NEVER));
        }
        let (unknown, problems) = constraint("NOT_A_VALID_OPERATOR", "userId", &["1"], None);
        assert_eq!(problems, 1);
        assert!(!unknown.holds(&Context::new().user_id("1"), &NEVER));
    }

    #[test]
    fn missing_values() {
        let empty = Context::new();
        assert!(constraint("NOT_IN", "userId", &["1"], None).0.holds(&empty, &NEVER));
        assert!(!constraint("IN", "userId", &["1"], None).0.holds(&empty, &NEVER));
        assert!(!constraint("STR_CONTAINS", "userId", &["1"], None).0.holds(&empty, &NEVER));
        // A date constraint on currentTime uses the clock when the context has no time.
        let (after, _) = constraint("DATE_AFTER", "currentTime", &[], Some("2000-01-01T00:00:00Z"));
        assert!(after.holds(&empty, &At(parse_timestamp("2026-01-01T00:00:00Z").unwrap())));
        assert!(!after.holds(&empty, &At(parse_timestamp("1999-01-01T00:00:00Z").unwrap())));
    }
}

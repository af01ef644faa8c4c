//! Label matchers: `=`, `!=`, `=~`, `!~`, as Alertmanager parses and evaluates them.

use std::fmt;

use regex::Regex;

use crate::error::ConfigError;
use crate::labels::Labels;

/// How a matcher compares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MatchType {
    /// `=`: the value equals.
    Equal,
    /// `!=`: the value differs.
    NotEqual,
    /// `=~`: the whole value matches the regular expression.
    Regex,
    /// `!~`: the whole value does not match.
    NotRegex,
}

impl MatchType {
    fn operator(self) -> &'static str {
        match self {
            MatchType::Equal => "=",
            MatchType::NotEqual => "!=",
            MatchType::Regex => "=~",
            MatchType::NotRegex => "!~",
        }
    }
}

/// One condition on one label. A missing label reads as the empty string, so `team=""` matches alerts
/// without a team and `team!=""` requires one, as in Alertmanager.
#[derive(Debug, Clone)]
pub struct Matcher {
    name: String,
    kind: MatchType,
    value: String,
    regex: Option<Regex>,
}

impl PartialEq for Matcher {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name && self.kind == other.kind && self.value == other.value
    }
}

impl Eq for Matcher {}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

impl Matcher {
    /// A matcher of `kind` on label `name`.
    ///
    /// # Errors
    ///
    /// [`ConfigError::Matcher`] for an invalid label name or regular expression.
    pub fn new(name: &str, kind: MatchType, value: &str) -> Result<Self, ConfigError> {
        if !valid_name(name) {
            return Err(ConfigError::Matcher(format!("{name:?} is not a label name ([a-zA-Z_][a-zA-Z0-9_]*)")));
        }
        let regex = match kind {
            MatchType::Regex | MatchType::NotRegex => Some(
                // Anchored, as Alertmanager anchors: the whole value must match.
                Regex::new(&format!("^(?:{value})$"))
                    .map_err(|err| ConfigError::Matcher(format!("{name}{}{value:?}: {err}", kind.operator())))?,
            ),
            MatchType::Equal | MatchType::NotEqual => None,
        };
        Ok(Matcher { name: name.to_owned(), kind, value: value.to_owned(), regex })
    }

    /// `name = value`.
    ///
    /// # Errors
    ///
    /// An invalid label name.
    pub fn equal(name: &str, value: &str) -> Result<Self, ConfigError> {
        Self::new(name, MatchType::Equal, value)
    }

    /// `name =~ regex`.
    ///
    /// # Errors
    ///
    /// An invalid label name or regular expression.
    pub fn regex(name: &str, regex: &str) -> Result<Self, ConfigError> {
        Self::new(name, MatchType::Regex, regex)
    }

    /// Parses Alertmanager's text form: `name="value"`, `name!=value`, `name=~"a|b"`, `name!~"x.*"`
    /// (quotes optional; inside quotes `\"` and `\\` are escapes).
    ///
    /// # Errors
    ///
    /// [`ConfigError::Matcher`] naming what is wrong.
    pub fn parse(text: &str) -> Result<Self, ConfigError> {
        let text = text.trim();
        let operator_at = text
            .find(['=', '!'])
            .ok_or_else(|| ConfigError::Matcher(format!("{text:?} has no operator (=, !=, =~, !~)")))?;
        let name = text[..operator_at].trim();
        let rest = &text[operator_at..];
        let (kind, value) = if let Some(value) = rest.strip_prefix("=~") {
            (MatchType::Regex, value)
        } else if let Some(value) = rest.strip_prefix("!~") {
            (MatchType::NotRegex, value)
        } else if let Some(value) = rest.strip_prefix("!=") {
            (MatchType::NotEqual, value)
        } else if let Some(value) = rest.strip_prefix('=') {
            (MatchType::Equal, value)
        } else {
            return Err(ConfigError::Matcher(format!("{text:?} has no operator (=, !=, =~, !~)")));
        };
        let value = value.trim();
        let value = match value.strip_prefix('"') {
            Some(quoted) => {
                unquote(quoted).ok_or_else(|| ConfigError::Matcher(format!("{text:?}: unterminated quote")))?
            }
            None => value.to_owned(),
        };
        Self::new(name, kind, &value)
    }

    /// The label this matcher reads.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// How it compares.
    pub fn kind(&self) -> MatchType {
        self.kind
    }

    /// The value or pattern it compares with.
    pub fn value(&self) -> &str {
        &self.value
    }

    /// Whether `labels` satisfy it.
    pub fn matches(&self, labels: &Labels) -> bool {
        let actual = labels.get(&self.name);
        match (self.kind, &self.regex) {
            (MatchType::Equal, _) => actual == self.value,
            (MatchType::NotEqual, _) => actual != self.value,
            (MatchType::Regex, Some(regex)) => regex.is_match(actual),
            (MatchType::NotRegex, Some(regex)) => !regex.is_match(actual),
            (MatchType::Regex | MatchType::NotRegex, None) => false,
        }
    }
}

/// The text after an opening quote, up to the closing one, with escapes resolved.
fn unquote(quoted: &str) -> Option<String> {
    let mut value = String::new();
    let mut chars = quoted.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' => return chars.as_str().trim().is_empty().then_some(value),
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    None
}

impl fmt::Display for Matcher {
    /// `name="value"` with `\` and `"` escaped: the form Alertmanager's configuration reads back.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let escaped = self.value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
        write!(f, "{}{}\"{escaped}\"", self.name, self.kind.operator())
    }
}

/// Whether every matcher is satisfied (an empty list matches everything).
pub fn all_match(matchers: &[Matcher], labels: &Labels) -> bool {
    matchers.iter().all(|matcher| matcher.matches(labels))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_operator_with_and_without_quotes() {
        let labels = Labels::new().with("severity", "critical").with("team", "db");
        for (text, expected) in [
            ("severity=critical", true),
            ("severity=\"critical\"", true),
            ("severity!=critical", false),
            ("team=~\"db|infra\"", true),
            ("team=~d", false),
            ("team!~\"in.*\"", true),
            ("service=\"\"", true),
            ("service!=\"\"", false),
            ("service=~\".*\"", true),
        ] {
            assert_eq!(Matcher::parse(text).unwrap().matches(&labels), expected, "{text}");
        }
        assert_eq!(Matcher::parse("a=\"x\\\"y\"").unwrap().value(), "x\"y");
        let round = Matcher::parse("a=~\"b\\\\d+\"").unwrap();
        assert_eq!(Matcher::parse(&round.to_string()).unwrap(), round);
    }

    #[test]
    fn bad_matchers_are_refused() {
        for bad in ["severity", "1abc=x", "a=~\"(\"", "a=\"open", "=x"] {
            assert!(matches!(Matcher::parse(bad), Err(ConfigError::Matcher(_))), "{bad}");
        }
    }
}

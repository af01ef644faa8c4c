//! Which entries are kept: a default level and per-component levels in the familiar
//! `info,orders=debug,pool=warn` form.

use std::str::FromStr;

use crate::level::Level;

/// Whether `component` is `prefix` or one of its sub-components (`orders` covers `orders::fills`,
/// not `ordersx`).
pub(crate) fn covers(prefix: &str, component: &str) -> bool {
    component.strip_prefix(prefix).is_some_and(|rest| rest.is_empty() || rest.starts_with("::"))
}

/// A directive string that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("log directive {directive:?} in {text:?} is invalid: {reason} (write e.g. \"info,orders=debug,pool=warn\")")]
pub struct DirectiveError {
    /// The whole directive string.
    pub text: String,
    /// The piece at fault.
    pub directive: String,
    /// What is wrong.
    pub reason: String,
}

/// Levels by component: the default, and overrides for components and their sub-components
/// (`orders` also covers `orders::fills`); the longest matching component wins.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directives {
    default: Level,
    /// Longest component first, so the first match is the most specific.
    rules: Vec<(String, Level)>,
}

impl Directives {
    /// Everything at `level` or above.
    pub fn new(level: Level) -> Self {
        Directives { default: level, rules: Vec::new() }
    }

    /// The least severe level any component keeps: below it, nothing needs looking at.
    pub fn floor(&self) -> Level {
        self.rules.iter().map(|(_, level)| *level).chain([self.default]).min().unwrap_or(self.default)
    }

    /// Whether one level applies to every component.
    pub fn is_uniform(&self) -> bool {
        self.rules.is_empty()
    }

    /// The level a component keeps.
    pub fn level_for(&self, component: &str) -> Level {
        for (prefix, level) in &self.rules {
            if covers(prefix, component) {
                return *level;
            }
        }
        self.default
    }

    /// Whether an entry at `level` from `component` is kept.
    #[inline]
    pub fn enabled(&self, level: Level, component: &str) -> bool {
        if self.rules.is_empty() { level >= self.default } else { level >= self.level_for(component) }
    }
}

impl FromStr for Directives {
    type Err = DirectiveError;

    fn from_str(text: &str) -> Result<Directives, DirectiveError> {
        let error = |directive: &str, reason: String| DirectiveError {
            text: text.to_owned(),
            directive: directive.to_owned(),
            reason,
        };
        let mut directives = Directives::new(Level::Info);
        for piece in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match piece.split_once('=') {
                None => {
                    directives.default =
                        piece.parse().map_err(|e: crate::level::ParseLevelError| error(piece, e.to_string()))?;
                }
                Some((component, level)) => {
                    let component = component.trim();
                    if component.is_empty()
                        || !component.chars().all(|c| c.is_alphanumeric() || matches!(c, '_' | '-' | ':' | '.'))
                    {
                        return Err(error(
                            piece,
                            format!(
                                "component {component:?} is empty or has characters other than letters, digits, _ - : ."
                            ),
                        ));
                    }
                    let level =
                        level.parse().map_err(|e: crate::level::ParseLevelError| error(piece, e.to_string()))?;
                    directives.rules.retain(|(existing, _)| existing != component);
                    directives.rules.push((component.to_owned(), level));
                }
            }
        }
        directives.rules.sort_by_key(|(component, _)| std::cmp::Reverse(component.len()));
        Ok(directives)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_most_specific_component_wins() {
        let d: Directives = "warn, orders=debug, orders::fills=error".parse().unwrap();
        assert!(d.enabled(Level::Debug, "orders"));
        assert!(d.enabled(Level::Debug, "orders::book"));
        assert!(!d.enabled(Level::Warning, "orders::fills"));
        assert!(!d.enabled(Level::Info, "ordersx"), "a prefix only covers sub-components");
        assert!(!d.enabled(Level::Info, "pool"));
        assert_eq!(d.floor(), Level::Debug);
    }

    #[test]
    fn bad_directives_say_what_is_wrong() {
        let e = "info,orders=loud".parse::<Directives>().unwrap_err();
        assert!(e.to_string().contains("orders=loud"), "{e}");
        assert!("=debug".parse::<Directives>().is_err());
        assert!("verbose".parse::<Directives>().is_err());
        assert!("orders pool=debug".parse::<Directives>().is_err());
        assert_eq!("".parse::<Directives>().unwrap(), Directives::new(Level::Info));
    }
}

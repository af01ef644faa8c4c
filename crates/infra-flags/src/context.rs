//! The evaluation context: who is asking, from where, when.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::text::Needle;

/// What a flag is evaluated for: Unleash's context fields, custom properties, and the user's segments.
///
/// Build it once per request; evaluating against it allocates nothing.
///
/// ```
/// use infra_flags::Context;
///
/// let context = Context::new().user_id("user-42").app_name("checkout").property("tier", "gold");
/// assert_eq!(context.property_value("tier"), Some("gold"));
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Context {
    /// The user's id: the default stickiness for rollouts and variants.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// The session's id: the fallback stickiness when there is no user.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The client's IP address, for `remoteAddress` strategies and `IN_CIDR` constraints.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub remote_address: Option<String>,
    /// The environment (production, staging, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub environment: Option<String>,
    /// The application's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_name: Option<String>,
    /// The time to evaluate date constraints at (RFC 3339); the flag set's clock when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current_time: Option<String>,
    /// Custom fields. When read from JSON, `null` values count as absent and numbers as text.
    #[serde(default, skip_serializing_if = "Properties::is_empty")]
    pub properties: Properties,
    /// The user's segments, for flags targeted at segments in code ([`crate::Flags::set_user_segments`]).
    /// Not an Unleash field: Unleash segments are constraint lists, evaluated from the fields above.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub segments: Vec<String>,
}

impl Context {
    /// An empty context.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the user id.
    #[must_use]
    pub fn user_id(mut self, user_id: impl Into<String>) -> Self {
        self.user_id = Some(user_id.into());
        self
    }

    /// Sets the session id.
    #[must_use]
    pub fn session_id(mut self, session_id: impl Into<String>) -> Self {
        self.session_id = Some(session_id.into());
        self
    }

    /// Sets the remote address.
    #[must_use]
    pub fn remote_address(mut self, address: impl Into<String>) -> Self {
        self.remote_address = Some(address.into());
        self
    }

    /// Sets the environment.
    #[must_use]
    pub fn environment(mut self, environment: impl Into<String>) -> Self {
        self.environment = Some(environment.into());
        self
    }

    /// Sets the application name.
    #[must_use]
    pub fn app_name(mut self, app_name: impl Into<String>) -> Self {
        self.app_name = Some(app_name.into());
        self
    }

    /// Sets the time to evaluate date constraints at (RFC 3339, for example `2026-11-30T12:00:00Z`).
    #[must_use]
    pub fn current_time(mut self, time: impl Into<String>) -> Self {
        self.current_time = Some(time.into());
        self
    }

    /// Sets a custom property.
    #[must_use]
    pub fn property(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.properties.insert(name.into(), value.into());
        self
    }

    /// Adds the user's segments.
    #[must_use]
    pub fn segments<S: Into<String>>(mut self, segments: impl IntoIterator<Item = S>) -> Self {
        self.segments.extend(segments.into_iter().map(Into::into));
        self
    }

    /// Sets a field by its Unleash name (`userId`, `sessionId`, `remoteAddress`, `environment`, `appName`,
    /// `currentTime`, or [`USER_SEGMENTS_FIELD`] to add a segment); any other name sets a property. For
    /// contexts assembled from name/value pairs: query parameters, OpenFeature fields, test tables.
    pub fn set_field(&mut self, name: &str, value: impl Into<String>) {
        ContextField::parse(name).set(self, value.into());
    }

    /// [`Context::set_field`], as a builder step.
    #[must_use]
    pub fn field(mut self, name: &str, value: impl Into<String>) -> Self {
        self.set_field(name, value);
        self
    }

    /// A custom property's value.
    #[inline]
    pub fn property_value(&self, name: &str) -> Option<&str> {
        self.properties.get(name)
    }
}

/// A context's custom properties: names and values, kept in order of name.
///
/// Contexts carry a handful of properties, so they are one sorted vector: finding one reads a cache
/// line or two and compares lengths before bytes, where a tree map walks down its nodes first.
///
/// ```
/// use infra_flags::Properties;
///
/// let mut properties: Properties = [("tier", "gold"), ("desk", "rates")].into_iter().collect();
/// assert_eq!(properties.insert("tier", "silver"), Some("gold".to_owned()));
/// assert_eq!(properties.get("tier"), Some("silver"));
/// assert_eq!(properties.iter().map(|(name, _)| name).collect::<Vec<_>>(), ["desk", "tier"]);
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq, Hash)]
pub struct Properties {
    /// Sorted by name, names unique.
    entries: Vec<(String, String)>,
}

impl Properties {
    /// No properties.
    pub fn new() -> Self {
        Self::default()
    }

    /// How many properties there are.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The value of the property called `name`.
    #[inline]
    pub fn get(&self, name: &str) -> Option<&str> {
        if self.entries.len() > 8 {
            return self.position(name).ok().map(|at| self.entries[at].1.as_str());
        }
        // A few entries: compared in turn, length first, with no call to `memcmp`.
        self.entries
            .iter()
            .find(|(key, _)| crate::text::same(key.as_bytes(), name.as_bytes()))
            .map(|(_, value)| value.as_str())
    }

    /// [`Properties::get`] for a name known in advance (a constraint's).
    #[inline(always)]
    pub(crate) fn find(&self, name: &Needle) -> Option<&str> {
        if self.entries.len() > 8 || !name.is_short() {
            return self.find_slowly(name);
        }
        for (key, value) in &self.entries {
            if name.is_short_text(key.len(), crate::text::edge_words(key.as_bytes())) {
                return Some(value);
            }
        }
        None
    }

    /// [`Properties::find`] for many properties or a long name, out of line: inline, the call in it
    /// would have every property check save and restore registers.
    #[cold]
    #[inline(never)]
    fn find_slowly(&self, name: &Needle) -> Option<&str> {
        self.get(name.as_str())
    }

    /// Sets the property called `name`, returning the value it replaces.
    pub fn insert(&mut self, name: impl Into<String>, value: impl Into<String>) -> Option<String> {
        let name = name.into();
        match self.position(&name) {
            Ok(at) => Some(std::mem::replace(&mut self.entries[at].1, value.into())),
            Err(at) => {
                self.entries.insert(at, (name, value.into()));
                None
            }
        }
    }

    /// Removes the property called `name`, returning its value.
    pub fn remove(&mut self, name: &str) -> Option<String> {
        self.position(name).ok().map(|at| self.entries.remove(at).1)
    }

    /// The properties in order of name.
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> + '_ {
        self.entries.iter().map(|(name, value)| (name.as_str(), value.as_str()))
    }

    fn position(&self, name: &str) -> Result<usize, usize> {
        self.entries.binary_search_by(|(key, _)| key.as_str().cmp(name))
    }
}

impl<K: Into<String>, V: Into<String>> Extend<(K, V)> for Properties {
    fn extend<I: IntoIterator<Item = (K, V)>>(&mut self, pairs: I) {
        for (name, value) in pairs {
            self.insert(name, value);
        }
    }
}

impl<K: Into<String>, V: Into<String>> FromIterator<(K, V)> for Properties {
    fn from_iter<I: IntoIterator<Item = (K, V)>>(pairs: I) -> Self {
        let mut properties = Self::new();
        properties.extend(pairs);
        properties
    }
}

impl Serialize for Properties {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

/// A JSON object of names to text; `null` values count as absent and numbers and booleans as text,
/// as Unleash's SDKs read context properties.
impl<'de> Deserialize<'de> for Properties {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        // Read in order of name already, so the vector is built sorted.
        let entries = crate::definition::lenient_parameters(deserializer)?.into_iter().collect();
        Ok(Self { entries })
    }
}

/// The constraint field that reads [`Context::segments`]: `IN` holds when any of the user's segments is
/// listed, `NOT_IN` when none is, other operators when any segment satisfies them.
pub const USER_SEGMENTS_FIELD: &str = "userSegments";

/// A context field named by a constraint, a stickiness setting or an override.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ContextField {
    UserId,
    SessionId,
    RemoteAddress,
    Environment,
    AppName,
    CurrentTime,
    /// [`Context::segments`]: several values at once.
    UserSegments,
    /// A custom property; the name kept as a [`Needle`], so finding it compares a word or two.
    Property(Needle),
}

impl ContextField {
    pub(crate) fn parse(name: &str) -> Self {
        match name {
            "userId" => Self::UserId,
            "sessionId" => Self::SessionId,
            "remoteAddress" => Self::RemoteAddress,
            "environment" => Self::Environment,
            "appName" => Self::AppName,
            "currentTime" => Self::CurrentTime,
            USER_SEGMENTS_FIELD => Self::UserSegments,
            other => Self::Property(Needle::new(other)),
        }
    }

    /// Sets the field in `context` (adds a segment, for the segments field).
    pub(crate) fn set(&self, context: &mut Context, value: String) {
        match self {
            Self::UserId => context.user_id = Some(value),
            Self::SessionId => context.session_id = Some(value),
            Self::RemoteAddress => context.remote_address = Some(value),
            Self::Environment => context.environment = Some(value),
            Self::AppName => context.app_name = Some(value),
            Self::CurrentTime => context.current_time = Some(value),
            Self::UserSegments => context.segments.push(value),
            Self::Property(name) => {
                context.properties.insert(name.as_str(), value);
            }
        }
    }

    /// The field's value in `context`, if set.
    #[inline]
    pub(crate) fn get<'a>(&self, context: &'a Context) -> Option<&'a str> {
        match self {
            Self::UserId => context.user_id.as_deref(),
            Self::SessionId => context.session_id.as_deref(),
            Self::RemoteAddress => context.remote_address.as_deref(),
            Self::Environment => context.environment.as_deref(),
            Self::AppName => context.app_name.as_deref(),
            Self::CurrentTime => context.current_time.as_deref(),
            Self::UserSegments => context.segments.first().map(String::as_str),
            Self::Property(name) => context.properties.find(name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_stay_sorted_and_unique() {
        let mut properties = Properties::new();
        assert!(properties.is_empty());
        for (name, value) in [("tier", "3"), ("desk", "rates"), ("zone", "eu"), ("desk", "fx")] {
            properties.insert(name, value);
        }
        assert_eq!(properties.len(), 3);
        assert_eq!(properties.iter().collect::<Vec<_>>(), [("desk", "fx"), ("tier", "3"), ("zone", "eu")]);
        assert_eq!(properties.remove("tier"), Some("3".to_owned()));
        assert_eq!(properties.remove("tier"), None);
        assert_eq!(properties.get("tier"), None);
        // Built in another order, equal.
        let other: Properties = [("zone", "eu"), ("desk", "fx")].into_iter().collect();
        assert_eq!(properties, other);
    }

    #[test]
    fn lookups_agree_for_few_and_many_properties_and_any_name_length() {
        let names: Vec<String> = (0..20).map(|i| format!("{}{i}", "n".repeat(i * 2))).collect();
        for count in [0, 1, 2, 8, 9, 20] {
            let properties: Properties = names[..count].iter().map(|n| (n.clone(), format!("v-{n}"))).collect();
            for name in names.iter().map(String::as_str).chain(["", "missing", "n"]) {
                let expected = names[..count].iter().any(|n| n == name).then(|| format!("v-{name}"));
                assert_eq!(properties.get(name).map(str::to_owned), expected, "{count} {name}");
                assert_eq!(properties.find(&Needle::new(name)), properties.get(name), "{count} {name}");
            }
        }
    }

    #[test]
    fn properties_read_leniently_and_write_as_a_map() {
        let context: Context = serde_json::from_str(
            r#"{"userId": "u", "properties": {"tier": 3, "beta": true, "gone": null, "desk": "fx"}}"#,
        )
        .unwrap();
        assert_eq!(context.properties.iter().collect::<Vec<_>>(), [("beta", "true"), ("desk", "fx"), ("tier", "3")]);
        let json = serde_json::to_string(&context).unwrap();
        assert_eq!(json, r#"{"userId":"u","properties":{"beta":"true","desk":"fx","tier":"3"}}"#);
        assert_eq!(serde_json::from_str::<Context>(&json).unwrap(), context);
        let empty: Context = serde_json::from_str(r#"{"properties": null}"#).unwrap();
        assert!(empty.properties.is_empty());
        assert_eq!(serde_json::to_string(&empty).unwrap(), "{}");
    }
}

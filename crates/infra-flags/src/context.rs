//! The evaluation context: who is asking, from where, when.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

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
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "crate::definition::lenient_parameters"
    )]
    pub properties: BTreeMap<String, String>,
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
    #[inline(never)]
    pub fn property_value(&self, name: &str) -> Option<&str> {
        // Contexts carry a handful of properties, compared here inline: the tree's ordered search calls
        // `memcmp` at every step, and for one property even its iterator costs more than the comparison.
        let matches = |(key, _): &(&String, &String)| crate::text::same(key.as_bytes(), name.as_bytes());
        let found = match self.properties.len() {
            0 => None,
            1 => self.properties.first_key_value().filter(matches),
            2..=8 => self.properties.iter().find(matches),
            _ => return self.properties.get(name).map(String::as_str),
        };
        found.map(|(_, value)| value.as_str())
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
    Property(Box<str>),
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
            other => Self::Property(other.into()),
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
                context.properties.insert(name.to_string(), value);
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
            Self::Property(name) => context.property_value(name),
        }
    }
}

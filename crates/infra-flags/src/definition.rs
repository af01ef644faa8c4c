//! The flag definitions as Unleash serves them from `/client/features` (and its delta API), as plain data.
//!
//! These types are what files hold and servers send; [`crate::Flags`] compiles them into the form it
//! evaluates. They are also how flags are defined in code: build a [`FeatureDefinition`] and hand it over.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

/// A whole flag set: Unleash's `/client/features` response.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ClientFeatures {
    /// The format version (Unleash sends 1 or 2).
    #[serde(default)]
    pub version: u32,
    /// The flags.
    #[serde(default)]
    pub features: Vec<FeatureDefinition>,
    /// Segments: named constraint lists that strategies refer to by id.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub segments: Vec<SegmentDefinition>,
}

/// One flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FeatureDefinition {
    /// The flag's name, any UTF-8.
    pub name: String,
    /// Whether the flag is on in this environment; when off, no strategy is looked at.
    #[serde(default)]
    pub enabled: bool,
    /// A human description.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// The project the flag belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Unleash's flag type (release, experiment, operational, kill-switch, permission).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub feature_type: Option<String>,
    /// Whether evaluations should emit impression events.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "null_as_default")]
    pub impression_data: bool,
    /// Activation strategies: the flag is on for a context when any of them is (none: on for everyone).
    #[serde(default, deserialize_with = "null_as_default")]
    pub strategies: Vec<StrategyDefinition>,
    /// Variants handed out to contexts for which the flag is on.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub variants: Vec<VariantDefinition>,
    /// Parent flags this one depends on.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub dependencies: Vec<DependencyDefinition>,
}

/// An activation strategy with its parameters, constraints, segments and variants.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StrategyDefinition {
    /// `default`, `userWithId`, `flexibleRollout`, ... (unknown names never activate).
    pub name: String,
    /// Strategy parameters. Unleash sends strings; numbers and booleans are accepted and read as text.
    #[serde(default, deserialize_with = "lenient_parameters")]
    pub parameters: BTreeMap<String, String>,
    /// Constraints that must all hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub constraints: Vec<ConstraintDefinition>,
    /// Ids of segments whose constraints must all hold too.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub segments: Vec<i64>,
    /// Variants for contexts this strategy activates, taking precedence over the flag's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub variants: Option<Vec<VariantDefinition>>,
}

/// A condition on one context field.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ConstraintDefinition {
    /// `userId`, `sessionId`, `remoteAddress`, `environment`, `appName`, `currentTime`, or a property name.
    pub context_name: String,
    /// `IN`, `NOT_IN`, `STR_CONTAINS`, `NUM_GT`, `SEMVER_EQ`, `DATE_AFTER`, `REGEX`, `IN_CIDR`, ...
    pub operator: String,
    /// The values of list operators.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub values: Vec<String>,
    /// The value of single-value operators.
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "lenient_optional_string")]
    pub value: Option<String>,
    /// Negates the result.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "null_as_default")]
    pub inverted: bool,
    /// Compares strings without regard to case.
    #[serde(default, skip_serializing_if = "std::ops::Not::not", deserialize_with = "null_as_default")]
    pub case_insensitive: bool,
}

/// A variant with its weight, payload and overrides.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VariantDefinition {
    /// The variant's name.
    pub name: String,
    /// Its share of the total weight.
    #[serde(default)]
    pub weight: u32,
    /// `variable` or `fix`; informational here, as in every SDK.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub weight_type: Option<String>,
    /// Which context field keeps a context on the same variant (`default`: user, then session, then random).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stickiness: Option<String>,
    /// Data handed out with the variant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<Payload>,
    /// Contexts that always get this variant.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub overrides: Vec<OverrideDefinition>,
}

/// A variant's payload.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Payload {
    /// `string`, `json`, `csv` or `number`.
    #[serde(rename = "type")]
    pub payload_type: String,
    /// The payload itself, as text.
    pub value: String,
}

/// Context values that pin a variant.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OverrideDefinition {
    /// The context field.
    pub context_name: String,
    /// Values that select the variant.
    #[serde(default)]
    pub values: Vec<String>,
}

/// A dependency on a parent flag.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DependencyDefinition {
    /// The parent flag's name.
    pub feature: String,
    /// Whether the parent must be on (the default) or off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub enabled: Option<bool>,
    /// When non-empty, the parent must hand out one of these variants.
    #[serde(default, skip_serializing_if = "Vec::is_empty", deserialize_with = "null_as_default")]
    pub variants: Vec<String>,
}

/// A named, reusable list of constraints.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SegmentDefinition {
    /// The id strategies refer to.
    pub id: i64,
    /// A human name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The constraints, all of which must hold.
    #[serde(default, deserialize_with = "null_as_default")]
    pub constraints: Vec<ConstraintDefinition>,
}

/// The state a source delivers: a full set, or delta events to apply to the current one.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum FeatureUpdate {
    /// Delta-API events, applied in order.
    Delta {
        /// The events.
        events: Vec<DeltaEvent>,
    },
    /// A whole flag set.
    Full(ClientFeatures),
}

/// One event of Unleash's delta API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "kebab-case")]
pub enum DeltaEvent {
    /// Replaces the whole state.
    #[serde(rename_all = "camelCase")]
    Hydration {
        /// The event's id.
        event_id: u64,
        /// Every flag.
        #[serde(default)]
        features: Vec<FeatureDefinition>,
        /// Every segment.
        #[serde(default)]
        segments: Vec<SegmentDefinition>,
    },
    /// Adds or replaces one flag.
    #[serde(rename_all = "camelCase")]
    FeatureUpdated {
        /// The event's id.
        event_id: u64,
        /// The flag.
        feature: FeatureDefinition,
    },
    /// Removes one flag.
    #[serde(rename_all = "camelCase")]
    FeatureRemoved {
        /// The event's id.
        event_id: u64,
        /// The flag's name.
        feature_name: String,
    },
    /// Adds or replaces one segment.
    #[serde(rename_all = "camelCase")]
    SegmentUpdated {
        /// The event's id.
        event_id: u64,
        /// The segment.
        segment: SegmentDefinition,
    },
    /// Removes one segment.
    #[serde(rename_all = "camelCase")]
    SegmentRemoved {
        /// The event's id.
        event_id: u64,
        /// The segment's id.
        segment_id: i64,
    },
}

impl ClientFeatures {
    /// Applies delta events in order, as Unleash's delta API defines them.
    pub fn apply_events(&mut self, events: &[DeltaEvent]) {
        for event in events {
            match event {
                DeltaEvent::Hydration { features, segments, .. } => {
                    self.features = features.clone();
                    self.segments = segments.clone();
                }
                DeltaEvent::FeatureUpdated { feature, .. } => {
                    match self.features.iter_mut().find(|f| f.name == feature.name) {
                        Some(existing) => *existing = feature.clone(),
                        None => self.features.push(feature.clone()),
                    }
                }
                DeltaEvent::FeatureRemoved { feature_name, .. } => self.features.retain(|f| &f.name != feature_name),
                DeltaEvent::SegmentUpdated { segment, .. } => {
                    match self.segments.iter_mut().find(|s| s.id == segment.id) {
                        Some(existing) => *existing = segment.clone(),
                        None => self.segments.push(segment.clone()),
                    }
                }
                DeltaEvent::SegmentRemoved { segment_id, .. } => self.segments.retain(|s| s.id != *segment_id),
            }
        }
    }
}

fn null_as_default<'de, D: Deserializer<'de>, T: Default + Deserialize<'de>>(deserializer: D) -> Result<T, D::Error> {
    Ok(Option::<T>::deserialize(deserializer)?.unwrap_or_default())
}

/// Text, a number or a boolean, read as text; `null` as absent. Shared with the context's properties.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    Text(String),
    Integer(i64),
    Float(f64),
    Bool(bool),
}

impl Scalar {
    fn into_text(self) -> String {
        match self {
            Scalar::Text(text) => text,
            Scalar::Integer(n) => n.to_string(),
            Scalar::Float(n) => n.to_string(),
            Scalar::Bool(b) => b.to_string(),
        }
    }
}

pub(crate) fn lenient_parameters<'de, D: Deserializer<'de>>(
    deserializer: D,
) -> Result<BTreeMap<String, String>, D::Error> {
    let raw: Option<BTreeMap<String, Option<Scalar>>> = Option::deserialize(deserializer)?;
    Ok(raw
        .unwrap_or_default()
        .into_iter()
        .filter_map(|(key, value)| value.map(|value| (key, value.into_text())))
        .collect())
}

fn lenient_optional_string<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(deserializer)?.map(Scalar::into_text))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_lenient_parameters_and_nulls() {
        let json = r#"{"version":2,"features":[{"name":"a","enabled":true,"strategies":[
            {"name":"flexibleRollout","parameters":{"rollout":50,"groupId":"a","flag":true,"gone":null},
             "constraints":null,"segments":null}],"variants":null,"dependencies":null}],"segments":null}"#;
        let features: ClientFeatures = serde_json::from_str(json).unwrap();
        let params = &features.features[0].strategies[0].parameters;
        assert_eq!(params["rollout"], "50");
        assert_eq!(params["flag"], "true");
        assert!(!params.contains_key("gone"));
        assert!(features.segments.is_empty());
    }

    #[test]
    fn applies_delta_events_in_order() {
        let update: FeatureUpdate = serde_json::from_str(
            r#"{"events":[
              {"eventId":1,"type":"hydration","features":[{"name":"a","enabled":true}],"segments":[]},
              {"eventId":2,"type":"feature-updated","feature":{"name":"b","enabled":true}},
              {"eventId":3,"type":"feature-removed","featureName":"a","project":"default"},
              {"eventId":4,"type":"segment-updated","segment":{"id":7,"constraints":[]}},
              {"eventId":5,"type":"segment-removed","segmentId":7}
            ]}"#,
        )
        .unwrap();
        let FeatureUpdate::Delta { events } = update else { panic!("a delta") };
        let mut state = ClientFeatures::default();
        state.apply_events(&events);
        assert_eq!(state.features.iter().map(|f| f.name.as_str()).collect::<Vec<_>>(), ["b"]);
        assert!(state.segments.is_empty());
    }
}

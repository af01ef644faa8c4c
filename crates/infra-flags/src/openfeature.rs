//! An OpenFeature provider (feature `openfeature`): [`Flags`] behind the vendor-neutral API of the
//! `open-feature` crate, with the provider events that SDK does not have yet.

use std::collections::HashMap;

use open_feature::provider::{FeatureProvider, ProviderMetadata, ProviderStatus, ResolutionDetails};
use open_feature::{
    EvaluationContext, EvaluationContextFieldValue, EvaluationError, EvaluationErrorCode, EvaluationReason,
    EvaluationResult, StructValue, Value,
};

use crate::{Context, Flags, FlagsEvent, Reason, VariantResult};

/// An OpenFeature provider over a [`Flags`].
///
/// Boolean flags resolve to whether the flag is on, with the reason (STATIC, DEFAULT, TARGETING_MATCH,
/// SPLIT, DISABLED). String, number and structure flags resolve to the variant the context gets: its
/// payload, read as the requested type, or for strings without a payload the variant's name. The
/// targeting key is the Unleash user id; custom fields named like Unleash's context fields (`userId`,
/// `sessionId`, `remoteAddress`, `environment`, `appName`, `currentTime`) fill those, `userSegments` adds a
/// segment, and every other field becomes a property ([`Context::set_field`]).
#[derive(Debug, Clone)]
pub struct FlagsProvider {
    flags: Flags,
    metadata: ProviderMetadata,
}

/// What a provider reports as its state changes (the OpenFeature provider events).
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum ProviderEvent {
    /// The first flag set loaded: the provider is ready.
    Ready,
    /// Flags changed; their names.
    ConfigurationChanged {
        /// The flags whose definitions changed.
        flags_changed: Vec<String>,
    },
    /// A source failed; the provider keeps serving the last good flags.
    Error {
        /// What went wrong.
        message: String,
    },
}

impl FlagsProvider {
    /// A provider named `infra-flags` over `flags`.
    pub fn new(flags: Flags) -> Self {
        Self { flags, metadata: ProviderMetadata::new("infra-flags") }
    }

    /// Calls `listener` with the provider's events.
    pub fn on_event(&self, listener: impl Fn(&ProviderEvent) + Send + Sync + 'static) {
        self.flags.subscribe(move |event| {
            let event = match event {
                FlagsEvent::Ready => ProviderEvent::Ready,
                FlagsEvent::ConfigurationChanged { flags } => {
                    ProviderEvent::ConfigurationChanged { flags_changed: flags.clone() }
                }
                FlagsEvent::Error { message } => ProviderEvent::Error { message: message.clone() },
            };
            listener(&event);
        });
    }

    fn variant(&self, flag_key: &str, context: &EvaluationContext) -> EvaluationResult<VariantResult> {
        if !self.flags.contains(flag_key) {
            return Err(not_found(flag_key));
        }
        Ok(self.flags.variant(flag_key, &to_context(context)))
    }

    /// Resolves a variant's payload with `parse`, or fails with TYPE_MISMATCH naming `wanted`.
    fn resolve_payload<T>(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
        wanted: &str,
        parse: impl FnOnce(&crate::Payload) -> Option<T>,
    ) -> EvaluationResult<ResolutionDetails<T>> {
        let variant = self.variant(flag_key, context)?;
        let Some(payload) = variant.payload.as_deref() else {
            return Err(no_variant(flag_key, &variant));
        };
        match parse(payload) {
            Some(value) => Ok(details(value, &variant)),
            None => Err(EvaluationError {
                code: EvaluationErrorCode::TypeMismatch,
                message: Some(format!(
                    "flag {flag_key:?} variant {:?} has a {} payload {:?}, not {wanted}",
                    variant.name, payload.payload_type, payload.value
                )),
            }),
        }
    }
}

fn not_found(flag_key: &str) -> EvaluationError {
    EvaluationError { code: EvaluationErrorCode::FlagNotFound, message: Some(format!("no flag named {flag_key:?}")) }
}

fn no_variant(flag_key: &str, variant: &VariantResult) -> EvaluationError {
    let why = if variant.feature_enabled { "has no variant for this context" } else { "is off for this context" };
    EvaluationError { code: EvaluationErrorCode::General(format!("flag {flag_key:?} {why}")), message: None }
}

fn details<T>(value: T, variant: &VariantResult) -> ResolutionDetails<T> {
    ResolutionDetails {
        value,
        variant: Some(variant.name.to_string()),
        reason: Some(EvaluationReason::Split),
        flag_metadata: None,
    }
}

fn field_text(value: &EvaluationContextFieldValue) -> Option<String> {
    Some(match value {
        EvaluationContextFieldValue::Bool(b) => b.to_string(),
        EvaluationContextFieldValue::Int(n) => n.to_string(),
        EvaluationContextFieldValue::Float(n) => n.to_string(),
        EvaluationContextFieldValue::String(s) => s.clone(),
        EvaluationContextFieldValue::DateTime(at) => at.format(&time::format_description::well_known::Rfc3339).ok()?,
        EvaluationContextFieldValue::Struct(_) => return None,
    })
}

/// The Unleash context for an OpenFeature evaluation context.
pub fn to_context(context: &EvaluationContext) -> Context {
    let mut result = Context::new();
    result.user_id = context.targeting_key.clone();
    for (name, value) in &context.custom_fields {
        if let Some(text) = field_text(value) {
            result.set_field(name, text);
        }
    }
    result
}

fn json_to_value(json: serde_json::Value) -> Value {
    match json {
        serde_json::Value::Null => Value::String(String::new()),
        serde_json::Value::Bool(b) => Value::Bool(b),
        serde_json::Value::Number(n) => {
            n.as_i64().map_or_else(|| Value::Float(n.as_f64().unwrap_or(f64::NAN)), Value::Int)
        }
        serde_json::Value::String(s) => Value::String(s),
        serde_json::Value::Array(items) => Value::Array(items.into_iter().map(json_to_value).collect()),
        serde_json::Value::Object(fields) => Value::Struct(StructValue {
            fields: fields.into_iter().map(|(k, v)| (k, json_to_value(v))).collect::<HashMap<_, _>>(),
        }),
    }
}

#[open_feature::async_trait]
impl FeatureProvider for FlagsProvider {
    fn metadata(&self) -> &ProviderMetadata {
        &self.metadata
    }

    fn status(&self) -> ProviderStatus {
        if self.flags.is_ready() { ProviderStatus::Ready } else { ProviderStatus::NotReady }
    }

    async fn resolve_bool_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<bool>> {
        let (value, reason) = self.flags.evaluate(flag_key, &to_context(context)).ok_or_else(|| not_found(flag_key))?;
        let reason = match reason {
            Reason::Static => EvaluationReason::Static,
            Reason::Default => EvaluationReason::Default,
            Reason::TargetingMatch => EvaluationReason::TargetingMatch,
            Reason::Split => EvaluationReason::Split,
            Reason::Disabled => EvaluationReason::Disabled,
        };
        Ok(ResolutionDetails { value, variant: None, reason: Some(reason), flag_metadata: None })
    }

    async fn resolve_int_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<i64>> {
        self.resolve_payload(flag_key, context, "an integer", |payload| payload.value.trim().parse().ok())
    }

    async fn resolve_float_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<f64>> {
        self.resolve_payload(flag_key, context, "a number", |payload| payload.value.trim().parse().ok())
    }

    async fn resolve_string_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<String>> {
        let variant = self.variant(flag_key, context)?;
        if !variant.enabled {
            return Err(no_variant(flag_key, &variant));
        }
        let value = variant.payload.as_ref().map_or_else(|| variant.name.to_string(), |payload| payload.value.clone());
        Ok(details(value, &variant))
    }

    async fn resolve_struct_value(
        &self,
        flag_key: &str,
        context: &EvaluationContext,
    ) -> EvaluationResult<ResolutionDetails<StructValue>> {
        self.resolve_payload(flag_key, context, "a JSON object", |payload| {
            match serde_json::from_str::<serde_json::Value>(&payload.value).ok().map(json_to_value)? {
                Value::Struct(value) => Some(value),
                _ => None,
            }
        })
    }
}

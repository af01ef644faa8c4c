//! The OpenFeature provider, driven through the `open-feature` SDK's client as an application would.
#![cfg(feature = "openfeature")]

use std::sync::{Arc, Mutex};

use infra_flags::Flags;
use infra_flags::openfeature::{FlagsProvider, ProviderEvent};
use open_feature::provider::{FeatureProvider, ProviderStatus};
use open_feature::{EvaluationContext, EvaluationErrorCode, EvaluationReason, OpenFeature, Value};

const FLAGS: &str = r#"{"version": 2, "features": [
  {"name": "static-on", "enabled": true},
  {"name": "switched-off", "enabled": false, "strategies": [{"name": "default"}]},
  {"name": "vip-only", "enabled": true, "strategies": [{"name": "userWithId", "parameters": {"userIds": "vip"}}]},
  {"name": "half", "enabled": true, "strategies": [{"name": "flexibleRollout",
      "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "half"}}]},
  {"name": "venue-only", "enabled": true, "strategies": [{"name": "default", "constraints": [
      {"contextName": "venue", "operator": "IN", "values": ["XLON"]}]}]},
  {"name": "limits", "enabled": true, "variants": [
      {"name": "tight", "weight": 1, "payload": {"type": "number", "value": "250"}}]},
  {"name": "layout", "enabled": true, "variants": [
      {"name": "grid", "weight": 1, "payload": {"type": "json", "value": "{\"columns\": 3, \"dense\": true}"}}]},
  {"name": "colour", "enabled": true, "variants": [{"name": "blue", "weight": 1}]}
]}"#;

#[tokio::test]
async fn resolves_through_the_sdk_with_reasons_and_error_codes() {
    let flags = Flags::new();
    let provider = FlagsProvider::new(flags.clone());
    assert_eq!(provider.status(), ProviderStatus::NotReady);
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    provider.on_event(move |event| sink.lock().unwrap().push(event.clone()));
    flags.load_json(FLAGS).unwrap();
    assert_eq!(provider.status(), ProviderStatus::Ready);

    let mut api = OpenFeature::singleton_mut().await;
    api.set_provider(provider).await;
    let client = api.create_client();
    drop(api);

    let vip = EvaluationContext::default().with_targeting_key("vip").with_custom_field("venue", "XLON");
    let nobody = EvaluationContext::default().with_targeting_key("nobody");

    let details = client.get_bool_details("static-on", Some(&nobody), None).await.unwrap();
    assert_eq!((details.value, details.reason), (true, Some(EvaluationReason::Static)));
    let details = client.get_bool_details("switched-off", Some(&vip), None).await.unwrap();
    assert_eq!((details.value, details.reason), (false, Some(EvaluationReason::Disabled)));
    let details = client.get_bool_details("vip-only", Some(&vip), None).await.unwrap();
    assert_eq!((details.value, details.reason), (true, Some(EvaluationReason::TargetingMatch)));
    let details = client.get_bool_details("vip-only", Some(&nobody), None).await.unwrap();
    assert_eq!((details.value, details.reason), (false, Some(EvaluationReason::Default)));
    let details = client.get_bool_details("venue-only", Some(&vip), None).await.unwrap();
    assert_eq!(
        (details.value, details.reason),
        (true, Some(EvaluationReason::TargetingMatch)),
        "custom fields are properties"
    );

    // Some user falls in the 50% split; the reason says so.
    let mut split = None;
    for i in 0..100 {
        let context = EvaluationContext::default().with_targeting_key(format!("user-{i}"));
        let details = client.get_bool_details("half", Some(&context), None).await.unwrap();
        if details.value {
            split = details.reason;
            break;
        }
    }
    assert_eq!(split, Some(EvaluationReason::Split));

    let err = client.get_bool_details("missing", Some(&vip), None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::FlagNotFound);

    let limit = client.get_int_details("limits", Some(&vip), None).await.unwrap();
    assert_eq!((limit.value, limit.variant.as_deref()), (250, Some("tight")));
    let limit = client.get_float_value("limits", Some(&vip), None).await.unwrap();
    assert_eq!(limit, 250.0);
    let err = client.get_int_details("layout", Some(&vip), None).await.unwrap_err();
    assert_eq!(err.code, EvaluationErrorCode::TypeMismatch);

    let layout = client.get_struct_details::<open_feature::StructValue>("layout", Some(&vip), None).await.unwrap();
    assert_eq!(layout.value.fields.get("columns"), Some(&Value::Int(3)));
    assert_eq!(layout.value.fields.get("dense"), Some(&Value::Bool(true)));

    let colour = client.get_string_value("colour", Some(&vip), None).await.unwrap();
    assert_eq!(colour, "blue", "a variant without payload resolves to its name");
    assert!(client.get_string_details("switched-off", Some(&vip), None).await.is_err());

    flags.load_json(r#"{"features": [{"name": "static-on", "enabled": false}]}"#).unwrap();
    let events = events.lock().unwrap();
    assert_eq!(events[0], ProviderEvent::Ready);
    assert!(matches!(&events[1], ProviderEvent::ConfigurationChanged { flags_changed } if flags_changed.len() == 8));
    assert!(matches!(&events[2], ProviderEvent::ConfigurationChanged { flags_changed } if flags_changed.len() == 8));
}

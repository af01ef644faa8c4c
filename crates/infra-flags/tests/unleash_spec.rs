//! The Unleash client specification: every `tests` and `variantTests` case of every file that
//! `specifications/index.json` lists must evaluate to the expected result.

use std::path::PathBuf;

use infra_flags::{Context, FeatureUpdate, Flags, Payload};
use serde::Deserialize;

fn spec_dir() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/peers/unleash-client-specification/specifications");
    assert!(dir.join("index.json").exists(), "the Unleash specification is missing at {}", dir.display());
    dir
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Suite {
    name: String,
    state: FeatureUpdate,
    #[serde(default)]
    tests: Vec<ToggleCase>,
    #[serde(default)]
    variant_tests: Vec<VariantCase>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct ToggleCase {
    description: String,
    context: Context,
    toggle_name: String,
    expected_result: bool,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct VariantCase {
    description: String,
    context: Context,
    toggle_name: String,
    expected_result: ExpectedVariant,
}

#[derive(Deserialize)]
struct ExpectedVariant {
    name: String,
    #[serde(default)]
    payload: Option<Payload>,
    enabled: bool,
    feature_enabled: bool,
}

#[test]
fn every_specification_case_passes() {
    let dir = spec_dir();
    let index: Vec<String> = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let (mut toggles, mut variants, mut failures) = (0, 0, Vec::new());
    for file in &index {
        let suite: Suite = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap())
            .unwrap_or_else(|err| panic!("{file}: {err}"));
        let flags = Flags::new();
        flags.apply(suite.state).unwrap_or_else(|err| panic!("{file}: {err}"));
        for case in &suite.tests {
            toggles += 1;
            let actual = flags.is_enabled(&case.toggle_name, &case.context);
            if actual != case.expected_result {
                failures.push(format!(
                    "{} / {}: expected {}, got {actual}",
                    suite.name, case.description, case.expected_result
                ));
            }
        }
        for case in &suite.variant_tests {
            variants += 1;
            let actual = flags.variant(&case.toggle_name, &case.context);
            let expected = &case.expected_result;
            let matches = *actual.name == *expected.name
                && actual.enabled == expected.enabled
                && actual.feature_enabled == expected.feature_enabled
                && actual.payload.as_deref() == expected.payload.as_ref();
            if !matches {
                failures.push(format!(
                    "{} / {}: expected {} (enabled {}, feature {}, {:?}), got {} (enabled {}, feature {}, {:?})",
                    suite.name,
                    case.description,
                    expected.name,
                    expected.enabled,
                    expected.feature_enabled,
                    expected.payload,
                    actual.name,
                    actual.enabled,
                    actual.feature_enabled,
                    actual.payload
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{} of {} cases failed:\n{}", failures.len(), toggles + variants, failures.join("\n"));
    // The specification this project pins has 227 toggle and 52 variant cases in 22 files.
    assert_eq!((index.len(), toggles, variants), (22, 227, 52));
}

//! Differential test against `unleash-yggdrasil`, Unleash's own Rust engine: over the specification's flag
//! sets, generated contexts must get the same answer (on/off and variant) from both engines.
//!
//! Contexts are built from the values the flag sets mention (constraint values, user ids, networks,
//! property names), lightly mutated, with each field present or absent at random, so that most evaluations
//! exercise the interesting branches. Evaluations whose outcome is random by definition (random rollouts,
//! stickiness that falls back to random) are left out: no two engines can agree on a coin toss.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::PathBuf;

use infra_flags::{ClientFeatures, Context, FeatureDefinition, FeatureUpdate, Flags, VariantDefinition};
use serde_json::Value;

/// Contexts per specification file; 22 files make more than 100,000 contexts in all.
const CONTEXTS_PER_FILE: usize = 5_000;

fn spec_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/peers/unleash-client-specification/specifications")
}

/// SplitMix64: a seeded generator, so a failure names a reproducible context.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.next() % 100 < percent
    }
    fn pick<'a>(&mut self, items: &'a [String]) -> Option<&'a String> {
        (!items.is_empty()).then(|| &items[self.below(items.len())])
    }
}

/// Values worth trying per context field, gathered from a flag set.
#[derive(Default)]
struct Pools {
    by_field: BTreeMap<String, BTreeSet<String>>,
}

impl Pools {
    fn add(&mut self, field: &str, value: &str) {
        let values = self.by_field.entry(field.to_owned()).or_default();
        values.insert(value.to_owned());
        // Near misses: other case, a prefix and suffix, a neighbouring number, a pre-release.
        values.insert(value.to_uppercase());
        values.insert(format!("x{value}"));
        values.insert(format!("{value}x"));
        if let Ok(number) = value.parse::<f64>() {
            values.insert((number + 1.0).to_string());
            values.insert((number - 0.5).to_string());
        }
        if value.matches('.').count() == 2 {
            values.insert(format!("{value}-beta.1"));
        }
    }

    fn gather(&mut self, features: &[FeatureDefinition], segments: &[infra_flags::SegmentDefinition]) {
        let constraints = features
            .iter()
            .flat_map(|f| f.strategies.iter().flat_map(|s| s.constraints.iter()))
            .chain(segments.iter().flat_map(|s| s.constraints.iter()));
        for constraint in constraints {
            for value in constraint.values.iter().chain(constraint.value.iter()) {
                self.add(&constraint.context_name, value);
            }
        }
        for strategy in features.iter().flat_map(|f| f.strategies.iter()) {
            for user in strategy.parameters.get("userIds").map(String::as_str).unwrap_or("").split(',') {
                self.add("userId", user.trim());
            }
            for ip in strategy.parameters.get("IPs").map(String::as_str).unwrap_or("").split(',') {
                let ip = ip.trim().split('/').next().unwrap_or("");
                self.add("remoteAddress", ip);
            }
            if let Some(stickiness) = strategy.parameters.get("stickiness") {
                self.add(stickiness, "sticky-value");
            }
        }
        let variants = features
            .iter()
            .flat_map(|f| f.variants.iter().chain(f.strategies.iter().flat_map(|s| s.variants.iter().flatten())));
        for variant in variants {
            for o in &variant.overrides {
                for value in &o.values {
                    self.add(&o.context_name, value);
                }
            }
            if let Some(stickiness) = &variant.stickiness {
                self.add(stickiness, "sticky-value");
            }
        }
        for field in ["userId", "sessionId", "remoteAddress", "environment", "appName"] {
            self.by_field.entry(field.to_owned()).or_default();
        }
    }

    fn context(&mut self, rng: &mut Rng) -> Context {
        let mut context = Context::new();
        let fields: Vec<(String, Vec<String>)> =
            self.by_field.iter().map(|(k, v)| (k.clone(), v.iter().cloned().collect())).collect();
        for (field, values) in fields {
            if !rng.chance(60) {
                continue;
            }
            let value = match (field.as_str(), rng.pick(&values)) {
                (_, Some(value)) if rng.chance(75) => value.clone(),
                ("remoteAddress", _) => {
                    format!("{}.{}.{}.{}", rng.below(256), rng.below(256), rng.below(256), rng.below(256))
                }
                _ => rng.next().to_string(),
            };
            context.set_field(&field, value);
        }
        context
    }
}

fn to_yggdrasil(context: &Context) -> unleash_yggdrasil::Context {
    unleash_yggdrasil::Context {
        user_id: context.user_id.clone(),
        session_id: context.session_id.clone(),
        environment: context.environment.clone(),
        app_name: context.app_name.clone(),
        current_time: context.current_time.clone(),
        remote_address: context.remote_address.clone(),
        properties: (!context.properties.is_empty())
            .then(|| context.properties.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect::<HashMap<_, _>>()),
    }
}

/// Whether a variant choice among `variants` can fall back to chance for `context`.
fn variants_random(variants: &[VariantDefinition], stickiness: Option<&str>, context: &Context) -> bool {
    if variants.iter().filter(|v| v.weight > 0).count() < 2 {
        return false;
    }
    let sticky = stickiness.or(variants[0].stickiness.as_deref()).unwrap_or("default");
    sticky_value_missing(sticky, context)
}

fn sticky_value_missing(stickiness: &str, context: &Context) -> bool {
    match stickiness {
        "default" => context.user_id.is_none() && context.session_id.is_none(),
        "random" => true,
        "userId" => context.user_id.is_none(),
        "sessionId" => context.session_id.is_none(),
        "environment" => context.environment.is_none(),
        "appName" => context.app_name.is_none(),
        "remoteAddress" => context.remote_address.is_none(),
        field => context.property_value(field).is_none(),
    }
}

/// Whether evaluating `name` for `context` may involve chance, directly or through a parent (only one
/// level: a parent with parents of its own makes the child off).
fn involves_chance(features: &HashMap<&str, &FeatureDefinition>, name: &str, context: &Context) -> bool {
    features.get(name).is_some_and(|feature| {
        own_chance(feature, context)
            || feature
                .dependencies
                .iter()
                .any(|d| features.get(d.feature.as_str()).is_some_and(|p| own_chance(p, context)))
    })
}

fn own_chance(feature: &FeatureDefinition, context: &Context) -> bool {
    let partial = |p: Option<&String>| p.and_then(|p| p.parse::<u32>().ok()).is_some_and(|p| p > 0 && p < 100);
    let strategy_random = feature.strategies.iter().any(|s| match s.name.as_str() {
        "gradualRolloutRandom" => partial(s.parameters.get("percentage")),
        "flexibleRollout" => {
            let stickiness = s.parameters.get("stickiness").map(String::as_str).unwrap_or("default");
            partial(s.parameters.get("rollout"))
                && matches!(stickiness, "default" | "random")
                && sticky_value_missing(stickiness, context)
        }
        _ => false,
    });
    let variant_random = variants_random(&feature.variants, None, context)
        || feature.strategies.iter().any(|s| {
            s.variants.as_deref().is_some_and(|v| {
                variants_random(
                    v,
                    Some(s.parameters.get("stickiness").map(String::as_str).unwrap_or("default")),
                    context,
                )
            })
        });
    strategy_random || variant_random
}

#[test]
fn agrees_with_yggdrasil_on_generated_contexts() {
    let dir = spec_dir();
    let index: Vec<String> = serde_json::from_str(&std::fs::read_to_string(dir.join("index.json")).unwrap()).unwrap();
    let mut rng = Rng(0x5eed_f1a9);
    let (mut contexts, mut compared, mut skipped) = (0usize, 0usize, 0usize);
    let mut disagreements = Vec::new();

    for file in &index {
        let suite: Value = serde_json::from_str(&std::fs::read_to_string(dir.join(file)).unwrap()).unwrap();
        let state = suite["state"].clone();

        let ours = Flags::new();
        let update: FeatureUpdate = serde_json::from_value(state.clone()).unwrap();
        let mut current = ClientFeatures::default();
        match &update {
            FeatureUpdate::Full(features) => current = features.clone(),
            FeatureUpdate::Delta { events } => current.apply_events(events),
        }
        ours.apply(update).unwrap();

        let theirs = unleash_yggdrasil::EngineState::default();
        let message: unleash_yggdrasil::UpdateMessage = serde_json::from_value(state).unwrap();
        theirs.take_state(message);

        let mut pools = Pools::default();
        pools.gather(&current.features, &current.segments);
        let by_name: HashMap<&str, &FeatureDefinition> =
            current.features.iter().map(|f| (f.name.as_str(), f)).collect();
        let mut names: Vec<&str> = by_name.keys().copied().collect();
        names.sort_unstable();
        names.push("no.such.flag");

        for _ in 0..CONTEXTS_PER_FILE {
            contexts += 1;
            let context = pools.context(&mut rng);
            let their_context = to_yggdrasil(&context);
            for name in &names {
                if involves_chance(&by_name, name, &context) {
                    skipped += 1;
                    continue;
                }
                compared += 1;
                let our_answer = ours.is_enabled(name, &context);
                let their_answer = theirs.is_enabled(name, &their_context, &None);
                let our_variant = ours.variant(name, &context);
                let their_variant = theirs.get_variant(name, &their_context, &None);
                let variant_agrees = *our_variant.name == *their_variant.name
                    && our_variant.enabled == their_variant.enabled
                    && our_variant.feature_enabled == their_variant.feature_enabled
                    && our_variant.payload.as_ref().map(|p| (&p.payload_type, &p.value))
                        == their_variant.payload.as_ref().map(|p| (&p.payload_type, &p.value));
                if our_answer != their_answer || !variant_agrees {
                    disagreements.push(format!(
                        "{file} {name}: ours {our_answer}/{} theirs {their_answer}/{} for {context:?}",
                        our_variant.name, their_variant.name
                    ));
                }
            }
        }
    }

    assert!(
        disagreements.is_empty(),
        "{} disagreements in {compared} evaluations; first ones:\n{}",
        disagreements.len(),
        disagreements.iter().take(20).cloned().collect::<Vec<_>>().join("\n")
    );
    assert!(contexts >= 100_000, "only {contexts} contexts");
    assert!(compared > 10 * skipped, "too many evaluations left to chance: {skipped} of {}", compared + skipped);
    eprintln!("{contexts} contexts, {compared} evaluations compared, {skipped} left out as random");
}

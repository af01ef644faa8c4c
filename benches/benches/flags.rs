//! infra-flags against unleash-yggdrasil (Unleash's own Rust engine): `is_enabled` on an on/off flag, a
//! 50% gradual rollout, and a flag with three constraints; then two threads evaluating while the flag set
//! is replaced 100 times a second. Ours always counts the evaluation (analytics); yggdrasil is measured
//! bare, and `_counted` with the `count_toggle` call its SDKs make for metrics after each evaluation.

use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use infra_benches::run_split;

const FLAG_SET: &str = r#"{"version": 2, "features": [
  {"name": "on-off", "enabled": true, "strategies": [{"name": "default"}]},
  {"name": "rollout-50", "enabled": true, "strategies": [{"name": "flexibleRollout",
     "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "rollout-50"}}]},
  {"name": "three-constraints", "enabled": true, "strategies": [{"name": "default", "constraints": [
     {"contextName": "appName", "operator": "IN", "values": ["order-gateway", "risk"]},
     {"contextName": "environment", "operator": "STR_STARTS_WITH", "values": ["prod"]},
     {"contextName": "tier", "operator": "NUM_GTE", "value": "2"}]}]}
]}"#;

fn ours() -> infra_flags::Flags {
    let flags = infra_flags::Flags::new();
    flags.load_json(FLAG_SET).expect("the benchmark flag set is valid");
    flags
}

fn theirs() -> unleash_yggdrasil::EngineState {
    let engine = unleash_yggdrasil::EngineState::default();
    engine.take_state(serde_json::from_str(FLAG_SET).expect("the benchmark flag set is valid"));
    engine
}

fn our_context() -> infra_flags::Context {
    infra_flags::Context::new()
        .user_id("trader-7")
        .app_name("order-gateway")
        .environment("production")
        .property("tier", "3")
}

fn their_context() -> unleash_yggdrasil::Context {
    unleash_yggdrasil::Context {
        user_id: Some("trader-7".into()),
        app_name: Some("order-gateway".into()),
        environment: Some("production".into()),
        properties: Some([("tier".to_owned(), "3".to_owned())].into()),
        ..Default::default()
    }
}

fn single_thread(c: &mut Criterion) {
    let flags = ours();
    let engine = theirs();
    let (context, yggdrasil_context) = (our_context(), their_context());
    for (group, flag) in [
        ("flags_on_off", "on-off"),
        ("flags_rollout_50", "rollout-50"),
        ("flags_three_constraints", "three-constraints"),
    ] {
        assert!(
            flags.is_enabled(flag, &context) == engine.is_enabled(flag, &yggdrasil_context, &None),
            "{flag}: the engines disagree"
        );
        let mut group = c.benchmark_group(group);
        group.bench_function("infra", |b| b.iter(|| flags.is_enabled(black_box(flag), black_box(&context))));
        group.bench_function("yggdrasil", |b| {
            b.iter(|| engine.is_enabled(black_box(flag), black_box(&yggdrasil_context), &None))
        });
        // What an Unleash SDK on yggdrasil does per evaluation: answer, then count it for metrics (our
        // `is_enabled` always counts, for analytics).
        group.bench_function("yggdrasil_counted", |b| {
            b.iter(|| {
                let enabled = engine.is_enabled(black_box(flag), black_box(&yggdrasil_context), &None);
                engine.count_toggle(flag, enabled);
                enabled
            })
        });
        group.finish();
    }
}

/// Wall time for two threads to make `iters` evaluations between them, while (when `replace` is given) a
/// third thread replaces the flag set every 10 ms.
fn two_readers(iters: u64, replace: Option<&(dyn Fn() + Sync)>, evaluate: impl Fn() + Sync) -> Duration {
    let stop = AtomicBool::new(false);
    std::thread::scope(|scope| {
        if let Some(replace) = replace {
            scope.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    replace();
                    std::thread::sleep(Duration::from_millis(10));
                }
            });
        }
        let elapsed = run_split(2, iters, |_| evaluate());
        stop.store(true, Ordering::Relaxed);
        elapsed
    })
}

/// Two readers on the rollout flag; `replacing` adds a writer that loads a fresh set every 10 ms.
fn two_threads(c: &mut Criterion) {
    let flags = ours();
    let engine = theirs();
    let (context, yggdrasil_context) = (our_context(), their_context());
    let replace_ours = || {
        flags.load_json(FLAG_SET).expect("valid");
    };
    let replace_theirs = || {
        engine.take_state(serde_json::from_str(FLAG_SET).expect("valid"));
    };
    let mut group = c.benchmark_group("flags_2_threads_rollout");
    for replacing in [false, true] {
        let label = if replacing { "replacing_100_per_s" } else { "steady" };
        let (ours_writer, theirs_writer): (&(dyn Fn() + Sync), &(dyn Fn() + Sync)) = (&replace_ours, &replace_theirs);
        group.bench_function(format!("infra/{label}"), |b| {
            b.iter_custom(|iters| {
                two_readers(iters, replacing.then_some(ours_writer), || {
                    black_box(flags.is_enabled(black_box("rollout-50"), &context));
                })
            })
        });
        group.bench_function(format!("yggdrasil/{label}"), |b| {
            b.iter_custom(|iters| {
                two_readers(iters, replacing.then_some(theirs_writer), || {
                    black_box(engine.is_enabled(black_box("rollout-50"), &yggdrasil_context, &None));
                })
            })
        });
    }
    group.finish();
}

criterion_group!(benches, single_thread, two_threads);
criterion_main!(benches);

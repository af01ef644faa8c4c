//! Evaluating allocates nothing on the common path: the global allocator counts, and a burst of
//! evaluations of every kind of strategy must not move the count.

use std::alloc::System;

use infra_flags::{Context, Flags};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

const FLAG_SET: &str = r#"{"version": 2, "segments": [{"id": 1, "constraints": [
    {"contextName": "environment", "operator": "STR_STARTS_WITH", "values": ["prod"]}]}],
  "features": [
  {"name": "on-off", "enabled": true, "strategies": [{"name": "default"}]},
  {"name": "rollout", "enabled": true, "strategies": [{"name": "flexibleRollout",
     "parameters": {"rollout": "50", "stickiness": "userId", "groupId": "rollout"}}]},
  {"name": "constrained", "enabled": true, "strategies": [{"name": "default", "segments": [1], "constraints": [
     {"contextName": "appName", "operator": "IN", "values": ["order-gateway", "risk"]},
     {"contextName": "tier", "operator": "NUM_GTE", "value": "2"},
     {"contextName": "desk", "operator": "STR_CONTAINS", "values": ["RATES"], "caseInsensitive": true},
     {"contextName": "version", "operator": "SEMVER_GT", "value": "1.2.0"},
     {"contextName": "remoteAddress", "operator": "IN_CIDR", "values": ["10.0.0.0/8"]},
     {"contextName": "currentTime", "operator": "DATE_AFTER", "value": "2020-01-01T00:00:00Z"}]}]},
  {"name": "users", "enabled": true, "strategies": [{"name": "userWithId", "parameters": {"userIds": "a,b,trader-7"}}]},
  {"name": "child", "enabled": true, "dependencies": [{"feature": "on-off"}]},
  {"name": "off", "enabled": false}
]}"#;

#[test]
fn evaluating_allocates_nothing() {
    let flags = Flags::new();
    flags.load_json(FLAG_SET).unwrap();
    let context = Context::new()
        .user_id("trader-7")
        .app_name("order-gateway")
        .environment("production")
        .remote_address("10.1.2.3")
        .property("tier", "3")
        .property("version", "1.4.0")
        .property("desk", "emea-rates-2");
    let names = ["on-off", "rollout", "constrained", "users", "child", "off", "unknown"];
    // Warm up: the thread's snapshot cache and counter stripe are set up on first use.
    for name in names {
        flags.is_enabled(name, &context);
    }
    assert!(flags.is_enabled("constrained", &context), "the constrained flag must take every constraint's path");

    // The allocator's counts are process-wide, so another thread (the test harness, a clock's upkeep)
    // may allocate during a round now and then; an allocating evaluation would show in every round.
    let rounds: Vec<_> = (0..5)
        .map(|_| {
            let region = Region::new(GLOBAL);
            for _ in 0..1_000 {
                for name in names {
                    std::hint::black_box(flags.is_enabled(name, &context));
                }
            }
            region.change()
        })
        .collect();
    let quietest = rounds.iter().map(|c| c.allocations + c.reallocations).min();
    assert_eq!(quietest, Some(0), "7,000 evaluations allocated in every round: {rounds:?}");
}

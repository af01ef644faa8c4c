//! Rollout quality: buckets are uniform, and widening a rollout never drops a user who was in.

use infra_flags::{ClientFeatures, Context, FlagStatus, Flags, rollout_bucket};

#[test]
fn buckets_are_uniform_over_a_million_users() {
    let mut counts = [0u64; 100];
    for i in 0..1_000_000u32 {
        let bucket = rollout_bucket("checkout-v2", &format!("user-{i}"));
        counts[(bucket - 1) as usize] += 1;
    }
    let expected = 10_000.0;
    let chi_square: f64 = counts.iter().map(|&c| (c as f64 - expected).powi(2) / expected).sum();
    // The 99.9th percentile of chi-square with 99 degrees of freedom is 148.23: a uniform hash exceeds it
    // one time in a thousand; a biased one (say, bucket 0 never used) lands far above.
    assert!(chi_square < 148.23, "chi-square {chi_square:.1} over 99 degrees of freedom: buckets are not uniform");
}

fn unleash_rollout(percentage: u32) -> ClientFeatures {
    serde_json::from_value(serde_json::json!({
        "version": 2,
        "features": [{"name": "wide", "enabled": true, "strategies": [{
            "name": "flexibleRollout",
            "parameters": {"rollout": percentage.to_string(), "stickiness": "userId", "groupId": "wide"}
        }]}]
    }))
    .unwrap()
}

#[test]
fn raising_a_rollout_never_removes_a_user() {
    let users: Vec<Context> = (0..5_000).map(|i| Context::new().user_id(format!("u{i}"))).collect();
    let flags = Flags::new();
    let mut previous = vec![false; users.len()];
    for percentage in 0..=100 {
        flags.load(unleash_rollout(percentage)).unwrap();
        let now: Vec<bool> = users.iter().map(|u| flags.is_enabled("wide", u)).collect();
        for (i, (was, is)) in previous.iter().zip(&now).enumerate() {
            assert!(!was || *is, "user u{i} dropped out when the rollout rose to {percentage}%");
        }
        let share = now.iter().filter(|on| **on).count() as f64 / users.len() as f64;
        assert!((share * 100.0 - percentage as f64).abs() < 3.0, "{percentage}% rollout reached {share:.3}");
        previous = now;
    }
    assert!(previous.iter().all(|on| *on), "100% includes everyone");
}

#[test]
fn in_code_rollouts_bucket_like_unleash_and_only_grow() {
    let flags = Flags::new();
    flags.create_flag("wide", false, "in code", FlagStatus::PercentageRollout).unwrap();
    let unleash = Flags::new();
    let mut previous = vec![false; 2_000];
    for percentage in [0.0, 5.0, 12.5, 25.0, 50.0, 99.0, 100.0] {
        flags.set_percentage_rollout("wide", percentage).unwrap();
        unleash.load(unleash_rollout(percentage as u32)).unwrap();
        for (i, was) in previous.iter_mut().enumerate() {
            let user = format!("u{i}");
            let is = flags.is_enabled_for("wide", Some(&user), &[], false);
            assert_eq!(is, unleash.is_enabled("wide", &Context::new().user_id(&user)), "{user} at {percentage}%");
            assert!(!*was || is, "{user} dropped out at {percentage}%");
            *was = is;
        }
    }
}

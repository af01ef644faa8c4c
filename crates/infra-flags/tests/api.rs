//! The in-code API (the seed's), analytics, events, exposure, hot reload and bad input.

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use infra_flags::{Context, DefinitionError, FlagError, FlagStatus, Flags, FlagsEvent, LoadError};

#[test]
fn handles_are_send_sync_and_cheap_to_clone() {
    fn assert_send_sync<T: Send + Sync + Clone>() {}
    assert_send_sync::<Flags>();
    assert_send_sync::<Context>();
}

#[test]
fn seed_api_statuses_overrides_and_defaults() {
    let flags = Flags::new();
    let flag = flags.create_flag("pricing-v2", true, "new pricing path", FlagStatus::Disabled).unwrap();
    assert_eq!(flag.status, FlagStatus::Disabled);
    assert!(!flags.is_enabled_for("pricing-v2", Some("u1"), &[], true));

    flags.set_flag_status("pricing-v2", FlagStatus::Enabled).unwrap();
    assert!(flags.is_enabled_for("pricing-v2", Some("u1"), &[], false));

    // Segment targeting; the default value answers when the context has no segments.
    flags.set_user_segments("pricing-v2", &["beta", "staff"]).unwrap();
    assert!(flags.is_enabled_for("pricing-v2", Some("u1"), &["staff"], false));
    assert!(!flags.is_enabled_for("pricing-v2", Some("u1"), &["retail"], false));
    assert!(flags.is_enabled_for("pricing-v2", Some("u1"), &[], false), "default_value is true");

    // Percentage rollout; without a user id the default value answers.
    flags.set_percentage_rollout("pricing-v2", 0.0).unwrap();
    assert!(!flags.is_enabled_for("pricing-v2", Some("u1"), &[], false));
    assert!(flags.is_enabled_for("pricing-v2", None, &[], false));

    // An override wins over everything, including a disabled flag.
    flags.set_user_override("vip", "pricing-v2", true).unwrap();
    flags.set_flag_status("pricing-v2", FlagStatus::Disabled).unwrap();
    assert!(flags.is_enabled_for("pricing-v2", Some("vip"), &[], false));
    assert!(!flags.is_enabled_for("pricing-v2", Some("u1"), &[], false));

    // Unknown flags answer the caller's default and are counted.
    assert!(flags.is_enabled_for("nope", Some("u1"), &[], true));
    assert!(!flags.is_enabled("nope", &Context::new()));
    assert_eq!(flags.unknown_flag_evaluations(), 2);

    let all = flags.all_flags();
    assert_eq!(all.len(), 1);
    assert_eq!(all[0].code.as_ref().unwrap().status, FlagStatus::Disabled);
    assert!(flags.run_if_enabled("pricing-v2", &Context::new().user_id("vip"), || 7) == Some(7));
}

#[test]
fn seed_api_rejects_bad_input_and_changes_nothing() {
    let flags = Flags::new();
    flags.create_flag("a", false, "", FlagStatus::Enabled).unwrap();
    assert_eq!(flags.create_flag("a", false, "", FlagStatus::Enabled), Err(FlagError::DuplicateFlag("a".into())));
    assert_eq!(flags.create_flag("", false, "", FlagStatus::Enabled), Err(FlagError::EmptyName));
    assert_eq!(flags.set_percentage_rollout("a", 100.5), Err(FlagError::InvalidPercentage(100.5)));
    assert!(matches!(flags.set_percentage_rollout("a", f64::NAN), Err(FlagError::InvalidPercentage(_))));
    assert_eq!(flags.set_flag_status("b", FlagStatus::Enabled), Err(FlagError::UnknownFlag("b".into())));
    assert_eq!(flags.set_user_override("u", "b", true), Err(FlagError::UnknownFlag("b".into())));
    assert!(flags.is_enabled("a", &Context::new()), "a refused change leaves the flag as it was");
}

#[test]
fn analytics_count_answers_variants_and_time() {
    let (clock, mock) = quanta::Clock::mock();
    let anchor = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let flags = Flags::builder().clock(clock).wall_clock_anchor(anchor).build().unwrap();
    flags
        .load_json(
            r#"{"features":[{"name":"ab","enabled":true,"strategies":[{"name":"userWithId","parameters":{"userIds":"a,b"}}],
                "variants":[{"name":"red","weight":1,"stickiness":"userId"},{"name":"blue","weight":1,"stickiness":"userId"}]}]}"#,
        )
        .unwrap();
    assert_eq!(flags.analytics("ab").unwrap().last_evaluated, None);
    mock.increment(Duration::from_secs(60));
    for user in ["a", "b", "c"] {
        flags.is_enabled("ab", &Context::new().user_id(user));
        flags.variant("ab", &Context::new().user_id(user));
    }
    let analytics = flags.analytics("ab").unwrap();
    assert_eq!((analytics.yes, analytics.no), (4, 2));
    assert_eq!(analytics.variants.values().sum::<u64>(), 3);
    assert_eq!(analytics.variants.get("disabled"), Some(&1), "user c is off and gets the disabled variant");
    assert_eq!(analytics.last_evaluated, Some(anchor + Duration::from_secs(60)));

    // Counts survive a reload of the same flag.
    flags.load(flags.definitions()).unwrap();
    assert_eq!(flags.analytics("ab").unwrap().yes, 4);
}

#[test]
fn on_the_system_clock_evaluations_are_stamped_to_the_millisecond() {
    let flags = Flags::new();
    flags.load_json(r#"{"features":[{"name":"on","enabled":true}]}"#).unwrap();
    let before = SystemTime::now();
    flags.is_enabled("on", &Context::new());
    let after = SystemTime::now();
    let stamped = flags.analytics("on").unwrap().last_evaluated.expect("evaluated once");
    // The coarse reading lags the clock by up to its refresh interval (plus scheduling delays).
    let slack = Duration::from_millis(250);
    assert!(stamped + slack >= before && stamped <= after, "{stamped:?} outside {before:?}..{after:?}");
}

#[test]
fn date_constraints_use_the_injected_clock() {
    let (clock, mock) = quanta::Clock::mock();
    let anchor = SystemTime::UNIX_EPOCH + Duration::from_secs(1_767_225_599); // 2025-12-31T23:59:59Z
    let flags = Flags::builder().clock(clock).wall_clock_anchor(anchor).build().unwrap();
    flags
        .load_json(
            r#"{"features":[{"name":"new-year","enabled":true,"strategies":[{"name":"default","constraints":[
                {"contextName":"currentTime","operator":"DATE_AFTER","value":"2026-01-01T00:00:00Z"}]}]}]}"#,
        )
        .unwrap();
    assert!(!flags.is_enabled("new-year", &Context::new()));
    mock.increment(Duration::from_secs(2));
    assert!(flags.is_enabled("new-year", &Context::new()));
    assert!(!flags.is_enabled("new-year", &Context::new().current_time("2025-06-01T00:00:00Z")));
}

#[test]
fn events_and_exposures_reach_subscribers() {
    let flags = Flags::new();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    flags.subscribe(move |event| sink.lock().unwrap().push(event.clone()));
    let exposures = Arc::new(Mutex::new(Vec::new()));
    let sink = exposures.clone();
    flags.on_exposure(move |exposure| sink.lock().unwrap().push((exposure.flag.to_owned(), exposure.enabled)));

    flags
        .load_json(
            r#"{"features":[{"name":"quiet","enabled":true},{"name":"loud","enabled":true,"impressionData":true}]}"#,
        )
        .unwrap();
    flags.is_enabled("quiet", &Context::new());
    flags.is_enabled("loud", &Context::new());
    flags
        .load_json(
            r#"{"features":[{"name":"quiet","enabled":false},{"name":"loud","enabled":true,"impressionData":true}]}"#,
        )
        .unwrap();
    assert!(flags.load_json("{not json").is_err());

    assert_eq!(exposures.lock().unwrap().as_slice(), [("loud".to_owned(), true)]);
    let events = events.lock().unwrap();
    assert_eq!(events[0], FlagsEvent::Ready);
    assert_eq!(events[1], FlagsEvent::ConfigurationChanged { flags: vec!["loud".into(), "quiet".into()] });
    assert_eq!(events[2], FlagsEvent::ConfigurationChanged { flags: vec!["quiet".into()] });
    assert_eq!(events.len(), 3, "a failed load changes nothing and is the caller's error: {events:?}");
}

#[test]
fn problems_are_reported_and_false_or_refused_in_strict_mode() {
    let json = r#"{"features":[{"name":"odd","enabled":true,"strategies":[
        {"name":"default","constraints":[{"contextName":"userId","operator":"REGEX","value":"(unclosed"}]},
        {"name":"martian"},
        {"name":"flexibleRollout","parameters":{"rollout":"lots"}},
        {"name":"default","segments":[99]},
        {"name":"default","constraints":[{"contextName":"v","operator":"SEMVER_EQ","value":"1.x"},
                                         {"contextName":"ip","operator":"IN_CIDR","values":["10.0.0.0/40"]},
                                         {"contextName":"u","operator":"LIKE","values":["a"]}]}]},
        {"name":"child","enabled":true,"dependencies":[{"feature":"ghost"}]}]}"#;
    let flags = Flags::new();
    let report = flags.load_json(json).unwrap();
    assert_eq!(report.flags, 2);
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, DefinitionError::InvalidConstraintValue { operator, .. } if operator == "REGEX"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, DefinitionError::UnknownStrategy { strategy, .. } if strategy == "martian"))
    );
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, DefinitionError::InvalidParameter { parameter, .. } if parameter == "rollout"))
    );
    assert!(report.problems.iter().any(|p| matches!(p, DefinitionError::UnknownSegment { segment: 99, .. })));
    assert!(
        report
            .problems
            .iter()
            .any(|p| matches!(p, DefinitionError::UnknownOperator { operator, .. } if operator == "LIKE"))
    );
    assert!(
        report.problems.iter().any(|p| matches!(p, DefinitionError::UnknownParent { parent, .. } if parent == "ghost"))
    );
    assert_eq!(report.problems.len(), 8, "{:#?}", report.problems);
    let everything =
        Context::new().user_id("(unclosed").property("v", "1.0.0").property("ip", "10.0.0.1").property("u", "a");
    assert!(!flags.is_enabled("odd", &everything), "every faulty part is false");
    assert!(!flags.is_enabled("child", &everything));
    for problem in &report.problems {
        assert!(!problem.to_string().is_empty());
    }

    let strict = Flags::builder().strict(true).build().unwrap();
    strict.load_json(r#"{"features":[{"name":"fine","enabled":true}]}"#).unwrap();
    match strict.load_json(json) {
        Err(LoadError::Invalid(problems)) => assert_eq!(problems.len(), 8),
        other => panic!("strict mode loaded an invalid set: {other:?}"),
    }
    assert_eq!(strict.names(), ["fine"], "the last good set stays");
    assert!(matches!(Flags::new().load_json("[1, 2"), Err(LoadError::Json(_))));
}

#[test]
fn file_watcher_reloads_and_keeps_the_last_good_set() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    std::fs::write(&path, r#"{"features":[{"name":"a","enabled":true}]}"#).unwrap();
    let flags = Flags::new();
    let errors = Arc::new(Mutex::new(0));
    let sink = errors.clone();
    flags.subscribe(move |event| {
        if matches!(event, FlagsEvent::Error { .. }) {
            *sink.lock().unwrap() += 1;
        }
    });
    // A long interval: the test drives checks itself instead of sleeping.
    let watcher = flags.watch_file(&path, Duration::from_secs(3600)).unwrap();
    assert!(flags.is_enabled("a", &Context::new()));
    assert!(!watcher.check_now().unwrap(), "unchanged content is not reloaded");

    std::fs::write(&path, r#"{"features":[{"name":"a","enabled":false}]}"#).unwrap();
    assert!(watcher.check_now().unwrap());
    assert!(!flags.is_enabled("a", &Context::new()));

    std::fs::write(&path, r#"{"features":[{"name":"a","enabled":tru"#).unwrap();
    assert!(watcher.check_now().is_err());
    assert!(watcher.check_now().is_ok(), "the same bad content is reported once");
    assert!(watcher.last_error().unwrap().contains("not valid Unleash client-features JSON"));
    assert_eq!(flags.names(), ["a"]);
    assert!(!flags.is_enabled("a", &Context::new()), "the last good set stays in force");
    assert_eq!(*errors.lock().unwrap(), 1);

    std::fs::write(&path, r#"{"features":[{"name":"a","enabled":true},{"name":"b","enabled":true}]}"#).unwrap();
    assert!(watcher.check_now().unwrap());
    assert_eq!(watcher.last_error(), None);
    assert_eq!(watcher.reloads(), 3);
    watcher.shutdown();

    assert!(matches!(
        flags.watch_file(dir.path().join("missing.json"), Duration::from_secs(1)),
        Err(LoadError::Io { .. })
    ));
}

#[test]
fn file_watcher_thread_polls_on_its_own() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("flags.json");
    std::fs::write(&path, r#"{"features":[]}"#).unwrap();
    let flags = Flags::new();
    let watcher = flags.watch_file(&path, Duration::from_millis(5)).unwrap();
    std::fs::write(&path, r#"{"features":[{"name":"late","enabled":true}]}"#).unwrap();
    // Bounded wait for the background poll (the only test here that relies on the thread's timing).
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !flags.contains("late") && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(flags.contains("late"));
    drop(watcher);
}

#[test]
fn readers_see_every_replacement_while_writers_swap() {
    let flags = Flags::new();
    flags.load_json(r#"{"features":[{"name":"f","enabled":true}]}"#).unwrap();
    std::thread::scope(|scope| {
        for _ in 0..2 {
            let flags = flags.clone();
            scope.spawn(move || {
                let context = Context::new().user_id("u");
                for _ in 0..200_000 {
                    // The flag exists in every set the writer installs, so it is never reported unknown.
                    flags.is_enabled("f", &context);
                }
            });
        }
        let writer = flags.clone();
        scope.spawn(move || {
            for i in 0..200 {
                writer.load_json(&format!(r#"{{"features":[{{"name":"f","enabled":{}}}]}}"#, i % 2 == 0)).unwrap();
            }
        });
    });
    assert_eq!(flags.unknown_flag_evaluations(), 0);
    let analytics = flags.analytics("f").unwrap();
    assert_eq!(analytics.yes + analytics.no, 400_000, "no evaluation lost from the striped counters");
}

#[test]
fn application_hostname_compares_without_case() {
    let flags = Flags::builder().hostname("Trade-Box-7").build().unwrap();
    flags
        .load_json(
            r#"{"features":[{"name":"box7","enabled":true,"strategies":[{"name":"applicationHostname","parameters":{"hostNames":"trade-box-1, trade-box-7"}}]},
                {"name":"other","enabled":true,"strategies":[{"name":"applicationHostname","parameters":{"hostNames":"trade-box-1"}}]}]}"#,
        )
        .unwrap();
    assert!(flags.is_enabled("box7", &Context::new()));
    assert!(!flags.is_enabled("other", &Context::new()));
}

#[test]
fn builder_takes_an_initial_set_and_strict_mode_checks_it() {
    let good: infra_flags::ClientFeatures =
        serde_json::from_str(r#"{"features":[{"name":"a","enabled":true}]}"#).unwrap();
    let flags = Flags::builder().features(good).build().unwrap();
    assert!(flags.is_ready() && flags.is_enabled("a", &Context::new()));
    let bad: infra_flags::ClientFeatures =
        serde_json::from_str(r#"{"features":[{"name":"a","enabled":true,"strategies":[{"name":"nope"}]}]}"#).unwrap();
    assert!(matches!(Flags::builder().strict(true).features(bad.clone()).build(), Err(LoadError::Invalid(_))));
    assert!(Flags::builder().features(bad).build().is_ok(), "lenient by default");
    assert!(!Flags::new().is_ready());
}

//! Routing with Alertmanager's semantics: unit cases, and agreement with Alertmanager's own `amtool config
//! routes test` on generated label sets (interop tier).

use infra_alert::{ConfigError, GroupBy, Labels, Matcher, Route, RouteTree};

fn m(text: &str) -> Matcher {
    Matcher::parse(text).unwrap()
}

const RECEIVERS: &[&str] = &["root", "pager", "db", "db-night", "web", "web-prod", "catch", "audit", "infra"];

/// The trees compared with Alertmanager: nesting, `continue`, regex and negative matchers, inheritance.
fn trees() -> Vec<Route> {
    vec![
        Route::to("root")
            .group_by(["alertname"])
            .route(Route::to("pager").matcher(m("severity=\"critical\"")).continue_matching(true))
            .route(
                Route::to("db")
                    .matcher(m("team=~\"db|infra\""))
                    .matcher(m("env!=\"dev\""))
                    .route(Route::to("db-night").matcher(m("shift=\"night\"")))
                    .route(Route::inherit().matcher(m("service=~\"a|b\"")).group_by_all()),
            )
            .route(Route::to("web").matcher(m("team=\"web\""))),
        Route::to("root")
            .route(Route::to("audit").matcher(m("env=~\".+\"")).continue_matching(true))
            .route(
                Route::to("web")
                    .matcher(m("team!~\"db|infra\""))
                    .route(Route::to("web-prod").matcher(m("env=\"prod\"")).continue_matching(true))
                    .route(Route::to("catch").matcher(m("severity!=\"info\""))),
            )
            .route(Route::to("infra").matcher(m("team=\"infra\""))),
        Route::to("root")
            .route(Route::to("catch").matcher(m("service=\"\"")).continue_matching(true))
            .route(
                Route::inherit()
                    .matcher(m("severity=~\"critical|warning\""))
                    .continue_matching(true)
                    .route(Route::to("pager").matcher(m("env=\"prod\"")))
                    .route(Route::to("db").matcher(m("team=\"db\"")).continue_matching(true))
                    .route(Route::to("db-night").matcher(m("shift!=\"day\""))),
            )
            .route(Route::to("audit").matcher(m("env!~\"dev|staging\""))),
    ]
}

/// Label sets from a small vocabulary (absent values included), from a fixed seed.
fn label_sets(count: usize, seed: u64) -> Vec<Labels> {
    let vocabulary: [(&str, &[&str]); 6] = [
        ("severity", &["critical", "warning", "info", ""]),
        ("team", &["db", "infra", "web", "payments", ""]),
        ("env", &["prod", "dev", "staging", ""]),
        ("shift", &["night", "day", ""]),
        ("service", &["a", "b", "c", ""]),
        ("alertname", &["DiskFull", "HighLatency", "Down"]),
    ];
    let mut state = seed;
    let mut next = move || {
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        (state >> 33) as usize
    };
    (0..count)
        .map(|_| vocabulary.iter().map(|(name, values)| (*name, values[next() % values.len()])).collect())
        .collect()
}

#[test]
fn routes_follow_alertmanagers_matching_rules() {
    let tree = RouteTree::new(trees().remove(0), RECEIVERS).unwrap();
    let labels = |pairs: &[(&str, &str)]| pairs.iter().copied().collect::<Labels>();
    assert_eq!(
        tree.receivers(&labels(&[("severity", "critical"), ("team", "db"), ("shift", "night")])),
        ["pager", "db-night"]
    );
    assert_eq!(
        tree.receivers(&labels(&[("team", "db"), ("env", "dev")])),
        ["root"],
        "env!=dev fails: the root takes it"
    );
    assert_eq!(tree.receivers(&labels(&[("team", "infra"), ("service", "b")])), ["db"], "an inheriting child keeps db");
    assert_eq!(tree.receivers(&labels(&[("team", "infra")])), ["db"], "no child matched: the parent is the match");
    assert_eq!(tree.receivers(&labels(&[("team", "web"), ("severity", "critical")])), ["pager", "web"]);
    let routes = tree.matches(&labels(&[("team", "infra"), ("service", "a"), ("alertname", "X")]));
    assert_eq!(routes[0].group_by, GroupBy::All, "group_by set on the child");
    assert_eq!(tree.root().group_by, GroupBy::Labels(vec!["alertname".into()]));
    let db = tree.matches(&labels(&[("team", "db")]))[0];
    assert_eq!(db.group_by, GroupBy::Labels(vec!["alertname".into()]), "inherited from the root");
    assert_eq!(db.key, "{}/{env!=\"dev\",team=~\"db|infra\"}");
    assert_eq!(
        db.group_key(&labels(&[("team", "db"), ("alertname", "DiskFull")])),
        "{}/{env!=\"dev\",team=~\"db|infra\"}:{alertname=\"DiskFull\"}"
    );
}

#[test]
fn bad_trees_are_refused() {
    assert_eq!(
        RouteTree::new(Route::to("root").route(Route::to("nobody")), &["root"]).unwrap_err(),
        ConfigError::UnknownReceiver("nobody".into())
    );
    assert!(matches!(RouteTree::new(Route::inherit(), &["root"]), Err(ConfigError::Route(_))));
    assert!(matches!(RouteTree::new(Route::to("root").matcher(m("a=\"b\"")), &["root"]), Err(ConfigError::Route(_))));
    assert_eq!(
        RouteTree::new(Route::to("root").repeat_interval(std::time::Duration::ZERO), &["root"]).unwrap_err(),
        ConfigError::Zero("repeat_interval")
    );
}

#[test]
fn interop_amtool_picks_the_same_receivers_for_generated_label_sets() {
    let Some(amtool) = infra_testkit::service_path(infra_testkit::Service::Amtool) else { return };
    let dir = infra_testkit::temp_dir();
    let mut compared = 0;
    let mut distinct = std::collections::BTreeSet::new();
    for (n, route) in trees().into_iter().enumerate() {
        let tree = RouteTree::new(route, RECEIVERS).unwrap();
        let config = dir.path().join(format!("tree-{n}.yml"));
        std::fs::write(&config, tree.to_alertmanager_yaml(RECEIVERS)).unwrap();
        let sets = label_sets(350, 17 + n as u64);
        // amtool answers one label set per run: four threads share the runs.
        let answers: Vec<(Labels, String)> = std::thread::scope(|scope| {
            let workers: Vec<_> = sets
                .chunks(sets.len().div_ceil(4))
                .map(|chunk| {
                    let (amtool, config) = (&amtool, &config);
                    scope.spawn(move || {
                        chunk
                            .iter()
                            .map(|labels| {
                                let output = std::process::Command::new(amtool)
                                    .args(["config", "routes", "test", "--config.file"])
                                    .arg(config)
                                    .args(labels.iter().map(|(name, value)| format!("{name}={value}")))
                                    .output()
                                    .expect("amtool runs");
                                assert!(output.status.success(), "amtool: {}", String::from_utf8_lossy(&output.stderr));
                                (labels.clone(), String::from_utf8_lossy(&output.stdout).trim().to_owned())
                            })
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            workers.into_iter().flat_map(|worker| worker.join().unwrap()).collect()
        });
        for (labels, theirs) in answers {
            let ours = tree.receivers(&labels).join(",");
            assert_eq!(ours, theirs, "tree {n}, labels {labels}\n{}", tree.to_alertmanager_yaml(RECEIVERS));
            distinct.insert(format!("{n}:{theirs}"));
            compared += 1;
        }
    }
    assert!(compared >= 1000, "{compared} label sets compared");
    assert!(distinct.len() >= 15, "the trees route to many receiver lists, not one: {distinct:?}");
    eprintln!("{compared} label sets, {} distinct receiver lists: {distinct:?}", distinct.len());
}

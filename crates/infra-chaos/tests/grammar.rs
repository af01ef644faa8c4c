//! fail-rs action strings: accepted and rejected exactly as the `fail` crate 0.5 does, and frequencies
//! that hold over many evaluations.

use infra_chaos::{Actions, ChaosEngine, EngineError, Task, parse_failpoints};

/// Valid and invalid strings alike; the verdict of each comes from `fail` itself.
const CASES: &[&str] = &[
    "off",
    "return",
    "return(x)",
    "return()",
    "return(a(b))",
    "return(50%)",
    "return(3*x)",
    "return(x",
    "return x",
    "sleep(10)",
    "sleep",
    "sleep()",
    "sleep(-1)",
    "sleep(1.5)",
    "sleep(abc)",
    "sleep(18446744073709551615)",
    "sleep(18446744073709551616)",
    "panic",
    "panic(boom)",
    "print",
    "print(still alive!)",
    "pause",
    "yield",
    "delay(5)",
    "delay",
    "delay(x)",
    "20%return",
    "20.5%return",
    "-5%return",
    "200%return",
    "abc%return",
    "%return",
    "1e2%return",
    "inf%return",
    "NaN%return",
    " 20%return ",
    "20% return",
    "20 %return",
    "3*return",
    "+3*return",
    "-1*return",
    "x*return",
    "*return",
    "3.5*return",
    "20%3*return(x)",
    "3*20%return",
    "20%3*return(x)->sleep(10)->off",
    "return->",
    "->return",
    "return->->off",
    "return -> off",
    "return-> off",
    "",
    " ",
    "unknown",
    "Return",
    "OFF",
    "return(x)trailing",
    "sleep(10)->delay(10)->yield->pause->print->panic->off",
    "100%1*sleep(1)->50%2*yield",
    "20%%return",
    "2**return",
    "return((x))",
    "return(x))",
];

#[test]
fn accepts_and_rejects_exactly_what_the_fail_crate_does() {
    assert!(CASES.len() >= 50);
    let mut disagreements = Vec::new();
    let mut accepted = 0;
    for case in CASES {
        let theirs = fail::cfg("infra-chaos-grammar", case).is_ok();
        let ours = Actions::parse(case);
        if theirs != ours.is_ok() {
            disagreements.push(format!(
                "{case:?}: fail {}, infra-chaos {:?}",
                if theirs { "accepts" } else { "rejects" },
                ours.err()
            ));
        }
        accepted += usize::from(theirs);
    }
    fail::remove("infra-chaos-grammar");
    assert!(disagreements.is_empty(), "disagreements:\n{}", disagreements.join("\n"));
    assert!(accepted > 15 && accepted < CASES.len() - 15, "the table mixes valid and invalid strings: {accepted}");
}

#[test]
fn parsed_actions_carry_their_parts() {
    let actions = Actions::parse("20%3*return(x)->sleep(10)->off").unwrap();
    let chain = actions.actions();
    assert_eq!(chain.len(), 3);
    assert_eq!(chain[0].task(), &Task::Return(Some("x".into())));
    assert!((chain[0].frequency() - 0.2).abs() < 1e-6);
    assert_eq!(chain[0].remaining(), Some(3));
    assert_eq!(chain[1].task(), &Task::Sleep(std::time::Duration::from_millis(10)));
    assert_eq!(chain[2].remaining(), None);
    let error = Actions::parse("sleep").unwrap_err();
    assert_eq!(error.to_string(), "sleep requires a timeout in milliseconds, as in `sleep(10)`");
}

#[test]
fn twenty_percent_fires_within_a_point_of_twenty_percent() {
    let engine = ChaosEngine::builder().seed(42).build().unwrap();
    engine.configure("grammar.freq", "20%return(hit)").unwrap();
    let hits = (0..100_000).filter(|_| engine.check("grammar.freq").is_err()).count();
    let share = hits as f64 / 100_000.0;
    assert!((share - 0.2).abs() <= 0.01, "20% fired {:.2}% of the time", share * 100.0);
}

#[test]
fn failpoints_values_parse_like_the_environment_variable() {
    let points = parse_failpoints(" a=return(1); b=50%sleep(1)->off ;;").unwrap();
    let names: Vec<(&str, &str)> = points.iter().map(|(name, actions)| (name.as_str(), actions.as_str())).collect();
    assert_eq!(names, [("a", "return(1)"), ("b", "50%sleep(1)->off")]);
    assert!(parse_failpoints("a").is_err(), "an entry without '=' is refused");
    assert!(parse_failpoints("a=bogus").is_err());

    let engine = ChaosEngine::builder().failpoints("a=return(1);b=off").build().unwrap();
    assert_eq!(engine.failpoints().len(), 2);
    match ChaosEngine::builder().failpoints("a=sleep").build() {
        Err(EngineError::Action { point, .. }) => assert_eq!(point, "a"),
        other => panic!("expected a typed error, got {other:?}"),
    }
}

/// Re-runs this test binary with `FAILPOINTS` set (the variable cannot be set in-process without `unsafe`).
#[test]
fn the_failpoints_environment_variable_is_honoured() {
    if let Ok(value) = std::env::var("INFRA_CHAOS_CHILD") {
        let engine = ChaosEngine::builder().failpoints_from_env().build().unwrap();
        let listed = engine.failpoints();
        assert_eq!(listed, [("env.point".to_owned(), "return(from-env)".to_owned())], "{value}");
        let returned = engine.scope(|| -> Option<String> {
            infra_chaos::fail_point!("env.point", |arg| arg);
            None
        });
        assert_eq!(returned.as_deref(), Some("from-env"));
        return;
    }
    let output = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "the_failpoints_environment_variable_is_honoured", "--nocapture"])
        .env("FAILPOINTS", "env.point=return(from-env)")
        .env("INFRA_CHAOS_CHILD", "1")
        .output()
        .unwrap();
    assert!(output.status.success(), "child: {}", String::from_utf8_lossy(&output.stderr));
    assert!(String::from_utf8_lossy(&output.stdout).contains("1 passed"));
}

//! Propagation: the W3C specification's valid and invalid `traceparent`/`tracestate` examples, B3,
//! agreement with OpenTelemetry's `TraceContextPropagator` in both directions, and parsers that
//! never panic on any bytes.

use std::collections::HashMap;

use infra_trace::{
    B3Propagator, IdGenerator, RandomIds, SpanContext, SpanId, TraceContextPropagator, TraceFlags, TraceId, TraceState,
    parse_traceparent,
};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use proptest::prelude::*;

fn extract(headers: &[(&str, &str)]) -> Option<SpanContext> {
    TraceContextPropagator.extract(headers).ok().flatten()
}

#[test]
fn the_specification_examples_parse() {
    let ctx = extract(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]).unwrap();
    assert_eq!(ctx.trace_id().to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(ctx.span_id().to_string(), "00f067aa0ba902b7");
    assert!(ctx.is_sampled() && ctx.is_remote());
    let ctx = extract(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-00")]).unwrap();
    assert!(!ctx.is_sampled());
    // Header names in any case.
    assert!(extract(&[("TraceParent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]).is_some());
}

#[test]
fn invalid_traceparents_are_ignored() {
    let invalid = [
        "",
        "00",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00F067AA0BA902B7-01",
        "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
        "ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "0g-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-0x",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-extra",
        "00_4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        "00-4bf92f3577b34da6a3ce929d0e0e473-00f067aa0ba902b7-001",
        "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01.what",
        "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01\u{0}",
    ];
    for header in invalid {
        assert!(extract(&[("traceparent", header)]).is_none(), "{header:?} must be ignored");
    }
    // Two traceparent headers: ambiguous, so ignored.
    let twice = [
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"),
        ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4737-00f067aa0ba902b7-01"),
    ];
    assert!(TraceContextPropagator.extract(&twice[..]).is_err());
}

#[test]
fn higher_versions_are_parsed_as_far_as_version_00_goes() {
    let ctx =
        extract(&[("traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-what-the-future-holds")])
            .unwrap();
    assert_eq!(ctx.span_id().to_string(), "00f067aa0ba902b7");
    assert!(extract(&[("traceparent", "cc-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")]).is_some());
    // Reserved flag bits are not passed on: version 00 output only carries sampled and random.
    let ctx = extract(&[("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-ff")]).unwrap();
    let mut out = HashMap::new();
    TraceContextPropagator.inject(&ctx, &mut out);
    assert!(out["traceparent"].ends_with("-03"));
}

#[test]
fn tracestate_rides_along_and_a_bad_one_does_not_spoil_traceparent() {
    let parent = ("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01");
    let ctx = extract(&[parent, ("tracestate", "rojo=00f067aa0ba902b7"), ("tracestate", "congo=t61rcWkgMzE")]).unwrap();
    assert_eq!(ctx.trace_state().header(), "rojo=00f067aa0ba902b7,congo=t61rcWkgMzE");
    let ctx = extract(&[parent, ("tracestate", "rojo=1,rojo=2")]).unwrap();
    assert!(ctx.trace_state().is_empty());
    let ctx = extract(&[parent, ("tracestate", "")]).unwrap();
    assert!(ctx.trace_state().is_empty());
    let mut out = HashMap::new();
    let state = TraceState::parse("rojo=00f067aa0ba902b7").unwrap();
    TraceContextPropagator.inject(&ctx.with_trace_state(state), &mut out);
    assert_eq!(out["tracestate"], "rojo=00f067aa0ba902b7");
}

#[test]
fn b3_single_and_multiple_round_trip() {
    let ctx = SpanContext::new(
        TraceId::from_u128(0x4bf9_2f35_77b3_4da6_a3ce_929d_0e0e_4736),
        SpanId::from_u64(0x00f0_67aa_0ba9_02b7),
        TraceFlags::SAMPLED,
        false,
        TraceState::EMPTY,
    );
    for format in [B3Propagator::Single, B3Propagator::Multiple] {
        let mut headers: HashMap<String, String> = HashMap::new();
        format.inject(&ctx, &mut headers);
        let back = format.extract(&headers).unwrap().unwrap();
        assert_eq!((back.trace_id(), back.span_id(), back.is_sampled()), (ctx.trace_id(), ctx.span_id(), true));
    }
    let short = [("b3", "a3ce929d0e0e4736-00f067aa0ba902b7-d-0000000000000001")];
    let back = B3Propagator::Single.extract(&short[..]).unwrap().unwrap();
    assert_eq!(back.trace_id().to_string(), "0000000000000000a3ce929d0e0e4736");
    assert!(back.is_sampled(), "debug implies sampled");
    assert_eq!(B3Propagator::Single.extract(&[("b3", "0")][..]).unwrap(), None);
    assert!(B3Propagator::Single.extract(&[("b3", "xyz-00f067aa0ba902b7")][..]).is_err());
    let multi = [("X-B3-TraceId", "a3ce929d0e0e4736"), ("X-B3-SpanId", "00f067aa0ba902b7"), ("X-B3-Flags", "1")];
    assert!(B3Propagator::Multiple.extract(&multi[..]).unwrap().unwrap().is_sampled());
}

fn random_context(sampled: bool, state: &TraceState) -> SpanContext {
    SpanContext::new(
        RandomIds.new_trace_id(),
        RandomIds.new_span_id(),
        TraceFlags::NONE.with_sampled(sampled),
        false,
        state.clone(),
    )
}

#[test]
fn opentelemetry_reads_what_we_write_and_we_read_what_it_writes() {
    let otel = opentelemetry_sdk::propagation::TraceContextPropagator::new();
    let states = [
        TraceState::EMPTY,
        TraceState::parse("rojo=00f067aa0ba902b7,congo=t61rcWkgMzE").unwrap(),
        TraceState::parse("tenant@system=v,k=  spaced value").unwrap(),
    ];
    for i in 0..3000 {
        let ours = random_context(i % 2 == 0, &states[i % 3]);
        let mut headers: HashMap<String, String> = HashMap::new();
        TraceContextPropagator.inject(&ours, &mut headers);
        let theirs = otel.extract(&headers);
        let span = theirs.span();
        let theirs = span.span_context();
        assert_eq!(theirs.trace_id().to_bytes(), ours.trace_id().to_bytes());
        assert_eq!(theirs.span_id().to_bytes(), ours.span_id().to_bytes());
        assert_eq!(theirs.is_sampled(), ours.is_sampled());
        assert!(theirs.is_remote());
        assert_eq!(theirs.trace_state().header(), ours.trace_state().header());

        // And back: OpenTelemetry injects, we extract.
        let mut back: HashMap<String, String> = HashMap::new();
        otel.inject_context(&opentelemetry::Context::new().with_remote_span_context(theirs.clone()), &mut back);
        let again = TraceContextPropagator.extract(&back).unwrap().unwrap();
        assert_eq!(again.trace_id(), ours.trace_id());
        assert_eq!(again.span_id(), ours.span_id());
        assert_eq!(again.is_sampled(), ours.is_sampled());
        assert_eq!(again.trace_state(), ours.trace_state());
    }
}

proptest! {
    #[test]
    fn parsers_never_panic_on_any_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
        let text = String::from_utf8_lossy(&bytes);
        let _ = parse_traceparent(&text);
        let _ = TraceState::parse(&text);
        let headers = [("traceparent", &*text), ("tracestate", &*text), ("b3", &*text), ("x-b3-traceid", &*text)];
        let _ = TraceContextPropagator.extract(&headers[..]);
        let _ = B3Propagator::Single.extract(&headers[..]);
    }

    #[test]
    fn near_valid_traceparents_never_panic_and_round_trip_when_valid(
        version in "[0-9a-f]{2}", trace in "[0-9a-fA-F]{32}", span in "[0-9a-f]{16}", flags in "[0-9a-f]{2}",
        tail in "(-[a-z0-9]{0,8})?",
    ) {
        let header = format!("{version}-{trace}-{span}-{flags}{tail}");
        if let Ok((trace_id, span_id, flags)) = parse_traceparent(&header) {
            prop_assert!(version != "ff");
            prop_assert!(tail.is_empty() || version != "00");
            prop_assert_eq!(trace_id.to_string(), trace.clone());
            let ctx = SpanContext::new(trace_id, span_id, flags, true, TraceState::EMPTY);
            let written = infra_trace::traceparent(&ctx);
            prop_assert_eq!(&written[3..52], &header[3..52]);
        }
    }
}

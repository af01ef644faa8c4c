//! Which traces are recorded.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::context::SpanContext;
use crate::data::SpanKind;
use crate::id::TraceId;

/// What a sampler is told about a span about to start.
#[derive(Debug, Clone, Copy)]
pub struct SamplingInput<'a> {
    /// The parent, local or remote; `None` for a root.
    pub parent: Option<&'a SpanContext>,
    /// The trace id the span will have.
    pub trace_id: TraceId,
    /// The operation.
    pub name: &'a str,
    /// Its kind.
    pub kind: SpanKind,
}

/// A custom sampling decision.
pub trait ShouldSample: Send + Sync + fmt::Debug + 'static {
    /// Whether to record this span (and mark it sampled for the services downstream).
    fn should_sample(&self, input: &SamplingInput<'_>) -> bool;
}

/// Which traces are recorded. Unsampled spans still carry valid ids, so the trace continues
/// downstream with its sampled flag cleared, but cost a few nanoseconds and are never exported.
#[derive(Clone)]
pub enum Sampler {
    /// Record everything.
    AlwaysOn,
    /// Record nothing.
    AlwaysOff,
    /// Record this fraction of traces, decided from the trace id exactly as OpenTelemetry's
    /// `TraceIdRatioBased` does, so every service with the same ratio keeps the same traces.
    TraceIdRatio(f64),
    /// Follow the parent's sampled flag (local or remote); ask the inner sampler for roots.
    ParentBased(Box<Sampler>),
    /// At most N new traces a second (a smooth rate, bursts of up to one second's worth).
    RateLimited(Arc<RateLimiter>),
    /// Your own rule.
    Custom(Arc<dyn ShouldSample>),
}

impl fmt::Debug for Sampler {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Sampler::AlwaysOn => f.write_str("AlwaysOn"),
            Sampler::AlwaysOff => f.write_str("AlwaysOff"),
            Sampler::TraceIdRatio(ratio) => write!(f, "TraceIdRatio({ratio})"),
            Sampler::ParentBased(root) => write!(f, "ParentBased({root:?})"),
            Sampler::RateLimited(limiter) => write!(f, "RateLimited({}/s)", limiter.per_second),
            Sampler::Custom(custom) => write!(f, "Custom({custom:?})"),
        }
    }
}

impl Sampler {
    /// The seed's `sample_rate`: a consistent trace-id ratio under a parent-based rule, so a
    /// sampled caller's trace is always continued. Rates outside 0..=1 are clamped.
    pub fn ratio(rate: f64) -> Sampler {
        Sampler::ParentBased(Box::new(Sampler::TraceIdRatio(clamp_rate(rate))))
    }

    /// Parent-based with this sampler for roots.
    pub fn parent_based(root: Sampler) -> Sampler {
        Sampler::ParentBased(Box::new(root))
    }

    /// At most `per_second` new traces a second, under a parent-based rule. The limiter reads the
    /// tracer's clock.
    pub fn rate_limited(per_second: f64) -> Sampler {
        Sampler::ParentBased(Box::new(Sampler::RateLimited(Arc::new(RateLimiter::new(per_second)))))
    }

    /// Whether a child of an unsampled parent is never sampled (always off, or parent-based): then
    /// the tracer can skip the decision for children of unsampled local spans.
    #[inline]
    pub(crate) fn follows_unsampled_parent(&self) -> bool {
        matches!(self, Sampler::AlwaysOff | Sampler::ParentBased(_))
    }

    /// The decision the tracer asks for: the common samplers (on, off, ratio, alone or as the root rule of
    /// a parent-based one) decided inline from values in registers; the others through
    /// [`Sampler::decide`], with the input built in memory. (Building it for every span cost more than
    /// an unsampled span's whole budget: the trace id, stored in halves and read back whole, stalls.)
    #[inline(always)]
    pub(crate) fn decide_span(
        &self,
        parent: Option<&SpanContext>,
        trace_id: TraceId,
        name: &str,
        kind: SpanKind,
        now: impl Fn() -> u64,
    ) -> bool {
        let for_root = match self {
            Sampler::ParentBased(root) => match parent {
                Some(parent) if parent.is_valid() => return parent.is_sampled(),
                _ => &**root,
            },
            other => other,
        };
        match for_root {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => ratio_keeps(*ratio, trace_id),
            // The id goes by value, as 128 bits in two registers: its address is never taken here.
            _ => self.decide_out_of_line(parent, trace_id.to_u128(), name, kind, &now),
        }
    }

    #[inline(never)]
    fn decide_out_of_line(
        &self,
        parent: Option<&SpanContext>,
        trace_id: u128,
        name: &str,
        kind: SpanKind,
        now: &dyn Fn() -> u64,
    ) -> bool {
        self.decide(&SamplingInput { parent, trace_id: TraceId::from_u128(trace_id), name, kind }, now)
    }

    /// The decision for a span, `now_nanos` on the tracer's clock.
    #[inline]
    pub(crate) fn decide(&self, input: &SamplingInput<'_>, now: impl Fn() -> u64) -> bool {
        match self {
            Sampler::AlwaysOn => true,
            Sampler::AlwaysOff => false,
            Sampler::TraceIdRatio(ratio) => ratio_keeps(*ratio, input.trace_id),
            Sampler::ParentBased(root) => match input.parent {
                Some(parent) if parent.is_valid() => parent.is_sampled(),
                _ => root.decide(input, now),
            },
            Sampler::RateLimited(limiter) => limiter.try_acquire(now()),
            Sampler::Custom(custom) => custom.should_sample(input),
        }
    }
}

fn clamp_rate(rate: f64) -> f64 {
    if rate.is_nan() { 0.0 } else { rate.clamp(0.0, 1.0) }
}

/// OpenTelemetry's rule: keep the trace when the low 63 bits of its id's last eight bytes fall
/// below `ratio` of 2^63.
#[inline(always)]
fn ratio_keeps(ratio: f64, trace_id: TraceId) -> bool {
    if ratio >= 1.0 {
        return true;
    }
    let bound = (clamp_rate(ratio) * (1u64 << 63) as f64) as u64;
    let low = (trace_id.to_u128() as u64) >> 1;
    low < bound
}

/// A smooth rate limit (the generic cell rate algorithm): each kept trace pushes a theoretical
/// arrival time forward by 1/N second; a trace is kept while that time is no more than one second
/// ahead of now. One compare-and-swap per root span, no lock.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    spacing_nanos: u64,
    theoretical_arrival: AtomicU64,
}

impl RateLimiter {
    /// A limiter keeping at most `per_second` traces a second (zero or less keeps none).
    pub fn new(per_second: f64) -> Self {
        let spacing_nanos =
            if per_second > 0.0 && per_second.is_finite() { (1e9 / per_second).max(1.0) as u64 } else { u64::MAX };
        RateLimiter { per_second, spacing_nanos, theoretical_arrival: AtomicU64::new(0) }
    }

    /// Whether one more trace may be kept at `now_nanos`.
    pub fn try_acquire(&self, now_nanos: u64) -> bool {
        if self.spacing_nanos == u64::MAX {
            return false;
        }
        let burst = 1_000_000_000u64;
        let mut tat = self.theoretical_arrival.load(Ordering::Relaxed);
        loop {
            let start = tat.max(now_nanos);
            let next = start.saturating_add(self.spacing_nanos);
            if next > now_nanos.saturating_add(burst) {
                return false;
            }
            match self.theoretical_arrival.compare_exchange_weak(tat, next, Ordering::Relaxed, Ordering::Relaxed) {
                Ok(_) => return true,
                Err(seen) => tat = seen,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::id::{IdGenerator, RandomIds};

    fn root(trace_id: TraceId) -> SamplingInput<'static> {
        SamplingInput { parent: None, trace_id, name: "op", kind: SpanKind::Internal }
    }

    #[test]
    fn ratio_keeps_about_the_ratio_and_is_consistent() {
        let sampler = Sampler::TraceIdRatio(0.25);
        let ids: Vec<TraceId> = (0..100_000).map(|_| RandomIds.new_trace_id()).collect();
        let kept = ids.iter().filter(|id| sampler.decide(&root(**id), || 0)).count();
        assert!((23_500..26_500).contains(&kept), "kept {kept} of 100000 at 0.25");
        for id in &ids[..1000] {
            assert_eq!(sampler.decide(&root(*id), || 0), sampler.decide(&root(*id), || 0));
        }
        assert!(!Sampler::TraceIdRatio(0.0).decide(&root(ids[0]), || 0));
        assert!(Sampler::TraceIdRatio(1.0).decide(&root(ids[0]), || 0));
    }

    #[test]
    fn parent_based_follows_the_parent() {
        use crate::context::{SpanContext, TraceState};
        use crate::id::{SpanId, TraceFlags};
        let sampler = Sampler::parent_based(Sampler::AlwaysOff);
        let id = RandomIds.new_trace_id();
        let sampled = SpanContext::new(id, SpanId::from_u64(1), TraceFlags::SAMPLED, true, TraceState::EMPTY);
        let unsampled = SpanContext::new(id, SpanId::from_u64(1), TraceFlags::NONE, true, TraceState::EMPTY);
        let with = |p| SamplingInput { parent: Some(p), trace_id: id, name: "op", kind: SpanKind::Server };
        assert!(sampler.decide(&with(&sampled), || 0));
        assert!(!sampler.decide(&with(&unsampled), || 0));
        assert!(!sampler.decide(&root(id), || 0));
    }

    #[test]
    fn rate_limiter_keeps_n_a_second_on_the_given_clock() {
        let limiter = RateLimiter::new(10.0);
        let second = 1_000_000_000u64;
        let start = 50 * second;
        let kept_at_once = (0..100).filter(|_| limiter.try_acquire(start)).count();
        assert_eq!(kept_at_once, 10, "a burst of one second's worth");
        // A further ten seconds at a steady flood keep ten a second.
        let kept: usize = (1..=10_000).filter(|i| limiter.try_acquire(start + i * second / 1000)).count();
        assert!((99..=101).contains(&kept), "kept {kept} in 10 s at 10/s");
        assert!(!RateLimiter::new(0.0).try_acquire(start));
    }
}

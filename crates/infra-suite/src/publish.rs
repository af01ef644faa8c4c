//! Stats the components keep for themselves, published as APM metrics: flag evaluations, pool and cache
//! stats. Each publisher runs at [`crate::InfraSuite::publish_metrics`] (every `evaluate`, every scrape
//! of the ops server's `/metrics`), turning running totals into counter increments and levels into
//! gauges.

use std::collections::HashMap;

use infra_apm::Collector;

/// Publishes one component's stats into APM; keeps what it needs to turn totals into increments.
pub(crate) type Publisher = Box<dyn FnMut(&Collector) + Send>;

/// Turns running totals into counter increments: a counter only goes up by what the total grew since
/// the last publication (a total that went down, after a component restart, starts over).
#[derive(Default)]
pub(crate) struct Totals {
    last: HashMap<(String, Vec<(String, String)>), u64>,
}

impl Totals {
    pub(crate) fn publish(&mut self, apm: &Collector, name: &str, labels: &[(&str, &str)], total: u64) {
        let key = (name.to_owned(), labels.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect());
        let last = self.last.entry(key).or_insert(0);
        let grown = total.checked_sub(*last).unwrap_or(total);
        *last = total;
        // An increment of zero registers the series, so it shows before the first event; a name the
        // registry refuses (cardinality limit) is counted there.
        let _ = apm.increment_counter(name, grown, labels);
    }
}

/// Every flag's evaluations, `flag_evaluations_total{flag, result}`.
pub(crate) fn flags(flags: infra_flags::Flags) -> Publisher {
    let mut totals = Totals::default();
    Box::new(move |apm| {
        for flag in flags.all_flags() {
            let name = flag.definition.name.as_str();
            totals.publish(apm, "flag_evaluations_total", &[("flag", name), ("result", "enabled")], flag.analytics.yes);
            totals.publish(apm, "flag_evaluations_total", &[("flag", name), ("result", "disabled")], flag.analytics.no);
        }
    })
}

/// A pool's state and totals, labelled `pool`.
#[cfg(feature = "pool")]
pub(crate) fn pool(name: String, stats: impl Fn() -> infra_pool::PoolStats + Send + 'static) -> Publisher {
    let mut totals = Totals::default();
    Box::new(move |apm| {
        let stats = stats();
        let pool = name.as_str();
        let _ = apm.set_gauge("pool_connections", stats.idle as f64, &[("pool", pool), ("state", "idle")]);
        let _ = apm.set_gauge("pool_connections", stats.in_use as f64, &[("pool", pool), ("state", "in_use")]);
        let _ = apm.set_gauge("pool_max_connections", stats.max_size as f64, &[("pool", pool)]);
        let _ = apm.set_gauge("pool_waiters", stats.waiters as f64, &[("pool", pool)]);
        totals.publish(apm, "pool_acquisitions_total", &[("pool", pool)], stats.acquisitions);
        totals.publish(apm, "pool_waits_total", &[("pool", pool)], stats.waited);
        totals.publish(apm, "pool_timeouts_total", &[("pool", pool)], stats.timeouts);
        totals.publish(apm, "pool_create_failures_total", &[("pool", pool)], stats.create_failures);
        totals.publish(apm, "pool_closed_broken_total", &[("pool", pool)], stats.closed_broken);
    })
}

/// A cache's hits, misses, evictions and size, labelled `cache`.
#[cfg(feature = "cache")]
pub(crate) fn cache(name: String, stats: impl Fn() -> infra_cache::CacheStats + Send + 'static) -> Publisher {
    let mut totals = Totals::default();
    Box::new(move |apm| {
        let stats = stats();
        let cache = name.as_str();
        totals.publish(apm, "cache_requests_total", &[("cache", cache), ("result", "hit")], stats.hits);
        totals.publish(apm, "cache_requests_total", &[("cache", cache), ("result", "miss")], stats.misses);
        totals.publish(apm, "cache_evictions_total", &[("cache", cache)], stats.removals.evictions());
        totals.publish(apm, "cache_load_failures_total", &[("cache", cache)], stats.load_failures);
        let _ = apm.set_gauge("cache_entries", stats.entries as f64, &[("cache", cache)]);
        let _ = apm.set_gauge("cache_weight", stats.weight as f64, &[("cache", cache)]);
        let requests = stats.hits + stats.misses;
        if requests > 0 {
            let _ = apm.set_gauge("cache_hit_ratio", stats.hits as f64 / requests as f64, &[("cache", cache)]);
        }
    })
}

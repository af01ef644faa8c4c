//! The text formats: Prometheus exposition 0.0.4 and OpenMetrics 1.0.
//!
//! Counters are exposed with the `_total` suffix (added when the name lacks it), histograms as
//! cumulative `_bucket` series with `le`, plus `_sum` and `_count`. Label values escape backslash,
//! double quote and newline; help text escapes backslash and newline. What the collector refused is
//! exposed too: `infra_apm_rejected_observations_total{metric=..}` (NaN, infinite or negative values) and
//! `infra_apm_rejected_label_sets_total{metric=..}` (label sets beyond the cardinality limit, whose
//! values went to the metric's `overflow="true"` series).

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use crate::collector::{Cell, Family, Kind};

/// The text formats the collector writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Prometheus text exposition format 0.0.4.
    Prometheus,
    /// OpenMetrics 1.0 text.
    OpenMetrics,
}

impl Format {
    /// The `Content-Type` of a response in this format.
    pub fn content_type(self) -> &'static str {
        match self {
            Format::Prometheus => "text/plain; version=0.0.4; charset=utf-8",
            Format::OpenMetrics => "application/openmetrics-text; version=1.0.0; charset=utf-8",
        }
    }

    /// The format a scraper asks for in its `Accept` header: OpenMetrics when it lists it, else 0.0.4.
    pub fn from_accept(accept: &str) -> Format {
        if accept.split(',').any(|part| part.trim().starts_with("application/openmetrics-text")) {
            Format::OpenMetrics
        } else {
            Format::Prometheus
        }
    }
}

/// Renders every family in `format`.
///
/// In OpenMetrics, a counter family is named without `_total` and its sample with it, and the text
/// ends with `# EOF`.
pub(crate) fn render(families: &BTreeMap<String, Family>, buckets: &[f64], format: Format) -> String {
    let mut out = String::new();
    let mut rejected_observations: Vec<(&str, u64)> = Vec::new();
    let mut rejected_label_sets: Vec<(&str, u64)> = Vec::new();
    for (name, family) in families {
        let exposed = match family.kind {
            Kind::Counter if !name.ends_with("_total") => format!("{name}_total"),
            _ => name.clone(),
        };
        // OpenMetrics names the counter family without the suffix its samples carry.
        let family_name = match (format, family.kind) {
            (Format::OpenMetrics, Kind::Counter) => exposed.trim_end_matches("_total").to_owned(),
            _ => exposed.clone(),
        };
        if !family.help.is_empty() {
            let _ = writeln!(out, "# HELP {family_name} {}", escape_help(&family.help));
        }
        let _ = writeln!(out, "# TYPE {family_name} {}", family.kind.name());
        if let (Format::OpenMetrics, Some(unit)) = (format, &family.unit) {
            let _ = writeln!(out, "# UNIT {family_name} {unit}");
        }
        let overflow_labels = [("overflow".to_owned(), "true".to_owned())];
        let overflow = family.overflow.as_ref().map(|cell| (&overflow_labels[..], cell));
        let mut rejected = 0;
        for (labels, cell) in family.series.iter().map(|(labels, cell)| (&labels[..], cell)).chain(overflow) {
            rejected += series(&mut out, &exposed, labels, cell, buckets, format);
        }
        if rejected > 0 {
            rejected_observations.push((name, rejected));
        }
        if family.rejected_label_sets > 0 {
            rejected_label_sets.push((name, family.rejected_label_sets));
        }
    }
    for (metric, help, counts) in [
        (
            "infra_apm_rejected_observations_total",
            "Values refused because they were NaN, infinite, or negative for a histogram.",
            rejected_observations,
        ),
        (
            "infra_apm_rejected_label_sets_total",
            "Label sets refused by the cardinality limit; their values went to the overflow series.",
            rejected_label_sets,
        ),
    ] {
        if counts.is_empty() {
            continue;
        }
        let family_name = match format {
            Format::OpenMetrics => metric.trim_end_matches("_total"),
            Format::Prometheus => metric,
        };
        let _ = writeln!(out, "# HELP {family_name} {help}");
        let _ = writeln!(out, "# TYPE {family_name} counter");
        for (name, count) in counts {
            let _ = writeln!(out, "{metric}{{metric=\"{}\"}} {count}", escape_label_value(name));
        }
    }
    if format == Format::OpenMetrics {
        out.push_str("# EOF\n");
    }
    out
}

/// Writes one series; returns the values it refused.
fn series(
    out: &mut String,
    name: &str,
    labels: &[(String, String)],
    cell: &Cell,
    buckets: &[f64],
    format: Format,
) -> u64 {
    match cell {
        Cell::Counter(counter) => {
            sample(out, name, "", labels, None);
            let _ = writeln!(out, " {}", counter.value());
            0
        }
        Cell::Gauge(gauge) => {
            sample(out, name, "", labels, None);
            let _ = writeln!(out, " {}", float(gauge.value()));
            gauge.rejected.load(Ordering::Relaxed)
        }
        Cell::Histogram(histogram) => {
            let snapshot = histogram.snapshot();
            for &bound in buckets {
                let le = match format {
                    // OpenMetrics wants bucket bounds as canonical floats: `1.0`, not `1`.
                    Format::OpenMetrics => canonical_float(bound),
                    Format::Prometheus => float(bound),
                };
                let count = snapshot.count_at_or_below(bound).min(snapshot.count);
                sample(out, name, "_bucket", labels, Some(&le));
                let _ = writeln!(out, " {count}");
            }
            sample(out, name, "_bucket", labels, Some("+Inf"));
            let _ = writeln!(out, " {}", snapshot.count);
            sample(out, name, "_sum", labels, None);
            let _ = writeln!(out, " {}", float(snapshot.sum));
            sample(out, name, "_count", labels, None);
            let _ = writeln!(out, " {}", snapshot.count);
            snapshot.rejected
        }
    }
}

/// Writes a sample's name and label set, `name_suffix{a="x",b="y",le=".."}` (no braces without labels),
/// straight into the output: rendering allocates nothing per series.
fn sample(out: &mut String, name: &str, suffix: &str, labels: &[(String, String)], le: Option<&str>) {
    out.push_str(name);
    out.push_str(suffix);
    if labels.is_empty() && le.is_none() {
        return;
    }
    out.push('{');
    for (index, (label, value)) in labels.iter().enumerate() {
        if index > 0 {
            out.push(',');
        }
        out.push_str(label);
        out.push_str("=\"");
        push_escaped(out, value);
        out.push('"');
    }
    if let Some(le) = le {
        if !labels.is_empty() {
            out.push(',');
        }
        out.push_str("le=\"");
        out.push_str(le);
        out.push('"');
    }
    out.push('}');
}

/// Appends a label value with backslash, double quote and newline escaped.
fn push_escaped(out: &mut String, value: &str) {
    if !value.contains(['\\', '"', '\n']) {
        out.push_str(value);
        return;
    }
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
}

fn escape_label_value(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    push_escaped(&mut out, value);
    out
}

fn escape_help(help: &str) -> String {
    help.replace('\\', "\\\\").replace('\n', "\\n")
}

/// A sample value as Prometheus parses it.
fn float(value: f64) -> String {
    if value.is_nan() {
        "NaN".to_owned()
    } else if value == f64::INFINITY {
        "+Inf".to_owned()
    } else if value == f64::NEG_INFINITY {
        "-Inf".to_owned()
    } else {
        format!("{value}")
    }
}

/// A float with a decimal point or an exponent, as OpenMetrics wants for `le`.
fn canonical_float(value: f64) -> String {
    let text = float(value);
    if text.contains(['.', 'e', 'E', 'I', 'N']) { text } else { format!("{text}.0") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_what_the_format_requires() {
        assert_eq!(escape_label_value("a\\b\"c\nd"), "a\\\\b\\\"c\\nd");
        assert_eq!(escape_help("two\nlines \\ here"), "two\\nlines \\\\ here");
        assert_eq!(float(f64::INFINITY), "+Inf");
        assert_eq!(float(0.25), "0.25");
        assert_eq!(float(1.0), "1");
        assert_eq!(canonical_float(1.0), "1.0");
        assert_eq!(canonical_float(0.25), "0.25");
        assert_eq!(
            Format::from_accept("application/openmetrics-text;version=1.0.0,text/plain;q=0.5"),
            Format::OpenMetrics
        );
        assert_eq!(Format::from_accept("text/plain"), Format::Prometheus);
    }
}

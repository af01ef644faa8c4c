//! Prometheus's naming rules, checked once when a series is first asked for.

use crate::error::ApmError;

/// Checks a metric name: `[a-zA-Z_:][a-zA-Z0-9_:]*`.
pub(crate) fn check_metric(name: &str) -> Result<(), ApmError> {
    let invalid = |reason| Err(ApmError::InvalidMetricName { name: name.to_owned(), reason });
    let mut chars = name.chars();
    match chars.next() {
        None => return invalid("it is empty"),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_' || first == ':') => {
            return invalid("it must start with a letter, '_' or ':'");
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':') {
        return invalid("it may hold only ASCII letters, digits, '_' and ':'");
    }
    Ok(())
}

/// Checks a label name: `[a-zA-Z_][a-zA-Z0-9_]*`, not starting with `__` (reserved), not `le`/`quantile`
/// on the instruments that use them.
pub(crate) fn check_label(metric: &str, label: &str, reserved: &[&str]) -> Result<(), ApmError> {
    let invalid =
        |reason| Err(ApmError::InvalidLabelName { metric: metric.to_owned(), label: label.to_owned(), reason });
    let mut chars = label.chars();
    match chars.next() {
        None => return invalid("it is empty"),
        Some(first) if !(first.is_ascii_alphabetic() || first == '_') => {
            return invalid("it must start with a letter or '_'");
        }
        Some(_) => {}
    }
    if !chars.all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return invalid("it may hold only ASCII letters, digits and '_'");
    }
    if label.starts_with("__") {
        return invalid("names starting with __ are reserved for Prometheus");
    }
    if reserved.contains(&label) {
        return invalid("this instrument's exposition uses that label itself");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_prometheus() {
        assert!(check_metric("http_requests_total").is_ok());
        assert!(check_metric("ns:rate_5m").is_ok());
        assert!(check_metric("").is_err());
        assert!(check_metric("9lives").is_err());
        assert!(check_metric("latency-ms").is_err());
        assert!(check_metric("größe").is_err());
        assert!(check_label("m", "venue", &[]).is_ok());
        assert!(check_label("m", "__name__", &[]).is_err());
        assert!(check_label("m", "le", &["le"]).is_err());
        assert!(check_label("m", "a:b", &[]).is_err());
    }
}

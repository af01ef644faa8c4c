//! A horizontal bar chart of medians as a self-contained SVG: no fonts, scripts or links to fetch, so it
//! renders the same in a browser, an editor preview or a code host.

use std::fmt::Write as _;

/// One bar: a labelled median, drawn in the accent colour when it is ours.
#[derive(Debug, Clone)]
pub(crate) struct Bar {
    pub(crate) label: String,
    pub(crate) value_ns: f64,
    pub(crate) ours: bool,
}

const WIDTH: f64 = 760.0;
const LABEL_WIDTH: f64 = 250.0;
const VALUE_WIDTH: f64 = 90.0;
const ROW: f64 = 26.0;
const TOP: f64 = 36.0;

fn escape(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

/// Renders `bars` under `title`, bar lengths proportional to the medians (linear from zero, so lengths
/// compare honestly).
pub(crate) fn render(title: &str, bars: &[Bar]) -> String {
    let height = TOP + ROW * bars.len() as f64 + 12.0;
    let max = bars.iter().map(|b| b.value_ns).fold(0.0_f64, f64::max).max(f64::MIN_POSITIVE);
    let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20.0;
    let mut svg = String::new();
    let _ = writeln!(
        svg,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="13">"#
    );
    let _ = writeln!(svg, r##"<rect width="100%" height="100%" fill="#ffffff"/>"##);
    let _ = writeln!(
        svg,
        r#"<text x="10" y="22" font-size="15" font-weight="bold">{} (median time per operation, shorter is faster)</text>"#,
        escape(title)
    );
    for (i, bar) in bars.iter().enumerate() {
        let y = TOP + ROW * i as f64;
        let length = (bar.value_ns / max * span).max(1.0);
        let colour = if bar.ours { "#d9480f" } else { "#4263eb" };
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}" text-anchor="end">{}</text>"#,
            LABEL_WIDTH - 8.0,
            y + 15.0,
            escape(&bar.label)
        );
        let _ = writeln!(
            svg,
            r#"<rect x="{LABEL_WIDTH}" y="{:.1}" width="{length:.1}" height="{:.1}" fill="{colour}"/>"#,
            y + 3.0,
            ROW - 8.0
        );
        let _ = writeln!(
            svg,
            r#"<text x="{:.1}" y="{:.1}">{}</text>"#,
            LABEL_WIDTH + length + 6.0,
            y + 15.0,
            escape(&crate::bench::format_duration(bar.value_ns))
        );
    }
    svg.push_str("</svg>\n");
    svg
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_escaped_proportional_bars() {
        let bars = [
            Bar { label: "infra<x>".into(), value_ns: 10.0, ours: true },
            Bar { label: "peer".into(), value_ns: 20.0, ours: false },
        ];
        let svg = render("grp & co", &bars);
        assert!(svg.starts_with("<svg"));
        assert!(svg.contains("infra&lt;x&gt;"));
        assert!(svg.contains("grp &amp; co"));
        let span = WIDTH - LABEL_WIDTH - VALUE_WIDTH - 20.0;
        assert!(svg.contains(&format!("width=\"{:.1}\"", span)), "the slowest bar spans the chart");
        assert!(svg.contains(&format!("width=\"{:.1}\"", span / 2.0)), "half the time, half the length");
    }
}

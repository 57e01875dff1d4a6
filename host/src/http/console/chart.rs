//! Bar charts drawn on the server as SVG: no script, nothing fetched. Heights are drawing only; every value
//! is also written out exactly, in each bar's tooltip and in the table beside the chart.

use maud::{Markup, html};
use rust_decimal::Decimal;
use rust_decimal::prelude::ToPrimitive;

/// One kind of bar, with a value (as shown) per label.
pub struct Series {
    pub name: &'static str,
    /// The CSS class that colours it.
    pub class: &'static str,
    pub values: Vec<Decimal>,
}

const WIDTH: f64 = 720.0;
const HEIGHT: f64 = 180.0;
const AXIS: f64 = 20.0;

/// Grouped bars, one group per label.
pub fn bars(caption: &str, labels: &[String], series: &[Series]) -> Markup {
    let top = series
        .iter()
        .flat_map(|s| s.values.iter())
        .copied()
        .max()
        .unwrap_or_default()
        .max(Decimal::ONE);
    let groups = labels.len().max(1) as f64;
    let slot = WIDTH / groups;
    let bar = (slot * 0.8 / series.len().max(1) as f64).max(1.0);
    let label_every = (labels.len() / 12).max(1);
    html! {
        figure class="chart" {
            figcaption { (caption) }
            svg viewBox=(format!("0 0 {WIDTH} {}", HEIGHT + AXIS)) role="img" aria-label=(caption) {
                line x1="0" y1=(HEIGHT) x2=(WIDTH) y2=(HEIGHT) class="axis" {}
                @for (i, label) in labels.iter().enumerate() {
                    @for (j, s) in series.iter().enumerate() {
                        @let value = s.values.get(i).copied().unwrap_or_default();
                        @let h = (value / top).to_f64().unwrap_or(0.0) * (HEIGHT - 4.0);
                        rect class=(s.class) x=(format!("{:.1}", i as f64 * slot + slot * 0.1 + j as f64 * bar))
                            y=(format!("{:.1}", HEIGHT - h)) width=(format!("{bar:.1}")) height=(format!("{h:.1}")) {
                            title { (label) " · " (s.name) ": " (value) }
                        }
                    }
                    @if i % label_every == 0 {
                        text x=(format!("{:.1}", i as f64 * slot + slot / 2.0)) y=(HEIGHT + 14.0) text-anchor="middle" { (label) }
                    }
                }
            }
            p class="legend" {
                @for s in series { span class=(format!("key {}", s.class)) {} (s.name) " " }
                "(highest: " (top) ")"
            }
            details {
                summary { "Values" }
                table {
                    thead { tr { th scope="col" { "" } @for s in series { th scope="col" { (s.name) } } } }
                    tbody {
                        @for (i, label) in labels.iter().enumerate() {
                            tr { th scope="row" { (label) } @for s in series { td class="num" { (s.values.get(i).copied().unwrap_or_default()) } } }
                        }
                    }
                }
            }
        }
    }
}

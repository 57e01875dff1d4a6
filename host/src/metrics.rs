//! Prometheus metrics, served at `GET /metrics` in the text exposition format: events accepted and
//! finished, rule evaluation time, webhook deliveries by outcome, rate-limited requests and dropped request
//! logs, counted by this process since it started; the event queue's depth and lag, read from the database
//! (shared by every process) when scraped.

use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::LazyLock;
use std::sync::atomic::AtomicU64;
use std::time::Duration;

type Labels = Vec<(&'static str, &'static str)>;

struct Metrics {
    registry: Registry,
    events_accepted: Counter,
    events_finished: Family<Labels, Counter>,
    rule_evaluation: Histogram,
    webhook_deliveries: Family<Labels, Counter>,
    rate_limited: Counter,
    request_logs_dropped: Counter,
    queue_depth: Gauge,
    queue_lag: Gauge<f64, AtomicU64>,
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let mut registry = Registry::with_prefix("scrip");
    let events_accepted = Counter::default();
    registry.register(
        "events_accepted",
        "Events accepted for processing",
        events_accepted.clone(),
    );
    let events_finished = Family::<Labels, Counter>::default();
    registry.register(
        "events_processed",
        "Event processing attempts by outcome: completed, failed (for good) or retried",
        events_finished.clone(),
    );
    // From 50 µs to about 1.6 s: CEL rules take microseconds, wasm rules up to their fuel.
    let rule_evaluation = Histogram::new(
        prometheus_client::metrics::histogram::exponential_buckets(0.000_05, 2.0, 16),
    );
    registry.register(
        "rule_evaluation_seconds",
        "Time to evaluate one rule for one event",
        rule_evaluation.clone(),
    );
    let webhook_deliveries = Family::<Labels, Counter>::default();
    registry.register(
        "webhook_delivery_attempts",
        "Webhook delivery attempts by outcome: delivered, retried or failed (out of attempts)",
        webhook_deliveries.clone(),
    );
    let rate_limited = Counter::default();
    registry.register(
        "rate_limited_requests",
        "Requests refused with 429 by the per-organization rate limit",
        rate_limited.clone(),
    );
    let request_logs_dropped = Counter::default();
    registry.register(
        "request_logs_dropped",
        "Request logs dropped because the writer was too far behind",
        request_logs_dropped.clone(),
    );
    let queue_depth = Gauge::default();
    registry.register(
        "event_queue_depth",
        "Events waiting to be processed, retries included",
        queue_depth.clone(),
    );
    let queue_lag = Gauge::<f64, AtomicU64>::default();
    registry.register(
        "event_queue_lag_seconds",
        "Seconds since the oldest due event became due",
        queue_lag.clone(),
    );
    Metrics {
        registry,
        events_accepted,
        events_finished,
        rule_evaluation,
        webhook_deliveries,
        rate_limited,
        request_logs_dropped,
        queue_depth,
        queue_lag,
    }
});

pub fn events_accepted(count: usize) {
    METRICS
        .events_accepted
        .inc_by(u64::try_from(count).unwrap_or(u64::MAX));
}

/// `outcome`: completed, failed or retried.
pub fn event_finished(outcome: &'static str) {
    METRICS
        .events_finished
        .get_or_create(&vec![("outcome", outcome)])
        .inc();
}

pub fn rule_evaluated(took: Duration) {
    METRICS.rule_evaluation.observe(took.as_secs_f64());
}

/// `outcome`: delivered, retried or failed.
pub fn webhook_attempted(outcome: &'static str) {
    METRICS
        .webhook_deliveries
        .get_or_create(&vec![("outcome", outcome)])
        .inc();
}

pub fn rate_limited() {
    METRICS.rate_limited.inc();
}

pub fn request_log_dropped() {
    METRICS.request_logs_dropped.inc();
}

/// The exposition text, with the queue's state as just read.
pub fn render(queue_depth: i64, queue_lag_seconds: f64) -> String {
    METRICS.queue_depth.set(queue_depth);
    METRICS.queue_lag.set(queue_lag_seconds);
    let mut text = String::new();
    if let Err(err) = encode(&mut text, &METRICS.registry) {
        tracing::warn!(error = %err, "metrics not encoded");
    }
    text
}

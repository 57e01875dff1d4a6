//! Settings from the environment, with defaults that work on a developer machine.

use crate::Options;
use crate::clock::Clock;
use crate::events::worker::Pipeline;
use crate::wasm::{Ceiling, Limits};
use crate::{rate_limits, request_logs, scheduler, webhooks};
use std::net::SocketAddr;
use std::time::Duration;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/scrip";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`
    pub database_url: String,
    /// `SCRIP_ADDR`
    pub addr: SocketAddr,
    /// The pipeline: `SCRIP_WORKERS` (workers per process), `SCRIP_RETRY_BACKOFF_MS` (first automatic retry
    /// delay) and the ceiling of wasm rules: `SCRIP_WASM_MAX_FUEL`, `SCRIP_WASM_MAX_MEMORY_BYTES`,
    /// `SCRIP_WASM_MAX_ACTIONS` (the most a rule may ask for), `SCRIP_WASM_MAX_MODULE_BYTES` (the largest
    /// component accepted) and `SCRIP_WASM_CACHE_BYTES` (the memory compiled rules may keep). Webhooks:
    /// `SCRIP_WEBHOOK_ALLOW_LOOPBACK`, `SCRIP_WEBHOOK_TIMEOUT_MS`, `SCRIP_WEBHOOK_RETRY_BASE_MS`,
    /// `SCRIP_WEBHOOK_CONCURRENCY` (see `webhooks::delivery::Settings`). Rate limits per organization:
    /// `SCRIP_RATE_LIMIT_PER_SECOND` (0: none) and `SCRIP_RATE_LIMIT_BURST`. Request logs:
    /// `SCRIP_REQUEST_LOG_RETENTION_DAYS` (0: none kept). Automation fan-outs: `SCRIP_FAN_OUT_PAGE`
    /// (participants per transaction) and `SCRIP_FAN_OUT_ROOM` (queued events of the organization at which a
    /// fan-out waits). `SCRIP_CLOCK`: an RFC 3339 time the automation
    /// scheduler's clock reads at start, running on from there (for trying schedules out; unset: the system
    /// clock).
    pub options: Options,
    /// `SCRIP_DB_CONNECTIONS`: pool size.
    pub db_connections: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let addr = var("SCRIP_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
        let defaults = Pipeline::default();
        let (limits, logs, fan_outs) = (
            rate_limits::Settings::default(),
            request_logs::Settings::default(),
            scheduler::Settings::default(),
        );
        let backoff_ms = u64::try_from(defaults.retry_backoff.as_millis()).unwrap_or(u64::MAX);
        Ok(Settings {
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            addr: addr.parse().map_err(|_| {
                format!("SCRIP_ADDR={addr} is not a socket address like 127.0.0.1:8080")
            })?,
            options: Options {
                pipeline: Pipeline {
                    workers: number("SCRIP_WORKERS", defaults.workers)?,
                    retry_backoff: Duration::from_millis(number(
                        "SCRIP_RETRY_BACKOFF_MS",
                        backoff_ms,
                    )?),
                    wasm: wasm_ceiling()?,
                },
                webhooks: webhook_settings()?,
                rate_limits: rate_limits::Settings {
                    per_second: number("SCRIP_RATE_LIMIT_PER_SECOND", limits.per_second)?,
                    burst: number("SCRIP_RATE_LIMIT_BURST", limits.burst)?,
                },
                request_logs: request_logs::Settings {
                    retention_days: number(
                        "SCRIP_REQUEST_LOG_RETENTION_DAYS",
                        logs.retention_days,
                    )?,
                },
                fan_outs: scheduler::Settings {
                    page: number("SCRIP_FAN_OUT_PAGE", fan_outs.page)?.max(1),
                    room: number("SCRIP_FAN_OUT_ROOM", fan_outs.room)?.max(1),
                },
                clock: clock()?,
            },
            db_connections: number("SCRIP_DB_CONNECTIONS", 16)?,
        })
    }
}

/// The operator's ceiling for wasm rules. It may not be below what a rule gets by default, so the limits the
/// API shows for a rule are the ones in force.
fn wasm_ceiling() -> Result<Ceiling, String> {
    let (most, least) = (Ceiling::DEFAULT, Limits::DEFAULT);
    let at_least = |name: &str, value: u64, floor: u64| {
        if value < floor {
            Err(format!(
                "{name}={value} is below {floor}, what a rule gets by default"
            ))
        } else {
            Ok(value)
        }
    };
    let fuel = number("SCRIP_WASM_MAX_FUEL", most.limits.fuel)?;
    let memory_bytes = number("SCRIP_WASM_MAX_MEMORY_BYTES", most.limits.memory_bytes)?;
    let max_actions = number("SCRIP_WASM_MAX_ACTIONS", most.limits.max_actions)?;
    let to_u64 = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    at_least("SCRIP_WASM_MAX_FUEL", fuel, least.fuel)?;
    at_least(
        "SCRIP_WASM_MAX_MEMORY_BYTES",
        to_u64(memory_bytes),
        to_u64(least.memory_bytes),
    )?;
    at_least(
        "SCRIP_WASM_MAX_ACTIONS",
        to_u64(max_actions),
        to_u64(least.max_actions),
    )?;
    Ok(Ceiling {
        limits: Limits {
            fuel,
            memory_bytes,
            max_actions,
        },
        component_bytes: number("SCRIP_WASM_MAX_MODULE_BYTES", most.component_bytes)?,
        cache_bytes: number("SCRIP_WASM_CACHE_BYTES", most.cache_bytes)?,
    })
}

fn clock() -> Result<Clock, String> {
    match var("SCRIP_CLOCK") {
        None => Ok(Clock::system()),
        Some(at) => at
            .parse::<chrono::DateTime<chrono::Utc>>()
            .map(Clock::starting_at)
            .map_err(|_| {
                format!("SCRIP_CLOCK={at} is not an RFC 3339 time like 2030-06-15T09:00:00Z")
            }),
    }
}

fn webhook_settings() -> Result<webhooks::delivery::Settings, String> {
    let defaults = webhooks::delivery::Settings::default();
    let millis = |d: Duration| u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
    Ok(webhooks::delivery::Settings {
        policy: webhooks::url::UrlPolicy {
            allow_loopback: flag("SCRIP_WEBHOOK_ALLOW_LOOPBACK")?,
        },
        timeout: Duration::from_millis(number(
            "SCRIP_WEBHOOK_TIMEOUT_MS",
            millis(defaults.timeout),
        )?),
        retry_base: Duration::from_millis(number(
            "SCRIP_WEBHOOK_RETRY_BASE_MS",
            millis(defaults.retry_base),
        )?),
        concurrency: number("SCRIP_WEBHOOK_CONCURRENCY", defaults.concurrency)?,
    })
}

/// `true`/`1` or `false`/`0`; unset is false.
fn flag(name: &str) -> Result<bool, String> {
    match var(name).as_deref() {
        None | Some("0" | "false") => Ok(false),
        Some("1" | "true") => Ok(true),
        Some(other) => Err(format!("{name}={other} is not true or false")),
    }
}

fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn number<T: std::str::FromStr>(name: &str, default: T) -> Result<T, String> {
    var(name).map_or(Ok(default), |v| {
        v.parse().map_err(|_| format!("{name}={v} is not a number"))
    })
}

//! Settings from the environment, with defaults that work on a developer machine.

use crate::events::worker::Pipeline;
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
    /// `SCRIP_WORKERS` (workers per process) and `SCRIP_RETRY_BACKOFF_MS` (first automatic retry delay).
    pub pipeline: Pipeline,
    /// `SCRIP_DB_CONNECTIONS`: pool size.
    pub db_connections: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let addr = var("SCRIP_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
        let defaults = Pipeline::default();
        let backoff_ms = u64::try_from(defaults.retry_backoff.as_millis()).unwrap_or(u64::MAX);
        Ok(Settings {
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            addr: addr.parse().map_err(|_| {
                format!("SCRIP_ADDR={addr} is not a socket address like 127.0.0.1:8080")
            })?,
            pipeline: Pipeline {
                workers: number("SCRIP_WORKERS", defaults.workers)?,
                retry_backoff: Duration::from_millis(number("SCRIP_RETRY_BACKOFF_MS", backoff_ms)?),
            },
            db_connections: number("SCRIP_DB_CONNECTIONS", 16)?,
        })
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

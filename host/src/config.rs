//! Settings from the environment, with defaults that work on a developer machine.

use std::net::SocketAddr;

pub const DEFAULT_DATABASE_URL: &str = "postgres://postgres@127.0.0.1:5432/scrip";
pub const DEFAULT_ADDR: &str = "127.0.0.1:8080";

#[derive(Debug, Clone)]
pub struct Settings {
    /// `DATABASE_URL`
    pub database_url: String,
    /// `SCRIP_ADDR`
    pub addr: SocketAddr,
    /// `SCRIP_WORKERS`: event workers per process.
    pub workers: usize,
    /// `SCRIP_DB_CONNECTIONS`: pool size.
    pub db_connections: u32,
}

impl Settings {
    pub fn from_env() -> Result<Self, String> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
        let addr = var("SCRIP_ADDR").unwrap_or_else(|| DEFAULT_ADDR.into());
        let workers = var("SCRIP_WORKERS").map_or(Ok(2), |v| {
            v.parse()
                .map_err(|_| format!("SCRIP_WORKERS={v} is not a number"))
        })?;
        Ok(Settings {
            database_url: var("DATABASE_URL").unwrap_or_else(|| DEFAULT_DATABASE_URL.into()),
            addr: addr.parse().map_err(|_| {
                format!("SCRIP_ADDR={addr} is not a socket address like 127.0.0.1:8080")
            })?,
            workers,
            db_connections: var("SCRIP_DB_CONNECTIONS").map_or(Ok(16), |v| {
                v.parse()
                    .map_err(|_| format!("SCRIP_DB_CONNECTIONS={v} is not a number"))
            })?,
        })
    }
}

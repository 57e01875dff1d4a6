//! Connection pool, database creation and migrations.

use crate::BoxError;
use sqlx::migrate::{MigrateDatabase, Migrator};
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use sqlx::{PgPool, Postgres};
use std::str::FromStr;
use std::time::Duration;

pub static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// Creates the database named in `url` if it does not exist, applies pending migrations and returns a pool.
pub async fn connect_and_migrate(url: &str, max_connections: u32) -> Result<PgPool, BoxError> {
    if !Postgres::database_exists(url).await? {
        tracing::info!("creating database");
        // Another process may create it between the check and here; that is fine.
        if let Err(err) = Postgres::create_database(url).await
            && !Postgres::database_exists(url).await?
        {
            return Err(err.into());
        }
    }
    let pool = pool(url, max_connections).await?;
    MIGRATOR.run(&pool).await?;
    Ok(pool)
}

pub async fn pool(url: &str, max_connections: u32) -> sqlx::Result<PgPool> {
    let options = PgConnectOptions::from_str(url)?;
    PgPoolOptions::new()
        .max_connections(max_connections)
        .acquire_timeout(Duration::from_secs(10))
        .connect_with(options)
        .await
}

/// Whether a Postgres server answers at `url` at all (any database, any error after connecting counts as up).
pub async fn server_reachable(url: &str) -> bool {
    match PgConnectOptions::from_str(url) {
        Ok(options) => {
            let probe = options.database("postgres");
            match sqlx::ConnectOptions::connect(&probe).await {
                Ok(_) => true,
                Err(sqlx::Error::Io(_)) | Err(sqlx::Error::PoolTimedOut) => false,
                Err(_) => true,
            }
        }
        Err(_) => false,
    }
}

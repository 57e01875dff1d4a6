//! The doorbell: how workers learn that events are waiting, in this process at once and in others through
//! Postgres NOTIFY, without ever notifying from inside an ingest transaction.

use sqlx::PgPool;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use uuid::Uuid;

/// Channel on which a server tells the others that events are waiting (see [`Doorbell`]).
const CHANNEL: &str = "scrip_events";

/// Tells workers that events are waiting: this process's at once, other processes' through a NOTIFY sent at
/// most once per [`NOTIFY_EVERY`] on its own connection. Never from inside an ingest transaction: Postgres
/// serializes the commits of transactions that NOTIFY, which capped ingestion at a third of the INSERT ceiling.
#[derive(Clone)]
pub struct Doorbell {
    local: Arc<Notify>,
    remote: Arc<Notify>,
    /// Sent as the payload, so this process's listener can ignore its own rings.
    instance: Arc<str>,
}

const NOTIFY_EVERY: Duration = Duration::from_millis(10);

impl Doorbell {
    pub fn new() -> Self {
        Doorbell {
            local: Arc::new(Notify::new()),
            remote: Arc::new(Notify::new()),
            instance: Uuid::now_v7().to_string().into(),
        }
    }

    /// New events are committed: one idle worker here takes them (it calls in another when its batch is
    /// full), and other processes hear of it shortly.
    pub fn ring(&self) {
        self.local.notify_one();
        self.remote.notify_one();
    }

    /// What this process's workers wait on.
    pub(super) fn wakeups(&self) -> &Notify {
        &self.local
    }

    /// Sends the coalesced NOTIFYs until shutdown.
    pub async fn broadcast(self, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            tokio::select! {
                _ = self.remote.notified() => {}
                _ = shutdown.changed() => return,
            }
            if let Err(err) = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANNEL)
                .bind(&*self.instance)
                .execute(&pool)
                .await
            {
                tracing::debug!(error = %err, "NOTIFY failed; other processes' workers will poll");
            }
            tokio::time::sleep(NOTIFY_EVERY).await;
        }
    }

    /// Wakes this process's workers when another process rings. Polling covers notifications lost while
    /// reconnecting.
    pub async fn listen(self, pool: PgPool, mut shutdown: watch::Receiver<bool>) {
        while !*shutdown.borrow() {
            let mut listener = match sqlx::postgres::PgListener::connect_with(&pool).await {
                Ok(listener) => listener,
                Err(err) => {
                    tracing::warn!(error = %err, "cannot listen for new events; workers will poll");
                    tokio::time::sleep(Duration::from_secs(5)).await;
                    continue;
                }
            };
            if let Err(err) = listener.listen(CHANNEL).await {
                tracing::warn!(error = %err, "LISTEN failed; workers will poll");
                tokio::time::sleep(Duration::from_secs(5)).await;
                continue;
            }
            loop {
                tokio::select! {
                    received = listener.recv() => match received {
                        Ok(n) if n.payload() == &*self.instance => {}
                        Ok(_) => self.local.notify_one(),
                        Err(err) => {
                            tracing::warn!(error = %err, "event notifications interrupted");
                            break;
                        }
                    },
                    _ = shutdown.changed() => return,
                }
            }
        }
    }
}

impl Default for Doorbell {
    fn default() -> Self {
        Doorbell::new()
    }
}

//! Single-event ingestion. Events POSTed one at a time by concurrent clients are inserted together: each
//! inserter takes every event that queued while the previous statement ran and stores them with one
//! statement and one commit, so concurrent requests share a WAL flush instead of queueing for one each.
//! A caller is answered only after the commit that holds its event, so a 202 still means durable; under
//! light load a batch is one event and nothing waits.

use super::{Ack, Doorbell, Event, NewEvent, acknowledge, repo};
use crate::error::Result;
use crate::organizations::Actor;
use sqlx::PgPool;
use std::sync::Arc;
use tokio::sync::{Mutex, mpsc, oneshot};
use tokio::task::JoinSet;
use uuid::Uuid;

/// Inserters working at once; each holds one connection while it writes. Fewer inserters make larger
/// statements and fewer commits: with Postgres on two cores, two complete 3-9 % more single POSTs than four
/// did, at the same latency (BENCHMARKS.md).
const INSERTERS: usize = 2;
/// Most events in one statement.
const MOST: usize = 100;

/// `None` when the event was not inserted (a taken key or a missing reference); `Err` when the shared
/// statement failed, and the caller stores its event alone.
type Stored = std::result::Result<Option<Event>, ()>;

struct Queued {
    actor: Actor,
    event: NewEvent,
    reply: oneshot::Sender<Stored>,
}

#[derive(Clone)]
pub struct Intake {
    pool: PgPool,
    doorbell: Doorbell,
    queue: mpsc::Sender<Queued>,
}

impl Intake {
    /// Starts the inserters in `tasks`; they stop when the last `Intake` clone is dropped, once every event
    /// queued before has been stored and answered, so a graceful shutdown that waits for `tasks` loses none.
    pub fn start(pool: PgPool, doorbell: Doorbell, tasks: &mut JoinSet<()>) -> Intake {
        let (queue, received) = mpsc::channel(MOST * INSERTERS);
        let received = Arc::new(Mutex::new(received));
        for _ in 0..INSERTERS {
            tasks.spawn(insert_queued(
                pool.clone(),
                doorbell.clone(),
                received.clone(),
            ));
        }
        Intake {
            pool,
            doorbell,
            queue,
        }
    }

    /// Stores the event, or returns the one already stored under its idempotency key.
    pub async fn ingest(&self, actor: &Actor, event: NewEvent) -> Result<Ack> {
        let (reply, stored) = oneshot::channel();
        let queued = Queued {
            actor: *actor,
            event: event.clone(),
            reply,
        };
        let inserted = match self.queue.send(queued).await {
            Ok(()) => stored.await.unwrap_or(Err(())),
            Err(_) => Err(()),
        };
        let inserted = match inserted {
            Ok(inserted) => inserted,
            Err(()) => {
                let mut alone =
                    repo::insert_many(&self.pool, &[(Uuid::now_v7(), actor, &event)]).await?;
                super::queued(&self.doorbell, alone.len());
                alone.pop()
            }
        };
        acknowledge(&self.pool, actor, &event, inserted).await
    }
}

async fn insert_queued(
    pool: PgPool,
    doorbell: Doorbell,
    received: Arc<Mutex<mpsc::Receiver<Queued>>>,
) {
    loop {
        let mut batch = Vec::new();
        {
            let mut received = received.lock().await;
            if received.recv_many(&mut batch, MOST).await == 0 {
                return;
            }
        }
        let rows: Vec<(Uuid, &Actor, &NewEvent)> = batch
            .iter()
            .map(|q| (Uuid::now_v7(), &q.actor, &q.event))
            .collect();
        match repo::insert_many(&pool, &rows).await {
            Ok(inserted) => {
                super::queued(&doorbell, inserted.len());
                let mut by_id: std::collections::HashMap<Uuid, Event> =
                    inserted.into_iter().map(|e| (e.id, e)).collect();
                let ids: Vec<Uuid> = rows.iter().map(|(id, _, _)| *id).collect();
                for (queued, id) in batch.into_iter().zip(ids) {
                    let _ = queued.reply.send(Ok(by_id.remove(&id)));
                }
            }
            Err(err) => {
                tracing::warn!(error = %err, events = batch.len(), "shared ingest failed; each event is stored alone");
                for queued in batch {
                    let _ = queued.reply.send(Err(()));
                }
            }
        }
    }
}

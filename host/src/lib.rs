//! `scrip`: a self-hostable rewards engine that speaks the Scrip REST API. Events come in over HTTP, rules
//! (CEL expressions or wasm components) decide what they earn, and a double-entry ledger on Postgres records every movement.

pub mod assets;
pub mod automations;
pub mod backtest;
pub mod balances;
pub mod client;
pub mod clock;
pub mod config;
pub mod db;
pub mod dev;
pub mod duration;
pub mod error;
pub mod events;
pub mod fuzzing;
pub mod groups;
pub mod holder_state;
pub mod holders;
pub mod http;
pub mod idempotency;
pub mod ids;
pub mod ledger;
pub mod metrics;
pub mod modules;
pub mod money;
pub mod movement;
pub mod organizations;
pub mod pagination;
pub mod participants;
pub mod programs;
pub mod push;
pub mod rate_limits;
pub mod redemptions;
pub mod reports;
pub mod request_logs;
pub mod rewards;
pub mod rules;
pub mod scheduler;
pub mod schema;
pub mod search;
pub mod tiers;
pub mod validation;
pub mod verify;
pub mod wasm;
pub mod webhooks;

use sqlx::PgPool;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tokio::task::JoinSet;

/// Errors of start-up and the CLI: reported, never matched on.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// How a server runs: the event pipeline, webhook deliveries, rate limits, request logs, and the clock
/// automations are scheduled by.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub pipeline: events::worker::Pipeline,
    pub webhooks: webhooks::delivery::Settings,
    pub rate_limits: rate_limits::Settings,
    pub request_logs: request_logs::Settings,
    pub fan_outs: scheduler::Settings,
    pub clock: clock::Clock,
}

impl From<events::worker::Pipeline> for Options {
    fn from(pipeline: events::worker::Pipeline) -> Options {
        Options {
            pipeline,
            ..Options::default()
        }
    }
}

/// A running server: the HTTP API plus event workers.
pub struct Running {
    pub addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: JoinSet<()>,
}

/// Serves the API on `addr`, and starts the event workers, the automation scheduler and the webhook deliveries
/// of `options` on `pool`.
pub async fn start(
    pool: PgPool,
    addr: SocketAddr,
    options: impl Into<Options>,
) -> Result<Running, BoxError> {
    let Options {
        pipeline,
        webhooks,
        rate_limits,
        request_logs,
        fan_outs,
        clock,
    } = options.into();
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let addr = listener.local_addr()?;
    let (shutdown, stopped) = watch::channel(false);
    let mut tasks = JoinSet::new();
    let runtime = Arc::new(wasm::Runtime::new(pipeline.wasm)?);
    let doorbell = events::Doorbell::new();
    let workers = Arc::new(events::worker::Liveness::default());
    let (logs, log_writer) =
        request_logs::Recorder::start(pool.clone(), request_logs, stopped.clone());
    if let Some(writer) = log_writer {
        tasks.spawn(writer);
    }
    let app = http::router(http::AppState {
        pool: pool.clone(),
        runtime: runtime.clone(),
        doorbell: doorbell.clone(),
        intake: events::Intake::start(pool.clone(), doorbell.clone(), &mut tasks),
        keys: Arc::default(),
        workers: workers.clone(),
        webhook_urls: webhooks.policy,
        limits: Arc::new(rate_limits::Limits::new(rate_limits)),
        logs,
        clock: clock.clone(),
        backtests: Arc::default(),
    });
    tasks.spawn(http::server::serve(listener, app, stopped.clone()));
    let cache = Arc::new(rules::RuleCache::new(runtime));
    tasks.spawn(ledger::chain::run_sealer(pool.clone(), stopped.clone()));
    // A process without workers serves the API only; lots and tier levels change with time, and automations
    // fire, where events are processed.
    if pipeline.workers > 0 {
        tasks.spawn(movement::due::run_jobs(pool.clone(), stopped.clone()));
        tasks.spawn(tiers::lifecycle::run_jobs(pool.clone(), stopped.clone()));
        tasks.spawn(scheduler::run(
            pool.clone(),
            clock,
            doorbell.clone(),
            fan_outs,
            stopped.clone(),
        ));
    }
    tasks.spawn(webhooks::delivery::run(
        pool.clone(),
        webhooks,
        stopped.clone(),
    ));
    tasks.spawn(doorbell.clone().listen(pool.clone(), stopped.clone()));
    tasks.spawn(doorbell.clone().broadcast(pool.clone(), stopped.clone()));
    for _ in 0..pipeline.workers {
        let worker = events::worker::supervise(
            pool.clone(),
            cache.clone(),
            doorbell.clone(),
            pipeline.retry_backoff,
            stopped.clone(),
            workers.clone(),
        );
        tasks.spawn(worker);
    }
    tracing::info!(%addr, workers = pipeline.workers, "scrip is serving");
    Ok(Running {
        addr,
        shutdown,
        tasks,
    })
}

impl Running {
    /// Stops accepting requests, lets workers finish their batch, and waits for everything to end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        while self.tasks.join_next().await.is_some() {}
    }

    /// Runs until Ctrl-C or SIGTERM, then stops gracefully.
    pub async fn until_signal(self) {
        let ctrl_c = tokio::signal::ctrl_c();
        #[cfg(unix)]
        {
            let mut term =
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(term) => term,
                    Err(err) => {
                        tracing::warn!(error = %err, "cannot watch SIGTERM");
                        let _ = ctrl_c.await;
                        return self.stop().await;
                    }
                };
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        #[cfg(not(unix))]
        let _ = ctrl_c.await;
        tracing::info!("shutting down");
        self.stop().await;
    }
}

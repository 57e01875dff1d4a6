use clap::{Parser, Subcommand};
use scrip::config::{DEFAULT_ADDR, Settings};
use scrip::{BoxError, db, dev, ledger, organizations, push};
use std::path::PathBuf;
use tracing_subscriber::EnvFilter;

/// A self-hostable rewards engine speaking the Scrip REST API.
#[derive(Parser)]
#[command(name = "scrip", version)]
struct Cli {
    #[command(subcommand)]
    command: Commands,
}

#[derive(Subcommand)]
enum Commands {
    /// Serve the HTTP API and process events (DATABASE_URL, SCRIP_ADDR, SCRIP_WORKERS).
    Serve,
    /// Like serve, but starts a private Postgres when none is reachable and prints an API key on first start.
    Dev {
        /// Where the private cluster keeps its data.
        #[arg(long, default_value = ".scrip")]
        data_dir: PathBuf,
    },
    /// Create the database if needed and apply pending migrations.
    Migrate,
    /// Check the hash chain and the ledger's invariants; print what was checked and what is wrong.
    Verify,
    /// Print the OpenAPI 3.1 document of the HTTP API (also served at /openapi.json).
    Openapi,
    /// Manage API keys.
    ApiKey {
        #[command(subcommand)]
        command: ApiKeyCommand,
    },
    /// Manage rules on a running server (SCRIP_URL, default http://127.0.0.1:8080; SCRIP_API_KEY).
    Rules {
        #[command(subcommand)]
        command: RulesCommand,
    },
}

#[derive(Subcommand)]
enum RulesCommand {
    /// Upload a wasm component and create a rule running it, or move an existing rule to it (--rule);
    /// the rule's id is the last line printed.
    Push {
        file: PathBuf,
        #[arg(long, required_unless_present = "rule")]
        program: Option<String>,
        /// Point this existing rule at the new module instead of creating a rule.
        #[arg(long)]
        rule: Option<String>,
        /// The rule's name (default: the file's name).
        #[arg(long)]
        name: Option<String>,
        /// The rule's config, a JSON object handed to the module.
        #[arg(long, value_parser = parse_json_object)]
        config: Option<serde_json::Value>,
    },
    /// Run a rule over stored events, each seen as it was when processed, and print what it would have
    /// credited and how that differs from what happened (POST /v1/rules/backtest); nothing is written.
    Backtest {
        /// A saved rule: as it is, or with the changes in --file.
        #[arg(long, required_unless_present = "file")]
        rule: Option<String>,
        /// A JSON file: a new rule's body as POST /v1/rules takes it, or with --rule the changes to try as
        /// PATCH /v1/rules/{id} takes them.
        #[arg(long)]
        file: Option<PathBuf>,
        /// Events received from this time (RFC 3339)...
        #[arg(long)]
        from: String,
        /// ...to this one.
        #[arg(long)]
        to: String,
        /// EXTERNAL or SYSTEM events only.
        #[arg(long)]
        event_type: Option<String>,
        /// The most events to evaluate (default 10,000).
        #[arg(long)]
        limit: Option<u64>,
        /// Go on after a previous run's next_cursor.
        #[arg(long)]
        after: Option<String>,
    },
}

/// The server SCRIP_URL names (default the local one) and the key SCRIP_API_KEY holds.
fn api_from_env() -> Result<scrip::client::Api, String> {
    let url = std::env::var("SCRIP_URL").unwrap_or_else(|_| format!("http://{}", DEFAULT_ADDR));
    let api_key = std::env::var("SCRIP_API_KEY").map_err(|_| "SCRIP_API_KEY is not set")?;
    scrip::client::Api::new(&url, &api_key)
}

fn parse_json_object(text: &str) -> Result<serde_json::Value, String> {
    match serde_json::from_str(text) {
        Ok(value @ serde_json::Value::Object(_)) => Ok(value),
        Ok(_) => Err("not a JSON object".into()),
        Err(e) => Err(format!("not JSON: {e}")),
    }
}

#[derive(Subcommand)]
enum ApiKeyCommand {
    /// Create a key for an organization (created if it does not exist); the key is the last line printed.
    Create {
        #[arg(long)]
        org: String,
    },
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(
            EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info,sqlx=warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    if let Err(err) = run(Cli::parse()).await {
        eprintln!("error: {err}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<(), BoxError> {
    let settings = Settings::from_env()?;
    match cli.command {
        Commands::Serve => {
            let pool =
                db::connect_and_migrate(&settings.database_url, settings.db_connections).await?;
            scrip::start(pool, settings.addr, settings.options)
                .await?
                .until_signal()
                .await;
        }
        Commands::Dev { data_dir } => {
            let cluster = if db::server_reachable(&settings.database_url).await {
                None
            } else {
                Some(dev::start_private_cluster(
                    &settings.database_url,
                    &data_dir,
                )?)
            };
            let result = serve_dev(&settings).await;
            if let Some(cluster) = cluster {
                cluster.stop();
            }
            result?;
        }
        Commands::Openapi => println!("{}", scrip::http::document().to_pretty_json()?),
        Commands::Verify => {
            let pool = db::connect_and_migrate(&settings.database_url, 2).await?;
            if !verify(&pool).await? {
                std::process::exit(1);
            }
        }
        Commands::Migrate => {
            db::connect_and_migrate(&settings.database_url, 2).await?;
            println!("migrations applied");
        }
        Commands::ApiKey {
            command: ApiKeyCommand::Create { org },
        } => {
            let pool = db::connect_and_migrate(&settings.database_url, 2).await?;
            let key = organizations::create_api_key(&pool, &org).await?;
            println!("organization {org} ({})", key.organization_id);
            println!("{}", key.key);
        }
        Commands::Rules {
            command:
                RulesCommand::Push {
                    file,
                    program,
                    rule,
                    name,
                    config,
                },
        } => {
            let api = api_from_env()?;
            let pushed = push::push(push::Push {
                api: &api,
                file: &file,
                program_id: program.as_deref(),
                rule_id: rule.as_deref(),
                name: name.as_deref(),
                config,
            })
            .await?;
            let module = &pushed.module;
            let text = |v: &serde_json::Value| v.as_str().unwrap_or_default().to_owned();
            println!(
                "module {} (sha256 {}, {} bytes)",
                text(&module["id"]),
                text(&module["sha256"]),
                module["size"]
            );
            println!("rule \"{}\" runs it", text(&pushed.rule["name"]));
            println!("{}", text(&pushed.rule["id"]));
        }
        Commands::Rules {
            command:
                RulesCommand::Backtest {
                    rule,
                    file,
                    from,
                    to,
                    event_type,
                    limit,
                    after,
                },
        } => {
            let api = api_from_env()?;
            let given = match &file {
                Some(file) => {
                    let text = std::fs::read_to_string(file)
                        .map_err(|e| format!("{}: {e}", file.display()))?;
                    Some(parse_json_object(&text).map_err(|e| format!("{}: {e}", file.display()))?)
                }
                None => None,
            };
            let mut body = serde_json::json!({"from": from, "to": to, "event_type": event_type,
                                              "limit": limit, "after": after});
            match (rule, given) {
                (Some(id), changes) => {
                    body["rule_id"] = id.into();
                    body["changes"] = changes.unwrap_or_default();
                }
                (None, new) => body["rule"] = new.unwrap_or_default(),
            }
            let request = api.request(reqwest::Method::POST, "/rules/backtest");
            let report = api.send(request.json(&body)).await?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some(cursor) = report["next_cursor"].as_str() {
                eprintln!("the window goes on: run again with --after {cursor}");
            }
        }
    }
    Ok(())
}

async fn serve_dev(settings: &Settings) -> Result<(), BoxError> {
    let pool = db::connect_and_migrate(&settings.database_url, settings.db_connections).await?;
    if !organizations::organization_exists(&pool).await? {
        let key = organizations::create_api_key(&pool, "default").await?;
        println!("Created organization \"default\". Your API key (shown once):");
        println!("export SCRIP_API_KEY={}", key.key);
    }
    let running = scrip::start(pool, settings.addr, settings.options.clone()).await?;
    println!("scrip dev is serving on http://{}", running.addr);
    running.until_signal().await;
    Ok(())
}

/// Prints one line per check; `false` when anything is wrong.
async fn verify(pool: &sqlx::PgPool) -> Result<bool, BoxError> {
    let chain = ledger::chain::verify(pool).await?;
    let found = scrip::verify::check_invariants(pool).await?;
    println!("organizations: {}", chain.organizations);
    let checks = [
        (
            format!(
                "hash chain recomputed over {} sealed entries ({} not sealed yet)",
                chain.sealed_entries, chain.unsealed_entries
            ),
            chain.breaks.len(),
        ),
        ("every journal entry sums to zero per asset".into(), found.unbalanced_entries.len()),
        ("every materialised balance equals the sum of its postings".into(), found.drifted_balances.len()),
        ("no account but a participant's is below zero".into(), found.negative_balances.len()),
        ("only completed events have ledger entries".into(), found.effects_of_unfinished_events.len()),
        ("every pending event is queued once, under its organization, and no other event".into(), found.misqueued_events.len()),
        ("every LOT balance equals what its lots hold".into(), found.lot_mismatches.len()),
        ("no lot was spent after it expired".into(), found.spent_after_expiry.len()),
        ("every idempotency key maps to exactly one journal entry".into(), found.idempotency_violations.len()),
        (
            "every event, evaluation, entry, posting and lot names existing rows of its organization".into(),
            found.broken_references.len(),
        ),
        (
            "every redemption agrees with its entry, its reversals and its reward's stock".into(),
            found.misstated_redemptions.len(),
        ),
    ];
    for (what, problems) in &checks {
        println!("{}: {what}", if *problems == 0 { "ok  " } else { "FAIL" });
    }
    for b in &chain.breaks {
        println!(
            "  chain break: organization {} entry {} (chain_seq {}): {}",
            b.organization_id, b.journal_entry_id, b.chain_seq, b.problem
        );
    }
    for (entry, asset, sum) in &found.unbalanced_entries {
        println!("  unbalanced: entry {entry} asset {asset} sums to {sum}");
    }
    for (account, stored, posted) in &found.drifted_balances {
        println!("  drifted: account {account} holds {stored} but its postings sum to {posted}");
    }
    for (account, balance) in &found.negative_balances {
        println!("  negative: account {account} is at {balance}");
    }
    for (participant, asset, bucket, balance, lots) in &found.lot_mismatches {
        println!(
            "  lots: participant {participant} asset {asset} {bucket} balance {balance} but lots hold {lots}"
        );
    }
    for lot in &found.spent_after_expiry {
        println!("  expired lot {lot} was spent");
    }
    for key in &found.idempotency_violations {
        println!("  idempotency key {key} does not map to exactly one journal entry");
    }
    for event in &found.effects_of_unfinished_events {
        println!("  unfinished event {event} has ledger entries");
    }
    for event in &found.misqueued_events {
        println!("  event {event} is out of place in the queue");
    }
    for row in &found.broken_references {
        println!("  {row} names a row that does not exist or disagrees with it");
    }
    for row in &found.misstated_redemptions {
        println!("  {row} disagrees with the ledger or its reversals");
    }
    Ok(checks.iter().all(|(_, problems)| *problems == 0))
}

//! The journal: append-only in the database, sealed into a hash chain, checked by `scrip verify`.

use crate::common::{TestApp, database_url};
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::time::{Duration, Instant};

async fn verify(connect: &PgConnectOptions) -> (bool, String) {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_scrip"))
        .arg("verify")
        .env("DATABASE_URL", database_url(connect))
        .output()
        .await
        .expect("scrip verify runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

/// Runs statements as the superuser someone with database access would be, past the guards.
async fn tamper(pool: &sqlx::PgPool, statements: &[String]) {
    for statement in statements {
        sqlx::query(statement)
            .execute(pool)
            .await
            .expect("tampering as superuser");
    }
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_journal_is_append_only_chained_and_verified(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect.clone()).await;
    let (program, points) = app.program_with_points("Chained", "PTS").await;
    app.rule(
        &program,
        "earn",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;
    for n in 0..5 {
        app.processed(
            &app.event(
                &program,
                &format!("u{}", n % 2),
                &format!("c{n}"),
                json!({}),
            )
            .await,
        )
        .await;
    }
    // The sealer runs beside the workers; every entry gets its hash shortly after it commits.
    let deadline = Instant::now() + Duration::from_secs(20);
    let entries = loop {
        let entries = app.get("/journal-entries").await.body["data"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if entries.len() == 5 && entries.iter().all(|e| e["entry_hash"].is_string()) {
            break entries;
        }
        assert!(
            Instant::now() < deadline,
            "entries were not sealed: {entries:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    let mut hashes: Vec<String> = entries
        .iter()
        .map(|e| e["entry_hash"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(
        hashes
            .iter()
            .all(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
    );
    hashes.dedup();
    assert_eq!(hashes.len(), 5);
    let (ok, report) = verify(&connect).await;
    assert!(ok, "{report}");
    assert!(
        report.contains("ok  : hash chain recomputed over 5 sealed entries (0 not sealed yet)"),
        "{report}"
    );

    assert!(
        report.contains(
            "ok  : every event, evaluation, entry, posting and lot names existing rows of its organization"
        ),
        "{report}"
    );

    // The database refuses to change or remove what the journal holds, to add a posting that unbalances
    // an entry, or to delete a row the journal refers to.
    for (statement, refusal) in [
        ("UPDATE postings SET amount = amount * 2", "append-only"),
        ("DELETE FROM postings", "append-only"),
        (
            "UPDATE journal_entries SET description = 'rewritten'",
            "append-only",
        ),
        ("DELETE FROM journal_entries", "append-only"),
        ("UPDATE journal_seals SET entry_hash = md5(entry_hash)", "append-only"),
        ("DELETE FROM journal_seals", "append-only"),
        (
            "INSERT INTO postings (id, journal_entry_id, organization_id, account_id, program_id, asset_id,
                                   entity_type, entity_id, bucket, amount)
             SELECT gen_random_uuid(), journal_entry_id, organization_id, account_id, program_id, asset_id,
                    entity_type, entity_id, bucket, amount
               FROM postings WHERE entity_id IS NOT NULL LIMIT 1",
            "does not balance",
        ),
        ("DELETE FROM programs", "never deleted"),
        ("DELETE FROM accounts", "never deleted"),
        ("DELETE FROM participants", "never deleted"),
    ] {
        let refused = sqlx::query(statement).execute(&app.pool).await;
        assert!(
            refused.is_err_and(|e| e.to_string().contains(refusal)),
            "{statement} was allowed"
        );
    }

    // Someone with the power to bypass that is still caught by the chain.
    let target = entries[2]["id"].as_str().expect("id").to_owned();
    tamper(
        &app.pool,
        &[
            "ALTER TABLE journal_entries DISABLE TRIGGER journal_entries_append_only".to_string(),
            format!("UPDATE journal_entries SET description = 'tampered' WHERE id = '{target}'"),
            "ALTER TABLE journal_entries ENABLE TRIGGER journal_entries_append_only".to_string(),
        ],
    )
    .await;
    let (ok, report) = verify(&connect).await;
    assert!(!ok, "{report}");
    assert!(report.contains("FAIL: hash chain"), "{report}");
    assert!(report.contains(&format!("entry {target}")), "{report}");
    assert_eq!(
        report.matches("chain break").count(),
        1,
        "one altered entry is one break: {report}"
    );
    assert!(
        report.contains("ok  : every journal entry sums to zero per asset"),
        "{report}"
    );

    // References the per-event tables copy have no foreign keys; verify checks them against their sources.
    let posting: uuid::Uuid = sqlx::query_scalar(
        "SELECT x.id FROM postings x JOIN journal_entries j ON j.id = x.journal_entry_id
          WHERE j.id <> $1::uuid LIMIT 1",
    )
    .bind(&target)
    .fetch_one(&app.pool)
    .await
    .expect("a posting of another entry");
    let event: uuid::Uuid = sqlx::query_scalar("SELECT id FROM events LIMIT 1")
        .fetch_one(&app.pool)
        .await
        .expect("an event");
    tamper(
        &app.pool,
        &[
            "ALTER TABLE postings DISABLE TRIGGER postings_append_only".to_string(),
            format!("UPDATE postings SET program_id = gen_random_uuid() WHERE id = '{posting}'"),
            "ALTER TABLE postings ENABLE TRIGGER postings_append_only".to_string(),
            format!("UPDATE events SET participant_id = gen_random_uuid() WHERE id = '{event}'"),
            // A completed event queued again would be processed twice.
            format!(
                "INSERT INTO event_queue (next_attempt_at, event_id, organization_id)
                 SELECT 'infinity', id, organization_id FROM events WHERE id = '{event}'"
            ),
        ],
    )
    .await;
    let (ok, report) = verify(&connect).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(
            "FAIL: every event, evaluation, entry, posting and lot names existing rows of its organization"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "posting {posting} names a row that does not exist or disagrees with it"
        )),
        "{report}"
    );
    assert!(
        report.contains(&format!(
            "event {event} names a row that does not exist or disagrees with it"
        )),
        "{report}"
    );
    assert!(
        report.contains(
            "FAIL: every pending event is queued once, under its organization, and no other event"
        ),
        "{report}"
    );
    assert!(
        report.contains(&format!("event {event} is out of place in the queue")),
        "{report}"
    );
    app.stop().await;
}

/// The sealer numbers entries by the transaction that wrote them, so an entry whose transaction began before
/// others' and commits after them must hold theirs back, not be passed over and left unsealed.
#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_entry_committed_late_is_sealed_with_those_it_held_back(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect.clone()).await;
    let (program, points) = app.program_with_points("Late", "PTS").await;
    app.rule(
        &program,
        "earn",
        "true",
        json!([{"type": "CREDIT", "asset_id": points, "amount": "10"}]),
    )
    .await;
    let seals = || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM journal_seals")
            .fetch_one(&app.pool)
            .await
            .expect("seals")
    };

    // A transaction takes its id before the workers write anything, and writes its entry after they commit.
    let mut late = app.pool.begin().await.expect("begin");
    sqlx::query("SELECT pg_current_xact_id()")
        .execute(&mut *late)
        .await
        .expect("transaction id");
    for n in 0..3 {
        app.processed(&app.event(&program, "u", &format!("e{n}"), json!({})).await)
            .await;
    }
    // The sealer passes every 500 ms when idle; three passes see the workers' entries committed.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    assert_eq!(
        seals().await,
        0,
        "entries written after an open transaction began wait for it"
    );
    let entry = uuid::Uuid::now_v7();
    sqlx::query(
        "INSERT INTO journal_entries (id, organization_id, program_id, action_type, description)
         SELECT $1, organization_id, id, 'CREDIT', 'late' FROM programs WHERE id = $2::uuid",
    )
    .bind(entry)
    .bind(&program)
    .execute(&mut *late)
    .await
    .expect("late entry");
    // Between two of the asset's system accounts, whose balances are not materialised.
    sqlx::query(
        "INSERT INTO postings (id, journal_entry_id, organization_id, account_id, program_id, asset_id,
                               entity_type, entity_id, bucket, amount)
         SELECT gen_random_uuid(), $1, a.organization_id, a.id, $2::uuid, a.asset_id, a.entity_type, a.entity_id,
                a.bucket, CASE a.entity_type WHEN 'SYSTEM_ISSUANCE' THEN -1 ELSE 1 END
           FROM accounts a WHERE a.asset_id = $3::uuid AND a.entity_type IN ('SYSTEM_ISSUANCE', 'SYSTEM_BREAKAGE')",
    )
    .bind(entry)
    .bind(&program)
    .bind(&points)
    .execute(&mut *late)
    .await
    .expect("late postings");
    late.commit().await.expect("commit");

    let deadline = Instant::now() + Duration::from_secs(20);
    while seals().await < 4 {
        assert!(Instant::now() < deadline, "entries were not sealed");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (ok, report) = verify(&connect).await;
    assert!(ok, "{report}");
    assert!(
        report.contains("ok  : hash chain recomputed over 4 sealed entries (0 not sealed yet)"),
        "{report}"
    );
    app.stop().await;
}

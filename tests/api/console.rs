//! The web console, in headless Chromium driven over WebDriver (Debian's `chromium` and `chromium-driver`,
//! which `tests/run.sh` installs), against a real server; and the console's session rules over plain HTTP.
//! The browser tests write screenshots of the pages they visit to `tests/console-screenshots/`.

use crate::common::{TestApp, id};
use crate::process::free_port;
use fantoccini::{Client, ClientBuilder, Locator};
use reqwest::StatusCode;
use serde_json::json;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::process::{Child, Command};

/// One headless Chromium, with the chromedriver that drives it.
struct Browser {
    client: Client,
    origin: String,
    _driver: Child,
}

impl Browser {
    async fn open(app: &TestApp) -> Browser {
        let chromedriver =
            std::env::var("SCRIP_CHROMEDRIVER").unwrap_or_else(|_| "/usr/bin/chromedriver".into());
        assert!(
            std::path::Path::new(&chromedriver).exists(),
            "{chromedriver} is missing: run tests/run.sh, which installs Debian's chromium and chromium-driver"
        );
        let port = free_port();
        let driver = Command::new(&chromedriver)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let url = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while reqwest::get(format!("{url}/status")).await.is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not answer");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".into(),
            json!({"args": ["--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                            "--window-size=1366,900"]}),
        );
        let client = ClientBuilder::native()
            .capabilities(capabilities)
            .connect(&url)
            .await
            .expect("a browser session");
        Browser {
            client,
            origin: app.base.trim_end_matches("/v1").to_owned(),
            _driver: driver,
        }
    }

    async fn goto(&self, path: &str) {
        self.client
            .goto(&format!("{}{path}", self.origin))
            .await
            .expect("page loads");
    }

    async fn path(&self) -> String {
        self.client
            .current_url()
            .await
            .expect("url")
            .path()
            .to_owned()
    }

    async fn fill(&self, css: &str, text: &str) {
        let field = self.client.find(Locator::Css(css)).await.expect(css);
        field.clear().await.expect("cleared");
        field.send_keys(text).await.expect("typed");
    }

    async fn click(&self, css: &str) {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .click()
            .await
            .expect("clicked");
    }

    /// Clicks what leads to another page and waits until that page has loaded (a click returns before a
    /// form's answer arrives).
    async fn follow(&self, css: &str) {
        let mark = "document.documentElement.dataset.left = 'yes'";
        self.client
            .execute(mark, vec![])
            .await
            .expect("page marked");
        self.click(css).await;
        let arrived =
            "return document.readyState === 'complete' && !document.documentElement.dataset.left";
        let deadline = Instant::now() + Duration::from_secs(30);
        while self.client.execute(arrived, vec![]).await.ok() != Some(json!(true)) {
            assert!(Instant::now() < deadline, "{css} led nowhere");
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    async fn text(&self, css: &str) -> String {
        self.client
            .find(Locator::Css(css))
            .await
            .expect(css)
            .text()
            .await
            .expect("text")
    }

    async fn attribute(&self, css: &str, name: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element
            .attr(name)
            .await
            .expect("attribute")
            .unwrap_or_default()
    }

    async fn value(&self, css: &str) -> String {
        let element = self.client.find(Locator::Css(css)).await.expect(css);
        element
            .prop("value")
            .await
            .expect("value")
            .unwrap_or_default()
    }

    async fn body(&self) -> String {
        self.text("body").await
    }

    async fn sign_in(&self, key: &str) {
        self.goto("/console/sign-in").await;
        self.fill("#key", key).await;
        self.follow("form[action='/console/sign-in'] button").await;
    }

    /// Writes the current page as `tests/console-screenshots/<name>.png`.
    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.expect("screenshot");
        let folder = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../tests/console-screenshots");
        std::fs::create_dir_all(&folder).expect("screenshot folder");
        std::fs::write(folder.join(format!("{name}.png")), png).expect("screenshot written");
    }

    async fn close(self) {
        self.client.close().await.expect("browser closes");
    }
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn an_operator_sets_up_a_program_in_the_console_and_sees_an_event_earn(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let browser = Browser::open(&app).await;

    browser.goto("/console").await;
    assert_eq!(
        browser.path().await,
        "/console/sign-in",
        "signed out, the console asks for a key"
    );
    browser.screenshot("sign-in").await;
    browser.sign_in(&app.key).await;
    assert_eq!(browser.path().await, "/console");

    browser.fill("#program-name", "Customer Loyalty").await;
    browser
        .follow("form[action='/console/programs'] button")
        .await;
    let program_path = browser.path().await;
    let Some(program_id) = program_path.strip_prefix("/console/programs/") else {
        panic!(
            "not the new program's page: {program_path}: {}",
            browser.body().await
        );
    };
    let program_id = program_id.to_owned();
    assert_eq!(browser.text("h1").await, "Customer Loyalty");

    browser.fill("#asset-name", "Points").await;
    browser.fill("#asset-symbol", "PTS").await;
    browser.follow("form[action$='/assets'] button").await;
    assert_eq!(browser.path().await, program_path);
    assert!(browser.text("#assets + table").await.contains("PTS"));
    browser.screenshot("program").await;

    // The new-rule form starts as the quickstart's rule, crediting 10 of the program's first asset.
    browser.fill("#rule-name", "10 Points per Purchase").await;
    browser
        .follow("form[action$='/rules'] button[type=submit]")
        .await;
    let rule_path = browser.path().await;
    assert!(rule_path.starts_with("/console/rules/"), "{rule_path}");

    browser.fill("#condition", "event.type == ").await;
    browser.follow("button[formaction$='/validate']").await;
    assert_eq!(
        browser.attribute("#validity", "class").await,
        "error",
        "an unfinished condition is refused"
    );
    assert_eq!(
        browser.value("#condition").await,
        "event.type == ",
        "what was typed is kept"
    );
    browser
        .fill("#condition", "event.type == \"purchase\"")
        .await;
    browser.follow("button[formaction$='/validate']").await;
    assert_eq!(browser.attribute("#validity", "class").await, "ok");
    assert_eq!(
        browser.text("#validity").await.lines().next(),
        Some("CEL condition is valid")
    );
    browser.follow("form[action$='/simulate'] button").await;
    let simulation = browser.text("#simulation").await;
    assert!(simulation.starts_with("Matched"), "{simulation}");
    assert!(simulation.contains("\"amount\": \"10\""), "{simulation}");
    browser.screenshot("rule-editor").await;

    let rules = app.get(&format!("/rules?program_id={program_id}")).await;
    assert_eq!(
        rules.body["data"][0]["condition"],
        "event.type == \"purchase\""
    );
    let event_id = app
        .event(
            &program_id,
            "user_123",
            "first-purchase-001",
            json!({"type": "purchase", "amount": 49.99}),
        )
        .await;
    app.processed(&event_id).await;

    browser.goto(&format!("/console/events/{event_id}")).await;
    assert_eq!(browser.text("#event-status").await, "COMPLETED");
    let evaluation = browser.text("article.evaluation").await;
    assert!(
        evaluation.contains("10 Points per Purchase"),
        "{evaluation}"
    );
    assert_eq!(
        browser.text("article.evaluation .evaluation-status").await,
        "SUCCESS"
    );
    let entries = browser.text("table.entries").await;
    assert!(
        entries.contains("PTS") && entries.contains("10"),
        "{entries}"
    );
    browser.screenshot("event").await;

    browser.goto("/console/events").await;
    assert!(browser.body().await.contains("user_123"));
    browser.screenshot("events").await;

    browser.goto("/console/participants?search=user_123").await;
    browser.follow("main table a").await;
    let balances = browser.text("#balance-table").await;
    assert!(balances.contains("Points (PTS) 10 0 0"), "{balances}");
    browser.screenshot("member").await;

    browser.goto("/console/journal").await;
    browser
        .follow("form[action='/console/journal/verify'] button")
        .await;
    assert!(browser.text("#chain-state").await.starts_with("Intact"));
    browser.screenshot("journal").await;

    browser.goto("/console/reports").await;
    let activity = browser.text("#activity-table").await;
    assert!(activity.contains("Customer Loyalty"), "{activity}");
    browser.screenshot("reports").await;

    browser.goto("/console").await;
    browser.screenshot("overview").await;
    browser
        .follow("form[action='/console/sign-out'] button")
        .await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.goto(&format!("/console/events/{event_id}")).await;
    assert_eq!(
        browser.path().await,
        "/console/sign-in",
        "signed out, the session is gone"
    );
    browser.close().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_wasm_rule_uploaded_in_the_console_simulates_with_its_fuel_and_logs(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program_id, _) = app.program_with_points("Sandboxed", "PTS").await;
    let browser = Browser::open(&app).await;
    browser.sign_in(&app.key).await;
    browser
        .goto(&format!("/console/programs/{program_id}"))
        .await;

    let module =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules-examples/dist/hostile.wasm");
    let module = module.canonicalize().expect("run rules-examples/build.sh");
    let file = browser
        .client
        .find(Locator::Css("#module-file"))
        .await
        .expect("file input");
    file.send_keys(module.to_str().expect("path"))
        .await
        .expect("file chosen");
    browser.click("form[data-upload] button").await;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut said = browser.text("form[data-upload] output").await;
    while !said.contains("is ready") {
        assert!(
            !said.starts_with("Refused") && Instant::now() < deadline,
            "{said}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        said = browser.text("form[data-upload] output").await;
    }
    let module_id = browser.value("#rule-module").await;
    assert!(
        said.contains(&module_id),
        "the upload fills the new rule's module: {said}"
    );

    browser.fill("#rule-name", "Ambient probe").await;
    browser
        .fill("#rule-config", r#"{"attack": "ambient"}"#)
        .await;
    browser
        .follow("form[action$='/rules'] button[type=submit]")
        .await;
    assert!(
        browser
            .body()
            .await
            .contains(&format!("wasm rule, module {module_id}"))
    );
    browser.follow("form[action$='/simulate'] button").await;
    let fuel: u64 = browser
        .text("#fuel")
        .await
        .parse()
        .expect("fuel is a number");
    assert!(fuel > 0);
    assert_eq!(browser.text("#logs").await, "ambient probe done");
    assert!(browser.text("#simulation").await.starts_with("Matched"));
    browser.screenshot("wasm-rule").await;
    browser.close().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_wrong_key_does_not_sign_in(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let browser = Browser::open(&app).await;
    browser.sign_in(&format!("sk_{}", "0".repeat(48))).await;
    assert_eq!(browser.path().await, "/console/sign-in");
    assert!(browser.text("[role=alert]").await.contains("not accepted"));
    browser.goto("/console").await;
    assert_eq!(browser.path().await, "/console/sign-in");
    browser.close().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn another_organizations_member_shows_nothing(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let other = app.as_organization("other-org").await;
    let (program_id, asset_id) = other.program_with_points("Theirs", "THR").await;
    other
        .credit_rule(&program_id, "true", &asset_id, "25")
        .await;
    let event_id = other
        .event(
            &program_id,
            "their_member",
            "k-1",
            json!({"type": "purchase"}),
        )
        .await;
    other.processed(&event_id).await;
    let member = other.participant_id("their_member").await;

    let browser = Browser::open(&app).await;
    browser.sign_in(&app.key).await;
    for path in [
        format!("/console/participants/{member}"),
        format!("/console/events/{event_id}"),
        format!("/console/programs/{program_id}"),
    ] {
        browser.goto(&path).await;
        let page = browser.body().await;
        assert!(page.contains("not found"), "{path}: {page}");
        assert!(
            !page.contains("their_member") && !page.contains("Theirs"),
            "{path}: {page}"
        );
    }
    browser.goto("/console/participants").await;
    assert!(!browser.body().await.contains("their_member"));
    browser.close().await;
}

/// A console session over plain HTTP (redirects not followed): its cookie and the token its forms carry.
struct Signed {
    client: reqwest::Client,
    origin: String,
    cookie: String,
    csrf: String,
}

impl Signed {
    /// Signs in with the app's key through the sign-in form, checking the session cookie's attributes.
    async fn open(app: &TestApp) -> Signed {
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .expect("client");
        let origin = app.base.trim_end_matches("/v1").to_owned();
        let page = client
            .get(format!("{origin}/console/sign-in"))
            .send()
            .await
            .expect("form");
        let sign_in_cookie = set_cookie(&page, "scrip_console_sign_in");
        let pair = sign_in_cookie.split(';').next().expect("pair").to_owned();
        let token = pair.split_once('=').expect("cookie").1.to_owned();
        let mut signed = Signed {
            client,
            origin,
            cookie: pair,
            csrf: String::new(),
        };
        let answer = signed
            .post(
                "/console/sign-in",
                &[("key", app.key.as_str()), ("csrf", &token)],
            )
            .await;
        assert_eq!(answer.status(), StatusCode::SEE_OTHER);
        let session = set_cookie(&answer, "scrip_console");
        for attribute in ["HttpOnly", "SameSite=Strict", "Path=/console"] {
            assert!(session.contains(attribute), "{session} lacks {attribute}");
        }
        signed.cookie = session.split(';').next().expect("pair").to_owned();
        let overview = signed.page("/console").await;
        signed.csrf = overview
            .split("name=\"csrf\" value=\"")
            .nth(1)
            .and_then(|rest| rest.split('"').next())
            .expect("a CSRF token in the page")
            .to_owned();
        signed
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.origin))
            .header("cookie", &self.cookie)
            .send()
            .await
            .expect("answer")
    }

    async fn page(&self, path: &str) -> String {
        self.get(path).await.text().await.expect("page")
    }

    /// POSTs a form (`application/x-www-form-urlencoded`) with the session's cookie.
    async fn post(&self, path: &str, fields: &[(&str, &str)]) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.origin))
            .header("cookie", &self.cookie)
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .await
            .expect("answer")
    }
}

/// A form body, `application/x-www-form-urlencoded`.
fn form(fields: &[(&str, &str)]) -> String {
    let escape = |text: &str| -> String {
        text.bytes()
            .map(|b| match b {
                b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' => {
                    (b as char).to_string()
                }
                _ => format!("%{b:02X}"),
            })
            .collect()
    };
    fields
        .iter()
        .map(|(key, value)| format!("{}={}", escape(key), escape(value)))
        .collect::<Vec<_>>()
        .join("&")
}

fn set_cookie(response: &reqwest::Response, name: &str) -> String {
    response
        .headers()
        .get_all("set-cookie")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .find(|v| v.starts_with(&format!("{name}=")))
        .unwrap_or_else(|| panic!("no {name} cookie set"))
        .to_owned()
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_form_without_the_session_token_changes_nothing(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let signed = Signed::open(&app).await;
    let csrf = signed.csrf.clone();
    for token in ["", "0000", &csrf[..csrf.len() - 1]] {
        let refused = signed
            .post("/console/programs", &[("name", "Forged"), ("csrf", token)])
            .await;
        assert_eq!(refused.status(), StatusCode::FORBIDDEN, "token {token:?}");
    }
    assert_eq!(app.get("/programs").await.body["data"], json!([]));
    let accepted = signed
        .post("/console/programs", &[("name", "Real"), ("csrf", &csrf)])
        .await;
    assert_eq!(accepted.status(), StatusCode::SEE_OTHER);
    let programs = app.get("/programs").await;
    assert_eq!(programs.body["data"][0]["name"], "Real");
    let location = accepted.headers()["location"].to_str().expect("location");
    assert_eq!(
        location,
        format!("/console/programs/{}", id(&programs.body["data"][0]))
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_sign_in_form_from_elsewhere_is_refused(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let origin = app.base.trim_end_matches("/v1");
    let answer = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("client")
        .post(format!("{origin}/console/sign-in"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", app.key.as_str()), ("csrf", "guessed")]))
        .send()
        .await
        .expect("answer");
    assert_eq!(answer.status(), StatusCode::FORBIDDEN);
    assert!(
        answer
            .headers()
            .get_all("set-cookie")
            .iter()
            .all(|c| !c.to_str().unwrap_or("").starts_with("scrip_console=")),
        "no session is set"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_api_reference_renders_from_the_binary_alone(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let origin = app.base.trim_end_matches("/v1");
    let page = reqwest::get(format!("{origin}/docs"))
        .await
        .expect("docs")
        .text()
        .await
        .expect("page");
    assert!(
        !page.contains("https://") && !page.contains("http://"),
        "nothing is fetched from elsewhere: {page}"
    );
    let browser = Browser::open(&app).await;
    browser.goto("/docs").await;
    let title = browser
        .client
        .wait()
        .at_most(Duration::from_secs(20))
        .for_element(Locator::Css(".swagger-ui .info .title"))
        .await
        .expect("the reference renders")
        .text()
        .await
        .expect("title");
    assert!(title.starts_with("Scrip"), "{title}");
    browser.screenshot("api-reference").await;
    browser.close().await;
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn console_pages_are_neither_cached_nor_framed(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let overview = Signed::open(&app).await.get("/console").await;
    assert_eq!(overview.status(), StatusCode::OK);
    let headers = overview.headers();
    assert_eq!(headers["cache-control"], "no-store");
    assert_eq!(headers["x-frame-options"], "DENY");
    let policy = headers["content-security-policy"].to_str().expect("policy");
    assert!(
        policy.contains("frame-ancestors 'none'") && policy.contains("default-src 'self'"),
        "{policy}"
    );
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_failed_event_is_retried_from_its_page(_: PgPoolOptions, connect: PgConnectOptions) {
    let app = TestApp::spawn(connect).await;
    let program = id(&app
        .created(
            "/programs",
            json!({"name": "Strict", "on_unknown_participant": "REJECT"}),
        )
        .await);
    let event = app.event(&program, "late", "l1", json!({})).await;
    assert_eq!(app.processed(&event).await["status"], "FAILED");
    let signed = Signed::open(&app).await;
    let retry = format!("/console/events/{event}/retry");
    let page = signed.page(&format!("/console/events/{event}")).await;
    assert!(
        page.contains(&format!("action=\"{retry}\"")),
        "a FAILED event offers a retry"
    );

    app.created("/participants", json!({"external_id": "late"}))
        .await;
    let retried = signed.post(&retry, &[("csrf", &signed.csrf)]).await;
    assert_eq!(retried.status(), StatusCode::SEE_OTHER);
    assert_eq!(app.processed(&event).await["status"], "COMPLETED");
    let page = signed.page(&format!("/console/events/{event}")).await;
    assert!(!page.contains(&retry), "a COMPLETED event offers none");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn a_malformed_id_in_a_console_url_is_refused_as_a_page(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let answer = Signed::open(&app)
        .await
        .get("/console/participants/not-an-id")
        .await;
    assert_eq!(answer.status(), StatusCode::BAD_REQUEST);
    assert!(
        answer.headers()["content-type"]
            .to_str()
            .expect("type")
            .starts_with("text/html")
    );
    let page = answer.text().await.expect("page");
    assert!(page.contains("id must be a UUID"), "{page}");
}

#[sqlx::test(migrator = "scrip::db::MIGRATOR")]
async fn the_rule_editor_backtests_what_it_holds_without_saving_it(
    _: PgPoolOptions,
    connect: PgConnectOptions,
) {
    let app = TestApp::spawn(connect).await;
    let (program, points) = app.program_with_points("Backtested", "PTS").await;
    let rule = app
        .credit_rule(&program, "event.type == 'purchase'", &points, "10")
        .await;
    for n in 0..3 {
        let event = app
            .event(
                &program,
                "ana",
                &format!("p{n}"),
                json!({"type": "purchase"}),
            )
            .await;
        app.processed(&event).await;
    }
    let signed = Signed::open(&app).await;
    let actions = json!([{"type": "CREDIT", "asset_id": points, "amount": "20"}]).to_string();
    let now = chrono::Utc::now();
    let (from, to) = (
        (now - chrono::Duration::hours(1)).to_rfc3339(),
        (now + chrono::Duration::hours(1)).to_rfc3339(),
    );
    let path = format!("/console/rules/{rule}/backtest");
    let fields = |csrf: &'static str| {
        [
            ("csrf", csrf),
            ("name", "ten a purchase"),
            ("status", "ACTIVE"),
            ("condition", "event.type == 'purchase'"),
        ]
    };
    let window = [("actions", actions.as_str()), ("from", &from), ("to", &to)];
    let forged: Vec<(&str, &str)> = fields("0000").into_iter().chain(window).collect();
    assert_eq!(
        signed.post(&path, &forged).await.status(),
        StatusCode::FORBIDDEN
    );
    let mut posted: Vec<(&str, &str)> = fields("").into_iter().skip(1).chain(window).collect();
    posted.push(("csrf", &signed.csrf));
    let answer = signed.post(&path, &posted).await;
    assert_eq!(answer.status(), StatusCode::OK);
    let page = answer.text().await.expect("page");
    assert!(page.contains("id=\"backtest-matched\">3<"), "{page}");
    assert!(page.contains("different amounts 3"), "{page}");
    assert!(page.contains("<td>60</td>"), "{page}");
    // Nothing was saved.
    let saved = app.get(&format!("/rules/{rule}")).await.body;
    assert_eq!(saved["actions"][0]["amount"], "10");
}

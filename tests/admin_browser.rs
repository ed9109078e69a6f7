//! The admin pages in a real browser: headless Chromium driven through chromedriver (WebDriver) against the
//! admin example's world (`examples/admin/demo.rs`, run in this process). It opens the log, filters to Failed,
//! opens the failed delivery, redelivers it and lands on the new delivery; the browser's console has no errors;
//! the same filter works with JavaScript off; and it saves the screenshots the README shows (`docs/*.png`).
//!
//! Needs Debian's `chromium` and `chromium-driver`. Without them the test says so and passes, except under
//! `CI=true`, where a missing browser fails it.
#![cfg(all(feature = "admin", feature = "sqlite", feature = "reqwest", feature = "tokio"))]

// The example's setup, as `cargo run --features admin --example admin` runs it; the test uses only part of what it prints.
#[allow(dead_code)]
#[path = "../examples/admin/demo.rs"]
mod demo;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use crm_webhooks::DeliveryStatus;
use fantoccini::elements::Element;
use fantoccini::wd::{Capabilities, WebDriverCompatibleCommand};
use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::json;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
/// How long any one thing may take to appear: generous, for a loaded two-core machine.
const WAIT: Duration = Duration::from_secs(30);
/// The whole scenario, so that a browser that hangs fails the test instead of stalling the run.
const SCENARIO: Duration = Duration::from_secs(240);

/// Whether the browser and its driver are installed; without them, a skip (or, under `CI=true`, a failure).
fn browser_installed() -> bool {
    let missing: Vec<&str> = [CHROMIUM, CHROMEDRIVER].into_iter().filter(|path| !Path::new(path).exists()).collect();
    if missing.is_empty() {
        return true;
    }
    let message = format!(
        "{} not installed: `apt-get update && apt-get install -y chromium chromium-driver`",
        missing.join(" and ")
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{message} (under CI=true a missing browser is a failure)");
    eprintln!("skipping the browser test: {message}");
    false
}

/// chromedriver in a process group of its own, with the browsers it starts: dropping this kills the group, on
/// every way out of the test (a panic included), and removes the browser profiles.
struct Driver {
    child: Child,
    url: String,
    profiles: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver on a free port and waits (at most [`WAIT`]) for it to say which.
    fn start() -> Result<Driver, String> {
        use std::os::unix::process::CommandExt as _;
        let mut child = Command::new(CHROMEDRIVER)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
        let profiles = tempfile::tempdir().map_err(|e| format!("no temporary directory for the profiles: {e}"))?;
        let stdout = child.stdout.take().ok_or("chromedriver's output is not piped")?;
        let (port_tx, port_rx) = mpsc::channel();
        // Reads every line to the end, so chromedriver never blocks on a full pipe.
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some(port) = line.split("started successfully on port ").nth(1) {
                    let _ = port_tx.send(port.trim_end_matches('.').trim().to_owned());
                }
            }
        });
        let mut driver = Driver { child, url: String::new(), profiles };
        let port = port_rx.recv_timeout(WAIT).map_err(|_| format!("chromedriver did not start within {WAIT:?}"))?;
        driver.url = format!("http://127.0.0.1:{port}");
        Ok(driver)
    }

    /// A new headless Chromium session, 1280×800, with every console message kept for [`console`].
    async fn session(&self, name: &str, extra_args: &[&str]) -> Result<Client, String> {
        let profile: PathBuf = self.profiles.path().join(name);
        let mut args = vec![
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-dev-shm-usage".to_owned(),
            "--window-size=1280,800".to_owned(),
            "--force-device-scale-factor=1".to_owned(),
            format!("--user-data-dir={}", profile.display()),
        ];
        args.extend(extra_args.iter().map(|arg| (*arg).to_owned()));
        let mut capabilities = Capabilities::new();
        capabilities.insert("browserName".into(), json!("chrome"));
        capabilities.insert("goog:chromeOptions".into(), json!({ "binary": CHROMIUM, "args": args }));
        capabilities.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
        ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await
            .map_err(|e| format!("chromedriver at {} gave no session: {e}", self.url))
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let group = format!("-{}", self.child.id());
        let _ = Command::new("kill").args(["-KILL", "--", &group]).stderr(Stdio::null()).status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// chromedriver's log endpoint (`POST /session/{id}/se/log`, `{"type": "browser"}`): the console messages since
/// the last read, each `{level, message, source, timestamp}`. Reading empties the browser's buffer.
#[derive(Debug)]
struct BrowserLog;

impl WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(&self, base_url: &url::Url, session_id: Option<&str>) -> Result<url::Url, url::ParseError> {
        base_url.join(&format!("session/{}/se/log", session_id.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (http::Method, Option<String>) {
        (http::Method::POST, Some(r#"{"type":"browser"}"#.to_owned()))
    }
}

/// The console's messages since the last call, as `LEVEL message` lines.
async fn console(client: &Client) -> Result<Vec<String>, String> {
    let log = client.issue_cmd(BrowserLog).await.map_err(|e| format!("reading the browser's console: {e}"))?;
    let entries = log.as_array().ok_or_else(|| format!("the console log is not a list: {log}"))?;
    Ok(entries
        .iter()
        .map(|entry| format!("{} {}", entry["level"].as_str().unwrap_or("?"), entry["message"].as_str().unwrap_or("")))
        .collect())
}

/// The console's errors since the last call.
async fn console_errors(client: &Client) -> Result<Vec<String>, String> {
    Ok(console(client).await?.into_iter().filter(|line| line.starts_with("SEVERE")).collect())
}

async fn find(client: &Client, css: &str) -> Result<Element, String> {
    match client.wait().at_most(WAIT).for_element(Locator::Css(css)).await {
        Ok(element) => Ok(element),
        Err(e) => Err(format!("no `{css}` within {WAIT:?} on {}: {e}", current_url(client).await)),
    }
}

async fn current_url(client: &Client) -> String {
    client.current_url().await.map(|url| url.to_string()).unwrap_or_else(|e| format!("(no URL: {e})"))
}

async fn text(element: &Element) -> Result<String, String> {
    element.text().await.map_err(|e| format!("reading an element's text: {e}"))
}

async fn click(element: &Element, what: &str) -> Result<(), String> {
    element.click().await.map_err(|e| format!("clicking {what}: {e}"))
}

/// Waits until the page's `h1` reads other than `before` (a navigation landed), and returns it.
async fn next_heading(client: &Client, before: &str) -> Result<String, String> {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        if let Ok(heading) = client.find(Locator::Css("h1")).await {
            if let Ok(now) = heading.text().await {
                if now != before {
                    return Ok(now);
                }
            }
        }
        if tokio::time::Instant::now() > deadline {
            return Err(format!("the page still reads {before:?} after {WAIT:?} on {}", current_url(client).await));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Clicks the log's Failed filter and checks that every row left is a failure; returns how many there are.
async fn filter_to_failed(client: &Client, log_url: &str) -> Result<usize, String> {
    client.goto(log_url).await.map_err(|e| format!("opening {log_url}: {e}"))?;
    find(client, "table.log tr.entry").await?;
    let failed = find(client, "p.filters a[href$='status=Failed']").await?;
    click(&failed, "the Failed filter").await?;
    find(client, "p.filters a[aria-current='page'][href$='status=Failed']").await?;
    let rows = client.find_all(Locator::Css("table.log tr.entry")).await.map_err(|e| format!("the rows: {e}"))?;
    for row in &rows {
        let status = row.find(Locator::Css("td:nth-child(2)")).await.map_err(|e| format!("a row's status: {e}"))?;
        let status = text(&status).await?;
        if status != "Failed" {
            return Err(format!("a row of the Failed filter reads {status:?}: {}", text(row).await?));
        }
    }
    if rows.is_empty() {
        return Err("the Failed filter shows no rows, though the demo has a failed delivery".to_owned());
    }
    Ok(rows.len())
}

fn save(name: &str, png: &[u8]) -> Result<(), String> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs").join(name);
    std::fs::create_dir_all(path.parent().ok_or("docs/ has a parent")?).map_err(|e| format!("docs/: {e}"))?;
    std::fs::write(&path, png).map_err(|e| format!("writing {}: {e}", path.display()))
}

async fn screenshot(client: &Client, name: &str) -> Result<(), String> {
    let png = client.screenshot().await.map_err(|e| format!("a screenshot for {name}: {e}"))?;
    save(name, &png)
}

async fn scenario(driver: &Driver, demo: &demo::Demo) -> Result<(), String> {
    let statuses: Vec<DeliveryStatus> = demo.seeded.iter().map(|s| s.status).collect();
    for status in [DeliveryStatus::Success, DeliveryStatus::Failed, DeliveryStatus::Queued, DeliveryStatus::Dispatched]
    {
        assert!(statuses.contains(&status), "the demo seeds a {status:?} delivery");
    }
    let failed = demo.seeded.iter().find(|s| s.status == DeliveryStatus::Failed).ok_or("a failed delivery")?.id;
    let log_url = format!("{}/log", demo.url);

    let browser = driver.session("scripts-on", &[]).await?;
    // The console reader sees errors when there are some: a page that is not there logs its 404.
    browser.goto(&format!("{}/no-such-page", demo.url)).await.map_err(|e| format!("opening a missing page: {e}"))?;
    find(&browser, "p.error").await?;
    let errors = console_errors(&browser).await?;
    assert!(errors.iter().any(|e| e.contains("404")), "the console reader misses the 404: {errors:?}");

    browser.goto(&log_url).await.map_err(|e| format!("opening {log_url}: {e}"))?;
    find(&browser, "table.log tr.entry").await?;
    screenshot(&browser, "admin-log.png").await?;

    let rows = filter_to_failed(&browser, &log_url).await?;
    let first = find(&browser, "table.log tr.entry td:first-child a").await?;
    let href = first.attr("href").await.map_err(|e| format!("the row's link: {e}"))?.unwrap_or_default();
    assert!(href.ends_with(&format!("/deliveries/{failed}")), "{rows} failed row(s); the first links {href:?}");
    click(&first, "the failed delivery's row").await?;
    let heading = next_heading(&browser, "Webhook log").await?;
    assert_eq!(heading, format!("Delivery {failed}"));
    let status = text(&find(&browser, "dl .status").await?).await?;
    assert_eq!(status, "Failed");
    let why = text(&find(&browser, "p.why").await?).await?;
    assert!(why.contains("HTTP 500"), "why it failed: {why:?}");
    screenshot(&browser, "admin-delivery.png").await?;

    let redeliver = find(&browser, "form.inline button[type='submit']").await?;
    assert_eq!(text(&redeliver).await?, "Redeliver");
    click(&redeliver, "Redeliver").await?;
    let heading = next_heading(&browser, &heading).await?;
    let new_id = heading.strip_prefix("Delivery ").ok_or_else(|| format!("not a delivery's page: {heading:?}"))?;
    assert_ne!(new_id, failed.to_string());
    let redelivers = find(&browser, &format!("dd a[href$='/deliveries/{failed}']")).await?;
    assert_eq!(text(&redelivers).await?, failed.to_string(), "the new delivery says which one it redelivers");
    let url = current_url(&browser).await;
    assert!(url.ends_with(&format!("/deliveries/{new_id}")), "after the redirect the browser is on {url}");

    let errors = console_errors(&browser).await?;
    assert!(errors.is_empty(), "console errors on the admin pages: {errors:#?}");
    browser.close().await.map_err(|e| format!("closing the browser: {e}"))?;

    // The same filter with JavaScript off: the pages need none.
    let no_script = driver.session("scripts-off", &["--blink-settings=scriptEnabled=false"]).await?;
    filter_to_failed(&no_script, &log_url).await?;
    let errors = console_errors(&no_script).await?;
    assert!(errors.is_empty(), "console errors with JavaScript off: {errors:#?}");
    no_script.close().await.map_err(|e| format!("closing the second browser: {e}"))?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_filters_to_failed_opens_one_and_redelivers_it_in_chromium() {
    if !browser_installed() {
        return;
    }
    let demo = demo::Demo::start(0).await.unwrap_or_else(|e| panic!("the admin example did not start: {e}"));
    let driver = Driver::start().unwrap_or_else(|e| panic!("{e}"));
    match tokio::time::timeout(SCENARIO, scenario(&driver, &demo)).await {
        Ok(Ok(())) => {}
        Ok(Err(error)) => panic!("{error}"),
        Err(_) => panic!("the browser scenario took longer than {SCENARIO:?}"),
    }
}

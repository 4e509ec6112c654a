//! The dashboard in a real browser: Debian's chromium, headless, driven
//! through chromedriver with fantoccini, against a host serving on a real
//! socket with real jobs. Each page is saved as a screenshot under
//! `target/screenshots/`.
//!
//! chromium and chromedriver must be installed (`apt-get install chromium
//! chromium-driver`): without them the test fails, unless
//! `WASMJOB_SKIP_BROWSER=1` says to skip it.

use fantoccini::{Client, ClientBuilder, Locator};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tower::ServiceExt;
use wasmjob::api::{ApiConfig, router};
use wasmjob::job::JobState;
use wasmjob::policy::JobSpec;
use wasmjob::queue::QueueConfig;
use wasmjob_tests::HANG;
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// chromedriver, stopped when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Driver {
    fn start() -> Driver {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let child = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("starting chromedriver");
        Driver {
            child,
            url: format!("http://127.0.0.1:{port}"),
        }
    }

    /// Waits until chromedriver accepts connections.
    fn wait_ready(&mut self) {
        let address = self.url.trim_start_matches("http://").to_owned();
        let deadline = Instant::now() + HANG;
        while std::net::TcpStream::connect(&address).is_err() {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("chromedriver exited at start: {status}");
            }
            assert!(Instant::now() < deadline, "chromedriver never listened");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Whether to run; panics with what to install when the browser is
/// missing and skipping was not asked for.
fn browser_available() -> bool {
    if std::env::var("WASMJOB_SKIP_BROWSER").is_ok_and(|v| v == "1") {
        eprintln!("WASMJOB_SKIP_BROWSER=1: skipping the browser test");
        return false;
    }
    for binary in [CHROMIUM, CHROMEDRIVER] {
        assert!(
            Path::new(binary).exists(),
            "{binary} is missing: install chromium and chromium-driver \
             (apt-get install -y chromium chromium-driver), or set \
             WASMJOB_SKIP_BROWSER=1 to skip the browser test"
        );
    }
    true
}

/// `target/screenshots/`, next to the test binary's profile directory.
fn screenshot_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary");
    // target/<profile>/deps/all-HASH
    let target = exe
        .ancestors()
        .nth(3)
        .expect("the test binary is in target/<profile>/deps");
    let dir = target.join("screenshots");
    std::fs::create_dir_all(&dir).expect("creating target/screenshots");
    dir
}

async fn screenshot(client: &Client, name: &str) {
    let png = client.screenshot().await.expect("a screenshot");
    let path = screenshot_dir().join(format!("{name}.png"));
    std::fs::write(&path, png).unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
}

async fn text_of(client: &Client, css: &str) -> String {
    client
        .wait()
        .at_most(HANG)
        .for_element(Locator::Css(css))
        .await
        .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"))
        .text()
        .await
        .unwrap()
}

/// Waits until the element `css` shows `expected` (the page changing on
/// its own), failing after [`HANG`].
async fn wait_text(client: &Client, css: &str, expected: &str) {
    let deadline = Instant::now() + HANG;
    loop {
        let found = match client.find(Locator::Css(css)).await {
            Ok(element) => element.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        };
        if found.trim() == expected {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "`{css}` never showed `{expected}` (last: `{found}`)"
        );
        // Chromedriver has no change notification: look again soon.
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Clicks the element `css`, finding it again when a live update
/// replaced it between the find and the click.
async fn click(client: &Client, css: &str) {
    let deadline = Instant::now() + HANG;
    loop {
        let element = client
            .wait()
            .at_most(HANG)
            .for_element(Locator::Css(css))
            .await
            .unwrap_or_else(|e| panic!("no `{css}` on the page: {e}"));
        match element.click().await {
            Ok(()) => return,
            Err(e) if e.is_stale_element_reference() => {
                assert!(Instant::now() < deadline, "`{css}` never stayed put");
            }
            Err(e) => panic!("clicking `{css}`: {e}"),
        }
    }
}

async fn connect(driver: &Driver, profile: &Path) -> Client {
    let options = json!({
        "binary": CHROMIUM,
        "args": [
            "--headless", "--no-sandbox", "--disable-gpu",
            "--disable-background-networking", "--disable-component-update",
            "--disable-sync", "--no-first-run", "--window-size=1280,1100",
            format!("--user-data-dir={}", profile.display()),
        ],
    });
    let mut capabilities = serde_json::Map::new();
    capabilities.insert("goog:chromeOptions".to_owned(), options);
    ClientBuilder::new(HttpConnector::new())
        .capabilities(capabilities)
        .connect(&driver.url)
        .await
        .expect("a chromedriver session")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_in_a_real_browser() {
    if !browser_available() {
        return;
    }
    let started = Instant::now();
    let mut host = Host::new(QueueConfig::default());
    host.upload_named(guests::HELLO, "hello").await;
    host.upload_named(guests::FATAL, "fatal").await;
    host.upload_named(guests::CHATTY, "chatty").await;
    let mut done = Vec::new();
    for name in ["ada", "grace", "edsger", "barbara"] {
        done.push(
            host.submit(host.job("hello", json!({"name": name})))
                .await
                .id,
        );
    }
    done.push(
        host.submit(host.job(
            "chatty",
            json!({"lines": 8, "bytes_per_line": 40, "progress_steps": 4, "output_bytes": 30}),
        ))
        .await
        .id,
    );
    let dead = host.submit(host.job("fatal", json!({"order": 7}))).await.id;
    let schedule = wasmjob::schedule::ScheduleSpec {
        name: "nightly-report".to_owned(),
        cron: "30 2 * * *".to_owned(),
        timezone: Some("Europe/Paris".to_owned()),
        job: host.job("hello", json!({"name": "night"})),
        missed: Default::default(),
        paused: false,
    };
    host.queue.put_schedule(schedule, false).await.unwrap();
    // A paused queue with work waiting.
    for name in ["monthly", "weekly"] {
        let spec = JobSpec {
            queue: Some("reports".to_owned()),
            ..host.job("hello", json!({"name": name}))
        };
        host.submit(spec).await;
    }
    host.queue.set_paused("reports", true).await.unwrap();
    // A workflow, for its graph.
    let order = json!({"name": "order-42", "jobs": [
        {"name": "payment", "module": "hello", "input": {"name": "payment"}},
        {"name": "inventory", "module": "hello", "input": {"name": "inventory"}},
        {"name": "shipping", "module": "hello", "input": {"name": "shipping"},
         "depends_on": ["payment", "inventory"]},
        {"name": "email", "module": "hello", "input": {"name": "email"},
         "depends_on": ["shipping"]},
    ]});
    let response = router(host.queue.clone(), ApiConfig::default())
        .oneshot(
            axum::http::Request::post("/v1/workflows")
                .header("content-type", "application/json")
                .body(axum::body::Body::from(order.to_string()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 201);
    let body = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let workflow: Value = serde_json::from_slice(&body).unwrap();
    for node in workflow["nodes"].as_array().unwrap() {
        done.push(node["id"].as_i64().unwrap());
    }
    let shipping = workflow["nodes"]
        .as_array()
        .unwrap()
        .iter()
        .find(|n| n["node"] == "shipping")
        .unwrap()["id"]
        .as_i64()
        .unwrap();
    host.start_workers();
    for &id in &done {
        // Ended, and counted by the host (see `Host::wait_for`).
        host.wait_job(id, |d| d.job.state.is_final() && !host.queue.holds(id))
            .await
            .expect("the job ends");
    }
    host.wait_for(dead, JobState::Failed).await;
    // What the charts draw: the host writes its counts every few seconds.
    host.queue.flush_history().await.unwrap();
    let completed = host
        .queue
        .counts()
        .await
        .unwrap()
        .iter()
        .find(|(s, _)| *s == JobState::Completed)
        .map(|(_, n)| *n)
        .unwrap();

    // The host on a real socket.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let app = router(host.queue.clone(), ApiConfig::default());
    let server = tokio::spawn(async move { axum::serve(listener, app).await });

    let mut driver = Driver::start();
    driver.wait_ready();
    let profile = tempfile::tempdir().expect("a browser profile dir");
    let client = connect(&driver, profile.path()).await;

    // The overview shows the real counts.
    client.goto(&format!("{base}/")).await.unwrap();
    assert_eq!(
        text_of(&client, "#count-completed .n").await,
        completed.to_string()
    );
    assert_eq!(text_of(&client, "#count-failed .n").await, "1");
    assert!(
        text_of(&client, "#failures")
            .await
            .contains("deliberate fatal error")
    );
    screenshot(&client, "overview").await;

    // A live update arrives without a reload: a marker set on this page
    // survives while the count changes.
    client
        .execute("window.__sameDocument = 'yes'; return null;", vec![])
        .await
        .unwrap();
    let more = host
        .submit(host.job("hello", json!({"name": "live"})))
        .await
        .id;
    host.wait_for(more, JobState::Completed).await;
    wait_text(&client, "#count-completed .n", &(completed + 1).to_string()).await;
    let marker = client
        .execute("return window.__sameDocument || null;", vec![])
        .await
        .unwrap();
    assert_eq!(marker, Value::from("yes"), "the page was not reloaded");

    // A failed job's report, in one click from the overview.
    click(&client, &format!("#failures a[href='/jobs/{dead}']")).await;
    assert_eq!(text_of(&client, "#job-state").await, "failed");
    let attempts = text_of(&client, "#attempts").await;
    assert!(attempts.contains("fatal_error"), "{attempts}");
    assert!(attempts.contains("deliberate fatal error"), "{attempts}");
    screenshot(&client, "job").await;

    // A job with logs and output, for the picture.
    client
        .goto(&format!("{base}/jobs/{}", done[4]))
        .await
        .unwrap();
    text_of(&client, "#attempts").await;
    screenshot(&client, "job-logs").await;

    // A job of a workflow shows its graph.
    client
        .goto(&format!("{base}/jobs/{shipping}"))
        .await
        .unwrap();
    assert!(text_of(&client, "#workflow").await.contains("email"));
    screenshot(&client, "workflow").await;

    // The dead letter, and a requeue from it: the job runs again (and,
    // being fatal, fails again), which its page shows live.
    client.goto(&format!("{base}/")).await.unwrap();
    click(&client, "header nav a[href='/dead-letter']").await;
    assert!(text_of(&client, "#dead-letter").await.contains("fatal"));
    screenshot(&client, "dead-letter").await;
    click(&client, &format!("#requeue-{dead}")).await;
    wait_text(
        &client,
        "#attempts li:nth-child(2) .attempt-head b",
        "Attempt 2",
    )
    .await;
    let detail = host.detail(dead).await;
    assert_eq!(detail.attempts.len(), 2, "requeued and run again");
    assert!(
        client.current_url().await.unwrap().path() == format!("/jobs/{dead}"),
        "the requeue leads to the job"
    );

    for (page, element) in [
        ("queues", "#queues"),
        ("schedules", "#schedule-nightly-report"),
        ("modules", "#modules"),
    ] {
        client.goto(&format!("{base}/{page}")).await.unwrap();
        text_of(&client, element).await;
        screenshot(&client, page).await;
    }

    client.close().await.unwrap();
    server.abort();
    host.stop_workers().await;
    eprintln!(
        "browser test took {:.1} s; screenshots in {}",
        started.elapsed().as_secs_f64(),
        screenshot_dir().display()
    );
}

//! The dashboard through the real router (no socket), with a real host:
//! pages show what the store holds, bad input is a 4xx page, forms need
//! the session's CSRF token, and a host with a token asks for it once.

use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;
use tower::ServiceExt;
use wasmjob::api::{ApiConfig, router};
use wasmjob::job::{JobId, JobState};
use wasmjob::queue::QueueConfig;
use wasmjob_tests::HANG;
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

struct Dash {
    host: Host,
    /// One router for the whole test, as a host has: without a token, its
    /// session keys are drawn when it is built.
    app: axum::Router,
}

struct Page {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Page {
    /// The `wasmjob_session` cookie it sets, as `name=value`.
    fn cookie(&self) -> Option<String> {
        self.headers
            .get_all(header::SET_COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .find(|v| v.starts_with("wasmjob_session="))
            .map(|v| v.split(';').next().unwrap().to_owned())
    }

    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first hidden `csrf` field.
    fn csrf(&self) -> String {
        let at = self
            .body
            .find("name=\"csrf\" value=\"")
            .unwrap_or_else(|| panic!("no CSRF field in {}", self.body));
        let rest = &self.body[at + "name=\"csrf\" value=\"".len()..];
        rest[..rest.find('"').unwrap()].to_owned()
    }

    /// The number shown in the element with `id`.
    fn number(&self, id: &str) -> u64 {
        let at = self
            .body
            .find(&format!("id=\"{id}\""))
            .unwrap_or_else(|| panic!("no #{id} in {}", self.body));
        let rest = &self.body[at..];
        let start = rest.find("<span class=\"n\">").expect("a number") + 16;
        let text: String = rest[start..]
            .chars()
            .take_while(|c| *c != '<')
            .filter(char::is_ascii_digit)
            .collect();
        text.parse().unwrap()
    }
}

impl Dash {
    fn new() -> Dash {
        Self::with(ApiConfig::default())
    }

    fn with(config: ApiConfig) -> Dash {
        let host = Host::new(QueueConfig::default());
        let app = router(host.queue.clone(), config);
        Dash { host, app }
    }

    async fn send(&self, request: Request<Body>) -> Page {
        let response = self.app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Page {
            status,
            headers,
            body: String::from_utf8(bytes.to_vec()).unwrap(),
        }
    }

    async fn get(&self, uri: &str, cookie: Option<&str>) -> Page {
        let mut request = Request::get(uri);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post(&self, uri: &str, form: &str, cookie: Option<&str>, origin: &str) -> Page {
        let mut request = Request::post(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header(header::HOST, "localhost:8080")
            .header(header::ORIGIN, origin);
        if let Some(cookie) = cookie {
            request = request.header(header::COOKIE, cookie);
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// Opens a session on `page`: its cookie and CSRF token.
    async fn session(&self, page: &str) -> (String, String) {
        let page = self.get(page, None).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        (page.cookie().expect("a session cookie"), page.csrf())
    }

    /// A job of the `fatal` module, run to the dead letter.
    async fn dead_job(&mut self) -> JobId {
        self.host.upload_named(guests::FATAL, "fatal").await;
        let job = self
            .host
            .submit(self.host.job("fatal", json!({"order": 7})))
            .await;
        self.host.start_workers();
        self.host.wait_for(job.id, JobState::Failed).await;
        self.host.stop_workers().await;
        job.id
    }
}

const SAME: &str = "http://localhost:8080";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_overview_shows_the_real_counts_and_failures() {
    let mut dash = Dash::new();
    dash.host.upload_named(guests::HELLO, "hello").await;
    let mut ids = Vec::new();
    for name in ["ada", "grace", "edsger"] {
        let job = dash
            .host
            .submit(dash.host.job("hello", json!({"name": name})))
            .await;
        ids.push(job.id);
    }
    dash.host.start_workers();
    for &id in &ids {
        dash.host.wait_for(id, JobState::Completed).await;
    }
    dash.host.stop_workers().await;
    let dead = dash.dead_job().await;
    // Two waiting in a paused queue.
    dash.host.queue.set_paused("default", true).await.unwrap();
    for _ in 0..2 {
        dash.host.submit(dash.host.job("hello", json!({}))).await;
    }

    let page = dash.get("/", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("<title>Overview · wasmjob</title>"));
    assert_eq!(page.number("count-completed"), 3);
    assert_eq!(page.number("count-failed"), 1);
    assert_eq!(page.number("count-pending"), 2);
    assert_eq!(page.number("count-running"), 0);
    assert!(
        page.body.contains(&format!("href=\"/jobs/{dead}\"")),
        "the failure is listed and linked: {}",
        page.body
    );
    assert!(page.body.contains("deliberate fatal error"));
    assert!(page.body.contains("priority 5 <b>2</b>"), "{}", page.body);
    assert!(
        page.body
            .contains("<span class=\"badge paused\">paused</span>")
    );
    // The charts are drawn from the per-minute history: nothing until the
    // host writes what it counted, then 3 completed and 1 failed.
    assert!(
        page.body
            .contains("0 completed · 0 failed attempts (0 dead-lettered) · failure rate –"),
        "{}",
        page.body
    );
    dash.host.queue.flush_history().await.unwrap();
    let page = dash.get("/", None).await;
    for span in ["activity-1", "activity-2"] {
        let at = page.body.find(&format!("id=\"{span}\"")).unwrap();
        assert!(
            page.body[at..].starts_with(&format!(
                "id=\"{span}\">3 completed · 1 failed attempts (1 dead-lettered) · \
                 failure rate 25.0%"
            )),
            "{}",
            &page.body[at..at + 200]
        );
    }
    assert!(
        page.body.contains("00:00: 3 completed, 1 failed"),
        "a bar's tip: {}",
        page.body
    );
    assert!(page.body.contains("<svg class=\"chart\""));
    assert!(page.body.contains("sse-connect=\"/dashboard/events?since="));

    // The live fragment is the same content without the page around it.
    let live = dash.get("/?fragment=live", None).await;
    assert_eq!(live.status, StatusCode::OK);
    assert!(!live.body.contains("<html"), "{}", live.body);
    assert_eq!(live.number("count-completed"), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_job_page_shows_a_failed_jobs_report() {
    let mut dash = Dash::new();
    let id = dash.dead_job().await;
    let page = dash.get(&format!("/jobs/{id}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let body = &page.body;
    assert!(body.contains(&format!("Job #{id}")));
    assert!(body.contains("id=\"job-state\">failed<"), "{body}");
    assert!(body.contains("Attempt 1"), "{body}");
    assert!(body.contains(">fatal_error<"), "the failure kind: {body}");
    assert!(body.contains("deliberate fatal error: this job never succeeds"));
    assert!(body.contains("peak memory"), "{body}");
    assert!(body.contains(" · fuel "), "{body}");
    assert!(body.contains("&#34;order&#34;: 7"), "the input: {body}");
    assert!(
        body.contains("action=\"/dead-letter/"),
        "a requeue button: {body}"
    );
}

#[tokio::test]
async fn bad_job_ids_are_a_4xx_page() {
    let dash = Dash::new();
    let malformed = dash.get("/jobs/abc", None).await;
    assert_eq!(malformed.status, StatusCode::BAD_REQUEST);
    assert!(malformed.body.contains("<html"), "an HTML page");
    assert!(
        malformed.body.contains("`abc` is not a job id"),
        "{}",
        malformed.body
    );
    let negative = dash.get("/jobs/-3", None).await;
    assert_eq!(negative.status, StatusCode::BAD_REQUEST);
    let missing = dash.get("/jobs/424242", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{}", missing.body);
    assert!(
        missing.body.contains("job 424242 not found"),
        "{}",
        missing.body
    );
    let overflow = dash.get("/jobs/99999999999999999999999", None).await;
    assert_eq!(overflow.status, StatusCode::BAD_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requeue_from_the_dead_letter_needs_the_sessions_csrf_token() {
    let mut dash = Dash::new();
    let id = dash.dead_job().await;
    let (cookie, csrf) = dash.session("/dead-letter").await;
    let listed = dash.get("/dead-letter", Some(&cookie)).await;
    assert!(
        listed.body.contains(&format!("id=\"requeue-{id}\"")),
        "{}",
        listed.body
    );
    let uri = format!("/dead-letter/{id}/requeue");
    let state = |dash: &Dash| {
        let queue = dash.host.queue.clone();
        async move { queue.job(id).await.unwrap().0.job.state }
    };

    let refused = [
        // No token.
        dash.post(&uri, "", Some(&cookie), SAME).await,
        // A wrong one.
        dash.post(
            &uri,
            &format!("csrf={}", "0".repeat(64)),
            Some(&cookie),
            SAME,
        )
        .await,
        // The right one from another site.
        dash.post(
            &uri,
            &format!("csrf={csrf}"),
            Some(&cookie),
            "http://evil.example",
        )
        .await,
        // The right one without the session it belongs to.
        dash.post(&uri, &format!("csrf={csrf}"), None, SAME).await,
    ];
    for page in refused {
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{}", page.body);
        assert_eq!(state(&dash).await, JobState::Failed, "nothing changed");
    }
    // Another session's token is not this one's.
    let (_, other_csrf) = dash.session("/dead-letter").await;
    let page = dash
        .post(&uri, &format!("csrf={other_csrf}"), Some(&cookie), SAME)
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);

    let page = dash
        .post(&uri, &format!("csrf={csrf}"), Some(&cookie), SAME)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert_eq!(page.location(), format!("/jobs/{id}"));
    assert_eq!(state(&dash).await, JobState::Pending);
    let empty = dash.get("/dead-letter", Some(&cookie)).await;
    assert!(
        empty.body.contains("The dead letter is empty."),
        "{}",
        empty.body
    );
    // Requeued, it is not in the dead letter: a second requeue is a 409 page.
    let again = dash
        .post(&uri, &format!("csrf={csrf}"), Some(&cookie), SAME)
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT, "{}", again.body);
    assert!(again.body.contains("<html"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn purge_from_the_dead_letter() {
    let mut dash = Dash::new();
    let id = dash.dead_job().await;
    let (cookie, csrf) = dash.session("/dead-letter").await;
    let uri = format!("/dead-letter/{id}/purge");
    let page = dash.post(&uri, "", Some(&cookie), SAME).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    let page = dash
        .post(&uri, &format!("csrf={csrf}"), Some(&cookie), SAME)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    let gone = dash.get(&format!("/jobs/{id}"), Some(&cookie)).await;
    assert_eq!(gone.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn queues_pause_and_resume_through_their_forms() {
    let dash = Dash::new();
    dash.host.upload_named(guests::HELLO, "hello").await;
    dash.host.submit(dash.host.job("hello", json!({}))).await;
    let (cookie, csrf) = dash.session("/queues").await;
    let form = format!("csrf={csrf}");
    let refused = dash
        .post("/queues/default/pause", "", Some(&cookie), SAME)
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(!dash.host.queue.queue("default").await.unwrap().paused);
    let page = dash
        .post("/queues/default/pause", &form, Some(&cookie), SAME)
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.body);
    assert!(dash.host.queue.queue("default").await.unwrap().paused);
    let listed = dash.get("/queues", Some(&cookie)).await;
    assert!(
        listed.body.contains("action=\"/queues/default/resume\""),
        "{}",
        listed.body
    );
    dash.post("/queues/default/resume", &form, Some(&cookie), SAME)
        .await;
    assert!(!dash.host.queue.queue("default").await.unwrap().paused);
    let unknown = dash
        .post("/queues/nope/pause", &form, Some(&cookie), SAME)
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{}", unknown.body);
}

#[tokio::test]
async fn a_host_with_a_token_asks_for_it_once() {
    let dash = Dash::with(ApiConfig {
        token: Some("s3cret".to_owned()),
        ..ApiConfig::default()
    });
    let page = dash.get("/", None).await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/login");
    assert_eq!(
        dash.get("/dead-letter", None).await.status,
        StatusCode::SEE_OTHER
    );
    assert_eq!(
        dash.get("/?fragment=live", None).await.status,
        StatusCode::UNAUTHORIZED
    );
    let login = dash.get("/login", None).await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(login.body.contains("name=\"token\""));

    let wrong = dash.post("/login", "token=guess", None, SAME).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.cookie().is_none());
    assert!(
        wrong.body.contains("not this host&#39;s token"),
        "{}",
        wrong.body
    );
    let elsewhere = dash
        .post("/login", "token=s3cret", None, "http://evil.example")
        .await;
    assert_eq!(elsewhere.status, StatusCode::FORBIDDEN);
    assert!(elsewhere.cookie().is_none());

    let ok = dash.post("/login", "token=s3cret", None, SAME).await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER);
    assert_eq!(ok.location(), "/");
    let set_cookie = ok
        .headers
        .get(header::SET_COOKIE)
        .unwrap()
        .to_str()
        .unwrap();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = ok.cookie().unwrap();
    let overview = dash.get("/", Some(&cookie)).await;
    assert_eq!(overview.status, StatusCode::OK, "{}", overview.body);
    assert!(overview.body.contains("Log out"));
    // A forged cookie is not a session.
    // Flip the last character (a fixed replacement would equal the real one
    // whenever the session id happens to end in it).
    let last = if cookie.ends_with('0') { '1' } else { '0' };
    let forged = format!("{}{last}", &cookie[..cookie.len() - 1]);
    assert_ne!(forged, cookie);
    assert_eq!(
        dash.get("/", Some(&forged)).await.status,
        StatusCode::SEE_OTHER
    );
    // The API's rule is unchanged: the bearer token, not the cookie.
    assert_eq!(
        dash.get("/v1/stats", Some(&cookie)).await.status,
        StatusCode::UNAUTHORIZED
    );
    let logout = dash
        .post(
            "/logout",
            &format!("csrf={}", overview.csrf()),
            Some(&cookie),
            SAME,
        )
        .await;
    assert_eq!(logout.status, StatusCode::SEE_OTHER);
    assert!(
        logout
            .headers
            .get(header::SET_COOKIE)
            .unwrap()
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
}

#[tokio::test]
async fn schedules_and_modules_are_listed() {
    let dash = Dash::new();
    dash.host.upload_named(guests::HELLO, "hello").await;
    let spec = wasmjob::schedule::ScheduleSpec {
        name: "nightly".to_owned(),
        cron: "30 2 * * *".to_owned(),
        timezone: Some("Europe/Paris".to_owned()),
        job: dash.host.job("hello", json!({})),
        missed: wasmjob::schedule::Missed::default(),
        paused: false,
    };
    dash.host.queue.put_schedule(spec, false).await.unwrap();
    let page = dash.get("/schedules", None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("id=\"schedule-nightly\""));
    assert!(page.body.contains("30 2 * * *"));
    // 2026-01-01 02:30 in Paris is its first fire time, then a day apart.
    assert!(page.body.contains("2026-01-01"), "{}", page.body);
    assert!(page.body.contains("2026-01-02"), "{}", page.body);
    let page = dash.get("/modules", None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert!(page.body.contains("<td>hello</td>"), "{}", page.body);
    assert!(page.body.contains("component"));
}

#[tokio::test]
async fn static_files_are_cached_and_unknown_ones_missing() {
    let dash = Dash::new();
    let css = dash.get("/dashboard/static/dashboard-1.css", None).await;
    assert_eq!(css.status, StatusCode::OK);
    assert!(
        css.headers[header::CACHE_CONTROL]
            .to_str()
            .unwrap()
            .contains("max-age=")
    );
    assert!(
        css.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/css")
    );
    let htmx = dash.get("/dashboard/static/htmx-2.0.11.min.js", None).await;
    assert!(htmx.body.contains("htmx"));
    let missing = dash.get("/dashboard/static/nope.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

/// Reads server-sent events from a response body.
struct Events(Body);

impl Events {
    async fn open(dash: &Dash, uri: &str) -> Events {
        let response = dash
            .app
            .clone()
            .oneshot(Request::get(uri).body(Body::empty()).unwrap())
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        Events(response.into_body())
    }

    /// The next event's change count (its id); fails after [`HANG`].
    async fn next(&mut self) -> u64 {
        let mut text = String::new();
        loop {
            while !text.contains("\n\n") {
                let frame = tokio::time::timeout(HANG, self.0.frame())
                    .await
                    .expect("an event before the deadline")
                    .expect("the stream goes on")
                    .unwrap();
                if let Ok(data) = frame.into_data() {
                    text.push_str(std::str::from_utf8(&data).unwrap());
                }
            }
            let (event, rest) = text.split_once("\n\n").unwrap();
            if event.contains("event: change") {
                let id = event
                    .lines()
                    .find_map(|l| l.strip_prefix("id: "))
                    .unwrap_or_else(|| panic!("no id in {event}"));
                return id.parse().unwrap();
            }
            // A keep-alive comment.
            text = rest.to_owned();
        }
    }
}

#[tokio::test]
async fn the_event_stream_says_change_when_the_queue_changes() {
    let dash = Dash::new();
    dash.host.upload_named(guests::HELLO, "hello").await;
    let version = || *dash.host.queue.changes().borrow();
    let rendered = version();
    // A change between a page's render and its stream is not missed.
    dash.host.submit(dash.host.job("hello", json!({}))).await;
    let mut events = Events::open(&dash, &format!("/dashboard/events?since={rendered}")).await;
    let first = events.next().await;
    assert!(first > rendered, "{first} after {rendered}");
    assert_eq!(first, version());
    // And every change after.
    dash.host.submit(dash.host.job("hello", json!({}))).await;
    let second = events.next().await;
    assert!(second > first, "{second} after {first}");
    // A stream opened up to date waits for the next change.
    let mut current = Events::open(&dash, &format!("/dashboard/events?since={}", version())).await;
    dash.host.submit(dash.host.job("hello", json!({}))).await;
    assert_eq!(current.next().await, version());
}

#[tokio::test]
async fn the_api_and_its_contract_are_unchanged() {
    let dash = Dash::new();
    // The API's 404 is still JSON; the dashboard does not take over `/v1`.
    let page = dash.get("/v1/nope", None).await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    assert!(page.body.contains("no such route"));
    let stats = dash.get("/v1/stats", None).await;
    assert_eq!(stats.status, StatusCode::OK);
    assert!(stats.body.starts_with('{'));
}

#[tokio::test]
async fn a_jobs_page_draws_its_workflow_with_states_and_edges() {
    let dash = Dash::new();
    dash.host.upload_named(guests::HELLO, "hello").await;
    let order = json!({"name": "order-42", "jobs": [
        {"name": "payment", "module": "hello"},
        {"name": "inventory", "module": "hello"},
        {"name": "shipping", "module": "hello", "depends_on": ["payment", "inventory"]},
        {"name": "email", "module": "hello", "depends_on": ["shipping"]},
    ]});
    let created = dash
        .send(
            Request::post("/v1/workflows")
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(order.to_string()))
                .unwrap(),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.body);
    let workflow: serde_json::Value = serde_json::from_str(&created.body).unwrap();
    let id_of = |name: &str| {
        workflow["nodes"]
            .as_array()
            .unwrap()
            .iter()
            .find(|n| n["node"] == name)
            .unwrap()["id"]
            .as_i64()
            .unwrap()
    };
    let shipping = id_of("shipping");
    let page = dash.get(&format!("/jobs/{shipping}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    let graph = &page.body[page.body.find("id=\"workflow\"").expect("a workflow graph")..];
    assert!(page.body.contains("· order-42"), "{}", page.body);
    // Every job, in dependency order, each with its state.
    let at = |name: &str| {
        graph
            .find(&format!(">{name}</a> <span class=\"badge state-"))
            .unwrap_or_else(|| panic!("{name} is not in the graph: {graph}"))
    };
    assert!(at("payment") < at("shipping") && at("inventory") < at("shipping"));
    assert!(at("shipping") < at("email"));
    assert!(graph.contains(">shipping</a> <span class=\"badge state-blocked\">blocked</span>"));
    assert!(graph.contains(">payment</a> <span class=\"badge state-pending\">pending</span>"));
    // Edges: shipping waits for both, one step deeper; email two.
    let payment = id_of("payment");
    let inventory = id_of("inventory");
    assert!(
        graph.contains(&format!(
            "after <a href=\"/jobs/{payment}\" class=\"state-pending\">payment</a>, \
             <a href=\"/jobs/{inventory}\" class=\"state-pending\">inventory</a>"
        )),
        "{graph}"
    );
    assert!(graph.contains("margin-left: 28px"), "{graph}");
    assert!(graph.contains("margin-left: 56px"), "{graph}");
    assert!(
        graph.contains("<li class=\"current\""),
        "the page's own job: {graph}"
    );
}

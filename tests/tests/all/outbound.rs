//! Jobs that call services, end to end in-process: the `webhook` and
//! `charge` example jobs against small HTTP servers on 127.0.0.1 (axum),
//! through the host's grants. Deny by default: a host not granted is
//! refused before any connection (the servers count them), an internal
//! address reached through a name only when the grant says so; per-request
//! bounds; what the report shows; secrets given only to granted modules
//! and redacted wherever a job writes them back.

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use wasmjob::engine::HttpLimits;
use wasmjob::grants::{GrantSpec, Grants, SecretSource};
use wasmjob::job::{JobDetail, JobState};
use wasmjob::queue::QueueConfig;
use wasmjob::report::{AttemptReport, FailureKind, HttpRequest, Report};
use wasmjob_tests::guests;
use wasmjob_tests::host::Host;

/// The payments service's key, as the operator's environment holds it.
const KEY: &str = "sk_test_4f9a8c7e2b1d";

/// A service on 127.0.0.1: its address and how many connections it took.
struct Service {
    port: u16,
    connections: Arc<AtomicUsize>,
    seen: Arc<std::sync::Mutex<Vec<(HeaderMap, String)>>>,
}

impl Service {
    async fn start(routes: Router<Seen>) -> Service {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let connections = Arc::new(AtomicUsize::new(0));
        let counted = connections.clone();
        let seen: Seen = Arc::default();
        let app = routes.with_state(seen.clone());
        let listener = listener.tap_io(move |_| {
            counted.fetch_add(1, Ordering::SeqCst);
        });
        tokio::spawn(async move { axum::serve(listener, app).await });
        Service {
            port,
            connections,
            seen,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    fn origin(&self) -> String {
        self.url("")
    }

    fn connections(&self) -> usize {
        self.connections.load(Ordering::SeqCst)
    }
}

type Seen = Arc<std::sync::Mutex<Vec<(HeaderMap, String)>>>;

async fn record(State(seen): State<Seen>, headers: HeaderMap, body: String) -> StatusCode {
    seen.lock().unwrap().push((headers, body));
    StatusCode::OK
}

/// Routes every test service answers.
fn routes() -> Router<Seen> {
    Router::new()
        .route("/hook", post(record))
        .route(
            "/fail",
            post(|| async { (StatusCode::SERVICE_UNAVAILABLE, "down for maintenance") }),
        )
        .route(
            "/stall",
            post(|| async {
                tokio::time::sleep(Duration::from_secs(30)).await;
                StatusCode::OK
            }),
        )
        .route("/huge", post(|| async { vec![b'x'; 3 * 1024 * 1024] }))
        .route("/big", get(|| async { "x".repeat(10) }))
        .route(
            "/charges",
            post(
                |State(seen): State<Seen>, headers: HeaderMap, body: String| async move {
                    let auth = headers
                        .get("authorization")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    seen.lock().unwrap().push((headers, body.clone()));
                    let order: Value = serde_json::from_str(&body).unwrap_or_default();
                    if order["amount_cents"].as_u64() == Some(666) {
                        // A careless service that echoes the credentials.
                        return (
                            StatusCode::PAYMENT_REQUIRED,
                            format!("card declined (request signed with {auth})"),
                        )
                            .into_response();
                    }
                    axum::Json(json!({"id": "ch_1", "status": "succeeded"})).into_response()
                },
            ),
        )
}

fn grants(entries: &[(&str, GrantSpec)]) -> Arc<Grants> {
    grants_with(entries, "")
}

/// The operator's grants: `entries`, the secret `payments_key` (from the
/// environment: [`KEY`]) and the value `payments_url`.
fn grants_with(entries: &[(&str, GrantSpec)], payments_url: &str) -> Arc<Grants> {
    let grants: BTreeMap<String, GrantSpec> = entries
        .iter()
        .map(|(name, spec)| ((*name).to_owned(), spec.clone()))
        .collect();
    let mut secrets = BTreeMap::new();
    secrets.insert(
        "payments_key".to_owned(),
        SecretSource {
            env: Some("PAYMENTS_KEY".to_owned()),
            file: None,
        },
    );
    let mut config = BTreeMap::new();
    config.insert("payments_url".to_owned(), payments_url.to_owned());
    Arc::new(
        Grants::load(&grants, &secrets, &config, |var| {
            (var == "PAYMENTS_KEY").then(|| KEY.to_owned())
        })
        .expect("grants"),
    )
}

fn http(origins: &[String]) -> GrantSpec {
    GrantSpec {
        http: origins.to_vec(),
        ..GrantSpec::default()
    }
}

async fn host(grants: Arc<Grants>, limits: HttpLimits) -> Host {
    let mut host = Host::with_engine(
        QueueConfig {
            concurrency: 2,
            grants,
            ..QueueConfig::default()
        },
        |engine| wasmjob::engine::EngineConfig {
            http: limits,
            ..engine
        },
    );
    for (path, name) in [(guests::WEBHOOK, "webhook"), (guests::CHARGE, "charge")] {
        host.upload_named(path, name).await;
    }
    host.start_workers();
    host
}

fn report(detail: &JobDetail) -> &Report {
    match &detail.attempts.last().expect("an attempt").report {
        AttemptReport::Ran(report) => report,
        other => panic!("unexpected report {other:?}"),
    }
}

fn requests(detail: &JobDetail) -> &[HttpRequest] {
    &report(detail).requests
}

/// Runs a job of `module` to its end, moving the clock to each retry.
async fn run(host: &Host, module: &str, input: Value, attempts: u32) -> JobDetail {
    let mut job = host.job(module, input);
    job.max_attempts = Some(attempts);
    run_spec(host, job).await
}

/// Runs `job` to its end, moving the clock to each retry.
async fn run_spec(host: &Host, job: wasmjob::policy::JobSpec) -> JobDetail {
    let id = host.submit(job).await.id;
    loop {
        let detail = host
            .wait_job(id, |d| {
                d.job.state.is_final() || d.job.state == JobState::Retrying
            })
            .await
            .unwrap_or_else(|| panic!("job {id} never ended"));
        if detail.job.state.is_final() {
            return detail;
        }
        host.clock.set(detail.job.run_at);
        host.queue.wake();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_granted_request_goes_out_and_the_report_shows_it() {
    let service = Service::start(routes()).await;
    let host = host(
        grants(&[("hooks", http(&[service.origin()]))]),
        HttpLimits::default(),
    )
    .await;
    host.queue
        .set_module_grants("webhook", vec!["hooks".into()])
        .await
        .unwrap();
    let done = run(
        &host,
        "webhook",
        json!({"url": service.url("/hook?token=abc"), "payload": {"order": 42}}),
        1,
    )
    .await;
    assert_eq!(
        done.job.state,
        JobState::Completed,
        "{:?}",
        report(&done).failure
    );
    assert_eq!(
        done.output.as_ref().unwrap().value(),
        json!({"status": 200})
    );
    let seen = service.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 1);
    assert_eq!(
        serde_json::from_str::<Value>(&seen[0].1).unwrap(),
        json!({"order": 42})
    );
    let request = &requests(&done)[0];
    assert_eq!(request.method, "POST");
    assert_eq!(
        request.url,
        service.url("/hook"),
        "the query string is dropped"
    );
    assert_eq!(request.status, Some(200));
    assert_eq!(request.error, None);
    assert_eq!(request.bytes_up, seen[0].1.len() as u64);
    assert!(request.duration_us > 0);

    // A 5xx is retryable: every attempt calls again.
    let failed = run(
        &host,
        "webhook",
        json!({"url": service.url("/fail"), "payload": 1}),
        2,
    )
    .await;
    assert_eq!(failed.job.state, JobState::Failed);
    assert_eq!(failed.attempts.len(), 2, "retried");
    assert_eq!(requests(&failed)[0].status, Some(503));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_not_granted_is_refused_before_any_connection() {
    let service = Service::start(routes()).await;
    let other = Service::start(routes()).await;
    let host = host(
        grants(&[("hooks", http(&[service.origin()]))]),
        HttpLimits::default(),
    )
    .await;
    // No grant at all: deny by default.
    let denied = run(
        &host,
        "webhook",
        json!({"url": service.url("/hook"), "payload": 1}),
        1,
    )
    .await;
    assert_eq!(denied.job.state, JobState::Failed);
    let failure = report(&denied).failure.clone().unwrap();
    assert_eq!(failure.kind, FailureKind::FatalError, "{failure:?}");
    assert!(failure.message.contains("denied"), "{failure:?}");
    let request = &requests(&denied)[0];
    assert!(
        request
            .error
            .as_deref()
            .unwrap()
            .starts_with(&format!("denied: {} is not granted", service.origin())),
        "{request:?}"
    );
    // Granted one origin: another port of the same address is not it.
    host.queue
        .set_module_grants("webhook", vec!["hooks".into()])
        .await
        .unwrap();
    let elsewhere = run(
        &host,
        "webhook",
        json!({"url": other.url("/hook"), "payload": 1}),
        1,
    )
    .await;
    assert_eq!(elsewhere.job.state, JobState::Failed);
    assert_eq!(service.connections() + other.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_resolving_to_an_internal_address_needs_the_grant_to_say_so() {
    let service = Service::start(routes()).await;
    let by_name = format!("http://localhost:{}", service.port);
    let host = host(
        grants(&[
            ("public", http(std::slice::from_ref(&by_name))),
            (
                "internal",
                GrantSpec {
                    http_internal: vec![by_name.clone()],
                    ..GrantSpec::default()
                },
            ),
        ]),
        HttpLimits::default(),
    )
    .await;
    let url = format!("{by_name}/hook");
    host.queue
        .set_module_grants("webhook", vec!["public".into()])
        .await
        .unwrap();
    let refused = run(&host, "webhook", json!({"url": url, "payload": 1}), 1).await;
    assert_eq!(refused.job.state, JobState::Failed);
    let error = requests(&refused)[0].error.clone().unwrap();
    assert!(
        error.starts_with("denied: localhost resolves to an internal address"),
        "{error}"
    );
    assert_eq!(service.connections(), 0);
    host.queue
        .set_module_grants("webhook", vec!["internal".into()])
        .await
        .unwrap();
    let allowed = run(&host, "webhook", json!({"url": url, "payload": 1}), 1).await;
    assert_eq!(
        allowed.job.state,
        JobState::Completed,
        "{:?}",
        report(&allowed).failure
    );
    assert_eq!(service.connections(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_service_a_huge_answer_and_a_redirect_are_bounded() {
    let service = Service::start(routes()).await;
    let elsewhere = Service::start(routes()).await;
    let redirect = Router::new().route(
        "/hook",
        post({
            let target = elsewhere.url("/hook");
            move || async move { (StatusCode::FOUND, [("location", target)]) }
        }),
    );
    let redirecting = Service::start(redirect).await;
    let limits = HttpLimits {
        first_byte_timeout: Duration::from_millis(300),
        max_response_bytes: 1024 * 1024,
        ..HttpLimits::default()
    };
    let host = host(
        grants(&[("hooks", http(&[service.origin(), redirecting.origin()]))]),
        limits,
    )
    .await;
    host.queue
        .set_module_grants("webhook", vec!["hooks".into()])
        .await
        .unwrap();
    // Stalled: the first-byte timeout ends the request; it is retried.
    let stalled = run(
        &host,
        "webhook",
        json!({"url": service.url("/stall"), "payload": 1}),
        2,
    )
    .await;
    assert_eq!(stalled.job.state, JobState::Failed);
    assert_eq!(stalled.attempts.len(), 2, "a timeout is retryable");
    let request = &requests(&stalled)[0];
    assert!(request.status.is_none(), "{request:?}");
    assert!(request.duration_us < 10_000_000, "{request:?}");
    // Waiting on the network counts against the job's own wall clock: a
    // job with 200 ms to live ends as `timeout` long before the request's
    // 300 ms first-byte timeout would.
    let mut short = host.job(
        "webhook",
        json!({"url": service.url("/stall"), "payload": 1}),
    );
    short.max_attempts = Some(1);
    short.limits.timeout_ms = Some(200);
    let short = run_spec(&host, short).await;
    assert_eq!(
        report(&short).failure.as_ref().map(|f| f.kind),
        Some(FailureKind::Timeout)
    );
    // Over the response cap: cut, with a clear error, not retried.
    let huge = run(
        &host,
        "webhook",
        json!({"url": service.url("/huge"), "payload": 1}),
        2,
    )
    .await;
    assert_eq!(huge.job.state, JobState::Failed);
    assert_eq!(huge.attempts.len(), 1, "{:?}", report(&huge).failure);
    let error = requests(&huge)[0].error.clone().unwrap();
    assert!(error.contains("over the limit of 1048576 bytes"), "{error}");
    // A redirect is the job's to see, never followed to a host not granted.
    let redirected = run(
        &host,
        "webhook",
        json!({"url": redirecting.url("/hook"), "payload": 1}),
        1,
    )
    .await;
    assert_eq!(requests(&redirected).len(), 1);
    assert_eq!(requests(&redirected)[0].status, Some(302));
    assert_eq!(elsewhere.connections(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_reaches_only_a_granted_module_and_never_comes_back() {
    let service = Service::start(routes()).await;
    let mut payments = http(&[service.origin()]);
    payments.secrets = vec!["payments_key".into()];
    payments.config = vec!["payments_url".into()];
    let grants = grants_with(&[("payments", payments)], &service.origin());
    let host = host(grants, HttpLimits::default()).await;
    // Not granted: no secret, no URL; the job says which is missing.
    let without = run(
        &host,
        "charge",
        json!({"order_id": "A-1", "amount_cents": 1200}),
        1,
    )
    .await;
    assert_eq!(without.job.state, JobState::Failed);
    assert_eq!(service.connections(), 0);

    host.queue
        .set_module_grants("charge", vec!["payments".into()])
        .await
        .unwrap();
    let charged = run(
        &host,
        "charge",
        json!({"order_id": "A-1", "amount_cents": 1200}),
        1,
    )
    .await;
    assert_eq!(
        charged.job.state,
        JobState::Completed,
        "{:?}",
        report(&charged).failure
    );
    assert_eq!(
        charged.output.as_ref().unwrap().value(),
        json!({"charge_id": "ch_1", "order_id": "A-1"})
    );
    let seen = service.seen.lock().unwrap().clone();
    assert_eq!(
        seen[0].0.get("authorization").unwrap(),
        &format!("Bearer {KEY}"),
        "the secret reached the service"
    );
    // A job may narrow its module's grants (here to none: no key, no
    // request), never widen them.
    let mut narrowed = host.job("charge", json!({"order_id": "A-3", "amount_cents": 5}));
    narrowed.max_attempts = Some(1);
    narrowed.grants = Some(Vec::new());
    let connections = service.connections();
    let narrowed = run_spec(&host, narrowed).await;
    assert_eq!(narrowed.job.state, JobState::Failed);
    assert_eq!(narrowed.job.grants, Some(Vec::new()));
    assert_eq!(service.connections(), connections);
    let mut widened = host.job("charge", json!({"order_id": "A-4", "amount_cents": 5}));
    widened.grants = Some(vec!["payments".into(), "admin".into()]);
    let refused = host.queue.submit(vec![widened]).await.unwrap_err();
    assert!(refused.to_string().contains("never widen"), "{refused}");

    // The service echoes the key into its error; the job passes that on:
    // the report shows it redacted.
    let declined = run(
        &host,
        "charge",
        json!({"order_id": "A-2", "amount_cents": 666}),
        1,
    )
    .await;
    assert_eq!(declined.job.state, JobState::Failed);
    let text = format!("{:?} {:?}", report(&declined), declined.job.last_error);
    assert!(!text.contains(KEY), "the secret leaked: {text}");
    assert!(text.contains("[REDACTED]"), "{text}");
}

/// The brief's order flow against services: payment through `charge`,
/// then inventory, shipping and the confirmation email through `webhook`
/// calls to fake services; once with every service up, once with the
/// inventory service refusing the order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_flow_runs_against_fake_services() {
    let stock = Arc::new(AtomicUsize::new(1));
    let services = Router::new()
        .route(
            "/inventory",
            post({
                let stock = stock.clone();
                move |State(seen): State<Seen>, headers: HeaderMap, body: String| async move {
                    seen.lock().unwrap().push((headers, body));
                    // One item in stock: the second order finds none.
                    match stock
                        .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    {
                        Ok(_) => StatusCode::OK,
                        Err(_) => StatusCode::CONFLICT,
                    }
                }
            }),
        )
        .route("/shipments", post(record))
        .route("/emails", post(record))
        .merge(routes());
    let service = Service::start(services).await;
    let mut payments = http(&[service.origin()]);
    payments.secrets = vec!["payments_key".into()];
    payments.config = vec!["payments_url".into()];
    let grants = grants_with(
        &[
            ("payments", payments),
            ("services", http(&[service.origin()])),
        ],
        &service.origin(),
    );
    let host = host(grants, HttpLimits::default()).await;
    host.queue
        .set_module_grants("charge", vec!["payments".into()])
        .await
        .unwrap();
    host.queue
        .set_module_grants("webhook", vec!["services".into()])
        .await
        .unwrap();
    let order = |id: &str| {
        let node = |name: &str, module: &str, input: Value, after: &[&str], priority: u8| {
            let mut job = host.job(module, input);
            job.priority = Some(priority);
            job.max_attempts = Some(1);
            wasmjob::policy::NodeSpec {
                name: name.to_owned(),
                job,
                after: after
                    .iter()
                    .map(|a| wasmjob::policy::NodeEdge {
                        node: (*a).to_owned(),
                        on_failure: wasmjob::job::OnFailure::Cancel,
                    })
                    .collect(),
            }
        };
        let hook = |path: &str| json!({"url": service.url(path), "payload": {"order": id}});
        wasmjob::policy::WorkflowSpec {
            name: Some(format!("order {id}")),
            jobs: vec![
                node(
                    "payment",
                    "charge",
                    json!({"order_id": id, "amount_cents": 1200}),
                    &[],
                    1,
                ),
                node("inventory", "webhook", hook("/inventory"), &[], 1),
                node(
                    "shipping",
                    "webhook",
                    hook("/shipments"),
                    &["payment", "inventory"],
                    5,
                ),
                node("email", "webhook", hook("/emails"), &["shipping"], 9),
            ],
        }
    };
    let finished = |id: i64| {
        let queue = host.queue.clone();
        async move {
            wasmjob_tests::host::wait_until(&queue.clone(), || {
                let queue = queue.clone();
                async move {
                    let detail = queue.workflow(id).await.unwrap();
                    (detail.workflow.state() != wasmjob::job::WorkflowState::Running)
                        .then_some(detail)
                }
            })
            .await
            .expect("the workflow ended")
        }
    };
    let state = |detail: &wasmjob::job::WorkflowDetail, name: &str| {
        let job = detail
            .jobs
            .iter()
            .find(|j| j.node.as_deref() == Some(name))
            .unwrap();
        (job.state, job.last_error.clone())
    };

    let (first, _) = host.queue.submit_workflow(order("A-1")).await.unwrap();
    let done = finished(first).await;
    for name in ["payment", "inventory", "shipping", "email"] {
        assert_eq!(
            state(&done, name).0,
            JobState::Completed,
            "{name}: {:?}",
            state(&done, name)
        );
    }
    let calls = |path: &str| {
        service
            .seen
            .lock()
            .unwrap()
            .iter()
            .filter(|(_, body)| body.contains(path))
            .count()
    };
    assert_eq!(calls("\"A-1\""), 4, "payment, inventory, shipment, email");

    // Out of stock: inventory fails for good; shipping and email are
    // cancelled naming it, and the payment's result stays.
    let (second, _) = host.queue.submit_workflow(order("A-2")).await.unwrap();
    let failed = finished(second).await;
    assert_eq!(state(&failed, "payment").0, JobState::Completed);
    assert_eq!(state(&failed, "inventory").0, JobState::Failed);
    let (shipping, why) = state(&failed, "shipping");
    assert_eq!(shipping, JobState::Cancelled);
    assert!(why.unwrap().contains("prerequisite `inventory`"));
    assert_eq!(state(&failed, "email").0, JobState::Cancelled);
    assert_eq!(calls("\"A-2\""), 2, "payment and inventory only");
}

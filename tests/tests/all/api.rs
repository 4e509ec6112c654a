//! The HTTP API through the real router (no socket): success paths and a
//! test for every client mistake, asserting status and error code.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use tower::ServiceExt;
use wasmjob::api::{ApiConfig, router, routes};
use wasmjob::queue::QueueConfig;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, eventually};

pub(crate) struct Api {
    pub(crate) host: Host,
    pub(crate) config: ApiConfig,
}

impl Api {
    pub(crate) fn new() -> Api {
        Self::with(ApiConfig::default())
    }

    pub(crate) fn with(config: ApiConfig) -> Api {
        Api {
            host: Host::new(QueueConfig::default()),
            config,
        }
    }

    pub(crate) async fn call(&self, request: Request<Body>) -> (StatusCode, Value) {
        let app = router(self.host.queue.clone(), self.config.clone());
        let response = app.oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes)
                .unwrap_or_else(|_| panic!("not JSON: {}", String::from_utf8_lossy(&bytes)))
        };
        (status, body)
    }

    pub(crate) async fn get(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Request::get(uri).body(Body::empty()).unwrap())
            .await
    }

    pub(crate) async fn post_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(uri, body.to_string()).await
    }

    pub(crate) async fn post_raw(&self, uri: &str, body: impl Into<Body>) -> (StatusCode, Value) {
        self.call(
            Request::post(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn put_json(&self, uri: &str, body: Value) -> (StatusCode, Value) {
        self.call(
            Request::put(uri)
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string()))
                .unwrap(),
        )
        .await
    }

    pub(crate) async fn delete(&self, uri: &str) -> (StatusCode, Value) {
        self.call(Request::delete(uri).body(Body::empty()).unwrap())
            .await
    }

    pub(crate) async fn upload(&self, path: &str, name: Option<&str>) -> (StatusCode, Value) {
        let uri = match name {
            Some(name) => format!("/v1/modules?name={name}"),
            None => "/v1/modules".to_owned(),
        };
        self.call(
            Request::post(uri)
                .body(Body::from(wasmjob_tests::guest_bytes(path)))
                .unwrap(),
        )
        .await
    }
}

pub(crate) fn error_code(body: &Value) -> &str {
    body["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code in {body}"))
}

pub(crate) fn error_message(body: &Value) -> &str {
    body["error"]["message"].as_str().unwrap()
}

#[tokio::test]
async fn upload_is_idempotent_and_names_resolve() {
    let api = Api::new();
    let (status, first) = api.upload(guests::HELLO, Some("hello")).await;
    assert_eq!(status, StatusCode::CREATED, "{first}");
    assert_eq!(first["kind"], "component");
    assert_eq!(
        first["hash"].as_str().unwrap(),
        blake3::hash(&wasmjob_tests::guest_bytes(guests::HELLO))
            .to_hex()
            .as_str()
    );
    let (_, again) = api.upload(guests::HELLO, None).await;
    assert_eq!(again["hash"], first["hash"]);
    let (status, by_name) = api.get("/v1/modules/hello").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(by_name["hash"], first["hash"]);
    let (_, list) = api.get("/v1/modules").await;
    assert_eq!(list["modules"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn submit_get_list_with_cursor_and_batch() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "input": {"name": "Ada"}, "priority": 2}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "pending");
    assert_eq!(job["priority"], 2);
    let id = job["id"].as_i64().unwrap();
    let (status, detail) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(detail["input"], json!({"name": "Ada"}));
    assert_eq!(detail["attempts"], json!([]));

    let jobs: Vec<Value> = (0..5)
        .map(|i| json!({"module": "hello", "input": {"name": i}}))
        .collect();
    let (status, batch) = api
        .post_json("/v1/jobs/batch", json!({ "jobs": jobs }))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    assert_eq!(batch["jobs"].as_array().unwrap().len(), 5);

    let (_, page1) = api.get("/v1/jobs?limit=4").await;
    assert_eq!(page1["jobs"].as_array().unwrap().len(), 4);
    let cursor = page1["next_cursor"].as_i64().expect("a next page");
    let (_, page2) = api.get(&format!("/v1/jobs?limit=4&before={cursor}")).await;
    assert_eq!(page2["jobs"].as_array().unwrap().len(), 2);
    assert_eq!(page2["next_cursor"], Value::Null);
    let (_, pending) = api.get("/v1/jobs?state=pending&priority=2").await;
    assert_eq!(pending["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn cancel_and_requeue_follow_the_state_machine() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (_, job) = api.post_json("/v1/jobs", json!({"module": "hello"})).await;
    let id = job["id"].as_i64().unwrap();
    let (status, body) = api.post_raw(&format!("/v1/jobs/{id}/requeue"), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "conflict");
    let (status, body) = api.post_raw(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "cancelled");
    let (status, body) = api.post_raw(&format!("/v1/jobs/{id}/cancel"), "").await;
    assert_eq!(status, StatusCode::CONFLICT);
    assert_eq!(error_code(&body), "conflict");
}

#[tokio::test]
async fn a_module_still_needed_cannot_be_deleted() {
    let api = Api::new();
    let (_, module) = api.upload(guests::HELLO, None).await;
    let hash = module["hash"].as_str().unwrap().to_owned();
    let (_, job) = api.post_json("/v1/jobs", json!({"module": hash})).await;
    let del = Request::delete(format!("/v1/modules/{hash}"))
        .body(Body::empty())
        .unwrap();
    let (status, body) = api.call(del).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    api.post_raw(&format!("/v1/jobs/{}/cancel", job["id"]), "")
        .await;
    let del = Request::delete(format!("/v1/modules/{hash}"))
        .body(Body::empty())
        .unwrap();
    let (status, _) = api.call(del).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    let (status, body) = api.get(&format!("/v1/modules/{hash}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn client_mistakes_get_4xx_with_a_code_naming_the_problem() {
    let api = Api::with(ApiConfig {
        max_body_bytes: 1024,
        ..ApiConfig::default()
    });
    api.upload(guests::HELLO, Some("hello")).await;
    let cases: Vec<(&str, String, StatusCode, &str, &str)> = vec![
        (
            "malformed JSON",
            "{\"module\": ".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "",
        ),
        (
            "unknown field",
            json!({"module": "hello", "colour": 1}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "colour",
        ),
        (
            "unknown module",
            json!({"module": "nope"}).to_string(),
            StatusCode::NOT_FOUND,
            "not_found",
            "module: no module `nope`: upload it first",
        ),
        (
            "limits given as an array",
            json!({"module": "hello", "limits": []}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "limits: invalid type: sequence, expected a JSON object (LimitsPatch)",
        ),
        (
            "a job given as an array",
            json!(["hello"]).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "expected a JSON object (SubmitJob)",
        ),
        (
            "a fraction of an attempt",
            json!({"module": "hello", "max_attempts": 2.5}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "max_attempts: invalid value: 2.5, expected a whole number from 0 to 4294967295",
        ),
        (
            "priority out of range",
            json!({"module": "hello", "priority": 11}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "priority",
        ),
        (
            "bad retry policy",
            json!({"module": "hello", "retry": {"backoff": "sometimes"}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "sometimes",
        ),
        (
            "zero backoff base",
            json!({"module": "hello", "retry": {"backoff": "fixed", "base_ms": 0}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "retry.base_ms: 0 is below the minimum of 1",
        ),
        (
            "zero attempts",
            json!({"module": "hello", "max_attempts": 0}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "max_attempts",
        ),
        (
            "memory above ceiling",
            json!({"module": "hello", "limits": {"memory_bytes": 1u64 << 40}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limits.memory_bytes: 1099511627776 is above this host's ceiling of 1073741824",
        ),
        (
            "fuel above ceiling",
            json!({"module": "hello", "limits": {"fuel": 1u64 << 50}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limits.fuel: 1125899906842624 is above this host's ceiling of 10000000000000",
        ),
        (
            "delay above ceiling",
            json!({"module": "hello", "delay_ms": u64::MAX}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "delay_ms: 18446744073709551615 is above this host's ceiling of 31622400000",
        ),
        (
            "no fuel at all",
            json!({"module": "hello", "limits": {"fuel": 0}}).to_string(),
            StatusCode::BAD_REQUEST,
            "invalid_request",
            "limits.fuel: 0 is below the minimum of 1",
        ),
        (
            "body over the limit",
            json!({"module": "hello", "input": "x".repeat(4096)}).to_string(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            "",
        ),
    ];
    for (what, body, status, code, needle) in cases {
        let (got, answer) = api.post_raw("/v1/jobs", body).await;
        assert_eq!(got, status, "{what}: {answer}");
        assert_eq!(error_code(&answer), code, "{what}: {answer}");
        assert!(error_message(&answer).contains(needle), "{what}: {answer}");
    }
    let (status, body) = api
        .post_json(
            "/v1/jobs/batch",
            json!({"jobs": [{"module": "hello"}, {"module": "hello", "priority": 42}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("jobs[1].priority"), "{body}");
    let (_, list) = api.get("/v1/jobs").await;
    assert_eq!(
        list["jobs"],
        json!([]),
        "nothing from a refused batch was stored"
    );
}

#[tokio::test]
async fn invalid_wasm_uploads_unknown_jobs_and_bad_ids() {
    let api = Api::new();
    let (status, body) = api
        .call(
            Request::post("/v1/modules")
                .body(Body::from("not wasm"))
                .unwrap(),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_module");
    assert!(
        error_message(&body).contains("not a WebAssembly module"),
        "{body}"
    );
    let (status, body) = api.get("/v1/jobs/999").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = api.get("/v1/jobs/abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(error_code(&body), "invalid_request");
    let (status, body) = api.get("/v1/jobs?state=sleeping").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(error_message(&body).contains("sleeping"));
    let (status, body) = api.get("/v1/nothing-here").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(error_code(&body), "not_found");
}

#[tokio::test]
async fn a_token_is_required_when_configured() {
    let api = Api::with(ApiConfig {
        token: Some("s3cret".to_owned()),
        ..ApiConfig::default()
    });
    let (status, body) = api.get("/v1/jobs").await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(error_code(&body), "unauthorized");
    let request = Request::get("/v1/jobs")
        .header(header::AUTHORIZATION, "Bearer s3cret")
        .body(Body::empty())
        .unwrap();
    let (status, _) = api.call(request).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "health needs no token");
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn the_bearer_scheme_is_case_insensitive() {
    let api = Api::with(ApiConfig {
        token: Some("s3cret".to_owned()),
        ..ApiConfig::default()
    });
    for (header, expected) in [
        ("bearer s3cret", StatusCode::OK),
        ("BEARER s3cret", StatusCode::OK),
        ("Bearer  s3cret", StatusCode::OK),
        ("Basic s3cret", StatusCode::UNAUTHORIZED),
        ("bearer s3cre", StatusCode::UNAUTHORIZED),
        ("bearer ", StatusCode::UNAUTHORIZED),
    ] {
        let request = Request::get("/v1/jobs")
            .header(header::AUTHORIZATION, header)
            .body(Body::empty())
            .unwrap();
        let (status, body) = api.call(request).await;
        assert_eq!(status, expected, "{header}: {body}");
    }
}

#[tokio::test]
async fn a_module_over_the_upload_limit_is_413() {
    let api = Api::with(ApiConfig {
        max_module_bytes: 1024,
        ..ApiConfig::default()
    });
    let (status, body) = api.upload(guests::HELLO, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(error_code(&body), "payload_too_large");
    assert!(error_message(&body).contains("1024"), "{body}");
}

#[tokio::test]
async fn stats_count_jobs_by_state_and_workers_show_the_pool() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    for _ in 0..3 {
        api.post_json("/v1/jobs", json!({"module": "hello"})).await;
    }
    let (_, job) = api.post_json("/v1/jobs", json!({"module": "hello"})).await;
    api.post_raw(&format!("/v1/jobs/{}/cancel", job["id"]), "")
        .await;
    let (status, stats) = api.get("/v1/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["jobs"]["pending"], 3);
    assert_eq!(stats["jobs"]["cancelled"], 1);
    assert_eq!(stats["jobs"]["completed"], 0);
    let (status, workers) = api.get("/v1/workers").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(workers["busy"], 0);
    assert_eq!(workers["running"], json!([]));
}

#[tokio::test]
async fn the_dead_letter_listing_refuses_filters_it_would_ignore() {
    let api = Api::new();
    let (status, body) = api.get("/v1/dead-letter?state=pending").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_query");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_with_wait_ms_answers_once_the_job_is_final_or_the_wait_ends() {
    let mut api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (_, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "input": {"name": "Ada"}}),
        )
        .await;
    let id = job["id"].as_i64().unwrap();

    // No workers yet: the wait ends with the job still pending.
    let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=20")).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "pending");

    // A request already waiting is answered when the job completes, not
    // when its wait ends.
    let app = router(api.host.queue.clone(), api.config.clone());
    let uri = format!("/v1/jobs/{id}?wait_ms=60000");
    let began = tokio::time::Instant::now();
    let waiting = tokio::spawn(app.oneshot(Request::get(uri).body(Body::empty()).unwrap()));
    let queue = api.host.queue.clone();
    eventually("the request waits", || queue.long_polls(id) == 1).await;
    api.host.start_workers();
    let response = waiting.await.unwrap().unwrap();
    assert!(
        began.elapsed() < std::time::Duration::from_millis(60_000),
        "answered by the job's completion, before the wait ended"
    );
    assert_eq!(response.status(), StatusCode::OK);
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let body: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(body["state"], "completed", "{body}");
    assert_eq!(body["output"], json!({"greeting": "Hello, Ada!"}));
    assert_eq!(queue.long_polls(id), 0, "the wait is over");
    api.host.stop_workers().await;

    // A final job is answered at once, whatever the wait.
    let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=60000")).await;
    assert_eq!(
        (status, &body["state"]),
        (StatusCode::OK, &json!("completed"))
    );

    let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=60001")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_request");
    assert!(error_message(&body).contains("wait_ms"), "{body}");
    let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=soon")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_query");
    let (status, body) = api.get("/v1/jobs/999999?wait_ms=10").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_submission_with_wait_ms_answers_with_the_finished_job_or_when_the_wait_ends() {
    let mut api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let ada = json!({"module": "hello", "input": {"name": "Ada"}});

    // No workers: stored, and answered when the wait ends, still pending.
    let (status, body) = api.post_json("/v1/jobs?wait_ms=20", ada.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "pending");
    assert_eq!(
        body["input"],
        json!({"name": "Ada"}),
        "the detail, not the summary"
    );
    assert_eq!(body["attempts"], json!([]));
    let pending = body["id"].as_i64().unwrap();

    // With workers: answered once the job is final, with its output.
    api.host.start_workers();
    let (status, body) = api.post_json("/v1/jobs?wait_ms=60000", ada.clone()).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "completed", "{body}");
    assert_eq!(body["output"], json!({"greeting": "Hello, Ada!"}));
    assert_eq!(body["attempts"].as_array().unwrap().len(), 1);
    api.host
        .wait_for(pending, wasmjob::job::JobState::Completed)
        .await;

    // A unique key already held: that job, waited for, with 200.
    let unique = json!({
        "module": "hello", "input": {"name": "Bo"},
        "unique": {"key": "bo", "window_ms": 3_600_000},
    });
    let (status, first) = api
        .post_json("/v1/jobs?wait_ms=60000", unique.clone())
        .await;
    assert_eq!(
        (status, &first["state"]),
        (StatusCode::CREATED, &json!("completed"))
    );
    let (status, again) = api.post_json("/v1/jobs?wait_ms=60000", unique).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["id"], first["id"]);
    assert_eq!(again["output"], json!({"greeting": "Hello, Bo!"}));
    api.host.stop_workers().await;

    // Refused before anything is stored.
    let (_, before) = api.get("/v1/jobs").await;
    let (status, body) = api.post_json("/v1/jobs?wait_ms=60001", ada.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_request");
    assert!(error_message(&body).contains("wait_ms"), "{body}");
    let (status, body) = api.post_json("/v1/jobs?wait_ms=soon", ada.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_query");
    let (status, body) = api.post_json("/v1/jobs?wait=1", ada.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_query");
    let (_, after) = api.get("/v1/jobs").await;
    assert_eq!(before, after, "nothing stored");

    // Without wait_ms (or with 0): the summary, as before.
    let (status, body) = api.post_json("/v1/jobs?wait_ms=0", ada).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["state"], "pending");
    assert!(body.get("input").is_none(), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoned_and_expired_long_polls_leave_no_registrations() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    // A far-future job: no long poll on it ends by the job changing.
    let (_, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "delay_ms": 86_400_000}),
        )
        .await;
    let id = job["id"].as_i64().unwrap();
    let queue = api.host.queue.clone();
    for _ in 0..50 {
        // Short polls that time out.
        let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=1")).await;
        assert_eq!(
            (status, &body["state"]),
            (StatusCode::OK, &json!("pending"))
        );
        // Clients that go away mid-poll: the request future is dropped.
        let app = router(queue.clone(), api.config.clone());
        let uri = format!("/v1/jobs/{id}?wait_ms=60000");
        let waiting = tokio::spawn(app.oneshot(Request::get(uri).body(Body::empty()).unwrap()));
        eventually("the request waits", || queue.long_polls(id) == 1).await;
        waiting.abort();
        assert!(waiting.await.unwrap_err().is_cancelled());
    }
    assert_eq!(queue.long_poll_registrations(), 0);
}

#[tokio::test]
async fn submitting_by_name_follows_uploads_and_deletes() {
    let api = Api::new();
    let (_, hello) = api.upload(guests::HELLO, Some("greeter")).await;
    let submit = || api.post_json("/v1/jobs", json!({"module": "greeter"}));
    let (_, job) = submit().await;
    assert_eq!(job["module"], hello["hash"]);
    // The name moves to a newer module: the next submit follows it at once.
    let (_, noop) = api.upload(guests::NOOP, Some("greeter")).await;
    let (status, job) = submit().await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["module"], noop["hash"]);
    api.post_raw(&format!("/v1/jobs/{}/cancel", job["id"]), "")
        .await;
    // Deleted, the name falls back to the older module.
    let del = |hash: &Value| {
        Request::delete(format!("/v1/modules/{}", hash.as_str().unwrap()))
            .body(Body::empty())
            .unwrap()
    };
    assert_eq!(api.call(del(&noop["hash"])).await.0, StatusCode::NO_CONTENT);
    let (_, job) = submit().await;
    assert_eq!(job["module"], hello["hash"]);
    // Every job of it cancelled and the module deleted: the name is gone.
    let (_, jobs) = api.get("/v1/jobs?state=pending").await;
    for job in jobs["jobs"].as_array().unwrap() {
        api.post_raw(&format!("/v1/jobs/{}/cancel", job["id"]), "")
            .await;
    }
    assert_eq!(
        api.call(del(&hello["hash"])).await.0,
        StatusCode::NO_CONTENT
    );
    let (status, body) = submit().await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_message(&body).contains("greeter"), "{body}");
}

#[tokio::test]
async fn a_missing_module_is_named_once() {
    let api = Api::new();
    let delete = Request::delete("/v1/modules/unknown")
        .body(Body::empty())
        .unwrap();
    for (status, body) in [api.call(delete).await, api.get("/v1/modules/unknown").await] {
        assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
        assert_eq!(error_message(&body), "module `unknown` not found");
    }
}

#[tokio::test]
async fn a_body_without_the_json_content_type_is_told_which_header_to_send() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    // What `curl -d` sends.
    let request = Request::post("/v1/jobs")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        .body(Body::from(r#"{"module": "hello"}"#))
        .unwrap();
    let (status, body) = api.call(request).await;
    assert_eq!(status, StatusCode::UNSUPPORTED_MEDIA_TYPE, "{body}");
    assert_eq!(error_code(&body), "unsupported_media_type");
    assert!(
        error_message(&body).contains("Content-Type: application/json"),
        "{body}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_requeue_is_refused_once_the_module_it_runs_is_deleted() {
    let mut api = Api::new();
    let (_, fatal) = api.upload(guests::FATAL, Some("fatal")).await;
    let (_, job) = api.post_json("/v1/jobs", json!({"module": "fatal"})).await;
    let id = job["id"].as_i64().unwrap();
    api.host.start_workers();
    api.host.wait_for(id, wasmjob::job::JobState::Failed).await;
    api.host.stop_workers().await;
    let hash = fatal["hash"].as_str().unwrap();
    let delete = Request::delete(format!("/v1/modules/{hash}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.call(delete).await.0, StatusCode::NO_CONTENT);
    let (status, body) = api.post_raw(&format!("/v1/jobs/{id}/requeue"), "").await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert_eq!(error_code(&body), "conflict");
    assert!(
        error_message(&body).contains(hash),
        "names the module: {body}"
    );
    let (_, detail) = api.get(&format!("/v1/jobs/{id}")).await;
    assert_eq!(detail["state"], "failed", "still in the dead letter");
    // Uploaded again, the job can be requeued.
    api.upload(guests::FATAL, None).await;
    let (status, body) = api.post_raw(&format!("/v1/jobs/{id}/requeue"), "").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["state"], "pending");
}

#[tokio::test]
async fn jobs_carry_the_name_of_their_module() {
    let api = Api::new();
    let (_, hello) = api.upload(guests::HELLO, Some("hello")).await;
    let (_, noop) = api.upload(guests::NOOP, None).await;
    let submit = |module: &Value| api.post_json("/v1/jobs", json!({"module": module}));
    let (_, by_name) = submit(&json!("hello")).await;
    let (_, by_hash) = submit(&hello["hash"]).await;
    let (_, unnamed) = submit(&noop["hash"]).await;
    assert_eq!(by_name["module_name"], "hello");
    assert_eq!(by_hash["module_name"], "hello", "the module's name");
    assert_eq!(unnamed["module_name"], Value::Null);
    let (_, detail) = api.get(&format!("/v1/jobs/{}", by_name["id"])).await;
    assert_eq!(
        (&detail["module"], &detail["module_name"]),
        (&hello["hash"], &json!("hello"))
    );
    let (_, page) = api.get("/v1/jobs").await;
    let names: Vec<_> = page["jobs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|job| job["module_name"].clone())
        .collect();
    assert_eq!(names, [Value::Null, json!("hello"), json!("hello")]);
}

#[tokio::test]
async fn every_v1_route_refuses_a_missing_or_wrong_token() {
    let api = Api::with(ApiConfig {
        token: Some("s3cret".to_owned()),
        ..ApiConfig::default()
    });
    let mut checked = 0;
    for (method, path) in routes() {
        let guarded = path.starts_with("/v1/") || path == "/metrics";
        if !guarded || path == "/v1/openapi.json" {
            continue;
        }
        let uri = path.replace("{id}", "1").replace("{module}", "hello");
        for authorization in [None, Some("Bearer wrong"), Some("s3cret")] {
            let mut request = Request::builder().method(method.clone()).uri(&uri);
            if let Some(value) = authorization {
                request = request.header(header::AUTHORIZATION, value);
            }
            let (status, body) = api.call(request.body(Body::empty()).unwrap()).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {uri} {authorization:?}"
            );
            assert_eq!(error_code(&body), "unauthorized");
        }
        checked += 1;
    }
    assert!(
        checked >= 15,
        "every /v1 route but the document, and /metrics: {checked}"
    );
}

#[tokio::test]
async fn readyz_answers_503_while_the_store_is_unreachable() {
    let api = Api::new();
    let (status, _) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK);
    api.host.store.close().await;
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(error_code(&body), "not_ready");
    // The store's own error text (here: its writer stopped) is logged,
    // never shown on the public endpoint.
    assert_eq!(
        error_message(&body),
        "store unreachable (the host's log says why)"
    );
    let (status, _) = api.get("/healthz").await;
    assert_eq!(status, StatusCode::OK, "alive, if not ready");
}

#[tokio::test]
async fn module_names_are_checked_at_upload() {
    let api = Api::new();
    let hash = "ab".repeat(32);
    let long = "n".repeat(129);
    for (name, needle) in [
        ("bad%20name", "invalid module name `bad name`"),
        (hash.as_str(), "looks like a hash"),
        (long.as_str(), "1-128 characters"),
        ("", "invalid module name ``"),
    ] {
        let (status, body) = api.upload(guests::HELLO, Some(name)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{name}: {body}");
        assert_eq!(error_code(&body), "invalid_request");
        assert!(error_message(&body).contains(needle), "{name}: {body}");
    }
    let (status, body) = api.upload(guests::HELLO, Some("team/resize-v2.1_b")).await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["name"], "team/resize-v2.1_b");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dead_letter_is_purged_one_job_or_all() {
    let mut api = Api::new();
    api.upload(guests::FATAL, Some("fatal")).await;
    let mut ids = Vec::new();
    for _ in 0..3 {
        let (_, job) = api.post_json("/v1/jobs", json!({"module": "fatal"})).await;
        ids.push(job["id"].as_i64().unwrap());
    }
    api.host.start_workers();
    for id in &ids {
        api.host.wait_for(*id, wasmjob::job::JobState::Failed).await;
    }
    api.host.stop_workers().await;
    let delete = |uri: String| Request::delete(uri).body(Body::empty()).unwrap();
    let (status, body) = api
        .call(delete(format!("/v1/dead-letter/{}", ids[0])))
        .await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"purged": 1})));
    let (status, body) = api
        .call(delete(format!("/v1/dead-letter/{}", ids[0])))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(error_code(&body), "not_found");
    let (status, body) = api.call(delete("/v1/dead-letter".to_owned())).await;
    assert_eq!((status, &body), (StatusCode::OK, &json!({"purged": 2})));
    let (_, page) = api.get("/v1/dead-letter").await;
    assert_eq!(page["jobs"], json!([]));
    let (status, _) = api.get(&format!("/v1/jobs/{}", ids[1])).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "purged jobs are gone");
}

#[tokio::test]
async fn whole_numbers_written_with_a_decimal_point_are_integers() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "max_attempts": 3.0, "priority": 2e0,
                   "limits": {"fuel": 172903299.0}}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(
        (
            &job["max_attempts"],
            &job["priority"],
            &job["limits"]["fuel"]
        ),
        (&json!(3), &json!(2), &json!(172_903_299))
    );
}

#[tokio::test]
async fn listings_refuse_what_the_document_does_not_allow() {
    let api = Api::new();
    for (query, needle) in [
        ("limit=0", "limit: 0 is out of range, use 1 to 1000"),
        ("limit=1001", "limit: 1001 is out of range, use 1 to 1000"),
        ("priority=11", "priority: 11 is out of range"),
        ("queue=no%20spaces", "queue: invalid queue name `no spaces`"),
    ] {
        let (status, body) = api.get(&format!("/v1/jobs?{query}")).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
        assert!(error_message(&body).contains(needle), "{query}: {body}");
    }
    let (status, body) = api.get("/v1/dead-letter?limit=1001").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api.get("/v1/jobs?module=nothing-by-that-name").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(
        error_message(&body),
        "module: no module `nothing-by-that-name`"
    );
    let (status, body) = api.get("/v1/jobs?limit=1000").await;
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test]
async fn a_deleted_modules_jobs_are_listed_by_its_hash() {
    let api = Api::new();
    let (_, module) = api.upload(guests::HELLO, None).await;
    let hash = module["hash"].as_str().unwrap();
    let (_, job) = api.post_json("/v1/jobs", json!({"module": hash})).await;
    api.post_raw(&format!("/v1/jobs/{}/cancel", job["id"]), "")
        .await;
    let delete = Request::delete(format!("/v1/modules/{hash}"))
        .body(Body::empty())
        .unwrap();
    assert_eq!(api.call(delete).await.0, StatusCode::NO_CONTENT);
    let (status, page) = api.get(&format!("/v1/jobs?module={hash}")).await;
    assert_eq!(status, StatusCode::OK, "{page}");
    assert_eq!(page["jobs"][0]["id"], job["id"]);
}

#[tokio::test]
async fn queues_are_listed_paused_and_resumed() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (status, job) = api
        .post_json("/v1/jobs", json!({"module": "hello", "queue": "emails"}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["queue"], "emails");
    api.post_json("/v1/jobs", json!({"module": "hello"})).await;
    let (status, list) = api.get("/v1/queues").await;
    assert_eq!(status, StatusCode::OK, "{list}");
    let names: Vec<_> = list["queues"]
        .as_array()
        .unwrap()
        .iter()
        .map(|q| q["name"].clone())
        .collect();
    assert_eq!(names, [json!("default"), json!("emails")]);
    assert_eq!(list["queues"][1]["pending"], 1);
    assert!(list["queues"][1]["oldest_wait_ms"].is_i64(), "{list}");
    let (status, paused) = api.post_raw("/v1/queues/emails/pause", "").await;
    assert_eq!((status, &paused["paused"]), (StatusCode::OK, &json!(true)));
    let (_, shown) = api.get("/v1/queues/emails").await;
    assert_eq!(shown["paused"], true);
    let (status, resumed) = api.post_raw("/v1/queues/emails/resume", "").await;
    assert_eq!(
        (status, &resumed["paused"]),
        (StatusCode::OK, &json!(false))
    );
    let (status, body) = api.get("/v1/queues/nowhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api.post_raw("/v1/queues/nowhere/pause", "").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (status, body) = api.get("/v1/queues/no%20spaces").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    let (status, body) = api
        .post_json("/v1/jobs", json!({"module": "hello", "queue": "no spaces"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).starts_with("queue: invalid queue name"),
        "{body}"
    );
    let (_, page) = api.get("/v1/jobs?queue=emails").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn a_job_may_run_at_an_absolute_time() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "run_at": "2030-01-02T03:04:05.678+01:00"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["run_at"], 1_893_549_845_678i64);
    // Lower case and a leap second, as RFC 3339 allows.
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "run_at": "2030-12-31t23:59:60z"}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    let (status, body) = api
        .post_json("/v1/jobs", json!({"module": "hello", "run_at": "tomorrow"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).starts_with("run_at: `tomorrow` is not an RFC 3339"),
        "{body}"
    );
    let (status, body) = api
        .post_json(
            "/v1/jobs/batch",
            json!({"jobs": [{"module": "hello"}, {"module": "hello", "run_at": "2030-01-01"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).starts_with("jobs[1].run_at:"),
        "{body}"
    );
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "run_at": "2030-01-01T00:00:00Z", "delay_ms": 5}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["run_at"], 1_893_456_000_000i64, "the later of the two");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_unique_key_is_stored_once_however_many_submissions_race() {
    let api = std::sync::Arc::new(Api::new());
    api.upload(guests::HELLO, Some("hello")).await;
    let submit = json!({"module": "hello", "queue": "reports",
                        "unique": {"key": "invoice:42", "window_ms": 60000}});
    let calls = (0..50).map(|_| {
        let api = api.clone();
        let submit = submit.clone();
        tokio::spawn(async move { api.post_json("/v1/jobs", submit).await })
    });
    let mut answers = Vec::new();
    for call in calls {
        answers.push(call.await.unwrap());
    }
    let created = answers
        .iter()
        .filter(|(status, _)| *status == StatusCode::CREATED)
        .count();
    assert_eq!(created, 1, "exactly one submission stores the job");
    let id = &answers[0].1["id"];
    for (status, job) in &answers {
        assert!(
            *status == StatusCode::CREATED || *status == StatusCode::OK,
            "{status} {job}"
        );
        assert_eq!(&job["id"], id, "every answer names the one job");
        assert_eq!(job["unique_key"], "invoice:42");
    }
    let (_, page) = api.get("/v1/jobs?queue=reports").await;
    assert_eq!(page["jobs"].as_array().unwrap().len(), 1);
    // The same key in another queue is another job; a batch says which
    // of its jobs it stored.
    let (status, batch) = api
        .post_json(
            "/v1/jobs/batch",
            json!({"jobs": [
                {"module": "hello", "queue": "reports", "unique": {"key": "invoice:42"}},
                {"module": "hello", "unique": {"key": "invoice:42"}},
            ]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    assert_eq!(batch["created"], json!([false, true]));
    assert_eq!(&batch["jobs"][0]["id"], id);
    // A key must be 1 to 256 bytes, the window within the host's bound.
    for (unique, field) in [
        (json!({"key": ""}), "unique.key"),
        (json!({"key": "k".repeat(257)}), "unique.key"),
        (
            json!({"key": "k", "window_ms": 1u64 << 50}),
            "unique.window_ms",
        ),
    ] {
        let (status, body) = api
            .post_json("/v1/jobs", json!({"module": "hello", "unique": unique}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(error_message(&body).starts_with(field), "{body}");
    }
    let (status, body) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "unique": {"window_ms": 5}}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_json");
}

#[tokio::test]
async fn the_operator_bounds_long_polls_and_the_document_says_so() {
    let api = Api::with(ApiConfig {
        max_wait_ms: 50,
        ..ApiConfig::default()
    });
    api.upload(guests::HELLO, Some("hello")).await;
    let (_, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "delay_ms": 3_600_000}),
        )
        .await;
    let id = &job["id"];
    let (status, job) = api.get(&format!("/v1/jobs/{id}?wait_ms=50")).await;
    assert_eq!((status, &job["state"]), (StatusCode::OK, &json!("pending")));
    let (status, body) = api.get(&format!("/v1/jobs/{id}?wait_ms=51")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_message(&body),
        "wait_ms: 51 is over the maximum of 50"
    );
    let (_, document) = api.get("/v1/openapi.json").await;
    let wait = document["paths"]["/v1/jobs/{id}"]["get"]["parameters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "wait_ms")
        .unwrap()
        .clone();
    assert_eq!(wait["schema"]["maximum"], 50);
}

#[tokio::test]
async fn a_workflow_is_checked_whole_and_stored_whole() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let order = json!({"name": "order-42", "jobs": [
        {"name": "email", "module": "hello", "priority": 9, "depends_on": ["shipping"]},
        {"name": "payment", "module": "hello", "priority": 1},
        {"name": "inventory", "module": "hello", "priority": 1},
        {"name": "shipping", "module": "hello",
         "depends_on": ["payment", {"job": "inventory", "on_failure": "cancel"}]},
        {"name": "cleanup", "module": "hello",
         "depends_on": [{"job": "shipping", "on_failure": "continue"}]},
    ]});
    let (status, workflow) = api.post_json("/v1/workflows", order).await;
    assert_eq!(status, StatusCode::CREATED, "{workflow}");
    assert_eq!(workflow["name"], "order-42");
    assert_eq!(workflow["state"], "running");
    assert_eq!(workflow["jobs"]["pending"], 2);
    assert_eq!(workflow["jobs"]["blocked"], 3);
    let nodes = workflow["nodes"].as_array().unwrap();
    let names: Vec<_> = nodes.iter().map(|n| n["node"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["payment", "inventory", "shipping", "email", "cleanup"]
    );
    let id_of = |name: &str| nodes.iter().find(|n| n["node"] == name).unwrap()["id"].clone();
    assert_eq!(
        nodes[2]["depends_on"],
        json!([
            {"job": id_of("payment"), "name": "payment", "on_failure": "cancel"},
            {"job": id_of("inventory"), "name": "inventory", "on_failure": "cancel"},
        ])
    );
    assert_eq!(nodes[4]["depends_on"][0]["on_failure"], "continue");
    let id = workflow["id"].as_i64().unwrap();
    let (status, again) = api.get(&format!("/v1/workflows/{id}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["nodes"], workflow["nodes"]);
    let (_, job) = api.get(&format!("/v1/jobs/{}", id_of("shipping"))).await;
    assert_eq!(job["state"], "blocked");
    assert_eq!(job["workflow"], id);
    assert_eq!(job["depends_on"], nodes[2]["depends_on"]);
    let (_, page) = api.get("/v1/workflows").await;
    assert_eq!(page["workflows"][0]["id"], id);
    // Cancel: every job that is not final, each with the reason.
    let (status, cancelled) = api
        .post_json(&format!("/v1/workflows/{id}/cancel"), json!(null))
        .await;
    assert_eq!(status, StatusCode::OK, "{cancelled}");
    assert_eq!(cancelled["state"], "cancelled");
    for node in cancelled["nodes"].as_array().unwrap() {
        assert_eq!(node["state"], "cancelled", "{node}");
        assert_eq!(node["last_error"], format!("workflow {id} was cancelled"));
    }
    let (status, body) = api.get("/v1/workflows/999").await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::NOT_FOUND, "not_found")
    );
}

#[tokio::test]
async fn a_bad_graph_is_a_400_naming_the_problem_and_stores_nothing() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let job =
        |name: &str, after: Value| json!({"name": name, "module": "hello", "depends_on": after});
    for (jobs, message) in [
        (
            json!([job("a", json!([])), job("b", json!(["nope"]))]),
            "jobs[1].depends_on: no job of the workflow is named `nope`",
        ),
        (
            json!([job("a", json!(["a"]))]),
            "jobs[0].depends_on: `a` cannot depend on itself",
        ),
        (
            json!([
                job("a", json!(["c"])),
                job("b", json!(["a"])),
                job("c", json!(["b"]))
            ]),
            "jobs: the dependencies form a cycle: a → b → c → a",
        ),
        (
            json!([job("a", json!([])), job("a", json!([]))]),
            "jobs[1].name: `a` is the name of jobs[0] too",
        ),
        (json!([]), "jobs: a workflow has 1 to 100000 jobs, not 0"),
    ] {
        let (status, body) = api.post_json("/v1/workflows", json!({"jobs": jobs})).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(error_message(&body), message);
    }
    // A job's own field is named by its index in the request.
    let (status, body) = api
        .post_json(
            "/v1/workflows",
            json!({"jobs": [job("a", json!([])), {"name": "b", "module": "hello", "priority": 11}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        error_message(&body).starts_with("jobs[1].priority"),
        "{body}"
    );
    let (status, body) = api
        .post_json(
            "/v1/workflows",
            json!({"jobs": [job("a", json!([])), {"name": "b", "module": "nope"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(error_message(&body).starts_with("jobs[1].module"), "{body}");
    let (_, page) = api.get("/v1/workflows").await;
    assert_eq!(page["workflows"], json!([]), "nothing stored");
    let (_, page) = api.get("/v1/jobs").await;
    assert_eq!(page["jobs"], json!([]), "nothing stored");
}

#[tokio::test]
async fn a_job_may_depend_on_stored_jobs_by_id() {
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let (_, first) = api.post_json("/v1/jobs", json!({"module": "hello"})).await;
    let first = first["id"].as_i64().unwrap();
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "depends_on": [first,
                {"job": first, "name": "again"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{job}");
    assert!(error_message(&job).starts_with("depends_on:"), "{job}");
    let (status, job) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "depends_on": [{"job": first, "name": "greeting",
                   "on_failure": "continue"}]}),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{job}");
    assert_eq!(job["state"], "blocked");
    let (_, detail) = api.get(&format!("/v1/jobs/{}", job["id"])).await;
    assert_eq!(
        detail["depends_on"],
        json!([{"job": first, "name": "greeting", "on_failure": "continue"}])
    );
    // Unknown ids are a 400 naming them, nothing stored; so is a wrong form.
    let (status, body) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "depends_on": [first, 999]}),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(
        error_message(&body),
        "depends_on: `999` names job 999, which does not exist"
    );
    for bad in [
        json!(["x"]),
        json!([0]),
        json!([{"name": "n"}]),
        json!([1.5]),
    ] {
        let (status, body) = api
            .post_json("/v1/jobs", json!({"module": "hello", "depends_on": bad}))
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{bad}: {body}");
    }
    // Cancelling the prerequisite cancels the default-edge dependent.
    let (_, dependent) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "depends_on": [first]}),
        )
        .await;
    api.post_json(&format!("/v1/jobs/{first}/cancel"), json!(null))
        .await;
    let (_, dependent) = api.get(&format!("/v1/jobs/{}", dependent["id"])).await;
    assert_eq!(dependent["state"], "cancelled");
    assert_eq!(
        dependent["last_error"],
        format!("prerequisite `{first}` (job {first}) was cancelled")
    );
    // A job that can never run is refused.
    let (status, body) = api
        .post_json(
            "/v1/jobs",
            json!({"module": "hello", "depends_on": [first]}),
        )
        .await;
    assert_eq!(
        (status, error_code(&body)),
        (StatusCode::CONFLICT, "conflict")
    );
}

#[tokio::test]
async fn a_submissions_traceparent_is_kept_with_its_jobs_and_a_malformed_one_ignored() {
    const TRACEPARENT: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let api = Api::new();
    api.upload(guests::HELLO, Some("hello")).await;
    let post = |uri: &str, traceparent: &str, body: Value| {
        Request::post(uri)
            .header(header::CONTENT_TYPE, "application/json")
            .header("traceparent", traceparent)
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let job = json!({"module": "hello", "input": {"name": "Ada"}});

    let (status, single) = api.call(post("/v1/jobs", TRACEPARENT, job.clone())).await;
    assert_eq!(status, StatusCode::CREATED, "{single}");
    assert_eq!(single["traceparent"], TRACEPARENT, "{single}");
    let (_, read) = api.get(&format!("/v1/jobs/{}", single["id"])).await;
    assert_eq!(read["traceparent"], TRACEPARENT, "{read}");

    let batch = json!({"jobs": [job.clone(), job.clone()]});
    let (status, batch) = api.call(post("/v1/jobs/batch", TRACEPARENT, batch)).await;
    assert_eq!(status, StatusCode::CREATED, "{batch}");
    for job in batch["jobs"].as_array().unwrap() {
        assert_eq!(job["traceparent"], TRACEPARENT, "{job}");
    }

    let workflow = json!({"name": "w", "jobs": [
        {"name": "a", "module": "hello", "input": {"name": "a"}},
        {"name": "b", "module": "hello", "input": {"name": "b"}, "depends_on": ["a"]},
    ]});
    let (status, workflow) = api.call(post("/v1/workflows", TRACEPARENT, workflow)).await;
    assert_eq!(status, StatusCode::CREATED, "{workflow}");
    let nodes = workflow["nodes"].as_array().unwrap();
    assert_eq!(nodes.len(), 2, "{workflow}");
    for node in nodes {
        assert_eq!(node["traceparent"], TRACEPARENT, "{node}");
    }

    // The Trace Context specification: a malformed header starts a new
    // trace; the request is not refused for it.
    for malformed in [
        "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
        "garbage",
    ] {
        let (status, job) = api.call(post("/v1/jobs", malformed, job.clone())).await;
        assert_eq!(status, StatusCode::CREATED, "{job}");
        assert!(job.get("traceparent").is_none(), "{job}");
    }
    // Without the header: none.
    let (_, plain) = api.post_json("/v1/jobs", job).await;
    assert!(plain.get("traceparent").is_none(), "{plain}");
}

/// An input nested deeper than serde_json parses under its recursion limit
/// (which a raw JSON value is not checked against) is refused naming
/// `input`; one at the bound is stored. The submission body itself is parsed with
/// that limit.
#[tokio::test]
async fn an_input_nested_past_the_depth_bound_is_refused_naming_the_field() {
    let api = Api::new();
    api.upload(guests::NOOP, Some("noop")).await;
    let nested = |depth: usize| -> Value {
        serde_json::from_str(&format!("{}{}", "[".repeat(depth), "]".repeat(depth))).unwrap()
    };
    let (status, body) = api
        .post_json("/v1/jobs", json!({"module": "noop", "input": nested(127)}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let deep = format!(
        r#"{{"module": "noop", "input": {}{}}}"#,
        "[".repeat(128),
        "]".repeat(128)
    );
    let (status, body) = api.post_raw("/v1/jobs", deep).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert_eq!(error_code(&body), "invalid_request", "{body}");
    let message = error_message(&body);
    assert!(message.starts_with("input"), "{message}");
    assert!(message.contains("at most 127"), "{message}");
    // Far deeper, in a large body: the same answer, no stack trouble.
    let deeper = format!(
        r#"{{"module": "noop", "input": {}{}}}"#,
        "[".repeat(1_000_000),
        "]".repeat(1_000_000)
    );
    let (status, body) = api.post_raw("/v1/jobs", deeper).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(error_message(&body).starts_with("input"), "{body}");
}

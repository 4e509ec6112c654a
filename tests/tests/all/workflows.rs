//! Dependencies and workflows end to end, in-process: real SQLite files,
//! real example jobs (`sum`, `order`, `pipeline`), the real worker pool.
//! The brief's two worked examples run here: the order flow and the data
//! pipeline, each with a failing run.

use crate::wat;
use serde_json::{Value, json};
use wasmjob::engine::{Dependency, DependencyState, Invocation};
use wasmjob::job::OnFailure;
use wasmjob::job::{JobId, JobState, WorkflowDetail, WorkflowState};
use wasmjob::policy::{NodeEdge, NodeSpec, WorkflowSpec};
use wasmjob::queue::QueueConfig;
use wasmjob_tests::host::Host;
use wasmjob_tests::{engine, guests, run, test_limits};

fn host() -> Host {
    Host::new(QueueConfig {
        concurrency: 2,
        ..QueueConfig::default()
    })
}

/// A workflow job `name` of `module` with `input`, after `after` (each
/// cancelled on failure unless it ends with `?`: then `continue`).
fn node(host: &Host, module: &str, name: &str, input: Value, after: &[&str]) -> NodeSpec {
    NodeSpec {
        name: name.to_owned(),
        job: host.job(module, input),
        after: after
            .iter()
            .map(|a| match a.strip_suffix('?') {
                Some(a) => NodeEdge {
                    node: a.to_owned(),
                    on_failure: OnFailure::Continue,
                },
                None => NodeEdge {
                    node: (*a).to_owned(),
                    on_failure: OnFailure::Cancel,
                },
            })
            .collect(),
    }
}

fn with_priority(mut node: NodeSpec, priority: u8) -> NodeSpec {
    node.job.priority = Some(priority);
    node
}

async fn submit(host: &Host, name: &str, nodes: Vec<NodeSpec>) -> i64 {
    let spec = WorkflowSpec {
        name: Some(name.to_owned()),
        jobs: nodes,
    };
    host.queue.submit_workflow(spec).await.expect("workflow").0
}

/// Waits until every job of the workflow is final; returns it.
async fn finished(host: &Host, id: i64) -> WorkflowDetail {
    let queue = host.queue.clone();
    wasmjob_tests::host::wait_until(&host.queue, || {
        let queue = queue.clone();
        async move {
            let detail = queue.workflow(id).await.expect("workflow");
            (detail.workflow.state() != WorkflowState::Running).then_some(detail)
        }
    })
    .await
    .unwrap_or_else(|| panic!("workflow {id} never finished"))
}

fn job_id(detail: &WorkflowDetail, name: &str) -> JobId {
    detail
        .jobs
        .iter()
        .find(|j| j.node.as_deref() == Some(name))
        .unwrap_or_else(|| panic!("no job {name}"))
        .id
}

async fn output(host: &Host, id: JobId) -> Value {
    let detail = host.detail(id).await;
    assert_eq!(detail.job.state, JobState::Completed, "{detail:?}");
    serde_json::from_str(detail.output.expect("an output").as_str()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chain_passes_each_output_to_the_next_job() {
    let mut host = host();
    let sum = host.upload(guests::SUM).await;
    let id = submit(
        &host,
        "chain",
        vec![
            node(&host, &sum, "c", json!({"add": 3}), &["b"]),
            node(&host, &sum, "b", json!({"add": 2}), &["a"]),
            node(&host, &sum, "a", json!({"add": 1}), &[]),
        ],
    )
    .await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(detail.workflow.state(), WorkflowState::Completed);
    assert_eq!(
        output(&host, job_id(&detail, "b")).await,
        json!({"total": 3, "inputs": {"a": 1}})
    );
    assert_eq!(
        output(&host, job_id(&detail, "c")).await,
        json!({"total": 6, "inputs": {"b": 3}})
    );
    // Each started only after the one before it ended.
    let started = |name| {
        let id = job_id(&detail, name);
        let job = detail.jobs.iter().find(|j| j.id == id).unwrap().clone();
        (job.started_at.unwrap(), job.finished_at.unwrap())
    };
    assert!(started("b").0 >= started("a").1);
    assert!(started("c").0 >= started("b").1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fan_in_receives_every_branch_output() {
    let mut host = host();
    let sum = host.upload(guests::SUM).await;
    let id = submit(
        &host,
        "fan",
        vec![
            node(&host, &sum, "a", json!({"add": 1}), &[]),
            node(&host, &sum, "b", json!({"add": 10}), &[]),
            node(&host, &sum, "c", json!({"add": 100}), &[]),
            node(&host, &sum, "d", json!({"add": 1000}), &["a", "b", "c"]),
        ],
    )
    .await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(
        output(&host, job_id(&detail, "d")).await,
        json!({"total": 1111, "inputs": {"a": 1, "b": 10, "c": 100}})
    );
}

fn order_flow(host: &Host, order: &str, in_stock: bool) -> Vec<NodeSpec> {
    let step = |step: &str, extra: Value| {
        let mut input = json!({"step": step, "order": order});
        input
            .as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        input
    };
    let m = "order";
    vec![
        with_priority(
            node(
                host,
                m,
                "payment",
                step("payment", json!({"amount": 42.5})),
                &[],
            ),
            1,
        ),
        with_priority(
            node(
                host,
                m,
                "inventory",
                step(
                    "inventory",
                    json!({"items": ["mug", "tea"], "in_stock": in_stock}),
                ),
                &[],
            ),
            1,
        ),
        with_priority(
            node(
                host,
                m,
                "shipping",
                step("shipping", json!({})),
                &["payment", "inventory"],
            ),
            5,
        ),
        with_priority(
            node(
                host,
                m,
                "email",
                step("email", json!({"to": "ada@example.com"})),
                &["shipping"],
            ),
            9,
        ),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_order_flow_ships_and_emails_after_payment_and_inventory() {
    let mut host = host();
    host.upload_named(guests::ORDER, "order").await;
    let id = submit(&host, "order A-1", order_flow(&host, "A-1", true)).await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(detail.workflow.state(), WorkflowState::Completed);
    let email = output(&host, job_id(&detail, "email")).await;
    assert_eq!(
        email["body"],
        "Order A-1 (mug, tea) ships with TRK-A-1 (receipt rcpt-A-1)."
    );
    let priorities: Vec<_> = detail.jobs.iter().map(|j| j.priority).collect();
    assert_eq!(priorities, [1, 1, 5, 9]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_inventory_fails_shipping_and_email_are_cancelled_and_payment_stays() {
    let mut host = host();
    host.upload_named(guests::ORDER, "order").await;
    let id = submit(&host, "order A-2", order_flow(&host, "A-2", false)).await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(detail.workflow.state(), WorkflowState::Failed);
    let inventory = job_id(&detail, "inventory");
    let state = |name: &str| {
        let id = job_id(&detail, name);
        detail.jobs.iter().find(|j| j.id == id).unwrap().clone()
    };
    assert_eq!(state("inventory").state, JobState::Failed);
    assert_eq!(
        state("inventory").last_error.as_deref(),
        Some("out of stock: mug, tea")
    );
    let shipping = state("shipping");
    assert_eq!(shipping.state, JobState::Cancelled);
    assert_eq!(
        shipping.last_error.unwrap(),
        format!("prerequisite `inventory` (job {inventory}) failed")
    );
    let email = state("email");
    assert_eq!(email.state, JobState::Cancelled);
    assert_eq!(
        email.last_error.unwrap(),
        format!(
            "prerequisite `shipping` (job {}) was cancelled: prerequisite `inventory` (job \
             {inventory}) failed",
            shipping.id
        )
    );
    // Cancelled jobs never ran.
    assert!(host.detail(email.id).await.attempts.is_empty());
    // The payment's result stays.
    assert_eq!(
        output(&host, job_id(&detail, "payment")).await,
        json!({"charged": 42.5, "receipt": "rcpt-A-2"})
    );
}

fn data_pipeline(host: &Host, rows: Value) -> Vec<NodeSpec> {
    let m = "pipeline";
    let step = |s: &str| json!({"step": s});
    vec![
        node(
            host,
            m,
            "validate",
            json!({"step": "validate", "rows": rows}),
            &[],
        ),
        node(host, m, "transform", step("transform"), &["validate"]),
        node(host, m, "features", step("features"), &["transform"]),
        node(
            host,
            m,
            "analytics",
            step("analytics"),
            &["transform", "features"],
        ),
        node(
            host,
            m,
            "report",
            step("report"),
            &["features", "analytics"],
        ),
        with_priority(node(host, m, "alert", step("alert"), &["validate?"]), 0),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_pipeline_reports_and_its_alert_stays_quiet() {
    let mut host = host();
    host.upload_named(guests::PIPELINE, "pipeline").await;
    let rows: Vec<Value> = [4.0, 5.0, 4.5, 5.5, 4.0, 5.0, 4.5, 5.5, 4.8, 40.0]
        .iter()
        .map(|v| json!({"value": v}))
        .collect();
    let id = submit(&host, "daily", data_pipeline(&host, json!(rows))).await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(detail.workflow.state(), WorkflowState::Completed);
    let report = output(&host, job_id(&detail, "report")).await;
    assert_eq!(report["summary"], "10 rows, mean 0.21, 1 outlier(s) at [9]");
    assert_eq!(
        output(&host, job_id(&detail, "alert")).await,
        json!({"alert": null})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_validation_cancels_the_pipeline_and_raises_a_critical_alert() {
    let mut host = host();
    host.upload_named(guests::PIPELINE, "pipeline").await;
    let rows = json!([{"value": 1.0}, {"value": 2.0}, {"value": "three"}]);
    let id = submit(&host, "daily", data_pipeline(&host, rows)).await;
    host.start_workers();
    let detail = finished(&host, id).await;
    assert_eq!(detail.workflow.state(), WorkflowState::Failed);
    for name in ["transform", "features", "analytics", "report"] {
        let job = detail
            .jobs
            .iter()
            .find(|j| j.node.as_deref() == Some(name))
            .unwrap();
        assert_eq!(job.state, JobState::Cancelled, "{name}");
    }
    let alert = detail
        .jobs
        .iter()
        .find(|j| j.node.as_deref() == Some("alert"))
        .unwrap();
    assert_eq!(alert.priority, 0);
    assert_eq!(
        output(&host, alert.id).await,
        json!({"alert": "validation failed: row 2: `value` must be a non-negative number, got {\"value\":\"three\"}"})
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_a_workflow_stops_its_running_job_and_cancels_the_rest() {
    let mut host = host();
    let looping = host.upload(guests::INFINITE_LOOP).await;
    let sum = host.upload(guests::SUM).await;
    let id = submit(
        &host,
        "stuck",
        vec![
            node(&host, &looping, "spin", json!(null), &[]),
            node(&host, &sum, "after", json!({}), &["spin"]),
        ],
    )
    .await;
    host.start_workers();
    let detail = host.queue.workflow(id).await.unwrap();
    let spin = job_id(&detail, "spin");
    host.wait_for(spin, JobState::Running).await;
    let cancelled = host.queue.cancel_workflow(id).await.unwrap();
    assert!(
        cancelled
            .jobs
            .iter()
            .all(|j| j.state == JobState::Cancelled)
    );
    // The running attempt is stopped and filed, not retried.
    let spin = host
        .wait_job(spin, |d| !d.attempts.is_empty())
        .await
        .expect("the interrupted attempt is filed");
    assert_eq!(spin.job.state, JobState::Cancelled);
    assert_eq!(spin.attempts.len(), 1);
}

#[test]
fn a_command_module_reads_its_prerequisites_in_an_envelope() {
    let engine = engine();
    let module = engine.load(&wat::echo()).unwrap();
    let dependencies = vec![
        Dependency {
            name: "payment".to_owned(),
            job: 7,
            state: DependencyState::Completed,
            output: Some(br#"{"charged":42.5}"#.to_vec()),
            error: None,
        },
        Dependency {
            name: "stock \"check\"".to_owned(),
            job: 8,
            state: DependencyState::Failed,
            output: None,
            error: Some("out of stock".to_owned()),
        },
    ];
    let invocation = Invocation::new(br#"{"order":"A-1"}"#.to_vec())
        .with_limits(test_limits())
        .with_dependencies(dependencies);
    let report = run(&engine, &module, invocation);
    let stdin: Value = serde_json::from_str(report.output.unwrap().as_str()).unwrap();
    assert_eq!(
        stdin,
        json!({
            "input": {"order": "A-1"},
            "dependencies": {
                "payment": {"job": 7, "state": "completed", "output": {"charged": 42.5}, "error": null},
                "stock \"check\"": {"job": 8, "state": "failed", "output": null, "error": "out of stock"},
            }
        })
    );
    // Without prerequisites, stdin is the input itself.
    let plain = run(
        &engine,
        &module,
        Invocation::new(b"[1]".to_vec()).with_limits(test_limits()),
    );
    assert_eq!(plain.output.unwrap().as_str(), "[1]");
}

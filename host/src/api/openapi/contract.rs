//! The rules the server enforces, written into the OpenAPI document where
//! they apply, from the same constants and checks the server uses: the job
//! policy's bounds (a floor and this host's ceiling per field), the module
//! name rule, page sizes, the long poll's maximum. And links, so that a
//! client (or a stateful fuzzer) can follow from the operation that creates
//! a job or a module to those that act on it.

use super::super::ApiConfig;
use super::super::jobs::MAX_PAGE;
use crate::job::PRIORITY_LOW;
use crate::policy::{Policy, QUEUE_NAME_MAX, queue_name_pattern};
use crate::queue::{MODULE_NAME_MAX, module_name_pattern, module_reference_pattern};
use serde_json::{Value, json};

/// Writes every rule into `document` (the JSON of the utoipa document):
/// those of the job policy `policy` and of the HTTP settings `api`.
pub(super) fn state(document: &mut Value, policy: &Policy, api: &ApiConfig) {
    body(document, policy);
    parameters(document, api);
    links(document);
}

/// A submission's fields: every bound of the policy, the priority's range
/// and the module reference's form; and the request objects refuse fields
/// they do not list (`api::body::object!`).
fn body(document: &mut Value, policy: &Policy) {
    for schema in [
        "SubmitJob",
        "SubmitBatch",
        "RetryPatch",
        "LimitsPatch",
        "UniquePatch",
        "JobEdge",
        "SubmitWorkflow",
        "WorkflowJob",
        "WorkflowEdge",
        "CreateSchedule",
        "ReplaceSchedule",
        "ScheduleJob",
        "SetGrants",
    ] {
        let path = format!("/components/schemas/{schema}");
        let schema = document.pointer_mut(&path).expect("a request schema");
        schema["additionalProperties"] = json!(false);
    }
    // A workflow's job and a schedule's take the same fields, less a few.
    for job in ["SubmitJob", "WorkflowJob", "ScheduleJob"] {
        for bound in policy.bounds() {
            let top = bound.field.split('.').next().expect("a field");
            let path = format!("/components/schemas/{job}/properties/{top}");
            if document.pointer(&path).is_none() {
                continue;
            }
            let field = property(document, job, bound.field);
            field["minimum"] = json!(bound.min);
            field["maximum"] = json!(bound.max);
        }
        let priority = property(document, job, "priority");
        priority["minimum"] = json!(0);
        priority["maximum"] = json!(PRIORITY_LOW);
        *property(document, job, "module") = reference_schema("Module hash or name.");
        let queue = property(document, job, "queue");
        for (key, value) in queue_schema().as_object().expect("an object") {
            queue[key] = value.clone();
        }
    }
    // A schedule's name follows the queue names' rule.
    let name = property(document, "CreateSchedule", "name");
    for (key, value) in queue_schema().as_object().expect("an object") {
        name[key] = value.clone();
    }
}

/// Query and path parameters.
fn parameters(document: &mut Value, api: &ApiConfig) {
    let page = json!({"minimum": 1, "maximum": MAX_PAGE});
    let reference = reference_schema("");
    for (operation, name, schema) in [
        ("list_jobs", "limit", page.clone()),
        ("list_dead_letter", "limit", page.clone()),
        ("list_workflows", "limit", page),
        (
            "list_jobs",
            "priority",
            json!({"minimum": 0, "maximum": PRIORITY_LOW}),
        ),
        ("list_jobs", "module", reference.clone()),
        ("get_module", "module", reference.clone()),
        ("delete_module", "module", reference),
        ("list_jobs", "queue", queue_schema()),
        ("list_jobs", "schedule", queue_schema()),
        ("get_queue", "queue", queue_schema()),
        ("history", "queue", queue_schema()),
        ("pause_queue", "queue", queue_schema()),
        ("resume_queue", "queue", queue_schema()),
        ("get_schedule", "name", queue_schema()),
        ("replace_schedule", "name", queue_schema()),
        ("delete_schedule", "name", queue_schema()),
        ("pause_schedule", "name", queue_schema()),
        ("resume_schedule", "name", queue_schema()),
        (
            "get_job",
            "wait_ms",
            json!({"minimum": 0, "maximum": api.max_wait_ms}),
        ),
        (
            "submit_job",
            "wait_ms",
            json!({"minimum": 0, "maximum": api.max_wait_ms}),
        ),
        (
            "upload_module",
            "name",
            json!({
                "pattern": module_name_pattern(),
                "minLength": 1,
                "maxLength": MODULE_NAME_MAX,
            }),
        ),
    ] {
        let target = &mut parameter(document, operation, name)["schema"];
        for (key, value) in schema.as_object().expect("an object") {
            if key != "description" {
                target[key] = value.clone();
            }
        }
    }
    for operation in ["get_job", "submit_job"] {
        let wait = parameter(document, operation, "wait_ms");
        let described = wait["description"].as_str().unwrap_or_default().to_owned();
        wait["description"] = json!(format!(
            "{described} At most {} on this host (`server.max_wait_ms`). A long wait outlasts \
             many clients' default timeouts (often 30 s): set the client's timeout above \
             `wait_ms`.",
            api.max_wait_ms
        ));
    }
    // A job's detail is also a valid job summary: a submission's answer
    // is any of the two, not exactly one (utoipa writes `oneOf` for an
    // untagged enum).
    let answer = &mut document["components"]["schemas"]["SubmitAnswer"];
    if let Some(variants) = answer.as_object_mut().and_then(|a| a.remove("oneOf")) {
        answer["anyOf"] = variants;
    }
}

/// A queue name, as the server accepts it.
fn queue_schema() -> Value {
    json!({"pattern": queue_name_pattern(), "minLength": 1, "maxLength": QUEUE_NAME_MAX})
}

/// A module hash or name, as the server accepts it.
fn reference_schema(description: &str) -> Value {
    let mut schema = json!({
        "type": "string",
        "pattern": module_reference_pattern(),
        "minLength": 1,
        "maxLength": MODULE_NAME_MAX,
    });
    if !description.is_empty() {
        schema["description"] = json!(description);
    }
    schema
}

/// Links from the operations that create jobs and modules, and from the
/// listings, to the operations that take their ids.
fn links(document: &mut Value) {
    let job =
        |operation: &str, id: &str| json!({"operationId": operation, "parameters": {"id": id}});
    let module = |operation: &str| json!({"operationId": operation, "parameters": {"module": "$response.body#/hash"}});
    let created = "$response.body#/id";
    let first = "$response.body#/jobs/0/id";
    for (operation, status, links) in [
        (
            "submit_job",
            "201",
            json!({
                "GetJob": job("get_job", created),
                "CancelJob": job("cancel_job", created),
                "RequeueJob": job("requeue_job", created),
                "PurgeDeadLetterJob": job("purge_dead_letter_job", created),
            }),
        ),
        (
            "submit_batch",
            "201",
            json!({"GetJob": job("get_job", first), "CancelJob": job("cancel_job", first)}),
        ),
        (
            "list_jobs",
            "200",
            json!({"GetJob": job("get_job", first), "CancelJob": job("cancel_job", first)}),
        ),
        (
            "list_dead_letter",
            "200",
            json!({
                "RequeueJob": job("requeue_job", first),
                "PurgeDeadLetterJob": job("purge_dead_letter_job", first),
            }),
        ),
        (
            "submit_workflow",
            "201",
            json!({
                "GetWorkflow": job("get_workflow", created),
                "CancelWorkflow": job("cancel_workflow", created),
                "GetJob": job("get_job", "$response.body#/nodes/0/id"),
            }),
        ),
        (
            "list_workflows",
            "200",
            json!({
                "GetWorkflow": job("get_workflow", "$response.body#/workflows/0/id"),
                "CancelWorkflow": job("cancel_workflow", "$response.body#/workflows/0/id"),
            }),
        ),
        (
            "upload_module",
            "201",
            json!({"GetModule": module("get_module"), "DeleteModule": module("delete_module")}),
        ),
    ] {
        operation_mut(document, operation)["responses"][status]["links"] = links;
    }
}

/// The schema of `field` (`limits.fuel`) of component `schema`, following
/// `$ref`s.
fn property<'a>(document: &'a mut Value, schema: &str, field: &str) -> &'a mut Value {
    let mut schema = schema.to_owned();
    let mut parts = field.split('.').peekable();
    loop {
        let part = parts.next().expect("a field has a name");
        let path = format!("/components/schemas/{schema}/properties/{part}");
        if parts.peek().is_none() {
            return document
                .pointer_mut(&path)
                .unwrap_or_else(|| panic!("the document has {path}"));
        }
        let reference = document
            .pointer(&path)
            .and_then(reference)
            .unwrap_or_else(|| panic!("{path} refers to a schema"));
        schema = reference.rsplit('/').next().expect("a $ref").to_owned();
    }
}

/// The `$ref` of a schema: its own, or that of the one alternative of a
/// nullable reference (`oneOf: [null, $ref]`).
fn reference(schema: &Value) -> Option<&str> {
    if let Some(reference) = schema["$ref"].as_str() {
        return Some(reference);
    }
    ["oneOf", "anyOf", "allOf"]
        .iter()
        .filter_map(|key| schema[*key].as_array())
        .flatten()
        .find_map(|alternative| alternative["$ref"].as_str())
}

/// The operation with this `operationId`.
fn operation_mut<'a>(document: &'a mut Value, id: &str) -> &'a mut Value {
    let paths = document["paths"].as_object_mut().expect("paths");
    paths
        .values_mut()
        .flat_map(|item| item.as_object_mut().expect("a path item").values_mut())
        .find(|operation| operation["operationId"] == id)
        .unwrap_or_else(|| panic!("no operation {id}"))
}

/// Parameter `name` of operation `operation`.
fn parameter<'a>(document: &'a mut Value, operation: &str, name: &str) -> &'a mut Value {
    operation_mut(document, operation)["parameters"]
        .as_array_mut()
        .expect("parameters")
        .iter_mut()
        .find(|parameter| parameter["name"] == name)
        .unwrap_or_else(|| panic!("no parameter {name} of {operation}"))
}

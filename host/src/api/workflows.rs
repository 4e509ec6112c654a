//! `/v1/workflows`: submit a graph of jobs in one request, read it, list
//! and cancel workflows. And the `depends_on` of a single job, which
//! names stored jobs by id.

use super::body::{Whole, object};
use super::error::ErrorBody;
use super::jobs::{LimitsPatch, RetryPatch, SubmitJob, page_size};
use super::openapi::Unauthorized;
use super::views::{self, OnFailureView, WorkflowSummary, WorkflowView};
use super::{ApiError, AppState};
use crate::job::{Dependency, JobId, OnFailure, Prereq, WorkflowId};
use crate::policy::{Invalid, NodeEdge, NodeSpec, WorkflowSpec};
use crate::store::WorkflowFilter;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::de::{self, Deserializer, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use std::borrow::Cow;
use std::fmt;
use utoipa::openapi::schema::{ObjectBuilder, OneOfBuilder, Schema, Type};
use utoipa::openapi::{Ref, RefOr};
use utoipa::{IntoParams, PartialSchema, ToSchema};

/// A prerequisite of a submitted job: a job id, or an object naming the
/// id with a name and what to do if it fails.
#[derive(Debug)]
pub enum JobDependency {
    /// A job id: named by its id, cancelled if it fails.
    Id(JobId),
    /// The object form.
    Edge(JobEdge),
}

/// A prerequisite of a submitted job, in full.
#[derive(Debug, Default, ToSchema)]
pub struct JobEdge {
    /// The id of the job waited for.
    #[schema(value_type = i64, minimum = 1, maximum = 9_223_372_036_854_775_807_i64)]
    job: Whole<u64>,
    /// The name the job knows its output by (1 to 128 bytes); the id when
    /// absent.
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// `cancel` (when absent): the job is cancelled if this one fails or
    /// is cancelled; `continue`: it runs anyway.
    on_failure: Option<OnFailureView>,
}

object!(JobEdge { job, name, on_failure } required { job });

impl JobDependency {
    /// The dependency this names.
    pub(super) fn into_dependency(self) -> Result<Dependency, Invalid> {
        let (id, name, on_failure) = match self {
            JobDependency::Id(id) => (id, None, None),
            JobDependency::Edge(edge) => {
                let id = edge.job.0.unwrap_or_default();
                let id = JobId::try_from(id)
                    .map_err(|_| Invalid::new("depends_on", format!("{id} is not a job id")))?;
                (id, edge.name, edge.on_failure)
            }
        };
        if id < 1 {
            return Err(Invalid::new("depends_on", format!("{id} is not a job id")));
        }
        Ok(Dependency {
            on: Prereq::Job(id),
            name: name.unwrap_or_else(|| id.to_string()),
            on_failure: on_failure.map_or(OnFailure::Cancel, Into::into),
        })
    }
}

impl<'de> Deserialize<'de> for JobDependency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct IdOrEdge;
        impl<'de> Visitor<'de> for IdOrEdge {
            type Value = JobDependency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job id or a JSON object (JobEdge)")
            }

            fn visit_u64<E: de::Error>(self, id: u64) -> Result<JobDependency, E> {
                JobId::try_from(id)
                    .map(JobDependency::Id)
                    .map_err(|_| E::custom(format!("{id} is not a job id")))
            }

            fn visit_i64<E: de::Error>(self, id: i64) -> Result<JobDependency, E> {
                Ok(JobDependency::Id(id))
            }

            fn visit_f64<E: de::Error>(self, id: f64) -> Result<JobDependency, E> {
                if id.fract() == 0.0 && (1.0..=i64::MAX as f64).contains(&id) {
                    Ok(JobDependency::Id(id as i64))
                } else {
                    Err(E::custom(format!("{id} is not a job id")))
                }
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<JobDependency, A::Error> {
                JobEdge::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(JobDependency::Edge)
            }
        }
        deserializer.deserialize_any(IdOrEdge)
    }
}

impl PartialSchema for JobDependency {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::Integer)
                    .minimum(Some(1))
                    .maximum(Some(i64::MAX))
                    .description(Some("A job id: named by its id, cancelled if it fails.")),
            )
            .item(Ref::from_schema_name(JobEdge::name()))
            .description(Some(
                "A prerequisite: a job id, or an object naming the id with a name and what to \
                 do if it fails.",
            ))
            .into()
    }
}

impl ToSchema for JobDependency {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("JobDependency")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((JobEdge::name().into_owned(), JobEdge::schema()));
    }
}

/// A prerequisite of a workflow's job: the name of another job of the
/// workflow, or an object naming it with what to do if it fails.
#[derive(Debug)]
pub enum NodeDependency {
    /// A job's name: cancelled if it fails.
    Name(String),
    /// The object form.
    Edge(NodeEdgePatch),
}

/// A prerequisite of a workflow's job, in full.
#[derive(Debug, Default, ToSchema)]
#[schema(as = WorkflowEdge)]
pub struct NodeEdgePatch {
    /// The name of the job of the workflow waited for; the job knows its
    /// output by this name.
    #[schema(min_length = 1, max_length = 128)]
    job: String,
    /// `cancel` (when absent): the job is cancelled if that one fails or
    /// is cancelled; `continue`: it runs anyway.
    on_failure: Option<OnFailureView>,
}

object!(NodeEdgePatch { job, on_failure } required { job });

impl NodeDependency {
    fn into_edge(self) -> NodeEdge {
        match self {
            NodeDependency::Name(node) => NodeEdge {
                node,
                on_failure: OnFailure::Cancel,
            },
            NodeDependency::Edge(edge) => NodeEdge {
                node: edge.job,
                on_failure: edge.on_failure.map_or(OnFailure::Cancel, Into::into),
            },
        }
    }
}

impl<'de> Deserialize<'de> for NodeDependency {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NameOrEdge;
        impl<'de> Visitor<'de> for NameOrEdge {
            type Value = NodeDependency;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a job's name or a JSON object (WorkflowEdge)")
            }

            fn visit_str<E: de::Error>(self, name: &str) -> Result<NodeDependency, E> {
                Ok(NodeDependency::Name(name.to_owned()))
            }

            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<NodeDependency, A::Error> {
                NodeEdgePatch::deserialize(de::value::MapAccessDeserializer::new(map))
                    .map(NodeDependency::Edge)
            }
        }
        deserializer.deserialize_any(NameOrEdge)
    }
}

impl PartialSchema for NodeDependency {
    fn schema() -> RefOr<Schema> {
        OneOfBuilder::new()
            .item(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .min_length(Some(1))
                    .max_length(Some(crate::policy::WORKFLOW_NAME_MAX))
                    .description(Some("A job's name: cancelled if it fails.")),
            )
            .item(Ref::from_schema_name(NodeEdgePatch::name()))
            .description(Some(
                "A prerequisite: the name of another job of the workflow, or an object naming \
                 it with what to do if it fails.",
            ))
            .into()
    }
}

impl ToSchema for NodeDependency {
    fn name() -> Cow<'static, str> {
        Cow::Borrowed("WorkflowDependency")
    }

    fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
        schemas.push((NodeEdgePatch::name().into_owned(), NodeEdgePatch::schema()));
    }
}

/// A workflow as submitted: its jobs and the edges between them.
#[derive(Debug, Default, ToSchema)]
#[schema(example = json!({
    "name": "order-42",
    "jobs": [
        {"name": "payment", "module": "hello", "priority": 1},
        {"name": "inventory", "module": "hello", "priority": 1},
        {"name": "shipping", "module": "hello", "depends_on": ["payment", "inventory"]},
        {"name": "email", "module": "hello", "priority": 9, "depends_on": ["shipping"]}
    ]
}))]
pub struct SubmitWorkflow {
    /// A name to show for it, 1 to 128 bytes.
    #[schema(min_length = 1, max_length = 128)]
    name: Option<String>,
    /// Its jobs, 1 to 100000, each named.
    #[schema(min_items = 1, max_items = 100000)]
    jobs: Vec<WorkflowJob>,
}

object!(SubmitWorkflow { name, jobs } required { jobs });

/// One job of a submitted workflow: a job as `POST /v1/jobs` takes it
/// (without `unique`), with a name and its prerequisites by name.
#[derive(Debug, Default, ToSchema)]
pub struct WorkflowJob {
    /// Its name in the workflow, unique there (1 to 128 bytes): other jobs
    /// name it in `depends_on`, and know its output by it.
    #[schema(min_length = 1, max_length = 128)]
    name: String,
    /// The jobs of the workflow it waits for.
    depends_on: Vec<NodeDependency>,
    /// The queue to wait in; `default` when absent.
    queue: Option<String>,
    /// Module hash or name.
    module: String,
    /// Any JSON; `null` when absent.
    #[schema(value_type = views::RawJson, required = false)]
    input: Option<Box<RawValue>>,
    /// 0 (critical) to 10 (low); 5 when absent.
    #[schema(value_type = Option<u8>)]
    priority: Whole<u8>,
    /// Attempts allowed in all, at least 1.
    #[schema(value_type = Option<u32>)]
    max_attempts: Whole<u32>,
    /// How to retry.
    retry: Option<RetryPatch>,
    /// Limits of the first attempt.
    limits: Option<LimitsPatch>,
    /// Once its prerequisites are done, run no earlier than this many
    /// milliseconds after submission.
    #[schema(value_type = Option<u64>)]
    delay_ms: Whole<u64>,
    /// Run no earlier than this time (RFC 3339).
    #[schema(value_type = Option<String>, format = DateTime)]
    run_at: Option<String>,
}

object!(WorkflowJob {
    name, depends_on, queue, module, input, priority, max_attempts, retry, limits, delay_ms,
    run_at
} required { name, module });

impl SubmitWorkflow {
    fn into_spec(self) -> Result<WorkflowSpec, Invalid> {
        let jobs = self
            .jobs
            .into_iter()
            .enumerate()
            .map(|(index, job)| {
                let after = job
                    .depends_on
                    .into_iter()
                    .map(NodeDependency::into_edge)
                    .collect();
                let spec = SubmitJob {
                    queue: job.queue,
                    module: job.module,
                    input: job.input,
                    priority: job.priority,
                    max_attempts: job.max_attempts,
                    retry: job.retry,
                    limits: job.limits,
                    delay_ms: job.delay_ms,
                    run_at: job.run_at,
                    ..SubmitJob::default()
                }
                .into_spec()
                .map_err(|invalid| invalid.within("jobs", index))?;
                Ok(NodeSpec {
                    name: job.name,
                    job: spec,
                    after,
                })
            })
            .collect::<Result<_, Invalid>>()?;
        Ok(WorkflowSpec {
            name: self.name,
            jobs,
        })
    }
}

/// Submit a workflow.
///
/// Its graph is checked first (every name once, every edge naming a job of
/// the workflow, no job depending on itself, no cycle), then each job as
/// `POST /v1/jobs` checks it; the workflow and all its jobs are stored in
/// one durable commit, or nothing is. Jobs without prerequisites are
/// `pending`, the others `blocked` until theirs complete.
#[utoipa::path(
    post,
    path = "/v1/workflows",
    operation_id = "submit_workflow",
    tag = "workflows",
    request_body = SubmitWorkflow,
    params(super::jobs::TraceHeader),
    responses(
        (status = 201, description = "Stored, durably.", body = WorkflowView),
        (status = 400, description = "`invalid_json`: malformed, an unknown field or a wrong \
            type; `invalid_request`: a name used twice, an edge to no job of the workflow or \
            to the job itself, a cycle (the message shows it), or a job's field outside its \
            bounds (`jobs[2].priority: ...`); nothing is stored.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: a job names a module that does not exist \
            (`jobs[3].module: ...`); nothing is stored.", body = ErrorBody),
        (status = 413, description = "`payload_too_large`: larger than the server's \
            `server.max_body_bytes`.", body = ErrorBody),
        (status = 415, description = "`unsupported_media_type`: the request does not say \
            `Content-Type: application/json`.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn submit(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Result<Json<SubmitWorkflow>, JsonRejection>,
) -> Result<(StatusCode, Json<WorkflowView>), ApiError> {
    let Json(workflow) = body?;
    let mut spec = workflow
        .into_spec()
        .map_err(|invalid| ApiError::invalid(invalid.to_string()))?;
    let (id, _) = super::jobs::traced(&headers, |trace| {
        for node in &mut spec.jobs {
            node.job.trace = trace;
        }
        state.queue.submit_workflow(spec)
    })
    .await
    .map_err(|e| super::jobs::refused(e, true))?;
    let detail = state.queue.workflow(id).await?;
    Ok((StatusCode::CREATED, Json(detail.into())))
}

/// The `{id}` of a workflow's path.
#[derive(Debug, IntoParams)]
#[into_params(parameter_in = Path)]
pub struct WorkflowIdParam {
    /// The workflow's id.
    #[param(minimum = 1)]
    #[allow(dead_code)]
    id: i64,
}

fn parse_id(text: &str) -> Result<WorkflowId, ApiError> {
    text.parse::<WorkflowId>()
        .ok()
        .filter(|id| *id >= 1)
        .ok_or_else(|| ApiError::invalid(format!("`{text}` is not a workflow id")))
}

/// Get a workflow: its state, and every job with its prerequisites.
#[utoipa::path(
    get,
    path = "/v1/workflows/{id}",
    operation_id = "get_workflow",
    tag = "workflows",
    params(WorkflowIdParam),
    responses(
        (status = 200, description = "The workflow with every job and edge.",
            body = WorkflowView),
        (status = 400, description = "`invalid_request`: not a workflow id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such workflow.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn get(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    Ok(Json(state.queue.workflow(parse_id(&id)?).await?.into()))
}

/// Cancel a workflow: every job of it that is not final.
#[utoipa::path(
    post,
    path = "/v1/workflows/{id}/cancel",
    operation_id = "cancel_workflow",
    tag = "workflows",
    params(WorkflowIdParam),
    responses(
        (status = 200, description = "Every job that was not final is cancelled (a running one \
            is stopped); the workflow as it is now.", body = WorkflowView),
        (status = 400, description = "`invalid_request`: not a workflow id.", body = ErrorBody),
        (status = 401, response = Unauthorized),
        (status = 404, description = "`not_found`: no such workflow.", body = ErrorBody),
    ),
    security((), ("bearer" = [])),
)]
pub async fn cancel(
    State(state): State<AppState>,
    Path(id): Path<String>,
) -> Result<Json<WorkflowView>, ApiError> {
    let detail = state.queue.cancel_workflow(parse_id(&id)?).await?;
    Ok(Json(detail.into()))
}

/// Options of listing workflows.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct WorkflowListQuery {
    /// The cursor: only workflows with an id below this (`next_cursor` of
    /// the previous page).
    #[param(value_type = Option<i64>)]
    before: Option<WorkflowId>,
    /// Page size: 100 when absent, 1 to 1000.
    limit: Option<usize>,
}

/// A page of workflows.
#[derive(Debug, Serialize, ToSchema)]
pub struct WorkflowPage {
    /// The workflows, newest first.
    workflows: Vec<WorkflowSummary>,
    /// Pass as `before` for the next page; `null` on the last page.
    #[schema(value_type = Option<i64>, required = true)]
    next_cursor: Option<WorkflowId>,
}

/// List workflows, newest first, with their jobs counted by state.
#[utoipa::path(
    get,
    path = "/v1/workflows",
    operation_id = "list_workflows",
    tag = "workflows",
    params(WorkflowListQuery),
    responses(
        (status = 200, description = "A page of workflows, newest first.", body = WorkflowPage),
        (status = 400, description = "`invalid_query`: an unknown parameter or a wrong type; \
            `invalid_request`: a page size out of range.", body = ErrorBody),
        (status = 401, response = Unauthorized),
    ),
    security((), ("bearer" = [])),
)]
pub async fn list(
    State(state): State<AppState>,
    query: Result<Query<WorkflowListQuery>, QueryRejection>,
) -> Result<Json<WorkflowPage>, ApiError> {
    let Query(query) = query?;
    let limit = page_size(query.limit)?;
    let workflows = state
        .queue
        .workflows(WorkflowFilter {
            before: query.before,
            limit,
        })
        .await?;
    let next_cursor = if workflows.len() == limit {
        workflows.last().map(|w| w.id)
    } else {
        None
    };
    Ok(Json(WorkflowPage {
        workflows: workflows.into_iter().map(WorkflowSummary::from).collect(),
        next_cursor,
    }))
}

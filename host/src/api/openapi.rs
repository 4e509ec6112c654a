//! The OpenAPI 3.1 document of the HTTP API, generated with `utoipa` from
//! the handlers' `#[utoipa::path]` attributes and the types they send and
//! receive, and served at `GET /v1/openapi.json` (public, like `/healthz`:
//! it describes the API, it reveals nothing stored).
//!
//! `docs/openapi.json` is this document, committed; a test regenerates it
//! and fails when it is stale, and another fails when a route the router
//! serves ([`super::routes`]) is missing from it, or the reverse.

mod contract;

use super::error::ErrorBody;
use super::{ApiConfig, AppState, history, host_info, jobs, modules, queues, schedules, workflows};
use crate::policy::Policy;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::content::ContentBuilder;
use utoipa::openapi::response::ResponseBuilder;
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{RefOr, Response};
use utoipa::{Modify, OpenApi, ToResponse, ToSchema};

/// Name of the bearer-token security scheme in the document.
pub const BEARER: &str = "bearer";

const DESCRIPTION: &str = "\
A background job host where every job is a sandboxed WebAssembly module.

Bodies are JSON except module uploads (raw wasm bytes). Times are \
milliseconds since the Unix epoch. Every client mistake is a 4xx with \
`{\"error\": {\"code\", \"message\"}}`; the code is stable, the message \
names the field or the problem.

When the server is configured with a token (`server.token`), every `/v1` \
route except `/v1/openapi.json` needs `Authorization: Bearer <token>`; \
`/healthz`, `/readyz` and `/v1/openapi.json` are always public.";

/// The document's root: paths, components, tags and info.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "wasmjob",
        version = env!("CARGO_PKG_VERSION"),
        description = DESCRIPTION,
        license(name = "Apache-2.0", identifier = "Apache-2.0"),
    ),
    paths(
        modules::upload,
        modules::list,
        modules::get,
        modules::delete,
        modules::set_grants,
        modules::wasm,
        modules::grants,
        jobs::submit,
        jobs::submit_batch,
        jobs::list,
        jobs::get,
        jobs::cancel,
        jobs::requeue,
        jobs::dead_letter,
        jobs::purge,
        jobs::purge_one,
        queues::list,
        queues::get,
        queues::pause,
        queues::resume,
        schedules::create,
        schedules::list,
        schedules::get,
        schedules::replace,
        schedules::delete,
        schedules::pause,
        schedules::resume,
        workflows::submit,
        workflows::list,
        workflows::get,
        workflows::cancel,
        host_info::stats,
        host_info::workers,
        history::get,
        serve,
        super::healthz,
        super::readyz,
    ),
    components(schemas(ErrorBody), responses(Unauthorized)),
    modifiers(&BearerScheme),
    tags(
        (name = "modules", description = "Upload, list, get and delete wasm modules; give them \
            grants of the host's config (what their jobs may reach beyond the sandbox)."),
        (name = "jobs", description = "Submit (one or a batch), get, list and cancel jobs."),
        (name = "dead-letter", description = "Failed jobs: list, re-queue, purge."),
        (name = "queues", description = "Named queues: depth, oldest wait, pause and resume."),
        (name = "schedules", description = "Cron schedules: create, replace, list, get, \
            pause, resume, delete."),
        (name = "workflows", description = "Graphs of jobs submitted together: submit, get, \
            list, cancel."),
        (name = "host", description = "What this host is doing."),
        (name = "health", description = "Probes, outside `/v1`, always public."),
        (name = "docs", description = "This document."),
    ),
)]
struct ApiDoc;

/// Adds the bearer-token security scheme the operations refer to.
struct BearerScheme;

impl Modify for BearerScheme {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            BEARER,
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "The server's `server.token`. Required on `/v1` only when the \
                         server is configured with one; operations list it next to an \
                         empty requirement for that reason.",
                    ))
                    .build(),
            ),
        );
    }
}

/// The 401 every authenticated route can answer, as a shared response.
pub(super) struct Unauthorized;

impl<'r> ToResponse<'r> for Unauthorized {
    fn response() -> (&'r str, RefOr<Response>) {
        let response = ResponseBuilder::new()
            .description(
                "`unauthorized`: the server has a token and the request has no \
                 `Authorization: Bearer` header or the wrong token.",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(ErrorBody::schema_ref()))
                    .build(),
            )
            .build();
        ("Unauthorized", response.into())
    }
}

/// A `$ref` to a schema component.
trait SchemaRef {
    fn schema_ref() -> RefOr<Schema>;
}

impl<T: ToSchema> SchemaRef for T {
    fn schema_ref() -> RefOr<Schema> {
        RefOr::Ref(utoipa::openapi::Ref::from_schema_name(T::name()))
    }
}

/// The OpenAPI document's shape, from the handlers and types alone: what
/// [`json_for`] completes with the rules the server enforces.
pub fn document() -> utoipa::openapi::OpenApi {
    ApiDoc::openapi()
}

/// The whole OpenAPI document of a host whose job policy is `policy` and
/// HTTP settings `api`: [`document`] with every rule the server checks
/// stated where it applies (`contract::state`), as pretty-printed JSON
/// with a final newline. `docs/openapi.json` is this for the built-in
/// settings ([`json`]).
pub fn json_for(policy: &Policy, api: &ApiConfig) -> String {
    let mut document = serde_json::to_value(document()).expect("the OpenAPI document serializes");
    contract::state(&mut document, policy, api);
    let mut text = serde_json::to_string_pretty(&document).expect("a JSON value serializes");
    text.push('\n');
    text
}

/// [`json_for`] the built-in settings: the exact contents of
/// `docs/openapi.json`.
pub fn json() -> String {
    json_for(&Policy::default(), &ApiConfig::default())
}

/// This host's OpenAPI document, with its own ceilings.
///
/// Public even when the server has a token.
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    operation_id = "openapi",
    tag = "docs",
    responses((status = 200, description = "This document (OpenAPI 3.1), with this host's \
        ceilings.", content_type = "application/json")),
)]
pub(super) async fn serve(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi.as_ref().to_owned(),
    )
}

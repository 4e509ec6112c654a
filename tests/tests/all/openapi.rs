//! The OpenAPI document (`wasmjob::api::openapi`): it lists exactly the
//! routes the router serves, `docs/openapi.json` and `docs/api.md` are not
//! stale, it is served publicly, and its schemas describe what the API
//! really answers.
//!
//! After changing the API, regenerate the committed files with
//! `WASMJOB_BLESS=1 cargo test -p wasmjob-tests --test all -- openapi`.

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use tower::ServiceExt;
use wasmjob::api::{ApiConfig, openapi, router, routes};
use wasmjob::job::JobState;
use wasmjob::policy::{Ceilings, Defaults, Escalation, Policy};
use wasmjob::queue::{QueueConfig, module_name_pattern, module_reference_pattern};
use wasmjob::store::ClaimRequest;
use wasmjob_tests::guests;
use wasmjob_tests::host::{Host, NowMs};

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

fn document() -> Value {
    serde_json::from_str(&openapi::json()).expect("the document is JSON")
}

/// Every (method, path) operation of the document.
fn operations(doc: &Value) -> Vec<(String, String, &Value)> {
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("path item") {
            if METHODS.contains(&method.as_str()) {
                out.push((method.to_uppercase(), path.clone(), operation));
            }
        }
    }
    out
}

#[test]
fn every_route_is_documented_and_every_documented_route_is_served() {
    let served: BTreeSet<(String, String)> = routes()
        .into_iter()
        .map(|(method, path)| (method.as_str().to_owned(), path.to_owned()))
        .collect();
    assert_eq!(
        served.len(),
        routes().len(),
        "a route is in the table twice"
    );
    let doc = document();
    let documented: BTreeSet<(String, String)> = operations(&doc)
        .into_iter()
        .map(|(method, path, _)| (method, path))
        .collect();
    let undocumented: Vec<_> = served.difference(&documented).collect();
    let unserved: Vec<_> = documented.difference(&served).collect();
    assert!(
        undocumented.is_empty() && unserved.is_empty(),
        "served but not in the OpenAPI document (add #[utoipa::path] and list it in \
         api/openapi.rs): {undocumented:?}; documented but not served: {unserved:?}"
    );
}

#[tokio::test]
async fn every_route_in_the_table_reaches_a_handler() {
    // The table is what the router is built from; a request to each route
    // must not fall through to the 404 fallback or a 405.
    let host = Host::new(QueueConfig::default());
    let app = router(host.queue.clone(), ApiConfig::default());
    for (method, path) in routes() {
        let uri = path.replace("{module}", "nope").replace("{id}", "1");
        let request = Request::builder()
            .method(method.clone())
            .uri(&uri)
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from("{}"))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {uri}");
        assert!(
            !String::from_utf8_lossy(&bytes).contains("no such route"),
            "{method} {uri} fell through to the fallback"
        );
    }
}

#[test]
fn operations_are_well_formed() {
    let doc = document();
    assert_eq!(doc["info"]["title"], "wasmjob");
    assert_eq!(doc["info"]["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(
        doc["components"]["securitySchemes"]["bearer"]["scheme"],
        "bearer"
    );
    let mut ids = BTreeSet::new();
    for (method, path, operation) in operations(&doc) {
        let at = format!("{method} {path}");
        let id = operation["operationId"].as_str().expect("an operationId");
        assert!(ids.insert(id.to_owned()), "{at}: operationId {id} twice");
        assert!(operation["summary"].is_string(), "{at}: no summary");
        if let Some(body) = operation.get("requestBody") {
            let content = body["content"].as_object().expect("request content");
            if path == "/v1/modules" {
                for media in ["application/wasm", "application/octet-stream"] {
                    let schema = &content[media]["schema"];
                    assert_eq!(schema["type"], "string", "{at} {media}");
                    assert_eq!(schema["format"], "binary", "{at} {media}");
                }
            } else {
                let schema = &content["application/json"]["schema"]["$ref"];
                assert!(schema.is_string(), "{at}: a JSON body with a named schema");
            }
        }
        assert!(operation["tags"].is_array(), "{at}: no tag");

        // Path parameters: declared exactly as the path names them.
        let in_path: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        let declared: BTreeSet<&str> = operation["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .map(|p| p["name"].as_str().unwrap())
            .collect();
        assert_eq!(in_path, declared, "{at}: path parameters");

        // Authentication: every /v1 route but the document itself, and
        // /metrics (unless the operator makes it public).
        let guarded = path.starts_with("/v1/") || path == "/metrics";
        let public = !guarded || path == "/v1/openapi.json";
        let responses = operation["responses"].as_object().expect("responses");
        if public {
            assert!(operation.get("security").is_none(), "{at}: public");
            assert!(!responses.contains_key("401"), "{at}: public but 401");
        } else {
            assert_eq!(operation["security"], json!([{}, {"bearer": []}]), "{at}");
            assert_eq!(
                responses["401"]["$ref"], "#/components/responses/Unauthorized",
                "{at}"
            );
        }

        // Success, then errors with the shared error body.
        assert!(
            responses.keys().any(|code| code.starts_with('2')),
            "{at}: no success response"
        );
        for (code, response) in responses {
            if code.starts_with('4') || code.starts_with('5') {
                let response = resolve(&doc, response);
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{at}: {code} without the error body"
                );
            }
        }
    }
}

#[test]
fn every_reference_resolves() {
    fn walk<'a>(value: &'a Value, refs: &mut Vec<&'a str>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::String(r)) = map.get("$ref") {
                    refs.push(r);
                }
                map.values().for_each(|v| walk(v, refs));
            }
            Value::Array(items) => items.iter().for_each(|v| walk(v, refs)),
            _ => {}
        }
    }
    let doc = document();
    let mut refs = Vec::new();
    walk(&doc, &mut refs);
    assert!(!refs.is_empty());
    for r in refs {
        assert!(!lookup(&doc, r).is_null(), "dangling $ref {r}");
    }
}

#[test]
fn the_committed_document_and_reference_are_fresh() {
    let docs = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../docs");
    let generated = [
        ("openapi.json", openapi::json()),
        ("api.md", api_md(&document())),
    ];
    let bless = std::env::var_os("WASMJOB_BLESS").is_some_and(|v| v == "1");
    for (name, fresh) in generated {
        let path = docs.join(name);
        if bless {
            std::fs::write(&path, &fresh).unwrap_or_else(|e| panic!("docs/{name}: {e}"));
            continue;
        }
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert!(
            committed == fresh,
            "docs/{name} is stale: regenerate it with \
             `WASMJOB_BLESS=1 cargo test -p wasmjob-tests --test all -- openapi` \
             and commit it"
        );
    }
}

#[tokio::test]
async fn the_document_is_served_without_a_token() {
    let host = Host::new(QueueConfig::default());
    let app = router(
        host.queue.clone(),
        ApiConfig {
            token: Some("s3cret".to_owned()),
            ..ApiConfig::default()
        },
    );
    let request = Request::get("/v1/jobs").body(Body::empty()).unwrap();
    let response = app.clone().oneshot(request).await.unwrap();
    assert_eq!(
        response.status(),
        StatusCode::UNAUTHORIZED,
        "the rest of /v1"
    );
    let request = Request::get("/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(response.headers()[header::CONTENT_TYPE], "application/json");
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(served, document());
}

/// Drives a real host through the API and checks every answer against the
/// schema the document gives for its route and status.
#[tokio::test]
async fn answers_match_their_schemas() {
    let mut host = Host::new(QueueConfig::default());
    host.start_workers();
    let app = router(host.queue.clone(), ApiConfig::default());
    let doc = document();
    let call = |method: &'static str, path: String, body: Option<Value>| {
        let app = app.clone();
        let doc = &doc;
        async move {
            let mut request = Request::builder().method(method).uri(&path);
            let body = match body {
                Some(body) => {
                    request = request.header(header::CONTENT_TYPE, "application/json");
                    Body::from(body.to_string())
                }
                None => Body::empty(),
            };
            let response = app.oneshot(request.body(body).unwrap()).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            let value: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            conforms(doc, method, &path, status, &value);
            (status, value)
        }
    };

    for (path, name) in [(guests::HELLO, "hello"), (guests::PANIC, "panic")] {
        let request = Request::post(format!("/v1/modules?name={name}"))
            .header(header::CONTENT_TYPE, "application/wasm")
            .body(Body::from(wasmjob_tests::guest_bytes(path)))
            .unwrap();
        let response = app.clone().oneshot(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::CREATED);
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value: Value = serde_json::from_slice(&bytes).unwrap();
        conforms(&doc, "POST", "/v1/modules", StatusCode::CREATED, &value);
    }
    call("GET", "/v1/modules".into(), None).await;
    call("GET", "/v1/modules/hello".into(), None).await;
    call("GET", "/v1/modules/nope".into(), None).await;

    let (_, done) = call(
        "POST",
        "/v1/jobs".into(),
        Some(json!({"module": "hello", "input": {"name": "Ada"}})),
    )
    .await;
    let (_, failed) = call(
        "POST",
        "/v1/jobs".into(),
        Some(json!({"module": "panic", "max_attempts": 1, "retry": {"backoff": "none"}})),
    )
    .await;
    let (_, batch) = call(
        "POST",
        "/v1/jobs/batch".into(),
        Some(json!({"jobs": [{"module": "hello", "delay_ms": 3_600_000}]})),
    )
    .await;
    let waiting = batch["jobs"][0]["id"].as_i64().unwrap();
    let done = done["id"].as_i64().unwrap();
    let failed = failed["id"].as_i64().unwrap();
    host.wait_for(done, JobState::Completed).await;
    host.wait_for(failed, JobState::Failed).await;

    let (_, detail) = call("GET", format!("/v1/jobs/{done}"), None).await;
    assert!(detail.get("output").is_some(), "{detail}");
    let (_, detail) = call("GET", format!("/v1/jobs/{failed}"), None).await;
    assert!(
        detail["attempts"][0]["report"]["failure"].is_object(),
        "{detail}"
    );
    call("GET", format!("/v1/jobs/{waiting}"), None).await;
    call("GET", "/v1/jobs/abc".into(), None).await;
    call("GET", "/v1/jobs/999".into(), None).await;
    let (_, page) = call("GET", "/v1/jobs?limit=2".into(), None).await;
    assert!(page["next_cursor"].is_i64(), "{page}");
    call("GET", "/v1/jobs?state=completed".into(), None).await;
    call("GET", "/v1/jobs?colour=blue".into(), None).await;
    call("GET", "/v1/dead-letter".into(), None).await;
    call("GET", "/v1/stats".into(), None).await;
    call("GET", "/v1/workers".into(), None).await;
    call("POST", "/v1/jobs".into(), Some(json!({"module": "nope"}))).await;
    let (status, _) = call("POST", format!("/v1/jobs/{done}/requeue"), None).await;
    assert_eq!(status, StatusCode::CONFLICT, "not in the dead letter");
    let (status, requeued) = call("POST", format!("/v1/jobs/{failed}/requeue"), None).await;
    assert_eq!(
        (status, &requeued["state"]),
        (StatusCode::OK, &json!("pending"))
    );
    host.wait_for(failed, JobState::Failed).await;
    let (status, _) = call("POST", format!("/v1/jobs/{waiting}/cancel"), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = call("POST", format!("/v1/jobs/{waiting}/cancel"), None).await;
    assert_eq!(status, StatusCode::CONFLICT);
    let (status, _) = call("DELETE", "/v1/dead-letter/999".into(), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, purged) = call("DELETE", "/v1/dead-letter".into(), None).await;
    assert_eq!((status, &purged), (StatusCode::OK, &json!({"purged": 1})));
    call("DELETE", "/v1/modules/hello".into(), None).await;
    call("GET", "/healthz".into(), None).await;
    call("GET", "/readyz".into(), None).await;
    host.stop_workers().await;

    // A `lost` attempt: claimed by a host that died, rescued after its
    // lease expired.
    let host = Host::new(QueueConfig::default());
    let hello = host.upload(guests::HELLO).await;
    let job = host.submit(host.job(&hello, json!({}))).await;
    let store = host.queue.store();
    let request = ClaimRequest {
        owner: "ghost".to_owned(),
        limit: 1,
        lease_ms: 1_000,
        ..ClaimRequest::default()
    };
    assert_eq!(
        store
            .claim_due(request, host.clock.now_ms())
            .await
            .unwrap()
            .len(),
        1
    );
    host.clock.advance(60_000);
    assert_eq!(wasmjob::scheduler::rescue_once(&host.queue).await, 1);

    let app = router(host.queue.clone(), ApiConfig::default());
    let request = Request::get(format!("/v1/jobs/{}", job.id))
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let detail: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        detail["attempts"][0]["report"]["status"], "lost",
        "{detail}"
    );
    conforms(&doc, "GET", "/v1/jobs/1", StatusCode::OK, &detail);
}

#[test]
fn the_schema_check_finds_undocumented_missing_and_mistyped_fields() {
    let doc = document();
    let page = json!({"$ref": "#/components/schemas/JobPage"});
    let mut errors = Vec::new();
    check(
        &doc,
        &page,
        &json!({"jobs": [], "next_cursor": null}),
        "$",
        &mut errors,
    );
    assert_eq!(errors, Vec::<String>::new());
    check(
        &doc,
        &page,
        &json!({"jobs": [], "colour": 1}),
        "$",
        &mut errors,
    );
    check(
        &doc,
        &page,
        &json!({"jobs": {}, "next_cursor": "x"}),
        "$",
        &mut errors,
    );
    assert_eq!(errors.len(), 4, "{errors:#?}");
}

/// Panics unless `value`, answered with `status` to `method path`, matches
/// the document's schema for that operation and status.
fn conforms(doc: &Value, method: &str, path: &str, status: StatusCode, value: &Value) {
    let path = path.split('?').next().unwrap();
    let (template, operation) = operations(doc)
        .into_iter()
        .find(|(m, template, _)| m == method && matches_template(template, path))
        .map(|(_, template, operation)| (template, operation))
        .unwrap_or_else(|| panic!("{method} {path} is not in the document"));
    let at = format!("{method} {template} {}", status.as_u16());
    let response = resolve(doc, &operation["responses"][status.as_str()]);
    assert!(!response.is_null(), "{at} is not documented; body {value}");
    match response["content"]["application/json"].get("schema") {
        None => assert!(value.is_null(), "{at} has no documented body, got {value}"),
        Some(schema) => {
            let mut errors = Vec::new();
            check(doc, schema, value, "$", &mut errors);
            assert!(errors.is_empty(), "{at}: {errors:#?}\nin {value:#}");
        }
    }
}

fn matches_template(template: &str, path: &str) -> bool {
    let (t, p): (Vec<_>, Vec<_>) = (template.split('/').collect(), path.split('/').collect());
    t.len() == p.len()
        && t.iter()
            .zip(&p)
            .all(|(t, p)| t == p || (t.starts_with('{') && t.ends_with('}')))
}

fn lookup<'a>(doc: &'a Value, reference: &str) -> &'a Value {
    let pointer = reference.strip_prefix('#').expect("a local $ref");
    doc.pointer(pointer).unwrap_or(&Value::Null)
}

fn resolve<'a>(doc: &'a Value, mut value: &'a Value) -> &'a Value {
    while let Some(Value::String(r)) = value.get("$ref") {
        value = lookup(doc, r);
    }
    value
}

/// The properties and required names of an object schema, through `$ref`
/// and `allOf`.
fn object_shape<'a>(
    doc: &'a Value,
    schema: &'a Value,
) -> (BTreeMap<&'a str, &'a Value>, BTreeSet<&'a str>) {
    let schema = resolve(doc, schema);
    let mut properties = BTreeMap::new();
    let mut required = BTreeSet::new();
    if let Some(map) = schema["properties"].as_object() {
        properties.extend(map.iter().map(|(k, v)| (k.as_str(), v)));
    }
    if let Some(names) = schema["required"].as_array() {
        required.extend(names.iter().map(|n| n.as_str().unwrap()));
    }
    for part in schema["allOf"].as_array().into_iter().flatten() {
        let (p, r) = object_shape(doc, part);
        properties.extend(p);
        required.extend(r);
    }
    (properties, required)
}

/// A small JSON Schema check: `$ref`, `allOf`, `oneOf`, `type`, `enum`,
/// `pattern` (only `^literal$`), `items`, `properties` and `required`.
/// Objects are closed: a key the schema does not list is an error, so
/// every field the API answers must be documented.
fn check(doc: &Value, schema: &Value, value: &Value, at: &str, errors: &mut Vec<String>) {
    let schema = resolve(doc, schema);
    if let Some(choices) = schema["oneOf"].as_array() {
        let matching = choices
            .iter()
            .filter(|choice| {
                let mut e = Vec::new();
                check(doc, choice, value, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: {matching} oneOf choices match {value}"));
        }
        return;
    }
    if let Some(types) = match &schema["type"] {
        Value::String(t) => Some(vec![t.as_str()]),
        Value::Array(ts) => Some(ts.iter().filter_map(Value::as_str).collect()),
        _ => None,
    } {
        let actual = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_f64() => "number",
            Value::Number(_) => "integer",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let ok = types.contains(&actual) || (actual == "integer" && types.contains(&"number"));
        if !ok {
            errors.push(format!("{at}: {actual} where the schema says {types:?}"));
            return;
        }
    }
    if let Some(options) = schema["enum"].as_array()
        && !options.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {options:?}"));
    }
    if let (Some(pattern), Some(text)) = (schema["pattern"].as_str(), value.as_str()) {
        let literal = pattern.strip_prefix('^').and_then(|p| p.strip_suffix('$'));
        if literal.is_some_and(|literal| literal != text) {
            errors.push(format!("{at}: {text:?} does not match {pattern}"));
        }
    }
    if let (Some(items), Some(values)) = (schema.get("items"), value.as_array()) {
        for (i, item) in values.iter().enumerate() {
            check(doc, items, item, &format!("{at}[{i}]"), errors);
        }
    }
    if let Some(map) = value.as_object() {
        let (properties, required) = object_shape(doc, schema);
        if properties.is_empty() && required.is_empty() {
            return; // A free-form object (any JSON).
        }
        for name in &required {
            if !map.contains_key(*name) {
                errors.push(format!("{at}: required `{name}` is missing"));
            }
        }
        for (key, item) in map {
            match properties.get(key.as_str()) {
                Some(property) => check(doc, property, item, &format!("{at}.{key}"), errors),
                None => errors.push(format!("{at}: `{key}` is not in the schema")),
            }
        }
    }
}

/// `docs/api.md`: how the reference is produced and the endpoints of the
/// document.
fn api_md(doc: &Value) -> String {
    let mut md = String::from(
        "# HTTP API reference\n\
         \n\
         <!-- Generated by tests/tests/all/openapi.rs from the OpenAPI document: do not edit. -->\n\
         \n\
         [`openapi.json`](openapi.json) is the OpenAPI 3.1 document of the whole HTTP\n\
         API. It is generated from the code with [utoipa](https://docs.rs/utoipa): the\n\
         handlers in `host/src/api/*.rs` carry `#[utoipa::path]` attributes and the\n\
         types they send and receive derive `ToSchema`; `host/src/api/openapi.rs`\n\
         assembles them. A running server serves the same document at\n\
         `GET /v1/openapi.json`, without a token.\n\
         \n\
         `tests/tests/all/openapi.rs` fails when a route the router serves is missing\n\
         from the document (or the reverse), when an answer does not match its schema,\n\
         and when this file or `openapi.json` is stale. After changing the API,\n\
         regenerate both with\n\
         \n\
         ```sh\n\
         WASMJOB_BLESS=1 cargo test -p wasmjob-tests --test all -- openapi\n\
         ```\n\
         \n\
         Errors are `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`). \"token\"\n\
         below means `Authorization: Bearer <token>` when the server is configured\n\
         with one (`server.token`).\n\
         \n\
         ## Endpoints\n\
         \n\
         | method | path | summary | auth | responses |\n\
         |---|---|---|---|---|\n",
    );
    // In the router's order (the document's JSON object is read sorted).
    let operations = operations(doc);
    for (method, path) in routes() {
        let Some((_, _, operation)) = operations
            .iter()
            .find(|(m, p, _)| m == method.as_str() && p == path)
        else {
            continue; // Undocumented: the completeness test says so.
        };
        let auth = if operation.get("security").is_some() {
            "token"
        } else {
            "public"
        };
        let codes: Vec<&str> = operation["responses"]
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        // A summary may wrap in the source: one line in a table row.
        let summary = operation["summary"].as_str().unwrap_or("");
        let summary = summary.split_whitespace().collect::<Vec<_>>().join(" ");
        md.push_str(&format!(
            "| `{method}` | `{path}` | {summary} | {auth} | {} |\n",
            codes.join(", ")
        ));
    }
    md.push_str("\n## Schemas\n\n");
    for (name, schema) in doc["components"]["schemas"].as_object().unwrap() {
        let description = schema["description"].as_str().unwrap_or("");
        let paragraph = description.split("\n\n").next().unwrap_or("");
        let paragraph = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        md.push_str(&format!("- `{name}`: {paragraph}\n"));
    }
    md
}

/// The schema of `field` (`limits.fuel`) of `SubmitJob`, through `$ref`s.
fn submit_field<'a>(doc: &'a Value, field: &str) -> &'a Value {
    let mut schema = &doc["components"]["schemas"]["SubmitJob"];
    for part in field.split('.') {
        let mut property = &schema["properties"][part];
        let reference = property["$ref"].as_str().or_else(|| {
            property["oneOf"]
                .as_array()
                .and_then(|list| list.iter().find_map(|s| s["$ref"].as_str()))
        });
        if let Some(reference) = reference {
            let name = reference.rsplit('/').next().unwrap();
            schema = &doc["components"]["schemas"][name];
            property = schema;
        }
        schema = property;
    }
    schema
}

/// The schema of parameter `name` of the operation.
fn parameter<'a>(doc: &'a Value, path: &str, method: &str, name: &str) -> &'a Value {
    let list = doc["paths"][path][method]["parameters"]
        .as_array()
        .unwrap_or_else(|| panic!("{method} {path} has parameters"));
    let parameter = list
        .iter()
        .find(|p| p["name"] == name)
        .unwrap_or_else(|| panic!("{method} {path} has no parameter {name}"));
    &parameter["schema"]
}

#[test]
fn the_document_states_every_bound_the_server_enforces() {
    let doc = document();
    for bound in Policy::default().bounds() {
        let schema = submit_field(&doc, bound.field);
        assert_eq!(schema["minimum"], json!(bound.min), "{}", bound.field);
        assert_eq!(schema["maximum"], json!(bound.max), "{}", bound.field);
    }
    let priority = submit_field(&doc, "priority");
    assert_eq!(
        (&priority["minimum"], &priority["maximum"]),
        (&json!(0), &json!(10))
    );
    let module = submit_field(&doc, "module");
    assert_eq!(module["pattern"], json!(module_reference_pattern()));
    assert_eq!(
        (&module["minLength"], &module["maxLength"]),
        (&json!(1), &json!(128))
    );
    for name in ["SubmitJob", "SubmitBatch", "RetryPatch", "LimitsPatch"] {
        assert_eq!(
            doc["components"]["schemas"][name]["additionalProperties"],
            json!(false),
            "{name} refuses unknown fields"
        );
    }
    let name = parameter(&doc, "/v1/modules", "post", "name");
    assert_eq!(name["pattern"], json!(module_name_pattern()));
    for (path, method, param, min, max) in [
        ("/v1/jobs", "get", "limit", 1, 1_000),
        ("/v1/dead-letter", "get", "limit", 1, 1_000),
        ("/v1/jobs", "get", "priority", 0, 10),
        ("/v1/jobs/{id}", "get", "wait_ms", 0, 60_000),
    ] {
        let schema = parameter(&doc, path, method, param);
        assert_eq!(
            (&schema["minimum"], &schema["maximum"]),
            (&json!(min), &json!(max)),
            "{method} {path} {param}"
        );
    }
    for (path, method) in [
        ("/v1/modules/{module}", "get"),
        ("/v1/modules/{module}", "delete"),
    ] {
        let schema = parameter(&doc, path, method, "module");
        assert_eq!(schema["pattern"], json!(module_reference_pattern()));
    }
}

#[test]
fn operations_that_create_link_to_those_that_act() {
    let doc = document();
    let links = &doc["paths"]["/v1/jobs"]["post"]["responses"]["201"]["links"];
    for (name, operation) in [
        ("GetJob", "get_job"),
        ("CancelJob", "cancel_job"),
        ("RequeueJob", "requeue_job"),
    ] {
        assert_eq!(links[name]["operationId"], operation, "{links}");
        assert_eq!(links[name]["parameters"]["id"], "$response.body#/id");
    }
    let links = &doc["paths"]["/v1/dead-letter"]["get"]["responses"]["200"]["links"];
    assert_eq!(
        links["PurgeDeadLetterJob"]["parameters"]["id"],
        "$response.body#/jobs/0/id"
    );
    let links = &doc["paths"]["/v1/modules"]["post"]["responses"]["201"]["links"];
    assert_eq!(
        links["GetModule"]["parameters"]["module"],
        "$response.body#/hash"
    );
    // Every link names an operation of the document.
    let ids: BTreeSet<String> = operations(&doc)
        .iter()
        .filter_map(|(_, _, op)| op["operationId"].as_str().map(str::to_owned))
        .collect();
    for (_, _, op) in operations(&doc) {
        for response in op["responses"].as_object().unwrap().values() {
            for link in response["links"].as_object().into_iter().flatten() {
                let target = link.1["operationId"].as_str().unwrap();
                assert!(ids.contains(target), "a link to {target}");
            }
        }
    }
}

#[tokio::test]
async fn a_host_serves_a_document_with_its_own_ceilings() {
    let ceilings = Ceilings {
        fuel: 2_000_000_000_000,
        delay_ms: 60_000,
        ..Ceilings::default()
    };
    let policy = Policy::new(Defaults::default(), ceilings, Escalation::default()).unwrap();
    let host = Host::new(QueueConfig {
        policy,
        ..QueueConfig::default()
    });
    let app = router(host.queue.clone(), ApiConfig::default());
    let request = Request::get("/v1/openapi.json")
        .body(Body::empty())
        .unwrap();
    let response = app.oneshot(request).await.unwrap();
    let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
        .await
        .unwrap();
    let served: Value = serde_json::from_slice(&bytes).unwrap();
    assert_eq!(
        submit_field(&served, "limits.fuel")["maximum"],
        json!(2_000_000_000_000u64)
    );
    assert_eq!(submit_field(&served, "delay_ms")["maximum"], json!(60_000));
}

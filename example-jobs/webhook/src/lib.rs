//! Delivers a webhook: `{"url": "https://...", "payload": <any JSON>}`
//! POSTs the payload as JSON to the URL and returns `{"status": 200}`.
//! With `"signature_secret": "NAME"`, the request carries the header
//! `x-signature` with the value of the secret `NAME`.
//!
//! The URL's origin must be granted to the module. A `5xx`, `408`, `429`,
//! a timeout or a failed connection fails the attempt retryably; any other
//! `4xx`, a denied origin or a missing secret fails it for good. A `3xx` is
//! an answer like any other (redirects are not followed).

use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmjob_sdk::serde_json::Value;
use wasmjob_sdk::{JobError, http};

/// How long each wait (connecting, the answer) may take.
const TIMEOUT: Duration = Duration::from_secs(10);

#[derive(Deserialize)]
struct Input {
    url: String,
    payload: Value,
    /// The name of the secret whose value goes in `x-signature`.
    #[serde(default)]
    signature_secret: Option<String>,
}

#[derive(Debug, PartialEq, Serialize)]
struct Output {
    status: u16,
}

#[wasmjob_sdk::job]
fn webhook(input: Input) -> Result<Output, JobError> {
    let mut request = http::Request::post(&input.url)
        .json(&input.payload)
        .timeout(TIMEOUT);
    if let Some(name) = &input.signature_secret {
        let signature = wasmjob_sdk::secret(name).ok_or_else(|| {
            JobError::fatal(format!("the secret `{name}` is not granted to this module"))
        })?;
        request = request.header("x-signature", &signature);
    }
    let response = request.send()?.error_for_status()?;
    wasmjob_sdk::info!("delivered: {}", response.status);
    Ok(Output {
        status: response.status,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmjob_sdk::http::{Error, ErrorKind, Method, Response};
    use wasmjob_sdk::serde_json::json;
    use wasmjob_sdk::testing;

    fn input(value: Value) -> Input {
        wasmjob_sdk::serde_json::from_value(value).unwrap()
    }

    #[test]
    fn posts_the_payload_as_json_signed_with_the_secret() {
        testing::set_secret("hook_key", "k3y-for-hooks");
        testing::set_http(|_| Ok(Response::new(202)));
        let output = webhook(input(json!({
            "url": "https://hooks.example/in",
            "payload": {"event": "paid", "order": "A-1"},
            "signature_secret": "hook_key",
        })))
        .unwrap();
        assert_eq!(output, Output { status: 202 });
        let sent = testing::take_requests();
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].method(), Method::Post);
        assert_eq!(sent[0].url(), "https://hooks.example/in");
        assert_eq!(sent[0].header_value("x-signature"), Some("k3y-for-hooks"));
        assert_eq!(
            sent[0].header_value("content-type"),
            Some("application/json")
        );
        assert_eq!(
            sent[0].body_json::<Value>().unwrap(),
            json!({"event": "paid", "order": "A-1"})
        );
        assert_eq!(sent[0].timeout_duration(), Some(TIMEOUT));
    }

    #[test]
    fn unsigned_without_a_secret_name() {
        testing::set_http(|_| Ok(Response::new(200)));
        webhook(input(
            json!({"url": "https://hooks.example/in", "payload": [1, 2]}),
        ))
        .unwrap();
        let sent = testing::take_requests();
        assert_eq!(sent[0].header_value("x-signature"), None);
        assert_eq!(sent[0].body_bytes(), b"[1,2]");
    }

    #[test]
    fn a_missing_secret_is_fatal_and_sends_nothing() {
        let error = webhook(input(json!({
            "url": "https://hooks.example/in",
            "payload": null,
            "signature_secret": "hook_key",
        })))
        .unwrap_err();
        assert!(error.is_fatal());
        assert_eq!(
            error.message(),
            "the secret `hook_key` is not granted to this module"
        );
        assert!(testing::take_requests().is_empty());
    }

    fn answered(status: u16) -> JobError {
        testing::set_http(move |_| Ok(Response::new(status).with_body("no")));
        webhook(input(
            json!({"url": "https://hooks.example/in", "payload": {}}),
        ))
        .unwrap_err()
    }

    #[test]
    fn server_errors_and_throttling_are_retried() {
        for status in [500, 502, 503, 408, 429] {
            let error = answered(status);
            assert!(error.is_retryable(), "{status}: {error:?}");
            assert_eq!(
                error.message(),
                format!("https://hooks.example answered {status}: no")
            );
        }
    }

    #[test]
    fn client_errors_are_fatal() {
        for status in [400, 401, 404, 410, 422] {
            assert!(answered(status).is_fatal(), "{status}");
        }
    }

    #[test]
    fn a_timeout_is_retried() {
        testing::set_http(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                "request to https://hooks.example failed: waiting for the response timed out",
            ))
        });
        let error = webhook(input(
            json!({"url": "https://hooks.example/in", "payload": 1}),
        ))
        .unwrap_err();
        assert!(error.is_retryable());
        assert!(error.message().contains("timed out"), "{error:?}");
    }

    #[test]
    fn an_origin_not_granted_is_fatal() {
        // No handler: like an origin the operator did not grant.
        let error = webhook(input(
            json!({"url": "https://hooks.example/in", "payload": 1}),
        ))
        .unwrap_err();
        assert!(error.is_fatal());
        assert!(
            error
                .message()
                .starts_with("request to https://hooks.example denied"),
            "{error:?}"
        );
    }

    #[test]
    fn a_bad_url_is_fatal() {
        let error = webhook(input(json!({"url": "hooks.example/in", "payload": 1}))).unwrap_err();
        assert!(error.is_fatal());
        assert!(
            error
                .message()
                .starts_with("invalid URL `hooks.example/in`"),
            "{error:?}"
        );
    }
}

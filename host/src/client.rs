//! The HTTP client the CLI uses to talk to a running host: the only code
//! that speaks HTTP as a client. Errors are sorted the way the CLI's exit
//! codes need: the host refused the request (4xx), the host failed (5xx),
//! or the host could not be reached.

use serde_json::Value;
use std::time::Duration;

/// Default address of a host started with `wasmjob serve`.
pub const DEFAULT_URL: &str = "http://127.0.0.1:7878";
/// How long one request may take; uploads compile the module first.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(120);
/// Largest response body read.
const MAX_RESPONSE_BYTES: u64 = 256 * 1024 * 1024;

/// Why a request failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The host refused the request (4xx): its error code and message.
    #[error("{message} ({code}, HTTP {status})")]
    Refused {
        /// HTTP status.
        status: u16,
        /// The API's error code.
        code: String,
        /// The API's message.
        message: String,
    },
    /// The host failed (5xx) or answered something that is not the API.
    #[error("the host failed: {0}")]
    Server(String),
    /// No answer: connection refused, DNS failure, timeout.
    #[error("cannot reach the host at {url}: {reason}")]
    Unreachable {
        /// The address tried.
        url: String,
        /// What went wrong.
        reason: String,
    },
}

/// A client of one host.
pub struct Client {
    base: String,
    token: Option<String>,
    agent: ureq::Agent,
}

impl Client {
    /// A client of the host at `base` (e.g. `http://127.0.0.1:7878`).
    pub fn new(base: &str, token: Option<String>) -> Client {
        let agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(REQUEST_TIMEOUT))
            .build()
            .into();
        Client {
            base: base.trim_end_matches('/').to_owned(),
            token,
            agent,
        }
    }

    /// `GET path`.
    pub fn get(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let request = self.authorize(self.agent.get(&url));
        self.finish(&url, request.call())
    }

    /// `POST path` with a JSON body.
    pub fn post_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let request = self.authorize(self.agent.post(&url));
        self.finish(&url, request.send_json(body))
    }

    /// `PUT path` with a JSON body.
    pub fn put_json(&self, path: &str, body: &Value) -> Result<Value, ClientError> {
        let url = self.url(path);
        let request = self.authorize(self.agent.put(&url));
        self.finish(&url, request.send_json(body))
    }

    /// `POST path` with raw bytes.
    pub fn post_bytes(&self, path: &str, body: &[u8]) -> Result<Value, ClientError> {
        let url = self.url(path);
        let request = self
            .authorize(self.agent.post(&url))
            .header("content-type", "application/wasm");
        self.finish(&url, request.send(body))
    }

    /// `DELETE path`.
    pub fn delete(&self, path: &str) -> Result<Value, ClientError> {
        let url = self.url(path);
        let request = self.authorize(self.agent.delete(&url));
        self.finish(&url, request.call())
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn authorize<B>(&self, request: ureq::RequestBuilder<B>) -> ureq::RequestBuilder<B> {
        match &self.token {
            Some(token) => request.header("authorization", format!("Bearer {token}")),
            None => request,
        }
    }

    /// `GET path` of raw bytes (a module's wasm); errors as [`get`](Self::get).
    pub fn get_bytes(&self, path: &str) -> Result<Vec<u8>, ClientError> {
        let url = self.url(path);
        let request = self.authorize(self.agent.get(&url));
        let (status, bytes) = Self::read(&url, request.call())?;
        if (200..300).contains(&status) {
            Ok(bytes)
        } else {
            Self::interpret(status, &bytes).map(|_| bytes)
        }
    }

    fn finish(
        &self,
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<Value, ClientError> {
        let (status, bytes) = Self::read(url, result)?;
        Self::interpret(status, &bytes)
    }

    /// The status and body of an answer.
    fn read(
        url: &str,
        result: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
    ) -> Result<(u16, Vec<u8>), ClientError> {
        let mut response = result.map_err(|e| ClientError::Unreachable {
            url: url.to_owned(),
            reason: e.to_string(),
        })?;
        let status = response.status().as_u16();
        let bytes = response
            .body_mut()
            .with_config()
            .limit(MAX_RESPONSE_BYTES)
            .read_to_vec()
            .map_err(|e| ClientError::Unreachable {
                url: url.to_owned(),
                reason: format!("reading the answer: {e}"),
            })?;
        Ok((status, bytes))
    }

    /// A JSON answer: its body, or the error it says.
    fn interpret(status: u16, bytes: &[u8]) -> Result<Value, ClientError> {
        let body: Value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(bytes).map_err(|_| {
                ClientError::Server(format!(
                    "HTTP {status} with a body that is not JSON: {}",
                    String::from_utf8_lossy(&bytes[..bytes.len().min(200)])
                ))
            })?
        };
        match status {
            200..=299 => Ok(body),
            400..=499 => Err(ClientError::Refused {
                status,
                code: body["error"]["code"]
                    .as_str()
                    .unwrap_or("unknown")
                    .to_owned(),
                message: body["error"]["message"]
                    .as_str()
                    .unwrap_or("the host refused the request")
                    .to_owned(),
            }),
            _ => Err(ClientError::Server(format!(
                "HTTP {status}: {}",
                body["error"]["message"].as_str().unwrap_or("no message")
            ))),
        }
    }
}

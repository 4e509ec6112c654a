//! A small blocking HTTP client, for jobs that call other services.
//!
//! Requests go out through the host (`wasi:http/outgoing-handler`), which
//! checks each against the origins the operator granted to the job's
//! module: a request anywhere else fails with [`ErrorKind::Denied`]
//! before anything is sent. The host also bounds timeouts, the size of
//! a response and the number of requests an attempt may make. Redirects are
//! not followed: a `3xx` response comes back as it is, its `location`
//! header included.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wasmjob_sdk::{JobError, http};
//!
//! #[derive(Serialize)]
//! struct Charge<'a> {
//!     order_id: &'a str,
//!     amount_cents: u64,
//! }
//!
//! #[derive(Deserialize)]
//! struct Receipt {
//!     id: String,
//! }
//!
//! fn charge(order_id: &str, amount_cents: u64) -> Result<String, JobError> {
//!     let receipt: Receipt = http::Request::post("https://pay.example/charges")
//!         .header("authorization", "Bearer sk_test_123")
//!         .json(&Charge { order_id, amount_cents })
//!         .timeout(std::time::Duration::from_secs(10))
//!         .send()? // a timeout or a refused connection: retryable
//!         .error_for_status()? // a 5xx, 408 or 429: retryable; another 4xx: fatal
//!         .json()?; // a body that does not decode: fatal
//!     Ok(receipt.id)
//! }
//!
//! // Natively, a test double answers instead of the network:
//! wasmjob_sdk::testing::set_http(|request| {
//!     assert_eq!(request.url(), "https://pay.example/charges");
//!     Ok(http::Response::new(201).with_json(&serde_json::json!({"id": "ch_1"})))
//! });
//! assert_eq!(charge("A-1", 1200).unwrap(), "ch_1");
//! ```
//!
//! Errors are [`Error`]s of an [`ErrorKind`]. `?` turns one into a
//! [`JobError`] that is retryable when [`Error::is_retryable`] says so
//! (timeouts, connection failures, `5xx`, `408` and `429`) and fatal
//! otherwise (a denied origin, any other `4xx`, an invalid request, a
//! response too large or that does not decode). To decide otherwise, use
//! [`ResultExt`](crate::ResultExt): `.fatal()?` or `.retryable()?`.
//!
//! On targets other than wasm32 (unit tests of a job's logic, doctests)
//! there is no network: [`testing::set_http`](crate::testing::set_http)
//! sets a function that answers the requests of the current thread, and
//! [`testing::take_requests`](crate::testing::take_requests) reads back what
//! was sent. Without one, every request fails with [`ErrorKind::Denied`].

use crate::JobError;
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::fmt;
use std::time::Duration;

#[cfg(target_arch = "wasm32")]
mod wasi;

/// An HTTP request method.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Method {
    /// `GET`.
    Get,
    /// `HEAD`.
    Head,
    /// `POST`.
    Post,
    /// `PUT`.
    Put,
    /// `PATCH`.
    Patch,
    /// `DELETE`.
    Delete,
}

impl Method {
    /// Its name, upper case: `"GET"`.
    pub fn as_str(self) -> &'static str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Patch => "PATCH",
            Method::Delete => "DELETE",
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An HTTP request, built step by step, then [sent](Request::send).
///
/// The builder never fails: what is wrong with the request (a URL that
/// does not parse, a header the host forbids, a body that does not encode)
/// is reported by [`send`](Request::send) as an [`ErrorKind::Invalid`]
/// error.
///
/// ```
/// use std::time::Duration;
/// use wasmjob_sdk::http::{Method, Request};
///
/// let request = Request::put("https://api.example/items/7")
///     .header("x-request-id", "r-1")
///     .json(&serde_json::json!({"name": "lamp"}))
///     .timeout(Duration::from_secs(5));
/// assert_eq!(request.method(), Method::Put);
/// assert_eq!(request.header_value("content-type"), Some("application/json"));
/// assert_eq!(request.body_bytes(), br#"{"name":"lamp"}"#);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    method: Method,
    url: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    timeout: Option<Duration>,
    /// What the builder found wrong, reported by `send`.
    problem: Option<String>,
}

impl Request {
    /// A request with `method` to `url` (`http://` or `https://`; its
    /// path and query percent-encoded as they should go on the wire), no
    /// headers and no body.
    pub fn new(method: Method, url: &str) -> Request {
        Request {
            method,
            url: url.to_owned(),
            headers: Vec::new(),
            body: Vec::new(),
            timeout: None,
            problem: None,
        }
    }

    /// A `GET` request to `url`.
    pub fn get(url: &str) -> Request {
        Request::new(Method::Get, url)
    }

    /// A `POST` request to `url`.
    pub fn post(url: &str) -> Request {
        Request::new(Method::Post, url)
    }

    /// A `PUT` request to `url`.
    pub fn put(url: &str) -> Request {
        Request::new(Method::Put, url)
    }

    /// A `PATCH` request to `url`.
    pub fn patch(url: &str) -> Request {
        Request::new(Method::Patch, url)
    }

    /// A `DELETE` request to `url`.
    pub fn delete(url: &str) -> Request {
        Request::new(Method::Delete, url)
    }

    /// Adds a header (after any of the same name: call again for more
    /// values). The host sets `host`, `connection`, `transfer-encoding` and
    /// the like itself and refuses them from a job. When the request sets
    /// none, the SDK adds `content-length` and a `user-agent` on the way
    /// out.
    pub fn header(mut self, name: &str, value: &str) -> Request {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body to `value` encoded as JSON, and the `content-type` to
    /// `application/json` unless a header set one already. A value that
    /// does not encode makes [`send`](Request::send) fail, naming the
    /// field.
    pub fn json<T: Serialize + ?Sized>(mut self, value: &T) -> Request {
        let mut body = Vec::new();
        let mut serializer = serde_json::Serializer::new(&mut body);
        match serde_path_to_error::serialize(value, &mut serializer) {
            Ok(()) => self.body = body,
            Err(e) => self.problem = Some(format!("the JSON body does not encode: {e}")),
        }
        if find_header(&self.headers, "content-type").is_none() {
            self.headers
                .push(("content-type".to_owned(), "application/json".to_owned()));
        }
        self
    }

    /// Sets the body to these bytes (set a `content-type` with
    /// [`header`](Request::header) to say what they are).
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Request {
        self.body = body.into();
        self
    }

    /// Bounds each wait of the request by `timeout`: connecting, the first
    /// byte of the response, and between two bytes of it. Without one, the
    /// host's defaults apply; with one, the host may still lower it to its
    /// own bound. Not a bound on the whole exchange: the host bounds the
    /// attempt's time as a whole anyway.
    pub fn timeout(mut self, timeout: Duration) -> Request {
        self.timeout = Some(timeout);
        self
    }

    /// Sends the request and reads the whole response, blocking until it
    /// is there.
    ///
    /// Any status is a response, `4xx` and `5xx` included: see
    /// [`Response::error_for_status`]. An error is a request that did not
    /// get a response: denied by the host, invalid, timed out, failed to
    /// connect, or with a response over the host's size bound.
    pub fn send(&self) -> Result<Response, Error> {
        let target = self.prepare()?;
        #[cfg(target_arch = "wasm32")]
        let response = wasi::send(self, &target);
        #[cfg(not(target_arch = "wasm32"))]
        let response = crate::testing::send(self, &target.origin);
        response.map(|response| Response {
            origin: target.origin,
            ..response
        })
    }

    /// Its method.
    pub fn method(&self) -> Method {
        self.method
    }

    /// Its URL, as given.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its headers, in the order they were added.
    pub fn headers(&self) -> &[(String, String)] {
        &self.headers
    }

    /// The value of its first header named `name` (in any case).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// Its body: empty unless set.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Its body decoded from JSON, for a test to check what a job sent.
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, serde_json::Error> {
        serde_json::from_slice(&self.body)
    }

    /// The timeout set with [`timeout`](Request::timeout), if any.
    pub fn timeout_duration(&self) -> Option<Duration> {
        self.timeout
    }

    /// Checks what the host would refuse, so that a native test sees the
    /// same errors as the job would: the URL, the builder's problem, the
    /// headers.
    fn prepare(&self) -> Result<Target, Error> {
        let target = Target::parse(&self.url).map_err(|why| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid URL `{}`: {why}", self.url),
            )
        })?;
        let invalid = |why: String| {
            Error::new(
                ErrorKind::Invalid,
                format!("invalid request to {}: {why}", target.origin),
            )
        };
        if let Some(problem) = &self.problem {
            return Err(invalid(problem.clone()));
        }
        for (name, value) in &self.headers {
            check_header(name, value).map_err(invalid)?;
        }
        Ok(target)
    }
}

/// The value of the first header named `name`, in any case.
fn find_header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

/// Headers the host sets itself and refuses from a job (wasmtime's
/// defaults for `wasi:http`).
const FORBIDDEN_HEADERS: [&str; 9] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "proxy-connection",
    "transfer-encoding",
    "upgrade",
    "host",
    "http2-settings",
];

/// A header name is an HTTP token; a value has no control characters but
/// tab. Forbidden names are refused.
fn check_header(name: &str, value: &str) -> Result<(), String> {
    let token = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if name.is_empty() || !name.bytes().all(token) {
        return Err(format!("`{name}` is not a header name"));
    }
    if FORBIDDEN_HEADERS
        .iter()
        .any(|f| f.eq_ignore_ascii_case(name))
    {
        return Err(format!(
            "the header `{name}` is not allowed: the host sets it"
        ));
    }
    if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
        return Err(format!(
            "the value of the header `{name}` has a control character"
        ));
    }
    Ok(())
}

/// Where a request goes, split as `wasi:http` wants it, with the origin
/// that error messages name.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    https: bool,
    /// `host[:port]`, as written.
    authority: String,
    /// `/path?query`, without the fragment; `/` at least.
    path_with_query: String,
    /// `scheme://host[:port]`, lower case, without the scheme's default
    /// port.
    origin: String,
}

impl Target {
    fn parse(url: &str) -> Result<Target, String> {
        if let Some(c) = url.chars().find(|c| !c.is_ascii_graphic()) {
            return Err(format!(
                "{c:?} must be percent-encoded (or the URL trimmed)"
            ));
        }
        let (scheme, rest) = url
            .split_once("://")
            .ok_or("it does not start with http:// or https://")?;
        let https = match scheme.to_ascii_lowercase().as_str() {
            "https" => true,
            "http" => false,
            _ => return Err(format!("the scheme `{scheme}` is not http or https")),
        };
        let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
        let (authority, path) = rest.split_at(end);
        if authority.contains('@') {
            return Err("user information in a URL is not sent: use a header".to_owned());
        }
        let (host, port) = split_host_port(authority).ok_or("it has a bad host or port")?;
        let host_ok = if let Some(v6) = host.strip_prefix('[') {
            v6.strip_suffix(']').is_some_and(|v6| {
                !v6.is_empty()
                    && v6
                        .bytes()
                        .all(|b| b.is_ascii_hexdigit() || b == b':' || b == b'.')
            })
        } else {
            !host.is_empty()
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.' || b == b'_')
        };
        if !host_ok {
            return Err(if host.is_empty() {
                "it has no host".to_owned()
            } else {
                format!("`{host}` is not a host")
            });
        }
        let port = match port {
            None => None,
            Some(port) => Some(
                port.parse::<u16>()
                    .map_err(|_| format!("`{port}` is not a port"))?,
            ),
        };
        let default_port = if https { 443 } else { 80 };
        let mut origin = format!(
            "{}://{}",
            if https { "https" } else { "http" },
            host.to_ascii_lowercase()
        );
        if let Some(port) = port.filter(|&p| p != default_port) {
            origin.push_str(&format!(":{port}"));
        }
        let path = path.split_once('#').map_or(path, |(path, _)| path);
        let path_with_query = if path.starts_with('/') {
            path.to_owned()
        } else {
            format!("/{path}")
        };
        Ok(Target {
            https,
            authority: authority.to_owned(),
            path_with_query,
            origin,
        })
    }
}

/// `host[:port]` or `[v6][:port]` → host (v6 in brackets) and port.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let close = authority.find(']')?;
        let (host, after) = authority.split_at(close + 1);
        return match after {
            "" => Some((host, None)),
            _ => Some((host, Some(after.strip_prefix(':')?))),
        };
    }
    match authority.split_once(':') {
        Some((_, port)) if port.contains(':') => None,
        Some((host, port)) => Some((host, Some(port))),
        None => Some((authority, None)),
    }
}

/// An HTTP response, its body read whole.
///
/// A test double makes one with [`Response::new`] and the `with_`
/// methods:
///
/// ```
/// use wasmjob_sdk::http::Response;
///
/// let response = Response::new(200)
///     .with_header("x-request-id", "r-1")
///     .with_json(&serde_json::json!({"ok": true}));
/// assert_eq!(response.header("Content-Type"), Some("application/json"));
/// assert_eq!(response.json::<serde_json::Value>().unwrap()["ok"], true);
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code: `200`, `404`, ...
    pub status: u16,
    /// The headers, in the order received; names lower case (as `wasi:http`
    /// gives them), values decoded from UTF-8 lossily.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Vec<u8>,
    /// `scheme://host[:port]` it came from, for error messages; empty for
    /// a response not received.
    origin: String,
}

impl Response {
    /// A response with `status`, no headers and an empty body.
    pub fn new(status: u16) -> Response {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            origin: String::new(),
        }
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> Response {
        self.headers.push((name.to_owned(), value.to_owned()));
        self
    }

    /// Sets the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Response {
        self.body = body.into();
        self
    }

    /// Sets the body to `value` as JSON, and the `content-type` to
    /// `application/json`. Panics if `value` does not encode (it is meant
    /// for test doubles).
    pub fn with_json<T: Serialize + ?Sized>(self, value: &T) -> Response {
        let body = serde_json::to_vec(value).expect("the response body encodes as JSON");
        self.with_header("content-type", "application/json")
            .with_body(body)
    }

    /// Whether the status is a success: `2xx`.
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// The value of the first header named `name` (in any case).
    pub fn header(&self, name: &str) -> Option<&str> {
        find_header(&self.headers, name)
    }

    /// The body as text: UTF-8, anything invalid replaced by `�`.
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The body decoded from JSON into `T`. A body that does not decode is
    /// an [`ErrorKind::Decode`] error (fatal through `?`) naming the field.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        let decode_error = |e: &dyn fmt::Display| {
            Error::new(
                ErrorKind::Decode,
                format!(
                    "the response from {} ({}) does not decode: {e}",
                    self.sender(),
                    self.status
                ),
            )
        };
        let mut deserializer = serde_json::Deserializer::from_slice(&self.body);
        let value =
            serde_path_to_error::deserialize(&mut deserializer).map_err(|e| decode_error(&e))?;
        deserializer.end().map_err(|e| decode_error(&e))?;
        Ok(value)
    }

    /// The response itself if its status is below `400`; otherwise an
    /// [`ErrorKind::Status`] error, retryable for `5xx`, `408` and `429`,
    /// whose message has the status and the start of the body.
    ///
    /// ```
    /// use wasmjob_sdk::{JobError, http::Response};
    ///
    /// let busy = Response::new(503).with_body("try later");
    /// let error = busy.error_for_status().unwrap_err();
    /// assert!(error.is_retryable());
    /// assert_eq!(error.to_string(), "the server answered 503: try later");
    /// assert!(JobError::from(Response::new(404).error_for_status().unwrap_err()).is_fatal());
    /// ```
    pub fn error_for_status(self) -> Result<Response, Error> {
        if self.status < 400 {
            return Ok(self);
        }
        let mut message = format!("{} answered {}", self.sender(), self.status);
        let excerpt = excerpt(&self.body);
        if !excerpt.is_empty() {
            message.push_str(": ");
            message.push_str(&excerpt);
        }
        Err(Error::new(ErrorKind::Status(self.status), message))
    }

    /// Who sent it, for messages.
    fn sender(&self) -> &str {
        if self.origin.is_empty() {
            "the server"
        } else {
            &self.origin
        }
    }
}

/// The start of a body, as one line of text, for an error message.
fn excerpt(body: &[u8]) -> String {
    const MAX_CHARS: usize = 200;
    let text = String::from_utf8_lossy(body);
    let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match text.char_indices().nth(MAX_CHARS) {
        Some((end, _)) => format!("{}…", &text[..end]),
        None => text,
    }
}

/// What kind of failure an [`Error`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The host refused to send the request: its origin is not granted to
    /// the job's module, the name resolves to an address jobs may not
    /// reach, or the attempt made all the requests it may. Not retryable.
    Denied,
    /// A wait timed out: resolving the name, connecting, or the response.
    /// Retryable.
    Timeout,
    /// The name did not resolve, the connection was refused or broke, or
    /// TLS failed. Retryable.
    Connect,
    /// The server answered with this status, `4xx` or `5xx` (from
    /// [`Response::error_for_status`]). Retryable for `5xx`, `408` and
    /// `429`.
    Status(u16),
    /// The response was larger than the host allows. Not retryable.
    TooLarge,
    /// The request could not be sent as it is: a bad URL or header, a body
    /// that does not encode or is over the host's bound. Not retryable.
    Invalid,
    /// The response body does not decode (from [`Response::json`]). Not
    /// retryable.
    Decode,
    /// Anything else (an HTTP protocol error, say). Retryable.
    Other,
}

/// Why a request failed or its response was not what the job needs.
///
/// Like [`JobError`], it implements [`Debug`](fmt::Debug) and
/// [`Display`](fmt::Display) but not [`std::error::Error`]: that is what
/// lets `?` turn it into a retryable or a fatal [`JobError`] according to
/// [`is_retryable`](Error::is_retryable).
///
/// ```
/// use wasmjob_sdk::JobError;
/// use wasmjob_sdk::http::{Error, ErrorKind};
///
/// let timeout = Error::new(ErrorKind::Timeout, "request to https://api.example timed out");
/// assert!(timeout.is_retryable());
/// assert!(JobError::from(timeout).is_retryable());
/// let denied = Error::new(ErrorKind::Denied, "request to https://x.example denied");
/// assert!(JobError::from(denied).is_fatal());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    kind: ErrorKind,
    message: String,
}

impl Error {
    /// An error of `kind` with `message` (for a test double to return).
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Error {
        Error {
            kind,
            message: message.into(),
        }
    }

    /// Its kind.
    pub fn kind(&self) -> ErrorKind {
        self.kind
    }

    /// The status, for an [`ErrorKind::Status`] error.
    pub fn status(&self) -> Option<u16> {
        match self.kind {
            ErrorKind::Status(status) => Some(status),
            _ => None,
        }
    }

    /// Its message, naming the origin (`scheme://host[:port]`) of the
    /// request.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether trying again later could help: timeouts, connection
    /// failures, `5xx`, `408` and `429`, and other failures of the
    /// exchange. Not a denied origin, any other `4xx`, an invalid request,
    /// a response too large or that does not decode.
    pub fn is_retryable(&self) -> bool {
        match self.kind {
            ErrorKind::Timeout | ErrorKind::Connect | ErrorKind::Other => true,
            ErrorKind::Status(status) => status >= 500 || status == 408 || status == 429,
            ErrorKind::Denied | ErrorKind::TooLarge | ErrorKind::Invalid | ErrorKind::Decode => {
                false
            }
        }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

/// Retryable or fatal as [`Error::is_retryable`] says, with its message.
impl From<Error> for JobError {
    fn from(error: Error) -> JobError {
        if error.is_retryable() {
            JobError::retryable(error.message)
        } else {
            JobError::fatal(error.message)
        }
    }
}

/// Sends a `GET` request to `url`: [`Request::get`]`(url).send()`.
pub fn get(url: &str) -> Result<Response, Error> {
    Request::get(url).send()
}

/// Sends a `POST` request to `url` with `value` as its JSON body:
/// [`Request::post`]`(url).json(value).send()`.
pub fn post_json<T: Serialize + ?Sized>(url: &str, value: &T) -> Result<Response, Error> {
    Request::post(url).json(value).send()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(url: &str) -> Result<Target, String> {
        Target::parse(url)
    }

    #[test]
    fn urls_split_as_wasi_http_wants_them() {
        let t = target("https://Pay.Example/charges?x=1#top").unwrap();
        assert!(t.https);
        assert_eq!(t.authority, "Pay.Example");
        assert_eq!(t.path_with_query, "/charges?x=1");
        assert_eq!(t.origin, "https://pay.example");

        let t = target("http://127.0.0.1:8080").unwrap();
        assert!(!t.https);
        assert_eq!(t.authority, "127.0.0.1:8080");
        assert_eq!(t.path_with_query, "/");
        assert_eq!(t.origin, "http://127.0.0.1:8080");

        let t = target("https://api.example:443?q").unwrap();
        assert_eq!(t.path_with_query, "/?q");
        assert_eq!(t.origin, "https://api.example");

        let t = target("http://[::1]:9000/a").unwrap();
        assert_eq!(t.authority, "[::1]:9000");
        assert_eq!(t.origin, "http://[::1]:9000");
    }

    #[test]
    fn bad_urls_are_refused_with_a_reason() {
        for (url, why) in [
            (
                "pay.example/charges",
                "does not start with http:// or https://",
            ),
            ("ftp://pay.example", "the scheme `ftp` is not http or https"),
            ("https:///charges", "it has no host"),
            ("https://user:pw@pay.example", "user information"),
            ("https://pay.example:99999", "`99999` is not a port"),
            ("https://pay example", "' ' must be percent-encoded"),
            ("https://pay.example/ä", "'ä' must be percent-encoded"),
            ("https://pay.exa$mple", "`pay.exa$mple` is not a host"),
        ] {
            let error = target(url).unwrap_err();
            assert!(error.contains(why), "{url}: {error}");
        }
    }

    #[test]
    fn send_reports_what_the_host_would_refuse() {
        let error = Request::get("https://api.example")
            .header("Host", "evil.example")
            .send()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert_eq!(
            error.message(),
            "invalid request to https://api.example: the header `Host` is not allowed: the host sets it"
        );
        let error = Request::get("https://api.example")
            .header("x-a", "line\nbreak")
            .send()
            .unwrap_err();
        assert!(error.message().contains("control character"), "{error}");
        let error = Request::get("https://api.example")
            .header("bad name", "v")
            .send()
            .unwrap_err();
        assert!(error.message().contains("not a header name"), "{error}");
        let error = http_get_invalid_url();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(JobError::from(error).is_fatal());
    }

    fn http_get_invalid_url() -> Error {
        get("nope").unwrap_err()
    }

    #[test]
    fn a_body_that_does_not_encode_fails_at_send() {
        let mut map = std::collections::BTreeMap::new();
        map.insert(vec![1u8], 2);
        let request = Request::post("https://api.example").json(&map);
        let error = request.send().unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Invalid);
        assert!(
            error.message().starts_with(
                "invalid request to https://api.example: the JSON body does not encode"
            ),
            "{error}"
        );
        // A content-type set first is kept.
        let request = Request::post("https://api.example")
            .header("Content-Type", "application/merge-patch+json")
            .json(&1);
        assert_eq!(request.headers().len(), 1);
    }

    #[test]
    fn retryable_kinds() {
        let retryable = |kind| Error::new(kind, "x").is_retryable();
        assert!(retryable(ErrorKind::Timeout));
        assert!(retryable(ErrorKind::Connect));
        assert!(retryable(ErrorKind::Other));
        assert!(retryable(ErrorKind::Status(500)));
        assert!(retryable(ErrorKind::Status(503)));
        assert!(retryable(ErrorKind::Status(408)));
        assert!(retryable(ErrorKind::Status(429)));
        assert!(!retryable(ErrorKind::Status(400)));
        assert!(!retryable(ErrorKind::Status(402)));
        assert!(!retryable(ErrorKind::Status(404)));
        assert!(!retryable(ErrorKind::Denied));
        assert!(!retryable(ErrorKind::TooLarge));
        assert!(!retryable(ErrorKind::Invalid));
        assert!(!retryable(ErrorKind::Decode));
    }

    #[test]
    fn status_errors_name_the_origin_and_quote_the_body() {
        crate::testing::set_http(|_| {
            Ok(Response::new(402)
                .with_body(format!("{{\"error\":\n \"declined\"}}{}", "x".repeat(300))))
        });
        let error = get("https://pay.example:8443/charges")
            .unwrap()
            .error_for_status()
            .unwrap_err();
        assert_eq!(error.status(), Some(402));
        assert!(
            error
                .message()
                .starts_with(r#"https://pay.example:8443 answered 402: {"error": "declined"}xxx"#),
            "{error}"
        );
        assert!(error.message().ends_with("x…"), "{error}");
        assert!(JobError::from(error).is_fatal());
        // Below 400, the response itself.
        crate::testing::set_http(|_| Ok(Response::new(302).with_header("Location", "/elsewhere")));
        let response = get("https://pay.example")
            .unwrap()
            .error_for_status()
            .unwrap();
        assert_eq!(response.header("location"), Some("/elsewhere"));
        assert!(!response.is_success());
    }

    #[test]
    fn json_that_does_not_decode_names_the_field() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Receipt {
            id: String,
        }
        crate::testing::set_http(|_| Ok(Response::new(200).with_body(r#"{"id": 7}"#)));
        let error = get("https://pay.example/x")
            .unwrap()
            .json::<Receipt>()
            .unwrap_err();
        assert_eq!(error.kind(), ErrorKind::Decode);
        assert!(
            error.message().starts_with(
                "the response from https://pay.example (200) does not decode: id: invalid type"
            ),
            "{error}"
        );
        let trailing = Response::new(200)
            .with_body("1 2")
            .json::<u8>()
            .unwrap_err();
        assert!(
            trailing.message().contains("trailing characters"),
            "{trailing}"
        );
        assert_eq!(Response::new(200).with_body(" 3 ").json::<u8>().unwrap(), 3);
    }
}

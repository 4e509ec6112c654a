//! Sending a [`Request`] through `wasi:http/outgoing-handler`, blocking on
//! its pollables, and reading the whole response.
//!
//! Order matters with `wasi:http`: the request is handed to the host
//! first, then its body is written (so that a body larger than the
//! stream's buffer does not wait for a reader that is not there yet),
//! then the response is awaited. Child resources are dropped before
//! their parents.

use super::{Error, ErrorKind, Method, Request, Response, Target, find_header};
use std::time::Duration;
use wasip2::http::outgoing_handler;
use wasip2::http::types::{
    ErrorCode, Fields, FutureIncomingResponse, HeaderError, IncomingBody, IncomingResponse,
    Method as WasiMethod, OutgoingBody, OutgoingRequest, RequestOptions, Scheme,
};
use wasip2::io::streams::{InputStream, OutputStream, StreamError};

/// Bytes asked for per read of the response body.
const READ_CHUNK: u64 = 64 * 1024;

/// Sends `request` to `target` and reads the response.
pub(super) fn send(request: &Request, target: &Target) -> Result<Response, Error> {
    let origin = target.origin.as_str();
    let fail =
        |kind: ErrorKind, why: &str| Error::new(kind, format!("request to {origin} failed: {why}"));

    let headers = Fields::from_list(&wire_headers(request)).map_err(|e| {
        Error::new(
            ErrorKind::Invalid,
            format!(
                "invalid request to {origin}: {}",
                match e {
                    HeaderError::InvalidSyntax => "a header name or value is not valid",
                    HeaderError::Forbidden => "a header is one the host does not allow",
                    HeaderError::Immutable => "the headers are immutable",
                }
            ),
        )
    })?;
    let outgoing = OutgoingRequest::new(headers);
    let invalid = |what: &str| {
        Error::new(
            ErrorKind::Invalid,
            format!("invalid request to {origin}: the host refuses its {what}"),
        )
    };
    outgoing
        .set_method(&match request.method {
            Method::Get => WasiMethod::Get,
            Method::Head => WasiMethod::Head,
            Method::Post => WasiMethod::Post,
            Method::Put => WasiMethod::Put,
            Method::Patch => WasiMethod::Patch,
            Method::Delete => WasiMethod::Delete,
        })
        .map_err(|()| invalid("method"))?;
    outgoing
        .set_scheme(Some(&if target.https {
            Scheme::Https
        } else {
            Scheme::Http
        }))
        .map_err(|()| invalid("scheme"))?;
    outgoing
        .set_authority(Some(&target.authority))
        .map_err(|()| invalid("host"))?;
    outgoing
        .set_path_with_query(Some(&target.path_with_query))
        .map_err(|()| invalid("path"))?;
    // Without a body to send, none is opened: an open body (even empty)
    // would go out chunked, which some servers refuse on a GET.
    let body = if request.body.is_empty() {
        None
    } else {
        Some(
            outgoing
                .body()
                .map_err(|()| fail(ErrorKind::Other, "the request body is unavailable"))?,
        )
    };
    let options = request.timeout.map(options);

    let future =
        outgoing_handler::handle(outgoing, options).map_err(|code| from_code(origin, code))?;
    let written = match body {
        Some(body) => write_body(body, &request.body, origin),
        None => Ok(()),
    };
    let response = match wait_for_response(&future) {
        Ok(response) => response,
        // The host's reason the request failed beats the broken body
        // stream it caused.
        Err(code) => return Err(from_code(origin, code)),
    };
    drop(future);
    // The server answered without reading the whole body (a 413, say):
    // its answer is the useful part.
    let _ = written;
    read_response(response, origin)
}

/// The request's headers as they go on the wire: as set, plus
/// `content-length` and `user-agent` when the request has none.
fn wire_headers(request: &Request) -> Vec<(String, Vec<u8>)> {
    let mut headers: Vec<(String, Vec<u8>)> = request
        .headers
        .iter()
        .map(|(name, value)| (name.clone(), value.clone().into_bytes()))
        .collect();
    let sends_body = !request.body.is_empty()
        || matches!(request.method, Method::Post | Method::Put | Method::Patch);
    if sends_body && find_header(&request.headers, "content-length").is_none() {
        headers.push((
            "content-length".to_owned(),
            request.body.len().to_string().into_bytes(),
        ));
    }
    if find_header(&request.headers, "user-agent").is_none() {
        headers.push((
            "user-agent".to_owned(),
            concat!("wasmjob-sdk/", env!("CARGO_PKG_VERSION"))
                .as_bytes()
                .to_vec(),
        ));
    }
    headers
}

/// Request options with every wait bounded by `timeout`. A bound the host
/// does not support is left to its default.
fn options(timeout: Duration) -> RequestOptions {
    let nanos = u64::try_from(timeout.as_nanos()).unwrap_or(u64::MAX);
    let options = RequestOptions::new();
    let _ = options.set_connect_timeout(Some(nanos));
    let _ = options.set_first_byte_timeout(Some(nanos));
    let _ = options.set_between_bytes_timeout(Some(nanos));
    options
}

/// Writes `bytes` to the request body as the stream accepts them, then
/// finishes the body. A failure leaves the body unfinished, which tells
/// the host the request is incomplete.
fn write_body(body: OutgoingBody, bytes: &[u8], origin: &str) -> Result<(), Error> {
    {
        let stream = body.write().map_err(|()| {
            Error::new(
                ErrorKind::Other,
                format!("request to {origin} failed: the request body is unavailable"),
            )
        })?;
        write_all(&stream, bytes)
            .map_err(|e| stream_error(origin, e, "writing the request body"))?;
        // The stream is a child of the body: dropped before it finishes.
    }
    OutgoingBody::finish(body, None).map_err(|code| from_code(origin, code))
}

fn write_all(stream: &OutputStream, mut bytes: &[u8]) -> Result<(), StreamError> {
    let pollable = stream.subscribe();
    while !bytes.is_empty() {
        pollable.block();
        let ready = usize::try_from(stream.check_write()?).unwrap_or(usize::MAX);
        let n = ready.min(bytes.len());
        if n > 0 {
            stream.write(&bytes[..n])?;
            bytes = &bytes[n..];
        }
    }
    drop(pollable);
    stream.blocking_flush()
}

/// Blocks until the host has the response (or knows why there is none).
fn wait_for_response(future: &FutureIncomingResponse) -> Result<IncomingResponse, ErrorCode> {
    loop {
        match future.get() {
            Some(Ok(result)) => return result,
            // Only a second `get` after a result gives this.
            Some(Err(())) => {
                return Err(ErrorCode::InternalError(Some(
                    "the response was already taken".to_owned(),
                )));
            }
            None => future.subscribe().block(),
        }
    }
}

/// Status, headers and the whole body; then the trailers, whose error (a
/// body over the host's bound, say) fails the request too.
fn read_response(response: IncomingResponse, origin: &str) -> Result<Response, Error> {
    let status = response.status();
    let headers = {
        let fields = response.headers();
        fields
            .entries()
            .into_iter()
            .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
            .collect()
    };
    let unavailable = || {
        Error::new(
            ErrorKind::Other,
            format!("request to {origin} failed: the response body is unavailable"),
        )
    };
    let body = response.consume().map_err(|()| unavailable())?;
    let bytes = {
        let stream = body.stream().map_err(|()| unavailable())?;
        read_all(&stream).map_err(|e| stream_error(origin, e, "reading the response"))?
    };
    let trailers = IncomingBody::finish(body);
    loop {
        match trailers.get() {
            Some(Ok(Err(code))) => return Err(from_code(origin, code)),
            Some(_) => break,
            None => trailers.subscribe().block(),
        }
    }
    drop(trailers);
    drop(response);
    Ok(Response {
        status,
        headers,
        body: bytes,
        origin: String::new(),
    })
}

fn read_all(stream: &InputStream) -> Result<Vec<u8>, StreamError> {
    let mut bytes = Vec::new();
    loop {
        match stream.blocking_read(READ_CHUNK) {
            Ok(chunk) => bytes.extend_from_slice(&chunk),
            Err(StreamError::Closed) => return Ok(bytes),
            Err(e) => return Err(e),
        }
    }
}

/// A stream's failure: the host's `error-code` when it gives one, else
/// what its message says.
fn stream_error(origin: &str, error: StreamError, doing: &str) -> Error {
    match error {
        StreamError::LastOperationFailed(io_error) => {
            match wasip2::http::types::http_error_code(&io_error) {
                Some(code) => from_code(origin, code),
                None => from_message(origin, &io_error.to_debug_string(), doing),
            }
        }
        StreamError::Closed => Error::new(
            ErrorKind::Connect,
            format!("request to {origin} failed {doing}: the stream closed early"),
        ),
    }
}

/// The kind and message for a stream failure that has no `error-code`.
///
/// wasmtime-wasi-http 48 is such a host: a response body that fails while
/// it is read (over the host's size bound, a timeout between two bytes)
/// gives an `io-error` that `http-error-code` does not map (it looks for
/// its own `error-code` type where the body holds another). The message
/// is that error's text, which names the failure: read it.
fn from_message(origin: &str, message: &str, doing: &str) -> Error {
    let text = message.to_ascii_lowercase();
    if text.contains("size exceeds limit") {
        return Error::new(
            ErrorKind::TooLarge,
            format!("the response from {origin} is too large: its body is over the host's bound"),
        );
    }
    let kind = if text.contains("timeout") || text.contains("timed out") {
        ErrorKind::Timeout
    } else if text.contains("connection") || text.contains("incomplete") {
        ErrorKind::Connect
    } else {
        ErrorKind::Other
    };
    Error::new(
        kind,
        format!("request to {origin} failed {doing}: {message}"),
    )
}

/// The kind and message for a `wasi:http` error code.
fn from_code(origin: &str, code: ErrorCode) -> Error {
    use ErrorCode as C;
    use ErrorKind as K;
    let (kind, why): (ErrorKind, String) = match code {
        C::HttpRequestDenied => {
            return Error::new(
                K::Denied,
                format!("request to {origin} denied: the host is not granted to this job's module"),
            );
        }
        C::DestinationIpProhibited => {
            return Error::new(
                K::Denied,
                format!(
                    "request to {origin} denied: the name resolves to an address jobs may not reach"
                ),
            );
        }
        C::ConnectionLimitReached => {
            return Error::new(
                K::Denied,
                format!(
                    "request to {origin} denied: the attempt made all the requests the host allows"
                ),
            );
        }
        C::DnsTimeout => (K::Timeout, "resolving the name timed out".into()),
        C::ConnectionTimeout => (K::Timeout, "connecting timed out".into()),
        C::ConnectionReadTimeout | C::HttpResponseTimeout => {
            (K::Timeout, "waiting for the response timed out".into())
        }
        C::ConnectionWriteTimeout => (K::Timeout, "sending the request timed out".into()),
        C::DnsError(payload) => (
            K::Connect,
            match payload.rcode {
                Some(rcode) => format!("the name does not resolve ({rcode})"),
                None => "the name does not resolve".into(),
            },
        ),
        C::DestinationNotFound => (K::Connect, "the name does not resolve".into()),
        C::DestinationUnavailable => (K::Connect, "the destination is unavailable".into()),
        C::DestinationIpUnroutable => (K::Connect, "the address is unroutable".into()),
        C::ConnectionRefused => (K::Connect, "the connection was refused".into()),
        C::ConnectionTerminated => (K::Connect, "the connection broke".into()),
        C::HttpResponseIncomplete => (K::Connect, "the response ended early".into()),
        C::TlsProtocolError => (K::Connect, "TLS failed".into()),
        C::TlsCertificateError => (
            K::Connect,
            "the server's TLS certificate is not valid".into(),
        ),
        C::TlsAlertReceived(alert) => (
            K::Connect,
            format!(
                "the server sent a TLS alert{}",
                alert
                    .alert_message
                    .map(|m| format!(": {m}"))
                    .unwrap_or_default()
            ),
        ),
        C::HttpResponseBodySize(size) => {
            return Error::new(
                K::TooLarge,
                match size {
                    Some(size) => format!(
                        "the response from {origin} is too large: its body ({size} bytes) is over the host's bound"
                    ),
                    None => format!(
                        "the response from {origin} is too large: its body is over the host's bound"
                    ),
                },
            );
        }
        C::HttpResponseHeaderSectionSize(_)
        | C::HttpResponseHeaderSize(_)
        | C::HttpResponseTrailerSectionSize(_)
        | C::HttpResponseTrailerSize(_) => {
            return Error::new(
                K::TooLarge,
                format!(
                    "the response from {origin} is too large: its headers are over the host's bound"
                ),
            );
        }
        C::HttpRequestBodySize(_) => (
            K::Invalid,
            "the request body is over the host's bound, or not its content-length".into(),
        ),
        C::HttpRequestLengthRequired => (K::Invalid, "the server wants a content-length".into()),
        C::HttpRequestMethodInvalid => (K::Invalid, "the method is not valid".into()),
        C::HttpRequestUriInvalid => (K::Invalid, "the URL is not valid".into()),
        C::HttpRequestUriTooLong => (K::Invalid, "the URL is too long".into()),
        C::HttpRequestHeaderSectionSize(_)
        | C::HttpRequestHeaderSize(_)
        | C::HttpRequestTrailerSectionSize(_)
        | C::HttpRequestTrailerSize(_) => (K::Invalid, "the headers are too large".into()),
        C::HttpResponseTransferCoding(coding) | C::HttpResponseContentCoding(coding) => (
            K::Other,
            format!(
                "the response's coding is not supported{}",
                coding.map(|c| format!(": {c}")).unwrap_or_default()
            ),
        ),
        C::HttpUpgradeFailed => (K::Other, "the protocol upgrade failed".into()),
        C::HttpProtocolError => (K::Other, "HTTP protocol error".into()),
        C::LoopDetected => (K::Other, "a loop was detected".into()),
        C::ConfigurationError => (K::Other, "the host's HTTP configuration is wrong".into()),
        C::InternalError(message) => (
            K::Other,
            message.unwrap_or_else(|| "an internal error of the host".into()),
        ),
    };
    if kind == K::Invalid {
        Error::new(kind, format!("invalid request to {origin}: {why}"))
    } else {
        Error::new(kind, format!("request to {origin} failed: {why}"))
    }
}

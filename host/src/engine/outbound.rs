//! Outbound HTTP for components: `wasi:http/outgoing-handler`, sent by the
//! host itself so that every request is checked and bounded.
//!
//! Deny by default. A request goes out only if an origin of the job's
//! [`Capabilities`] allows its scheme, host and port; otherwise it fails
//! with `HTTP-request-denied` before any DNS lookup or connection. A name
//! is resolved here and the connection made to the address checked (no
//! second lookup): an internal address (loopback, private, link-local...)
//! is refused unless the grant names that IP address, or lists the origin
//! under `http_internal`. Redirects are not followed: the guest gets the
//! 3xx. Per request: a connect timeout, a first-byte timeout, a timeout
//! between body frames and a cap on the response body; per attempt: a cap
//! on requests and on requests in flight. Time spent waiting counts
//! against the job's wall-clock timeout (the guest waits in a host call,
//! which the deadline stops). Each request is recorded for the report.

use crate::grants::{Capabilities, Scheme, is_internal};
use crate::report::HttpRequest;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use http_body_util::BodyExt;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::{Arc, Mutex, OnceLock};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use wasmtime_wasi_http::io::TokioIo;
use wasmtime_wasi_http::{Error, RequestOptions, WasiHttpHooks};

/// The host's bounds on a job's HTTP requests.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HttpLimits {
    /// Longest wait for a connection (DNS, TCP and TLS together).
    pub connect_timeout: Duration,
    /// Longest wait for the response's first byte.
    pub first_byte_timeout: Duration,
    /// Longest wait between two frames of the response body.
    pub between_bytes_timeout: Duration,
    /// Largest response body.
    pub max_response_bytes: u64,
    /// Most requests one attempt may make.
    pub max_requests: u32,
    /// Most requests of one attempt in flight at once.
    pub max_concurrent: u32,
    /// Most requests listed in the report (the rest are counted).
    pub max_recorded: usize,
}

impl Default for HttpLimits {
    fn default() -> Self {
        HttpLimits {
            connect_timeout: Duration::from_secs(5),
            first_byte_timeout: Duration::from_secs(30),
            between_bytes_timeout: Duration::from_secs(30),
            max_response_bytes: 8 * 1024 * 1024,
            max_requests: 100,
            max_concurrent: 8,
            max_recorded: 100,
        }
    }
}

/// The requests of one attempt, for its report.
#[derive(Debug, Default)]
pub struct RequestLog {
    records: Vec<HttpRequest>,
    dropped: u64,
}

impl RequestLog {
    /// The records kept and how many were not.
    pub fn into_parts(self) -> (Vec<HttpRequest>, u64) {
        (self.records, self.dropped)
    }
}

/// The request log of one invocation, shared by its hooks and its report.
pub type Log = Arc<Mutex<RequestLog>>;

/// Where a request's record is, if it was kept.
#[derive(Clone)]
struct Entry {
    log: Log,
    index: Option<usize>,
    started: Instant,
}

impl Entry {
    fn new(log: &Log, record: HttpRequest, keep: usize) -> Entry {
        let mut guard = log.lock().expect("request log");
        let index = if guard.records.len() < keep {
            guard.records.push(record);
            Some(guard.records.len() - 1)
        } else {
            guard.dropped += 1;
            None
        };
        Entry {
            log: log.clone(),
            index,
            started: Instant::now(),
        }
    }

    fn update(&self, change: impl FnOnce(&mut HttpRequest)) {
        if let Some(index) = self.index
            && let Ok(mut guard) = self.log.lock()
            && let Some(record) = guard.records.get_mut(index)
        {
            change(record);
            record.duration_us = self.started.elapsed().as_micros() as u64;
        }
    }

    /// Records why the request failed, unless a more precise reason was
    /// recorded already.
    fn fail(&self, error: &Error, detail: Option<String>) {
        let message = detail.unwrap_or_else(|| error.to_string());
        self.update(|record| {
            record.error.get_or_insert(message);
        });
    }
}

/// The hooks of one invocation: its capabilities, bounds and log.
pub struct Outbound {
    capabilities: Arc<Capabilities>,
    limits: HttpLimits,
    sent: u32,
    in_flight: Arc<Semaphore>,
    log: Log,
}

impl Outbound {
    /// Hooks for an invocation with `capabilities`, recording into `log`.
    pub fn new(capabilities: Arc<Capabilities>, limits: HttpLimits, log: Log) -> Outbound {
        Outbound {
            capabilities,
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent.max(1) as usize)),
            limits,
            sent: 0,
            log,
        }
    }
}

type Sent = Result<(http::Response<wasmtime_wasi_http::WasiBody>, IoFuture), Error>;
type IoFuture = Box<dyn Future<Output = Result<(), Error>> + Send>;

impl WasiHttpHooks for Outbound {
    fn send_request(
        &mut self,
        request: http::Request<wasmtime_wasi_http::WasiBody>,
        options: Option<RequestOptions>,
        _fut: Box<dyn Future<Output = Result<(), Error>> + Send>,
    ) -> Box<dyn Future<Output = Sent> + Send> {
        let uri = request.uri();
        let scheme = match uri.scheme_str() {
            Some("http") => Some(Scheme::Http),
            Some("https") => Some(Scheme::Https),
            _ => None,
        };
        let host = uri
            .host()
            .map(|h| {
                h.trim_start_matches('[')
                    .trim_end_matches(']')
                    .to_ascii_lowercase()
            })
            .unwrap_or_default();
        let port = scheme.map(|s| uri.port_u16().unwrap_or(s.default_port()));
        let shown = match (scheme, port) {
            (Some(s), Some(p)) if p != s.default_port() => {
                format!("{}://{}:{p}", s.as_str(), bracket(&host))
            }
            (Some(s), _) => format!("{}://{}", s.as_str(), bracket(&host)),
            _ => format!("{}://{}", uri.scheme_str().unwrap_or("?"), bracket(&host)),
        };
        let record = HttpRequest {
            method: request.method().to_string(),
            url: format!("{shown}{}", uri.path()),
            status: None,
            error: None,
            duration_us: 0,
            bytes_up: 0,
            bytes_down: 0,
        };
        let entry = Entry::new(&self.log, record, self.limits.max_recorded);
        let refuse =
            |entry: Entry, error: Error, why: String| -> Box<dyn Future<Output = Sent> + Send> {
                entry.fail(&error, Some(why));
                Box::new(async move { Err(error) })
            };
        if self.sent >= self.limits.max_requests {
            let why = format!(
                "denied: an attempt may make at most {} requests",
                self.limits.max_requests
            );
            return refuse(entry, Error::ConnectionLimitReached, why);
        }
        self.sent += 1;
        let (Some(scheme), Some(port)) = (scheme, port) else {
            return refuse(
                entry,
                Error::HttpRequestUriInvalid,
                "the scheme is not http or https".into(),
            );
        };
        let allowing = self.capabilities.allowing(scheme, &host, port);
        if allowing.is_empty() {
            let why = format!("denied: {shown} is not granted to this job's module");
            return refuse(entry, Error::HttpRequestDenied, why);
        }
        // An internal address is allowed when the grant names this IP, or
        // lets this origin resolve internally.
        let literal = host.parse::<IpAddr>().ok();
        let internal_ok = allowing
            .iter()
            .any(|&(named, internal)| internal || (named && literal.is_some()));
        let limits = self.limits;
        let in_flight = self.in_flight.clone();
        Box::new(async move {
            let _permit = in_flight
                .acquire_owned()
                .await
                .map_err(|_| Error::ConnectionLimitReached)?;
            let result = send(
                request,
                options,
                limits,
                scheme,
                &host,
                port,
                literal,
                internal_ok,
                &entry,
            )
            .await;
            match &result {
                Ok((response, _)) => {
                    let status = response.status().as_u16();
                    entry.update(|record| record.status = Some(status));
                }
                Err(error) => entry.fail(error, None),
            }
            result
        })
    }
}

fn bracket(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

/// One request: resolve, check, connect, send; the response's body
/// bounded and counted.
#[allow(clippy::too_many_arguments)]
async fn send(
    mut request: http::Request<wasmtime_wasi_http::WasiBody>,
    options: Option<RequestOptions>,
    limits: HttpLimits,
    scheme: Scheme,
    host: &str,
    port: u16,
    literal: Option<IpAddr>,
    internal_ok: bool,
    entry: &Entry,
) -> Sent {
    // The guest may ask for shorter timeouts, never longer ones.
    let pick = |asked: Option<Duration>, most: Duration| asked.map_or(most, |a| a.min(most));
    let options = options.unwrap_or_default();
    let connect_timeout = pick(options.connect_timeout, limits.connect_timeout);
    let first_byte_timeout = pick(options.first_byte_timeout, limits.first_byte_timeout);
    let between_bytes = pick(options.between_bytes_timeout, limits.between_bytes_timeout);

    let connect = async {
        let addresses: Vec<SocketAddr> = match literal {
            Some(ip) => vec![SocketAddr::new(ip, port)],
            None => tokio::net::lookup_host((host, port))
                .await
                .map_err(|_| Error::DnsError {
                    rcode: None,
                    info_code: None,
                })?
                .collect(),
        };
        let allowed: Vec<SocketAddr> = addresses
            .iter()
            .copied()
            .filter(|addr| internal_ok || !is_internal(addr.ip()))
            .collect();
        if allowed.is_empty() {
            let shown: Vec<String> = addresses.iter().map(|a| a.ip().to_string()).collect();
            entry.update(|record| {
                record.error = Some(format!(
                    "denied: {host} resolves to an internal address ({}) the grant does not name",
                    shown.join(", ")
                ));
            });
            return Err(Error::DestinationIpProhibited);
        }
        let mut last = Error::DestinationNotFound;
        for addr in allowed {
            match TcpStream::connect(addr).await {
                Ok(stream) => {
                    let _ = stream.set_nodelay(true);
                    return Ok(stream);
                }
                Err(e) => last = Error::Connect(e),
            }
        }
        Err(last)
    };
    let handshake = async {
        let stream = connect.await?;
        let io: Box<dyn Stream> = match scheme {
            Scheme::Http => Box::new(stream),
            Scheme::Https => {
                let name = rustls::pki_types::ServerName::try_from(host.to_owned())
                    .map_err(|_| Error::HttpRequestUriInvalid)?;
                let tls = tokio_rustls::TlsConnector::from(tls_config())
                    .connect(name, stream)
                    .await
                    .map_err(Error::Tls)?;
                Box::new(tls)
            }
        };
        hyper::client::conn::http1::Builder::new()
            .handshake::<_, Counted>(TokioIo::new(io))
            .await
            .map_err(Error::from)
    };
    let (mut sender, conn) = match tokio::time::timeout(connect_timeout, handshake).await {
        Ok(result) => result?,
        Err(_) => return Err(Error::ConnectionTimeout),
    };
    // The connection is driven by a task of its own, aborted when the
    // response (or this future) is dropped.
    let conn = wasmtime_wasi::runtime::spawn(conn);
    // Origin-form on the wire: the path and query, not the scheme and host.
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    *request.uri_mut() = http::Uri::builder()
        .path_and_query(path)
        .build()
        .map_err(|_| Error::HttpRequestUriInvalid)?;
    let request = request.map(|body| Counted {
        inner: body,
        entry: entry.clone(),
    });
    let response =
        match tokio::time::timeout(first_byte_timeout, sender.send_request(request)).await {
            Ok(response) => response.map_err(Error::from)?,
            Err(_) => return Err(Error::ConnectionReadTimeout),
        };
    if let Some(length) = response
        .headers()
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
        && length > limits.max_response_bytes
    {
        let cap = limits.max_response_bytes;
        entry.update(|record| {
            record.error = Some(format!(
                "the response body of {length} bytes is over the limit of {cap} bytes"
            ));
        });
        return Err(Error::HttpResponseBodySize(Some(length)));
    }
    let entry = entry.clone();
    let response = response.map(move |incoming| {
        Capped {
            inner: incoming,
            left: limits.max_response_bytes,
            cap: limits.max_response_bytes,
            entry,
            timeout: between_bytes,
            sleep: None,
        }
        .boxed_unsync()
    });
    let io: IoFuture = Box::new(async move {
        match conn.await {
            Ok(()) => Ok(()),
            Err(e) => Err(Error::from(e)),
        }
    });
    Ok((response, io))
}

/// A connection's byte stream: plain TCP or TLS over it.
trait Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin + 'static> Stream for T {}

/// The TLS client configuration: the Mozilla roots, built once.
fn tls_config() -> Arc<rustls::ClientConfig> {
    static CONFIG: OnceLock<Arc<rustls::ClientConfig>> = OnceLock::new();
    CONFIG
        .get_or_init(|| {
            let roots = rustls::RootCertStore {
                roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
            };
            let provider = Arc::new(rustls::crypto::ring::default_provider());
            let config = rustls::ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .expect("the ring provider supports the default TLS versions")
                .with_root_certificates(roots)
                .with_no_client_auth();
            Arc::new(config)
        })
        .clone()
}

/// The request body, its bytes counted into the record.
struct Counted {
    inner: wasmtime_wasi_http::WasiBody,
    entry: Entry,
}

impl Body for Counted {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        if let Poll::Ready(Some(Ok(frame))) = &polled
            && let Some(data) = frame.data_ref()
        {
            let n = data.len() as u64;
            self.entry.update(|record| record.bytes_up += n);
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// The response body: at most `cap` bytes, no longer than `timeout`
/// between frames, its bytes counted into the record.
struct Capped {
    inner: hyper::body::Incoming,
    left: u64,
    cap: u64,
    entry: Entry,
    timeout: Duration,
    sleep: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl Body for Capped {
    type Data = Bytes;
    type Error = Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Error>>> {
        let this = &mut *self;
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.sleep = None;
                if let Some(data) = frame.data_ref() {
                    let n = data.len() as u64;
                    this.entry.update(|record| record.bytes_down += n);
                    if n > this.left {
                        let cap = this.cap;
                        this.entry.update(|record| {
                            record.error = Some(format!(
                                "the response body is over the limit of {cap} bytes"
                            ));
                        });
                        return Poll::Ready(Some(Err(Error::HttpResponseBodySize(None))));
                    }
                    this.left -= n;
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(e))) => {
                let error = Error::from(e);
                this.entry.fail(&error, None);
                Poll::Ready(Some(Err(error)))
            }
            Poll::Ready(None) => {
                this.entry.update(|_| {});
                Poll::Ready(None)
            }
            Poll::Pending => {
                let timeout = this.timeout;
                let sleep = this
                    .sleep
                    .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                match sleep.as_mut().poll(cx) {
                    Poll::Ready(()) => {
                        let error = Error::ConnectionReadTimeout;
                        this.entry.fail(&error, None);
                        Poll::Ready(Some(Err(error)))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

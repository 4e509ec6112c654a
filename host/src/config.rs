//! `wasmjob serve` configuration: one root struct with a section per
//! concern, read from a TOML file, then environment variables, then flags
//! (flags win). Unknown keys are rejected naming them; every problem is
//! listed at once by [`Config::validate`].

use crate::alerts::{AlertEvent, Webhook};
use crate::api::{ApiConfig, ServerLimits, server};
use crate::engine::{EngineConfig, HttpLimits};
use crate::grants::{GrantSpec, Grants, SecretSource};
use crate::job::{DEFAULT_MAX_ATTEMPTS, DEFAULT_PRIORITY};
use crate::limits::Limits;
use crate::policy::{
    Ceilings, Defaults, Escalation, LimitsSpec, Policy, QueueDefaults, RetryPolicy, RetrySpec,
};
use crate::queue::QueueConfig;
use crate::store::{DurabilityMode, Retention};
use crate::worker::Scaling;
use crate::worker::scale::{DEFAULT_CPU_BUSY, DEFAULT_IDLE_MS};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Default data directory, relative to where the host starts.
pub const DEFAULT_DATA_DIR: &str = "./wasmjob-data";
/// Default listen address: loopback only.
pub const DEFAULT_LISTEN: &str = "127.0.0.1:7878";
/// The longest `server.max_wait_ms` an operator may set: an hour.
pub const MAX_WAIT_CEILING_MS: u64 = 3_600_000;

/// Everything `wasmjob serve` needs.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Where the database, modules and compiled artifacts live (with
    /// PostgreSQL: only the compiled artifacts).
    pub data_dir: PathBuf,
    /// Which database holds the jobs: `[store]`.
    pub store: StoreSection,
    /// HTTP server.
    pub server: ServerSection,
    /// Workers and leases.
    pub queue: QueueSection,
    /// Default limits of a job.
    pub limits: Limits,
    /// Default retry policy of a job.
    pub retry: RetryPolicy,
    /// Default number of attempts of a job.
    pub max_attempts: u32,
    /// Limit escalation on retries.
    pub escalation: Escalation,
    /// The most a job may ask for.
    pub ceilings: Ceilings,
    /// Named queues with a cap or defaults of their own: `[queues.NAME]`.
    pub queues: BTreeMap<String, NamedQueue>,
    /// The sandbox.
    pub engine: EngineSection,
    /// Bounds on jobs' outbound HTTP requests.
    pub http: HttpSection,
    /// What modules may be granted: `[grants.NAME]`.
    pub grants: BTreeMap<String, GrantSpec>,
    /// Secrets grants may name, and where their values come from:
    /// `[secrets] NAME = { env = "VAR" }` or `{ file = "/path" }`.
    pub secrets: BTreeMap<String, SecretSource>,
    /// Plain configuration values grants may name: `[config] NAME = "value"`.
    pub config: BTreeMap<String, String>,
    /// Per-minute history: `[history]`.
    pub history: HistorySection,
    /// Deleting old finished jobs: `[retention]`.
    pub retention: RetentionSection,
    /// Alert webhooks: `[alerts.NAME]`.
    pub alerts: BTreeMap<String, AlertSpec>,
}

/// `[alerts.NAME]`: a webhook told of dead-lettered jobs and queues
/// waiting too long.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertSpec {
    /// Where to `POST` the JSON (`http://` or `https://`).
    pub url: String,
    /// Signs each body: `X-Wasmjob-Signature: sha256=<hex HMAC-SHA256>`.
    pub secret: Option<String>,
    /// What to post: `dead_letter`, `queue_wait`.
    pub events: Vec<AlertEvent>,
    /// With `queue_wait`: alert when a queue's oldest due job has waited
    /// longer than this, ms.
    pub queue_wait_ms: Option<u64>,
    /// Only these queues; every queue when absent.
    pub queues: Option<Vec<String>>,
}

/// `[retention]`: finished jobs deleted after an age, by state.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetentionSection {
    /// Whether old finished jobs are deleted at all.
    pub enabled: bool,
    /// Completed jobs are deleted this long after they finished (`7d`).
    pub completed: String,
    /// Cancelled jobs, likewise; the same as `completed` when absent.
    pub cancelled: Option<String>,
    /// Dead-lettered jobs (`failed`), likewise: longer, someone may still
    /// look into them (`30d`).
    pub dead_letter: String,
    /// At most this many jobs per write, so the writer is never held long.
    pub batch: usize,
    /// How often retention looks for old jobs (`1m`).
    pub interval: String,
}

/// The largest `retention.batch`: a batch is one write transaction, and
/// the writer serves nothing else meanwhile.
pub const RETENTION_BATCH_MAX: usize = 10_000;

impl Default for RetentionSection {
    fn default() -> Self {
        RetentionSection {
            enabled: true,
            completed: "7d".to_owned(),
            cancelled: None,
            dead_letter: "30d".to_owned(),
            batch: 500,
            interval: "1m".to_owned(),
        }
    }
}

impl RetentionSection {
    /// What retention deletes (`None` when disabled) and how often it
    /// looks, in ms; or every problem, naming the fields. A job with a
    /// unique key is kept at least `unique_window_ms` (the ceiling of a
    /// key's window).
    pub fn retention(
        &self,
        unique_window_ms: u64,
    ) -> Result<(Option<Retention>, u64), Vec<String>> {
        let mut problems = Vec::new();
        let mut age = |field: &str, text: &str| match duration(field, text) {
            Ok(age) if !age.is_zero() => Some(age.as_millis() as i64),
            Ok(_) => {
                problems.push(format!("{field} `{text}` must be more than 0"));
                None
            }
            Err(problem) => {
                problems.push(problem);
                None
            }
        };
        let completed = age("retention.completed", &self.completed);
        let cancelled = match &self.cancelled {
            Some(text) => age("retention.cancelled", text),
            None => completed,
        };
        let dead_letter = age("retention.dead_letter", &self.dead_letter);
        let interval = age("retention.interval", &self.interval);
        if !(1..=RETENTION_BATCH_MAX).contains(&self.batch) {
            problems.push(format!(
                "retention.batch {} must be 1 to {RETENTION_BATCH_MAX}",
                self.batch
            ));
        }
        if !problems.is_empty() {
            return Err(problems);
        }
        let retention = self.enabled.then_some(Retention {
            completed_ms: completed,
            cancelled_ms: cancelled,
            dead_letter_ms: dead_letter,
            unique_window_ms: i64::try_from(unique_window_ms).unwrap_or(i64::MAX),
            batch: self.batch,
        });
        Ok((retention, interval.unwrap_or_default() as u64))
    }
}

/// `[history]`: the per-minute history of each queue.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HistorySection {
    /// How long rows are kept (e.g. `48h`); at least a day.
    pub keep: String,
    /// How often this host writes what it counted (e.g. `10s`).
    pub flush: String,
}

/// The shortest `history.keep`: the day the charts look back on.
pub const HISTORY_KEEP_MIN: Duration = Duration::from_secs(24 * 3_600);

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            keep: "48h".to_owned(),
            flush: "10s".to_owned(),
        }
    }
}

impl HistorySection {
    /// The keep age, or the problem naming the field.
    pub fn keep(&self) -> Result<Duration, String> {
        let keep = duration("history.keep", &self.keep)?;
        if keep < HISTORY_KEEP_MIN {
            return Err(format!(
                "history.keep `{}` must be at least 24h (the charts look back a day)",
                self.keep
            ));
        }
        Ok(keep)
    }

    /// The flush interval, or the problem naming the field.
    pub fn flush(&self) -> Result<Duration, String> {
        let flush = duration("history.flush", &self.flush)?;
        if flush.is_zero() || flush > Duration::from_secs(60) {
            return Err(format!(
                "history.flush `{}` must be more than 0 and at most 1m",
                self.flush
            ));
        }
        Ok(flush)
    }
}

/// Parses a duration field (`7d`, `48h`, `10s`), naming it when it does
/// not parse.
fn duration(field: &str, text: &str) -> Result<Duration, String> {
    humantime::parse_duration(text.trim()).map_err(|e| {
        format!("{field} `{text}` is not a duration: {e} (expected e.g. 10s, 48h, 7d)")
    })
}

/// `[http]`: bounds on every job's outbound requests.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpSection {
    /// Longest wait for a connection (DNS, TCP, TLS), ms.
    pub connect_timeout_ms: u64,
    /// Longest wait for a response's first byte, ms.
    pub first_byte_timeout_ms: u64,
    /// Longest wait between two frames of a response body, ms.
    pub between_bytes_timeout_ms: u64,
    /// Largest response body, bytes.
    pub max_response_bytes: u64,
    /// Most requests one attempt may make.
    pub max_requests: u32,
    /// Most requests of one attempt in flight at once.
    pub max_concurrent: u32,
}

impl Default for HttpSection {
    fn default() -> Self {
        let limits = HttpLimits::default();
        HttpSection {
            connect_timeout_ms: limits.connect_timeout.as_millis() as u64,
            first_byte_timeout_ms: limits.first_byte_timeout.as_millis() as u64,
            between_bytes_timeout_ms: limits.between_bytes_timeout.as_millis() as u64,
            max_response_bytes: limits.max_response_bytes,
            max_requests: limits.max_requests,
            max_concurrent: limits.max_concurrent,
        }
    }
}

/// `[store]`: which database holds the jobs.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StoreSection {
    /// `postgres://user:password@host:port/database`: the jobs live in
    /// that PostgreSQL database, which several hosts may share. When
    /// absent (the default) they live in SQLite in `data_dir`, which one
    /// host holds.
    pub url: Option<String>,
    /// The schema holding the tables in PostgreSQL (created if missing)
    /// [default: the server's `search_path`, normally `public`].
    pub schema: Option<String>,
    /// Connections to PostgreSQL this host keeps at most [default: 8].
    pub pool_size: Option<usize>,
    /// When an acknowledged write is on disk, for SQLite: `"fsync"` (the
    /// default: before the answer) or `"interval"` (the writer fsyncs
    /// about once a second: safe against a crash of the process, up to
    /// about a second of acknowledged work lost on a power loss). See
    /// [`DurabilityMode`]. PostgreSQL refuses `"interval"`: its
    /// durability is the server's `synchronous_commit`.
    pub durability: DurabilityMode,
}

impl StoreSection {
    /// The PostgreSQL store's configuration, when `url` names one.
    pub fn postgres(&self) -> Option<crate::store::PostgresConfig> {
        let url = self.url.as_deref()?;
        let mut config = crate::store::PostgresConfig::new(url);
        config.schema = self.schema.clone();
        if let Some(size) = self.pool_size {
            config.pool_size = size;
        }
        Some(config)
    }
}

/// `[server]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: String,
    /// Bearer token required on `/v1`.
    pub token: Option<String>,
    /// Allow a non-loopback address without a token.
    pub allow_unauthenticated: bool,
    /// Largest JSON body, in bytes.
    pub max_body_bytes: usize,
    /// Longest a client's long poll (`wait_ms`) may wait, in ms: keep it
    /// under the idle timeout of any proxy in front of the host.
    pub max_wait_ms: u64,
    /// Serve `/metrics` without the token (a scraper on a trusted
    /// network); by default it needs the token like `/v1`.
    pub metrics_public: bool,
    /// Longest wait for a request's whole head (also between requests on
    /// a kept-alive connection), in ms.
    pub header_read_timeout_ms: u64,
    /// Longest a connection may stay without a byte read or written, in
    /// ms; above `max_wait_ms` [default: 120 s, or `max_wait_ms` and a
    /// minute if that is longer].
    pub idle_timeout_ms: Option<u64>,
    /// Most client connections at once; more are answered 503 and closed.
    pub max_connections: usize,
}

/// `[queue]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct QueueSection {
    /// This host's identity among the hosts sharing a store, written as
    /// its leases' owner: a restarted host takes back the jobs its
    /// previous process held under it [default: one made up at the first
    /// start and kept in `data_dir/host-id`].
    pub host_id: Option<String>,
    /// Jobs running at once.
    pub concurrency: usize,
    /// Lease duration in ms.
    pub lease_ms: i64,
    /// Aging step in ms.
    pub aging_ms: i64,
    /// Grace period at shutdown in ms.
    pub shutdown_grace_ms: u64,
    /// Fewest worker slots when auto-scaling [default: the smaller of
    /// `concurrency` and `max_workers`].
    pub min_workers: Option<usize>,
    /// Most worker slots when auto-scaling [default: `concurrency`]. With
    /// `min_workers` < `max_workers` the pool grows while jobs wait and
    /// the CPU has headroom, and shrinks after slots sit idle.
    pub max_workers: Option<usize>,
    /// How long slots must sit idle before the pool shrinks, in ms.
    pub scale_down_idle_ms: i64,
    /// A slot whose job is still out this long after its deadline is
    /// declared stuck, abandoned and replaced, in ms.
    pub stuck_grace_ms: i64,
    /// Host memory for the reports of jobs in flight (running, or ended
    /// and not yet written), in bytes: a job starts once the most its
    /// report can keep fits.
    pub report_memory_bytes: u64,
}

/// Most worker slots a host may have (each may hold a sandbox).
pub const MAX_WORKERS: usize = 4_096;

impl QueueSection {
    /// The pool's size bounds: `concurrency` unless `min_workers` or
    /// `max_workers` widen them.
    pub fn scaling(&self) -> Scaling {
        let max = self.max_workers.unwrap_or(self.concurrency);
        let min = self.min_workers.unwrap_or(self.concurrency.min(max));
        Scaling {
            min,
            max,
            idle_ms: self.scale_down_idle_ms,
            cpu_busy: DEFAULT_CPU_BUSY,
        }
    }
}

/// `[queues.NAME]`: a queue's cap and defaults of its own. Queues not
/// declared are created on first use with the host's defaults and no cap.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NamedQueue {
    /// At most this many of its jobs run at once (on every host sharing
    /// the store together); no cap of its own when absent.
    pub concurrency: Option<usize>,
    /// Priority of its jobs.
    pub priority: Option<u8>,
    /// Attempts of its jobs.
    pub max_attempts: Option<u32>,
    /// Limits of its jobs, over the host's `[limits]`.
    pub limits: LimitsSpec,
    /// Retry policy of its jobs, over the host's `[retry]`.
    pub retry: RetrySpec,
}

/// `[engine]`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EngineSection {
    /// Largest module accepted, bytes.
    pub max_module_bytes: u64,
    /// Compile time limit, ms.
    pub compile_timeout_ms: u64,
    /// Meter fuel.
    pub fuel_metering: bool,
    /// Most follow-up jobs one attempt may submit.
    pub max_follow_ups: u32,
    /// Most modules compiling at once; uploads past it are answered 503
    /// with `Retry-After`.
    pub max_concurrent_compiles: usize,
}

/// Whether `id` can name a host: 1 to 64 ASCII letters, digits, `.`, `_`
/// or `-`.
pub fn check_host_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!("`{id}` must be 1 to 64 characters long"));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
    {
        return Err(format!(
            "`{id}` has `{bad}`: use ASCII letters, digits, `.`, `_` and `-`"
        ));
    }
    Ok(())
}

impl Default for Config {
    fn default() -> Self {
        Config {
            data_dir: PathBuf::from(DEFAULT_DATA_DIR),
            store: StoreSection::default(),
            server: ServerSection::default(),
            queue: QueueSection::default(),
            limits: Limits::default(),
            retry: RetryPolicy::default(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            escalation: Escalation::default(),
            ceilings: Ceilings::default(),
            queues: BTreeMap::new(),
            engine: EngineSection::default(),
            http: HttpSection::default(),
            grants: BTreeMap::new(),
            secrets: BTreeMap::new(),
            config: BTreeMap::new(),
            history: HistorySection::default(),
            retention: RetentionSection::default(),
            alerts: BTreeMap::new(),
        }
    }
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: DEFAULT_LISTEN.to_owned(),
            token: None,
            allow_unauthenticated: false,
            max_body_bytes: ApiConfig::default().max_body_bytes,
            max_wait_ms: ApiConfig::default().max_wait_ms,
            metrics_public: false,
            header_read_timeout_ms: server::DEFAULT_HEADER_READ_TIMEOUT_MS,
            idle_timeout_ms: None,
            max_connections: server::DEFAULT_MAX_CONNECTIONS,
        }
    }
}

impl Default for QueueSection {
    fn default() -> Self {
        let q = QueueConfig::default();
        QueueSection {
            host_id: None,
            concurrency: q.concurrency,
            lease_ms: q.lease_ms,
            aging_ms: q.aging_ms,
            shutdown_grace_ms: q.shutdown_grace_ms,
            min_workers: None,
            max_workers: None,
            scale_down_idle_ms: DEFAULT_IDLE_MS,
            stuck_grace_ms: q.stuck_grace_ms,
            report_memory_bytes: q.report_memory_bytes,
        }
    }
}

impl Default for EngineSection {
    fn default() -> Self {
        let e = EngineConfig::default();
        EngineSection {
            max_module_bytes: e.max_module_bytes,
            compile_timeout_ms: e.compile_timeout.as_millis() as u64,
            fuel_metering: e.fuel_metering,
            max_follow_ups: e.max_follow_ups,
            max_concurrent_compiles: e.max_concurrent_compiles,
        }
    }
}

impl Config {
    /// Reads a TOML file; unknown keys are an error naming them.
    pub fn from_file(path: &Path) -> Result<Config, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read config {}: {e}", path.display()))?;
        Config::from_toml(&text).map_err(|e| format!("config {}: {e}", path.display()))
    }

    /// Parses TOML text.
    pub fn from_toml(text: &str) -> Result<Config, String> {
        toml::from_str(text).map_err(|e| e.message().to_owned())
    }

    /// The job policy this configuration describes, or its problems.
    pub fn policy(&self) -> Result<Policy, Vec<String>> {
        let defaults = Defaults {
            limits: self.limits,
            retry: self.retry,
            max_attempts: self.max_attempts,
            priority: DEFAULT_PRIORITY,
        };
        let queues = self.queues.iter().map(|(name, queue)| {
            let own = QueueDefaults {
                priority: queue.priority,
                max_attempts: queue.max_attempts,
                limits: queue.limits,
                retry: queue.retry,
            };
            (name.clone(), own)
        });
        Policy::new(defaults, self.ceilings, self.escalation)?.with_queues(queues)
    }

    /// Lists every problem, or returns the parsed listen address.
    pub fn validate(&self) -> Result<SocketAddr, Vec<String>> {
        let mut problems = Vec::new();
        if let Some(url) = &self.store.url
            && !crate::store::is_postgres_url(url)
        {
            problems.push(
                "store.url must be a postgres:// URL (leave it out for SQLite in data_dir)"
                    .to_owned(),
            );
        }
        if let Some(id) = &self.queue.host_id
            && let Err(problem) = check_host_id(id)
        {
            problems.push(format!("queue.host_id: {problem}"));
        }
        if self.store.pool_size == Some(0) {
            problems.push("store.pool_size must be at least 1".to_owned());
        }
        if self.store.url.is_none()
            && (self.store.schema.is_some() || self.store.pool_size.is_some())
        {
            problems.push("store.schema and store.pool_size need store.url".to_owned());
        }
        if self.store.url.is_some() && self.store.durability != DurabilityMode::Fsync {
            problems.push(
                "store.durability = \"interval\" is for SQLite only: with PostgreSQL, set the \
                 server's synchronous_commit (off for the same trade) instead"
                    .to_owned(),
            );
        }
        let listen = self.server.listen.parse::<SocketAddr>();
        if let Err(e) = &listen {
            problems.push(format!("server.listen `{}`: {e}", self.server.listen));
        }
        if let Ok(addr) = &listen
            && !addr.ip().is_loopback()
            && self.server.token.is_none()
            && !self.server.allow_unauthenticated
        {
            problems.push(format!(
                "server.listen {addr} is not a loopback address and no token is set: set server.token \
                 (WASMJOB_TOKEN) or server.allow_unauthenticated = true"
            ));
        }
        if self
            .server
            .token
            .as_deref()
            .is_some_and(|token| token.trim().is_empty())
        {
            // An empty token would be a password anyone can guess; a blank
            // `WASMJOB_TOKEN` in a unit file is a mistake, not a choice.
            problems.push(
                "server.token is empty: set a secret token, or remove the key to serve without one"
                    .to_owned(),
            );
        }
        if self.queue.concurrency == 0 {
            problems.push("queue.concurrency must be at least 1".to_owned());
        }
        let scaling = self.queue.scaling();
        if self.queue.min_workers == Some(0) {
            problems.push("queue.min_workers must be at least 1".to_owned());
        }
        if scaling.min > scaling.max {
            problems.push(format!(
                "queue.min_workers ({}) must not be above queue.max_workers ({})",
                scaling.min, scaling.max
            ));
        }
        if self.queue.max_workers == Some(0) {
            problems.push("queue.max_workers must be at least 1".to_owned());
        }
        if scaling.max > MAX_WORKERS {
            problems.push(format!(
                "queue.max_workers ({}) must be at most {MAX_WORKERS}",
                scaling.max
            ));
        }
        if self.queue.scale_down_idle_ms < 1 {
            problems.push("queue.scale_down_idle_ms must be at least 1".to_owned());
        }
        if self.queue.stuck_grace_ms < 1 {
            problems.push("queue.stuck_grace_ms must be at least 1".to_owned());
        }
        for (name, queue) in &self.queues {
            if queue.concurrency == Some(0) {
                problems.push(format!(
                    "queues.{name}.concurrency must be at least 1 (pause a queue to start none)"
                ));
            }
        }
        if self.queue.lease_ms < 100 {
            problems.push("queue.lease_ms must be at least 100".to_owned());
        }
        if self.server.max_wait_ms > MAX_WAIT_CEILING_MS {
            problems.push(format!(
                "server.max_wait_ms must be at most {MAX_WAIT_CEILING_MS} (an hour)"
            ));
        }
        let largest_report = self.ceilings.largest_limits().report_bytes();
        if largest_report > self.queue.report_memory_bytes {
            problems.push(format!(
                "queue.report_memory_bytes ({}) is below what one job at the ceilings may keep \
                 in its report ({largest_report} bytes: output, stdio tails, logs): raise it or \
                 lower the ceilings",
                self.queue.report_memory_bytes
            ));
        }
        if self.server.header_read_timeout_ms < 1 {
            problems.push("server.header_read_timeout_ms must be at least 1".to_owned());
        }
        if let Some(idle) = self.server.idle_timeout_ms
            && idle <= self.server.max_wait_ms
        {
            problems.push(format!(
                "server.idle_timeout_ms ({idle}) must be above server.max_wait_ms ({}): a long \
                 poll sends nothing while it waits",
                self.server.max_wait_ms
            ));
        }
        if self.server.max_connections < 1 {
            problems.push("server.max_connections must be at least 1".to_owned());
        }
        if self.queue.aging_ms < 1 {
            problems.push("queue.aging_ms must be at least 1".to_owned());
        }
        if let Err(policy) = self.policy() {
            problems.extend(policy);
        }
        if self.http.max_concurrent == 0 {
            problems.push("http.max_concurrent must be at least 1".to_owned());
        }
        if self.engine.max_concurrent_compiles == 0 {
            problems.push("engine.max_concurrent_compiles must be at least 1".to_owned());
        }
        if let Err(grants) = self.grants() {
            problems.extend(grants);
        }
        problems.extend(self.history.keep().err());
        problems.extend(self.history.flush().err());
        if let Err(retention) = self.retention.retention(self.ceilings.unique_window_ms) {
            problems.extend(retention);
        }
        if let Err(alerts) = self.webhooks() {
            problems.extend(alerts);
        }
        match (listen, problems.is_empty()) {
            (Ok(addr), true) => Ok(addr),
            _ => Err(problems),
        }
    }

    /// The engine's configuration.
    pub fn engine_config(&self) -> EngineConfig {
        EngineConfig {
            // A sandbox for every slot the pool may grow to.
            concurrency: self.queue.scaling().max.min(u32::MAX as usize) as u32,
            // A sandbox slot holds the largest memory a job may ask for.
            max_memory_bytes: self.ceilings.memory_bytes,
            fuel_metering: self.engine.fuel_metering,
            cache_dir: Some(self.data_dir.join("artifacts")),
            compile_timeout: std::time::Duration::from_millis(self.engine.compile_timeout_ms),
            max_module_bytes: self.engine.max_module_bytes,
            pooling: true,
            max_follow_ups: self.engine.max_follow_ups,
            max_concurrent_compiles: self.engine.max_concurrent_compiles,
            http: HttpLimits {
                connect_timeout: Duration::from_millis(self.http.connect_timeout_ms),
                first_byte_timeout: Duration::from_millis(self.http.first_byte_timeout_ms),
                between_bytes_timeout: Duration::from_millis(self.http.between_bytes_timeout_ms),
                max_response_bytes: self.http.max_response_bytes,
                max_requests: self.http.max_requests,
                max_concurrent: self.http.max_concurrent,
                ..HttpLimits::default()
            },
        }
    }

    /// The queue's configuration; fails when the policy does (call
    /// [`validate`](Self::validate) first to hear of every problem).
    pub fn queue_config(&self) -> Result<QueueConfig, Vec<String>> {
        Ok(QueueConfig {
            owner: self
                .queue
                .host_id
                .clone()
                .unwrap_or_else(|| format!("wasmjob-{}", std::process::id())),
            concurrency: self.queue.concurrency,
            lease_ms: self.queue.lease_ms,
            aging_ms: self.queue.aging_ms,
            shutdown_grace_ms: self.queue.shutdown_grace_ms,
            policy: self.policy()?,
            caps: self
                .queues
                .iter()
                .filter_map(|(name, queue)| Some((name.clone(), queue.concurrency?)))
                .collect(),
            grants: Arc::new(self.grants()?),
            scaling: Some(self.queue.scaling()),
            stuck_grace_ms: self.queue.stuck_grace_ms,
            check_ms: QueueConfig::default().check_ms,
            history_keep_ms: self
                .history
                .keep()
                .map_err(|problem| vec![problem])?
                .as_millis() as i64,
            history_flush_ms: self
                .history
                .flush()
                .map_err(|problem| vec![problem])?
                .as_millis() as u64,
            retention: self.retention()?.0,
            retention_interval_ms: self.retention()?.1,
            report_memory_bytes: self.queue.report_memory_bytes,
        })
    }

    /// What retention deletes and how often it looks (see
    /// [`RetentionSection::retention`]).
    pub fn retention(&self) -> Result<(Option<Retention>, u64), Vec<String>> {
        self.retention.retention(self.ceilings.unique_window_ms)
    }

    /// The alert webhooks, or every problem naming its field.
    pub fn webhooks(&self) -> Result<Vec<Webhook>, Vec<String>> {
        let mut problems = Vec::new();
        let mut hooks = Vec::new();
        for (name, spec) in &self.alerts {
            let field = |key: &str| format!("alerts.{name}.{key}");
            if !(spec.url.starts_with("http://") || spec.url.starts_with("https://"))
                || spec.url.parse::<http::Uri>().is_err()
            {
                problems.push(format!(
                    "{} `{}` must be an http:// or https:// URL",
                    field("url"),
                    spec.url
                ));
            }
            let events: std::collections::BTreeSet<AlertEvent> =
                spec.events.iter().copied().collect();
            if events.is_empty() {
                problems.push(format!(
                    "{} must name at least one of dead_letter, queue_wait",
                    field("events")
                ));
            }
            let wants_wait = events.contains(&AlertEvent::QueueWait);
            match spec.queue_wait_ms {
                None | Some(0) if wants_wait => problems.push(format!(
                    "{} must be set (more than 0) with the queue_wait event",
                    field("queue_wait_ms")
                )),
                Some(_) if !wants_wait => problems.push(format!(
                    "{} is set but events does not include queue_wait",
                    field("queue_wait_ms")
                )),
                _ => {}
            }
            if let Some(queues) = &spec.queues {
                for queue in queues {
                    if let Err(invalid) = crate::policy::validate_queue_name(queue) {
                        problems.push(format!("{}: {}", field("queues"), invalid.message));
                    }
                }
            }
            hooks.push(Webhook {
                name: name.clone(),
                url: spec.url.clone(),
                secret: spec.secret.clone(),
                events,
                queue_wait_ms: spec.queue_wait_ms,
                queues: spec.queues.as_ref().map(|q| q.iter().cloned().collect()),
            });
        }
        if problems.is_empty() {
            Ok(hooks)
        } else {
            Err(problems)
        }
    }

    /// The grants, with their secrets read from the environment and files.
    pub fn grants(&self) -> Result<Grants, Vec<String>> {
        Grants::load(&self.grants, &self.secrets, &self.config, |var| {
            std::env::var(var).ok()
        })
    }

    /// What the HTTP server bounds per connection and in all.
    pub fn server_limits(&self) -> ServerLimits {
        ServerLimits {
            header_read_timeout: Duration::from_millis(self.server.header_read_timeout_ms),
            idle_timeout: Duration::from_millis(
                self.server.idle_timeout_ms.unwrap_or(
                    server::DEFAULT_IDLE_TIMEOUT_MS.max(self.server.max_wait_ms + 60_000),
                ),
            ),
            max_connections: self.server.max_connections,
        }
    }

    /// The API's configuration.
    pub fn api_config(&self) -> ApiConfig {
        ApiConfig {
            max_body_bytes: self.server.max_body_bytes,
            max_wait_ms: self.server.max_wait_ms,
            max_module_bytes: self.engine.max_module_bytes as usize,
            token: self.server.token.clone(),
            metrics_public: self.server.metrics_public,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_durability_is_fsync_by_default_and_interval_is_for_sqlite_only() {
        assert_eq!(Config::default().store.durability, DurabilityMode::Fsync);
        let interval = Config::from_toml("[store]\ndurability = \"interval\"\n").unwrap();
        assert_eq!(interval.store.durability, DurabilityMode::Interval);
        assert!(interval.validate().is_ok());
        assert!(Config::from_toml("[store]\ndurability = \"sometimes\"\n").is_err());
        let postgres = Config::from_toml(
            "[store]\nurl = \"postgres://u@db/jobs\"\ndurability = \"interval\"\n",
        )
        .unwrap();
        let problems = postgres.validate().unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("store.durability")),
            "{problems:?}"
        );
    }

    #[test]
    fn a_store_url_selects_postgres_and_is_checked() {
        let sqlite = Config::default();
        assert!(sqlite.store.postgres().is_none(), "SQLite by default");
        let postgres = Config::from_toml(
            "[store]\nurl = \"postgres://u@db:5433/jobs\"\nschema = \"w\"\npool_size = 3\n",
        )
        .unwrap();
        let config = postgres.store.postgres().unwrap();
        assert_eq!(config.url, "postgres://u@db:5433/jobs");
        assert_eq!((config.schema.as_deref(), config.pool_size), (Some("w"), 3));
        assert!(postgres.validate().is_ok());
        let wrong =
            Config::from_toml("[store]\nurl = \"mysql://db/jobs\"\npool_size = 0\n").unwrap();
        let problems = wrong.validate().unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("store.url")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("store.pool_size")),
            "{problems:?}"
        );
        let orphan = Config::from_toml("[store]\nschema = \"w\"\n").unwrap();
        let problems = orphan.validate().unwrap_err();
        assert!(
            problems.iter().any(|p| p.contains("need store.url")),
            "{problems:?}"
        );
    }

    #[test]
    fn worker_bounds_default_to_the_concurrency_and_are_checked() {
        let fixed = Config::from_toml("[queue]\nconcurrency = 4\n").unwrap();
        assert!(fixed.queue.scaling().is_fixed());
        assert_eq!(fixed.queue.scaling().max, 4);
        let grows = Config::from_toml("[queue]\nconcurrency = 4\nmax_workers = 32\n").unwrap();
        assert_eq!(
            (grows.queue.scaling().min, grows.queue.scaling().max),
            (4, 32)
        );
        assert_eq!(
            grows.engine_config().concurrency,
            32,
            "a sandbox per slot it may grow to"
        );
        let wrong = Config::from_toml("[queue]\nmin_workers = 9\nmax_workers = 3\n").unwrap();
        let problems = wrong.validate().unwrap_err();
        assert!(
            problems.iter().any(
                |p| p.contains("queue.min_workers (9) must not be above queue.max_workers (3)")
            ),
            "{problems:?}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        let error = Config::from_toml("[queue]\nconcurency = 4\n").unwrap_err();
        assert!(error.contains("concurency"), "{error}");
    }

    #[test]
    fn sections_override_defaults() {
        let config = Config::from_toml(
            "data_dir = \"/tmp/x\"\n[queue]\nconcurrency = 3\n[limits]\nfuel = 10\n[retry]\nbackoff = \"linear\"\n",
        )
        .unwrap();
        assert_eq!(config.queue.concurrency, 3);
        assert_eq!(config.limits.fuel, 10);
        assert_eq!(config.limits.timeout_ms, Limits::default().timeout_ms);
        assert_eq!(config.retry.backoff, crate::policy::Backoff::Linear);
        assert_eq!(config.data_dir, PathBuf::from("/tmp/x"));
    }

    #[test]
    fn escalation_and_defaults_are_checked_against_the_ceilings() {
        let config = Config::from_toml(
            "[ceilings]\nmemory_bytes = 268435456\nfuel = 1000\n[limits]\nfuel = 2000\n",
        )
        .unwrap();
        let problems = config.validate().unwrap_err();
        assert!(
            problems
                .iter()
                .any(|p| p.contains("default limits.fuel: 2000 is above")),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains(
                "escalation.max_memory_bytes (536870912) is above ceilings.memory_bytes (268435456)"
            )),
            "{problems:?}"
        );
        assert!(
            problems.iter().any(|p| p.contains("escalation.max_fuel")),
            "{problems:?}"
        );
    }

    #[test]
    fn named_queues_take_a_cap_and_defaults_of_their_own() {
        let config = Config::from_toml(
            "[queues.emails]\nconcurrency = 2\npriority = 8\n[queues.emails.retry]\nbackoff = \"fixed\"\n[queues.reports.limits]\ntimeout_ms = 600000\n",
        )
        .unwrap();
        let queue = config.queue_config().unwrap();
        assert_eq!(queue.caps.get("emails"), Some(&2));
        assert_eq!(queue.caps.get("reports"), None, "no cap of its own");
        let emails = queue.policy.defaults_for("emails");
        assert_eq!(emails.priority, 8);
        assert_eq!(emails.retry.backoff, crate::policy::Backoff::Fixed);
        assert_eq!(
            queue.policy.defaults_for("reports").limits.timeout_ms,
            600_000
        );
        let bad = Config::from_toml("[queues.emails]\nconcurrency = 0\n[queues.x]\ncolour = 1\n");
        assert!(bad.unwrap_err().contains("colour"));
        let zero = Config::from_toml("[queues.emails]\nconcurrency = 0\n").unwrap();
        let problems = zero.validate().unwrap_err();
        assert!(
            problems[0].contains("queues.emails.concurrency"),
            "{problems:?}"
        );
    }

    #[test]
    fn history_takes_durations_and_names_a_bad_one() {
        let config = Config::from_toml("[history]\nkeep = \"3d\"\nflush = \"5s\"\n").unwrap();
        let queue = config.queue_config().unwrap();
        assert_eq!(queue.history_keep_ms, 3 * 86_400_000);
        assert_eq!(queue.history_flush_ms, 5_000);
        let defaults = Config::default().queue_config().unwrap();
        assert_eq!(defaults.history_keep_ms, 48 * 3_600_000);
        let bad = Config::from_toml("[history]\nkeep = \"2x\"\nflush = \"0s\"\n").unwrap();
        let problems = bad.validate().unwrap_err();
        assert!(problems[0].starts_with("history.keep `2x`"), "{problems:?}");
        assert!(
            problems[1].starts_with("history.flush `0s`"),
            "{problems:?}"
        );
        let short = Config::from_toml("[history]\nkeep = \"1h\"\n").unwrap();
        assert!(short.validate().unwrap_err()[0].contains("at least 24h"));
        assert!(
            Config::from_toml("[history]\nkeep_for = \"1d\"\n")
                .unwrap_err()
                .contains("keep_for")
        );
    }

    #[test]
    fn retention_takes_ages_by_state_and_names_every_bad_field() {
        let config = Config::from_toml(
            "[retention]\ncompleted = \"2d\"\ndead_letter = \"60d\"\nbatch = 50\ninterval = \"30s\"\n",
        )
        .unwrap();
        let (retention, interval) = config.retention().unwrap();
        let retention = retention.unwrap();
        assert_eq!(retention.completed_ms, Some(2 * 86_400_000));
        assert_eq!(
            retention.cancelled_ms, retention.completed_ms,
            "as completed"
        );
        assert_eq!(retention.dead_letter_ms, Some(60 * 86_400_000));
        assert_eq!(retention.batch, 50);
        assert_eq!(
            retention.unique_window_ms as u64,
            config.ceilings.unique_window_ms
        );
        assert_eq!(interval, 30_000);
        let (off, _) = Config::from_toml("[retention]\nenabled = false\n")
            .unwrap()
            .retention()
            .unwrap();
        assert_eq!(off, None);
        let bad =
            Config::from_toml("[retention]\ncompleted = \"soon\"\ncancelled = \"0s\"\nbatch = 0\n")
                .unwrap();
        let problems = bad.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("retention.completed `soon`"));
        assert!(problems[1].starts_with("retention.cancelled `0s`"));
        assert!(problems[2].starts_with("retention.batch 0"));
    }

    #[test]
    fn alerts_are_checked_naming_the_field() {
        let config = Config::from_toml(
            "[alerts.ops]\nurl = \"https://hooks.example.com/x\"\nsecret = \"s\"\nevents = [\"dead_letter\", \"queue_wait\"]\nqueue_wait_ms = 60000\nqueues = [\"emails\"]\n",
        )
        .unwrap();
        let hooks = config.webhooks().unwrap();
        assert_eq!(hooks[0].name, "ops");
        assert_eq!(hooks[0].queue_wait_ms, Some(60_000));
        assert!(
            Config::from_toml("[alerts.ops]\nurl = \"http://x\"\nevents = [\"fire\"]\n")
                .unwrap_err()
                .contains("fire")
        );
        let bad = Config::from_toml(
            "[alerts.ops]\nurl = \"ftp://x\"\nevents = [\"queue_wait\"]\nqueues = [\"a b\"]\n",
        )
        .unwrap();
        let problems = bad.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].starts_with("alerts.ops.url `ftp://x`"));
        assert!(problems[1].starts_with("alerts.ops.queue_wait_ms must be set"));
        assert!(problems[2].starts_with("alerts.ops.queues"));
    }

    #[test]
    fn every_configuration_example_of_the_readme_parses() {
        let readme = include_str!("../../README.md");
        let mut examples = 0;
        for block in readme.split("```toml\n").skip(1) {
            let text = block.split("```").next().unwrap_or_default();
            if text.starts_with("# Cargo.toml") {
                continue;
            }
            let config = Config::from_toml(text).unwrap_or_else(|e| panic!("{e}:\n{text}"));
            let durations = [config.history.keep(), config.history.flush()];
            for checked in durations {
                checked.unwrap_or_else(|e| panic!("{e}:\n{text}"));
            }
            config
                .retention()
                .unwrap_or_else(|e| panic!("{e:?}:\n{text}"));
            config
                .webhooks()
                .unwrap_or_else(|e| panic!("{e:?}:\n{text}"));
            // Secrets named by environment variables need not be set here.
            if !text.contains("[secrets]") {
                config
                    .validate()
                    .unwrap_or_else(|e| panic!("{e:?}:\n{text}"));
            }
            examples += 1;
        }
        assert!(examples >= 1, "the README shows a configuration");
    }

    #[test]
    fn validation_lists_every_problem() {
        let mut config = Config::default();
        config.server.listen = "0.0.0.0:7878".to_owned();
        config.queue.concurrency = 0;
        config.server.max_wait_ms = MAX_WAIT_CEILING_MS + 1;
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 3, "{problems:?}");
        assert!(problems[0].contains("not a loopback address"));
        assert!(
            problems[2].starts_with("server.max_wait_ms"),
            "{problems:?}"
        );
        config.server.idle_timeout_ms = Some(1_000);
        let problems = config.validate().unwrap_err();
        assert!(
            problems[3].starts_with("server.idle_timeout_ms (1000) must be above"),
            "{problems:?}"
        );
        config.server.idle_timeout_ms = None;
        config.server.token = Some("secret".to_owned());
        config.queue.concurrency = 1;
        config.server.max_wait_ms = MAX_WAIT_CEILING_MS;
        assert!(config.validate().is_ok());
    }

    #[test]
    fn an_empty_token_is_refused() {
        for empty in ["", "  "] {
            let mut config = Config::default();
            config.server.token = Some(empty.to_owned());
            let problems = config.validate().unwrap_err();
            assert_eq!(problems.len(), 1, "{problems:?}");
            assert!(problems[0].starts_with("server.token is empty"));
        }
    }

    #[test]
    fn the_report_budget_must_hold_one_job_at_the_ceilings() {
        let mut config = Config::default();
        assert!(config.validate().is_ok(), "the defaults fit");
        let largest = config.ceilings.largest_limits().report_bytes();
        config.queue.report_memory_bytes = largest - 1;
        let problems = config.validate().unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].starts_with("queue.report_memory_bytes"));
        config.queue.report_memory_bytes = largest;
        assert!(config.validate().is_ok());
    }
}

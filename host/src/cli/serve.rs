//! `wasmjob serve`: the job host. Configuration from a TOML file, then
//! environment variables, then flags (flags win).

use super::{EXIT_OK, EXIT_USAGE, usage_error};
use crate::clock::{Clock, FollowedClock, SystemClock};
use crate::config::Config;
use crate::engine::Engine;
use crate::policy::{Backoff, RetryPolicy};
use crate::queue::Queue;
use crate::store::{DurabilityMode, JobStore, PostgresStore, SqliteStore, StoreConfig};
use crate::units::{parse_bytes, parse_duration};
use crate::{api, scheduler, worker};
use clap::Args;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// Arguments of `wasmjob serve`. Each flag can also be set by the
/// environment variable shown, and in the config file.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// TOML configuration file (unknown keys are an error).
    #[arg(long, env = "WASMJOB_CONFIG", value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Directory for the database, modules and compiled artifacts
    /// [default: ./wasmjob-data].
    #[arg(long, env = "WASMJOB_DATA_DIR", value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// PostgreSQL database holding the jobs, shared by every host pointed
    /// at it (`postgres://user:password@host:port/database`) [default:
    /// SQLite in the data directory].
    #[arg(
        long,
        env = "WASMJOB_DATABASE_URL",
        value_name = "URL",
        hide_env_values = true
    )]
    pub database_url: Option<String>,
    /// When an acknowledged write is on disk (SQLite): fsync (before the
    /// answer) or interval (fsync about once a second: safe against a
    /// process crash, up to about a second lost on power loss)
    /// [default: fsync].
    #[arg(long, env = "WASMJOB_DURABILITY", value_name = "MODE")]
    pub durability: Option<DurabilityMode>,
    /// This host's identity among hosts sharing a PostgreSQL store
    /// (letters, digits, `.`, `_`, `-`) [default: made up once and kept in
    /// the data directory's `host-id` file].
    #[arg(long, env = "WASMJOB_HOST_ID", value_name = "ID")]
    pub host_id: Option<String>,
    /// Address to listen on [default: 127.0.0.1:7878].
    #[arg(long, env = "WASMJOB_LISTEN", value_name = "ADDR")]
    pub listen: Option<String>,
    /// Bearer token required on /v1.
    #[arg(long, env = "WASMJOB_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Listen on a non-loopback address without a token.
    #[arg(long, env = "WASMJOB_ALLOW_UNAUTHENTICATED")]
    pub allow_unauthenticated: bool,
    /// Jobs running at once.
    #[arg(long, env = "WASMJOB_CONCURRENCY", value_name = "N")]
    pub concurrency: Option<usize>,
    /// Lease duration (e.g. 30s); a job whose host dies is retried after it.
    #[arg(long, env = "WASMJOB_LEASE", value_parser = parse_duration, value_name = "DURATION")]
    pub lease: Option<Duration>,
    /// Grace period for running jobs at shutdown (e.g. 10s).
    #[arg(long, env = "WASMJOB_SHUTDOWN_GRACE", value_parser = parse_duration, value_name = "DURATION")]
    pub shutdown_grace: Option<Duration>,
    /// Default fuel of a job.
    #[arg(long, env = "WASMJOB_FUEL", value_name = "N")]
    pub fuel: Option<u64>,
    /// Default memory limit of a job (e.g. 64MiB).
    #[arg(long, env = "WASMJOB_MEMORY", value_parser = parse_bytes, value_name = "SIZE")]
    pub memory: Option<u64>,
    /// Default timeout of a job (e.g. 30s).
    #[arg(long, env = "WASMJOB_TIMEOUT", value_parser = parse_duration, value_name = "DURATION")]
    pub timeout: Option<Duration>,
    /// Default retry policy: exponential|linear|fixed|none[:BASE] (e.g. exponential:1s).
    #[arg(long, env = "WASMJOB_RETRY", value_parser = parse_retry, value_name = "POLICY")]
    pub retry: Option<RetryPolicy>,
    /// Default attempts of a job.
    #[arg(long, env = "WASMJOB_MAX_ATTEMPTS", value_name = "N")]
    pub max_attempts: Option<u32>,
    /// Largest JSON request body (e.g. 16MiB).
    #[arg(long, env = "WASMJOB_MAX_BODY", value_parser = parse_bytes, value_name = "SIZE")]
    pub max_body: Option<u64>,
    /// Largest module upload (e.g. 64MiB).
    #[arg(long, env = "WASMJOB_MAX_MODULE", value_parser = parse_bytes, value_name = "SIZE")]
    pub max_module: Option<u64>,
    /// Longest long poll a client may ask for (`wait_ms`), e.g. 25s: keep
    /// it under the idle timeout of any proxy in front of the host.
    #[arg(long, env = "WASMJOB_MAX_WAIT", value_parser = parse_duration, value_name = "DURATION")]
    pub max_wait: Option<Duration>,
}

/// Parses `exponential:1s`, `linear:500ms`, `fixed:5s` or `none`.
pub fn parse_retry(text: &str) -> Result<RetryPolicy, String> {
    let (name, base) = text.split_once(':').unwrap_or((text, ""));
    let backoff = match name {
        "exponential" => Backoff::Exponential,
        "linear" => Backoff::Linear,
        "fixed" => Backoff::Fixed,
        "none" => Backoff::None,
        other => {
            return Err(format!(
                "unknown retry strategy `{other}`: use exponential, linear, fixed or none"
            ));
        }
    };
    let mut policy = RetryPolicy {
        backoff,
        ..RetryPolicy::default()
    };
    if !base.is_empty() {
        policy.base_ms = parse_duration(base)?.as_millis() as u64;
        policy.max_delay_ms = policy.max_delay_ms.max(policy.base_ms);
    }
    if policy.backoff != Backoff::None && policy.base_ms == 0 {
        return Err("the retry base must be greater than 0".to_owned());
    }
    Ok(policy)
}

impl ServeArgs {
    /// The file's configuration with the environment and flags applied.
    pub fn config(&self) -> Result<Config, String> {
        let mut config = match &self.config {
            Some(path) => Config::from_file(path)?,
            None => Config::default(),
        };
        if let Some(v) = &self.data_dir {
            config.data_dir = v.clone();
        }
        if let Some(v) = &self.database_url {
            config.store.url = Some(v.clone());
        }
        if let Some(v) = self.durability {
            config.store.durability = v;
        }
        if let Some(v) = &self.listen {
            config.server.listen = v.clone();
        }
        if let Some(v) = &self.host_id {
            config.queue.host_id = Some(v.clone());
        }
        if let Some(v) = &self.token {
            config.server.token = Some(v.clone());
        }
        config.server.allow_unauthenticated |= self.allow_unauthenticated;
        if let Some(v) = self.concurrency {
            config.queue.concurrency = v;
        }
        if let Some(v) = self.lease {
            config.queue.lease_ms = v.as_millis() as i64;
        }
        if let Some(v) = self.shutdown_grace {
            config.queue.shutdown_grace_ms = v.as_millis() as u64;
        }
        if let Some(v) = self.fuel {
            config.limits.fuel = v;
        }
        if let Some(v) = self.memory {
            config.limits.memory_bytes = v;
        }
        if let Some(v) = self.timeout {
            config.limits.timeout_ms = v.as_millis() as u64;
        }
        if let Some(v) = self.retry {
            config.retry = v;
        }
        if let Some(v) = self.max_attempts {
            config.max_attempts = v;
        }
        if let Some(v) = self.max_body {
            config.server.max_body_bytes = v as usize;
        }
        if let Some(v) = self.max_module {
            config.engine.max_module_bytes = v;
        }
        if let Some(v) = self.max_wait {
            config.server.max_wait_ms = v.as_millis() as u64;
        }
        Ok(config)
    }
}

/// Runs `wasmjob serve` until SIGINT or SIGTERM.
pub fn run(args: ServeArgs) -> u8 {
    let config = match args.config() {
        Ok(config) => config,
        Err(message) => return usage_error(message),
    };
    let addr = match config.validate() {
        Ok(addr) => addr,
        Err(problems) => return usage_error(problems.join("; ")),
    };
    if let Some(open_files) = raise_open_files_limit() {
        let wanted = config.server.max_connections as u64 + FD_RESERVE;
        if wanted > open_files {
            return usage_error(format!(
                "server.max_connections ({}) leaves too few file descriptors: this process may \
                 open {open_files} files and the host keeps {FD_RESERVE} for its store, modules \
                 and jobs' requests; lower it or raise `ulimit -n`",
                config.server.max_connections
            ));
        }
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .thread_name("wasmjob-api")
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return usage_error(format!("cannot start the runtime: {e}")),
    };
    match runtime.block_on(serve(config, addr)) {
        Ok(()) => EXIT_OK,
        Err(message) => {
            eprintln!("error: {message}");
            EXIT_USAGE
        }
    }
}

/// The store `serve` runs on.
enum Store {
    /// SQLite in the data directory, held by this host alone.
    Sqlite(Arc<SqliteStore>),
    /// PostgreSQL, shared with every host pointed at it.
    Postgres(Arc<PostgresStore>),
}

impl Store {
    async fn open(config: &Config) -> Result<Store, String> {
        match config.store.postgres() {
            Some(postgres) => {
                let store = PostgresStore::open(postgres)
                    .await
                    .map_err(|e| format!("opening the PostgreSQL store: {e}"))?;
                Ok(Store::Postgres(Arc::new(store)))
            }
            None => {
                let store_config = StoreConfig {
                    durability: config.store.durability,
                    ..StoreConfig::new(&config.data_dir)
                };
                let store = SqliteStore::open(store_config).map_err(|e| {
                    format!("opening the store in {}: {e}", config.data_dir.display())
                })?;
                Ok(Store::Sqlite(Arc::new(store)))
            }
        }
    }

    fn shared(&self) -> Arc<dyn JobStore> {
        match self {
            Store::Sqlite(store) => store.clone(),
            Store::Postgres(store) => store.clone(),
        }
    }

    /// Where the jobs are, for the start-up line (no password).
    fn describe(&self, config: &Config) -> String {
        match self {
            Store::Sqlite(_) => format!("data in {}", config.data_dir.display()),
            Store::Postgres(_) => "jobs in PostgreSQL".to_owned(),
        }
    }

    async fn close(&self) {
        match self {
            Store::Sqlite(store) => store.close().await,
            Store::Postgres(store) => store.close(),
        }
    }
}

async fn serve(mut config: Config, addr: std::net::SocketAddr) -> Result<(), String> {
    // Held until the process ends: no second host takes the same identity.
    let _identity = HostIdentity::claim(&mut config)?;
    let backend = Store::open(&config).await?;
    let store = backend.shared();
    // Hosts sharing a database judge leases on its clock.
    let followed = match backend {
        Store::Postgres(_) => {
            let clock = Arc::new(FollowedClock::new(clock_skew_for_tests()));
            scheduler::follow_clock(store.as_ref(), &clock)
                .await
                .map_err(|e| format!("reading the database's clock: {e}"))?;
            Some(clock)
        }
        Store::Sqlite(_) => None,
    };
    let clock: Arc<dyn Clock> = match &followed {
        Some(clock) => clock.clone(),
        None => Arc::new(SystemClock),
    };
    let engine = Engine::new(config.engine_config()).map_err(|e| e.to_string())?;
    let queue_config = config
        .queue_config()
        .map_err(|problems| problems.join("; "))?;
    let queue = Queue::new(store.clone(), engine, clock, queue_config);
    if let Some(clock) = &followed {
        queue.metrics().set_clock_offset(clock.offset());
    }
    let webhooks = config.webhooks().map_err(|problems| problems.join("; "))?;
    if !webhooks.is_empty() {
        let alerts = crate::alerts::Alerts::start(webhooks, crate::alerts::Delivery::default())
            .map_err(|e| format!("starting alerts: {e}"))?;
        queue.set_alerts(alerts);
    }
    // SQLite holds the data directory exclusively: whatever is still
    // running was left by a previous process of this host, which is gone.
    // A shared PostgreSQL store's running jobs may be other hosts' live
    // ones: this host takes back only those leased to its identity; a
    // dead host's are rescued by the leader when their leases expire.
    match backend {
        Store::Sqlite(_) => scheduler::recover(&queue).await,
        Store::Postgres(_) => scheduler::recover_own(&queue).await,
    };
    match queue.collect_artifacts().await {
        Ok(0) => {}
        Ok(deleted) => tracing::info!(deleted, "deleted compiled artifacts no module needs"),
        Err(error) => tracing::warn!(%error, "collecting compiled artifacts failed"),
    }
    let pool = worker::Pool::start(queue.clone()).map_err(|e| format!("starting workers: {e}"))?;
    let services = tokio::spawn(scheduler::run(queue.clone()));
    let cron = tokio::spawn(scheduler::run_cron(queue.clone()));
    let history = tokio::spawn(scheduler::run_history(queue.clone()));
    let retention = tokio::spawn(scheduler::run_retention(queue.clone()));
    let alerts = tokio::spawn(scheduler::run_alerts(queue.clone()));
    let clock_task = followed.map(|clock| tokio::spawn(scheduler::run_clock(queue.clone(), clock)));
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|e| format!("cannot listen on {addr}: {e}"))?;
    let local = listener.local_addr().map_err(|e| e.to_string())?;
    eprintln!(
        "wasmjob listening on http://{local} ({})",
        backend.describe(&config)
    );
    let app = api::router(queue.clone(), config.api_config());
    api::serve(listener, app, config.server_limits(), shutdown_signal()).await;
    tracing::info!("shutting down: finishing running jobs");
    pool.shutdown().await;
    services.abort();
    cron.abort();
    history.abort();
    retention.abort();
    alerts.abort();
    if let Some(task) = clock_task {
        task.abort();
    }
    // The last outcomes' counts, written before the store closes.
    if let Err(error) = queue.flush_history().await {
        tracing::warn!(%error, "writing the history at shutdown failed");
    }
    backend.close().await;
    Ok(())
}

/// This host's identity, and the lock that keeps it its own.
struct HostIdentity {
    /// `data_dir/host-id`, locked while the host runs.
    _file: std::fs::File,
}

impl HostIdentity {
    /// Sets `config.queue.host_id` when it is not set, to the identity kept
    /// in `data_dir/host-id` (made up and written at the first start), and
    /// locks that file: two processes on one data directory would take each
    /// other's jobs for their own at restart.
    fn claim(config: &mut Config) -> Result<HostIdentity, String> {
        let dir = &config.data_dir;
        std::fs::create_dir_all(dir)
            .map_err(|e| format!("cannot create the data directory {}: {e}", dir.display()))?;
        let path = dir.join("host-id");
        let mut file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
        match file.try_lock() {
            Ok(()) => {}
            Err(std::fs::TryLockError::WouldBlock) => {
                return Err(format!(
                    "{} is in use by another wasmjob host (it holds {}): give each host its \
                     own --data-dir",
                    dir.display(),
                    path.display()
                ));
            }
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(format!("cannot lock {}: {e}", path.display()));
            }
        }
        if config.queue.host_id.is_none() {
            use std::io::{Read, Seek, Write};
            let mut kept = String::new();
            file.read_to_string(&mut kept)
                .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
            let kept = kept.trim();
            let id = if !kept.is_empty() && crate::config::check_host_id(kept).is_ok() {
                kept.to_owned()
            } else {
                let id = new_host_id();
                file.set_len(0)
                    .and_then(|()| file.rewind())
                    .and_then(|()| writeln!(file, "{id}"))
                    .and_then(|()| file.sync_all())
                    .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
                id
            };
            config.queue.host_id = Some(id);
        }
        Ok(HostIdentity { _file: file })
    }
}

/// A new host identity: the machine's name and a random suffix.
fn new_host_id() -> String {
    let machine: String = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        .take(40)
        .collect();
    let machine = if machine.is_empty() {
        "host".to_owned()
    } else {
        machine
    };
    format!("{machine}-{:08x}", fastrand::u32(..))
}

/// A pretended error of this host's clock, ms, from the hidden
/// `WASMJOB_TEST_CLOCK_SKEW_MS` (tests of hosts with wrong clocks); 0
/// normally.
fn clock_skew_for_tests() -> i64 {
    std::env::var("WASMJOB_TEST_CLOCK_SKEW_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// File descriptors kept for everything but client connections: the
/// store's database, WAL and read connections, module and artifact files,
/// jobs' outbound requests, the alerts' and the runtime's own.
const FD_RESERVE: u64 = 256;

/// Raises this process's soft limit on open files to its hard limit (many
/// systems start services at 1,024 with a far higher hard limit) and
/// returns the limit now in force; `None` when unlimited or unknown.
#[cfg(unix)]
fn raise_open_files_limit() -> Option<u64> {
    use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
    let limit = getrlimit(Resource::Nofile);
    let soft = limit.current?;
    if let Some(hard) = limit.maximum
        && hard > soft
    {
        let raised = Rlimit {
            current: Some(hard),
            maximum: Some(hard),
        };
        if setrlimit(Resource::Nofile, raised).is_ok() {
            return Some(hard);
        }
    }
    Some(soft)
}

/// Elsewhere the limit is not known.
#[cfg(not(unix))]
fn raise_open_files_limit() -> Option<u64> {
    None
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = terminate => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_flags() {
        let p = parse_retry("linear:500ms").unwrap();
        assert_eq!((p.backoff, p.base_ms), (Backoff::Linear, 500));
        assert_eq!(parse_retry("none").unwrap().backoff, Backoff::None);
        assert!(
            parse_retry("sometimes:1s")
                .unwrap_err()
                .contains("sometimes")
        );
    }
}

#[cfg(test)]
mod precedence {
    use super::*;
    use clap::Parser;

    #[derive(Debug, Parser)]
    struct Wrapper {
        #[command(flatten)]
        serve: ServeArgs,
    }

    #[test]
    fn the_durability_flag_overrides_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmjob.toml");
        std::fs::write(&file, "[store]\ndurability = \"fsync\"\n").unwrap();
        let config = |extra: &[&str]| {
            let mut argv = vec!["serve", "--config", file.to_str().unwrap()];
            argv.extend_from_slice(extra);
            Wrapper::parse_from(argv).serve.config().unwrap()
        };
        assert_eq!(config(&[]).store.durability, DurabilityMode::Fsync);
        assert_eq!(
            config(&["--durability", "interval"]).store.durability,
            DurabilityMode::Interval
        );
        assert!(Wrapper::try_parse_from(["serve", "--durability", "never"]).is_err());
    }

    #[test]
    fn the_database_url_flag_overrides_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmjob.toml");
        std::fs::write(&file, "[store]\nurl = \"postgres://file/jobs\"\n").unwrap();
        let args = Wrapper::parse_from([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--database-url",
            "postgres://flag/jobs",
        ]);
        let config = args.serve.config().unwrap();
        assert_eq!(config.store.url.as_deref(), Some("postgres://flag/jobs"));
        let args = Wrapper::parse_from(["serve", "--config", file.to_str().unwrap()]);
        let config = args.serve.config().unwrap();
        assert_eq!(config.store.url.as_deref(), Some("postgres://file/jobs"));
    }

    #[test]
    fn flags_override_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmjob.toml");
        std::fs::write(&file, "[queue]\nconcurrency = 3\nlease_ms = 5000\n").unwrap();
        let args = Wrapper::parse_from([
            "serve",
            "--config",
            file.to_str().unwrap(),
            "--concurrency",
            "7",
        ]);
        let config = args.serve.config().unwrap();
        assert_eq!(config.queue.concurrency, 7, "the flag wins");
        assert_eq!(
            config.queue.lease_ms, 5000,
            "the file applies where no flag is given"
        );
    }

    #[test]
    fn an_unknown_key_in_the_file_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("wasmjob.toml");
        std::fs::write(&file, "[server]\nlisten_on = \"x\"\n").unwrap();
        let args = Wrapper::parse_from(["serve", "--config", file.to_str().unwrap()]);
        assert!(args.serve.config().unwrap_err().contains("listen_on"));
    }
}

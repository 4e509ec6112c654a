//! The sandbox: the only module that knows wasmtime.
//!
//! [`Engine::load`] validates and compiles a module once per blake3 hash
//! (keeping the ready-to-instantiate form in memory and the compiled artifact
//! on disk), and [`Engine::execute`] runs one invocation in a fresh instance
//! with fuel, memory, wall-clock, output and log limits, returning a
//! [`Report`]. Guest misbehaviour is always inside the report;
//! [`Error`] means the host itself could not run the job.
//!
//! This module must not know about the queue, SQL or HTTP.

mod artifacts;
mod bindings;
mod cancel;
mod classify;
mod compiles;
mod config;
mod epoch;
mod host_impl;
mod limiter;
mod load;
mod outbound;
mod redact;
mod run;
mod state;
mod stdio;

pub use cancel::CancelToken;
pub use compiles::{Admission, Slot as CompileSlot};
pub use config::{EngineConfig, default_max_concurrent_compiles};
pub use load::{LoadError, Module};
pub use outbound::HttpLimits;

use crate::limits::Limits;
use crate::report::{Progress, Report};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

/// Facts about the invocation that the job can read (`job-info` in the WIT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JobInfo {
    /// The job's id.
    pub id: String,
    /// This attempt's number, from 1.
    pub attempt: u32,
    /// The number of attempts the job may use.
    pub max_attempts: u32,
    /// 0 (critical) to 10 (low).
    pub priority: u8,
}

impl Default for JobInfo {
    fn default() -> Self {
        JobInfo {
            id: "local".to_owned(),
            attempt: 1,
            max_attempts: 1,
            priority: 5,
        }
    }
}

/// Called with each progress report of a running job. It runs on the
/// guest's thread, so it must be cheap (store the value, notify, return).
pub type ProgressSink = Arc<dyn Fn(&Progress) + Send + Sync>;

/// One invocation to run.
#[derive(Clone)]
pub struct Invocation {
    /// What the job is told about itself.
    pub info: JobInfo,
    /// The input bytes (JSON by convention).
    pub input: Vec<u8>,
    /// The limits to enforce.
    pub limits: Limits,
    /// Cancels the invocation from another thread or task.
    pub cancel: CancelToken,
    /// Receives progress reports while the job runs.
    pub progress: Option<ProgressSink>,
    /// The job's prerequisites, resolved. A component reads them through
    /// the `dependencies` host function; a command module gets them on
    /// stdin, in the envelope `{"input": ..., "dependencies": {...}}` (see
    /// [`Invocation::stdin`]).
    pub dependencies: Vec<Dependency>,
    /// What the job may reach beyond its sandbox: HTTP origins, secrets,
    /// configuration (none by default).
    pub capabilities: std::sync::Arc<crate::grants::Capabilities>,
}

/// A resolved prerequisite of the job (`dependency` in the WIT).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    /// The name the job knows it by.
    pub name: String,
    /// Its job id.
    pub job: i64,
    /// How it ended.
    pub state: DependencyState,
    /// Its output (JSON text), when it completed.
    pub output: Option<Vec<u8>>,
    /// Why it failed or was cancelled, when it did not complete.
    pub error: Option<String>,
}

/// How a prerequisite ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DependencyState {
    /// Completed, with an output.
    Completed,
    /// Failed (the dependent runs anyway).
    Failed,
    /// Cancelled (the dependent runs anyway).
    Cancelled,
}

impl DependencyState {
    /// Its name in the WIT and in the command envelope.
    pub fn as_str(self) -> &'static str {
        match self {
            DependencyState::Completed => "completed",
            DependencyState::Failed => "failed",
            DependencyState::Cancelled => "cancelled",
        }
    }
}

impl Invocation {
    /// An invocation with default info, default limits and no observer.
    pub fn new(input: impl Into<Vec<u8>>) -> Self {
        Invocation {
            info: JobInfo::default(),
            input: input.into(),
            limits: Limits::default(),
            cancel: CancelToken::new(),
            progress: None,
            dependencies: Vec::new(),
            capabilities: crate::grants::Capabilities::none(),
        }
    }

    /// Replaces the prerequisites.
    pub fn with_dependencies(mut self, dependencies: Vec<Dependency>) -> Self {
        self.dependencies = dependencies;
        self
    }

    /// What a command module reads on stdin: the input as it is for a job
    /// without prerequisites; otherwise (the input being JSON) the
    /// envelope `{"input": <input>, "dependencies": {"<name>": {"job":
    /// <id>, "state": "completed", "output": <output or null>, "error":
    /// <message or null>}, ...}}`.
    pub fn stdin(&self) -> Vec<u8> {
        if self.dependencies.is_empty() {
            return self.input.clone();
        }
        let json = |bytes: &[u8]| {
            if bytes.is_empty() {
                b"null".to_vec()
            } else {
                bytes.to_vec()
            }
        };
        let mut out = b"{\"input\":".to_vec();
        out.extend(json(&self.input));
        out.extend(b",\"dependencies\":{");
        for (i, dependency) in self.dependencies.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let name = serde_json::to_string(&dependency.name).expect("a string serializes");
            out.extend(name.as_bytes());
            out.extend(
                format!(
                    ":{{\"job\":{},\"state\":\"{}\",\"output\":",
                    dependency.job,
                    dependency.state.as_str()
                )
                .as_bytes(),
            );
            match &dependency.output {
                Some(output) => out.extend(json(output)),
                None => out.extend(b"null"),
            }
            out.extend(b",\"error\":");
            let error = serde_json::to_string(&dependency.error).expect("a string serializes");
            out.extend(error.as_bytes());
            out.push(b'}');
        }
        out.extend(b"}}");
        out
    }

    /// Replaces the limits.
    pub fn with_limits(mut self, limits: Limits) -> Self {
        self.limits = limits;
        self
    }
}

/// The host failed to run an invocation. Guest misbehaviour is never an
/// `Error`: it is a [`Report`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Every sandbox slot is in use: the job should be retried later without
    /// spending an attempt.
    #[error("no sandbox slot free: {0}")]
    Capacity(String),
    /// The engine could not be configured.
    #[error("engine configuration failed: {0}")]
    Config(String),
    /// Anything else that went wrong in the host.
    #[error("host failure while running job: {0}")]
    Host(String),
}

/// The wasm engine: configuration, linkers, compiled modules and the epoch
/// ticker. Cheap to clone; all clones share one cache.
#[derive(Clone)]
pub struct Engine {
    inner: Arc<Inner>,
}

struct Inner {
    wasmtime: wasmtime::Engine,
    config: EngineConfig,
    linkers: state::Linkers,
    modules: Mutex<HashMap<blake3::Hash, Module>>,
    artifacts: Option<artifacts::ArtifactCache>,
    compiles: Arc<compiles::Compiles>,
    _ticker: epoch::Ticker,
}

impl Engine {
    /// Creates an engine. Reserves the instance pool sized from
    /// `config.concurrency`, falling back to on-demand allocation (with a
    /// warning) when the address space cannot be reserved.
    pub fn new(config: EngineConfig) -> Result<Self, Error> {
        let wasmtime = config::build_engine(&config)?;
        let linkers = state::Linkers::new(&wasmtime)?;
        let artifacts = match &config.cache_dir {
            Some(dir) => Some(
                artifacts::ArtifactCache::open(dir, &wasmtime)
                    .map_err(|e| Error::Config(format!("artifact cache {}: {e}", dir.display())))?,
            ),
            None => None,
        };
        let ticker = epoch::Ticker::start(wasmtime.clone());
        let compiles = compiles::Compiles::new(config.max_concurrent_compiles);
        Ok(Engine {
            inner: Arc::new(Inner {
                wasmtime,
                config,
                linkers,
                modules: Mutex::new(HashMap::new()),
                artifacts,
                compiles,
                _ticker: ticker,
            }),
        })
    }

    /// The configuration the engine was built with.
    pub fn config(&self) -> &EngineConfig {
        &self.inner.config
    }

    /// Validates and compiles `bytes`, or returns the module already loaded
    /// with the same hash, waiting up to the compile timeout for a compile
    /// slot. Compiling is CPU-bound and may take seconds: call this off the
    /// async runtime (e.g. in `spawn_blocking`).
    pub fn load(&self, bytes: &[u8]) -> Result<Module, LoadError> {
        self.load_with(bytes, Admission::Wait(self.inner.config.compile_timeout))
    }

    /// [`load`](Self::load), taking a compile slot as `admission` says:
    /// [`LoadError::Busy`] when none is free in time. Loads of the same
    /// bytes at the same time compile once. The compiled artifact is
    /// cached on disk only for a module the engine accepts.
    pub fn load_with(&self, bytes: &[u8], admission: Admission) -> Result<Module, LoadError> {
        load::load(self, bytes, admission)
    }

    /// Compiles finished since the engine started (cache hits and loads of
    /// a module already loaded do not compile).
    pub fn compiles_finished(&self) -> u64 {
        self.inner.compiles.compiled()
    }

    /// Compiles running now, counting ones whose load gave up on the
    /// timeout but whose compiler thread has not finished.
    pub fn compiles_running(&self) -> usize {
        self.inner.compiles.running()
    }

    /// Takes a compile slot as a compile would, until the slot is dropped:
    /// for tests of what the host does when every slot is busy.
    #[doc(hidden)]
    pub fn occupy_compile_slot(&self) -> Option<CompileSlot> {
        self.inner.compiles.slot(Admission::Refuse).ok()
    }

    /// The module with this hash, if it is loaded.
    pub fn get(&self, hash: &blake3::Hash) -> Option<Module> {
        self.inner
            .modules
            .lock()
            .expect("module map")
            .get(hash)
            .cloned()
    }

    /// Forgets a module: the loaded form and its compiled artifacts on
    /// disk (the module was deleted).
    pub fn unload(&self, hash: &blake3::Hash) {
        self.inner.modules.lock().expect("module map").remove(hash);
        if let Some(cache) = &self.inner.artifacts {
            cache.remove(hash);
        }
    }

    /// Deletes the cached artifacts that no module in `keep` (hex hashes)
    /// needs: those of deleted modules, of another engine configuration or
    /// wasmtime version, and temporary files of an interrupted write.
    /// Returns how many files were deleted.
    pub fn collect_artifacts(&self, keep: &std::collections::HashSet<String>) -> usize {
        match &self.inner.artifacts {
            Some(cache) => cache.sweep(keep),
            None => 0,
        }
    }

    /// Runs one invocation in a fresh instance and reports what happened.
    ///
    /// The returned future executes guest code when polled. Drive it from a
    /// runtime or thread dedicated to guests: guest code runs for up to one
    /// epoch tick (10 ms) between yields. It is cancel-safe: dropping it
    /// stops the guest.
    pub async fn execute(&self, module: &Module, invocation: Invocation) -> Result<Report, Error> {
        run::execute(self, module, invocation).await
    }
}

//! Per-invocation host state (the `T` of `Store<T>`) and the linkers that
//! give guests their imports.

use super::Error;
use super::ProgressSink;
use super::bindings::Job;
use super::cancel::CancelToken;
use super::host_impl::{FollowUps, LogBook};
use super::limiter::MemoryLimiter;
use super::outbound::{Log, Outbound};
use super::stdio::Capture;
use crate::grants::Capabilities;
use crate::limits::Limits;
use crate::report::Progress;
use std::sync::Arc;
use std::time::Instant;
use wasmtime::component::{HasSelf, ResourceTable};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};
use wasmtime_wasi_http::{WasiHttpCtx, WasiHttpCtxView, WasiHttpView};

/// What every invocation tracks, whatever the module kind.
pub struct RunState {
    pub limiter: MemoryLimiter,
    pub logs: LogBook,
    pub progress: Option<Progress>,
    pub progress_sink: Option<ProgressSink>,
    pub stdout: Capture,
    pub stderr: Capture,
    pub cancel: CancelToken,
    pub deadline: Instant,
    pub started: Instant,
    pub dependencies: Vec<super::Dependency>,
    pub follow_ups: FollowUps,
    /// What the job may reach: secrets and configuration (read here), HTTP
    /// origins (checked by the component's [`Outbound`] hooks).
    pub capabilities: Arc<Capabilities>,
    /// Its HTTP requests, for the report.
    pub requests: Log,
}

impl RunState {
    pub fn new(
        limits: &Limits,
        cancel: CancelToken,
        progress_sink: Option<ProgressSink>,
        stdout: Capture,
        stderr: Capture,
        memory_limit: u64,
        max_follow_ups: u32,
    ) -> Self {
        let started = Instant::now();
        RunState {
            limiter: MemoryLimiter::new(memory_limit),
            logs: LogBook::new(limits.log_records, limits.log_bytes, started),
            progress: None,
            progress_sink,
            stdout,
            stderr,
            cancel,
            deadline: started + limits.timeout(),
            started,
            dependencies: Vec::new(),
            // The follow-ups' inputs come back to the host as the output
            // does, so the output limit bounds them too.
            follow_ups: FollowUps::new(max_follow_ups, limits.output_bytes),
            capabilities: Capabilities::none(),
            requests: Log::default(),
        }
    }
}

/// Gives generic code access to the [`RunState`] of either store type.
pub trait HasRun: Send + 'static {
    fn run(&mut self) -> &mut RunState;
}

/// Store data for a component implementing the job world.
pub struct ComponentState {
    pub run: RunState,
    pub wasi: WasiCtx,
    pub table: ResourceTable,
    pub http: WasiHttpCtx,
    pub outbound: Outbound,
}

impl WasiHttpView for ComponentState {
    fn http(&mut self) -> WasiHttpCtxView<'_> {
        WasiHttpCtxView {
            ctx: &mut self.http,
            table: &mut self.table,
            hooks: &mut self.outbound,
        }
    }
}

impl WasiView for ComponentState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl HasRun for ComponentState {
    fn run(&mut self) -> &mut RunState {
        &mut self.run
    }
}

/// Store data for a WASI preview 1 command module.
pub struct CommandState {
    pub run: RunState,
    pub wasi: WasiP1Ctx,
}

impl HasRun for CommandState {
    fn run(&mut self) -> &mut RunState {
        &mut self.run
    }
}

/// The imports the host provides: WASI (deny-by-default context, built per
/// invocation) plus the job world's `host` interface for components.
pub struct Linkers {
    pub component: wasmtime::component::Linker<ComponentState>,
    pub command: wasmtime::Linker<CommandState>,
}

impl Linkers {
    pub fn new(engine: &wasmtime::Engine) -> Result<Self, Error> {
        let link = |e: wasmtime::Error| Error::Config(format!("linking host functions: {e:#}"));
        let mut component = wasmtime::component::Linker::new(engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut component).map_err(link)?;
        wasmtime_wasi_http::p2::add_only_http_to_linker_async(&mut component).map_err(link)?;
        Job::add_to_linker::<ComponentState, HasSelf<ComponentState>>(&mut component, |s| s)
            .map_err(link)?;
        let mut command = wasmtime::Linker::new(engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut command, |s: &mut CommandState| &mut s.wasi)
            .map_err(link)?;
        Ok(Linkers { component, command })
    }
}

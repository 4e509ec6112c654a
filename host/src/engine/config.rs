//! Engine configuration and how it maps onto `wasmtime::Config`.

use super::Error;
use std::path::PathBuf;
use std::time::Duration;

/// Default number of invocations that may run at once: the pool is sized
/// for this many instances.
pub const DEFAULT_CONCURRENCY: u32 = 16;
/// Default ceiling on any job's memory limit: 1 GiB. Each pool slot is sized
/// to it, so it bounds what a job may ask for.
pub const DEFAULT_MAX_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;
/// Default compile time limit: 30 s. Hostile modules can make Cranelift
/// spend minutes; a limit keeps a worker from being tied up by one upload.
pub const DEFAULT_COMPILE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default maximum module size: 64 MiB, larger than any reasonable job and
/// small enough to compile in seconds.
pub const DEFAULT_MAX_MODULE_BYTES: u64 = 64 * 1024 * 1024;
/// Most follow-up jobs one attempt may submit, by default.
pub const DEFAULT_MAX_FOLLOW_UPS: u32 = 100;
/// Core instances budgeted per job: a Rust `wasm32-wasip2` component holds
/// several (the program plus the WASI shims).
const CORE_INSTANCES_PER_JOB: u32 = 8;
/// Linear memories budgeted per job.
const MEMORIES_PER_JOB: u32 = 2;
/// Tables budgeted per job.
const TABLES_PER_JOB: u32 = 8;

/// How the engine is set up. Every field has a documented default.
#[derive(Clone, Debug)]
pub struct EngineConfig {
    /// Maximum number of invocations running at once.
    pub concurrency: u32,
    /// Ceiling on any invocation's memory limit, in bytes.
    pub max_memory_bytes: u64,
    /// Meter fuel. Off, fuel limits are not enforced and reports carry no
    /// fuel figure; on, each invocation is stopped when its budget runs out.
    pub fuel_metering: bool,
    /// Where compiled artifacts are kept between runs; `None` keeps them in
    /// memory only.
    pub cache_dir: Option<PathBuf>,
    /// How long compiling one module may take.
    pub compile_timeout: Duration,
    /// Largest module accepted, in bytes.
    pub max_module_bytes: u64,
    /// Use the pooling instance allocator (falls back to on-demand when the
    /// address space cannot be reserved).
    pub pooling: bool,
    /// Most follow-up jobs one attempt may submit.
    pub max_follow_ups: u32,
    /// Bounds on components' outbound HTTP requests.
    pub http: super::HttpLimits,
    /// Most modules compiling at once (uploads past it are refused as
    /// busy; loads for jobs wait); the number of cores by default.
    pub max_concurrent_compiles: usize,
}

/// The default bound on concurrent compiles: one per core (Cranelift is
/// CPU-bound; more only queue for the same cores).
pub fn default_max_concurrent_compiles() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            concurrency: DEFAULT_CONCURRENCY,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            fuel_metering: true,
            cache_dir: None,
            compile_timeout: DEFAULT_COMPILE_TIMEOUT,
            max_module_bytes: DEFAULT_MAX_MODULE_BYTES,
            pooling: true,
            max_follow_ups: DEFAULT_MAX_FOLLOW_UPS,
            http: super::HttpLimits::default(),
            max_concurrent_compiles: default_max_concurrent_compiles(),
        }
    }
}

/// Builds the wasmtime engine, trying the pooling allocator first.
pub(super) fn build_engine(config: &EngineConfig) -> Result<wasmtime::Engine, Error> {
    if config.concurrency == 0 {
        return Err(Error::Config("concurrency must be at least 1".to_owned()));
    }
    if config.pooling {
        let mut wasm = base_config(config);
        wasm.allocation_strategy(wasmtime::InstanceAllocationStrategy::Pooling(pool_config(
            config,
        )));
        match wasmtime::Engine::new(&wasm) {
            Ok(engine) => return Ok(engine),
            Err(e) => tracing::warn!(
                error = %e,
                "cannot reserve the instance pool; falling back to on-demand allocation"
            ),
        }
    }
    wasmtime::Engine::new(&base_config(config)).map_err(|e| Error::Config(format!("{e:#}")))
}

fn base_config(config: &EngineConfig) -> wasmtime::Config {
    let mut wasm = wasmtime::Config::new();
    // Fuel is the deterministic budget and the "fuel consumed" figure.
    wasm.consume_fuel(config.fuel_metering);
    // Epochs give wall-clock timeouts and cancellation of running guests.
    wasm.epoch_interruption(true);
    // Backtraces with function names make trap reports useful; 32 frames
    // show a recursion without making traps expensive to report.
    wasm.wasm_backtrace_max_frames(std::num::NonZeroUsize::new(32));
    wasm.wasm_backtrace_details(wasmtime::WasmBacktraceDetails::Disable);
    // Jobs do not share memory between threads.
    wasm.shared_memory(false);
    wasm.parallel_compilation(true);
    // Copy-on-write heap images make a fresh instance cheap.
    wasm.memory_init_cow(true);
    wasm
}

fn pool_config(config: &EngineConfig) -> wasmtime::PoolingAllocationConfig {
    let n = config.concurrency;
    let mut pool = wasmtime::PoolingAllocationConfig::new();
    pool.total_component_instances(n)
        .total_core_instances(n.saturating_mul(CORE_INSTANCES_PER_JOB))
        .total_memories(n.saturating_mul(MEMORIES_PER_JOB))
        .total_tables(n.saturating_mul(TABLES_PER_JOB))
        .total_stacks(n)
        .max_core_instances_per_component(CORE_INSTANCES_PER_JOB)
        .max_memories_per_component(MEMORIES_PER_JOB)
        .max_tables_per_component(TABLES_PER_JOB)
        .max_memory_size(usize::try_from(config.max_memory_bytes).unwrap_or(usize::MAX))
        // Keeping a little memory resident avoids an madvise per job for
        // small guests, at a bounded RSS cost. Without PAGEMAP_SCAN the
        // whole budget is memset per job, so larger values cost more than
        // they save (measured: 2 MiB doubled the component overhead); with
        // it, 1 MiB measured the same as 64 KiB for small jobs.
        .linear_memory_keep_resident(64 * 1024)
        .table_keep_resident(16 * 1024)
        // Batching decommits amortises the TLB shootdown each madvise costs
        // (measured: ~2 µs less per component invocation).
        // With Linux's PAGEMAP_SCAN (6.7+), a slot is reset by restoring
        // only the pages the job dirtied, within the resident budget: no
        // madvise, so no TLB shootdown across the host's threads, and no
        // page faults for the next job. Measured: component overhead 19 µs
        // to 8 µs, pool throughput 2.6x. Older kernels fall back to madvise.
        .pagemap_scan(wasmtime::Enabled::Auto)
        .decommit_batch_size(n as usize);
    pool
}

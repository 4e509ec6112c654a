//! Loading a module: detect its kind, check it statically, compile it once
//! per hash (with a time limit), cache the artifact, and prepare it for
//! instantiation against the host's imports.

use super::Engine;
use super::bindings::JobPre;
use super::compiles::Admission;
use super::state::{CommandState, ComponentState};
use crate::report::ModuleKind;
use std::sync::Arc;
use std::sync::mpsc;
use std::time::Duration;

/// Default page size of a linear memory.
const WASM_PAGE: u64 = 64 * 1024;

/// A module ready to run: validated, compiled and linked. Cheap to clone.
#[derive(Clone)]
pub struct Module {
    hash: blake3::Hash,
    kind: ModuleKind,
    size: u64,
    initial_memory: u64,
    from_cache: bool,
    pub(super) prepared: Arc<Prepared>,
}

pub(super) enum Prepared {
    Component(JobPre<ComponentState>),
    Command(wasmtime::InstancePre<CommandState>),
}

impl Module {
    /// The blake3 hash of the module's bytes.
    pub fn hash(&self) -> blake3::Hash {
        self.hash
    }

    /// Component or command module.
    pub fn kind(&self) -> ModuleKind {
        self.kind
    }

    /// Size of the module's bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Total initial linear memory, in bytes, summed over all memories.
    pub fn initial_memory(&self) -> u64 {
        self.initial_memory
    }

    /// Whether the compiled code came from the on-disk artifact cache
    /// rather than a fresh compile.
    pub fn from_artifact_cache(&self) -> bool {
        self.from_cache
    }
}

impl std::fmt::Debug for Module {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Module")
            .field("hash", &self.hash.to_hex())
            .field("kind", &self.kind)
            .field("size", &self.size)
            .finish()
    }
}

/// Why a module was refused. Each message is one line naming the problem.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// More bytes than the configured maximum.
    #[error("module is {size} bytes, larger than the limit of {max} bytes")]
    TooLarge {
        /// The module's size.
        size: u64,
        /// The configured maximum.
        max: u64,
    },
    /// Not a WebAssembly binary at all.
    #[error("not a WebAssembly module: {0}")]
    NotWasm(String),
    /// A precompiled native artifact, which the host never accepts.
    #[error("precompiled native artifacts are not accepted: upload the .wasm module instead")]
    NativeArtifact,
    /// WebAssembly that does not validate or compile.
    #[error("invalid WebAssembly: {0}")]
    Invalid(String),
    /// A component that does not implement the job world.
    #[error("component does not implement the wasmjob:job world: {0}")]
    NotAJob(String),
    /// A core module that is not a WASI command.
    #[error("core module is not a WASI command: {0}")]
    NotACommand(String),
    /// An import the host does not provide.
    #[error("module imports something the host does not provide: {0}")]
    UnknownImport(String),
    /// Initial memory larger than the memory limit.
    #[error("initial memory of {initial} bytes exceeds the memory limit of {limit} bytes")]
    InitialMemory {
        /// Total initial memory of the module.
        initial: u64,
        /// The configured limit.
        limit: u64,
    },
    /// Compiling took longer than the configured limit.
    #[error("compiling the module took longer than the limit of {0:?}")]
    CompileTimeout(Duration),
    /// Every compile slot was busy (`engine.max_concurrent_compiles`).
    #[error(
        "the host is already compiling as many modules as it allows ({0} at once); try again shortly"
    )]
    Busy(usize),
}

impl LoadError {
    /// Whether loading the same bytes again could succeed: a compile that
    /// ran out of time (under load it may not next time). Every other
    /// refusal is about the bytes and will stand.
    pub fn is_transient(&self) -> bool {
        matches!(self, LoadError::CompileTimeout(_) | LoadError::Busy(_))
    }
}

/// Loads `bytes` into `engine` (see [`Engine::load_with`]).
pub(super) fn load(
    engine: &Engine,
    bytes: &[u8],
    admission: Admission,
) -> Result<Module, LoadError> {
    let inner = &engine.inner;
    let size = bytes.len() as u64;
    if size > inner.config.max_module_bytes {
        return Err(LoadError::TooLarge {
            size,
            max: inner.config.max_module_bytes,
        });
    }
    if wasmtime::Engine::detect_precompiled(bytes).is_some() {
        return Err(LoadError::NativeArtifact);
    }
    let kind = detect_kind(bytes)?;
    let hash = blake3::hash(bytes);
    if let Some(module) = engine.get(&hash) {
        return Ok(module);
    }
    let facts = inspect(bytes, kind)?;
    let limit = inner.config.max_memory_bytes;
    if facts.initial_memory > limit {
        return Err(LoadError::InitialMemory {
            initial: facts.initial_memory,
            limit,
        });
    }
    if kind == ModuleKind::Command && !facts.exports_start {
        return Err(LoadError::NotACommand(
            "it does not export a `_start` function".to_owned(),
        ));
    }
    // One load per hash at a time: a second upload of the same bytes waits
    // for the first and finds its module.
    let timeout = inner.config.compile_timeout;
    let Some(_flight) = inner.compiles.flight(hash, timeout) else {
        return Err(LoadError::CompileTimeout(timeout));
    };
    if let Some(module) = engine.get(&hash) {
        return Ok(module);
    }
    let mut from_cache = false;
    let prepared = match kind {
        ModuleKind::Component => Prepared::Component(prepare_component(
            engine,
            &hash,
            bytes,
            admission,
            &mut from_cache,
        )?),
        ModuleKind::Command => Prepared::Command(prepare_command(
            engine,
            &hash,
            bytes,
            admission,
            &mut from_cache,
        )?),
    };
    let module = Module {
        hash,
        kind,
        size,
        initial_memory: facts.initial_memory,
        from_cache,
        prepared: Arc::new(prepared),
    };
    inner
        .modules
        .lock()
        .expect("module map")
        .insert(hash, module.clone());
    Ok(module)
}

fn detect_kind(bytes: &[u8]) -> Result<ModuleKind, LoadError> {
    if !bytes.starts_with(b"\0asm") {
        return Err(LoadError::NotWasm(
            "the bytes do not start with the wasm magic number `\\0asm`".to_owned(),
        ));
    }
    if wasmparser::Parser::is_component(bytes) {
        Ok(ModuleKind::Component)
    } else if wasmparser::Parser::is_core_wasm(bytes) {
        Ok(ModuleKind::Command)
    } else {
        Err(LoadError::NotWasm(
            "unsupported wasm version or layer in the header".to_owned(),
        ))
    }
}

/// What a static pass over the bytes tells before compiling.
struct Facts {
    initial_memory: u64,
    exports_start: bool,
}

fn inspect(bytes: &[u8], kind: ModuleKind) -> Result<Facts, LoadError> {
    let mut facts = Facts {
        initial_memory: 0,
        exports_start: false,
    };
    for payload in wasmparser::Parser::new(0).parse_all(bytes) {
        let payload = payload.map_err(|e| LoadError::Invalid(e.to_string()))?;
        match payload {
            wasmparser::Payload::MemorySection(reader) => {
                for memory in reader {
                    let memory = memory.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    let page = memory.page_size_log2.map_or(WASM_PAGE, |log2| 1 << log2);
                    facts.initial_memory = facts
                        .initial_memory
                        .saturating_add(memory.initial.saturating_mul(page));
                }
            }
            wasmparser::Payload::ExportSection(reader) if kind == ModuleKind::Command => {
                for export in reader {
                    let export = export.map_err(|e| LoadError::Invalid(e.to_string()))?;
                    if export.name == "_start" && export.kind == wasmparser::ExternalKind::Func {
                        facts.exports_start = true;
                    }
                }
            }
            _ => {}
        }
    }
    Ok(facts)
}

fn prepare_component(
    engine: &Engine,
    hash: &blake3::Hash,
    bytes: &[u8],
    admission: Admission,
    from_cache: &mut bool,
) -> Result<JobPre<ComponentState>, LoadError> {
    let inner = &engine.inner;
    let cached = inner
        .artifacts
        .as_ref()
        .and_then(|cache| cache.component(&inner.wasmtime, hash));
    *from_cache = cached.is_some();
    let component = match cached {
        Some(component) => component,
        None => {
            let wasm = inner.wasmtime.clone();
            compile_with_timeout(engine, bytes, admission, move |bytes| {
                wasmtime::component::Component::new(&wasm, bytes)
            })?
        }
    };
    check_job_exports(&inner.wasmtime, &component)?;
    let pre = inner
        .linkers
        .component
        .instantiate_pre(&component)
        .map_err(|e| LoadError::UnknownImport(root_message(&e)))?;
    let pre = JobPre::new(pre).map_err(|e| LoadError::NotAJob(root_message(&e)))?;
    // Only an accepted module's artifact is kept.
    if !*from_cache {
        persist(engine, hash, ModuleKind::Component, component.serialize());
    }
    Ok(pre)
}

fn prepare_command(
    engine: &Engine,
    hash: &blake3::Hash,
    bytes: &[u8],
    admission: Admission,
    from_cache: &mut bool,
) -> Result<wasmtime::InstancePre<CommandState>, LoadError> {
    let inner = &engine.inner;
    let cached = inner
        .artifacts
        .as_ref()
        .and_then(|cache| cache.module(&inner.wasmtime, hash));
    *from_cache = cached.is_some();
    let module = match cached {
        Some(module) => module,
        None => {
            let wasm = inner.wasmtime.clone();
            compile_with_timeout(engine, bytes, admission, move |bytes| {
                wasmtime::Module::new(&wasm, bytes)
            })?
        }
    };
    let pre = inner
        .linkers
        .command
        .instantiate_pre(&module)
        .map_err(|e| LoadError::UnknownImport(root_message(&e)))?;
    // Only an accepted module's artifact is kept.
    if !*from_cache {
        persist(engine, hash, ModuleKind::Command, module.serialize());
    }
    Ok(pre)
}

/// Says which part of the job world is missing, before the bindings'
/// type check gives a less specific message.
fn check_job_exports(
    engine: &wasmtime::Engine,
    component: &wasmtime::component::Component,
) -> Result<(), LoadError> {
    let ty = component.component_type();
    let exports: Vec<String> = ty
        .exports(engine)
        .map(|(name, _)| name.to_owned())
        .collect();
    if exports.iter().any(|name| name == "run") {
        return Ok(());
    }
    let found = if exports.is_empty() {
        "it exports nothing".to_owned()
    } else {
        format!("it exports {}", exports.join(", "))
    };
    Err(LoadError::NotAJob(format!(
        "missing export `run: func(info: job-info, input: list<u8>) -> result<list<u8>, job-error>`; {found}"
    )))
}

/// Compiles in a compile slot (taken as `admission` says), on a separate
/// thread so a pathological module cannot hold the caller past the
/// compile timeout. The thread cannot be killed: on timeout it runs on to
/// completion in the background, still holding its slot (so runaway
/// compiles stay bounded), and its result is discarded.
fn compile_with_timeout<T: Send + 'static>(
    engine: &Engine,
    bytes: &[u8],
    admission: Admission,
    compile: impl FnOnce(&[u8]) -> wasmtime::Result<T> + Send + 'static,
) -> Result<T, LoadError> {
    let inner = &engine.inner;
    let timeout = inner.config.compile_timeout;
    let slot = inner
        .compiles
        .slot(admission)
        .map_err(|_| LoadError::Busy(inner.config.max_concurrent_compiles))?;
    let (tx, rx) = mpsc::channel();
    let bytes = bytes.to_vec();
    std::thread::Builder::new()
        .name("wasmjob-compile".to_owned())
        .spawn(move || {
            let result = compile(&bytes);
            drop(slot);
            let _ = tx.send(result);
        })
        .map_err(|e| LoadError::Invalid(format!("cannot start compiler thread: {e}")))?;
    match rx.recv_timeout(timeout) {
        Ok(result) => result.map_err(|e| LoadError::Invalid(root_message(&e))),
        Err(mpsc::RecvTimeoutError::Timeout) => Err(LoadError::CompileTimeout(timeout)),
        Err(mpsc::RecvTimeoutError::Disconnected) => Err(LoadError::Invalid(
            "the compiler thread panicked".to_owned(),
        )),
    }
}

fn persist(
    engine: &Engine,
    hash: &blake3::Hash,
    kind: ModuleKind,
    artifact: wasmtime::Result<Vec<u8>>,
) {
    let Some(cache) = &engine.inner.artifacts else {
        return;
    };
    let result = artifact
        .map_err(|e| e.to_string())
        .and_then(|bytes| cache.store(hash, kind, &bytes).map_err(|e| e.to_string()));
    if let Err(error) = result {
        // Not fatal: the module is compiled in memory; a restart recompiles.
        tracing::warn!(module = %hash.to_hex(), %error, "cannot cache compiled artifact");
    }
}

/// The error chain as one line, most specific cause last.
fn root_message(error: &wasmtime::Error) -> String {
    let parts: Vec<String> = error.chain().map(|e| e.to_string()).collect();
    parts.join(": ")
}

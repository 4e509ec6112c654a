//! Running one invocation in a fresh instance.

use super::bindings;
use super::classify::{self, Ended, Interrupted, Observed};
use super::load::{Module, Prepared};
use super::outbound::Outbound;
use super::redact::Redactor;
use super::state::{CommandState, ComponentState, HasRun, RunState};
use super::stdio::{Capture, Keep};
use super::{CancelToken, Engine, Error, Invocation};
use crate::json::Json;
use crate::limits::Limits;
use crate::report::ModuleKind;
use crate::report::{FuelUsage, MemoryUsage, Report, Status, StdioTail};
use std::future::Future;
use std::time::Instant;
use wasmtime::{Store, UpdateDeadline};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::p2::pipe::MemoryInputPipe;

/// Runs `invocation` of `module` (see [`Engine::execute`]).
pub(super) async fn execute(
    engine: &Engine,
    module: &Module,
    invocation: Invocation,
) -> Result<Report, Error> {
    let inner = &engine.inner;
    let mut limits = invocation.limits;
    // A job cannot have more memory than a sandbox slot holds. Admission
    // refuses larger limits (the slot size is the memory ceiling), so only
    // a job stored before the operator lowered the ceiling gets here with
    // more; it runs with the slot's size, and its report says so.
    limits.memory_bytes = limits.memory_bytes.min(inner.config.max_memory_bytes);
    let stdout = match module.kind() {
        // A command module's stdout is its output: keep the head, one byte
        // past the limit so an overflow is visible.
        ModuleKind::Command => Capture::new(Keep::Head, limits.output_bytes.saturating_add(1)),
        ModuleKind::Component => Capture::new(Keep::Tail, limits.stdio_tail_bytes),
    };
    let stderr = Capture::new(Keep::Tail, limits.stdio_tail_bytes);
    let run = RunState::new(
        &limits,
        invocation.cancel.clone(),
        invocation.progress.clone(),
        stdout.clone(),
        stderr.clone(),
        limits.memory_bytes,
        inner.config.max_follow_ups,
    );
    let fuel = inner.config.fuel_metering;
    match &*module.prepared {
        Prepared::Component(pre) => {
            let wasi = WasiCtxBuilder::new().stdout(stdout).stderr(stderr).build();
            let mut run = run;
            run.dependencies = invocation.dependencies.clone();
            run.capabilities = invocation.capabilities.clone();
            let outbound = Outbound::new(
                invocation.capabilities.clone(),
                inner.config.http,
                run.requests.clone(),
            );
            let state = ComponentState {
                run,
                wasi,
                table: wasmtime::component::ResourceTable::new(),
                http: wasmtime_wasi_http::WasiHttpCtx::new(),
                outbound,
            };
            let mut store = new_store(&inner.wasmtime, state, &limits, fuel)?;
            let info = bindings::JobInfo {
                id: invocation.info.id.clone(),
                attempt: invocation.info.attempt,
                max_attempts: invocation.info.max_attempts,
                priority: invocation.info.priority,
            };
            let input = invocation.input;
            let ended = race(&invocation.cancel, store.data().run.deadline, async {
                let job = pre.instantiate_async(&mut store).await?;
                job.call_run(&mut store, &info, &input).await
            })
            .await;
            let ended = match ended {
                Ok(Ok(output)) => Ended::Output(output),
                // `exit(0)` ends the program successfully: a component that
                // calls it returned no output, which is `null`.
                Err(Ended::Trapped(error)) if exited_successfully(&error) => {
                    Ended::Output(b"null".to_vec())
                }
                Ok(Err(bindings::JobError::Retryable(message))) => Ended::GuestError {
                    fatal: false,
                    message,
                },
                Ok(Err(bindings::JobError::Fatal(message))) => Ended::GuestError {
                    fatal: true,
                    message,
                },
                Err(ended) => ended,
            };
            finish(module, &limits, fuel, store, ended)
        }
        Prepared::Command(pre) => {
            let wasi = WasiCtxBuilder::new()
                .stdin(MemoryInputPipe::new(invocation.stdin()))
                .stdout(stdout.clone())
                .stderr(stderr)
                .arg(module.hash().to_hex().as_str())
                .build_p1();
            let state = CommandState { run, wasi };
            let mut store = new_store(&inner.wasmtime, state, &limits, fuel)?;
            let ended = race(&invocation.cancel, store.data().run.deadline, async {
                let instance = pre.instantiate_async(&mut store).await?;
                let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                start.call_async(&mut store, ()).await
            })
            .await;
            let ended = match ended {
                Ok(()) => Ended::Output(stdout.contents()),
                Err(Ended::Trapped(error)) if exited_successfully(&error) => {
                    Ended::Output(stdout.contents())
                }
                Err(ended) => ended,
            };
            finish(module, &limits, fuel, store, ended)
        }
    }
}

/// Whether the guest ended by calling `exit(0)`.
fn exited_successfully(error: &wasmtime::Error) -> bool {
    error
        .downcast_ref::<wasmtime_wasi::I32Exit>()
        .is_some_and(|exit| exit.0 == 0)
}

/// A store with the invocation's limits: memory limiter, fuel, and an
/// epoch deadline that checks the cancel flag and the wall clock each tick.
fn new_store<T: HasRun>(
    engine: &wasmtime::Engine,
    state: T,
    limits: &Limits,
    fuel: bool,
) -> Result<Store<T>, Error> {
    let mut store = Store::new(engine, state);
    store.limiter(|s| &mut s.run().limiter);
    if fuel {
        store
            .set_fuel(limits.fuel)
            .map_err(|e| Error::Host(format!("setting fuel: {e}")))?;
    }
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(|mut ctx| {
        let run = ctx.data_mut().run();
        if run.cancel.is_cancelled() {
            return Err(wasmtime::Error::new(Interrupted::Cancelled));
        }
        if Instant::now() >= run.deadline {
            return Err(wasmtime::Error::new(Interrupted::TimedOut));
        }
        // Yield so other invocations sharing this thread make progress.
        Ok(UpdateDeadline::Yield(1))
    });
    Ok(store)
}

/// Runs `call` until it finishes, the token is cancelled or the deadline
/// passes. The epoch callback stops a guest running wasm; this stops one
/// waiting in a host call.
async fn race<R>(
    cancel: &CancelToken,
    deadline: Instant,
    call: impl Future<Output = wasmtime::Result<R>>,
) -> Result<R, Ended> {
    tokio::select! {
        biased;
        result = call => result.map_err(Ended::Trapped),
        () = cancel.cancelled() => Err(Ended::Cancelled),
        () = tokio::time::sleep_until(deadline.into()) => Err(Ended::TimedOut),
    }
}

fn finish<T: HasRun>(
    module: &Module,
    limits: &Limits,
    fuel: bool,
    mut store: Store<T>,
    ended: Ended,
) -> Result<Report, Error> {
    let remaining = if fuel { store.get_fuel().ok() } else { None };
    let run: &mut RunState = store.data_mut().run();
    let duration_us = run.started.elapsed().as_micros() as u64;
    let output_total = match module.kind() {
        ModuleKind::Command => run.stdout.total(),
        ModuleKind::Component => match &ended {
            Ended::Output(output) => output.len() as u64,
            _ => 0,
        },
    };
    let seen = Observed {
        memory_denied: run.limiter.denied(),
        memory_limit: limits.memory_bytes,
        fuel_limit: limits.fuel,
        timeout_ms: limits.timeout_ms,
        output_limit: limits.output_bytes,
        output_total,
    };
    let outcome = classify::classify(ended, &seen)?;
    let peak_bytes = run.limiter.peak();
    let progress = run.progress.take();
    let stdout = tail(&run.stdout, limits.stdio_tail_bytes);
    let stderr = tail(&run.stderr, limits.stdio_tail_bytes);
    let logs = std::mem::replace(
        &mut run.logs,
        super::host_impl::LogBook::new(0, 0, run.started),
    );
    let (logs, logs_dropped) = logs.into_parts();
    let follow_ups = std::mem::replace(&mut run.follow_ups, super::host_impl::FollowUps::new(0, 0));
    let (requests, requests_dropped) =
        std::mem::take(&mut *run.requests.lock().expect("request log")).into_parts();
    let (status, output, failure, follow_ups) = match outcome {
        Ok(output) => (
            Status::Success,
            Some(Json::from_output(&output)),
            None,
            follow_ups.into_list(),
        ),
        // A failed attempt leaves no follow-up behind.
        Err(failure) => (Status::Failure, None, Some(failure), Vec::new()),
    };
    let redactor = Redactor::new(run.capabilities.secrets.values());
    let mut report = Report {
        status,
        output,
        failure,
        module: module.hash().to_hex().to_string(),
        kind: module.kind(),
        limits: *limits,
        fuel: FuelUsage {
            consumed: remaining.map(|left| limits.fuel.saturating_sub(left)),
            limit: limits.fuel,
        },
        memory: MemoryUsage {
            peak_bytes,
            limit_bytes: limits.memory_bytes,
        },
        duration_us,
        logs,
        logs_dropped,
        progress,
        stdout,
        stderr,
        requests,
        requests_dropped,
        follow_ups,
    };
    if !redactor.is_empty() {
        redact(&redactor, &mut report);
    }
    Ok(report)
}

/// Takes every secret out of what the job wrote back.
fn redact(redactor: &Redactor, report: &mut Report) {
    let json = |value: &mut Json| {
        let text = redactor.text(value.as_str());
        if text != value.as_str() {
            // Still JSON when the secret stood inside a string; otherwise
            // the redacted text, as a string.
            *value = Json::parse_str(&text).unwrap_or_else(|_| {
                Json::parse_str(&serde_json::to_string(&text).unwrap_or_default())
                    .unwrap_or_else(|_| Json::null())
            });
        }
    };
    if let Some(output) = &mut report.output {
        json(output);
    }
    if let Some(failure) = &mut report.failure {
        redactor.apply(&mut failure.message);
    }
    for record in &mut report.logs {
        redactor.apply(&mut record.message);
    }
    if let Some(progress) = &mut report.progress {
        redactor.apply(&mut progress.note);
    }
    redactor.apply(&mut report.stdout.tail);
    redactor.apply(&mut report.stderr.tail);
    for request in &mut report.requests {
        redactor.apply(&mut request.url);
        if let Some(error) = &mut request.error {
            redactor.apply(error);
        }
    }
    for follow_up in &mut report.follow_ups {
        json(&mut follow_up.input);
    }
}

fn tail(capture: &Capture, max: u64) -> StdioTail {
    let bytes = capture.contents();
    let start = bytes
        .len()
        .saturating_sub(usize::try_from(max).unwrap_or(usize::MAX));
    StdioTail {
        total_bytes: capture.total(),
        tail: String::from_utf8_lossy(&bytes[start..]).into_owned(),
    }
}

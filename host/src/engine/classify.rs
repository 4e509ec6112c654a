//! Turning how an invocation ended into a report's outcome.
//!
//! The order matters and is the same for every module kind: a cancellation
//! wins (someone asked), then a refused memory growth (a guest that aborts
//! or loops after an allocation failure still ran out of memory), then an
//! exit code, fuel, the wall clock, stack overflow, other traps, and finally
//! the guest's own error value or its output.

use super::Error;
use super::host_impl::truncate;
use crate::limits::ERROR_MESSAGE_BYTES;
use crate::report::{Failure, FailureKind, Frame};

/// Why the host stopped a running guest from its epoch callback.
#[derive(Debug, thiserror::Error)]
pub enum Interrupted {
    /// The cancel token was set.
    #[error("cancelled")]
    Cancelled,
    /// The wall-clock deadline passed.
    #[error("timed out")]
    TimedOut,
}

/// How an invocation ended, before classification.
pub enum Ended {
    /// The guest produced output (a component returned `ok`, or a command
    /// module exited 0).
    Output(Vec<u8>),
    /// A component returned its `job-error`.
    GuestError { fatal: bool, message: String },
    /// Instantiation or the call failed: a trap, an exit, an interruption.
    Trapped(wasmtime::Error),
    /// The cancel token fired while the guest waited in a host call.
    Cancelled,
    /// The deadline passed while the guest waited in a host call.
    TimedOut,
}

/// What the host observed during the run that bears on classification.
pub struct Observed {
    pub memory_denied: Option<u64>,
    pub memory_limit: u64,
    pub fuel_limit: u64,
    pub timeout_ms: u64,
    pub output_limit: u64,
    pub output_total: u64,
}

/// Output on success, or the failure.
pub type Outcome = Result<Vec<u8>, Failure>;

/// Classifies `ended`. Returns `Err` only for host capacity problems.
pub fn classify(ended: Ended, seen: &Observed) -> Result<Outcome, Error> {
    if let Ended::Trapped(error) = &ended
        && let Some(e) = error.downcast_ref::<wasmtime::PoolConcurrencyLimitError>()
    {
        return Err(Error::Capacity(e.to_string()));
    }
    let cancelled = matches!(ended, Ended::Cancelled)
        || matches!(&ended, Ended::Trapped(e) if matches!(e.downcast_ref::<Interrupted>(), Some(Interrupted::Cancelled)));
    if cancelled {
        return Ok(Err(failure(
            FailureKind::Cancelled,
            "the job was cancelled while running".to_owned(),
        )));
    }
    if let Ended::Output(output) = ended {
        if seen.output_total > seen.output_limit {
            return Ok(Err(failure(
                FailureKind::OutputLimit,
                format!(
                    "output of {} bytes exceeds the limit of {} bytes",
                    seen.output_total, seen.output_limit
                ),
            )));
        }
        return Ok(Ok(output));
    }
    if let Some(wanted) = seen.memory_denied {
        let mut failure = failure(
            FailureKind::MemoryLimit,
            format!(
                "memory limit exceeded: the guest asked for {wanted} bytes in total, the limit is {} bytes",
                seen.memory_limit
            ),
        );
        if let Ended::Trapped(error) = &ended {
            add_trap_details(&mut failure, error);
        }
        return Ok(Err(failure));
    }
    Ok(Err(match ended {
        Ended::Output(_) | Ended::Cancelled => unreachable!("handled above"),
        Ended::TimedOut => timeout(seen),
        Ended::GuestError {
            fatal: true,
            message,
        } => guest_failure(FailureKind::FatalError, message),
        Ended::GuestError {
            fatal: false,
            message,
        } => guest_failure(FailureKind::GuestError, message),
        Ended::Trapped(error) => classify_error(&error, seen),
    }))
}

fn classify_error(error: &wasmtime::Error, seen: &Observed) -> Failure {
    if let Some(exit) = error.downcast_ref::<wasmtime_wasi::I32Exit>() {
        let mut f = failure(
            FailureKind::ExitCode,
            format!("the module exited with code {}", exit.0),
        );
        f.exit_code = Some(exit.0);
        return f;
    }
    if matches!(
        error.downcast_ref::<Interrupted>(),
        Some(Interrupted::TimedOut)
    ) {
        let mut f = timeout(seen);
        add_trap_details(&mut f, error);
        return f;
    }
    let trap = error.downcast_ref::<wasmtime::Trap>().copied();
    let backtrace = frames(error);
    let mut f = match trap {
        Some(wasmtime::Trap::OutOfFuel) => failure(
            FailureKind::OutOfFuel,
            format!(
                "fuel exhausted: all {} units of fuel were consumed",
                seen.fuel_limit
            ),
        ),
        Some(wasmtime::Trap::Interrupt) => timeout(seen),
        Some(wasmtime::Trap::StackOverflow) => failure(
            FailureKind::StackOverflow,
            "stack overflow: the wasm call stack is exhausted (unbounded recursion?)".to_owned(),
        ),
        Some(wasmtime::Trap::MemoryOutOfBounds) if is_recursion(&backtrace) => failure(
            FailureKind::StackOverflow,
            "stack overflow: the shadow stack in linear memory ran out (deep recursion made an \
             out-of-bounds access)"
                .to_owned(),
        ),
        Some(wasmtime::Trap::UnreachableCodeReached) => failure(
            FailureKind::Trap,
            "the guest trapped: unreachable executed (a Rust panic or abort; see stderr)"
                .to_owned(),
        ),
        Some(trap) => failure(FailureKind::Trap, format!("the guest trapped: {trap}")),
        None => failure(
            FailureKind::Trap,
            format!("the guest failed: {}", one_line(error)),
        ),
    };
    if let Some(trap) = trap {
        f.trap_code = Some(trap_code(trap));
    }
    f.backtrace = backtrace;
    f
}

fn failure(kind: FailureKind, message: String) -> Failure {
    Failure::new(kind, message)
}

/// The guest's own error, its message cut to [`ERROR_MESSAGE_BYTES`]
/// (the original length kept beside it).
fn guest_failure(kind: FailureKind, message: String) -> Failure {
    let bytes = message.len();
    let mut f = failure(kind, truncate(message, ERROR_MESSAGE_BYTES));
    if bytes > ERROR_MESSAGE_BYTES {
        f.message_bytes = Some(bytes as u64);
    }
    f
}

fn timeout(seen: &Observed) -> Failure {
    failure(
        FailureKind::Timeout,
        format!("timed out after {} ms of wall-clock time", seen.timeout_ms),
    )
}

fn add_trap_details(failure: &mut Failure, error: &wasmtime::Error) {
    failure.trap_code = error
        .downcast_ref::<wasmtime::Trap>()
        .map(|trap| trap_code(*trap));
    failure.backtrace = frames(error);
}

/// A backtrace made only of one function calling itself: the guest was
/// recursing when it trapped.
fn is_recursion(frames: &[Frame]) -> bool {
    const MIN_DEPTH: usize = 16;
    frames.len() >= MIN_DEPTH
        && frames
            .iter()
            .skip(1)
            .all(|f| f.function_index == frames[1].function_index)
}

fn frames(error: &wasmtime::Error) -> Vec<Frame> {
    let Some(trace) = error.downcast_ref::<wasmtime::WasmBacktrace>() else {
        return Vec::new();
    };
    trace
        .frames()
        .iter()
        .map(|frame| Frame {
            function: frame.func_name().map(str::to_owned),
            function_index: frame.func_index(),
            module: frame.module().name().map(str::to_owned),
            offset: frame.module_offset(),
        })
        .collect()
}

/// `MemoryOutOfBounds` becomes `memory_out_of_bounds`.
fn trap_code(trap: wasmtime::Trap) -> String {
    let name = format!("{trap:?}");
    let mut code = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                code.push('_');
            }
            code.push(c.to_ascii_lowercase());
        } else {
            code.push(c);
        }
    }
    code
}

fn one_line(error: &wasmtime::Error) -> String {
    let text = format!("{error:#}");
    text.lines().next().unwrap_or_default().to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trap_codes_are_snake_case() {
        assert_eq!(
            trap_code(wasmtime::Trap::MemoryOutOfBounds),
            "memory_out_of_bounds"
        );
        assert_eq!(trap_code(wasmtime::Trap::OutOfFuel), "out_of_fuel");
    }

    #[test]
    fn a_guest_message_is_cut_with_its_length_kept() {
        let long = "é".repeat(ERROR_MESSAGE_BYTES);
        let f = guest_failure(FailureKind::GuestError, long.clone());
        assert!(f.message.len() <= ERROR_MESSAGE_BYTES);
        assert!(long.starts_with(&f.message));
        assert_eq!(f.message_bytes, Some(long.len() as u64));
        let short = guest_failure(FailureKind::FatalError, "no".to_owned());
        assert_eq!((short.message.as_str(), short.message_bytes), ("no", None));
    }
}

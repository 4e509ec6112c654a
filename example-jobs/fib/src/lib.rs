//! Naive recursive Fibonacci, CPU work exponential in n: `{"n": 25}` → `{"n": 25, "value": 75025}`.

use serde::{Deserialize, Serialize};
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
struct Input {
    n: u32,
}

#[derive(Serialize)]
struct Output {
    n: u32,
    value: u64,
}

/// Deliberately exponential; wraps instead of overflowing for large `n`.
fn fib(n: u32) -> u64 {
    if n < 2 {
        u64::from(n)
    } else {
        fib(n - 1).wrapping_add(fib(n - 2))
    }
}

#[wasmjob_sdk::job]
fn run(Input { n }: Input) -> Result<Output, JobError> {
    Ok(Output { n, value: fib(n) })
}

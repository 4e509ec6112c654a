//! Recurses without end: `{"mode": "wasm"}` (default) exhausts the wasm call stack, `{"mode": "shadow"}` the shadow stack in linear memory.

use std::hint::black_box;

use serde::Deserialize;
use wasmjob_sdk::JobError;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Frames live in wasm locals only: the engine's call stack overflows.
    #[default]
    Wasm,
    /// Each frame holds a 4 KiB array in linear memory: the shadow stack
    /// (1 MiB by default) overflows long before the call stack.
    Shadow,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Input {
    mode: Mode,
}

#[wasmjob_sdk::job]
fn stack_overflow(input: Option<Input>) -> Result<u64, JobError> {
    // `limit` is never reached; coming from outside, it keeps the optimizer
    // from proving the recursion endless.
    let limit = black_box(u64::MAX);
    Ok(match input.unwrap_or_default().mode {
        Mode::Wasm => depth(0, limit),
        Mode::Shadow => shadow_depth(0, limit),
    })
}

/// State in wasm locals only (no address taken, nothing in memory). The
/// rotate after the call keeps LLVM from turning the recursion into a loop.
#[inline(never)]
fn depth(n: u64, limit: u64) -> u64 {
    if n == limit {
        0
    } else {
        depth(n + 1, limit).rotate_left(1) ^ n
    }
}

/// A 4 KiB array per frame, kept alive across the call through `black_box`.
#[inline(never)]
fn shadow_depth(n: u64, limit: u64) -> u64 {
    let mut frame = [0u8; 4096];
    frame[(n % 4096) as usize] = n as u8;
    black_box(&mut frame);
    if n == limit {
        0
    } else {
        shadow_depth(n + 1, limit) ^ u64::from(black_box(&frame)[4095])
    }
}

//! Reports progress 0 (so a host knows it is running), then loops forever: only a time or fuel limit, or cancellation, stops it.

use std::hint::black_box;

use serde::de::IgnoredAny;
use wasmjob_sdk::JobError;

#[wasmjob_sdk::job]
fn infinite_loop(_input: IgnoredAny) -> Result<(), JobError> {
    wasmjob_sdk::progress(0, "looping forever");
    let mut counter = 0u64;
    loop {
        counter = black_box(counter.wrapping_add(1));
    }
}

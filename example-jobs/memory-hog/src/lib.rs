//! Allocates 1 MiB chunks until the host refuses memory: `{"mode": "abort"}` (default) then aborts, `{"mode": "spin"}` keeps retrying forever.

use std::hint::black_box;

use serde::Deserialize;
use wasmjob_sdk::JobError;

const CHUNK: usize = 1 << 20;

#[derive(Deserialize, Default, Clone, Copy)]
#[serde(rename_all = "lowercase")]
enum Mode {
    /// Plain allocations: the first refused one aborts (alloc error handler).
    #[default]
    Abort,
    /// `Vec::try_reserve`: a refused allocation is retried, forever.
    Spin,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct Input {
    mode: Mode,
}

#[wasmjob_sdk::job]
fn memory_hog(input: Option<Input>) -> Result<(), JobError> {
    let mode = input.unwrap_or_default().mode;
    let mut chunks: Vec<Vec<u8>> = Vec::new();
    loop {
        let chunk = match mode {
            Mode::Abort => Vec::with_capacity(CHUNK),
            Mode::Spin => {
                // Room for the pointer first, so that `push` cannot abort.
                while chunks.try_reserve(1).is_err() {
                    black_box(&chunks);
                }
                let mut chunk = Vec::new();
                while chunk.try_reserve_exact(CHUNK).is_err() {
                    black_box(&chunks);
                }
                chunk
            }
        };
        chunks.push(touched(chunk));
    }
}

/// Fills the chunk with non-zero bytes, so every page is really committed.
fn touched(mut chunk: Vec<u8>) -> Vec<u8> {
    chunk.resize(CHUNK, 0xA5);
    black_box(chunk)
}

//! Fails with a retryable error while the attempt is below `succeed_on`: `{"succeed_on": 3}` → `{"attempt": 3}`.

use serde::{Deserialize, Serialize};
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
struct Input {
    succeed_on: u32,
}

#[derive(Serialize)]
struct Output {
    attempt: u32,
}

#[wasmjob_sdk::job]
fn flaky(Input { succeed_on }: Input) -> Result<Output, JobError> {
    let attempt = wasmjob_sdk::info().attempt;
    if attempt < succeed_on {
        return Err(JobError::retryable(format!(
            "attempt {attempt} failed on purpose; attempt {succeed_on} will succeed"
        )));
    }
    Ok(Output { attempt })
}

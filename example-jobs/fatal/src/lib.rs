//! Always fails with a fatal error, whatever its input: the host must not retry it.

use serde::de::IgnoredAny;
use wasmjob_sdk::JobError;

#[wasmjob_sdk::job]
fn fatal(_input: IgnoredAny) -> Result<(), JobError> {
    Err(JobError::fatal(
        "deliberate fatal error: this job never succeeds",
    ))
}

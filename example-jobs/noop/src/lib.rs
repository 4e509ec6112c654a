//! Does nothing: accepts any JSON input (`null`, `{}`, ...) and returns `null`, to measure per-invocation overhead.

use serde::de::IgnoredAny;
use wasmjob_sdk::JobError;

// `IgnoredAny` accepts any JSON without building a value.
#[wasmjob_sdk::job]
fn noop(_input: IgnoredAny) -> Result<(), JobError> {
    Ok(())
}

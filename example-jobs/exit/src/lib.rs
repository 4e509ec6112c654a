//! Ends the whole program with `exit(code)` instead of returning: `{"code": 0}`.

use serde::Deserialize;
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
struct Input {
    code: i32,
}

#[wasmjob_sdk::job]
fn exit(Input { code }: Input) -> Result<String, JobError> {
    wasmjob_sdk::info!("exiting with code {code}");
    std::process::exit(code)
}

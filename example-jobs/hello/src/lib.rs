//! Greets by name: `{"name": "Ada"}` → `{"greeting": "Hello, Ada!"}`; logs a line and reports progress 100.

use serde::{Deserialize, Serialize};
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
struct Input {
    name: String,
}

#[derive(Serialize)]
struct Output {
    greeting: String,
}

#[wasmjob_sdk::job]
fn hello(input: Input) -> Result<Output, JobError> {
    wasmjob_sdk::info!("greeting {}", input.name);
    let greeting = format!("Hello, {}!", input.name);
    wasmjob_sdk::progress(100, "greeted");
    Ok(Output { greeting })
}

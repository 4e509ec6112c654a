//! Any JSON in and out with `serde_json::Value`.

use wasmjob_sdk::serde_json::{Value, json};

#[wasmjob_sdk::job]
fn echo(input: Value) -> Result<Value, wasmjob_sdk::JobError> {
    Ok(json!({ "echo": input }))
}

fn main() {
    assert_eq!(echo(json!(1)).unwrap(), json!({ "echo": 1 }));
}

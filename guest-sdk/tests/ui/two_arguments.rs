#[wasmjob_sdk::job]
fn add(a: u64, b: u64) -> Result<u64, wasmjob_sdk::JobError> {
    Ok(a + b)
}

fn main() {}

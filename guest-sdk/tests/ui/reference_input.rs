#[wasmjob_sdk::job]
fn shout(text: &str) -> Result<String, wasmjob_sdk::JobError> {
    Ok(text.to_uppercase())
}

fn main() {}

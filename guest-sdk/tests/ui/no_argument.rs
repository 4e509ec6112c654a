#[wasmjob_sdk::job]
fn run() -> Result<(), wasmjob_sdk::JobError> {
    Ok(())
}

fn main() {}

#[wasmjob_sdk::job(retries = 3)]
fn work(_input: ()) -> Result<(), wasmjob_sdk::JobError> {
    Ok(())
}

fn main() {}

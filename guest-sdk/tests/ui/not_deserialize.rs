struct Args;

#[wasmjob_sdk::job]
fn work(_args: Args) -> Result<(), wasmjob_sdk::JobError> {
    Ok(())
}

fn main() {}

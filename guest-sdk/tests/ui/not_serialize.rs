struct Output;

#[wasmjob_sdk::job]
fn work(_input: ()) -> Result<Output, wasmjob_sdk::JobError> {
    Ok(Output)
}

fn main() {}

#[wasmjob_sdk::job]
async fn fetch(url: String) -> Result<String, wasmjob_sdk::JobError> {
    Ok(url)
}

fn main() {}

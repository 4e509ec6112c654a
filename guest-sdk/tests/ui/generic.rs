#[wasmjob_sdk::job]
fn echo<T: serde::de::DeserializeOwned + serde::Serialize>(
    input: T,
) -> Result<T, wasmjob_sdk::JobError> {
    Ok(input)
}

fn main() {}

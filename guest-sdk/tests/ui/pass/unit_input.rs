//! A job without input takes `()`; a full path to `JobError` works.

#[wasmjob_sdk::job]
pub fn nothing(_input: ()) -> Result<(), wasmjob_sdk::JobError> {
    Ok(())
}

fn main() {
    nothing(()).unwrap();
}

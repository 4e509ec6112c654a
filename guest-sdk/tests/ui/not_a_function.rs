#[wasmjob_sdk::job]
struct Job {
    n: u64,
}

fn main() {}

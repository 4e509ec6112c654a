#[wasmjob_sdk::job]
fn work(_n: u64) {}

fn main() {}

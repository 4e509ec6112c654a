#[wasmjob_sdk::job]
fn parse(s: String) -> Result<u64, std::num::ParseIntError> {
    s.parse()
}

fn main() {}

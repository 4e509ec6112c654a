type Result<T> = std::result::Result<T, String>;

#[wasmjob_sdk::job]
fn work(_input: ()) -> Result<()> {
    Ok(())
}

fn main() {}

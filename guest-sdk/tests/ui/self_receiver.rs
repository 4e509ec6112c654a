struct Job;

impl Job {
    #[wasmjob_sdk::job]
    fn run(&self) -> Result<(), wasmjob_sdk::JobError> {
        Ok(())
    }
}

fn main() {}

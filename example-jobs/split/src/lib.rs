//! Jobs that submit jobs: splits `numbers` into chunks of `chunk` and asks
//! for a follow-up job per chunk (`{"add": Σ chunk}` to `module`, `sum` by
//! default), then one named `total` after all of them, which adds their
//! totals. The follow-ups are created only if this attempt completes.
//!
//! `{"numbers": [1, 2, 3, 4, 5], "chunk": 2}` → `{"chunks": 3}`, and the
//! follow-ups `chunk-0` (3), `chunk-1` (7), `chunk-2` (5) and `total` (15).
//!
//! `then` makes the attempt end badly after submitting, to show that such
//! an attempt leaves no follow-up behind: `"fail"` (a retryable error),
//! `"fail_first"` (the same on the first attempt only), `"spin"` (an
//! endless loop: out of fuel or time).

use serde::{Deserialize, Serialize};
use wasmjob_sdk::{FollowUp, JobError};

#[derive(Deserialize)]
struct Input {
    numbers: Vec<i64>,
    #[serde(default = "default_chunk")]
    chunk: usize,
    #[serde(default = "default_module")]
    module: String,
    #[serde(default)]
    then: Option<String>,
}

fn default_chunk() -> usize {
    10
}

fn default_module() -> String {
    "sum".to_owned()
}

#[derive(Serialize)]
struct Output {
    chunks: usize,
}

#[derive(Serialize)]
struct Add {
    add: i64,
}

#[wasmjob_sdk::job]
fn split(input: Input) -> Result<Output, JobError> {
    if input.chunk == 0 {
        return Err(JobError::fatal("chunk must be at least 1"));
    }
    let mut total = FollowUp::new(&input.module, &Add { add: 0 }).name("total");
    let mut chunks = 0;
    for (i, chunk) in input.numbers.chunks(input.chunk).enumerate() {
        let name = format!("chunk-{i}");
        let add = chunk.iter().sum();
        wasmjob_sdk::submit(FollowUp::new(&input.module, &Add { add }).name(&name))?;
        total = total.after(&name);
        chunks += 1;
    }
    wasmjob_sdk::submit(total)?;
    wasmjob_sdk::info!("{chunks} chunks and a total submitted");
    match input.then.as_deref() {
        Some("fail") => Err(JobError::retryable("failing after submitting")),
        Some("fail_first") if wasmjob_sdk::info().attempt == 1 => {
            Err(JobError::retryable("failing after submitting, this once"))
        }
        Some("spin") =>
        {
            #[allow(clippy::empty_loop)]
            loop {}
        }
        _ => Ok(Output { chunks }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_follow_up_per_chunk_then_the_total_after_them() {
        let output = split(Input {
            numbers: vec![1, 2, 3, 4, 5],
            chunk: 2,
            module: "sum".into(),
            then: None,
        })
        .unwrap();
        assert_eq!(output.chunks, 3);
        let submitted = wasmjob_sdk::testing::take_follow_ups();
        let inputs: Vec<&str> = submitted
            .iter()
            .map(|f| f.input.as_deref().unwrap())
            .collect();
        assert_eq!(
            inputs,
            [
                r#"{"add":3}"#,
                r#"{"add":7}"#,
                r#"{"add":5}"#,
                r#"{"add":0}"#
            ]
        );
        assert_eq!(submitted[3].after, ["chunk-0", "chunk-1", "chunk-2"]);
    }
}

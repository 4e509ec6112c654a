//! A typical job function: the macro accepts it and keeps it callable, and
//! what it generates passes strict lints.

#![deny(warnings, unsafe_code, missing_docs)]

use serde::{Deserialize, Serialize};
use wasmjob_sdk::{JobError, ResultExt};

/// The input.
#[derive(Deserialize)]
struct Args {
    n: u64,
}

/// The output.
#[derive(Debug, Serialize)]
struct Output {
    doubled: u64,
}

#[wasmjob_sdk::job]
fn double(Args { n }: Args) -> Result<Output, JobError> {
    wasmjob_sdk::info!("doubling {n}");
    let doubled = n.checked_mul(2).ok_or("overflow").fatal()?;
    Ok(Output { doubled })
}

fn main() {
    assert_eq!(double(Args { n: 2 }).unwrap().doubled, 4);
    assert!(double(Args { n: u64::MAX }).unwrap_err().is_fatal());
}

//! Adds a number to the totals of its prerequisites: `{"add": 2}` →
//! `{"total": 2 + Σ prerequisite totals, "inputs": {"<name>": total, ...}}`.
//! A chain A → B → C passes a running total along; a fan-in D after A, B
//! and C adds all three.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use wasmjob_sdk::{JobError, ResultExt};

#[derive(Deserialize)]
struct Input {
    #[serde(default)]
    add: i64,
}

#[derive(Deserialize, Serialize)]
struct Output {
    total: i64,
    inputs: BTreeMap<String, i64>,
}

#[wasmjob_sdk::job]
fn sum(input: Input) -> Result<Output, JobError> {
    let mut inputs = BTreeMap::new();
    for dependency in wasmjob_sdk::dependencies() {
        let previous: Output = dependency.output()?;
        inputs.insert(dependency.name, previous.total);
    }
    let total = inputs
        .values()
        .try_fold(input.add, |total, n| total.checked_add(*n))
        .ok_or("the total overflows")
        .fatal()?;
    wasmjob_sdk::info!("{} + {:?} = {total}", input.add, inputs);
    Ok(Output { total, inputs })
}

//! Always panics, whatever its input (`panic!("deliberate panic: ...")`), which traps the component.

use serde::de::IgnoredAny;
use wasmjob_sdk::JobError;

#[wasmjob_sdk::job]
fn deliberate_panic(_input: IgnoredAny) -> Result<(), JobError> {
    let attempt = wasmjob_sdk::info().attempt;
    panic!("deliberate panic: attempt {attempt} of the panic job");
}

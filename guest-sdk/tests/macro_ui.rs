//! Compile tests of `#[wasmjob_sdk::job]`: the signatures it accepts
//! (`tests/ui/pass/`), and the spanned errors it gives for those it rejects
//! (`tests/ui/*.rs`, with the expected `.stderr` beside each).
//!
//! Regenerate the `.stderr` files with `TRYBUILD=overwrite`, then read them.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.pass("tests/ui/pass/*.rs");
    t.compile_fail("tests/ui/*.rs");
}

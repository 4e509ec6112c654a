//! wasmjob's integration tests: one binary, one module per area.

mod command;
mod component;
mod load;
mod wat;

//! wasmjob: a background job host where every job is a WebAssembly module.
//!
//! The crate is laid out one concern per module:
//!
//! - [`limits`] and [`report`]: the job vocabulary shared by every other
//!   module (what a job may use, what happened when it ran). No I/O.
//! - [`engine`]: the only module that knows wasmtime. It loads modules
//!   (validate, compile, cache) and runs one invocation in a fresh sandbox,
//!   returning a [`report::Report`].
//! - [`units`]: parsing of human-friendly sizes and durations for the CLI.
//! - [`cli`]: the `wasmjob` command line.
//!
//! See `ARCHITECTURE.md` at the repository root for the codemap and the
//! invariants.

#![deny(missing_docs)]

pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod engine;
pub mod job;
pub mod limits;
pub mod queue;
pub mod report;
pub mod scheduler;
pub mod store;
pub mod units;
pub mod worker;

//! Write [wasmjob](https://example.invalid/wasmjob) jobs in Rust: one
//! function, serde types in and out.
//!
//! A job is a WebAssembly component built for `wasm32-wasip2`. Its crate is
//! a `cdylib` with one function marked [`#[job]`](job): the input bytes are
//! decoded from JSON into the function's argument, and its output is encoded
//! back to JSON.
//!
//! ```
//! use serde::{Deserialize, Serialize};
//! use wasmjob_sdk::{JobError, ResultExt};
//!
//! #[derive(Deserialize)]
//! struct ResizeArgs {
//!     url: String,
//!     width: u32,
//! }
//!
//! #[derive(Serialize)]
//! struct ResizeOutput {
//!     bytes: usize,
//! }
//!
//! #[wasmjob_sdk::job]
//! fn resize(input: ResizeArgs) -> Result<ResizeOutput, JobError> {
//!     let attempt = wasmjob_sdk::info().attempt;
//!     wasmjob_sdk::info!("resizing {} to {} px (attempt {attempt})", input.url, input.width);
//!     // A bad argument will not get better on retry: fail for good.
//!     let width = u16::try_from(input.width).fatal()?;
//!     wasmjob_sdk::progress(50, "downloaded");
//!     // Errors passed on with `?` are retryable.
//!     let bytes: usize = "1024".parse()?;
//!     wasmjob_sdk::progress(100, "done");
//!     Ok(ResizeOutput { bytes: bytes * usize::from(width) })
//! }
//! # fn main() {}
//! ```
//!
//! In short:
//!
//! - **Errors**: a [`JobError`] is either retryable (the host tries again
//!   while attempts are left) or fatal. `?` on any [`std::error::Error`]
//!   gives a retryable one; [`ResultExt::fatal`] marks one fatal. Input that
//!   does not decode is fatal, and its message names the field
//!   (`invalid input: width: invalid type: string "x", expected u32 ...`);
//!   so is output that does not encode. An empty input reads as JSON `null`.
//! - **Logging**: [`trace!`], [`debug!`], [`info!`], [`warn!`], [`error!`]
//!   take format arguments; [`log()`] takes a [`Level`] and a message.
//! - **Progress**: [`progress()`] reports a percentage and a note.
//! - **Invocation**: [`info()`] returns the [`JobInfo`]: job id, attempt,
//!   attempts allowed, priority.
//! - **Prerequisites**: a job that waited for others (`depends_on`, or a
//!   workflow's edges) reads their outputs by name with
//!   [`dependency_output()`] (`let paid: Payment =
//!   wasmjob_sdk::dependency_output("payment")?;`), or every one, with how
//!   it ended, with [`dependencies()`].
//! - **Follow-up jobs**: [`submit()`] asks for a [`FollowUp`] job, created
//!   only if this attempt completes (with its result, in one transaction);
//!   follow-ups may wait for earlier ones by name.
//! - **HTTP**: [`http`] is a small blocking client
//!   (`http::Request::post(url).json(&body).send()?.error_for_status()?`)
//!   for the origins the operator granted to the job's module; anything
//!   else is denied. Its errors know whether they are worth a retry
//!   (timeouts, `5xx`, `429`: yes; a denied origin, `4xx`: no), and `?`
//!   makes the matching [`JobError`].
//! - **Secrets and configuration**: [`secret()`] and [`config()`] read by
//!   name what the operator granted to the job's module (`None`
//!   otherwise). The host redacts a secret's value wherever the job writes
//!   it back: logs, output, errors.
//!
//! A panic, a trap or running out of fuel, memory or time ends the attempt;
//! the host decides whether to retry it.
//!
//! Build a job with `cargo build --release --target wasm32-wasip2`: the
//! `.wasm` file it makes is already a component. Built for any other target
//! (for unit tests of the job's logic) the crate still compiles; logging
//! and progress then go to standard error, where a test can also read them
//! back with [`testing::take`], and [`info()`] returns
//! [`JobInfo::default()`]. The [`testing`] module stands in for the rest
//! of the host: prerequisites, secrets and configuration to set, and a
//! function to answer HTTP requests in place of the network
//! ([`testing::set_http`]).

#![deny(missing_docs)]

mod dependencies;
mod error;
mod follow_ups;
mod granted;
mod host;
pub mod http;
#[cfg(not(target_arch = "wasm32"))]
pub mod testing;

#[doc(hidden)]
#[allow(unsafe_code, missing_docs, unreachable_pub, clippy::all)]
pub mod __private;

pub use dependencies::{Dependency, DependencyState, dependencies, dependency, dependency_output};
pub use error::{JobError, ResultExt};
pub use follow_ups::{FollowUp, submit};
pub use granted::{config, secret};
pub use host::{JobInfo, Level, info, log, progress};

/// Marks the function that runs the job.
///
/// The function takes exactly one argument, the input, of a type that
/// implements [`serde::Deserialize`] (`()`, `serde_json::Value` and
/// `serde::de::IgnoredAny` work too), and returns `Result<T, JobError>` for
/// a `T` that implements [`serde::Serialize`]. It must not be `async`,
/// `unsafe`, generic or a method. A crate has one job function.
///
/// The function itself is kept as written, so tests can call it directly.
pub use wasmjob_sdk_macros::job;

/// The `serde` crate the SDK uses, for jobs that do not depend on it.
pub use serde;
/// The `serde_json` crate the SDK uses, for jobs that handle JSON values.
pub use serde_json;

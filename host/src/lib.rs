//! wasmjob: a background job host where every job is a WebAssembly module.
//!
//! The crate is laid out one concern per module:
//!
//! - [`job`], [`limits`], [`report`], [`json`]: the vocabulary shared by
//!   every other module (a job, what it may use, what happened when it
//!   ran, its JSON). Plain data, no I/O, no wire format.
//! - [`grants`]: what a job may reach beyond its sandbox (HTTP origins,
//!   secrets, configuration), granted by the operator to modules.
//! - [`policy`]: the one owner of job rules: admission (defaults and
//!   bounds) and `decide` (what follows an attempt).
//! - [`engine`]: the only module that knows wasmtime. It loads modules
//!   (validate, compile, cache) and runs one invocation in a fresh sandbox,
//!   returning a [`report::Report`].
//! - [`store`]: the only module with SQL; [`store::JobStore`] is the
//!   contract every backend implements.
//! - [`queue`]: the one door to the jobs, for the API, the workers and the
//!   scheduler.
//! - [`worker`] and [`scheduler`]: the pool (claim, run, record) and the
//!   background services (rescue, aging).
//! - [`api`]: the only module that knows HTTP (as a server), with
//!   [`dashboard`], its HTML pages; [`client`] and [`cli`]: the command
//!   line.
//! - [`alerts`]: webhooks for dead-lettered jobs and queues waiting too
//!   long, delivered off the job path.
//! - [`metrics`]: this host's Prometheus metrics; [`telemetry`]: its logs
//!   and traces (OTLP export with the `otel` feature).
//! - [`history`]: per-minute counts and duration buckets of each queue,
//!   and the percentiles derived from them.
//! - [`config`], [`clock`], [`units`]: configuration, time, and parsing of
//!   human-friendly sizes and durations.
//!
//! See `ARCHITECTURE.md` at the repository root for the codemap and the
//! invariants.

#![deny(missing_docs)]

pub mod alerts;
pub mod api;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod dashboard;
pub mod engine;
pub mod grants;
pub mod history;
pub mod job;
pub mod json;
pub mod limits;
pub mod metrics;
pub mod policy;
pub mod queue;
pub mod report;
pub mod schedule;
pub mod scheduler;
pub mod store;
pub mod telemetry;
pub mod units;
pub mod worker;

//! wasmjob's integration tests: one binary, one module per area.

mod api;
mod command;
mod component;
mod follow_ups;
mod leases;
mod load;
mod metrics;
mod openapi;
mod outbound;
mod queue;
mod retries;
mod schedules;
mod wat;
mod workers;
mod workflows;

//! wasmjob's integration tests: one binary, one module per area.

mod alerts;
mod api;
mod bounds;
mod browser;
mod command;
mod compiles;
mod component;
mod dashboard;
mod follow_ups;
mod fuzz;
mod history;
mod leases;
mod load;
mod metrics;
mod openapi;
mod outbound;
mod queue;
mod retention;
mod retries;
mod schedules;
mod wat;
mod workers;
mod workflows;

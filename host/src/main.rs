//! The `wasmjob` binary: see [`wasmjob::cli`].

use clap::Parser;
use std::process::ExitCode;

/// mimalloc instead of the system allocator: the host allocates and frees
/// many small buffers per job (requests, rows, reports); against glibc's
/// malloc it raised the benchmark suite's throughput figures by 10–30%.
/// Built with `no_thp`: with transparent huge pages its arenas more than
/// doubled the host's RSS (40 MB to 110 MB with a million jobs pending).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .with_writer(std::io::stderr)
        .init();
    wasmjob::cli::run(wasmjob::cli::Cli::parse())
}

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

/// The exit code of a command whose reader went away (`wasmjob list |
/// head`): what a shell reports for a process ended by SIGPIPE.
const EXIT_BROKEN_PIPE: i32 = 141;

fn main() -> ExitCode {
    // Rust ignores SIGPIPE, so printing to a closed pipe panics; stop
    // quietly instead, as Unix tools do.
    let default_hook = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let payload = info.payload();
        let message = payload
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| payload.downcast_ref::<&str>().copied())
            .unwrap_or_default();
        if message.starts_with("failed printing to stdout") && message.contains("Broken pipe") {
            std::process::exit(EXIT_BROKEN_PIPE);
        }
        default_hook(info);
    }));
    let cli = wasmjob::cli::Cli::parse();
    let _telemetry = match wasmjob::cli::init_logging(&cli) {
        Ok(guard) => guard,
        Err(message) => {
            eprintln!("wasmjob: {message}");
            return ExitCode::from(wasmjob::cli::EXIT_USAGE);
        }
    };
    wasmjob::cli::run(cli)
}

//! The one `bindgen!` call: host bindings for the `wasmjob:job` world,
//! generated from the repository's `wit/` directory.

wasmtime::component::bindgen!({
    world: "job",
    path: "../wit",
    exports: { default: async },
});

pub use self::wasmjob::job::host::Host as JobHost;
pub use self::wasmjob::job::types::{Dependency, DependencyState, FollowUp, Level};

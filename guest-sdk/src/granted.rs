//! What the operator granted the job's module besides network origins:
//! secrets (API keys, tokens) and configuration values (service URLs,
//! switches), each read by name.
//!
//! On targets other than wasm32 (unit tests of a job's logic) there is no
//! host: [`testing::set_secret`](crate::testing::set_secret) and
//! [`testing::set_config`](crate::testing::set_config) set what [`secret`]
//! and [`config`] return on the current thread.

#[cfg(target_arch = "wasm32")]
use crate::__private::wasmjob::job::host as wit_host;

/// The value of the secret `name`, if the operator granted it to this
/// job's module; `None` otherwise (a name that does not exist reads the
/// same as one not granted).
///
/// The host redacts the value wherever the job writes it back: logs,
/// progress notes, output, error messages, standard output and error. Send
/// it where it is meant to go (a header of an [`http`](crate::http)
/// request, say); do not expect to read it back in a report.
///
/// ```
/// use wasmjob_sdk::{JobError, ResultExt};
///
/// fn api_key() -> Result<String, JobError> {
///     // Missing now, missing on every retry: fail for good.
///     wasmjob_sdk::secret("payments_key")
///         .ok_or("the secret `payments_key` is not granted to this module")
///         .fatal()
/// }
///
/// wasmjob_sdk::testing::set_secret("payments_key", "sk_test_123");
/// assert_eq!(api_key().unwrap(), "sk_test_123");
/// ```
pub fn secret(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        wit_host::secret(name)
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::secret(name)
}

/// The operator's configuration value `name`, if granted to this job's
/// module; `None` otherwise.
///
/// Unlike a [`secret`], a configuration value is not redacted: keep
/// credentials in secrets.
///
/// ```
/// wasmjob_sdk::testing::set_config("payments_url", "https://pay.example");
/// assert_eq!(wasmjob_sdk::config("payments_url").as_deref(), Some("https://pay.example"));
/// assert_eq!(wasmjob_sdk::config("region"), None);
/// ```
pub fn config(name: &str) -> Option<String> {
    #[cfg(target_arch = "wasm32")]
    {
        wit_host::config(name)
    }
    #[cfg(not(target_arch = "wasm32"))]
    crate::testing::config(name)
}

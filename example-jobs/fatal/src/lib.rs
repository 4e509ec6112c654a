//! Always fails with a fatal error, whatever its input: the host must not retry it.
//! With `{"pad_to": n}` its message is padded with dots to `n` bytes (to
//! exercise the host's bound on error messages).

use serde::Deserialize;
use serde::de::IgnoredAny;
use wasmjob_sdk::JobError;

const MESSAGE: &str = "deliberate fatal error: this job never succeeds";

#[derive(Deserialize)]
#[serde(untagged)]
enum Input {
    Padded { pad_to: usize },
    Other(IgnoredAny),
}

#[wasmjob_sdk::job]
fn fatal(input: Input) -> Result<(), JobError> {
    let mut message = MESSAGE.to_owned();
    if let Input::Padded { pad_to } = input {
        message.extend(std::iter::repeat_n('.', pad_to.saturating_sub(message.len())));
    }
    Err(JobError::fatal(message))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_message_is_padded_when_asked() {
        let padded = fatal(Input::Padded { pad_to: 100 }).unwrap_err();
        assert_eq!(padded.message().len(), 100);
        assert!(padded.message().starts_with(MESSAGE));
    }
}

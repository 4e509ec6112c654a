//! Implementation details used by the code that `#[job]` generates.
//! Not public API: may change in any release.

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::JobError as SdkError;
use crate::JobInfo as SdkJobInfo;

// The one set of bindings for `wit/job.wit`. The `export!` macro is public
// so that `#[job]` can invoke it from the job's crate.
wit_bindgen::generate!({
    world: "job",
    path: "../wit",
    pub_export_macro: true,
    default_bindings_module: "$crate::__private",
});

use self::wasmjob::job::types as wit;

/// Decodes `input` as JSON, calls `handler`, encodes its output as JSON.
///
/// An empty `input` reads as JSON `null`. Input that does not decode, and
/// output that does not encode, are fatal errors whose message names the
/// offending field.
pub fn invoke<I, O>(
    handler: impl FnOnce(I) -> Result<O, SdkError>,
    input: &[u8],
) -> Result<Vec<u8>, SdkError>
where
    I: DeserializeOwned,
    O: Serialize,
{
    let input = decode(input)?;
    let output = handler(input)?;
    encode(&output)
}

/// [`invoke`] with `info` as the current [`crate::JobInfo`].
pub fn invoke_with_info<I, O>(
    info: SdkJobInfo,
    handler: impl FnOnce(I) -> Result<O, SdkError>,
    input: &[u8],
) -> Result<Vec<u8>, SdkError>
where
    I: DeserializeOwned,
    O: Serialize,
{
    crate::host::with_info(info, || invoke(handler, input))
}

/// The body of the exported `run`: wire types in and out.
///
/// `decode` and `encode` are [`decode`] and [`encode`], passed in by the
/// generated code so that a type without `Deserialize` or `Serialize` is
/// reported at the input or return type of the job function.
pub fn run<I, O>(
    info: wit::JobInfo,
    input: Vec<u8>,
    decode: fn(&[u8]) -> Result<I, SdkError>,
    handler: impl FnOnce(I) -> Result<O, SdkError>,
    encode: fn(&O) -> Result<Vec<u8>, SdkError>,
) -> Result<Vec<u8>, wit::JobError> {
    let info = SdkJobInfo {
        id: info.id,
        attempt: info.attempt,
        max_attempts: info.max_attempts,
        priority: info.priority,
    };
    let result = crate::host::with_info(info, || encode(&handler(decode(&input)?)?));
    result.map_err(|error| match error.into_parts() {
        (true, message) => wit::JobError::Fatal(message),
        (false, message) => wit::JobError::Retryable(message),
    })
}

/// Decodes a job's input from JSON; an empty input reads as `null`.
pub fn decode<I: DeserializeOwned>(input: &[u8]) -> Result<I, SdkError> {
    let input = if input.is_empty() { b"null" } else { input };
    let mut deserializer = serde_json::Deserializer::from_slice(input);
    let value = serde_path_to_error::deserialize(&mut deserializer)
        .map_err(|e| SdkError::fatal(format!("invalid input: {e}")))?;
    deserializer
        .end()
        .map_err(|e| SdkError::fatal(format!("invalid input: {e}")))?;
    Ok(value)
}

/// Encodes a job's output as JSON.
pub fn encode<O: Serialize>(output: &O) -> Result<Vec<u8>, SdkError> {
    let mut bytes = Vec::new();
    let mut serializer = serde_json::Serializer::new(&mut bytes);
    serde_path_to_error::serialize(output, &mut serializer)
        .map_err(|e| SdkError::fatal(format!("invalid output: {e}")))?;
    Ok(bytes)
}

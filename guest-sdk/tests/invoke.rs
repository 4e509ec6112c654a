//! What the generated `run` does around a job function, tested natively
//! through the hidden `__private::invoke` helper: JSON decoding and encoding,
//! error kinds and messages, and `info()`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use wasmjob_sdk::__private::{invoke, invoke_with_info};
use wasmjob_sdk::{JobError, JobInfo, ResultExt};

#[derive(Deserialize)]
struct Args {
    n: u64,
}

#[derive(Serialize)]
struct Output {
    n: u64,
    doubled: u64,
}

fn double(Args { n }: Args) -> Result<Output, JobError> {
    Ok(Output { n, doubled: n * 2 })
}

fn invoke_str<I, O>(
    handler: impl FnOnce(I) -> Result<O, JobError>,
    input: &str,
) -> Result<String, JobError>
where
    I: serde::de::DeserializeOwned,
    O: Serialize,
{
    invoke(handler, input.as_bytes()).map(|bytes| String::from_utf8(bytes).unwrap())
}

#[test]
fn decodes_input_and_encodes_output() {
    assert_eq!(
        invoke_str(double, r#"{"n": 21}"#).unwrap(),
        r#"{"n":21,"doubled":42}"#
    );
}

#[test]
fn wrong_type_is_fatal_and_names_the_field() {
    let err = invoke_str(double, r#"{"n": "x"}"#).unwrap_err();
    assert!(err.is_fatal());
    assert!(
        err.message()
            .starts_with(r#"invalid input: n: invalid type: string "x", expected u64"#),
        "{err}"
    );
}

#[test]
fn missing_field_is_fatal_and_names_the_field() {
    let err = invoke_str(double, "{}").unwrap_err();
    assert!(err.is_fatal());
    assert!(
        err.message()
            .starts_with("invalid input: missing field `n`"),
        "{err}"
    );
}

#[test]
fn nested_field_path_is_named() {
    #[derive(Deserialize)]
    struct Outer {
        #[allow(dead_code)]
        items: Vec<Args>,
    }
    let err = invoke_str(|_: Outer| Ok(()), r#"{"items": [{"n": 1}, {"n": -1}]}"#).unwrap_err();
    assert!(
        err.message()
            .starts_with("invalid input: items[1].n: invalid value"),
        "{err}"
    );
}

#[test]
fn malformed_json_and_trailing_bytes_are_fatal() {
    let err = invoke_str(double, r#"{"n": 1"#).unwrap_err();
    assert!(
        err.is_fatal() && err.message().starts_with("invalid input: "),
        "{err}"
    );
    let err = invoke_str(double, r#"{"n": 1} x"#).unwrap_err();
    assert!(
        err.is_fatal() && err.message().contains("trailing characters"),
        "{err}"
    );
}

#[test]
fn unit_and_value_inputs() {
    let unit = |(): ()| Ok::<_, JobError>(());
    assert_eq!(invoke_str(unit, "null").unwrap(), "null");
    assert_eq!(
        invoke_str(unit, "").unwrap(),
        "null",
        "empty input reads as null"
    );
    assert!(invoke_str(unit, "{}").unwrap_err().is_fatal());

    let echo = |v: serde_json::Value| Ok::<_, JobError>(v);
    assert_eq!(invoke_str(echo, "{}").unwrap(), "{}");
    assert_eq!(invoke_str(echo, "").unwrap(), "null");

    let any = |_: serde::de::IgnoredAny| Ok::<_, JobError>(());
    for input in ["null", "{}", "[1, {\"a\": 2}]", ""] {
        assert_eq!(invoke_str(any, input).unwrap(), "null");
    }
}

#[test]
fn handler_errors_keep_their_kind() {
    let err = invoke_str(|(): ()| Err::<(), _>(JobError::retryable("busy")), "null").unwrap_err();
    assert!(!err.is_fatal());
    assert_eq!(err.message(), "busy");
    let err = invoke_str(|(): ()| Err::<(), _>(JobError::fatal("bad")), "null").unwrap_err();
    assert!(err.is_fatal());
    assert_eq!(err.message(), "bad");
}

#[test]
fn output_that_does_not_encode_is_fatal() {
    // JSON object keys must be strings: a map keyed by a tuple fails.
    let bad = |(): ()| Ok::<_, JobError>(BTreeMap::from([((1, 2), 3)]));
    let err = invoke_str(bad, "null").unwrap_err();
    assert!(err.is_fatal());
    assert!(err.message().starts_with("invalid output: "), "{err}");
}

#[test]
fn question_mark_is_retryable_with_sources() {
    fn parse(s: &str) -> Result<u64, JobError> {
        Ok(s.parse::<u64>()?)
    }
    let err = parse("x").unwrap_err();
    assert!(err.is_retryable());
    assert_eq!(err.to_string(), "invalid digit found in string");

    #[derive(Debug)]
    struct Outer(std::io::Error);
    impl std::fmt::Display for Outer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("reading config")
        }
    }
    impl std::error::Error for Outer {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            Some(&self.0)
        }
    }
    let err = JobError::from(Outer(std::io::Error::other("disk on fire")));
    assert_eq!(err.message(), "reading config: disk on fire");
}

#[test]
fn result_ext_marks_the_kind() {
    let err = Err::<(), _>("no such user").fatal().unwrap_err();
    assert!(err.is_fatal());
    assert_eq!(err.message(), "no such user");

    let err = Err::<(), _>(String::from("timeout"))
        .retryable()
        .unwrap_err();
    assert!(err.is_retryable());

    // Upgrading a JobError keeps its message.
    let err = Err::<(), _>(JobError::retryable("x")).fatal().unwrap_err();
    assert!(err.is_fatal());
    assert_eq!(err.message(), "x");
    assert_eq!(Ok::<_, &str>(1).fatal().unwrap(), 1);
}

#[test]
fn debug_and_display() {
    assert_eq!(JobError::fatal("bad").to_string(), "bad");
    assert_eq!(
        format!("{:?}", JobError::retryable("busy")),
        r#"JobError::retryable("busy")"#
    );
    assert!(JobError::retryable("x").into_fatal().is_fatal());
    assert!(JobError::fatal("x").into_retryable().is_retryable());
}

#[test]
fn info_is_set_during_the_invocation_only() {
    assert_eq!(wasmjob_sdk::info(), JobInfo::default());
    let info = JobInfo {
        id: "job-1".into(),
        attempt: 2,
        max_attempts: 5,
        priority: 3,
    };
    let seen = invoke_with_info(
        info.clone(),
        |(): ()| Ok(wasmjob_sdk::info().attempt),
        b"null",
    )
    .unwrap();
    assert_eq!(seen, b"2");
    assert_eq!(wasmjob_sdk::info(), JobInfo::default());
}

#[test]
fn logging_and_progress_work_natively() {
    use wasmjob_sdk::Level;
    use wasmjob_sdk::testing::{self, Recorded};
    // Off wasm there is no host: these go to stderr, and a test can read
    // them back.
    testing::take();
    wasmjob_sdk::trace!("t {}", 1);
    wasmjob_sdk::debug!("d");
    wasmjob_sdk::info!("i {x}", x = 2);
    wasmjob_sdk::warn!("w");
    wasmjob_sdk::error!("e");
    wasmjob_sdk::log(Level::Info, "plain");
    wasmjob_sdk::progress(50, "half");
    let log = |level, message: &str| Recorded::Log {
        level,
        message: message.to_owned(),
    };
    assert_eq!(
        testing::take(),
        [
            log(Level::Trace, "t 1"),
            log(Level::Debug, "d"),
            log(Level::Info, "i 2"),
            log(Level::Warn, "w"),
            log(Level::Error, "e"),
            log(Level::Info, "plain"),
            Recorded::Progress {
                percent: 50,
                note: "half".to_owned(),
            },
        ]
    );
    assert_eq!(testing::take(), [], "taken once");
}

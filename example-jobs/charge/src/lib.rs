//! The payment step of an order, through a payment service:
//! `{"order_id": "A-1", "amount_cents": 1200}` →
//! `{"charge_id": "ch_...", "order_id": "A-1"}`.
//!
//! The module needs the configuration value `payments_url` (the service's
//! base URL, whose origin is granted to the module too) and the secret
//! `payments_key`. It POSTs `{"order_id", "amount_cents"}` to
//! `{payments_url}/charges` with `authorization: Bearer <key>` and an
//! `idempotency-key` made from the order id, so that a retry after a lost
//! answer does not charge twice: the service answers the first charge
//! again.
//!
//! A `200` or `201` with `{"id": "...", "status": "succeeded"}` completes
//! the job. A `402` fails it for good (`payment declined: <reason>`), as do
//! any other `4xx`, another charge status and a missing configuration
//! value or secret; a `5xx`, `408`, `429`, a timeout or a failed connection
//! fails the attempt retryably.

use serde::{Deserialize, Serialize};
use std::time::Duration;
use wasmjob_sdk::serde_json::Value;
use wasmjob_sdk::{JobError, http};

/// How long each wait (connecting, the answer) may take.
const TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Deserialize)]
struct Input {
    order_id: String,
    amount_cents: u64,
}

/// The body sent to the payment service.
#[derive(Serialize)]
struct ChargeRequest<'a> {
    order_id: &'a str,
    amount_cents: u64,
}

/// What the payment service answers for a charge.
#[derive(Deserialize)]
struct Charge {
    id: String,
    status: String,
}

#[derive(Debug, PartialEq, Deserialize, Serialize)]
struct Output {
    charge_id: String,
    order_id: String,
}

#[wasmjob_sdk::job]
fn charge(input: Input) -> Result<Output, JobError> {
    if input.amount_cents == 0 {
        return Err(JobError::fatal("amount_cents must be above 0"));
    }
    let base = wasmjob_sdk::config("payments_url").ok_or_else(|| {
        JobError::fatal("the configuration value `payments_url` is not granted to this module")
    })?;
    let key = wasmjob_sdk::secret("payments_key").ok_or_else(|| {
        JobError::fatal("the secret `payments_key` is not granted to this module")
    })?;
    let url = format!("{}/charges", base.trim_end_matches('/'));
    let response = http::Request::post(&url)
        .header("authorization", &format!("Bearer {key}"))
        .header("idempotency-key", &format!("order-{}", input.order_id))
        .json(&ChargeRequest {
            order_id: &input.order_id,
            amount_cents: input.amount_cents,
        })
        .timeout(TIMEOUT)
        .send()?;
    match response.status {
        200 | 201 => {}
        402 => {
            return Err(JobError::fatal(format!(
                "payment declined: {}",
                reason(&response)
            )));
        }
        status => {
            // 4xx and 5xx: retryable or fatal as the status says.
            response.error_for_status()?;
            return Err(JobError::fatal(format!(
                "the payment service answered {status}, not 200 or 201"
            )));
        }
    }
    let charge: Charge = response.json()?;
    if charge.status != "succeeded" {
        return Err(JobError::fatal(format!(
            "charge {} for order {} is `{}`, not `succeeded`",
            charge.id, input.order_id, charge.status
        )));
    }
    wasmjob_sdk::info!(
        "charged {} cents for order {}: {}",
        input.amount_cents,
        input.order_id,
        charge.id
    );
    Ok(Output {
        charge_id: charge.id,
        order_id: input.order_id,
    })
}

/// Why the service declined: the `message` or `error` of a JSON body
/// (`error` may hold a `message` itself), else the body as text.
fn reason(response: &http::Response) -> String {
    let from_json = response.json::<Value>().ok().and_then(|body| {
        [&body["message"], &body["error"], &body["error"]["message"]]
            .into_iter()
            .find_map(|v| v.as_str().map(str::to_owned))
    });
    let text = from_json.unwrap_or_else(|| response.text().trim().to_owned());
    if text.is_empty() {
        "no reason given".to_owned()
    } else {
        text.chars().take(200).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use wasmjob_sdk::http::{Error, ErrorKind, Method, Response};
    use wasmjob_sdk::serde_json::json;
    use wasmjob_sdk::testing;

    fn order() -> Input {
        Input {
            order_id: "A-1".into(),
            amount_cents: 1200,
        }
    }

    fn granted() {
        testing::set_config("payments_url", "https://pay.example/v1/");
        testing::set_secret("payments_key", "sk_test_0123456789");
    }

    #[test]
    fn charges_the_order_and_returns_the_charge_id() {
        granted();
        testing::set_http(|_| {
            Ok(Response::new(201).with_json(&json!({"id": "ch_1", "status": "succeeded"})))
        });
        let output = charge(order()).unwrap();
        assert_eq!(
            output,
            Output {
                charge_id: "ch_1".into(),
                order_id: "A-1".into()
            }
        );
        let sent = testing::take_requests();
        assert_eq!(sent.len(), 1);
        let request = &sent[0];
        assert_eq!(request.method(), Method::Post);
        assert_eq!(request.url(), "https://pay.example/v1/charges");
        assert_eq!(
            request.header_value("authorization"),
            Some("Bearer sk_test_0123456789")
        );
        assert_eq!(request.header_value("idempotency-key"), Some("order-A-1"));
        assert_eq!(
            request.body_json::<Value>().unwrap(),
            json!({"order_id": "A-1", "amount_cents": 1200})
        );
        assert_eq!(request.timeout_duration(), Some(TIMEOUT));
    }

    #[test]
    fn a_missing_url_or_key_is_fatal_and_named() {
        let error = charge(order()).unwrap_err();
        assert!(error.is_fatal());
        assert!(error.message().contains("`payments_url`"), "{error:?}");

        testing::set_config("payments_url", "https://pay.example");
        let error = charge(order()).unwrap_err();
        assert!(error.is_fatal());
        assert!(error.message().contains("`payments_key`"), "{error:?}");
        assert!(testing::take_requests().is_empty());
    }

    fn answered(response: Response) -> JobError {
        granted();
        testing::set_http(move |_| Ok(response.clone()));
        charge(order()).unwrap_err()
    }

    #[test]
    fn a_decline_is_fatal_with_its_reason() {
        let error =
            answered(Response::new(402).with_json(&json!({"error": {"message": "card expired"}})));
        assert!(error.is_fatal());
        assert_eq!(error.message(), "payment declined: card expired");

        let error = answered(Response::new(402).with_body("insufficient funds\n"));
        assert_eq!(error.message(), "payment declined: insufficient funds");

        let error = answered(Response::new(402));
        assert_eq!(error.message(), "payment declined: no reason given");
    }

    #[test]
    fn service_trouble_is_retried() {
        for status in [500, 503, 429, 408] {
            let error = answered(Response::new(status));
            assert!(error.is_retryable(), "{status}: {error:?}");
            assert_eq!(
                error.message(),
                format!("https://pay.example answered {status}")
            );
        }
        granted();
        testing::set_http(|_| {
            Err(Error::new(
                ErrorKind::Timeout,
                "request to https://pay.example failed: connecting timed out",
            ))
        });
        assert!(charge(order()).unwrap_err().is_retryable());
    }

    #[test]
    fn other_answers_are_fatal() {
        assert!(answered(Response::new(400)).is_fatal());
        assert!(answered(Response::new(401)).is_fatal());
        let error = answered(Response::new(302).with_header("location", "/elsewhere"));
        assert!(error.is_fatal());
        assert_eq!(
            error.message(),
            "the payment service answered 302, not 200 or 201"
        );
        let error =
            answered(Response::new(200).with_json(&json!({"id": "ch_2", "status": "pending"})));
        assert!(error.is_fatal());
        assert_eq!(
            error.message(),
            "charge ch_2 for order A-1 is `pending`, not `succeeded`"
        );
        let error = answered(Response::new(200).with_body("<html>"));
        assert!(error.is_fatal());
        assert!(
            error
                .message()
                .starts_with("the response from https://pay.example (200) does not decode"),
            "{error:?}"
        );
    }

    #[test]
    fn a_zero_amount_is_fatal() {
        let error = charge(Input {
            order_id: "A-1".into(),
            amount_cents: 0,
        })
        .unwrap_err();
        assert!(error.is_fatal());
    }
}

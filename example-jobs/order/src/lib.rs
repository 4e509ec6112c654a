//! The steps of an e-commerce order, one module for the four of them
//! (`{"step": "payment", "order": "A-1", ...}`), each reading what the
//! steps before it produced:
//!
//! - `payment` `{"amount": 42.5}` → `{"charged": 42.5, "receipt": "rcpt-A-1"}`
//! - `inventory` `{"items": ["mug"], "in_stock": true}` → `{"reserved": ["mug"]}`;
//!   with `"in_stock": false` a fatal `out of stock: mug`
//! - `shipping`, after `payment` and `inventory` → `{"tracking": "TRK-A-1", ...}`
//! - `email` `{"to": "ada@example.com"}`, after `shipping` → `{"to", "body"}`

use serde::{Deserialize, Serialize};
use wasmjob_sdk::{JobError, dependency_output};

#[derive(Deserialize)]
struct Input {
    step: String,
    order: String,
    #[serde(default)]
    amount: f64,
    #[serde(default)]
    items: Vec<String>,
    #[serde(default = "yes")]
    in_stock: bool,
    #[serde(default)]
    to: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize, Serialize)]
struct Payment {
    charged: f64,
    receipt: String,
}

#[derive(Deserialize, Serialize)]
struct Inventory {
    reserved: Vec<String>,
}

#[derive(Deserialize, Serialize)]
struct Shipping {
    tracking: String,
    items: Vec<String>,
    receipt: String,
}

#[derive(Serialize)]
struct Email {
    to: String,
    body: String,
}

#[wasmjob_sdk::job]
fn order(input: Input) -> Result<wasmjob_sdk::serde_json::Value, JobError> {
    let output = match input.step.as_str() {
        "payment" => to_json(Payment {
            charged: input.amount,
            receipt: format!("rcpt-{}", input.order),
        }),
        "inventory" if !input.in_stock => {
            return Err(JobError::fatal(format!(
                "out of stock: {}",
                input.items.join(", ")
            )));
        }
        "inventory" => to_json(Inventory {
            reserved: input.items,
        }),
        "shipping" => {
            let payment: Payment = dependency_output("payment")?;
            let inventory: Inventory = dependency_output("inventory")?;
            to_json(Shipping {
                tracking: format!("TRK-{}", input.order),
                items: inventory.reserved,
                receipt: payment.receipt,
            })
        }
        "email" => {
            let shipping: Shipping = dependency_output("shipping")?;
            to_json(Email {
                to: input.to,
                body: format!(
                    "Order {} ({}) ships with {} (receipt {}).",
                    input.order,
                    shipping.items.join(", "),
                    shipping.tracking,
                    shipping.receipt
                ),
            })
        }
        other => return Err(JobError::fatal(format!("unknown step `{other}`"))),
    };
    wasmjob_sdk::info!("order {}: {} done", input.order, input.step);
    Ok(output)
}

fn to_json(value: impl Serialize) -> wasmjob_sdk::serde_json::Value {
    wasmjob_sdk::serde_json::to_value(value).expect("plain data serializes")
}

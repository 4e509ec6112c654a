//! The steps of a data pipeline, one module for all of them
//! (`{"step": "validate", "rows": [...]}`), each reading the output of
//! the step before it:
//!
//! - `validate` `{"rows": [{"value": 3.5}, ...]}` → `{"values": [3.5, ...]}`;
//!   a row without a non-negative number `value` is a fatal error naming it
//! - `transform`, after `validate` → `{"scaled": [...]}`, each value scaled
//!   to 0..1
//! - `features`, after `transform` → `{"count", "mean", "stddev"}`
//! - `analytics`, after `transform` and `features` → `{"outliers": [i, ...]}`
//!   (rows more than 2 standard deviations from the mean)
//! - `report`, after `features` and `analytics` → `{"summary": "..."}`
//! - `alert`, after `validate` behind an `on_failure: continue` edge →
//!   `{"alert": "validation failed: ..."}` when validation failed,
//!   `{"alert": null}` when it passed

use serde::{Deserialize, Serialize};
use wasmjob_sdk::serde_json::{Value, json};
use wasmjob_sdk::{DependencyState, JobError, dependency, dependency_output};

#[derive(Deserialize)]
struct Input {
    step: String,
    #[serde(default)]
    rows: Vec<Value>,
}

#[derive(Deserialize, Serialize)]
struct Validated {
    values: Vec<f64>,
}

#[derive(Deserialize, Serialize)]
struct Transformed {
    scaled: Vec<f64>,
}

#[derive(Deserialize, Serialize)]
struct Features {
    count: usize,
    mean: f64,
    stddev: f64,
}

#[derive(Deserialize, Serialize)]
struct Analytics {
    outliers: Vec<usize>,
}

#[wasmjob_sdk::job]
fn pipeline(input: Input) -> Result<Value, JobError> {
    let output = match input.step.as_str() {
        "validate" => json!(validate(&input.rows)?),
        "transform" => {
            let validated: Validated = dependency_output("validate")?;
            let max = validated.values.iter().copied().fold(0.0, f64::max);
            let scale = if max > 0.0 { max } else { 1.0 };
            json!(Transformed {
                scaled: validated.values.iter().map(|v| v / scale).collect(),
            })
        }
        "features" => {
            let data: Transformed = dependency_output("transform")?;
            json!(features(&data.scaled))
        }
        "analytics" => {
            let data: Transformed = dependency_output("transform")?;
            let features: Features = dependency_output("features")?;
            let outliers = data
                .scaled
                .iter()
                .enumerate()
                .filter(|(_, v)| {
                    features.stddev > 0.0 && ((*v - features.mean) / features.stddev).abs() > 2.0
                })
                .map(|(i, _)| i)
                .collect();
            json!(Analytics { outliers })
        }
        "report" => {
            let features: Features = dependency_output("features")?;
            let analytics: Analytics = dependency_output("analytics")?;
            json!({"summary": format!(
                "{} rows, mean {:.2}, {} outlier(s) at {:?}",
                features.count,
                features.mean,
                analytics.outliers.len(),
                analytics.outliers
            )})
        }
        "alert" => {
            let validate = dependency("validate")
                .ok_or_else(|| JobError::fatal("alert runs after `validate`"))?;
            match validate.state {
                DependencyState::Completed => json!({"alert": null}),
                _ => {
                    let why = validate.error.unwrap_or_else(|| validate.state.to_string());
                    wasmjob_sdk::error!("validation job {} failed: {why}", validate.job);
                    json!({"alert": format!("validation failed: {why}")})
                }
            }
        }
        other => return Err(JobError::fatal(format!("unknown step `{other}`"))),
    };
    Ok(output)
}

fn validate(rows: &[Value]) -> Result<Validated, JobError> {
    let mut values = Vec::with_capacity(rows.len());
    for (i, row) in rows.iter().enumerate() {
        match row.get("value").and_then(Value::as_f64) {
            Some(value) if value >= 0.0 => values.push(value),
            _ => {
                return Err(JobError::fatal(format!(
                    "row {i}: `value` must be a non-negative number, got {row}"
                )));
            }
        }
    }
    if values.is_empty() {
        return Err(JobError::fatal("no rows"));
    }
    Ok(Validated { values })
}

fn features(values: &[f64]) -> Features {
    let count = values.len();
    let mean = values.iter().sum::<f64>() / count.max(1) as f64;
    let variance = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / count.max(1) as f64;
    Features {
        count,
        mean,
        stddev: variance.sqrt(),
    }
}

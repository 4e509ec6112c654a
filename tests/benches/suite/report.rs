//! Figures, targets, the printed table and the JSON document.

use serde_json::{Value, json};

/// Percentiles of a set of samples.
#[derive(Clone, Copy, Debug)]
pub struct Stats {
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
    pub mean: f64,
    pub count: usize,
}

impl Stats {
    /// Percentiles of `samples` (any order; at least one).
    pub fn of(mut samples: Vec<f64>) -> Stats {
        assert!(!samples.is_empty(), "no samples");
        samples.sort_by(f64::total_cmp);
        let pick = |q: f64| samples[((samples.len() - 1) as f64 * q).round() as usize];
        Stats {
            p50: pick(0.5),
            p99: pick(0.99),
            max: samples[samples.len() - 1],
            mean: samples.iter().sum::<f64>() / samples.len() as f64,
            count: samples.len(),
        }
    }

    /// As JSON, with the unit in the keys' suffix.
    pub fn json(&self, unit: &str) -> Value {
        json!({
            format!("p50_{unit}"): self.p50, format!("p99_{unit}"): self.p99,
            format!("max_{unit}"): self.max, format!("mean_{unit}"): self.mean,
            "samples": self.count,
        })
    }
}

/// What a figure should be.
#[derive(Clone, Copy, Debug)]
pub enum Target {
    AtMost(f64),
    AtLeast(f64),
}

/// One line of the table.
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: &'static str,
    pub target: Option<Target>,
}

/// One scenario's figures and its JSON.
pub struct Section {
    pub title: String,
    pub figures: Vec<Figure>,
    pub json: Value,
}

impl Section {
    pub fn new(title: impl Into<String>) -> Section {
        Section {
            title: title.into(),
            figures: Vec::new(),
            json: json!({}),
        }
    }

    /// Adds a figure without a target.
    pub fn figure(&mut self, name: impl Into<String>, value: f64, unit: &'static str) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            target: None,
        });
    }

    /// Adds a figure with its target.
    pub fn target(&mut self, name: impl Into<String>, value: f64, unit: &'static str, t: Target) {
        self.figures.push(Figure {
            name: name.into(),
            value,
            unit,
            target: Some(t),
        });
    }

    /// Sets a JSON field.
    pub fn set(&mut self, key: &str, value: Value) {
        self.json[key] = value;
    }
}

impl Figure {
    fn met(&self) -> Option<bool> {
        self.target.map(|t| match t {
            Target::AtMost(limit) => self.value <= limit,
            Target::AtLeast(floor) => self.value >= floor,
        })
    }
}

fn number(value: f64) -> String {
    let magnitude = value.abs();
    if magnitude >= 10_000.0 {
        let whole = value.round() as i64;
        let digits = whole.abs().to_string();
        let mut grouped = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                grouped.push(',');
            }
            grouped.push(c);
        }
        if whole < 0 {
            format!("-{grouped}")
        } else {
            grouped
        }
    } else if magnitude >= 100.0 {
        format!("{value:.0}")
    } else if magnitude >= 10.0 {
        format!("{value:.1}")
    } else {
        format!("{value:.2}")
    }
}

/// Prints the table; a quick run's figures are not judged.
pub fn print(sections: &[Section], quick: bool) {
    println!();
    if quick {
        println!("quick run: sizes shrunk to check correctness, figures not judged");
    }
    println!(
        "{:<52} {:>14} {:<8} {:>16}",
        "figure", "value", "unit", "target"
    );
    for section in sections {
        println!("{}", section.title);
        for f in &section.figures {
            let target = match (f.target, f.met().filter(|_| !quick)) {
                (Some(Target::AtMost(v)), Some(met)) => {
                    format!("≤ {} {}", number(v), if met { "met" } else { "MISSED" })
                }
                (Some(Target::AtLeast(v)), Some(met)) => {
                    format!("≥ {} {}", number(v), if met { "met" } else { "MISSED" })
                }
                (Some(Target::AtMost(v)), None) => format!("≤ {}", number(v)),
                (Some(Target::AtLeast(v)), None) => format!("≥ {}", number(v)),
                _ => String::new(),
            };
            println!(
                "  {:<50} {:>14} {:<8} {:>16}",
                f.name,
                number(f.value),
                f.unit,
                target
            );
        }
    }
    println!();
}

/// The whole run as JSON: machine, settings, and every section's figures.
pub fn document(sections: &[Section], quick: bool) -> Value {
    let mut scenarios = serde_json::Map::new();
    for section in sections {
        let figures: Vec<Value> = section
            .figures
            .iter()
            .map(|f| {
                json!({
                    "name": f.name, "value": f.value, "unit": f.unit,
                    "target": f.target.map(|t| match t {
                        Target::AtMost(v) => json!({"at_most": v}),
                        Target::AtLeast(v) => json!({"at_least": v}),
                    }),
                    "met": if quick { None } else { f.met() },
                })
            })
            .collect();
        let mut entry = section.json.clone();
        entry["figures"] = Value::Array(figures);
        scenarios.insert(section.title.clone(), entry);
    }
    json!({
        "quick": quick,
        "machine": machine(),
        "scenarios": scenarios,
    })
}

fn machine() -> Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("model name"))
                .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
        })
        .unwrap_or_default();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default();
    json!({
        "cores": std::thread::available_parallelism().map_or(0, |n| n.get()),
        "cpu": cpu,
        "kernel": kernel,
        "profile": if cfg!(debug_assertions) { "debug" } else { "release" },
    })
}

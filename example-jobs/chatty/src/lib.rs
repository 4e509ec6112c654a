//! Logs and prints `lines` lines, reports `progress_steps` steps and returns a string of `output_bytes` bytes, to exercise the host's bounds.

use serde::Deserialize;
use wasmjob_sdk::JobError;

#[derive(Deserialize)]
#[serde(default)]
struct Input {
    /// Lines to log, each also printed to stderr.
    lines: u64,
    /// Bytes in each line.
    bytes_per_line: usize,
    /// Progress reports, spread evenly over the lines.
    progress_steps: u64,
    /// Bytes in the returned string (JSON adds two quotes).
    output_bytes: usize,
}

impl Default for Input {
    fn default() -> Self {
        Input {
            lines: 10_000,
            bytes_per_line: 100,
            progress_steps: 100,
            output_bytes: 0,
        }
    }
}

#[wasmjob_sdk::job]
fn chatty(input: Option<Input>) -> Result<String, JobError> {
    let Input {
        lines,
        bytes_per_line,
        progress_steps: steps,
        output_bytes,
    } = input.unwrap_or_default();
    let mut step = 0;
    for i in 0..lines {
        let line = line(i, bytes_per_line);
        wasmjob_sdk::info!("{line}");
        eprintln!("{line}");
        // Report every step whose share of the lines is now done.
        while step < steps && (step + 1) * lines <= (i + 1) * steps {
            step += 1;
            report(step, steps, i + 1);
        }
    }
    while step < steps {
        step += 1;
        report(step, steps, lines);
    }
    Ok("x".repeat(output_bytes))
}

/// `line <i> ` padded with dots (or cut) to exactly `len` bytes.
fn line(i: u64, len: usize) -> String {
    let mut line = format!("line {i} ");
    line.truncate(len);
    line.extend(std::iter::repeat_n('.', len - line.len()));
    line
}

fn report(step: u64, steps: u64, lines_done: u64) {
    let percent = (step * 100 / steps) as u8;
    wasmjob_sdk::progress(percent, &format!("{lines_done} lines"));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_have_the_asked_length() {
        assert_eq!(line(7, 20), "line 7 .............");
        assert_eq!(line(123, 4), "line");
        assert_eq!(line(0, 0), "");
    }

    #[test]
    fn returns_the_asked_bytes() {
        let input = Input {
            lines: 3,
            bytes_per_line: 10,
            progress_steps: 7,
            output_bytes: 5,
        };
        assert_eq!(chatty(Some(input)).unwrap(), "xxxxx");
    }
}

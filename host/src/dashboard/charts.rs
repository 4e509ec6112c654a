//! The overview's charts: activity per time bucket, drawn as SVG on the
//! server (no chart library, no script).
//!
//! [`Activity`] is what a chart shows, whatever it was read from; the
//! functions here only draw it.

use super::format::{clock, day_clock, escape};
use crate::clock::Millis;

/// What happened in one time bucket.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Bucket {
    /// Jobs (or attempts) that completed.
    pub completed: u64,
    /// Jobs (or attempts) that failed.
    pub failed: u64,
    /// Median run time, in ms, when known.
    pub p50_ms: Option<f64>,
    /// 95th percentile run time, in ms, when known.
    pub p95_ms: Option<f64>,
    /// Median wait (from due to started), in ms, when known.
    pub wait_p50_ms: Option<f64>,
    /// 95th percentile wait, in ms, when known.
    pub wait_p95_ms: Option<f64>,
}

/// Equal time buckets from `start`, oldest first.
#[derive(Clone, Debug, PartialEq)]
pub struct Activity {
    /// Where the first bucket starts.
    pub start: Millis,
    /// Each bucket's width.
    pub width_ms: Millis,
    /// The buckets.
    pub buckets: Vec<Bucket>,
}

impl Activity {
    /// Jobs completed over the whole span.
    pub fn completed(&self) -> u64 {
        self.buckets.iter().map(|b| b.completed).sum()
    }

    /// Jobs failed over the whole span.
    pub fn failed(&self) -> u64 {
        self.buckets.iter().map(|b| b.failed).sum()
    }

    /// Failed as a percentage of finished over the whole span.
    pub fn failure_rate(&self) -> Option<f64> {
        let finished = self.completed() + self.failed();
        (finished > 0).then(|| 100.0 * self.failed() as f64 / finished as f64)
    }

    fn end(&self) -> Millis {
        self.start + self.width_ms * self.buckets.len() as Millis
    }
}

const WIDTH: f64 = 600.0;
const HEIGHT: f64 = 140.0;
/// Room for the value labels on the left and the time labels below.
const LEFT: f64 = 44.0;
const BOTTOM: f64 = 18.0;
const TOP: f64 = 8.0;

fn frame(title: &str, body: &str, activity: &Activity, top_label: &str) -> String {
    let plot_bottom = HEIGHT - BOTTOM;
    format!(
        "<svg class=\"chart\" viewBox=\"0 0 {WIDTH} {HEIGHT}\" role=\"img\" \
         aria-label=\"{title}\" xmlns=\"http://www.w3.org/2000/svg\">\
         <title>{title}</title>\
         <line class=\"axis\" x1=\"{LEFT}\" y1=\"{plot_bottom}\" x2=\"{WIDTH}\" y2=\"{plot_bottom}\"/>\
         <line class=\"grid\" x1=\"{LEFT}\" y1=\"{TOP}\" x2=\"{WIDTH}\" y2=\"{TOP}\"/>\
         <text class=\"label\" x=\"{lx}\" y=\"{ty}\" text-anchor=\"end\">{top}</text>\
         <text class=\"label\" x=\"{lx}\" y=\"{plot_bottom}\" text-anchor=\"end\">0</text>\
         <text class=\"label\" x=\"{LEFT}\" y=\"{HEIGHT}\">{from}</text>\
         <text class=\"label\" x=\"{WIDTH}\" y=\"{HEIGHT}\" text-anchor=\"end\">{to}</text>\
         {body}</svg>",
        title = escape(title),
        lx = LEFT - 4.0,
        ty = TOP + 8.0,
        top = escape(top_label),
        from = axis_time(activity, activity.start),
        to = axis_time(activity, activity.end()),
    )
}

/// A time on the axis: the hour and minute, with the day when the span is
/// long enough to cross one.
fn axis_time(activity: &Activity, at: Millis) -> String {
    if activity.end() - activity.start > 12 * 60 * 60 * 1000 {
        day_clock(at)
    } else {
        clock(at)
    }
}

fn bucket_x(activity: &Activity, index: usize) -> (f64, f64) {
    let n = activity.buckets.len().max(1) as f64;
    let step = (WIDTH - LEFT) / n;
    (LEFT + step * index as f64, step)
}

fn y_of(value: f64, max: f64) -> f64 {
    let plot = HEIGHT - BOTTOM - TOP;
    HEIGHT - BOTTOM - plot * (value / max).min(1.0)
}

/// Completed and failed per bucket, as stacked bars.
pub fn throughput(activity: &Activity) -> String {
    let max = activity
        .buckets
        .iter()
        .map(|b| b.completed + b.failed)
        .max()
        .unwrap_or(0)
        .max(1) as f64;
    let mut body = String::new();
    for (i, bucket) in activity.buckets.iter().enumerate() {
        let (x, step) = bucket_x(activity, i);
        let w = (step - 1.0).max(0.5);
        let total = (bucket.completed + bucket.failed) as f64;
        if total == 0.0 {
            continue;
        }
        let y_total = y_of(total, max);
        let y_completed = y_of(bucket.completed as f64, max);
        let base = HEIGHT - BOTTOM;
        let tip = format!(
            "{}: {} completed, {} failed",
            clock(activity.start + activity.width_ms * i as Millis),
            bucket.completed,
            bucket.failed
        );
        body.push_str(&format!(
            "<g><title>{tip}</title>\
             <rect class=\"completed\" x=\"{x:.1}\" y=\"{y_completed:.1}\" width=\"{w:.1}\" height=\"{hc:.1}\"/>\
             <rect class=\"failed\" x=\"{x:.1}\" y=\"{y_total:.1}\" width=\"{w:.1}\" height=\"{hf:.1}\"/></g>",
            hc = base - y_completed,
            hf = y_completed - y_total,
        ));
    }
    frame(
        "jobs finished per bucket",
        &body,
        activity,
        &format!("{max}"),
    )
}

/// Failed as a share of finished, per bucket (0 to 100 %).
pub fn failure_rate(activity: &Activity) -> String {
    let mut body = String::new();
    for (i, bucket) in activity.buckets.iter().enumerate() {
        let finished = bucket.completed + bucket.failed;
        if finished == 0 {
            continue;
        }
        let rate = 100.0 * bucket.failed as f64 / finished as f64;
        let (x, step) = bucket_x(activity, i);
        let y = y_of(rate, 100.0);
        body.push_str(&format!(
            "<rect class=\"rate\" x=\"{x:.1}\" y=\"{y:.1}\" width=\"{w:.1}\" height=\"{h:.1}\">\
             <title>{at}: {rate:.0}% of {finished} failed</title></rect>",
            w = (step - 1.0).max(0.5),
            h = (HEIGHT - BOTTOM - y).max(0.5),
            at = clock(activity.start + activity.width_ms * i as Millis),
        ));
    }
    frame("failure rate", &body, activity, "100%")
}

/// Run time percentiles per bucket, as two lines (p50 and p95).
pub fn latency(activity: &Activity) -> String {
    percentile_lines(activity, "run time p50 and p95", |b| (b.p50_ms, b.p95_ms))
}

/// Wait percentiles per bucket (from due to started), as two lines.
pub fn wait(activity: &Activity) -> String {
    percentile_lines(activity, "wait p50 and p95", |b| {
        (b.wait_p50_ms, b.wait_p95_ms)
    })
}

type Pick = fn(&Bucket) -> (Option<f64>, Option<f64>);

fn percentile_lines(activity: &Activity, title: &str, pick: Pick) -> String {
    let max = activity
        .buckets
        .iter()
        .filter_map(|b| {
            let (p50, p95) = pick(b);
            p95.or(p50)
        })
        .fold(0.0_f64, f64::max)
        .max(1.0);
    let mut body = String::new();
    for (class, second) in [("p95", true), ("p50", false)] {
        let points: Vec<(f64, f64)> = activity
            .buckets
            .iter()
            .enumerate()
            .filter_map(|(i, b)| {
                let (p50, p95) = pick(b);
                let value = if second { p95 } else { p50 };
                let (x, step) = bucket_x(activity, i);
                value.map(|v| (x + step / 2.0, y_of(v, max)))
            })
            .collect();
        match points.as_slice() {
            [] => {}
            [(x, y)] => body.push_str(&format!(
                "<circle class=\"{class}\" cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"2.5\"/>"
            )),
            points => {
                let list: Vec<String> = points
                    .iter()
                    .map(|(x, y)| format!("{x:.1},{y:.1}"))
                    .collect();
                body.push_str(&format!(
                    "<polyline class=\"{class}\" points=\"{}\"/>",
                    list.join(" ")
                ));
            }
        }
    }
    frame(
        title,
        &body,
        activity,
        &super::format::millis(max.round() as i64),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn activity() -> Activity {
        Activity {
            start: 1_767_225_600_000,
            width_ms: 60_000,
            buckets: vec![
                Bucket {
                    completed: 3,
                    failed: 1,
                    p50_ms: Some(10.0),
                    p95_ms: Some(40.0),
                    wait_p50_ms: Some(2.0),
                    wait_p95_ms: Some(3.0),
                },
                Bucket::default(),
                Bucket {
                    completed: 0,
                    failed: 2,
                    p50_ms: Some(5.0),
                    p95_ms: Some(5.0),
                    wait_p50_ms: None,
                    wait_p95_ms: None,
                },
            ],
        }
    }

    #[test]
    fn throughput_draws_one_stack_per_busy_bucket_scaled_to_the_busiest() {
        let svg = throughput(&activity());
        assert_eq!(svg.matches("class=\"completed\"").count(), 2);
        assert_eq!(svg.matches("class=\"failed\"").count(), 2);
        assert!(svg.contains("00:00: 3 completed, 1 failed"), "{svg}");
        assert!(
            svg.contains(">4</text>"),
            "the top label is the busiest bucket: {svg}"
        );
        assert!(svg.contains(">00:03</text>"), "{svg}");
    }

    #[test]
    fn failure_rate_is_per_bucket_and_summed_over_the_span() {
        let a = activity();
        let svg = failure_rate(&a);
        assert!(svg.contains("25% of 4 failed"), "{svg}");
        assert!(svg.contains("100% of 2 failed"), "{svg}");
        assert_eq!(a.failure_rate(), Some(50.0));
        assert_eq!((a.completed(), a.failed()), (3, 3));
    }

    #[test]
    fn latency_draws_both_percentiles() {
        let svg = latency(&activity());
        assert!(svg.contains("<polyline class=\"p50\""), "{svg}");
        assert!(svg.contains("<polyline class=\"p95\""), "{svg}");
        assert!(svg.contains(">40 ms</text>"), "{svg}");
        let svg = wait(&activity());
        assert!(
            svg.contains("<circle class=\"p95\""),
            "one bucket has waits: {svg}"
        );
        assert!(svg.contains(">3 ms</text>"), "{svg}");
    }

    #[test]
    fn a_day_long_axis_names_the_days() {
        let day = Activity {
            start: 1_767_225_600_000,
            width_ms: 15 * 60_000,
            buckets: vec![Bucket::default(); 96],
        };
        let svg = throughput(&day);
        assert!(svg.contains(">Jan 01 00:00</text>"), "{svg}");
        assert!(svg.contains(">Jan 02 00:00</text>"), "{svg}");
    }
}

//! Auto-scaling: how many slots the pool should have, decided from what
//! it saw. Pure: the pool feeds it [`Sample`]s; tests feed it synthetic
//! ones with a driven clock.
//!
//! - **Up** while jobs wait, every slot is busy and the CPU has headroom:
//!   a job blocked on I/O (a service call, a timer) leaves the CPU idle,
//!   so more of them run at once; CPU-bound jobs gain nothing once the
//!   cores are full, so a saturated CPU holds the size. It grows by half
//!   (at least one slot) per decision, up to the maximum.
//! - **Down** after slots have sat idle for [`Scaling::idle_ms`]: by half
//!   the idle slots (at least one), never below the minimum nor below the
//!   busy slots.

use crate::clock::Millis;

/// The pool's bounds and pace.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaling {
    /// Fewest slots.
    pub min: usize,
    /// Most slots.
    pub max: usize,
    /// How long some slots must sit idle before the pool shrinks, in ms.
    pub idle_ms: i64,
    /// The share of all cores in use (0 to 1) at or above which the pool
    /// does not grow.
    pub cpu_busy: f64,
}

impl Scaling {
    /// A pool of `n` slots that never changes size.
    pub fn fixed(n: usize) -> Scaling {
        Scaling {
            min: n,
            max: n,
            idle_ms: DEFAULT_IDLE_MS,
            cpu_busy: DEFAULT_CPU_BUSY,
        }
    }

    /// Whether the size can change at all.
    pub fn is_fixed(&self) -> bool {
        self.min == self.max
    }
}

/// Idle time before scaling down: long enough that a burst's gaps do not
/// shrink the pool.
pub const DEFAULT_IDLE_MS: i64 = 30_000;
/// CPU share above which more slots would only queue for cores.
pub const DEFAULT_CPU_BUSY: f64 = 0.85;

/// What the pool saw at one moment.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Sample {
    /// When.
    pub now: Millis,
    /// The current target.
    pub target: usize,
    /// Slots running a job.
    pub busy: usize,
    /// Whether due jobs are waiting for a slot.
    pub waiting: bool,
    /// The share of all cores the process used since the last sample,
    /// when known.
    pub cpu: Option<f64>,
}

/// A change of the pool's size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Change {
    /// The new target.
    pub to: usize,
    /// Why, in a few words (also the metric's `reason` label).
    pub reason: &'static str,
}

impl Change {
    /// Whether the pool grows.
    pub fn is_up(&self, from: usize) -> bool {
        self.to > from
    }
}

/// Decides changes from samples; remembers since when slots are idle.
#[derive(Clone, Debug)]
pub struct Scaler {
    scaling: Scaling,
    idle_since: Option<Millis>,
}

impl Scaler {
    /// A scaler within `scaling`.
    pub fn new(scaling: Scaling) -> Scaler {
        Scaler {
            scaling,
            idle_since: None,
        }
    }

    /// The change `sample` calls for, if any.
    pub fn decide(&mut self, sample: Sample) -> Option<Change> {
        let Scaling {
            min,
            max,
            idle_ms,
            cpu_busy,
        } = self.scaling;
        let target = sample.target;
        if target < min || target > max {
            return Some(Change {
                to: target.clamp(min, max),
                reason: "bounds",
            });
        }
        let full = sample.busy >= target;
        if full {
            self.idle_since = None;
            let cpu_free = sample.cpu.is_none_or(|cpu| cpu < cpu_busy);
            if sample.waiting && target < max && cpu_free {
                let to = (target + (target / 2).max(1)).min(max);
                return Some(Change {
                    to,
                    reason: "jobs_waiting",
                });
            }
            return None;
        }
        let since = *self.idle_since.get_or_insert(sample.now);
        if sample.now - since < idle_ms || target <= min {
            return None;
        }
        self.idle_since = Some(sample.now);
        let idle = target - sample.busy;
        let to = (target - (idle / 2).max(1)).max(min).max(sample.busy);
        (to < target).then_some(Change { to, reason: "idle" })
    }
}

/// Reads the process's CPU time, to tell the share of the cores in use.
#[derive(Debug)]
pub struct CpuMeter {
    last: Option<(std::time::Instant, f64)>,
    cores: f64,
}

impl CpuMeter {
    /// A meter over `cores` cores.
    pub fn new(cores: usize) -> CpuMeter {
        CpuMeter {
            last: None,
            cores: cores.max(1) as f64,
        }
    }

    /// The share of all cores used since the previous call (`None` on the
    /// first call, or where the process's CPU time cannot be read).
    pub fn sample(&mut self) -> Option<f64> {
        let now = std::time::Instant::now();
        let cpu = process_cpu_seconds()?;
        let previous = self.last.replace((now, cpu));
        let (then, was) = previous?;
        let wall = now.duration_since(then).as_secs_f64();
        (wall > 0.0).then(|| ((cpu - was) / wall / self.cores).clamp(0.0, 1.0))
    }
}

/// User plus system CPU time of this process, from `/proc/self/stat`
/// (Linux; in clock ticks of 1/100 s, the kernel's fixed `USER_HZ`).
fn process_cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // Fields after the command name (which may hold spaces) in brackets.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_ascii_whitespace().collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 here.
    let user: f64 = fields.get(11)?.parse().ok()?;
    let system: f64 = fields.get(12)?.parse().ok()?;
    Some((user + system) / 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scaler(min: usize, max: usize) -> Scaler {
        Scaler::new(Scaling {
            min,
            max,
            idle_ms: 1_000,
            cpu_busy: 0.85,
        })
    }

    fn sample(now: Millis, target: usize, busy: usize, waiting: bool, cpu: f64) -> Sample {
        Sample {
            now,
            target,
            busy,
            waiting,
            cpu: Some(cpu),
        }
    }

    #[test]
    fn jobs_waiting_on_a_full_pool_with_cpu_to_spare_grow_it_by_half() {
        let mut s = scaler(2, 16);
        let change = s.decide(sample(0, 4, 4, true, 0.2)).unwrap();
        assert_eq!(
            change,
            Change {
                to: 6,
                reason: "jobs_waiting"
            }
        );
        assert_eq!(s.decide(sample(1, 2, 2, true, 0.2)).unwrap().to, 3);
        // Capped at the maximum.
        assert_eq!(s.decide(sample(2, 14, 14, true, 0.2)).unwrap().to, 16);
        assert_eq!(s.decide(sample(3, 16, 16, true, 0.2)), None);
    }

    #[test]
    fn a_busy_cpu_or_no_waiting_job_holds_the_size() {
        let mut s = scaler(2, 16);
        // CPU-bound jobs: more slots would only wait for cores.
        assert_eq!(s.decide(sample(0, 4, 4, true, 0.95)), None);
        // Every slot busy, nothing waiting.
        assert_eq!(s.decide(sample(1, 4, 4, false, 0.1)), None);
        // Slots free: jobs waiting get one without growing.
        assert_eq!(s.decide(sample(2, 4, 3, true, 0.1)), None);
    }

    #[test]
    fn unknown_cpu_counts_as_headroom() {
        let mut s = scaler(1, 4);
        let unknown = Sample {
            cpu: None,
            ..sample(0, 1, 1, true, 0.0)
        };
        assert_eq!(s.decide(unknown).unwrap().to, 2);
    }

    #[test]
    fn idle_slots_shrink_the_pool_after_the_idle_time_not_below_min_or_busy() {
        let mut s = scaler(2, 16);
        assert_eq!(s.decide(sample(0, 12, 2, false, 0.1)), None);
        assert_eq!(s.decide(sample(999, 12, 2, false, 0.1)), None);
        // Idle for 1 s: half the 10 idle slots go.
        let change = s.decide(sample(1_000, 12, 2, false, 0.1)).unwrap();
        assert_eq!(
            change,
            Change {
                to: 7,
                reason: "idle"
            }
        );
        // The idle time counts again from the change.
        assert_eq!(s.decide(sample(1_500, 7, 2, false, 0.1)), None);
        assert_eq!(s.decide(sample(2_000, 7, 2, false, 0.1)).unwrap().to, 5);
        assert_eq!(s.decide(sample(3_000, 5, 4, false, 0.1)).unwrap().to, 4);
        // Never below the minimum.
        assert_eq!(s.decide(sample(4_000, 3, 0, false, 0.1)).unwrap().to, 2);
        assert_eq!(s.decide(sample(9_000, 2, 0, false, 0.1)), None);
    }

    #[test]
    fn a_full_pool_resets_the_idle_time() {
        let mut s = scaler(1, 8);
        assert_eq!(s.decide(sample(0, 8, 1, false, 0.1)), None);
        assert_eq!(s.decide(sample(900, 8, 8, false, 0.1)), None);
        assert_eq!(s.decide(sample(1_500, 8, 1, false, 0.1)), None);
        assert!(s.decide(sample(2_500, 8, 1, false, 0.1)).is_some());
    }

    #[test]
    fn a_target_outside_the_bounds_is_brought_back() {
        let mut s = scaler(2, 4);
        assert_eq!(s.decide(sample(0, 8, 0, false, 0.0)).unwrap().to, 4);
        assert_eq!(s.decide(sample(0, 1, 0, false, 0.0)).unwrap().to, 2);
    }

    #[test]
    fn the_cpu_meter_reads_this_process() {
        let mut meter = CpuMeter::new(1);
        if process_cpu_seconds().is_none() {
            return; // not Linux
        }
        assert_eq!(meter.sample(), None);
        // Spin until the kernel has counted some CPU time for it.
        let before = process_cpu_seconds().unwrap();
        let mut x = 0u64;
        while process_cpu_seconds().unwrap() < before + 0.02 {
            for _ in 0..100_000 {
                x = x.wrapping_mul(31).wrapping_add(1);
            }
        }
        std::hint::black_box(x);
        let share = meter.sample().expect("a share");
        assert!(share > 0.0 && share <= 1.0, "{share}");
    }
}

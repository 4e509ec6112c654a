//! Limit escalation: after an attempt fails by hitting a limit, the next
//! one runs with more of it, since the same input with the same budget
//! would fail the same way.

use crate::limits::Limits;
use crate::report::FailureKind;
use serde::Deserialize;

/// How limits grow after an attempt fails by hitting one. In the config
/// file it is the `[escalation]` section; its ceilings must lie within the
/// host's [`Ceilings`](super::Ceilings), checked at start-up.
#[derive(Clone, Copy, Debug, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Escalation {
    /// Multiply the exhausted limit by this (1.0 turns escalation off).
    pub factor: f64,
    /// Fuel never grows past this.
    pub max_fuel: u64,
    /// Memory never grows past this (bytes).
    pub max_memory_bytes: u64,
    /// The timeout never grows past this (milliseconds).
    pub max_timeout_ms: u64,
}

impl Default for Escalation {
    fn default() -> Self {
        Escalation {
            factor: 2.0,
            // Ten times the default, as the timeout's 300 s are ten times
            // its 30 s.
            max_fuel: 1_000_000_000_000,
            max_memory_bytes: 512 * 1024 * 1024,
            max_timeout_ms: 300_000,
        }
    }
}

impl Escalation {
    /// The limits for the next attempt after one that failed with `kind`.
    /// A limit already at or above its escalation ceiling stays as it is.
    pub fn next(&self, limits: Limits, kind: FailureKind) -> Limits {
        let grow = |value: u64, ceiling: u64| -> u64 {
            if value >= ceiling {
                return value;
            }
            ((value as f64 * self.factor) as u64).clamp(value, ceiling)
        };
        let mut next = limits;
        match kind {
            FailureKind::OutOfFuel => next.fuel = grow(limits.fuel, self.max_fuel),
            FailureKind::MemoryLimit => {
                next.memory_bytes = grow(limits.memory_bytes, self.max_memory_bytes)
            }
            FailureKind::Timeout => next.timeout_ms = grow(limits.timeout_ms, self.max_timeout_ms),
            _ => {}
        }
        next
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exhausted_limit_grows_up_to_its_ceiling() {
        let esc = Escalation {
            factor: 2.0,
            max_fuel: 300,
            max_memory_bytes: 3 << 20,
            max_timeout_ms: 250,
        };
        let limits = Limits {
            fuel: 100,
            memory_bytes: 1 << 20,
            timeout_ms: 100,
            ..Limits::default()
        };
        let next = esc.next(limits, FailureKind::OutOfFuel);
        assert_eq!(next.fuel, 200);
        assert_eq!(next.memory_bytes, limits.memory_bytes);
        assert_eq!(esc.next(next, FailureKind::OutOfFuel).fuel, 300);
        let memory = esc.next(limits, FailureKind::MemoryLimit);
        assert_eq!((memory.memory_bytes, memory.fuel), (2 << 20, 100));
        assert_eq!(
            esc.next(memory, FailureKind::MemoryLimit).memory_bytes,
            3 << 20
        );
        let timeout = esc.next(limits, FailureKind::Timeout);
        assert_eq!(timeout.timeout_ms, 200);
        assert_eq!(esc.next(timeout, FailureKind::Timeout).timeout_ms, 250);
        assert_eq!(esc.next(limits, FailureKind::Trap), limits);
    }

    #[test]
    fn a_limit_above_the_ceiling_is_left_alone() {
        let esc = Escalation {
            max_fuel: 10,
            ..Escalation::default()
        };
        let limits = Limits {
            fuel: 50,
            ..Limits::default()
        };
        assert_eq!(esc.next(limits, FailureKind::OutOfFuel).fuel, 50);
    }
}

//! Retry policies and their backoff arithmetic.

use serde::Deserialize;

/// How the delay before a retry grows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backoff {
    /// `base × 2^(n−1)` after the n-th failed attempt: 1s, 2s, 4s, 8s…
    Exponential,
    /// `base × n`: 1s, 2s, 3s…
    Linear,
    /// `base` every time.
    Fixed,
    /// No retries at all: the first failure is final.
    None,
}

impl Backoff {
    /// Every strategy.
    pub const ALL: [Backoff; 4] = [
        Backoff::Exponential,
        Backoff::Linear,
        Backoff::Fixed,
        Backoff::None,
    ];

    /// The snake_case name used in the API, the CLI and the config.
    pub fn as_str(self) -> &'static str {
        match self {
            Backoff::Exponential => "exponential",
            Backoff::Linear => "linear",
            Backoff::Fixed => "fixed",
            Backoff::None => "none",
        }
    }

    /// Parses [`as_str`](Self::as_str)'s names.
    pub fn parse(text: &str) -> Option<Backoff> {
        Backoff::ALL.into_iter().find(|b| b.as_str() == text)
    }
}

/// Default backoff base: one second.
pub const DEFAULT_RETRY_BASE_MS: u64 = 1_000;
/// Default ceiling on one backoff delay: one hour, so an exponential policy
/// never parks a job for days.
pub const DEFAULT_RETRY_MAX_DELAY_MS: u64 = 3_600_000;

/// A job's retry policy. In the config file it is the `[retry]` section.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RetryPolicy {
    /// How the delay grows.
    pub backoff: Backoff,
    /// The base delay in milliseconds.
    pub base_ms: u64,
    /// The largest delay in milliseconds.
    pub max_delay_ms: u64,
    /// Spread delays randomly over `[delay/2, delay]` so that jobs failing
    /// together do not retry together.
    pub jitter: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            backoff: Backoff::Exponential,
            base_ms: DEFAULT_RETRY_BASE_MS,
            max_delay_ms: DEFAULT_RETRY_MAX_DELAY_MS,
            jitter: false,
        }
    }
}

impl RetryPolicy {
    /// The delay in milliseconds after failed attempt number `attempt`
    /// (from 1), or `None` when the policy never retries. `random` is a
    /// number in `[0, 1)` used only with jitter. The delay never exceeds
    /// `max_delay_ms`, jitter included (a largest delay below the base
    /// makes every delay the largest).
    pub fn delay_ms(&self, attempt: u32, random: f64) -> Option<u64> {
        let n = u64::from(attempt.max(1));
        let delay = match self.backoff {
            Backoff::None => return None,
            Backoff::Fixed => self.base_ms,
            Backoff::Linear => self.base_ms.saturating_mul(n),
            Backoff::Exponential => {
                let shift = (n - 1).min(62) as u32;
                self.base_ms.saturating_mul(1u64 << shift)
            }
        };
        let delay = delay.min(self.max_delay_ms);
        Some(if self.jitter {
            let random = random.clamp(0.0, 1.0);
            delay / 2 + ((delay - delay / 2) as f64 * random) as u64
        } else {
            delay
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(backoff: Backoff) -> RetryPolicy {
        RetryPolicy {
            backoff,
            base_ms: 1_000,
            max_delay_ms: 5_000,
            jitter: false,
        }
    }

    #[test]
    fn each_strategy_grows_as_documented_up_to_the_cap() {
        let exp = policy(Backoff::Exponential);
        let delays: Vec<_> = (1..=4).map(|n| exp.delay_ms(n, 0.0).unwrap()).collect();
        assert_eq!(delays, [1_000, 2_000, 4_000, 5_000]);
        let linear = policy(Backoff::Linear);
        let delays: Vec<_> = (1..=7).map(|n| linear.delay_ms(n, 0.0).unwrap()).collect();
        assert_eq!(delays, [1_000, 2_000, 3_000, 4_000, 5_000, 5_000, 5_000]);
        assert_eq!(policy(Backoff::Fixed).delay_ms(4, 0.0), Some(1_000));
        assert_eq!(policy(Backoff::None).delay_ms(1, 0.0), None);
    }

    #[test]
    fn jitter_stays_within_half_to_full_delay_and_under_the_cap() {
        let p = RetryPolicy {
            jitter: true,
            ..policy(Backoff::Fixed)
        };
        assert_eq!(p.delay_ms(1, 0.0), Some(500));
        assert_eq!(p.delay_ms(1, 0.999_999), Some(999));
        let capped = RetryPolicy {
            jitter: true,
            ..policy(Backoff::Exponential)
        };
        assert_eq!(capped.delay_ms(10, 0.0), Some(2_500));
        assert_eq!(capped.delay_ms(10, 0.999_999), Some(4_999));
    }

    #[test]
    fn huge_values_saturate_instead_of_wrapping() {
        let p = RetryPolicy {
            backoff: Backoff::Exponential,
            base_ms: u64::MAX / 2,
            max_delay_ms: u64::MAX,
            jitter: false,
        };
        assert_eq!(p.delay_ms(40, 0.0), Some(u64::MAX));
    }

    #[test]
    fn names_round_trip() {
        for backoff in Backoff::ALL {
            assert_eq!(Backoff::parse(backoff.as_str()), Some(backoff));
        }
    }
}

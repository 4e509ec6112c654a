//! The host-wide bound on memory for reports in flight.
//!
//! Each channel of a report is bounded per attempt by its limit, and each
//! limit by the operator's ceiling; but many attempts at once, and
//! finished ones waiting for the recorder (a slow or full disk), would
//! still add up without bound. So a job starts only once the most its
//! report can keep ([`Limits::report_bytes`]) is reserved from this budget
//! (`queue.report_memory_bytes`), and the reservation is released when its
//! outcome is written. Jobs that do not fit wait in the buffer, claimed,
//! with their lease renewed.
//!
//! What a guest hands over in one call (a returned output, a log message,
//! an error) is copied out of its memory before it is cut to its bound:
//! that passing copy is bounded by the job's memory limit, like the guest's
//! memory itself, and not counted here.

use crate::limits::Limits;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Default budget: 1 GiB of reports in flight, hundreds of jobs at the
/// default limits, and every job at the default ceilings fits.
pub const DEFAULT_REPORT_MEMORY_BYTES: u64 = 1024 * 1024 * 1024;

/// The budget's unit: a semaphore permit per KiB.
const UNIT: u64 = 1024;

/// Host memory reserved for the reports of jobs in flight. Clones share
/// the budget.
#[derive(Clone, Debug)]
pub struct ReportBudget {
    total: u64,
    permits: Arc<Semaphore>,
    waits: Arc<AtomicU64>,
}

/// A job's share of the budget, returned when dropped.
#[derive(Debug)]
pub struct Reservation {
    _permit: OwnedSemaphorePermit,
}

impl ReportBudget {
    /// A budget of `bytes` (at least one unit).
    pub fn new(bytes: u64) -> ReportBudget {
        let units = (bytes / UNIT).clamp(1, Semaphore::MAX_PERMITS as u64 / 2);
        ReportBudget {
            total: units * UNIT,
            permits: Arc::new(Semaphore::new(units as usize)),
            waits: Arc::new(AtomicU64::new(0)),
        }
    }

    /// The budget, in bytes.
    pub fn total_bytes(&self) -> u64 {
        self.total
    }

    /// Bytes reserved now.
    pub fn reserved_bytes(&self) -> u64 {
        self.total - self.permits.available_permits() as u64 * UNIT
    }

    /// How many times a job waited for the budget before it could start.
    pub fn waits(&self) -> u64 {
        self.waits.load(Ordering::Relaxed)
    }

    /// Reserves what a report under `limits` can keep, waiting until it
    /// fits (a reservation larger than the whole budget takes all of it;
    /// the configuration is checked so that no job's does).
    pub async fn reserve(&self, limits: &Limits) -> Result<Reservation, AcquireError> {
        let total_units = self.total / UNIT;
        let units = limits
            .report_bytes()
            .div_ceil(UNIT)
            .clamp(1, total_units.min(u64::from(u32::MAX))) as u32;
        let permits = Arc::clone(&self.permits);
        let permit = match Arc::clone(&permits).try_acquire_many_owned(units) {
            Ok(permit) => permit,
            Err(_) => {
                self.waits.fetch_add(1, Ordering::Relaxed);
                permits.acquire_many_owned(units).await?
            }
        };
        Ok(Reservation { _permit: permit })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_reservation_waits_until_it_fits_and_returns_on_drop() {
        let limits = Limits::default();
        let budget = ReportBudget::new(limits.report_bytes() * 3 / 2);
        let first = budget.reserve(&limits).await.unwrap();
        assert!(budget.reserved_bytes() >= limits.report_bytes());
        let waiting = {
            let budget = budget.clone();
            tokio::spawn(async move { budget.reserve(&limits).await.map(drop) })
        };
        while budget.waits() == 0 {
            tokio::task::yield_now().await;
        }
        assert!(
            !waiting.is_finished(),
            "the second does not fit beside the first"
        );
        drop(first);
        waiting.await.unwrap().unwrap();
        assert_eq!(budget.reserved_bytes(), 0);
    }
}

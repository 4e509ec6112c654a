//! The memory limiter: caps linear memory summed over all memories of an
//! instance, and remembers the peak and whether a growth was refused.

use wasmtime::ResourceLimiter;

/// Largest table a job may have, in elements. Tables hold function
/// references; a million is far beyond any real program and keeps a hostile
/// module from reserving gigabytes of host memory through a table.
const MAX_TABLE_ELEMENTS: usize = 1_000_000;

/// Tracks and bounds the total linear memory of one invocation.
#[derive(Debug)]
pub struct MemoryLimiter {
    limit: u64,
    total: u64,
    peak: u64,
    last_growth: u64,
    denied: Option<u64>,
}

impl MemoryLimiter {
    /// A limiter allowing `limit` bytes in total.
    pub fn new(limit: u64) -> Self {
        MemoryLimiter {
            limit,
            total: 0,
            peak: 0,
            last_growth: 0,
            denied: None,
        }
    }

    /// The largest total reached, in bytes.
    pub fn peak(&self) -> u64 {
        self.peak
    }

    /// The total the guest asked for when a growth was refused, if one was.
    pub fn denied(&self) -> Option<u64> {
        self.denied
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        let growth = (desired as u64).saturating_sub(current as u64);
        let wanted = self.total.saturating_add(growth);
        if wanted > self.limit {
            // Refused growth returns -1 to the guest (or fails instantiation);
            // the flag lets the report say "memory_limit" whatever the guest
            // does next.
            self.denied = Some(wanted);
            return Ok(false);
        }
        self.total = wanted;
        self.last_growth = growth;
        self.peak = self.peak.max(self.total);
        Ok(true)
    }

    fn memory_grow_failed(&mut self, _error: wasmtime::Error) -> wasmtime::Result<()> {
        // The growth we approved did not happen (e.g. above the memory's own
        // maximum): take it back.
        self.total = self.total.saturating_sub(self.last_growth);
        self.last_growth = 0;
        Ok(())
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _maximum: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sums_memories_and_records_denial() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 60, None).unwrap());
        assert!(limiter.memory_growing(0, 30, None).unwrap());
        assert_eq!(limiter.peak(), 90);
        assert!(!limiter.memory_growing(60, 80, None).unwrap());
        assert_eq!(limiter.denied(), Some(110));
        assert_eq!(limiter.peak(), 90);
    }

    #[test]
    fn failed_growth_is_taken_back() {
        let mut limiter = MemoryLimiter::new(100);
        assert!(limiter.memory_growing(0, 50, None).unwrap());
        limiter
            .memory_grow_failed(wasmtime::Error::msg("too big"))
            .unwrap();
        assert!(limiter.memory_growing(0, 100, None).unwrap());
    }
}

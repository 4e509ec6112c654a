//! Background services that keep the queue moving: the rescuer (jobs whose
//! lease expired because their host died go back to retrying with a `lost`
//! attempt) and aging (long-waiting jobs gain priority so none starves).

use crate::queue::Queue;
use std::time::Duration;

/// Runs the rescuer and aging until the task is aborted. Rescues once at
/// once (start-up), then every half lease.
pub async fn run(queue: Queue) {
    let rescue_every = Duration::from_millis((queue.config().lease_ms / 2).max(10) as u64);
    let age_every = Duration::from_millis((queue.config().aging_ms / 2).max(10) as u64);
    let mut rescue = tokio::time::interval(rescue_every);
    let mut age = tokio::time::interval(age_every);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    age.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rescue.tick() => { rescue_once(&queue).await; }
            _ = age.tick() => { age_once(&queue).await; }
        }
    }
}

/// Moves jobs with expired leases back to retrying (or the dead letter);
/// returns how many.
pub async fn rescue_once(queue: &Queue) -> usize {
    match queue.store().rescue(queue.now()).await {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::warn!(jobs = ?ids, "rescued jobs whose lease expired");
                queue.changed(ids.iter().copied());
                queue.wake();
            }
            ids.len()
        }
        Err(error) => {
            tracing::error!(%error, "rescuing expired leases failed");
            0
        }
    }
}

/// At start-up of a host that holds its store exclusively: every job still
/// `running` was left by this host's previous process, which is gone, so
/// each is rescued now (a `lost` attempt) instead of when its lease
/// expires. Returns how many.
pub async fn recover(queue: &Queue) -> usize {
    match queue.store().rescue_all(queue.now()).await {
        Ok(ids) => {
            if !ids.is_empty() {
                tracing::warn!(jobs = ?ids, "recovered jobs left running by a previous process");
                queue.changed(ids.iter().copied());
                queue.wake();
            }
            ids.len()
        }
        Err(error) => {
            tracing::error!(%error, "recovering jobs left running failed");
            0
        }
    }
}

/// Applies one aging step; returns how many jobs moved.
pub async fn age_once(queue: &Queue) -> u64 {
    match queue
        .store()
        .age(queue.config().aging_ms, queue.now())
        .await
    {
        Ok(n) => n,
        Err(error) => {
            tracing::error!(%error, "aging failed");
            0
        }
    }
}

//! Background services that keep the queue moving: the rescuer (jobs whose
//! lease expired because their host died get a `lost` attempt, and the
//! policy decides what follows), aging (long-waiting jobs gain priority
//! so none starves), cron (schedules create their jobs on time) and the
//! history writer (what this host counted, flushed every few seconds;
//! rows past the keep age pruned), retention (finished jobs past their
//! age deleted in small batches) and the queue-wait alert check.
//!
//! Hosts sharing a store do the cluster-wide part once: rescues, aging,
//! retention, history pruning and the alert check run on the leader only
//! ([`leads`]); cron runs on every host, since a fire time is a
//! compare-and-set that one host wins ([`crate::store::JobStore::fire_schedule`]);
//! each host flushes its own history. [`run_clock`] keeps a host on the
//! store's clock.

use crate::clock::{FollowedClock, Millis};
use crate::job::JobId;
use crate::metrics::Rescue;
use crate::policy::Ending;
use crate::queue::Queue;
use crate::report::AttemptReport;
use crate::store::{AttemptRecord, JobStore, LeaseFilter, LeasedJob, Outcome, Recorded};
use std::time::Duration;

/// Whether this host leads the hosts sharing its store (always, for a
/// store it holds alone), recorded in its metrics. A host that cannot
/// tell (the database is unreachable) does not lead.
pub async fn leads(queue: &Queue) -> bool {
    let leads = match queue.store().lead().await {
        Ok(leads) => leads,
        Err(error) => {
            tracing::warn!(%error, "cannot tell whether this host leads; not leading");
            false
        }
    };
    let before = queue.metrics().leads();
    if leads != before {
        tracing::info!(leads, "leadership changed");
    }
    queue.metrics().set_leader(leads);
    leads
}

/// How often a host measures its offset from the store's clock.
const CLOCK_EVERY: Duration = Duration::from_secs(10);

/// Measures `clock`'s offset from the store's clock once; returns it (ms),
/// or `None` for a store without a clock of its own.
pub async fn follow_clock(
    store: &dyn JobStore,
    clock: &FollowedClock,
) -> crate::store::Result<Option<Millis>> {
    let before = clock.local();
    let Some(source) = store.clock().await? else {
        return Ok(None);
    };
    let after = clock.local();
    Ok(Some(clock.follow(before, source, after)))
}

/// Keeps `clock` on the store's clock until the task is aborted,
/// measuring every few seconds (clocks drift and get stepped).
pub async fn run_clock(queue: Queue, clock: std::sync::Arc<FollowedClock>) {
    let mut tick = tokio::time::interval(CLOCK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        match follow_clock(queue.store().as_ref(), &clock).await {
            Ok(Some(offset)) => queue.metrics().set_clock_offset(offset),
            Ok(None) => return,
            Err(error) => tracing::warn!(%error, "reading the store's clock failed"),
        }
    }
}

/// Most leased jobs one rescue pass reads at a time.
const RESCUE_PAGE: usize = 1_000;

/// Runs the rescuer and aging until the task is aborted. Rescues at once
/// (start-up), then every half lease.
pub async fn run(queue: Queue) {
    let rescue_every = Duration::from_millis((queue.config().lease_ms / 2).max(10) as u64);
    let age_every = Duration::from_millis((queue.config().aging_ms / 2).max(10) as u64);
    let mut rescue = tokio::time::interval(rescue_every);
    let mut age = tokio::time::interval(age_every);
    rescue.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    age.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rescue.tick() => {
                if leads(&queue).await {
                    rescue_once(&queue).await;
                }
            }
            _ = age.tick() => {
                if leads(&queue).await {
                    age_once(&queue).await;
                }
            }
        }
    }
}

/// The longest the cron task sleeps without looking again, so a change of
/// the system clock (which the sleep does not follow) is caught up with.
const CRON_MAX_SLEEP: Duration = Duration::from_secs(60);

/// How long the cron task waits after a failed pass before the next.
const CRON_RETRY: Duration = Duration::from_secs(1);

/// Runs the schedules until the task is aborted: a pass whenever the
/// earliest next fire time comes (a timer, not a polling loop) or a
/// schedule changes.
pub async fn run_cron(queue: Queue) {
    loop {
        let mut pause = Duration::ZERO;
        if let Err(error) = queue.fire_due_schedules().await {
            tracing::error!(%error, "firing due schedules failed");
            // Not at once again: what failed (the database, most likely)
            // gets a moment to recover.
            pause = CRON_RETRY;
        }
        let next = match queue.store().next_schedule_at().await {
            Ok(next) => next,
            Err(error) => {
                tracing::error!(%error, "reading the next fire time failed");
                None
            }
        };
        let sleep = next
            .map_or(CRON_MAX_SLEEP, |at| {
                let ms = u64::try_from(at.saturating_sub(queue.now())).unwrap_or(0);
                Duration::from_millis(ms).min(CRON_MAX_SLEEP)
            })
            .max(pause);
        tokio::select! {
            () = tokio::time::sleep(sleep) => {}
            () = queue.schedules_changed().notified() => {}
        }
    }
}

/// How often the history writer prunes rows past the keep age.
const HISTORY_PRUNE_EVERY: Duration = Duration::from_secs(60);

/// Runs the history writer until the task is aborted: flushes this host's
/// tally every [`history_flush_ms`](crate::queue::QueueConfig) and prunes
/// old rows every minute. (At shutdown, call
/// [`Queue::flush_history`] once more after the worker pool stopped.)
pub async fn run_history(queue: Queue) {
    let flush_every = Duration::from_millis(queue.config().history_flush_ms.max(10));
    let mut flush = tokio::time::interval(flush_every);
    let mut prune = tokio::time::interval(HISTORY_PRUNE_EVERY);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    prune.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = flush.tick() => {
                if let Err(error) = queue.flush_history().await {
                    tracing::warn!(%error, "writing the history failed; will retry");
                }
            }
            _ = prune.tick() => {
                if !leads(&queue).await {
                    continue;
                }
                if let Err(error) = queue.prune_history().await {
                    tracing::warn!(%error, "pruning the history failed");
                }
            }
        }
    }
}

/// Runs retention until the task is aborted (at once when the queue has
/// none configured): every `retention_interval_ms`, a pass of
/// [`Queue::prune_finished`], deleting old finished jobs one short batch
/// at a time.
pub async fn run_retention(queue: Queue) {
    let Some(retention) = queue.config().retention else {
        return;
    };
    let every = Duration::from_millis(queue.config().retention_interval_ms.max(10));
    let mut tick = tokio::time::interval(every);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if !leads(&queue).await {
            continue;
        }
        match queue.prune_finished(retention).await {
            Ok(run) if run.pruned.jobs > 0 => tracing::info!(
                jobs = run.pruned.jobs,
                workflows = run.pruned.workflows,
                batches = run.batches,
                longest_batch_ms = run.longest_batch.as_millis() as u64,
                "deleted finished jobs past their age"
            ),
            Ok(_) => {}
            Err(error) => tracing::warn!(%error, "deleting old finished jobs failed"),
        }
    }
}

/// How often queue waits are checked against the alert thresholds.
const ALERT_CHECK_EVERY: Duration = Duration::from_secs(5);

/// Checks queue waits against the alert webhooks' thresholds every few
/// seconds until the task is aborted (at once when no webhook has one).
pub async fn run_alerts(queue: Queue) {
    if !queue.alerts().is_some_and(|alerts| alerts.checks_waits()) {
        return;
    }
    let mut tick = tokio::time::interval(ALERT_CHECK_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        if leads(&queue).await {
            check_waits_once(&queue).await;
        }
    }
}

/// One check of every queue's oldest wait against the alert thresholds;
/// returns how many alerts were raised (a queue crossing a threshold).
pub async fn check_waits_once(queue: &Queue) -> usize {
    let Some(alerts) = queue.alerts() else {
        return 0;
    };
    match queue.queues().await {
        Ok(queues) => alerts.check_waits(&queues, queue.now()),
        Err(error) => {
            tracing::warn!(%error, "reading the queues for alerts failed");
            0
        }
    }
}

/// Rescues the jobs whose lease expired: a `lost` attempt each, then what
/// the policy decides (a retry after the backoff, or the dead letter).
/// Returns how many.
pub async fn rescue_once(queue: &Queue) -> usize {
    let rescued = rescue(queue, Which::Expired).await;
    if rescued > 0 {
        tracing::warn!(jobs = rescued, "rescued jobs whose lease expired");
    }
    rescued
}

/// At start-up of a host that holds its store exclusively: every job still
/// `running` was left by this host's previous process, which is gone, so
/// each is rescued now instead of when its lease expires. Returns how
/// many.
pub async fn recover(queue: &Queue) -> usize {
    recover_which(queue, Which::All).await
}

/// At start-up of a host sharing its store: the jobs still leased to this
/// host's identity were left by its previous process, which is gone, so
/// each is rescued now; other hosts' jobs are left to their hosts (or to
/// the leader's rescue once their leases expire). Returns how many.
pub async fn recover_own(queue: &Queue) -> usize {
    recover_which(queue, Which::Own).await
}

async fn recover_which(queue: &Queue, which: Which) -> usize {
    let rescued = rescue(queue, which).await;
    if rescued > 0 {
        tracing::warn!(
            jobs = rescued,
            "recovered jobs left running by a previous process"
        );
    }
    rescued
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Which {
    /// Leases expired before now.
    Expired,
    /// Every lease (the store is this host's alone).
    All,
    /// This host's own leases, expired or not.
    Own,
}

async fn rescue(queue: &Queue, which: Which) -> usize {
    let now = queue.now();
    let filter = match which {
        Which::Expired => LeaseFilter::ExpiredBefore(now),
        Which::All => LeaseFilter::All,
        Which::Own => LeaseFilter::OwnedBy(queue.config().owner.clone()),
    };
    let mut rescued = 0;
    loop {
        let leased = match queue.store().leased_jobs(filter.clone(), RESCUE_PAGE).await {
            Ok(leased) => leased,
            Err(error) => {
                tracing::error!(%error, "listing leased jobs failed");
                return rescued;
            }
        };
        let full_page = leased.len() == RESCUE_PAGE;
        // A lease this host still holds is alive whatever the clock says
        // (a step of the clock forward past the lease, a long stall before
        // the renewal): never rescued here.
        let held: std::collections::HashSet<(JobId, String)> = queue
            .registry()
            .leases()
            .into_iter()
            .map(|lease| (lease.id, lease.token))
            .collect();
        let leased: Vec<LeasedJob> = leased
            .into_iter()
            .filter(|leased| !held.contains(&(leased.lease.id, leased.lease.token.clone())))
            .collect();
        let (jobs, outcomes): (Vec<_>, Vec<Outcome>) = leased
            .into_iter()
            .map(|leased| (leased.job.clone(), lost(queue, leased, now, which)))
            .unzip();
        let ids: Vec<_> = outcomes.iter().map(|o| o.lease.id).collect();
        let results = match which {
            Which::Expired => queue.store().rescue_if_expired(outcomes.clone(), now).await,
            Which::All | Which::Own => queue.store().record_if_leased(outcomes.clone()).await,
        };
        let results = match results {
            Ok(results) => results,
            Err(error) => {
                tracing::error!(%error, "rescuing jobs failed");
                return rescued;
            }
        };
        let reason = match which {
            Which::Expired => Rescue::Expired,
            Which::All | Which::Own => Rescue::Startup,
        };
        let applied: Vec<_> = ids
            .into_iter()
            .zip(results)
            .zip(jobs.iter().zip(&outcomes))
            .filter_map(|((id, result), (job, outcome))| match result {
                Ok(Recorded::Applied | Recorded::Released) => {
                    queue.note_outcome(job, outcome);
                    Some(id)
                }
                Ok(Recorded::Stale) => None,
                Err(error) => {
                    tracing::error!(%error, job_id = id, "rescuing a job failed");
                    None
                }
            })
            .collect();
        rescued += applied.len();
        if !applied.is_empty() {
            queue.metrics().rescued(reason, applied.len());
        }
        let progress = !applied.is_empty();
        if progress {
            queue.changed(applied);
            queue.wake();
        }
        // Another page only if this one was full and moved something (a
        // page of leases that all turned stale would come back the same).
        if !full_page || !progress {
            return rescued;
        }
    }
}

/// The outcome of a job whose host went away: a `lost` attempt.
fn lost(queue: &Queue, leased: LeasedJob, now: Millis, which: Which) -> Outcome {
    let owner = leased.owner.clone();
    let who = owner.as_deref().unwrap_or("unknown");
    let message = match which {
        Which::Expired => format!(
            "attempt {} was lost: the lease held by {who} expired at {} without a result",
            leased.job.attempt, leased.expires_at
        ),
        Which::All | Which::Own => format!(
            "attempt {} was lost: its host {who} stopped without a result",
            leased.job.attempt
        ),
    };
    let decision = queue.policy().decide(&leased.job, Ending::Lost, now);
    Outcome {
        lease: leased.lease,
        decision,
        attempt: Some(AttemptRecord {
            started_at: leased.claimed_at.min(now),
            report: AttemptReport::Lost { owner, message },
        }),
        output: None,
        follow_ups: Vec::new(),
        at: now,
    }
}

/// Applies one aging step; returns how many jobs moved.
pub async fn age_once(queue: &Queue) -> u64 {
    match queue
        .store()
        .age_waiting(queue.config().aging_ms, queue.now())
        .await
    {
        Ok(n) => n,
        Err(error) => {
            tracing::error!(%error, "aging failed");
            0
        }
    }
}

//! The dispatcher: claims jobs ahead of need and starts them as slots free.
//!
//! A claim is a durable write, so claiming one job per free slot would cost
//! a commit per job. Instead the dispatcher keeps a local buffer of claimed
//! jobs and refills it, one claim in flight at a time, when it runs low.
//! How far ahead it claims follows how fast jobs have been starting: about
//! [`HORIZON`] of work beyond the free slots, never more than
//! [`MAX_AHEAD`]. Short jobs are claimed hundreds at a time; long jobs only
//! one per free slot, so a slow job never holds others hostage in the
//! buffer. Buffered jobs are in the registry, so their leases are renewed
//! and a cancel reaches them.

use super::handoff::HandOff;
use super::registry::ClaimInFlight;
use super::{FaultHook, Finished, Reservation, run};
use crate::clock::Millis;
use crate::engine::CancelToken;
use crate::limits::Limits;
use crate::metrics::Stage;
use crate::queue::Queue;
use crate::store::{Claimed, Lease};
use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore, mpsc, watch};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::Instant;

/// Longest an idle dispatcher sleeps before looking again, whatever it
/// expects: a backstop against a missed wake-up or a clock change.
const IDLE_POLL: Duration = Duration::from_millis(1_000);
/// Pause after a store error before claiming again.
const ERROR_BACKOFF: Duration = Duration::from_millis(200);
/// How much work, in time at the recent start rate, the dispatcher claims
/// beyond its free slots.
const HORIZON: Duration = Duration::from_millis(20);
/// The shortest span the start rate is measured over.
const SAMPLE: Duration = Duration::from_millis(5);
/// Most jobs claimed beyond the free slots.
const MAX_AHEAD: usize = 512;
/// How long a stopping dispatcher waits for the hand-off of a submission
/// that took its offer (its commit is at most a batch away).
const HANDOFF_WAIT: Duration = Duration::from_secs(5);
/// How long a job claimed ahead may wait for a slot while every slot is
/// busy before it goes back to the store: claimed ahead behind long jobs,
/// it would wait on this host while another host (or this one, later)
/// has a slot for it. Far above the lookahead's horizon, so jobs that
/// start at the recent rate are never handed back.
pub(super) const BUFFER_HOLD: Duration = Duration::from_millis(250);

/// What the dispatcher needs.
pub(super) struct Dispatcher {
    pub queue: Queue,
    pub guests: tokio::runtime::Handle,
    pub results: mpsc::UnboundedSender<Finished>,
    pub pace: Pace,
    /// How long buffered jobs wait for a slot before they are handed back
    /// ([`BUFFER_HOLD`]).
    pub hold: Duration,
    pub faults: Option<FaultHook>,
}

/// A claimed job waiting for a slot.
pub(super) struct Buffered {
    pub claimed: Claimed,
    pub cancel: CancelToken,
    /// When the claim answered (the start stage begins).
    pub claimed_at: std::time::Instant,
}

/// What a stopped dispatcher hands back: jobs it claimed but did not start
/// (to release) and the tasks of those it did (to await).
pub(super) struct Stopped {
    pub buffered: Vec<Buffered>,
    pub jobs: JoinSet<()>,
}

/// Claims and starts jobs until `stop` turns true.
pub(super) async fn run(dispatcher: Dispatcher, mut stop: watch::Receiver<bool>) -> Stopped {
    let Dispatcher {
        queue,
        guests,
        results,
        mut pace,
        hold,
        faults,
    } = dispatcher;
    let slots = Arc::clone(queue.slots().permits());
    let mut buffer: VecDeque<Buffered> = VecDeque::new();
    let mut jobs = JoinSet::new();
    type Claim = (
        usize,
        ClaimInFlight,
        JoinHandle<crate::store::Result<Vec<Claimed>>>,
    );
    let mut claiming: Option<Claim> = None;
    // Set when the store had no more due jobs (or failed): wait for a wake
    // or this instant before claiming again.
    let mut resting: Option<Instant> = None;
    // When the next delayed job is due, looked up while resting begins:
    // off the loop, so the jobs just claimed start first.
    let mut next_due: Option<JoinHandle<Option<Instant>>> = None;
    // Hand-offs from submissions (see `handoff`): the offer posted while
    // resting, and whether it is out (posted, or taken and not answered).
    let (offer, mut handoffs) = mpsc::unbounded_channel::<HandOff>();
    let mut offered = false;
    // A store that never claims with an insert is never offered anything.
    let offers = queue.store().claims_with_insert();
    loop {
        queue.slots().set_buffered(buffer.len());
        match (offers && resting.is_some(), offered) {
            (true, false) => {
                queue.offers().post(offer.clone());
                offered = true;
            }
            // Claiming again: a submission now wakes it instead.
            (false, true) if queue.offers().withdraw(&offer) => offered = false,
            _ => {}
        }
        // How many to claim now, if it is time to claim.
        let want = (claiming.is_none() && resting.is_none() && buffer.len() <= pace.low_water())
            .then(|| (slots.available_permits() + pace.ahead()).saturating_sub(buffer.len()));
        // Every slot busy and nothing to claim ahead.
        let full = want == Some(0);
        if let Some(limit) = want.filter(|&limit| limit > 0) {
            let queue = queue.clone();
            let request = queue.claim_request(limit);
            pace.claimed(Instant::now());
            // This claim answers any wake-up made until now.
            let _ = queue.take_wake();
            let in_flight = queue.registry().claiming();
            claiming = Some((
                limit,
                in_flight,
                tokio::spawn(async move {
                    let started = std::time::Instant::now();
                    let claimed = queue.store().claim_due(request, queue.now()).await;
                    queue.metrics().stage(Stage::Claim, started.elapsed());
                    claimed
                }),
            ));
        }
        let front = buffer.front().map(|job| job.claimed.job.limits);
        // When the oldest buffered job has waited long enough, if every
        // slot stays busy until then.
        let hold_until = buffer
            .front()
            .filter(|_| slots.available_permits() == 0)
            .map(|job| Instant::from_std(job.claimed_at) + hold);
        tokio::select! {
            biased;
            _ = stop.changed() => break,
            claimed = async { (&mut claiming.as_mut().expect("claim in flight").2).await },
                if claiming.is_some() =>
            {
                let (asked, in_flight, _) = claiming.take().expect("claim in flight");
                match claimed {
                    Ok(Ok(claimed)) => {
                        if claimed.len() < asked {
                            resting = Some(Instant::now() + IDLE_POLL);
                            let queue = queue.clone();
                            next_due = Some(tokio::spawn(async move { due(&queue).await }));
                        }
                        log_claimed(&claimed);
                        buffer.extend(register(&queue, claimed));
                        drop(in_flight);
                    }
                    Ok(Err(error)) => {
                        tracing::error!(%error, "claiming jobs failed");
                        resting = Some(Instant::now() + ERROR_BACKOFF);
                    }
                    Err(error) => {
                        tracing::error!(%error, "the claim task failed");
                        resting = Some(Instant::now() + ERROR_BACKOFF);
                    }
                }
            }
            Some(handoff) = handoffs.recv() => {
                offered = false;
                let HandOff { claimed, in_flight, committed } = handoff;
                if !claimed.is_empty() {
                    queue.metrics().stage(Stage::Handoff, committed.elapsed());
                }
                log_claimed(&claimed);
                buffer.extend(register(&queue, claimed));
                drop(in_flight);
            }
            // A slot, and the report's share of the host's budget, for
            // the job at the front of the buffer.
            permits = start_permits(&queue, &slots, front), if front.is_some() => {
                let Ok((permit, reserved)) = permits else { break };
                let job = buffer.pop_front().expect("a buffered job");
                let lease = Lease { id: job.claimed.job.id, token: job.claimed.token.clone() };
                let Some(progress) = queue.registry().start(&lease, queue.now()) else {
                    continue; // cancelled or lost while buffered
                };
                queue.changed([lease.id]);
                pace.started();
                // Reap finished tasks so the set does not grow without bound.
                while jobs.try_join_next().is_some() {}
                let slot = queue.slots().occupy(permit, &job.claimed.job, &lease, queue.now());
                let fault = faults.as_ref().and_then(|hook| hook(&job.claimed.job));
                jobs.spawn_on(run::supervised(queue.clone(), job, slot, reserved, progress, fault, results.clone()), &guests);
            }
            // Every slot stayed busy: what waits goes back to the store,
            // and nothing is claimed ahead until a slot frees.
            () = tokio::time::sleep_until(hold_until.unwrap_or_else(Instant::now)),
                if hold_until.is_some() =>
            {
                pace.hold_back();
                let waiting: Vec<Buffered> = buffer.drain(..).collect();
                super::release(&queue, &results, waiting);
            }
            // Every slot busy and nothing to claim ahead: wait for a slot.
            permit = slots.clone().acquire_owned(), if full && buffer.is_empty() => {
                if permit.is_err() { break }
            }
            due = async { (&mut next_due.as_mut().expect("a lookup in flight")).await },
                if next_due.is_some() =>
            {
                next_due = None;
                // A wake may have ended the rest meanwhile.
                if let (Some(rest), Ok(Some(due))) = (resting, due) {
                    resting = Some(rest.min(due));
                }
            }
            () = queue.woken(), if resting.is_some() => {
                let due = queue.take_due_hint();
                match queue.take_wake() {
                    Some(waited) => {
                        resting = None;
                        queue.metrics().stage(Stage::Wake, waited);
                    }
                    // Only a delayed job stored: rest until it is due, if
                    // that is sooner (a claim now would find nothing).
                    None => match (resting, due) {
                        (Some(rest), Some(due)) => resting = Some(rest.min(at(queue.now(), due))),
                        _ => resting = None,
                    },
                }
            }
            () = tokio::time::sleep_until(resting.unwrap_or_else(Instant::now)),
                if resting.is_some() => resting = None,
        }
    }
    // A claim in flight may have taken jobs: hand them back too.
    if let Some((_, in_flight, claim)) = claiming.take() {
        if let Ok(Ok(claimed)) = claim.await {
            buffer.extend(register(&queue, claimed));
        }
        drop(in_flight);
    }
    // So may a submission that took the offer.
    if offered && !queue.offers().withdraw(&offer) {
        match tokio::time::timeout(HANDOFF_WAIT, handoffs.recv()).await {
            Ok(Some(HandOff {
                claimed, in_flight, ..
            })) => {
                buffer.extend(register(&queue, claimed));
                drop(in_flight);
            }
            _ => tracing::warn!("a submission's hand-off did not come before the pool stopped"),
        }
    }
    Stopped {
        buffered: buffer.into(),
        jobs,
    }
}

/// A free slot, then the budget for a report under `limits` (waiting for
/// both; dropped unused if another branch wins, which returns them).
fn start_permits(
    queue: &Queue,
    slots: &Arc<Semaphore>,
    limits: Option<Limits>,
) -> impl Future<Output = Result<(OwnedSemaphorePermit, Reservation), AcquireError>> + use<> {
    let slot = Arc::clone(slots).acquire_owned();
    let budget = queue.report_budget().clone();
    async move {
        let slot = slot.await?;
        let reserved = budget.reserve(&limits.unwrap_or_default()).await?;
        Ok((slot, reserved))
    }
}

/// When the next delayed job is due, if the store knows of one: the rest
/// after a claim that found fewer jobs than it asked for ends then, or
/// after [`IDLE_POLL`] (a wake comes sooner).
async fn due(queue: &Queue) -> Option<Instant> {
    let due = queue.store().next_due().await.ok()??;
    Some(at(queue.now(), due))
}

/// The instant `due` comes, by the queue's clock reading `now` (at least a
/// millisecond away).
fn at(now: Millis, due: Millis) -> Instant {
    let until = (due - now).max(0) as u64;
    Instant::now() + Duration::from_millis(until.max(1))
}

fn log_claimed(claimed: &[Claimed]) {
    for job in claimed {
        tracing::info!(job_id = job.job.id, queue = %job.job.queue,
            module = %job.job.module, attempt = job.job.attempt, "claimed");
    }
}

/// Holds claimed jobs in the registry (buffered), so their leases are
/// renewed and cancels reach them.
fn register(queue: &Queue, claimed: Vec<Claimed>) -> Vec<Buffered> {
    let claimed_at = std::time::Instant::now();
    let cancels = queue.registry().register(&claimed);
    claimed
        .into_iter()
        .zip(cancels)
        .map(|(claimed, cancel)| Buffered {
            claimed,
            cancel,
            claimed_at,
        })
        .collect()
}

/// How far ahead to claim, from the recent rate at which jobs started.
pub(super) struct Pace {
    /// When the last claim was sent.
    since: Instant,
    /// Jobs started since then.
    started: usize,
    /// Jobs to claim beyond the free slots.
    ahead: usize,
}

impl Pace {
    /// Starts with no lookahead: the first claims are for free slots only.
    pub(super) fn new(now: Instant) -> Self {
        Pace::with_ahead(now, 0)
    }

    /// Starts with `ahead` jobs of lookahead.
    pub(super) fn with_ahead(now: Instant, ahead: usize) -> Self {
        Pace {
            since: now,
            started: 0,
            ahead,
        }
    }

    /// Jobs to claim beyond the free slots.
    fn ahead(&self) -> usize {
        self.ahead
    }

    /// Refill when the buffer is down to half the lookahead, so the next
    /// claim commits while the rest of the buffer runs.
    fn low_water(&self) -> usize {
        self.ahead / 2
    }

    /// Claims nothing ahead until jobs start again.
    fn hold_back(&mut self) {
        self.ahead = 0;
    }

    fn started(&mut self) {
        self.started += 1;
    }

    /// A claim is being sent: update the lookahead from the start rate
    /// since the last update, once that spans at least [`SAMPLE`] (claims
    /// can follow each other closely; a shorter span says little). It at
    /// most doubles per update, so a burst after an idle spell grows it
    /// quickly but one fast sample cannot jump it to the maximum.
    fn claimed(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.since);
        if elapsed < SAMPLE {
            return;
        }
        let rate = self.started as f64 / elapsed.as_secs_f64();
        let wanted = (rate * HORIZON.as_secs_f64()).round() as usize;
        self.ahead = wanted.min(self.ahead * 2 + 8).min(MAX_AHEAD);
        self.since = now;
        self.started = 0;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookahead_follows_the_start_rate_and_grows_gradually() {
        let mut now = Instant::now();
        let mut pace = Pace::new(now);
        let mut sample = |pace: &mut Pace, started: usize, after: Duration| {
            for _ in 0..started {
                pace.started();
            }
            now += after;
            pace.claimed(now);
        };
        // Nothing started yet: claim only for the free slots.
        sample(&mut pace, 0, SAMPLE);
        assert_eq!(pace.ahead(), 0);
        // 100,000 jobs/s is 2,000 per horizon, but growth is capped.
        sample(&mut pace, 1_000, Duration::from_millis(10));
        assert_eq!(pace.ahead(), 8);
        sample(&mut pace, 1_000, Duration::from_millis(10));
        assert_eq!(pace.ahead(), 24);
        // A span shorter than SAMPLE changes nothing.
        sample(&mut pace, 0, SAMPLE / 2);
        assert_eq!(pace.ahead(), 24);
        for _ in 0..10 {
            sample(&mut pace, 1_000, Duration::from_millis(10));
        }
        assert_eq!(pace.ahead(), MAX_AHEAD);
        assert_eq!(pace.low_water(), MAX_AHEAD / 2);
        // 1,000 jobs/s is 20 per horizon.
        sample(&mut pace, 100, Duration::from_millis(100));
        assert_eq!(pace.ahead(), 20);
        // No starts for a while (long jobs): none ahead.
        sample(&mut pace, 0, Duration::from_secs(1));
        assert_eq!(pace.ahead(), 0);
    }
}

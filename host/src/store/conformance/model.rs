//! The store as a state machine, checked against a model: random sequences
//! of submit, claim, record (fresh and stale), renew, rescue, cancel and
//! requeue, from fixed seeds, after each of which every job's state,
//! attempt count and lease must be what the model predicts, and every
//! claim must take exactly the jobs the model says are next.
//!
//! A failure names the seed and the step, with the operations so far, so
//! it replays exactly (`SEEDS` is the only input).

use super::*;
use crate::job::JobState;
use crate::store::{Error, JobFilter};
use std::collections::BTreeMap;

/// The sequences run; each is [`STEPS`] operations long.
const SEEDS: std::ops::Range<u64> = 0..12;
/// Operations per sequence.
const STEPS: usize = 150;

/// What the model knows of a job.
#[derive(Clone, Debug)]
struct Modelled {
    state: JobState,
    priority: u8,
    run_at: Millis,
    attempt: u32,
    /// The token a worker holds while it runs (kept after a cancel until
    /// the worker records).
    token: Option<String>,
    lease_until: Millis,
}

impl Modelled {
    fn due(&self, now: Millis) -> bool {
        matches!(self.state, JobState::Pending | JobState::Retrying) && self.run_at <= now
    }
}

pub(crate) async fn random_operations_leave_the_store_as_a_model_predicts(open: OpenFn) {
    for seed in SEEDS {
        run(open, seed).await;
    }
}

async fn run(open: OpenFn, seed: u64) {
    let f = fixture(open).await;
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut model: BTreeMap<JobId, Modelled> = BTreeMap::new();
    // Tokens of attempts whose outcome was recorded: writing with one is
    // stale.
    let mut spent: Vec<(JobId, String)> = Vec::new();
    let mut log: Vec<String> = Vec::new();
    let mut now = T0;
    for step in 0..STEPS {
        now += rng.i64(0..1_500);
        let ids: Vec<JobId> = model.keys().copied().collect();
        let running: Vec<JobId> = model
            .iter()
            .filter(|(_, m)| m.token.is_some())
            .map(|(id, _)| *id)
            .collect();
        let op = rng.u8(0..100);
        let what = match op {
            0..=24 => {
                let priority = rng.u8(0..=10);
                let run_at = now + rng.i64(-500..3_000);
                let job = NewJob {
                    run_at,
                    ..f.job(priority, run_at)
                };
                let stored = f.store.insert_jobs(vec![job], now).await.unwrap();
                let job = &stored[0].job;
                model.insert(
                    job.id,
                    Modelled {
                        state: JobState::Pending,
                        priority,
                        run_at,
                        attempt: 0,
                        token: None,
                        lease_until: 0,
                    },
                );
                format!("submit p{priority} at {} -> {}", run_at - T0, job.id)
            }
            25..=44 => {
                let limit = rng.usize(1..4);
                let mut due: Vec<(u8, Millis, JobId)> = model
                    .iter()
                    .filter(|(_, m)| m.due(now))
                    .map(|(id, m)| (m.priority, m.run_at, *id))
                    .collect();
                due.sort();
                let expected: Vec<JobId> = due.iter().take(limit).map(|d| d.2).collect();
                let claimed = f.claim(limit, now).await;
                let got: Vec<JobId> = claimed.iter().map(|c| c.job.id).collect();
                assert_eq!(
                    got, expected,
                    "seed {seed} step {step}: claim {limit} took other jobs; so far: {log:#?}"
                );
                for c in claimed {
                    let m = model.get_mut(&c.job.id).unwrap();
                    m.state = JobState::Running;
                    m.attempt += 1;
                    m.token = Some(c.token);
                    m.lease_until = now + LEASE_MS;
                }
                format!("claim {limit} -> {got:?}")
            }
            45..=64 if !running.is_empty() => {
                let id = running[rng.usize(..running.len())];
                let token = model[&id].token.clone().unwrap();
                let (decision, name) = match rng.u8(0..4) {
                    0 => (Decision::Complete, "complete"),
                    1 => (
                        Decision::Retry {
                            run_at: now + rng.i64(0..2_000),
                            limits: Limits::default(),
                        },
                        "retry",
                    ),
                    2 => (Decision::DeadLetter, "dead letter"),
                    _ => (Decision::Release, "release"),
                };
                let report = (decision != Decision::Release).then(|| ran(Ok(())));
                let recorded = record(&f, id, &token, report, decision.clone(), now).await;
                assert_eq!(
                    recorded,
                    Recorded::Applied,
                    "seed {seed} step {step}: record {name} of {id}; so far: {log:#?}"
                );
                let m = model.get_mut(&id).unwrap();
                m.token = None;
                spent.push((id, token));
                if m.state == JobState::Running {
                    match decision {
                        Decision::Complete => m.state = JobState::Completed,
                        Decision::Retry { run_at, .. } => {
                            m.state = JobState::Retrying;
                            m.run_at = run_at;
                        }
                        Decision::DeadLetter => m.state = JobState::Failed,
                        Decision::Release => {
                            m.state = if m.attempt <= 1 {
                                JobState::Pending
                            } else {
                                JobState::Retrying
                            };
                            m.attempt -= 1;
                        }
                        Decision::Cancelled => unreachable!(),
                    }
                }
                // A job cancelled while it ran stays cancelled: only the
                // attempt is filed.
                format!("record {name} of {id}")
            }
            65..=71 if !spent.is_empty() => {
                let (id, token) = spent[rng.usize(..spent.len())].clone();
                let recorded =
                    record(&f, id, &token, Some(ran(Ok(()))), Decision::Complete, now).await;
                assert_eq!(
                    recorded,
                    Recorded::Stale,
                    "seed {seed} step {step}: a spent token of {id} was accepted; so far: {log:#?}"
                );
                format!("stale record of {id}")
            }
            72..=79 if !running.is_empty() => {
                let leases: Vec<Lease> = running
                    .iter()
                    .map(|id| Lease {
                        id: *id,
                        token: model[id].token.clone().unwrap(),
                    })
                    .collect();
                let until = now + LEASE_MS;
                let mut renewed = f.store.renew_held_leases(leases, until).await.unwrap();
                renewed.sort();
                let expected: Vec<JobId> = running
                    .iter()
                    .copied()
                    .filter(|id| model[id].state == JobState::Running)
                    .collect();
                assert_eq!(
                    renewed, expected,
                    "seed {seed} step {step}: renewed other leases; so far: {log:#?}"
                );
                for id in &expected {
                    model.get_mut(id).unwrap().lease_until = until;
                }
                format!("renew {expected:?}")
            }
            80..=85 if !running.is_empty() => {
                // A rescuer that saw this lease expire: it takes the job
                // back only if the lease is still expired and held.
                let id = running[rng.usize(..running.len())];
                let token = model[&id].token.clone().unwrap();
                let at = now + rng.i64(0..2 * LEASE_MS);
                let outcome = Outcome {
                    lease: Lease {
                        id,
                        token: token.clone(),
                    },
                    attempt: None,
                    output: None,
                    follow_ups: Vec::new(),
                    decision: Decision::Retry {
                        run_at: at,
                        limits: Limits::default(),
                    },
                    at,
                };
                let recorded = f
                    .store
                    .rescue_if_expired(vec![outcome], at)
                    .await
                    .unwrap()
                    .remove(0)
                    .unwrap();
                let m = model.get_mut(&id).unwrap();
                let expected = if m.state == JobState::Running && m.lease_until < at {
                    m.state = JobState::Retrying;
                    m.run_at = at;
                    m.token = None;
                    spent.push((id, token));
                    Recorded::Applied
                } else {
                    Recorded::Stale
                };
                assert_eq!(
                    recorded,
                    expected,
                    "seed {seed} step {step}: rescue of {id} at {}; so far: {log:#?}",
                    at - T0
                );
                format!("rescue {id} at {} -> {recorded:?}", at - T0)
            }
            86..=93 if !ids.is_empty() => {
                let id = ids[rng.usize(..ids.len())];
                let result = f.store.cancel_unless_final(id, now).await;
                let m = model.get_mut(&id).unwrap();
                if m.state.is_final() {
                    assert!(
                        matches!(result, Err(Error::Conflict(_))),
                        "seed {seed} step {step}: cancel of final {id}: {result:?}; so far: {log:#?}"
                    );
                } else {
                    assert_eq!(result.unwrap().state, JobState::Cancelled);
                    m.state = JobState::Cancelled;
                }
                format!("cancel {id}")
            }
            94..=99 if !ids.is_empty() => {
                let id = ids[rng.usize(..ids.len())];
                let result = f.store.requeue_if_failed(id, now).await;
                let m = model.get_mut(&id).unwrap();
                if m.state == JobState::Failed {
                    let job = result.unwrap();
                    assert_eq!((job.state, job.attempt), (JobState::Pending, 0));
                    m.state = JobState::Pending;
                    m.attempt = 0;
                    m.run_at = now;
                } else {
                    assert!(
                        matches!(result, Err(Error::Conflict(_))),
                        "seed {seed} step {step}: requeue of {id} in {:?}: {result:?}; so far: {log:#?}",
                        m.state
                    );
                }
                format!("requeue {id}")
            }
            _ => continue,
        };
        log.push(format!("{step} @{}: {what}", now - T0));
        let stored: BTreeMap<JobId, (JobState, u32)> = f
            .store
            .list(JobFilter {
                limit: STEPS,
                ..JobFilter::default()
            })
            .await
            .unwrap()
            .into_iter()
            .map(|job| (job.id, (job.state, job.attempt)))
            .collect();
        let expected: BTreeMap<JobId, (JobState, u32)> = model
            .iter()
            .map(|(id, m)| (*id, (m.state, m.attempt)))
            .collect();
        assert_eq!(
            stored, expected,
            "seed {seed} step {step}: states after `{what}`; so far: {log:#?}"
        );
    }
}

/// Records `decision` for the attempt of job `id` under `token`.
async fn record(
    f: &Fixture,
    id: JobId,
    token: &str,
    report: Option<AttemptReport>,
    decision: Decision,
    now: Millis,
) -> Recorded {
    let outcome = Outcome {
        lease: Lease {
            id,
            token: token.to_owned(),
        },
        attempt: report.map(|report| AttemptRecord {
            started_at: now,
            report,
        }),
        output: (decision == Decision::Complete).then(|| Json::parse_str("1").unwrap()),
        follow_ups: Vec::new(),
        decision,
        at: now,
    };
    f.store
        .record_if_leased(vec![outcome])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
}

//! The store contract's conformance suite: one function per behaviour
//! every [`JobStore`] must have, run against any backend.
//!
//! A backend's tests invoke [`conformance_tests!`] with a function that
//! opens a fresh, empty store (see `store/sqlite/tests.rs`): it expands to
//! one `#[tokio::test]` per behaviour. Backend-specific behaviour (files on
//! disk, query plans, durability across a reopen) is tested beside the
//! backend, not here.
//!
//! Every behaviour drives time with explicit `now` values and writes
//! decisions it makes up itself: the store applies decisions, so the suite
//! checks that it applies each one exactly.

pub(crate) mod aging;
pub(crate) mod claiming;
pub(crate) mod follow_ups;
pub(crate) mod graph;
pub(crate) mod history;
pub(crate) mod model;
pub(crate) mod modules;
pub(crate) mod queues;
pub(crate) mod recovery;
pub(crate) mod results;
pub(crate) mod retention;
pub(crate) mod schedules;
pub(crate) mod unique;

use crate::clock::Millis;
use crate::job::{Dependency, Job, JobDetail, JobId, ModuleRef, NewJob, OnFailure, Prereq};
use crate::json::Json;
use crate::limits::Limits;
use crate::policy::{Backoff, Decision, RetryPolicy};
use crate::report::{
    AttemptReport, Failure, FailureKind, FuelUsage, MemoryUsage, ModuleKind, Report, Status,
    StdioTail,
};
use crate::store::{AttemptRecord, ClaimRequest, Claimed, JobStore, Lease, Outcome, Recorded};
use std::any::Any;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

/// A time well after the epoch, so that offsets stay positive.
pub(crate) const T0: Millis = 1_700_000_000_000;
/// Lease length used by the suite.
pub(crate) const LEASE_MS: i64 = 30_000;
/// The value-size limit a backend opened with [`Options::small`] enforces.
pub(crate) const SMALL_VALUE_BYTES: usize = 64 * 1024;

/// How to open the store under test.
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct Options {
    /// The largest value (input, output, report) the store must accept;
    /// larger ones must be refused with `Error::TooLarge`.
    pub max_value_bytes: Option<usize>,
}

impl Options {
    /// A store that refuses values above [`SMALL_VALUE_BYTES`].
    pub(crate) fn small() -> Options {
        Options {
            max_value_bytes: Some(SMALL_VALUE_BYTES),
        }
    }
}

/// Opens a fresh, empty store of the backend under test.
pub(crate) type OpenFn = fn(Options) -> Pin<Box<dyn Future<Output = Opened> + Send>>;

/// A fixture on a store opened with the default options.
pub(crate) async fn fixture(open: OpenFn) -> Fixture {
    Fixture::new(open(Options::default()).await).await
}

/// A fresh store, and whatever must live as long as it (a temp dir).
pub(crate) struct Opened {
    /// The store.
    pub store: Arc<dyn JobStore>,
    /// Dropped after the store.
    pub keep: Box<dyn Any + Send + Sync>,
}

/// A fresh store with one module uploaded, and helpers in the store's
/// verbs.
pub(crate) struct Fixture {
    pub store: Arc<dyn JobStore>,
    /// The module's hash.
    pub module: String,
    _keep: Box<dyn Any + Send + Sync>,
}

impl Fixture {
    /// Wraps a freshly opened store and uploads the suite's module, named
    /// `test`.
    pub(crate) async fn new(opened: Opened) -> Fixture {
        let bytes = b"\0asm\x01\0\0\0".to_vec();
        let module = blake3::hash(&bytes).to_hex().to_string();
        opened
            .store
            .put_module(&module, ModuleKind::Command, &bytes, Some("test"), T0)
            .await
            .unwrap();
        Fixture {
            store: opened.store,
            module,
            _keep: opened.keep,
        }
    }

    /// A job of the fixture's module: priority `priority`, three attempts,
    /// a fixed one-second backoff without jitter, due at `run_at`.
    pub(crate) fn job(&self, priority: u8, run_at: Millis) -> NewJob {
        self.job_in("default", priority, run_at)
    }

    /// [`job`](Self::job) in queue `queue`.
    pub(crate) fn job_in(&self, queue: &str, priority: u8, run_at: Millis) -> NewJob {
        NewJob {
            queue: queue.to_owned(),
            module: ModuleRef {
                hash: self.module.clone(),
                name: Some("test".to_owned()),
            },
            input: Json::parse_str(&format!(
                r#"{{"priority": {priority}, "run_at": {run_at}}}"#
            ))
            .unwrap(),
            priority,
            max_attempts: 3,
            retry: RetryPolicy {
                backoff: Backoff::Fixed,
                base_ms: 1_000,
                max_delay_ms: 1_000,
                jitter: false,
            },
            limits: Limits::default(),
            run_at,
            unique: None,
            depends_on: Vec::new(),
            node: None,
            grants: None,
            trace: None,
        }
    }

    /// [`job`](Self::job), waiting for `prereqs` (each named by its id,
    /// cancelled if it fails).
    pub(crate) fn after(&self, prereqs: &[JobId], priority: u8, run_at: Millis) -> NewJob {
        let depends_on = prereqs
            .iter()
            .map(|&id| Dependency {
                on: Prereq::Job(id),
                name: id.to_string(),
                on_failure: OnFailure::Cancel,
            })
            .collect();
        NewJob {
            depends_on,
            ..self.job(priority, run_at)
        }
    }

    /// Stores one job and returns it.
    pub(crate) async fn submit(&self, job: NewJob) -> Job {
        self.store
            .insert_jobs(vec![job], T0)
            .await
            .unwrap()
            .remove(0)
            .job
    }

    /// Stores `jobs` at `now`, asking the store to claim up to `limit`
    /// jobs as `worker-1` with the insert (queues capped as `caps` says);
    /// returns what it stored and what it claimed.
    pub(crate) async fn submit_claiming(
        &self,
        jobs: Vec<NewJob>,
        now: Millis,
        limit: usize,
        caps: &[(&str, usize)],
    ) -> (Vec<crate::job::Submitted>, Vec<Claimed>) {
        let request = ClaimRequest {
            owner: "worker-1".to_owned(),
            limit,
            lease_ms: LEASE_MS,
            caps: caps.iter().map(|&(q, cap)| (q.to_owned(), cap)).collect(),
        };
        let (sender, receiver) = std::sync::mpsc::channel();
        let submitted = self
            .store
            .insert_jobs_then(
                jobs,
                now,
                crate::store::Insert {
                    claim: Some(request),
                    at_commit: false,
                },
                Box::new(move |_, claimed| sender.send(claimed).unwrap()),
            )
            .await
            .unwrap();
        (
            submitted,
            receiver.try_recv().expect("called at the commit"),
        )
    }

    /// Claims up to `limit` jobs at `now` as `worker-1`.
    pub(crate) async fn claim(&self, limit: usize, now: Millis) -> Vec<Claimed> {
        self.claim_capped(limit, now, &[]).await
    }

    /// Claims up to `limit` jobs at `now`, with these queues capped.
    pub(crate) async fn claim_capped(
        &self,
        limit: usize,
        now: Millis,
        caps: &[(&str, usize)],
    ) -> Vec<Claimed> {
        let request = ClaimRequest {
            owner: "worker-1".to_owned(),
            limit,
            lease_ms: LEASE_MS,
            caps: caps.iter().map(|(q, n)| (q.to_string(), *n)).collect(),
        };
        self.store.claim_due(request, now).await.unwrap()
    }

    /// Records one outcome for `claimed`: `decision`, with an attempt that
    /// started at `started_at` and ended at `now` with `report` (none for a
    /// release), and `output` when it completes.
    pub(crate) async fn record(
        &self,
        claimed: &Claimed,
        report: Option<AttemptReport>,
        decision: Decision,
        started_at: Millis,
        now: Millis,
    ) -> Recorded {
        let outcome = outcome(claimed, report, decision, started_at, now);
        self.store
            .record_if_leased(vec![outcome])
            .await
            .unwrap()
            .remove(0)
            .unwrap()
    }

    /// The job's stored state.
    pub(crate) async fn get(&self, id: JobId) -> JobDetail {
        self.store.job(id).await.unwrap().unwrap()
    }
}

/// The lease `claimed` holds.
pub(crate) fn lease(claimed: &Claimed) -> Lease {
    Lease {
        id: claimed.job.id,
        token: claimed.token.clone(),
    }
}

/// An outcome as [`Fixture::record`] writes it; a completed job's output
/// is `"done"`.
pub(crate) fn outcome(
    claimed: &Claimed,
    report: Option<AttemptReport>,
    decision: Decision,
    started_at: Millis,
    now: Millis,
) -> Outcome {
    let output = (decision == Decision::Complete).then(|| Json::parse_str(r#""done""#).unwrap());
    Outcome {
        lease: lease(claimed),
        attempt: report.map(|report| AttemptRecord { started_at, report }),
        output,
        follow_ups: Vec::new(),
        decision,
        at: now,
    }
}

/// An engine report: success, or a failure with `message`.
pub(crate) fn ran(outcome: std::result::Result<(), &str>) -> AttemptReport {
    let (status, failure) = match outcome {
        Ok(()) => (Status::Success, None),
        Err(message) => (
            Status::Failure,
            Some(Failure::new(FailureKind::GuestError, message)),
        ),
    };
    AttemptReport::Ran(Box::new(Report {
        status,
        output: None,
        failure,
        module: "m".to_owned(),
        kind: ModuleKind::Command,
        limits: Limits::default(),
        fuel: FuelUsage {
            consumed: Some(1),
            limit: 2,
        },
        memory: MemoryUsage {
            peak_bytes: 3,
            limit_bytes: 4,
        },
        duration_us: 5,
        logs: Vec::new(),
        logs_dropped: 0,
        progress: None,
        stdout: StdioTail::default(),
        stderr: StdioTail::default(),
        requests: Vec::new(),
        requests_dropped: 0,
        follow_ups: Vec::new(),
    }))
}

/// Every backend's tests are ready to run, unless it says otherwise.
pub(crate) fn always() -> bool {
    true
}

/// One `#[tokio::test]` per behaviour of the store contract, each on a
/// store from `$open`, an [`OpenFn`]. With `if $ready`, a path to a `fn() -> bool`,
/// each test first asks it and passes at once when it says no (a backend
/// whose server is not available says so and why).
macro_rules! conformance_tests {
    ($open:path) => {
        $crate::store::conformance::conformance_tests!($open, if $crate::store::conformance::always);
    };
    ($open:path, if $ready:path) => {
        $crate::store::conformance::conformance_tests!(@each $open, $ready;
            aging::an_old_low_priority_job_overtakes_a_stream_of_new_urgent_ones,
            aging::aging_counts_from_run_at_and_stops_at_zero,
            aging::missed_steps_are_caught_up_one_per_call_without_drift,
            aging::a_retry_starts_aging_over_and_zero_turns_it_off,
            aging::a_requeue_and_a_rescue_start_aging_over_and_a_release_keeps_it,
            model::random_operations_leave_the_store_as_a_model_predicts,
            claiming::claim_takes_the_most_urgent_priority_then_the_oldest_run_at,
            claiming::a_batch_claim_returns_jobs_in_claim_order_up_to_the_limit,
            claiming::a_claim_with_an_insert_takes_what_a_claim_after_it_would,
            claiming::claim_starts_an_attempt_with_a_fresh_token_per_job,
            claiming::a_job_is_not_claimed_before_its_run_at,
            claiming::renew_extends_only_the_leases_still_held,
            claiming::insert_refuses_an_unknown_module_and_stores_none_of_the_batch,
            claiming::insert_keeps_every_field_as_given,
            claiming::a_mixed_batch_is_stored_in_the_order_given,
            claiming::list_filters_and_pages_newest_first,
            claiming::counts_cover_every_state,
            follow_ups::a_completed_attempt_creates_its_follow_ups_with_its_result,
            follow_ups::follow_ups_join_the_workflow_of_their_parent,
            follow_ups::a_stale_or_cancelled_attempt_creates_no_follow_up,
            graph::a_job_waits_blocked_until_every_prerequisite_completes,
            graph::an_unblocked_job_is_due_no_earlier_than_when_it_was_unblocked,
            graph::a_prerequisite_that_completed_already_is_resolved_at_once,
            graph::a_failure_cancels_the_dependents_transitively_naming_it,
            graph::a_continue_edge_runs_the_dependent_after_a_failure,
            graph::cancelling_a_job_cascades_like_a_failure,
            graph::a_prerequisite_must_exist_and_not_have_failed_already,
            graph::a_fan_in_resolves_once_its_last_prerequisite_ends,
            graph::a_workflow_is_stored_and_read_as_one,
            graph::cancelling_a_workflow_cancels_every_unfinished_job,
            history::history_rows_of_one_minute_and_queue_add_up,
            history::history_is_read_by_minute_range_and_queue_oldest_first,
            history::pruning_history_deletes_only_minutes_before_the_cutoff,
            modules::uploading_the_same_bytes_twice_is_idempotent,
            modules::a_name_resolves_to_the_module_that_was_given_it_last,
            modules::bytes_that_do_not_hash_to_their_name_are_refused,
            modules::delete_is_refused_while_a_waiting_job_needs_the_module,
            modules::unknown_modules_are_not_found_with_one_clear_message,
            queues::a_job_keeps_its_queue_and_listings_filter_by_it,
            queues::a_paused_queue_accepts_jobs_and_starts_none,
            queues::a_queue_at_its_cap_never_blocks_the_others,
            queues::priority_order_and_aging_hold_across_queues,
            queues::queue_stats_count_what_waits_and_runs_and_the_oldest_wait,
            recovery::cancel_stops_waiting_and_running_jobs_only,
            recovery::leased_jobs_lists_running_jobs_or_those_whose_lease_expired,
            recovery::leased_jobs_lists_one_owners_leases_expired_or_not,
            recovery::rescue_applies_only_while_the_lease_is_still_expired,
            recovery::a_lost_attempt_is_recorded_with_the_decision_it_was_given,
            recovery::requeue_gives_a_failed_job_a_new_budget_and_keeps_its_history,
            recovery::requeue_refuses_jobs_that_are_not_failed,
            recovery::requeue_refuses_a_job_whose_module_was_deleted,
            recovery::purge_deletes_failed_jobs_and_their_attempts_only,
            results::complete_stores_the_output_once_and_the_attempt,
            results::the_attempt_records_when_it_started_not_when_it_was_claimed,
            results::retry_waits_with_new_limits_and_the_failure_message,
            results::dead_letter_ends_the_job,
            results::cancelled_ends_the_job,
            results::a_host_made_report_is_kept_like_an_engine_report,
            results::release_gives_the_attempt_back_without_a_record,
            results::an_outcome_after_cancel_files_its_attempt_and_nothing_else,
            results::an_outcome_after_rescue_is_stale_even_once_reclaimed,
            results::one_call_applies_each_outcome_on_its_own,
            results::an_outcome_too_large_to_store_is_refused_alone,
            retention::finished_jobs_past_their_age_are_deleted_with_their_attempts,
            retention::the_dead_letter_is_kept_for_its_own_age_or_for_ever,
            retention::a_finished_prerequisite_stays_while_a_dependent_needs_it,
            retention::a_workflow_is_deleted_whole_once_every_job_is_past_its_age,
            retention::a_unique_job_is_kept_while_its_key_may_be_held,
            retention::one_call_deletes_at_most_a_batch,
            schedules::a_schedule_keeps_its_template_and_is_replaced_only_when_asked,
            schedules::a_fire_time_creates_one_job_and_moves_the_schedule_on,
            schedules::a_tick_without_a_job_advances_and_keeps_why,
            schedules::a_paused_schedule_fires_nothing_until_resumed,
            schedules::racing_schedulers_create_one_job_per_fire_time,
            unique::a_held_key_answers_the_holder_until_it_is_final,
            unique::a_window_holds_the_key_after_the_job_ends,
            unique::a_cancelled_or_dead_job_holds_its_key_for_its_window_only,
            unique::keys_are_per_queue,
            unique::one_batch_stores_a_key_once_and_answers_the_rest,
            unique::racing_submissions_of_one_key_store_one_job,
        );
    };
    (@each $open:path, $ready:path; $($module:ident :: $name:ident),* $(,)?) => {
        $(
            #[tokio::test]
            async fn $name() {
                if !$ready() {
                    return;
                }
                $crate::store::conformance::$module::$name($open).await;
            }
        )*
    };
}

pub(crate) use conformance_tests;

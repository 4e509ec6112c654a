//! Dependencies and workflows: a job waits `blocked` for its
//! prerequisites, sees how each ended, and follows a failure as its edges
//! say; a workflow is stored, read and cancelled as one.

use super::*;
use crate::job::{Dependency, JobState, NewWorkflow, OnFailure, Prereq, Resolved, WorkflowState};
use crate::store::{Error, JobFilter, WorkflowFilter};

/// Completes `claimed` at `now` with output `"done"`.
async fn complete(f: &Fixture, claimed: &Claimed, now: Millis) -> Recorded {
    f.record(claimed, Some(ran(Ok(()))), Decision::Complete, now, now)
        .await
}

/// Claims job `id` (it must be due at `now`).
async fn claim_one(f: &Fixture, id: JobId, now: Millis) -> Claimed {
    let claimed = f.claim(100, now).await;
    let ids: Vec<_> = claimed.iter().map(|c| c.job.id).collect();
    claimed
        .into_iter()
        .find(|c| c.job.id == id)
        .unwrap_or_else(|| panic!("job {id} was not claimed; claimed {ids:?}"))
}

fn edge(on: Prereq, name: &str, on_failure: OnFailure) -> Dependency {
    Dependency {
        on,
        name: name.to_owned(),
        on_failure,
    }
}

pub(crate) async fn a_job_waits_blocked_until_every_prerequisite_completes(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    let b = f.submit(f.job(5, T0)).await.id;
    // Due later than its prerequisites end: it keeps its own time.
    let c = f.submit(f.after(&[a, b], 0, T0 + 50)).await;
    assert_eq!(c.state, JobState::Blocked);
    let claimed = f.claim(10, T0 + 100).await;
    let ids: Vec<_> = claimed.iter().map(|c| c.job.id).collect();
    assert_eq!(ids, [a, b], "a blocked job is never claimed");
    // Each end changes the job waiting for it: the workers are told.
    assert_eq!(complete(&f, &claimed[0], T0 + 10).await, Recorded::Released);
    assert_eq!(
        f.get(c.id).await.job.state,
        JobState::Blocked,
        "b still runs"
    );
    assert_eq!(complete(&f, &claimed[1], T0 + 20).await, Recorded::Released);
    let unblocked = f.get(c.id).await.job;
    assert_eq!(
        (unblocked.state, unblocked.run_at),
        (JobState::Pending, T0 + 50)
    );
    assert_eq!(f.store.next_due().await.unwrap(), Some(T0 + 50));
    let claimed = claim_one(&f, c.id, T0 + 50).await;
    let done = Some(Json::parse_str(r#""done""#).unwrap());
    assert_eq!(
        claimed.dependencies,
        [
            Resolved {
                name: a.to_string(),
                job: a,
                state: JobState::Completed,
                output: done.clone(),
                error: None,
            },
            Resolved {
                name: b.to_string(),
                job: b,
                state: JobState::Completed,
                output: done,
                error: None,
            },
        ]
    );
    // Its edges are part of its detail.
    let detail = f.get(c.id).await;
    let prereqs: Vec<_> = detail.depends_on.iter().map(|e| e.prereq).collect();
    assert_eq!(prereqs, [a, b]);
    // Nothing waits for c.
    assert_eq!(complete(&f, &claimed, T0 + 60).await, Recorded::Applied);
}

pub(crate) async fn an_unblocked_job_is_due_no_earlier_than_when_it_was_unblocked(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    let b = f.submit(f.after(&[a], 5, T0)).await.id;
    let claimed = f.claim(1, T0).await;
    complete(&f, &claimed[0], T0 + 5_000).await;
    // Aging counts from when it could first run, not from its submission.
    assert_eq!(f.get(b).await.job.run_at, T0 + 5_000);
}

pub(crate) async fn a_prerequisite_that_completed_already_is_resolved_at_once(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await;
    complete(&f, &claimed[0], T0 + 1).await;
    let b = f.submit(f.after(&[a], 5, T0 + 2)).await;
    assert_eq!(b.state, JobState::Pending);
    let claimed = claim_one(&f, b.id, T0 + 2).await;
    assert_eq!(claimed.dependencies[0].state, JobState::Completed);
}

pub(crate) async fn a_failure_cancels_the_dependents_transitively_naming_it(open: OpenFn) {
    let f = fixture(open).await;
    let payment = f.submit(f.job(1, T0)).await.id;
    let inventory = f.submit(f.job(1, T0)).await.id;
    let mut shipping = f.job(5, T0);
    shipping.depends_on = vec![
        edge(Prereq::Job(payment), "payment", OnFailure::Cancel),
        edge(Prereq::Job(inventory), "inventory", OnFailure::Cancel),
    ];
    let shipping = f.submit(shipping).await.id;
    let mut email = f.job(9, T0);
    email.depends_on = vec![edge(Prereq::Job(shipping), "shipping", OnFailure::Cancel)];
    let email = f.submit(email).await.id;
    let claimed = f.claim(2, T0).await;
    complete(&f, &claimed[0], T0 + 1).await;
    f.record(
        &claimed[1],
        Some(ran(Err("out of stock"))),
        Decision::DeadLetter,
        T0,
        T0 + 2,
    )
    .await;
    let shipping = f.get(shipping).await.job;
    assert_eq!(
        (shipping.state, shipping.finished_at),
        (JobState::Cancelled, Some(T0 + 2))
    );
    assert_eq!(
        shipping.last_error.as_deref(),
        Some(format!("prerequisite `inventory` (job {inventory}) failed").as_str())
    );
    let email = f.get(email).await.job;
    assert_eq!(email.state, JobState::Cancelled);
    assert_eq!(
        email.last_error.unwrap(),
        format!(
            "prerequisite `shipping` (job {}) was cancelled: prerequisite `inventory` \
             (job {inventory}) failed",
            shipping.id
        )
    );
    // What completed stays completed, with its output.
    let payment = f.get(payment).await;
    assert_eq!(payment.job.state, JobState::Completed);
    assert!(payment.output.is_some());
}

pub(crate) async fn a_continue_edge_runs_the_dependent_after_a_failure(open: OpenFn) {
    let f = fixture(open).await;
    let validate = f.submit(f.job(5, T0)).await.id;
    let mut alert = f.job(0, T0);
    alert.depends_on = vec![edge(Prereq::Job(validate), "validate", OnFailure::Continue)];
    let alert = f.submit(alert).await.id;
    let claimed = f.claim(1, T0).await;
    f.record(
        &claimed[0],
        Some(ran(Err("bad row"))),
        Decision::DeadLetter,
        T0,
        T0 + 1,
    )
    .await;
    let claimed = claim_one(&f, alert, T0 + 1).await;
    assert_eq!(
        claimed.dependencies,
        [Resolved {
            name: "validate".to_owned(),
            job: validate,
            state: JobState::Failed,
            output: None,
            error: Some("bad row".to_owned()),
        }]
    );
}

pub(crate) async fn cancelling_a_job_cascades_like_a_failure(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    let b = f.submit(f.after(&[a], 5, T0)).await.id;
    let c = f.submit(f.after(&[b], 5, T0)).await.id;
    // Cancelling a blocked job is immediate, and cascades too.
    let cancelled = f.store.cancel_unless_final(b, T0 + 1).await.unwrap();
    assert_eq!(cancelled.state, JobState::Cancelled);
    let c = f.get(c).await.job;
    assert_eq!(c.state, JobState::Cancelled);
    assert_eq!(
        c.last_error.unwrap(),
        format!("prerequisite `{b}` (job {b}) was cancelled")
    );
    assert_eq!(
        f.get(a).await.job.state,
        JobState::Pending,
        "upstream stays"
    );
}

pub(crate) async fn a_prerequisite_must_exist_and_not_have_failed_already(open: OpenFn) {
    let f = fixture(open).await;
    let a = f.submit(f.job(5, T0)).await.id;
    // Nothing of a batch with a bad reference is stored.
    let batch = vec![f.job(5, T0), f.after(&[a + 100], 5, T0)];
    let error = f.store.insert_jobs(batch, T0).await.unwrap_err();
    assert!(matches!(error, Error::BadReference(_)), "{error}");
    assert!(
        error.to_string().contains(&format!("job {}", a + 100)),
        "{error}"
    );
    assert_eq!(f.store.list(JobFilter::default()).await.unwrap().len(), 1);
    f.store.cancel_unless_final(a, T0).await.unwrap();
    let error = f
        .store
        .insert_jobs(vec![f.after(&[a], 5, T0)], T0)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Conflict(_)), "{error}");
    // Behind a continue edge, it runs anyway.
    let mut anyway = f.job(5, T0);
    anyway.depends_on = vec![edge(Prereq::Job(a), "a", OnFailure::Continue)];
    let anyway = f.submit(anyway).await;
    assert_eq!(anyway.state, JobState::Pending);
}

pub(crate) async fn a_fan_in_resolves_once_its_last_prerequisite_ends(open: OpenFn) {
    let f = fixture(open).await;
    let mut batch: Vec<NewJob> = (0..200).map(|_| f.job(5, T0)).collect();
    let mut join = f.job(5, T0);
    join.depends_on = (0..200)
        .map(|i| edge(Prereq::Earlier(i), &format!("part-{i}"), OnFailure::Cancel))
        .collect();
    batch.push(join);
    let stored = f.store.insert_jobs(batch, T0).await.unwrap();
    let join = stored[200].job.id;
    assert_eq!(stored[200].job.state, JobState::Blocked);
    let mut done = 0;
    loop {
        let claimed = f.claim(64, T0).await;
        if claimed.is_empty() {
            break;
        }
        for job in &claimed {
            assert_ne!(
                job.job.id, join,
                "claimed before its last prerequisite ended"
            );
            complete(&f, job, T0 + 1).await;
            done += 1;
        }
    }
    assert_eq!(done, 200);
    let claimed = claim_one(&f, join, T0 + 1).await;
    assert_eq!(claimed.dependencies.len(), 200);
}

fn workflow(f: &Fixture) -> NewWorkflow {
    let node = |name: &str, deps: Vec<Dependency>| NewJob {
        node: Some(name.to_owned()),
        depends_on: deps,
        ..f.job(5, T0)
    };
    NewWorkflow {
        name: Some("order-42".to_owned()),
        jobs: vec![
            node("payment", vec![]),
            node("inventory", vec![]),
            node(
                "shipping",
                vec![
                    edge(Prereq::Earlier(0), "payment", OnFailure::Cancel),
                    edge(Prereq::Earlier(1), "inventory", OnFailure::Cancel),
                ],
            ),
            node(
                "email",
                vec![edge(Prereq::Earlier(2), "shipping", OnFailure::Cancel)],
            ),
        ],
    }
}

pub(crate) async fn a_workflow_is_stored_and_read_as_one(open: OpenFn) {
    let f = fixture(open).await;
    let (id, jobs) = f.store.insert_workflow(workflow(&f), T0).await.unwrap();
    let names: Vec<_> = jobs.iter().map(|j| j.node.clone().unwrap()).collect();
    assert_eq!(names, ["payment", "inventory", "shipping", "email"]);
    assert!(jobs.iter().all(|j| j.workflow == Some(id)));
    let detail = f.store.workflow(id).await.unwrap().unwrap();
    assert_eq!(detail.workflow.name.as_deref(), Some("order-42"));
    assert_eq!(detail.workflow.state(), WorkflowState::Running);
    assert_eq!(detail.jobs.len(), 4);
    let edges: Vec<_> = detail
        .edges
        .iter()
        .map(|e| (e.job, e.prereq, e.name.as_str()))
        .collect();
    assert_eq!(
        edges,
        [
            (jobs[2].id, jobs[0].id, "payment"),
            (jobs[2].id, jobs[1].id, "inventory"),
            (jobs[3].id, jobs[2].id, "shipping"),
        ]
    );
    let count = |state| {
        detail
            .workflow
            .counts
            .iter()
            .find(|(s, _)| *s == state)
            .unwrap()
            .1
    };
    assert_eq!((count(JobState::Pending), count(JobState::Blocked)), (2, 2));
    let listed = f.store.workflows(WorkflowFilter::default()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(listed[0].counts, detail.workflow.counts);
    assert!(f.store.workflow(id + 1).await.unwrap().is_none());
    // A bad reference stores nothing, not even the workflow.
    let mut broken = workflow(&f);
    broken.jobs[3].depends_on[0].on = Prereq::Earlier(7);
    assert!(f.store.insert_workflow(broken, T0).await.is_err());
    assert_eq!(
        f.store
            .workflows(WorkflowFilter::default())
            .await
            .unwrap()
            .len(),
        1
    );
}

pub(crate) async fn cancelling_a_workflow_cancels_every_unfinished_job(open: OpenFn) {
    let f = fixture(open).await;
    let (id, jobs) = f.store.insert_workflow(workflow(&f), T0).await.unwrap();
    let claimed = f.claim(2, T0).await;
    complete(&f, &claimed[0], T0 + 1).await; // payment
    // inventory is running.
    let cancelled = f
        .store
        .cancel_workflow(id, "workflow cancelled".to_owned(), T0 + 2)
        .await
        .unwrap();
    let mut cancelled = cancelled;
    cancelled.sort_unstable();
    assert_eq!(cancelled, [jobs[1].id, jobs[2].id, jobs[3].id]);
    let detail = f.store.workflow(id).await.unwrap().unwrap();
    let states: Vec<_> = detail.jobs.iter().map(|j| j.state).collect();
    assert_eq!(
        states,
        [
            JobState::Completed,
            JobState::Cancelled,
            JobState::Cancelled,
            JobState::Cancelled
        ]
    );
    for job in &detail.jobs[1..] {
        assert_eq!(job.last_error.as_deref(), Some("workflow cancelled"));
    }
    assert_eq!(detail.workflow.state(), WorkflowState::Cancelled);
    // The running job's worker still files its attempt.
    let record = outcome(
        &claimed[1],
        Some(ran(Err("stopped"))),
        Decision::Cancelled,
        T0,
        T0 + 3,
    );
    let recorded = f.store.record_if_leased(vec![record]).await.unwrap();
    assert_eq!(recorded[0].as_ref().unwrap(), &Recorded::Applied);
    // Again: nothing left to cancel.
    let again = f
        .store
        .cancel_workflow(id, "again".to_owned(), T0 + 4)
        .await
        .unwrap();
    assert!(again.is_empty());
    let unknown = f.store.cancel_workflow(id + 1, String::new(), T0).await;
    assert!(matches!(unknown, Err(Error::NotFound(_))));
}

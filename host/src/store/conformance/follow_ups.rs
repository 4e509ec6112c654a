//! Jobs that submit jobs: the follow-ups of an attempt are created with its
//! completed result, in one transaction, linked to it and in its
//! workflow; never for an outcome that does not complete the job.

use super::*;
use crate::job::{Dependency, JobState, NewWorkflow, OnFailure, Prereq};
use crate::store::JobFilter;

/// Two follow-ups: `a`, then `b` after it.
fn follow_ups(f: &Fixture) -> Vec<NewJob> {
    vec![
        NewJob {
            node: Some("a".to_owned()),
            ..f.job(3, T0)
        },
        NewJob {
            node: Some("b".to_owned()),
            depends_on: vec![Dependency {
                on: Prereq::Earlier(0),
                name: "a".to_owned(),
                on_failure: OnFailure::Cancel,
            }],
            ..f.job(3, T0)
        },
    ]
}

/// Completes `claimed` at `now` with `jobs` as its follow-ups.
async fn complete_with(f: &Fixture, claimed: &Claimed, jobs: Vec<NewJob>, now: Millis) -> Recorded {
    let outcome = Outcome {
        follow_ups: jobs,
        ..outcome(claimed, Some(ran(Ok(()))), Decision::Complete, now, now)
    };
    f.store
        .record_if_leased(vec![outcome])
        .await
        .unwrap()
        .remove(0)
        .unwrap()
}

/// Every job whose parent is `parent`, oldest first.
async fn children(f: &Fixture, parent: JobId) -> Vec<Job> {
    let mut jobs = f.store.list(JobFilter::default()).await.unwrap();
    jobs.retain(|job| job.parent == Some(parent));
    jobs.reverse();
    jobs
}

pub(crate) async fn a_completed_attempt_creates_its_follow_ups_with_its_result(open: OpenFn) {
    let f = fixture(open).await;
    let parent = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let recorded = complete_with(&f, &claimed, follow_ups(&f), T0 + 10).await;
    assert_eq!(recorded, Recorded::Applied);
    let done = f.get(parent).await.job;
    assert_eq!(done.state, JobState::Completed);
    let jobs = children(&f, parent).await;
    assert_eq!(jobs.len(), 2);
    assert_eq!(
        (jobs[0].state, jobs[0].created_at),
        (JobState::Pending, T0 + 10)
    );
    assert_eq!(jobs[1].state, JobState::Blocked, "b waits for a");
    // The parent and its follow-ups make one workflow.
    let workflow = done.workflow.expect("the parent joined a workflow");
    assert!(jobs.iter().all(|job| job.workflow == Some(workflow)));
    let detail = f.store.workflow(workflow).await.unwrap().unwrap();
    assert_eq!(detail.jobs.len(), 3);
    let edges: Vec<_> = detail.edges.iter().map(|e| (e.job, e.prereq)).collect();
    assert_eq!(edges, [(jobs[1].id, jobs[0].id)]);
    // A follow-up completing releases the next, as any prerequisite.
    let a = f.claim(1, T0 + 20).await.remove(0);
    assert_eq!(a.job.id, jobs[0].id);
    f.record(&a, Some(ran(Ok(()))), Decision::Complete, T0 + 20, T0 + 30)
        .await;
    assert_eq!(f.get(jobs[1].id).await.job.state, JobState::Pending);
}

pub(crate) async fn follow_ups_join_the_workflow_of_their_parent(open: OpenFn) {
    let f = fixture(open).await;
    let workflow = NewWorkflow {
        name: Some("batch".to_owned()),
        jobs: vec![NewJob {
            node: Some("split".to_owned()),
            ..f.job(5, T0)
        }],
    };
    let (id, jobs) = f.store.insert_workflow(workflow, T0).await.unwrap();
    let claimed = f.claim(1, T0).await.remove(0);
    complete_with(&f, &claimed, follow_ups(&f), T0 + 10).await;
    let detail = f.store.workflow(id).await.unwrap().unwrap();
    let nodes: Vec<_> = detail.jobs.iter().map(|j| j.node.clone()).collect();
    assert_eq!(
        nodes,
        [Some("split".into()), Some("a".into()), Some("b".into())]
    );
    assert!(
        detail.jobs[1..]
            .iter()
            .all(|j| j.parent == Some(jobs[0].id))
    );
    assert_eq!(
        f.store.workflows(Default::default()).await.unwrap().len(),
        1
    );
}

pub(crate) async fn a_stale_or_cancelled_attempt_creates_no_follow_up(open: OpenFn) {
    let f = fixture(open).await;
    // Cancelled while it ran: the attempt is filed, nothing else.
    let cancelled = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    f.store
        .cancel_unless_final(cancelled, T0 + 1)
        .await
        .unwrap();
    complete_with(&f, &claimed, follow_ups(&f), T0 + 2).await;
    // Reported twice: the second is stale.
    let twice = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    complete_with(&f, &claimed, Vec::new(), T0 + 3).await;
    let again = complete_with(&f, &claimed, follow_ups(&f), T0 + 4).await;
    assert_eq!(again, Recorded::Stale);
    assert!(children(&f, cancelled).await.is_empty());
    assert!(children(&f, twice).await.is_empty());
    assert_eq!(f.store.list(JobFilter::default()).await.unwrap().len(), 2);
    // A follow-up whose module is gone fails the whole outcome: the
    // parent's result is not written without them.
    let parent = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await.remove(0);
    let mut missing = follow_ups(&f);
    missing[1].module.hash = "0".repeat(64);
    let outcome = Outcome {
        follow_ups: missing,
        ..outcome(&claimed, Some(ran(Ok(()))), Decision::Complete, T0, T0 + 5)
    };
    let result = f.store.record_if_leased(vec![outcome]).await.unwrap();
    assert!(matches!(result[0], Err(crate::store::Error::NotFound(_))));
    assert_eq!(f.get(parent).await.job.state, JobState::Running);
    assert!(children(&f, parent).await.is_empty());
}

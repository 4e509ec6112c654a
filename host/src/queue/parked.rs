//! Claims parked for the next submission.
//!
//! An idle dispatcher would otherwise learn of a submission through a
//! wake-up and then claim the job in a commit of its own: two hand-offs
//! and a second write per job. Instead, while it rests with free slots, it
//! parks its claim here; the next [`Queue::submit`](super::Queue::submit)
//! takes it and the store runs it in the submission's own commit, right
//! after the insert ([`JobStore::insert_jobs_and_claim`]), so the job is
//! claimed, in claim order among every due job, before its submitter hears
//! back. The dispatcher gets the claimed jobs as the claim's answer.
//!
//! A parked claim is withdrawn when the dispatcher's rest ends for another
//! reason (a wake-up, a timer, a stop). If a submission already took it,
//! the withdrawal fails and the dispatcher waits for the answer, so no
//! claimed job is ever left without a holder.
//!
//! [`JobStore::insert_jobs_and_claim`]: crate::store::JobStore::insert_jobs_and_claim

use crate::store::{self, ClaimRequest, Claimed};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use tokio::sync::oneshot;

/// What a parked claim's holder hears: the jobs claimed (possibly none), or
/// the claim's error. The sender dropped unanswered means the claim never
/// ran (the submission that took it failed as a whole).
pub(crate) type Answer = store::Result<Vec<Claimed>>;

/// The claims waiting for a submission, oldest first.
#[derive(Default)]
pub(crate) struct ParkedClaims {
    next: AtomicU64,
    waiting: Mutex<Vec<Parked>>,
}

/// A claim taken by a submission: run it in the submission's commit, then
/// [`answer`](Self::answer) it.
pub(crate) struct Parked {
    id: u64,
    /// What to claim.
    pub(crate) request: ClaimRequest,
    reply: oneshot::Sender<Answer>,
}

/// The dispatcher's side of a parked claim.
pub(crate) struct Ticket {
    /// Identifies the claim for [`ParkedClaims::withdraw`].
    pub(crate) id: u64,
    /// Resolves with the claim's answer, or an error if it never ran.
    pub(crate) answer: oneshot::Receiver<Answer>,
}

impl ParkedClaims {
    /// Parks `request` until a submission takes it.
    pub(crate) fn park(&self, request: ClaimRequest) -> Ticket {
        let id = self.next.fetch_add(1, Ordering::Relaxed);
        let (reply, answer) = oneshot::channel();
        self.lock().push(Parked { id, request, reply });
        Ticket { id, answer }
    }

    /// The oldest parked claim, for a submission to run.
    pub(crate) fn take(&self) -> Option<Parked> {
        let mut waiting = self.lock();
        (!waiting.is_empty()).then(|| waiting.remove(0))
    }

    /// Removes claim `id` if no submission has taken it: `true` when it
    /// was removed (it never runs), `false` when a submission holds it
    /// (its answer is coming).
    pub(crate) fn withdraw(&self, id: u64) -> bool {
        let mut waiting = self.lock();
        match waiting.iter().position(|parked| parked.id == id) {
            Some(index) => {
                waiting.remove(index);
                true
            }
            None => false,
        }
    }

    /// How many claims are parked.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().len()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Parked>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Parked {
    /// Hands the claim's result to the dispatcher. `false` if nobody was
    /// waiting any more (the jobs stay leased until their leases expire).
    pub(crate) fn answer(self, answer: Answer) -> bool {
        self.reply.send(answer).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(limit: usize) -> ClaimRequest {
        ClaimRequest {
            owner: "host".to_owned(),
            limit,
            lease_ms: 1_000,
            caps: Default::default(),
        }
    }

    #[test]
    fn a_withdrawn_claim_is_never_taken() {
        let parked = ParkedClaims::default();
        let mut ticket = parked.park(request(4));
        assert!(parked.withdraw(ticket.id));
        assert!(parked.take().is_none());
        // Its sender is gone: the dispatcher hears that it never ran.
        assert!(ticket.answer.try_recv().is_err());
    }

    #[test]
    fn a_taken_claim_cannot_be_withdrawn_and_its_answer_arrives() {
        let parked = ParkedClaims::default();
        let mut first = parked.park(request(1));
        let second = parked.park(request(2));
        let taken = parked.take().expect("a parked claim");
        assert_eq!(taken.request.limit, 1, "the oldest goes first");
        assert!(!parked.withdraw(first.id));
        assert!(taken.answer(Ok(Vec::new())));
        assert!(matches!(first.answer.try_recv(), Ok(Ok(jobs)) if jobs.is_empty()));
        assert!(parked.withdraw(second.id));
    }
}

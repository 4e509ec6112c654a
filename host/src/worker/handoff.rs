//! Hand-offs: a submission that finds this host's dispatcher idle claims
//! its jobs in its own commit and hands them over.
//!
//! An idle dispatcher (its last claim found fewer due jobs than it asked
//! for) posts an [`Offer`]. The next submission with a job due now takes
//! it ([`Offers::take`]): its insert also claims up to as many jobs as
//! there are idle slots, in the same transaction, as a claim of the
//! dispatcher's would after it (so other due jobs keep their order), and
//! its commit sends them to the dispatcher through the [`Ticket`]. That
//! saves the job a wake-up, a claim of its own (a second commit) and the
//! hops between threads both cost; on a host that runs one job at a time
//! as it is submitted, most of its time.
//!
//! At most one offer is out at a time: taken, it is answered by exactly
//! one [`HandOff`] (empty when the insert failed or claimed nothing), and
//! the dispatcher posts the next only after that. A hand-off holds a
//! [`ClaimInFlight`] until its jobs are registered, as a claim of the
//! dispatcher's does, so a cancel meanwhile is not lost.

use super::registry::{ClaimInFlight, Registry};
use super::slots::Slots;
use crate::store::Claimed;
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// What a submission that took the offer sends the dispatcher.
pub(crate) struct HandOff {
    /// The jobs its transaction claimed for this host (maybe none).
    pub claimed: Vec<Claimed>,
    /// Until the jobs are registered.
    pub in_flight: ClaimInFlight,
    /// When the submission's commit handed them over.
    pub committed: std::time::Instant,
}

/// Where an offer's hand-off goes: the dispatcher's channel.
pub(crate) type Offer = mpsc::UnboundedSender<HandOff>;

/// The idle dispatcher's offer, if one is out. Held by the queue, which
/// submissions go through.
#[derive(Default)]
pub(crate) struct Offers {
    posted: Mutex<Option<Offer>>,
}

impl Offers {
    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Offer>> {
        self.posted
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Posts the dispatcher's offer.
    pub(super) fn post(&self, offer: Offer) {
        *self.lock() = Some(offer);
    }

    /// Withdraws `offer` if no submission took it yet; `false` when one
    /// did (its hand-off is on its way).
    pub(super) fn withdraw(&self, offer: &Offer) -> bool {
        let mut posted = self.lock();
        match posted.as_ref() {
            Some(out) if out.same_channel(offer) => {
                *posted = None;
                true
            }
            _ => false,
        }
    }

    /// Takes the offer for a submission, if one is out and a slot is
    /// idle: how many jobs its insert may claim (the idle slots less the
    /// jobs already waiting for one), and the ticket its commit fills.
    pub(crate) fn take(&self, slots: &Slots, registry: &Arc<Registry>) -> Option<(usize, Ticket)> {
        let mut posted = self.lock();
        posted.as_ref()?;
        let idle = slots
            .permits()
            .available_permits()
            .saturating_sub(slots.buffered());
        if idle == 0 {
            return None;
        }
        let to = posted.take()?;
        Some((
            idle,
            Ticket {
                to,
                in_flight: Some(registry.claiming()),
                claimed: Vec::new(),
            },
        ))
    }
}

/// A taken offer. Dropped, it sends the dispatcher what it carries: the
/// jobs [`deliver`](Self::deliver)ed, or none (the insert failed).
pub(crate) struct Ticket {
    to: Offer,
    in_flight: Option<ClaimInFlight>,
    claimed: Vec<Claimed>,
}

impl Ticket {
    /// Sends the dispatcher the jobs the submission's commit claimed.
    pub(crate) fn deliver(mut self, claimed: Vec<Claimed>) {
        self.claimed = claimed;
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        let Some(in_flight) = self.in_flight.take() else {
            return;
        };
        let handoff = HandOff {
            claimed: std::mem::take(&mut self.claimed),
            in_flight,
            committed: std::time::Instant::now(),
        };
        if let Err(unsent) = self.to.send(handoff)
            && !unsent.0.claimed.is_empty()
        {
            // The dispatcher stopped without waiting for it: the leases
            // run out and the rescuer (or this host's next start) gives
            // the jobs back to the queue.
            tracing::warn!(
                jobs = unsent.0.claimed.len(),
                "jobs claimed by a submission after the worker pool stopped"
            );
        }
    }
}

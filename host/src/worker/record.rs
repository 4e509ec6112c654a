//! The recorder: writes attempt results in batches.
//!
//! Job tasks send their result and move on; the recorder writes many
//! results in one store call, one commit. A commit has a fixed cost (an
//! fsync, rewriting the same index pages), so under load the recorder
//! lingers up to [`LINGER`] for more results to share it. When no other job
//! is claimed or running it writes at once: an idle host adds no latency.

use crate::queue::Queue;
use crate::store::{AttemptResult, Recorded};
use std::time::Duration;
use tokio::sync::mpsc;

/// Most results written in one store call.
const MAX_BATCH: usize = 1_024;
/// Longest a result waits for others to share its commit.
const LINGER: Duration = Duration::from_millis(2);

/// Records results until every sender is gone and the channel is empty.
pub(super) async fn run(queue: Queue, mut results: mpsc::UnboundedReceiver<AttemptResult>) {
    let mut batch = Vec::with_capacity(MAX_BATCH);
    while results.recv_many(&mut batch, MAX_BATCH).await > 0 {
        if batch.len() < MAX_BATCH && more_coming(&queue) {
            let deadline = tokio::time::Instant::now() + LINGER;
            while batch.len() < MAX_BATCH {
                let limit = MAX_BATCH - batch.len();
                match tokio::time::timeout_at(deadline, results.recv_many(&mut batch, limit)).await
                {
                    Ok(0) | Err(_) => break, // closed, or lingered long enough
                    Ok(_) if !more_coming(&queue) => break,
                    Ok(_) => {}
                }
            }
        }
        let count = batch.len();
        let written = std::mem::replace(&mut batch, Vec::with_capacity(MAX_BATCH));
        let ids: Vec<_> = written.iter().map(|r| r.lease.id).collect();
        match queue.store().record(written).await {
            Ok(recorded) => queue.changed(
                ids.into_iter()
                    .zip(recorded)
                    .filter(|(_, r)| *r == Recorded::Applied)
                    .map(|(id, _)| id),
            ),
            // The leases will expire and the rescuer will retry the jobs.
            Err(error) => tracing::error!(%error, results = count, "recording results failed"),
        }
    }
}

/// Whether other results are on their way: some job is claimed or running.
fn more_coming(queue: &Queue) -> bool {
    !queue.inner.running.lock().expect("running map").is_empty()
}

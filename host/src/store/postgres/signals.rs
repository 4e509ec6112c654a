//! Signals between hosts: what one host's writes mean for the others
//! (a job cancelled that another host runs, a job finished that another
//! host's client long-polls, a module renamed or deleted that another host
//! has cached, a schedule another host's cron loop must read again), sent with `NOTIFY` on [`CHANNEL`] after the write commits.
//!
//! Sending is off the writers' path: a verb that committed puts what it
//! changed in the [`Outbox`] and returns; one task per store drains the
//! outbox and sends it in a transaction of its own with
//! `synchronous_commit = off` (a notification is not worth an fsync, and a
//! lost one only delays what the receivers' polling finds anyway).
//! Cancels, module and schedule changes go at once; job changes are gathered for up
//! to [`GATHER`] so a busy host sends a few hundred notifications a second,
//! not one per outcome.
//!
//! A payload is `schema \n sender \n kind \n items` (items separated by
//! commas): the receiver drops other schemas' and its own. A payload
//! stays under PostgreSQL's 8,000-byte limit; job changes too many for
//! one become [`Signal::ChangedMany`].

use crate::job::JobId;
use crate::store::{Result, Signal};
use deadpool_postgres::Pool;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::Notify;

/// The channel every host listens on for signals.
pub(super) const CHANNEL: &str = "wasmjob_signals";
/// How long job changes are gathered before they are sent.
const GATHER: Duration = Duration::from_millis(5);
/// The most bytes of items one payload carries (PostgreSQL refuses
/// payloads of 8,000 bytes or more; the rest is the header).
const MAX_ITEMS_BYTES: usize = 7_000;
/// How long the sender waits after a failed send before the next.
const RETRY: Duration = Duration::from_millis(200);

/// What this host changed and has not told the others yet.
#[derive(Debug, Default)]
struct Pending {
    cancelled: Vec<JobId>,
    changed: Vec<JobId>,
    many: bool,
    modules: Option<Vec<String>>,
    schedules: bool,
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.cancelled.is_empty()
            && self.changed.is_empty()
            && !self.many
            && self.modules.is_none()
            && !self.schedules
    }

    /// Whether what waits should go now rather than after [`GATHER`].
    fn urgent(&self) -> bool {
        !self.cancelled.is_empty() || self.modules.is_some() || self.schedules
    }
}

/// Signals waiting to be sent, and the task that sends them.
pub(super) struct Outbox {
    pending: Mutex<Pending>,
    ready: Notify,
}

impl Outbox {
    pub(super) fn new() -> Arc<Outbox> {
        Arc::new(Outbox {
            pending: Mutex::new(Pending::default()),
            ready: Notify::new(),
        })
    }

    fn pending(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Queues a signal for the other hosts (after the write it describes
    /// committed).
    pub(super) fn put(&self, signal: Signal) {
        {
            let mut pending = self.pending();
            match signal {
                Signal::Cancelled(ids) => pending.cancelled.extend(ids),
                Signal::Changed(ids) => {
                    if !pending.many {
                        pending.changed.extend(ids);
                        // Far more than one payload holds: say "many".
                        if pending.changed.len() > MAX_ITEMS_BYTES {
                            pending.changed.clear();
                            pending.many = true;
                        }
                    }
                }
                Signal::ChangedMany => {
                    pending.changed.clear();
                    pending.many = true;
                }
                Signal::ModulesChanged(hashes) => {
                    pending.modules.get_or_insert_with(Vec::new).extend(hashes);
                }
                Signal::SchedulesChanged => pending.schedules = true,
            }
        }
        self.ready.notify_one();
    }

    /// Sends what is put, until aborted. `sender` names this store among
    /// the hosts (receivers drop their own signals).
    pub(super) async fn run(self: Arc<Self>, pool: Pool, sender: String) {
        loop {
            self.ready.notified().await;
            if !self.pending().urgent() {
                tokio::time::sleep(GATHER).await;
            }
            let pending = std::mem::take(&mut *self.pending());
            if pending.is_empty() {
                continue;
            }
            let payloads = payloads(&sender, &pending);
            if let Err(error) = send(&pool, &payloads).await {
                tracing::debug!(%error, "sending signals to the other hosts failed; retrying");
                // Put back what could not go (merged with anything new).
                self.put_back(pending);
                tokio::time::sleep(RETRY).await;
                self.ready.notify_one();
            }
        }
    }

    fn put_back(&self, old: Pending) {
        let mut pending = self.pending();
        pending.cancelled.extend(old.cancelled);
        if old.many {
            pending.many = true;
            pending.changed.clear();
        } else if !pending.many {
            pending.changed.extend(old.changed);
        }
        if let Some(modules) = old.modules {
            pending.modules.get_or_insert_with(Vec::new).extend(modules);
        }
        pending.schedules |= old.schedules;
    }
}

/// One transaction of `pg_notify` calls, not waiting for its commit to
/// reach the disk.
async fn send(pool: &Pool, payloads: &[String]) -> Result<()> {
    let mut client = pool.get().await.map_err(super::pool_error)?;
    let tx = client.transaction().await?;
    tx.batch_execute("SET LOCAL synchronous_commit = off")
        .await?;
    let notify = tx
        .prepare_cached("SELECT pg_notify($1, current_schema() || E'\\n' || $2)")
        .await?;
    for payload in payloads {
        tx.execute(&notify, &[&CHANNEL, payload]).await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The payloads (without the schema, which the statement adds) saying
/// what `pending` holds.
fn payloads(sender: &str, pending: &Pending) -> Vec<String> {
    let mut out = Vec::new();
    let ids = |ids: &[JobId]| ids.iter().map(JobId::to_string).collect::<Vec<_>>();
    chunk(sender, "cancelled", &ids(&pending.cancelled), &mut out);
    if pending.many {
        out.push(format!("{sender}\nchanged-many\n"));
    } else {
        chunk(sender, "changed", &ids(&pending.changed), &mut out);
    }
    if let Some(hashes) = &pending.modules {
        if hashes.is_empty() {
            out.push(format!("{sender}\nmodules\n"));
        } else {
            chunk(sender, "modules", hashes, &mut out);
        }
    }
    if pending.schedules {
        out.push(format!("{sender}\nschedules\n"));
    }
    out
}

/// Payloads of `kind` carrying `items`, each under the size limit.
fn chunk(sender: &str, kind: &str, items: &[String], out: &mut Vec<String>) {
    let mut current = String::new();
    for item in items {
        if !current.is_empty() && current.len() + 1 + item.len() > MAX_ITEMS_BYTES {
            out.push(format!("{sender}\n{kind}\n{current}"));
            current.clear();
        }
        if !current.is_empty() {
            current.push(',');
        }
        current.push_str(item);
    }
    if !current.is_empty() {
        out.push(format!("{sender}\n{kind}\n{current}"));
    }
}

/// Reads a payload: the signal in it, unless it is about another schema,
/// from `me`, or not understood.
pub(super) fn parse(payload: &str, schema: &str, me: &str) -> Option<Signal> {
    let mut parts = payload.splitn(4, '\n');
    let (their_schema, sender, kind, items) =
        (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
    if their_schema != schema || sender == me {
        return None;
    }
    let ids = || -> Option<Vec<JobId>> {
        items
            .split(',')
            .filter(|item| !item.is_empty())
            .map(|item| item.parse().ok())
            .collect()
    };
    match kind {
        "cancelled" => Some(Signal::Cancelled(ids()?)),
        "changed" => Some(Signal::Changed(ids()?)),
        "changed-many" => Some(Signal::ChangedMany),
        "modules" => Some(Signal::ModulesChanged(
            items
                .split(',')
                .filter(|item| !item.is_empty())
                .map(str::to_owned)
                .collect(),
        )),
        "schedules" => Some(Signal::SchedulesChanged),
        _ => None,
    }
}

#[cfg(test)]
mod unit {
    use super::*;

    fn round_trip(pending: &Pending) -> Vec<Signal> {
        payloads("host-a", pending)
            .iter()
            .map(|p| parse(&format!("jobs\n{p}"), "jobs", "host-b").expect(p))
            .collect()
    }

    #[test]
    fn payloads_round_trip_and_stay_under_the_limit() {
        let pending = Pending {
            cancelled: vec![7],
            changed: (1..=3_000).collect(),
            many: false,
            modules: Some(vec!["ab".repeat(32)]),
            schedules: true,
        };
        let payloads = payloads("host-a", &pending);
        assert!(
            payloads.iter().all(|p| p.len() < 7_900),
            "under 8,000 bytes"
        );
        let signals = round_trip(&pending);
        assert_eq!(signals[0], Signal::Cancelled(vec![7]));
        let changed: Vec<JobId> = signals
            .iter()
            .filter_map(|s| match s {
                Signal::Changed(ids) => Some(ids.clone()),
                _ => None,
            })
            .flatten()
            .collect();
        assert_eq!(changed, (1..=3_000).collect::<Vec<_>>());
        assert!(signals.len() > 3, "3,000 ids take more than one payload");
        assert_eq!(
            signals[signals.len() - 2..],
            [
                Signal::ModulesChanged(vec!["ab".repeat(32)]),
                Signal::SchedulesChanged
            ]
        );
    }

    #[test]
    fn own_and_other_schemas_signals_are_dropped() {
        let payload = "jobs\nhost-a\ncancelled\n1,2";
        assert_eq!(
            parse(payload, "jobs", "host-b"),
            Some(Signal::Cancelled(vec![1, 2]))
        );
        assert_eq!(parse(payload, "jobs", "host-a"), None, "its own");
        assert_eq!(parse(payload, "other", "host-b"), None, "another schema");
        assert_eq!(parse("jobs\nhost-a\nnonsense\n", "jobs", "host-b"), None);
        assert_eq!(parse("jobs\nhost-a\ncancelled\nx", "jobs", "host-b"), None);
    }

    #[test]
    fn a_flood_of_changes_becomes_one_many() {
        let outbox = Outbox::new();
        for id in 0..10_000 {
            outbox.put(Signal::Changed(vec![id]));
        }
        let pending = std::mem::take(&mut *outbox.pending());
        assert!(pending.many && pending.changed.is_empty());
        assert_eq!(
            payloads("h", &pending),
            vec!["h\nchanged-many\n".to_owned()]
        );
    }
}

//! Alert webhooks: a job moved to the dead letter, or a queue whose oldest
//! due job has waited past a threshold, posted as JSON to the operator's
//! URLs (`[alerts.NAME]`), signed with HMAC-SHA256 when a secret is set.
//!
//! Raising an alert never blocks the caller (the recorder, the rescuer):
//! it goes into a bounded in-memory queue, and one dedicated thread
//! delivers it with the blocking HTTP client, retrying failures with
//! exponential backoff. When the queue is full the alert is dropped and
//! counted. [`AlertStats`] counts what was delivered, failed (every retry
//! spent) and dropped.
//!
//! A queue's wait alert fires when the wait crosses the threshold, not at
//! every check: it fires again only after the wait went back under it.

use crate::clock::Millis;
use crate::job::Job;
use crate::store::QueueStats;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::Sha256;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The header carrying the body's signature: `sha256=<hex HMAC-SHA256 of
/// the body, keyed with the alert's secret>`.
pub const SIGNATURE_HEADER: &str = "X-Wasmjob-Signature";
/// Alerts waiting for delivery at most: beyond, new ones are dropped (and
/// counted) rather than held without bound or blocking the queue.
pub const QUEUE_CAPACITY: usize = 1_024;

/// What an alert is about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AlertEvent {
    /// A job moved to the dead letter.
    DeadLetter,
    /// A queue's oldest due job has waited longer than the threshold.
    QueueWait,
}

/// One webhook: where, how signed, about what.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Webhook {
    /// Its name (`[alerts.NAME]`), sent in the body.
    pub name: String,
    /// Where to `POST`.
    pub url: String,
    /// Signs the body when set.
    pub secret: Option<String>,
    /// What it is told about.
    pub events: BTreeSet<AlertEvent>,
    /// The queue wait threshold, ms (with [`AlertEvent::QueueWait`]).
    pub queue_wait_ms: Option<u64>,
    /// Only these queues; every queue when `None`.
    pub queues: Option<BTreeSet<String>>,
}

impl Webhook {
    fn wants(&self, event: AlertEvent, queue: &str) -> bool {
        self.events.contains(&event)
            && self
                .queues
                .as_ref()
                .is_none_or(|queues| queues.contains(queue))
    }
}

/// How deliveries are retried.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Delivery {
    /// Attempts per alert in all.
    pub attempts: u32,
    /// Pause before the second attempt; it doubles after each failure.
    pub first_backoff: Duration,
    /// The longest pause between attempts.
    pub max_backoff: Duration,
    /// Timeout of one request, from connecting to the end of the answer.
    pub timeout: Duration,
}

impl Default for Delivery {
    /// Five attempts over about 15 s (1, 2, 4, 8 s between them): enough
    /// for a receiver restarting; 10 s per request.
    fn default() -> Self {
        Delivery {
            attempts: 5,
            first_backoff: Duration::from_secs(1),
            max_backoff: Duration::from_secs(60),
            timeout: Duration::from_secs(10),
        }
    }
}

/// Counters of deliveries, for metrics.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// Alerts the receiver accepted (a 2xx).
    pub delivered: AtomicU64,
    /// Alerts given up on after every attempt failed.
    pub failed: AtomicU64,
    /// Alerts dropped because the delivery queue was full.
    pub dropped: AtomicU64,
    /// Attempts that failed and were retried.
    pub retried: AtomicU64,
}

/// A copy of [`AlertStats`] at one moment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AlertCounts {
    /// See [`AlertStats::delivered`].
    pub delivered: u64,
    /// See [`AlertStats::failed`].
    pub failed: u64,
    /// See [`AlertStats::dropped`].
    pub dropped: u64,
    /// See [`AlertStats::retried`].
    pub retried: u64,
}

impl AlertStats {
    /// The counters now.
    pub fn snapshot(&self) -> AlertCounts {
        AlertCounts {
            delivered: self.delivered.load(Ordering::Relaxed),
            failed: self.failed.load(Ordering::Relaxed),
            dropped: self.dropped.load(Ordering::Relaxed),
            retried: self.retried.load(Ordering::Relaxed),
        }
    }
}

/// The JSON body posted.
#[derive(Clone, Debug, Serialize)]
struct Body<'a> {
    /// The webhook's name.
    alert: &'a str,
    event: AlertEvent,
    /// When it was raised, ms since the epoch.
    at: Millis,
    queue: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    job_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    module: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    oldest_wait_ms: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    threshold_ms: Option<u64>,
}

/// One alert on its way out.
struct Pending {
    url: String,
    secret: Option<String>,
    body: String,
}

/// The alerts of a host. Cheap to clone; the delivery thread stops when
/// the last clone is dropped.
#[derive(Clone)]
pub struct Alerts {
    inner: Arc<Inner>,
}

struct Inner {
    webhooks: Vec<Webhook>,
    sender: SyncSender<Pending>,
    stats: Arc<AlertStats>,
    /// (webhook, queue) pairs whose wait is above the threshold now.
    above: Mutex<BTreeSet<(usize, String)>>,
}

impl Alerts {
    /// Starts the delivery thread for `webhooks`.
    pub fn start(webhooks: Vec<Webhook>, delivery: Delivery) -> std::io::Result<Alerts> {
        let (sender, receiver) = std::sync::mpsc::sync_channel(QUEUE_CAPACITY);
        let stats = Arc::new(AlertStats::default());
        let counters = Arc::clone(&stats);
        std::thread::Builder::new()
            .name("wasmjob-alerts".to_owned())
            .spawn(move || deliver_all(receiver, delivery, &counters))?;
        Ok(Alerts {
            inner: Arc::new(Inner {
                webhooks,
                sender,
                stats,
                above: Mutex::new(BTreeSet::new()),
            }),
        })
    }

    /// The delivery counters.
    pub fn stats(&self) -> &Arc<AlertStats> {
        &self.inner.stats
    }

    /// Raises a dead-letter alert for `job` (as it was claimed), `at` the
    /// time it failed, with its last error.
    pub fn dead_letter(&self, job: &Job, error: Option<&str>, at: Millis) {
        for hook in &self.inner.webhooks {
            if !hook.wants(AlertEvent::DeadLetter, &job.queue) {
                continue;
            }
            let body = Body {
                alert: &hook.name,
                event: AlertEvent::DeadLetter,
                at,
                queue: &job.queue,
                job_id: Some(job.id),
                module: Some(job.module.name.as_deref().unwrap_or(&job.module.hash)),
                error,
                oldest_wait_ms: None,
                threshold_ms: None,
            };
            self.send(hook, &body);
        }
    }

    /// Checks each queue's oldest wait at `now` against every wait
    /// threshold; raises an alert for each that crossed it since the last
    /// check. Returns how many were raised.
    pub fn check_waits(&self, queues: &[QueueStats], now: Millis) -> usize {
        let mut raised = 0;
        let mut above = self.inner.above.lock().unwrap_or_else(|p| p.into_inner());
        for (i, hook) in self.inner.webhooks.iter().enumerate() {
            let Some(threshold) = hook.queue_wait_ms else {
                continue;
            };
            for queue in queues {
                if !hook.wants(AlertEvent::QueueWait, &queue.name) {
                    continue;
                }
                let wait = queue.oldest_due.map_or(0, |due| now.saturating_sub(due));
                let key = (i, queue.name.clone());
                if wait <= threshold as i64 || queue.paused {
                    above.remove(&key);
                    continue;
                }
                if !above.insert(key) {
                    continue; // already told
                }
                let body = Body {
                    alert: &hook.name,
                    event: AlertEvent::QueueWait,
                    at: now,
                    queue: &queue.name,
                    job_id: None,
                    module: None,
                    error: None,
                    oldest_wait_ms: Some(wait),
                    threshold_ms: Some(threshold),
                };
                self.send(hook, &body);
                raised += 1;
            }
        }
        raised
    }

    /// Whether any webhook checks queue waits.
    pub fn checks_waits(&self) -> bool {
        self.inner
            .webhooks
            .iter()
            .any(|h| h.queue_wait_ms.is_some() && h.events.contains(&AlertEvent::QueueWait))
    }

    fn send(&self, hook: &Webhook, body: &Body<'_>) {
        let pending = Pending {
            url: hook.url.clone(),
            secret: hook.secret.clone(),
            body: serde_json::to_string(body).expect("an alert serializes"),
        };
        match self.inner.sender.try_send(pending) {
            Ok(()) => {}
            Err(TrySendError::Full(_) | TrySendError::Disconnected(_)) => {
                self.inner.stats.dropped.fetch_add(1, Ordering::Relaxed);
            }
        }
    }
}

/// `sha256=<hex>`: the HMAC-SHA256 of `body` keyed with `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key");
    mac.update(body);
    let bytes = mac.finalize().into_bytes();
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

/// The delivery thread: one alert at a time, each retried with backoff.
fn deliver_all(receiver: Receiver<Pending>, delivery: Delivery, stats: &AlertStats) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(delivery.timeout))
        .build()
        .into();
    while let Ok(pending) = receiver.recv() {
        let mut pause = delivery.first_backoff;
        let mut attempt = 1;
        loop {
            match post(&agent, &pending) {
                Ok(()) => {
                    stats.delivered.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(why) if attempt >= delivery.attempts.max(1) => {
                    tracing::warn!(url = %pending.url, %why, attempts = attempt, "an alert could not be delivered");
                    stats.failed.fetch_add(1, Ordering::Relaxed);
                    break;
                }
                Err(why) => {
                    tracing::debug!(url = %pending.url, %why, attempt, "an alert delivery failed; will retry");
                    stats.retried.fetch_add(1, Ordering::Relaxed);
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(delivery.max_backoff);
                    attempt += 1;
                }
            }
        }
    }
}

fn post(agent: &ureq::Agent, pending: &Pending) -> Result<(), String> {
    let mut request = agent
        .post(&pending.url)
        .header("Content-Type", "application/json");
    if let Some(secret) = &pending.secret {
        request = request.header(SIGNATURE_HEADER, signature(secret, pending.body.as_bytes()));
    }
    let response = request
        .send(pending.body.as_bytes())
        .map_err(|e| e.to_string())?;
    let status = response.status();
    if status.is_success() {
        Ok(())
    } else {
        Err(format!("the receiver answered {status}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_signature_is_hmac_sha256_in_hex() {
        // RFC 4231, test case 2.
        assert_eq!(
            signature("Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }
}

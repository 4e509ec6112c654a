//! Wake-ups between hosts: `LISTEN`/`NOTIFY` on one dedicated connection.
//!
//! A transaction that may have made jobs due (a submission, a requeue, a
//! fire time, a retry or release) sends `NOTIFY wasmjob_jobs` with the
//! schema's name, delivered by PostgreSQL when it commits, at most once
//! per [`MIN_INTERVAL`] per host: a notifying commit takes a global lock,
//! and one wake-up per burst is enough, since a woken host goes on
//! claiming while it finds work.
//!
//! Every store keeps one connection of its own, outside the pool
//! (pooled connections are driven by a plain `connection.await`, which
//! drops notifications), reads its messages with `poll_message`, and
//! calls the observers for each notification about its schema. If the
//! connection fails it reconnects after [`RECONNECT`]; meanwhile the
//! workers' idle poll is the fallback, so a lost notification only delays
//! a job.

use crate::store::{Error, Result};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, watch};
use tokio_postgres::AsyncMessage;

/// The channel every host listens on; the payload is the schema's name.
pub(super) const CHANNEL: &str = "wasmjob_jobs";
/// Notifications one host sends at most this often.
pub(super) const MIN_INTERVAL: Duration = Duration::from_millis(100);
/// How long the listener waits before connecting again.
const RECONNECT: Duration = Duration::from_secs(1);

/// Told when jobs may have become due on another host.
pub(super) type Wake = Arc<dyn Fn() + Send + Sync>;

/// Whether this host may notify now: once per [`MIN_INTERVAL`].
#[derive(Debug)]
pub(super) struct Throttle {
    start: Instant,
    /// When the last notification went out, in ms since `start`, plus 1
    /// (0: never).
    last: AtomicU64,
}

impl Throttle {
    pub(super) fn new() -> Throttle {
        Throttle {
            start: Instant::now(),
            last: AtomicU64::new(0),
        }
    }

    /// Takes the turn to notify, if it is due.
    pub(super) fn take(&self) -> bool {
        let now = self.start.elapsed().as_millis() as u64 + 1;
        let last = self.last.load(Ordering::Relaxed);
        if last != 0 && now < last + MIN_INTERVAL.as_millis() as u64 {
            return false;
        }
        self.last
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }
}

/// The observers of one store's notifications.
pub(super) struct Observers {
    wakes: Mutex<Vec<Wake>>,
    /// Whether the listener's `LISTEN` is in force now.
    listening: watch::Sender<bool>,
}

impl Observers {
    pub(super) fn new() -> Observers {
        Observers {
            wakes: Mutex::new(Vec::new()),
            listening: watch::Sender::new(false),
        }
    }

    /// Resolves once the listener listens (for tests: a notification sent
    /// after it is not missed).
    #[cfg(test)]
    pub(super) async fn listening(&self) {
        let mut listening = self.listening.subscribe();
        let _ = listening.wait_for(|on| *on).await;
    }

    pub(super) fn add(&self, wake: Wake) {
        self.wakes
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(wake);
    }

    fn wake_all(&self) {
        let wakes = self.wakes.lock().unwrap_or_else(|p| p.into_inner()).clone();
        for wake in wakes {
            wake();
        }
    }
}

/// Listens for notifications about `schema` (the connection's
/// `current_schema()`) until aborted, reconnecting as needed.
pub(super) async fn run(config: tokio_postgres::Config, observers: Arc<Observers>) {
    loop {
        if let Err(error) = listen(&config, &observers).await {
            tracing::warn!(%error, "the PostgreSQL listener lost its connection; polling meanwhile");
        }
        tokio::time::sleep(RECONNECT).await;
    }
}

/// One connection's life: `LISTEN`, then a wake-up per notification.
async fn listen(config: &tokio_postgres::Config, observers: &Observers) -> Result<()> {
    let (client, mut connection) = config.connect(tokio_postgres::NoTls).await?;
    let (sender, mut received) = mpsc::unbounded_channel::<String>();
    // The connection is driven here, not by `connection.await`: that is
    // what hands over its notifications.
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    let _ = sender.send(notification.payload().to_owned());
                }
                Some(Ok(_)) => {}
                Some(Err(error)) => return Err(error),
                None => return Ok(()),
            }
        }
    });
    let result = async {
        let schema: String = client
            .query_one("SELECT current_schema()", &[])
            .await?
            .try_get(0)?;
        client.batch_execute(&format!("LISTEN {CHANNEL}")).await?;
        observers.listening.send_replace(true);
        while let Some(payload) = received.recv().await {
            if payload == schema {
                observers.wake_all();
            }
        }
        Err(Error::Database(
            "the listening connection closed".to_owned(),
        ))
    }
    .await;
    observers.listening.send_replace(false);
    driver.abort();
    result
}

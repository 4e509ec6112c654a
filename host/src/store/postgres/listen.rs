//! Wake-ups and signals between hosts: `LISTEN`/`NOTIFY` on one
//! dedicated connection.
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
//! calls the observers for each notification about its schema: a wake-up
//! on [`CHANNEL`], a [`Signal`] on [`super::signals::CHANNEL`]. If the
//! connection fails it reconnects after [`RECONNECT`]; meanwhile the
//! workers' idle poll is the fallback, so a lost notification only delays
//! a job.

use crate::store::{Error, Result, Signal};
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

/// Told of another host's [`Signal`]s.
pub(super) type SignalObserver = Arc<dyn Fn(Signal) + Send + Sync>;

/// The observers of one store's notifications.
pub(super) struct Observers {
    /// The store's name among the hosts: its own signals are dropped.
    me: String,
    wakes: Mutex<Vec<Wake>>,
    signals: Mutex<Vec<SignalObserver>>,
    /// Whether the listener's `LISTEN` is in force now.
    listening: watch::Sender<bool>,
}

impl Observers {
    pub(super) fn new(me: String) -> Observers {
        Observers {
            me,
            wakes: Mutex::new(Vec::new()),
            signals: Mutex::new(Vec::new()),
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

    pub(super) fn add_signals(&self, observer: SignalObserver) {
        self.signals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(observer);
    }

    fn signal_all(&self, signal: Signal) {
        let observers = self
            .signals
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        for observer in observers {
            observer(signal.clone());
        }
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
    let (sender, mut received) = mpsc::unbounded_channel::<(bool, String)>();
    // The connection is driven here, not by `connection.await`: that is
    // what hands over its notifications.
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(AsyncMessage::Notification(notification))) => {
                    let wake = notification.channel() == CHANNEL;
                    let _ = sender.send((wake, notification.payload().to_owned()));
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
        client
            .batch_execute(&format!(
                "LISTEN {CHANNEL}; LISTEN {}",
                super::signals::CHANNEL
            ))
            .await?;
        observers.listening.send_replace(true);
        // Signals sent while the listener was away are lost: every long
        // poll looks again, and names resolve afresh.
        observers.signal_all(Signal::ChangedMany);
        observers.signal_all(Signal::ModulesChanged(Vec::new()));
        while let Some((wake, payload)) = received.recv().await {
            if wake {
                if payload == schema {
                    observers.wake_all();
                }
            } else if let Some(signal) = super::signals::parse(&payload, &schema, &observers.me) {
                observers.signal_all(signal);
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

//! The PostgreSQL backend's tests: the store contract's conformance suite,
//! and what is particular to this backend (migrations under an advisory
//! lock, several stores on one database claiming together, module bytes
//! in the database), against a real server.
//!
//! The server is named by `WASMJOB_TEST_POSTGRES_URL` (`.ci/postgres`
//! starts a throw-away one and sets it). Without it every test here says
//! it is skipped and passes, except in CI (`CI` set), where it fails.
//! Each test works in a schema of its own, dropped afterwards, so tests
//! run in parallel on one database.

use super::{PostgresConfig, PostgresStore, schema};
use crate::store::conformance::{Fixture, LEASE_MS, Opened, Options, T0};
use crate::store::{ClaimRequest, Error, JobStore};
use std::collections::HashSet;
use std::future::Future;
use std::io::Write;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// The environment variable naming the test server.
const URL_VAR: &str = "WASMJOB_TEST_POSTGRES_URL";

/// The test server's URL, if one is configured.
pub(crate) fn url() -> Option<String> {
    std::env::var(URL_VAR).ok().filter(|url| !url.is_empty())
}

/// Whether the PostgreSQL tests can run; says why not (once per process,
/// past the test harness's capture), and fails in CI.
pub(crate) fn ready() -> bool {
    if url().is_some() {
        return true;
    }
    assert!(
        std::env::var_os("CI").is_none(),
        "{URL_VAR} is not set: in CI the PostgreSQL tests must run (.ci/run starts a server)"
    );
    static SAID: std::sync::Once = std::sync::Once::new();
    SAID.call_once(|| {
        let _ = writeln!(
            std::io::stderr(),
            "PostgreSQL store tests skipped: {URL_VAR} is not set (.ci/postgres starts a server)"
        );
    });
    false
}

/// A schema of its own for one test, dropped with this guard.
pub(crate) struct Schema {
    pub name: String,
}

impl Schema {
    /// A fresh schema name (created by the store that opens it).
    pub(crate) fn new() -> Schema {
        drop_leftovers();
        static NEXT: AtomicU64 = AtomicU64::new(0);
        Schema {
            name: format!(
                "wasmjob_test_{}_{}_{}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed),
                fastrand::u32(..)
            ),
        }
    }

    /// A store's configuration on this schema.
    pub(crate) fn config(&self) -> PostgresConfig {
        PostgresConfig {
            schema: Some(self.name.clone()),
            pool_size: 4,
            ..PostgresConfig::new(url().expect("the PostgreSQL tests are ready"))
        }
    }
}

impl Drop for Schema {
    /// Drops the schema from a thread of its own, not waited for: the
    /// test's runtime (which drives the store's connections, and so the
    /// rollback of any transaction an error left open) must go on running
    /// for the drop to get its locks. A schema whose process ended before
    /// its drop did is dropped by the next run ([`drop_leftovers`]).
    fn drop(&mut self) {
        let (Some(url), name) = (url(), self.name.clone()) else {
            return;
        };
        std::thread::spawn(move || {
            execute(&url, &format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE"));
        });
    }
}

/// Runs `sql` on a connection of its own, on a runtime of its own;
/// failures are ignored (clean-up only).
fn execute(url: &str, sql: &str) -> Option<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .ok()?;
    runtime.block_on(async {
        let (client, connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
            .await
            .ok()?;
        tokio::spawn(connection);
        client.batch_execute(sql).await.ok()
    })
}

/// Drops the test schemas of processes that are gone (once per process).
fn drop_leftovers() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let Some(url) = url() else {
            return;
        };
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            runtime.block_on(async {
                let (client, connection) = tokio_postgres::connect(&url, tokio_postgres::NoTls)
                    .await
                    .ok()?;
                tokio::spawn(connection);
                let rows = client
                    .query(
                        "SELECT nspname FROM pg_namespace WHERE nspname LIKE 'wasmjob\\_test\\_%'",
                        &[],
                    )
                    .await
                    .ok()?;
                for row in rows {
                    let name: String = row.get(0);
                    let pid = name.split('_').nth(2).unwrap_or_default();
                    if !std::path::Path::new("/proc").join(pid).exists() {
                        let sql = format!("DROP SCHEMA IF EXISTS \"{name}\" CASCADE");
                        let _ = client.batch_execute(&sql).await;
                    }
                }
                Some(())
            })
        });
    });
}

/// A fresh store in a fresh schema.
fn open(options: Options) -> Pin<Box<dyn Future<Output = Opened> + Send>> {
    Box::pin(async move {
        let schema = Schema::new();
        let config = PostgresConfig {
            max_value_bytes: options.max_value_bytes,
            ..schema.config()
        };
        let store: Arc<dyn JobStore> = Arc::new(PostgresStore::open(config).await.unwrap());
        Opened {
            store,
            keep: Box::new(schema),
        }
    })
}

mod conformance {
    crate::store::conformance::conformance_tests!(super::open, if super::ready);
}

/// A plain client on the test server, in `schema`.
async fn connect(schema: &Schema) -> tokio_postgres::Client {
    let mut config: tokio_postgres::Config = url().unwrap().parse().unwrap();
    config.options(format!("-c search_path={}", schema.name));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

#[tokio::test]
async fn hosts_starting_together_migrate_the_schema_once() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let opens = (0..4).map(|_| PostgresStore::open(schema.config()));
    for opened in futures_util::future::join_all(opens).await {
        opened.unwrap();
    }
    let client = connect(&schema).await;
    assert_eq!(schema::version(&client).await.unwrap(), schema::LATEST);
    let rows = client
        .query("SELECT count(*) FROM wasmjob_schema", &[])
        .await
        .unwrap();
    assert_eq!(rows[0].get::<_, i64>(0), 1, "one version row");
}

#[tokio::test]
async fn a_newer_schema_is_refused() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    PostgresStore::open(schema.config()).await.unwrap();
    connect(&schema)
        .await
        .execute(
            "UPDATE wasmjob_schema SET version = $1",
            &[&(schema::LATEST + 1)],
        )
        .await
        .unwrap();
    let Err(error) = PostgresStore::open(schema.config()).await else {
        panic!("a newer schema was opened");
    };
    assert!(error.to_string().contains("newer"), "{error}");
}

/// Two stores on one schema, as two hosts, with the suite's module.
async fn two_hosts(schema: &Schema) -> (Fixture, Arc<PostgresStore>) {
    let a = Arc::new(PostgresStore::open(schema.config()).await.unwrap());
    let b = Arc::new(PostgresStore::open(schema.config()).await.unwrap());
    let f = Fixture::new(Opened {
        store: a,
        keep: Box::new(()),
    })
    .await;
    (f, b)
}

fn request(owner: &str, limit: usize, caps: &[(&str, usize)]) -> ClaimRequest {
    ClaimRequest {
        owner: owner.to_owned(),
        limit,
        lease_ms: LEASE_MS,
        caps: caps.iter().map(|(q, n)| (q.to_string(), *n)).collect(),
    }
}

#[tokio::test]
async fn hosts_claiming_together_never_take_the_same_job() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let (f, b) = two_hosts(&schema).await;
    let jobs = (0..200).map(|_| f.job(5, T0)).collect();
    f.store.insert_jobs(jobs, T0).await.unwrap();
    let mut claimed = Vec::new();
    // Claims from both hosts at once, until nothing is left.
    loop {
        let (x, y) = tokio::join!(
            f.store.claim_due(request("host-a", 7, &[]), T0),
            b.claim_due(request("host-b", 7, &[]), T0)
        );
        let (x, y) = (x.unwrap(), y.unwrap());
        if x.is_empty() && y.is_empty() {
            break;
        }
        claimed.extend(x.into_iter().chain(y).map(|c| c.job.id));
    }
    let distinct: HashSet<_> = claimed.iter().collect();
    assert_eq!(claimed.len(), 200, "every job claimed");
    assert_eq!(distinct.len(), 200, "none claimed twice");
}

#[tokio::test]
async fn a_cap_holds_across_hosts_claiming_together() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let (f, b) = two_hosts(&schema).await;
    let jobs = (0..20).map(|_| f.job_in("capped", 5, T0)).collect();
    f.store.insert_jobs(jobs, T0).await.unwrap();
    for _ in 0..5 {
        let (x, y) = tokio::join!(
            f.store
                .claim_due(request("host-a", 10, &[("capped", 3)]), T0),
            b.claim_due(request("host-b", 10, &[("capped", 3)]), T0)
        );
        let _ = (x.unwrap(), y.unwrap());
    }
    let queues = f.store.queues(T0).await.unwrap();
    let capped = queues.iter().find(|q| q.name == "capped").unwrap();
    assert_eq!(capped.running, 3, "{queues:?}");
}

#[tokio::test]
async fn module_bytes_live_in_the_database_and_are_checked_when_read() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let (f, b) = two_hosts(&schema).await;
    // Uploaded through one host, read through the other.
    let bytes = b.module_bytes(&f.module).await.unwrap();
    assert_eq!(blake3::hash(&bytes).to_hex().as_str(), f.module);
    connect(&schema)
        .await
        .execute(
            "UPDATE module_blobs SET bytes = '\\x00'::bytea WHERE hash = $1",
            &[&f.module],
        )
        .await
        .unwrap();
    assert!(matches!(
        b.module_bytes(&f.module).await,
        Err(Error::Corrupt(_))
    ));
}

#[tokio::test]
async fn a_submission_on_one_host_wakes_the_other() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let (f, b) = two_hosts(&schema).await;
    let woken = Arc::new(tokio::sync::Notify::new());
    let wake = Arc::clone(&woken);
    b.watch_jobs(Arc::new(move || wake.notify_one()));
    b.listening().await;
    f.submit(f.job(5, T0)).await;
    // A deadline for what must happen, not a timing threshold.
    tokio::time::timeout(std::time::Duration::from_secs(60), woken.notified())
        .await
        .expect("the other host was woken");
}

#[tokio::test]
async fn a_host_is_not_woken_by_another_schema() {
    if !ready() {
        return;
    }
    let (mine, other) = (Schema::new(), Schema::new());
    let store = PostgresStore::open(mine.config()).await.unwrap();
    let woken = Arc::new(AtomicU64::new(0));
    let count = Arc::clone(&woken);
    store.watch_jobs(Arc::new(move || {
        count.fetch_add(1, Ordering::SeqCst);
    }));
    store.listening().await;
    let elsewhere = Fixture::new(Opened {
        store: Arc::new(PostgresStore::open(other.config()).await.unwrap()),
        keep: Box::new(()),
    })
    .await;
    elsewhere.submit(elsewhere.job(5, T0)).await;
    // Then one in this schema: once it has woken this host, the other
    // schema's notification (sent first, delivered in order) was seen.
    let here = Fixture::new(Opened {
        store: Arc::new(PostgresStore::open(mine.config()).await.unwrap()),
        keep: Box::new(()),
    })
    .await;
    here.submit(here.job(5, T0)).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while woken.load(Ordering::SeqCst) == 0 {
        assert!(std::time::Instant::now() < deadline, "never woken");
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    assert_eq!(
        woken.load(Ordering::SeqCst),
        1,
        "woken for its own schema only"
    );
}

/// Collects the signals a store hears from the other hosts.
fn hear(store: &PostgresStore) -> tokio::sync::mpsc::UnboundedReceiver<crate::store::Signal> {
    let (told, heard) = tokio::sync::mpsc::unbounded_channel();
    store.watch_signals(Arc::new(move |signal| {
        let _ = told.send(signal);
    }));
    heard
}

/// Waits for the first signal `pick` accepts (a deadline for what must
/// happen, not a timing threshold).
async fn heard<T>(
    heard: &mut tokio::sync::mpsc::UnboundedReceiver<crate::store::Signal>,
    mut pick: impl FnMut(&crate::store::Signal) -> Option<T>,
) -> T {
    let wait = async {
        loop {
            let signal = heard.recv().await.expect("the listener runs");
            if let Some(found) = pick(&signal) {
                return found;
            }
        }
    };
    tokio::time::timeout(std::time::Duration::from_secs(60), wait)
        .await
        .expect("the signal arrived")
}

#[tokio::test]
async fn cancels_outcomes_module_and_schedule_changes_reach_the_other_hosts() {
    use crate::policy::Decision;
    use crate::store::Signal;
    use crate::store::conformance::ran;
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let a = Arc::new(PostgresStore::open(schema.config()).await.unwrap());
    let b = Arc::new(PostgresStore::open(schema.config()).await.unwrap());
    let f = Fixture::new(Opened {
        store: a.clone(),
        keep: Box::new(()),
    })
    .await;
    let (mut on_a, mut on_b) = (hear(&a), hear(&b));
    a.listening().await;
    b.listening().await;
    let id = f.submit(f.job(5, T0)).await.id;
    a.cancel_unless_final(id, T0 + 1).await.unwrap();
    let cancelled = heard(&mut on_b, |s| match s {
        Signal::Cancelled(ids) => Some(ids.clone()),
        _ => None,
    })
    .await;
    assert_eq!(cancelled, vec![id]);
    // An outcome on A: B's long polls on the job look again.
    let done = f.submit(f.job(5, T0)).await.id;
    let claimed = f.claim(1, T0).await;
    assert_eq!(claimed[0].job.id, done);
    f.record(
        &claimed[0],
        Some(ran(Ok(()))),
        Decision::Complete,
        T0,
        T0 + 5,
    )
    .await;
    heard(&mut on_b, |s| match s {
        Signal::Changed(ids) if ids.contains(&done) => Some(()),
        _ => None,
    })
    .await;
    // A module deleted on A: B hears which.
    let spare = b"spare module".to_vec();
    let hash = blake3::hash(&spare).to_hex().to_string();
    a.put_module(&hash, crate::report::ModuleKind::Command, &spare, None, T0)
        .await
        .unwrap();
    a.delete_module_unless_needed(&hash).await.unwrap();
    let deleted = heard(&mut on_b, |s| match s {
        Signal::ModulesChanged(hashes) if !hashes.is_empty() => Some(hashes.clone()),
        _ => None,
    })
    .await;
    assert_eq!(deleted, vec![hash]);
    // A schedule created on A: B's cron loop reads the schedules again.
    let nightly = crate::store::conformance::schedules::schedule(&f, "nightly", T0 + 60_000);
    a.put_schedule(nightly, false).await.unwrap();
    heard(&mut on_b, |s| {
        matches!(s, Signal::SchedulesChanged).then_some(())
    })
    .await;
    // And the other way; nobody hears its own signals.
    let other = f.submit(f.job(5, T0)).await.id;
    b.cancel_unless_final(other, T0 + 2).await.unwrap();
    let from_b = heard(&mut on_a, |s| match s {
        Signal::Cancelled(ids) => Some(ids.clone()),
        _ => None,
    })
    .await;
    assert_eq!(from_b, vec![other], "A heard B's cancel, not its own");
    assert!(
        std::iter::from_fn(|| on_b.try_recv().ok()).all(|s| !matches!(s, Signal::Cancelled(_))),
        "B's own cancel is not echoed to B"
    );
}

#[tokio::test]
async fn one_host_leads_and_another_takes_over_when_it_goes() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let a = PostgresStore::open(schema.config()).await.unwrap();
    let b = PostgresStore::open(schema.config()).await.unwrap();
    let c = PostgresStore::open(schema.config()).await.unwrap();
    let (la, lb, lc) = (
        a.lead().await.unwrap(),
        b.lead().await.unwrap(),
        c.lead().await.unwrap(),
    );
    assert_eq!((la, lb, lc), (true, false, false), "the first to ask leads");
    assert!(a.lead().await.unwrap(), "and keeps leading");
    assert!(!b.lead().await.unwrap());
    // Another schema has a leader of its own.
    let other = Schema::new();
    let d = PostgresStore::open(other.config()).await.unwrap();
    assert!(d.lead().await.unwrap());
    // The leader goes (its connection closes): the next to ask leads.
    a.close();
    drop(a);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    loop {
        let (lb, lc) = (b.lead().await.unwrap(), c.lead().await.unwrap());
        if lb || lc {
            assert!(!(lb && lc), "one leader");
            break;
        }
        assert!(std::time::Instant::now() < deadline, "nobody took the lead");
        tokio::time::sleep(std::time::Duration::from_millis(10)).await;
    }
}

#[tokio::test]
async fn the_store_clock_is_the_database_clock() {
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let store = PostgresStore::open(schema.config()).await.unwrap();
    use crate::clock::Clock as _;
    let before = crate::clock::SystemClock.now();
    let db = store.clock().await.unwrap().expect("a clock of its own");
    let after = crate::clock::SystemClock.now();
    // The test server runs on this machine: one clock, read between.
    assert!(before <= db && db <= after, "{before} <= {db} <= {after}");
}

/// Plain completions go in one statement: those still held and without
/// dependents are completed with their attempt; a stale one is left for
/// the one-by-one path.
#[tokio::test]
async fn plain_completions_are_applied_in_one_statement() {
    use crate::policy::Decision;
    use crate::store::conformance::{outcome, ran};
    if !ready() {
        return;
    }
    let schema = Schema::new();
    let store = Arc::new(PostgresStore::open(schema.config()).await.unwrap());
    let f = Fixture::new(Opened {
        store: store.clone(),
        keep: Box::new(()),
    })
    .await;
    for _ in 0..3 {
        f.submit(f.job(5, T0)).await;
    }
    let claimed = f.claim(3, T0).await;
    let mut outcomes: Vec<_> = claimed
        .iter()
        .map(|c| outcome(c, Some(ran(Ok(()))), Decision::Complete, T0 + 1, T0 + 2))
        .collect();
    // The third's lease is not held any more.
    outcomes[2].lease.token = "stale".to_owned();
    let mut client = store.client().await.unwrap();
    let tx = client.transaction().await.unwrap();
    let plain: Vec<&crate::store::Outcome> = outcomes.iter().collect();
    let mut done = super::outcomes::complete_many(&tx, &plain).await.unwrap();
    tx.commit().await.unwrap();
    done.sort_unstable();
    assert_eq!(done, vec![claimed[0].job.id, claimed[1].job.id]);
    for c in &claimed[..2] {
        let detail = f.get(c.job.id).await;
        assert_eq!(detail.job.state, crate::job::JobState::Completed);
        assert_eq!(detail.job.started_at, Some(T0 + 1));
        assert_eq!(detail.attempts.len(), 1);
        assert_eq!(detail.attempts[0].number, 1);
    }
    let stale = f.get(claimed[2].job.id).await;
    assert_eq!(stale.job.state, crate::job::JobState::Running);
    assert!(stale.attempts.is_empty());
}

/// Server errors a retry can cure are told apart from failures: the API
/// answers them 503 or 507 instead of 500.
#[test]
fn server_errors_are_classified_by_sqlstate() {
    let kind = |code: &str| match super::classify(code, "m".to_owned()) {
        Error::Full(_) => "full",
        Error::Busy(_) => "busy",
        Error::Unavailable(_) => "unavailable",
        Error::Database(_) => "database",
        other => panic!("{other}"),
    };
    assert_eq!(kind("53100"), "full", "disk_full");
    for code in ["55P03", "40P01", "40001", "57014"] {
        assert_eq!(kind(code), "busy", "{code}");
    }
    for code in ["53300", "57P01", "57P03", "08006", "08001"] {
        assert_eq!(kind(code), "unavailable", "{code}");
    }
    for code in ["23505", "42P01", "22P02"] {
        assert_eq!(kind(code), "database", "{code}");
    }
}

/// A server nobody answers for is `Unavailable` (503), not a failure.
#[tokio::test]
async fn a_server_that_cannot_be_reached_is_unavailable() {
    // Port 1 on the loopback: nothing listens there.
    let config = PostgresConfig {
        wait: std::time::Duration::from_secs(2),
        ..PostgresConfig::new("postgres://wasmjob@127.0.0.1:1/wasmjob".to_owned())
    };
    match PostgresStore::open(config).await {
        Err(Error::Unavailable(message)) => assert!(!message.is_empty()),
        Err(other) => panic!("expected unavailable, got {other:?}"),
        Ok(_) => panic!("opened a store on a closed port"),
    }
}

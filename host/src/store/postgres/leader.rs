//! Leadership among the hosts sharing a schema: a session-level advisory
//! lock, taken with `pg_try_advisory_lock` on a connection of its own
//! (outside the pool, so no other verb can release it by accident).
//!
//! The lock lives as long as that connection: a host that dies, or whose
//! connection breaks, loses it at once (PostgreSQL ends the session when
//! the socket closes) and the next host to ask takes it. Each
//! [`Leader::lead`] first checks that the connection still answers, so a
//! host does not go on believing it leads on a dead connection for longer
//! than one maintenance pass.

use crate::store::{Error, Result};
use tokio::sync::Mutex;

/// This host's connection for the leader's lock, and whether it holds it.
pub(super) struct Leader {
    config: tokio_postgres::Config,
    state: Mutex<Option<Held>>,
}

/// A live connection and whether its session holds the lock.
struct Held {
    client: tokio_postgres::Client,
    driver: tokio::task::JoinHandle<()>,
    leads: bool,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.driver.abort();
    }
}

impl Leader {
    pub(super) fn new(config: tokio_postgres::Config) -> Leader {
        Leader {
            config,
            state: Mutex::new(None),
        }
    }

    /// Whether this host leads, taking the lead when nobody holds it.
    pub(super) async fn lead(&self) -> Result<bool> {
        let mut state = self.state.lock().await;
        if let Some(held) = state.as_mut() {
            match try_lock(&held.client, held.leads).await {
                Ok(leads) => {
                    held.leads = leads;
                    return Ok(leads);
                }
                // The connection is gone, and the lock with it.
                Err(_) => *state = None,
            }
        }
        let (client, connection) = self.config.connect(tokio_postgres::NoTls).await?;
        let driver = tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "the leader's connection ended");
            }
        });
        let leads = try_lock(&client, false).await?;
        *state = Some(Held {
            client,
            driver,
            leads,
        });
        Ok(leads)
    }

    /// Gives the lead up (closes the connection).
    pub(super) fn close(&self) {
        if let Ok(mut state) = self.state.try_lock() {
            *state = None;
        }
    }
}

/// Takes the lock unless this session already holds it (a session lock
/// goes only with its session), then tells whether it holds it; either way
/// a round trip that proves the session lives.
async fn try_lock(client: &tokio_postgres::Client, held: bool) -> Result<bool> {
    if client.is_closed() {
        return Err(Error::Database("the leader's connection closed".to_owned()));
    }
    if held {
        client.simple_query("SELECT 1").await?;
        return Ok(true);
    }
    let sql =
        "SELECT pg_try_advisory_lock(hashtextextended('wasmjob leader ' || current_schema(), 0))";
    Ok(client.query_one(sql, &[]).await?.try_get(0)?)
}

//! Job writes driven by clients and the scheduler: insert, claim, renew,
//! cancel, requeue, purge and aging. (What happens after an attempt is in
//! `outcomes`.) Every function runs inside the caller's transaction and
//! changes only rows whose current state allows the verb, locking a row
//! before it reads what it then decides on.

use super::rows::{self, JOB_COLUMN_COUNT, JOB_COLUMNS, POLICY_COLUMNS, execute, query, query_opt};
use super::{Tx, graph, modules};
use crate::clock::Millis;
use crate::job::{Job, JobId, JobState, NewJob, Submitted, Unique, WorkflowId};
use crate::store::{ClaimRequest, Claimed, Error, Lease, Result};
use deadpool_postgres::GenericClient;
use std::collections::HashSet;

/// The SQL that drops a job's lease.
pub(super) const CLEAR_LEASE: &str =
    "lease_owner = NULL, lease_token = NULL, lease_expires_at = NULL";

/// Where new jobs come from: a workflow, the attempt of another job.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Origin<'a> {
    /// The workflow they join.
    pub workflow: Option<WorkflowId>,
    /// The job whose attempt submitted them.
    pub parent: Option<JobId>,
    /// The schedule that created them.
    pub schedule: Option<&'a str>,
}

/// Stores new jobs: `pending`, or `blocked` while a prerequisite is not
/// resolved (see `graph`); each module must be recorded. A unique job
/// whose key matches a job of its queue that is not final, or finished
/// within its window, is not stored: that job is returned instead. The key
/// is checked under an advisory lock on (queue, key) held until commit, so
/// concurrent submissions of one key store one job.
pub(super) async fn insert(
    tx: &Tx<'_>,
    jobs: &[NewJob],
    now: Millis,
    origin: Origin<'_>,
) -> Result<Vec<Submitted>> {
    let sql = format!(
        "INSERT INTO jobs (module, module_name, input, priority, effective_priority, state,
                           max_attempts, run_at, created_at, {POLICY_COLUMNS}, queue,
                           unique_key, prereqs, waiting_on, workflow_id, node, parent_id,
                           schedule, grants, trace_parent)
         VALUES ($1, $2, $3, $4, $4, CASE WHEN $22::bigint > 0 THEN 'blocked' ELSE 'pending' END,
                 $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18, $19, $20,
                 $21, $22, $23, $24, $25, $26, $27, $28)
         RETURNING {JOB_COLUMNS}"
    );
    let mut stored = Vec::with_capacity(jobs.len());
    // Each module locked once (a key share until commit, against its
    // deletion); each queue created once.
    let mut modules_seen: HashSet<&str> = HashSet::new();
    let mut queues_seen: HashSet<&str> = HashSet::new();
    // Jobs without a key or prerequisites go in runs, one statement each;
    // the others one by one, in submission order.
    let mut run: Vec<&NewJob> = Vec::new();
    for new in jobs {
        if modules_seen.insert(&new.module.hash) && !modules::exists(tx, &new.module.hash).await? {
            return Err(Error::module_not_found(&new.module.hash));
        }
        if queues_seen.insert(&new.queue) {
            // A queue is created on first use.
            execute(
                tx,
                "INSERT INTO queues (name, created_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO NOTHING",
                &[&new.queue, &now],
            )
            .await?;
        }
        if new.unique.is_none() && new.depends_on.is_empty() {
            run.push(new);
            continue;
        }
        insert_run(tx, &std::mem::take(&mut run), now, origin, &mut stored).await?;
        if let Some(unique) = &new.unique
            && let Some(job) = holding(tx, &new.queue, unique, now).await?
        {
            stored.push(Submitted {
                job,
                created: false,
            });
            continue;
        }
        let prereqs = graph::prereqs(tx, &new.depends_on, &stored).await?;
        let [fuel, memory, timeout, output, records, log_bytes, tail] =
            rows::limit_columns(&new.limits)?;
        let [backoff, base, max] = rows::retry_columns(&new.retry)?;
        let priority = i64::from(new.priority);
        let max_attempts = i64::from(new.max_attempts);
        let edges = prereqs.edges.len() as i64;
        let waiting = i64::from(prereqs.waiting);
        let unique_key = new.unique.as_ref().map(|u| u.key.as_str());
        let grants = new.grants.as_ref().map(|grants| grants.join(" "));
        let trace = new.trace.map(|trace| trace.to_string());
        let row = rows::query_one(
            tx,
            &sql,
            &[
                &new.module.hash,
                &new.module.name,
                &new.input.as_str(),
                &priority,
                &max_attempts,
                &new.run_at,
                &now,
                &fuel,
                &memory,
                &timeout,
                &output,
                &records,
                &log_bytes,
                &tail,
                &backoff,
                &base,
                &max,
                &new.retry.jitter,
                &new.queue,
                &unique_key,
                &edges,
                &waiting,
                &origin.workflow,
                &new.node,
                &origin.parent,
                &origin.schedule,
                &grants,
                &trace,
            ],
        )
        .await?;
        let job = rows::job(&row)?;
        graph::insert_edges(tx, job.id, &prereqs).await?;
        stored.push(Submitted { job, created: true });
    }
    insert_run(tx, &run, now, origin, &mut stored).await?;
    Ok(stored)
}

/// Stores `run`, jobs without a unique key or prerequisites whose modules
/// and queues exist, `pending`, in one statement; appends them to
/// `stored` in the order given.
async fn insert_run(
    tx: &Tx<'_>,
    run: &[&NewJob],
    now: Millis,
    origin: Origin<'_>,
    stored: &mut Vec<Submitted>,
) -> Result<()> {
    if run.is_empty() {
        return Ok(());
    }
    let n = run.len();
    let mut modules = Vec::with_capacity(n);
    let mut names = Vec::with_capacity(n);
    let mut inputs = Vec::with_capacity(n);
    let mut priorities = Vec::with_capacity(n);
    let mut max_attempts = Vec::with_capacity(n);
    let mut run_ats = Vec::with_capacity(n);
    let mut limits: [Vec<i64>; 7] = Default::default();
    let mut retries: [Vec<i64>; 3] = Default::default();
    let mut jitters = Vec::with_capacity(n);
    let mut queues = Vec::with_capacity(n);
    let mut nodes = Vec::with_capacity(n);
    let mut grants = Vec::with_capacity(n);
    let mut traces = Vec::with_capacity(n);
    for new in run {
        modules.push(new.module.hash.as_str());
        names.push(new.module.name.as_deref());
        inputs.push(new.input.as_str());
        priorities.push(i64::from(new.priority));
        max_attempts.push(i64::from(new.max_attempts));
        run_ats.push(new.run_at);
        for (column, value) in limits.iter_mut().zip(rows::limit_columns(&new.limits)?) {
            column.push(value);
        }
        for (column, value) in retries.iter_mut().zip(rows::retry_columns(&new.retry)?) {
            column.push(value);
        }
        jitters.push(new.retry.jitter);
        queues.push(new.queue.as_str());
        nodes.push(new.node.as_deref());
        grants.push(new.grants.as_ref().map(|grants| grants.join(" ")));
        traces.push(new.trace.map(|trace| trace.to_string()));
    }
    let [fuel, memory, timeout, output, records, log_bytes, tail] = &limits;
    let [backoff, base, max] = &retries;
    let sql = format!(
        "INSERT INTO jobs (module, module_name, input, priority, effective_priority, state,
                           max_attempts, run_at, created_at, {POLICY_COLUMNS}, queue,
                           workflow_id, node, parent_id, schedule, grants, trace_parent)
         SELECT module, module_name, input, priority, priority, 'pending', max_attempts,
                run_at, $22::int8, fuel, memory_bytes, timeout_ms, output_bytes, log_records,
                log_bytes, stdio_tail_bytes, backoff, retry_base_ms, retry_max_delay_ms,
                retry_jitter, queue, $23::int8, node, $24::int8, $25::text, grants, trace_parent
         FROM unnest($1::text[], $2::text[], $3::text[], $4::int8[], $5::int8[], $6::int8[],
                     $7::int8[], $8::int8[], $9::int8[], $10::int8[], $11::int8[],
                     $12::int8[], $13::int8[], $14::int8[], $15::int8[], $16::int8[],
                     $17::bool[], $18::text[], $19::text[], $20::text[], $21::text[])
              WITH ORDINALITY AS new (module, module_name, input, priority, max_attempts,
                                      run_at, fuel, memory_bytes, timeout_ms, output_bytes,
                                      log_records, log_bytes, stdio_tail_bytes, backoff,
                                      retry_base_ms, retry_max_delay_ms, retry_jitter, queue,
                                      node, grants, trace_parent, ord)
         ORDER BY ord
         RETURNING {JOB_COLUMNS}"
    );
    let rows = query(
        tx,
        &sql,
        &[
            &modules,
            &names,
            &inputs,
            &priorities,
            &max_attempts,
            &run_ats,
            fuel,
            memory,
            timeout,
            output,
            records,
            log_bytes,
            tail,
            backoff,
            base,
            max,
            &jitters,
            &queues,
            &nodes,
            &grants,
            &traces,
            &now,
            &origin.workflow,
            &origin.parent,
            &origin.schedule,
        ],
    )
    .await?;
    if rows.len() != n {
        return Err(Error::Database(format!(
            "stored {} of {n} jobs in one statement",
            rows.len()
        )));
    }
    // Ids are drawn in the statement's order (`ORDER BY ord`), the order
    // given; RETURNING has none of its own.
    let mut jobs = rows.iter().map(rows::job).collect::<Result<Vec<Job>>>()?;
    jobs.sort_by_key(|job| job.id);
    stored.extend(jobs.into_iter().map(|job| Submitted { job, created: true }));
    Ok(())
}

/// The job of `queue` that holds `unique`'s key now: not final, or
/// finished less than the window ago. Takes the key's advisory lock first.
async fn holding(tx: &Tx<'_>, queue: &str, unique: &Unique, now: Millis) -> Result<Option<Job>> {
    execute(
        tx,
        "SELECT pg_advisory_xact_lock(hashtextextended($1 || chr(31) || $2, 1))",
        &[&queue, &unique.key],
    )
    .await?;
    let since = now.saturating_sub(i64::try_from(unique.window_ms).unwrap_or(i64::MAX));
    let sql = format!(
        "SELECT {JOB_COLUMNS} FROM jobs
         WHERE queue = $1 AND unique_key = $2
           AND (state NOT IN ('completed', 'failed', 'cancelled') OR finished_at > $3)
         ORDER BY id DESC LIMIT 1"
    );
    query_opt(tx, &sql, &[&queue, &unique.key, &since])
        .await?
        .map(|row| rows::job(&row))
        .transpose()
}

/// The claim, one statement: for every queue that is not paused, its due
/// waiting jobs in claim order from its own range of `jobs_claim` (at most
/// what its cap leaves: `$5`/`$6` are the capped queues and their caps),
/// locked with `FOR UPDATE SKIP LOCKED` so concurrent claims pass each
/// other; the first `$3` of them across queues in claim order go
/// `running` with a fresh 128-bit token (`gen_random_uuid`, 32 hex
/// digits). A paused queue's backlog is never read. The claimed rows are
/// updated through their ids (`= ANY(ARRAY(…))`, a primary-key lookup
/// whatever the planner estimates): as a join, the generic plan of a young
/// schema hashed a full scan of `jobs` on every claim.
const CLAIM: &str = "WITH candidates AS (
    SELECT c.id AS claim_id
    FROM (SELECT name FROM queues WHERE NOT paused) q
    CROSS JOIN LATERAL (
        SELECT j.id, j.effective_priority, j.run_at FROM jobs j
        WHERE j.queue = q.name AND j.state IN ('pending', 'retrying') AND j.run_at <= $2
        ORDER BY j.effective_priority, j.run_at, j.id
        LIMIT least($3, coalesce(
            (SELECT greatest(cap.n - (SELECT count(*) FROM jobs r
                                       WHERE r.queue = q.name AND r.state = 'running'), 0)
             FROM unnest($5::text[], $6::bigint[]) AS cap (name, n) WHERE cap.name = q.name),
            $3))
        FOR UPDATE OF j SKIP LOCKED
    ) c
    ORDER BY c.effective_priority, c.run_at, c.id
    LIMIT $3
)
UPDATE jobs SET state = 'running', attempt = attempt + 1, attempts_total = attempts_total + 1,
       lease_owner = $1, lease_token = replace(gen_random_uuid()::text, '-', ''),
       lease_expires_at = $4, claimed_at = $2
WHERE jobs.id = ANY(ARRAY(SELECT claim_id FROM candidates))
RETURNING ";

/// Claims up to `request.limit` due jobs, most urgent first across every
/// queue that is not paused and below its cap (see [`CLAIM`]). Queues with
/// a cap are claimed from under an advisory lock each, so that two hosts
/// claiming together cannot both fill the same room.
pub(super) async fn claim(
    db: &impl GenericClient,
    request: &ClaimRequest,
    now: Millis,
) -> Result<Vec<Claimed>> {
    let limit = i64::try_from(request.limit).unwrap_or(i64::MAX);
    let (capped, caps): (Vec<&str>, Vec<i64>) = request
        .caps
        .iter()
        .map(|(queue, cap)| (queue.as_str(), i64::try_from(*cap).unwrap_or(i64::MAX)))
        .unzip();
    if !capped.is_empty() {
        // Sorted (a BTreeMap's order): two claims take the locks in one order.
        execute(
            db,
            "SELECT pg_advisory_xact_lock(hashtextextended(name, 2))
             FROM unnest($1::text[]) AS name",
            &[&capped],
        )
        .await?;
    }
    let sql = format!("{CLAIM}{JOB_COLUMNS}, input, lease_token, prereqs, effective_priority");
    let expires = now.saturating_add(request.lease_ms);
    let rows = query(
        db,
        &sql,
        &[&request.owner, &now, &limit, &expires, &capped, &caps],
    )
    .await?;
    let mut claimed = Vec::with_capacity(rows.len());
    for row in &rows {
        let mut job = Claimed {
            job: rows::job(row)?,
            input: rows::json(row, JOB_COLUMN_COUNT)?,
            token: rows::get(row, JOB_COLUMN_COUNT + 1)?,
            dependencies: Vec::new(),
        };
        let prereqs: i64 = rows::get(row, JOB_COLUMN_COUNT + 2)?;
        if prereqs > 0 {
            job.dependencies = graph::resolved(db, job.job.id).await?;
        }
        let effective: i64 = rows::get(row, JOB_COLUMN_COUNT + 3)?;
        claimed.push((effective, job));
    }
    // RETURNING has no order: claim order again.
    claimed.sort_by_key(|(effective, c)| (*effective, c.job.run_at, c.job.id));
    Ok(claimed.into_iter().map(|(_, c)| c).collect())
}

/// Extends the leases still held; returns their ids, in the order given.
pub(super) async fn renew(
    db: &impl GenericClient,
    leases: &[Lease],
    until: Millis,
) -> Result<Vec<JobId>> {
    let ids: Vec<JobId> = leases.iter().map(|l| l.id).collect();
    let tokens: Vec<&str> = leases.iter().map(|l| l.token.as_str()).collect();
    // The rows are locked in id order, as every verb that locks several
    // jobs does (outcomes, rescues): two such transactions never wait on
    // each other in a cycle.
    let rows = query(
        db,
        "WITH held AS (
             SELECT jobs.id FROM jobs
             JOIN unnest($1::bigint[], $2::text[]) AS lease (id, token)
               ON jobs.id = lease.id AND jobs.lease_token = lease.token
             WHERE jobs.state = 'running'
             ORDER BY jobs.id
             FOR UPDATE OF jobs
         )
         UPDATE jobs SET lease_expires_at = $3
         FROM held WHERE jobs.id = held.id
         RETURNING jobs.id, jobs.lease_token",
        &[&ids, &tokens, &until],
    )
    .await?;
    let held: std::collections::HashSet<(JobId, String)> = rows
        .iter()
        .map(|r| Ok((rows::get(r, 0)?, rows::get(r, 1)?)))
        .collect::<Result<_>>()?;
    Ok(leases
        .iter()
        .filter(|l| held.contains(&(l.id, l.token.clone())))
        .map(|l| l.id)
        .collect())
}

/// Cancels a job that is not final. A running job's lease stops counting
/// (no renewal, no rescue) but its token is kept, so the worker's report of
/// the interrupted attempt is still filed; the job stays cancelled.
///
/// `reason`, when given, is kept as the job's `last_error`. The jobs
/// waiting for it follow (see `graph`).
pub(super) async fn cancel(
    tx: &Tx<'_>,
    id: JobId,
    reason: Option<&str>,
    now: Millis,
) -> Result<Job> {
    let state = lock_state(tx, id).await?;
    if state.is_final() {
        return Err(Error::Conflict(format!(
            "job {id} is {state} and cannot be cancelled"
        )));
    }
    let sql = format!(
        "UPDATE jobs SET state = 'cancelled', finished_at = $2, lease_owner = NULL,
                lease_expires_at = NULL, last_error = coalesce($3, last_error)
         WHERE id = $1 RETURNING {JOB_COLUMNS}"
    );
    let job = rows::job(&rows::query_one(tx, &sql, &[&id, &now, &reason]).await?)?;
    graph::ended(tx, id, JobState::Cancelled, now).await?;
    Ok(job)
}

/// Moves a `failed` job back to `pending` with a fresh attempt budget, due
/// now, provided its module is still there.
pub(super) async fn requeue(tx: &Tx<'_>, id: JobId, now: Millis) -> Result<Job> {
    let state = lock_state(tx, id).await?;
    if state != JobState::Failed {
        return Err(Error::Conflict(format!(
            "job {id} is {state}; only failed jobs can be requeued"
        )));
    }
    let row = rows::query_one(tx, "SELECT module FROM jobs WHERE id = $1", &[&id]).await?;
    let module: String = rows::get(&row, 0)?;
    if !modules::exists(tx, &module).await? {
        return Err(Error::Conflict(format!(
            "job {id} cannot be requeued: its module {module} was deleted; upload it again first"
        )));
    }
    let sql = format!(
        "UPDATE jobs SET state = 'pending', attempt = 0, run_at = $2, finished_at = NULL,
                effective_priority = priority, aged_at = NULL
         WHERE id = $1 RETURNING {JOB_COLUMNS}"
    );
    rows::job(&rows::query_one(tx, &sql, &[&id, &now]).await?)
}

/// Pauses or resumes a queue, creating it if it was never used.
pub(super) async fn set_paused(tx: &Tx<'_>, queue: &str, paused: bool, now: Millis) -> Result<()> {
    execute(
        tx,
        "INSERT INTO queues (name, paused, created_at) VALUES ($1, $2, $3)
         ON CONFLICT (name) DO UPDATE SET paused = excluded.paused",
        &[&queue, &paused, &now],
    )
    .await?;
    Ok(())
}

/// Deletes `failed` jobs (these, or all when `ids` is empty) and, by
/// cascade, their attempts. Other ids are skipped.
pub(super) async fn purge(tx: &Tx<'_>, ids: &[JobId]) -> Result<u64> {
    if ids.is_empty() {
        return execute(tx, "DELETE FROM jobs WHERE state = 'failed'", &[]).await;
    }
    execute(
        tx,
        "DELETE FROM jobs WHERE id = ANY($1) AND state = 'failed'",
        &[&ids],
    )
    .await
}

/// One aging step for every due waiting job that has waited `after_ms`
/// since it became due or since its last step; the step's time is that
/// boundary, not `now` (see SQLite's `jobs::age`).
pub(super) async fn age(tx: &Tx<'_>, after_ms: i64, now: Millis) -> Result<u64> {
    execute(
        tx,
        "UPDATE jobs
         SET effective_priority = effective_priority - 1,
             aged_at = greatest(run_at, coalesce(aged_at, run_at)) + $1
         WHERE state IN ('pending', 'retrying') AND run_at <= $2
           AND effective_priority > 0
           AND greatest(run_at, coalesce(aged_at, run_at)) + $1 <= $2",
        &[&after_ms, &now],
    )
    .await
}

/// A job's state, its row locked until the transaction ends;
/// [`Error::NotFound`] for an unknown id.
async fn lock_state(tx: &Tx<'_>, id: JobId) -> Result<JobState> {
    let row = query_opt(
        tx,
        "SELECT state FROM jobs WHERE id = $1 FOR UPDATE",
        &[&id],
    )
    .await?
    .ok_or_else(|| Error::job_not_found(id))?;
    rows::state(&row, 0)
}

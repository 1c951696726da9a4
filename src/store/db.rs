//! The handle every statement of callbackd runs through, and what a pooler in transaction
//! mode needs from it.
//!
//! Direct to PostgreSQL, or through a pooler in session mode, sqlx prepares each statement
//! once per connection under a name (`sqlx_s_N`) and reuses it: the default here. Through a
//! pooler in transaction mode (PgBouncer 1.18, Debian 12's, which keeps no prepared
//! statements), a client's consecutive transactions may run on different server
//! connections, and that breaks sqlx twice over:
//! - a named statement prepared on one server connection is missing, or another client's,
//!   on the next (`prepared statement "sqlx_s_1" already exists`);
//! - even an unnamed statement is sent in two round trips (Parse/Describe, then
//!   Bind/Execute, each ending in Sync). Outside a transaction block the pooler may hand the
//!   server connection to another client in between, whose own unnamed statement then runs
//!   with our arguments. Measured: 2,113 of 4,000 results came from another task's statement,
//!   with no error at all.
//!
//! So with `database_pool_mode = "transaction"` ([`use_unnamed_statements`]):
//! - every statement is unnamed: [`query`], [`query_as`] and [`query_scalar`] build every
//!   statement callbackd runs;
//! - a statement that runs on its own (on [`Db`], not inside a transaction) runs inside a
//!   transaction of its own (BEGIN, the statement, COMMIT), so both round trips reach the same
//!   server connection. Statements inside a transaction are there already.
//!
//! The cost: each statement is parsed and planned each time it runs, and a statement on its
//! own takes two more round trips. docs/scaling.md has the numbers.
//!
//! The mode is one switch for the whole process, set at start-up before any statement runs.
//! Unnamed statements are correct everywhere (they only cost speed), so a process that never
//! sets it, like the tests' in-process apps, stays on prepared statements.

use std::sync::atomic::{AtomicBool, Ordering as AtomicOrdering};

use futures::future::BoxFuture;
use futures::stream::BoxStream;
use futures::{StreamExt, TryStreamExt};
use sqlx::postgres::{PgArguments, PgQueryResult, PgRow, PgStatement, PgTypeInfo};
use sqlx::{Either, Execute, Executor, FromRow, PgPool, Postgres, SqlSafeStr, SqlStr};

static UNNAMED: AtomicBool = AtomicBool::new(false);

/// From now on, every statement of this process is unnamed and runs inside a transaction
/// (a pooler in transaction mode is in front of the database).
pub fn use_unnamed_statements() {
    UNNAMED.store(true, AtomicOrdering::Relaxed);
}

/// Are statements prepared under a name and cached (the default)?
pub(crate) fn prepared() -> bool {
    !UNNAMED.load(AtomicOrdering::Relaxed)
}

/// [`sqlx::query`], named and cached unless the process uses unnamed statements.
pub fn query<'q>(sql: impl SqlSafeStr) -> sqlx::query::Query<'q, Postgres, PgArguments> {
    sqlx::query(sql).persistent(prepared())
}

/// [`sqlx::query_as`], named and cached unless the process uses unnamed statements.
pub fn query_as<'q, O>(sql: impl SqlSafeStr) -> sqlx::query::QueryAs<'q, Postgres, O, PgArguments>
where
    O: for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_as(sql).persistent(prepared())
}

/// [`sqlx::query_scalar`], named and cached unless the process uses unnamed statements.
pub fn query_scalar<'q, O>(
    sql: impl SqlSafeStr,
) -> sqlx::query::QueryScalar<'q, Postgres, O, PgArguments>
where
    (O,): for<'r> FromRow<'r, PgRow>,
{
    sqlx::query_scalar(sql).persistent(prepared())
}

/// The connection pool. Statements run on it as on a [`PgPool`]; with unnamed statements,
/// each one runs in a transaction of its own (see the module doc). It dereferences to the
/// pool for everything else (`begin`, `acquire`, `close`).
#[derive(Clone, Debug)]
pub struct Db(PgPool);

impl Db {
    pub fn new(pool: PgPool) -> Self {
        Db(pool)
    }

    pub fn pool(&self) -> &PgPool {
        &self.0
    }
}

impl From<PgPool> for Db {
    fn from(pool: PgPool) -> Self {
        Db(pool)
    }
}

impl std::ops::Deref for Db {
    type Target = PgPool;
    fn deref(&self) -> &PgPool {
        &self.0
    }
}

/// A statement sent unnamed, whatever it asked for.
struct Unnamed<E>(E);

impl<'q, E: Execute<'q, Postgres>> Execute<'q, Postgres> for Unnamed<E> {
    fn sql(self) -> SqlStr {
        self.0.sql()
    }
    fn statement(&self) -> Option<&PgStatement> {
        self.0.statement()
    }
    fn take_arguments(&mut self) -> Result<Option<PgArguments>, sqlx::error::BoxDynError> {
        self.0.take_arguments()
    }
    fn persistent(&self) -> bool {
        false
    }
}

impl<'c> Executor<'c> for &'c Db {
    type Database = Postgres;

    fn fetch_many<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxStream<'e, Result<Either<PgQueryResult, PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if prepared() {
            return self.0.fetch_many(query);
        }
        let pool = &self.0;
        // Collected inside the transaction, then handed out: the statement's results are
        // read to the end before COMMIT.
        let all = async move {
            let mut tx = pool.begin().await?;
            let items: Vec<_> = (&mut *tx).fetch_many(Unnamed(query)).try_collect().await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(futures::stream::iter(items.into_iter().map(Ok)))
        };
        futures::stream::once(all).try_flatten().boxed()
    }

    fn fetch_optional<'e, 'q: 'e, E>(
        self,
        query: E,
    ) -> BoxFuture<'e, Result<Option<PgRow>, sqlx::Error>>
    where
        'c: 'e,
        E: 'q + Execute<'q, Postgres>,
    {
        if prepared() {
            return self.0.fetch_optional(query);
        }
        // The transaction of `fetch_many`; its rows are all read before COMMIT.
        let mut all = self.fetch_many(query);
        Box::pin(async move {
            while let Some(item) = all.try_next().await? {
                if let Either::Right(row) = item {
                    return Ok(Some(row));
                }
            }
            Ok(None)
        })
    }

    fn prepare_with<'e>(
        self,
        sql: SqlStr,
        parameters: &'e [PgTypeInfo],
    ) -> BoxFuture<'e, Result<PgStatement, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.prepare_with(sql, parameters)
    }

    fn describe<'e>(
        self,
        sql: SqlStr,
    ) -> BoxFuture<'e, Result<sqlx::Describe<Postgres>, sqlx::Error>>
    where
        'c: 'e,
    {
        self.0.describe(sql)
    }
}

/// How a queue transaction's prepared statements are planned, besides index probes only.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Plans {
    /// PostgreSQL decides, as for any statement: custom plans for their arguments at first,
    /// then perhaps its cached generic plan.
    AsUsual,
    /// Always the cached generic plan, made once per connection. For statements written so
    /// that their one sensible plan is a probe per row whatever the estimates (the claim,
    /// next-due, the completion, an enqueue group), whose planning would cost more than
    /// running them.
    Cached,
}

impl Plans {
    /// The BEGIN of [`begin_probing`]: one simple query that starts the transaction and
    /// sets its planner. Public so tests can run a statement exactly as the product does.
    pub fn begin_statement(self) -> &'static str {
        match self {
            Plans::AsUsual => {
                "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off"
            }
            Plans::Cached => {
                "BEGIN; SET LOCAL enable_seqscan = off; SET LOCAL enable_bitmapscan = off; \
                 SET LOCAL plan_cache_mode = force_generic_plan"
            }
        }
    }
}

/// Begins a transaction on `pool` in which sequential and bitmap scans are priced out of the
/// planner, in the BEGIN's own round trip (one simple query: `BEGIN; SET LOCAL ...`). For
/// the queue's statements, which must be index probes with a LIMIT whatever the statistics
/// say: a plan made while a table was small (never analyzed, or vacuumed by the worker while
/// the queue was nearly empty) prefers to read the whole table and sort it, and a prepared
/// statement keeps that plan as the table grows. sqlx prepares once per connection;
/// PostgreSQL's plan cache does not notice a setting changed, so the statements that need
/// this always run in such a transaction.
///
/// Setting them in a statement of their own cost a round trip per transaction: one more
/// statement for every 15 notifications in `ingest` (docs/performance.md, 2026-12-04,
/// evening).
pub async fn begin_probing(
    pool: &Db,
    plans: Plans,
) -> sqlx::Result<sqlx::Transaction<'static, Postgres>> {
    pool.begin_with(plans.begin_statement()).await
}

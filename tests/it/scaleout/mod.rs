//! Past one machine (issue 16): the real `callbackd` binary behind PgBouncer (session mode,
//! and transaction mode with `database_pool_mode = transaction`), and across a
//! PostgreSQL failover and a demotion (a primary and a synchronous streaming standby, two
//! private clusters). The shared server on 5432 is only used for fresh test
//! databases, never stopped.
//!
//! The private-cluster helper, the process starter and the load of the restart test are
//! the reliability tests' ones, from `support`.

mod demoted;
mod failover;
// The benchmark's PgBouncer starter (self-contained), not a copy: the one `#[path]` left.
// It is shared by two crates (bench/ and these tests) and belongs to neither product nor
// tests; a third crate for one file would cost more than it explains.
#[path = "../../../bench/src/pgbouncer.rs"]
#[allow(dead_code)] // `pid` is the benchmark's (it samples the bouncer's CPU)
mod pgbouncer;
mod pooler;

/// A new private primary and a synchronous streaming standby of it, and the URL naming both
/// (primary first) for `database`: what the failover and demotion tests start from.
async fn primary_and_standby(
    database: &str,
) -> (
    crate::support::cluster::Cluster,
    crate::support::cluster::Cluster,
    String,
) {
    let primary = crate::support::cluster::Cluster::start_new().await;
    let standby = crate::support::cluster::Cluster::standby_of(&primary).await;
    primary.synchronous().await;
    let url = format!(
        "postgres://postgres@127.0.0.1:{},127.0.0.1:{}/{database}",
        primary.port, standby.port
    );
    (primary, standby, url)
}

/// An API and a worker process on `url`, a receiver, a registered partner and an empty
/// ledger: what the failover and demotion tests start from.
struct Fleet {
    serve: crate::support::process::Proc,
    worker: crate::support::process::Proc,
    rx: crate::support::receiver::Receiver,
    api: crate::support::traffic::Api,
    ledger: crate::support::traffic::Ledger,
}

async fn start_fleet(url: &str, env: &[(&str, &str)]) -> Fleet {
    let serve = crate::support::process::start(url, "api", env).await;
    let worker = crate::support::process::start(url, "worker", env).await;
    let rx = crate::support::receiver::Receiver::start().await;
    let api = crate::support::traffic::api_with_partner(&serve, &rx).await;
    let ledger: crate::support::traffic::Ledger = Default::default();
    Fleet {
        serve,
        worker,
        rx,
        api,
        ledger,
    }
}

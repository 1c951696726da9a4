//! Past one machine (issue 16): the real `callbackd` binary behind PgBouncer (session mode,
//! and transaction mode with `database_pool_mode = transaction`), and across a
//! PostgreSQL failover and a demotion (a primary and a synchronous streaming standby, two
//! private clusters). The shared server on 5432 is only used for fresh test
//! databases, never stopped.
//!
//! The private-cluster helper, the process starter and the load of the restart test are
//! shared with the reliability target (`#[path]`), not copied.

#[path = "../reliability/cluster.rs"]
mod cluster;
#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../reliability/process.rs"]
#[allow(dead_code)] // this target uses part of it
mod process;
#[path = "../api/receiver.rs"]
mod receiver;
#[path = "../reliability/db_restart/traffic.rs"]
#[allow(dead_code)]
mod traffic;

mod demoted;
mod failover;
// The benchmark's PgBouncer starter (self-contained), not a copy.
#[path = "../../bench/src/pgbouncer.rs"]
#[allow(dead_code)] // this target uses part of it
mod pgbouncer;
mod pooler;

/// A new private primary and a synchronous streaming standby of it, and the URL naming both
/// (primary first) for `database`: what the failover and demotion tests start from.
async fn primary_and_standby(database: &str) -> (cluster::Cluster, cluster::Cluster, String) {
    let primary = cluster::Cluster::start_new().await;
    let standby = cluster::Cluster::standby_of(&primary).await;
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
    serve: process::Proc,
    worker: process::Proc,
    rx: receiver::Receiver,
    api: traffic::Api,
    ledger: traffic::Ledger,
}

async fn start_fleet(url: &str, env: &[(&str, &str)]) -> Fleet {
    let serve = process::start(url, "api", env).await;
    let worker = process::start(url, "worker", env).await;
    let rx = receiver::Receiver::start().await;
    let mut api = traffic::Api {
        base: serve.address.clone().unwrap(),
        client: reqwest::Client::new(),
        partner: uuid::Uuid::nil(),
    };
    traffic::register_partner(&mut api, &rx).await;
    let ledger: traffic::Ledger = Default::default();
    Fleet {
        serve,
        worker,
        rx,
        api,
        ledger,
    }
}

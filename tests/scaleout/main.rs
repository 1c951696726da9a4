//! Past one machine (issue 16): the real `callbackd` binary behind PgBouncer (session mode:
//! transaction mode cannot work with PgBouncer 1.18, see docs/scaling.md), and across a
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
#[path = "../../src/bench/pgbouncer.rs"]
#[allow(dead_code)] // this target uses part of it
mod pgbouncer;
mod pooler;

//! Reliability and security (issue 8): real `callbackd` processes and real PostgreSQL under
//! faults, misbehaving receivers, SSRF, API hardening, secrets, retention, and property
//! tests of input validation and URL building. See docs/guarantees.md.

#[path = "../api/helpers.rs"]
mod helpers;
#[path = "../api/receiver.rs"]
mod receiver;

mod api_hardening;
mod cluster;
mod db_restart;
mod faults;
mod process;
mod props;
mod queue;
mod queue_speed;
mod receivers;
mod retention;
mod secrets;
mod ssrf;

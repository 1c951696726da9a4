//! Reliability and security (issue 8): real `callbackd` processes and real PostgreSQL under
//! faults, misbehaving receivers, SSRF, API hardening, secrets, retention, and property
//! tests of input validation and URL building. See docs/guarantees.md.

mod api_hardening;
mod db_restart;
mod faults;
mod numbering_restart;
mod open_files;
mod props;
mod queue;
mod queue_speed;
mod receivers;
mod retention;
mod secrets;
mod ssrf;

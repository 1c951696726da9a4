//! The open-files limit of a `serve` process.
//!
//! Every request in flight holds a socket, so a worker with `worker_concurrency` 1,024 needs
//! more than the soft `RLIMIT_NOFILE` many systems start a service with (1,024 under
//! systemd). Past it, `connect()` fails with "too many open files" and the attempt is a
//! `connect` failure that is retried: deliveries slow down for no reason a partner caused.
//! The hard limit is usually far higher (524,288 under systemd, 1,048,576 in Docker), and a
//! process may raise its own soft limit up to it, so `serve` does that at start, as Go's
//! runtime does for every program. What is still short of what the settings need is logged
//! as a warning naming the settings.

use crate::config::Settings;

use super::Role;

/// Descriptors a process needs besides its requests in flight: the database pools, LISTEN,
/// the API and metrics listeners, log and trace exporters, with room to spare.
const BESIDES_REQUESTS: u64 = 64;

/// How many descriptors `role` needs with `settings`: one per request in flight (a worker),
/// plus the database pool and [`BESIDES_REQUESTS`].
fn open_files_needed(settings: &Settings, role: Role) -> u64 {
    let requests = if role.runs_worker() {
        settings.worker_concurrency as u64
    } else {
        0
    };
    requests + u64::from(settings.database_max_connections) + BESIDES_REQUESTS
}

/// Raises this process's soft open-files limit to its hard limit, and warns when even that
/// is below what `settings` need for `role`. Returns the soft limit in force.
pub fn raise_open_files_limit(settings: &Settings, role: Role) -> Option<u64> {
    let needed = open_files_needed(settings, role);
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(soft) if soft < needed => {
            tracing::warn!(
                open_files_limit = soft,
                needed,
                worker_concurrency = settings.worker_concurrency,
                "the open-files limit ({soft}) is below what worker_concurrency and \
                 database_max_connections need ({needed}): requests past it fail with \
                 'too many open files' and are retried. Raise the hard limit (systemd: \
                 LimitNOFILE=; docker run --ulimit nofile=) or lower worker_concurrency"
            );
            Some(soft)
        }
        Ok(soft) => {
            tracing::debug!(open_files_limit = soft, needed, "open-files limit");
            Some(soft)
        }
        Err(e) => {
            tracing::warn!(error = %e, needed, "cannot read or raise the open-files limit");
            None
        }
    }
}

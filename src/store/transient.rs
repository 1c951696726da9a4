//! Which database errors are worth retrying: the database was unreachable, restarting, or
//! refused this attempt for a reason that says nothing about the data (a serialization
//! conflict, a deadlock). Everything else is about the statement or its values and fails the
//! same way again, so retrying it would only loop.
//!
//! The API answers the transient ones with 503 `database_unavailable`; the completer retries
//! only those.

/// True when `e` means "the database is unavailable or refused this attempt; the same work
/// may succeed if tried again".
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        // The connection broke or could not be made (refused, reset, EOF, TLS failure), or no
        // connection came within the pool's acquire timeout (the server is down or saturated).
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|c| is_transient_sqlstate(&c)),
        // PoolClosed means this process is shutting down: retrying cannot help. Protocol,
        // decode, encode, row-not-found and configuration errors repeat on every attempt.
        _ => false,
    }
}

/// SQLSTATE 25006: what a write gets from a host that does not accept writes.
pub const READ_ONLY_SQL_TRANSACTION: &str = "25006";

/// The SQLSTATEs (https://www.postgresql.org/docs/current/errcodes-appendix.html) that say
/// nothing about the statement itself.
fn is_transient_sqlstate(code: &str) -> bool {
    matches!(
        code,
        // serialization_failure, deadlock_detected: the transaction lost a race; run it again.
        "40001" | "40P01"
        // admin_shutdown (stop / pg_terminate_backend), crash_shutdown (another backend
        // crashed), cannot_connect_now (starting up or in recovery), idle_session_timeout.
        | "57P01" | "57P02" | "57P03" | "57P05"
        // too_many_connections: the server is full for a moment.
        | "53300"
        // read_only_sql_transaction: a write reached a host that does not take writes now (a
        // primary demoted to standby while up, or a standby named by a stale target). The
        // pool drops that connection at its next checkout (`failover::guard`) and reconnects
        // to whichever host accepts writes; the same write succeeds there.
        | READ_ONLY_SQL_TRANSACTION
    ) || code.starts_with("08") // connection_exception and its subclasses
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::error::Error as StdError;
    use std::fmt;
    use std::io;

    use sqlx::error::{DatabaseError, ErrorKind};

    use super::*;

    /// A server error carrying only a SQLSTATE, as PostgreSQL would send it.
    #[derive(Debug)]
    struct Coded(&'static str);

    impl fmt::Display for Coded {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "SQLSTATE {}", self.0)
        }
    }

    impl StdError for Coded {}

    impl DatabaseError for Coded {
        fn message(&self) -> &str {
            "test"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn StdError + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn StdError + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn StdError + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> ErrorKind {
            ErrorKind::Other
        }
    }

    fn db(code: &'static str) -> sqlx::Error {
        sqlx::Error::Database(Box::new(Coded(code)))
    }

    #[test]
    fn connection_level_errors_are_transient() {
        for kind in [
            io::ErrorKind::ConnectionRefused,
            io::ErrorKind::ConnectionReset,
            io::ErrorKind::UnexpectedEof,
            io::ErrorKind::BrokenPipe,
            io::ErrorKind::TimedOut,
        ] {
            assert!(is_transient(&sqlx::Error::Io(kind.into())), "{kind:?}");
        }
        assert!(is_transient(&sqlx::Error::PoolTimedOut));
        assert!(is_transient(&sqlx::Error::WorkerCrashed));
        assert!(is_transient(&sqlx::Error::Tls("handshake cut".into())));
    }

    #[test]
    fn restarts_conflicts_and_full_servers_are_transient() {
        for code in [
            "40001", "40P01", "57P01", "57P02", "57P03", "57P05", "53300", "08000", "08003",
            "08006", "08001", "08004", "08P01", "25006",
        ] {
            assert!(is_transient(&db(code)), "{code}");
        }
    }

    #[test]
    fn errors_about_the_statement_or_its_data_are_not() {
        for code in [
            "22021", // invalid byte sequence (a NUL in text)
            "25001", // active_sql_transaction: a statement that needs no transaction block
            "25P02", // in_failed_sql_transaction: the transaction must be rolled back first
            "22P02", // invalid text representation
            "22003", // numeric value out of range
            "23505", // unique_violation
            "23503", // foreign_key_violation
            "23502", // not_null_violation
            "42P01", // undefined_table
            "42703", // undefined_column
            "42601", // syntax_error
            "57014", // query_canceled (statement_timeout): the same query times out again
            "53100", // disk_full
            "XX000", // internal_error
            "CB001", // callbackd_enqueue's validation error
        ] {
            assert!(!is_transient(&db(code)), "{code}");
        }
    }

    #[test]
    fn shutdown_and_client_side_errors_are_not() {
        assert!(!is_transient(&sqlx::Error::PoolClosed));
        assert!(!is_transient(&sqlx::Error::RowNotFound));
        assert!(!is_transient(&sqlx::Error::Protocol("garbage".into())));
        assert!(!is_transient(&sqlx::Error::ColumnNotFound("x".into())));
        assert!(!is_transient(&sqlx::Error::Decode("bad".into())));
    }
}

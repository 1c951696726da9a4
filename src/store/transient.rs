//! Which database errors are worth retrying: the server or the connection is unavailable,
//! or the transaction lost a race it may win next time. Everything else (bad data, a
//! violated constraint, a bug in a statement) fails the same way again.

/// True when `e` is transient: connection-level errors, the pool's timeout, class 08
/// (connection exception), 40001 serialization_failure, 40P01 deadlock_detected, 53300
/// too_many_connections, 57P01/57P02/57P03 (the server is shutting down or starting).
pub fn is_transient(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            code.starts_with("08")
                || matches!(&*code, "40001" | "40P01" | "53300" | "57P01" | "57P02" | "57P03")
        }),
        _ => false,
    }
}

//! Why callbackd refused to start, as one line a person can act on: what failed, the setting
//! involved, and the fix. `main` prints [`StartupError`]s as they are; everything else goes
//! through [`one_line`].

use crate::config::{ConfigError, redact_url};
use crate::store::StoreError;

#[derive(Debug, thiserror::Error)]
pub enum StartupError {
    #[error(
        "cannot reach PostgreSQL at {url} ({reason}): start PostgreSQL there, or set DATABASE_URL to a server that is running"
    )]
    DatabaseUnreachable { url: String, reason: String },
    #[error(
        "PostgreSQL at {url} refused the connection ({reason}): fix the user, password or database name in DATABASE_URL"
    )]
    DatabaseRefused { url: String, reason: String },
    #[error("applying the migrations to {url} failed ({reason}): see the PostgreSQL log")]
    Migrations { url: String, reason: String },
    #[error(
        "CALLBACKD_SECRET_KEY is malformed: set it to 32 bytes in base64 (`openssl rand -base64 32`), or unset it to use the development key"
    )]
    MalformedSecretKey,
    #[error(
        "CALLBACKD_SECRET_KEY is not the key this database's partner credentials were encrypted with: start with the original key, or set DATABASE_URL to another database"
    )]
    WrongSecretKey,
    #[error(
        "setting `{key}` is invalid ({problem}): fix {variable} or `{key}` in the --config file"
    )]
    Setting {
        key: String,
        variable: String,
        problem: String,
    },
    #[error("configuration cannot be read ({problem}): fix the --config file")]
    ConfigFile { problem: String },
    #[error(
        "cannot listen on {address}: the port is already in use: stop the process that holds it, or set CALLBACKD_LISTEN to a free address"
    )]
    PortInUse { address: std::net::SocketAddr },
    #[error(
        "cannot listen on {address} ({reason}): set CALLBACKD_LISTEN to an address this user may bind"
    )]
    Listen {
        address: std::net::SocketAddr,
        reason: String,
    },
}

impl StartupError {
    /// A failure to connect to (or create) the database at `url`, by its kind: the server is
    /// not there (I/O error, or no connection before the pool's timeout), or it answered no.
    pub fn database(url: &str, error: sqlx::Error) -> Self {
        let url = redact_url(url);
        match error {
            sqlx::Error::Io(e) => Self::DatabaseUnreachable {
                url,
                reason: e.to_string(),
            },
            sqlx::Error::PoolTimedOut => Self::DatabaseUnreachable {
                url,
                reason: "no connection before the timeout".into(),
            },
            sqlx::Error::Database(e) => Self::DatabaseRefused {
                url,
                reason: e.message().to_string(),
            },
            other => Self::DatabaseRefused {
                url,
                reason: other.to_string(),
            },
        }
    }

    /// As [`StartupError::database`], for what the store's connect returns.
    pub fn store(url: &str, error: StoreError) -> Self {
        match error {
            StoreError::Database(e) => Self::database(url, e),
            other => Self::DatabaseRefused {
                url: redact_url(url),
                reason: other.to_string(),
            },
        }
    }

    pub fn listen(address: std::net::SocketAddr, error: std::io::Error) -> Self {
        match error.kind() {
            std::io::ErrorKind::AddrInUse => Self::PortInUse { address },
            _ => Self::Listen {
                address,
                reason: error.to_string(),
            },
        }
    }
}

impl From<ConfigError> for StartupError {
    fn from(error: ConfigError) -> Self {
        match error {
            ConfigError::Invalid { key, message } => Self::setting(key, message),
            ConfigError::Load(e) => match keyed(&e) {
                Some((key, problem)) => Self::setting(&key, problem),
                None => Self::ConfigFile {
                    problem: e.to_string(),
                },
            },
        }
    }
}

impl StartupError {
    fn setting(key: &str, problem: String) -> Self {
        // The environment variable of each key is fixed by the contract (README).
        let variable = match key {
            "database_url" => "DATABASE_URL".to_string(),
            _ => format!("CALLBACKD_{}", key.to_ascii_uppercase()),
        };
        Self::Setting {
            key: key.to_string(),
            variable,
            problem,
        }
    }
}

/// The key a configuration error is about and the problem without the key repeated, when
/// the error names one.
fn keyed(error: &config::ConfigError) -> Option<(String, String)> {
    match error {
        config::ConfigError::Type {
            unexpected,
            expected,
            key: Some(key),
            ..
        } => Some((
            key.clone(),
            format!("got {unexpected}, expected {expected}"),
        )),
        config::ConfigError::At {
            error,
            key: Some(key),
            ..
        } => {
            let problem = match error.as_ref() {
                config::ConfigError::Type {
                    unexpected,
                    expected,
                    ..
                } => format!("got {unexpected}, expected {expected}"),
                config::ConfigError::Message(m) => m.clone(),
                other => other.to_string(),
            };
            Some((key.clone(), problem))
        }
        _ => None,
    }
}

/// Any error as one line: a [`StartupError`] anywhere in the chain is the whole message;
/// otherwise the chain, skipping causes whose text the outer message already shows (sqlx and
/// config repeat their source in their own message).
pub fn one_line(error: &anyhow::Error) -> String {
    if let Some(startup) = error
        .chain()
        .find_map(|cause| cause.downcast_ref::<StartupError>())
    {
        return startup.to_string();
    }
    let mut line = String::new();
    for cause in error.chain() {
        let text = cause.to_string();
        if line.contains(&text) {
            continue;
        }
        if !line.is_empty() {
            line.push_str(": ");
        }
        line.push_str(&text);
    }
    line.replace(['\n', '\r'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_repeated_chain_is_said_once() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let e = anyhow::Error::from(sqlx::Error::Io(io)).context("outer");
        let line = one_line(&e);
        assert_eq!(line.matches("connection refused").count(), 1, "{line}");
    }

    #[test]
    fn a_bad_value_names_its_variable() {
        let env = [("CALLBACKD_RETRY_BASE_MS".to_string(), "soon".to_string())];
        let e = crate::config::Settings::load_with_env(None, env).unwrap_err();
        let line = StartupError::from(e).to_string();
        assert!(line.contains("CALLBACKD_RETRY_BASE_MS"), "{line}");
        assert_eq!(line.matches("soon").count(), 1, "{line}");
    }

    #[test]
    fn the_database_url_is_named_without_its_password() {
        let io = std::io::Error::from(std::io::ErrorKind::ConnectionRefused);
        let line =
            StartupError::database("postgres://u:hunter2@127.0.0.1:1/x", sqlx::Error::Io(io))
                .to_string();
        assert!(line.contains("postgres://u:***@127.0.0.1:1/x"), "{line}");
        assert!(!line.contains("hunter2"), "{line}");
    }
}

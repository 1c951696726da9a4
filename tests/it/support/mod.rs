//! What the test modules share: the application on a fresh database ([`app`]), a partner's
//! receiver ([`receiver`]), `callbackd` as a child process ([`process`]), private PostgreSQL
//! clusters ([`cluster`]), the platform's load against a restarting database ([`traffic`]),
//! and waiting on a condition with a deadline ([`wait`]).

pub mod app;
pub mod cluster;
pub mod process;
pub mod receiver;
pub mod traffic;
pub mod wait;

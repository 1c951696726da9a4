//! What the test modules share: the application on a fresh database ([`app`]), a partner's
//! receiver ([`receiver`]), `callbackd` as a child process ([`process`]), private PostgreSQL
//! clusters ([`cluster`]), the application's logs ([`logs`]), the platform's load against a
//! restarting database ([`traffic`]), and waiting on a condition with a deadline ([`wait`]).

pub mod app;
pub mod cluster;
pub mod logs;
pub mod process;
pub mod receiver;
pub mod traffic;
pub mod wait;

/// A port free when asked (bound to port 0, then let go): for a child process or server
/// that must be told its port. Whatever takes it meanwhile makes that start fail loudly.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

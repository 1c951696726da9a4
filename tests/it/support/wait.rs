//! Waiting for something observable, with a deadline: the tests' one way to wait. A test
//! that waits on an event (a request arrived, a row changed state, a process logged a line)
//! is as fast as the machine allows and fails with a message naming what never happened,
//! where a fixed sleep is either slow or flaky, and cannot see what comes after it.

use std::fmt::Debug;
use std::time::{Duration, Instant};

/// How often a condition is looked at again.
const EVERY: Duration = Duration::from_millis(20);

/// What a polled condition answers: ready (with a value) or not yet (with what was seen).
pub trait Ready {
    type Value;
    fn ready(self) -> Result<Self::Value, String>;
}

impl Ready for bool {
    type Value = ();
    fn ready(self) -> Result<(), String> {
        if self { Ok(()) } else { Err("false".into()) }
    }
}

impl<T> Ready for Option<T> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.ok_or_else(|| "None".into())
    }
}

/// `Err` carries what was seen instead, for the failure message.
impl<T, Seen: Debug> Ready for Result<T, Seen> {
    type Value = T;
    fn ready(self) -> Result<T, String> {
        self.map_err(|seen| format!("{seen:?}"))
    }
}

/// Polls `poll` until it is ready (true, `Some`, `Ok`) and returns its value; panics after
/// `within`, naming `what` was awaited (e.g. "delivery 3 to be delivered") and the last answer.
pub async fn wait_until<R: Ready>(
    what: &str,
    within: Duration,
    mut poll: impl AsyncFnMut() -> R,
) -> R::Value {
    let deadline = Instant::now() + within;
    loop {
        match poll().await.ready() {
            Ok(value) => return value,
            Err(seen) => assert!(
                Instant::now() < deadline,
                "timed out after {within:?} waiting for {what}; last seen: {seen}"
            ),
        }
        tokio::time::sleep(EVERY).await;
    }
}

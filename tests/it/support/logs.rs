//! Capturing what the application logs, for a test that checks its logs. One global
//! subscriber for the whole process (installed at the first capture) writes an event only
//! into the buffer of the thread it happens on, and only while that thread captures.
//!
//! Not a scoped subscriber (`tracing::subscriber::set_default`): while it is the only one,
//! tracing computes a callsite's interest from the default of whichever thread hits the
//! callsite first, so an event another test's thread meets first is cached as unwanted and
//! lost here too. A test that captures must run its app on its own current-thread runtime
//! (`#[tokio::test]`'s default), where the app's tasks all run on the test's thread.

use std::cell::RefCell;
use std::io::Write;
use std::sync::{Arc, Mutex, Once};

use tracing_subscriber::Layer;
use tracing_subscriber::filter::{EnvFilter, FilterExt, dynamic_filter_fn};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;

thread_local! {
    static BUFFER: RefCell<Option<Arc<Mutex<Vec<u8>>>>> = const { RefCell::new(None) };
}

fn capturing() -> bool {
    BUFFER.with(|b| b.borrow().is_some())
}

/// What this thread logged (debug level, sqlx at info) while this lives.
pub struct Captured(Arc<Mutex<Vec<u8>>>);

impl Captured {
    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Drop for Captured {
    fn drop(&mut self) {
        BUFFER.with(|b| b.borrow_mut().take());
    }
}

pub fn capture_logs() -> Captured {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // A dynamic filter: asked at every event (a plain `filter_fn` would be asked once per
        // callsite, on whichever thread meets it first, and remembered).
        let layer = tracing_subscriber::fmt::layer()
            .with_ansi(false)
            .with_writer(|| ThreadBuffer)
            .with_filter(
                EnvFilter::new("debug,sqlx=info").and(dynamic_filter_fn(|_, _| capturing())),
            );
        tracing_subscriber::registry()
            .with(layer)
            .try_init()
            .expect("the tests' one global subscriber");
    });
    let buf: Arc<Mutex<Vec<u8>>> = Arc::default();
    BUFFER.with(|b| *b.borrow_mut() = Some(buf.clone()));
    Captured(buf)
}

struct ThreadBuffer;

impl Write for ThreadBuffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        BUFFER.with(|b| {
            if let Some(buf) = b.borrow().as_ref() {
                buf.lock().unwrap().extend_from_slice(bytes);
            }
        });
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

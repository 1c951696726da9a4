//! The benchmark's partner: a keep-alive HTTP server on 127.0.0.1 that answers `/ok` with 200,
//! `/fail` with 500 and never answers `/hang`, counting what it got per path.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::http::{StatusCode, Uri};

#[derive(Default)]
pub struct Counts {
    pub ok: AtomicU64,
    pub fail: AtomicU64,
    pub hang: AtomicU64,
}

pub async fn start() -> anyhow::Result<(String, Arc<Counts>)> {
    let counts = Arc::new(Counts::default());
    let c = counts.clone();
    let app = axum::Router::new().fallback(move |uri: Uri| {
        let c = c.clone();
        async move {
            if uri.path().starts_with("/fail") {
                c.fail.fetch_add(1, Ordering::Relaxed);
                StatusCode::INTERNAL_SERVER_ERROR
            } else if uri.path().starts_with("/hang") {
                c.hang.fetch_add(1, Ordering::Relaxed);
                std::future::pending::<()>().await;
                StatusCode::OK
            } else {
                c.ok.fetch_add(1, Ordering::Relaxed);
                StatusCode::OK
            }
        }
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let base = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok((base, counts))
}

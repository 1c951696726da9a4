//! `callbackd partners list`, `callbackd endpoints list`.

use uuid::Uuid;

use super::{Output, print_json, table};
use crate::store::Db;
use crate::store::{Endpoint, Partner};

pub async fn partners(pool: &Db, out: Output) -> anyhow::Result<()> {
    let partners = Partner::list(pool).await?;
    if out.json {
        return print_json(&partners);
    }
    let mut t = table::new(&["id", "name", "created"]);
    for p in &partners {
        t.add_row(vec![
            p.id.to_string(),
            p.name.clone(),
            table::time(Some(p.created_at)),
        ]);
    }
    println!("{t}");
    Ok(())
}

pub async fn endpoints(pool: &Db, partner: Option<Uuid>, out: Output) -> anyhow::Result<()> {
    let mut endpoints = Vec::new();
    for e in Endpoint::list(pool, partner).await? {
        endpoints.push(e.with_health(pool).await?);
    }
    if out.json {
        return print_json(&endpoints);
    }
    let mut t = table::new(&[
        "id",
        "partner",
        "env",
        "method",
        "url",
        "auth",
        "enabled",
        "last success",
        "fail streak",
        "pending",
        "dead",
    ]);
    for e in &endpoints {
        let h = e.health.as_ref();
        t.add_row(vec![
            e.id.to_string(),
            e.partner_id.to_string(),
            e.environment.to_string(),
            e.method.to_string(),
            e.url.clone(),
            e.auth["type"].as_str().unwrap_or("-").to_string(),
            e.enabled.to_string(),
            table::time(h.and_then(|h| h.last_success_at)),
            table::opt(h.map(|h| h.failure_streak)),
            table::opt(h.map(|h| h.pending)),
            table::opt(h.map(|h| h.dead)),
        ]);
    }
    println!("{t}");
    Ok(())
}

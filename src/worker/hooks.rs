//! After a batch of outcomes is written: operator alerts, and the recovery pass of endpoints
//! with `auto_replay_dead_on_recovery` that answered 2xx.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::sync::Notify;
use uuid::Uuid;

use crate::alerts::Alerts;
use crate::store::Db;
use crate::store::{self, Next, Outcome};

/// What runs after a batch is written: operator alerts, and the recovery pass of endpoints
/// with `auto_replay_dead_on_recovery` that answered 2xx.
pub struct Hooks {
    pub alerts: Option<Alerts>,
    pub auto_replay_per_second: u32,
    gates: Arc<Mutex<HashMap<Uuid, Gate>>>,
}

/// When this process last ran a recovery pass for an endpoint, and whether a pass is already
/// planned. A 2xx within a second of the last pass plans one for a second after it, so a
/// recovery proceeds pass after pass while (and only while) the endpoint keeps answering 2xx.
struct Gate {
    last: Instant,
    planned: bool,
}

const PASS_EVERY: Duration = Duration::from_secs(1);

impl Hooks {
    pub fn new(alerts: Option<Alerts>, auto_replay_per_second: u32) -> Self {
        Hooks {
            alerts,
            auto_replay_per_second,
            gates: Arc::default(),
        }
    }

    pub fn after_batch(&mut self, pool: &Db, batch: &[Outcome], wake: &Arc<Notify>) {
        if let Some(alerts) = &self.alerts {
            alerts.observe(batch);
        }
        let now = Instant::now();
        let mut due_now: Vec<Uuid> = Vec::new();
        let mut planned: Vec<(Uuid, Instant)> = Vec::new();
        {
            let mut gates = self.gates.lock();
            for o in batch {
                if !(o.auto_replay && o.next == Next::Delivered) {
                    continue;
                }
                match gates.get_mut(&o.endpoint_id) {
                    Some(g) if now.duration_since(g.last) < PASS_EVERY => {
                        if !g.planned {
                            g.planned = true;
                            planned.push((o.endpoint_id, g.last + PASS_EVERY));
                        }
                    }
                    Some(g) => {
                        g.last = now;
                        due_now.push(o.endpoint_id);
                    }
                    None => {
                        gates.insert(
                            o.endpoint_id,
                            Gate {
                                last: now,
                                planned: false,
                            },
                        );
                        due_now.push(o.endpoint_id);
                    }
                }
            }
            if gates.len() > 10_000 {
                gates.retain(|_, g| g.planned || now.duration_since(g.last) < PASS_EVERY);
            }
        }
        let per_second = self.auto_replay_per_second;
        // Off the completion path: a slow recovery query never delays the next batch.
        if !due_now.is_empty() {
            tokio::spawn(recovery_pass(
                pool.clone(),
                due_now,
                per_second,
                wake.clone(),
            ));
        }
        for (endpoint, at) in planned {
            let gates = self.gates.clone();
            let pool = pool.clone();
            let wake = wake.clone();
            tokio::spawn(async move {
                tokio::time::sleep_until(at.into()).await;
                if let Some(g) = gates.lock().get_mut(&endpoint) {
                    g.last = Instant::now();
                    g.planned = false;
                }
                recovery_pass(pool, vec![endpoint], per_second, wake).await;
            });
        }
    }
}

async fn recovery_pass(pool: Db, endpoints: Vec<Uuid>, per_second: u32, wake: Arc<Notify>) {
    match store::auto_replay_pass(&pool, &endpoints, per_second).await {
        Ok(0) => {}
        Ok(n) => {
            tracing::info!(
                replayed = n,
                "endpoint answering again: dead deliveries replayed"
            );
            wake.notify_one();
        }
        Err(e) => tracing::warn!(error = %e, "automatic replay after recovery failed"),
    }
}

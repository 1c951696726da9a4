//! The deliveries this process is sending right now, with their lease tokens, so that a
//! shutdown whose grace runs out can give their leases back (`store::release_leases`).

use std::collections::HashMap;
use std::sync::Mutex;

use uuid::Uuid;

#[derive(Default)]
pub struct InFlight(Mutex<HashMap<Uuid, Uuid>>);

impl InFlight {
    pub fn add(&self, delivery_id: Uuid, lease_token: Uuid) {
        self.lock().insert(delivery_id, lease_token);
    }

    pub fn remove(&self, delivery_id: Uuid) {
        self.lock().remove(&delivery_id);
    }

    /// Every `(delivery id, lease token)` still in flight.
    pub fn snapshot(&self) -> Vec<(Uuid, Uuid)> {
        self.lock().iter().map(|(d, t)| (*d, *t)).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Uuid>> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

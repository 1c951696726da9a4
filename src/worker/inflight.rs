//! What this process holds right now: each delivery with its lease token, from its claim until
//! its outcome is written (so the leases are renewed while a request or its completion is
//! slow, `store::renew_leases`, and a shutdown whose grace runs out can give them back,
//! `store::release_leases`), and the requests on the wire per endpoint (so the claim can keep
//! within `endpoint_concurrency`).

use parking_lot::Mutex;
use std::collections::HashMap;

use uuid::Uuid;

use crate::store::EndpointRoom;

#[derive(Default)]
pub struct InFlight(Mutex<State>);

#[derive(Default)]
struct State {
    leases: HashMap<Uuid, Uuid>,
    per_endpoint: HashMap<Uuid, usize>,
}

impl InFlight {
    /// Records claimed deliveries: `(delivery id, endpoint id)` under one lease token.
    pub fn claimed(&self, lease_token: Uuid, deliveries: impl IntoIterator<Item = (Uuid, Uuid)>) {
        let mut s = self.lock();
        for (delivery, endpoint) in deliveries {
            s.leases.insert(delivery, lease_token);
            *s.per_endpoint.entry(endpoint).or_insert(0) += 1;
        }
    }

    /// The delivery's request ended: its endpoint has room for another one. Returns true
    /// when this brought the endpoint down to half of `cap` requests in flight: the claim
    /// loop sleeps while every endpoint with due work is at its cap, and this is when it
    /// should look again. Waking it on every request would make claims of one row each;
    /// waking it only when the completer writes a batch left the endpoint idle meanwhile
    /// (one busy partner was sent in bursts, its slots empty between them).
    pub fn request_done(&self, endpoint_id: Uuid, cap: usize) -> bool {
        let mut s = self.lock();
        let Some(n) = s.per_endpoint.get_mut(&endpoint_id) else {
            return false;
        };
        *n = n.saturating_sub(1);
        let half = *n == cap / 2;
        if *n == 0 {
            s.per_endpoint.remove(&endpoint_id);
        }
        half
    }

    /// The deliveries' outcomes are written (or given up on): their leases need no renewal.
    pub fn written(&self, delivery_ids: impl IntoIterator<Item = Uuid>) {
        let mut s = self.lock();
        for id in delivery_ids {
            s.leases.remove(&id);
        }
    }

    /// Every `(delivery id, lease token)` whose outcome is not written yet.
    pub fn snapshot(&self) -> Vec<(Uuid, Uuid)> {
        self.lock().leases.iter().map(|(d, t)| (*d, *t)).collect()
    }

    /// What each endpoint may still take under a cap of `cap` requests in flight.
    pub fn room(&self, cap: usize) -> EndpointRoom {
        let mut room = EndpointRoom {
            per_endpoint: cap as i32,
            ..Default::default()
        };
        for (endpoint, n) in &self.lock().per_endpoint {
            if *n >= cap {
                room.full.push(*endpoint);
            } else {
                room.partial.push(*endpoint);
                room.partial_room.push((cap - n) as i32);
            }
        }
        room
    }

    fn lock(&self) -> parking_lot::MutexGuard<'_, State> {
        self.0.lock()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn room_per_endpoint() {
        let f = InFlight::default();
        let (a, b) = (Uuid::now_v7(), Uuid::now_v7());
        let token = Uuid::now_v7();
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::now_v7()).collect();
        f.claimed(token, [(ids[0], a), (ids[1], a), (ids[2], b)]);
        let room = f.room(2);
        assert_eq!(room.full, vec![a]);
        assert_eq!(
            (room.partial.clone(), room.partial_room.clone()),
            (vec![b], vec![1])
        );
        assert!(f.request_done(a, 2), "2 -> 1 is half of the cap of 2");
        assert!(f.room(2).full.is_empty());
        assert_eq!(
            f.snapshot().len(),
            3,
            "leases are held until the outcome is written"
        );
        f.written([ids[0]]);
        assert_eq!(f.snapshot().len(), 2);
    }
}

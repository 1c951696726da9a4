-- Recovery after an outage, and why each series of attempts was started (CONTRACT §7).

-- Endpoint options: replay the dead deliveries of the last auto_replay_window_s seconds
-- automatically once the endpoint answers 2xx again.
ALTER TABLE endpoints ADD COLUMN auto_replay_dead_on_recovery boolean NOT NULL DEFAULT false;
ALTER TABLE endpoints ADD COLUMN auto_replay_window_s integer NOT NULL DEFAULT 86400
    CHECK (auto_replay_window_s BETWEEN 1 AND 2592000);
-- When the next automatic replay pass of this endpoint may start: shared by every worker
-- process, so the replay rate is bounded per endpoint, not per process.
ALTER TABLE endpoints ADD COLUMN auto_replay_next_at timestamptz;

-- Who started the current series of a delivery: the enqueue, an operator, the partner
-- (partner token) or the automatic recovery. Each attempt row copies it (batch completion),
-- so every series in the attempt log says why it exists. Rows written before this migration
-- have no trigger; the read path shows them as 'initial' (series 1) or 'operator' (later
-- series: only operators and partners replayed before).
ALTER TABLE deliveries ADD COLUMN trigger text NOT NULL DEFAULT 'initial'
    CHECK (trigger IN ('initial', 'operator', 'partner', 'auto_recovery'));
ALTER TABLE delivery_attempts ADD COLUMN trigger text;

-- The recovery pass looks for an endpoint's dead deliveries, oldest first. A partial index
-- holds only dead rows, so a healthy endpoint's check costs one index probe.
CREATE INDEX deliveries_dead_idx ON deliveries (endpoint_id, created_at, id)
    WHERE state = 'dead';

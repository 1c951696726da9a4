-- The queue in its own narrow table: `delivery_queue`, one row per pending delivery.
--
-- Until now every queue transition (numbered, claimed, lease renewed, completed) rewrote the
-- whole `deliveries` row. That row carries 14 indexes for operators' listings, and a queue
-- transition changes indexed columns, so no update was HOT: each one inserted a new entry
-- into every index (about 35 buffers per transition, measured). An ordered delivery went
-- through three such rewrites before its completion.
--
-- Now, as River and Oban lay out their job tables, the queue's moving parts live in a narrow
-- row that carries only the queue's own indexes. `deliveries` is written when the delivery is
-- created and once per completed attempt (its state, attempts and last outcome, which is what
-- operators read); numbering, claiming and lease renewal touch only `delivery_queue`. A
-- delivery that finishes (delivered, dead, canceled) leaves the queue: its queue row is
-- deleted in the transaction that finishes it.
--
--   queue       meaning                                              who moves it on
--   ---------   --------------------------------------------------   ----------------------------
--   arriving    ordered endpoint, not numbered yet                   sequencer -> waiting | ready
--   waiting     numbered, an earlier delivery of its key is active   release of its key -> ready
--   ready       may be claimed once next_attempt_at has come         claim -> running
--   running     leased to a worker (locked_until, lease_token)       completion -> ready | gone,
--                                                                    reaper (lease expired)
--   (no row)    finished: delivered, dead or canceled
--
-- A delivery canceled while its request is on the wire keeps its `running` row until that
-- attempt's outcome is written (or its lease expires), so its successor is not released
-- early.

CREATE TABLE delivery_queue (
    delivery_id      uuid PRIMARY KEY,
    endpoint_id      uuid NOT NULL,
    -- The order arrivals were inserted in (within a statement: the items' order); the
    -- sequencer numbers the committed ones in this order.
    arrival          bigint GENERATED ALWAYS AS IDENTITY,
    -- Set when the endpoint orders per proposal.
    ordering_key     text,
    sequence         bigint,
    queue            text NOT NULL CHECK (queue IN ('arriving', 'waiting', 'ready', 'running')),
    next_attempt_at  timestamptz NOT NULL,
    -- Attempts of the current series, counted when claimed, so a delivery whose worker keeps
    -- dying still reaches max_attempts.
    attempts         integer NOT NULL DEFAULT 0,
    -- The lease: while running, one worker owns the row until locked_until; lease_token makes
    -- a late completion of a lost lease a no-op.
    locked_until     timestamptz,
    lease_token      uuid
) WITH (
    -- Rows are short-lived and updated a few times each: room for new versions on the page,
    -- and vacuumed early where autovacuum runs.
    fillfactor = 70,
    autovacuum_vacuum_scale_factor = 0.01,
    autovacuum_vacuum_threshold = 1000,
    autovacuum_analyze_scale_factor = 0.02
);

-- The claim: per endpoint, ready rows in due order (a skip scan, one probe per endpoint).
CREATE INDEX delivery_queue_ready_idx ON delivery_queue (endpoint_id, next_attempt_at)
    WHERE queue = 'ready';
-- The reaper: leases that expired (their worker is gone).
CREATE INDEX delivery_queue_running_idx ON delivery_queue (locked_until) WHERE queue = 'running';
-- The sequencer: committed arrivals, in arrival order.
CREATE INDEX delivery_queue_arriving_idx ON delivery_queue (arrival) WHERE queue = 'arriving';
-- The active deliveries of an ordering key, by sequence: the first one is its head.
CREATE INDEX delivery_queue_order_idx ON delivery_queue (endpoint_id, ordering_key, sequence)
    WHERE ordering_key IS NOT NULL AND queue IN ('waiting', 'ready', 'running');

-- Pending deliveries move over as they stand.
INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, sequence, queue,
                            next_attempt_at, attempts, locked_until, lease_token)
SELECT d.id, d.endpoint_id, d.ordering_key, d.sequence, d.queue, d.next_attempt_at,
       d.attempts, d.locked_until, d.lease_token
FROM deliveries d WHERE d.queue IS NOT NULL
ORDER BY d.id;

-- The queue columns leave `deliveries` (with their partial indexes), and the per-row trigger
-- that filled them goes: arrivals are queued by one statement per insert below.
DROP TRIGGER deliveries_number ON deliveries;
DROP FUNCTION callbackd_number_delivery();
DROP INDEX deliveries_ready_idx;
DROP INDEX deliveries_running_idx;
DROP INDEX deliveries_arriving_idx;
DROP INDEX deliveries_order_active_idx;
ALTER TABLE deliveries DROP COLUMN queue;
ALTER TABLE deliveries DROP COLUMN locked_until;
ALTER TABLE deliveries DROP COLUMN lease_token;

-- Every insert into `deliveries` (callbackd_enqueue(), the API's group commit, the batch)
-- queues its pending rows in one statement: ready at once, or arriving (to be numbered by the
-- workers) when the endpoint orders per proposal. No lock is taken, so an enqueue inside the
-- platform's transaction never waits for, or deadlocks with, another one. The ordering key
-- is copied to `deliveries` when the delivery finishes (it is only read there by then).
CREATE FUNCTION callbackd_queue_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, queue, next_attempt_at)
    SELECT r.id, r.endpoint_id, k.key,
           CASE WHEN k.key IS NULL THEN 'ready' ELSE 'arriving' END, r.next_attempt_at
    FROM new_rows r
    JOIN endpoints e ON e.id = r.endpoint_id
    LEFT JOIN notifications n
           ON n.id = r.notification_id AND r.event_type = 'schedule.event'
          AND e.ordering = 'per_proposal'
    CROSS JOIN LATERAL (SELECT CASE
            WHEN e.ordering <> 'per_proposal' THEN NULL
            WHEN r.event_type = 'proposal.status' THEN r.proposal::text
            WHEN r.event_type = 'schedule.event' THEN n.body ->> 'NroProposta'
        END AS key) k
    WHERE r.state = 'pending'
    -- notification ids are time-ordered in the items' order: arrivals keep it
    ORDER BY r.notification_id, r.id;
    RETURN NULL;
END;
$$;
CREATE TRIGGER deliveries_queue_arrivals AFTER INSERT ON deliveries
    REFERENCING NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION callbackd_queue_arrivals();

-- A replay (dead or canceled back to pending, by an operator, a partner or the recovery pass)
-- queues the delivery again: ready at once with the sequence it had, so it goes first of its
-- key. The WHEN clause is evaluated without calling the function, so completions and
-- cancels, which never make a row pending, pay nothing for it.
CREATE FUNCTION callbackd_queue_replay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, sequence, queue,
                                next_attempt_at, attempts)
    VALUES (NEW.id, NEW.endpoint_id, NEW.ordering_key, NEW.sequence,
            CASE WHEN NEW.ordering_key IS NOT NULL AND NEW.sequence IS NULL
                 THEN 'arriving' ELSE 'ready' END,
            NEW.next_attempt_at, NEW.attempts);
    RETURN NULL;
END;
$$;
CREATE TRIGGER deliveries_queue_replay AFTER UPDATE OF state ON deliveries
    FOR EACH ROW WHEN (OLD.state <> 'pending' AND NEW.state = 'pending')
    EXECUTE FUNCTION callbackd_queue_replay();

-- Numbers up to max_rows committed arrivals, in arrival order, and makes the first of each
-- key ready when nothing of its key is active; the others wait. Returns how many it numbered.
-- Concurrent sequencers skip each other's rows; each locks the counters it bumps in
-- (endpoint, key) order, as the release does, so they never deadlock.
CREATE OR REPLACE FUNCTION callbackd_sequence_arrivals(max_rows integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    k_endpoints uuid[];
    k_keys text[];
    k_bases bigint[];
BEGIN
    SELECT array_agg(a.delivery_id ORDER BY a.arrival) INTO ids FROM (
        SELECT q.delivery_id, q.arrival FROM delivery_queue q
        WHERE q.queue = 'arriving'
        ORDER BY q.arrival
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    ) a;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;

    -- Reserve the numbers of each key: the counter rows stay locked until we commit.
    WITH counts AS (
        SELECT q.endpoint_id, q.ordering_key, count(*) AS n
        FROM delivery_queue q WHERE q.delivery_id = ANY (ids)
        GROUP BY q.endpoint_id, q.ordering_key
    ),
    bumped AS (
        INSERT INTO ordering_sequences AS s (endpoint_id, ordering_key, last_sequence)
        SELECT c.endpoint_id, c.ordering_key, c.n FROM counts c
        ORDER BY c.endpoint_id, c.ordering_key
        ON CONFLICT (endpoint_id, ordering_key)
            DO UPDATE SET last_sequence = s.last_sequence + excluded.last_sequence
        RETURNING s.endpoint_id, s.ordering_key, s.last_sequence
    )
    SELECT array_agg(b.endpoint_id), array_agg(b.ordering_key), array_agg(b.last_sequence - c.n)
    INTO k_endpoints, k_keys, k_bases
    FROM bumped b
    JOIN counts c ON c.endpoint_id = b.endpoint_id AND c.ordering_key = b.ordering_key;

    -- A new statement, so a new snapshot taken after the counters were locked: a release of
    -- the same key that committed meanwhile is seen, one still running waits for us. The
    -- first arrival of a key is ready when nothing of its key is active; the others wait.
    UPDATE delivery_queue q SET
        sequence = k.base + x.rn,
        queue = CASE
            WHEN e.ordering <> 'per_proposal' THEN 'ready'
            WHEN x.rn = 1 AND NOT EXISTS (
                SELECT 1 FROM delivery_queue a
                WHERE a.endpoint_id = q.endpoint_id AND a.ordering_key = q.ordering_key
                  AND a.ordering_key IS NOT NULL
                  AND a.queue IN ('waiting', 'ready', 'running')) THEN 'ready'
            ELSE 'waiting' END
    FROM (
        SELECT n.delivery_id, n.endpoint_id, n.ordering_key,
               row_number() OVER (PARTITION BY n.endpoint_id, n.ordering_key
                                  ORDER BY n.arrival) AS rn
        FROM delivery_queue n WHERE n.delivery_id = ANY (ids)
    ) x
    JOIN unnest(k_endpoints, k_keys, k_bases) AS k(endpoint_id, ordering_key, base)
      ON k.endpoint_id = x.endpoint_id AND k.ordering_key = x.ordering_key,
    endpoints e
    WHERE q.delivery_id = x.delivery_id AND e.id = q.endpoint_id;

    RETURN cardinality(ids);
END;
$$;

-- After a delivery of (endpoint, key) finished or was canceled: if the first active delivery
-- of the key is waiting, it becomes ready. Locks the key's counter first, like the sequencer,
-- so an arrival numbered concurrently is either seen here or sees this release.
CREATE OR REPLACE FUNCTION callbackd_release_next(p_endpoint uuid, p_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    PERFORM 1 FROM ordering_sequences s
    WHERE s.endpoint_id = p_endpoint AND s.ordering_key = p_key
    FOR UPDATE;
    LOOP
        SELECT q.delivery_id, q.queue INTO head FROM delivery_queue q
        WHERE q.endpoint_id = p_endpoint AND q.ordering_key = p_key
          AND q.ordering_key IS NOT NULL
          AND q.queue IN ('waiting', 'ready', 'running')
        ORDER BY q.sequence
        LIMIT 1;
        IF NOT FOUND OR head.queue <> 'waiting' THEN
            RETURN;
        END IF;
        UPDATE delivery_queue SET queue = 'ready'
        WHERE delivery_id = head.delivery_id AND queue = 'waiting';
        IF FOUND THEN
            RETURN;
        END IF;
        -- Canceled under us: look again.
    END LOOP;
END;
$$;

-- The runnable queue: the claim reads only what it can take.
--
-- Before this migration the claim walked every pending row in due order and probed, per
-- candidate, whether an earlier delivery of the same proposal was still pending. Its cost
-- grew with the backlog (O(pending²) on one ordered endpoint) and with stale planner
-- statistics. Now each pending delivery carries where it stands in the queue, and only
-- `ready` rows sit in the claim's index:
--
--   queue       meaning                                              who moves it on
--   ---------   --------------------------------------------------   ----------------------------
--   arriving    ordered endpoint, not numbered yet                   sequencer -> waiting | ready
--   waiting     numbered, an earlier delivery of its key is active   release of its key -> ready
--   ready       may be claimed once next_attempt_at has come         claim -> running
--   running     leased to a worker (locked_until, lease_token)       completion -> ready | NULL,
--                                                                    reaper (lease expired)
--   NULL        finished: delivered, dead or canceled
--
-- A delivery canceled while its request is on the wire keeps `running` until that attempt's
-- outcome is written (or its lease expires), so its successor is not released early.
--
-- Sequence numbers are no longer handed out by the enqueuing transaction (which held the
-- counter's row lock until the platform's transaction ended and could deadlock two platform
-- transactions naming proposals in opposite orders). The workers number arrivals once they
-- are committed, in the order they become visible: commit order per key, without gaps.

ALTER TABLE deliveries ADD COLUMN queue text
    CHECK (queue IN ('arriving', 'waiting', 'ready', 'running'));

-- Existing pending rows: leased ones run, ordered ones behind an earlier pending one of their
-- key wait, the rest are ready.
UPDATE deliveries d SET queue = CASE
        WHEN d.locked_until IS NOT NULL AND d.locked_until > now() THEN 'running'
        WHEN d.ordering_key IS NOT NULL AND EXISTS (
            SELECT 1 FROM deliveries p
            WHERE p.endpoint_id = d.endpoint_id AND p.ordering_key = d.ordering_key
              AND p.sequence < d.sequence AND p.state = 'pending') THEN 'waiting'
        ELSE 'ready' END,
    locked_until = CASE WHEN d.locked_until > now() THEN d.locked_until END,
    lease_token = CASE WHEN d.locked_until > now() THEN d.lease_token END
WHERE d.state = 'pending';

DROP INDEX deliveries_due_idx;

-- The claim: per endpoint, ready rows in due order. The claim visits each endpoint that has
-- ready rows once (a skip scan) and reads at most as many rows as it takes from each.
CREATE INDEX deliveries_ready_idx ON deliveries (endpoint_id, next_attempt_at)
    WHERE queue = 'ready';
-- The reaper: leases that expired (their worker is gone).
CREATE INDEX deliveries_running_idx ON deliveries (locked_until) WHERE queue = 'running';
-- The sequencer: committed arrivals, oldest first.
CREATE INDEX deliveries_arriving_idx ON deliveries (id) WHERE queue = 'arriving';
-- The active deliveries of an ordering key, by sequence: the first one is its head.
CREATE INDEX deliveries_order_active_idx ON deliveries (endpoint_id, ordering_key, sequence)
    WHERE ordering_key IS NOT NULL AND queue IN ('waiting', 'ready', 'running');

-- Fan-out fills the queue columns: an ordered delivery arrives unnumbered, any other is
-- ready at once. No lock is taken here, so an enqueue inside the platform's transaction never
-- waits for, or deadlocks with, another one.
CREATE OR REPLACE FUNCTION callbackd_number_delivery() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    endpoint_ordering text;
    key text;
BEGIN
    IF NEW.state <> 'pending' THEN
        NEW.queue := NULL;
        RETURN NEW;
    END IF;
    IF NEW.queue IS NOT NULL THEN
        RETURN NEW;
    END IF;
    SELECT e.ordering INTO endpoint_ordering FROM endpoints e WHERE e.id = NEW.endpoint_id;
    IF endpoint_ordering = 'per_proposal' THEN
        IF NEW.event_type = 'proposal.status' THEN
            key := NEW.proposal::text;
        ELSIF NEW.event_type = 'schedule.event' THEN
            SELECT n.body ->> 'NroProposta' INTO key
            FROM notifications n WHERE n.id = NEW.notification_id;
        END IF;
    END IF;
    IF key IS NULL THEN
        NEW.queue := 'ready';
    ELSE
        NEW.ordering_key := key;
        NEW.queue := 'arriving';
    END IF;
    RETURN NEW;
END;
$$;

-- Numbers up to max_rows committed arrivals, oldest first, and makes the first of each key
-- ready when nothing of its key is active; the others wait. Returns how many it numbered.
-- Concurrent sequencers skip each other's rows; each locks the counters it bumps in
-- (endpoint, key) order, as the release does, so they never deadlock.
CREATE FUNCTION callbackd_sequence_arrivals(max_rows integer) RETURNS integer
LANGUAGE plpgsql AS $$
DECLARE
    ids uuid[];
    k_endpoints uuid[];
    k_keys text[];
    k_bases bigint[];
BEGIN
    SELECT array_agg(a.id ORDER BY a.id) INTO ids FROM (
        SELECT d.id FROM deliveries d
        WHERE d.queue = 'arriving'
        ORDER BY d.id
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    ) a;
    IF ids IS NULL THEN
        RETURN 0;
    END IF;

    -- Reserve the numbers of each key: the counter rows stay locked until we commit.
    WITH counts AS (
        SELECT d.endpoint_id, d.ordering_key, count(*) AS n
        FROM deliveries d WHERE d.id = ANY (ids)
        GROUP BY d.endpoint_id, d.ordering_key
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
    UPDATE deliveries d SET
        sequence = k.base + x.rn,
        queue = CASE
            WHEN e.ordering <> 'per_proposal' THEN 'ready'
            WHEN x.rn = 1 AND NOT EXISTS (
                SELECT 1 FROM deliveries a
                WHERE a.endpoint_id = d.endpoint_id AND a.ordering_key = d.ordering_key
                  AND a.ordering_key IS NOT NULL
                  AND a.queue IN ('waiting', 'ready', 'running')) THEN 'ready'
            ELSE 'waiting' END,
        updated_at = now()
    FROM (
        SELECT n.id, n.endpoint_id, n.ordering_key,
               row_number() OVER (PARTITION BY n.endpoint_id, n.ordering_key ORDER BY n.id) AS rn
        FROM deliveries n WHERE n.id = ANY (ids)
    ) x
    JOIN unnest(k_endpoints, k_keys, k_bases) AS k(endpoint_id, ordering_key, base)
      ON k.endpoint_id = x.endpoint_id AND k.ordering_key = x.ordering_key,
    endpoints e
    WHERE d.id = x.id AND e.id = d.endpoint_id;

    RETURN cardinality(ids);
END;
$$;

-- After a delivery of (endpoint, key) finished or was canceled: if the first active delivery
-- of the key is waiting, it becomes ready. Locks the key's counter first, like the sequencer,
-- so an arrival numbered concurrently is either seen here or sees this release.
CREATE FUNCTION callbackd_release_next(p_endpoint uuid, p_key text) RETURNS void
LANGUAGE plpgsql AS $$
DECLARE
    head record;
BEGIN
    PERFORM 1 FROM ordering_sequences s
    WHERE s.endpoint_id = p_endpoint AND s.ordering_key = p_key
    FOR UPDATE;
    LOOP
        SELECT d.id, d.queue INTO head FROM deliveries d
        WHERE d.endpoint_id = p_endpoint AND d.ordering_key = p_key
          AND d.ordering_key IS NOT NULL
          AND d.queue IN ('waiting', 'ready', 'running')
        ORDER BY d.sequence
        LIMIT 1;
        IF NOT FOUND OR head.queue <> 'waiting' THEN
            RETURN;
        END IF;
        UPDATE deliveries SET queue = 'ready', updated_at = now()
        WHERE id = head.id AND queue = 'waiting';
        IF FOUND THEN
            RETURN;
        END IF;
        -- Canceled under us: look again.
    END LOOP;
END;
$$;

-- Attempts: written exactly once per claim (a completion retried after a commit whose answer
-- was lost finds its row), and what the partner answered kept honestly.
ALTER TABLE delivery_attempts ADD COLUMN lease_token uuid;
CREATE UNIQUE INDEX delivery_attempts_once_idx ON delivery_attempts (delivery_id, lease_token)
    WHERE lease_token IS NOT NULL;
-- True when the stored response_body is not byte for byte what the partner sent: invalid
-- UTF-8 sequences and NUL bytes (which PostgreSQL text cannot hold) were replaced by U+FFFD.
ALTER TABLE delivery_attempts ADD COLUMN response_body_lossy boolean NOT NULL DEFAULT false;

-- error_kind learns `internal` (a failure of callbackd itself: a panic, a lost worker, an
-- outcome that could not be written). PostgreSQL 15 cannot alter a generated expression.
ALTER TABLE delivery_attempts DROP COLUMN error_kind;
ALTER TABLE delivery_attempts ADD COLUMN error_kind text GENERATED ALWAYS AS (
    CASE
        WHEN error IS NULL THEN NULL
        WHEN error LIKE 'internal%' THEN 'internal'
        WHEN error LIKE 'timeout%' THEN 'timeout'
        WHEN error LIKE 'dns%' THEN 'dns'
        WHEN error LIKE 'connect%' THEN 'connect'
        WHEN error LIKE 'tls%' THEN 'tls'
        WHEN error LIKE 'redirect%' THEN 'redirect'
        WHEN error LIKE 'forbidden target%' THEN 'forbidden_target'
        WHEN error LIKE 'auth rejected%' THEN 'auth_rejected'
        WHEN status_code = 413 THEN 'body_too_large'
        WHEN status_code BETWEEN 400 AND 499 THEN 'http_4xx'
        WHEN status_code BETWEEN 500 AND 599 THEN 'http_5xx'
        WHEN error LIKE 'auth%' THEN 'auth'
        ELSE 'other'
    END
) STORED;

-- An optional per-endpoint rate, shared by every worker process: a generic cell rate
-- algorithm whose only state is the theoretical arrival time of the next request.
ALTER TABLE endpoints ADD COLUMN rate_limit_per_s integer
    CHECK (rate_limit_per_s BETWEEN 1 AND 100000);
ALTER TABLE endpoints ADD COLUMN rate_tat timestamptz;

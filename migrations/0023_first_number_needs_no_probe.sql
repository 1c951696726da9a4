-- The sequencer skips the "is anything of this key active?" probe for a key seen for the
-- first time.
--
-- The counter of a key counts every delivery of it ever numbered (counters are never
-- deleted, and every waiting, ready or running delivery of an ordered key was numbered:
-- the queue's trigger gives a key only to arrivals, and a replay keeps its number). So when
-- this call's arrivals of a key start at number 1 (the counter's new value equals how many
-- of them this call numbers), no delivery of that key was numbered before, none is active,
-- and the first arrival is ready without looking. That is the common case (a proposal's
-- first notification, every arrival of a burst of distinct proposals), and the probe was
-- three index pages per arrival, 3,000 of the 18,700 buffers the update read for 1,000
-- arrivals (docs/performance.md).
--
-- Everything else is 0022's function as it was.
CREATE OR REPLACE FUNCTION callbackd_sequence_arrivals(max_rows integer) RETURNS integer
LANGUAGE plpgsql
-- Planned with sequential scans priced out (point 1 above).
SET enable_seqscan = off
AS $$
DECLARE
    tids tid[];
    endpoint_ids uuid[];
    keys text[];
    ranks bigint[];
    counts bigint[];
BEGIN
    WITH picked AS (
        SELECT q.ctid AS tid, q.endpoint_id, q.ordering_key, q.arrival
        FROM delivery_queue q
        WHERE q.queue = 'arriving'
        ORDER BY q.arrival
        LIMIT max_rows
        FOR UPDATE SKIP LOCKED
    ),
    -- Each arrival's rank within its key, and its key's count: one sort, no join.
    ranked AS (
        SELECT p.tid, p.endpoint_id, p.ordering_key,
               row_number() OVER w AS rn, count(*) OVER w AS n
        FROM picked p
        WINDOW w AS (PARTITION BY p.endpoint_id, p.ordering_key ORDER BY p.arrival
                     ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING)
    ),
    -- Reserve the numbers of each key: the counter rows stay locked until we commit.
    bumped AS (
        INSERT INTO ordering_sequences AS s (endpoint_id, ordering_key, last_sequence)
        SELECT r.endpoint_id, r.ordering_key, r.n FROM ranked r WHERE r.rn = 1
        ORDER BY r.endpoint_id, r.ordering_key
        ON CONFLICT (endpoint_id, ordering_key)
            DO UPDATE SET last_sequence = s.last_sequence + excluded.last_sequence
    )
    SELECT array_agg(r.tid), array_agg(r.endpoint_id), array_agg(r.ordering_key),
           array_agg(r.rn), array_agg(r.n)
    INTO tids, endpoint_ids, keys, ranks, counts
    FROM ranked r;
    IF tids IS NULL THEN
        RETURN 0;
    END IF;

    -- A new statement, so a new snapshot taken after the counters were locked: it sees their
    -- new values (the key's numbers end at last_sequence) and every release that committed
    -- meanwhile. The first arrival of a key is ready when nothing of its key is active; the
    -- others wait.
    UPDATE delivery_queue q SET
        sequence = s.last_sequence - x.n + x.rn,
        queue = CASE
            WHEN e.ordering <> 'per_proposal' THEN 'ready'
            WHEN x.rn = 1 AND active.found IS NULL THEN 'ready'
            ELSE 'waiting' END
    FROM unnest(tids, endpoint_ids, keys, ranks, counts)
             AS x(tid, endpoint_id, ordering_key, rn, n)
         JOIN endpoints e ON e.id = x.endpoint_id
         -- LIMIT keeps the planner from flattening this into a join, which it may then run
         -- on the endpoint alone (every counter of the endpoint, filtered by key).
         CROSS JOIN LATERAL (
             SELECT c.last_sequence FROM ordering_sequences c
             WHERE c.endpoint_id = x.endpoint_id AND c.ordering_key = x.ordering_key
             LIMIT 1) s
         -- Asked only where the key had numbers before this call: a key whose first
         -- number is 1 has never had a delivery numbered, so nothing of it can be active.
         LEFT JOIN LATERAL (
             SELECT true AS found FROM delivery_queue a
             WHERE x.rn = 1 AND e.ordering = 'per_proposal' AND s.last_sequence > x.n
               AND a.endpoint_id = x.endpoint_id AND a.ordering_key = x.ordering_key
               AND a.ordering_key IS NOT NULL
               AND a.queue IN ('waiting', 'ready', 'running')
             LIMIT 1) active ON true
    WHERE q.ctid = x.tid;

    RETURN cardinality(tids);
END;
$$;

-- The sequencer's plans no longer depend on what the planner believed when it first ran.
--
-- plpgsql caches each statement's plan for the session, and after a few runs a generic plan,
-- made with the sizes the tables had then. A worker that first ran while the queue was small
-- (or right after its own VACUUM of a nearly empty queue) kept plans that read the whole
-- queue once it had grown. Three were seen (auto_explain in `ingest`, and the test
-- reliability::queue_speed::cached_plans, which reads 830 buffers for one arrival before
-- this migration and about 90 after):
--
-- 1. The pick of arrivals: a sequential scan of the queue and a sort by arrival, instead of
--    delivery_queue_arriving_idx in order. The function now runs with enable_seqscan off.
-- 2. "Is anything of this key still active?", a NOT EXISTS inside a CASE, which PostgreSQL
--    may plan either as one probe per arrival or as a hashed subplan that reads every active
--    ordered row of every endpoint once per call. Now a LATERAL subquery with LIMIT 1, which
--    can only be a probe (delivery_queue_order_idx), asked only for the first arrival of a
--    key on a per_proposal endpoint.
-- 3. The arrivals joined to their key's count and to the counter's new value, CTE to CTE:
--    with one-row estimates, nested loops, quadratic in the arrivals numbered at once (up to
--    1,000). Now each arrival carries its rank and its key's count from one window sort, and
--    the update reads the counter's new value by primary key.
--
-- What does not change (0021): arrivals are numbered in arrival order; concurrent sequencers
-- skip each other's rows; the counters are locked in (endpoint, key) order, as the release
-- (store/queue/release.rs) locks them; the update is a statement of its own, whose snapshot
-- is taken after the counters are locked; rows are reached by TID.
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
         LEFT JOIN LATERAL (
             SELECT true AS found FROM delivery_queue a
             WHERE x.rn = 1 AND e.ordering = 'per_proposal'
               AND a.endpoint_id = x.endpoint_id AND a.ordering_key = x.ordering_key
               AND a.ordering_key IS NOT NULL
               AND a.queue IN ('waiting', 'ready', 'running')
             LIMIT 1) active ON true
    WHERE q.ctid = x.tid;

    RETURN cardinality(tids);
END;
$$;

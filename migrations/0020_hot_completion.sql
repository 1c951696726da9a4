-- The completion's update of the wide `deliveries` row becomes a HOT update.
--
-- Why. A completion changes `state`, `updated_at`, `sequence` (and attempts, the last
-- outcome, delivered_at). Five indexes named those columns, in their keys or in their
-- partial-index predicates, so no such update was HOT: PostgreSQL wrote a new entry into
-- every index of the row (ten of them) for every completed attempt. Measured with EXPLAIN
-- (ANALYZE, BUFFERS, WAL) on a completion of 456 deliveries: the update of `deliveries` took
-- ~40 µs and ~8.8 WAL records per row, most of the completion (docs/performance.md). A HOT
-- update writes the new row version on the same page and touches no index at all.
--
-- A HOT update needs two things:
-- 1. No indexed column changes. The indexes left on `deliveries` name only columns that are
--    written once, at insert: id, created_at, partner_id, endpoint_id, notification_id and
--    (new) ordering_key. What the five dropped indexes served moves off the hot path:
--
--      dropped index                        served                      now
--      ----------------------------------   -------------------------   ----------------------
--      deliveries_state_idx                 listing by state            dead/canceled: the
--      deliveries_dead_idx                  recovery: dead, oldest      `delivery_stopped`
--      deliveries_endpoint_open_idx         health: pending/dead count  side table; pending:
--                                                                       `delivery_queue`
--      deliveries_finished_idx              retention                   deliveries_created_idx
--      deliveries_ordering_idx              out_of_order (listing)      deliveries_key_idx
--
--    - `delivery_stopped` holds one row per dead or canceled delivery (rare states), written
--      by the statement that makes the delivery dead (completion, reaper) or canceled (cancel,
--      cancel of an endpoint's or partner's pending), deleted by the replay trigger below and
--      by retention. A delivered delivery (the hot path) writes no row there.
--    - Pending is exactly "has a `delivery_queue` row and state = 'pending'" (a delivery
--      canceled while its request was on the wire keeps its running queue row until that
--      attempt ends; its state says canceled and it has a `delivery_stopped` row).
--    - Retention walks deliveries_created_idx from the oldest up to the cutoff: a delivery
--      finished before the cutoff was created before it (updated_at >= created_at).
--    - `ordering_key` is now written when the delivery is inserted (the fan-out computes it,
--      `callbackd_ordering_key()`), no longer copied by the completion, so an index on
--      (endpoint_id, ordering_key) finds the few deliveries of a proposal without blocking
--      HOT; `sequence` (set by the completion) is only read from the heap.
-- 2. Room on the page for the new version. A completion batch may update every row of a
--    page in one transaction, so the old versions cannot be pruned before the new ones are
--    written: each page must keep room for a new version of every row it holds, and a
--    finished row is ~27 bytes longer than a pending one (delivered_at, sequence, the status
--    code, the state's name): 229 → 256 bytes measured for a proposal.status delivery. At
--    fillfactor 50 a page holds 17 pending rows and room for 15 new versions; at 45, 15 rows
--    and room for their new versions plus ~45 bytes each (an error message). Measured: a
--    completion of 456 fresh deliveries in one transaction (the worst case) made 404 of its
--    updates HOT at fillfactor 50 and 456 at 45; `callbackd-bench burst` and `one-endpoint`
--    (whose batches complete a page's rows over several transactions, pruning between
--    them) 100,000 of 100,000 at 50 (docs/performance.md). Pages are the price: the heap
--    holds about half the rows per page it held at 85 (only new pages; existing ones keep
--    their rows), against five fewer indexes and a completion that touches none.

-- The ordering key of a delivery, as the queue has always computed it (migrations/0015):
-- per proposal for proposal.status, per NroProposta for schedule.event, none when the
-- endpoint does not order. Inlined by the planner.
CREATE FUNCTION callbackd_ordering_key(ordering text, event_type text, proposal uuid, body json)
RETURNS text
LANGUAGE sql IMMUTABLE AS $$
    SELECT CASE
        WHEN $1 <> 'per_proposal' THEN NULL
        WHEN $2 = 'proposal.status' THEN $3::text
        WHEN $2 = 'schedule.event' THEN $4 ->> 'NroProposta'
    END;
$$;

-- Pending deliveries get the key their queue row has (finished ones were given it by their
-- completion or cancel).
UPDATE deliveries d SET ordering_key = q.ordering_key
FROM delivery_queue q
WHERE q.delivery_id = d.id AND q.ordering_key IS NOT NULL
  AND d.ordering_key IS DISTINCT FROM q.ordering_key;

-- Dead and canceled deliveries: the rare states operators list, count and replay.
CREATE TABLE delivery_stopped (
    delivery_id  uuid PRIMARY KEY,
    endpoint_id  uuid NOT NULL,
    state        text NOT NULL CHECK (state IN ('dead', 'canceled')),
    -- The delivery's, for listings newest first and the recovery's oldest first.
    created_at   timestamptz NOT NULL
);
-- Listing and bulk replay by state, newest first.
CREATE INDEX delivery_stopped_state_idx
    ON delivery_stopped (state, created_at DESC, delivery_id DESC);
-- An endpoint's dead count (health), its dead oldest first (recovery).
CREATE INDEX delivery_stopped_endpoint_idx
    ON delivery_stopped (endpoint_id, state, created_at, delivery_id);

INSERT INTO delivery_stopped (delivery_id, endpoint_id, state, created_at)
SELECT d.id, d.endpoint_id, d.state, d.created_at FROM deliveries d
WHERE d.state IN ('dead', 'canceled')
ORDER BY d.id;

DROP INDEX deliveries_state_idx;
DROP INDEX deliveries_endpoint_open_idx;
DROP INDEX deliveries_dead_idx;
DROP INDEX deliveries_finished_idx;
DROP INDEX deliveries_ordering_idx;
-- `out_of_order`: the deliveries of one (endpoint, key), a proposal's handful.
CREATE INDEX deliveries_key_idx ON deliveries (endpoint_id, ordering_key)
    WHERE ordering_key IS NOT NULL;

ALTER TABLE deliveries SET (fillfactor = 45);

-- The arrivals take the key the insert wrote: no join to endpoints and notifications.
CREATE OR REPLACE FUNCTION callbackd_queue_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, queue, next_attempt_at)
    SELECT r.id, r.endpoint_id, r.ordering_key,
           CASE WHEN r.ordering_key IS NULL THEN 'ready' ELSE 'arriving' END, r.next_attempt_at
    FROM new_rows r
    WHERE r.state = 'pending'
    -- notification ids are time-ordered in the items' order: arrivals keep it
    ORDER BY r.notification_id, r.id;
    RETURN NULL;
END;
$$;

-- A replay queues the delivery again (as in 0015) and it is no longer dead or canceled.
CREATE OR REPLACE FUNCTION callbackd_queue_replay() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM delivery_stopped WHERE delivery_id = NEW.id;
    INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, sequence, queue,
                                next_attempt_at, attempts)
    VALUES (NEW.id, NEW.endpoint_id, NEW.ordering_key, NEW.sequence,
            CASE WHEN NEW.ordering_key IS NOT NULL AND NEW.sequence IS NULL
                 THEN 'arriving' ELSE 'ready' END,
            NEW.next_attempt_at, NEW.attempts);
    RETURN NULL;
END;
$$;

-- callbackd_enqueue() of 0014, writing the ordering key with the delivery.
CREATE OR REPLACE FUNCTION callbackd_enqueue(
    partner_id   uuid,
    environment  text,
    event_type   text,
    proposal     uuid    DEFAULT NULL,
    status       integer DEFAULT NULL,
    identifier   text    DEFAULT NULL,
    body         json    DEFAULT NULL
) RETURNS uuid
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    notification_id uuid;
BEGIN
    IF callbackd_enqueue.partner_id IS NULL OR NOT EXISTS (
        SELECT 1 FROM partners p
        WHERE p.id = callbackd_enqueue.partner_id AND p.deleted_at IS NULL
    ) THEN
        RAISE EXCEPTION 'unknown partner_id: %', callbackd_enqueue.partner_id
            USING ERRCODE = 'CB001', COLUMN = 'partner_id';
    END IF;
    IF callbackd_enqueue.environment IS NULL
       OR callbackd_enqueue.environment NOT IN ('homologation', 'production') THEN
        RAISE EXCEPTION 'environment must be homologation or production, got %',
            coalesce(callbackd_enqueue.environment, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'environment';
    END IF;
    IF callbackd_enqueue.event_type IS NULL
       OR NOT (callbackd_enqueue.event_type = ANY (callbackd_event_types())) THEN
        RAISE EXCEPTION 'unknown event_type: %', coalesce(callbackd_enqueue.event_type, 'NULL')
            USING ERRCODE = 'CB001', COLUMN = 'event_type';
    END IF;
    IF callbackd_enqueue.body IS NOT NULL AND json_typeof(callbackd_enqueue.body) <> 'object' THEN
        RAISE EXCEPTION 'body must be a JSON object'
            USING ERRCODE = 'CB001', COLUMN = 'body';
    END IF;

    IF callbackd_enqueue.event_type = 'proposal.status' THEN
        IF callbackd_enqueue.proposal IS NULL THEN
            RAISE EXCEPTION 'proposal is required for proposal.status'
                USING ERRCODE = 'CB001', COLUMN = 'proposal';
        END IF;
        IF callbackd_enqueue.status IS NULL OR callbackd_enqueue.status NOT BETWEEN 0 AND 11 THEN
            RAISE EXCEPTION 'status must be a proposal status id from 0 to 11, got %',
                coalesce(callbackd_enqueue.status::text, 'NULL')
                USING ERRCODE = 'CB001', COLUMN = 'status';
        END IF;
        IF length(callbackd_enqueue.identifier) > 200 THEN
            RAISE EXCEPTION 'identifier is longer than 200 characters'
                USING ERRCODE = 'CB001', COLUMN = 'identifier';
        END IF;
    ELSE
        IF callbackd_enqueue.body IS NULL THEN
            RAISE EXCEPTION 'body is required for %', callbackd_enqueue.event_type
                USING ERRCODE = 'CB001', COLUMN = 'body';
        END IF;
        IF callbackd_enqueue.proposal IS NOT NULL OR callbackd_enqueue.status IS NOT NULL
           OR callbackd_enqueue.identifier IS NOT NULL THEN
            RAISE EXCEPTION 'proposal, status and identifier belong to proposal.status only'
                USING ERRCODE = 'CB001', COLUMN = 'event_type';
        END IF;
    END IF;

    PERFORM callbackd_validate_body(callbackd_enqueue.event_type, callbackd_enqueue.body);

    INSERT INTO notifications (partner_id, environment, event_type, proposal, status, identifier, body)
    VALUES (callbackd_enqueue.partner_id, callbackd_enqueue.environment, callbackd_enqueue.event_type,
            callbackd_enqueue.proposal, callbackd_enqueue.status, callbackd_enqueue.identifier,
            callbackd_enqueue.body)
    RETURNING id INTO notification_id;

    INSERT INTO deliveries (notification_id, endpoint_id, partner_id, environment, event_type,
                            proposal, ordering_key)
    SELECT notification_id, e.id, e.partner_id, e.environment, callbackd_enqueue.event_type,
           callbackd_enqueue.proposal,
           callbackd_ordering_key(e.ordering, callbackd_enqueue.event_type,
                                  callbackd_enqueue.proposal, callbackd_enqueue.body)
    FROM endpoints e
    WHERE e.partner_id = callbackd_enqueue.partner_id
      AND e.environment = callbackd_enqueue.environment
      AND e.deleted_at IS NULL
      AND e.enabled
      AND callbackd_enqueue.event_type = ANY (e.event_types)
      AND callbackd_filter_passes(e.statuses, e.schedule_types, callbackd_enqueue.event_type,
                                  callbackd_enqueue.status, callbackd_enqueue.body)
    ORDER BY e.id;

    IF FOUND THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN notification_id;
END;
$$;

-- The queue wakes the workers itself when deliveries arrive: the statement-level trigger that
-- queues new deliveries (0020) now sends the workers' NOTIFY when it queued any.
--
-- Until now every writer of deliveries sent it: `callbackd_enqueue()` in plpgsql, and the
-- HTTP enqueue (a group of single calls, a batch) in a statement of its own after the
-- fan-out, one more round trip per group (docs/performance.md, 2026-12-04, evening). Now any
-- insert into `deliveries` wakes the workers in the statement that queued it. PostgreSQL
-- folds identical notifications of one transaction into one, so `callbackd_enqueue()`, which
-- still sends its own, costs no second wake-up; and, as before, the workers hear it only when
-- the transaction commits.
CREATE OR REPLACE FUNCTION callbackd_queue_arrivals() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    queued bigint;
BEGIN
    INSERT INTO delivery_queue (delivery_id, endpoint_id, ordering_key, queue, next_attempt_at)
    SELECT r.id, r.endpoint_id, r.ordering_key,
           CASE WHEN r.ordering_key IS NULL THEN 'ready' ELSE 'arriving' END, r.next_attempt_at
    FROM new_rows r
    WHERE r.state = 'pending'
    -- notification ids are time-ordered in the items' order: arrivals keep it
    ORDER BY r.notification_id, r.id;
    GET DIAGNOSTICS queued = ROW_COUNT;
    IF queued > 0 THEN
        PERFORM pg_notify('callbackd_due', '');
    END IF;
    RETURN NULL;
END;
$$;

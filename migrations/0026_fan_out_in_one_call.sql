-- The HTTP enqueue's insert and fan-out in one call: `callbackd_insert_fanned_out()`.
--
-- Why. A group of single calls (api/enqueue_group.rs) was five round trips: BEGIN with the
-- planner settings, the partner check, the notifications, the fan-out, COMMIT. The API's
-- callers wait for their group, and the next group forms while one is written, so a group's
-- round trips are what every caller waits for: with 32 clients the machine sat a quarter idle
-- (perf, docs/performance.md, 2026-12-04, night) while the load was waiting on them. Now a
-- group without an Idempotency-Key is this one statement, its own transaction; with keys, the
-- key statements still run around it in one transaction (store/queue/enqueue.rs).
--
-- What it does, per item, in the items' order: an item whose partner is unknown (or deleted)
-- is returned as one row (state 'unknown_partner', no delivery) and nothing of it is
-- written; every other item is inserted into `notifications` and fanned out to every enabled,
-- live endpoint of its partner and environment that takes its event type and passes its
-- filters, exactly as `callbackd_enqueue()` does, one row per delivery. An item with no
-- endpoint is inserted and returns no row. The arrivals trigger (0025) queues the deliveries
-- and wakes the workers; they hear it when the caller's transaction commits.
--
-- It does not validate: its callers validated every item (`NewNotification::validate`);
-- SQL callers keep `callbackd_enqueue()`, which does.
--
-- The planner settings are the function's own, so it needs no transaction to carry them:
-- every statement is a probe per item (partners by primary key, endpoints by
-- endpoints_fanout_idx, LATERAL and OFFSET 0 so the fan-out is not flattened into a join)
-- and one cached generic plan per connection, whatever the tables held when it was planned.
CREATE FUNCTION callbackd_insert_fanned_out(
    item_ids          uuid[],
    item_partners     uuid[],
    item_environments text[],
    item_event_types  text[],
    item_proposals    uuid[],
    item_statuses     smallint[],
    item_identifiers  text[],
    item_bodies       text[],
    item_traceparents text[]
) RETURNS TABLE (notification_id uuid, delivery_id uuid, endpoint_id uuid, state text)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    refused uuid[];
BEGIN
    SELECT coalesce(array_agg(x.id ORDER BY x.n), '{}') INTO refused
    FROM unnest(item_ids, item_partners) WITH ORDINALITY AS x(id, p, n)
    WHERE NOT EXISTS (SELECT 1 FROM partners pa WHERE pa.id = x.p AND pa.deleted_at IS NULL);
    RETURN QUERY SELECT r, NULL::uuid, NULL::uuid, 'unknown_partner'::text FROM unnest(refused) r;

    INSERT INTO notifications (id, partner_id, environment, event_type, proposal, status,
                               identifier, body, traceparent)
    SELECT x.id, x.p, x.e, x.t, x.pr, x.s, x.i, x.b::json, x.tp
    FROM unnest(item_ids, item_partners, item_environments, item_event_types, item_proposals,
                item_statuses, item_identifiers, item_bodies, item_traceparents)
         AS x(id, p, e, t, pr, s, i, b, tp)
    WHERE x.id <> ALL (refused);

    -- ORDER BY makes the insert (and so the arrivals' order in the queue) follow the items.
    RETURN QUERY
    INSERT INTO deliveries AS d (notification_id, endpoint_id, partner_id, environment,
                                 event_type, proposal, ordering_key)
    SELECT x.id, e.id, e.partner_id, e.environment, x.t, x.pr,
           callbackd_ordering_key(e.ordering, x.t, x.pr, x.b::json)
    FROM unnest(item_ids, item_partners, item_environments, item_event_types, item_proposals,
                item_statuses, item_bodies)
         WITH ORDINALITY AS x(id, p, env, t, pr, s, b, n)
    CROSS JOIN LATERAL (
        SELECT e.id, e.partner_id, e.environment, e.ordering, e.statuses, e.schedule_types
        FROM endpoints e
        WHERE e.partner_id = x.p AND e.environment = x.env AND e.deleted_at IS NULL
          AND e.enabled AND x.t = ANY (e.event_types)
        OFFSET 0) e
    WHERE x.id <> ALL (refused)
      AND callbackd_filter_passes(e.statuses, e.schedule_types, x.t, x.s, x.b::json)
    ORDER BY x.n, e.id
    RETURNING d.notification_id, d.id, d.endpoint_id, d.state;
END;
$$;

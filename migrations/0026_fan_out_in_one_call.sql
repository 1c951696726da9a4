-- The HTTP enqueue in one call: `callbackd_insert_fanned_out()`.
--
-- Why. A group of single calls (api/enqueue_group.rs) was five round trips: BEGIN with the
-- planner settings, the partner check, the notifications, the fan-out, COMMIT; seven with
-- Idempotency-Keys (their claim, and the update that stores their answers). The API's callers
-- wait for their group, and the next group forms while one is written, so a group's round
-- trips are what every caller waits for: with 32 clients the machine sat a quarter idle (perf,
-- docs/performance.md, 2026-12-04, night) while the load was waiting on them. Now a group is
-- this one statement, its own transaction.
--
-- What it does, per item, in the items' order:
-- - an item whose partner is unknown (or deleted) is one row, outcome 'unknown_partner', and
--   nothing of it is written;
-- - an item with a key (`item_keys`, NULL for none) claims it. A key another request holds
--   is waited for (the INSERT's ON CONFLICT waits for that transaction); a key taken by a
--   committed request answers the item and writes nothing: outcome 'repeated' with that
--   first answer when the request is the same (`item_fingerprints`, sha256 compared),
--   'conflict' when it is not, 'unfinished' if that answer is missing;
-- - every other item is inserted into `notifications` and fanned out to every enabled, live
--   endpoint of its partner and environment that takes its event type and passes its
--   filters, exactly as `callbackd_enqueue()` does: one row per delivery, outcome 'delivery'.
--   An item with no endpoint returns no row. The answer an item with a key gets is stored
--   with its key, built here as the API writes it (`{"id":…,"deliveries":[{"id":…,
--   "endpoint_id":…,"state":…},…]}`, deliveries by id, no spaces), so that a repeat gets it
--   byte for byte (tests/it/ingest/idempotency.rs compares them).
-- The arrivals trigger (0025) queues the deliveries and wakes the workers; they hear it when
-- the caller's transaction commits.
--
-- Each statement of a plpgsql function takes a new snapshot (READ COMMITTED), so the look-up
-- of a taken key sees the request the claim waited for, once it has committed.
--
-- It does not validate: its callers validated every item (`NewNotification::validate`);
-- SQL callers keep `callbackd_enqueue()`, which does.
--
-- The planner settings are the function's own, so it needs no transaction to carry them:
-- every statement is a probe per item (partners and keys by primary key, endpoints by
-- endpoints_fanout_idx, LATERAL and OFFSET 0 so the fan-out is not flattened into a join)
-- and one cached generic plan per connection, whatever the tables held when it was planned
-- (tests/it/reliability/queue_speed/fan_out_plan.rs).
CREATE FUNCTION callbackd_insert_fanned_out(
    item_ids          uuid[],
    item_partners     uuid[],
    item_environments text[],
    item_event_types  text[],
    item_proposals    uuid[],
    item_statuses     smallint[],
    item_identifiers  text[],
    item_bodies       text[],
    item_traceparents text[],
    item_keys         text[],
    item_fingerprints text[]
) RETURNS TABLE (notification_id uuid, outcome text, delivery_id uuid, endpoint_id uuid,
                 state text, answer text)
LANGUAGE plpgsql VOLATILE
SET enable_seqscan = off
SET enable_bitmapscan = off
SET plan_cache_mode = force_generic_plan
AS $$
#variable_conflict use_column
DECLARE
    -- Items not written: unknown partners, then keys already taken.
    skipped uuid[];
    -- Items whose key this call claimed.
    claimed uuid[] := '{}';
    taken   uuid[];
BEGIN
    SELECT coalesce(array_agg(x.id), '{}') INTO skipped
    FROM unnest(item_ids, item_partners) AS x(id, p)
    WHERE NOT EXISTS (SELECT 1 FROM partners pa WHERE pa.id = x.p AND pa.deleted_at IS NULL);
    RETURN QUERY SELECT r, 'unknown_partner', NULL::uuid, NULL::uuid, NULL::text, NULL::text
                 FROM unnest(skipped) r;

    IF cardinality(array_remove(item_keys, NULL)) > 0 THEN
        WITH c AS (
            INSERT INTO idempotency_keys AS k (partner_id, key, request_hash)
            SELECT x.p, x.key, sha256(convert_to(x.f, 'UTF8'))
            FROM unnest(item_ids, item_partners, item_keys, item_fingerprints)
                 AS x(id, p, key, f)
            WHERE x.key IS NOT NULL AND x.id <> ALL (skipped)
            -- In key order, whatever the items' order: two groups naming the same keys in
            -- opposite orders, each holding one and waiting for the other, would deadlock
            -- (tests/it/ingest/idempotency.rs).
            ORDER BY x.p, x.key
            ON CONFLICT (partner_id, key) DO NOTHING
            RETURNING k.partner_id, k.key)
        SELECT coalesce(array_agg(x.id), '{}') INTO claimed
        FROM c JOIN unnest(item_ids, item_partners, item_keys) AS x(id, p, key)
                 ON x.p = c.partner_id AND x.key = c.key;

        SELECT coalesce(array_agg(x.id), '{}') INTO taken
        FROM unnest(item_ids, item_keys) AS x(id, key)
        WHERE x.key IS NOT NULL AND x.id <> ALL (skipped) AND x.id <> ALL (claimed);
        RETURN QUERY
        SELECT x.id,
               CASE WHEN k.request_hash IS DISTINCT FROM sha256(convert_to(x.f, 'UTF8'))
                        THEN CASE WHEN k.request_hash IS NULL THEN 'unfinished' ELSE 'conflict' END
                    WHEN k.response IS NULL THEN 'unfinished'
                    ELSE 'repeated' END,
               NULL::uuid, NULL::uuid, NULL::text,
               CASE WHEN k.request_hash = sha256(convert_to(x.f, 'UTF8')) THEN k.response::text END
        FROM unnest(item_ids, item_partners, item_keys, item_fingerprints) AS x(id, p, key, f)
        LEFT JOIN LATERAL (
            SELECT k.request_hash, k.response FROM idempotency_keys k
            WHERE k.partner_id = x.p AND k.key = x.key
            OFFSET 0) k ON true
        WHERE x.id = ANY (taken);
        skipped := skipped || taken;
    END IF;

    INSERT INTO notifications (id, partner_id, environment, event_type, proposal, status,
                               identifier, body, traceparent)
    SELECT x.id, x.p, x.e, x.t, x.pr, x.s, x.i, x.b::json, x.tp
    FROM unnest(item_ids, item_partners, item_environments, item_event_types, item_proposals,
                item_statuses, item_identifiers, item_bodies, item_traceparents)
         AS x(id, p, e, t, pr, s, i, b, tp)
    WHERE x.id <> ALL (skipped);

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
    WHERE x.id <> ALL (skipped)
      AND callbackd_filter_passes(e.statuses, e.schedule_types, x.t, x.s, x.b::json)
    ORDER BY x.n, e.id
    RETURNING d.notification_id, 'delivery', d.id, d.endpoint_id, d.state, NULL::text;

    -- The claimed keys keep their item's answer, as the API writes it.
    IF cardinality(claimed) > 0 THEN
        UPDATE idempotency_keys k
        SET notification_id = a.id,
            response = a.answer::json
        FROM (
            SELECT x.id, x.p, x.key,
                   '{"id":"' || x.id || '","deliveries":['
                   || coalesce((SELECT string_agg('{"id":"' || d.id || '","endpoint_id":"'
                                                  || d.endpoint_id || '","state":"'
                                                  || d.state || '"}', ',' ORDER BY d.id)
                                FROM deliveries d WHERE d.notification_id = x.id), '')
                   || ']}' AS answer
            FROM unnest(item_ids, item_partners, item_keys) AS x(id, p, key)
            WHERE x.id = ANY (claimed)) a
        WHERE k.partner_id = a.p AND k.key = a.key;
    END IF;
END;
$$;
